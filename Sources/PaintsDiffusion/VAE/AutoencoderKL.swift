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
    /// The training resolution in pixels (512 for SD1.x): the tile size of tiled encode and decode.
    public var sampleSize: Int

    public init(json: [String: Any], path: String = "config.json") throws(ModelError) {
        // Numbers are range-checked: zero groups would divide by zero, a negative layer count would make an invalid
        // range, and 1 << levels must stay small.
        let size = 1...(1 << 16)
        guard let channels = try configurationInts(json["block_out_channels"], "block_out_channels", in: size, path: path),
              (1...8).contains(channels.count)
        else {
            throw .configuration("\(path): block_out_channels is required (1 to 8 levels)")
        }
        blockOutChannels = channels
        layersPerBlock = try configurationInt(json["layers_per_block"], "layers_per_block", in: 1...64, path: path) ?? 1
        latentChannels = try configurationInt(json["latent_channels"], "latent_channels", in: size, path: path) ?? 4
        normGroups = try configurationInt(json["norm_num_groups"], "norm_num_groups", in: size, path: path) ?? 32
        scalingFactor = Float((json["scaling_factor"] as? NSNumber)?.doubleValue ?? 0.18215)
        useQuantConv = json["use_quant_conv"] as? Bool ?? true
        usePostQuantConv = json["use_post_quant_conv"] as? Bool ?? true
        midBlockAttention = json["mid_block_add_attention"] as? Bool ?? true
        let sample = try configurationInt(json["sample_size"], "sample_size", in: size, path: path)
        let sampleListed = try configurationInt((json["sample_size"] as? [Any])?.first, "sample_size", in: size, path: path)
        sampleSize = sample ?? sampleListed ?? 512
        // Tiles are sample_size pixels and sample_size / 2^(levels-1) latents, stepped by 3/4 of that: at least 4.
        guard sampleSize >= 4 << (channels.count - 1) else {
            throw .configuration("\(path): sample_size \(sampleSize) is smaller than four latents")
        }
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
        let c = norm.channels
        try require(toQ.inFeatures == c && toK.inFeatures == c && toV.inFeatures == c && toOut.outFeatures == c
                    && toK.outFeatures == toQ.outFeatures && toV.outFeatures == toQ.outFeatures && toOut.inFeatures == toQ.outFeatures,
                    "\(w.prefix): attention projections \([toQ.weight.shape, toK.weight.shape, toV.weight.shape, toOut.weight.shape]) do not map \(c) channels onto themselves")
    }

    var channels: Int { norm.channels }

    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let tokens = try norm(x).tokens()                                  // [N, HW, C]
        let (q, k, v) = (try toQ(tokens), try toK(tokens), try toV(tokens))
        let attended = try compute { () throws(TensorError) in try Tensor.attention(query: q, key: k, value: v, heads: 1) }
        var out = try toOut(attended).image(height: h, width: w)
        out += x
        return out
    }
}

/// resnet, attention, resnet at the lowest resolution.
struct VAEMidBlock: Sendable {
    let first: ResnetBlock2D, attention: SpatialSelfAttention?, second: ResnetBlock2D

    init(_ w: WeightStore, groups: Int, attention: Bool) throws(ModelError) {
        first = try ResnetBlock2D(w.scoped("resnets.0"), groups: groups, epsilon: 1e-6)
        self.attention = attention ? try SpatialSelfAttention(w.scoped("attentions.0"), groups: groups) : nil
        second = try ResnetBlock2D(w.scoped("resnets.1"), groups: groups, epsilon: 1e-6)
        if let attention = self.attention {
            try require(attention.channels == first.outChannels, "\(w.prefix)attentions.0: takes \(attention.channels) channels, gets \(first.outChannels)")
        }
        try require(second.inChannels == first.outChannels, "\(w.prefix)resnets.1: takes \(second.inChannels) channels, gets \(first.outChannels)")
    }

    var inChannels: Int { first.inChannels }
    var outChannels: Int { second.outChannels }

    func callAsFunction(_ x: consuming Tensor) throws(ModelError) -> Tensor {
        var h = try first(consume x, timeEmbedding: nil)
        if let attention { h = try attention(h) }
        return try second(consume h, timeEmbedding: nil)
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
        // The channel flow, as the forward pass runs it; downsamplers are 3x3 so that padding one and striding two
        // halves even sizes exactly (latents are the image's size / 2^(levels-1)).
        let p = w.prefix
        try convIn.requireSameSize(from: convIn.inChannels, p + "conv_in")
        var channels = convIn.outChannels
        for (i, block) in blocks.enumerated() {
            for (j, resnet) in block.0.enumerated() {
                try require(resnet.inChannels == channels, "\(p)down_blocks.\(i).resnets.\(j): takes \(resnet.inChannels) channels, gets \(channels)")
                channels = resnet.outChannels
            }
            if let down = block.1 {
                try require(down.weight.shape[2] == 3 && down.weight.shape[3] == 3 && down.inChannels == channels,
                            "\(p)down_blocks.\(i).downsamplers.0.conv: \(down.weight.shape) is not a 3x3 convolution of \(channels) channels")
                channels = down.outChannels
            }
        }
        try require(mid.inChannels == channels, "\(p)mid_block: takes \(mid.inChannels) channels, gets \(channels)")
        try require(normOut.channels == mid.outChannels, "\(p)conv_norm_out: \(normOut.channels) channels, the mid block makes \(mid.outChannels)")
        try convOut.requireSameSize(from: mid.outChannels, p + "conv_out")
    }

