// PaintsDiffusion/Weights/LDMCheckpoint: original-layout single-file checkpoints (model.diffusion_model.*,
// first_stage_model.*, cond_stage_model.*) mapped to diffusers keys, in this one file.
// Matches: diffusers single_file_utils convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint /
// convert_ldm_clip_checkpoint (SD1.x text encoders) / convert_open_clip_checkpoint (SD2.x OpenCLIP text encoders).
import PaintsTensor

public enum LDMCheckpoint {
    static let unetPrefix = "model.diffusion_model."
    static let vaePrefix = "first_stage_model."
    static let clipPrefix = "cond_stage_model.transformer."
    static let openCLIPPrefix = "cond_stage_model.model."

    /// Whether a file is in the original LDM layout.
    public static func isLDM(_ file: SafeTensorsFile) -> Bool { file.entries.keys.contains { $0.hasPrefix(unetPrefix) } }

    /// Part `index` of a dot-separated key (empty parts skipped), or nil when the key has fewer parts: keys come from
    /// the file and may be anything.
    static func part(_ key: String, _ index: Int) -> String? {
        let parts = key.split(separator: ".")
        return index < parts.count ? String(parts[index]) : nil
    }

    /// The UNet's levels and resnets per down level, read from the UNet keys (without the prefix): one downsampler
    /// (`input_blocks.N.0.op.*`) per level but the last; layers + 1 output blocks per level.
    static func unetLayout(_ keys: [String], path: String) throws(ModelError) -> (levels: Int, layers: Int) {
        let levels = Set(keys.filter { $0.hasPrefix("input_blocks.") && $0.contains(".0.op.") }.compactMap { part($0, 1) }).count + 1
        let outputs = Set(keys.filter { $0.hasPrefix("output_blocks.") }.compactMap { part($0, 1) }).count
        guard outputs % levels == 0, outputs / levels >= 2 else {
            throw .configuration("\(path): cannot read the UNet block layout (\(outputs) output blocks, \(levels) levels)")
        }
        return (levels, outputs / levels - 1)
    }

    /// The UNet's weights under diffusers names.
    public static func unet(_ file: SafeTensorsFile) throws(ModelError) -> WeightStore {
        let keys = file.names.filter { $0.hasPrefix(unetPrefix) }.map { String($0.dropFirst(unetPrefix.count)) }
        let layers = try unetLayout(keys, path: file.path).layers
        return WeightStore(files: [file], aliases: try unetAliases(keys, prefix: unetPrefix, layers: layers, path: file.path))
    }

