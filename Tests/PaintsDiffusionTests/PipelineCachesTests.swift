// What a pipeline keeps between runs: text embeddings by prompt and img2img latents by content; a second run with the
// same inputs takes them from the caches and makes exactly the same picture.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct PipelineCachesTests {
    @Test func aSecondRunReusesTextAndSourceEncodingsAndMakesTheSamePicture() throws {
        let base = Repository.path("Tests/Fixtures/diffusion")
        let sd = StableDiffusionPipeline(unet: try UNet2DConditionModel(folder: base + "/unet-sd1"), vae: try AutoencoderKL(folder: base + "/vae"),
                                         prompts: PromptEncoder(tokenizer: try CLIPTokenizer(folder: base + "/tokenizer"),
                                                                textModel: try CLIPTextModel(folder: base + "/clip-sd1")),
                                         scheduler: SchedulerConfiguration())
        var request = StableDiffusionPipeline.Request(prompt: "a cat", negativePrompt: "blurry", width: 24, height: 32)
        request.steps = 2
        var source = SeededNormalNoise(seed: 9)
        request.source = Tensor(shape: [1, 3, 32, 24], data: source.normal(count: 3 * 32 * 24).map { max(-1, min(1, $0 / 2)) })
        var noise = SeededNormalNoise(seed: 1)
        let first = try sd.generate(request, noise: &noise)
        #expect(sd.caches.text.count == 2 && sd.caches.sourceLatents.count == 1)
        let bytes = sd.caches.residentBytes
        #expect(bytes > 0)
        var again = SeededNormalNoise(seed: 1)
        #expect(try sd.generate(request, noise: &again) == first)
        #expect(sd.caches.text.count == 2 && sd.caches.sourceLatents.count == 1 && sd.caches.residentBytes == bytes)
        // Another prompt adds its embedding; another source its latents; the picture changes.
        request.prompt = "a dog"
        var third = SeededNormalNoise(seed: 1)
        #expect(try sd.generate(request, noise: &third) != first)
        #expect(sd.caches.text.count == 3)
        sd.caches.removeAll()
        #expect(sd.caches.residentBytes == 0)
    }

    @Test func theCacheIsBoundedLeastRecentlyUsedFirst() throws {
        let cache = TensorCache<Int>(capacity: 2, maxBytes: 1 << 20)
        for k in 0..<3 { _ = cache.tensor(k) { Tensor(zeros: [4]) } }
        #expect(cache.count == 2)
        #expect(cache.tensor(0) { Tensor(zeros: [4]) }.cached == false)   // 0 was the oldest: gone
        #expect(cache.tensor(2) { Tensor(zeros: [4]) }.cached == true)
        // A tensor over the byte bound is made, not kept.
        #expect(cache.tensor(9) { Tensor(zeros: [1 << 19]) }.cached == false && cache.tensor(9) { Tensor(zeros: [1]) }.cached == false)
    }
}
