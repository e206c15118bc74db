// PaintsDiffusion/Schedulers/DPMSolverMultistepScheduler: DPM-Solver++(2M), optionally on Karras sigmas.
// Matches: diffusers 0.42 DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
// solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero").

import Foundation
/// Lu et al. (2022), "DPM-Solver++", the multistep second-order data-prediction solver (A1111's "DPM++ 2M").
public struct DPMSolverMultistepScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    public let sigmas: [Float]
    public let initNoiseSigma: Float = 1
    /// The previous step's x0 prediction.
    private var previousOutput: [Float]?

    public init(_ configuration: SchedulerConfiguration, steps: Int) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration)
        let s = SigmaSchedule(configuration, schedule: schedule, steps: steps)
        timesteps = s.timesteps
        sigmas = s.sigmas
    }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let count = timesteps.count
        let current = NoiseLevel(sigmas[index])
        let x0 = zip(output, sample).map {
            predictedOriginal($0, sample: $1, alpha: current.alpha, sigma: current.sigma, prediction: configuration.predictionType)
        }
        // The first step has no history and the final one (to sigma 0) is first order, as in the reference.
        let lastStep = index == count - 1
        let next = NoiseLevel(sigmas[index + 1])
        let h = next.lambda - current.lambda
        let decay = next.alpha * (exp(-h) - 1)
        let ratio = next.sigma / current.sigma
        var out = sample
        if let previous = previousOutput, !lastStep {
            let before = NoiseLevel(sigmas[index - 1])
            let r0 = (current.lambda - before.lambda) / h
            for i in out.indices {
                let d1 = (1 / r0) * (x0[i] - previous[i])
                out[i] = ratio * sample[i] - decay * x0[i] - 0.5 * decay * d1
            }
        } else {
            for i in out.indices { out[i] = ratio * sample[i] - decay * x0[i] }
        }
        previousOutput = x0
        return out
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let level = NoiseLevel(sigmas[index])
        return zip(original, noise).map { level.alpha * $0 + level.sigma * $1 }
    }
}
