// PaintsDiffusion/UNet/Transformer2DModel: the spatial transformer of the UNet: attention over pixels and to the text.
// Matches: diffusers Transformer2DModel (continuous input) with BasicTransformerBlock, Attention and GEGLU FeedForward.
import PaintsTensor

/// Computes attention from projected queries, keys and values. The default is softmax(QK^T/sqrt(d))V; reference
/// attention and decoupled image cross-attention (IP-Adapter) replace it.
public protocol AttentionProcessor: Sendable {
    func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int) throws(ModelError) -> Tensor
}

public struct ScaledDotProductAttention: AttentionProcessor {
    public init() {}
    public func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int) throws(ModelError) -> Tensor {
        try compute { () throws(TensorError) in try Tensor.attention(query: query, key: key, value: value, heads: heads) }
    }
}

/// Multi-head attention with its projections (`to_q`, `to_k`, `to_v`, `to_out.0`).
public struct CrossAttention: Sendable {
    let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear
    public let heads: Int
    public var processor: any AttentionProcessor = ScaledDotProductAttention()

    public init(_ w: WeightStore, heads: Int) throws(ModelError) {
        toQ = try Linear(w.scoped("to_q"))
        toK = try Linear(w.scoped("to_k"))
        toV = try Linear(w.scoped("to_v"))
        toOut = try Linear(w.scoped("to_out.0"))
        guard heads >= 1, toQ.outFeatures % heads == 0 else { throw .configuration("\(w.prefix): \(toQ.outFeatures) features for \(heads) heads") }
        try require(toK.outFeatures == toQ.outFeatures && toV.outFeatures == toQ.outFeatures && toOut.inFeatures == toQ.outFeatures,
                    "\(w.prefix): query, key, value and output widths \([toQ.outFeatures, toK.outFeatures, toV.outFeatures, toOut.inFeatures]) differ")
        try require(toK.inFeatures == toV.inFeatures, "\(w.prefix): keys read \(toK.inFeatures) features, values \(toV.inFeatures)")
        self.heads = heads
    }

    /// Features of the queries' input and of the output (the residual stream's width).
    var queryFeatures: Int { toQ.inFeatures }
    var outputFeatures: Int { toOut.outFeatures }
    /// Features of the keys' and values' input (the context's width for cross-attention).
    var sourceFeatures: Int { toK.inFeatures }
    /// Features of the projected queries, keys and values (heads x head width).
    public var innerFeatures: Int { toQ.outFeatures }

    /// x [B, L, C]; context [B, S, D] (self-attention when nil); `residual` added to the output (in the output
    /// projection's epilogue).
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, adding residual: Tensor? = nil) throws(ModelError) -> Tensor {
        try cancellationPoint()
        // The projections of one input together (x packed once where they run on panels: few rows).
        let query: Tensor, key: Tensor, value: Tensor
        if let context {
            query = try toQ(x)
            let projected = try Linear.outputs(of: [toK, toV], for: context)
            (key, value) = (projected[0], projected[1])
        } else {
            let projected = try Linear.outputs(of: [toQ, toK, toV], for: x)
            (query, key, value) = (projected[0], projected[1], projected[2])
        }
        let out = try processor.attention(query: query, key: key, value: value, heads: heads)
        try cancellationPoint()
        return try toOut(out, adding: residual)
    }
}

/// LayerNorm-attention-residual ×2 (self, then cross) and a GEGLU feed-forward.
public struct BasicTransformerBlock: Sendable {
    let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm
    public var selfAttention: CrossAttention
    public var crossAttention: CrossAttention
    let feedForwardIn: Linear, feedForwardOut: Linear

    public init(_ w: WeightStore, heads: Int) throws(ModelError) {
        norm1 = try LayerNorm(w.scoped("norm1"))
        selfAttention = try CrossAttention(w.scoped("attn1"), heads: heads)
        norm2 = try LayerNorm(w.scoped("norm2"))
        crossAttention = try CrossAttention(w.scoped("attn2"), heads: heads)
        norm3 = try LayerNorm(w.scoped("norm3"))
        feedForwardIn = try Linear(w.scoped("ff.net.0.proj"))
        feedForwardOut = try Linear(w.scoped("ff.net.2"))
        // Every residual sum adds the stream's width; GEGLU halves the feed-forward's projection.
        let d = norm1.channels, name = w.prefix
        try require(norm2.channels == d && norm3.channels == d, "\(name): norm widths \([norm1.channels, norm2.channels, norm3.channels]) differ")
        try require(selfAttention.queryFeatures == d && selfAttention.sourceFeatures == d && selfAttention.outputFeatures == d,
                    "\(name)attn1: does not map the \(d)-wide stream onto itself")
        try require(crossAttention.queryFeatures == d && crossAttention.outputFeatures == d, "\(name)attn2: does not map the \(d)-wide stream onto itself")
        try require(feedForwardIn.inFeatures == d && feedForwardIn.outFeatures % 2 == 0
                    && feedForwardOut.inFeatures == feedForwardIn.outFeatures / 2 && feedForwardOut.outFeatures == d,
                    "\(name)ff: \(feedForwardIn.weight.shape) then \(feedForwardOut.weight.shape) is not a GEGLU feed-forward of width \(d)")
    }

