// PaintsDiffusion/Pipelines/StableDiffusionPipeline: txt2img and img2img for Stable Diffusion 1.x/2.x with
// classifier-free guidance run as one batch of two. Matches: diffusers StableDiffusionPipeline /
// StableDiffusionImg2ImgPipeline (img2img encodes its source to the posterior mean).
import Foundation
import PaintsTensor

/// The samplers the pipeline offers, by the names requests use.
public enum SamplerKind: String, Sendable, CaseIterable {
    case ddim
    case euler
    case eulerAncestral = "euler_a"
    case dpmSolver2M = "dpmpp_2m"
    case dpmSolver2MKarras = "dpmpp_2m_karras"
    case uniPC = "unipc"
    /// Few-step samplers (issue 14): LCM (LCM-LoRA, 2-8 steps), TCD (TCD-LoRA, Hyper-SD's unified LoRA; its gamma
    /// a request option, 0.3 by default), and DDIM / Euler / Euler ancestral with "trailing" timestep spacing whatever
    /// the model's config says (Hyper-SD N-step and SDXL-Lightning LoRAs: 999, 749, 499, 249 for 4 steps;
    /// SDXL-Lightning's own recipe is Euler, trailing).
    case lcm
    case tcd
    case ddimTrailing = "ddim_trailing"
    case eulerTrailing = "euler_trailing"
    case eulerAncestralTrailing = "euler_a_trailing"

    /// LCM and TCD fold img2img's strength into their timestep choice and run all their steps (diffusers
    /// `set_timesteps(strength=)`, as LatentConsistencyModelImg2ImgPipeline does); the others skip the first
    /// (1 - strength) of their steps (StableDiffusionImg2ImgPipeline `get_timesteps`).
    public var schedulesStrength: Bool { self == .lcm || self == .tcd }

    /// TCD's gamma when a request gives none (TCD's published default).
    public static let defaultGamma = 0.3

    /// - Parameters:
    ///   - strength: img2img's strength, read by the samplers that `schedulesStrength` (1 for txt2img).
    ///   - gamma: TCD's stochasticity (0 deterministic, 1 LCM-like); the other samplers ignore it.
    public func makeScheduler(_ configuration: SchedulerConfiguration, steps: Int, strength: Float = 1,
                              gamma: Double = SamplerKind.defaultGamma) -> any Scheduler {
        var c = configuration
        switch self {
        case .ddim: return DDIMScheduler(c, steps: steps)
        case .euler: return EulerScheduler(c, steps: steps)
        case .eulerAncestral: return EulerAncestralScheduler(c, steps: steps)
        case .lcm: return LCMScheduler(c, steps: steps, strength: strength)
        case .tcd: return TCDScheduler(c, steps: steps, strength: strength, gamma: gamma)
        case .ddimTrailing:
            c.timestepSpacing = .trailing
            return DDIMScheduler(c, steps: steps)
        case .eulerTrailing:
            c.timestepSpacing = .trailing
            return EulerScheduler(c, steps: steps)
        case .eulerAncestralTrailing:
            c.timestepSpacing = .trailing
            return EulerAncestralScheduler(c, steps: steps)
        case .dpmSolver2M:
            c.useKarrasSigmas = false
            return DPMSolverMultistepScheduler(c, steps: steps)
        case .dpmSolver2MKarras:
            c.useKarrasSigmas = true
            return DPMSolverMultistepScheduler(c, steps: steps)
        case .uniPC: return UniPCMultistepScheduler(c, steps: steps)
        }
    }
}

public struct StableDiffusionPipeline: Sendable {
    public var unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public var prompts: PromptEncoder
    public let schedulerConfiguration: SchedulerConfiguration
    /// Text embeddings and img2img latents kept between runs (a second press with the same prompt or the same flats
    /// skips the text encoder or the VAE encoder).
    public let caches = PipelineCaches()
    /// Names what was changed in the text encoder (LoRAs and their weights; empty for the model's own), so that text
    /// embeddings kept by `caches` are only reused for the same encoder.
    public var textEncoderVariant = ""

    public init(unet: UNet2DConditionModel, vae: AutoencoderKL, prompts: PromptEncoder, scheduler: SchedulerConfiguration) {
        self.unet = unet
        self.vae = vae
        self.prompts = prompts
        schedulerConfiguration = scheduler
    }

    /// Latent pixels per image pixel along each side (8 for SD; 2^(levels-1) of the VAE).
    public var vaeScale: Int { 1 << (vae.configuration.blockOutChannels.count - 1) }

    public struct Request: Sendable {
        public var prompt: String
        public var negativePrompt: String = ""
        public var width: Int
        public var height: Int
        public var steps: Int = 20
        public var guidance: Float = 7.5
        public var sampler: SamplerKind = .dpmSolver2MKarras
        /// TCD's gamma (diffusers' `eta`): 0 deterministic, 1 LCM-like; other samplers ignore it.
        public var gamma = SamplerKind.defaultGamma
        /// img2img: the source image [1, 3, height, width] in -1...1, and how much of the schedule to run (0...1).
        public var source: Tensor?
        public var strength: Float = 0.75
        /// ControlNets steering the run (residuals summed), each with its hint at the image's size.
        public var controlNets: [ControlNetGuidance] = []
        /// Image prompts (IP-Adapters: a reference picture's, a style's), their attention summed beside the text's.
        public var imagePrompts: [ImagePromptGuidance] = []
        /// Reference-only (no extra weights): each step a write pass of the reference, then the real pass reads it.
        /// Combines with ControlNets (their residuals go to the real pass only) and image prompts (bound in both).
        public var referenceOnly: ReferenceAttentionGuidance?
        /// Decodes the final latents instead of the model's VAE (TAESD: a draft in milliseconds).
        public var decoder: AutoencoderTiny?

