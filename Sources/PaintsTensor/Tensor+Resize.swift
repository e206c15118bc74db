// PaintsTensor/Tensor+Resize: nearest-neighbour 2x upsampling, cropping and pasting of NCHW feature maps.
import Foundation

extension Tensor {
    /// torch.nn.functional.interpolate(scale_factor=2, mode="nearest") on [N, C, H, W].
    public func upsampledNearest2x() -> Tensor {
        precondition(rank == 4, "upsampledNearest2x takes NCHW")
        return KernelProfile.measure(.layout) { upsampledUnprofiled() }
    }

    private func upsampledUnprofiled() -> Tensor {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        var out = Tensor(zeros: [shape[0], shape[1], 2 * h, 2 * w])
        for p in 0..<planes {
            for y in 0..<(2 * h) {
                let src = p * h * w + (y / 2) * w, dst = p * 4 * h * w + y * 2 * w
                for x in 0..<(2 * w) { out.data[dst + x] = data[src + x / 2] }
            }
        }
        return out
    }

    /// The window rows `y..<y+height`, columns `x..<x+width` of every plane of [N, C, H, W], clipped to the map.
    public func cropped(y: Int, x: Int, height: Int, width: Int) -> Tensor {
        precondition(rank == 4 && y >= 0 && x >= 0, "cropped takes NCHW and a window inside it")
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let rows = max(0, min(height, h - y)), columns = max(0, min(width, w - x))
        var out = Tensor(zeros: [shape[0], shape[1], rows, columns])
        for p in 0..<planes {
            for r in 0..<rows {
                let src = p * h * w + (y + r) * w + x
                out.data.replaceSubrange((p * rows + r) * columns..<((p * rows + r) * columns + columns), with: data[src..<(src + columns)])
            }
        }
        return out
    }

    /// Writes `patch` [N, C, h, w] into this map with its top-left corner at (y, x); it must fit.
    public mutating func paste(_ patch: Tensor, y: Int, x: Int) {
        precondition(rank == 4 && patch.rank == 4 && patch.shape[0...1] == shape[0...1] && y + patch.shape[2] <= shape[2]
                     && x + patch.shape[3] <= shape[3], "paste: \(patch.shape) at (\(y), \(x)) does not fit \(shape)")
        let (planes, h, w, ph, pw) = (shape[0] * shape[1], shape[2], shape[3], patch.shape[2], patch.shape[3])
        for p in 0..<planes {
            for r in 0..<ph {
                let dst = p * h * w + (y + r) * w + x
                data.replaceSubrange(dst..<(dst + pw), with: patch.data[((p * ph + r) * pw)..<((p * ph + r) * pw + pw)])
            }
        }
    }
}

/// Sinusoidal timestep embeddings (diffusers `get_timestep_embedding`).
public enum TimestepEmbedding {
    /// [N, dim]: sin and cos of t * exp(-ln(maxPeriod) * i / (half - shift)), cos first when `flipSinToCos`.
    public static func sinusoidal(_ timesteps: [Float], dim: Int, flipSinToCos: Bool, downscaleFreqShift: Float,
                                  scale: Float = 1, maxPeriod: Float = 10_000) -> Tensor {
        let half = dim / 2
        // Rounded as torch does: float(-ln(maxPeriod)) * i, then / (half - shift), then exp, all in float32.
        let logPeriod = Float(-Foundation.log(Double(maxPeriod)))
        let frequencies = (0..<half).map { i in Foundation.exp(logPeriod * Float(i) / (Float(half) - downscaleFreqShift)) }
        var out = Tensor(zeros: [timesteps.count, dim])
        for (n, t) in timesteps.enumerated() {
            for i in 0..<half {
                let angle = scale * (t * frequencies[i])
                let (s, c) = (Foundation.sin(angle), Foundation.cos(angle))
                out.data[n * dim + i] = flipSinToCos ? c : s
                out.data[n * dim + half + i] = flipSinToCos ? s : c
            }
        }
        return out
    }
}

extension Tensor {
    /// Zero padding on the right and bottom of NCHW maps (torch.nn.functional.pad(x, (0, right, 0, bottom))).
    public func padded(right: Int, bottom: Int) -> Tensor {
        precondition(rank == 4, "padded(right:bottom:) takes NCHW")
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        var out = Tensor(zeros: [shape[0], shape[1], h + bottom, w + right])
        for p in 0..<planes {
            for y in 0..<h {
                let src = (p * h + y) * w, dst = (p * (h + bottom) + y) * (w + right)
                out.data.replaceSubrange(dst..<(dst + w), with: data[src..<(src + w)])
            }
        }
        return out
    }
}
