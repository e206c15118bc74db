// PaintsEngine/PaintsUndoEngine: the `paints-undo` engine: undo-step previews from the Paints-UNDO single-frame model
// resident in memory, prompted by the client or by the WD tagger, at a working size that keeps the whole canvas.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTensor

public final class PaintsUndoEngine: UndoPreviewEngine {
    public let name = "paints-undo"
    public let summary = "Undo-step previews from the Paints-UNDO single-frame diffusion model"
    public var modelsDirectory: String { resident.directory }
    /// Writes prompts for pictures sent without one (nil: such requests run with an empty prompt, and say so).
    public let tagger: WDTaggerEngine?
    private let resident: ResidentModel<PaintsUndoPipeline>

    public init(modelsDirectory: String, tagger: WDTaggerEngine? = nil) {
        resident = ResidentModel(directory: modelsDirectory, kind: "Paints-UNDO model",
                                 isModelFolder: PaintsUndoPipeline.isModelFolder) { try PaintsUndoPipeline(folder: $0) }
        self.tagger = tagger
    }

    /// Single-frame model folders in the models directory (the published `paints_undo_single_frame` layout), by name.
    public var models: [String] { resident.available }

    public var status: EngineStatus {
        if resident.loadedName != nil { return .ready }
        return models.isEmpty
            ? .unavailable(reason: "no Paints-UNDO single-frame model (a folder with unet/ carrying add_embedding, vae/, text_encoder/, tokenizer/) in \(modelsDirectory); the builtin engine simulates undo previews without it")
            : .available
    }

    public var residentBytes: Int {
        guard let name = resident.loadedName else { return 0 }
        return StableDiffusionModel.residentBytes(folder: resident.path(of: name))   // the same three component files
    }

    /// Sampling steps by name. On a 2-core CPU a step at 512x640 costs about 6 s per frame, so `draft` is the default:
    /// previews are what the method promises, and each frame arrives as it is done.
    public enum Quality: String, CaseIterable, Sendable {
        case draft, standard, reference

        public var steps: Int {
            switch self {
            case .draft: 10
            case .standard: 20
            case .reference: 50
            }
        }
    }

    public static let defaultWorkingSide = 640

    public var capabilities: [MethodCapabilities] {
        let options = [
            EngineOption("model", .string, default: .string(models.first ?? ""), summary: "model folder in the models directory"),
            EngineOption("quality", .string, default: .string(Quality.draft.rawValue),
                         summary: Quality.allCases.map { "\($0.rawValue) (\($0.steps) steps)" }.joined(separator: ", ")
                            + "; reference is what the Paints-UNDO app runs"),
            EngineOption("steps", .integer, default: JSONValue(Quality.draft.steps), minimum: 1, maximum: 100,
                         summary: "sampling steps per frame; overrides quality"),
            EngineOption("cfg", .number, default: 3, minimum: 1, maximum: 20, summary: "classifier-free guidance scale"),
            EngineOption("size", .integer, default: JSONValue(Self.defaultWorkingSide), minimum: 256, maximum: 1024,
                         summary: "working size: the picture's longer side, in pixels (a multiple of 64; the reference works at 512x640)"),
            EngineOption("batch", .integer, default: 1, minimum: 1, maximum: 16,
                         summary: "frames sampled together (1 is fastest on a CPU and shows each frame soonest)"),
            EngineOption("negative_prompt", .string, default: .string(PaintsUndoPipeline.defaultNegativePrompt), summary: "negative prompt"),
        ]
        return [MethodCapabilities(method: .undoPreview, inputs: ["image", "steps", "count", "prompt"], options: options),
                MethodCapabilities(method: .undoSequence, inputs: ["image", "steps", "count", "prompt"], options: options)]
    }

    /// Nothing ahead of a job: `undoPreview` loads the model its options name (or the default), and only that one.
    public func load() throws(ProtocolError) {}

    /// The pictures, the flattened and scaled copies at full size, and one model pass at the working size for
    /// `options.batch` frames at once. A model not yet resident adds its weights, not counted here.
    public func estimatedPeakBytes(_ job: JobShape) -> Int {
        let side = job.options["size"]?.intValue ?? Self.defaultWorkingSide
        let batch = job.options["batch"]?.intValue ?? 1
        return job.imageBytes + 12 * job.pixels
            + ModelWorkingSet.bytes(workingPixels: ModelWorkingSet.pixels(width: job.width, height: job.height, side: side),
                                    batch: max(1, batch))
    }

    public func unload() { resident.unload() }

    func pipeline(named name: String?) throws(ProtocolError) -> PaintsUndoPipeline {
        try resident.model(named: name, missingDetails: ["fallback": "builtin"])
    }

    struct Settings {
        var model: String?
        var steps = Quality.draft.steps
        var cfg: Float = 3
        var size = PaintsUndoEngine.defaultWorkingSide
        var batch = 1
        var negativePrompt = PaintsUndoPipeline.defaultNegativePrompt