    var inChannels: Int { convIn.inChannels }
    var outChannels: Int { convOut.outChannels }

    /// image [N, 3, H, W] in -1...1 to moments [N, 2*latent, H/f, W/f].
    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        var h = try convIn(x)
        for block in blocks {
            for resnet in block.resnets { h = try resnet(consume h, timeEmbedding: nil) }
            // diffusers pads right and bottom by one before the stride-2 convolution.
            if let down = block.downsampler {
                let padded = h.padded(right: 1, bottom: 1)
                _ = consume h
                h = try down(padded)
            }
        }
        h = try mid(consume h)
        return try convOut(try normOut(consume h, silu: true))
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
        // The channel flow, as the forward pass runs it (every convolution here keeps the size).
        let p = w.prefix
        try convIn.requireSameSize(from: convIn.inChannels, p + "conv_in")
        try require(mid.inChannels == convIn.outChannels, "\(p)mid_block: takes \(mid.inChannels) channels, gets \(convIn.outChannels)")
        var channels = mid.outChannels
        for (i, block) in blocks.enumerated() {
            for (j, resnet) in block.0.enumerated() {
                try require(resnet.inChannels == channels, "\(p)up_blocks.\(i).resnets.\(j): takes \(resnet.inChannels) channels, gets \(channels)")
                channels = resnet.outChannels
            }
            if let up = block.1 {
                try up.requireSameSize(from: channels, "\(p)up_blocks.\(i).upsamplers.0.conv")
                channels = up.outChannels
            }
        }
        try require(normOut.channels == channels, "\(p)conv_norm_out: \(normOut.channels) channels, the up blocks make \(channels)")
        try convOut.requireSameSize(from: channels, p + "conv_out")
    }

    var inChannels: Int { convIn.inChannels }
    var outChannels: Int { convOut.outChannels }

    /// latents [N, latent, h, w] (unscaled) to an image [N, 3, h*f, w*f] in about -1...1.
    func callAsFunction(_ z: Tensor) throws(ModelError) -> Tensor {
        var h = try mid(try convIn(z))
        for block in blocks {
            for resnet in block.resnets { h = try resnet(consume h, timeEmbedding: nil) }
            if let up = block.upsampler {
                let upsampled = h.upsampledNearest2x()
                _ = consume h
                h = try up(upsampled)
            }
        }
        return try convOut(try normOut(consume h, silu: true))
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
        // RGB in and out; the moments are a mean and a log variance of latent_channels each; the decoder takes latents.
        let latent = c.latentChannels
        try require(encoder.inChannels == 3, "encoder.conv_in: takes \(encoder.inChannels) channels, images have 3")
        try require(decoder.outChannels == 3, "decoder.conv_out: makes \(decoder.outChannels) channels, images have 3")
        var moments = encoder.outChannels
        if let quantConv {
            try quantConv.requireSameSize(from: moments, "quant_conv")
            moments = quantConv.outChannels
        }
        try require(moments == 2 * latent, "the encoder makes \(moments) moment channels, 2 x latent_channels is \(2 * latent)")
        if let postQuantConv {
            try postQuantConv.requireSameSize(from: latent, "post_quant_conv")
            try require(postQuantConv.outChannels == decoder.inChannels, "post_quant_conv: makes \(postQuantConv.outChannels) channels, the decoder takes \(decoder.inChannels)")
        } else {
            try require(decoder.inChannels == latent, "decoder.conv_in: takes \(decoder.inChannels) channels, latent_channels is \(latent)")
        }
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
    public func encode(_ image: Tensor, tiling: VAETiling = .automatic) throws(ModelError) -> (mean: Tensor, logVariance: Tensor) {
        guard image.rank == 4, image.shape.allSatisfy({ $0 >= 1 }), image.shape[1] == encoder.inChannels else {
            throw .tensor(.shapeMismatch(operation: "AutoencoderKL.encode (takes [N, \(encoder.inChannels), H, W])", shapes: [image.shape]))
        }
        let tile = configuration.sampleSize
        let moments = try HeapRetention.during(.autoencoder) { () throws(ModelError) -> Tensor in
            if tiling.applies(height: image.shape[2], width: image.shape[3], tile: tile) {
                return try Self.tiled(image, tile: tile, outputTile: tile / scale) { (t: Tensor) throws(ModelError) in
                    let m = try encoder(t)
                    return try quantConv.map { (c: Conv2d) throws(ModelError) in try c(m) } ?? m
                }
            }
            let m = try encoder(image)
            return try quantConv.map { (c: Conv2d) throws(ModelError) in try c(m) } ?? m
        }
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
    public func decode(_ latents: Tensor, tiling: VAETiling = .automatic) throws(ModelError) -> Tensor {
        let latent = postQuantConv?.inChannels ?? decoder.inChannels
        guard latents.rank == 4, latents.shape.allSatisfy({ $0 >= 1 }), latents.shape[1] == latent else {
            throw .tensor(.shapeMismatch(operation: "AutoencoderKL.decode (takes [N, \(latent), h, w])", shapes: [latents.shape]))
        }
        let tile = configuration.sampleSize / scale
        return try HeapRetention.during(.autoencoder) { () throws(ModelError) in
            if tiling.applies(height: latents.shape[2], width: latents.shape[3], tile: tile) {
                return try Self.tiled(latents, tile: tile, outputTile: configuration.sampleSize) { (t: Tensor) throws(ModelError) in
                    try decoder(try postQuantConv.map { (c: Conv2d) throws(ModelError) in try c(t) } ?? t)
                }
            }
            return try decoder(try postQuantConv.map { (c: Conv2d) throws(ModelError) in try c(latents) } ?? latents)
        }
    }

    /// Pixels per latent (8 for SD).
    var scale: Int { 1 << (configuration.blockOutChannels.count - 1) }

    /// diffusers' tiled encode/decode: tiles of `tile` input pixels every 3/4 tile, each run alone, then in order each
    /// tile's first quarter-tile rows and columns blended linearly with the (already blended) tiles above and to the left,
    /// and the first `outputTile - outputTile/4` rows and columns of each kept.
    static func tiled(_ x: Tensor, tile: Int, outputTile: Int, run: (Tensor) throws(ModelError) -> Tensor) throws(ModelError) -> Tensor {
        let stride = Int(Double(tile) * 0.75), blend = Int(Double(outputTile) * 0.25), keep = outputTile - blend
        var rows: [[Tensor]] = []
        for y in Swift.stride(from: 0, to: x.shape[2], by: stride) {
            var row: [Tensor] = []
            for x0 in Swift.stride(from: 0, to: x.shape[3], by: stride) {
                row.append(try run(x.cropped(y: y, x: x0, height: tile, width: tile)))
            }
            rows.append(row)
        }
        for i in rows.indices {
            for j in rows[i].indices {
                if i > 0 { blendRows(from: rows[i - 1][j], into: &rows[i][j], extent: blend) }
                if j > 0 { blendColumns(from: rows[i][j - 1], into: &rows[i][j], extent: blend) }
            }
        }
        let kept = rows.map { $0.map { $0.cropped(y: 0, x: 0, height: keep, width: keep) } }
        let height = kept.reduce(0) { $0 + $1[0].shape[2] }, width = kept[0].reduce(0) { $0 + $1.shape[3] }
        var out = Tensor(zeros: [x.shape[0], kept[0][0].shape[1], height, width])
        var y = 0
        for row in kept {
            var x0 = 0
            for t in row {
                out.paste(t, y: y, x: x0)
                x0 += t.shape[3]
            }
            y += row[0].shape[2]
        }
        return out
    }

    /// diffusers `blend_v`: b's first rows fade in over a's last rows.
    static func blendRows(from a: Tensor, into b: inout Tensor, extent: Int) {
        let e = min(a.shape[2], b.shape[2], extent), planes = b.shape[0] * b.shape[1], (ah, bh, w) = (a.shape[2], b.shape[2], b.shape[3])
        for r in 0..<e {
            let wb = Float(Double(r) / Double(e)), wa = Float(1 - Double(r) / Double(e))
            for p in 0..<planes {
                for c in 0..<w { b.data[(p * bh + r) * w + c] = a.data[(p * ah + ah - e + r) * w + c] * wa + b.data[(p * bh + r) * w + c] * wb }
            }
        }
    }

    /// diffusers `blend_h`: b's first columns fade in over a's last columns.
    static func blendColumns(from a: Tensor, into b: inout Tensor, extent: Int) {
        let e = min(a.shape[3], b.shape[3], extent), planes = b.shape[0] * b.shape[1] * b.shape[2], (aw, bw) = (a.shape[3], b.shape[3])
        for c in 0..<e {
            let wb = Float(Double(c) / Double(e)), wa = Float(1 - Double(c) / Double(e))
            for p in 0..<planes { b.data[p * bw + c] = a.data[p * aw + aw - e + c] * wa + b.data[p * bw + c] * wb }
        }
    }
}

/// When the VAE works in tiles (memory bounded by the tile, results slightly different from one whole pass).
public enum VAETiling: Sendable {
    /// One pass over the whole image.
    case off
    /// Tiles whenever the input is larger than one tile (diffusers' `enable_tiling()`).
    case whenLargerThanTile
    /// Tiles only inputs over four tiles' area (over 1024x1024 pixels for SD1.5): the sizes people generate at stay
    /// exact, large canvases stay within memory.
    case automatic

    func applies(height: Int, width: Int, tile: Int) -> Bool {
        switch self {
        case .off: false
        case .whenLargerThanTile: height > tile || width > tile
        case .automatic: height * width > 4 * tile * tile
        }
    }
}
