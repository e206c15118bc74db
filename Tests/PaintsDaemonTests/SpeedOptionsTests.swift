// Issue 14 through a real daemon with the tiny stack: LoRAs per job (the base model intact for the next), the quality
// presets and what they need, TAESD previews each step and TAESD drafts.
import Foundation
import PaintsClient
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite(.serialized) struct SpeedOptionsTests {
    func models(taesd: Bool = false, fewStep: Bool = false) throws -> String {
        let models = try tinyModelsDirectory()
        let fm = FileManager.default
        try fm.createDirectory(atPath: models + "/lora", withIntermediateDirectories: true)
        let fixtures = Repository.path("Tests/Fixtures")
        try fm.createSymbolicLink(atPath: models + "/lora/ink-style.safetensors", withDestinationPath: fixtures + "/lora/kohya/lora_tiny.safetensors")
        if fewStep {
            // Any LoRA named as an LCM-LoRA is taken for one (the tiny one is not really distilled; the test counts steps).
            try fm.createSymbolicLink(atPath: models + "/lora/lcm-lora-sdv1-5.safetensors", withDestinationPath: fixtures + "/lora/peft/pytorch_lora_weights.safetensors")
        }
        if taesd { try fm.createSymbolicLink(atPath: models + "/taesd", withDestinationPath: fixtures + "/taesd/tiny") }
        return models
    }

    func daemon(_ models: String) throws -> TestDaemon {
        var engines = BuiltinEngines.registry()
        engines.register(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30))
        return try TestDaemon(engines: engines)
    }

    func params(_ options: [String: JSONValue]) -> [String: JSONValue] {
        ["sketch": ["frame": 1, "encoding": "png"], "prompt": "a watercolor painting", "engine": "sd", "seed": 4,
         "options": .object(["size": 32, "steps": 2, "controlnet": "none"].merging(options) { _, b in b })]
    }
    let sketch = { try Repository.data("Examples/art/umbrella-lineart.png") }

    @Test func aLoRAChangesThePictureAndLeavingItOutRestoresItExactly() throws {
        let d = try daemon(try models())
        defer { d.stop() }
        let client = try d.client()
        func image(_ options: [String: JSONValue]) throws -> Data {
            let final = try client.collect(.colorize, params(options), frames: [try sketch()]).final
            #expect(final.type == .result, "\(final.header.serializedString())")
            return try #require(final.imageData(final.result["image"]))
        }
        let plain = try image([:])
        let styled = try image(["loras": [["name": "ink-style", "weight": 0.8]]])
        #expect(styled != plain)
        #expect(try image([:]) == plain)            // the base model stayed as it was
        #expect(try image(["loras": [["name": "ink-style", "weight": 0.8]]]) == styled)
        let hello = try client.call(.hello)
        let assets = hello.result["engines"]?.arrayValue?.first { $0["name"] == "sd" }?["assets"]
        #expect(assets?["loras"]?.arrayValue?.first?["name"] == "ink-style")
        #expect(assets?["presets"]?.arrayValue?.first { $0["name"] == "fast" }?["available"] == false)
        let missing = try client.collect(.colorize, params(["loras": [["name": "nope"]]]), frames: [try sketch()]).final
        #expect(missing.protocolError?.code == .modelNotFound)
        // Without a few-step LoRA, fast says which file would enable it.
        let fast = try client.collect(.colorize, params(["quality": "fast"]), frames: [try sketch()]).final
        #expect(fast.protocolError?.code == .modelNotFound && fast.protocolError?.message.contains("lcm-lora-sdv1-5") == true)
    }

    @Test func fastRunsItsFewStepsWithoutGuidanceAndTAESDPreviewsEachStep() throws {
        let d = try daemon(try models(taesd: true, fewStep: true))
        defer { d.stop() }
        let client = try d.client()
        let preset = try client.call(.hello).result["engines"]?.arrayValue?.first { $0["name"] == "sd" }?["assets"]?["presets"]?.arrayValue?
            .first { $0["name"] == "fast" }
        #expect(preset?["available"] == true && preset?["lora"] == "lcm-lora-sdv1-5" && preset?["steps"] == 4)
        var options: [String: JSONValue] = ["quality": "fast"]
        options["steps"] = nil
        var p = params(options)
        p["options"] = ["size": 32, "controlnet": "none", "quality": "fast"]
        let (events, final) = try client.collect(.colorize, p, frames: [try sketch()], stream: true)
        #expect(final.type == .result, "\(final.header.serializedString())")
        let info = try #require(final.result["info"])
        #expect(info["quality"] == "fast" && info["steps"] == 4 && info["guidance"] == 1 && info["sampler"] == "lcm")
        #expect(info["loras"]?.arrayValue?.first?["name"] == "lcm-lora-sdv1-5" && info["preview"] == "taesd")
        // One preview per step, each decoded by TAESD: 8x the 8x8 latent (the latent projection would be 4x: 32x32).
        let previews = events.filter { $0.body["progress"]?["stage"] == "sample" }.compactMap { $0.imageData($0.body["preview"]) }
        #expect(previews.count == 4)
        for data in previews {
            let picture = try PNGCodec.decode(data)
            #expect(picture.width == 64 && picture.height == 64, "\(picture.width)x\(picture.height)")
        }
        // A TAESD draft instead of the VAE's decode.
        var draft = p
        draft["options"] = ["size": 32, "steps": 2, "controlnet": "none", "decoder": "taesd"]
        let drafted = try client.collect(.colorize, draft, frames: [try sketch()]).final
        #expect(drafted.result["info"]?["decoder"] == "taesd")
    }
}

