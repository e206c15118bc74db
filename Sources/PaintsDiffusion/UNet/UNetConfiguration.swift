// PaintsDiffusion/UNet/UNetConfiguration: the members of a diffusers UNet2DConditionModel config.json the engine reads.
import Foundation
import PaintsTensor

/// Shapes come from here and from the tensors, never from constants (SD1.x and SD2.x differ only in config).
public struct UNetConfiguration: Sendable {
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var downBlockTypes: [String]
    public var upBlockTypes: [String]
    public var crossAttentionDimension: Int
    /// Heads per down block (diffusers reads `attention_head_dim` as the head count when `num_attention_heads` is unset).
    public var attentionHeads: [Int]
    public var normGroups: Int
    public var normEpsilon: Float
    public var useLinearProjection: Bool
    public var flipSinToCos: Bool
    public var freqShift: Float
    public var transformerLayersPerBlock: Int

    /// - Parameter upBlocks: whether the config must describe up blocks (a ControlNet's has only the down path; its
    ///   `upBlockTypes` is then empty).
    public init(json: [String: Any], path: String = "config.json", upBlocks: Bool = true) throws(ModelError) {
        func bad(_ m: String) -> ModelError { .configuration("\(path): \(m)") }
        // Every number is range-checked here: a zero head or group count would divide by zero, a negative layer
        // count would make an invalid range, and 1 << levels must stay small.
        let size = 1...(1 << 16)
        func ints(_ key: String, in range: ClosedRange<Int> = size) throws(ModelError) -> [Int]? {
            try configurationInts(json[key], key, in: range, path: path)
        }
        func int(_ key: String, in range: ClosedRange<Int> = size) throws(ModelError) -> Int? {
            try configurationInt(json[key], key, in: range, path: path)
        }
        guard let channels = try ints("block_out_channels"), (1...8).contains(channels.count) else {
            throw bad("block_out_channels is required (1 to 8 levels)")
        }
        blockOutChannels = channels
        layersPerBlock = try int("layers_per_block", in: 1...64) ?? 2
        downBlockTypes = json["down_block_types"] as? [String] ?? []
        upBlockTypes = upBlocks ? json["up_block_types"] as? [String] ?? [] : []
        guard downBlockTypes.count == channels.count, !upBlocks || upBlockTypes.count == channels.count else {
            throw bad("down_block_types and up_block_types need one entry per block_out_channels")
        }
        let supported: Set = ["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        if let unknown = (downBlockTypes + upBlockTypes).first(where: { !supported.contains($0) }) { throw bad("block type \(unknown) is not supported") }
        crossAttentionDimension = try int("cross_attention_dim") ?? 768
        let heads: [Int]
        let headLists = (try ints("num_attention_heads"), try ints("attention_head_dim"))
        if let list = headLists.0 ?? headLists.1 {
            heads = list
        } else {
            let headCounts = (try int("num_attention_heads"), try int("attention_head_dim"))
            heads = [headCounts.0 ?? headCounts.1 ?? 8]
        }
        attentionHeads = heads.count == 1 ? Array(repeating: heads[0], count: channels.count) : heads
        guard attentionHeads.count == channels.count else { throw bad("attention heads need one entry per block") }
        normGroups = try int("norm_num_groups") ?? 32
        normEpsilon = Float((json["norm_eps"] as? NSNumber)?.doubleValue ?? 1e-5)
        useLinearProjection = json["use_linear_projection"] as? Bool ?? false
        flipSinToCos = json["flip_sin_to_cos"] as? Bool ?? true
        freqShift = Float((json["freq_shift"] as? NSNumber)?.doubleValue ?? 0)
        transformerLayersPerBlock = try int("transformer_layers_per_block", in: 0...64) ?? 1
        if let t = json["time_embedding_type"] as? String, t != "positional" { throw bad("time_embedding_type \(t) is not supported") }
        if let t = json["class_embed_type"] as? String { throw bad("class_embed_type \(t) is not supported") }
    }

    /// Reads `config.json` in a diffusers component folder.
    public init(folder: String) throws(ModelError) {
        let (json, path) = try readConfiguration(folder: folder)
        try self.init(json: json, path: path)
    }
}
