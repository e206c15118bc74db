// paints-fuzz/Targets: what is fuzzed, through the production entry points only: the safetensors reader, the
// single-file checkpoint and model folder loaders (files written to a temporary directory and loaded from there, then
// run once on a tiny input when they load), the PNG decoder and the request header parser.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTagger
import PaintsTensor

/// One generated input: its bytes and, for the folder loader, which file of which model folder they replace
/// (`kind/relative/path`).
struct FuzzInput {
    var bytes: [UInt8]
    var label: String
}

/// A seed: a file of the corpus (or one the corpus names in its seeds.json) with its label, and its path relative to
/// the repository (saved inputs name it when they are stored as a patch of it).
struct Seed {
    var bytes: [UInt8]
    var label: String
    var source: String = ""
}

protocol FuzzTarget: Sendable {
    var name: String { get }
    /// File name suffix of saved inputs.
    var fileExtension: String { get }
    func seeds(root: String) throws -> [Seed]
    func mutate(_ seed: Seed, _ rng: inout SplitMix64) -> FuzzInput
    /// Runs the input through the production code: nil when it was accepted, else the typed error's text.
    func run(_ input: FuzzInput, scratch: String, root: String) -> String?
}

enum Targets {
    static let all: [any FuzzTarget] = [SafeTensorsTarget(), SingleFileTarget(), FolderTarget(), PNGTarget(), HeaderTarget()]

    /// The corpus files of `target` (sorted), and the files its seeds.json names, as paths relative to the repository.
    static func corpus(_ target: String, root: String) throws -> [(path: String, label: String)] {
        let dir = "Tests/Fixtures/fuzz/" + target
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/" + dir).sorted()
        var out = names.filter { $0 != "seeds.json" && !$0.hasPrefix(".") && RegularFile.isRegular(root + "/" + dir + "/" + $0) }
            .map { (dir + "/" + $0, $0) }
        if let extra = RegularFile.jsonObject(root + "/" + dir + "/seeds.json")?["files"] as? [String] {
            out += extra.map { ($0, ($0 as NSString).lastPathComponent) }
        }
        return out
    }

    static func readSeeds(_ target: String, root: String) throws -> [Seed] {
        try corpus(target, root: root).map {
            Seed(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/" + $0.path))), label: $0.label, source: $0.path)
        }
    }
}

/// The reader itself: SafeTensorsFile, then every tensor read as floats, integers and weights.
struct SafeTensorsTarget: FuzzTarget {
    let name = "safetensors"
    let fileExtension = ".safetensors"

    func seeds(root: String) throws -> [Seed] { try Targets.readSeeds(name, root: root) }

    func mutate(_ seed: Seed, _ rng: inout SplitMix64) -> FuzzInput {
        var bytes = seed.bytes
        for _ in 0..<(1 + rng.below(3)) {
            switch rng.below(4) {
            case 0: bytes = ByteMutator.mutate(bytes, &rng)
            case 1:  // the header's text, length fixed up
                if let image = SafeTensorsImage(Data(bytes)), let encoded = image.encoded() {
                    let n = Int(encoded.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                    var header = JSONTextMutator.mutate([UInt8](encoded[8..<(8 + n)]), &rng)
                    while header.count % 8 != 0 { header.append(0x20) }
                    var out = Data()
                    withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
                    bytes = [UInt8](out + header + image.data)
                } else {
                    bytes = ByteMutator.mutate(bytes, &rng)
                }
            default:
                if var image = SafeTensorsImage(Data(bytes)) {
                    image.mutate(&rng)
                    bytes = image.encoded().map { [UInt8]($0) } ?? bytes
                } else {
                    bytes = ByteMutator.mutate(bytes, &rng)
                }
            }
        }
        return FuzzInput(bytes: bytes, label: seed.label)
    }

    func run(_ input: FuzzInput, scratch: String, root: String) -> String? {
        let path = scratch + "/input.safetensors"
        do {
            try Data(input.bytes).write(to: URL(fileURLWithPath: path))
            let file = try SafeTensorsFile(path: path)
            var refused: String?
            for name in file.names {
                let e = try file.entry(name)
                do {
                    switch e.dtype {
                    case .f32, .f16, .bf16, .f64:
                        _ = try file.floats(name)
                        _ = try file.weight(name).tensor()
                        _ = try file.tensor(name)
                    case .i64, .i32: _ = try file.integers(name)
                    default: _ = try file.floats(name)
                    }
                } catch { refused = "\(error)" }
            }
            _ = WeightStore(files: [file]).keys
            _ = LDMCheckpoint.isLDM(file)
            _ = file.storedBytes
            return refused
        } catch {
            return "\(error)"
        }
    }
}

/// Writes a `.safetensors` checkpoint into a models directory (beside a tokenizer folder) and goes through everything
/// the sd engine does with one: listing, resident bytes, loading, one tiny generation.
struct SingleFileTarget: FuzzTarget {
    let name = "single-file"
    let fileExtension = ".safetensors"

