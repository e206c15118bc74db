// PaintsDiffusion/Schedulers/Scheduler: the sampler seam: timesteps, input scaling, one step; and the noise source.
import Foundation
import PaintsTensor

/// A diffusion scheduler: it chooses timesteps and turns a model's prediction into the next, less noisy sample.
/// Samples are flat float32 arrays (any shape); schedulers work element-wise.
public protocol Scheduler: Sendable {
    /// Model timesteps, one per step, highest noise first.
    var timesteps: [Double] { get }
    /// Standard deviation of the initial noise (multiply unit normal noise by it).
    var initNoiseSigma: Float { get }
    /// The model's input for step `index` (Euler-type schedulers divide by sqrt(sigma^2 + 1)).
    func scaleModelInput(_ sample: [Float], step index: Int) -> [Float]
    /// The sample after step `index`, given the model's output for it. Ancestral schedulers draw from `noise`.
    mutating func step(output: [Float], step index: Int, sample: [Float], noise: inout some NoiseSource) -> [Float]
    /// `original` noised to the level of step `index` (img2img's starting point).
    func addNoise(_ original: [Float], noise: [Float], step index: Int) -> [Float]
}

extension Scheduler {
    public func scaleModelInput(_ sample: [Float], step index: Int) -> [Float] { sample }
}

/// Standard normal noise for samplers and initial latents.
public protocol NoiseSource {
    mutating func normal(count: Int) -> [Float]
}

/// Noise given in advance, one array per call (tests replay the reference's noise).
public struct ReplayedNoise: NoiseSource {
    private var arrays: [[Float]]
    public init(_ arrays: [[Float]]) { self.arrays = arrays }
    public mutating func normal(count: Int) -> [Float] {
        precondition(!arrays.isEmpty, "no replayed noise left")
        let next = arrays.removeFirst()
        precondition(next.count == count, "replayed noise has \(next.count) values, \(count) asked")
        return next
    }
}

/// x0 and epsilon predictions from a model output, for a sample at noise level alpha_t, sigma_t (VP form).
@inline(__always)
func predictedOriginal(_ output: Float, sample: Float, alpha: Float, sigma: Float, prediction: PredictionType) -> Float {
    switch prediction {
    case .epsilon: (sample - sigma * output) / alpha
    case .vPrediction: alpha * sample - sigma * output
    }
}

/// Seeded standard normal noise: SplitMix64 bits through Box-Muller in double precision. The same seed gives the same
/// values on every machine (it does not reproduce torch's generator; parity tests replay torch's noise instead).
public struct SeededNormalNoise: NoiseSource, Sendable {
    private var bits: SplitMix64
    public init(seed: UInt64) { bits = SplitMix64(seed: seed) }

    /// A uniform double in (0, 1).
    private mutating func nextUnit() -> Double { (Double(bits.next() >> 11) + 0.5) / 9_007_199_254_740_992.0 }

    public mutating func normal(count: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(count + 1)
        while out.count < count {
            let (u, v) = (nextUnit(), nextUnit())
            let r = (-2 * Foundation.log(u)).squareRoot()
            out.append(Float(r * Foundation.cos(2 * Double.pi * v)))
            out.append(Float(r * Foundation.sin(2 * Double.pi * v)))
        }
        return Array(out.prefix(count))
    }
}
