// PaintsDiffusion/Schedulers/DDIMScheduler: deterministic DDIM (eta = 0). Matches: diffusers 0.42 DDIMScheduler.

/// Song et al. (2020), "Denoising Diffusion Implicit Models", eq. 12 with eta = 0.
public struct DDIMScheduler: Scheduler {
    public let configuration: SchedulerConfiguration
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    public let initNoiseSigma: Float = 1

    public init(_ configuration: SchedulerConfiguration, steps: Int) {
        self.configuration = configuration
        schedule = NoiseSchedule(configuration, finiteTerminalSigma: false)
        timesteps = TimestepSelection.integerTimesteps(configuration, steps: steps, dpmStyle: false)
    }

    /// The training timestep of step `index` as an index into the schedule's tables, kept inside them: with more
    /// steps than a model's config has training timesteps (or a steps_offset at the end), the spacing rules can pick
    /// one past either end, where diffusers would index out of range too.
    func trainingStep(_ index: Int) -> Int {
        min(max(Int(timesteps[index]), 0), schedule.alphasCumprod.count - 1)
    }

    public mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float] {
        let t = trainingStep(index)
        let previous = t - configuration.numTrainTimesteps / timesteps.count
        let alphaProd = schedule.alphasCumprod[t]
        let alphaProdPrev = previous >= 0 ? schedule.alphasCumprod[previous]
            : (configuration.setAlphaToOne ? 1 : schedule.alphasCumprod[0])
        let betaProd = 1 - alphaProd
        let (sqrtAlpha, sqrtBeta) = (alphaProd.squareRoot(), betaProd.squareRoot())
        let direction = (1 - alphaProdPrev).squareRoot()
        let sqrtAlphaPrev = alphaProdPrev.squareRoot()
        var out = sample
        for i in sample.indices {
            let (x, m) = (sample[i], output[i])
            let original: Float, epsilon: Float
            switch configuration.predictionType {
            case .epsilon:
                original = (x - sqrtBeta * m) / sqrtAlpha
                epsilon = m
            case .vPrediction:
                original = sqrtAlpha * x - sqrtBeta * m
                epsilon = sqrtAlpha * m + sqrtBeta * x
            }
            out[i] = sqrtAlphaPrev * original + direction * epsilon
        }
        return out
    }

    public func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float] {
        let a = schedule.alphasCumprod[trainingStep(index)]
        let (sa, sb) = (a.squareRoot(), (1 - a).squareRoot())
        return zip(original, noise).map { sa * $0 + sb * $1 }
    }
}
