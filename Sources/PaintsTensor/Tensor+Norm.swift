// PaintsTensor/Tensor+Norm: group normalization (optionally fused with SiLU) and layer normalization.
import CTensorKernels
import Foundation

extension Tensor {
    /// torch.nn.functional.group_norm on [N, C, ...], then SiLU when `silu`. Statistics in double. Consuming: a tensor
    /// passed with its last use (`consume x`) is normalized in its own storage, without a second copy in memory.
    public consuming func groupNorm(groups: Int, weight: Tensor, bias: Tensor, epsilon: Float, silu: Bool = false) throws(TensorError) -> Tensor {
        guard rank >= 2, shape[1] % groups == 0, weight.shape == [shape[1]], bias.shape == [shape[1]] else {
            throw .shapeMismatch(operation: "group_norm", shapes: [shape, weight.shape, bias.shape])
        }
        let (n, c) = (shape[0], shape[1])
        let spatial = count / (n * c)
        let perGroup = c / groups * spatial
        var out = consume self
        KernelProfile.measure(.normalization) {
            out.data.withUnsafeMutableBufferPointer { o in
                let base = UnsafeSendablePointer(o.baseAddress!)
                Parallel.forEach(n * groups) { g in
                    let start = base.pointer + g * perGroup
                    let (sum, squares) = VectorMath.sumAndSquares(start, count: perGroup)
                    let mean = sum / Double(perGroup)
                    let variance = max(0, squares / Double(perGroup) - mean * mean)
                    let inv = Float(1 / (variance + Double(epsilon)).squareRoot())
                    let m = Float(mean)
                    let firstChannel = (g % groups) * (c / groups)
                    for cc in 0..<(c / groups) {
                        let scale = weight.data[firstChannel + cc] * inv
                        let shift = bias.data[firstChannel + cc] - m * scale
                        let row = start + cc * spatial
                        VectorMath.scaleShift(row, count: spatial, scale: scale, shift: shift)
                        if silu { VectorMath.sigmoidGate(row, count: spatial, k: 1) }
                    }
                }
            }
        }
        return out
    }

    /// torch.nn.functional.layer_norm over the last dimension.
    public func layerNorm(weight: Tensor, bias: Tensor, epsilon: Float) throws(TensorError) -> Tensor {
        guard let d = shape.last, weight.shape == [d], bias.shape == [d] else {
            throw .shapeMismatch(operation: "layer_norm", shapes: [shape, weight.shape, bias.shape])
        }
        var out = Tensor(unfilled: shape)
        KernelProfile.measure(.normalization) {
            data.withUnsafeBufferPointer { x in out.data.withUnsafeMutableBufferPointer { o in
                weight.data.withUnsafeBufferPointer { w in bias.data.withUnsafeBufferPointer { b in
                    let (source, target) = (UnsafeSendablePointer(x.baseAddress!), UnsafeSendablePointer(o.baseAddress!))
                    let (ws, bs) = (UnsafeSendablePointer(w.baseAddress!), UnsafeSendablePointer(b.baseAddress!))
                    // Rows in chunks of at least 16K values: a text encoder's 77 rows in two.
                    Parallel.forEachChunk(count / d, minimumChunk: max(1, 16_384 / max(1, d))) { rows in
                        pk_layer_norm(source.pointer + rows.lowerBound * d, target.pointer + rows.lowerBound * d, rows.count, d,
                                      ws.pointer, bs.pointer, epsilon)
                    }
                } }
            } }
        }
        return out
    }
}
