// PaintsTensor/Tensor+Conv: 2-D convolution as im2col + sgemm, tiled by output rows so no column buffer exceeds a bound.

extension Tensor {
    /// Largest im2col buffer, in floats (64 MiB); a 512x512 VAE convolution would need 2.3 GB untiled.
    public static let maxColumnFloats = 16 << 20

    /// torch.nn.functional.conv2d with groups = 1 and dilation = 1.
    /// - Parameters: self [N, C, H, W]; weight [O, C, KH, KW]; bias [O].
    /// - Returns: [N, O, (H + 2p - KH)/s + 1, (W + 2p - KW)/s + 1].
    public func conv2d(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws(TensorError) -> Tensor {
        guard rank == 4, weight.rank == 4, weight.shape[1] == shape[1], bias == nil || bias!.shape == [weight.shape[0]] else {
            throw .shapeMismatch(operation: "conv2d", shapes: [shape, weight.shape, bias?.shape ?? []])
        }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        guard oh > 0, ow > 0 else { throw .shapeMismatch(operation: "conv2d", shapes: [shape, weight.shape]) }
        var out = Tensor(zeros: [n, o, oh, ow])
        let k = c * kh * kw
        let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0
        let rowsPerTile = max(1, min(oh, Self.maxColumnFloats / max(1, k * ow)))
        var columns = [Float](repeating: 0, count: pointwise ? 0 : k * rowsPerTile * ow)
        data.withUnsafeBufferPointer { x in
            weight.data.withUnsafeBufferPointer { wt in
                out.data.withUnsafeMutableBufferPointer { y in
                    columns.withUnsafeMutableBufferPointer { col in
                        for b in 0..<n {
                            let input = x.baseAddress! + b * c * h * w
                            let output = y.baseAddress! + b * o * oh * ow
                            if let bias {
                                for oc in 0..<o {
                                    let v = bias.data[oc]
                                    for i in 0..<(oh * ow) { output[oc * oh * ow + i] = v }
                                }
                            }
                            let beta: Float = bias == nil ? 0 : 1
                            if pointwise {
                                BLAS.gemm(m: o, n: h * w, k: c, a: wt.baseAddress!, lda: c, b: input, ldb: h * w, beta: beta,
                                          c: output, ldc: h * w)
                                continue
                            }
                            var y0 = 0
                            while y0 < oh {
                                let rows = min(rowsPerTile, oh - y0)
                                let tile = rows * ow
                                Self.im2col(input, channels: c, height: h, width: w, kh: kh, kw: kw, stride: stride,
                                            padding: padding, outWidth: ow, rows: y0..<(y0 + rows), into: col.baseAddress!)
                                BLAS.gemm(m: o, n: tile, k: k, a: wt.baseAddress!, lda: k, b: col.baseAddress!, ldb: tile,
                                          beta: beta, c: output + y0 * ow, ldc: oh * ow)
                                y0 += rows
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Columns [C*KH*KW, rows*OW] for output rows `rows` of one image.
    static func im2col(_ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int, kh: Int, kw: Int, stride: Int,
                       padding: Int, outWidth: Int, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let tile = rows.count * outWidth
        let target = UnsafeSendablePointer(col), source = UnsafeSendablePointer(x)
        Parallel.forEach(channels) { ch in
            let plane = source.pointer + ch * height * width
            for ky in 0..<kh {
                for kx in 0..<kw {
                    let row = target.pointer + ((ch * kh + ky) * kw + kx) * tile
                    var i = 0
                    for oy in rows {
                        let iy = oy * stride - padding + ky
                        if iy < 0 || iy >= height {
                            for _ in 0..<outWidth { row[i] = 0; i += 1 }
                            continue
                        }
                        let line = plane + iy * width
                        for ox in 0..<outWidth {
                            let ix = ox * stride - padding + kx
                            row[i] = ix >= 0 && ix < width ? line[ix] : 0
                            i += 1
                        }
                    }
                }
            }
        }
    }
}

