// Tagger folders no converter writes: hostile numbers in config.json, weights that do not chain, named pipes in place
// of its files, and the tagger folders `make fuzz` saved. Each is a typed ModelError, returned without blocking.
import Foundation
import PaintsDiffusion
import PaintsTagger
import PaintsTensor
import PaintsTestSupport
import Synchronization
import Testing

@Suite struct HostileTaggerTests {
    /// The fixture tagger `kind` (vit, convnext) with `relative` replaced by `bytes`.
    func folder(_ kind: String, _ relative: String, _ bytes: Data) throws -> String {
        try FuzzRegressions.materialize(kind: "tagger-" + kind, relative: relative, bytes: bytes,
                                        directory: try TemporaryDirectory.make(prefix: "tagger"))
    }

    @Test func hostileConfigurationsAreTypedErrors() throws {
        let base = try JSONSerialization.jsonObject(with: Repository.data("Tests/Fixtures/tagger/vit/config.json")) as! [String: Any]
        let pretrained = base["pretrained_cfg"] as! [String: Any]
        for (key, value) in [("input_size", [3, 0, 0]), ("input_size", [3, 1e300, 1e300]), ("input_size", [3, 100_000, 100_000]),
                             ("mean", [0.5, 0.5]), ("std", [0.5, 0, 0.5])] as [(String, Any)] {
            var json = base, p = pretrained
            p[key] = value
            json["pretrained_cfg"] = p
            let dir = try folder("vit", "config.json", try JSONSerialization.data(withJSONObject: json))
            #expect(throws: ModelError.self, "\(key): \(value)") { try WDTagger(folder: dir) }
        }
        for heads in [0, -1, 5] {
            var json = base
            json["model_args"] = ["num_heads": heads]
            let dir = try folder("vit", "config.json", try JSONSerialization.data(withJSONObject: json))
            #expect(throws: ModelError.self, "num_heads \(heads)") { try WDTagger(folder: dir) }
        }
    }

    @Test func weightsThatDoNotChainAreTypedErrors() throws {
        let fixtures = Repository.path("Tests/Fixtures/tagger")
        func rewritten(_ kind: String, _ edit: @escaping (inout [String: Any]) -> Void) throws -> String {
            let dir = try TemporaryDirectory.make(prefix: "tagger-weights")
            let path = dir + "/model.safetensors"
            try HostileFiles.rewrite(fixtures + "/" + kind + "/model.safetensors", to: path, edit)
            return try folder(kind, "model.safetensors", try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        // Layer scale with fewer values than channels (it was indexed modulo its length, then summed).
        let gamma = try rewritten("convnext") { h in
            var e = h["stages.1.blocks.0.gamma"] as! [String: Any]
            let offsets = e["data_offsets"] as! [Int]
            (e["shape"], e["data_offsets"]) = ([1], [offsets[0], offsets[0] + 4])
            h["stages.1.blocks.0.gamma"] = e
        }
        #expect(throws: ModelError.self) { try WDTagger(folder: gamma) }
        // A depthwise kernel that is not 4-d (its size was read before any check).
        let depthwise = try rewritten("convnext") { h in
            var e = h["stages.0.blocks.0.conv_dw.weight"] as! [String: Any]
            e["shape"] = [(e["shape"] as! [Int]).reduce(1, *)]
            h["stages.0.blocks.0.conv_dw.weight"] = e
        }
        #expect(throws: ModelError.self) { try WDTagger(folder: depthwise) }
        // A fused q/k/v projection narrower than three widths (its rows were sliced by the width).
        let qkv = try rewritten("vit") { h in
            var e = h["blocks.0.attn.qkv.weight"] as! [String: Any]
            let shape = e["shape"] as! [Int]
            e["shape"] = [shape[0] / 3, shape[1] * 3]
            h["blocks.0.attn.qkv.weight"] = e
        }
        #expect(throws: ModelError.self) { try WDTagger(folder: qkv) }
    }

    @Test func namedPipesAreRefusedWithoutBlocking() throws {
        for file in ["config.json", "model.safetensors", "selected_tags.csv"] {
            let dir = try folder("vit", file, Data())
            try FileManager.default.removeItem(atPath: dir + "/" + file)
            #expect(HostileFiles.makeFIFO(dir + "/" + file))
            defer { HostileFiles.releaseReaders(dir + "/" + file) }
            let outcome = Mutex<String>("")
            #expect(finishes(within: 30) {
                do {
                    _ = try WDTagger(folder: dir)
                    outcome.withLock { $0 = "loaded" }
                } catch { outcome.withLock { $0 = "\(type(of: error))" } }
            }, "\(file) as a named pipe blocked the loader")
            #expect(outcome.withLock { $0 } == "ModelError", "\(file)")
        }
    }

    /// Tagger folders `make fuzz` saved because they once killed the loader.
    @Test func fuzzRegressions() throws {
        for file in FuzzRegressions.files("folder") {
            guard let (kind, relative) = FuzzRegressions.folderInput(file), kind.hasPrefix("tagger-") else { continue }
            let dir = try folder(String(kind.dropFirst("tagger-".count)), relative, try FuzzRegressions.bytes(file))
            #expect(throws: ModelError.self, "\(file)") { try WDTagger(folder: dir) }
        }
    }
}
