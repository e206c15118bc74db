// PaintsTensor/Tensor+Winograd: 3x3 convolutions of stride 1 by Winograd F(4x4, 3x3), a quarter of the direct
// convolution's multiplications (Lavin and Gray, 2015): the transforms of CTensorKernels/winograd.c around 36 matrix
// products (one oneDNN batched matmul, or sgemm), on any CPU; or, with PAINTSD_WINOGRAD=onednn, oneDNN's own kernel
// (AVX-512 only) for large images, which ran the VAE no faster and took more memory. Outputs stay within about 1e-5 (relative) of the direct convolution's; they are float32 under
// PAINTSD_PRECISION=bf16 too.
import CTensorKernels

extension Tensor {
    /// Which Winograd form runs a convolution: oneDNN's kernel, or the transforms around matrix products ("sgemm").
    public enum WinogradForm: String, Sendable {
        case onednn, sgemm
    }

    /// Output pixels (all images) from which the sgemm form runs: the UNet's 32x32 and 64x64 levels at 512x512, where
    /// the 36 products have 64 tiles or more.
    public static let sgemmWinogradMinimumPixels = 1024
    /// Most floats of transformed input the sgemm form holds at once (36 per tile and input channel: 16 MiB; more
    /// tiles run in groups), and of oneDNN's transformed tiles.
    public static let maxWinogradFloats = 4 << 20
    /// Most floats of transformed weights per block of output channels (8 MiB): a block's 36 products, then its
    /// output transform.
    static let winogradWeightBlockFloats = 2 << 20
    /// Output channels per block for this task (tests make several blocks of small convolutions).
    @TaskLocal public static var winogradBlockOverride: Int?
    /// The form for this task's 3x3 convolutions whatever their size (tests); oneDNN's falls back to the direct
    /// convolution where it has no kernel.
    @TaskLocal public static var winogradFormOverride: WinogradForm?

    /// The form for a convolution of `pixels` output pixels, `c` inputs and `o` outputs; nil: direct.
    static func winogradForm(pixels: Int, c: Int, o: Int) -> WinogradForm? {
        if let forced = winogradFormOverride { return forced }
        guard OneDNN.winograd, OneDNN.backend == .mixed || OneDNN.backend == .onednn else { return nil }
        if OneDNN.winogradOnOneDNN, pixels >= OneDNN.winogradMinimumPixels, c % 16 == 0, o % 16 == 0 { return .onednn }
        return OneDNN.backend == .mixed && pixels >= sgemmWinogradMinimumPixels ? .sgemm : nil
    }

    /// The 3x3 convolution of stride 1 by Winograd, in the form `winogradForm` picks; nil when it runs directly.
    func convolvedByWinograd(weight: Weight, bias: Tensor?, padding: Int) throws(TensorError) -> Tensor? {
        let (n, h, w, o) = (shape[0], shape[2], shape[3], weight.shape[0])
        let pixels = n * (h + 2 * padding - 2) * (w + 2 * padding - 2)
        switch Self.winogradForm(pixels: pixels, c: shape[1], o: o) {
        case .onednn: return try convolvedOnOneDNNWinograd(weight: weight, bias: bias, padding: padding)
        case .sgemm: return try convolvedBySgemmWinograd(weight: weight, bias: bias, padding: padding)
        case nil: return nil
        }
    }

