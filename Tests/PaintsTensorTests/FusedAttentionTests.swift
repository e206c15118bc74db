// The fused attention kernel (CTensorKernels' pk_attention) at every vector width this CPU runs (AVX-512, AVX2 + FMA,
// plain C) against torch's fixture and against the GEMM path on the same inputs: the head widths of SD1.x/2.x, SDXL,
// CLIP and the VAE, key counts that are not a multiple of the kernel's blocks, causal masks, and scores large enough
// that the online softmax must rescale what it has summed.
import Foundation
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct FusedAttentionTests {
    /// Every fused width this machine can run (1 always; 8 and 16 where the CPU has them).
    static let widths: [Int] = [1, 8, 16].filter { $0 <= width(Tensor.widestAttention) }

    static func width(_ kernel: Tensor.AttentionKernel) -> Int {
        if case .fused(let lanes) = kernel { return lanes }
        return 1
    }

    func with<T>(_ kernel: Tensor.AttentionKernel, _ body: () throws -> T) rethrows -> T {
        try Tensor.$attentionKernel.withValue(kernel) { try body() }
    }

    /// Values spread over -spread...spread, different per seed.
    func random(_ shape: [Int], seed: UInt64, spread: Float = 1) -> Tensor {
        var generator = SplitMix64(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in spread * (Float(generator.next() % 20_001) / 10_000 - 1) })
    }

    @Test(arguments: widths)
    func matchesTorch(lanes: Int) throws {
        let f = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/diffusion/ops.safetensors"))
        let out = try with(.fused(lanes: lanes)) {
            try Tensor.attention(query: f.tensor("attention.query"), key: f.tensor("attention.key"),
                                 value: f.tensor("attention.value"), heads: 3)
        }
        #expect(relativeError(out, try f.tensor("attention.output")) <= 1e-5)
    }

    // (batch, queries, keys, heads, head width, causal): cross-attention on 77 tokens at d 40; self-attention over
    // several key blocks at d 80 and 64; d 160 with a key count just past a block; the VAE's single 512-wide head;
    // odd widths (24, 3) that leave vector padding; CLIP's causal 77 tokens; a causal mask across key blocks.
    static let shapes: [(Int, Int, Int, Int, Int, Bool)] = [
        (2, 300, 77, 8, 40, false), (1, 700, 700, 2, 80, false), (1, 130, 530, 2, 64, false), (1, 100, 257, 1, 160, false),
        (1, 97, 300, 1, 512, false), (2, 50, 45, 3, 24, false), (1, 60, 70, 2, 3, false), (2, 77, 77, 12, 64, true),
        (1, 600, 600, 2, 40, true),
    ]

    @Test(arguments: widths)
    func equalsTheGEMMPath(lanes: Int) throws {
        for (index, (batch, lq, lk, heads, d, causal)) in Self.shapes.enumerated() {
            let seed = UInt64(index * 3)
            let q = random([batch, lq, heads * d], seed: seed), k = random([batch, lk, heads * d], seed: seed + 1)
            let v = random([batch, lk, heads * d], seed: seed + 2)
            let fused = try with(.fused(lanes: lanes)) { try Tensor.attention(query: q, key: k, value: v, heads: heads, causal: causal) }
            let reference = try with(.gemm) { try Tensor.attention(query: q, key: k, value: v, heads: heads, causal: causal) }
            #expect(fused.shape == reference.shape)
            #expect(relativeError(fused, reference) <= 1e-5, "\(lanes) lanes, shape \(index)")
        }
    }

    @Test(arguments: widths)
    func rescalesWhenALaterKeyBlockHoldsTheLargestScore(lanes: Int) throws {
        // Keys grow in size along the sequence, so each 256-key block holds larger scores than the one before and the
        // running softmax must rescale its sums; spread 4 makes the scores large (tens) so a missed rescale shows.
        let (lq, lk, d) = (50, 800, 40)
        let q = random([1, lq, d], seed: 7, spread: 4)
        var k = random([1, lk, d], seed: 8, spread: 4)
        for j in 0..<lk { for i in 0..<d { k.data[j * d + i] *= Float(j + 1) / Float(lk) } }
        let v = random([1, lk, d], seed: 9)
        let fused = try with(.fused(lanes: lanes)) { try Tensor.attention(query: q, key: k, value: v, heads: 1) }
        let reference = try with(.gemm) { try Tensor.attention(query: q, key: k, value: v, heads: 1) }
        #expect(relativeError(fused, reference) <= 1e-5)
        // The comparison can fail: the same keys in the opposite order (the largest scores in the first block) attend
        // to other values.
        let reversedKeys = Tensor(shape: k.shape, data: (0..<lk).reversed().flatMap { j in k.data[(j * d)..<((j + 1) * d)] })
        let other = try with(.fused(lanes: lanes)) { try Tensor.attention(query: q, key: reversedKeys, value: v, heads: 1) }
        #expect(relativeError(other, reference) > 1e-2)
    }

    @Test func aWidthTheCPULacksFallsBackToTheGEMMPath() throws {
        guard Self.width(Tensor.widestAttention) < 16 else { return }
        let q = random([1, 20, 16], seed: 10), k = random([1, 30, 16], seed: 11), v = random([1, 30, 16], seed: 12)
        let fused = try with(.fused(lanes: 16)) { try Tensor.attention(query: q, key: k, value: v, heads: 2) }
        let reference = try with(.gemm) { try Tensor.attention(query: q, key: k, value: v, heads: 2) }
        #expect(relativeError(fused, reference) <= 1e-6)
    }
}

/// The default kernel's choice for wide heads (the VAE's one head of 512: oneDNN's batched products) gives the same
/// attention as one sgemm per head on OpenBLAS, and the UNet's heads of 40 stay on the fused kernel's results.
@Suite struct DefaultAttentionTests {
    @Test(arguments: [(1, 512), (8, 40)])
    func theDefaultMatchesThePerHeadProducts(_ heads: Int, _ width: Int) throws {
        var noise = SplitMix64(seed: UInt64(heads * 1000 + width))
        let (lq, lk) = (70, 53)
        func tensor(_ rows: Int) -> Tensor {
            Tensor(shape: [2, rows, heads * width], data: (0..<(2 * rows * heads * width)).map { _ in noise.nextUnit() * 2 - 1 })
        }
        let (q, k, v) = (tensor(lq), tensor(lk), tensor(lk))
        let automatic = try Tensor.$attentionKernel.withValue(.automatic) { try Tensor.attention(query: q, key: k, value: v, heads: heads) }
        let perHead = try Tensor.$attentionKernel.withValue(.gemm) {
            try OneDNN.$backendOverride.withValue(.openblas) { try Tensor.attention(query: q, key: k, value: v, heads: heads) }
        }
        var worst: Float = 0
        for (a, b) in zip(automatic.data, perHead.data) { worst = max(worst, abs(a - b)) }
        #expect(worst < 1e-5, "heads \(heads) x \(width): largest difference \(worst)")
    }
}
