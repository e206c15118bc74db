// PaintsDiffusion/UNet/ReferenceAttention: training-free "reference-only" (no extra weights): a WRITE pass of the UNet
// on the reference's noised latent records, per transformer block, the self-attention's keys and values and, per
// resnet(+attention) layer, per-channel feature statistics; the READ pass of the real latents then attends to the
// reference's tokens as well as its own (reference attention) and matches the reference's statistics (AdaIN).
// Matches: diffusers examples/community/stable_diffusion_reference.py (StableDiffusionReferencePipeline's hacked
// BasicTransformerBlock, mid/down/up block forwards): layer gating by attention_auto_machine_weight (blocks sorted by
// width, widest first, block i of n used when the weight > i/n) and gn_auto_machine_weight (mid 0, down block w of L
// 2(1 - w/L), up block w 2w/L, used when the weight >= that), style fidelity on the unconditional rows.
import PaintsTensor
import Synchronization

/// What reference-only does and how strongly (the community pipeline's arguments, with its defaults).
public struct ReferenceAttentionOptions: Sendable, Equatable {
    /// Self-attention also attends to the reference's tokens (`reference_attn`).
    public var attention: Bool
    /// Feature maps take the reference's per-channel mean and deviation (`reference_adain`).
    public var adain: Bool
    /// `attention_auto_machine_weight`: the share of transformer blocks, widest first, that see the reference (1: all).
    public var attentionWeight: Double
    /// `gn_auto_machine_weight`: 0 the mid block only; 1 (the default) also the inner half; 2 every block.
    public var adainWeight: Double
    /// `style_fidelity`: 1 the reference steers only the conditional half of the guidance batch (the unconditional
    /// rows keep plain self-attention and their own statistics), 0 both halves alike ("prompt more important").
    public var styleFidelity: Float

    public init(attention: Bool = true, adain: Bool = true, attentionWeight: Double = 1, adainWeight: Double = 1,
                styleFidelity: Float = 0.5) {
        self.attention = attention
        self.adain = adain
        self.attentionWeight = attentionWeight
        self.adainWeight = adainWeight
        self.styleFidelity = styleFidelity
    }

    func check() throws(ModelError) {
        try require(attention || adain, "reference-only needs reference attention, AdaIN or both")
        try require(attentionWeight.isFinite && adainWeight.isFinite && styleFidelity.isFinite,
                    "reference-only weights must be finite numbers")
    }
}

/// One run's reference-only state: the options, and the bank the WRITE pass fills and the READ pass reads (a class,
/// shared by the two bound copies of the UNet; the UNet stays a value type). Use `writer(_:)` and `reader(_:)` on the
/// same UNet, then per step run the writer on the reference and the reader on the latents, the same timestep and
/// context in both.
public struct ReferenceAttention: Sendable {
    public let options: ReferenceAttentionOptions
    /// How many leading rows of each batch are the unconditional half of classifier-free guidance (diffusers puts
    /// the negative prompt first): 1 for a [uncond; cond] batch of one image, 0 without guidance.
    public let unconditionalRows: Int
    let bank = ReferenceBank()

    public init(options: ReferenceAttentionOptions = ReferenceAttentionOptions(), unconditionalRows: Int) throws(ModelError) {
        try options.check()
        try require(unconditionalRows >= 0, "reference-only: negative unconditional rows")
        self.options = options
        self.unconditionalRows = unconditionalRows
    }

    enum Mode: Sendable { case write, read }

    /// A copy of `unet` that records the reference (run it on the reference's noised latent).
    public func writer(_ unet: UNet2DConditionModel) throws(ModelError) -> UNet2DConditionModel { try bound(unet, .write) }

    /// A copy of `unet` that reads what the writer recorded last (run it on the latents being denoised).
    public func reader(_ unet: UNet2DConditionModel) throws(ModelError) -> UNet2DConditionModel { try bound(unet, .read) }

