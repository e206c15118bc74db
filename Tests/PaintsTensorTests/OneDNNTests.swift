// The oneDNN kernels (PAINTSD_KERNELS=onednn) against torch's fixtures and against the OpenBLAS path on the same
// inputs: channels-last convolutions whole and in bands of output rows (each band padding only the image ends it
// touches), attention batched over heads.
import Foundation
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct OneDNNTests {
    let f: SafeTensorsFile
    init() throws { f = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/diffusion/ops.safetensors")) }

    /// With attention on its GEMM path (the fused kernel has its own tests), which the backend decides.
    func on<T>(_ backend: OneDNN.Backend, _ body: () throws -> T) rethrows -> T {
        try Tensor.$attentionKernel.withValue(.gemm) { try OneDNN.$backendOverride.withValue(backend) { try body() } }
    }

    /// Values spread over -1...1, different per seed.
    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(generator.next() % 20_001) / 10_000 - 1 })
    }

    @Test func theOpsMatchTorchOnOneDNN() throws {
        for (name, stride, padding) in [("conv3", 1, 1), ("conv3s2", 2, 1), ("conv1", 1, 0), ("conv4valid", 1, 0)] {
            let out = try on(.onednn) {
                try f.tensor("\(name).input").conv2d(weight: f.tensor("\(name).weight"), bias: f.tensor("\(name).bias"),
                                                     stride: stride, padding: padding)
            }
            let error = relativeError(out, try f.tensor("\(name).output"))
            #expect(error <= 1e-5, "\(name): \(error)")
        }
        let attended = try on(.onednn) {
            try Tensor.attention(query: f.tensor("attention.query"), key: f.tensor("attention.key"),
                                 value: f.tensor("attention.value"), heads: 3)
        }
        #expect(relativeError(attended, try f.tensor("attention.output")) <= 1e-5)
    }

    @Test(arguments: [(1, 1), (2, 1), (1, 0)])
    func aBandedConvolutionEqualsTheWholeOne(stride: Int, padding: Int) throws {
        // Each image over maxBandFLOPs, so oneDNN runs it in bands of output rows (two images, each banded).
        let x = random([2, 96, 384, 256], seed: 1), w = random([96, 96, 3, 3], seed: 2), b = random([96], seed: 3)
        let outRows = (384 + 2 * padding - 3) / stride + 1, outColumns = (256 + 2 * padding - 3) / stride + 1
        #expect(2 * Double(96 * 96 * 9 * outRows * outColumns) > Tensor.maxBandFLOPs, "one band would hold an image")
        let banded = try on(.onednn) { try x.conv2d(weight: w, bias: b, stride: stride, padding: padding) }
        let reference = try on(.openblas) { try x.conv2d(weight: w, bias: b, stride: stride, padding: padding) }
        #expect(banded.shape == reference.shape)
        #expect(relativeError(banded, reference) <= 1e-5)
    }

    @Test func wholeConvolutionsOfSeveralImagesEqualOpenBLAS() throws {
        // (input shape, output channels, kernel, stride, padding): odd sizes with stride 2 (a window that never reaches
        // the last padding row), an input row no window reads, a pointwise kernel; batches of 2 and 3 in one call.
        let cases: [([Int], Int, Int, Int, Int)] = [([2, 5, 9, 7], 6, 3, 2, 1), ([2, 6, 6, 6], 4, 3, 2, 0), ([3, 8, 5, 5], 3, 1, 1, 0),
                                                    ([2, 16, 12, 10], 32, 3, 1, 1)]
        for (index, (shape, outChannels, kernel, stride, padding)) in cases.enumerated() {
            let seed = UInt64(10 + 3 * index)
            let x = random(shape, seed: seed), w = random([outChannels, shape[1], kernel, kernel], seed: seed + 1)
            let b = random([outChannels], seed: seed + 2)
            let fast = try on(.onednn) { try x.conv2d(weight: w, bias: b, stride: stride, padding: padding) }
            let reference = try on(.openblas) { try x.conv2d(weight: w, bias: b, stride: stride, padding: padding) }
            #expect(fast.shape == reference.shape)
            #expect(relativeError(fast, reference) <= 1e-5, "case \(index)")
        }
    }

    @Test(arguments: [false, true])
    func attentionBatchedOverHeadsEqualsOneHeadAtATime(causal: Bool) throws {
        let q = random([2, 77, 96], seed: 4), k = random([2, 77, 96], seed: 5), v = random([2, 77, 96], seed: 6)
        let batched = try on(.onednn) { try Tensor.attention(query: q, key: k, value: v, heads: 4, causal: causal) }
        let perHead = try on(.openblas) { try Tensor.attention(query: q, key: k, value: v, heads: 4, causal: causal) }
        #expect(relativeError(batched, perHead) <= 1e-5)
        // The comparison can fail: the mask changes the result.
        let other = try on(.openblas) { try Tensor.attention(query: q, key: k, value: v, heads: 4, causal: !causal) }
        #expect(relativeError(batched, other) > 1e-2)
    }
}
