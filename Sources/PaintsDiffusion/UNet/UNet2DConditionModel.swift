// PaintsDiffusion/UNet/UNet2DConditionModel: the text-conditioned denoising UNet of Stable Diffusion 1.x and 2.x.
// Matches: diffusers UNet2DConditionModel (positional time embedding, CrossAttn/Down/Up blocks, UNetMidBlock2DCrossAttn).
import PaintsTensor

/// Extra inputs later engines feed the UNet: these are the seams for ControlNet, Paints-UNDO, SDRO and SDXL-style
/// conditioning.
public struct UNetConditioning: Sendable {
    /// Added to the time embedding [N, T] (Paints-UNDO's operation-step embedding; SDXL's added conditions).
    public var addedTimeEmbedding: Tensor?
    /// Added to each skip connection, in order (ControlNet down-block residuals: one per saved sample).
    public var downResiduals: [Tensor]?
    /// Added to the mid block's output (ControlNet).
    public var midResidual: Tensor?
    /// SDRO's blueprint [N, 3, 8h, 8w] (`UNet2DConditionModel.blueprintDownscale` times the sample's size), RGB in
    /// 0...1, white lines on black: embedded by the UNet's `controlnet_cond_embedding` and added to conv_in's output,
    /// once, before the down blocks. Required by a UNet that has the encoder, refused by one that has not.
    public var blueprint: Tensor?
    /// The blueprint already through `UNet2DConditionModel.embedBlueprint` ([N, C, h, w], conv_in's output shape):
    /// it does not depend on the step, so a sampler embeds it once and passes it here. Used instead of `blueprint`.
    public var blueprintEmbedding: Tensor?

    public init(addedTimeEmbedding: Tensor? = nil, downResiduals: [Tensor]? = nil, midResidual: Tensor? = nil,
                blueprint: Tensor? = nil, blueprintEmbedding: Tensor? = nil) {
        self.addedTimeEmbedding = addedTimeEmbedding
        self.downResiduals = downResiduals
        self.midResidual = midResidual
        self.blueprint = blueprint
        self.blueprintEmbedding = blueprintEmbedding
    }
}

/// A place in the UNet where a `UNetFeatureHook` sees the feature map: after resnet (and transformer) `layer` of a
/// down or up block, before the block keeps it as a skip connection (down) or upsamples (up); after the whole mid
/// block, before any ControlNet mid residual is added.
public enum UNetFeatureSite: Hashable, Sendable {
    case down(block: Int, layer: Int)
    case mid
    case up(block: Int, layer: Int)
}

/// Sees, and may replace, the UNet's feature maps at each `UNetFeatureSite` (reference-only's AdaIN writes and reads
/// per-channel statistics there). Bound per run on a copy of the UNet (`UNet2DConditionModel.featureHook`).
public protocol UNetFeatureHook: Sendable {
    func callAsFunction(_ x: Tensor, at site: UNetFeatureSite) throws(ModelError) -> Tensor
}

public struct UNet2DConditionModel: Sendable {
    public let configuration: UNetConfiguration
    /// Called with the feature map at every `UNetFeatureSite`; nil (the default) leaves the forward pass as it is.
    public var featureHook: (any UNetFeatureHook)?
    /// LoRAs bound to this copy (`LoRA.applied(to:weight:)`); nil runs the base weights alone.
    public var lora: LoRABinding?
    /// Input channels, read from conv_in's weight (Paints-UNDO's 8-channel UNet says 4 in its config).
    public var inChannels: Int { convIn.inChannels }

    let convIn: Conv2d
    let timeLinear1: Linear, timeLinear2: Linear
    /// `add_embedding.linear_{1,2}`: an embedding of extra numbers added to the time embedding (Paints-UNDO's
    /// operation step); nil for plain SD UNets.
    let addEmbedding: (linear1: Linear, linear2: Linear)?
    /// `controlnet_cond_embedding`: SDRO's blueprint encoder (unet_2d_dobule_condition.py), whose output is added to
    /// conv_in's; nil for plain UNets.
    let blueprintEncoder: ConditioningEmbedding?
    public var downBlocks: [DownBlock]
    public var midBlock: MidBlock
    public var upBlocks: [UpBlock]
    let normOut: GroupNorm
    let convOut: Conv2d

    public struct DownBlock: Sendable {
        public var resnets: [ResnetBlock2D]
        public var attentions: [Transformer2DModel]
        let downsampler: Conv2d?
    }

