// PaintsEngine/StableDiffusionEngine: the `sd` colorize engine: flat colours from the scribbles (the built-in fill),
// then Stable Diffusion img2img with the prompt over them; models resident within a memory budget.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTensor
import Synchronization

public final class StableDiffusionEngine: ColorizeEngine {
    public let name = "sd"
    public let summary = "Stable Diffusion 1.x/2.x img2img over the scribbles' flat colours, guided by the prompt"
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

    public var status: EngineStatus {
        if models.isEmpty {
            return .unavailable(reason: "no Stable Diffusion models (diffusers pipeline folders or single-file .safetensors checkpoints) in \(modelsDirectory)")
        }
        return cache.loadedNames.isEmpty ? .available : .ready
    }

    public var residentBytes: Int { cache.residentBytes }

    public var capabilities: [MethodCapabilities] {
        [MethodCapabilities(method: .colorize, inputs: ["sketch", "hints", "reference", "prompt", "negative_prompt"], options: [
            EngineOption("model", .string, default: .string(models.first ?? ""), summary: "model in the models directory: a pipeline folder's name or a checkpoint's file name without .safetensors"),
            EngineOption("steps", .integer, default: 20, minimum: 1, maximum: 100, summary: "sampling steps (img2img runs strength x steps)"),
            EngineOption("strength", .number, default: 0.6, minimum: 0.05, maximum: 1, summary: "how far the result may move from the flat colours"),
            EngineOption("guidance", .number, default: 7, minimum: 1, maximum: 30, summary: "classifier-free guidance scale"),
            EngineOption("sampler", .string, default: .string(SamplerKind.dpmSolver2MKarras.rawValue),
                         summary: SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")),
            EngineOption("size", .integer, default: 512, minimum: 32, maximum: 2048, summary: "working resolution (longest side)"),
        ])]
    }

    /// Nothing ahead of a job: `colorize` loads the model its options name (or the default, the first, when they name
    /// none), and only that one. Loading the first model here, before the job's options are read, made every job load
    /// the alphabetically first model whatever it named, and fail when that one would not load.
    public func load() throws(ProtocolError) {}

    /// The pictures, the built-in fill under the lines at full size, float copies at full size, and one model pass at
    /// the working size (`options.size`, 512 by default). A model not yet resident adds its weights, not counted here.
    public func estimatedPeakBytes(_ job: JobShape) -> Int {
        let side = job.options["size"]?.intValue ?? 512
        return job.imageBytes + (BuiltinColorizer.bytesPerPixel + 16) * job.pixels
            + ModelWorkingSet.bytes(workingPixels: ModelWorkingSet.pixels(width: job.width, height: job.height, side: side))
    }

    public func unload() { cache.removeAll() }

    struct Settings {
        var model: String
        var steps = 20
        var strength: Float = 0.6
        var guidance: Float = 7
        var sampler = SamplerKind.dpmSolver2MKarras
        var size = 512

        init(_ options: [String: JSONValue], models: [String]) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            model = try r.string("model") ?? models.first ?? ""
            guard models.contains(model) else {
                throw ProtocolError(.modelNotFound, "no model \"\(model)\"", details: ["available": .array(models.map { .string($0) })])
            }
            steps = try r.int("steps", in: 1...100) ?? steps
            strength = Float(try r.double("strength", in: 0.05...1) ?? Double(strength))
            guidance = Float(try r.double("guidance", in: 1...30) ?? Double(guidance))
            if let s = try r.string("sampler") {
                guard let kind = SamplerKind(rawValue: s) else {
                    throw ProtocolError(.invalidParams, "options.sampler: one of \(SamplerKind.allCases.map(\.rawValue))",
                                        details: ["param": "options.sampler"])
                }
                sampler = kind
            }
            size = try r.int("size", in: 32...2048) ?? size
            try r.finish()
        }
    }

    public func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput {
        let settings = try Settings(input.options, models: models)
        context.report(stage: "load", step: 0, steps: 1, fraction: 0, preview: nil)
        let pipeline = try cache.pipeline(settings.model, path: path(of: settings.model))
        try context.checkCancellation()
        // 1. Flat colours under the lines (or the bare sketch when there is nothing to fill from), on white.
        let sketch = input.sketch
        var base = sketch
        if input.hints != nil || input.reference != nil {
            base = try BuiltinColorizer().colorize(
                ColorizeInput(sketch: sketch, hints: input.hints, reference: input.reference, seed: input.seed,
                              options: ["composite_lines": true]), context: InnerStepContext(context)).image
        }
        base = base.flattened(onto: .white)
        // 2. Working size: longest side `size`, both sides multiples of what the UNet and VAE need.
        let multiple = pipeline.vaeScale * (1 << (pipeline.unet.configuration.blockOutChannels.count - 1))
        let scale = Double(settings.size) / Double(max(sketch.width, sketch.height))
        func fit(_ v: Int) -> Int { max(multiple, Int((Double(v) * scale / Double(multiple)).rounded()) * multiple) }
        let (w, h) = (fit(sketch.width), fit(sketch.height))
        let small = base.resized(width: w, height: h)
        let source = RasterTensor.tensor(small)
        var request = StableDiffusionPipeline.Request(prompt: input.prompt, negativePrompt: input.negativePrompt, width: w, height: h)
        request.steps = settings.steps
        request.guidance = settings.guidance
        request.sampler = settings.sampler
        request.source = source
        request.strength = settings.strength
        var noise = SeededNormalNoise(seed: UInt64(truncatingIfNeeded: input.seed))
        let image: Tensor
        do {
            image = try pipeline.generate(request, noise: &noise) { step, total, latents in
                try context.checkCancellation()
                let preview = StableDiffusionModel.latentPreview(latents, scale: pipeline.vaeScale)
                var picture = RGBAImage(width: preview.width, height: preview.height, fill: .white)
                for p in 0..<(preview.width * preview.height) {
                    picture.setPixel(p, RGBA(UInt8(preview.rgb[p * 3] * 255), UInt8(preview.rgb[p * 3 + 1] * 255), UInt8(preview.rgb[p * 3 + 2] * 255)))
                }
                context.report(stage: "sample", step: step, steps: total, fraction: 0.05 + 0.9 * Double(step) / Double(total), preview: picture)
            }
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError(.internalError, "sampling failed: \(error)")
        }
        // 3. Back to the sketch's size, opaque (the pipeline's 0...1 to the -1...1 the conversion takes).
        let out = RasterTensor.image(image.map { $0 * 2 - 1 })
        context.report(stage: "sample", step: settings.steps, steps: settings.steps, fraction: 1, preview: nil)
        return ColorizeOutput(image: out.resized(width: sketch.width, height: sketch.height),
                              info: ["model": .string(settings.model), "working_size": [JSONValue(w), JSONValue(h)],
                                     "steps": JSONValue(settings.steps), "strength": JSONValue(Double(settings.strength)),
                                     "sampler": .string(settings.sampler.rawValue)])
    }
}
