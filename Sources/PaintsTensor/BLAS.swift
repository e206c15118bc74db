// PaintsTensor/BLAS: the OpenBLAS calls the engines use (sgemm), and which kernel OpenBLAS picked on this CPU.
// The diffusion engine core (tensors, convolution, attention) grows on top of this module.
import COpenBLAS

public enum BLAS {
    /// C = A x B for row-major A (m x k) and B (k x n).
    public static func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        precondition(a.count == m * k && b.count == k * n, "matrix sizes do not match m, n, k")
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                                pa.baseAddress, Int32(k), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                }
            }
        }
        return c
    }

    /// C = alpha * op(A) op(B) + beta * C on row-major buffers (cblas_sgemm). op(A) is m x k, op(B) k x n.
    @inline(__always)
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The kernel family OpenBLAS chose ("Haswell", "SkylakeX", ...).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// OpenBLAS's build configuration string.
    public static var configuration: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// Threads OpenBLAS uses.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
