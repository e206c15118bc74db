// PaintsDiffusion/Schedulers/NoiseSchedule: a diffusers scheduler config and the beta/alpha tables it defines.
import PaintsTensor
// Matches: diffusers 0.42 `DDIMScheduler.__init__` and friends (betas from torch.linspace in float32, cumprod).
import Foundation

public enum BetaSchedule: String, Sendable {
    case linear
    case scaledLinear = "scaled_linear"
}

public enum PredictionType: String, Sendable {
    case epsilon
    case vPrediction = "v_prediction"
}

public enum TimestepSpacing: String, Sendable {
    case linspace, leading, trailing
}

/// The members of a diffusers `scheduler_config.json` that the schedulers here read. Unknown members are ignored.
public struct SchedulerConfiguration: Sendable, Equatable {
    public var numTrainTimesteps = 1000
    public var betaStart = 0.0001
    public var betaEnd = 0.02
    public var betaSchedule = BetaSchedule.linear
    public var predictionType = PredictionType.epsilon
    public var timestepSpacing = TimestepSpacing.linspace
    public var stepsOffset = 0
    public var rescaleBetasZeroSNR = false
    /// DDIM: the "previous" alpha of the last step is 1 (else alphas_cumprod[0]).
    public var setAlphaToOne = true
    /// DPM-Solver and UniPC: Karras et al. (2022) sigmas.
    public var useKarrasSigmas = false
    /// LCM and TCD: the distillation schedule's step count, whose timesteps (every num_train_timesteps / it, ending at
    /// the last) are the only ones they sample at.
    public var originalInferenceSteps = 50
    /// LCM: the factor on the timestep in the consistency boundary condition (c_skip, c_out).
    public var timestepScaling = 10.0

    public init() {}

    /// Reads a scheduler config JSON object (diffusers' keys).
    public init(json: [String: Any]) throws(WeightError) {
        func number(_ key: String) -> Double? { (json[key] as? NSNumber)?.doubleValue }
        func text(_ key: String) -> String? { json[key] as? String }
        func bad(_ m: String) -> WeightError { .badConfig(path: "scheduler_config.json", message: m) }
        // Integers are converted without trapping (Int(1e300) would): a fraction or a huge value is refused.
        func integer(_ key: String, in range: ClosedRange<Int>) throws(WeightError) -> Int? {
            guard let v = number(key) else { return nil }
            guard let n = Int(exactly: v), range.contains(n) else {
                throw bad("\(key) must be an integer in \(range.lowerBound)...\(range.upperBound), got \(v)")
            }
            return n
        }
        if let v = try integer("num_train_timesteps", in: 2...100_000) { numTrainTimesteps = v }
        if let v = number("beta_start") { betaStart = v }
        if let v = number("beta_end") { betaEnd = v }
        if let v = text("beta_schedule") {
            guard let s = BetaSchedule(rawValue: v) else { throw bad("beta_schedule \(v) is not supported") }
            betaSchedule = s
        }
        if let v = text("prediction_type") {
            guard let p = PredictionType(rawValue: v) else { throw bad("prediction_type \(v) is not supported") }
            predictionType = p
        }
        if let v = text("timestep_spacing") {
            guard let s = TimestepSpacing(rawValue: v) else { throw bad("timestep_spacing \(v) is not supported") }
            timestepSpacing = s
        }
        if let v = try integer("steps_offset", in: 0...1) { stepsOffset = v }
        if let v = json["rescale_betas_zero_snr"] as? Bool { rescaleBetasZeroSNR = v }
        if let v = json["set_alpha_to_one"] as? Bool { setAlphaToOne = v }
        if let v = json["use_karras_sigmas"] as? Bool { useKarrasSigmas = v }
        if let v = try integer("original_inference_steps", in: 1...100_000) { originalInferenceSteps = v }
        if let v = number("timestep_scaling") {
            guard v.isFinite, v > 0 else { throw bad("timestep_scaling must be a positive number, got \(v)") }
            timestepScaling = v
        }
        guard numTrainTimesteps >= 2 else { throw bad("num_train_timesteps must be at least 2") }
    }
}

/// The training noise schedule: betas and cumulative alpha products, in float32 as the reference computes them.
public struct NoiseSchedule: Sendable {
    public let betas: [Float]
    public let alphasCumprod: [Float]

    /// - Parameter finiteTerminalSigma: with zero-terminal-SNR betas, set the last alpha_bar to 2^-24 so its sigma is
    ///   finite (diffusers does this in its sigma-based schedulers, not in DDIM).
    public init(_ c: SchedulerConfiguration, finiteTerminalSigma: Bool = true) {
        let n = c.numTrainTimesteps
        var betas: [Float]
        switch c.betaSchedule {
        case .linear: betas = Self.torchLinspace(Float(c.betaStart), Float(c.betaEnd), n)
        case .scaledLinear: betas = Self.torchLinspace(Float(c.betaStart.squareRoot()), Float(c.betaEnd.squareRoot()), n).map { $0 * $0 }
        }
        if c.rescaleBetasZeroSNR { betas = Self.rescaledToZeroTerminalSNR(betas) }
        self.betas = betas
        var cumprod = Self.cumulativeProduct(betas.map { 1 - $0 })
        // diffusers: a zero final alpha would make sigma infinite; it uses 2^-24 instead.
        if c.rescaleBetasZeroSNR && finiteTerminalSigma { cumprod[n - 1] = 0x1p-24 }
        alphasCumprod = cumprod
    }

