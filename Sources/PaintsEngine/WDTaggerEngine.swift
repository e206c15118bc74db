// PaintsEngine/WDTaggerEngine: the `wd-tagger` engine: Danbooru tags of a picture with a WD v3 tagger (timm ViT or
// ConvNeXt folders in the models directory), for prompts and for the `tag` method.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTagger
import PaintsTensor

public final class WDTaggerEngine: TagEngine {
    public let name = "wd-tagger"
    public let summary = "Danbooru tags of a picture (WD v3 ViT or ConvNeXt tagger), as a prompt"
    public var modelsDirectory: String { resident.directory }
    private let resident: ResidentModel<WDTagger>

    public init(modelsDirectory: String) {
        resident = ResidentModel(directory: modelsDirectory, kind: "WD tagger", isModelFolder: WDTagger.isModelFolder) {
            try WDTagger(folder: $0)
        }
    }

    /// Tagger folders in the models directory (config.json + model.safetensors + selected_tags.csv), by name.
    public var models: [String] { resident.available }

    public var status: EngineStatus {
        if resident.loadedName != nil { return .ready }
        return models.isEmpty
            ? .unavailable(reason: "no WD tagger folder (config.json, model.safetensors, selected_tags.csv) in \(modelsDirectory)")
            : .available
    }

    public var residentBytes: Int {
        guard let name = resident.loadedName else { return 0 }
        return (try? SafeTensorsFile(path: resident.path(of: name) + "/model.safetensors"))?.storedBytes ?? 0
    }

    public var capabilities: [MethodCapabilities] {
        [MethodCapabilities(method: .tag, inputs: ["image", "threshold", "character_threshold", "exclude"], options: [
            EngineOption("model", .string, default: .string(models.first ?? ""), summary: "tagger folder in the models directory"),
        ])]
    }

    /// Nothing ahead of a job: `tag` loads the model its options name (or the default), and only that one.
    public func load() throws(ProtocolError) {}

    /// The picture, its flattened copy, and the network at its 448x448 input.
    public func estimatedPeakBytes(_ job: JobShape) -> Int {
        job.imageBytes + 8 * job.pixels + ModelWorkingSet.bytes(workingPixels: 448 * 448)
    }

    public func unload() { resident.unload() }

    /// The tagger `name` (the first one when nil), loaded once and kept.
    func tagger(named name: String?) throws(ProtocolError) -> WDTagger { try resident.model(named: name) }

    /// The network input: the picture over white, padded to a centred square with white (as the WD v3 reference
    /// does), scaled to the tagger's side (bilinear, or box filter when shrinking by 2x or more).
    static func prepare(_ image: RGBAImage, for tagger: WDTagger) -> Tensor {
        let flat = image.flattened(onto: .white)
        let side = max(image.width, image.height)
        let square = flat.padded(toWidth: side, height: side, x: (side - image.width) / 2, y: (side - image.height) / 2, fill: .white)
        let scaled = square.resized(width: tagger.input.size, height: tagger.input.size)
        var rgb = [Float](repeating: 0, count: scaled.pixelCount * 3)
        for p in 0..<scaled.pixelCount {
            let c = scaled.pixel(p)
            (rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2]) = (Float(c.r), Float(c.g), Float(c.b))
        }
        return tagger.inputTensor(rgb: rgb, side: tagger.input.size)
    }

    public func tag(_ input: TagInput, context: JobContext) throws(ProtocolError) -> TagOutput {
        var r = ParamReader(input.options, path: "options.")
        let model = try r.string("model")
        try r.finish()
        context.report(stage: "load", step: 0, steps: 1, fraction: 0, preview: nil)
        let tagger = try tagger(named: model)
        try context.checkCancellation()
        context.report(stage: "tag", step: 0, steps: 1, fraction: 0.1, preview: nil)
        let probabilities: [Float]
        do { probabilities = try tagger.probabilities(Self.prepare(input.image, for: tagger)) } catch {
            throw ProtocolError(.internalError, "tagging failed: \(error)")
        }
        let tags = tagger.labels.tags(probabilities, thresholds: .init(general: Float(input.threshold), character: Float(input.characterThreshold)),
                                      excluding: Set(input.exclude.map { $0.lowercased().trimmingCharacters(in: .whitespaces) }))
        context.report(stage: "tag", step: 1, steps: 1, fraction: 1, preview: nil)
        return TagOutput(
            tags: tags.map { .init(name: $0.name, category: $0.category == TagLabels.Category.character.rawValue ? "character" : "general",
                                   probability: Double($0.probability)) },
            prompt: TagLabels.prompt(tags),
            ratings: tagger.labels.ratings(probabilities).map { ($0.name, Double($0.probability)) },
            info: ["model": .string(model ?? models.first ?? ""), "architecture": .string(tagger.architecture),
                   "input_size": JSONValue(tagger.input.size)])
    }
}
