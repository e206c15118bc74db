// PaintsEngine/ReferenceOnlyEngine: the `sd-reference-only` colorize engine: Stable Diffusion Reference Only (SDRO)
// colours the user's line art after a reference picture of the character. The line art goes in as SDRO's blueprint
// (the reference app's adaptive threshold, inverted); the colour comes back at the canvas size cut along the
// full-resolution line art, as the `sd` engine's does (ModelColorize), as layers. Models resident within a memory budget.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTensor

public final class ReferenceOnlyEngine: ColorizeEngine {
    public let name = "sd-reference-only"
    public let summary = "Stable Diffusion Reference Only: colours the line art after a reference picture of the character (no prompt); scribbles pull their regions' colours"
    public let modelsDirectory: String
    public let cache: ModelCache

    public init(modelsDirectory: String, memoryBudgetBytes: Int) {
        self.modelsDirectory = modelsDirectory
        cache = ModelCache(budgetBytes: memoryBudgetBytes)
    }

    /// SDRO model folders in the models directory (the published layout: model_index.json, unet/ with the blueprint
    /// encoder, vae/, image_encoder/, scheduler/), by name.
    public var models: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: modelsDirectory)) ?? []
        return names.sorted().filter { StableDiffusionReferenceOnlyPipeline.isModelFolder(modelsDirectory + "/" + $0) }
    }

    public var status: EngineStatus {
        if models.isEmpty {
            return .unavailable(reason: "no Stable Diffusion Reference Only model (a folder with model_index.json, unet/ carrying controlnet_cond_embedding, vae/, image_encoder/, scheduler/: AisingioroHao0/stable-diffusion-reference-only-automatic-coloring-0.1.2) in \(modelsDirectory)")
        }
        return cache.loadedNames.isEmpty ? .available : .ready
    }

    public var residentBytes: Int { cache.residentBytes }

    public var assets: [String: JSONValue]? { ["models": .array(models.map { .string($0) })] }

    static let defaultPaletteLock = 0.5

    public var capabilities: [MethodCapabilities] {
        let models = models
        return [MethodCapabilities(method: .colorize, inputs: ["sketch", "reference", "hints"], options: [
            EngineOption("model", .string, default: .string(models.first ?? ""), choices: models,
                         summary: "SDRO model folder in the models directory"),
            EngineOption("steps", .integer, default: 20, minimum: 1, maximum: 100, summary: "sampling steps (the reference app's default: 20)"),
            EngineOption("sampler", .string, default: .string(SamplerKind.uniPC.rawValue), choices: SamplerKind.allCases.map(\.rawValue),
                         summary: "unipc (the reference app's) or " + SamplerKind.allCases.filter { $0 != .uniPC }.map(\.rawValue).joined(separator: ", ")),
            EngineOption("tcd_gamma", .number, default: JSONValue(SamplerKind.defaultGamma), minimum: 0, maximum: 1,
                         summary: "sampler tcd: how much fresh noise each step adds back (TCD's gamma; 0 deterministic and sharper, 1 as LCM; 0.3 as published)"),
            EngineOption("palette_lock", .number, default: JSONValue(Self.defaultPaletteLock), minimum: 0, maximum: 1,
                         summary: "with scribbles: pulls each scribbled region's colour toward its scribble (OKLab hue, chroma and mean lightness), keeping the model's shading; 0 leaves the model's colours"),
            EngineOption("size", .integer, default: 512, minimum: 64, maximum: 2048,
                         summary: "working resolution (longest side, rounded to multiples of 64; SDRO was trained at 512); the colour is brought back to the canvas size and cut along the full-size lines"),
        ])]
    }

    /// Nothing ahead of a job: `colorize` loads the model its options name (or the first), and only that one.
    public func load() throws(ProtocolError) {}

    public func unload() { cache.removeAll() }

    /// The pictures, the built-in fill and its inside mask at full size, the blueprint's grey and threshold (2 bytes
    /// a pixel) with its resize rows, the working-size colour brought to full size, the flats kept encoded, float
    /// copies, and one model pass at the working size (one batch item: no guidance). A model not yet resident adds its
    /// weights, not counted here.
    public func estimatedPeakBytes(_ job: JobShape) -> Int {
        let side = job.options["size"]?.intValue ?? 512
        return job.imageBytes + (BuiltinColorizer.bytesPerPixel + 16 + 3 * 4 + 2 * 4 + 2 + 4) * job.pixels
            + ModelWorkingSet.bytes(workingPixels: ModelWorkingSet.pixels(width: job.width, height: job.height, side: side))
    }

    struct Settings {
        var model: String
        var steps = 20
        var sampler = SamplerKind.uniPC
        var gamma = SamplerKind.defaultGamma
        var size = 512
        var paletteLock = Float(ReferenceOnlyEngine.defaultPaletteLock)

        init(_ options: [String: JSONValue], models: [String]) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            model = try r.string("model") ?? models.first ?? ""
            guard models.contains(model) else {
                throw ProtocolError(.modelNotFound, models.isEmpty ? "no Stable Diffusion Reference Only model installed" : "no model \"\(model)\"",
                                    details: ["available": .array(models.map { .string($0) })])
            }
            steps = try r.int("steps", in: 1...100) ?? steps
            sampler = try r.choice("sampler", as: SamplerKind.self) ?? sampler
            gamma = try r.double("tcd_gamma", in: 0...1) ?? gamma
            size = try r.int("size", in: 64...2048) ?? size
            paletteLock = Float(try r.double("palette_lock", in: 0...1) ?? Double(paletteLock))
            try r.finish()
        }
    }

    /// The model `name`, resident (pipeline with its vision tower).
    func pipeline(_ name: String) throws(ProtocolError) -> StableDiffusionReferenceOnlyPipeline {
        let path = modelsDirectory + "/" + name
        return try cache.resident("model", name, bytes: StableDiffusionReferenceOnlyPipeline.residentBytes(folder: path)) {
            try StableDiffusionReferenceOnlyPipeline(folder: path)
        }
    }

    public func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput {
        let settings = try Settings(input.options, models: models)
        guard let reference = input.reference else {
            throw ProtocolError(.invalidParams, "the sd-reference-only engine colours after a reference picture of the character: send one as params.reference",
                                details: ["param": "reference"])
        }
        let sketch = input.sketch
        // 1. The built-in fill at full size: the drawing's inside (where the colour goes) and the scribbles' flats.
        // The reference is SDRO's to read, not the fill's (a character picture is no colour map of this drawing).
        context.report(stage: "fill", step: 0, steps: 1, fraction: 0, preview: nil)
        let fill = try BuiltinColorizer().fill(ColorizeInput(sketch: sketch, hints: input.hints, seed: input.seed),
                                               context: InnerStepContext(context))
        try context.checkCancellation()
        context.report(stage: "load", step: 0, steps: 1, fraction: 0.03, preview: nil)
        let pipeline = try pipeline(settings.model)
        try context.checkCancellation()
        // 2. The reference's image prompt, and the blueprint at the working size (as the sd engine's working size).
        context.report(stage: "reference", step: 0, steps: 1, fraction: 0.04, preview: nil)
        let (w, h) = ModelColorize.workingSize(width: sketch.width, height: sketch.height, side: settings.size, multiple: pipeline.sizeMultiple)
        var request: StableDiffusionReferenceOnlyPipeline.Request
        do {
            let prompt = try pipeline.referenceContext(pixels: reference.pixels, width: reference.width, height: reference.height, channels: 4)
            try context.checkCancellation()
            request = .init(context: prompt, blueprint: try LineArtBlueprint.blueprint(sketch, width: w, height: h, context: context))
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError(.internalError, "reference encoding failed: \(error)")
        }
        request.steps = settings.steps
        request.sampler = settings.sampler
        request.gamma = settings.gamma
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
        // 3. Back to the canvas as the sd engine brings it: cut along the full-size line art, scribbled regions pulled
        // to their colours, the lines multiplied over it for the one picture.
        context.report(stage: "compose", step: 0, steps: 1, fraction: 0.92, preview: nil)
        let lock = input.hints == nil ? 0 : settings.paletteLock
        let (picture, color) = try ModelColorize.canvasColour(image, sketch: sketch, fill: fill, paletteLock: lock, context: context)
        context.report(stage: "compose", step: 1, steps: 1, fraction: 1, preview: nil)
        var info: [String: JSONValue] = [
            "model": .string(settings.model), "working_size": [JSONValue(w), JSONValue(h)], "steps": JSONValue(settings.steps),
            "sampler": .string(settings.sampler.rawValue), "seed": JSONValue(input.seed),
            "prediction_type": .string(pipeline.schedulerConfiguration.predictionType.rawValue),
            "reference_size": [JSONValue(reference.width), JSONValue(reference.height)],
            "blueprint": "line art binarised (adaptive mean threshold, block 5, C 7) and inverted to white on black",
        ]
        if settings.sampler == .tcd { info["tcd_gamma"] = JSONValue(settings.gamma) }
        var layers = [ColorizeLayer(name: "color", image: color)]
        if input.hints != nil {
            info["palette_lock"] = JSONValue(Double(lock))
            info["flats"] = .object(fill.info)
            layers.append(ColorizeLayer(name: "flats", image: fill.flats, visible: false))
        }
        if !input.prompt.isEmpty { info["warning"] = "the prompt is not used: SDRO takes no text, only the reference picture" }
        return ColorizeOutput(image: picture, layers: layers, info: info)
    }
}