    public struct MidBlock: Sendable {
        public var resnets: [ResnetBlock2D]
        public var attention: Transformer2DModel
    }

    public struct UpBlock: Sendable {
        public var resnets: [ResnetBlock2D]
        public var attentions: [Transformer2DModel]
        let upsampler: Conv2d?
    }

    /// Builds the UNet from weights with diffusers key names (`conv_in.weight`, `down_blocks.0.resnets.0.conv1.weight`...).
    public init(configuration c: UNetConfiguration, weights w: WeightStore) throws(ModelError) {
        configuration = c
        let groups = c.normGroups, eps = c.normEpsilon
        func transformer(_ s: WeightStore, heads: Int) throws(ModelError) -> Transformer2DModel {
            try Self.transformer(c, s, heads: heads)
        }
        convIn = try Conv2d(w.scoped("conv_in"))
        timeLinear1 = try Linear(w.scoped("time_embedding.linear_1"))
        timeLinear2 = try Linear(w.scoped("time_embedding.linear_2"))
        addEmbedding = w.contains("add_embedding.linear_1.weight")
            ? (try Linear(w.scoped("add_embedding.linear_1")), try Linear(w.scoped("add_embedding.linear_2"))) : nil
        blueprintEncoder = w.contains("controlnet_cond_embedding.conv_in.weight")
            ? try ConditioningEmbedding(w.scoped("controlnet_cond_embedding")) : nil
        let levels = c.blockOutChannels.count
        downBlocks = try Self.loadDownBlocks(c, w)
        midBlock = try Self.loadMidBlock(c, w)
        var up: [UpBlock] = []
        let reversedHeads = Array(c.attentionHeads.reversed())
        for (i, type) in c.upBlockTypes.enumerated() {
            let s = w.scoped("up_blocks.\(i)")
            var resnets: [ResnetBlock2D] = [], attentions: [Transformer2DModel] = []
            for j in 0...c.layersPerBlock {
                resnets.append(try ResnetBlock2D(s.scoped("resnets.\(j)"), groups: groups, epsilon: eps))
                if type == "CrossAttnUpBlock2D" { attentions.append(try transformer(s.scoped("attentions.\(j)"), heads: reversedHeads[i])) }
            }
            let upsampler = i < levels - 1 ? try Conv2d(s.scoped("upsamplers.0.conv")) : nil
            up.append(UpBlock(resnets: resnets, attentions: attentions, upsampler: upsampler))
        }
        upBlocks = up
        normOut = try GroupNorm(w.scoped("conv_norm_out"), groups: groups, epsilon: eps)
        convOut = try Conv2d(w.scoped("conv_out"))
        try checkChannelFlow()
    }

    /// Follows the channels through every block as the forward pass does, so that a model whose weights do not
    /// chain (from a hostile or mislabelled file) fails here with a typed error instead of trapping in a residual
    /// sum or an index when it runs: each block takes what the previous one makes, up blocks take the feature map
    /// plus the skip connection they pop, every size-keeping convolution keeps the size.
    private func checkChannelFlow() throws(ModelError) {
        try Self.checkStem(convIn: convIn, timeLinear1, timeLinear2)
        let time = timeLinear2.outFeatures
        if let (linear1, linear2) = addEmbedding {
            try require(linear2.inFeatures == linear1.outFeatures && linear2.outFeatures == time,
                        "add_embedding: \(linear1.weight.shape) then \(linear2.weight.shape) does not make a \(time)-wide time embedding")
        }
        try blueprintEncoder?.check(outputChannels: convIn.outChannels)
        var (c, skips) = try Self.checkDownAndMidFlow(downBlocks, midBlock, from: convIn.outChannels, time: time)
        func resnet(_ r: ResnetBlock2D, _ name: String, from channels: Int) throws(ModelError) -> Int {
            try Self.checkResnet(r, name, from: channels, time: time)
        }
        func attention(_ t: Transformer2DModel, _ name: String, channels: Int) throws(ModelError) {
            try require(t.channels == channels, "\(name): takes \(t.channels) channels, gets \(channels)")
        }
        for (i, block) in upBlocks.enumerated() {
            for (j, r) in block.resnets.enumerated() {
                guard let skip = skips.popLast() else { throw .configuration("up_blocks.\(i).resnets.\(j): no skip connection left") }
                c = try resnet(r, "up_blocks.\(i).resnets.\(j)", from: c + skip)
                if j < block.attentions.count { try attention(block.attentions[j], "up_blocks.\(i).attentions.\(j)", channels: c) }
            }
            if let upsampler = block.upsampler {
                try upsampler.requireSameSize(from: c, "up_blocks.\(i).upsamplers.0.conv")
                c = upsampler.outChannels
            }
        }
        try require(normOut.channels == c, "conv_norm_out: \(normOut.channels) channels, the up blocks make \(c)")
        try convOut.requireSameSize(from: c, "conv_out")
    }

