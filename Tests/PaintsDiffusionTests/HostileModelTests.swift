// Model files no converter writes: the single-file checkpoints of issue 10 that killed the daemon (keys and shapes
// the loader indexed without checking), weights that do not chain, hostile numbers in configurations, forward inputs
// of the wrong rank, named pipes in a models directory, and every model input `make fuzz` saved. Each must be a typed
// error (ModelError or WeightError), returned without blocking; none may trap.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Synchronization
import Testing

private let fixtures = Repository.path("Tests/Fixtures/diffusion")
private let checkpoint = fixtures + "/single-file-sd1.safetensors"

/// A models directory with a `tokenizer` folder (what single files take their vocabulary from).
private func modelsDirectory() throws -> String {
    let dir = try TemporaryDirectory.make(prefix: "hostile-models")
    try FileManager.default.createSymbolicLink(atPath: dir + "/tokenizer", withDestinationPath: fixtures + "/tokenizer")
    return dir
}

/// Goes through what the sd engine does with a checkpoint file: list it, count its bytes, read its configuration,
/// load it. Returns the load's error (nil when it loaded).
private func engineSteps(_ path: String) -> Error? {
    _ = SingleFileCheckpoint.isCheckpoint(path)
    _ = StableDiffusionModel.models(in: (path as NSString).deletingLastPathComponent)
    _ = StableDiffusionModel.residentBytes(path: path)
    do {
        _ = try StableDiffusionModel.load(path: path)
        return nil
    } catch { return error }
}

@Suite struct HostileCheckpointTests {
    @Test func theIssueReproductionsAreTypedErrors() throws {
        // Tests/Fixtures/fuzz/single-file/: a bare output_blocks. key, a 1-D attn2.to_k.weight, a scalar
        // out_layers.3.weight, a bare first_stage_model.encoder.down. key (each once an array trap).
        let dir = try modelsDirectory()
        let seeds = try FileManager.default.contentsOfDirectory(atPath: Repository.path("Tests/Fixtures/fuzz/single-file"))
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        #expect(seeds.count == 4)
        for name in seeds {
            let path = dir + "/" + name
            try Repository.data("Tests/Fixtures/fuzz/single-file/" + name).write(to: URL(fileURLWithPath: path))
            #expect(SingleFileCheckpoint.isCheckpoint(path), "\(name)")
            #expect(engineSteps(path) is ModelError, "\(name)")
            #expect(throws: ModelError.self, "\(name)") { try SingleFileCheckpoint(path: path) }
            try FileManager.default.removeItem(atPath: path)
        }
    }