    /// The sgemm form, in groups of tiles whose transformed input V [36][tiles][c] fits in `maxWinogradFloats`: whole
    /// images where they fit (batch 2 in one product), else bands of tile rows of one image. Per group the input rows
    /// it reads are transposed to channels last and transformed; per block of output channels the weights are
    /// transformed into U [36][block][c], the 36 products M = V U^T made, and the output transform writes channels-last
    /// output rows, transposed back into the planes at the end of the group. Cancellation is polled between blocks.
    private func convolvedBySgemmWinograd(weight: Weight, bias: Tensor?, padding: Int) throws(TensorError) -> Tensor? {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let o = weight.shape[0]
        let oh = h + 2 * padding - 2, ow = w + 2 * padding - 2
        let tilesW = (ow + 3) / 4, tilesH = (oh + 3) / 4
        // (A band size set for the task, as tests do, bounds the direct FLOPs of a group too: 288 c o per tile.)
        let groupTiles = max(1, min(Self.maxWinogradFloats / (36 * c), Self.bandFLOPsOverride.map { Int($0 / Double(288 * c * o)) } ?? .max))
        let bandRows = max(1, min(tilesH, groupTiles / tilesW))
        var groups: [[WinogradBand]] = [[]]
        var filled = 0, inputFloats = 0, outputFloats = 0
        for image in 0..<n {
            for ty0 in stride(from: 0, to: tilesH, by: bandRows) {
                var band = WinogradBand(image: image, tileRows: ty0..<min(tilesH, ty0 + bandRows), tilesW: tilesW, padding: padding,
                                        height: h, outputHeight: oh)
                if filled + band.tiles > groupTiles, !groups[groups.count - 1].isEmpty {
                    groups.append([])
                    filled = 0
                }
                let group = groups[groups.count - 1]
                band.slot = filled
                band.inputOffset = group.last.map { $0.inputOffset + $0.inputRows.count * w * c } ?? 0
                band.outputOffset = group.last.map { $0.outputOffset + $0.outputRows.count * ow * o } ?? 0
                groups[groups.count - 1].append(band)
                filled += band.tiles
                inputFloats = max(inputFloats, band.inputOffset + band.inputRows.count * w * c)
                outputFloats = max(outputFloats, band.outputOffset + band.outputRows.count * ow * o)
            }
        }
        let mostTiles = groups.map { $0.reduce(0) { $0 + $1.tiles } }.max() ?? 0
        let block = min(o, Self.winogradBlockOverride ?? max(16, Self.winogradWeightBlockFloats / (36 * c) / 16 * 16))
        // Transform work in items of up to 16 tiles (a tile row at 64x64) inside one band.
        let items = groups.map { group in group.indices.flatMap { b in
            stride(from: group[b].firstTile, to: group[b].endTile, by: 16).map { (band: b, t0: $0, t1: Swift.min(group[b].endTile, $0 + 16)) }
        } }
        var out = Tensor(zeros: [n, o, oh, ow])
        var cancelled = false
        data.withUnsafeBufferPointer { xb in out.data.withUnsafeMutableBufferPointer { yb in
            let scratch = ScratchBuffers.shared
            scratch.with(count: inputFloats) { channelsLast in scratch.with(count: 36 * mostTiles * c) { transformed in
            scratch.with(count: c) { zeros in scratch.with(count: outputFloats) { outputChannelsLast in
            scratch.with(count: 36 * block * c) { kernels in scratch.with(count: 36 * mostTiles * block) { products in
                zeros.update(repeating: 0, count: c)
                let (x, v, z) = (UnsafeSendablePointer(channelsLast), UnsafeSendablePointer(transformed), UnsafeSendablePointer(zeros))
                let (u, m, y) = (UnsafeSendablePointer(kernels), UnsafeSendablePointer(products), UnsafeSendablePointer(outputChannelsLast))
                weight.withFloats { filters in withBiasPointer(bias) { biasPointer in
                    let g = UnsafeSendablePointer(filters), b = biasPointer.map { UnsafeSendablePointer($0) }
                    for (group, work) in zip(groups, items) where !cancelled {
                        let tiles = group.reduce(0) { $0 + $1.tiles }
                        for band in group {
                            Self.transpose(xb.baseAddress! + band.image * c * h * w + band.inputRows.lowerBound * w, stride: h * w,
                                           into: x.pointer + band.inputOffset, stride: c, rows: c, columns: band.inputRows.count * w)
                        }
                        Parallel.forEach(work.count) { k in
                            let (band, t0, t1) = (group[work[k].band], work[k].t0, work[k].t1)
                            pk_winograd_input(x.pointer + band.inputOffset, band.inputRows.lowerBound, h, w, c, padding, tilesW, t0, t1,
                                              z.pointer, v.pointer + (band.slot + t0 - band.firstTile) * c, tiles * c)
                        }
                        var o0 = 0
                        while o0 < o {
                            if ComputeCancellation.isRequested {
                                cancelled = true
                                break
                            }
                            let width = min(block, o - o0), first = o0
                            Parallel.forEach(Parallel.cores) { part in
                                pk_winograd_weights(g.pointer, c, first + width * part / Parallel.cores,
                                                    first + width * (part + 1) / Parallel.cores,
                                                    u.pointer + width * part / Parallel.cores * c, width * c)
                            }
                            // The 36 products in one oneDNN batched call (12-20% faster than 36 sgemm calls on Zen 4), else
                            // on OpenBLAS.
                            let products = OneDNN.MatmulShape(batch: 36, m: tiles, n: width, k: c, a: [tiles * c, c, 1],
                                                              b: [width * c, 1, c], c: [tiles * width, width, 1], scale: 1)
                            if !OneDNN.multiply(products, a: v.pointer, b: u.pointer, c: m.pointer) {
                                for xi in 0..<36 {
                                    BLAS.gemm(transposeB: true, m: tiles, n: width, k: c, a: v.pointer + xi * tiles * c, lda: c,
                                              b: u.pointer + xi * width * c, ldb: c, c: m.pointer + xi * tiles * width, ldc: width)
                                }
                            }
                            Parallel.forEach(work.count) { k in
                                let (band, t0, t1) = (group[work[k].band], work[k].t0, work[k].t1)
                                pk_winograd_output(m.pointer + (band.slot + t0 - band.firstTile) * width, tiles * width, width, t0, t1,
                                                   tilesW, b.map { UnsafePointer($0.pointer + first) },
                                                   y.pointer + band.outputOffset + first, band.outputRows.lowerBound, oh, ow, o)
                            }
                            o0 += width
                        }
                        guard !cancelled else { break }
                        for band in group {
                            Self.transpose(y.pointer + band.outputOffset, stride: o,
                                           into: yb.baseAddress! + band.image * o * oh * ow + band.outputRows.lowerBound * ow,
                                           stride: oh * ow, rows: band.outputRows.count * ow, columns: o)
                        }
                    }
                } }
            } } } }
            } }
        } }
        if cancelled { throw .cancelled }
        return out
    }