extension SpeedOptionsTests {
    /// TCD's gamma is a job option: reported in the info, it changes the picture (0 adds no noise back between steps,
    /// 1 all of it), the same gamma gives the same picture again, and a gamma outside 0...1 is refused by name.
    /// Euler (trailing) runs as a sampler of its own.
    @Test func tcdGammaIsAnOptionAndEulerTrailingASampler() throws {
        let d = try daemon(try models())
        defer { d.stop() }
        let client = try d.client()
        func run(_ options: [String: JSONValue]) throws -> (image: Data, info: JSONValue?) {
            let final = try client.collect(.colorize, params(options), frames: [try sketch()]).final
            #expect(final.type == .result, "\(final.header.serializedString())")
            return (try #require(final.imageData(final.result["image"])), final.result["info"])
        }
        let deterministic = try run(["sampler": "tcd", "tcd_gamma": 0, "steps": 3])
        #expect(deterministic.info?["tcd_gamma"] == 0 && deterministic.info?["sampler"] == "tcd")
        let stochastic = try run(["sampler": "tcd", "tcd_gamma": 1, "steps": 3])
        #expect(stochastic.info?["tcd_gamma"] == 1)
        #expect(stochastic.image != deterministic.image)
        #expect(try run(["sampler": "tcd", "tcd_gamma": 0, "steps": 3]).image == deterministic.image)
        let defaulted = try run(["sampler": "tcd", "steps": 3])
        #expect(defaulted.info?["tcd_gamma"] == 0.3)
        let bad = try client.collect(.colorize, params(["sampler": "tcd", "tcd_gamma": 1.5]), frames: [try sketch()]).final
        #expect(bad.protocolError?.code == .invalidParams && bad.protocolError?.details["param"] == "options.tcd_gamma")
        let euler = try run(["sampler": "euler_trailing", "steps": 3])
        #expect(euler.info?["sampler"] == "euler_trailing" && euler.info?["tcd_gamma"] == nil)
        let unknown = try client.collect(.colorize, params(["sampler": "plms"]), frames: [try sketch()]).final
        #expect(unknown.protocolError?.code == .invalidParams && unknown.protocolError?.message.contains("euler_trailing") == true)
    }
}

extension SpeedOptionsTests {
    /// lora_merge: the job says its LoRA ran merged, the picture is the unfused one's up to rounding, the merged copy
    /// stays resident for the next job with the same set (counted in the engine's resident bytes), and a job without
    /// the LoRA is still byte-identical to the plain model's.
    @Test func mergedLoRAsMatchUnfusedAndStayResident() throws {
        let d = try daemon(try models())
        defer { d.stop() }
        let client = try d.client()
        func run(_ options: [String: JSONValue]) throws -> (picture: RGBAImage, png: Data, info: JSONValue?) {
            let final = try client.collect(.colorize, params(options), frames: [try sketch()]).final
            #expect(final.type == .result, "\(final.header.serializedString())")
            let png = try #require(final.imageData(final.result["image"]))
            return (try PNGCodec.decode(png), png, final.result["info"])
        }
        func resident() throws -> Int {
            try client.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd" }?["resident_bytes"]?.intValue ?? 0
        }
        let lora: JSONValue = [["name": "ink-style", "weight": 0.8]]
        let plain = try run([:])
        let unfused = try run(["loras": lora])
        #expect(unfused.info?["lora_form"] == "unfused")
        let before = try resident()
        let merged = try run(["loras": lora, "lora_merge": true])
        #expect(merged.info?["lora_form"] == "merged")
        let grown = try resident()
        #expect(grown > before, "merged weights counted: \(before) -> \(grown)")
        // Up to rounding (the merged sums are formed in another order): within 2 of 255 levels, mostly equal.
        let a = unfused.picture.pixels, b = merged.picture.pixels
        let worst = zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(a.count == b.count && worst <= 2, "merged vs unfused: worst difference \(worst) levels")
        // Can fail: the LoRA changes the picture far more than merging does.
        let styleWorst = zip(plain.picture.pixels, merged.picture.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(styleWorst > 8, "the LoRA itself moves the picture by \(styleWorst) levels")
        // Kept for the next job with the same set (no second copy), and the base model is untouched.
        let again = try run(["loras": lora, "lora_merge": true])
        #expect(again.png == merged.png && again.info?["lora_form"] == "merged")
        #expect(try resident() == grown)
        #expect(try run([:]).png == plain.png)
    }
}

extension SpeedOptionsTests {
    /// lora_merge where the merged copies would pass the model budget: the job runs the LoRA unmerged, says why, and
    /// makes the unmerged picture exactly; nothing is evicted for it.
    @Test func loRAMergeOverTheBudgetRunsUnmerged() throws {
        let models = try models()
        let lora: JSONValue = [["name": "ink-style", "weight": 0.8]]
        // The bytes the model and the LoRA file take, from a daemon with room to spare.
        var residentWithLoRA = 0
        var unfusedPNG = Data()
        do {
            let d = try daemon(models)
            defer { d.stop() }
            let client = try d.client()
            let final = try client.collect(.colorize, params(["loras": lora]), frames: [try sketch()]).final
            unfusedPNG = try #require(final.imageData(final.result["image"]))
            residentWithLoRA = try client.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd" }?["resident_bytes"]?.intValue ?? 0
        }
        #expect(residentWithLoRA > 0)
        // A budget with room for those and 1 MiB more: the merged copies (2.8 MB for this LoRA's UNet layers) do not fit.
        var engines = BuiltinEngines.registry()
        engines.register(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: residentWithLoRA + (1 << 20)))
        let d = try TestDaemon(engines: engines)
        defer { d.stop() }
        let client = try d.client()
        let final = try client.collect(.colorize, params(["loras": lora, "lora_merge": true]), frames: [try sketch()]).final
        #expect(final.type == .result, "\(final.header.serializedString())")
        let form = final.result["info"]?["lora_form"]?.stringValue ?? ""
        #expect(form.hasPrefix("unfused: merging needs"), "\(form)")
        #expect(try #require(final.imageData(final.result["image"])) == unfusedPNG)
        let sd = try client.call(.enginesList).result["engines"]?.arrayValue?.first { $0["name"] == "sd" }
        #expect(sd?["status"] == "ready")
    }
}
