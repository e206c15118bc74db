// PaintsDiffusion/Schedulers/UniPCMultistepScheduler: UniPC, second order, B(h) = e^h - 1, data prediction.
// Matches: diffusers 0.42 UniPCMultistepScheduler(solver_order=2, solver_type="bh2", predict_x0=True,
// lower_order_final=True, final_sigmas_type="zero").
import Foundation

/// Zhao et al. (2023), "UniPC": a predictor (UniP) and corrector (UniC) pair; the corrector refines each new sample
/// with the model output computed at it, at no extra model call.
public struct UniPCMultistepScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    public let sigmas: [Float]
    public let initNoiseSigma: Float = 1
    /// x0 predictions of the last two steps, newest last.
    private var outputs: [[Float]] = []
    /// The sample the last predictor step started from, and the order it used.
    private var lastSample: [Float]?
    private var lastOrder = 1

    public init(_ configuration: SchedulerConfiguration, steps: Int) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration)
        let s = SigmaSchedule(configuration, schedule: schedule, steps: steps)
        timesteps = s.timesteps
        sigmas = s.sigmas
    }

    /// Coefficients shared by predictor and corrector: hh = -h, h*phi_1 = expm1(hh), B(h) = expm1(hh).
    private struct Coefficients {
        let hh: Float, hPhi1: Float, bh: Float
        init(h: Float) {
            hh = -h
            hPhi1 = expm1(hh)
            bh = expm1(hh)
        }
        /// b_1 and b_2 of the order-2 linear system (diffusers' loop over factorials).
        var b: (Float, Float) {
            var hPhiK = hPhi1 / hh - 1
            let b1 = hPhiK * 1 / bh
            hPhiK = hPhiK / hh - 1 / 2
            let b2 = hPhiK * 2 / bh
            return (b1, b2)
        }
    }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let level = NoiseLevel(sigmas[index])
        let x0 = zip(output, sample).map {
            predictedOriginal($0, sample: $1, alpha: level.alpha, sigma: level.sigma, prediction: configuration.predictionType)
        }
        var sample = sample
        if index > 0, let last = lastSample, let m0 = outputs.last {
            sample = corrected(x0, lastSample: last, m0: m0, index: index)
        }
        outputs.append(x0)
        if outputs.count > 2 { outputs.removeFirst() }
        let order = min(min(2, timesteps.count - index), outputs.count)
        lastOrder = order
        lastSample = sample
        return predicted(sample, index: index, order: order)
    }

    /// UniP: the predictor from sigmas[index] to sigmas[index + 1].
    private func predicted(_ x: [Float], index: Int, order: Int) -> [Float] {
        let t = NoiseLevel(sigmas[index + 1]), s0 = NoiseLevel(sigmas[index])
        let h = t.lambda - s0.lambda
        let c = Coefficients(h: h)
        let ratio = t.sigma / s0.sigma
        let m0 = outputs[outputs.count - 1]
        var out = x
        if order == 2 {
            let s1 = NoiseLevel(sigmas[index - 1])
            let rk = (s1.lambda - s0.lambda) / h
            let m1 = outputs[outputs.count - 2]
            for i in out.indices {
                let d1 = (m1[i] - m0[i]) / rk
                out[i] = (ratio * x[i] - t.alpha * c.hPhi1 * m0[i]) - t.alpha * c.bh * (0.5 * d1)
            }
        } else {
            for i in out.indices { out[i] = ratio * x[i] - t.alpha * c.hPhi1 * m0[i] }
        }
        return out
    }

    /// UniC: corrects the sample at sigmas[index] using its model output `modelT`.
    private func corrected(_ modelT: [Float], lastSample x: [Float], m0: [Float], index: Int) -> [Float] {
        let t = NoiseLevel(sigmas[index]), s0 = NoiseLevel(sigmas[index - 1])
        let h = t.lambda - s0.lambda
        let c = Coefficients(h: h)
        let ratio = t.sigma / s0.sigma
        var out = x
        if lastOrder == 2 {
            let si = NoiseLevel(sigmas[index - 2])
            let rk = (si.lambda - s0.lambda) / h
            let mi = outputs[outputs.count - 2]
            // Solve [[1, 1], [rk, 1]] rho = b.
            let (b1, b2) = c.b
            let rho0 = (b1 - b2) / (1 - rk)
            let rho1 = b1 - rho0
            for i in out.indices {
                let d1 = (mi[i] - m0[i]) / rk
                out[i] = (ratio * x[i] - t.alpha * c.hPhi1 * m0[i]) - t.alpha * c.bh * (rho0 * d1 + rho1 * (modelT[i] - m0[i]))
            }
        } else {
            for i in out.indices {
                out[i] = (ratio * x[i] - t.alpha * c.hPhi1 * m0[i]) - t.alpha * c.bh * (0.5 * (modelT[i] - m0[i]))
            }
        }
        return out
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let level = NoiseLevel(sigmas[index])
        return zip(original, noise).map { level.alpha * $0 + level.sigma * $1 }
    }
}