        init(_ options: [String: JSONValue]) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            model = try r.string("model")
            let quality = try r.choice("quality", as: Quality.self) ?? .draft
            steps = try r.int("steps", in: 1...100) ?? quality.steps
            cfg = Float(try r.double("cfg", in: 1...20) ?? Double(cfg))
            size = try r.int("size", in: 256...1024) ?? size
            batch = try r.int("batch", in: 1...16) ?? batch
            negativePrompt = try r.string("negative_prompt") ?? negativePrompt
            try r.finish()
        }
    }

    /// Where the picture goes on the working canvas: scaled so its longer side is `side` (aspect kept, shorter side at
    /// least one multiple), then centred on a white canvas whose sides are the next multiples of `multiple`.
    public struct Placement: Equatable, Sendable {
        public var canvasWidth: Int, canvasHeight: Int
        public var x: Int, y: Int, width: Int, height: Int

        public init(imageWidth: Int, imageHeight: Int, side: Int, multiple: Int) {
            let longer = max(multiple, side / multiple * multiple)
            let scale = Double(longer) / Double(max(imageWidth, imageHeight))
            width = max(1, min(longer, Int((Double(imageWidth) * scale).rounded())))
            height = max(1, min(longer, Int((Double(imageHeight) * scale).rounded())))
            func up(_ v: Int) -> Int { (v + multiple - 1) / multiple * multiple }
            (canvasWidth, canvasHeight) = (up(width), up(height))
            (x, y) = ((canvasWidth - width) / 2, (canvasHeight - height) / 2)
        }
    }

    public func undoPreview(_ input: UndoPreviewInput, context: JobContext,
                            emit: UndoFrameSink) throws(ProtocolError) -> [String: JSONValue] {
        let settings = try Settings(input.options)
        context.report(stage: "load", step: 0, steps: 1, fraction: 0, preview: nil)
        let pipeline = try pipeline(named: settings.model)
        try context.checkCancellation()

        // Prompt: the client's, else the tagger's, else none; the result's info says which.
        var prompt = input.prompt, promptSource = "client"
        if prompt.isEmpty {
            if let tagger, tagger.status.canRun {
                context.report(stage: "tag", step: 0, steps: 1, fraction: 0.01, preview: nil)
                prompt = try tagger.tag(TagInput(image: input.image), context: InnerStepContext(context)).prompt
                promptSource = "tagger"
            } else {
                promptSource = "none"
            }
        }
        try context.checkCancellation()

        // Working canvas: the whole picture, scaled and padded with white to multiples of 64.
        let place = Placement(imageWidth: input.image.width, imageHeight: input.image.height, side: settings.size,
                              multiple: pipeline.sizeMultiple)
        let flat = input.image.flattened(onto: .white)
        let canvas = flat.resized(width: place.width, height: place.height)
            .padded(toWidth: place.canvasWidth, height: place.canvasHeight, x: place.x, y: place.y, fill: .white)
        var request = PaintsUndoPipeline.Request(image: RasterTensor.tensor(canvas), operationSteps: input.steps, prompt: prompt)
        request.negativePrompt = settings.negativePrompt
        request.steps = settings.steps
        request.guidance = settings.cfg
        request.batchSize = settings.batch
        let latentCount = pipeline.vae.configuration.latentChannels * (place.canvasWidth / pipeline.vaeScale) * (place.canvasHeight / pipeline.vaeScale)
        var seeded = SeededNormalNoise(seed: UInt64(truncatingIfNeeded: input.seed))
        let noise = seeded.normal(count: latentCount)

        // Progress in units of one frame's sampling step (a UNet call pair). Decoding a frame costs about 1.5 of them
        // (8.7 s against 5.9 s at 512x640 on the 2-core benchmark machine), so the ETA counts it.
        let decodeUnits = 1.5
        let total = Double(input.steps.count) * (Double(settings.steps) + decodeUnits)
        var done = 0.0, finished = 0
        do {
            _ = try pipeline.frames(request, noise: noise, keepFrames: false, onStep: { chunk, step, steps in
                try context.checkCancellation()
                done += Double(chunk.count)
                context.report(stage: "sample", step: step, steps: steps, fraction: 0.02 + 0.97 * done / total, preview: nil)
            }, onFrame: { index, image in
                let full = RasterTensor.image(image).cropped(x: place.x, y: place.y, width: place.width, height: place.height)
                    .resized(width: input.image.width, height: input.image.height)
                done += decodeUnits
                finished += 1
                context.report(stage: "frame", step: finished, steps: input.steps.count, fraction: 0.02 + 0.97 * done / total,
                               preview: full)
                try emit(UndoFrame(step: input.steps[index], image: full))
            })
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError(.internalError, "sampling failed: \(error)")
        }
        return [
            "model": .string(settings.model ?? models.first ?? ""), "prompt": .string(prompt), "prompt_source": .string(promptSource),
            "working_size": [JSONValue(place.canvasWidth), JSONValue(place.canvasHeight)],
            "picture_area": [JSONValue(place.x), JSONValue(place.y), JSONValue(place.width), JSONValue(place.height)],
            "steps": JSONValue(settings.steps), "cfg": JSONValue(Double(settings.cfg)), "batch": JSONValue(settings.batch),
        ]
    }
}
