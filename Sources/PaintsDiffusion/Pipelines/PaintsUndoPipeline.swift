// PaintsDiffusion/Pipelines/PaintsUndoPipeline: Paints-UNDO's single-frame model: what a finished picture looked like
// N operation steps earlier. Matches: Paints-UNDO gradio_app.py `process` with diffusers_helper/{cat_cond, code_cond,
// k_diffusion}.py (8-channel UNet input, operation-step embedding, DPM++ 2M on Karras sigmas of linear betas).
import Foundation
import PaintsTensor

public struct PaintsUndoPipeline: Sendable {
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let tokenizer: CLIPTokenizer
    public let textModel: CLIPTextModel
    /// linspace(0.00085, 0.020) betas over 1000 steps, as the reference's KDiffusionSampler is built.
    public let schedule = DiscreteSigmaSchedule(linearBetasFrom: 0.00085, to: 0.020)

    /// The reference app's negative prompt.
    public static let defaultNegativePrompt = "lowres, bad anatomy, bad hands, cropped, worst quality"
    /// The reference app's keyframes: one batch at these operation steps.
    public static let defaultKeyframes = [400, 600, 800, 900, 950, 999]

    public init(unet: UNet2DConditionModel, vae: AutoencoderKL, tokenizer: CLIPTokenizer, textModel: CLIPTextModel) throws(ModelError) {
        let latent = vae.configuration.latentChannels
        guard unet.takesCodedConditions, unet.inChannels == 2 * latent, unet.outChannels == latent else {
            throw .configuration("not a Paints-UNDO single-frame UNet: it needs add_embedding, \(2 * latent) input channels (has \(unet.inChannels)) and \(latent) output channels (has \(unet.outChannels))")
        }
        self.unet = unet
        self.vae = vae
        self.tokenizer = tokenizer
        self.textModel = textModel
    }

    /// Loads the published folder layout: unet/, vae/, text_encoder/, tokenizer/. Shapes come from the tensors
    /// (conv_in has 8 input channels although unet/config.json says 4).
    public init(folder: String) throws(ModelError) {
        try self.init(unet: try UNet2DConditionModel(folder: folder + "/unet"), vae: try AutoencoderKL(folder: folder + "/vae"),
                      tokenizer: try CLIPTokenizer(folder: folder + "/tokenizer"),
                      textModel: try CLIPTextModel(folder: folder + "/text_encoder"))
    }

