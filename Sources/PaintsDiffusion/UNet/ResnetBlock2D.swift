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
        // The shapes the forward pass relies on (the residual sum and the per-channel time bias index by them).
        let name = w.prefix
        try require(norm1.channels == conv1.inChannels, "\(name)norm1: \(norm1.channels) channels before conv1 of \(conv1.inChannels)")
        try conv1.requireSameSize(from: conv1.inChannels, "\(name)conv1")
        try require(norm2.channels == conv1.outChannels, "\(name)norm2: \(norm2.channels) channels after conv1 of \(conv1.outChannels)")
        try conv2.requireSameSize(from: conv1.outChannels, "\(name)conv2")
        if let timeProjection {
            try require(timeProjection.outFeatures == conv1.outChannels,
                        "\(name)time_emb_proj: \(timeProjection.outFeatures) outputs for \(conv1.outChannels) channels")
        }
        if let shortcut {
            try shortcut.requireSameSize(from: conv1.inChannels, "\(name)conv_shortcut")
            try require(shortcut.outChannels == conv2.outChannels, "\(name)conv_shortcut: \(shortcut.outChannels) outputs, conv2 \(conv2.outChannels)")
        } else {
            try require(conv2.outChannels == conv1.inChannels,
                        "\(name): \(conv1.inChannels) channels in and \(conv2.outChannels) out need a conv_shortcut")
        }
    }

    public var inChannels: Int { conv1.inChannels }
    public var outChannels: Int { conv2.outChannels }

    /// - Parameters: x [N, C, H, W]; timeEmbedding [N, T] already passed through SiLU (shared by every block).
    /// With a shortcut convolution, an `x` passed with its last use (`consume x`) is normalized in its own storage; the
    /// sum is made in conv2's output. Passed with its last use, at most three of the block's tensors are alive at once.
    public func callAsFunction(_ x: consuming Tensor, timeEmbedding: Tensor?) throws(ModelError) -> Tensor {
        try cancellationPoint()
        let residual: Tensor
        if let shortcut { residual = try shortcut(x) } else { residual = copy x }
        var h = try conv1(try norm1(consume x, silu: true))                // [N, O, H, W]
        if let timeProjection, let timeEmbedding {
            h.addPlaneBias(try timeProjection(timeEmbedding))               // [N, O] per plane
        }
        h = try conv2(try norm2(consume h, silu: true))
        h += residual
        return h
    }
}
