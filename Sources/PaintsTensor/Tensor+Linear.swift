// PaintsTensor/Tensor+Linear: fully connected layers (y = x W^T + b) and layout changes between NCHW and tokens.

extension Tensor {
    /// `x` [..., in] times `weight` [out, in] transposed, plus `bias` [out]: [..., out] (torch.nn.functional.linear).
    public func linear(weight: Tensor, bias: Tensor?) throws(TensorError) -> Tensor {
        guard let inFeatures = shape.last, weight.rank == 2, weight.shape[1] == inFeatures,
              bias == nil || bias!.shape == [weight.shape[0]]
        else { throw .shapeMismatch(operation: "linear", shapes: [shape, weight.shape, bias?.shape ?? []]) }
        let outFeatures = weight.shape[0], rows = count / max(1, inFeatures)
        var out = Tensor(zeros: Array(shape.dropLast()) + [outFeatures])
        data.withUnsafeBufferPointer { x in
            weight.data.withUnsafeBufferPointer { w in
                out.data.withUnsafeMutableBufferPointer { y in
                    if let bias {
                        for r in 0..<rows { for o in 0..<outFeatures { y[r * outFeatures + o] = bias.data[o] } }
                    }
                    BLAS.gemm(transposeB: true, m: rows, n: outFeatures, k: inFeatures, a: x.baseAddress!, lda: inFeatures,
                              b: w.baseAddress!, ldb: inFeatures, beta: bias == nil ? 0 : 1, c: y.baseAddress!, ldc: outFeatures)
                }
            }
        }
        return out
    }

    /// [N, C, H, W] to tokens [N, H*W, C].
    public func tokens() -> Tensor {
        precondition(rank == 4, "tokens() takes NCHW")
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
        var out = Tensor(zeros: [n, hw, c])
        for b in 0..<n {
            for ch in 0..<c {
                let src = (b * c + ch) * hw
                for p in 0..<hw { out.data[(b * hw + p) * c + ch] = data[src + p] }
            }
        }
        return out
    }

    /// Tokens [N, H*W, C] back to [N, C, H, W].
    public func image(height: Int, width: Int) -> Tensor {
        precondition(rank == 3 && shape[1] == height * width, "image(height:width:) takes [N, H*W, C]")
        let (n, hw, c) = (shape[0], shape[1], shape[2])
        var out = Tensor(zeros: [n, c, height, width])
        for b in 0..<n {
            for p in 0..<hw {
                let src = (b * hw + p) * c
                for ch in 0..<c { out.data[(b * c + ch) * hw + p] = data[src + ch] }
            }
        }
        return out
    }
}