    /// Diffusers names -> stored names for original UNet keys (`keys` without `prefix`, which the stored names carry):
    /// time_embed, input_blocks, middle_block, output_blocks, out. A key of any other form is refused.
    static func unetAliases(_ keys: [String], prefix: String, layers: Int, path: String) throws(ModelError) -> [String: String] {
        let resnet: [String: String] = ["in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                                        "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"]
        func resnetKey(_ rest: ArraySlice<Substring>) -> String {
            let two = rest.prefix(2).joined(separator: ".")
            if let renamed = resnet[two] { return ([renamed] + rest.dropFirst(2).map(String.init)).joined(separator: ".") }
            let one = String(rest.first ?? "")
            return ([resnet[one] ?? one] + rest.dropFirst().map(String.init)).joined(separator: ".")
        }
        let simple = ["time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
                      "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out"]
        var aliases: [String: String] = [:]
        for key in keys {
            // Every index below is guarded by the part count: keys come from the file.
            let p = key.split(separator: ".")
            var new: String?
            if let last = p.last, p.count >= 2 {
                let head = p.dropLast().joined(separator: ".")
                if let s = simple[head] {
                    new = s + "." + last
                } else if p[0] == "input_blocks", p.count >= 4, let i = Int(p[1]), i > 0 {
                    let (b, l) = ((i - 1) / (layers + 1), (i - 1) % (layers + 1))
                    if p[2] == "0" && p[3] == "op" { new = "down_blocks.\(b).downsamplers.0.conv.\(last)" }
                    else if p[2] == "0" { new = "down_blocks.\(b).resnets.\(l)." + resnetKey(p[3...]) }
                    else if p[2] == "1" { new = "down_blocks.\(b).attentions.\(l)." + p[3...].joined(separator: ".") }
                } else if p[0] == "middle_block", p.count >= 3, let j = Int(p[1]) {
                    new = j == 1 ? "mid_block.attentions.0." + p[2...].joined(separator: ".")
                        : "mid_block.resnets.\(j / 2)." + resnetKey(p[2...])
                } else if p[0] == "output_blocks", p.count >= 4, let i = Int(p[1]), i >= 0 {
                    let (b, l) = (i / (layers + 1), i % (layers + 1))
                    if p[2] == "0" { new = "up_blocks.\(b).resnets.\(l)." + resnetKey(p[3...]) }
                    else if p[3] == "conv" && (p[2] == "2" || p[2] == "1") { new = "up_blocks.\(b).upsamplers.0.conv.\(last)" }
                    else if p[2] == "1" { new = "up_blocks.\(b).attentions.\(l)." + p[3...].joined(separator: ".") }
                }
            }
            guard let new else { throw .configuration("\(path): unexpected UNet key \(prefix)\(key)") }
            aliases[new] = prefix + key
        }
        return aliases
    }

    /// The UNet configuration an original-layout file implies (`keys` without `prefix`): levels and layers as given,
    /// channels from each level's first resnet, attention where a level's first block has a transformer, the context
    /// width from a cross-attention key, linear projections from proj_in's rank. The facts shapes cannot tell come
    /// from the family the context width names: 1024 is SD2.x (64-dim heads), anything else SD1.x (8 heads).
    /// Returns the configuration's JSON (diffusers' config.json members) and whether it is SD2.x.
    static func unetConfiguration(_ file: SafeTensorsFile, prefix: String, keys: [String], levels: Int,
                                  layers: Int) throws(ModelError) -> (json: [String: Any], sd2: Bool) {
        func dimension(_ key: String, _ index: Int) throws(ModelError) -> Int {
            guard let e = file.entries[prefix + key] else { throw .configuration("\(file.path): missing tensor \(prefix)\(key)") }
            guard index < e.shape.count, e.shape[index] >= 1 else {
                throw .configuration("\(file.path): tensor \(prefix)\(key) has shape \(e.shape), which has no dimension \(index) to read a size from")
            }
            return e.shape[index]
        }
        var channels: [Int] = [], attention: [Bool] = []
        for level in 0..<levels {
            let block = 1 + level * (layers + 1)
            channels.append(try dimension("input_blocks.\(block).0.out_layers.3.weight", 0))
            attention.append(keys.contains { $0.hasPrefix("input_blocks.\(block).1.") })
        }
        guard let contextKey = keys.first(where: { $0.hasSuffix("attn2.to_k.weight") }) else {
            throw .configuration("\(file.path): the UNet has no cross-attention")
        }
        let context = try dimension(contextKey, 1)
        let sd2 = context == 1024
        let linearProjection = keys.first { $0.hasSuffix("proj_in.weight") }.map { file.entries[prefix + $0]?.shape.count == 2 } ?? false
        let json: [String: Any] = [
            "block_out_channels": channels, "layers_per_block": layers, "cross_attention_dim": context,
            "down_block_types": attention.map { $0 ? "CrossAttnDownBlock2D" : "DownBlock2D" },
            "up_block_types": attention.reversed().map { $0 ? "CrossAttnUpBlock2D" : "UpBlock2D" },
            "attention_head_dim": sd2 ? channels.map { max(1, $0 / 64) } : Array(repeating: 8, count: levels),
            "use_linear_projection": linearProjection,
        ]
        return (json, sd2)
    }

    /// The VAE's weights under diffusers names (attention 1x1 convolutions read as matrices).
    public static func vae(_ file: SafeTensorsFile) throws(ModelError) -> WeightStore {
        let keys = file.names.filter { $0.hasPrefix(vaePrefix) }.map { String($0.dropFirst(vaePrefix.count)) }
        let levels = Set(keys.filter { $0.hasPrefix("decoder.up.") }.compactMap { part($0, 2) }).count
        let attention = ["norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"]
        var aliases: [String: String] = [:], squeezed: Set<String> = []
        for key in keys {
            var p = key.replacingOccurrences(of: "norm_out", with: "conv_norm_out")
                .replacingOccurrences(of: "nin_shortcut", with: "conv_shortcut").split(separator: ".").map(String.init)
            // Every index below is guarded by the part count: keys come from the file. Block keys have at least
            // five parts (encoder.down.0.block.0.conv1.weight, decoder.up.0.upsample.conv.weight, encoder.mid.attn_1.q.weight).
            guard p.count >= 2, !["down", "up", "mid"].contains(p[1]) || p.count >= 5 else {
                throw .configuration("\(file.path): unexpected VAE key \(vaePrefix)\(key)")
            }
            let last = p[p.count - 1]
            var new: String
            switch p[1] {
            case "down":
                new = p[3] == "block" ? "\(p[0]).down_blocks.\(p[2]).resnets.\(p[4])." + p[5...].joined(separator: ".")
                    : "\(p[0]).down_blocks.\(p[2]).downsamplers.0.conv.\(last)"
            case "up":
                guard let k = Int(p[2]), k >= 0 else { throw .configuration("\(file.path): unexpected VAE key \(key)") }
                let b = levels - 1 - k
                new = p[3] == "block" ? "\(p[0]).up_blocks.\(b).resnets.\(p[4])." + p[5...].joined(separator: ".")
                    : "\(p[0]).up_blocks.\(b).upsamplers.0.conv.\(last)"
            case "mid":
                if p[2].hasPrefix("block_"), let j = Int(p[2].dropFirst(6)), j >= 1 {
                    new = "\(p[0]).mid_block.resnets.\(j - 1)." + p[3...].joined(separator: ".")
                } else {
                    p[3] = attention[p[3]] ?? p[3]
                    new = "\(p[0]).mid_block.attentions.0." + p[3...].joined(separator: ".")
                    if p.last == "weight" && p[3] != "group_norm" { squeezed.insert(new) }
                }
            default:
                new = p.joined(separator: ".")
            }
            aliases[new] = vaePrefix + key
        }
        return WeightStore(files: [file], aliases: aliases, squeezed: squeezed)
    }

    /// The CLIP text encoder's weights (SD1.x `cond_stage_model.transformer.*`) under transformers names.
    public static func textEncoder(_ file: SafeTensorsFile) throws(ModelError) -> WeightStore {
        let keys = file.names.filter { $0.hasPrefix(clipPrefix) }
        guard !keys.isEmpty else {
            throw .configuration("\(file.path): no cond_stage_model.transformer.* (SD1.x) text encoder; for SD2.x use openCLIPTextEncoder")
        }
        var aliases: [String: String] = [:]
        for key in keys {
            let rest = String(key.dropFirst(clipPrefix.count))
            aliases[rest.hasPrefix("text_model.") ? rest : "text_model." + rest] = key
        }
        return WeightStore(files: [file], aliases: aliases)
    }

    /// Whether the file holds an SD2.x OpenCLIP text encoder (`cond_stage_model.model.*`).
    public static func hasOpenCLIPTextEncoder(_ file: SafeTensorsFile) -> Bool {
        file.entries[openCLIPPrefix + "token_embedding.weight"] != nil
    }

    /// An SD2.x OpenCLIP text encoder (`cond_stage_model.model.*`: resblocks with fused q/k/v `in_proj_weight`) under
    /// transformers names, and its configuration read from the tensors: SD2 uses the penultimate block, so the model has
    /// one layer fewer than the file (diffusers' converted text_encoder has 23 of OpenCLIP ViT-H's 24); heads are
    /// hidden/64 (OpenCLIP's head width; shapes cannot tell it); GELU; layer norm epsilon 1e-5.
    public static func openCLIPTextEncoder(_ file: SafeTensorsFile) throws(ModelError) -> (WeightStore, CLIPTextConfiguration) {
        let p = openCLIPPrefix
        guard let token = file.entries[p + "token_embedding.weight"], token.shape.count == 2,
              let positions = file.entries[p + "positional_embedding"], positions.shape.count == 2
        else { throw .configuration("\(file.path): no OpenCLIP text encoder (cond_stage_model.model.token_embedding.weight)") }
        let hidden = token.shape[1]
        let blocks = Set(file.names.compactMap { name -> Int? in
            guard name.hasPrefix(p + "transformer.resblocks.") else { return nil }
            return Int(name.dropFirst((p + "transformer.resblocks.").count).prefix { $0 != "." })
        })
        guard blocks.count >= 2, blocks == Set(0..<blocks.count), hidden % 64 == 0 else {
            throw .configuration("\(file.path): OpenCLIP text encoder with blocks \(blocks.sorted()) and width \(hidden) is not an SD2.x layout")
        }
        let layers = blocks.count - 1
        var aliases: [String: String] = [
            "text_model.embeddings.token_embedding.weight": p + "token_embedding.weight",
            "text_model.embeddings.position_embedding.weight": p + "positional_embedding",
            "text_model.final_layer_norm.weight": p + "ln_final.weight", "text_model.final_layer_norm.bias": p + "ln_final.bias",
        ]
        var slices: [String: WeightStore.Slice] = [:]
        for i in 0..<layers {
            let src = p + "transformer.resblocks.\(i).", dst = "text_model.encoder.layers.\(i)."
            for kind in ["weight", "bias"] {
                for (n, name) in ["q", "k", "v"].enumerated() {
                    slices[dst + "self_attn.\(name)_proj.\(kind)"] = .init(key: src + "attn.in_proj_\(kind)", rows: (n * hidden)..<((n + 1) * hidden))
                }
                aliases[dst + "self_attn.out_proj.\(kind)"] = src + "attn.out_proj.\(kind)"
                aliases[dst + "layer_norm1.\(kind)"] = src + "ln_1.\(kind)"
                aliases[dst + "layer_norm2.\(kind)"] = src + "ln_2.\(kind)"
                aliases[dst + "mlp.fc1.\(kind)"] = src + "mlp.c_fc.\(kind)"
                aliases[dst + "mlp.fc2.\(kind)"] = src + "mlp.c_proj.\(kind)"
            }
        }
        let configuration = try CLIPTextConfiguration(json: [
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": hidden / 64,
            "max_position_embeddings": positions.shape[0], "hidden_act": "gelu", "layer_norm_eps": 1e-5,
        ], path: file.path)
        return (WeightStore(files: [file], aliases: aliases, slices: slices), configuration)
    }
}
