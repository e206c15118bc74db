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

    public var status: EngineStatus {
        if models.isEmpty {
            return .unavailable(reason: "no Stable Diffusion models (diffusers pipeline folders or single-file .safetensors checkpoints) in \(modelsDirectory)")
        }
        return cache.loadedNames.isEmpty ? .available : .ready
    }

    public var residentBytes: Int { cache.residentBytes }

    public var assets: [String: JSONValue]? {
        ["models": .array(models.map { .string($0) }), "controlnets": .array(controlNets.map(\.json))]
    }

    public var capabilities: [MethodCapabilities] {
        let models = models, controlNets = controlNets
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
            EngineOption("palette_lock", .number, default: JSONValue(Self.defaultPaletteLock), minimum: 0, maximum: 1,
                         summary: "pulls each scribbled region's colour toward its scribble (OKLab hue, chroma and mean lightness), keeping the model's shading; 0 leaves the model's colours"),
            EngineOption("steps", .integer, default: 20, minimum: 1, maximum: 100, summary: "sampling steps (img2img runs hint_strength x steps)"),
            EngineOption("guidance", .number, default: 7, minimum: 1, maximum: 30, summary: "classifier-free guidance scale"),
            EngineOption("sampler", .string, default: .string(SamplerKind.dpmSolver2MKarras.rawValue), choices: SamplerKind.allCases.map(\.rawValue),
                         summary: SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")),
            EngineOption("size", .integer, default: 512, minimum: 32, maximum: 2048,
                         summary: "working resolution (longest side, rounded to what the model takes: multiples of 64 for SD); the colour is brought back to the canvas size and cut along the full-size lines"),
        ])]
    }

    static let defaultHintStrength = 0.75
    static let defaultPaletteLock = 0.5

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

    public func unload() { cache.removeAll() }

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
        var size = 512
        var paletteLock = Float(StableDiffusionEngine.defaultPaletteLock)
        var guessMode = false
        /// The ControlNets to use (empty: none); `controlNetNote` says why when it is empty.
        var controls: [ControlRequest] = []
        var controlNetNote: String?

        init(_ options: [String: JSONValue], models: [String], controlNets: [ControlNetEntry]) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            model = try r.string("model") ?? models.first ?? ""
            guard models.contains(model) else {
                throw ProtocolError(.modelNotFound, "no model \"\(model)\"", details: ["available": .array(models.map { .string($0) })])
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
            if let s = try r.string("sampler") {
                guard let kind = SamplerKind(rawValue: s) else {
                    throw ProtocolError(.invalidParams, "options.sampler: one of \(SamplerKind.allCases.map(\.rawValue))",
                                        details: ["param": "options.sampler"])
                }
                sampler = kind
            }
            size = try r.int("size", in: 32...2048) ?? size
            paletteLock = Float(try r.double("palette_lock", in: 0...1) ?? Double(paletteLock))
            guessMode = try r.bool("guess_mode") ?? false
            let strength = Float(try r.double("control_strength", in: 0...2) ?? 1)
            let start = try r.double("control_start", in: 0...1) ?? 0, end = try r.double("control_end", in: 0...1) ?? 1
            guard start < end else {
                throw ProtocolError(.invalidParams, "options.control_start (\(start)) must be before options.control_end (\(end))",
                                    details: ["param": "options.control_start"])
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
        let settings = try Settings(input.options, models: models, controlNets: controlNets)
        let sketch = input.sketch
        // 1. The built-in fill at full size: the flats (the scribbles' colours under the lines) and the drawing's inside.
        context.report(stage: "fill", step: 0, steps: 1, fraction: 0, preview: nil)
        let fill = try BuiltinColorizer().fill(ColorizeInput(sketch: sketch, hints: input.hints, reference: input.reference, seed: input.seed),
                                               context: InnerStepContext(context))
        try context.checkCancellation()
        context.report(stage: "load", step: 0, steps: 1, fraction: 0.03, preview: nil)
        let pipeline = try cache.pipeline(settings.model, path: path(of: settings.model))
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
        // Scribbles (or a reference) start the picture from their flats with the lines over them; with a ControlNet
        // and nothing to start from, noise; without a ControlNet, the sketch itself as before.
        let startsFromFlats = input.hints != nil || input.reference != nil
        if startsFromFlats || guidance.isEmpty {
            let start = startsFromFlats ? try ColourLayers.linesMultiplied(color: fill.flats, sketch: sketch, context: context) : sketch
            request.source = RasterTensor.tensor(start.flattened(onto: .white).resized(width: w, height: h))
            request.strength = settings.hintStrength
        }
        if !guidance.isEmpty {
            let hint = try LineArtHint.controlImage(sketch, width: w, height: h, context: context)
            request.controlNets = guidance.map { r, model in
                ControlNetGuidance(model: model, hint: hint, scale: r.strength, start: r.start, end: r.end, guessMode: settings.guessMode)
            }
        }
        var noise = SeededNormalNoise(seed: UInt64(truncatingIfNeeded: input.seed))
        let image: Tensor
        do {
            image = try pipeline.generate(request, noise: &noise) { step, total, latents in
                try context.checkCancellation()
                context.report(stage: "sample", step: step, steps: total, fraction: 0.05 + 0.85 * Double(step) / Double(total),
                               preview: ModelColorize.preview(latents, scale: pipeline.vaeScale))
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
        if let note = settings.controlNetNote { info["warning"] = .string(note) }
        info["flats"] = .object(fill.info)
        return ColorizeOutput(image: picture, layers: [ColorizeLayer(name: "color", image: color),
                                                       ColorizeLayer(name: "flats", image: fill.flats, visible: false)], info: info)
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
