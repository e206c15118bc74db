// PaintsDiffusion/VAE/AutoencoderTiny: TAESD (madebyollin/taesd), the tiny distilled VAE: image <-> latent with 3x3
// convolutions, ReLU and nearest upsampling only (no attention, no GroupNorm), for previews and fast decodes.
// Matches: diffusers AutoencoderTiny (EncoderTiny / DecoderTiny of AutoencoderTinyBlock), its folder layout
// (config.json + diffusion_pytorch_model.safetensors with keys encoder.layers.N... / decoder.layers.N...).
//
// Conventions (diffusers 0.42.1, checked in Tests/Fixtures/taesd/generate.py):
// - Latents are the ones the UNet sees: SD latents already multiplied by the SD VAE's scaling_factor (0.18215; SDXL's
//   TAESDXL 0.13025). AutoencoderTiny's own scaling_factor is 1.0 and shift_factor 0.0, so diffusers' pipelines,
//   which decode `vae.decode(latents / scaling_factor)` and encode `scaling_factor * encode(image).latents`, hand it
//   their latents unchanged. `decode` and `encode` here apply this model's scaling_factor and shift_factor the way
//   diffusers' pipelines do (`latents / scaling + shift` before decoding, `(latents - shift) * scaling` after
//   encoding), which is the identity for every published TAESD config.
// - Images are -1...1 on both sides, as diffusers' AutoencoderKL: EncoderTiny maps its input to 0...1 before its
//   layers, DecoderTiny maps its 0...1 output back to -1...1 (x * 2 - 1), unclamped. Clamp and map to 0...1 for display.
// - latent_magnitude / latent_shift are read but unused: diffusers' scale_latents / unscale_latents (x / 6 + 0.5,
//   clamped) serve only forward()'s 8-bit round trip, never encode or decode.
import Foundation
import PaintsTensor

public struct AutoencoderTinyConfiguration: Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var encoderBlockOutChannels: [Int]
    public var decoderBlockOutChannels: [Int]
    /// Blocks per encoder stage (the first stage's convolution keeps the size, the others stride 2).
    public var encoderBlocks: [Int]
    /// Blocks per decoder stage (every stage but the last ends upsampling 2x and a convolution).
    public var decoderBlocks: [Int]
    public var latentChannels: Int
    /// "relu" (TAESD), "silu"/"swish" or "gelu": the activation inside the blocks and after the decoder's first
    /// convolution; each block's final (fuse) activation is always ReLU, as in diffusers.
    public var activation: String
    public var latentMagnitude: Float
    public var latentShift: Float
    /// 1.0 for TAESD: the latents it takes are the UNet's.
    public var scalingFactor: Float
    public var shiftFactor: Float

    public init(json: [String: Any], path: String = "config.json") throws(ModelError) {
        let size = 1...(1 << 16)
        inChannels = try configurationInt(json["in_channels"], "in_channels", in: size, path: path) ?? 3
        outChannels = try configurationInt(json["out_channels"], "out_channels", in: size, path: path) ?? 3
        latentChannels = try configurationInt(json["latent_channels"], "latent_channels", in: size, path: path) ?? 4
        encoderBlockOutChannels = try configurationInts(json["encoder_block_out_channels"], "encoder_block_out_channels", in: size, path: path) ?? [64, 64, 64, 64]
        decoderBlockOutChannels = try configurationInts(json["decoder_block_out_channels"], "decoder_block_out_channels", in: size, path: path) ?? [64, 64, 64, 64]
        encoderBlocks = try configurationInts(json["num_encoder_blocks"], "num_encoder_blocks", in: 0...64, path: path) ?? [1, 3, 3, 3]
        decoderBlocks = try configurationInts(json["num_decoder_blocks"], "num_decoder_blocks", in: 0...64, path: path) ?? [3, 3, 3, 1]
        guard (1...8).contains(encoderBlocks.count), encoderBlocks.count == encoderBlockOutChannels.count else {
            throw .configuration("\(path): num_encoder_blocks and encoder_block_out_channels must list the same 1 to 8 stages")
        }
        guard (1...8).contains(decoderBlocks.count), decoderBlocks.count == decoderBlockOutChannels.count else {
            throw .configuration("\(path): num_decoder_blocks and decoder_block_out_channels must list the same 1 to 8 stages")
        }
        activation = (json["act_fn"] as? String) ?? "relu"
        guard ["relu", "silu", "swish", "gelu"].contains(activation) else {
            throw .configuration("\(path): act_fn \(activation) is not supported (relu, silu, swish, gelu)")
        }
        let upsample = (json["upsample_fn"] as? String) ?? "nearest"
        guard upsample == "nearest" else { throw .configuration("\(path): upsample_fn \(upsample) is not supported (nearest)") }
        let factor = try configurationInt(json["upsampling_scaling_factor"], "upsampling_scaling_factor", in: 1...64, path: path) ?? 2
        guard factor == 2 else { throw .configuration("\(path): upsampling_scaling_factor \(factor) is not supported (2)") }
        func number(_ key: String, _ fallback: Double) throws(ModelError) -> Float {
            guard let value = json[key], !(value is NSNull) else { return Float(fallback) }
            guard let n = value as? NSNumber, n.doubleValue.isFinite else { throw .configuration("\(path): \(key) must be a finite number") }
            return Float(n.doubleValue)
        }
        latentMagnitude = try number("latent_magnitude", 3)
        latentShift = try number("latent_shift", 0.5)
        scalingFactor = try number("scaling_factor", 1)
        shiftFactor = try number("shift_factor", 0)
        guard scalingFactor != 0 else { throw .configuration("\(path): scaling_factor must not be 0") }
    }

    public init(folder: String) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        try self.init(json: json, path: path)
    }
}

