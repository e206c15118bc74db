// The sd engine through a real daemon: a models directory holding the tiny SD1 fixture stack as a diffusers pipeline.
import Foundation
import PaintsClient
import PaintsDiffusion
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

/// A models directory with one pipeline folder, `tiny`, linking the fixture components.
func tinyModelsDirectory() throws -> String {
    let dir = try TemporaryDirectory.make(prefix: "models")
    let model = dir + "/tiny"
    let fm = FileManager.default
    try fm.createDirectory(atPath: model + "/scheduler", withIntermediateDirectories: true)
    let fixtures = Repository.path("Tests/Fixtures/diffusion")
    for (link, target) in [("unet", "unet-sd1"), ("vae", "vae"), ("text_encoder", "clip-sd1"), ("tokenizer", "tokenizer")] {
        try fm.createSymbolicLink(atPath: model + "/" + link, withDestinationPath: fixtures + "/" + target)
    }
    try Data(#"{"_class_name": "StableDiffusionPipeline"}"#.utf8).write(to: URL(fileURLWithPath: model + "/model_index.json"))
    try Data(#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}"#.utf8)
        .write(to: URL(fileURLWithPath: model + "/scheduler/scheduler_config.json"))
    return dir
}

@Suite(.serialized) struct StableDiffusionEngineTests {
    func daemon(models: String, budget: Int = 1 << 30) throws -> TestDaemon {
        var engines = BuiltinEngines.registry()
        engines.register(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: budget))
        return try TestDaemon(engines: engines)
    }

    @Test func colorizesWithProgressPreviewsAndTheSketchSize() throws {
        let models = try tinyModelsDirectory()
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let hello = try client.call(.hello)
        ReplySchema.check(hello, method: .hello)
        let sd = hello.result["engines"]?.arrayValue?.first { $0["name"] == "sd" }
        #expect(sd?["status"] == "available")
        #expect(hello.result["defaults"]?["colorize"] == "builtin")
        let params = ColorizeParams(sketch: .frame(index: 1, encoding: .png), hints: .frame(index: 2, encoding: .png),
                                    prompt: "a watercolor painting", engine: "sd", seed: 3,
                                    options: ["size": 32, "steps": 4, "strength": 0.75])
        let (events, final) = try client.collect(.colorize, params.json,
                                                 frames: [try Repository.data("Examples/art/umbrella-lineart.png"),
                                                          try Repository.data("Examples/art/umbrella-hints.png")], stream: true)
        #expect(final.type == .result, "\(final.header.serializedString())")
        ReplySchema.check(final, method: .colorize)
        let image = try PNGCodec.decode(try #require(final.imageData(final.result["image"])))
        #expect(image.width == 512 && image.isOpaque)
        #expect(final.result["info"]?["model"] == "tiny")
        let samples = events.filter { $0.body["progress"]?["stage"] == "sample" && $0.body["preview"] != nil }
        #expect(samples.count == 3)      // strength 0.75 of 4 steps
        let after = try client.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd" }
        #expect(after?["status"] == "ready")
        #expect((after?["resident_bytes"]?.intValue ?? 0) > 1_000_000)
    }

    @Test func missingModelsAndBudgetsAreClearErrors() throws {
        let empty = try TemporaryDirectory.make(prefix: "nomodels")
        let d = try daemon(models: empty)
        defer { d.stop() }
        let client = try d.client()
        let sd = try client.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd" }
        #expect(sd?["status"] == "unavailable")
        #expect(sd?["reason"]?.stringValue?.contains(empty) == true)
        let (_, final) = try client.collect(.colorize, ["sketch": ["frame": 1, "encoding": "png"], "engine": "sd"],
                                            frames: [try Repository.data("Examples/art/blocks-lineart.png")])
        #expect(final.protocolError?.code == .modelNotFound)

        let models = try tinyModelsDirectory()
        let small = try daemon(models: models, budget: 1000)
        defer { small.stop() }
        let (_, refused) = try small.client().collect(.colorize, ["sketch": ["frame": 1, "encoding": "png"], "engine": "sd",
                                                                 "options": ["size": 32, "steps": 2]],
                                                      frames: [try Repository.data("Examples/art/blocks-lineart.png")])
        #expect(refused.protocolError?.code == .resourceExhausted)
    }
}

@Suite struct ModelDirectoryTests {
    @Test func singleFileCheckpointsAreListedBesideFolders() throws {
        let models = try tinyModelsDirectory()
        try FileManager.default.createSymbolicLink(atPath: models + "/anime-v1.safetensors",
                                                   withDestinationPath: Repository.path("Tests/Fixtures/diffusion/single-file-sd1.safetensors"))
        try Data("not a model".utf8).write(to: URL(fileURLWithPath: models + "/notes.safetensors"))
        let engine = StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30)
        #expect(engine.models == ["anime-v1", "tiny"])
    }

    @Test func loadingPastTheBudgetUnloadsTheLeastRecentlyUsed() throws {
        let models = try tinyModelsDirectory()
        for name in ["second", "third"] {
            try FileManager.default.createSymbolicLink(atPath: models + "/" + name, withDestinationPath: models + "/tiny")
        }
        let one = StableDiffusionModel.residentBytes(path: models + "/tiny")
        #expect(one > 100_000)
        let cache = ModelCache(budgetBytes: one * 3 / 2)  // room for one model, not two
        _ = try cache.pipeline("tiny", path: models + "/tiny")
        #expect(cache.loadedNames == ["tiny"] && cache.residentBytes == one)
        _ = try cache.pipeline("second", path: models + "/second")
        #expect(cache.loadedNames == ["second"] && cache.residentBytes == one)
        let roomy = ModelCache(budgetBytes: one * 2)
        _ = try roomy.pipeline("tiny", path: models + "/tiny")
        _ = try roomy.pipeline("second", path: models + "/second")
        _ = try roomy.pipeline("tiny", path: models + "/tiny")  // a hit: tiny is now the most recently used
        #expect(roomy.loadedNames == ["second", "tiny"])
        _ = try roomy.pipeline("third", path: models + "/third")
        #expect(roomy.loadedNames == ["third", "tiny"])  // second, the least recently used, went
    }
}