    func bound(_ unet: UNet2DConditionModel, _ mode: Mode) throws(ModelError) -> UNet2DConditionModel {
        var out = unet
        if options.attention {
            // The community pipeline's order: a stable sort of the blocks (depth first: down, up, mid) by width,
            // widest first; block i of n takes part when attentionWeight > i / n.
            var widths: [Int] = []
            try out.updateTransformerBlocks { (_, block) throws(ModelError) in widths.append(block.width) }
            let order = widths.indices.sorted { widths[$0] > widths[$1] || (widths[$0] == widths[$1] && $0 < $1) }
            var rank = [Int](repeating: 0, count: widths.count)
            for (r, k) in order.enumerated() { rank[k] = r }
            let n = Double(widths.count)
            try out.updateTransformerBlocks { (k, block) throws(ModelError) in
                guard options.attentionWeight > Double(rank[k]) / n else { return }
                block.selfAttention.processor = ReferenceSelfAttention(
                    inner: block.selfAttention.processor, bank: bank, slot: k, mode: mode,
                    styleFidelity: options.styleFidelity, unconditionalRows: unconditionalRows)
            }
        }
        if options.adain {
            out.featureHook = ReferenceAdaIN(inner: out.featureHook, bank: bank, mode: mode, options: options,
                                             downBlocks: unet.downBlocks.count, upBlocks: unet.upBlocks.count,
                                             unconditionalRows: unconditionalRows)
        }
        return out
    }
}

/// The reference's recorded keys, values and statistics for one run.
final class ReferenceBank: Sendable {
    struct Statistics: Sendable {
        var mean: [Float], variance: [Float]
    }
    struct State: Sendable {
        var attention: [Int: (key: Tensor, value: Tensor)] = [:]
        var statistics: [UNetFeatureSite: Statistics] = [:]
    }
    private let state = Mutex(State())

    func store(slot: Int, key: Tensor, value: Tensor) { state.withLock { $0.attention[slot] = (key, value) } }
    func attention(slot: Int) -> (key: Tensor, value: Tensor)? { state.withLock { $0.attention[slot] } }
    func store(_ s: Statistics, at site: UNetFeatureSite) { state.withLock { $0.statistics[site] = s } }
    func statistics(at site: UNetFeatureSite) -> Statistics? { state.withLock { $0.statistics[site] } }
}

/// attn1 of a transformer block under reference-only. Its keys and values are to_k/to_v of norm1(x), so the
/// reference's tokens projected are what WRITE sees here; READ attends to [own tokens, reference tokens].
struct ReferenceSelfAttention: AttentionProcessor {
    let inner: any AttentionProcessor
    let bank: ReferenceBank
    let slot: Int
    let mode: ReferenceAttention.Mode
    let styleFidelity: Float
    let unconditionalRows: Int

    func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int) throws(ModelError) -> Tensor {
        switch mode {
        case .write:
            bank.store(slot: slot, key: key, value: value)
            return try inner.attention(query: query, key: key, value: value, heads: heads)
        case .read:
            guard let (refKey, refValue) = bank.attention(slot: slot) else {
                throw .configuration("reference-only: the reader ran before the writer recorded the reference")
            }
            guard refKey.rank == 3, refKey.shape[0] == key.shape[0], refKey.shape[2] == key.shape[2] else {
                throw .tensor(.shapeMismatch(operation: "reference attention", shapes: [key.shape, refKey.shape]))
            }
            // out_uc: every row attends to its own tokens and the reference's.
            let withReference = try inner.attention(query: query, key: Resampler.concatenatingTokens(key, refKey),
                                                    value: Resampler.concatenatingTokens(value, refValue), heads: heads)
            let rows = min(unconditionalRows, query.shape[0])
            var conditional = withReference
            if rows > 0 && styleFidelity > 0 {
                // out_c: the unconditional rows with plain self-attention.
                let plain = try inner.attention(query: Self.rows(query, rows), key: Self.rows(key, rows),
                                                value: Self.rows(value, rows), heads: heads)
                conditional.data.replaceSubrange(0..<plain.count, with: plain.data)
            }
            return Self.blend(conditional, withReference, styleFidelity)
        }
    }

    /// The first `n` rows of a batch.
    static func rows(_ x: Tensor, _ n: Int) -> Tensor {
        let per = x.count / x.shape[0]
        return Tensor(shape: [n] + Array(x.shape.dropFirst()), data: Array(x.data[0..<(n * per)]))
    }

    /// s * c + (1 - s) * uc, as the pipeline computes it.
    static func blend(_ c: Tensor, _ uc: Tensor, _ s: Float) -> Tensor {
        var out = uc
        let t = 1 - s
        out.data.withUnsafeMutableBufferPointer { o in
            c.data.withUnsafeBufferPointer { cc in
                for i in 0..<o.count { o[i] = s * cc[i] + t * o[i] }
            }
        }
        return out
    }
}

