// PaintsDiffusion/Pipelines/StableDiffusionReferenceOnlyPipeline: Stable Diffusion Reference Only (SDRO): a line-art
// blueprint coloured after a reference picture. Matches: aihao2000/stable-diffusion-reference-only
// pipelines/pipeline_stable_diffusion_reference_only.py as app.py runs it (UniPC from the folder's scheduler config).
//
// A pipeline of its own rather than a mode of StableDiffusionPipeline: it has no text encoder and no classifier-free
// guidance (one UNet call per step, on one batch item), its context is the reference's CLIP vision hidden states, and
// the UNet takes the blueprint; the schedulers, the UNet and the VAE are the shared ones.
import Foundation
import PaintsTensor

public struct StableDiffusionReferenceOnlyPipeline: Sendable {
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    /// The folder's scheduler config (a DDPMScheduler's in the published folder: SD2.1's betas, v-prediction); the
    /// sampler the request names runs with it, as app.py's UniPCMultistepScheduler.from_config does.
    public let schedulerConfiguration: SchedulerConfiguration
    /// The reference's encoder: SDRO's fine-tuned CLIP vision tower (image_encoder/) and its preprocessing
    /// (clip_image_processor/); nil for a pipeline built from a UNet and a VAE alone, which takes contexts made elsewhere.
    public let imageEncoder: CLIPVisionModel?
    public let imageProcessor: CLIPImageProcessor

    /// The UNet must carry the blueprint encoder, predict the VAE's latent channels from them, and embed a blueprint
    /// to the latent size (its downscale equal to the VAE's); the image encoder's hidden states must be as wide as the
    /// context the UNet attends to.
    public init(unet: UNet2DConditionModel, vae: AutoencoderKL, scheduler: SchedulerConfiguration,
                imageEncoder: CLIPVisionModel? = nil, imageProcessor: CLIPImageProcessor = CLIPImageProcessor()) throws(ModelError) {
        let latent = vae.configuration.latentChannels, scale = 1 << (vae.configuration.blockOutChannels.count - 1)
        guard let downscale = unet.blueprintDownscale else {
            throw .configuration("not an SDRO UNet: its weights have no controlnet_cond_embedding (the blueprint encoder)")
        }
        try require(unet.inChannels == latent && unet.outChannels == latent,
                    "the UNet takes \(unet.inChannels) and predicts \(unet.outChannels) channels, the VAE's latents have \(latent)")
        try require(downscale == scale, "the blueprint encoder downsamples \(downscale)x, the VAE \(scale)x")
        if let imageEncoder {
            let width = unet.configuration.crossAttentionDimension
            try require(imageEncoder.configuration.hiddenSize == width,
                        "the image encoder's hidden states are \(imageEncoder.configuration.hiddenSize) wide, the UNet attends to \(width)")
        }
        self.unet = unet
        self.vae = vae
        schedulerConfiguration = scheduler
        self.imageEncoder = imageEncoder
        self.imageProcessor = imageProcessor
    }

    /// The reference picture's context for `Request.context`: the image processor's pixel_values through the vision
    /// tower, its last_hidden_state [1, tokens, hidden] (SDRO's encoder_prompt: no projection, no post_layernorm).
    /// `pixels` row by row from the top, interleaved RGB (`channels` 3) or RGBA with straight alpha (4; composited
    /// onto white).
    public func referenceContext(pixels: [UInt8], width: Int, height: Int, channels: Int) throws(ModelError) -> Tensor {
        guard let imageEncoder else { throw .configuration("this pipeline has no image encoder: give the reference's context") }
        let pixelValues = try imageProcessor.pixelValues(pixels: pixels, width: width, height: height, channels: channels)
        return try imageEncoder(pixelValues).lastHiddenState
    }

    /// Latent pixels per image pixel along each side (8 for SD; 2^(levels-1) of the VAE).
    public var vaeScale: Int { 1 << (vae.configuration.blockOutChannels.count - 1) }

    /// Image pixels per side that a working size should be a multiple of (VAE scale x UNet downsampling: 64 for SD's
    /// four levels).
    public var sizeMultiple: Int { vaeScale * (1 << (unet.configuration.blockOutChannels.count - 1)) }

    /// Width of the context the UNet attends to (1024 for SDRO: CLIP ViT-L's hidden states).
    public var contextWidth: Int { unet.configuration.crossAttentionDimension }

    public struct Request: Sendable {
        /// The reference's image prompt: the CLIP vision tower's last_hidden_state [1, S, D] (257 x 1024 for SDRO),
        /// without projection or post-layernorm.
        public var context: Tensor
        /// The blueprint [1, 3, height, width]: line art as white lines on black, RGB in 0...1 (not normalised).
        public var blueprint: Tensor
        public var steps: Int = 20
        /// app.py's UniPC; the others run with the same scheduler config.
        public var sampler: SamplerKind = .uniPC
        /// TCD's gamma (diffusers' `eta`); other samplers ignore it.
        public var gamma = SamplerKind.defaultGamma

        public init(context: Tensor, blueprint: Tensor) {
            self.context = context
            self.blueprint = blueprint
        }

        public var width: Int { blueprint.shape.count == 4 ? blueprint.shape[3] : 0 }
        public var height: Int { blueprint.shape.count == 4 ? blueprint.shape[2] : 0 }
    }

