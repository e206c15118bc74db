// PaintsDiffusion/Schedulers/EulerAncestralScheduler: Euler ancestral sampling.
// Matches: diffusers 0.42 EulerAncestralDiscreteScheduler (k-diffusion `sample_euler_ancestral`).

/// Karras et al. (2022) Euler step in sigma space with ancestral noise: each step goes down to sigma_down and adds
/// fresh noise of sigma_up.
public struct EulerAncestralScheduler: Scheduler {
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
        let sigma = sigmas[index], next = sigmas[index + 1]
        let sigmaUp = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).squareRoot()
        let sigmaDown = (next * next - sigmaUp * sigmaUp).squareRoot()
        let dt = sigmaDown - sigma
        let prediction = configuration.predictionType
        let z = noise.normal(count: sample.count)
        var out = sample
        for i in sample.indices {
            let original = EulerSigmaSteps.original(output[i], sample: sample[i], sigma: sigma, prediction: prediction)
            let derivative = (sample[i] - original) / sigma
            out[i] = sample[i] + derivative * dt + z[i] * sigmaUp
        }
        return out
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        steps.addNoise(original, noise: noise, step: index)
    }
}