/// AdaIN at the UNet's feature sites: WRITE stores the per-channel spatial mean and variance (correction 0) where
/// the gate lets it; READ, where something was stored, moves each channel to the reference's mean and deviation.
struct ReferenceAdaIN: UNetFeatureHook {
    let inner: (any UNetFeatureHook)?
    let bank: ReferenceBank
    let mode: ReferenceAttention.Mode
    let options: ReferenceAttentionOptions
    let downBlocks: Int, upBlocks: Int
    let unconditionalRows: Int

    /// The community pipeline's gn_weight of a site, computed as it computes it.
    func gate(_ site: UNetFeatureSite) -> Double {
        switch site {
        case .mid: 0
        case .down(let block, _): (1.0 - Double(block) / Double(downBlocks)) * 2
        case .up(let block, _): (Double(block) / Double(upBlocks)) * 2
        }
    }

    func callAsFunction(_ input: Tensor, at site: UNetFeatureSite) throws(ModelError) -> Tensor {
        let x = try inner.map { h throws(ModelError) in try h(input, at: site) } ?? input
        switch mode {
        case .write:
            if options.adainWeight >= gate(site) { bank.store(Self.statistics(x), at: site) }
            return x
        case .read:
            guard let reference = bank.statistics(at: site) else { return x }
            let own = Self.statistics(x)
            guard reference.mean.count == own.mean.count else {
                throw .tensor(.shapeMismatch(operation: "reference AdaIN", shapes: [x.shape, [reference.mean.count]]))
            }
            let (n, c) = (x.shape[0], x.shape[1]), plane = x.count / max(1, n * c)
            let rows = min(unconditionalRows, n), s = options.styleFidelity, t = 1 - s
            let keepRows = rows > 0 && s > 0
            let eps: Float = 1e-6
            var out = x
            out.data.withUnsafeMutableBufferPointer { o in
                for b in 0..<n {
                    for ch in 0..<c {
                        let k = b * c + ch
                        let mean = own.mean[k], std = max(own.variance[k], eps).squareRoot()
                        let refMean = reference.mean[k], refStd = max(reference.variance[k], eps).squareRoot()
                        let keep = keepRows && b < rows
                        for i in (k * plane)..<((k + 1) * plane) {
                            let v = o[i]
                            let uc = ((v - mean) / std) * refStd + refMean
                            o[i] = s * (keep ? v : uc) + t * uc
                        }
                    }
                }
            }
            return out
        }
    }

    /// Per (row, channel): the spatial mean and the variance with correction 0, accumulated in double precision.
    static func statistics(_ x: Tensor) -> ReferenceBank.Statistics {
        let planes = x.shape[0] * x.shape[1], plane = x.count / max(1, planes)
        var mean = [Float](repeating: 0, count: planes), variance = [Float](repeating: 0, count: planes)
        x.data.withUnsafeBufferPointer { d in
            for p in 0..<planes {
                var sum = 0.0
                for i in (p * plane)..<((p + 1) * plane) { sum += Double(d[i]) }
                let m = sum / Double(plane)
                var squares = 0.0
                for i in (p * plane)..<((p + 1) * plane) {
                    let e = Double(d[i]) - m
                    squares += e * e
                }
                mean[p] = Float(m)
                variance[p] = Float(squares / Double(plane))
            }
        }
        return ReferenceBank.Statistics(mean: mean, variance: variance)
    }
}
