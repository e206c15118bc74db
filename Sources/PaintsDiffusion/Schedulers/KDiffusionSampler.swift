// PaintsDiffusion/Schedulers/KDiffusionSampler: k-diffusion's discrete sigma schedule and its DPM-Solver++(2M)
// sampler, as Paints-UNDO runs them. Matches: Paints-UNDO diffusers_helper/k_diffusion.py (KModel, sample_dpmpp_2m).
import Foundation

/// The training schedule seen as sigmas (k-diffusion's `DiscreteSchedule`): float32 sigmas of every training timestep,
/// Karras sampling sigmas between its ends, and the nearest training timestep of a sigma.
public struct DiscreteSigmaSchedule: Sendable {
    /// sigma of each training timestep, ascending (index = timestep).
    public let sigmas: [Float]
    let logSigmas: [Float]

    /// Linear betas from `start` to `end` in float64 (`linear=True` in the reference; SD's own schedule squares a
    /// linspace of square roots instead), cumulated in float64, then float32 sigmas.
    public init(linearBetasFrom start: Double, to end: Double, count: Int = 1000) {
        var cumprod = 1.0
        sigmas = (0..<count).map { i in
            let beta = count == 1 ? start : start + (end - start) * Double(i) / Double(count - 1)
            cumprod *= 1 - beta
            let alphaBar = Float(cumprod)
            return ((1 - alphaBar) / alphaBar).squareRoot()
        }
        logSigmas = sigmas.map { Foundation.log($0) }
    }

    public var sigmaMin: Float { sigmas[0] }
    public var sigmaMax: Float { sigmas[sigmas.count - 1] }

    /// Karras et al. (2022) sigmas from sigma_max down to sigma_min (rho 7), `steps` of them, then a final 0.
    public func karras(steps: Int, rho: Float = 7) -> [Float] {
        let minInv = Foundation.pow(sigmaMin, 1 / rho), maxInv = Foundation.pow(sigmaMax, 1 / rho)
        let ramp = NoiseSchedule.torchLinspace(0, 1, steps)
        return ramp.map { Foundation.pow(maxInv + $0 * (minInv - maxInv), rho) } + [0]
    }

    /// The training timestep whose log sigma is nearest (the integer the UNet is given).
    public func timestep(ofSigma sigma: Float) -> Int {
        let target = Foundation.log(sigma)
        var best = 0
        for i in logSigmas.indices where abs(target - logSigmas[i]) < abs(target - logSigmas[best]) { best = i }
        return best
    }
}

/// DPM-Solver++(2M) over a list of sigmas ending in 0: each step takes the model's denoised estimate (x0) and moves
/// the sample to the next sigma, second order from the second step on. The model input at step i is
/// x / sqrt(sigma_i^2 + 1), and an eps-prediction model gives denoised = x - sigma_i * eps.
public struct DPMSolverPlusPlus2MSampler: Sendable {
    public let sigmas: [Float]
    private var previousDenoised: [Float]?

    public init(sigmas: [Float]) {
        precondition(sigmas.count >= 2 && sigmas.last == 0, "sigmas end in 0")
        self.sigmas = sigmas
    }

    public var steps: Int { sigmas.count - 1 }

    /// The scale of the model input at step `index` (c_in = 1 / sqrt(sigma^2 + 1)).
    public func inputScale(step index: Int) -> Float { 1 / (sigmas[index] * sigmas[index] + 1).squareRoot() }

    /// The sample after step `index`, from the sample and its denoised estimate.
    public mutating func step(sample x: [Float], denoised: [Float], step index: Int) -> [Float] {
        let (sigma, next) = (Double(sigmas[index]), Double(sigmas[index + 1]))
        let t = -Foundation.log(sigma), tNext = next > 0 ? -Foundation.log(next) : .infinity
        let h = tNext - t
        // x_next = (sigma_next / sigma) x + (1 - e^-h) D, where D is the denoised estimate (extrapolated from step 2 on).
        let ratio = Float(next / sigma), blend = Float(-Foundation.expm1(-h))
        var out = [Float](repeating: 0, count: x.count)
        if let old = previousDenoised, next > 0 {
            let r = (t + Foundation.log(Double(sigmas[index - 1]))) / h
            let a = Float(1 + 1 / (2 * r)), b = Float(1 / (2 * r))
            for i in x.indices { out[i] = ratio * x[i] + blend * (a * denoised[i] - b * old[i]) }
        } else {
            for i in x.indices { out[i] = ratio * x[i] + blend * denoised[i] }
        }
        previousDenoised = denoised
        return out
    }
}
