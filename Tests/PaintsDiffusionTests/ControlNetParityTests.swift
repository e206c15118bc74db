// ControlNetModel against diffusers: tiny SD1.x-layout (12 down residuals, as SD1.5) and SD2.x-layout models with
// random weights everywhere, zero convolutions included, loaded from their diffusers folders by the production loader
// (Tests/Fixtures/controlnet/*, from Tests/Fixtures/controlnet/generate.py).
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct ControlNetParityTests {
    struct Case {
        let model: ControlNetModel
        let io: SafeTensorsFile
        let sample: Tensor, timesteps: [Float], context: Tensor, hint: Tensor, scale: Float

        init(_ name: String) throws {
            let folder = Repository.path("Tests/Fixtures/controlnet/\(name)")
            model = try ControlNetModel(folder: folder)
            io = try SafeTensorsFile(path: folder + "/io.safetensors")
            sample = try io.tensor("sample")
            timesteps = try io.floats("timesteps")
            context = try io.tensor("encoder_hidden_states")
            hint = try io.tensor("controlnet_cond")
            scale = try io.floats("conditioning_scale")[0]
        }

        func run(scale: Float? = nil) throws -> (down: [Tensor], mid: Tensor) {
            try model(sample, timesteps: timesteps, context: context, conditioning: hint, conditioningScale: scale ?? self.scale)
        }

        /// The worst relative error over every residual, printing each.
        func errors(_ out: (down: [Tensor], mid: Tensor), label: String) throws -> Double {
            var worst = 0.0
            for (i, d) in out.down.enumerated() {
                let e = relativeError(d, try io.tensor("down_\(i)"))
                print("\(label) down_\(i) \(d.shape): relative error \(e)")
                worst = max(worst, e)
            }
            let e = relativeError(out.mid, try io.tensor("mid"))
            print("\(label) mid \(out.mid.shape): relative error \(e)")
            return max(worst, e)
        }
    }

    @Test(arguments: [("tiny", 12), ("tiny-sd2", 6)])
    func matchesDiffusers(_ name: String, residuals: Int) throws {
        let c = try Case(name)
        #expect(c.model.downResidualCount == residuals)
        #expect(c.io.names.filter { $0.hasPrefix("down_") }.count == residuals)
        let out = try c.run()
        #expect(out.down.count == residuals)
        #expect(try c.errors(out, label: name) <= 1e-4)
    }

    @Test func theComparisonCanFail() throws {
        // A wrong conditioning scale, or a hint with its channels reversed, moves every residual far past the bound.
        let c = try Case("tiny")
        let wrongScale = try c.run(scale: c.scale * 1.01)
        #expect(try c.errors(wrongScale, label: "tiny, scale x1.01") > 1e-3)
        let sd2 = try Case("tiny-sd2")   // BGR channel order: feeding the hint as RGB must not match.
        let flipped = Tensor(shape: sd2.hint.shape, data: {
            let plane = sd2.hint.shape[2] * sd2.hint.shape[3]
            var d = sd2.hint.data
            for n in 0..<sd2.hint.shape[0] {
                let base = n * 3 * plane
                for i in 0..<plane { d.swapAt(base + i, base + 2 * plane + i) }
            }
            return d
        }())
        let wrongOrder = try sd2.model(sd2.sample, timesteps: sd2.timesteps, context: sd2.context, conditioning: flipped,
                                       conditioningScale: sd2.scale)
        #expect(try sd2.errors(wrongOrder, label: "tiny-sd2, channels reversed") > 1e-3)
    }

    @Test func residualsFitTheUNetsSkipConnections() throws {
        // The residuals have the shapes UNet2DConditionModel's conditioning seam checks, in its order.
        let c = try Case("tiny")
        let out = try c.run()
        #expect(out.down.map { $0.shape[1] } == [8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16])
        #expect(out.down.map { $0.shape[2] } == [8, 8, 8, 4, 4, 4, 2, 2, 2, 1, 1, 1])
        #expect(out.mid.shape == [2, 16, 1, 2])
    }

    @Test func badInputsAndDamagedWeightsAreTypedErrors() throws {
        let c = try Case("tiny")
        // A hint that is not 8x the latent.
        let small = Tensor(zeros: [2, 3, 32, 48])
        #expect(throws: ModelError.self) { try c.model(c.sample, timesteps: c.timesteps, context: c.context, conditioning: small) }
        let folder = Repository.path("Tests/Fixtures/controlnet/tiny")
        let file = try SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))) as? [String: Any])
        let dir = try TemporaryDirectory.make(prefix: "controlnet")
        func damaged(_ name: String, drop: String? = nil, reshape: String? = nil) throws -> WeightStore {
            let tensors = try file.names.filter { $0 != drop }.map { key in
                let shape = try file.entry(key).shape
                return SafeTensorsWriter.Tensor(key, shape: key == reshape ? [shape[0] / 2, 2] + shape.dropFirst(2) : shape,
                                                values: try file.floats(key))
            }
            try SafeTensorsWriter.write(tensors, to: dir + "/\(name).safetensors")
            return try WeightStore(path: dir + "/\(name).safetensors")
        }
        #expect(throws: ModelError.self) { try ControlNetModel(json: json, weights: damaged("mid", drop: "controlnet_mid_block.weight")) }
        #expect(throws: ModelError.self) { try ControlNetModel(json: json, weights: damaged("zero", drop: "controlnet_down_blocks.11.weight")) }
        #expect(throws: ModelError.self) { try ControlNetModel(json: json, weights: damaged("hint", drop: "controlnet_cond_embedding.blocks.5.weight")) }
        #expect(throws: ModelError.self) { try ControlNetModel(json: json, weights: damaged("shape", reshape: "controlnet_down_blocks.3.bias")) }
        var wrongWidths = json
        wrongWidths["conditioning_embedding_out_channels"] = [4, 8, 8, 32]
        #expect(throws: ModelError.self) { try ControlNetModel(json: wrongWidths, weights: WeightStore(path: folder + "/diffusion_pytorch_model.safetensors")) }
    }
}

