// PaintsTensor/Tensor+Conv: 2-D convolution, on oneDNN (OneDNN) or as im2col + sgemm tiled by output rows so no column
// buffer exceeds a bound.

extension Tensor {
    /// Largest im2col buffer, in floats (64 MiB); a 512x512 VAE convolution would need 2.3 GB untiled.
    public static let maxColumnFloats = 16 << 20
    /// Most work oneDNN does in one call, in FLOPs (a few tens of milliseconds): larger convolutions run in bands of
    /// output rows, and cancellation is polled between them (a 512x512 VAE convolution is 77 GFLOP).
    public static let maxBandFLOPs = 4e9
    /// Another band size for this task's convolutions (tests make bands of one row).
    @TaskLocal public static var bandFLOPsOverride: Double?

    /// torch.nn.functional.conv2d with groups = 1 and dilation = 1.
    /// - Parameters: self [N, C, H, W]; weight [O, C, KH, KW]; bias [O].
    /// - Returns: [N, O, (H + 2p - KH)/s + 1, (W + 2p - KW)/s + 1].
    public func conv2d(weight: Weight, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws(TensorError) -> Tensor {
        let flops = rank == 4 && weight.rank == 4 ? 2 * Double(shape[0] * weight.count) * Double(shape[2] * shape[3]) / Double(stride * stride) : 0
        return try KernelProfile.measure(flops: flops) { () throws(TensorError) -> (Tensor, KernelProfile.Part) in
            try convolved(weight: weight, bias: bias, stride: stride, padding: padding)
        }
    }

    /// The convolution, and the path it took (for the profile).
    private func convolved(weight: Weight, bias: Tensor?, stride: Int, padding: Int) throws(TensorError) -> (Tensor, KernelProfile.Part) {
        guard rank == 4, weight.rank == 4, weight.shape[1] == shape[1], bias == nil || bias!.shape == [weight.shape[0]] else {
            throw .shapeMismatch(operation: "conv2d", shapes: [shape, weight.shape, bias?.shape ?? []])
        }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        guard oh > 0, ow > 0 else { throw .shapeMismatch(operation: "conv2d", shapes: [shape, weight.shape]) }
        if ComputeCancellation.isRequested { throw .cancelled }
        let backend = OneDNN.backend, bf16 = OneDNN.precision == .bf16
        // Winograd runs in float32 under bf16 too: faster than bf16's direct convolutions here, and exact to float32's.
        if backend != .openblas, kh == 3, kw == 3, stride == 1, padding <= 1,
           let out = try convolvedByWinograd(weight: weight, bias: bias, padding: padding) {
            return (out, .winograd)
        }
        if bf16 || backend == .onednn || backend == .mixed && n * oh * ow >= (OneDNN.mixedMinimumPixelsOverride ?? OneDNN.mixedMinimumPixels),
           let out = try convolvedOnOneDNN(weight: weight, bias: bias, stride: stride, padding: padding, bf16: bf16) {
            return (out, .convolution)
        }
        let k = c * kh * kw
        let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0
        if n > 1, !pointwise, oh * ow < Self.batchedImagesBelowPixels, n * k * oh * ow <= Self.maxColumnFloats {
            return (convolvedAsOneProduct(weight: weight, bias: bias, stride: stride, padding: padding, outHeight: oh, outWidth: ow), .im2col)
        }
        var out = Tensor(zeros: [n, o, oh, ow])
        let rowsPerTile = max(1, min(oh, Self.maxColumnFloats / max(1, k * ow)))
        if let bias { out.fillChannels(with: bias) }
        let beta: Float = bias == nil ? 0 : 1
        // A full-size VAE convolution takes seconds: cancellation is polled per tile of output rows.
        var cancelled = false
        weight.withFloats { wt in
            data.withUnsafeBufferPointer { x in
                out.data.withUnsafeMutableBufferPointer { y in
                    for b in 0..<n where !cancelled {
                        let input = x.baseAddress! + b * c * h * w
                        let output = y.baseAddress! + b * o * oh * ow
                        if pointwise {
                            BLAS.gemm(m: o, n: h * w, k: c, a: wt, lda: c, b: input, ldb: h * w, beta: beta, c: output, ldc: h * w)
                            continue
                        }
                        // The column buffer is reused across calls (its pages stay resident).
                        ScratchBuffers.shared.with(count: k * rowsPerTile * ow) { col in
                            var y0 = 0
                            while y0 < oh {
                                if ComputeCancellation.isRequested {
                                    cancelled = true
                                    return
                                }
                                let rows = min(rowsPerTile, oh - y0)
                                let tile = rows * ow
                                Self.im2col(input, channels: c, height: h, width: w, kh: kh, kw: kw, stride: stride,
                                            padding: padding, outWidth: ow, rows: y0..<(y0 + rows), into: col)
                                BLAS.gemm(m: o, n: tile, k: k, a: wt, lda: k, b: col, ldb: tile, beta: beta,
                                          c: output + y0 * ow, ldc: oh * ow)
                                y0 += rows
                            }
                        }
                    }
                }
            }
        }
        if cancelled { throw .cancelled }
        return (out, pointwise ? .pointwise : .im2col)
    }

    /// The convolution on oneDNN's fastest kernel (brgconv on AVX-512, jit:avx2 on AVX2), which wants channels-last
    /// activations and blocked weights: the input is transposed to [N, H, W, C], the (widened) weights reordered once
    /// per call, and the output transposed back. Convolutions above `maxBandFLOPs` per image run in bands of output
    /// rows, each band's input rows transposed out and its output rows back (a band pads only the image ends it
    /// touches), cancellation polled between them. With `bf16` the channels-last input and the weights are rounded to
    /// bfloat16 (the weights by the reorder) and the products summed in float32.
    /// nil when oneDNN could not run it.
    private func convolvedOnOneDNN(weight: Weight, bias: Tensor?, stride: Int, padding: Int, bf16: Bool) throws(TensorError) -> Tensor? {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        let flopsPerRow = 2 * Double(o * ow) * Double(c * kh * kw)
        let rowsPerBand = max(1, min(oh, Int((Self.bandFLOPsOverride ?? Self.maxBandFLOPs) / flopsPerRow)))
        // The band of output rows y0..<y0+rows: its input rows inside the image, and the padding rows it needs; all
        // rows of every image at once when one band holds an image.
        func band(_ y0: Int, _ rows: Int) -> (shape: OneDNN.ConvolutionShape, firstRow: Int) {
            if rows == oh {
                return (OneDNN.ConvolutionShape(n: n, c: c, h: h, w: w, o: o, kh: kh, kw: kw, stride: stride, paddingTop: padding,
                                                paddingBottom: padding, paddingW: padding, bias: bias != nil, bf16: bf16), 0)
            }
            let top = y0 * stride - padding, height = (rows - 1) * stride + kh
            let padTop = max(0, -top), padBottom = max(0, top + height - h)
            return (OneDNN.ConvolutionShape(n: 1, c: c, h: height - padTop - padBottom, w: w, o: o, kh: kh, kw: kw, stride: stride,
                                            paddingTop: padTop, paddingBottom: padBottom, paddingW: padding, bias: bias != nil,
                                            bf16: bf16),
                    top + padTop)
        }
        guard let first = OneDNN.convolution(band(0, rowsPerBand).shape) else { return nil }
        var out = Tensor(zeros: [n, o, oh, ow])
        var cancelled = false
        let whole = rowsPerBand == oh
        let inputFloats = whole ? count : c * ((rowsPerBand - 1) * stride + kh) * w
        let outputFloats = whole ? out.count : o * rowsPerBand * ow
        // The channels-last copies live in reused buffers (their pages stay resident between calls), a band's worth when
        // banded.
        let done = data.withUnsafeBufferPointer { xb in out.data.withUnsafeMutableBufferPointer { yb in
            let (x, y) = (xb.baseAddress!, yb.baseAddress!)
            return ScratchBuffers.shared.with(count: inputFloats) { input in ScratchBuffers.shared.with(count: outputFloats) { output in
            ScratchBuffers.shared.with(count: bf16 ? (inputFloats + 1) / 2 : 1) { halves in
                // The source as the primitive reads it: the channels-last floats, or their bfloat16 rounding.
                let halfPointer = UnsafeMutableRawPointer(halves).assumingMemoryBound(to: UInt16.self)
                func source(_ floats: Int) -> UnsafeRawPointer {
                    guard bf16 else { return UnsafeRawPointer(input) }
                    VectorMath.narrow(input, toBFloat16: halfPointer, count: floats)
                    return UnsafeRawPointer(halfPointer)
                }
                return weight.withFloats { plain in ScratchBuffers.shared.with(count: max(1, first.weightFloats)) { reordered in
                    guard let kernelWeights = OneDNN.kernelWeights(of: first, plain: plain, target: reordered) else { return false }
                    return withBiasPointer(bias) { b in
                        if whole {
                            Self.transposePlanes(x, into: input, batch: n, rows: c, columns: h * w)
                            guard OneDNN.convolve(first, source: source(count), weights: kernelWeights, bias: b, destination: output)
                            else { return false }
                            Self.transposePlanes(output, into: y, batch: n, rows: oh * ow, columns: o)
                            return true
                        }
                        return Self.forEachBand(images: n, rows: oh, perBand: rowsPerBand, cancelled: &cancelled) { image, y0, rows in
                            let (shape, firstRow) = band(y0, rows)
                            guard let primitive = OneDNN.convolution(shape) else { return false }
                            // The band's input rows of every channel, channels last; its output back into the planes.
                            Self.transpose(x + image * c * h * w + firstRow * w, stride: h * w, into: input, stride: c,
                                           rows: c, columns: shape.h * w)
                            guard OneDNN.convolve(primitive, source: source(c * shape.h * w), weights: kernelWeights, bias: b,
                                                  destination: output)
                            else { return false }
                            Self.transpose(output, stride: o, into: y + image * o * oh * ow + y0 * ow, stride: oh * ow,
                                           rows: rows * ow, columns: o)
                            return true
                        }
                    }
                } }
            } } }
        } }
        if cancelled { throw .cancelled }
        return done ? out : nil
    }

    /// Calls `body(image, firstRow, rows)` for each band of `perBand` output rows (fewer for the last) of each image,
    /// polling cancellation before each; false as soon as a body returns false or cancellation was asked for (then
    /// `cancelled` is set).
    static func forEachBand(images: Int, rows: Int, perBand: Int, cancelled: inout Bool, _ body: (Int, Int, Int) -> Bool) -> Bool {
        for image in 0..<images {
            var y0 = 0
            while y0 < rows {
                if ComputeCancellation.isRequested {
                    cancelled = true
                    return false
                }
                let count = min(perBand, rows - y0)
                guard body(image, y0, count) else { return false }
                y0 += count
            }
        }
        return true
    }

    /// Feature maps of fewer output pixels than this (the UNet's 16x16 and 8x8 levels) run all images of a batch as one
    /// OpenBLAS product: a single image's product is too narrow for its kernels. Measured on the Zen 4 machine at batch
    /// 2, 1280 channels, best of 8 alternating: 8x8 3x3 24-25 ms against 28-29 ms one image at a time, 16x16 1-4%
    /// faster; pointwise convolutions were 5-8% slower so (the copy of their input costs more than it saves), and stay
    /// one image at a time.
    static let batchedImagesBelowPixels = 1024

    /// The OpenBLAS convolution of every image in one product: the columns of image b at columns b*P... of one buffer
    /// [C*KH*KW][N*P], the product [O][N*P] in a reused buffer, then each image's planes copied out.
    private func convolvedAsOneProduct(weight: Weight, bias: Tensor?, stride: Int, padding: Int, outHeight oh: Int,
                                       outWidth ow: Int) -> Tensor {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (k, p) = (c * kh * kw, oh * ow)
        var out = Tensor(zeros: [n, o, oh, ow])
        weight.withFloats { wt in data.withUnsafeBufferPointer { x in out.data.withUnsafeMutableBufferPointer { y in
            ScratchBuffers.shared.with(count: k * n * p) { col in ScratchBuffers.shared.with(count: o * n * p) { product in
                for b in 0..<n {
                    let input = x.baseAddress! + b * c * h * w
                    Self.im2col(input, channels: c, height: h, width: w, kh: kh, kw: kw, stride: stride, padding: padding,
                                outWidth: ow, rows: 0..<oh, into: col + b * p, columnStride: n * p)
                }
                if let bias {
                    for ch in 0..<o { (product + ch * n * p).update(repeating: bias.data[ch], count: n * p) }
                }
                BLAS.gemm(m: o, n: n * p, k: k, a: wt, lda: k, b: col, ldb: n * p, beta: bias == nil ? 0 : 1, c: product, ldc: n * p)
                for b in 0..<n {
                    for ch in 0..<o { (y.baseAddress! + (b * o + ch) * p).update(from: product + ch * n * p + b * p, count: p) }
                }
            } }
        } } }
        return out
    }

    func withBiasPointer<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.data.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// A float32 kernel held in memory (tests, small models).
    public func conv2d(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws(TensorError) -> Tensor {
        try conv2d(weight: Weight(weight), bias: bias, stride: stride, padding: padding)
    }

    /// Sets every element of channel `ch` (dimension 1) to `values[ch]`.
    mutating func fillChannels(with values: Tensor) {
        let (n, c) = (shape[0], shape[1])
        let plane = count / (n * c)
        data.withUnsafeMutableBufferPointer { y in
            let base = UnsafeSendablePointer(y.baseAddress!)
            values.data.withUnsafeBufferPointer { v in
                let bias = UnsafeSendablePointer(v.baseAddress!)
                Parallel.forEach(n * c) { i in (base.pointer + i * plane).update(repeating: bias.pointer[i % c], count: plane) }
            }
        }
    }

    /// Columns [C*KH*KW, rows*OW] for output rows `rows` of one image: each (channel, ky, kx) row is the input shifted
    /// by (ky, kx), copied a line at a time with the padding written as zeros; rows `columnStride` floats apart
    /// (default rows*OW; wider when several images share the buffer).
    static func im2col(_ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int, kh: Int, kw: Int, stride: Int,
                       padding: Int, outWidth: Int, rows: Range<Int>, into col: UnsafeMutablePointer<Float>,
                       columnStride: Int? = nil) {
        let tile = columnStride ?? rows.count * outWidth
        let target = UnsafeSendablePointer(col), source = UnsafeSendablePointer(x)
        Parallel.forEach(channels) { ch in
            let plane = UnsafePointer(source.pointer + ch * height * width)
            for ky in 0..<kh {
                for kx in 0..<kw {
                    // Output columns whose input column ox * stride - padding + kx lies inside the image.
                    let first = min(outWidth, max(0, (padding - kx + stride - 1) / stride))
                    let last = width - 1 + padding - kx
                    let end = last < 0 ? first : max(first, min(outWidth, last / stride + 1))
                    var row = target.pointer + ((ch * kh + ky) * kw + kx) * tile
                    for oy in rows {
                        let iy = oy * stride - padding + ky
                        if iy < 0 || iy >= height {
                            row.update(repeating: 0, count: outWidth)
                        } else {
                            let line = plane + iy * width + kx - padding
                            row.update(repeating: 0, count: first)
                            if stride == 1 {
                                (row + first).update(from: line + first, count: end - first)
                            } else {
                                for ox in first..<end { row[ox] = line[ox * stride] }
                            }
                            (row + end).update(repeating: 0, count: outWidth - end)
                        }
                        row += outWidth
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// Depthwise convolution (groups = channels, stride 1): x [N, C, H, W], weight [C, 1, k, k], zero padding on
    /// every side; one plane per task across cores (ConvNeXt's 7x7 mixing).
    public func depthwiseConv2d(weight: Tensor, bias: Tensor?, padding: Int) throws(TensorError) -> Tensor {
        guard rank == 4, weight.rank == 4, weight.shape[0] == shape[1], weight.shape[1] == 1, weight.shape[2] == weight.shape[3],
              bias.map({ $0.shape == [shape[1]] }) ?? true
        else { throw .shapeMismatch(operation: "depthwise_conv2d", shapes: [shape, weight.shape]) }
        let (n, c, h, w, k) = (shape[0], shape[1], shape[2], shape[3], weight.shape[2])
        let (oh, ow) = (h + 2 * padding - k + 1, w + 2 * padding - k + 1)
        guard oh > 0, ow > 0 else { throw .shapeMismatch(operation: "depthwise_conv2d", shapes: [shape, weight.shape]) }
        var out = Tensor(zeros: [n, c, oh, ow])
        let biasValues = bias?.data
        data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                out.data.withUnsafeMutableBufferPointer { op in
                    let (x, wt, o) = (UnsafeSendablePointer(xp.baseAddress!), UnsafeSendablePointer(wp.baseAddress!),
                                      UnsafeSendablePointer(op.baseAddress!))
                    Parallel.forEach(n * c) { plane in
                        let channel = plane % c
                        let src = x.pointer + plane * h * w, dst = o.pointer + plane * oh * ow, kernel = wt.pointer + channel * k * k
                        let b = biasValues?[channel] ?? 0
                        for i in 0..<(oh * ow) { dst[i] = b }
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let weight = kernel[ky * k + kx]
                                let x0 = max(0, padding - kx), x1 = min(ow, w + padding - kx)
                                guard x0 < x1 else { continue }
                                for y in 0..<oh {
                                    let sy = y + ky - padding
                                    guard sy >= 0, sy < h else { continue }
                                    let row = src + sy * w + kx - padding, target = dst + y * ow
                                    for xx in x0..<x1 { target[xx] += weight * row[xx] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