        public init(prompt: String, negativePrompt: String = "", width: Int, height: Int) {
            self.prompt = prompt
            self.negativePrompt = negativePrompt
            self.width = width
            self.height = height
        }
    }

    /// The text encoder's output for `prompt` padded to at least `windows` windows, kept by `caches`.
    func encodeText(_ prompt: String, windows: Int) throws(ModelError) -> Tensor {
        try caches.text.tensor(PipelineCaches.TextKey(prompt: prompt, windows: windows, encoder: textEncoderVariant)) { () throws(ModelError) in
            try prompts.encode(prompt, minimumWindows: windows)
        }.tensor
    }

    /// Called after each denoising step with (step, steps, latents); throw to cancel.
    public typealias StepCallback = (Int, Int, Tensor) throws -> Void

    /// Generates an image [1, 3, height, width] in 0...1. Noise (the initial latents, img2img's added noise,
    /// reference-only's fresh noise for the reference before each step and ancestral samplers' noise, in that order)
    /// comes from `noise`.
    public func generate(_ r: Request, noise: inout some NoiseSource, onStep: StepCallback = { _, _, _ in }) throws -> Tensor {
        let f = vaeScale
        guard r.width % f == 0, r.height % f == 0, r.width > 0, r.height > 0 else {
            throw ModelError.configuration("width and height must be positive multiples of \(f)")
        }
        let shape = [1, vae.configuration.latentChannels, r.height / f, r.width / f]
        guard unet.inChannels == shape[1] else {
            throw ModelError.configuration("the UNet takes \(unet.inChannels) channels, the VAE makes \(shape[1]) (inpainting models need their own pipeline)")
        }
        // Classifier-free guidance runs a batch of two, [uncond; cond]; a guidance of 1 or less runs the prompt's half
        // alone, one UNet call per step (diffusers: `guidance_scale > 1`).
        let guided = r.guidance > 1
        let rows = guided ? 2 : 1
        // Text: [uncond; cond], windows padded to the same count; or cond alone.
        let context: Tensor
        if guided {
            let windows = max(prompts.windowCount(r.prompt), prompts.windowCount(r.negativePrompt))
            let cond = try encodeText(r.prompt, windows: windows)
            let uncond = try encodeText(r.negativePrompt, windows: windows)
            context = Tensor(shape: [2] + Array(cond.shape.dropFirst()), data: uncond.data + cond.data)
        } else {
            context = try encodeText(r.prompt, windows: 0)
        }

        var scheduler = r.sampler.makeScheduler(schedulerConfiguration, steps: r.steps,
                                                strength: r.source != nil && r.sampler.schedulesStrength ? r.strength : 1,
                                                gamma: r.gamma)
        var first = 0
        var latents: [Float]
        let count = shape.reduce(1, *)
        if let source = r.source {
            // img2img: skip the first (1 - strength) of the schedule and start from the noised source latents.
            // (LCM and TCD: their timesteps already start below the strength, all of them run.)
            let run = r.sampler.schedulesStrength ? r.steps : min(r.steps, Int(Float(r.steps) * r.strength))
            first = max(r.steps - run, 0)
            guard first < r.steps, !scheduler.timesteps.isEmpty else { throw ModelError.configuration("strength leaves no step to run") }
            let key = PipelineCaches.SourceKey(shape: source.shape, content: contentHash(source.data))
            let encoded = try caches.sourceLatents.tensor(key) { () throws(ModelError) in
                try vae.encode(source).mean.map { [s = vae.configuration.scalingFactor] in $0 * s }
            }.tensor.data
            latents = scheduler.addNoise(encoded, noise: noise.normal(count: count), step: first)
        } else {
            latents = noise.normal(count: count).map { $0 * scheduler.initNoiseSigma }
        }
        let total = scheduler.timesteps.count
        let controlNets = try PreparedControlNets(r.controlNets, latentShape: shape)
        var unet = self.unet
        for prompt in r.imagePrompts { unet = try prompt.unet(unet, guided: guided) }
        let reference = try r.referenceOnly.map { g throws(ModelError) in
            try PreparedReference(g, unet: unet, vae: vae, vaeScale: f, latentShape: shape, rows: rows)
        }
        for i in first..<total {
            let input = scheduler.scaleModelInput(latents, step: i)
            let batch = guided ? Tensor(shape: [2] + Array(shape.dropFirst()), data: input + input) : Tensor(shape: shape, data: input)
            let timestep = Float(scheduler.timesteps[i])
            let control = try controlNets.residuals(input: input, shape: shape, timestep: timestep, context: context,
                                                    step: i - first, of: total - first, guided: guided)
            var model = unet
            if let reference {
                try reference.write(scheduler: scheduler, step: i, noise: noise.normal(count: count), shape: shape,
                                    timestep: timestep, context: context)
                model = reference.reader
            }
            let prediction = try model(batch, timesteps: [timestep], context: context, conditioning: control ?? UNetConditioning())
            var output = prediction.data
            if guided {
                output = [Float](repeating: 0, count: count)
                for k in 0..<count {
                    let u = prediction.data[k], t = prediction.data[count + k]
                    output[k] = u + r.guidance * (t - u)
                }
            }
            latents = scheduler.step(output: output, step: i, sample: latents, noise: &noise)
            try onStep(i - first + 1, total - first, Tensor(shape: shape, data: latents))
        }
        if let tiny = r.decoder { return try tiny.decode(Tensor(shape: shape, data: latents)).map { min(1, max(0, $0 / 2 + 0.5)) } }
        let decoded = try vae.decode(Tensor(shape: shape, data: latents.map { $0 / vae.configuration.scalingFactor }))
        return decoded.map { min(1, max(0, $0 / 2 + 0.5)) }
    }
}