    func seeds(root: String) throws -> [Seed] { try Targets.readSeeds(name, root: root) }

    func mutate(_ seed: Seed, _ rng: inout SplitMix64) -> FuzzInput {
        guard var image = SafeTensorsImage(Data(seed.bytes)) else {
            return FuzzInput(bytes: ByteMutator.mutate(seed.bytes, &rng), label: seed.label)
        }
        for _ in 0..<(1 + rng.below(3)) { image.mutate(&rng) }
        return FuzzInput(bytes: image.encoded().map { [UInt8]($0) } ?? seed.bytes, label: seed.label)
    }

    func run(_ input: FuzzInput, scratch: String, root: String) -> String? {
        let models = scratch + "/models"
        let fm = FileManager.default
        try? fm.createDirectory(atPath: models, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: models + "/tokenizer") {
            try? fm.createSymbolicLink(atPath: models + "/tokenizer", withDestinationPath: root + "/Tests/Fixtures/diffusion/tokenizer")
        }
        // A new name each time: header verdicts are cached per path, size and modification time.
        let path = models + "/m\(UInt64.random(in: 0...UInt64.max, using: &Scratch.names)).safetensors"
        defer { try? fm.removeItem(atPath: path) }
        do {
            try Data(input.bytes).write(to: URL(fileURLWithPath: path))
            _ = SingleFileCheckpoint.isCheckpoint(path)
            _ = StableDiffusionModel.models(in: models)
            _ = StableDiffusionModel.residentBytes(path: path)
            let file = try SafeTensorsFile(path: path)
            // The SD2 text encoder alone (the OpenCLIP seed is only that).
            if LDMCheckpoint.hasOpenCLIPTextEncoder(file) {
                do {
                    let (weights, configuration) = try LDMCheckpoint.openCLIPTextEncoder(file)
                    _ = try CLIPTextModel(configuration: configuration, weights: weights).encode([[49406, 320, 49407]])
                } catch {}
            }
            var checkpoint = try SingleFileCheckpoint(path: path)
            do {
                return try TinyRuns.generate(try StableDiffusionModel.load(path: path))
            } catch {
                // The tiny fixture's head counts and norm groups are not the family's (shapes cannot tell them): set
                // them as a user would, then map and build every component from the mutated file.
                let d = root + "/Tests/Fixtures/diffusion"
                checkpoint.unet = try UNetConfiguration(folder: d + "/unet-sd1")
                checkpoint.vae = try VAEConfiguration(folder: d + "/vae")
                checkpoint.textEncoder = try CLIPTextConfiguration(folder: d + "/clip-sd1")
                return try TinyRuns.generate(try checkpoint.pipeline(tokenizerFolder: d + "/tokenizer"))
            }
        } catch {
            return "\(error)"
        }
    }
}

/// One file of a model folder replaced by a mutated copy (the others linked to the fixtures), then the folder loaded
/// the way the engines load it, and run once on a tiny input.
struct FolderTarget: FuzzTarget {
    let name = "folder"
    let fileExtension = ""