    /// torch.linspace for float32: start + step*i for the first half, end - step*(n-1-i) for the second.
    static func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        let step = (end - start) / Float(n - 1)
        let half = n / 2
        return (0..<n).map { i in i < half ? start + step * Float(i) : end - step * Float(n - 1 - i) }
    }

    /// torch.cumprod on CPU float32 (accumulated in double, each element rounded to float).
    static func cumulativeProduct(_ values: [Float]) -> [Float] {
        var acc = 1.0
        return values.map { v in
            acc *= Double(v)
            return Float(acc)
        }
    }

    /// Lin et al. (2023), "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1
    /// (diffusers `rescale_zero_terminal_snr`), in float32.
    static func rescaledToZeroTerminalSNR(_ betas: [Float]) -> [Float] {
        var sqrtBar = cumulativeProduct(betas.map { 1 - $0 }).map { $0.squareRoot() }
        let first = sqrtBar[0], last = sqrtBar[sqrtBar.count - 1]
        for i in sqrtBar.indices { sqrtBar[i] -= last }
        let scale = first / (first - last)
        for i in sqrtBar.indices { sqrtBar[i] *= scale }
        let bar = sqrtBar.map { $0 * $0 }
        var alphas = [bar[0]]
        for i in 1..<bar.count { alphas.append(bar[i] / bar[i - 1]) }
        return alphas.map { 1 - $0 }
    }

    /// sigma = sqrt((1 - alpha_bar) / alpha_bar) per training timestep, in float32.
    public var sigmas: [Float] { alphasCumprod.map { ((1 - $0) / $0).squareRoot() } }
}

/// Timestep selection shared by the schedulers (diffusers `set_timesteps`).
enum TimestepSelection {
    /// Integer timesteps, as DDIM, DPM-Solver and UniPC choose them (descending).
    static func integerTimesteps(_ c: SchedulerConfiguration, steps: Int, dpmStyle: Bool) -> [Double] {
        let train = c.numTrainTimesteps
        switch c.timestepSpacing {
        case .linspace:
            if dpmStyle {
                // np.linspace(0, last - 1, steps + 1).round()[::-1][:-1]
                return numpyLinspace(0, Double(train - 1), steps + 1).map { $0.rounded(.toNearestOrEven) }.reversed().dropLast().map { $0 }
            }
            return numpyLinspace(0, Double(train - 1), steps).map { $0.rounded(.toNearestOrEven) }.reversed()
        case .leading:
            let ratio = dpmStyle ? train / (steps + 1) : train / steps
            let count = dpmStyle ? steps + 1 : steps
            var t = (0..<count).map { Double($0 * ratio) }.reversed().map { $0 + Double(c.stepsOffset) }
            if dpmStyle { t.removeLast() }
            return t
        case .trailing:
            let ratio = Double(train) / Double(steps)
            return numpyArange(from: Double(train), to: 0, step: -ratio).map { $0.rounded(.toNearestOrEven) - 1 }
        }
    }

    /// np.linspace(start, stop, n) in float64.
    static func numpyLinspace(_ start: Double, _ stop: Double, _ n: Int) -> [Double] {
        guard n > 1 else { return [start] }
        let step = (stop - start) / Double(n - 1)
        var out = (0..<n).map { start + Double($0) * step }
        out[n - 1] = stop
        return out
    }

    /// np.arange(from, to, step) for a negative step.
    static func numpyArange(from: Double, to: Double, step: Double) -> [Double] {
        let count = Int(((to - from) / step).rounded(.up))
        return (0..<max(0, count)).map { from + Double($0) * step }
    }

    /// np.interp(x, arange(len(table)), table) in float64.
    static func interpolate(_ table: [Float], at x: Double) -> Double {
        if x <= 0 { return Double(table[0]) }
        if x >= Double(table.count - 1) { return Double(table[table.count - 1]) }
        let j = Int(x.rounded(.down))
        let slope = Double(table[j + 1]) - Double(table[j])
        return slope * (x - Double(j)) + Double(table[j])
    }

    /// Karras et al. (2022) eq. 5 sigmas with rho = 7, from sigma_max to sigma_min (diffusers `_convert_to_karras`).
    static func karrasSigmas(sigmaMin: Double, sigmaMax: Double, steps: Int) -> [Double] {
        let rho = 7.0
        let minInv = pow(sigmaMin, 1 / rho), maxInv = pow(sigmaMax, 1 / rho)
        return numpyLinspace(0, 1, steps).map { pow(maxInv + $0 * (minInv - maxInv), rho) }
    }

    /// The fractional training timestep of `sigma`, interpolating log sigma (diffusers `_sigma_to_t`).
    static func timestep(ofSigma sigma: Double, logSigmas: [Float]) -> Double {
        let logSigma = log(max(sigma, 1e-10))
        var low = 0
        for (i, l) in logSigmas.enumerated() where logSigma - Double(l) >= 0 { low = i }
        low = min(low, logSigmas.count - 2)
        let lo = Double(logSigmas[low]), hi = Double(logSigmas[low + 1])
        let w = min(1, max(0, (lo - logSigma) / Double(Float(lo) - Float(hi))))
        return (1 - w) * Double(low) + w * Double(low + 1)
    }
}
