// Whole txt2img and img2img runs against diffusers' pipelines with the tiny SD1-layout components.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct PipelineParityTests {
    let base = Repository.path("Tests/Fixtures/diffusion")

    func pipeline(_ io: SafeTensorsFile) throws -> StableDiffusionPipeline {
        let json = try JSONSerialization.jsonObject(with: Data((io.metadata["scheduler"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return StableDiffusionPipeline(
            unet: try UNet2DConditionModel(folder: base + "/unet-sd1"), vae: try AutoencoderKL(folder: base + "/vae"),
            prompts: PromptEncoder(tokenizer: try CLIPTokenizer(folder: base + "/tokenizer"),
                                   textModel: try CLIPTextModel(folder: base + "/clip-sd1")),
            scheduler: try SchedulerConfiguration(json: json))
    }

    @Test func txt2imgAndImg2imgMatchDiffusers() throws {
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let sd = try pipeline(io)
        var request = StableDiffusionPipeline.Request(prompt: io.metadata["prompt"] ?? "", negativePrompt: io.metadata["negative_prompt"] ?? "",
                                                      width: 24, height: 32)
        request.steps = 5
        request.guidance = 7.5
        request.sampler = .dpmSolver2MKarras
        var noise = ReplayedNoise([try io.floats("latents")])
        var steps: [Int] = []
        let image = try sd.generate(request, noise: &noise) { step, _, _ in steps.append(step) }
        let error = relativeError(image, try io.tensor("image"))
        print("pipeline txt2img: relative error \(error)")
        #expect(error <= 1e-3)
        #expect(steps == [1, 2, 3, 4, 5])

        var i2i = request
        i2i.source = try io.tensor("image").map { $0 * 2 - 1 }
        i2i.strength = 0.6
        i2i.guidance = 5
        var noise2 = ReplayedNoise([try io.floats("img2img_noise")])
        let image2 = try sd.generate(i2i, noise: &noise2)
        let error2 = relativeError(image2, try io.tensor("img2img_image"))
        print("pipeline img2img: relative error \(error2)")
        #expect(error2 <= 1e-3)
    }

    @Test func cancellationStopsBetweenSteps() throws {
        struct Stop: Error {}
        let io = try SafeTensorsFile(path: base + "/pipeline/io.safetensors")
        let sd = try pipeline(io)
        var request = StableDiffusionPipeline.Request(prompt: "a cat", width: 24, height: 32)
        request.steps = 4
        var noise = SeededNormalNoise(seed: 1)
        var seen = 0
        #expect(throws: Stop.self) {
            try sd.generate(request, noise: &noise) { step, _, _ in
                seen = step
                if step == 2 { throw Stop() }
            }
        }
        #expect(seen == 2)
    }

    @Test func seededNoiseIsReproducibleAndNormal() {
        var a = SeededNormalNoise(seed: 42), b = SeededNormalNoise(seed: 42), c = SeededNormalNoise(seed: 43)
        let x = a.normal(count: 100_000)
        #expect(x == b.normal(count: 100_000))
        #expect(x != c.normal(count: 100_000))
        let mean = x.reduce(0, +) / Float(x.count)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(x.count)
        #expect(abs(mean) < 0.02 && abs(variance - 1) < 0.02)
    }
}