    /// kind -> relative path -> repository path, from Tests/Fixtures/fuzz/folder/models.json.
    static func manifest(root: String) throws -> [String: [String: String]] {
        guard let json = RegularFile.jsonObject(root + "/Tests/Fixtures/fuzz/folder/models.json") as? [String: [String: String]] else {
            throw ModelError.configuration("Tests/Fixtures/fuzz/folder/models.json is missing or not kind -> path -> path")
        }
        return json
    }

    func seeds(root: String) throws -> [Seed] {
        var out: [Seed] = []
        for (kind, files) in try Self.manifest(root: root).sorted(by: { $0.key < $1.key }) {
            for (relative, source) in files.sorted(by: { $0.key < $1.key }) {
                out.append(Seed(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/" + source))), label: kind + "/" + relative,
                                source: source))
            }
        }
        return out
    }

    func mutate(_ seed: Seed, _ rng: inout SplitMix64) -> FuzzInput {
        var bytes = seed.bytes
        if seed.label.hasSuffix(".safetensors"), var image = SafeTensorsImage(Data(bytes)) {
            for _ in 0..<(1 + rng.below(3)) { image.mutate(&rng) }
            bytes = image.encoded().map { [UInt8]($0) } ?? bytes
        } else if seed.label.hasSuffix(".json"), rng.chance(0.85), var json = try? JSONSerialization.jsonObject(with: Data(bytes)) {
            for _ in 0..<(1 + rng.below(3)) { json = JSONMutator.mutate(json, &rng) }
            if let data = JSONMutator.serialized(json) { bytes = [UInt8](data) }
        } else if seed.label.hasSuffix(".json") {
            bytes = JSONTextMutator.mutate(bytes, &rng)
        } else {
            bytes = ByteMutator.mutate(bytes, &rng, rounds: 1 + rng.below(8))
        }
        return FuzzInput(bytes: bytes, label: seed.label)
    }

    /// Builds `kind`'s folder under `directory` with `relative` holding `bytes`; returns the folder.
    static func materialize(kind: String, relative: String, bytes: [UInt8], directory: String, root: String) throws -> String {
        let fm = FileManager.default
        let folder = directory + "/" + kind
        try? fm.removeItem(atPath: folder)
        guard let files = try manifest(root: root)[kind] else { throw ModelError.configuration("no model kind \(kind)") }
        for (path, source) in files {
            let target = folder + "/" + path
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if path == relative {
                try Data(bytes).write(to: URL(fileURLWithPath: target))
            } else {
                try fm.createSymbolicLink(atPath: target, withDestinationPath: root + "/" + source)
            }
        }
        return folder
    }

    /// Loads a model folder of `kind` as its engine does, then runs it once on a tiny input.
    static func load(kind: String, folder: String) throws -> String? {
        switch kind {
        case "sd":
            _ = StableDiffusionModel.isPipelineFolder(folder)
            _ = StableDiffusionModel.residentBytes(path: folder)
            return try TinyRuns.generate(try StableDiffusionModel.load(path: folder))
        case "undo":
            _ = PaintsUndoPipeline.isModelFolder(folder)
            return try TinyRuns.undo(try PaintsUndoPipeline(folder: folder))
        default:
            _ = WDTagger.isModelFolder(folder)
            let tagger = try WDTagger(folder: folder)
            let side = tagger.input.size
            _ = try tagger.probabilities(tagger.inputTensor(rgb: [Float](repeating: 128, count: side * side * 3), side: side))
            return nil
        }
    }

    func run(_ input: FuzzInput, scratch: String, root: String) -> String? {
        let kind = String(input.label.prefix { $0 != "/" }), relative = String(input.label.drop { $0 != "/" }.dropFirst())
        do {
            let folder = try Self.materialize(kind: kind, relative: relative, bytes: input.bytes, directory: scratch, root: root)
            return try Self.load(kind: kind, folder: folder)
        } catch {
            return "\(error)"
        }
    }
}

/// PNG bytes through the decoder, as images arrive from clients.
struct PNGTarget: FuzzTarget {
    let name = "png"
    let fileExtension = ".png"

    func seeds(root: String) throws -> [Seed] { try Targets.readSeeds(name, root: root) }

