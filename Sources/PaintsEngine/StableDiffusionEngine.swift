// PaintsEngine/StableDiffusionEngine: the `sd` colorize engine: Stable Diffusion 1.x/2.x colouring the user's line art.
// A line-art ControlNet holds the lines; the built-in fill's flats from the scribbles are the img2img start; the colour
// comes back at the canvas size cut along the full-resolution line art, its regions pulled toward their scribbles'
// colours (palette lock), as layers. Models resident within a memory budget.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTensor

public final class StableDiffusionEngine: ColorizeEngine {
    public let name = "sd"
    public let summary = "Stable Diffusion 1.x/2.x colouring the line art: a line-art ControlNet keeps the lines, the scribbles' flat colours start the image"
    public let modelsDirectory: String
    public let cache: ModelCache

    public init(modelsDirectory: String, memoryBudgetBytes: Int) {
        self.modelsDirectory = modelsDirectory
        cache = ModelCache(budgetBytes: memoryBudgetBytes)
    }

    /// Models in the models directory (pipeline folders and single-file checkpoints), by name.
    public var models: [String] { StableDiffusionModel.models(in: modelsDirectory).map(\.name) }

    func path(of model: String) -> String {
        StableDiffusionModel.models(in: modelsDirectory).first { $0.name == model }?.path ?? modelsDirectory + "/" + model
    }

    /// Where ControlNets are looked for: `controlnet/` in the models directory.
    public var controlNetDirectory: String { modelsDirectory + "/controlnet" }

    /// The ControlNets installed, with what each is for.
    public var controlNets: [ControlNetEntry] { ControlNetLibrary.entries(in: controlNetDirectory) }

    /// Where IP-Adapters and the CLIP image encoders they take their input from are looked for.
    public var ipAdapterDirectory: String { modelsDirectory + "/ip-adapter" }
    public var imageEncoderDirectory: String { modelsDirectory + "/clip-vision" }
    public var imageEncoders: [ImageEncoderEntry] { ImagePromptLibrary.encoders(in: imageEncoderDirectory) }
    /// Where LoRAs are looked for, and those found.
    public var loraDirectory: String { modelsDirectory + "/lora" }
    public var loras: [LoRAEntry] { LoRALibrary.entries(in: loraDirectory) }
    /// TAESD (madebyollin/taesd in diffusers' layout) in MODELS/taesd: previews each step, and drafts (`decoder`).
    public var taesdDirectory: String { modelsDirectory + "/taesd" }
    public var hasTAESD: Bool { FileManager.default.fileExists(atPath: taesdDirectory + "/config.json") }
    /// The IP-Adapters installed, each with the encoder it takes its input from or why it has none.
    public var ipAdapters: [ImagePromptAdapterEntry] { ImagePromptLibrary.adapters(in: ipAdapterDirectory, encoders: imageEncoders) }
    /// References' encodings, by content.
    public let embeddings = ImageEmbeddingCache()

    public var status: EngineStatus {
        if models.isEmpty {
            return .unavailable(reason: "no Stable Diffusion models (diffusers pipeline folders or single-file .safetensors checkpoints) in \(modelsDirectory)")
        }
        return cache.loadedNames.isEmpty ? .available : .ready
    }

    /// Models, reference encodings, and the loaded pipelines' kept text embeddings and img2img latents.
    public var residentBytes: Int {
        cache.residentBytes + embeddings.residentBytes
            + cache.residents("model", as: StableDiffusionPipeline.self).reduce(0) { $0 + $1.caches.residentBytes }
    }

    public func releaseCaches() {
        embeddings.removeAll()
        for pipeline in cache.residents("model", as: StableDiffusionPipeline.self) { pipeline.caches.removeAll() }
        cache.remove(kind: Self.mergedLoRAKind, except: "")
    }

    public var assets: [String: JSONValue]? {
        ["models": .array(models.map { .string($0) }), "controlnets": .array(controlNets.map(\.json)),
         "ip_adapters": .array(ipAdapters.map(\.json)), "image_encoders": .array(imageEncoders.map(\.json)),
         "loras": .array(loras.map(\.json)), "presets": .array(Quality.allCases.map { $0.description(loras: loras) }),
         "decoders": .array(["full"] + (hasTAESD ? ["taesd"] : []))]
    }

