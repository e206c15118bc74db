// PaintsDiffusion/Schedulers/SigmaSchedule: timesteps and sigmas of the multistep solvers (DPM-Solver, UniPC).
// Matches: diffusers 0.42 DPMSolverMultistepScheduler / UniPCMultistepScheduler `set_timesteps` (final sigma zero).
import Foundation

/// Integer timesteps and float32 sigmas (one per step plus a final 0) for the multistep solvers.
struct SigmaSchedule: Sendable {
    let timesteps: [Double]
    let sigmas: [Float]

    init(_ c: SchedulerConfiguration, schedule: NoiseSchedule, steps: Int) {
        let table = schedule.sigmas
        if c.useKarrasSigmas {
            let logSigmas = table.map { Float(log(Double($0))) }
            let karras = TimestepSelection.karrasSigmas(sigmaMin: Double(table[0]), sigmaMax: Double(table[table.count - 1]),
                                                        steps: steps)
            timesteps = karras.map { TimestepSelection.timestep(ofSigma: $0, logSigmas: logSigmas).rounded(.toNearestOrEven) }
            sigmas = karras.map { Float($0) } + [0]
        } else {
            timesteps = TimestepSelection.integerTimesteps(c, steps: steps, dpmStyle: true)
            sigmas = timesteps.map { Float(TimestepSelection.interpolate(table, at: $0)) } + [0]
        }
    }
}

/// Variance-preserving coefficients of a sigma: alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma*alpha_t, and
/// lambda_t = log(alpha_t) - log(sigma_t), in float32 as the reference computes them.
struct NoiseLevel {
    let alpha: Float
    let sigma: Float
    let lambda: Float

    init(_ s: Float) {
        alpha = 1 / (s * s + 1).squareRoot()
        sigma = s * alpha
        lambda = log(alpha) - log(sigma)
    }
}
