// IP-Adapter against diffusers on the tiny SD1 UNet (Tests/Fixtures/ip-adapter, from its generate.py): the published
// file layouts (ip-adapter_sd15's linear projection, Plus's resampler, the Style Components layout with values only),
// image tokens and a UNet pass with them; whole txt2img runs with precomputed image embeddings.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct IPAdapterParityTests {
    let base = Repository.path("Tests/Fixtures/ip-adapter")
    let diffusion = Repository.path("Tests/Fixtures/diffusion")

    static let cases: [(String, String, Int)] = [("linear", "ip-adapter_tiny", 4), ("plus", "ip-adapter-plus_tiny", 16),
                                                  ("style", "ip-adapter-style_tiny", 1)]

    @Test(arguments: cases)
    func tokensAndAUNetPassMatchDiffusers(_ kind: String, _ file: String, tokens: Int) throws {
        let adapter = try IPAdapter(path: "\(base)/\(kind)/\(file).safetensors")
        #expect(adapter.tokenCount == tokens && adapter.tokenWidth == 32 && adapter.layerCount == 4)
        #expect(adapter.takesHiddenStates == (kind == "plus"))
        let io = try SafeTensorsFile(path: "\(base)/\(kind)/io.safetensors")
        let imageTokens = try adapter.imageTokens(try io.tensor("image_embeds"))
        let tokenError = relativeError(imageTokens, try io.tensor("image_tokens"))
        let unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        let scale = try io.floats("scale")[0]
        let steered = try adapter.applied(to: unet, tokens: imageTokens, scale: scale)
        let sample = try io.tensor("sample"), timesteps = try io.floats("timesteps"), context = try io.tensor("encoder_hidden_states")
        let output = try steered(sample, timesteps: timesteps, context: context)
        let error = relativeError(output, try io.tensor("output"))
        print("ip-adapter \(kind): image tokens relative error \(tokenError), UNet output \(error)")
        #expect(tokenError <= 1e-4 && error <= 1e-4)
        // The comparison can fail: the plain UNet, and the adapter at another scale, are far from diffusers' output.
        let plain = try unet(sample, timesteps: timesteps, context: context)
        #expect(relativeError(plain, try io.tensor("output_no_adapter")) <= 1e-4)
        #expect(relativeError(plain, try io.tensor("output")) > 1e-2)
        let other = try adapter.applied(to: unet, tokens: imageTokens, scale: scale * 0.9)(sample, timesteps: timesteps, context: context)
        #expect(relativeError(other, try io.tensor("output")) > 1e-3)
    }

    func pipeline(_ io: SafeTensorsFile) throws -> StableDiffusionPipeline {
        let json = try JSONSerialization.jsonObject(with: Data((io.metadata["scheduler"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return StableDiffusionPipeline(
            unet: try UNet2DConditionModel(folder: diffusion + "/unet-sd1"), vae: try AutoencoderKL(folder: diffusion + "/vae"),
            prompts: PromptEncoder(tokenizer: try CLIPTokenizer(folder: diffusion + "/tokenizer"),
                                   textModel: try CLIPTextModel(folder: diffusion + "/clip-sd1")),
            scheduler: try SchedulerConfiguration(json: json))
    }

    @Test(arguments: [("linear", "ip-adapter_tiny", ""), ("plus", "ip-adapter-plus_tiny", "plus_")])
    func wholeRunsMatchDiffusers(_ kind: String, _ file: String, _ prefix: String) throws {
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let sd = try pipeline(io)
        var request = StableDiffusionPipeline.Request(prompt: io.metadata["prompt"] ?? "", negativePrompt: io.metadata["negative_prompt"] ?? "",
                                                      width: Int(io.metadata["width"] ?? "") ?? 0, height: Int(io.metadata["height"] ?? "") ?? 0)
        request.steps = Int(io.metadata["steps"] ?? "") ?? 0
        request.guidance = Float(io.metadata["guidance"] ?? "") ?? 0
        request.sampler = .dpmSolver2MKarras
        request.imagePrompts = [ImagePromptGuidance(adapter: try IPAdapter(path: "\(base)/\(kind)/\(file).safetensors"),
                                                  embeds: try io.tensor(prefix + "image_embeds"),
                                                  negativeEmbeds: try io.tensor(prefix + "negative_image_embeds"),
                                                  scale: Float(io.metadata["scale"] ?? "") ?? 0)]
        var noise = ReplayedNoise([try io.floats("latents")])
        let image = try sd.generate(request, noise: &noise)
        let error = relativeError(image, try io.tensor(prefix + "image"))
        print("ip-adapter \(kind) pipeline: relative error \(error)")
        #expect(error <= 1e-3)
        #expect(relativeError(image, try io.tensor("image_no_adapter")) > 1e-2)
    }

    @Test func damagedFilesAndWrongInputsAreTypedErrors() throws {
        let adapter = try IPAdapter(path: base + "/linear/ip-adapter_tiny.safetensors")
        #expect(throws: ModelError.self) { try adapter.imageTokens(Tensor(zeros: [1, 23])) }
        #expect(throws: ModelError.self) { try adapter.imageTokens(Tensor(zeros: [1, 9, 24])) }
        let unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        #expect(throws: ModelError.self) { try adapter.applied(to: unet, tokens: Tensor(zeros: [2, 3, 32]), scale: 1) }
        // A UNet with a different number of cross-attention layers.
        let sd2 = try UNet2DConditionModel(folder: diffusion + "/unet-sd2")
        #expect(throws: ModelError.self) { try adapter.applied(to: sd2, tokens: Tensor(zeros: [2, 4, 32]), scale: 1) }
        // Not an adapter at all.
        #expect(throws: ModelError.self) { try IPAdapter(path: diffusion + "/unet-sd1/diffusion_pytorch_model.safetensors") }
    }
}
