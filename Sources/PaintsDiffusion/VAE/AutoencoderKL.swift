// PaintsDiffusion/VAE/AutoencoderKL: the Stable Diffusion VAE: image <-> latent (encoder, decoder, quant convs).
// Matches: diffusers AutoencoderKL (DownEncoderBlock2D / UpDecoderBlock2D, UNetMidBlock2D with one attention).
import Foundation
import PaintsTensor

public struct VAEConfiguration: Sendable {
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var latentChannels: Int
    public var normGroups: Int
    /// Latents are multiplied by this after encoding and divided by it before decoding (0.18215 for SD1.x/2.x).
    public var scalingFactor: Float
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAttention: Bool

    public init(json: [String: Any], path: String = "config.json") throws(ModelError) {
        func ints(_ key: String) -> [Int]? { (json[key] as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } }
        guard let channels = ints("block_out_channels"), !channels.isEmpty else {
            throw .configuration("\(path): block_out_channels is required")
        }
        blockOutChannels = channels
        layersPerBlock = (json["layers_per_block"] as? NSNumber)?.intValue ?? 1
        latentChannels = (json["latent_channels"] as? NSNumber)?.intValue ?? 4
        normGroups = (json["norm_num_groups"] as? NSNumber)?.intValue ?? 32
        scalingFactor = Float((json["scaling_factor"] as? NSNumber)?.doubleValue ?? 0.18215)
        useQuantConv = json["use_quant_conv"] as? Bool ?? true
        usePostQuantConv = json["use_post_quant_conv"] as? Bool ?? true
        midBlockAttention = json["mid_block_add_attention"] as? Bool ?? true
    }

    public init(folder: String) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        try self.init(json: json, path: path)
    }
}

/// Single-head self-attention over pixels with its own GroupNorm and a residual (the VAE mid block's attention).
struct SpatialSelfAttention: Sendable {
    let norm: GroupNorm
    let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear

    init(_ w: WeightStore, groups: Int) throws(ModelError) {
        norm = try GroupNorm(w.scoped("group_norm"), groups: groups, epsilon: 1e-6)
        toQ = try Linear(w.scoped("to_q"))
        toK = try Linear(w.scoped("to_k"))
        toV = try Linear(w.scoped("to_v"))
        toOut = try Linear(w.scoped("to_out.0"))
    }

    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let tokens = try norm(x).tokens()                                  // [N, HW, C]
        let (q, k, v) = (try toQ(tokens), try toK(tokens), try toV(tokens))
        let attended = try compute { () throws(TensorError) in try Tensor.attention(query: q, key: k, value: v, heads: 1) }
        return try toOut(attended).image(height: h, width: w) + x
    }
}

/// resnet, attention, resnet at the lowest resolution.
struct VAEMidBlock: Sendable {
    let first: ResnetBlock2D, attention: SpatialSelfAttention?, second: ResnetBlock2D

    init(_ w: WeightStore, groups: Int, attention: Bool) throws(ModelError) {
        first = try ResnetBlock2D(w.scoped("resnets.0"), groups: groups, epsilon: 1e-6)
        self.attention = attention ? try SpatialSelfAttention(w.scoped("attentions.0"), groups: groups) : nil
        second = try ResnetBlock2D(w.scoped("resnets.1"), groups: groups, epsilon: 1e-6)
    }

    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        var h = try first(x, timeEmbedding: nil)
        if let attention { h = try attention(h) }
        return try second(h, timeEmbedding: nil)
    }
}

public struct VAEEncoder: Sendable {
    let convIn: Conv2d
    let blocks: [(resnets: [ResnetBlock2D], downsampler: Conv2d?)]
    let mid: VAEMidBlock
    let normOut: GroupNorm
    let convOut: Conv2d

    init(_ w: WeightStore, _ c: VAEConfiguration) throws(ModelError) {
        convIn = try Conv2d(w.scoped("conv_in"))
        var blocks: [([ResnetBlock2D], Conv2d?)] = []
        for i in c.blockOutChannels.indices {
            let s = w.scoped("down_blocks.\(i)")
            var resnets: [ResnetBlock2D] = []
            for j in 0..<c.layersPerBlock { resnets.append(try ResnetBlock2D(s.scoped("resnets.\(j)"), groups: c.normGroups, epsilon: 1e-6)) }
            let down = i < c.blockOutChannels.count - 1 ? try Conv2d(s.scoped("downsamplers.0.conv"), stride: 2, padding: 0) : nil
            blocks.append((resnets, down))
        }
        self.blocks = blocks
        mid = try VAEMidBlock(w.scoped("mid_block"), groups: c.normGroups, attention: c.midBlockAttention)
        normOut = try GroupNorm(w.scoped("conv_norm_out"), groups: c.normGroups, epsilon: 1e-6)
        convOut = try Conv2d(w.scoped("conv_out"))
    }