    @Test func theFixtureWithUncheckedShapesIsATypedError() throws {
        // The same faults in a whole model: every other tensor is as the loader expects.
        let u = "model.diffusion_model.", dir = try modelsDirectory()
        let edits: [(String, (inout [String: Any]) -> Void)] = [
            ("1-D to_k", { h in
                let key = h.keys.sorted().first { $0.hasPrefix(u) && $0.hasSuffix("attn2.to_k.weight") }!
                var e = h[key] as! [String: Any]
                e["shape"] = [(e["shape"] as! [Int]).reduce(1, *)]
                h[key] = e
            }),
            ("scalar out_layers.3", { h in
                let key = u + "input_blocks.1.0.out_layers.3.weight"
                var e = h[key] as! [String: Any]
                let begin = (e["data_offsets"] as! [Int])[0]
                (e["shape"], e["data_offsets"]) = ([Int](), [begin, begin + 4])
                h[key] = e
            }),
            ("empty out_layers.3", { h in
                let key = u + "input_blocks.1.0.out_layers.3.weight"
                var e = h[key] as! [String: Any]
                let begin = (e["data_offsets"] as! [Int])[0]
                (e["shape"], e["data_offsets"]) = ([0, 32, 3, 3], [begin, begin])
                h[key] = e
            }),
            ("bare output_blocks.", { h in h[u + "output_blocks."] = ["dtype": "F32", "shape": [0], "data_offsets": [0, 0]] }),
            ("bare encoder.down.", { h in h["first_stage_model.encoder.down."] = ["dtype": "F32", "shape": [0], "data_offsets": [0, 0]] }),
            ("bare prefix", { h in h[u] = ["dtype": "F32", "shape": [0], "data_offsets": [0, 0]] }),
            ("VAE key with two parts", { h in h["first_stage_model.encoder"] = ["dtype": "F32", "shape": [1, 0], "data_offsets": [0, 0]] }),
            ("negative VAE level", { h in
                h["first_stage_model.decoder.up.-9223372036854775808.block.0.x"] = ["dtype": "F32", "shape": [0], "data_offsets": [0, 0]]
            }),
            ("mid block_ overflow", { h in
                h["first_stage_model.decoder.mid.block_-9223372036854775808.x"] = ["dtype": "F32", "shape": [0], "data_offsets": [0, 0]]
            }),
            ("1-D token embedding", { h in
                let key = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
                var e = h[key] as! [String: Any]
                e["shape"] = [(e["shape"] as! [Int]).reduce(1, *)]
                h[key] = e
            }),
        ]
        for (i, (name, edit)) in edits.enumerated() {
            let path = dir + "/case\(i).safetensors"
            try HostileFiles.rewrite(checkpoint, to: path, edit)
            let error = engineSteps(path)
            #expect(error is ModelError, "\(name): \(String(describing: error))")
            // And with the configurations set by hand (the way past the family defaults), the key mapping and the
            // constructors refuse it too, or build a model that runs.
            if var c = try? SingleFileCheckpoint(path: path) {
                c.unet = try UNetConfiguration(folder: fixtures + "/unet-sd1")
                c.vae = try VAEConfiguration(folder: fixtures + "/vae")
                c.textEncoder = try CLIPTextConfiguration(folder: fixtures + "/clip-sd1")
                #expect(throws: ModelError.self, "\(name)") { try c.pipeline(tokenizerFolder: fixtures + "/tokenizer") }
            }
        }
    }