/// The activation of a TAESD model, applied element-wise.
enum TinyActivation: Sendable {
    case relu, silu, gelu

    init(_ name: String) {
        switch name {
        case "silu", "swish": self = .silu
        case "gelu": self = .gelu
        default: self = .relu
        }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .relu: x.map { $0 > 0 ? $0 : 0 }
        case .silu: x.silu()
        case .gelu: x.gelu()
        }
    }
}

/// diffusers `AutoencoderTinyBlock`: relu(conv(act(conv(act(conv(x))))) + skip(x)), skip the identity or a 1x1
/// convolution without bias when the widths differ.
struct AutoencoderTinyBlock: Sendable {
    let conv0: Conv2d, conv2: Conv2d, conv4: Conv2d
    let skip: Conv2d?
    let activation: TinyActivation

    init(_ w: WeightStore, activation: TinyActivation) throws(ModelError) {
        conv0 = try Conv2d(w.scoped("conv.0"))
        conv2 = try Conv2d(w.scoped("conv.2"))
        conv4 = try Conv2d(w.scoped("conv.4"))
        skip = w.contains("skip.weight") ? try Conv2d(w.scoped("skip")) : nil
        self.activation = activation
        let p = w.prefix
        try conv2.requireSameSize(from: conv0.outChannels, p + "conv.2")
        try conv4.requireSameSize(from: conv2.outChannels, p + "conv.4")
        try require(conv0.keepsSize, "\(p)conv.0: a \(conv0.weight.shape[2])x\(conv0.weight.shape[3]) kernel does not keep the feature map's size")
        if let skip {
            try skip.requireSameSize(from: conv0.inChannels, p + "skip")
            try require(skip.outChannels == conv4.outChannels, "\(p)skip: makes \(skip.outChannels) channels, the convolutions \(conv4.outChannels)")
        } else {
            try require(conv0.inChannels == conv4.outChannels, "\(p)conv: maps \(conv0.inChannels) channels to \(conv4.outChannels) without a skip convolution")
        }
    }

    var inChannels: Int { conv0.inChannels }
    var outChannels: Int { conv4.outChannels }

    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        try cancellationPoint()
        let h = try conv4(activation(try conv2(activation(try conv0(x)))))
        let fuse = TinyActivation.relu
        return fuse(h + (try skip.map { (s: Conv2d) throws(ModelError) in try s(x) } ?? x))
    }
}

/// diffusers `EncoderTiny`: per stage a convolution (the first keeps the size and has a bias, the others stride 2
/// without bias) and its blocks, then a convolution to the latent channels. Keys encoder.layers.0, 1, ...
public struct TinyEncoder: Sendable {
    let stages: [(conv: Conv2d, blocks: [AutoencoderTinyBlock])]
    let convOut: Conv2d

