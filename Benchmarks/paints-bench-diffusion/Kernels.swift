// paints-bench-diffusion --kernels: issue 15's view of the kernels. The machine's FMA peak, then the UNet pass
// (batch 1 and 2), the VAE decode and encode on the f32 files with each convolution backend (OpenBLAS im2col + sgemm,
// oneDNN) side by side in one run, alternating, then where the time of a UNet pass and a VAE decode goes by kind of
// operation (KernelProfile), with the share of the FMA peak reached.
import Foundation
import PaintsDiffusion
import PaintsTensor

@MainActor func runKernelBenchmark(folder: String, latentSide: Int, rounds: Int) throws {
    print("cpu: \(cpuSummary())")
    print("blas: \(OpenBLASKernel.description)")
    var figures: [String: Any] = ["cpu": cpuSummary(), "kernel": OpenBLASKernel.description]
    var peak = 0.0
    for width in FMAPeak.widths {
        let one = FMAPeak.measure(width: width, threads: 1) ?? 0, all = FMAPeak.measure(width: width) ?? 0
        print(String(format: "fma peak %d-wide: %.1f GFLOP/s one thread, %.1f on %d threads", width, one, all, Parallel.cores))
        figures["fma_peak_\(width)_gflops"] = all
        peak = max(peak, all)
    }
    var noise = SeededNormalNoise(seed: 5)
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    let vae = try AutoencoderKL(folder: folder + "/vae", variant: "")
    let n = latentSide
    let x1 = Tensor(shape: [1, 4, n, n], data: noise.normal(count: 4 * n * n))
    let c1 = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
    let x2 = Tensor(shape: [2, 4, n, n], data: x1.data + noise.normal(count: 4 * n * n))
    let c2 = Tensor(shape: [2, 77, 768], data: c1.data + noise.normal(count: 77 * 768))
    let image = Tensor(shape: [1, 3, 8 * n, 8 * n], data: noise.normal(count: 3 * 64 * n * n).map { max(-1, min(1, $0 / 3)) })
    let parts: [(String, () throws -> Void)] = [
        ("unet_batch1", { _ = try unet(x1, timesteps: [500], context: c1) }),
        ("unet_batch2", { _ = try unet(x2, timesteps: [500], context: c2) }),
        ("vae_decode", { _ = try vae.decode(x1) }),
        ("vae_encode", { _ = try vae.encode(image) }),
    ]
    _ = try unet(x1, timesteps: [500], context: c1)    // faults the mapped weights in
    var times: [String: [Double]] = [:]
    for round in 1...rounds {
        for backend in [OneDNN.Backend.openblas, .onednn] {
            OneDNN.backend = backend
            for (name, body) in parts {
                let t = try seconds(body)
                times["\(name)_\(backend.rawValue)", default: []].append(t)
                print(String(format: "  round %d %@ %@: %.2f s", round, name, backend.rawValue, t))
            }
        }
    }
    print("convolutions: \(OneDNN.description)")
    print("min of \(rounds) rounds, \(8 * n)x\(8 * n) images (\(n)x\(n) latents):")
    print("  part           openblas    onednn   openblas/onednn")
    for (name, _) in parts {
        let (a, b) = (times["\(name)_openblas"]!.min()!, times["\(name)_onednn"]!.min()!)
        figures["\(name)_openblas_s"] = a
        figures["\(name)_onednn_s"] = b
        print(String(format: "  %@ %8.2f s %8.2f s %8.2fx", name.padding(toLength: 12, withPad: " ", startingAt: 0), a, b, a / b))
    }
    // Where the time goes, on each backend.
    for backend in [OneDNN.Backend.openblas, .onednn] {
        OneDNN.backend = backend
        for (name, body) in parts where name == "unet_batch1" || name == "vae_decode" {
            KernelProfile.reset()
            KernelProfile.isEnabled = true
            let wall = try seconds(body)
            KernelProfile.isEnabled = false
            let totals = KernelProfile.totals
            let flops = totals.flops.values.reduce(0, +)
            print(String(format: "%@ on %@: %.2f s, %.0f GFLOP counted, %.1f GFLOP/s = %.0f%% of the %.1f GFLOP/s FMA peak",
                         name, backend.rawValue, wall, flops / 1e9, flops / wall / 1e9, 100 * flops / wall / 1e9 / max(peak, 1), peak))
            print(KernelProfile.table(totals, wall: wall))
            figures["\(name)_\(backend.rawValue)_peak_share"] = flops / wall / 1e9 / max(peak, 1)
        }
    }
    let json = try JSONSerialization.data(withJSONObject: figures, options: [.prettyPrinted, .sortedKeys])
    try json.write(to: URL(fileURLWithPath: folder + "/kernel-figures.json"))
}
