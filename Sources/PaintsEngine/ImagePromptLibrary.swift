// PaintsEngine/ImagePromptLibrary: the IP-Adapters in MODELS/ip-adapter and the CLIP image encoders in
// MODELS/clip-vision, each adapter paired with the encoder whose output it takes (read from the files' shapes and
// configurations), or told why it has none.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsTensor

/// A CLIP image encoder folder (transformers' CLIPVisionModel[WithProjection]: config.json + model.safetensors).
public struct ImageEncoderEntry: Sendable, Equatable {
    public var name: String
    public var path: String
    /// The width of `image_embeds` (projection_dim), nil without a projection.
    public var embeddingWidth: Int?
    /// The width of the hidden states (hidden_size).
    public var hiddenWidth: Int

    public var json: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "hidden_width": JSONValue(hiddenWidth)]
        if let embeddingWidth { o["embedding_width"] = JSONValue(embeddingWidth) }
        return .object(o)
    }
}

/// An IP-Adapter file, what it takes, and the encoder that makes it.
public struct ImagePromptAdapterEntry: Sendable, Equatable {
    public enum Input: String, Sendable {
        /// One embedding per image (ip-adapter_sd15: the encoder's projected `image_embeds`).
        case embedding
        /// The encoder's penultimate hidden states (ip-adapter-plus_sd15).
        case hiddenStates = "hidden_states"
        /// A style vector given by the request (Style Components: one token, values only), no image encoder.
        case style
    }
    public var name: String
    public var path: String
    public var input: Input
    /// E or W.
    public var inputWidth: Int
    /// The encoder it takes its input from, when one installed fits.
    public var encoder: String?
    /// Why it cannot be used, nil when it can.
    public var problem: String?

    public var json: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "input": .string(input.rawValue), "input_width": JSONValue(inputWidth)]
        if let encoder { o["encoder"] = .string(encoder) }
        if let problem { o["problem"] = .string(problem) }
        return .object(o)
    }
}

public enum ImagePromptLibrary {
    /// The encoders of `directory` (MODELS/clip-vision), sorted by name.
    public static func encoders(in directory: String) -> [ImageEncoderEntry] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        return names.compactMap { name in
            let path = directory + "/" + name
            guard let json = RegularFile.jsonObject(path + "/config.json") else { return nil }
            // A CLIPVisionConfig, or a full CLIPConfig whose vision part is under vision_config.
            let vision = json["vision_config"] as? [String: Any] ?? json
            guard let hidden = vision["hidden_size"] as? Int, hidden >= 1 else { return nil }
            let projected = (json["architectures"] as? [String])?.contains("CLIPVisionModelWithProjection") ?? false
            let projection = (vision["projection_dim"] as? Int) ?? (json["projection_dim"] as? Int)
            return ImageEncoderEntry(name: name, path: path, embeddingWidth: projected ? projection : nil, hiddenWidth: hidden)
        }
    }

    /// The adapters of `directory` (MODELS/ip-adapter/*.safetensors), each paired with the first of `encoders` whose
    /// output width is what it takes.
    public static func adapters(in directory: String, encoders: [ImageEncoderEntry]) -> [ImagePromptAdapterEntry] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        return names.compactMap { file in
            let path = directory + "/" + file
            if let refusal = ControlNetCheckpoint.refusal(path: path) {
                return ImagePromptAdapterEntry(name: (file as NSString).deletingPathExtension, path: path, input: .embedding, inputWidth: 0,
                                               encoder: nil, problem: refusal)
            }
            guard file.hasSuffix(".safetensors") else { return nil }
            let name = String(file.dropLast(".safetensors".count))
            guard let header = try? SafeTensorsFile(path: path) else {
                return ImagePromptAdapterEntry(name: name, path: path, input: .embedding, inputWidth: 0, encoder: nil,
                                               problem: "not a readable .safetensors file")
            }
            func width(_ key: String) -> Int? { header.entries[key].flatMap { $0.shape.count == 2 ? $0.shape[1] : nil } }
            var entry: ImagePromptAdapterEntry
            if let w = width("image_proj.proj_in.weight") {
                entry = ImagePromptAdapterEntry(name: name, path: path, input: .hiddenStates, inputWidth: w, encoder: nil, problem: nil)
                entry.encoder = encoders.first { $0.hiddenWidth == w }?.name
            } else if let e = width("image_proj.proj.weight") ?? width("image_proj.proj.0.weight"),
                      header.entries["ip_adapter.1.to_v_ip.weight"] != nil, header.entries["ip_adapter.1.to_k_ip.weight"] == nil {
                // Values only, one token: a Style Components adapter, fed the style vector the request gives.
                return ImagePromptAdapterEntry(name: name, path: path, input: .style, inputWidth: e, encoder: nil, problem: nil)
            } else if let e = width("image_proj.proj.weight") ?? width("image_proj.proj.0.weight") {
                entry = ImagePromptAdapterEntry(name: name, path: path, input: .embedding, inputWidth: e, encoder: nil, problem: nil)
                entry.encoder = encoders.first { $0.embeddingWidth == e }?.name
            } else {
                return ImagePromptAdapterEntry(name: name, path: path, input: .embedding, inputWidth: 0, encoder: nil,
                                               problem: "not an IP-Adapter (no image_proj.proj, image_proj.proj.0 or image_proj.proj_in)")
            }
            if entry.encoder == nil {
                entry.problem = entry.input == .hiddenStates
                    ? "needs a CLIP image encoder with \(entry.inputWidth)-wide hidden states in clip-vision/ (OpenCLIP ViT-H/14: h94/IP-Adapter models/image_encoder)"
                    : "needs a CLIP image encoder with \(entry.inputWidth)-wide image embeddings in clip-vision/ (for 1024: OpenCLIP ViT-H/14, h94/IP-Adapter models/image_encoder)"
            }
            return entry
        }
    }
}
