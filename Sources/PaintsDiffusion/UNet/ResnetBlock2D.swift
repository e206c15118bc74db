// PaintsDiffusion/UNet/ResnetBlock2D: the residual block of the UNet and VAE. Matches: diffusers ResnetBlock2D
// (resnet_time_scale_shift="default", output_scale_factor=1).
import PaintsTensor

public struct ResnetBlock2D: Sendable {
    let norm1: GroupNorm
    let conv1: Conv2d
    /// Projects the time embedding to a per-channel bias (absent in the VAE).
    let timeProjection: Linear?
    let norm2: GroupNorm
    let conv2: Conv2d
    let shortcut: Conv2d?

    public init(_ w: WeightStore, groups: Int, epsilon: Float) throws(ModelError) {
        norm1 = try GroupNorm(w.scoped("norm1"), groups: groups, epsilon: epsilon)
        conv1 = try Conv2d(w.scoped("conv1"))
        timeProjection = w.contains("time_emb_proj.weight") ? try Linear(w.scoped("time_emb_proj")) : nil
        norm2 = try GroupNorm(w.scoped("norm2"), groups: groups, epsilon: epsilon)
        conv2 = try Conv2d(w.scoped("conv2"))
        shortcut = w.contains("conv_shortcut.weight") ? try Conv2d(w.scoped("conv_shortcut")) : nil
    }

    public var outChannels: Int { conv2.outChannels }

    /// - Parameters: x [N, C, H, W]; timeEmbedding [N, T] already passed through SiLU (shared by every block).
    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor?) throws(ModelError) -> Tensor {
        try cancellationPoint()
        var h = try conv1(try norm1(x, silu: true))                       // [N, O, H, W]
        if let timeProjection, let timeEmbedding {
            let bias = try timeProjection(timeEmbedding)                   // [N, O]
            let plane = h.shape[2] * h.shape[3], channels = h.shape[1]
            for n in 0..<h.shape[0] {
                for c in 0..<channels {
                    let v = bias.data[n * channels + c], start = (n * channels + c) * plane
                    for i in start..<(start + plane) { h.data[i] += v }
                }
            }
        }
        h = try conv2(try norm2(h, silu: true))
        let residual = try shortcut.map { s throws(ModelError) in try s(x) } ?? x
        return h + residual
    }
}
