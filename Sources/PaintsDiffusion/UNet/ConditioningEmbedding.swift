// PaintsDiffusion/UNet/ConditioningEmbedding: `controlnet_cond_embedding`, the small convolutional encoder that turns
// an image-space condition (a ControlNet's hint, SDRO's blueprint) into a feature map the size of conv_in's output.
// Matches: diffusers ControlNetConditioningEmbedding (models/controlnets/controlnet.py), which SDRO's
// unet_2d_dobule_condition.py carries unchanged: conv_in, then pairs of a size-keeping and a stride-2 3x3 convolution,
// SiLU after each, then conv_out (no activation).
import PaintsTensor

public struct ConditioningEmbedding: Sendable {
    let convIn: Conv2d
    /// Even indices keep the size, odd ones halve it.
    let blocks: [Conv2d]
    let convOut: Conv2d

    /// Channels of the condition image (3 for RGB).
    public var inChannels: Int { convIn.inChannels }
    /// Channels of the embedding (conv_in's output channels of the UNet it feeds).
    public var outChannels: Int { convOut.outChannels }
    /// How many times smaller the embedding is than the condition (8 for Stable Diffusion): 2 per stride-2 block.
    public var downscale: Int { 1 << (blocks.count / 2) }

    /// Reads `conv_in`, `blocks.N` (as many as there are) and `conv_out` from `w` (already scoped to
    /// `controlnet_cond_embedding`).
    public init(_ w: WeightStore) throws(ModelError) {
        convIn = try Conv2d(w.scoped("conv_in"))
        var blocks: [Conv2d] = []
        while w.contains("blocks.\(blocks.count).weight") {
            try require(blocks.count < 64, "controlnet_cond_embedding has too many blocks")
            blocks.append(try Conv2d(w.scoped("blocks.\(blocks.count)"), stride: blocks.count % 2 == 1 ? 2 : 1, padding: 1))
        }
        self.blocks = blocks
        convOut = try Conv2d(w.scoped("conv_out"))
    }

    /// Checks the convolutions chain as the forward pass runs them, from `conditioningChannels` (when the config says)
    /// to `outputChannels`, and against the config's `conditioning_embedding_out_channels` (`widths`) when given; a
    /// file whose weights do not chain fails here with a typed error rather than trapping later. `name` prefixes the
    /// messages (`controlnet_cond_embedding`).
    public func check(outputChannels: Int, conditioningChannels: Int? = nil, widths: [Int]? = nil,
                      name e: String = "controlnet_cond_embedding") throws(ModelError) {
        if let conditioningChannels {
            try require(convIn.inChannels == conditioningChannels, "\(e).conv_in: takes \(convIn.inChannels) channels, config says \(conditioningChannels)")
        }
        try convIn.requireSameSize(from: convIn.inChannels, "\(e).conv_in")
        var c = convIn.outChannels
        var made = [c]
        try require(blocks.count % 2 == 0, "\(e): \(blocks.count) blocks, expected pairs")
        for (k, block) in blocks.enumerated() {
            if k % 2 == 0 {
                try block.requireSameSize(from: c, "\(e).blocks.\(k)")
                try require(block.outChannels == c, "\(e).blocks.\(k): \(c) channels in, \(block.outChannels) out")
            } else {
                try require(block.weight.shape[2] == 3 && block.weight.shape[3] == 3 && block.inChannels == c,
                            "\(e).blocks.\(k): expected a 3x3 convolution from \(c) channels, got \(block.weight.shape)")
                c = block.outChannels
                made.append(c)
            }
        }
        if let widths {
            try require(widths == made, "\(e): the weights make widths \(made), conditioning_embedding_out_channels says \(widths)")
        }
        try convOut.requireSameSize(from: c, "\(e).conv_out")
        try require(convOut.outChannels == outputChannels, "\(e).conv_out: \(convOut.outChannels) outputs, conv_in makes \(outputChannels)")
    }

    /// The embedding of `condition` [N, inChannels, H, W] with H and W multiples of `downscale`:
    /// [N, outChannels, H / downscale, W / downscale]. Stops at a cancellation point first.
    public func callAsFunction(_ condition: Tensor) throws(ModelError) -> Tensor {
        guard condition.rank == 4, condition.shape.allSatisfy({ $0 >= 1 }), condition.shape[1] == inChannels,
              condition.shape[2] % downscale == 0, condition.shape[3] % downscale == 0 else {
            throw .tensor(.shapeMismatch(operation: "controlnet_cond_embedding", shapes: [condition.shape]))
        }
        try cancellationPoint()
        var h = try convIn(condition).silu()
        for block in blocks { h = try block(h).silu() }
        return try convOut(h)
    }
}
