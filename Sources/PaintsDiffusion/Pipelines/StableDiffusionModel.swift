// PaintsDiffusion/Pipelines/StableDiffusionModel: a diffusers pipeline folder (model_index.json, unet/, vae/,
// text_encoder/, tokenizer/, scheduler/) loaded into a StableDiffusionPipeline; and a cheap latent preview.
import Foundation
import PaintsTensor

public enum StableDiffusionModel {
    /// Whether `folder` looks like a diffusers Stable Diffusion pipeline.
    public static func isPipelineFolder(_ folder: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder + "/model_index.json") && fm.fileExists(atPath: folder + "/unet/config.json")
            && fm.fileExists(atPath: folder + "/vae/config.json") && fm.fileExists(atPath: folder + "/text_encoder/config.json")
    }

    /// Loads every component of a pipeline folder.
    public static func load(folder: String, clipSkip: Int = 0) throws(ModelError) -> StableDiffusionPipeline {
        guard isPipelineFolder(folder) else { throw .configuration("\(folder) is not a diffusers Stable Diffusion folder") }
        var scheduler = SchedulerConfiguration()
        let schedulerPath = folder + "/scheduler/scheduler_config.json"
        if let json = RegularFile.jsonObject(schedulerPath) {
            do { scheduler = try SchedulerConfiguration(json: json) } catch { throw .weights(error) }
        }
        let prompts = PromptEncoder(tokenizer: try CLIPTokenizer(folder: folder + "/tokenizer"),
                                    textModel: try CLIPTextModel(folder: folder + "/text_encoder"), clipSkip: clipSkip)
        return try assemble(unet: try UNet2DConditionModel(folder: folder + "/unet"), vae: try AutoencoderKL(folder: folder + "/vae"),
                            prompts: prompts, scheduler: scheduler)
    }

    /// A pipeline of loaded components, refused (typed, not trapping later) when they do not fit together: the UNet
    /// must predict what the VAE's latents hold (its input may be wider: inpainting UNets load, and `generate` says
    /// why it cannot run them). A context width the UNet does not attend to fails as a typed tensor error on use.
    static func assemble(unet: UNet2DConditionModel, vae: AutoencoderKL, prompts: PromptEncoder,
                         scheduler: SchedulerConfiguration) throws(ModelError) -> StableDiffusionPipeline {
        let latent = vae.configuration.latentChannels
        try require(unet.outChannels == latent, "the UNet predicts \(unet.outChannels) channels, the VAE's latents have \(latent)")
        try require(unet.inChannels >= latent, "the UNet takes \(unet.inChannels) channels, the VAE's latents have \(latent)")
        return StableDiffusionPipeline(unet: unet, vae: vae, prompts: prompts, scheduler: scheduler)
    }

    /// Models in `directory`: diffusers pipeline folders (named by the folder; not Paints-UNDO's, which shares the layout) and original-layout single-file
    /// checkpoints (named by the file without `.safetensors`), as name -> path, sorted by name.
    public static func models(in directory: String) -> [(name: String, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().compactMap { name in
            let path = directory + "/" + name
            if isPipelineFolder(path) { return PaintsUndoPipeline.isModelFolder(path) ? nil : (name, path) }
            if SingleFileCheckpoint.isCheckpoint(path) { return (String(name.dropLast(".safetensors".count)), path) }
            return nil
        }
    }

    /// Loads a pipeline folder or a single-file checkpoint. A single file takes its tokenizer from a `tokenizer`
    /// folder beside it, else from the first pipeline folder beside it (all SD1.x/2.x share the CLIP BPE vocabulary).
    public static func load(path: String, clipSkip: Int = 0) throws(ModelError) -> StableDiffusionPipeline {
        if isPipelineFolder(path) { return try load(folder: path, clipSkip: clipSkip) }
        let directory = (path as NSString).deletingLastPathComponent
        let candidates = [directory + "/tokenizer"] + models(in: directory).filter { isPipelineFolder($0.path) }.map { $0.path + "/tokenizer" }
        guard let tokenizer = candidates.first(where: { FileManager.default.fileExists(atPath: $0 + "/vocab.json") }) else {
            throw .configuration("\(path) carries no tokenizer: put the CLIP vocab.json and merges.txt in \(directory)/tokenizer")
        }
        return try SingleFileCheckpoint(path: path).pipeline(tokenizerFolder: tokenizer, clipSkip: clipSkip)
    }

    /// Bytes a model takes once loaded (pipeline folder or single file; weights stay in their stored dtype).
    public static func residentBytes(path: String) -> Int {
        if isPipelineFolder(path) { return residentBytes(folder: path) }
        // The weights' bytes only: the header is enough (configurations are inferred when the model loads).
        return (try? SafeTensorsFile(path: path))?.storedBytes ?? 0
    }

    /// Bytes the weights of a folder take once loaded: the files `load` reads, which stay in their stored dtype.
    public static func residentBytes(folder: String) -> Int {
        var total = 0
        for (sub, name) in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")] {
            let path = WeightStore.componentFile(folder: folder + "/" + sub, name: name)
            if let file = try? SafeTensorsFile(path: path) { total += file.storedBytes }
        }
        return total
    }

    /// A rough RGB picture of SD1.x/2.x latents [1, 4, h, w] in 0...1, `scale` times larger: a fixed linear map of the
    /// four latent channels (the per-channel colours community previewers use for SD1.5), for progress previews
    /// without running the VAE.
    public static func latentPreview(_ latents: Tensor, scale: Int) -> (width: Int, height: Int, rgb: [Float]) {
        let factors: [[Float]] = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
                                  [-0.2120, -0.2616, -0.7177]]
        let (h, w) = (latents.shape[2], latents.shape[3]), plane = h * w
        var rgb = [Float](repeating: 0, count: plane * scale * scale * 3)
        for y in 0..<(h * scale) {
            for x in 0..<(w * scale) {
                let p = (y / scale) * w + x / scale
                for c in 0..<3 {
                    var v: Float = 0
                    for k in 0..<min(4, latents.shape[1]) { v += latents.data[k * plane + p] * factors[k][c] }
                    rgb[(y * w * scale + x) * 3 + c] = min(1, max(0, (v + 1) / 2))
                }
            }
        }
        return (w * scale, h * scale, rgb)
    }
}
