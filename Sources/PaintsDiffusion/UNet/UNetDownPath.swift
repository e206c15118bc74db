// PaintsDiffusion/UNet/UNetDownPath: the time embedding, down blocks and mid block that UNet2DConditionModel and
// ControlNetModel share (loading, channel checks and the forward pass), written once.
import PaintsTensor

extension UNet2DConditionModel {
    /// A block's spatial transformer, as the configuration lays it out.
    static func transformer(_ c: UNetConfiguration, _ s: WeightStore, heads: Int) throws(ModelError) -> Transformer2DModel {
        try Transformer2DModel(s, heads: heads, layers: c.transformerLayersPerBlock, groups: c.normGroups,
                               linearProjection: c.useLinearProjection)
    }

    /// `down_blocks.*`: per level, `layers_per_block` resnets (each followed by a transformer in a CrossAttn block)
    /// and a stride-2 downsampler on every level but the last.
    static func loadDownBlocks(_ c: UNetConfiguration, _ w: WeightStore) throws(ModelError) -> [DownBlock] {
        let levels = c.blockOutChannels.count
        var down: [DownBlock] = []
        for (i, type) in c.downBlockTypes.enumerated() {
            let s = w.scoped("down_blocks.\(i)")
            var resnets: [ResnetBlock2D] = [], attentions: [Transformer2DModel] = []
            for j in 0..<c.layersPerBlock {
                resnets.append(try ResnetBlock2D(s.scoped("resnets.\(j)"), groups: c.normGroups, epsilon: c.normEpsilon))
                if type == "CrossAttnDownBlock2D" { attentions.append(try transformer(c, s.scoped("attentions.\(j)"), heads: c.attentionHeads[i])) }
            }
            let downsampler = i < levels - 1 ? try Conv2d(s.scoped("downsamplers.0.conv"), stride: 2, padding: 1) : nil
            down.append(DownBlock(resnets: resnets, attentions: attentions, downsampler: downsampler))
        }
        return down
    }

    /// `mid_block`: resnet, transformer, resnet (UNetMidBlock2DCrossAttn).
    static func loadMidBlock(_ c: UNetConfiguration, _ w: WeightStore) throws(ModelError) -> MidBlock {
        let m = w.scoped("mid_block")
        return MidBlock(resnets: [try ResnetBlock2D(m.scoped("resnets.0"), groups: c.normGroups, epsilon: c.normEpsilon),
                                  try ResnetBlock2D(m.scoped("resnets.1"), groups: c.normGroups, epsilon: c.normEpsilon)],
                        attention: try transformer(c, m.scoped("attentions.0"), heads: c.attentionHeads[c.blockOutChannels.count - 1]))
    }

    /// conv_in keeps the size; the time embedding's linears chain from a sinusoid as wide as conv_in's output.
    static func checkStem(convIn: Conv2d, _ timeLinear1: Linear, _ timeLinear2: Linear) throws(ModelError) {
        try convIn.requireSameSize(from: convIn.inChannels, "conv_in")
        try require(timeLinear1.inFeatures == convIn.outChannels,
                    "time_embedding.linear_1: takes \(timeLinear1.inFeatures) features, the timestep sinusoid has \(convIn.outChannels)")
        try require(timeLinear2.inFeatures == timeLinear1.outFeatures, "time_embedding.linear_2: takes \(timeLinear2.inFeatures), gets \(timeLinear1.outFeatures)")
    }

    /// Checks that resnet `r` takes `channels` and a `time`-wide embedding; returns its output channels.
    static func checkResnet(_ r: ResnetBlock2D, _ name: String, from channels: Int, time: Int) throws(ModelError) -> Int {
        try require(r.inChannels == channels, "\(name): takes \(r.inChannels) channels, gets \(channels)")
        if let projection = r.timeProjection {
            try require(projection.inFeatures == time, "\(name).time_emb_proj: takes \(projection.inFeatures) features, the time embedding has \(time)")
        }
        return r.outChannels
    }

    /// Follows the channels from conv_in's `channels` through the down blocks and the mid block as the forward pass
    /// does; returns the mid block's output channels and the channels of every skip connection (conv_in's first).
    static func checkDownAndMidFlow(_ downBlocks: [DownBlock], _ midBlock: MidBlock, from channels: Int,
                                    time: Int) throws(ModelError) -> (channels: Int, skips: [Int]) {
        func attention(_ t: Transformer2DModel, _ name: String, channels: Int) throws(ModelError) {
            try require(t.channels == channels, "\(name): takes \(t.channels) channels, gets \(channels)")
        }
        var c = channels
        var skips = [c]
        for (i, block) in downBlocks.enumerated() {
            for (j, r) in block.resnets.enumerated() {
                c = try checkResnet(r, "down_blocks.\(i).resnets.\(j)", from: c, time: time)
                if j < block.attentions.count { try attention(block.attentions[j], "down_blocks.\(i).attentions.\(j)", channels: c) }
                skips.append(c)
            }
            if let downsampler = block.downsampler {
                try require(downsampler.inChannels == c, "down_blocks.\(i).downsamplers.0.conv: takes \(downsampler.inChannels) channels, gets \(c)")
                c = downsampler.outChannels
                skips.append(c)
            }
        }
        c = try checkResnet(midBlock.resnets[0], "mid_block.resnets.0", from: c, time: time)
        try attention(midBlock.attention, "mid_block.attentions.0", channels: c)
        c = try checkResnet(midBlock.resnets[1], "mid_block.resnets.1", from: c, time: time)
        return (c, skips)
    }

    /// The time embedding [N, T] before its SiLU: sinusoid as wide as linear_1's input -> linear -> SiLU -> linear,
    /// for one timestep per batch item or one for all.
    static func timeEmbedding(_ timesteps: [Float], batch: Int, configuration: UNetConfiguration, linear1: Linear,
                              linear2: Linear) throws(ModelError) -> Tensor {
        let t = timesteps.count == batch ? timesteps : Array(repeating: timesteps[0], count: batch)
        let projected = TimestepEmbedding.sinusoidal(t, dim: linear1.inFeatures, flipSinToCos: configuration.flipSinToCos,
                                                     downscaleFreqShift: configuration.freqShift)
        return try linear2(try linear1(projected).silu())
    }

    /// Runs the down blocks on `h` (conv_in's output); returns the last feature map and every skip connection,
    /// `h` first. `timeEmbedding` is already through SiLU. `hook` sees each layer's output before it is kept.
    static func runDownBlocks(_ blocks: [DownBlock], _ input: Tensor, timeEmbedding activated: Tensor,
                              context: Tensor, hook: (any UNetFeatureHook)? = nil) throws(ModelError) -> (Tensor, [Tensor]) {
        var h = input
        var skips = [h]
        for (i, block) in blocks.enumerated() {
            for (j, resnet) in block.resnets.enumerated() {
                h = try resnet(h, timeEmbedding: activated)
                if j < block.attentions.count { h = try block.attentions[j](h, context: context) }
                if let hook { h = try hook(h, at: .down(block: i, layer: j)) }
                skips.append(h)
            }
            if let downsampler = block.downsampler {
                h = try downsampler(h)
                skips.append(h)
            }
        }
        return (h, skips)
    }

    /// Runs the mid block: resnet, transformer, resnet.
    static func runMidBlock(_ block: MidBlock, _ input: Tensor, timeEmbedding activated: Tensor,
                            context: Tensor) throws(ModelError) -> Tensor {
        var h = try block.resnets[0](input, timeEmbedding: activated)
        h = try block.attention(h, context: context)
        return try block.resnets[1](h, timeEmbedding: activated)
    }
}