/// ControlNet 1.1 single files as published (original keys, with and without `control_model.`), configuration read
/// from the tensors, against diffusers on the same weights (Tests/Fixtures/controlnet/single).
@Suite struct ControlNetSingleFileTests {
    let folder = Repository.path("Tests/Fixtures/controlnet/single")

    @Test(arguments: ["control_v11p_sd15_tiny_lineart.safetensors", "tiny_scribble_noprefix.safetensors"])
    func matchesDiffusers(_ file: String) throws {
        #expect(ControlNetCheckpoint.isControlNet(folder + "/" + file))
        let model = try ControlNetCheckpoint.load(path: folder + "/" + file)
        #expect(model.downResidualCount == 12)
        #expect(model.configuration.attentionHeads == [8, 8, 8, 8])
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let (down, mid) = try model(try io.tensor("sample"), timesteps: try io.floats("timesteps"), context: try io.tensor("encoder_hidden_states"),
                                    conditioning: try io.tensor("controlnet_cond"), conditioningScale: try io.floats("conditioning_scale")[0])
        var worst = relativeError(mid, try io.tensor("mid"))
        for (i, d) in down.enumerated() { worst = max(worst, relativeError(d, try io.tensor("down_\(i)"))) }
        print("\(file): worst relative error \(worst)")
        #expect(worst <= 1e-4)
    }

    @Test func otherFilesAreRefusedWithTheReason() throws {
        let dir = try TemporaryDirectory.make(prefix: "controlnet-files")
        try Data("not a pickle".utf8).write(to: URL(fileURLWithPath: dir + "/control_v11p_sd15_lineart.pth"))
        do {
            _ = try ControlNetCheckpoint.load(path: dir + "/control_v11p_sd15_lineart.pth")
            Issue.record("a .pth file loaded")
        } catch {
            #expect("\(error)".contains("safetensors") && "\(error)".contains("pickle"), "\(error)")
        }
        // A diffusers UNet (no hint block, no zero convolutions) is not a ControlNet.
        let unet = Repository.path("Tests/Fixtures/diffusion/unet-sd1/diffusion_pytorch_model.safetensors")
        #expect(!ControlNetCheckpoint.isControlNet(unet))
        #expect(throws: ModelError.self) { try ControlNetCheckpoint.load(path: unet) }
    }
}

/// Whole txt2img and img2img runs with ControlNets against diffusers' StableDiffusionControlNetPipeline and
/// StableDiffusionControlNetImg2ImgPipeline on the tiny SD1 stack (Tests/Fixtures/controlnet/pipeline): a control
/// window, img2img's window over the steps it runs, guess mode (0.825 powers; diffusers patched to them in the fixture
/// script), two ControlNets summed.
@Suite struct ControlNetPipelineParityTests {
    let base = Repository.path("Tests/Fixtures/diffusion")
    let folder = Repository.path("Tests/Fixtures/controlnet/pipeline")

    struct Run {
        var io: SafeTensorsFile
        var settings: [String: Any]
        init(_ io: SafeTensorsFile, _ name: String) throws {
            self.io = io
            settings = try #require(try JSONSerialization.jsonObject(with: Data((io.metadata[name] ?? "{}").utf8)) as? [String: Any])
        }
        func list(_ key: String) -> [Double] {
            if let many = settings[key] as? [Double] { return many }
            return (settings[key] as? Double).map { [$0] } ?? []
        }
    }

