// PaintsDiffusion/Pipelines/ReferenceAttentionGuidance: reference-only in a sampling run: each step the reference's
// latent, noised to the step's level with fresh noise, goes through the UNet in a WRITE pass (the same guidance batch
// and text), then the real pass READs it (ReferenceAttention). No extra weights.
// Matches: diffusers examples/community/stable_diffusion_reference.py (and, with ControlNets,
// stable_diffusion_controlnet_reference.py: the ControlNet residuals go to the READ pass only); the reference's latent
// is the VAE's posterior mean (the community pipeline samples it).
import PaintsTensor

public struct ReferenceAttentionGuidance: Sendable {
    /// The reference picture, or its latent already encoded.
    public enum Reference: Sendable {
        /// [1, 3, height, width] in -1...1 at the output's size (the community pipeline lanczos-resizes to it).
        case image(Tensor)
        /// [1, C, height / 8, width / 8]: the VAE's posterior mean times its scaling factor.
        case latents(Tensor)
    }

    public var reference: Reference
    public var options: ReferenceAttentionOptions

    public init(reference: Reference, options: ReferenceAttentionOptions = ReferenceAttentionOptions()) {
        self.reference = reference
        self.options = options
    }
}

/// One run's reference-only: the reference's latent and the UNet bound for writing and for reading.
struct PreparedReference {
    let latents: [Float]
    let writer: UNet2DConditionModel
    let reader: UNet2DConditionModel

    /// The guidance batch's rows: 2 ([uncond; cond]) or 1 (the cond row alone, no guidance).
    let rows: Int

    /// `unet` as the run uses it (image prompts already bound; the write pass sees them too); the batch is `rows`
    /// copies of one latent of `latentShape`.
    init(_ g: ReferenceAttentionGuidance, unet: UNet2DConditionModel, vae: AutoencoderKL, vaeScale f: Int,
         latentShape shape: [Int], rows: Int = 2) throws(ModelError) {
        self.rows = rows
        switch g.reference {
        case .image(let image):
            guard image.shape == [1, 3, shape[2] * f, shape[3] * f] else {
                throw .configuration("reference-only: the reference is \(image.shape), the image needs [1, 3, \(shape[2] * f), \(shape[3] * f)] (the output's size)")
            }
            let encoded = try vae.encode(image).mean
            guard encoded.shape == shape else {
                throw .tensor(.shapeMismatch(operation: "reference latent", shapes: [encoded.shape, shape]))
            }
            latents = encoded.data.map { $0 * vae.configuration.scalingFactor }
        case .latents(let given):
            guard given.shape == shape else {
                throw .tensor(.shapeMismatch(operation: "reference latent", shapes: [given.shape, shape]))
            }
            latents = given.data
        }
        let reference = try ReferenceAttention(options: g.options, unconditionalRows: rows - 1)
        writer = try reference.writer(unet)
        reader = try reference.reader(unet)
    }

    /// The WRITE pass of step `index`: the reference latent noised with `noise` to that step's level, twice (the
    /// guidance batch), through the writer.
    func write(scheduler: some Scheduler, step index: Int, noise: [Float], shape: [Int], timestep: Float,
               context: Tensor) throws(ModelError) {
        let noised = scheduler.scaleModelInput(scheduler.addNoise(latents, noise: noise, step: index), step: index)
        _ = try writer(Tensor(shape: [rows] + Array(shape.dropFirst()), data: Array([[Float]](repeating: noised, count: rows).joined())),
                       timesteps: [timestep], context: context)
    }
}
