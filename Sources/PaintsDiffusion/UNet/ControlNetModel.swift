// PaintsDiffusion/UNet/ControlNetModel: the ControlNet of Stable Diffusion 1.x/2.x: a hint image to the UNet's down and mid residuals.
// Matches: diffusers ControlNetModel (models/controlnets/controlnet.py): the UNet's down path and mid block (shared with
// UNet2DConditionModel), ControlNetConditioningEmbedding added after conv_in, a zero 1x1 convolution per skip
// connection (`controlnet_down_blocks.N`) and one after the mid block (`controlnet_mid_block`).
import Foundation
import PaintsTensor

public struct ControlNetModel: Sendable {
    public let configuration: UNetConfiguration
    /// Whether the hint's channels are reversed before the embedding (`controlnet_conditioning_channel_order: "bgr"`).
    public let flipsConditioningChannels: Bool

    let convIn: Conv2d
    let timeLinear1: Linear, timeLinear2: Linear
    /// `controlnet_cond_embedding` (8x downsampling for the real (16, 32, 96, 256) layout).
    let conditioningEmbedding: ConditioningEmbedding
    let downBlocks: [UNet2DConditionModel.DownBlock]
    let midBlock: UNet2DConditionModel.MidBlock
    /// `controlnet_down_blocks.N`: one 1x1 convolution per skip connection.
    let controlnetDownBlocks: [Conv2d]
    let controlnetMidBlock: Conv2d

    /// Channels of the UNet's latent input, read from conv_in's weight.
    public var inChannels: Int { convIn.inChannels }
    /// Channels of the hint image (3 for RGB).
    public var conditioningChannels: Int { conditioningEmbedding.inChannels }
    /// How many times smaller the latent is than the hint (8 for Stable Diffusion): 2 per stride-2 block.
    public var conditioningDownscale: Int { conditioningEmbedding.downscale }
    /// How many down residuals `callAsFunction` returns (12 for SD1.5): one per skip connection of the UNet.
    public var downResidualCount: Int { controlnetDownBlocks.count }

    /// Builds the ControlNet from weights with diffusers key names; `json` is its config.json (the UNet members plus
    /// `conditioning_embedding_out_channels`, `controlnet_conditioning_channel_order`, `global_pool_conditions`).
    public init(json: [String: Any], weights w: WeightStore, path: String = "config.json") throws(ModelError) {
        let c = try UNetConfiguration(json: json, path: path, upBlocks: false)
        configuration = c
        func bad(_ m: String) -> ModelError { .configuration("\(path): \(m)") }
        switch json["controlnet_conditioning_channel_order"] as? String ?? "rgb" {
        case "rgb": flipsConditioningChannels = false
        case "bgr": flipsConditioningChannels = true
        case let other: throw bad("controlnet_conditioning_channel_order \(other) is not supported")
        }
        if json["global_pool_conditions"] as? Bool == true { throw bad("global_pool_conditions (shuffle ControlNets) is not supported") }
        if let t = json["addition_embed_type"] as? String { throw bad("addition_embed_type \(t) is not supported") }
        if let t = json["mid_block_type"] as? String, t != "UNetMidBlock2DCrossAttn" { throw bad("mid_block_type \(t) is not supported") }

        convIn = try Conv2d(w.scoped("conv_in"))
        timeLinear1 = try Linear(w.scoped("time_embedding.linear_1"))
        timeLinear2 = try Linear(w.scoped("time_embedding.linear_2"))

        conditioningEmbedding = try ConditioningEmbedding(w.scoped("controlnet_cond_embedding"))

        downBlocks = try UNet2DConditionModel.loadDownBlocks(c, w)
        midBlock = try UNet2DConditionModel.loadMidBlock(c, w)
        var zeroConvolutions: [Conv2d] = []
        while w.contains("controlnet_down_blocks.\(zeroConvolutions.count).weight") {
            try require(zeroConvolutions.count < 1024, "\(path): too many controlnet_down_blocks")
            zeroConvolutions.append(try Conv2d(w.scoped("controlnet_down_blocks.\(zeroConvolutions.count)")))
        }
        controlnetDownBlocks = zeroConvolutions
        controlnetMidBlock = try Conv2d(w.scoped("controlnet_mid_block"))

        let widths = try configurationInts(json["conditioning_embedding_out_channels"], "conditioning_embedding_out_channels",
                                           in: 1...(1 << 16), path: path)
        try checkShapes(embeddingWidths: widths, conditioningChannels: try configurationInt(json["conditioning_channels"],
                        "conditioning_channels", in: 1...64, path: path))
    }

