// PaintsDiffusion/Weights/ControlNetCheckpoint: ControlNet 1.x single files as published (control_v11p_sd15_lineart
// .safetensors and the like): original keys with or without the `control_model.` prefix mapped to diffusers names, and
// the configuration read from the tensors.
// Matches: diffusers single_file_utils convert_controlnet_checkpoint / create_diffusers_controlnet_model_config_from_ldm.
import Foundation
import PaintsTensor

public enum ControlNetCheckpoint {
    static let prefix = "control_model."

    /// The prefix of an original-layout ControlNet's keys ("control_model." or ""), nil for any other file.
    static func keyPrefix(_ file: SafeTensorsFile) -> String? {
        for p in [prefix, ""] where file.entries[p + "input_hint_block.0.weight"] != nil && file.entries[p + "zero_convs.0.0.weight"] != nil {
            return p
        }
        return nil
    }

    /// Whether `path` is a ControlNet single file in the original layout (its header read once per file version).
    public static func isControlNet(_ path: String) -> Bool {
        path.hasSuffix(".safetensors") && HeaderVerdicts.verdict("controlnet", path: path) { keyPrefix($0) != nil }
    }

    /// Why a ControlNet file in a format this loader does not read cannot be used, with what to do about it.
    public static func refusal(path: String) -> String? {
        let ext = (path as NSString).pathExtension.lowercased()
        guard ["pth", "ckpt", "pt", "bin"].contains(ext) else { return nil }
        return "\((path as NSString).lastPathComponent) is a pickled PyTorch file, which paintsd never loads (unpickling runs code from the file): "
            + "download the .safetensors release of the same ControlNet, or convert it once with "
            + "python -c \"import torch, safetensors.torch as s; d = torch.load('IN.pth', map_location='cpu', weights_only=True); "
            + "s.save_file({k: v.contiguous() for k, v in d.get('state_dict', d).items()}, 'OUT.safetensors')\""
    }

    /// Loads an original-layout ControlNet: the UNet part's configuration as `LDMCheckpoint.unetConfiguration` reads
    /// it (SD1.x: 8 heads; SD2.x: 64-dim heads), the hint embedding's widths from `input_hint_block`.
    public static func load(path: String) throws(ModelError) -> ControlNetModel {
        if let refusal = refusal(path: path) { throw .configuration(refusal) }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path) } catch { throw .weights(error) }
        guard let p = keyPrefix(file) else {
            throw .configuration("\(path): not a ControlNet in the original layout (no input_hint_block and zero_convs); "
                                 + "a diffusers ControlNet goes in a folder with its config.json")
        }
        let keys = file.names.filter { $0.hasPrefix(p) }.map { String($0.dropFirst(p.count)) }
        var unetKeys: [String] = []
        var aliases: [String: String] = [:]
        var hintConvolutions: [Int: [String]] = [:]
        for key in keys {
            let parts = key.split(separator: ".")
            guard parts.count >= 3 || (parts.count == 2 && !["input_hint_block", "zero_convs", "middle_block_out"].contains(parts[0])) else {
                throw .configuration("\(path): unexpected ControlNet key \(p)\(key)")
            }
            switch parts[0] {
            case "input_hint_block":
                guard parts.count == 3, let i = Int(parts[1]), i >= 0, i % 2 == 0, i < 1024 else {
                    throw .configuration("\(path): unexpected ControlNet key \(p)\(key)")
                }
                hintConvolutions[i, default: []].append(String(parts[2]))
            case "zero_convs":
                guard parts.count == 4, let i = Int(parts[1]), i >= 0, parts[2] == "0" else {
                    throw .configuration("\(path): unexpected ControlNet key \(p)\(key)")
                }
                aliases["controlnet_down_blocks.\(i).\(parts[3])"] = p + key
            case "middle_block_out":
                guard parts.count == 3, parts[1] == "0" else { throw .configuration("\(path): unexpected ControlNet key \(p)\(key)") }
                aliases["controlnet_mid_block.\(parts[2])"] = p + key
            default:
                unetKeys.append(key)
            }
        }
        // input_hint_block.0 is the embedding's conv_in, the last convolution its conv_out, those between its blocks.
        let hint = hintConvolutions.keys.sorted()
        guard hint.count >= 2, hint == Array(stride(from: 0, through: hint.last!, by: 2)) else {
            throw .configuration("\(path): input_hint_block has convolutions \(hint), expected 0, 2, 4, ...")
        }
        for (n, i) in hint.enumerated() {
            let name = n == 0 ? "conv_in" : n == hint.count - 1 ? "conv_out" : "blocks.\(n - 1)"
            for leaf in hintConvolutions[i] ?? [] { aliases["controlnet_cond_embedding.\(name).\(leaf)"] = p + "input_hint_block.\(i).\(leaf)" }
        }
        var widths: [Int] = []
        for (n, i) in hint.dropLast().enumerated() where n % 2 == 0 {
            guard let shape = file.entries[p + "input_hint_block.\(i).weight"]?.shape, shape.count == 4 else {
                throw .configuration("\(path): input_hint_block.\(i).weight is not a convolution")
            }
            widths.append(shape[0])
        }
        guard let inputShape = file.entries[p + "input_hint_block.0.weight"]?.shape, inputShape.count == 4 else {
            throw .configuration("\(path): input_hint_block.0.weight is not a convolution")
        }
        // The UNet part: levels from the downsamplers; 1 + levels x layers + (levels - 1) input blocks.
        let levels = Set(unetKeys.filter { $0.hasPrefix("input_blocks.") && $0.contains(".0.op.") }.compactMap { LDMCheckpoint.part($0, 1) }).count + 1
        let inputBlocks = Set(unetKeys.filter { $0.hasPrefix("input_blocks.") }.compactMap { LDMCheckpoint.part($0, 1) }).count
        guard inputBlocks > levels, (inputBlocks - levels) % levels == 0 else {
            throw .configuration("\(path): cannot read the block layout (\(inputBlocks) input blocks, \(levels) levels)")
        }
        let layers = (inputBlocks - levels) / levels
        for (name, stored) in try LDMCheckpoint.unetAliases(unetKeys, prefix: p, layers: layers, path: path) { aliases[name] = stored }
        var (json, _) = try LDMCheckpoint.unetConfiguration(file, prefix: p, keys: unetKeys, levels: levels, layers: layers)
        json["up_block_types"] = nil
        json["conditioning_embedding_out_channels"] = widths
        json["conditioning_channels"] = inputShape[1]
        return try ControlNetModel(json: json, weights: WeightStore(files: [file], aliases: aliases), path: path)
    }
}
