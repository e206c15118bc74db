// PaintsEngine/ControlNetLibrary: the ControlNets installed in MODELS/controlnet (diffusers folders and original-layout
// single files), what each is for (guessed from its name, or said by a sidecar NAME.json), and whether paintsd can
// make the hint it wants from the user's line art.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsTensor

/// One ControlNet found in the models directory.
public struct ControlNetEntry: Sendable, Equatable {
    /// What a ControlNet was trained to follow (ControlNet 1.1's names).
    public enum Kind: String, Sendable, CaseIterable {
        case lineartAnime = "lineart_anime", lineart, scribble, softedge, canny, depth, normal, openpose, mlsd, seg, tile,
             inpaint, shuffle, ip2p, unknown

        /// Whether the hint is the user's line art as white lines on black, which paintsd makes without a
        /// preprocessor network: ControlNet 1.1's lineart, lineart_anime (`1 - detected`, so clean line art inverted)
        /// and scribble (white strokes on black).
        public var takesLineArt: Bool { self == .lineart || self == .lineartAnime || self == .scribble }

        /// The kind a file's name suggests ("control_v11p_sd15s2_lineart_anime" is lineart_anime), most specific first.
        public static func guess(_ name: String) -> Kind {
            let n = name.lowercased().replacingOccurrences(of: "-", with: "_")
            let words: [(Kind, [String])] = [
                (.lineartAnime, ["lineart_anime", "anime_lineart", "lineartanime"]), (.lineart, ["lineart", "line_art"]),
                (.scribble, ["scribble", "sketch"]), (.softedge, ["softedge", "hed", "pidi"]), (.canny, ["canny"]),
                (.depth, ["depth"]), (.normal, ["normal"]), (.openpose, ["openpose", "pose"]), (.mlsd, ["mlsd"]),
                (.seg, ["seg"]), (.tile, ["tile"]), (.inpaint, ["inpaint"]), (.shuffle, ["shuffle"]), (.ip2p, ["ip2p"]),
            ]
            return words.first { $0.1.contains { n.contains($0) } }?.0 ?? .unknown
        }
    }

    public var name: String
    public var path: String
    public var kind: Kind
    /// "name" (guessed from the file name) or "sidecar" (NAME.json beside it says so).
    public var kindSource: String
    /// Why it cannot be used (a pickled file, an unreadable sidecar), nil when it can.
    public var problem: String?

    /// How `hello` lists it.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "kind": .string(kind.rawValue), "kind_source": .string(kindSource),
                                      "takes_line_art": .bool(kind.takesLineArt)]
        if let problem { o["problem"] = .string(problem) }
        return .object(o)
    }
}

public enum ControlNetLibrary {
    /// The ControlNets of `directory` (MODELS/controlnet), sorted by name: `NAME/` diffusers folders (config.json +
    /// diffusion_pytorch_model[.fp16].safetensors), `NAME.safetensors` original-layout single files, and pickled files
    /// (`.pth`, `.ckpt`...) listed with the reason they are refused. A sidecar `NAME.json` beside either,
    /// `{"kind": "lineart"}`, overrides the kind guessed from the name.
    public static func entries(in directory: String) -> [ControlNetEntry] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        var found: [ControlNetEntry] = []
        for file in names where !file.hasPrefix(".") {
            let path = directory + "/" + file
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let name: String
            var problem: String?
            if isDirectory.boolValue {
                guard fm.fileExists(atPath: path + "/config.json") else { continue }
                name = file
            } else if file.hasSuffix(".safetensors") {
                name = String(file.dropLast(".safetensors".count))
                if !ControlNetCheckpoint.isControlNet(path) {
                    problem = "not a ControlNet in the original layout (no input_hint_block and zero_convs); a diffusers ControlNet goes in a folder with its config.json"
                }
            } else if let refusal = ControlNetCheckpoint.refusal(path: path) {
                name = (file as NSString).deletingPathExtension
                problem = refusal
            } else {
                continue
            }
            var entry = ControlNetEntry(name: name, path: path, kind: .guess(name), kindSource: "name", problem: problem)
            let sidecar = directory + "/" + name + ".json"
            if fm.fileExists(atPath: sidecar) {
                if let json = RegularFile.jsonObject(sidecar), let text = json["kind"] as? String, let kind = ControlNetEntry.Kind(rawValue: text) {
                    entry.kind = kind
                    entry.kindSource = "sidecar"
                } else {
                    entry.problem = entry.problem ?? "\(name).json: expected {\"kind\": one of \(ControlNetEntry.Kind.allCases.map(\.rawValue).joined(separator: ", "))}"
                }
            }
            // One entry per name: a folder and a file of one name keep the first (the folder sorts first).
            if !found.contains(where: { $0.name == entry.name }) { found.append(entry) }
        }
        return found
    }

    /// The ControlNet a plain "Colorize Layer" uses: the first usable one that takes line art, line art models first.
    public static func lineArtDefault(_ entries: [ControlNetEntry]) -> ControlNetEntry? {
        for kind in [ControlNetEntry.Kind.lineart, .lineartAnime, .scribble] {
            if let hit = entries.first(where: { $0.kind == kind && $0.problem == nil }) { return hit }
        }
        return nil
    }

    /// Loads a diffusers folder or an original-layout single file.
    public static func load(path: String) throws(ModelError) -> ControlNetModel {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return try ControlNetModel(folder: path)
        }
        return try ControlNetCheckpoint.load(path: path)
    }

    /// Bytes a ControlNet's weights take once loaded (stored dtype, read from the header).
    public static func residentBytes(path: String) -> Int {
        path.hasSuffix(".safetensors") ? ModelCache.weightBytes(file: path) : ModelCache.weightBytes(folder: path, name: "diffusion_pytorch_model")
    }
}
