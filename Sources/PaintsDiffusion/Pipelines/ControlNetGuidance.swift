// PaintsDiffusion/Pipelines/ControlNetGuidance: ControlNets steering a sampling run through the UNet's residual seams:
// a scale, a window of the run's steps, ControlNet 1.1's guess mode, and several ControlNets summed.
// Matches: diffusers StableDiffusionControlNetPipeline / StableDiffusionControlNetImg2ImgPipeline and
// MultiControlNetModel (controlnet_keep over the steps actually run, residuals summed); guess mode scales as
// ControlNet 1.1's gradio scripts do (0.825 powers), not diffusers' logspace.
import Foundation
import PaintsTensor

/// One ControlNet with its hint and how strongly, and when, it acts.
public struct ControlNetGuidance: Sendable {
    public var model: ControlNetModel
    /// The hint [1, C, H, W] at the image's size (H, W the latent's times `model.conditioningDownscale`), 0...1 RGB:
    /// white lines on black for line-art and scribble models.
    public var hint: Tensor
    /// Multiplies every residual (`controlnet_conditioning_scale`).
    public var scale: Float
    /// The fractions of the run's steps between which it acts: step i of n acts unless i/n < start or (i+1)/n > end.
    public var start: Double
    public var end: Double
    /// ControlNet 1.1's guess mode: residual i of k (the mid one last) scaled by 0.825^(k-1-i), and only the
    /// conditional half of a classifier-free guidance batch steered.
    public var guessMode: Bool

    public init(model: ControlNetModel, hint: Tensor, scale: Float = 1, start: Double = 0, end: Double = 1, guessMode: Bool = false) {
        self.model = model
        self.hint = hint
        self.scale = scale
        self.start = start
        self.end = end
        self.guessMode = guessMode
    }

    /// Whether it acts at step `index` of a run of `count` steps (diffusers' `controlnet_keep`; an img2img run counts
    /// the steps it runs, not the schedule's).
    public func acts(atStep index: Int, of count: Int) -> Bool {
        !(Double(index) / Double(count) < start || Double(index + 1) / Double(count) > end)
    }

    /// The scale of each residual, down ones first, the mid one last.
    func residualScales(count: Int) -> [Float] {
        guard guessMode else { return Array(repeating: scale, count: count) }
        return (0..<count).map { scale * Float(pow(0.825, Double(count - 1 - $0))) }
    }
}

/// The ControlNets of one run, their hints embedded once (the embedding does not depend on the step).
struct PreparedControlNets {
    struct Unit {
        var guidance: ControlNetGuidance
        /// The embedded hint for one batch item, and for a batch of two (classifier-free guidance).
        var single: Tensor
        var pair: Tensor
    }
    var units: [Unit]

    init(_ guidance: [ControlNetGuidance], latentShape: [Int]) throws(ModelError) {
        units = []
        for (n, g) in guidance.enumerated() {
            let d = g.model.conditioningDownscale
            guard g.hint.rank == 4, g.hint.shape[0] == 1, g.hint.shape[2] == latentShape[2] * d, g.hint.shape[3] == latentShape[3] * d else {
                throw .configuration("ControlNet \(n): the hint is \(g.hint.shape), the image needs [1, \(g.model.conditioningChannels), \(latentShape[2] * d), \(latentShape[3] * d)]")
            }
            guard g.model.inChannels == latentShape[1] else {
                throw .configuration("ControlNet \(n) takes \(g.model.inChannels) latent channels, the model makes \(latentShape[1])")
            }
            let single = try g.model.embedHint(g.hint)
            units.append(Unit(guidance: g, single: single, pair: Self.twice(single)))
        }
    }

    var isEmpty: Bool { units.isEmpty }

    /// The summed residuals of the units acting at step `index` of `count`, for a guidance batch [uncond; cond] whose
    /// one half is `input` (the scaled latents, `shape`) and whose text is `context` [2, S, D]; without guidance
    /// (`guided` false) for the cond row alone, `context` [1, S, D]. nil when none acts.
    func residuals(input: [Float], shape: [Int], timestep: Float, context: Tensor, step index: Int,
                   of count: Int, guided: Bool = true) throws(ModelError) -> UNetConditioning? {
        var down: [Tensor]?
        var mid: Tensor?
        for unit in units where unit.guidance.acts(atStep: index, of: count) {
            let g = unit.guidance
            var (d, m): ([Tensor], Tensor)
            if !guided {
                // One row: the ControlNet sees what the UNet sees; guess mode keeps its scales (diffusers does too).
                (d, m) = try g.model(Tensor(shape: shape, data: input), timesteps: [timestep], context: context, embeddedHint: unit.single)
                let scales = g.residualScales(count: d.count + 1)
                d = d.enumerated().map { ControlNetModel.scaled($1, by: scales[$0]) }
                m = ControlNetModel.scaled(m, by: scales[d.count])
            } else if g.guessMode {
                // The conditional half only; the unconditional half gets zero residuals.
                let half = context.shape[1] * context.shape[2]
                let cond = Tensor(shape: [1] + Array(context.shape.dropFirst()), data: Array(context.data[half...]))
                (d, m) = try g.model(Tensor(shape: shape, data: input), timesteps: [timestep], context: cond, embeddedHint: unit.single)
                let scales = g.residualScales(count: d.count + 1)
                d = d.enumerated().map { Self.zeroThenSelf(ControlNetModel.scaled($1, by: scales[$0])) }
                m = Self.zeroThenSelf(ControlNetModel.scaled(m, by: scales[d.count]))
            } else {
                (d, m) = try g.model(Tensor(shape: [2] + Array(shape.dropFirst()), data: input + input), timesteps: [timestep],
                                     context: context, embeddedHint: unit.pair, conditioningScale: g.scale)
            }
            if let sum = down, let sumMid = mid {
                down = zip(sum, d).map { $0 + $1 }
                mid = sumMid + m
            } else {
                (down, mid) = (d, m)
            }
        }
        guard let down, let mid else { return nil }
        return UNetConditioning(downResiduals: down, midResidual: mid)
    }

    /// [x; x] along the batch.
    static func twice(_ x: Tensor) -> Tensor { Tensor(shape: [2 * x.shape[0]] + Array(x.shape.dropFirst()), data: x.data + x.data) }

    /// [0; x] along the batch.
    static func zeroThenSelf(_ x: Tensor) -> Tensor {
        Tensor(shape: [2 * x.shape[0]] + Array(x.shape.dropFirst()), data: [Float](repeating: 0, count: x.count) + x.data)
    }
}