    init(_ w: WeightStore, _ c: AutoencoderTinyConfiguration) throws(ModelError) {
        let activation = TinyActivation(c.activation)
        var index = 0
        var stages: [(Conv2d, [AutoencoderTinyBlock])] = []
        var channels = c.inChannels
        let p = w.prefix + "layers."
        for (i, count) in c.encoderBlocks.enumerated() {
            let conv = try Conv2d(w.scoped("layers.\(index)"), stride: i == 0 ? 1 : 2)
            if i == 0 {
                try conv.requireSameSize(from: channels, "\(p)\(index)")
            } else {
                try require(conv.weight.shape[2] == 3 && conv.weight.shape[3] == 3 && conv.inChannels == channels,
                            "\(p)\(index): \(conv.weight.shape) is not a 3x3 convolution of \(channels) channels")
            }
            channels = conv.outChannels
            index += 1
            var blocks: [AutoencoderTinyBlock] = []
            for _ in 0..<count {
                let block = try AutoencoderTinyBlock(w.scoped("layers.\(index)"), activation: activation)
                try require(block.inChannels == channels, "\(p)\(index): takes \(block.inChannels) channels, gets \(channels)")
                channels = block.outChannels
                blocks.append(block)
                index += 1
            }
            stages.append((conv, blocks))
        }
        self.stages = stages
        convOut = try Conv2d(w.scoped("layers.\(index)"))
        try convOut.requireSameSize(from: channels, "\(p)\(index)")
        try require(convOut.outChannels == c.latentChannels, "\(p)\(index): makes \(convOut.outChannels) channels, latent_channels is \(c.latentChannels)")
    }

    var inChannels: Int { stages[0].conv.inChannels }
    /// Pixels per latent.
    var scale: Int { 1 << (stages.count - 1) }

    /// image [N, C, H, W] in 0...1 to latents [N, latent, ceil(H/f), ceil(W/f)].
    func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        var h = x
        for stage in stages {
            try cancellationPoint()
            h = try stage.conv(h)
            for block in stage.blocks { h = try block(h) }
        }
        return try convOut(h)
    }
}

/// diffusers `DecoderTiny`: tanh(x/3)*3, a convolution and the activation, then per stage its blocks and (but the last)
/// nearest 2x upsampling and a convolution without bias; the last stage's convolution makes the image (with bias).
/// Keys decoder.layers.0 (conv), 1 (activation), 2, ... (upsamplers take an index and have no weights).
public struct TinyDecoder: Sendable {
    let convIn: Conv2d
    let stages: [(blocks: [AutoencoderTinyBlock], upsample: Bool, conv: Conv2d)]
    let activation: TinyActivation

    init(_ w: WeightStore, _ c: AutoencoderTinyConfiguration) throws(ModelError) {
        activation = TinyActivation(c.activation)
        let p = w.prefix + "layers."
        convIn = try Conv2d(w.scoped("layers.0"))
        try convIn.requireSameSize(from: c.latentChannels, p + "0")
        var channels = convIn.outChannels
        var index = 2
        var stages: [([AutoencoderTinyBlock], Bool, Conv2d)] = []
        for (i, count) in c.decoderBlocks.enumerated() {
            var blocks: [AutoencoderTinyBlock] = []
            for _ in 0..<count {
                let block = try AutoencoderTinyBlock(w.scoped("layers.\(index)"), activation: activation)
                try require(block.inChannels == channels, "\(p)\(index): takes \(block.inChannels) channels, gets \(channels)")
                channels = block.outChannels
                blocks.append(block)
                index += 1
            }
            let last = i == c.decoderBlocks.count - 1
            if !last { index += 1 }  // nn.Upsample
            let conv = try Conv2d(w.scoped("layers.\(index)"))
            try conv.requireSameSize(from: channels, "\(p)\(index)")
            channels = conv.outChannels
            index += 1
            stages.append((blocks, !last, conv))
        }
        self.stages = stages
        try require(channels == c.outChannels, "\(p)\(index - 1): makes \(channels) channels, out_channels is \(c.outChannels)")
    }

