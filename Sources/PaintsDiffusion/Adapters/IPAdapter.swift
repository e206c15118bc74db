// PaintsDiffusion/Adapters/IPAdapter: image prompts through the UNet's cross-attention (IP-Adapter for SD1.5, its Plus
// variant, and the Style Components layout): an image projection to a few context tokens, and, per cross-attention
// layer, key and value projections of those tokens whose attention is added to the text's (decoupled cross-attention).
// Matches: tencent-ailab IP-Adapter (ImageProjModel, MLPProjModel, Resampler, IPAttnProcessor) as diffusers loads the
// published files (`_load_ip_adapter_weights`, `IPAdapterAttnProcessor2_0`): image tokens attend with the same query,
// no mask, `text + scale * image` before `to_out`.
import Foundation
import PaintsTensor

public struct IPAdapter: Sendable {
    /// The image projection: an embedding to `tokenCount` tokens of the text context's width.
    public enum Projection: Sendable {
        /// ImageProjModel (ip-adapter_sd15): Linear(E -> T*D), LayerNorm(D).
        case linear(Linear, norm: LayerNorm)
        /// MLPProjModel (ip-adapter-full; Style Components): Linear(E -> H), GELU, Linear(H -> T*D), LayerNorm(D).
        case mlp(Linear, Linear, norm: LayerNorm)
        /// The Plus Resampler, from an image encoder's hidden states [N, S, W].
        case resampler(Resampler)
    }

    public let projection: Projection
    /// `to_k_ip` and `to_v_ip` of each cross-attention layer, in the UNet's transformer block order. A key is nil when
    /// the file ships values only (the Style Components layout, one token: attention over one key is that value).
    let keys: [Linear?]
    let values: [Linear]

    /// Width of each image token (the text context's width: 768 for SD1.5).
    public let tokenWidth: Int
    /// How many tokens one image makes.
    public let tokenCount: Int

    /// Whether the projection takes hidden states [N, S, W] (Plus: the image encoder's penultimate layer) rather than
    /// one embedding per image [N, E].
    public var takesHiddenStates: Bool { if case .resampler = projection { return true } else { return false } }

    /// Width of what the projection takes: E of the embedding, or W of the hidden states.
    public var inputWidth: Int {
        switch projection {
        case .linear(let l, _): l.inFeatures
        case .mlp(let l, _, _): l.inFeatures
        case .resampler(let r): r.inputWidth
        }
    }

    /// The cross-attention layers the file carries.
    public var layerCount: Int { values.count }

