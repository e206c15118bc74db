// PaintsTensor/Tensor+Conv: 2-D convolution, on oneDNN (OneDNN) or as im2col + sgemm tiled by output rows so no column
// buffer exceeds a bound.

extension Tensor {
    /// Largest im2col buffer, in floats (64 MiB); a 512x512 VAE convolution would need 2.3 GB untiled.
    public static let maxColumnFloats = 16 << 20
    /// Most work oneDNN does in one call, in FLOPs (a few tens of milliseconds): larger convolutions run in bands of
    /// output rows, and cancellation is polled between them (a 512x512 VAE convolution is 77 GFLOP).
    public static let maxBandFLOPs = 4e9

    /// torch.nn.functional.conv2d with groups = 1 and dilation = 1.
    /// - Parameters: self [N, C, H, W]; weight [O, C, KH, KW]; bias [O].
    /// - Returns: [N, O, (H + 2p - KH)/s + 1, (W + 2p - KW)/s + 1].
    public func conv2d(weight: Weight, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws(TensorError) -> Tensor {
        let flops = rank == 4 && weight.rank == 4 ? 2 * Double(shape[0] * weight.count) * Double(shape[2] * shape[3]) / Double(stride * stride) : 0
        return try KernelProfile.measure(.convolution, flops: flops) { () throws(TensorError) -> Tensor in
            try convolved(weight: weight, bias: bias, stride: stride, padding: padding)
        }
    }

    private func convolved(weight: Weight, bias: Tensor?, stride: Int, padding: Int) throws(TensorError) -> Tensor {
        guard rank == 4, weight.rank == 4, weight.shape[1] == shape[1], bias == nil || bias!.shape == [weight.shape[0]] else {
            throw .shapeMismatch(operation: "conv2d", shapes: [shape, weight.shape, bias?.shape ?? []])
        }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        guard oh > 0, ow > 0 else { throw .shapeMismatch(operation: "conv2d", shapes: [shape, weight.shape]) }
        if ComputeCancellation.isRequested { throw .cancelled }
        if OneDNN.backend == .onednn, let out = try convolvedOnOneDNN(weight: weight, bias: bias, stride: stride, padding: padding) {
            return out
        }
        var out = Tensor(zeros: [n, o, oh, ow])
        let k = c * kh * kw
        let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0
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
        return out
    }

    /// The convolution on oneDNN: whole when it is small, else image by image in bands of output rows, each band's
    /// input rows (with the padding rows written as zeros) copied out densely and its output copied back. nil when
    /// oneDNN could not run it.
    private func convolvedOnOneDNN(weight: Weight, bias: Tensor?, stride: Int, padding: Int) throws(TensorError) -> Tensor? {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        let flopsPerRow = 2 * Double(o * ow) * Double(c * kh * kw)
        let rowsPerBand = max(1, min(oh, Int(Self.maxBandFLOPs / flopsPerRow)))
        var out = Tensor(zeros: [n, o, oh, ow])
        var cancelled = false
        let done = weight.withFloats { wt in
            data.withUnsafeBufferPointer { x in
                out.data.withUnsafeMutableBufferPointer { y in
                    withBiasPointer(bias) { b in
                        if rowsPerBand == oh {
                            let whole = OneDNN.ConvolutionShape(n: n, c: c, h: h, w: w, o: o, kh: kh, kw: kw, stride: stride,
                                                                paddingH: padding, paddingW: padding, bias: b != nil)
                            return OneDNN.convolve(whole, source: x.baseAddress!, weights: wt, bias: b, destination: y.baseAddress!)
                        }
                        let bandHeight = (rowsPerBand - 1) * stride + kh
                        return ScratchBuffers.shared.with(count: c * bandHeight * w) { input in
                            ScratchBuffers.shared.with(count: o * rowsPerBand * ow) { output in
                                for image in 0..<n {
                                    var y0 = 0
                                    while y0 < oh {
                                        if ComputeCancellation.isRequested {
                                            cancelled = true
                                            return false
                                        }
                                        let rows = min(rowsPerBand, oh - y0), top = y0 * stride - padding
                                        let height = (rows - 1) * stride + kh
                                        Self.copyRows(x.baseAddress! + image * c * h * w, channels: c, height: h, width: w,
                                                      from: top, count: height, into: input)
                                        let band = OneDNN.ConvolutionShape(n: 1, c: c, h: height, w: w, o: o, kh: kh, kw: kw,
                                                                           stride: stride, paddingH: 0, paddingW: padding, bias: b != nil)
                                        guard OneDNN.convolve(band, source: input, weights: wt, bias: b, destination: output) else { return false }
                                        let target = y.baseAddress! + image * o * oh * ow + y0 * ow
                                        for channel in 0..<o {
                                            (target + channel * oh * ow).update(from: output + channel * rows * ow, count: rows * ow)
                                        }
                                        y0 += rows
                                    }
                                }
                                return true
                            }
                        }
                    }
                }
            }
        }
        if cancelled { throw .cancelled }
        return done ? out : nil
    }

    /// Rows top..<top+count of every channel plane of one [C, H, W] image into a dense [C, count, W] buffer, rows
    /// outside the image as zeros.
    private static func copyRows(_ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int, from top: Int, count: Int,
                                 into band: UnsafeMutablePointer<Float>) {
        let source = UnsafeSendablePointer(x), target = UnsafeSendablePointer(band)
        Parallel.forEach(channels) { ch in
            for r in 0..<count {
                let row = target.pointer + (ch * count + r) * width, iy = top + r
                if iy < 0 || iy >= height {
                    row.update(repeating: 0, count: width)
                } else {
                    row.update(from: source.pointer + (ch * height + iy) * width, count: width)
                }
            }
        }
    }

    private func withBiasPointer<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
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
    /// by (ky, kx), copied a line at a time with the padding written as zeros.
    static func im2col(_ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int, kh: Int, kw: Int, stride: Int,
                       padding: Int, outWidth: Int, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let tile = rows.count * outWidth
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