    func pipeline(_ io: SafeTensorsFile) throws -> StableDiffusionPipeline {
        let json = try JSONSerialization.jsonObject(with: Data((io.metadata["scheduler"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return StableDiffusionPipeline(
            unet: try UNet2DConditionModel(folder: base + "/unet-sd1"), vae: try AutoencoderKL(folder: base + "/vae"),
            prompts: PromptEncoder(tokenizer: try CLIPTokenizer(folder: base + "/tokenizer"),
                                   textModel: try CLIPTextModel(folder: base + "/clip-sd1")),
            scheduler: try SchedulerConfiguration(json: json))
    }

    /// Runs case `name` with the ControlNets it names; returns the image and the expected one.
    func run(_ name: String, perturb: (inout StableDiffusionPipeline.Request) -> Void = { _ in }) throws -> (Tensor, Tensor) {
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let sd = try pipeline(io)
        let run = try Run(io, name)
        var request = StableDiffusionPipeline.Request(prompt: io.metadata["prompt"] ?? "", negativePrompt: io.metadata["negative_prompt"] ?? "",
                                                      width: 24, height: 32)
        request.steps = Int(io.metadata["steps"] ?? "") ?? 0
        request.guidance = Float(run.settings["guidance_scale"] as? Double ?? 0)
        request.sampler = .dpmSolver2MKarras
        let names = run.settings["controlnets"] as? [String] ?? []
        let scales = run.list("controlnet_conditioning_scale"), starts = run.list("control_guidance_start"), ends = run.list("control_guidance_end")
        let controls = names.count == 1 ? [name + "_control"] : ["a", "b"].prefix(names.count).map { "\(name)_control_\($0)" }
        for (k, net) in names.enumerated() {
            request.controlNets.append(ControlNetGuidance(
                model: try ControlNetModel(folder: folder + "/" + net), hint: try io.tensor(controls[k]), scale: Float(scales[k]),
                start: starts.isEmpty ? 0 : starts[k], end: ends.isEmpty ? 1 : ends[k], guessMode: run.settings["guess_mode"] as? Bool ?? false))
        }
        var noise: ReplayedNoise
        if io.names.contains(name + "_source") {
            request.source = try io.tensor(name + "_source")
            request.strength = Float(run.settings["strength"] as? Double ?? 0)
            noise = ReplayedNoise([try io.floats(name + "_noise")])
        } else {
            noise = ReplayedNoise([try io.floats(name + "_latents")])
        }
        perturb(&request)
        return (try sd.generate(request, noise: &noise), try io.tensor(name + "_image"))
    }

    @Test(arguments: ["txt2img", "img2img", "guess", "multi", "nocfg", "nocfg_guess"])
    func matchesDiffusers(_ name: String) throws {
        let (image, expected) = try run(name)
        let error = relativeError(image, expected)
        print("controlnet pipeline \(name): relative error \(error)")
        #expect(error <= 1e-3)
    }

    @Test func theComparisonCanFail() throws {
        // The control window one step off, guess mode's scales as plain ones, and a ControlNet dropped each move the
        // picture past the bound.
        let (late, expected) = try run("txt2img") { $0.controlNets[0].end = 1 }
        #expect(relativeError(late, expected) > 1e-3)
        let (plain, expectedGuess) = try run("guess") { $0.controlNets[0].guessMode = false }
        #expect(relativeError(plain, expectedGuess) > 1e-3)
        let (one, expectedMulti) = try run("multi") { $0.controlNets.removeLast() }
        #expect(relativeError(one, expectedMulti) > 1e-3)
    }

    @Test func aHintOfTheWrongSizeIsATypedError() throws {
        #expect(throws: ModelError.self) {
            _ = try run("txt2img") { $0.controlNets[0].hint = Tensor(zeros: [1, 3, 16, 12]) }
        }
    }
}

/// An attention processor that records the batch of every query it sees (the UNet's rows per call).
final class RowRecorder: AttentionProcessor, @unchecked Sendable {
    var rows: [Int] = []
    func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int) throws(ModelError) -> Tensor {
        rows.append(query.shape[0])
        return try ScaledDotProductAttention().attention(query: query, key: key, value: value, heads: heads)
    }
}

@Suite struct GuidanceRowsTests {
    /// Guidance 1 runs the prompt's row alone, one UNet call per step, ControlNet included; above 1 a batch of two.
    @Test(arguments: [(Float(1), 1), (Float(7.5), 2)])
    func theUNetRunsOneRowWithoutGuidance(_ guidance: Float, rows: Int) throws {
        let base = Repository.path("Tests/Fixtures/diffusion")
        var unet = try UNet2DConditionModel(folder: base + "/unet-sd1")
        let recorder = RowRecorder()
        try unet.updateTransformerBlocks { (k, block) throws(ModelError) in if k == 0 { block.selfAttention.processor = recorder } }
        let sd = StableDiffusionPipeline(unet: unet, vae: try AutoencoderKL(folder: base + "/vae"),
                                         prompts: PromptEncoder(tokenizer: try CLIPTokenizer(folder: base + "/tokenizer"),
                                                                textModel: try CLIPTextModel(folder: base + "/clip-sd1")),
                                         scheduler: SchedulerConfiguration())
        var request = StableDiffusionPipeline.Request(prompt: "a cat", width: 24, height: 32)
        request.steps = 3
        request.guidance = guidance
        request.controlNets = [ControlNetGuidance(model: try ControlNetModel(folder: Repository.path("Tests/Fixtures/controlnet/pipeline/controlnet-a")),
                                                  hint: Tensor(zeros: [1, 3, 32, 24]))]
        var noise = SeededNormalNoise(seed: 1)
        _ = try sd.generate(request, noise: &noise)
        #expect(recorder.rows == Array(repeating: rows, count: 3), "\(recorder.rows)")
    }
}