    /// image [N, 3, H, W] in -1...1 to moments [N, 2*latent, H/f, W/f].
    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        var h = try convIn(x)
        for block in blocks {
            for resnet in block.resnets { h = try resnet(h, timeEmbedding: nil) }
            // diffusers pads right and bottom by one before the stride-2 convolution.
            if let down = block.downsampler { h = try down(h.padded(right: 1, bottom: 1)) }
        }
        h = try mid(h)
        return try convOut(try normOut(h, silu: true))
    }
}

public struct VAEDecoder: Sendable {
    let convIn: Conv2d
    let mid: VAEMidBlock
    let blocks: [(resnets: [ResnetBlock2D], upsampler: Conv2d?)]
    let normOut: GroupNorm
    let convOut: Conv2d

    init(_ w: WeightStore, _ c: VAEConfiguration) throws(ModelError) {
        convIn = try Conv2d(w.scoped("conv_in"))
        mid = try VAEMidBlock(w.scoped("mid_block"), groups: c.normGroups, attention: c.midBlockAttention)
        var blocks: [([ResnetBlock2D], Conv2d?)] = []
        for i in c.blockOutChannels.indices {
            let s = w.scoped("up_blocks.\(i)")
            var resnets: [ResnetBlock2D] = []
            for j in 0...c.layersPerBlock { resnets.append(try ResnetBlock2D(s.scoped("resnets.\(j)"), groups: c.normGroups, epsilon: 1e-6)) }
            let up = i < c.blockOutChannels.count - 1 ? try Conv2d(s.scoped("upsamplers.0.conv")) : nil
            blocks.append((resnets, up))
        }
        self.blocks = blocks
        normOut = try GroupNorm(w.scoped("conv_norm_out"), groups: c.normGroups, epsilon: 1e-6)
        convOut = try Conv2d(w.scoped("conv_out"))
    }

    /// latents [N, latent, h, w] (unscaled) to an image [N, 3, h*f, w*f] in about -1...1.
    func callAsFunction(_ z: Tensor) throws(ModelError) -> Tensor {
        var h = try mid(try convIn(z))
        for block in blocks {
            for resnet in block.resnets { h = try resnet(h, timeEmbedding: nil) }
            if let up = block.upsampler { h = try up(h.upsampledNearest2x()) }
        }
        return try convOut(try normOut(h, silu: true))
    }
}

public struct AutoencoderKL: Sendable {
    public let configuration: VAEConfiguration
    let encoder: VAEEncoder
    let decoder: VAEDecoder
    let quantConv: Conv2d?
    let postQuantConv: Conv2d?

    public init(configuration c: VAEConfiguration, weights w: WeightStore) throws(ModelError) {
        configuration = c
        encoder = try VAEEncoder(w.scoped("encoder"), c)
        decoder = try VAEDecoder(w.scoped("decoder"), c)
        quantConv = c.useQuantConv ? try Conv2d(w.scoped("quant_conv")) : nil
        postQuantConv = c.usePostQuantConv ? try Conv2d(w.scoped("post_quant_conv")) : nil
    }

    /// Loads a diffusers `vae` folder.
    /// `variant`: the weights file variant to prefer (`WeightStore.componentFile`: "fp16" when present by default).
    public init(folder: String, variant: String? = nil) throws(ModelError) {
        let c = try VAEConfiguration(folder: folder)
        let weights: WeightStore
        do { weights = try WeightStore(folder: folder, name: "diffusion_pytorch_model", variant: variant) } catch { throw .weights(error) }
        try self.init(configuration: c, weights: weights)
    }

    /// The latent distribution of `image` [N, 3, H, W] in -1...1: mean and log variance, each [N, latent, H/8, W/8]
    /// (unscaled; multiply the mean by `scalingFactor` for the UNet).
    public func encode(_ image: Tensor) throws(ModelError) -> (mean: Tensor, logVariance: Tensor) {
        var moments = try encoder(image)
        if let quantConv { moments = try quantConv(moments) }
        let (n, c2, plane) = (moments.shape[0], moments.shape[1], moments.shape[2] * moments.shape[3])
        let c = c2 / 2
        var mean = Tensor(zeros: [n, c, moments.shape[2], moments.shape[3]]), logVariance = mean
        for b in 0..<n {
            let base = b * c2 * plane
            mean.data.replaceSubrange((b * c * plane)..<((b + 1) * c * plane), with: moments.data[base..<(base + c * plane)])
            // diffusers clamps the log variance to [-30, 20].
            logVariance.data.replaceSubrange((b * c * plane)..<((b + 1) * c * plane),
                                             with: moments.data[(base + c * plane)..<(base + 2 * c * plane)].map { min(20, max(-30, $0)) })
        }
        return (mean, logVariance)
    }

    /// Decodes unscaled latents to an image in about -1...1.
    public func decode(_ latents: Tensor) throws(ModelError) -> Tensor {
        var z = latents
        if let postQuantConv { z = try postQuantConv(z) }
        return try decoder(z)
    }
}
