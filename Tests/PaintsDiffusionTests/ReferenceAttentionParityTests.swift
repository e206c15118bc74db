// Reference-only (no extra weights) against the diffusers community pipeline stable_diffusion_reference.py (and its
// ControlNet sibling), restated on diffusers' tiny SD1 UNet (Tests/Fixtures/reference-only, from its generate.py): one
// READ pass after a WRITE pass with each option, and whole txt2img runs with the reference's per-step noise replayed.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct ReferenceAttentionParityTests {
    let base = Repository.path("Tests/Fixtures/reference-only")
    let diffusion = Repository.path("Tests/Fixtures/diffusion")

    struct UNetCase {
        let io: SafeTensorsFile
        let unet: UNet2DConditionModel
        let cases: [String: [String: Any]]

        init(_ base: String, _ diffusion: String) throws {
            io = try SafeTensorsFile(path: base + "/unet/io.safetensors")
            unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
            cases = try #require(try JSONSerialization.jsonObject(with: Data((io.metadata["cases"] ?? "{}").utf8)) as? [String: [String: Any]])
        }

        func options(_ name: String) throws -> (ReferenceAttentionOptions, cfg: Bool) {
            let c = try #require(cases[name])
            let options = ReferenceAttentionOptions(
                attention: try #require(c["reference_attn"] as? Bool), adain: try #require(c["reference_adain"] as? Bool),
                attentionWeight: try #require(c["attention_auto_machine_weight"] as? Double),
                adainWeight: try #require(c["gn_auto_machine_weight"] as? Double),
                styleFidelity: Float(try #require(c["style_fidelity"] as? Double)))
            return (options, try #require(c["cfg"] as? Bool))
        }

        /// One write pass of the reference sample, then the read pass of the sample.
        func run(_ options: ReferenceAttentionOptions, cfg: Bool) throws -> Tensor {
            let reference = try ReferenceAttention(options: options, unconditionalRows: cfg ? 1 : 0)
            let timesteps = try io.floats("timestep"), context = try io.tensor("encoder_hidden_states")
            let written = try reference.writer(unet)(try io.tensor("write_sample"), timesteps: timesteps, context: context)
            // The write pass only records: its output is the plain UNet's.
            let plain = try unet(try io.tensor("write_sample"), timesteps: timesteps, context: context)
            #expect(written.data == plain.data)
            return try reference.reader(unet)(try io.tensor("sample"), timesteps: timesteps, context: context)
        }
    }

    static let unetCases = ["attn", "adain", "both", "both_sf0", "both_sf1", "gated", "sparse", "nocfg"]

    @Test(arguments: unetCases)
    func aReadPassMatchesTheCommunityPipeline(_ name: String) throws {
        let c = try UNetCase(base, diffusion)
        let (options, cfg) = try c.options(name)
        let out = try c.run(options, cfg: cfg)
        let error = relativeError(out, try c.io.tensor("output_\(name)"))
        print("reference-only UNet pass \(name): relative error \(error)")
        #expect(error <= 1e-4)
    }

    @Test func theUNetComparisonCanFail() throws {
        // Without the reference, with the other style fidelity, with attention gated one block tighter, or with the
        // unconditional rows not told apart, the read pass is far from the community pipeline's.
        let c = try UNetCase(base, diffusion)
        let plain = try c.unet(try c.io.tensor("sample"), timesteps: try c.io.floats("timestep"), context: try c.io.tensor("encoder_hidden_states"))
        #expect(relativeError(plain, try c.io.tensor("output_plain")) <= 1e-4)
        #expect(relativeError(plain, try c.io.tensor("output_both")) > 1e-2)
        var (options, _) = try c.options("both")
        options.styleFidelity = 0.45
        #expect(relativeError(try c.run(options, cfg: true), try c.io.tensor("output_both")) > 1e-3)
        (options, _) = try c.options("gated")
        options.attentionWeight = 0.25
        #expect(relativeError(try c.run(options, cfg: true), try c.io.tensor("output_gated")) > 1e-3)
        (options, _) = try c.options("both")
        #expect(relativeError(try c.run(options, cfg: false), try c.io.tensor("output_both")) > 1e-3)
        // AdaIN's gate: 0.99 leaves out the blocks whose weight is 1 (down_blocks.1, up_blocks.1).
        options.adainWeight = 0.99
        #expect(relativeError(try c.run(options, cfg: true), try c.io.tensor("output_both")) > 1e-3)
    }

    @Test func theAttentionOrderIsTheCommunityPipelines() throws {
        // Blocks by width, widest first, the depth-first order (down, up, mid) within a width: the mid block first.
        let c = try UNetCase(base, diffusion)
        let order = try #require(try JSONSerialization.jsonObject(with: Data((c.io.metadata["attention_order"] ?? "[]").utf8)) as? [String])
        #expect(order.first == "mid_block.attentions.0.transformer_blocks.0")
        #expect(c.unet.transformerBlockCount == order.count)
    }

    @Test func readingBeforeWritingAndBadOptionsAreTypedErrors() throws {
        let c = try UNetCase(base, diffusion)
        let reference = try ReferenceAttention(unconditionalRows: 1)
        #expect(throws: ModelError.self) {
            try reference.reader(c.unet)(try c.io.tensor("sample"), timesteps: try c.io.floats("timestep"), context: try c.io.tensor("encoder_hidden_states"))
        }
        #expect(throws: ModelError.self) { try ReferenceAttention(options: ReferenceAttentionOptions(attention: false, adain: false), unconditionalRows: 1) }
        #expect(throws: ModelError.self) { try ReferenceAttention(options: ReferenceAttentionOptions(styleFidelity: .nan), unconditionalRows: 1) }
    }

    // --- whole runs ---------------------------------------------------------------------------------------------

    func pipeline(_ io: SafeTensorsFile) throws -> StableDiffusionPipeline {
        let json = try JSONSerialization.jsonObject(with: Data((io.metadata["scheduler"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return StableDiffusionPipeline(
            unet: try UNet2DConditionModel(folder: diffusion + "/unet-sd1"), vae: try AutoencoderKL(folder: diffusion + "/vae"),
            prompts: PromptEncoder(tokenizer: try CLIPTokenizer(folder: diffusion + "/tokenizer"),
                                   textModel: try CLIPTextModel(folder: diffusion + "/clip-sd1")),
            scheduler: try SchedulerConfiguration(json: json))
    }

    /// Runs `name` as the fixture describes it; returns the image and the expected one.
    func run(_ name: String, perturb: (inout StableDiffusionPipeline.Request) throws -> Void = { _ in }) throws -> (Tensor, Tensor) {
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let runs = try #require(try JSONSerialization.jsonObject(with: Data((io.metadata["runs"] ?? "{}").utf8)) as? [String: [String: Any]])
        let spec = try #require(runs[name])
        var request = StableDiffusionPipeline.Request(prompt: io.metadata["prompt"] ?? "", negativePrompt: io.metadata["negative_prompt"] ?? "",
                                                      width: Int(io.metadata["width"] ?? "") ?? 0, height: Int(io.metadata["height"] ?? "") ?? 0)
        request.steps = Int(io.metadata["steps"] ?? "") ?? 0
        request.guidance = Float(io.metadata["guidance"] ?? "") ?? 0
        request.sampler = .dpmSolver2MKarras
        request.referenceOnly = ReferenceAttentionGuidance(reference: .image(try io.tensor("reference")), options: ReferenceAttentionOptions(
            attention: try #require(spec["reference_attn"] as? Bool), adain: try #require(spec["reference_adain"] as? Bool),
            attentionWeight: try #require(spec["attention_auto_machine_weight"] as? Double),
            adainWeight: try #require(spec["gn_auto_machine_weight"] as? Double),
            styleFidelity: Float(try #require(spec["style_fidelity"] as? Double))))
        if let net = spec["controlnet"] as? String {
            request.controlNets = [ControlNetGuidance(model: try ControlNetModel(folder: Repository.path("Tests/Fixtures/controlnet/pipeline/" + net)),
                                                      hint: try io.tensor("control"),
                                                      scale: Float(try #require(spec["controlnet_conditioning_scale"] as? Double)))]
        }
        try perturb(&request)
        let steps = request.steps, refNoise = try io.floats("ref_noise"), per = refNoise.count / max(1, steps)
        var noise = ReplayedNoise([try io.floats("latents")] + (0..<steps).map { Array(refNoise[($0 * per)..<(($0 + 1) * per)]) })
        return (try pipeline(io).generate(request, noise: &noise), try io.tensor("image_\(name)"))
    }

    @Test(arguments: ["defaults", "attn_sf1", "controlnet"])
    func wholeRunsMatchTheCommunityPipeline(_ name: String) throws {
        let (image, expected) = try run(name)
        let error = relativeError(image, expected)
        print("reference-only pipeline \(name): relative error \(error)")
        #expect(error <= 1e-3)
    }

    @Test func theReferenceLatentIsThePosteriorMean() throws {
        // The reference given as its latent (the posterior mean times the scaling factor) gives the same run.
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let (image, expected) = try run("defaults") { $0.referenceOnly?.reference = .latents(try io.tensor("reference_latents")) }
        #expect(relativeError(image, expected) <= 1e-3)
    }

    @Test func theRunComparisonCanFail() throws {
        // Without the reference, without the ControlNet, with AdaIN dropped, or with the write pass given the
        // ControlNet's view (the reference image shifted), each run lands far from the community pipeline's picture.
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let (_, expected) = try run("controlnet")
        let (noControl, _) = try run("controlnet") { $0.controlNets = [] }
        #expect(relativeError(noControl, expected) > 1e-2)
        #expect(relativeError(noControl, try io.tensor("image_defaults")) <= 1e-3)
        let (noAdaIN, expectedDefaults) = try run("defaults") { $0.referenceOnly?.options.adain = false }
        #expect(relativeError(noAdaIN, expectedDefaults) > 1e-2)
        let (fidelity, _) = try run("defaults") { $0.referenceOnly?.options.styleFidelity = 0.4 }
        #expect(relativeError(fidelity, expectedDefaults) > 1e-3)
        // The control-only and plain images are not the reference runs' either.
        #expect(relativeError(try io.tensor("image_control_only"), expected) > 1e-2)
        #expect(relativeError(try io.tensor("image_plain"), expectedDefaults) > 1e-2)
    }

    @Test func aReferenceOfTheWrongSizeIsATypedError() throws {
        #expect(throws: ModelError.self) {
            _ = try run("defaults") { $0.referenceOnly?.reference = .image(Tensor(zeros: [1, 3, 16, 12])) }
        }
        #expect(throws: ModelError.self) {
            _ = try run("defaults") { $0.referenceOnly?.reference = .latents(Tensor(zeros: [1, 4, 4, 3])) }
        }
    }

    @Test func combinesWithAnImagePrompt() throws {
        // Reference-only and an IP-Adapter in one run: it runs, and each changes the picture (no fixture: the
        // community pipeline has no IP-Adapter path; the write pass sees the image tokens, as WebUI ControlNet's does).
        let ip = Repository.path("Tests/Fixtures/ip-adapter")
        let ipIO = try SafeTensorsFile(path: ip + "/pipeline/io.safetensors")
        let prompt = ImagePromptGuidance(adapter: try IPAdapter(path: ip + "/linear/ip-adapter_tiny.safetensors"),
                                         embeds: try ipIO.tensor("image_embeds"), negativeEmbeds: try ipIO.tensor("negative_image_embeds"),
                                         scale: 0.7)
        let (both, referenceOnly) = try run("defaults") { $0.imagePrompts = [prompt] }
        #expect(both.data.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
        #expect(relativeError(both, referenceOnly) > 1e-2)
    }
}
