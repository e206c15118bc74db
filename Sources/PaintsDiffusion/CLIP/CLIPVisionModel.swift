// PaintsDiffusion/CLIP/CLIPVisionModel: the CLIP vision transformer that turns pixel_values into image tokens and,
// with a projection, an image embedding (IP-Adapter's OpenCLIP ViT-H/14, SDRO's ViT-L/14).
// Matches: transformers CLIPVisionModel and CLIPVisionModelWithProjection (patch convolution without bias, class token,
// learned positions, pre_layrnorm, pre-LayerNorm encoder layers without a mask, post_layernorm on the class token only,
// visual_projection without bias).
import Foundation
import PaintsTensor

/// transformers' CLIPVisionConfig. A member config.json leaves out takes CLIPVisionConfig's default, as transformers
/// does (its files may omit values equal to the defaults).
public struct CLIPVisionConfiguration: Sendable {
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var layers = 12
    public var heads = 12
    public var channels = 3
    public var imageSize = 224
    public var patchSize = 32
    public var activation = CLIPActivation.quickGELU
    public var epsilon: Float = 1e-5
    /// The width of `image_embeds` (used only with a projection).
    public var projectionDim = 512
    /// Whether config.json's `architectures` names CLIPVisionModelWithProjection: the weights must then hold
    /// `visual_projection.weight`.
    public var declaresProjection = false

    /// Patches per side: image_size // patch_size.
    public var grid: Int { imageSize / patchSize }
    /// Tokens per image: the class token and one per patch.
    public var tokens: Int { grid * grid + 1 }

    /// A CLIPVisionConfig, or a full CLIPConfig (its vision part under `vision_config`, projection_dim beside it).
    public init(json top: [String: Any], path: String = "config.json") throws(ModelError) {
        let json = top["vision_config"] as? [String: Any] ?? top
        // Present but not an integer, or out of range, is an error; absent takes the default.
        func int(_ key: String, _ fallback: Int, in range: ClosedRange<Int>, from object: [String: Any]? = nil) throws(ModelError) -> Int {
            guard let value = (object ?? json)[key], !(value is NSNull) else { return fallback }
            guard let n = try configurationInt(value, key, in: range, path: path) else {
                throw .configuration("\(path): \(key) must be an integer, got \(value)")
            }
            return n
        }
        hiddenSize = try int("hidden_size", hiddenSize, in: 1...(1 << 16))
        intermediateSize = try int("intermediate_size", intermediateSize, in: 1...(1 << 18))
        layers = try int("num_hidden_layers", layers, in: 1...256)
        heads = try int("num_attention_heads", heads, in: 1...hiddenSize)
        channels = try int("num_channels", channels, in: 1...16)
        imageSize = try int("image_size", imageSize, in: 1...4096)
        patchSize = try int("patch_size", patchSize, in: 1...imageSize)
        // A full CLIPConfig keeps projection_dim beside vision_config.
        projectionDim = try int("projection_dim", try int("projection_dim", projectionDim, in: 1...(1 << 16)), in: 1...(1 << 16), from: top)
        guard hiddenSize % heads == 0 else { throw .configuration("\(path): hidden_size \(hiddenSize) does not split into \(heads) heads") }
        if let value = json["layer_norm_eps"], !(value is NSNull) {
            guard let e = (value as? NSNumber)?.doubleValue, e.isFinite, e > 0 else { throw .configuration("\(path): layer_norm_eps must be a positive number") }
            epsilon = Float(e)
        }
        if let value = json["hidden_act"], !(value is NSNull) {
            guard let name = value as? String, let act = CLIPActivation(rawValue: name) else {
                throw .configuration("\(path): hidden_act \(value) is not supported (quick_gelu or gelu)")
            }
            activation = act
        }
        declaresProjection = (top["architectures"] as? [Any])?.contains { ($0 as? String) == "CLIPVisionModelWithProjection" } ?? false
    }

    public init(folder: String) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        try self.init(json: json, path: path)
    }
}

public struct CLIPVisionModel: Sendable {
    public let configuration: CLIPVisionConfiguration
    let patchEmbedding: Weight       // [hidden, channels, patch, patch]
    let classEmbedding: Tensor       // [hidden]
    let positionEmbedding: Tensor    // [tokens, hidden]
    let preNorm: LayerNorm
    let layers: [CLIPEncoderLayer]
    let postNorm: LayerNorm
    let projection: Weight?          // [projection, hidden]

    /// What one forward pass gives, as transformers names it.
    public struct Output: Sendable {
        /// [N, tokens, hidden]: the last layer's output, before post_layernorm (SDRO's encoder_hidden_states).
        public var lastHiddenState: Tensor
        /// [N, tokens, hidden]: hidden_states[-2], the last layer's input (IP-Adapter Plus).
        public var penultimateHiddenState: Tensor
        /// [N, hidden]: post_layernorm of the class token (pooler_output).
        public var pooled: Tensor
        /// [N, projection]: visual_projection(pooled) (IP-Adapter), when the model has a projection.
        public var imageEmbeds: Tensor?
    }

    /// Whether the weights hold `visual_projection` (CLIPVisionModelWithProjection).
    public var hasProjection: Bool { projection != nil }

