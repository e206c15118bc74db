// PaintsDiffusion/Schedulers/LCMScheduler: latent consistency model sampling (LCM, LCM-LoRA).
// Matches: diffusers 0.42 LCMScheduler (set_timesteps with strength, step, add_noise).
import Foundation

/// Luo et al. (2023), "Latent Consistency Models": each step predicts the clean latents through the consistency
/// boundary condition and, except on the last step, noises them afresh down to the next timestep.
public struct LCMScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    public let initNoiseSigma: Float = 1

    /// - Parameters:
    ///   - steps: inference steps; more than the distillation schedule offers below `strength` run all of those
    ///     (diffusers refuses them).
    ///   - strength: img2img's strength: the timesteps are chosen among the first `strength` of the distillation
    ///     schedule's, counted from the clean end (diffusers `set_timesteps(strength=)`, as
    ///     LatentConsistencyModelImg2ImgPipeline uses it); 1 for txt2img.
    public init(_ configuration: SchedulerConfiguration, steps: Int, strength: Float = 1) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration, finiteTerminalSigma: false)
        timesteps = TimestepSelection.consistencyTimesteps(configuration, steps: steps, strength: strength)
    }

    func alphaProduct(_ t: Int) -> Float {
        t >= 0 ? schedule.alphasCumprod[min(t, schedule.alphasCumprod.count - 1)]
            : (configuration.setAlphaToOne ? 1 : schedule.alphasCumprod[0])
    }

    /// The boundary condition's (c_skip, c_out) at timestep `t`, in float32 as diffusers computes them (sigma_data 0.5).
    func boundaryScalings(_ t: Int) -> (skip: Float, out: Float) {
        let scaled = Float(t) * Float(configuration.timestepScaling)
        let d = scaled * scaled + 0.25
        return (0.25 / d, scaled / d.squareRoot())
    }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let t = Int(timesteps[index])
        let previous = index + 1 < timesteps.count ? Int(timesteps[index + 1]) : t
        let a = alphaProduct(t), aPrev = alphaProduct(previous)
        let (sa, sb) = (a.squareRoot(), (1 - a).squareRoot())
        let (cSkip, cOut) = boundaryScalings(t)
        var denoised = sample
        for i in sample.indices {
            let x0 = predictedOriginal(output[i], sample: sample[i], alpha: sa, sigma: sb, prediction: configuration.predictionType)
            denoised[i] = cOut * x0 + cSkip * sample[i]
        }
        // Fresh noise on every step but the last (so none for one step).
        guard index != timesteps.count - 1 else { return denoised }
        let z = noise.normal(count: sample.count)
        let (pa, pb) = (aPrev.squareRoot(), (1 - aPrev).squareRoot())
        for i in denoised.indices { denoised[i] = pa * denoised[i] + pb * z[i] }
        return denoised
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let a = alphaProduct(Int(timesteps[index]))
        let (sa, sb) = (a.squareRoot(), (1 - a).squareRoot())
        return zip(original, noise).map { sa * $0 + sb * $1 }
    }
}

extension TimestepSelection {
    /// LCM's and TCD's timesteps (diffusers `set_timesteps` without custom timesteps): the distillation schedule
    /// `[1 ... int(original * strength)] * k - 1` with k = num_train_timesteps / original (19, 39, ..., 999 for 50),
    /// from the noisy end, at the indices floor(linspace(0, count, steps, endpoint=False)). `timestep_spacing` plays
    /// no part (as in diffusers). Steps beyond the schedule's length are not repeated: all of it runs.
    static func consistencyTimesteps(_ c: SchedulerConfiguration, steps: Int, strength: Float) -> [Double] {
        let original = min(max(c.originalInferenceSteps, 1), c.numTrainTimesteps)
        let k = c.numTrainTimesteps / original
        // Python's int(original_steps * strength) on the decimal the request gave (0.7 -> 35, where Float(0.7) * 50 in
        // double would give 34).
        let s = Double("\(strength)") ?? Double(strength)
        let count = max(0, min(original, Int((Double(original) * s).rounded(.towardZero))))
        let n = min(max(steps, 0), count)
        guard n > 0 else { return [] }
        let origin = (1...count).reversed().map { $0 * k - 1 }
        let stride = Double(count) / Double(n)
        return (0..<n).map { Double(origin[Int((Double($0) * stride).rounded(.down))]) }
    }
}