    /// Channels of the prediction (the latent channels for Stable Diffusion).
    public var outChannels: Int { convOut.outChannels }

    /// Whether the UNet has an `add_embedding` for coded numbers (Paints-UNDO's operation step).
    public var takesCodedConditions: Bool { addEmbedding != nil }

    /// The embedding of one number per batch item (Paints-UNDO diffusers_helper/code_cond.py): a sinusoid as wide as
    /// add_embedding's input ([cos, sin], frequencies exp(-ln(1e4) i / half), no shift), then linear, SiLU, linear.
    /// Pass it as `UNetConditioning.addedTimeEmbedding`.
    public func codedConditionEmbedding(_ values: [Float]) throws(ModelError) -> Tensor {
        guard let (linear1, linear2) = addEmbedding else { throw .configuration("this UNet has no add_embedding") }
        let projected = TimestepEmbedding.sinusoidal(values, dim: linear1.inFeatures, flipSinToCos: true, downscaleFreqShift: 0)
        return try LoRABinding.with(lora) { () throws(ModelError) in try linear2(try linear1(projected).silu()) }
    }

    /// Whether the UNet has SDRO's blueprint encoder (`controlnet_cond_embedding`): it then takes a blueprint.
    public var takesBlueprint: Bool { blueprintEncoder != nil }

    /// How many times larger than the sample the blueprint is (8 for SDRO); nil without a blueprint encoder.
    public var blueprintDownscale: Int? { blueprintEncoder?.downscale }

    /// The blueprint [N, 3, 8h, 8w] (RGB, 0...1) through `controlnet_cond_embedding`: [N, C, h, w], conv_in's output
    /// shape. Pass it as `UNetConditioning.blueprintEmbedding` to every step.
    public func embedBlueprint(_ blueprint: Tensor) throws(ModelError) -> Tensor {
        guard let blueprintEncoder else { throw .configuration("this UNet has no blueprint encoder (controlnet_cond_embedding)") }
        return try LoRABinding.with(lora) { () throws(ModelError) in try blueprintEncoder(blueprint) }
    }

