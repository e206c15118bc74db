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

    /// Small feature maps of several images run on OpenBLAS as one product (columns of every image side by side): the
    /// same as one image at a time, for 3x3 (padded, stride 2, unpadded) and bias-free convolutions, and 5x5 kernels.
    @Test func imagesInOneProductEqualOneImageAtATime() throws {
        let cases: [([Int], Int, Int, Int, Int, Bool)] = [([2, 12, 16, 16], 24, 3, 1, 1, true), ([3, 8, 9, 11], 5, 3, 2, 1, true),
                                                          ([2, 20, 8, 8], 16, 5, 1, 2, true), ([2, 7, 6, 5], 9, 3, 1, 0, false)]
        for (index, (shape, outChannels, kernel, stride, padding, withBias)) in cases.enumerated() {
            let seed = UInt64(90 + 3 * index)
            let x = random(shape, seed: seed), w = random([outChannels, shape[1], kernel, kernel], seed: seed + 1)
            let b = withBias ? random([outChannels], seed: seed + 2) : nil
            let batched = try on(.openblas) { try x.conv2d(weight: w, bias: b, stride: stride, padding: padding) }
            let plane = shape[1] * shape[2] * shape[3]
            var single: [Float] = []
            for image in 0..<shape[0] {
                let one = Tensor(shape: [1] + shape.dropFirst(), data: Array(x.data[(image * plane)..<((image + 1) * plane)]))
                single += try on(.openblas) { try one.conv2d(weight: w, bias: b, stride: stride, padding: padding) }.data
            }
            #expect(batched.shape[0] == shape[0] && batched.count == single.count)
            #expect(relativeError(batched.data, single) <= 1e-6, "case \(index)")
        }
    }

    /// Winograd F(4x4, 3x3), both forms (oneDNN's kernel on AVX-512, and the transforms around sgemm), forced at any size,
    /// against OpenBLAS's direct convolution: whole images (one and two, with and without padding and bias, sides
    /// that are no multiple of the 4-row tile, channel counts that are no multiple of 16) and in bands of 1 and 4 to 8
    /// rows (oneDNN's form: first, middle and last bands pad differently; the sgemm form: bands of one or two tile rows,
    /// two whole images in one group and the third alone, output channels in blocks of 16). Where oneDNN has no Winograd kernel its
    /// form runs the direct convolution and must give the same.
    @Test(arguments: [Tensor.WinogradForm.onednn, .sgemm],
          [([1, 16, 20, 18], 32, 1, true, 0.0), ([2, 32, 9, 13], 16, 0, false, 0.0), ([1, 16, 23, 17], 48, 1, true, 1.0),
           ([2, 32, 30, 12], 32, 1, false, 2e6), ([1, 16, 29, 20], 16, 1, true, 1e6), ([2, 5, 11, 6], 7, 1, true, 0.0),
           ([3, 16, 6, 7], 16, 1, true, 6e5)])
    func winogradConvolutionsEqualTheDirectOnes(_ form: Tensor.WinogradForm, _ sizes: ([Int], Int, Int, Bool, Double)) throws {
        let (shape, outChannels, padding, withBias, bandFLOPs) = sizes
        let x = random(shape, seed: UInt64(shape[2])), w = random([outChannels, shape[1], 3, 3], seed: 5)
        let b = withBias ? random([outChannels], seed: 6) : nil
        let reference = try on(.openblas) { try x.conv2d(weight: w, bias: b, padding: padding) }
        // The sgemm form in groups of tiles (from the band size) and, for the banded cases, in blocks of 16 outputs.
        let winograd = try Tensor.$winogradFormOverride.withValue(form) {
            try Tensor.$winogradBlockOverride.withValue(bandFLOPs > 0 ? 16 : nil) {
                try Tensor.$bandFLOPsOverride.withValue(bandFLOPs > 0 ? bandFLOPs : nil) { try on(.mixed) { try x.conv2d(weight: w, bias: b, padding: padding) } }
            }
        }
        #expect(winograd.shape == reference.shape)
        let error = relativeError(winograd, reference)
        #expect(error <= 1e-5, "\(form): \(shape) -> \(outChannels), padding \(padding), bands of \(bandFLOPs) FLOPs: \(error)")
        let ran = form == .sgemm || OneDNN.winogradKernel != nil && shape[1] % 16 == 0 && outChannels % 16 == 0
        if ran {
            // Can fail: Winograd's transforms round differently from a direct sum.
            #expect(error > 0, "\(form): bit-identical to OpenBLAS, Winograd did not run")
        }
        if form == .onednn, let kernel = OneDNN.winogradKernel { #expect(OneDNN.description.contains(kernel)) }
        #expect(OneDNN.winogradKernel != nil || FusedAttentionTests.width(Tensor.widestAttention) < 16,
                "an AVX-512 CPU should have oneDNN's Winograd kernel")
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

    /// Rounded to bfloat16 (nearest even), as floats: the reference's own rounding, written here independently.
    static func bfloat16(_ t: Tensor) -> Tensor {
        t.map { v in
            let bits = v.bitPattern
            return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
        }
    }

    /// bfloat16 convolutions (PAINTSD_PRECISION=bf16) compute the float32 convolution of the bfloat16-rounded input and
    /// weights: whole and banded, strided, 1x1, with and without bias. Where the CPU has no bfloat16 dot products the
    /// precision stays f32 and the result is the float32 one.
    @Test(arguments: [(1, 1, 3, true), (2, 1, 3, false), (1, 0, 1, true)])
    func bfloat16ConvolutionsRoundTheirOperands(_ stride: Int, _ padding: Int, _ k: Int, _ withBias: Bool) throws {
        let x = random([2, 24, 19, 21], seed: UInt64(7 + stride + k)), weight = random([40, 24, k, k], seed: 11)
        let bias = withBias ? random([40], seed: 12) : nil
        let exact = try on(.openblas) { try x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding) }
        let rounded = try on(.openblas) {
            try Self.bfloat16(x).conv2d(weight: Self.bfloat16(weight), bias: bias, stride: stride, padding: padding)
        }
        for band in [false, true] {
            let out = try OneDNN.$precisionOverride.withValue(.bf16) { () throws -> Tensor in
                #expect(OneDNN.precision == (OneDNN.hasBF16 ? .bf16 : .f32))
                // Tiny bands: one output row each.
                return try band ? Tensor.$bandFLOPsOverride.withValue(1) { try on(.mixed) { try x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding) } }
                    : on(.mixed) { try x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding) }
            }
            guard OneDNN.hasBF16 else {
                #expect(relativeError(out, exact) <= 1e-5)
                continue
            }
            let error = relativeError(out, rounded), fromExact = relativeError(out, exact)
            print("bf16 conv stride \(stride) k \(k) banded \(band): vs rounded operands \(error), vs float32 \(fromExact)")
            #expect(error <= 1e-5, "bf16 against the rounded operands' float32 convolution: \(error)")
            // Can fail: the rounding is real (bfloat16 keeps 8 bits of mantissa).
            #expect(fromExact > 1e-4 && fromExact < 1e-2, "bf16 against float32: \(fromExact)")
        }
    }

    /// Float32 fully connected layers on oneDNN's matmul (at any size through the override) equal OpenBLAS's:
    /// token rows as the UNet's, a single row, no bias.
    @Test(arguments: [(77, 96, 40, true), (1, 64, 33, true), (300, 48, 130, false)])
    func float32LinearLayersOnOneDNNEqualOpenBLAS(_ rows: Int, _ inputs: Int, _ outputs: Int, _ withBias: Bool) throws {
        let x = random([rows, inputs], seed: 21), weight = random([outputs, inputs], seed: 22)
        let bias = withBias ? random([outputs], seed: 23) : nil
        let reference = try on(.openblas) { try x.linear(weight: weight, bias: bias) }
        let out = try Tensor.$linearOnOneDNNOverride.withValue(true) { try x.linear(weight: weight, bias: bias) }
        #expect(out.shape == reference.shape)
        #expect(relativeError(out, reference) <= 1e-6)
    }

    /// bfloat16 fully connected layers compute the float32 product of the bfloat16-rounded input and weights (plus the
    /// float32 bias): token rows as the UNet's, a single row, no bias.
    @Test(arguments: [(77, 96, 40, true), (1, 64, 33, true), (300, 48, 130, false)])
    func bfloat16LinearLayersRoundTheirOperands(_ rows: Int, _ inputs: Int, _ outputs: Int, _ withBias: Bool) throws {
        let x = random([rows, inputs], seed: UInt64(rows)), weight = random([outputs, inputs], seed: 21)
        let bias = withBias ? random([outputs], seed: 22) : nil
        let exact = try x.linear(weight: weight, bias: bias)
        let rounded = try Self.bfloat16(x).linear(weight: Self.bfloat16(weight), bias: bias)
        let out = try OneDNN.$precisionOverride.withValue(.bf16) { try x.linear(weight: weight, bias: bias) }
        guard OneDNN.hasBF16 else {
            #expect(relativeError(out, exact) <= 1e-6)
            return
        }
        let error = relativeError(out, rounded), fromExact = relativeError(out, exact)
        print("bf16 linear \(rows)x\(inputs) -> \(outputs): vs rounded operands \(error), vs float32 \(fromExact)")
        #expect(error <= 1e-5, "bf16 against the rounded operands' float32 product: \(error)")
        #expect(fromExact > 1e-4 && fromExact < 1e-2, "bf16 against float32: \(fromExact)")
    }
}