    /// Weights with transformers key names: the tower with or without the `vision_model.` prefix (published files
    /// have it; transformers 5 saves a CLIPVisionModel without), `visual_projection.weight` at the top level.
    /// Biases a file adds where CLIP has none (patch embedding, projection) are ignored, as transformers ignores them.
    public init(configuration c: CLIPVisionConfiguration, weights: WeightStore) throws(ModelError) {
        configuration = c
        let w = weights.contains("vision_model.post_layernorm.weight") ? weights.scoped("vision_model") : weights
        let d = c.hiddenSize
        patchEmbedding = try w.loadWeight("embeddings.patch_embedding.weight")
        try require(patchEmbedding.shape == [d, c.channels, c.patchSize, c.patchSize],
                    "\(w.prefix)embeddings.patch_embedding.weight: \(patchEmbedding.shape) does not fit hidden size \(d), \(c.channels) channels and \(c.patchSize)-pixel patches")
        classEmbedding = try w.load("embeddings.class_embedding", shape: [d])
        positionEmbedding = try w.load("embeddings.position_embedding.weight", shape: [c.tokens, d])
        preNorm = try LayerNorm(w.scoped("pre_layrnorm"), epsilon: c.epsilon)
        postNorm = try LayerNorm(w.scoped("post_layernorm"), epsilon: c.epsilon)
        try require(preNorm.channels == d && postNorm.channels == d, "\(w.prefix)pre_layrnorm / post_layernorm do not fit hidden size \(d)")
        var layers: [CLIPEncoderLayer] = []
        for i in 0..<c.layers {
            let layer = try CLIPEncoderLayer(w.scoped("encoder.layers.\(i)"), hiddenSize: d, heads: c.heads, epsilon: c.epsilon,
                                             activation: c.activation)
            try require(layer.fc1.outFeatures == c.intermediateSize,
                        "\(w.prefix)encoder.layers.\(i).mlp.fc1: \(layer.fc1.outFeatures) features, config.json says intermediate_size \(c.intermediateSize)")
            layers.append(layer)
        }
        self.layers = layers
        if weights.contains("visual_projection.weight") {
            let p = try weights.loadWeight("visual_projection.weight")
            try require(p.rank == 2 && p.shape[1] == d && p.shape[0] >= 1 && (!c.declaresProjection || p.shape[0] == c.projectionDim),
                        "visual_projection.weight: \(p.shape) does not fit hidden size \(d) and projection_dim \(c.projectionDim)")
            projection = p
        } else if c.declaresProjection {
            throw .weights(.missingTensor("visual_projection.weight"))
        } else {
            projection = nil
        }
    }

    /// Loads a transformers `image_encoder` folder (config.json + model.safetensors).
    /// `variant`: the weights file variant to prefer (`WeightStore.componentFile`: "fp16" when present by default).
    public init(folder: String, variant: String? = nil) throws(ModelError) {
        let c = try CLIPVisionConfiguration(folder: folder)
        let weights: WeightStore
        do { weights = try WeightStore(folder: folder, name: "model", variant: variant) } catch { throw .weights(error) }
        try self.init(configuration: c, weights: weights)
    }

    /// The encoder on pixel_values [N, channels, image_size, image_size] (CLIPImageProcessor's output).
    public func callAsFunction(_ pixelValues: Tensor) throws(ModelError) -> Output {
        let c = configuration, d = c.hiddenSize, tokens = c.tokens, patches = tokens - 1
        guard pixelValues.rank == 4, pixelValues.shape[0] >= 1,
              Array(pixelValues.shape.dropFirst()) == [c.channels, c.imageSize, c.imageSize]
        else { throw .configuration("pixel_values must be [N, \(c.channels), \(c.imageSize), \(c.imageSize)], not \(pixelValues.shape)") }
        let batch = pixelValues.shape[0]
        try cancellationPoint()
        // Patches [N, hidden, grid, grid] as tokens [N, grid², hidden], after the class token; positions added to all.
        let patchTokens = try compute { () throws(TensorError) in
            try pixelValues.conv2d(weight: patchEmbedding, bias: nil, stride: c.patchSize, padding: 0)
        }.tokens()
        var h = Tensor(zeros: [batch, tokens, d])
        h.data.withUnsafeMutableBufferPointer { out in
            patchTokens.data.withUnsafeBufferPointer { patch in
                classEmbedding.data.withUnsafeBufferPointer { cls in
                    positionEmbedding.data.withUnsafeBufferPointer { position in
                        for b in 0..<batch {
                            let image = out.baseAddress! + b * tokens * d
                            for i in 0..<d { image[i] = cls[i] + position[i] }
                            for p in 0..<patches {
                                for i in 0..<d { image[(p + 1) * d + i] = patch[(b * patches + p) * d + i] + position[(p + 1) * d + i] }
                            }
                        }
                    }
                }
            }
        }
        h = try preNorm(h)
        var penultimate = h
        for (i, layer) in layers.enumerated() {
            if i == layers.count - 1 { penultimate = h }
            h = try layer(h, causal: false)
        }
        var classTokens = Tensor(zeros: [batch, d])
        for b in 0..<batch { for i in 0..<d { classTokens.data[b * d + i] = h.data[b * tokens * d + i] } }
        let pooled = try postNorm(classTokens)
        let embeds = try projection.map { (p) throws(ModelError) in try compute { () throws(TensorError) in try pooled.linear(weight: p, bias: nil) } }
        return Output(lastHiddenState: h, penultimateHiddenState: penultimate, pooled: pooled, imageEmbeds: embeds)
    }
}