    /// Called after each denoising step with (step, steps, latents); throw to cancel.
    public typealias StepCallback = (Int, Int, Tensor) throws -> Void

    /// Colours the blueprint after the reference: an image [1, 3, height, width] in 0...1 at the blueprint's size.
    /// The initial latents (and ancestral samplers' noise) come from `noise`.
    public func generate(_ r: Request, noise: inout some NoiseSource, onStep: StepCallback = { _, _, _ in }) throws -> Tensor {
        let f = vaeScale
        guard r.blueprint.rank == 4, r.blueprint.shape[0] == 1, r.blueprint.shape[1] == 3, r.width > 0, r.height > 0,
              r.width % f == 0, r.height % f == 0 else {
            throw ModelError.configuration("the blueprint must be [1, 3, H, W] with H and W positive multiples of \(f), not \(r.blueprint.shape)")
        }
        guard r.context.rank == 3, r.context.shape[0] == 1, r.context.shape[1] >= 1, r.context.shape[2] == contextWidth else {
            throw ModelError.configuration("the reference context must be [1, S, \(contextWidth)], not \(r.context.shape)")
        }
        guard r.steps >= 1 else { throw ModelError.configuration("steps must be at least 1") }
        let shape = [1, vae.configuration.latentChannels, r.height / f, r.width / f]
        // The blueprint's embedding does not depend on the step: once per run (SDRO embeds it in every UNet call).
        let conditioning = UNetConditioning(blueprintEmbedding: try unet.embedBlueprint(r.blueprint))
        var scheduler = r.sampler.makeScheduler(schedulerConfiguration, steps: r.steps, gamma: r.gamma)
        let count = shape.reduce(1, *)
        var latents = noise.normal(count: count).map { $0 * scheduler.initNoiseSigma }
        let total = scheduler.timesteps.count
        for i in 0..<total {
            let input = Tensor(shape: shape, data: scheduler.scaleModelInput(latents, step: i))
            let prediction = try unet(input, timesteps: [Float(scheduler.timesteps[i])], context: r.context, conditioning: conditioning)
            latents = scheduler.step(output: prediction.data, step: i, sample: latents, noise: &noise)
            try onStep(i + 1, total, Tensor(shape: shape, data: latents))
        }
        let decoded = try vae.decode(Tensor(shape: shape, data: latents.map { $0 / vae.configuration.scalingFactor }))
        return decoded.map { min(1, max(0, $0 / 2 + 0.5)) }
    }
}

extension StableDiffusionReferenceOnlyPipeline {
    /// The components of the published folder layout (AisingioroHao0/stable-diffusion-reference-only-automatic-coloring-0.1.2).
    static let requiredFiles = ["model_index.json", "unet/config.json", "vae/config.json", "image_encoder/config.json",
                                "scheduler/scheduler_config.json"]

    /// Whether `folder` holds an SDRO model: model_index.json, unet/, vae/, image_encoder/, scheduler/, and UNet weights that carry
    /// the blueprint encoder `controlnet_cond_embedding` (the header read once per file version).
    public static func isModelFolder(_ folder: String) -> Bool {
        let fm = FileManager.default
        guard requiredFiles.allSatisfy({ fm.fileExists(atPath: folder + "/" + $0) }) else { return false }
        return HeaderVerdicts.verdict("sdro-unet", path: WeightStore.componentFile(folder: folder + "/unet", name: "diffusion_pytorch_model")) {
            $0.entries["controlnet_cond_embedding.conv_in.weight"] != nil
        }
    }

    /// The scheduler config of `folder/scheduler/scheduler_config.json`, required: SDRO's betas and v-prediction are
    /// SD2.1's, which diffusers' defaults (linear betas, epsilon) are not.
    public static func schedulerConfiguration(folder: String) throws(ModelError) -> SchedulerConfiguration {
        let path = folder + "/scheduler/scheduler_config.json"
        guard let json = RegularFile.jsonObject(path) else {
            throw .configuration("\(path): missing, not a regular file of at most 16 MiB, or not a JSON object (the model's scheduler config says its betas and prediction type)")
        }
        do { return try SchedulerConfiguration(json: json) } catch { throw .weights(error) }
    }

    /// Loads a published-layout folder: unet/, vae/, image_encoder/, the scheduler config, and the image processor's
    /// settings from clip_image_processor/ (CLIP's 224-pixel defaults when it is missing).
    public init(folder: String) throws(ModelError) {
        let fm = FileManager.default
        let processor = fm.fileExists(atPath: folder + "/clip_image_processor/preprocessor_config.json")
            ? try CLIPImageProcessor(folder: folder + "/clip_image_processor") : CLIPImageProcessor()
        try self.init(unet: try UNet2DConditionModel(folder: folder + "/unet"), vae: try AutoencoderKL(folder: folder + "/vae"),
                      scheduler: try Self.schedulerConfiguration(folder: folder),
                      imageEncoder: try CLIPVisionModel(folder: folder + "/image_encoder"), imageProcessor: processor)
    }

    /// Bytes the weights of a folder take once loaded (UNet, VAE and image encoder; weights stay in their stored
    /// dtype).
    public static func residentBytes(folder: String) -> Int {
        var total = 0
        for (sub, name) in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("image_encoder", "model")] {
            if let file = try? SafeTensorsFile(path: WeightStore.componentFile(folder: folder + "/" + sub, name: name)) { total += file.storedBytes }
        }
        return total
    }
}