    /// Whether `folder` holds a single-frame model: a diffusers layout whose UNet weights carry `add_embedding` (the
    /// header read once per file version: the `sd` engine asks this of every pipeline folder on every `hello`).
    public static func isModelFolder(_ folder: String) -> Bool {
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder + "/unet/config.json"), fm.fileExists(atPath: folder + "/vae/config.json"),
              fm.fileExists(atPath: folder + "/text_encoder/config.json")
        else { return false }
        return HeaderVerdicts.verdict("paints-undo-unet", path: WeightStore.componentFile(folder: folder + "/unet", name: "diffusion_pytorch_model")) {
            $0.entries["add_embedding.linear_1.weight"] != nil
        }
    }

    /// Image pixels per side that the working size must be a multiple of (VAE scale x UNet downsampling: 64 for SD1.5).
    public var sizeMultiple: Int { vaeScale * (1 << (unet.configuration.blockOutChannels.count - 1)) }

    public var vaeScale: Int { 1 << (vae.configuration.blockOutChannels.count - 1) }

    /// The context of a prompt: one 77-token window (longer prompts are cut), the text model's last hidden state.
    public func encodePrompt(_ text: String) throws(ModelError) -> Tensor {
        try textModel.encode([tokenizer.encode(text)])
    }

    public struct Request: Sendable {
        /// The finished picture [1, 3, H, W] in -1...1; H and W multiples of `sizeMultiple`.
        public var image: Tensor
        /// Operation steps, one frame each (0 = the finished picture, 999 = the first stroke).
        public var operationSteps: [Int]
        public var prompt: String
        public var negativePrompt: String = PaintsUndoPipeline.defaultNegativePrompt
        public var steps = 50
        public var guidance: Float = 3
        /// Frames sampled together in one UNet batch.
        public var batchSize = 1

        public init(image: Tensor, operationSteps: [Int], prompt: String) {
            self.image = image
            self.operationSteps = operationSteps
            self.prompt = prompt
        }
    }

    /// Where a run is: sampling step `step` of `steps` for the frames `frames` (indices into the request's steps).
    public typealias StepCallback = (_ frames: Range<Int>, _ step: Int, _ steps: Int) throws -> Void
    /// A finished frame [1, 3, H, W] in -1...1 (the VAE's output, unclamped), by index into the request's steps.
    public typealias FrameCallback = (_ index: Int, _ image: Tensor) throws -> Void

    /// The frames of `r`, in its order. `noise` is one latent's worth [latentChannels * H/8 * W/8] of unit normal noise,
    /// shared by every frame (the reference's same_noise_in_batch); the start latent is noise * sigma_max.
    /// With `keepFrames` false, frames only go to `onFrame` and the result is empty (a long job holds one at a time).
    public func frames(_ r: Request, noise: [Float], keepFrames: Bool = true, onStep: StepCallback = { _, _, _ in },
                       onFrame: FrameCallback = { _, _ in }) throws -> [Tensor] {
        let f = sizeMultiple
        guard r.image.rank == 4, r.image.shape[0] == 1, r.image.shape[1] == 3, r.image.shape[2] % f == 0, r.image.shape[3] % f == 0 else {
            throw ModelError.configuration("the image must be [1, 3, H, W] with H and W multiples of \(f), got \(r.image.shape)")
        }
        guard r.steps >= 1, r.batchSize >= 1, !r.operationSteps.isEmpty else { throw ModelError.configuration("nothing to sample") }
        let latent = try vae.encode(r.image).mean.map { [s = vae.configuration.scalingFactor] in $0 * s }
        let shape = Array(latent.shape.dropFirst())       // [C, h, w]
        let count = shape.reduce(1, *)
        guard noise.count == count else { throw ModelError.configuration("noise has \(noise.count) values, a latent \(count)") }
        let cond = try encodePrompt(r.prompt), uncond = try encodePrompt(r.negativePrompt)
        let sigmas = schedule.karras(steps: r.steps)

        var results: [Tensor] = []
        var start = 0
        while start < r.operationSteps.count {
            let chunk = start..<min(start + r.batchSize, r.operationSteps.count)
            let n = chunk.count
            let added = try unet.codedConditionEmbedding(r.operationSteps[chunk].map { Float($0) })
            let conditioning = UNetConditioning(addedTimeEmbedding: added)
            let image = Self.repeated(latent, n)
            let positive = Self.repeated(cond, n), negative = Self.repeated(uncond, n)
            var sampler = DPMSolverPlusPlus2MSampler(sigmas: sigmas)
            var x = Array([[Float]](repeating: noise.map { $0 * sigmas[0] }, count: n).joined())
            for i in 0..<sampler.steps {
                let sigma = sigmas[i], scale = sampler.inputScale(step: i)
                let input = Tensor.concatenatingChannels(Tensor(shape: [n] + shape, data: x.map { $0 * scale }), image)
                let t = [Float(schedule.timestep(ofSigma: sigma))]
                let epsPositive = try unet(input, timesteps: t, context: positive, conditioning: conditioning)
                let epsNegative = try unet(input, timesteps: t, context: negative, conditioning: conditioning)
                var denoised = [Float](repeating: 0, count: x.count)
                for k in x.indices {
                    let u = epsNegative.data[k]
                    denoised[k] = x[k] - (u + r.guidance * (epsPositive.data[k] - u)) * sigma
                }
                x = sampler.step(sample: x, denoised: denoised, step: i)
                try onStep(chunk, i + 1, sampler.steps)
            }
            for (j, index) in chunk.enumerated() {
                let z = Tensor(shape: [1] + shape, data: x[(j * count)..<((j + 1) * count)].map { [s = vae.configuration.scalingFactor] in $0 / s })
                let frame = try vae.decode(z)
                if keepFrames { results.append(frame) }
                try onFrame(index, frame)
            }
            start = chunk.upperBound
        }
        return results
    }

    /// [1, ...] repeated to [n, ...].
    static func repeated(_ x: Tensor, _ n: Int) -> Tensor {
        Tensor(shape: [n] + Array(x.shape.dropFirst()), data: Array([[Float]](repeating: x.data, count: n).joined()))
    }
}