    public var capabilities: [MethodCapabilities] {
        let models = models, controlNets = controlNets
        let adapters = ipAdapters.filter { $0.problem == nil && $0.input != .style }.map(\.name)
        let lineArt = controlNets.filter { $0.kind.takesLineArt && $0.problem == nil }.map(\.name)
        return [MethodCapabilities(method: .colorize, inputs: ["sketch", "hints", "reference", "prompt", "negative_prompt"], options: [
            EngineOption("model", .string, default: .string(models.first ?? ""), choices: models,
                         summary: "model in the models directory: a pipeline folder's name or a checkpoint's file name without .safetensors"),
            EngineOption("controlnet", .string, default: "auto", choices: ["auto", "none"] + lineArt,
                         summary: "the ControlNet that holds the lines: auto (the first line-art one installed in \(controlNetDirectory): lineart, then lineart_anime, then scribble), none, or a name"),
            EngineOption("control_strength", .number, default: 1, minimum: 0, maximum: 2,
                         summary: "how strongly the ControlNet holds the lines (its conditioning scale)"),
            EngineOption("control_start", .number, default: 0, minimum: 0, maximum: 1, summary: "fraction of the steps after which the ControlNet starts acting"),
            EngineOption("control_end", .number, default: 1, minimum: 0, maximum: 1, summary: "fraction of the steps after which it stops"),
            EngineOption("guess_mode", .boolean, default: false,
                         summary: "ControlNet 1.1's guess mode: deeper residuals weaker, the unconditional half unsteered (follows the lines with less help from the prompt)"),
            EngineOption("hint_strength", .number, default: JSONValue(Self.defaultHintStrength), minimum: 0.05, maximum: 1,
                         summary: "with scribbles or a reference: how far the picture may move from their flat colours (the img2img denoise; 1 ignores them)"),
            EngineOption("reference_mode", .string, default: "auto", choices: ReferenceMode.allCases.map(\.rawValue),
                         summary: "what the reference picture does: ip-adapter (its colours and look steer the model through an IP-Adapter), reference-only (the model's self-attention also reads the reference's features each step: no extra files, about twice the time per step), both, palette (its colours fill the regions without scribbles, as the built-in engine does), none; auto: ip-adapter when one and its image encoder are installed, else palette"),
            EngineOption("style_fidelity", .number, default: 0.5, minimum: 0, maximum: 1,
                         summary: "reference-only: 1 the reference steers only the prompt's half of the guidance (closest to the reference), 0 both halves alike"),
            EngineOption("reference_attention_weight", .number, default: 1, minimum: 0, maximum: 1,
                         summary: "reference-only: the share of attention layers, deepest first, that read the reference (0 none)"),
            EngineOption("reference_adain_weight", .number, default: 1, minimum: 0, maximum: 2,
                         summary: "reference-only: how many feature maps take the reference's statistics (0 the middle block only, 2 all)"),
            EngineOption("reference_strength", .number, default: JSONValue(Self.defaultReferenceStrength), minimum: 0, maximum: 2,
                         summary: "how strongly the reference steers with an IP-Adapter (its scale: 1 for the reference alone, about 0.5 beside a prompt)"),
            EngineOption("ip_adapter", .string, default: "auto", choices: ["auto"] + adapters,
                         summary: "the IP-Adapter in \(ipAdapterDirectory) (auto: the first usable one)"),
            EngineOption("style", .string, default: "",
                         summary: "style components for a Style Components adapter in \(ipAdapterDirectory): numbers, comma-separated (or a JSON list), as many as the adapter takes; empty: no style. paintsd cannot extract them from a picture (the published extractor is a pickled torch module, never loaded)"),
            EngineOption("style_strength", .number, default: 1, minimum: 0, maximum: 4, summary: "multiplies the style components"),
            EngineOption("palette_lock", .number, default: JSONValue(Self.defaultPaletteLock), minimum: 0, maximum: 1,
                         summary: "pulls each scribbled region's colour toward its scribble (OKLab hue, chroma and mean lightness), keeping the model's shading; 0 leaves the model's colours"),
            EngineOption("quality", .string, default: .string(Quality.balanced.rawValue), choices: Quality.allCases.map(\.rawValue),
                         summary: "a preset for steps, sampler and guidance: fast (an installed LCM, TCD or Hyper-SD LoRA, its sampler and steps, guidance 1: one UNet call per step), balanced (20 steps), best (30 steps); options given beside it win"),
            EngineOption("loras", .string, default: "",
                         summary: "LoRAs from \(loraDirectory): a list of {\"name\", \"weight\"} (weight 1 when left out)"),
            EngineOption("lora_merge", .boolean, default: false,
                         summary: "with loras: merge them into a copy of the weights they change (one merge per LoRA set and model, kept for the next job; costs about the changed layers' size in memory, and falls back to unmerged when that would pass the memory budget) so each step runs at the base model's speed; off: the LoRAs' low-rank terms are added every step (no extra memory, slower steps)"),
            EngineOption("decoder", .string, default: "full", choices: ["full", "taesd"],
                         summary: "full: the model's VAE; taesd: a draft decoded by TAESD (\(taesdDirectory)) in a fraction of the time. With TAESD installed every step's preview is decoded by it"),
            EngineOption("steps", .integer, default: 20, minimum: 1, maximum: 100, summary: "sampling steps (img2img runs hint_strength x steps)"),
            EngineOption("guidance", .number, default: 7, minimum: 1, maximum: 30, summary: "classifier-free guidance scale"),
            EngineOption("sampler", .string, default: .string(SamplerKind.dpmSolver2MKarras.rawValue), choices: SamplerKind.allCases.map(\.rawValue),
                         summary: SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")),
            EngineOption("tcd_gamma", .number, default: JSONValue(SamplerKind.defaultGamma), minimum: 0, maximum: 1,
                         summary: "sampler tcd: how much fresh noise each step adds back (TCD's gamma; 0 deterministic and sharper, 1 as LCM; 0.3 as published)"),
            EngineOption("size", .integer, default: 512, minimum: 32, maximum: 2048,
                         summary: "working resolution (longest side, rounded to what the model takes: multiples of 64 for SD); the colour is brought back to the canvas size and cut along the full-size lines"),
        ])]
    }

    static let defaultHintStrength = 0.75
    static let defaultPaletteLock = 0.5
    static let defaultReferenceStrength = 0.6

    /// Presets an artist picks instead of numbers.
    enum Quality: String, CaseIterable {
        case fast, balanced, best

        /// The few-step LoRA `fast` uses: the first installed, LCM, then TCD, then Hyper-SD.
        static func fastLoRA(_ loras: [LoRAEntry]) -> LoRAEntry? {
            for kind in ["lcm", "tcd", "hyper-sd"] {
                if let hit = loras.first(where: { $0.fewStep?.kind == kind && $0.problem == nil }) { return hit }
            }
            return nil
        }

        static let fastNeeds = "an LCM, TCD or Hyper-SD LoRA for SD1.5 (e.g. latent-consistency/lcm-lora-sdv1-5 as lcm-lora-sdv1-5.safetensors) in the models directory's lora/ folder"

        /// How `hello` lists it: whether it can run with the files present and what it implies.
        func description(loras: [LoRAEntry]) -> JSONValue {
            switch self {
            case .fast:
                if let lora = Self.fastLoRA(loras), let f = lora.fewStep {
                    return ["name": "fast", "available": true, "lora": .string(lora.name), "sampler": .string(f.sampler.rawValue),
                            "steps": JSONValue(f.steps), "guidance": JSONValue(Double(f.guidance))]
                }
                return ["name": "fast", "available": false, "needs": .string(Self.fastNeeds)]
            case .balanced: return ["name": "balanced", "available": true, "sampler": "dpmpp_2m_karras", "steps": 20, "guidance": 7]
            case .best: return ["name": "best", "available": true, "sampler": "dpmpp_2m_karras", "steps": 30, "guidance": 7]
            }
        }
    }

    /// One LoRA a job asked for.
    struct LoRARequest {
        var name: String
        var weight: Float
    }

    /// What a reference picture does.
    enum ReferenceMode: String, CaseIterable {
        case auto, ipAdapter = "ip-adapter", referenceOnly = "reference-only", both, palette, none

        var usesIPAdapter: Bool { self == .ipAdapter || self == .both }
        var usesReferenceAttention: Bool { self == .referenceOnly || self == .both }
    }

    /// Nothing ahead of a job: `colorize` loads the model its options name (or the default, the first, when they name
    /// none), and only that one. Loading the first model here, before the job's options are read, made every job load
    /// the alphabetically first model whatever it named, and fail when that one would not load.
    public func load() throws(ProtocolError) {}

    /// The pictures, the built-in fill and its inside mask at full size, the working-size colour brought to full size,
    /// the two extra layers kept encoded until the reply, float copies, and one model pass (UNet and ControlNet) at the
    /// working size (`options.size`, 512 by default). A model not yet resident adds its weights, not counted here.
    public func estimatedPeakBytes(_ job: JobShape) -> Int {
        let side = job.options["size"]?.intValue ?? 512
        return job.imageBytes + (BuiltinColorizer.bytesPerPixel + 16 + 3 * 4 + 2 * 4) * job.pixels
            + ModelWorkingSet.bytes(workingPixels: ModelWorkingSet.pixels(width: job.width, height: job.height, side: side)) * 3 / 2
    }

    public func unload() {
        cache.removeAll()
        embeddings.removeAll()
    }

    /// One ControlNet a job asked for, before it is loaded.
    struct ControlRequest {
        var name: String
        var strength: Float
        var start: Double
        var end: Double
    }

    struct Settings {
        var model: String
        var steps = 20
        var hintStrength = Float(StableDiffusionEngine.defaultHintStrength)
        var guidance: Float = 7
        var sampler = SamplerKind.dpmSolver2MKarras
        var gamma = SamplerKind.defaultGamma
        var size = 512
        var paletteLock = Float(StableDiffusionEngine.defaultPaletteLock)
        var guessMode = false
        /// The ControlNets to use (empty: none); `controlNetNote` says why when it is empty.
        var controls: [ControlRequest] = []
        var controlNetNote: String?
        var referenceMode = ReferenceMode.auto
        var referenceStrength = Float(StableDiffusionEngine.defaultReferenceStrength)
        var ipAdapter = "auto"
        var referenceAttention = ReferenceAttentionOptions()
        /// Style components (empty: none), already multiplied by style_strength.
        var style: [Float] = []
        var quality = Quality.balanced
        var loras: [LoRARequest] = []
        var loraMerge = false
        var draft = false

        init(_ options: [String: JSONValue], models: [String], controlNets: [ControlNetEntry],
             loras installed: [LoRAEntry] = []) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            model = try r.string("model") ?? models.first ?? ""
            guard models.contains(model) else {
                throw ProtocolError(.modelNotFound, "no model \"\(model)\"", details: ["available": .array(models.map { .string($0) })])
            }
            // The preset first; options given beside it win.
            quality = try r.choice("quality", as: Quality.self) ?? .balanced
            switch quality {
            case .fast:
                guard let lora = Quality.fastLoRA(installed), let f = lora.fewStep else {
                    throw ProtocolError(.modelNotFound, "quality fast needs \(Quality.fastNeeds)", details: ["param": "options.quality"])
                }
                (steps, sampler, guidance) = (f.steps, f.sampler, f.guidance)
                loras.append(LoRARequest(name: lora.name, weight: 1))
            case .balanced: break
            case .best: steps = 30
            }
            for (i, o) in (try r.objectList("loras", maxCount: 8) ?? []).enumerated() {
                var l = ParamReader(o, path: "options.loras[\(i)].")
                let name = try l.requiredString("name")
                let weight = Float(try l.double("weight", in: -4...4) ?? 1)
                try l.finish()
                guard let entry = installed.first(where: { $0.name == name }) else {
                    throw ProtocolError(.modelNotFound, "no LoRA \"\(name)\"", details: ["lora": .string(name), "available": .array(installed.map { .string($0.name) })])
                }
                if let problem = entry.problem { throw ProtocolError(.modelNotFound, "LoRA \(name) cannot be used: \(problem)", details: ["lora": .string(name)]) }
                if let k = loras.firstIndex(where: { $0.name == name }) { loras[k].weight = weight } else { loras.append(LoRARequest(name: name, weight: weight)) }
            }
            loraMerge = try r.bool("lora_merge") ?? false
            switch try r.string("decoder") ?? "full" {
            case "full": draft = false
            case "taesd": draft = true
            case let other:
                throw ProtocolError(.invalidParams, "options.decoder: full or taesd, got \"\(other.prefix(40))\"", details: ["param": "options.decoder"])
            }
            steps = try r.int("steps", in: 1...100) ?? steps
            // `strength` is what this option was called before ControlNets came; both are read, one may be given.
            let hint = try r.double("hint_strength", in: 0.05...1), old = try r.double("strength", in: 0.05...1)
            if hint != nil && old != nil {
                throw ProtocolError(.invalidParams, "options.strength is the old name of options.hint_strength: give one",
                                    details: ["param": "options.strength"])
            }
            hintStrength = Float(hint ?? old ?? Double(hintStrength))
            guidance = Float(try r.double("guidance", in: 1...30) ?? Double(guidance))
            sampler = try r.choice("sampler", as: SamplerKind.self) ?? sampler
            gamma = try r.double("tcd_gamma", in: 0...1) ?? gamma
            size = try r.int("size", in: 32...2048) ?? size
            paletteLock = Float(try r.double("palette_lock", in: 0...1) ?? Double(paletteLock))
            guessMode = try r.bool("guess_mode") ?? false
            let strength = Float(try r.double("control_strength", in: 0...2) ?? 1)
            let start = try r.double("control_start", in: 0...1) ?? 0, end = try r.double("control_end", in: 0...1) ?? 1
            guard start < end else {
                throw ProtocolError(.invalidParams, "options.control_start (\(start)) must be before options.control_end (\(end))",
                                    details: ["param": "options.control_start"])
            }
            referenceMode = try r.choice("reference_mode", as: ReferenceMode.self) ?? .auto
            referenceStrength = Float(try r.double("reference_strength", in: 0...2) ?? Double(referenceStrength))
            ipAdapter = try r.string("ip_adapter") ?? "auto"
            referenceAttention.styleFidelity = Float(try r.double("style_fidelity", in: 0...1) ?? 0.5)
            referenceAttention.attentionWeight = try r.double("reference_attention_weight", in: 0...1) ?? 1
            referenceAttention.adainWeight = try r.double("reference_adain_weight", in: 0...2) ?? 1
            let strengthOfStyle = try r.double("style_strength", in: 0...4) ?? 1
            if let raw = r.value("style") {
                let parts: [String]? = raw.arrayValue.map { $0.map { $0.serializedString() } }
                    ?? raw.stringValue.map { $0.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init) }
                let numbers = parts?.compactMap(Float.init) ?? []
                guard let parts, numbers.count == parts.count, numbers.count <= 4096, numbers.allSatisfy(\.isFinite) else {
                    throw ProtocolError(.invalidParams, "options.style: expected numbers, comma-separated or as a list",
                                        details: ["param": "options.style"])
                }
                style = numbers.map { $0 * Float(strengthOfStyle) }
            }
            let single = try r.string("controlnet")
            let several = try r.objectList("controlnets", maxCount: 4)
            try r.finish()
            if let several {
                guard single == nil else {
                    throw ProtocolError(.invalidParams, "options.controlnet and options.controlnets: give one", details: ["param": "options.controlnets"])
                }
                for (i, o) in several.enumerated() {
                    var c = ParamReader(o, path: "options.controlnets[\(i)].")
                    let name = try c.requiredString("name")
                    let unit = ControlRequest(name: name, strength: Float(try c.double("strength", in: 0...2) ?? Double(strength)),
                                              start: try c.double("start", in: 0...1) ?? start, end: try c.double("end", in: 0...1) ?? end)
                    try c.finish()
                    guard unit.start < unit.end else {
                        throw ProtocolError(.invalidParams, "options.controlnets[\(i)]: start must be before end", details: ["param": .string("options.controlnets[\(i)].start")])
                    }
                    controls.append(unit)
                }
            } else {
                switch single ?? "auto" {
                case "none":
                    controlNetNote = "no ControlNet (options.controlnet is none): the model redraws the lines"
                case "auto":
                    if let pick = ControlNetLibrary.lineArtDefault(controlNets) {
                        controls = [ControlRequest(name: pick.name, strength: strength, start: start, end: end)]
                    } else {
                        controlNetNote = "no line-art ControlNet installed, so the model redraws the lines: put one (e.g. control_v11p_sd15_lineart.safetensors) in the models directory's controlnet/ folder"
                    }
                case let name:
                    controls = [ControlRequest(name: name, strength: strength, start: start, end: end)]
                }
            }
            for c in controls {
                guard let entry = controlNets.first(where: { $0.name == c.name }) else {
                    throw ProtocolError(.modelNotFound, "no ControlNet \"\(c.name)\"",
                                        details: ["controlnet": .string(c.name), "available": .array(controlNets.map { .string($0.name) })])
                }
                if let problem = entry.problem {
                    throw ProtocolError(.modelNotFound, "ControlNet \(c.name) cannot be used: \(problem)", details: ["controlnet": .string(c.name)])
                }
                guard entry.kind.takesLineArt else {
                    throw ProtocolError(.invalidParams,
                                        "ControlNet \(c.name) wants \(entry.kind.rawValue) hints; paintsd makes line-art hints only (for lineart, lineart_anime and scribble ControlNets). "
                                            + "If it does follow line art, say so in \(c.name).json beside it: {\"kind\": \"lineart\"}",
                                        details: ["controlnet": .string(c.name), "kind": .string(entry.kind.rawValue), "param": "options.controlnet"])
                }
            }
        }
    }

    public func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput {
        let controlNets = controlNets
        let loraEntries = loras
        let settings = try Settings(input.options, models: models, controlNets: controlNets, loras: loraEntries)
        let sketch = input.sketch
        let (mode, adapter) = try referenceUse(settings, reference: input.reference)
        // 1. The built-in fill at full size: the flats (the scribbles' colours under the lines, and the reference's
        // palette in palette mode) and the drawing's inside.
        context.report(stage: "fill", step: 0, steps: 1, fraction: 0, preview: nil)
        let fill = try BuiltinColorizer().fill(ColorizeInput(sketch: sketch, hints: input.hints, reference: mode == .palette ? input.reference : nil,
                                                             seed: input.seed), context: InnerStepContext(context))
        try context.checkCancellation()
        context.report(stage: "load", step: 0, steps: 1, fraction: 0.03, preview: nil)
        var pipeline = try cache.pipeline(settings.model, path: path(of: settings.model))
        let loraForm = try applyLoRAs(settings.loras, entries: loraEntries, merge: settings.loraMerge, model: settings.model, to: &pipeline)
        var guidance: [(ControlRequest, ControlNetModel)] = []
        for request in settings.controls {
            try context.checkCancellation()
            guard let entry = controlNets.first(where: { $0.name == request.name }) else { continue }
            let model = try cache.controlNet(entry.name, path: entry.path)
            let unetContext = pipeline.unet.configuration.crossAttentionDimension, netContext = model.configuration.crossAttentionDimension
            guard unetContext == netContext, model.conditioningDownscale == pipeline.vaeScale, model.inChannels == pipeline.vae.configuration.latentChannels else {
                throw ProtocolError(.invalidParams,
                                    "ControlNet \(entry.name) does not fit model \(settings.model): it attends to \(netContext)-wide text (\(Self.family(netContext))), the model to \(unetContext)-wide (\(Self.family(unetContext)))",
                                    details: ["controlnet": .string(entry.name), "model": .string(settings.model), "param": "options.controlnet"])
            }
            guidance.append((request, model))
        }
        try context.checkCancellation()
        // 2. Working size: longest side `size`, both sides multiples of what the UNet and VAE need.
        let multiple = pipeline.vaeScale * (1 << (pipeline.unet.configuration.blockOutChannels.count - 1))
        let (w, h) = ModelColorize.workingSize(width: sketch.width, height: sketch.height, side: settings.size, multiple: multiple)
        var request = StableDiffusionPipeline.Request(prompt: input.prompt, negativePrompt: input.negativePrompt, width: w, height: h)
        request.steps = settings.steps
        request.guidance = settings.guidance
        request.sampler = settings.sampler
        request.gamma = settings.gamma
        // Scribbles (or a reference) start the picture from their flats with the lines over them; with a ControlNet
        // and nothing to start from, noise; without a ControlNet, the sketch itself as before.
        let startsFromFlats = input.hints != nil || mode == .palette
        if startsFromFlats || guidance.isEmpty {
            let start = startsFromFlats ? try ColourLayers.linesMultiplied(color: fill.flats, sketch: sketch, context: context) : sketch
            request.source = RasterTensor.tensor(start.flattened(onto: .white).resized(width: w, height: h))
            request.strength = settings.hintStrength
        }
        var referenceInfo: [String: JSONValue] = ["mode": .string(mode.rawValue)]
        if let adapter, let reference = input.reference {
            context.report(stage: "reference", step: 0, steps: 1, fraction: 0.04, preview: nil)
            let (prompt, cached) = try imagePrompt(adapter, reference: reference, strength: settings.referenceStrength)
            request.imagePrompts = [prompt]
            referenceInfo.merge(["ip_adapter": .string(adapter.name), "image_encoder": .string(adapter.encoder ?? ""),
                                 "strength": JSONValue(Double(settings.referenceStrength)), "encoding_cached": .bool(cached)]) { _, b in b }
        }
        if mode.usesReferenceAttention, let reference = input.reference {
            // The reference at the working size, as the community pipeline resizes it to the output's, over white.
            let picture = RasterTensor.tensor(reference.flattened(onto: .white).resized(width: w, height: h))
            request.referenceOnly = ReferenceAttentionGuidance(reference: .image(picture), options: settings.referenceAttention)
            let o = settings.referenceAttention
            referenceInfo.merge(["style_fidelity": JSONValue(Double(o.styleFidelity)), "attention_weight": JSONValue(o.attentionWeight),
                                 "adain_weight": JSONValue(o.adainWeight)]) { _, b in b }
        }
        var styleInfo: JSONValue?
        if !settings.style.isEmpty {
            guard let entry = ipAdapters.first(where: { $0.input == .style && $0.problem == nil }) else {
                throw ProtocolError(.modelNotFound, "options.style: no Style Components adapter (values only, one token) in \(ipAdapterDirectory)",
                                    details: ["param": "options.style"])
            }
            guard entry.inputWidth == settings.style.count else {
                throw ProtocolError(.invalidParams, "options.style: \(entry.name) takes \(entry.inputWidth) components, got \(settings.style.count)",
                                    details: ["param": "options.style", "expected": JSONValue(entry.inputWidth)])
            }
            let adapter = try cache.resident("ip-adapter", entry.name, bytes: ModelCache.weightBytes(file: entry.path)) {
                try IPAdapter(path: entry.path)
            }
            let components = Tensor(shape: [1, settings.style.count], data: settings.style)
            request.imagePrompts.append(ImagePromptGuidance(adapter: adapter, embeds: components, negativeEmbeds: Tensor(zeros: components.shape)))
            styleInfo = ["adapter": .string(entry.name), "components": JSONValue(settings.style.count)]
        }
        if !guidance.isEmpty {
            let hint = try LineArtHint.controlImage(sketch, width: w, height: h, context: context)
            request.controlNets = guidance.map { r, model in
                ControlNetGuidance(model: model, hint: hint, scale: r.strength, start: r.start, end: r.end, guessMode: settings.guessMode)
            }
        }
        // TAESD, when installed: each step's preview, and the final decode when `decoder` is taesd.
        let taesd: AutoencoderTiny? = hasTAESD ? try cache.resident("taesd", "taesd", bytes: ModelCache.weightBytes(folder: taesdDirectory, name: "diffusion_pytorch_model")) {
            try AutoencoderTiny(folder: taesdDirectory)
        } : nil
        if settings.draft {
            guard let taesd else {
                throw ProtocolError(.modelNotFound, "options.decoder taesd: no TAESD in \(taesdDirectory) (madebyollin/taesd: config.json, diffusion_pytorch_model.safetensors)",
                                    details: ["param": "options.decoder"])
            }
            request.decoder = taesd
        }
        var noise = SeededNormalNoise(seed: UInt64(truncatingIfNeeded: input.seed))
        let image: Tensor
        do {
            image = try pipeline.generate(request, noise: &noise) { step, total, latents in
                try context.checkCancellation()
                let preview = try taesd.map { t throws(ModelError) in try ModelColorize.preview(latents, taesd: t) }
                    ?? ModelColorize.preview(latents, scale: pipeline.vaeScale)
                context.report(stage: "sample", step: step, steps: total, fraction: 0.05 + 0.85 * Double(step) / Double(total), preview: preview)
            }
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError(.internalError, "sampling failed: \(error)")
        }
        // 3. Back to the canvas: the colour cut along the full-size line art, scribbled regions pulled to their
        // colours, and the one-picture form with the lines multiplied over it.
        context.report(stage: "compose", step: 0, steps: 1, fraction: 0.92, preview: nil)
        let (picture, color) = try ModelColorize.canvasColour(image, sketch: sketch, fill: fill, paletteLock: settings.paletteLock, context: context)
        context.report(stage: "compose", step: 1, steps: 1, fraction: 1, preview: nil)
        var info: [String: JSONValue] = [
            "model": .string(settings.model), "working_size": [JSONValue(w), JSONValue(h)], "steps": JSONValue(settings.steps),
            "guidance": JSONValue(Double(settings.guidance)), "sampler": .string(settings.sampler.rawValue), "seed": JSONValue(input.seed),
            "start": .string(request.source == nil ? "noise" : startsFromFlats ? "flats" : "sketch"),
            "palette_lock": JSONValue(Double(settings.paletteLock)),
            "controlnets": .array(guidance.map { r, _ in
                ["name": .string(r.name), "strength": JSONValue(Double(r.strength)), "start": JSONValue(r.start), "end": JSONValue(r.end),
                 "guess_mode": .bool(settings.guessMode)]
            }),
        ]
        if request.source != nil { info["hint_strength"] = JSONValue(Double(settings.hintStrength)) }
        if settings.sampler == .tcd { info["tcd_gamma"] = JSONValue(settings.gamma) }
        if let note = settings.controlNetNote { info["warning"] = .string(note) }
        if input.reference != nil { info["reference"] = .object(referenceInfo) }
        if let styleInfo { info["style"] = styleInfo }
        info["quality"] = .string(settings.quality.rawValue)
        info["decoder"] = .string(settings.draft ? "taesd" : "full")
        info["preview"] = .string(taesd == nil ? "latent projection" : "taesd")
        if !settings.loras.isEmpty {
            info["loras"] = .array(settings.loras.map { ["name": .string($0.name), "weight": JSONValue(Double($0.weight))] })
            info["lora_form"] = .string(loraForm)
        }
        info["flats"] = .object(fill.info)
        return ColorizeOutput(image: picture, layers: [ColorizeLayer(name: "color", image: color),
                                                       ColorizeLayer(name: "flats", image: fill.flats, visible: false)], info: info)
    }

    /// What the job's reference does, and the IP-Adapter that takes it: `reference_mode` with `auto` and a missing
    /// reference resolved; a named or required adapter that cannot run is `model_not_found` with the reason.
    func referenceUse(_ settings: Settings, reference: RGBAImage?) throws(ProtocolError) -> (ReferenceMode, ImagePromptAdapterEntry?) {
        guard reference != nil, settings.referenceMode != .none else { return (.none, nil) }
        if settings.referenceMode == .palette || settings.referenceMode == .referenceOnly { return (settings.referenceMode, nil) }
        let adapters = ipAdapters.filter { $0.input != .style }
        let usable = adapters.filter { $0.problem == nil }
        if settings.ipAdapter != "auto" {
            guard let named = adapters.first(where: { $0.name == settings.ipAdapter }) else {
                throw ProtocolError(.modelNotFound, "no IP-Adapter \"\(settings.ipAdapter)\" in \(ipAdapterDirectory)",
                                    details: ["ip_adapter": .string(settings.ipAdapter), "available": .array(adapters.map { .string($0.name) })])
            }
            if let problem = named.problem {
                throw ProtocolError(.modelNotFound, "IP-Adapter \(named.name) cannot be used: \(problem)", details: ["ip_adapter": .string(named.name)])
            }
            return (settings.referenceMode == .both ? .both : .ipAdapter, named)
        }
        if let first = usable.first { return (settings.referenceMode == .both ? .both : .ipAdapter, first) }
        guard settings.referenceMode == .auto else {
            let reason = adapters.first?.problem.map { "\(adapters[0].name): \($0)" } ?? "none installed in \(ipAdapterDirectory)"
            throw ProtocolError(.modelNotFound, "reference_mode \(settings.referenceMode.rawValue): no usable IP-Adapter (\(reason))", details: ["param": "options.reference_mode"])
        }
        return (.palette, nil)
    }

    /// The IP-Adapter guidance for `reference`: the adapter and its image encoder resident, the reference encoded once
    /// per content (`embeddings`), "no image" as each variant defines it (a zero embedding; for Plus, the encoder's
    /// hidden states of a zero input). Returns whether the reference's encoding was cached.
    func imagePrompt(_ entry: ImagePromptAdapterEntry, reference: RGBAImage,
                     strength: Float) throws(ProtocolError) -> (ImagePromptGuidance, cached: Bool) {
        guard let encoderName = entry.encoder, let encoderEntry = imageEncoders.first(where: { $0.name == encoderName }) else {
            throw ProtocolError(.modelNotFound, "IP-Adapter \(entry.name) has no image encoder", details: ["ip_adapter": .string(entry.name)])
        }
        let adapter = try cache.resident("ip-adapter", entry.name, bytes: ModelCache.weightBytes(file: entry.path)) {
            try IPAdapter(path: entry.path)
        }
        let encoder = try cache.resident("clip-vision", encoderName, bytes: ModelCache.weightBytes(folder: encoderEntry.path, name: "model")) {
            try CLIPVisionModel(folder: encoderEntry.path)
        }
        let hidden = entry.input == .hiddenStates
        let output = hidden ? "penultimate" : "image_embeds"
        func encode(_ pixels: Tensor) throws -> Tensor {
            let out = try encoder(pixels)
            if hidden { return out.penultimateHiddenState }
            guard let embeds = out.imageEmbeds else { throw ModelError.configuration("image encoder \(encoderName) has no projection") }
            return embeds
        }
        do {
            // The folder's preprocessor_config.json, else CLIP's preprocessing at the encoder's own input size.
            let side = encoder.configuration.imageSize
            let processor = (RegularFile.jsonObject(encoderEntry.path + "/preprocessor_config.json")).flatMap { try? CLIPImageProcessor(json: $0) }
                ?? CLIPImageProcessor(resize: .shortestEdge(side), cropSize: .init(height: side, width: side))
            let (embeds, cached) = try embeddings.tensor(encoder: encoderName, output: output, picture: reference) {
                try encode(try processor.pixelValues(pixels: reference.pixels, width: reference.width, height: reference.height, channels: 4))
            }
            let negative = hidden
                ? try embeddings.tensor(encoder: encoderName, output: output, picture: nil) {
                    try encode(Tensor(zeros: [1, 3, encoder.configuration.imageSize, encoder.configuration.imageSize]))
                }.tensor
                : Tensor(zeros: embeds.shape)
            return (ImagePromptGuidance(adapter: adapter, embeds: embeds, negativeEmbeds: negative, scale: strength), cached)
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError(.internalError, "encoding the reference with \(encoderName) failed: \(error)")
        }
    }

    /// The job's LoRAs bound onto a copy of the UNet and the text encoder; the resident base model stays as it is, so
    /// the next job without them runs the model's own weights. Text embeddings are kept per LoRA set. With `merge`, the
    /// bound terms are merged into copies of the weights they change, kept resident (one LoRA set at a time, counted
    /// against the budget) for the next job with the same set; when the copies would pass the budget, or merging fails,
    /// the terms stay unfused. Returns how they run: "merged", "unfused", or "unfused: " and why not merged.
    func applyLoRAs(_ requests: [LoRARequest], entries: [LoRAEntry], merge: Bool, model: String,
                    to pipeline: inout StableDiffusionPipeline) throws(ProtocolError) -> String {
        guard !requests.isEmpty else { return "none" }
        var unet = pipeline.unet, text = pipeline.prompts.textModel
        var variant: [String] = []
        for r in requests {
            guard let entry = entries.first(where: { $0.name == r.name }) else { continue }
            let lora = try cache.resident("lora", entry.name, bytes: ModelCache.weightBytes(file: entry.path)) {
                try LoRA(path: entry.path)
            }
            do {
                if lora.adaptsUNet { unet = try lora.applied(to: unet, weight: r.weight) }
                if lora.adaptsTextEncoder {
                    text = try lora.applied(to: text, weight: r.weight)
                    variant.append("\(r.name):\(r.weight)")
                }
            } catch {
                throw ProtocolError(.invalidParams, "LoRA \(r.name) does not fit model: \(error)", details: ["lora": .string(r.name)])
            }
        }
        var form = "unfused"
        if merge {
            let key = model + "|" + requests.map { "\($0.name):\($0.weight)" }.joined(separator: ",")
            let bytes = unet.loraMergeBytes + text.loraMergeBytes
            // One merged set resident at a time: an older one goes before this one is counted.
            cache.remove(kind: Self.mergedLoRAKind, except: key)
            if cache.holds(Self.mergedLoRAKind, key) || cache.residentBytes + bytes <= cache.budgetBytes {
                let (u, t) = (unet, text)
                do {
                    let merged = try cache.resident(Self.mergedLoRAKind, key, bytes: bytes) {
                        MergedLoRAs(unet: try u.mergingLoRAs().lora, textEncoder: try t.mergingLoRAs().lora)
                    }
                    unet.lora = merged.unet
                    text.lora = merged.textEncoder
                    form = "merged"
                } catch {
                    form = "unfused: merging failed (\(error.message))"
                }
            } else {
                form = "unfused: merging needs \(bytes >> 20) MiB, over what the memory budget has left (\((cache.budgetBytes - cache.residentBytes) >> 20) MiB)"
            }
        }
        pipeline.unet = unet
        pipeline.prompts = PromptEncoder(tokenizer: pipeline.prompts.tokenizer, textModel: text, clipSkip: pipeline.prompts.clipSkip)
        pipeline.textEncoderVariant = variant.joined(separator: ",")
        return form
    }

    /// The ModelCache kind of merged LoRA weights.
    static let mergedLoRAKind = "lora-merged"

    /// A LoRA set merged into copies of one model's weights.
    struct MergedLoRAs: Sendable {
        var unet: LoRABinding?
        var textEncoder: LoRABinding?
    }

    static func family(_ contextWidth: Int) -> String {
        switch contextWidth {
        case 768: "SD1.x"
        case 1024: "SD2.x"
        case 2048: "SDXL"
        default: "\(contextWidth)-wide"
        }
    }
}
