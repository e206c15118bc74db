// paints-bench-diffusion: times full-size SD1.5 components (random weights written by Benchmarks/torch/sd15_random.py)
// in the Swift engine: one UNet pass at 64x64 latents, batch 1 and 2, and VAE decode/encode at 512x512.
import Foundation
import PaintsDiffusion
import PaintsTensor

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func peakRSS() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return Double(line.split(separator: " ").compactMap { Int($0) }.first ?? 0) / 1_048_576
}

OpenBLASKernel.selectBestKernelOrReexecute()
let folder = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "/tmp/sd15"
print("paints-bench-diffusion: \(OpenBLASKernel.description), \(Parallel.cores) cores")
var loadTime = 0.0
var unet: UNet2DConditionModel!
loadTime = try seconds { unet = try UNet2DConditionModel(folder: folder + "/unet") }
print(String(format: "unet load (f32): %.2f s, peak RSS %.2f GiB", loadTime, peakRSS()))
var noise = SeededNormalNoise(seed: 1)
for batch in [1, 2] {
    let x = Tensor(shape: [batch, 4, 64, 64], data: noise.normal(count: batch * 4 * 64 * 64))
    let c = Tensor(shape: [batch, 77, 768], data: noise.normal(count: batch * 77 * 768))
    let t = try seconds { _ = try unet(x, timesteps: [500], context: c) }
    print(String(format: "unet pass 64x64 batch %d: %.2f s", batch, t))
}
unet = nil
let vae = try AutoencoderKL(folder: folder + "/vae")
let z = Tensor(shape: [1, 4, 64, 64], data: noise.normal(count: 4 * 64 * 64))
print(String(format: "vae decode 512x512: %.2f s", try seconds { _ = try vae.decode(z) }))
let image = Tensor(shape: [1, 3, 512, 512], data: noise.normal(count: 3 * 512 * 512).map { max(-1, min(1, $0 / 3)) })
print(String(format: "vae encode 512x512: %.2f s", try seconds { _ = try vae.encode(image) }))
print(String(format: "peak RSS %.2f GiB", peakRSS()))
