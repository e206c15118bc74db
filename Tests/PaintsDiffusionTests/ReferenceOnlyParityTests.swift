// SDRO against its reference code restated on diffusers (Tests/Fixtures/sdro/generate.py): the UNet with the blueprint
// encoder loaded from the published folder layout by the production loader, one pass with a blueprint, and a whole
// reference-only run (UniPC from the folder's DDPM config, v-prediction, no CFG) from replayed noise.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct ReferenceOnlyParityTests {
    let base = Repository.path("Tests/Fixtures/sdro")

    @Test func unetWithABlueprintMatchesTheReference() throws {
        let unet = try UNet2DConditionModel(folder: base + "/model/unet")
        #expect(unet.takesBlueprint && unet.blueprintDownscale == 8)
        let io = try SafeTensorsFile(path: base + "/unet-io.safetensors")
        let (x, t, c, blueprint) = (try io.tensor("sample"), try io.floats("timesteps"), try io.tensor("encoder_hidden_states"),
                                    try io.tensor("controlnet_cond"))
        let embedding = try unet.embedBlueprint(blueprint)
        let embeddingError = relativeError(embedding, try io.tensor("blueprint_embedding"))
        let out = try unet(x, timesteps: t, context: c, conditioning: UNetConditioning(blueprint: blueprint))
        let error = relativeError(out, try io.tensor("output"))
        print("sdro unet: relative error \(error) (blueprint embedding \(embeddingError))")
        #expect(embeddingError <= 1e-5)
        #expect(error <= 1e-4)
        // The embedding given once is the same pass.
        #expect(try unet(x, timesteps: t, context: c, conditioning: UNetConditioning(blueprintEmbedding: embedding)) == out)
        // A UNet with the encoder needs a blueprint; one of the wrong size, or a blueprint for a plain UNet, is refused.
        #expect(throws: ModelError.self) { try unet(x, timesteps: t, context: c) }
        let half = Tensor(zeros: [2, 3, 32, 48])
        #expect(throws: ModelError.self) { try unet(x, timesteps: t, context: c, conditioning: UNetConditioning(blueprint: half)) }
        let plain = try UNet2DConditionModel(folder: Repository.path("Tests/Fixtures/diffusion/unet-sd1"))
        #expect(!plain.takesBlueprint && plain.blueprintDownscale == nil)
        let sd1 = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/diffusion/unet-sd1/io.safetensors"))
        #expect(throws: ModelError.self) {
            try plain(sd1.tensor("sample"), timesteps: sd1.floats("timesteps"), context: sd1.tensor("encoder_hidden_states"),
                      conditioning: UNetConditioning(blueprint: Tensor(zeros: [2, 3, 128, 96])))
        }
    }

    @Test func wholeRunMatchesTheReferencePipeline() throws {
        let sdro = try StableDiffusionReferenceOnlyPipeline(folder: base + "/model")
        #expect(sdro.schedulerConfiguration.predictionType == .vPrediction && sdro.schedulerConfiguration.timestepSpacing == .leading)
        let io = try SafeTensorsFile(path: base + "/pipeline-io.safetensors")
        var request = StableDiffusionReferenceOnlyPipeline.Request(context: try io.tensor("reference_hidden_states"),
                                                                   blueprint: try io.tensor("blueprint"))
        request.steps = Int(io.metadata["steps"] ?? "") ?? 0
        #expect(request.sampler == .uniPC && request.steps == 5)
        let timesteps = try JSONSerialization.jsonObject(with: Data((io.metadata["timesteps"] ?? "[]").utf8)) as? [Int]
        #expect(UniPCMultistepScheduler(sdro.schedulerConfiguration, steps: 5).timesteps.map { Int($0) } == timesteps)
        var noise = ReplayedNoise([try io.floats("latents")])
        var steps: [Int] = []
        let image = try sdro.generate(request, noise: &noise) { step, _, _ in steps.append(step) }
        let error = relativeError(image, try io.tensor("image"))
        print("sdro whole run: relative error \(error)")
        #expect(error <= 1e-3)
        #expect(steps == [1, 2, 3, 4, 5])
    }

    @Test func foldersAreRecognisedByTheirBlueprintEncoder() throws {
        #expect(StableDiffusionReferenceOnlyPipeline.isModelFolder(base + "/model"))
        // Neither the sd engine's pipeline listing nor Paints-UNDO's claims it: it has no text encoder.
        #expect(!StableDiffusionModel.isPipelineFolder(base + "/model"))
        #expect(!PaintsUndoPipeline.isModelFolder(base + "/model"))
        #expect(StableDiffusionReferenceOnlyPipeline.residentBytes(folder: base + "/model") > 1_000_000)
        // Without its scheduler config (SD2.1's betas, v-prediction) it is not taken for one, nor loaded.
        let partial = try TemporaryDirectory.make(prefix: "sdro")
        for part in ["model_index.json", "unet", "vae", "image_encoder"] {
            try FileManager.default.createSymbolicLink(atPath: partial + "/" + part, withDestinationPath: base + "/model/" + part)
        }
        #expect(!StableDiffusionReferenceOnlyPipeline.isModelFolder(partial))
        #expect(throws: ModelError.self) { try StableDiffusionReferenceOnlyPipeline(folder: partial) }
        // A plain SD UNet is not an SDRO model, nor can the pipeline be built on it.
        let plain = try UNet2DConditionModel(folder: Repository.path("Tests/Fixtures/diffusion/unet-sd2"))
        #expect(throws: ModelError.self) {
            try StableDiffusionReferenceOnlyPipeline(unet: plain, vae: try AutoencoderKL(folder: base + "/model/vae"),
                                                     scheduler: SchedulerConfiguration())
        }
    }
}

extension ReferenceOnlyParityTests {
    /// The whole run from the reference picture itself: the folder's CLIP image processor and fine-tuned vision tower
    /// make the context.
    @Test func wholeRunFromTheReferencePicture() throws {
        let sdro = try StableDiffusionReferenceOnlyPipeline(folder: base + "/model")
        let io = try SafeTensorsFile(path: base + "/pipeline-io.safetensors")
        let reference = try Repository.image("Tests/Fixtures/sdro/reference.png")
        let context = try sdro.referenceContext(pixels: reference.pixels, width: reference.width, height: reference.height, channels: 4)
        let contextError = relativeError(context, try io.tensor("reference_hidden_states"))
        var request = StableDiffusionReferenceOnlyPipeline.Request(context: context, blueprint: try io.tensor("blueprint"))
        request.steps = 5
        var noise = ReplayedNoise([try io.floats("latents")])
        let error = relativeError(try sdro.generate(request, noise: &noise), try io.tensor("image"))
        print("sdro from the reference picture: context relative error \(contextError), image \(error)")
        #expect(contextError <= 1e-4)
        #expect(error <= 1e-3)
    }
}
