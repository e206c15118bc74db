// sgemm through OpenBLAS against a plain triple loop.
import PaintsTensor
import Testing

@Suite struct BLASTests {
    @Test func multiplyMatchesTheDefinition() {
        let (m, n, k) = (7, 5, 9)
        var rng = SystemRandomNumberGenerator()
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        let c = BLAS.multiply(a, b, m: m, n: n, k: k)
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * k + p] * b[p * n + j] }
                #expect(abs(c[i * n + j] - sum) < 1e-5)
            }
        }
        #expect(!BLAS.coreName.isEmpty)
    }
}