    /// The residual stream's width.
    var width: Int { norm1.channels }
    /// The context's width (cross-attention keys and values).
    var contextWidth: Int { crossAttention.sourceFeatures }

    /// Each residual is added in the epilogue of the projection that ends its branch.
    public func callAsFunction(_ x: Tensor, context: Tensor) throws(ModelError) -> Tensor {
        var h = try selfAttention(try norm1(x), adding: x)
        h = try crossAttention(try norm2(h), context: context, adding: h)
        return try feedForwardOut(try feedForwardIn(try norm3(h)).geglu(), adding: h)
    }
}

public struct Transformer2DModel: Sendable {
    let norm: GroupNorm
    /// SD1.x projects with 1x1 convolutions, SD2.x with linear layers.
    enum Projection: Sendable {
        case convolution(Conv2d)
        case linear(Linear)
    }
    let projectIn: Projection, projectOut: Projection
    public var blocks: [BasicTransformerBlock]

    public init(_ w: WeightStore, heads: Int, layers: Int, groups: Int, linearProjection: Bool) throws(ModelError) {
        norm = try GroupNorm(w.scoped("norm"), groups: groups, epsilon: 1e-6)
        projectIn = linearProjection ? .linear(try Linear(w.scoped("proj_in"))) : .convolution(try Conv2d(w.scoped("proj_in")))
        projectOut = linearProjection ? .linear(try Linear(w.scoped("proj_out"))) : .convolution(try Conv2d(w.scoped("proj_out")))
        var blocks: [BasicTransformerBlock] = []
        for i in 0..<max(0, layers) { blocks.append(try BasicTransformerBlock(w.scoped("transformer_blocks.\(i)"), heads: heads)) }
        self.blocks = blocks
        // The projections map the feature map's channels to the blocks' width and back, keeping the size (the output
        // is added to the input).
        let c = norm.channels, name = w.prefix
        let inner: Int
        switch projectIn {
        case .convolution(let conv):
            try conv.requireSameSize(from: c, "\(name)proj_in")
            inner = conv.outChannels
        case .linear(let linear):
            try require(linear.inFeatures == c, "\(name)proj_in: takes \(linear.inFeatures) features, gets \(c)")
            inner = linear.outFeatures
        }
        for (i, block) in blocks.enumerated() {
            try require(block.width == inner, "\(name)transformer_blocks.\(i): width \(block.width), proj_in makes \(inner)")
        }
        switch projectOut {
        case .convolution(let conv):
            try conv.requireSameSize(from: inner, "\(name)proj_out")
            try require(conv.outChannels == c, "\(name)proj_out: makes \(conv.outChannels) channels, the input has \(c)")
        case .linear(let linear):
            try require(linear.inFeatures == inner && linear.outFeatures == c, "\(name)proj_out: \(linear.weight.shape) does not map \(inner) to \(c)")
        }
    }

    /// Channels in and out.
    public var channels: Int { norm.channels }

    /// x [N, C, H, W]; context [N, S, D].
    public func callAsFunction(_ x: Tensor, context: Tensor) throws(ModelError) -> Tensor {
        let (height, width) = (x.shape[2], x.shape[3])
        let normed = try norm(x)
        var tokens: Tensor                                              // [N, H*W, inner]
        switch projectIn {
        case .convolution(let conv): tokens = try conv(normed).tokens()
        case .linear(let linear): tokens = try linear(normed.tokens())
        }
        for block in blocks { tokens = try block(tokens, context: context) }
        var out: Tensor
        switch projectOut {
        case .convolution(let conv): out = try conv(tokens.image(height: height, width: width))
        case .linear(let linear): out = try linear(tokens).image(height: height, width: width)
        }
        out += x
        return out
    }
}