    /// Loads a diffusers `unet` folder (config.json + diffusion_pytorch_model.safetensors).
    /// `variant`: the weights file variant to prefer (`WeightStore.componentFile`: "fp16" when present by default).
    /// SDRO's UNet (`UNet2DDobuleConditionModel`) loads here too, its blueprint encoder checked against the config's
    /// `conditioning_channels` and `conditioning_embedding_out_channels` when it gives them.
    public init(folder: String, variant: String? = nil) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        let configuration = try UNetConfiguration(json: json, path: path)
        let weights: WeightStore
        do { weights = try WeightStore(folder: folder, name: "diffusion_pytorch_model", variant: variant) } catch { throw .weights(error) }
        try self.init(configuration: configuration, weights: weights)
        if let blueprintEncoder {
            try blueprintEncoder.check(
                outputChannels: convIn.outChannels,
                conditioningChannels: try configurationInt(json["conditioning_channels"], "conditioning_channels", in: 1...64, path: path),
                widths: try configurationInts(json["conditioning_embedding_out_channels"], "conditioning_embedding_out_channels",
                                              in: 1...(1 << 16), path: path))
        }
    }

    /// The noise (or v) prediction for `sample` [N, C, H, W] at `timesteps` (one per batch item, or one for all),
    /// conditioned on `context` [N, S, D].
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor,
                               conditioning: UNetConditioning = UNetConditioning()) throws(ModelError) -> Tensor {
        if let lora, LoRABinding.current !== lora {
            return try LoRABinding.with(lora) { () throws(ModelError) in try self(sample, timesteps: timesteps, context: context, conditioning: conditioning) }
        }
        return try HeapRetention.during(.denoiser) { () throws(ModelError) in
            try predicted(sample, timesteps: timesteps, context: context, conditioning: conditioning)
        }
    }

    private func predicted(_ sample: Tensor, timesteps: [Float], context: Tensor,
                           conditioning: UNetConditioning) throws(ModelError) -> Tensor {
        guard sample.rank == 4, sample.shape.allSatisfy({ $0 >= 1 }), sample.shape[1] == inChannels, context.rank == 3,
              context.shape[0] == sample.shape[0], context.shape[1] >= 1, timesteps.count == 1 || timesteps.count == sample.shape[0]
        else {
            throw .tensor(.shapeMismatch(operation: "UNet2DConditionModel", shapes: [sample.shape, context.shape, [timesteps.count]]))
        }
        var embedding = try Self.timeEmbedding(timesteps, batch: sample.shape[0], configuration: configuration,
                                               linear1: timeLinear1, linear2: timeLinear2)   // [N, T]
        if let added = conditioning.addedTimeEmbedding {
            guard added.shape == embedding.shape else {
                throw .tensor(.shapeMismatch(operation: "UNet2DConditionModel added time embedding", shapes: [added.shape, embedding.shape]))
            }
            embedding = embedding + added
        }
        let activated = embedding.silu()

        var stem = try convIn(sample)
        if let blueprintEncoder {
            // SDRO (unet_2d_dobule_condition.py forward): sample = conv_in(sample) + controlnet_cond_embedding(blueprint).
            let embedded: Tensor
            if let given = conditioning.blueprintEmbedding {
                embedded = given
            } else if let blueprint = conditioning.blueprint {
                embedded = try blueprintEncoder(blueprint)
            } else {
                throw .configuration("this UNet has a blueprint encoder (controlnet_cond_embedding): it needs a blueprint")
            }
            guard embedded.shape == stem.shape else {
                throw .tensor(.shapeMismatch(operation: "UNet2DConditionModel blueprint embedding", shapes: [embedded.shape, stem.shape]))
            }
            stem = stem + embedded
        } else if conditioning.blueprint != nil || conditioning.blueprintEmbedding != nil {
            throw .configuration("this UNet has no blueprint encoder (controlnet_cond_embedding) to take a blueprint")
        }
        var (h, skips) = try Self.runDownBlocks(downBlocks, stem, timeEmbedding: activated, context: context, hook: featureHook)
        if let residuals = conditioning.downResiduals {
            guard residuals.count == skips.count else {
                throw .configuration("\(residuals.count) down residuals for \(skips.count) skip connections")
            }
            for i in skips.indices {
                guard residuals[i].shape == skips[i].shape else {
                    throw .tensor(.shapeMismatch(operation: "UNet2DConditionModel down residual \(i)", shapes: [residuals[i].shape, skips[i].shape]))
                }
                skips[i] += residuals[i]
            }
        }
        h = try Self.runMidBlock(midBlock, h, timeEmbedding: activated, context: context)
        if let featureHook { h = try featureHook(h, at: .mid) }
        if let mid = conditioning.midResidual {
            guard mid.shape == h.shape else { throw .tensor(.shapeMismatch(operation: "UNet2DConditionModel mid residual", shapes: [mid.shape, h.shape])) }
            h += mid
        }

        for (i, block) in upBlocks.enumerated() {
            for (j, resnet) in block.resnets.enumerated() {
                let skip = skips.removeLast()
                h = try resnet(Tensor.concatenatingChannels(h, skip), timeEmbedding: activated)
                if j < block.attentions.count { h = try block.attentions[j](h, context: context) }
                if let featureHook { h = try featureHook(h, at: .up(block: i, layer: j)) }
            }
            if let upsampler = block.upsampler {
                // Nearest 2x, or to the next skip's size when a dimension was odd.
                let target = skips.last.map { ($0.shape[2], $0.shape[3]) } ?? (h.shape[2] * 2, h.shape[3] * 2)
                h = try upsampler(Self.nearest(h, height: target.0, width: target.1))
            }
        }
        return try convOut(try normOut(h, silu: true))
    }

    /// Nearest-neighbour resize of NCHW to height x width (torch "nearest": source index floor(dst * in / out)).
    static func nearest(_ x: Tensor, height: Int, width: Int) -> Tensor {
        if height == 2 * x.shape[2] && width == 2 * x.shape[3] { return x.upsampledNearest2x() }
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        var out = Tensor(zeros: [x.shape[0], x.shape[1], height, width])
        for p in 0..<planes {
            for y in 0..<height {
                let sy = min(h - 1, y * h / height)
                for xx in 0..<width { out.data[(p * height + y) * width + xx] = x.data[(p * h + sy) * w + min(w - 1, xx * w / width)] }
            }
        }
        return out
    }
}