    var inChannels: Int { convIn.inChannels }
    /// Pixels per latent.
    var scale: Int { 1 << (stages.count - 1) }

    /// latents [N, latent, h, w] to an image [N, C, h*f, w*f] in about 0...1 (before diffusers' x * 2 - 1).
    func callAsFunction(_ z: Tensor) throws(ModelError) -> Tensor {
        try cancellationPoint()
        var h = activation(try convIn(z.map { Foundation.tanh($0 / 3) * 3 }))
        for stage in stages {
            for block in stage.blocks { h = try block(h) }
            try cancellationPoint()
            if stage.upsample { h = h.upsampledNearest2x() }
            h = try stage.conv(h)
        }
        return h
    }
}

/// TAESD in diffusers' `AutoencoderTiny` layout. `decode` takes the latents the UNet sees (no unscaling by the SD VAE's
/// 0.18215) and returns an image in about -1...1; `encode` takes an image in -1...1 and returns UNet latents.
public struct AutoencoderTiny: Sendable {
    public let configuration: AutoencoderTinyConfiguration
    let encoder: TinyEncoder
    let decoder: TinyDecoder

    public init(configuration c: AutoencoderTinyConfiguration, weights w: WeightStore) throws(ModelError) {
        configuration = c
        encoder = try TinyEncoder(w.scoped("encoder"), c)
        decoder = try TinyDecoder(w.scoped("decoder"), c)
    }

    /// Loads a diffusers `AutoencoderTiny` folder (config.json + diffusion_pytorch_model.safetensors, as
    /// madebyollin/taesd and taesdxl publish them). `variant`: see `WeightStore.componentFile`.
    public init(folder: String, variant: String? = nil) throws(ModelError) {
        let c = try AutoencoderTinyConfiguration(folder: folder)
        let weights: WeightStore
        do { weights = try WeightStore(folder: folder, name: "diffusion_pytorch_model", variant: variant) } catch { throw .weights(error) }
        try self.init(configuration: c, weights: weights)
    }

    /// Pixels per latent when decoding (8 for TAESD).
    public var decoderScale: Int { decoder.scale }
    /// Pixels per latent when encoding (8 for TAESD).
    public var encoderScale: Int { encoder.scale }

    /// The UNet's latents [N, latent, h, w] (for SD, already times 0.18215) to an image [N, 3, 8h, 8w] in about -1...1,
    /// unclamped (diffusers `AutoencoderTiny.decode(latents / scaling_factor + shift_factor).sample`; the factors are 1
    /// and 0 for TAESD, so the latents go in unchanged).
    public func decode(_ latents: Tensor) throws(ModelError) -> Tensor {
        guard latents.rank == 4, latents.shape.allSatisfy({ $0 >= 1 }), latents.shape[1] == decoder.inChannels else {
            throw .tensor(.shapeMismatch(operation: "AutoencoderTiny.decode (takes [N, \(decoder.inChannels), h, w])", shapes: [latents.shape]))
        }
        let (scaling, shift) = (configuration.scalingFactor, configuration.shiftFactor)
        let z = scaling == 1 && shift == 0 ? latents : latents.map { $0 / scaling + shift }
        return try decoder(z).map { $0 * 2 - 1 }
    }

    /// An image [N, 3, H, W] in -1...1 to the UNet's latents [N, latent, ceil(H/8), ceil(W/8)] (diffusers
    /// `(AutoencoderTiny.encode(image).latents - shift_factor) * scaling_factor`, unchanged for TAESD). Deterministic:
    /// there is no distribution to sample.
    public func encode(_ image: Tensor) throws(ModelError) -> Tensor {
        guard image.rank == 4, image.shape.allSatisfy({ $0 >= 1 }), image.shape[1] == encoder.inChannels else {
            throw .tensor(.shapeMismatch(operation: "AutoencoderTiny.encode (takes [N, \(encoder.inChannels), H, W])", shapes: [image.shape]))
        }
        let latents = try encoder(image.map { ($0 + 1) / 2 })
        let (scaling, shift) = (configuration.scalingFactor, configuration.shiftFactor)
        return scaling == 1 && shift == 0 ? latents : latents.map { ($0 - shift) * scaling }
    }
}
