// PaintsDiffusion/Schedulers/TCDScheduler: trajectory consistency distillation sampling (TCD-LoRA, Hyper-SD 1-step).
// Matches: diffusers 0.42 TCDScheduler (set_timesteps with strength, step with eta, add_noise).
import Foundation

/// Zheng et al. (2024), "Trajectory Consistency Distillation", strategic stochastic sampling: each step predicts x0
/// and epsilon, moves deterministically to s = floor((1 - gamma) * t_prev) and, except on the last step, noises
/// forward from s to t_prev. gamma 0 is deterministic (DDIM-like), 1 is LCM-like.
public struct TCDScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    public let initNoiseSigma: Float = 1
    /// gamma (diffusers' `eta` argument of `step`), 0...1.
    public let gamma: Double

    /// - Parameters: as `LCMScheduler`'s; `gamma` clamped to 0...1 (diffusers asserts it), 0.3 as TCD's default.
    public init(_ configuration: SchedulerConfiguration, steps: Int, strength: Float = 1, gamma: Double = 0.3) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration, finiteTerminalSigma: false)
        timesteps = TimestepSelection.consistencyTimesteps(configuration, steps: steps, strength: strength)
        self.gamma = min(max(gamma.isFinite ? gamma : 0.3, 0), 1)
    }

    func alphaProduct(_ t: Int) -> Float {
        t >= 0 ? schedule.alphasCumprod[min(t, schedule.alphasCumprod.count - 1)]
            : (configuration.setAlphaToOne ? 1 : schedule.alphasCumprod[0])
    }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let t = Int(timesteps[index])
        let previous = index + 1 < timesteps.count ? Int(timesteps[index + 1]) : 0
        // torch.floor((1 - eta) * prev_timestep): a float32 product.
        let s = Int((Float(1 - gamma) * Float(previous)).rounded(.down))
        let a = alphaProduct(t), aPrev = alphaProduct(previous), aS = alphaProduct(s)
        let (sa, sb) = (a.squareRoot(), (1 - a).squareRoot())
        let (ssa, ssb) = (aS.squareRoot(), (1 - aS).squareRoot())
        var noised = sample
        for i in sample.indices {
            let (x, m) = (sample[i], output[i])
            let original: Float, epsilon: Float
            switch configuration.predictionType {
            case .epsilon:
                original = (x - sb * m) / sa
                epsilon = m
            case .vPrediction:
                original = sa * x - sb * m
                epsilon = sa * m + sb * x
            }
            noised[i] = ssa * original + ssb * epsilon
        }
        guard gamma > 0, index != timesteps.count - 1 else { return noised }
        let z = noise.normal(count: sample.count)
        let ratio = aPrev / aS
        let (keep, fresh) = (ratio.squareRoot(), (1 - ratio).squareRoot())
        for i in noised.indices { noised[i] = keep * noised[i] + fresh * z[i] }
        return noised
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let a = alphaProduct(Int(timesteps[index]))
        let (sa, sb) = (a.squareRoot(), (1 - a).squareRoot())
        return zip(original, noise).map { sa * $0 + sb * $1 }
    }
}
