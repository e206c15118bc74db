// An original-layout (LDM) single-file checkpoint of the tiny SD1 stack: the production loader reads it to the same
// models as the diffusers folders (diffusers itself converts the file back to those weights; see generate.py).
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct SingleFileCheckpointTests {
    let base = Repository.path("Tests/Fixtures/diffusion")

    @Test func componentsEqualTheDiffusersFolders() throws {
        let file = try SafeTensorsFile(path: base + "/single-file-sd1.safetensors")
        #expect(LDMCheckpoint.isLDM(file))
        #expect(!LDMCheckpoint.isLDM(try SafeTensorsFile(path: base + "/unet-sd1/diffusion_pytorch_model.safetensors")))

        let unetIO = try SafeTensorsFile(path: base + "/unet-sd1/io.safetensors")
        let fromFolder = try UNet2DConditionModel(folder: base + "/unet-sd1")
        let fromFile = try UNet2DConditionModel(configuration: UNetConfiguration(folder: base + "/unet-sd1"),
                                                weights: LDMCheckpoint.unet(file))
        let (x, t, c) = (try unetIO.tensor("sample"), try unetIO.floats("timesteps"), try unetIO.tensor("encoder_hidden_states"))
        #expect(try fromFile(x, timesteps: t, context: c) == fromFolder(x, timesteps: t, context: c))

        let vaeIO = try SafeTensorsFile(path: base + "/vae/io.safetensors")
        let vae = try AutoencoderKL(configuration: VAEConfiguration(folder: base + "/vae"), weights: LDMCheckpoint.vae(file))
        #expect(try vae.decode(vaeIO.tensor("latents")) == AutoencoderKL(folder: base + "/vae").decode(vaeIO.tensor("latents")))
        #expect(try vae.encode(vaeIO.tensor("image")).mean == AutoencoderKL(folder: base + "/vae").encode(vaeIO.tensor("image")).mean)

        let text = try CLIPTextModel(configuration: CLIPTextConfiguration(folder: base + "/clip-sd1"),
                                     weights: LDMCheckpoint.textEncoder(file))
        let ids = [Array(repeating: 320, count: 77)]
        #expect(try text.encode(ids) == CLIPTextModel(folder: base + "/clip-sd1").encode(ids))
    }

    @Test func aTruncatedCheckpointIsATypedError() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: base + "/single-file-sd1.safetensors"))
        let path = try TemporaryDirectory.make(prefix: "ldm") + "/cut.safetensors"
        try data.prefix(data.count - 1000).write(to: URL(fileURLWithPath: path))
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: path) }
    }
}

@Suite struct OpenCLIPSingleFileTests {
    @Test func sd2TextEncoderMatchesTransformers() throws {
        // An OpenCLIP-layout text encoder (fused q/k/v, one block more than SD2 uses), checked against transformers'
        // penultimate hidden states through the final layer norm (what SD2 pipelines feed the UNet).
        let base = Repository.path("Tests/Fixtures/diffusion")
        let file = try SafeTensorsFile(path: base + "/single-file-openclip.safetensors")
        let io = try SafeTensorsFile(path: base + "/single-file-openclip-io.safetensors")
        #expect(LDMCheckpoint.hasOpenCLIPTextEncoder(file))
        let (weights, configuration) = try LDMCheckpoint.openCLIPTextEncoder(file)
        #expect(configuration.layers == 2 && configuration.heads == 2 && configuration.activation == "gelu")
        let model = try CLIPTextModel(configuration: configuration, weights: weights)
        let ids = try io.integers("input_ids")
        let out = try model.encode([Array(ids[0..<77]), Array(ids[77..<154])])
        let error = relativeError(out, try io.tensor("penultimate_normed"))
        print("openclip single file: relative error \(error)")
        #expect(error <= 1e-4)
    }
}

@Suite struct SingleFileInferenceTests {
    let base = Repository.path("Tests/Fixtures/diffusion")

    @Test func configurationsComeFromTheTensors() throws {
        let checkpoint = try SingleFileCheckpoint(path: base + "/single-file-sd1.safetensors")
        let unet = try UNetConfiguration(folder: base + "/unet-sd1"), vae = try VAEConfiguration(folder: base + "/vae")
        let text = try CLIPTextConfiguration(folder: base + "/clip-sd1")
        #expect(checkpoint.family == "sd1")
        #expect(checkpoint.unet.blockOutChannels == unet.blockOutChannels && checkpoint.unet.layersPerBlock == unet.layersPerBlock)
        #expect(checkpoint.unet.downBlockTypes == unet.downBlockTypes && checkpoint.unet.upBlockTypes == unet.upBlockTypes)
        #expect(checkpoint.unet.crossAttentionDimension == unet.crossAttentionDimension)
        #expect(checkpoint.unet.useLinearProjection == unet.useLinearProjection)
        #expect(checkpoint.unet.attentionHeads == [8, 8])  // the SD1 family rule (shapes cannot tell heads)
        #expect(checkpoint.vae.blockOutChannels == vae.blockOutChannels && checkpoint.vae.layersPerBlock == vae.layersPerBlock)
        #expect(checkpoint.vae.latentChannels == vae.latentChannels && checkpoint.vae.useQuantConv == vae.useQuantConv)
        #expect(checkpoint.textEncoder.hiddenSize == text.hiddenSize && checkpoint.textEncoder.layers == text.layers)
        #expect(checkpoint.textEncoder.activation == "quick_gelu" && checkpoint.scheduler.predictionType == .epsilon)
        #expect(!SingleFileCheckpoint.isCheckpoint(base + "/unet-sd1/diffusion_pytorch_model.safetensors"))
        #expect(SingleFileCheckpoint.isCheckpoint(base + "/single-file-sd1.safetensors"))
    }

    @Test func aWholeRunFromTheSingleFileMatchesDiffusers() throws {
        // The facts shapes cannot tell (the tiny models' head counts and norm groups) set as a user would for an
        // unusual model; everything else as inferred. The run is the pipeline parity case of the diffusers folders.
        var checkpoint = try SingleFileCheckpoint(path: base + "/single-file-sd1.safetensors")
        checkpoint.unet = try UNetConfiguration(folder: base + "/unet-sd1")
        checkpoint.vae = try VAEConfiguration(folder: base + "/vae")
        checkpoint.textEncoder = try CLIPTextConfiguration(folder: base + "/clip-sd1")
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let json = try JSONSerialization.jsonObject(with: Data((io.metadata["scheduler"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        checkpoint.scheduler = try SchedulerConfiguration(json: json)
        let sd = try checkpoint.pipeline(tokenizerFolder: base + "/tokenizer")
        var request = StableDiffusionPipeline.Request(prompt: io.metadata["prompt"] ?? "", negativePrompt: io.metadata["negative_prompt"] ?? "",
                                                      width: 24, height: 32)
        request.steps = 5
        var noise = ReplayedNoise([try io.floats("latents")])
        let error = relativeError(try sd.generate(request, noise: &noise), try io.tensor("image"))
        print("single-file txt2img: relative error \(error)")
        #expect(error <= 1e-3)
    }
}
