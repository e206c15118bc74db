// The paints-undo and wd-tagger engines through a real daemon over ZeroMQ, with the tiny fixture models in a models
// directory laid out as a user would (the published folder names).
import Foundation
import PaintsClient
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

/// A models directory with the Paints-UNDO fixture model and, when asked, the ViT tagger fixture.
func undoModelsDirectory(tagger: Bool = true) throws -> String {
    let dir = try TemporaryDirectory.make(prefix: "undo-models")
    let fm = FileManager.default
    try fm.createSymbolicLink(atPath: dir + "/paints_undo_single_frame", withDestinationPath: Repository.path("Tests/Fixtures/paints-undo/model"))
    if tagger { try fm.createSymbolicLink(atPath: dir + "/wd-vit-tagger-v3", withDestinationPath: Repository.path("Tests/Fixtures/tagger/vit")) }
    return dir
}

@Suite(.serialized) struct PaintsUndoEngineTests {
    func daemon(models: String) throws -> TestDaemon {
        var engines = BuiltinEngines.registry()
        let tagger = WDTaggerEngine(modelsDirectory: models)
        engines.register(tagger)
        engines.register(PaintsUndoEngine(modelsDirectory: models, tagger: tagger), preferred: true)
        return try TestDaemon(engines: engines)
    }

    /// A 45x30 picture (not a multiple of anything the model needs).
    func picture() throws -> Data {
        let art = try Repository.image("Examples/art/umbrella-colored.png").resized(width: 45, height: 30)
        return try PNGCodec.encode(art)
    }

    @Test func undoPreviewReturnsFramesOfTheInputSizeInOrderWithProgress() throws {
        let models = try undoModelsDirectory()
        defer { try? FileManager.default.removeItem(atPath: models) }
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let hello = try client.call(.hello)
        ReplySchema.check(hello, method: .hello)
        #expect(hello.result["defaults"]?["undo.preview"] == "paints-undo")
        #expect(hello.result["defaults"]?["tag"] == "wd-tagger")

        let params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "steps": [999, 400], "seed": 7,
                                           "options": ["steps": 3, "size": 256]]
        let (events, final) = try client.collect(.undoPreview, params, frames: [try picture()], stream: true, timeout: 600)
        #expect(final.type == .result, "\(final.header.serializedString())")
        ReplySchema.check(final, method: .undoPreview)
        #expect(final.result["engine"] == "paints-undo")
        let frames = final.result["frames"]?.arrayValue ?? []
        #expect(frames.map { $0["step"]?.intValue } == [999, 400])
        var images: [RGBAImage] = []
        for frame in frames {
            let image = try PNGCodec.decode(try #require(final.imageData(frame["image"])))
            #expect(image.width == 45 && image.height == 30 && image.isOpaque)
            images.append(image)
        }
        #expect(images.count == 2 && images[0] != images[1])
        // Working canvas: longer side 256, the 3:2 picture scaled to 256x171 and padded to 256x176 (multiples of 8 here).
        let info = final.result["info"]
        #expect(info?["working_size"] == [256, 176])
        #expect(info?["prompt_source"] == "tagger")
        let stages = events.compactMap { $0.body["progress"]?["stage"]?.stringValue }
        #expect(stages.filter { $0 == "sample" }.count == 6)        // 3 steps for each of 2 frames
        let framesReported = events.filter { $0.body["progress"]?["stage"] == "frame" }
        #expect(framesReported.count == 2 && framesReported.allSatisfy { $0.body["preview"] != nil })
        #expect(events.contains { $0.body["progress"]?["eta_s"] != nil })

        // The same seed and prompt give the same frames; a client prompt replaces the tagger's.
        let again = try client.collect(.undoPreview, params, frames: [try picture()], timeout: 600).final
        #expect(try PNGCodec.decode(try #require(again.imageData(again.result["frames"]?.arrayValue?.first?["image"]))) == images[0])
        var prompted = params
        prompted["prompt"] = "1girl"
        let withPrompt = try client.collect(.undoPreview, prompted, frames: [try picture()], timeout: 600).final
        #expect(withPrompt.result["info"]?["prompt_source"] == "client")
        #expect(withPrompt.result["info"]?["prompt"] == "1girl")
    }