    /// The 3x3 convolution (stride 1) by oneDNN's Winograd F(4x4, 3x3) kernel, which reads and writes its own blocked
    /// layout: each band of output rows (all rows of every image when one band holds them) has its input rows reordered
    /// out of the NCHW planes and its output rows back into them; the weights are transformed once per call (again for a
    /// band whose kernel wants another layout). Bands hold a multiple of 4 rows (the kernel's tile) where they can, and
    /// cancellation is polled between them. nil when oneDNN has no Winograd kernel here or could not run it.
    private func convolvedOnOneDNNWinograd(weight: Weight, bias: Tensor?, padding: Int) throws(TensorError) -> Tensor? {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let o = weight.shape[0]
        let oh = h + 2 * padding - 2, ow = w + 2 * padding - 2
        let flopsPerRow = 2 * Double(o * ow) * Double(c * 9)
        // Bands also bound the kernel's transformed tiles in memory (its scratchpad: 36 floats per 4x4 tile and input or
        // output channel) to `maxWinogradFloats`, the blocked copies to less.
        let rowsInMemory = Self.maxWinogradFloats * 16 / (36 * ow * (c + o))
        var rowsPerBand = max(1, min(oh, rowsInMemory, Int((Self.bandFLOPsOverride ?? Self.maxBandFLOPs) / flopsPerRow)))
        if rowsPerBand > 4 && rowsPerBand < oh { rowsPerBand -= rowsPerBand % 4 }
        let whole = rowsPerBand == oh
        // The band of output rows y0..<y0+rows: its input rows inside the image and the padding rows it needs.
        func band(_ y0: Int, _ rows: Int) -> (shape: OneDNN.WinogradShape, firstRow: Int) {
            let top = y0 - padding, height = rows + 2
            let padTop = max(0, -top), padBottom = max(0, top + height - h)
            let convolution = OneDNN.ConvolutionShape(n: whole ? n : 1, c: c, h: height - padTop - padBottom, w: w, o: o, kh: 3, kw: 3,
                                                      stride: 1, paddingTop: padTop, paddingBottom: padBottom, paddingW: padding,
                                                      bias: bias != nil)
            return (OneDNN.WinogradShape(convolution: convolution, sourceImage: c * h * w, sourceChannel: h * w,
                                         destinationImage: o * oh * ow, destinationChannel: oh * ow), top + padTop)
        }
        guard let first = OneDNN.winogradConvolution(band(0, rowsPerBand).shape) else { return nil }
        // The largest band (a middle one reads two more rows than the first) sizes the blocked buffers.
        let widest = whole ? first : OneDNN.winogradConvolution(band(min(rowsPerBand, max(0, oh - rowsPerBand)), rowsPerBand).shape) ?? first
        let sourceFloats = max(first.sourceFloats, widest.sourceFloats), destinationFloats = max(first.destinationFloats, widest.destinationFloats)
        let weightFloats = max(first.weightFloats, widest.weightFloats)
        var out = Tensor(zeros: [n, o, oh, ow])
        var cancelled = false
        let done = data.withUnsafeBufferPointer { xb in out.data.withUnsafeMutableBufferPointer { yb in
            let (x, y) = (xb.baseAddress!, yb.baseAddress!)
            return ScratchBuffers.shared.with(count: sourceFloats) { source in ScratchBuffers.shared.with(count: destinationFloats) { destination in
                weight.withFloats { plain in ScratchBuffers.shared.with(count: max(1, weightFloats)) { transformed in
                    withBiasPointer(bias) { b in
                        var weightsOf: OneDNN.Primitive?      // whose layout `transformed` holds
                        func run(_ primitive: OneDNN.Primitive, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) -> Bool {
                            guard primitive.sourceFloats <= sourceFloats, primitive.destinationFloats <= destinationFloats,
                                  primitive.weightFloats <= weightFloats,
                                  let toBlocked = primitive.sourceReorder, let toPlain = primitive.destinationReorder else { return false }
                            if weightsOf.map({ !OneDNN.sameWeights($0, primitive) }) ?? true {
                                guard OneDNN.kernelWeights(of: primitive, plain: plain, target: transformed) != nil else { return false }
                                weightsOf = primitive
                            }
                            let kernelWeights = primitive.weightsReorder == nil ? UnsafeRawPointer(plain) : UnsafeRawPointer(transformed)
                            return OneDNN.reorder(toBlocked, from: UnsafeRawPointer(input), to: UnsafeMutableRawPointer(source))
                                && OneDNN.convolve(primitive, source: UnsafeRawPointer(source), weights: kernelWeights, bias: b, destination: destination)
                                && OneDNN.reorder(toPlain, from: UnsafeRawPointer(destination), to: UnsafeMutableRawPointer(output))
                        }
                        if whole { return run(first, input: x, output: y) }
                        return Self.forEachBand(images: n, rows: oh, perBand: rowsPerBand, cancelled: &cancelled) { image, y0, rows in
                            let (shape, firstRow) = band(y0, rows)
                            guard let primitive = OneDNN.winogradConvolution(shape) else { return false }
                            return run(primitive, input: x + image * c * h * w + firstRow * w, output: y + image * o * oh * ow + y0 * ow)
                        }
                    }
                } }
            } }
        } }
        if cancelled { throw .cancelled }
        return done ? out : nil
    }

}

/// Tile rows of one image that the sgemm Winograd form runs together: the input rows they read, the output rows they
/// write, and where their tiles and channels-last rows sit in a group's buffers.
struct WinogradBand {
    let image: Int
    let tileRows: Range<Int>
    let firstTile: Int, endTile: Int
    let inputRows: Range<Int>, outputRows: Range<Int>
    var slot = 0, inputOffset = 0, outputOffset = 0

    init(image: Int, tileRows: Range<Int>, tilesW: Int, padding: Int, height: Int, outputHeight: Int) {
        self.image = image
        self.tileRows = tileRows
        firstTile = tileRows.lowerBound * tilesW
        endTile = tileRows.upperBound * tilesW
        outputRows = 4 * tileRows.lowerBound..<min(outputHeight, 4 * tileRows.upperBound)
        inputRows = max(0, outputRows.lowerBound - padding)..<min(height, 4 * tileRows.upperBound - padding + 2)
    }

    var tiles: Int { endTile - firstTile }
}