    @Test func weightsThatDoNotChainFailAtLoad() throws {
        let dir = try TemporaryDirectory.make(prefix: "chain")
        let unetConfiguration = try UNetConfiguration(folder: fixtures + "/unet-sd1")
        func unet(_ edit: @escaping (inout [String: Any]) -> Void) throws -> UNet2DConditionModel {
            let path = dir + "/unet.safetensors"
            try HostileFiles.rewrite(fixtures + "/unet-sd1/diffusion_pytorch_model.safetensors", to: path, edit)
            return try UNet2DConditionModel(configuration: unetConfiguration, weights: WeightStore(path: path))
        }
        #expect(throws: Never.self) { try unet { _ in } }
        // A residual block changing its channels without a shortcut (the forward pass's sum would trap).
        #expect(throws: ModelError.self) {
            try unet { h in h[h.keys.sorted().first { $0.contains("conv_shortcut.weight") }!] = nil }
        }
        // Two tensors' names swapped: shapes no longer fit their places.
        #expect(throws: ModelError.self) {
            try unet { h in
                let a = "down_blocks.0.resnets.0.conv1.weight", b = "down_blocks.0.resnets.0.conv2.bias"
                (h[a], h[b]) = (h[b], h[a])
            }
        }
        // A time projection with too few outputs (its bias was indexed per channel).
        #expect(throws: ModelError.self) {
            try unet { h in
                let key = "down_blocks.0.resnets.0.time_emb_proj.weight"
                var e = h[key] as! [String: Any]
                let shape = e["shape"] as! [Int], offsets = e["data_offsets"] as! [Int]
                e["shape"] = [shape[0] / 2, shape[1]]
                e["data_offsets"] = [offsets[0], offsets[0] + shape[0] / 2 * shape[1] * 4]
                h[key] = e
                h["down_blocks.0.resnets.0.time_emb_proj.bias"] = nil
            }
        }
        // A 2x2 kernel where the size must be kept.
        #expect(throws: ModelError.self) {
            try unet { h in
                var e = h["conv_out.weight"] as! [String: Any]
                let shape = e["shape"] as! [Int]
                e["shape"] = [shape[0], shape[1] * 9 / 4, 2, 2]
                h["conv_out.weight"] = e
            }
        }
    }

    @Test func hostileConfigurationNumbersAreTypedErrors() throws {
        let base = try JSONSerialization.jsonObject(with: Repository.data("Tests/Fixtures/diffusion/unet-sd1/config.json")) as! [String: Any]
        for (key, value) in [("attention_head_dim", 0), ("attention_head_dim", -4), ("layers_per_block", -1), ("layers_per_block", 0),
                             ("norm_num_groups", 0), ("transformer_layers_per_block", -1), ("block_out_channels", [Int]()),
                             ("block_out_channels", Array(repeating: 32, count: 70)), ("layers_per_block", 1e300),
                             ("cross_attention_dim", 0.5)] as [(String, Any)] {
            var json = base
            json[key] = value
            #expect(throws: ModelError.self, "\(key): \(value)") { try UNetConfiguration(json: json) }
        }
        let vae = try JSONSerialization.jsonObject(with: Repository.data("Tests/Fixtures/diffusion/vae/config.json")) as! [String: Any]
        for (key, value) in [("sample_size", 1), ("sample_size", 0), ("norm_num_groups", 0), ("latent_channels", -4),
                             ("layers_per_block", -1), ("block_out_channels", [0, 16])] as [(String, Any)] {
            var json = vae
            json[key] = value
            #expect(throws: ModelError.self, "\(key): \(value)") { try VAEConfiguration(json: json) }
        }
        for json in [["hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 0],
                     ["hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 3],
                     ["hidden_size": 32, "num_hidden_layers": -1, "num_attention_heads": 4],
                     ["hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 0]] {
            #expect(throws: ModelError.self, "\(json)") { try CLIPTextConfiguration(json: json) }
        }
        for json in [["num_train_timesteps": 1e300], ["num_train_timesteps": 1.5], ["steps_offset": -9e18], ["steps_offset": 1000]] {
            #expect(throws: WeightError.self, "\(json)") { try SchedulerConfiguration(json: json) }
        }
    }

    @Test func forwardInputsOfTheWrongShapeAreTypedErrors() throws {
        let vae = try AutoencoderKL(folder: fixtures + "/vae")
        #expect(throws: ModelError.self) { try vae.decode(Tensor(zeros: [4, 4])) }
        #expect(throws: ModelError.self) { try vae.decode(Tensor(zeros: [1, 3, 4, 4])) }
        #expect(throws: ModelError.self) { try vae.decode(Tensor(zeros: [1, 4, 0, 4])) }
        #expect(throws: ModelError.self) { try vae.encode(Tensor(zeros: [1, 3])) }
        #expect(throws: ModelError.self) { try vae.encode(Tensor(zeros: [1, 4, 8, 8])) }
        let unet = try UNet2DConditionModel(folder: fixtures + "/unet-sd1")
        let context = Tensor(zeros: [1, 77, 32])
        #expect(throws: ModelError.self) { try unet(Tensor(zeros: []), timesteps: [1], context: context) }
        #expect(throws: ModelError.self) { try unet(Tensor(zeros: [0, 4, 8, 8]), timesteps: [], context: Tensor(zeros: [0, 77, 32])) }
        #expect(throws: ModelError.self) { try unet(Tensor(zeros: [1, 4, 8, 8]), timesteps: [], context: context) }
        let text = try CLIPTextModel(folder: fixtures + "/clip-sd1")
        #expect(throws: ModelError.self) { try text.encode([[]]) }
        #expect(throws: ModelError.self) { try text.encode([]) }
        #expect(throws: ModelError.self) { try text.encode([[49406]], clipSkip: -1) }
        #expect(throws: ModelError.self) { try text.encode([[49406]], clipSkip: .min) }
    }
}

@Suite struct HostileModelsDirectoryTests {
    @Test func aNamedPipeInTheModelsDirectoryIsSkippedWithoutBlocking() throws {
        let dir = try modelsDirectory()
        let fifo = dir + "/p.safetensors"
        #expect(HostileFiles.makeFIFO(fifo))
        defer { HostileFiles.releaseReaders(fifo) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/real.safetensors", withDestinationPath: checkpoint)
        let listed = Mutex<[String]>([])
        #expect(finishes(within: 30) { listed.withLock { $0 = StableDiffusionModel.models(in: dir).map(\.name) } })
        #expect(listed.withLock { $0 } == ["real"])
        #expect(finishes(within: 30) {
            _ = StableDiffusionModel.residentBytes(path: fifo)
            _ = try? StableDiffusionModel.load(path: fifo)
            _ = try? SingleFileCheckpoint(path: fifo)
        })
    }

    @Test func namedPipesInAModelFolderAreRefusedWithoutBlocking() throws {
        // A pipeline folder whose config, tokenizer and weights files are, one at a time, named pipes.
        let dir = try TemporaryDirectory.make(prefix: "fifo-folder")
        for file in ["unet/config.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
                     "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "text_encoder/model.safetensors"] {
            let folder = try FuzzRegressions.materialize(kind: "sd", relative: file, bytes: Data(), directory: dir)
            try FileManager.default.removeItem(atPath: folder + "/" + file)
            #expect(HostileFiles.makeFIFO(folder + "/" + file))
            defer { HostileFiles.releaseReaders(folder + "/" + file) }
            let outcome = Mutex<String>("")
            let returned = finishes(within: 30) {
                do {
                    _ = StableDiffusionModel.residentBytes(path: folder)
                    _ = PaintsUndoPipeline.isModelFolder(folder)
                    _ = try StableDiffusionModel.load(folder: folder)
                    outcome.withLock { $0 = "loaded" }
                } catch { outcome.withLock { $0 = "\(type(of: error))" } }
            }
            #expect(returned, "\(file) as a named pipe blocked the loader")
            // The scheduler config is optional (defaults apply); every other file is needed.
            #expect(outcome.withLock { $0 } == (file.hasPrefix("scheduler") ? "loaded" : "ModelError"), "\(file)")
        }
    }
}

@Suite struct FuzzRegressionModelTests {
    /// Checkpoints `make fuzz` saved because they once killed the daemon's loader: each is now a typed error, on the
    /// production path and with the configurations set by hand.
    @Test func singleFileRegressions() throws {
        let dir = try modelsDirectory()
        let saved = FuzzRegressions.files("single-file")
        #expect(!saved.isEmpty)
        for (i, file) in saved.enumerated() {
            let path = dir + "/r\(i).safetensors"
            try FuzzRegressions.bytes(file).write(to: URL(fileURLWithPath: path))
            let error = engineSteps(path)
            #expect(error is ModelError, "\(file): \(String(describing: error))")
            if var c = try? SingleFileCheckpoint(path: path) {
                c.unet = try UNetConfiguration(folder: fixtures + "/unet-sd1")
                c.vae = try VAEConfiguration(folder: fixtures + "/vae")
                c.textEncoder = try CLIPTextConfiguration(folder: fixtures + "/clip-sd1")
                #expect(throws: ModelError.self, "\(file)") { try c.pipeline(tokenizerFolder: fixtures + "/tokenizer") }
            }
        }
    }

    /// Model folders (one file mutated) `make fuzz` saved: the Stable Diffusion and Paints-UNDO ones load to a
    /// typed error (the tagger ones are PaintsTaggerTests').
    @Test func folderRegressions() throws {
        let dir = try TemporaryDirectory.make(prefix: "fuzz-folder")
        for file in FuzzRegressions.files("folder") {
            guard let (kind, relative) = FuzzRegressions.folderInput(file), kind == "sd" || kind == "undo" else { continue }
            let folder = try FuzzRegressions.materialize(kind: kind, relative: relative, bytes: try FuzzRegressions.bytes(file), directory: dir)
            #expect(throws: ModelError.self, "\(file)") {
                if kind == "sd" { _ = try StableDiffusionModel.load(path: folder) } else { _ = try PaintsUndoPipeline(folder: folder) }
            }
        }
    }
}
