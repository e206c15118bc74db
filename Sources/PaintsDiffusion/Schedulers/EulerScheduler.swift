// PaintsDiffusion/Schedulers/EulerScheduler: Euler sampling without ancestral noise, and the sigma table that it and
// Euler ancestral share. Matches: diffusers 0.42 EulerDiscreteScheduler (s_churn 0, the default: no noise is drawn;
// linear sigma interpolation, no Karras sigmas, final sigma 0).

/// The timesteps and sigmas of diffusers' Euler schedulers for a step count: the configured spacing's timesteps, each
/// training sigma interpolated at them, then a final 0; the initial noise is the largest sigma (linspace and trailing
/// spacing) or sqrt(sigma_max^2 + 1) (leading).
struct EulerSigmaSteps: Sendable {
    let timesteps: [Double]
    /// Sigma per step, plus a final 0.
    let sigmas: [Float]
    let initNoiseSigma: Float

    init(_ configuration: SchedulerConfiguration, schedule: NoiseSchedule, steps: Int) {
        let train = configuration.numTrainTimesteps
        let t: [Double]
        switch configuration.timestepSpacing {
        case .linspace:
            // np.linspace(0, train - 1, steps, dtype=float32)[::-1]
            t = TimestepSelection.numpyLinspace(0, Double(train - 1), steps).map { Double(Float($0)) }.reversed()
        case .leading, .trailing:
            t = TimestepSelection.integerTimesteps(configuration, steps: steps, dpmStyle: false)
        }
        timesteps = t
        let table = schedule.sigmas
        sigmas = t.map { Float(TimestepSelection.interpolate(table, at: $0)) } + [0]
        let maxSigma = sigmas.max() ?? 1
        initNoiseSigma = configuration.timestepSpacing == .linspace || configuration.timestepSpacing == .trailing
            ? maxSigma : (maxSigma * maxSigma + 1).squareRoot()
    }

    /// The model input at sigma: sample / sqrt(sigma^2 + 1).
    func scaleModelInput(_ sample: [Float], step index: Int) -> [Float] {
        let sigma = sigmas[index]
        let scale = (sigma * sigma + 1).squareRoot()
        return sample.map { $0 / scale }
    }

    /// The denoised estimate (x0) of one element at sigma.
    @inline(__always)
    static func original(_ output: Float, sample: Float, sigma: Float, prediction: PredictionType) -> Float {
        switch prediction {
        case .epsilon: sample - sigma * output
        case .vPrediction: output * (-sigma / (sigma * sigma + 1).squareRoot()) + sample / (sigma * sigma + 1)
        }
    }

    func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let sigma = sigmas[index]
        return zip(original, noise).map { $0 + $1 * sigma }
    }
}

/// Karras et al. (2022) Euler step in sigma space, deterministic: x_next = x + (x - x0) / sigma * (sigma_next - sigma).
/// With trailing spacing it is the sampler SDXL-Lightning and Hyper-SD's N-step LoRAs are published with.
public struct EulerScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    let steps: EulerSigmaSteps

    public init(_ configuration: SchedulerConfiguration, steps count: Int) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration)
        steps = EulerSigmaSteps(configuration, schedule: schedule, steps: count)
    }

    public var timesteps: [Double] { steps.timesteps }
    /// Sigma per step, plus a final 0.
    public var sigmas: [Float] { steps.sigmas }
    public var initNoiseSigma: Float { steps.initNoiseSigma }

    public func scaleModelInput(_ sample: [Float], step index: Int) -> [Float] { steps.scaleModelInput(sample, step: index) }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let sigma = sigmas[index], dt = sigmas[index + 1] - sigma
        let prediction = configuration.predictionType
        var out = sample
        for i in sample.indices {
            let original = EulerSigmaSteps.original(output[i], sample: sample[i], sigma: sigma, prediction: prediction)
            out[i] = sample[i] + (sample[i] - original) / sigma * dt
        }
        return out
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        steps.addNoise(original, noise: noise, step: index)
    }
}