    /// Reads the published layout (`image_proj.*`, `ip_adapter.N.to_k_ip/to_v_ip.weight` with N the odd processor
    /// indices 1, 3, 5...). The projection's kind, widths and token count come from the tensors.
    public init(weights w: WeightStore, path: String = "ip-adapter") throws(ModelError) {
        let p = w.scoped("image_proj")
        let width: Int
        if p.contains("latents") {
            let r = try Resampler(p, path: path)
            projection = .resampler(r)
            width = r.outputWidth
            tokenCount = r.queryCount
        } else if p.contains("proj.0.weight") {
            let first = try Linear(p.scoped("proj.0")), second = try Linear(p.scoped("proj.2"))
            let norm = try LayerNorm(p.contains("proj.3.weight") ? p.scoped("proj.3") : p.scoped("norm"))
            try require(second.inFeatures == first.outFeatures, "\(path): image_proj.proj.2 takes \(second.inFeatures) features, proj.0 makes \(first.outFeatures)")
            projection = .mlp(first, second, norm: norm)
            width = norm.weight.shape[0]
            try require(second.outFeatures % width == 0, "\(path): image_proj makes \(second.outFeatures) features, not whole \(width)-wide tokens")
            tokenCount = second.outFeatures / width
        } else if p.contains("proj.weight") {
            let linear = try Linear(p.scoped("proj")), norm = try LayerNorm(p.scoped("norm"))
            projection = .linear(linear, norm: norm)
            width = norm.weight.shape[0]
            try require(linear.outFeatures % width == 0, "\(path): image_proj makes \(linear.outFeatures) features, not whole \(width)-wide tokens")
            tokenCount = linear.outFeatures / width
        } else {
            throw .configuration("\(path): no image projection (image_proj.proj, image_proj.proj.0 or image_proj.latents)")
        }
        tokenWidth = width
        var keys: [Linear?] = [], values: [Linear] = []
        while w.contains("ip_adapter.\(2 * values.count + 1).to_v_ip.weight") {
            try require(values.count < 4096, "\(path): too many ip_adapter layers")
            let s = w.scoped("ip_adapter.\(2 * values.count + 1)")
            let value = try Linear(s.scoped("to_v_ip"))
            let key = s.contains("to_k_ip.weight") ? try Linear(s.scoped("to_k_ip")) : nil
            try require(value.inFeatures == width && (key.map { $0.inFeatures == width && $0.outFeatures == value.outFeatures } ?? true),
                        "\(path): ip_adapter.\(2 * values.count + 1): projections of \(value.weight.shape) and \(key?.weight.shape ?? []) do not take \(width)-wide tokens alike")
            keys.append(key)
            values.append(value)
        }
        try require(!values.isEmpty, "\(path): no ip_adapter.1.to_v_ip.weight")
        try require(keys.allSatisfy { $0 != nil } || tokenCount == 1,
                    "\(path): to_v_ip without to_k_ip needs one image token (the file makes \(tokenCount))")
        self.keys = keys
        self.values = values
    }

    /// Loads a `.safetensors` file.
    public init(path: String) throws(ModelError) {
        let weights: WeightStore
        do { weights = try WeightStore(path: path) } catch { throw .weights(error) }
        try self.init(weights: weights, path: path)
    }

    /// The image tokens [N, T, D] of `embeds`: [N, E] image embeddings, or [N, S, W] hidden states for a resampler.
    public func imageTokens(_ embeds: Tensor) throws(ModelError) -> Tensor {
        let rank = takesHiddenStates ? 3 : 2
        guard embeds.rank == rank, embeds.shape.allSatisfy({ $0 >= 1 }), embeds.shape[rank - 1] == inputWidth else {
            throw .tensor(.shapeMismatch(operation: "IPAdapter image projection", shapes: [embeds.shape, takesHiddenStates ? [-1, -1, inputWidth] : [-1, inputWidth]]))
        }
        let n = embeds.shape[0]
        switch projection {
        case .linear(let linear, let norm):
            return try norm(try linear(embeds).reshaped([n, tokenCount, tokenWidth]))
        case .mlp(let first, let second, let norm):
            return try norm(try second(try first(embeds).gelu()).reshaped([n, tokenCount, tokenWidth]))
        case .resampler(let r):
            return try r(embeds)
        }
    }

    /// A copy of `unet` whose cross-attention layers also attend to the image `tokens` [B, T, D] (B the batch the
    /// UNet will run, e.g. [uncond; cond] for classifier-free guidance), the image part weighted by `scale`. The
    /// tokens' keys and values are projected here, once for the whole run.
    public func applied(to unet: UNet2DConditionModel, tokens: Tensor, scale: Float) throws(ModelError) -> UNet2DConditionModel {
        guard tokens.rank == 3, tokens.shape[1] == tokenCount, tokens.shape[2] == tokenWidth else {
            throw .tensor(.shapeMismatch(operation: "IPAdapter tokens", shapes: [tokens.shape, [-1, tokenCount, tokenWidth]]))
        }
        guard unet.transformerBlockCount == layerCount else {
            throw .configuration("the IP-Adapter has \(layerCount) cross-attention layers, the UNet \(unet.transformerBlockCount)")
        }
        var out = unet
        try out.updateTransformerBlocks { (k, block) throws(ModelError) in
            let inner = block.crossAttention.innerFeatures
            guard values[k].outFeatures == inner else {
                throw .configuration("ip_adapter.\(2 * k + 1).to_v_ip makes \(values[k].outFeatures) features, the UNet's attn2 there \(inner)")
            }
            block.crossAttention.processor = DecoupledImageAttention(
                text: block.crossAttention.processor, imageKeys: try keys[k].map { l throws(ModelError) in try l(tokens) },
                imageValues: try values[k](tokens), scale: scale)
        }
        return out
    }
}