    /// Loads a diffusers ControlNet folder (config.json + diffusion_pytorch_model.safetensors).
    /// `variant`: the weights file variant to prefer (`WeightStore.componentFile`: "fp16" when present by default).
    public init(folder: String, variant: String? = nil) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        let weights: WeightStore
        do { weights = try WeightStore(folder: folder, name: "diffusion_pytorch_model", variant: variant) } catch { throw .weights(error) }
        try self.init(json: json, weights: weights, path: path)
    }

    /// Checks the tensors against each other and the config, as the forward pass uses them, so that a file whose
    /// weights do not chain fails here with a typed error rather than trapping in a sum.
    private func checkShapes(embeddingWidths: [Int]?, conditioningChannels: Int?) throws(ModelError) {
        try UNet2DConditionModel.checkStem(convIn: convIn, timeLinear1, timeLinear2)
        let (midChannels, skips) = try UNet2DConditionModel.checkDownAndMidFlow(downBlocks, midBlock, from: convIn.outChannels,
                                                                                time: timeLinear2.outFeatures)
        try require(configuration.blockOutChannels[0] == convIn.outChannels,
                    "conv_in: \(convIn.outChannels) outputs, block_out_channels starts with \(configuration.blockOutChannels[0])")
        // The conditioning embedding: 3x3 convolutions chaining from the hint's channels to conv_in's output.
        try conditioningEmbedding.check(outputChannels: convIn.outChannels, conditioningChannels: conditioningChannels,
                                        widths: embeddingWidths)
        // One zero convolution per skip connection, each keeping its channels.
        try require(controlnetDownBlocks.count == skips.count, "controlnet_down_blocks: \(controlnetDownBlocks.count) for \(skips.count) skip connections")
        for (i, (block, channels)) in zip(controlnetDownBlocks, skips).enumerated() {
            try block.requireSameSize(from: channels, "controlnet_down_blocks.\(i)")
            try require(block.outChannels == channels, "controlnet_down_blocks.\(i): \(block.outChannels) outputs for \(channels) channels")
        }
        try controlnetMidBlock.requireSameSize(from: midChannels, "controlnet_mid_block")
        try require(controlnetMidBlock.outChannels == midChannels, "controlnet_mid_block: \(controlnetMidBlock.outChannels) outputs for \(midChannels) channels")
    }

    /// The hint [N, 3, H, W] (0...1, RGB) through the conditioning embedding, channels reversed first for BGR models.
    /// It does not depend on the step: a sampler embeds its hint once and passes it to every step.
    public func embedHint(_ hint: Tensor) throws(ModelError) -> Tensor {
        guard hint.rank == 4, hint.shape.allSatisfy({ $0 >= 1 }), hint.shape[1] == conditioningChannels,
              hint.shape[2] % conditioningDownscale == 0, hint.shape[3] % conditioningDownscale == 0 else {
            throw .tensor(.shapeMismatch(operation: "ControlNetModel hint", shapes: [hint.shape]))
        }
        return try conditioningEmbedding(flipsConditioningChannels ? Self.reversingChannels(hint) : hint)
    }

    /// The residuals for the UNet (`UNetConditioning.downResiduals` and `.midResidual`), each multiplied by
    /// `conditioningScale`.
    /// - Parameters: sample [N, C, h, w]; timesteps one per batch item or one for all; context [N, S, D];
    ///   conditioning the hint [N, 3, 8h, 8w] (`conditioningDownscale`) in 0...1, RGB.
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor, conditioning: Tensor,
                               conditioningScale: Float = 1) throws(ModelError) -> (down: [Tensor], mid: Tensor) {
        let scale = conditioningDownscale
        guard sample.rank == 4, conditioning.rank == 4, conditioning.shape[0] == sample.shape[0],
              conditioning.shape[2] == sample.shape[2] * scale, conditioning.shape[3] == sample.shape[3] * scale
        else {
            throw .tensor(.shapeMismatch(operation: "ControlNetModel", shapes: [sample.shape, context.shape, [timesteps.count], conditioning.shape]))
        }
        return try self(sample, timesteps: timesteps, context: context, embeddedHint: try embedHint(conditioning),
                        conditioningScale: conditioningScale)
    }

    /// The residuals from a hint embedded by `embedHint` ([N, C, h, w], the sample's batch and size).
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor, embeddedHint hint: Tensor,
                               conditioningScale: Float = 1) throws(ModelError) -> (down: [Tensor], mid: Tensor) {
        try HeapRetention.during(.denoiser) { () throws(ModelError) in
            try residuals(sample, timesteps: timesteps, context: context, embeddedHint: hint, conditioningScale: conditioningScale)
        }
    }

    private func residuals(_ sample: Tensor, timesteps: [Float], context: Tensor, embeddedHint hint: Tensor,
                           conditioningScale: Float) throws(ModelError) -> (down: [Tensor], mid: Tensor) {
        guard sample.rank == 4, sample.shape.allSatisfy({ $0 >= 1 }), sample.shape[1] == inChannels, context.rank == 3,
              context.shape[0] == sample.shape[0], context.shape[1] >= 1, timesteps.count == 1 || timesteps.count == sample.shape[0]
        else {
            throw .tensor(.shapeMismatch(operation: "ControlNetModel", shapes: [sample.shape, context.shape, [timesteps.count]]))
        }
        let embedding = try UNet2DConditionModel.timeEmbedding(timesteps, batch: sample.shape[0], configuration: configuration,
                                                               linear1: timeLinear1, linear2: timeLinear2)
        let activated = embedding.silu()
        let stem = try convIn(sample)
        guard hint.shape == stem.shape else {
            throw .tensor(.shapeMismatch(operation: "ControlNetModel conditioning embedding", shapes: [hint.shape, stem.shape]))
        }
        var (h, skips) = try UNet2DConditionModel.runDownBlocks(downBlocks, stem + hint, timeEmbedding: activated, context: context)
        h = try UNet2DConditionModel.runMidBlock(midBlock, h, timeEmbedding: activated, context: context)
        try cancellationPoint()
        var down: [Tensor] = []
        for (skip, block) in zip(skips, controlnetDownBlocks) { down.append(Self.scaled(try block(skip), by: conditioningScale)) }
        return (down, Self.scaled(try controlnetMidBlock(h), by: conditioningScale))
    }

    static func scaled(_ x: Tensor, by scale: Float) -> Tensor {
        scale == 1 ? x : x.map { $0 * scale }
    }

    /// torch.flip(x, dims=[1]) for NCHW.
    static func reversingChannels(_ x: Tensor) -> Tensor {
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        var out = x
        for b in 0..<n {
            for k in 0..<c {
                let from = (b * c + (c - 1 - k)) * plane, to = (b * c + k) * plane
                out.data.replaceSubrange(to..<(to + plane), with: x.data[from..<(from + plane)])
            }
        }
        return out
    }
}
