// The sd-reference-only engine (SDRO) through a real daemon over ZeroMQ, with the tiny SDRO model of the fixtures
// (Tests/Fixtures/sdro/model, the published folder layout) beside the tiny SD1 pipeline: the folders each engine
// claims, layers at the sketch's size with the lines kept, previews per step, the missing-reference error, cancel
// mid-sampling; and `paintsd tool forward` on SDRO's UNet with its blueprint.
import Foundation
import PaintsClient
import PaintsDiffusion
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTensor
import PaintsTestSupport
import Testing

/// `tinyModelsDirectory()` (the tiny SD1 pipeline `tiny`) with the tiny SDRO model as `sdro-tiny`.
func tinyReferenceOnlyModelsDirectory() throws -> String {
    let models = try tinyModelsDirectory()
    try FileManager.default.createSymbolicLink(atPath: models + "/sdro-tiny", withDestinationPath: Repository.path("Tests/Fixtures/sdro/model"))
    return models
}

@Suite(.serialized) struct ReferenceOnlyEngineTests {
    func daemon(models: String) throws -> TestDaemon {
        var engines = BuiltinEngines.registry()
        engines.register(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30))
        engines.register(ReferenceOnlyEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30))
        engines.register(PaintsUndoEngine(modelsDirectory: models))
        return try TestDaemon(engines: engines)
    }

    let art = ["Examples/art/umbrella-lineart.png", "Examples/art/umbrella-colored.png", "Examples/art/umbrella-hints.png"]
    /// The sketch, then the reference and the hints when asked for (every frame sent must be named).
    func frames(reference: Bool = true, hints: Bool = true) throws -> [Data] {
        try ([art[0]] + (reference ? [art[1]] : []) + (hints ? [art[2]] : [])).map { try Repository.data($0) }
    }
    /// sketch frame 1, then the reference and the hints in the frames that follow, as `frames` sends them.
    func params(_ options: [String: JSONValue], reference: Bool = true, hints: Bool = true, seed: Int = 7) -> [String: JSONValue] {
        var p: [String: JSONValue] = ["sketch": ["frame": 1, "encoding": "png"], "engine": "sd-reference-only", "seed": JSONValue(seed),
                                      "options": .object(options)]
        var next = 2
        if reference { p["reference"] = ["frame": JSONValue(next), "encoding": "png"]; next += 1 }
        if hints { p["hints"] = ["frame": JSONValue(next), "encoding": "png"] }
        return p
    }

    @Test func eachEngineFindsItsOwnFolders() throws {
        let models = try tinyReferenceOnlyModelsDirectory()
        #expect(ReferenceOnlyEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30).models == ["sdro-tiny"])
        #expect(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30).models == ["tiny"])
        #expect(PaintsUndoEngine(modelsDirectory: models).models.isEmpty)
        let empty = ReferenceOnlyEngine(modelsDirectory: try TemporaryDirectory.make(prefix: "nomodels"), memoryBudgetBytes: 1 << 30)
        guard case .unavailable(let reason) = empty.status else { Issue.record("status \(empty.status)"); return }
        #expect(reason.contains("stable-diffusion-reference-only-automatic-coloring-0.1.2"))
    }

    @Test func colorizesAfterTheReferenceIntoLayersThatKeepTheLines() throws {
        let models = try tinyReferenceOnlyModelsDirectory()
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let hello = try client.call(.hello)
        ReplySchema.check(hello, method: .hello)
        let engine = try #require(hello.result["engines"]?.arrayValue?.first { $0["name"] == "sd-reference-only" })
        #expect(engine["status"] == "available")
        #expect(engine["assets"]?["models"]?.arrayValue == ["sdro-tiny"])
        #expect(engine["capabilities"]?["colorize"]?["options"]?["sampler"]?["default"] == "unipc")
        #expect(hello.result["defaults"]?["colorize"] == "builtin")

        let (events, final) = try client.collect(.colorize, params(["size": 64, "steps": 3]), frames: try frames(), stream: true)
        #expect(final.type == .result, "\(final.header.serializedString())")
        ReplySchema.check(final, method: .colorize)
        let info = try #require(final.result["info"])
        #expect(info["model"] == "sdro-tiny" && info["sampler"] == "unipc" && info["steps"] == 3)
        #expect(info["working_size"] == [64, 64] && info["prediction_type"] == "v_prediction")
        #expect(info["palette_lock"] == 0.5 && info["warning"] == nil)
        let sketch = try PNGCodec.decode(try Repository.data(art[0]))
        _ = try checkColourOverFlats(final, sketch: sketch)
        // A preview each sampling step: all steps run (no img2img here).
        let previews = events.filter { $0.body["progress"]?["stage"] == "sample" && $0.body["preview"] != nil }
        #expect(previews.count == 3)
        let after = try client.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd-reference-only" }
        #expect(after?["status"] == "ready")
        #expect((after?["resident_bytes"]?.intValue ?? 0) > 1_000_000)

        // Without scribbles: the colour layer alone, nothing locked; another seed, another picture.
        let plain = try client.collect(.colorize, params(["size": 64, "steps": 3, "palette_lock": 0], hints: false), frames: try frames(hints: false)).final
        #expect(plain.type == .result, "\(plain.header.serializedString())")
        #expect(plain.result["layers"]?.arrayValue?.map { $0["name"] } == ["color"])
        #expect(plain.result["info"]?["palette_lock"] == nil && plain.result["info"]?["flats"] == nil)
        let other = try client.collect(.colorize, params(["size": 64, "steps": 3, "palette_lock": 0], hints: false, seed: 8), frames: try frames(hints: false)).final
        #expect(try #require(other.imageData(other.result["image"])) != #require(plain.imageData(plain.result["image"])))
    }

    @Test func withoutAReferenceOrAModelItSaysWhy() throws {
        let models = try tinyReferenceOnlyModelsDirectory()
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let missing = try client.collect(.colorize, params(["size": 64, "steps": 1], reference: false), frames: try frames(reference: false)).final
        ReplySchema.check(missing, method: .colorize)
        let error = try #require(missing.protocolError)
        #expect(error.code == .invalidParams && error.message.contains("reference"))
        #expect(error.details["param"] == "reference")
        let unknown = try client.collect(.colorize, params(["model": "nope", "steps": 1]), frames: try frames()).final
        #expect(unknown.protocolError?.code == .modelNotFound)
        let badSampler = try client.collect(.colorize, params(["sampler": "plms", "steps": 1]), frames: try frames()).final
        #expect(badSampler.protocolError?.code == .invalidParams)
        #expect(try client.call(.ping).result["pong"] == true)

        let empty = try TemporaryDirectory.make(prefix: "nomodels")
        let none = try daemon(models: empty)
        defer { none.stop() }
        let c2 = try none.client()
        let engine = try c2.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd-reference-only" }
        #expect(engine?["status"] == "unavailable")
        #expect(try c2.collect(.colorize, params(["steps": 1]), frames: try frames()).final.protocolError?.code == .modelNotFound)
    }

    @Test func aRunStopsMidSamplingWhenCancelled() throws {
        let models = try tinyReferenceOnlyModelsDirectory()
        let d = try daemon(models: models)
        defer { d.stop() }
        let worker = try d.client(), other = try d.client()
        try worker.send(Request(id: "long", method: .colorize, params: params(["size": 256, "steps": 100]), stream: true,
                                frames: [Data()] + (try frames())))
        var job: String?, sampled = 0, final: Reply?
        while final == nil {
            let reply = try #require(try worker.receive(for: "long", timeout: 600))
            if reply.type == .accepted { job = reply.job }
            if reply.body["progress"]?["stage"] == "sample" {
                sampled += 1
                if sampled == 1 { #expect(try other.cancel(job: try #require(job)).result["was"] == "running") }
            }
            if reply.type == .error || reply.type == .result { final = reply }
        }
        #expect(final?.protocolError?.code == .cancelled)
        #expect(sampled < 10)
        #expect(try other.call(.ping).result["pong"] == true)
    }

    /// `paintsd tool forward --component unet` on SDRO's UNet folder takes the blueprint as controlnet_cond.
    @Test func toolForwardRunsTheUNetWithItsBlueprint() throws {
        let dir = try TemporaryDirectory.make(prefix: "forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let io = Repository.path("Tests/Fixtures/sdro/unet-io.safetensors")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["tool", "forward", "--model", Repository.path("Tests/Fixtures/sdro/model"), "--component", "unet",
                             "--inputs", io, "--output", dir + "/out.safetensors"]
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let error = relativeError(try SafeTensorsFile(path: dir + "/out.safetensors").floats("output"), try SafeTensorsFile(path: io).floats("output"))
        print("tool forward, SDRO unet: relative error \(error)")
        #expect(error <= 1e-4)
    }
}
