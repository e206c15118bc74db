// PaintsDiffusion/CLIP/CLIPTextModel: the CLIP text transformer that turns token ids into the UNet's context.
// Matches: transformers CLIPTextModel (causal self-attention, pre-LayerNorm, quick GELU or GELU MLP).
import Foundation
import PaintsTensor

public struct CLIPTextConfiguration: Sendable {
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var maxPositions: Int
    public var epsilon: Float
    /// "quick_gelu" (OpenAI CLIP, SD1.x) or "gelu" (OpenCLIP, SD2.x).
    public var activation: String

    public init(json: [String: Any], path: String = "config.json") throws(ModelError) {
        // Range-checked: zero heads would divide by zero, a negative layer count would make an invalid range.
        func int(_ k: String, in range: ClosedRange<Int> = 1...(1 << 16)) throws(ModelError) -> Int? {
            try configurationInt(json[k], k, in: range, path: path)
        }
        guard let hidden = try int("hidden_size"), let layers = try int("num_hidden_layers", in: 1...256),
              let heads = try int("num_attention_heads")
        else {
            throw .configuration("\(path): hidden_size, num_hidden_layers and num_attention_heads are required")
        }
        guard hidden % heads == 0 else { throw .configuration("\(path): hidden_size \(hidden) does not split into \(heads) heads") }
        hiddenSize = hidden
        self.layers = layers
        self.heads = heads
        maxPositions = try int("max_position_embeddings") ?? 77
        epsilon = Float((json["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-5)
        activation = json["hidden_act"] as? String ?? "quick_gelu"
        guard ["quick_gelu", "gelu"].contains(activation) else { throw .configuration("\(path): hidden_act \(activation) is not supported") }
    }

    public init(folder: String) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        try self.init(json: json, path: path)
    }
}

public struct CLIPTextModel: Sendable {
    public let configuration: CLIPTextConfiguration
    let tokenEmbedding: Weight       // [vocab, hidden]
    let positionEmbedding: Tensor    // [positions, hidden]
    let layers: [CLIPEncoderLayer]
    let finalNorm: LayerNorm
    /// LoRAs bound to this copy (`LoRA.applied(to:weight:)`); nil runs the base weights alone.
    public var lora: LoRABinding?

    /// Weights with transformers key names, with or without the `text_model.` prefix of published checkpoints.
    public init(configuration c: CLIPTextConfiguration, weights: WeightStore) throws(ModelError) {
        configuration = c
        let w = weights.contains("text_model.final_layer_norm.weight") ? weights.scoped("text_model") : weights
        tokenEmbedding = try w.loadWeight("embeddings.token_embedding.weight")
        positionEmbedding = try w.load("embeddings.position_embedding.weight")
        guard tokenEmbedding.rank == 2, tokenEmbedding.shape[1] == c.hiddenSize, positionEmbedding.shape == [c.maxPositions, c.hiddenSize] else {
            throw .configuration("embedding shapes \(tokenEmbedding.shape), \(positionEmbedding.shape) do not fit hidden size \(c.hiddenSize)")
        }
        guard let activation = CLIPActivation(rawValue: c.activation) else {
            throw .configuration("hidden_act \(c.activation) is not supported")
        }
        var layers: [CLIPEncoderLayer] = []
        for i in 0..<c.layers {
            layers.append(try CLIPEncoderLayer(w.scoped("encoder.layers.\(i)"), hiddenSize: c.hiddenSize, heads: c.heads,
                                               epsilon: c.epsilon, activation: activation))
        }
        self.layers = layers
        finalNorm = try LayerNorm(w.scoped("final_layer_norm"), epsilon: c.epsilon)
    }

    /// Loads a transformers `text_encoder` folder (config.json + model.safetensors).
    /// `variant`: the weights file variant to prefer (`WeightStore.componentFile`: "fp16" when present by default).
    public init(folder: String, variant: String? = nil) throws(ModelError) {
        let c = try CLIPTextConfiguration(folder: folder)
        let weights: WeightStore
        do { weights = try WeightStore(folder: folder, name: "model", variant: variant) } catch { throw .weights(error) }
        try self.init(configuration: c, weights: weights)
    }

    /// Hidden states [B, L, hidden] for token ids [B][L]. `clipSkip` = 0 uses the last layer; k > 0 the output of the
    /// layer k before it (A1111's "CLIP skip k+1"); both pass through the final layer norm, as diffusers does.
    public func encode(_ ids: [[Int]], clipSkip: Int = 0) throws(ModelError) -> Tensor {
        if let lora, LoRABinding.current !== lora {
            return try LoRABinding.with(lora) { () throws(ModelError) in try encode(ids, clipSkip: clipSkip) }
        }
        return try HeapRetention.during(.textEncoder) { () throws(ModelError) in try encoded(ids, clipSkip: clipSkip) }
    }

    private func encoded(_ ids: [[Int]], clipSkip: Int) throws(ModelError) -> Tensor {
        let batch = ids.count, length = ids.first?.count ?? 0, d = configuration.hiddenSize
        guard batch > 0, length >= 1, length <= configuration.maxPositions, ids.allSatisfy({ $0.count == length }), clipSkip >= 0, clipSkip < layers.count else {
            throw .configuration("token ids must be \(batch) rows of equal length <= \(configuration.maxPositions), clip skip in 0..<\(layers.count)")
        }
        let vocabulary = tokenEmbedding.shape[0]
        var h = Tensor(zeros: [batch, length, d])
        for (b, row) in ids.enumerated() {
            for (p, id) in row.enumerated() {
                guard (0..<vocabulary).contains(id) else { throw .configuration("token id \(id) is outside the vocabulary of \(vocabulary)") }
                h.data.withUnsafeMutableBufferPointer { tokenEmbedding.row(id, into: $0.baseAddress! + (b * length + p) * d) }
                for i in 0..<d { h.data[(b * length + p) * d + i] += positionEmbedding.data[p * d + i] }
            }
        }
        for layer in layers.prefix(layers.count - clipSkip) { h = try layer(h, causal: true) }
        return try finalNorm(h)
    }
}