/// Cross-attention to the text, plus `scale` times attention with the same queries to the image tokens' keys and values.
struct DecoupledImageAttention: AttentionProcessor {
    let text: any AttentionProcessor
    /// [B, T, inner]; nil with one token (its attention weight is 1 whatever its key).
    let imageKeys: Tensor?
    let imageValues: Tensor
    let scale: Float

    func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int) throws(ModelError) -> Tensor {
        var out = try text.attention(query: query, key: key, value: value, heads: heads)
        let (batch, length, width) = (query.shape[0], query.shape[1], query.shape[2])
        guard imageValues.shape[0] == batch, imageValues.shape[2] == width else {
            throw .tensor(.shapeMismatch(operation: "IP-Adapter attention", shapes: [query.shape, imageValues.shape]))
        }
        if let imageKeys, imageValues.shape[1] > 1 {
            let image = try compute { () throws(TensorError) in try Tensor.attention(query: query, key: imageKeys, value: imageValues, heads: heads) }
            let s = scale
            out.data.withUnsafeMutableBufferPointer { o in
                image.data.withUnsafeBufferPointer { i in for j in 0..<o.count { o[j] += s * i[j] } }
            }
        } else {
            // One token: every query takes its value.
            out.data.withUnsafeMutableBufferPointer { o in
                imageValues.data.withUnsafeBufferPointer { v in
                    for b in 0..<batch {
                        for l in 0..<length {
                            let row = (b * length + l) * width, token = b * imageValues.shape[1] * width
                            for c in 0..<width { o[row + c] += scale * v[token + c] }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// IP-Adapter Plus's image projection (IP-Adapter resampler.py, diffusers IPAdapterPlusImageProjection): learned
/// queries that attend, layer by layer, to the projected hidden states and to themselves (Perceiver attention), each
/// layer followed by a feed-forward, both with residuals; then a projection and a LayerNorm.
public struct Resampler: Sendable {
    struct Layer: Sendable {
        let norm1: LayerNorm, norm2: LayerNorm
        let toQ: Linear, toKV: Linear, toOut: Linear
        let ffNorm: LayerNorm, ffIn: Linear, ffOut: Linear
    }
    let latents: Tensor
    let projIn: Linear, projOut: Linear, normOut: LayerNorm
    let layers: [Layer]
    /// Heads of the Perceiver attention: its inner width / 64, as diffusers reads the published files.
    let heads: Int

    var inputWidth: Int { projIn.inFeatures }
    var outputWidth: Int { projOut.outFeatures }
    var queryCount: Int { latents.shape[1] }

    init(_ w: WeightStore, path: String) throws(ModelError) {
        latents = try w.load("latents")
        projIn = try Linear(w.scoped("proj_in"))
        projOut = try Linear(w.scoped("proj_out"))
        normOut = try LayerNorm(w.scoped("norm_out"))
        var layers: [Layer] = []
        while w.contains("layers.\(layers.count).0.to_q.weight") {
            try require(layers.count < 256, "\(path): too many resampler layers")
            let a = w.scoped("layers.\(layers.count).0"), f = w.scoped("layers.\(layers.count).1")
            layers.append(Layer(norm1: try LayerNorm(a.scoped("norm1")), norm2: try LayerNorm(a.scoped("norm2")),
                                toQ: try Linear(a.scoped("to_q")), toKV: try Linear(a.scoped("to_kv")), toOut: try Linear(a.scoped("to_out")),
                                ffNorm: try LayerNorm(f.scoped("0")), ffIn: try Linear(f.scoped("1")), ffOut: try Linear(f.scoped("3"))))
        }
        self.layers = layers
        try require(!layers.isEmpty, "\(path): the resampler has no layers (image_proj.layers.0.0.to_q.weight)")
        let dim = projIn.outFeatures, inner = layers[0].toQ.outFeatures
        heads = max(1, inner / 64)
        try require(latents.rank == 3 && latents.shape[0] == 1 && latents.shape[1] >= 1 && latents.shape[2] == dim,
                    "\(path): image_proj.latents is \(latents.shape), expected [1, queries, \(dim)]")
        try require(inner % heads == 0, "\(path): attention width \(inner) does not split into heads of 64")
        for (i, l) in layers.enumerated() {
            try require(l.norm1.weight.shape[0] == dim && l.norm2.weight.shape[0] == dim && l.toQ.inFeatures == dim && l.toKV.inFeatures == dim
                        && l.toQ.outFeatures == inner && l.toKV.outFeatures == 2 * inner && l.toOut.inFeatures == inner && l.toOut.outFeatures == dim
                        && l.ffNorm.weight.shape[0] == dim && l.ffIn.inFeatures == dim && l.ffOut.inFeatures == l.ffIn.outFeatures && l.ffOut.outFeatures == dim,
                        "\(path): image_proj.layers.\(i) does not map the \(dim)-wide queries onto themselves")
        }
        try require(projOut.inFeatures == dim && normOut.weight.shape[0] == projOut.outFeatures,
                    "\(path): image_proj.proj_out \(projOut.weight.shape) and norm_out do not follow the \(dim)-wide queries")
    }

    /// hidden [N, S, W] -> tokens [N, queries, outputWidth].
    func callAsFunction(_ hidden: Tensor) throws(ModelError) -> Tensor {
        let n = hidden.shape[0]
        let x = try projIn(hidden)
        var queries = Tensor(shape: [n] + Array(latents.shape.dropFirst()), data: Array((0..<n).map { _ in latents.data }.joined()))
        for l in layers {
            try cancellationPoint()
            let normedX = try l.norm1(x), normedQ = try l.norm2(queries)
            let kv = try l.toKV(Self.concatenatingTokens(normedX, normedQ))
            let (k, v) = Self.halves(kv)
            let q = try l.toQ(normedQ)
            let attended = try compute { () throws(TensorError) in try Tensor.attention(query: q, key: k, value: v, heads: heads) }
            queries = queries + (try l.toOut(attended))
            queries = queries + (try l.ffOut(try l.ffIn(try l.ffNorm(queries)).gelu()))
        }
        return try normOut(try projOut(queries))
    }

    /// [N, A, C] and [N, B, C] -> [N, A+B, C].
    static func concatenatingTokens(_ a: Tensor, _ b: Tensor) -> Tensor {
        let (n, c) = (a.shape[0], a.shape[2]), (la, lb) = (a.shape[1], b.shape[1])
        var data: [Float] = []
        data.reserveCapacity(n * (la + lb) * c)
        for i in 0..<n {
            data += a.data[(i * la * c)..<((i + 1) * la * c)]
            data += b.data[(i * lb * c)..<((i + 1) * lb * c)]
        }
        return Tensor(shape: [n, la + lb, c], data: data)
    }

    /// [N, L, 2C] -> its first and second C features per token.
    static func halves(_ x: Tensor) -> (Tensor, Tensor) {
        let (n, l, c2) = (x.shape[0], x.shape[1], x.shape[2]), c = c2 / 2
        var a = [Float](), b = [Float]()
        a.reserveCapacity(n * l * c)
        b.reserveCapacity(n * l * c)
        for row in 0..<(n * l) {
            a += x.data[(row * c2)..<(row * c2 + c)]
            b += x.data[(row * c2 + c)..<((row + 1) * c2)]
        }
        return (Tensor(shape: [n, l, c], data: a), Tensor(shape: [n, l, c], data: b))
    }
}