    @Test func aRunningModelJobStopsAtTheNextSamplingStepWhenCancelled() throws {
        let models = try undoModelsDirectory()
        defer { try? FileManager.default.removeItem(atPath: models) }
        let d = try daemon(models: models)
        defer { d.stop() }
        let worker = try d.client(), other = try d.client()
        let params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "prompt": "1girl",
                                           "options": ["steps": 100, "size": 256]]
        try worker.send(Request(id: "long", method: .undoPreview, params: params, stream: true, frames: [Data(), try picture()]))
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
        #expect(sampled < 10)         // of the 600 steps six default keyframes at 100 steps would take
        #expect(try other.call(.ping).result["pong"] == true)
    }

    @Test func sequenceRunsFromBlankCanvasToTheFinishedPicture() throws {
        let models = try undoModelsDirectory()
        defer { try? FileManager.default.removeItem(atPath: models) }
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let png = try picture()
        let params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "steps": [400, 999, 0, 700],
                                           "options": ["steps": 2, "size": 256]]
        let final = try client.collect(.undoSequence, params, frames: [png], timeout: 600).final
        #expect(final.type == .result, "\(final.header.serializedString())")
        ReplySchema.check(final, method: .undoSequence)
        let frames = final.result["frames"]?.arrayValue ?? []
        #expect(frames.map { $0["step"]?.intValue } == [1000, 999, 700, 400, 0])
        #expect(frames.map { $0["kind"]?.stringValue } == ["blank", "keyframe", "keyframe", "keyframe", "finished"])
        let blank = try PNGCodec.decode(try #require(final.imageData(frames[0]["image"])))
        #expect(blank.pixel(0) == .white && blank.width == 45)
        let finished = try PNGCodec.decode(try #require(final.imageData(frames[4]["image"])))
        #expect(finished == (try PNGCodec.decode(png)))
        // A bad option is a typed error naming it; the daemon goes on serving.
        let bad = try client.collect(.undoSequence, ["image": ["frame": 1, "encoding": "png"], "options": ["quality": "ultra"]],
                                     frames: [png]).final
        #expect(bad.protocolError?.code == .invalidParams)
        #expect(bad.protocolError?.details["param"] == "options.quality")
        #expect(try client.call(.ping).result["pong"] == true)
    }

    @Test func tagMethodNamesWhatThePictureShows() throws {
        let models = try undoModelsDirectory()
        defer { try? FileManager.default.removeItem(atPath: models) }
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let final = try client.collect(.tag, ["image": ["frame": 1, "encoding": "png"], "threshold": 0.0, "character_threshold": 0.0,
                                              "exclude": ["SOLO"]], frames: [try picture()]).final
        #expect(final.type == .result, "\(final.header.serializedString())")
        ReplySchema.check(final, method: .tag)
        #expect(final.result["engine"] == "wd-tagger")
        // Thresholds of 0 keep every label with a non-zero probability, characters first, "solo" excluded.
        let names = final.result["tags"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names.first == "hatsune_miku" && !names.contains("solo") && names.contains("1girl"))
        #expect(final.result["ratings"]?.objectValue?.keys.sorted() == ["explicit", "general", "questionable", "sensitive"])
        let prompt = final.result["prompt"]?.stringValue ?? ""
        #expect(prompt.contains("watercolor \\(medium\\)") && !prompt.contains("_"))
    }

    @Test func withoutModelFilesTheDaemonSaysSoAndFallsBackByName() throws {
        let models = try TemporaryDirectory.make(prefix: "no-models")
        defer { try? FileManager.default.removeItem(atPath: models) }
        let d = try daemon(models: models)
        defer { d.stop() }
        let client = try d.client()
        let hello = try client.call(.hello)
        let undo = hello.result["engines"]?.arrayValue?.first { $0["name"] == "paints-undo" }
        #expect(undo?["status"] == "unavailable")
        #expect(undo?["reason"]?.stringValue?.contains(models) == true)
        #expect(hello.result["defaults"]?["undo.preview"] == "builtin")
        let params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "steps": [500]]
        // No engine named: the default (builtin) runs, and the result says so.
        let plain = try client.collect(.undoPreview, params, frames: [try picture()]).final
        #expect(plain.result["engine"] == "builtin")
        #expect(plain.result["info"]?["simulated"] == true)
        // paints-undo named: a typed error naming the fallback, and the daemon keeps serving.
        var named = params
        named["engine"] = "paints-undo"
        let refused = try client.collect(.undoPreview, named, frames: [try picture()]).final
        #expect(refused.protocolError?.code == .modelNotFound)
        #expect(refused.protocolError?.details["fallback"] == "builtin")
        let tag = try client.collect(.tag, ["image": ["frame": 1, "encoding": "png"]], frames: [try picture()]).final
        #expect(tag.protocolError?.code == .modelNotFound)
        #expect(try client.call(.ping).result["pong"] == true)
    }
}