    func mutate(_ seed: Seed, _ rng: inout SplitMix64) -> FuzzInput {
        var bytes = seed.bytes
        for _ in 0..<(1 + rng.below(3)) { bytes = PNGMutator.mutate(bytes, &rng) }
        return FuzzInput(bytes: bytes, label: seed.label)
    }

    func run(_ input: FuzzInput, scratch: String, root: String) -> String? {
        let data = Data(input.bytes)
        do {
            _ = try PNGCodec.dimensions(of: data)
            let image = try PNGCodec.decode(data, maxPixels: 1 << 22)
            _ = try PNGCodec.encode(image)
            return nil
        } catch {
            return "\(error)"
        }
    }
}

/// Request headers (frame 0) through the JSON parser and the request validation, with a few payload frames.
struct HeaderTarget: FuzzTarget {
    let name = "header"
    let fileExtension = ".json"

    func seeds(root: String) throws -> [Seed] { try Targets.readSeeds(name, root: root) }

    func mutate(_ seed: Seed, _ rng: inout SplitMix64) -> FuzzInput {
        var bytes = seed.bytes
        for _ in 0..<(1 + rng.below(3)) {
            if rng.chance(0.4), let json = try? JSONSerialization.jsonObject(with: Data(bytes)),
               let data = JSONMutator.serialized(JSONMutator.mutate(json, &rng)) {
                bytes = [UInt8](data)
            } else {
                bytes = JSONTextMutator.mutate(bytes, &rng)
            }
        }
        return FuzzInput(bytes: bytes, label: seed.label)
    }

    func run(_ input: FuzzInput, scratch: String, root: String) -> String? {
        let data = Data(input.bytes)
        var refused: String?
        do { _ = try JSONValue.parse(data) } catch { refused = "\(error)" }
        for extra in [[], [Data([0x89, 0x50])], [Data(), Data(repeating: 7, count: 3)]] as [[Data]] {
            do { _ = try Request.parse(frames: [data] + extra) } catch { refused = "\(error.error)" }
        }
        return refused
    }
}

/// Names for scratch files, from a generator of their own (never the input's).
enum Scratch {
    nonisolated(unsafe) static var names = SplitMix64(seed: UInt64(getpid()))
}

/// The smallest runs of loaded models: what a job would do first, at a size that costs milliseconds.
enum TinyRuns {
    /// Pixels per side: the smallest size a model takes, when it is small (a model that needs a huge canvas is
    /// loaded but not run).
    static func side(_ multiple: Int) -> Int? { multiple >= 1 && multiple <= 64 ? multiple : nil }

    static func generate(_ pipeline: StableDiffusionPipeline) throws -> String? {
        let multiple = pipeline.vaeScale * (1 << max(0, min(16, pipeline.unet.configuration.blockOutChannels.count - 1)))
        guard let side = side(multiple) else { return "not run: a \(multiple)-pixel multiple" }
        var request = StableDiffusionPipeline.Request(prompt: "a cat (red:1.2)", negativePrompt: "blurry", width: side, height: side)
        request.steps = 2
        request.sampler = .eulerAncestral
        var noise = SeededNormalNoise(seed: 1)
        _ = try pipeline.generate(request, noise: &noise)
        request.source = Tensor(zeros: [1, 3, side, side])
        request.strength = 1
        request.sampler = .ddim
        _ = try pipeline.generate(request, noise: &noise)
        return nil
    }

    static func undo(_ pipeline: PaintsUndoPipeline) throws -> String? {
        guard let side = side(pipeline.sizeMultiple) else { return "not run: a \(pipeline.sizeMultiple)-pixel multiple" }
        var request = PaintsUndoPipeline.Request(image: Tensor(zeros: [1, 3, side, side]), operationSteps: [400], prompt: "a cat")
        request.steps = 1
        let latent = side / pipeline.vaeScale
        var noise = SeededNormalNoise(seed: 1)
        _ = try pipeline.frames(request, noise: noise.normal(count: pipeline.vae.configuration.latentChannels * latent * latent))
        return nil
    }
}
