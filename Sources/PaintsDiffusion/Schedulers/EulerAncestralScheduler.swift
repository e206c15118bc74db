// PaintsDiffusion/Schedulers/EulerAncestralScheduler: Euler ancestral sampling.
// Matches: diffusers 0.42 EulerAncestralDiscreteScheduler (k-diffusion `sample_euler_ancestral`).

/// Karras et al. (2022) Euler step in sigma space with ancestral noise: each step goes down to sigma_down and adds
/// fresh noise of sigma_up.
public struct EulerAncestralScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    /// Sigma per step, plus a final 0.
    public let sigmas: [Float]
    public let initNoiseSigma: Float

    public init(_ configuration: SchedulerConfiguration, steps: Int) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration)
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

    public func scaleModelInput(_ sample: [Float], step index: Int) -> [Float] {
        let sigma = sigmas[index]
        let scale = (sigma * sigma + 1).squareRoot()
        return sample.map { $0 / scale }
    }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let sigma = sigmas[index], next = sigmas[index + 1]
        let sigmaUp = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).squareRoot()
        let sigmaDown = (next * next - sigmaUp * sigmaUp).squareRoot()
        let dt = sigmaDown - sigma
        let vScale = -sigma / (sigma * sigma + 1).squareRoot(), vSample = 1 / (sigma * sigma + 1)
        let z = noise.normal(count: sample.count)
        var out = sample
        for i in sample.indices {
            let original: Float
            switch configuration.predictionType {
            case .epsilon: original = sample[i] - sigma * output[i]
            case .vPrediction: original = output[i] * vScale + sample[i] * vSample
            }
            let derivative = (sample[i] - original) / sigma
            out[i] = sample[i] + derivative * dt + z[i] * sigmaUp
        }
        return out
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let sigma = sigmas[index]
        return zip(original, noise).map { $0 + $1 * sigma }
    }
}
