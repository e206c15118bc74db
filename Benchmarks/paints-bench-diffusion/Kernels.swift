// paints-bench-diffusion --kernels: issue 15's view of the kernels. The machine's FMA peak, then the UNet pass
// (batch 1 and 2), the VAE decode and encode on the f32 files with each convolution backend (OpenBLAS im2col + sgemm,
// oneDNN channels-last, mixed by size) side by side in one run, alternating, then where the time of a UNet pass and a
// VAE decode goes by kind of operation (KernelProfile), with the share of the FMA peak reached. Attention alone first:
// the fused kernel beside the GEMM paths.
import CTensorKernels
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
    compareAttentionKernels(latentSide: latentSide, rounds: rounds, peak: peak, noise: &noise, figures: &figures)
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
        for backend in OneDNN.Backend.allCases {
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
    print("  part           openblas    onednn     mixed   openblas/onednn  openblas/mixed")
    for (name, _) in parts {
        let (a, b, m) = (times["\(name)_openblas"]!.min()!, times["\(name)_onednn"]!.min()!, times["\(name)_mixed"]!.min()!)
        figures["\(name)_openblas_s"] = a
        figures["\(name)_onednn_s"] = b
        figures["\(name)_mixed_s"] = m
        print(String(format: "  %@ %8.2f s %8.2f s %8.2f s %10.2fx %14.2fx", name.padding(toLength: 12, withPad: " ", startingAt: 0),
                     a, b, m, a / b, a / m))
    }
    // Where the time goes, on each backend.
    for backend in [OneDNN.Backend.openblas, .mixed] {
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

/// Attention alone at the UNet's and the VAE's shapes (CFG batch 2), the fused kernel at each width this CPU runs beside
/// the GEMM paths (OpenBLAS per head, oneDNN batched over heads), alternating, min over the rounds.
@MainActor func compareAttentionKernels(latentSide n: Int, rounds: Int, peak: Double, noise: inout SeededNormalNoise,
                                        figures: inout [String: Any]) {
    // (name, batch, queries, keys, heads, head width, causal): the UNet's levels, the VAE's mid block, CLIP's text layers
    let shapes = [("self_\(n)", 2, n * n, n * n, 8, 40, false), ("cross_\(n)", 2, n * n, 77, 8, 40, false),
                  ("self_\(n / 2)", 2, n * n / 4, n * n / 4, 8, 80, false), ("self_\(n / 4)", 2, n * n / 16, n * n / 16, 8, 160, false),
                  ("vae_\(n)", 1, n * n, n * n, 1, 512, false), ("clip_77", 1, 77, 77, 12, 64, true)]
    var kernels: [(String, Tensor.AttentionKernel, OneDNN.Backend)] = [("gemm_openblas", .gemm, .openblas), ("gemm_onednn", .gemm, .onednn)]
    guard case .fused(let widest) = Tensor.widestAttention else { return }
    for lanes in [16, 8] where lanes <= widest {  // (the plain C kernel is for CPUs without AVX2: slow, not timed)
        kernels.append(("fused_\(lanes)", .fused(lanes: lanes), .openblas))
    }
    kernels.append(("default", .automatic, OneDNN.backend))
    print("attention, min of \(rounds) rounds (GFLOP/s in brackets):")
    print("  shape      " + kernels.map { $0.0.padding(toLength: 20, withPad: " ", startingAt: 0) }.joined())
    for (name, batch, lq, lk, heads, d, causal) in shapes {
        let q = Tensor(shape: [batch, lq, heads * d], data: noise.normal(count: batch * lq * heads * d))
        let k = Tensor(shape: [batch, lk, heads * d], data: noise.normal(count: batch * lk * heads * d))
        let v = Tensor(shape: [batch, lk, heads * d], data: noise.normal(count: batch * lk * heads * d))
        let flops = 4 * Double(batch * lq * lk * heads * d)
        var best = [Double](repeating: .infinity, count: kernels.count)
        // Shapes of a few MFLOP (the text encoder's) are timed as the best of 50 calls per round.
        let calls = flops < 1e8 ? 50 : 1
        for _ in 0..<max(2, rounds) {
            for (i, (_, kernel, backend)) in kernels.enumerated() {
                for _ in 0..<calls {
                    let t = Tensor.$attentionKernel.withValue(kernel) {
                        OneDNN.$backendOverride.withValue(backend) {
                            (try? seconds { _ = try Tensor.attention(query: q, key: k, value: v, heads: heads, causal: causal) }) ?? .infinity
                        }
                    }
                    best[i] = min(best[i], t)
                }
            }
        }
        var line = "  " + name.padding(toLength: 11, withPad: " ", startingAt: 0)
        for (i, (kernelName, _, _)) in kernels.enumerated() {
            line += String(format: best[i] < 0.01 ? "%7.5f s (%4.0f)  " : "%7.3f s (%4.0f)    ", best[i], flops / best[i] / 1e9)
            figures["attention_\(name)_\(kernelName)_s"] = best[i]
        }
        print(line)
    }
    print(String(format: "  (FMA peak %.0f GFLOP/s; clip_77 is causal, its GFLOP/s count every score)", peak))
}

/// Issue 15's reduced precision: the UNet pass (batch 1 and 2) and the VAE decode and encode in float32 (the default
/// kernels) and with bfloat16 convolutions (PAINTSD_PRECISION=bf16: activations and weights rounded to bfloat16,
/// products summed in float32, every convolution on oneDNN), alternating, min of `rounds` (then the ControlNet CFG
/// step and the text encoder the same way); each bf16 output's relative
/// error against the float32 one on the same inputs, beside what the fp16 weight files already cost (the UNet and the
/// VAE decoder with the .fp16 weights against the float32 files, both in float32).
/// With `winograd`, the same parts in float32 with the kernels before Winograd ("direct": 3x3 convolutions direct as
/// PAINTSD_WINOGRAD=0 runs them, every linear layer on OpenBLAS) and the default ones ("winograd": Winograd F(4x4, 3x3),
/// the sgemm form from 32x32, or oneDNN's kernel from 128x128 with PAINTSD_WINOGRAD=onednn; linear layers of up to 128
/// rows and 640 inputs or more on oneDNN), and the error of the second against the first.
@MainActor func runPrecisionBenchmark(folder: String, latentSide n: Int, rounds: Int, winograd: Bool = false) throws {
    print("cpu: \(cpuSummary()); bfloat16 dot products: \(OneDNN.hasBF16 ? "yes" : "no (bf16 falls back to f32: nothing to compare)")"
          + "; oneDNN Winograd kernel: \(OneDNN.winogradKernel ?? "none")\(OneDNN.winogradOnOneDNN ? " (in use: PAINTSD_WINOGRAD=onednn)" : " (unused)")")
    // The two variants compared: (name, how a part runs in it).
    let variants: [(String, (() throws -> Tensor) throws -> Tensor)] = winograd
        ? [("direct", { body in
                try OneDNN.$precisionOverride.withValue(.f32) {
                    try OneDNN.$winogradOverride.withValue(false) { try Tensor.$linearOnOneDNNOverride.withValue(false, operation: body) }
                }
            }),
           ("winograd", { body in try OneDNN.$precisionOverride.withValue(.f32) { try OneDNN.$winogradOverride.withValue(true, operation: body) } })]
        : OneDNN.Precision.allCases.map { precision in (precision.rawValue, { body in try OneDNN.$precisionOverride.withValue(precision, operation: body) }) }
    let (first, second) = (variants[0].0, variants[1].0)
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    let unetHalf = try UNet2DConditionModel(folder: folder + "/unet")
    let vae = try AutoencoderKL(folder: folder + "/vae", variant: "")
    let vaeHalf = try AutoencoderKL(folder: folder + "/vae")
    var noise = SeededNormalNoise(seed: 9)
    let x1 = Tensor(shape: [1, 4, n, n], data: noise.normal(count: 4 * n * n))
    let c1 = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
    let x2 = Tensor(shape: [2, 4, n, n], data: x1.data + noise.normal(count: 4 * n * n))
    let c2 = Tensor(shape: [2, 77, 768], data: c1.data + noise.normal(count: 77 * 768))
    let image = Tensor(shape: [1, 3, 8 * n, 8 * n], data: noise.normal(count: 3 * 64 * n * n).map { max(-1, min(1, $0 / 3)) })
    var parts: [(String, () throws -> Tensor)] = [
        ("unet_batch1", { try unet(x1, timesteps: [500], context: c1) }),
        ("unet_batch2", { try unet(x2, timesteps: [500], context: c2) }),
        ("vae_decode", { try vae.decode(x1) }),
        ("vae_encode", { try vae.encode(image).mean }),
    ]
    // The ControlNet CFG step as the main benchmark times it (the ControlNet on batch 2 with the hint embedded once,
    // then the UNet with its residuals), and the text encoder on 77 tokens.
    let controlNetPath = folder + "/controlnet/sd15-lineart-random"
    if FileManager.default.fileExists(atPath: controlNetPath + "/config.json") {
        let controlNet = try ControlNetModel(folder: controlNetPath, variant: "")
        let d = controlNet.conditioningDownscale
        let hint = Tensor(shape: [1, 3, n * d, n * d], data: noise.normal(count: 3 * n * d * n * d).map { $0 > 1.28 ? 1 : 0 })
        let embedded = try controlNet.embedHint(hint)
        let pair = Tensor(shape: [2] + Array(embedded.shape.dropFirst()), data: embedded.data + embedded.data)
        parts.append(("controlnet_step", {
            let residuals = try controlNet(x2, timesteps: [500], context: c2, embeddedHint: pair)
            return try unet(x2, timesteps: [500], context: c2, conditioning: UNetConditioning(downResiduals: residuals.down, midResidual: residuals.mid))
        }))
    }
    let clip = try CLIPTextModel(folder: folder + "/text_encoder", variant: ProcessInfo.processInfo.environment["TMPVARIANT"] ?? "")
    let ids = [(0..<77).map { ($0 * 7919) % 49408 }]
    parts.append(("clip_encode", { try clip.encode(ids) }))
    _ = try unet(x1, timesteps: [500], context: c1)    // faults the mapped weights in
    var times: [String: [Double]] = [:], outputs: [String: Tensor] = [:]
    for round in 1...rounds {
        for (variant, run) in variants {
            for (name, body) in parts {
                var out: Tensor?
                let t = try seconds { out = try run(body) }
                times["\(name)_\(variant)", default: []].append(t)
                outputs["\(name)_\(variant)"] = out
                print(String(format: "  round %d %@ %@: %.2f s", round, name, variant, t))
            }
        }
    }
    let halfUNet = try variants[0].1 { try unetHalf(x1, timesteps: [500], context: c1) }
    let halfDecode = try variants[0].1 { try vaeHalf.decode(x1) }
    print("convolutions: \(OneDNN.description)")
    print("min of \(rounds) rounds, \(8 * n)x\(8 * n) images; error: relative L2 of the output against \(first)'s on the same inputs:")
    func column(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
    print("  part          " + column(first, 10) + column(second, 10) + column("\(first)/\(second)", 16) + column("\(second) error", 16)
          + "    fp16-weights error (\(first))")
    for (name, _) in parts {
        let (a, b) = (times["\(name)_\(first)"]!.min()!, times["\(name)_\(second)"]!.min()!)
        let e = relativeL2(outputs["\(name)_\(second)"]!, outputs["\(name)_\(first)"]!)
        let reference = name == "unet_batch1" ? String(format: "%.2e", relativeL2(halfUNet, outputs["unet_batch1_\(first)"]!))
            : name == "vae_decode" ? String(format: "%.2e", relativeL2(halfDecode, outputs["vae_decode_\(first)"]!)) : "-"
        print(String(format: "  %@ %8.3f s %8.3f s %14.2fx %16.2e    %@", name.padding(toLength: 13, withPad: " ", startingAt: 0), a, b, a / b, e, reference))
    }
}

/// Which convolutions `mixed` should send to oneDNN: the UNet pass (batch 1 and 2) from the fp16 weight file (what the
/// daemon reads) and the f32 one, with the threshold at each of `thresholds` output pixels, alternating, min of `rounds`.
@MainActor func runThresholdBenchmark(folder: String, latentSide n: Int, rounds: Int) throws {
    var noise = SeededNormalNoise(seed: 9)
    let x1 = Tensor(shape: [1, 4, n, n], data: noise.normal(count: 4 * n * n))
    let c1 = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
    let x2 = Tensor(shape: [2, 4, n, n], data: x1.data + noise.normal(count: 4 * n * n))
    let c2 = Tensor(shape: [2, 77, 768], data: c1.data + noise.normal(count: 77 * 768))
    let thresholds = [1 << 30, OneDNN.mixedMinimumPixels, 4096, 256]
    for variant in ["fp16", ""] {
        let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: variant)
        _ = try unet(x1, timesteps: [500], context: c1)
        var times: [String: [Double]] = [:]
        for _ in 1...rounds {
            for t in thresholds {
                try OneDNN.$backendOverride.withValue(.mixed) {
                    try OneDNN.$mixedMinimumPixelsOverride.withValue(t) {
                        times["b1 \(t)", default: []].append(try seconds { _ = try unet(x1, timesteps: [500], context: c1) })
                        times["b2 \(t)", default: []].append(try seconds { _ = try unet(x2, timesteps: [500], context: c2) })
                    }
                }
            }
        }
        for t in thresholds {
            print(String(format: "%@ weights, oneDNN from %10d output pixels: UNet b1 %.2f s, b2 %.2f s", variant.isEmpty ? "f32" : variant,
                         t, times["b1 \(t)"]!.min()!, times["b2 \(t)"]!.min()!))
        }
    }
}

/// Issue 15's text encoder alone: CLIP on 77 tokens from the f32 files and from the fp16 ones, `rounds` timed runs
/// after a warm-up (min and median) with today's linear layers (weights packed once: f16 ones in panels, f32 ones in
/// panels without AVX-512 and for oneDNN's matmul with it) alternating with everything off the panels (`onednn`:
/// oneDNN's packed matmul for f32, the few-rows kernel for f16), with AVX-512 f32 on the panels too (`panels`), the
/// linear layers as before (weights reordered or widened on every call) and all on OpenBLAS (widened on every call);
/// then the linear layers' time alone per variant (f32, profiled, the variants in turn), and one run of the f32
/// default's time by kind of operation with the share of the FMA peak. Short enough to run under perf.
@MainActor func runTextEncoderBenchmark(folder: String, rounds: Int) throws {
    let peak = FMAPeak.widths.compactMap { FMAPeak.measure(width: $0) }.max() ?? 0
    let ids = [(0..<77).map { ($0 * 7919) % 49408 }]
    func under<T>(_ variant: String, _ body: () throws -> T) rethrows -> T {
        switch variant {
        case "before": return try Tensor.$packedWeights.withValue(false) { try Tensor.$linearRowsLanes.withValue(nil, operation: body) }
        case "openblas": return try Tensor.$linearOnOneDNNOverride.withValue(false) { try Tensor.$linearRowsLanes.withValue(nil, operation: body) }
        case "panels": return try Tensor.$linearOnPanels.withValue(true) { try Tensor.$float32OnPanels.withValue(true, operation: body) }
        case "onednn": return try Tensor.$linearOnPanels.withValue(false, operation: body)
        default: return try body()
        }
    }
    // Off the panels (`onednn`: oneDNN's packed matmul for f32, the few-rows kernel for f16) and, where f32 weights are
    // not on them by default (AVX-512), all on them (`panels`). PAINTSD_BENCH_VARIANTS=default,onednn and
    // PAINTSD_BENCH_FILES=f32 pick some (one alone: for perf).
    let panelVariants = pk_linear_panels_available() == 0 ? [] : ["onednn"] + (Tensor.float32OnPanels ? [] : ["panels"])
    let variants = (["default", "before", "openblas"] + panelVariants)
        .filter { name in ProcessInfo.processInfo.environment["PAINTSD_BENCH_VARIANTS"].map { $0.split(separator: ",").contains(Substring(name)) } ?? true }
    for file in ["f32", "fp16"] where ProcessInfo.processInfo.environment["PAINTSD_BENCH_FILES"].map({ $0.split(separator: ",").contains(Substring(file)) }) ?? true {
        // A model loaded for each variant: packing releases the file pages the other variant would read.
        var models: [String: CLIPTextModel] = [:]
        for name in variants { models[name] = try CLIPTextModel(folder: folder + "/text_encoder", variant: file == "f32" ? "" : file) }
        var times: [String: [Double]] = [:], outputs: [String: Tensor] = [:]
        for name in variants { outputs[name] = try under(name) { try models[name]!.encode(ids) } }
        for _ in 0..<rounds {
            for name in variants {
                let clip = models[name]!
                times[name, default: []].append(try under(name) { try seconds { _ = try clip.encode(ids) } })
            }
        }
        for name in variants {
            let sorted = times[name]!.sorted()
            print(String(format: "clip_encode 77 tokens, %@ weights, %@ linear layers, %d runs: min %.4f s, median %.4f s (cpu: %@)",
                         file, name, rounds, sorted[0], sorted[sorted.count / 2], cpuSummary()))
        }
        if let before = outputs["before"], let openblas = outputs["openblas"], let now = outputs["default"] {
            print(String(format: "  relative error, default against before: %.2e, against openblas: %.2e",
                         relativeL2(now, before), relativeL2(now, openblas)))
        }
    }
    // The linear layers alone, f32 weights, each variant profiled in turn over rounds / 3 runs, the turns alternating.
    let profiled = max(1, rounds / 3)
    var linearSeconds: [String: [Double]] = [:], linearFlops = 0.0
    let profiledModels = try variants.map { name in (name, try CLIPTextModel(folder: folder + "/text_encoder", variant: "")) }
    for (name, model) in profiledModels { _ = try under(name) { try model.encode(ids) } }
    for _ in 0..<3 {
        for (name, model) in profiledModels {
            KernelProfile.reset()
            KernelProfile.isEnabled = true
            try under(name) { for _ in 0..<profiled { _ = try model.encode(ids) } }
            KernelProfile.isEnabled = false
            linearSeconds[name, default: []].append(KernelProfile.totals.seconds[.linear, default: 0] / Double(profiled))
            linearFlops = KernelProfile.totals.flops[.linear, default: 0] / Double(profiled)
        }
    }
    for (name, _) in profiledModels {
        let best = linearSeconds[name]!.min()!
        print(String(format: "  linear layers, f32 weights, %@: %.4f s per encode (best of 3 turns of %d), %.1f GFLOP/s", name, best,
                     profiled, linearFlops / best / 1e9))
    }
    let clip = try CLIPTextModel(folder: folder + "/text_encoder", variant: "")
    _ = try clip.encode(ids)
    // Profiled over several runs: the parts outside the linear layers take a few milliseconds in all.
    KernelProfile.reset()
    KernelProfile.isEnabled = true
    let wall = try seconds { for _ in 0..<profiled { _ = try clip.encode(ids) } }
    KernelProfile.isEnabled = false
    let flops = KernelProfile.totals.flops.values.reduce(0, +)
    print(String(format: "%d runs profiled (f32 weights, default): %.4f s each, %.1f GFLOP counted, %.1f GFLOP/s = %.0f%% of the %.1f GFLOP/s FMA peak",
                 profiled, wall / Double(profiled), flops / 1e9 / Double(profiled), flops / wall / 1e9, 100 * flops / wall / 1e9 / max(peak, 1), peak))
    print(KernelProfile.table(KernelProfile.totals, wall: wall))
}

/// The UNet pass alone (f32 files), batch 1 and batch 2 alternating, `rounds` times, with today's default kernels: a
/// quick A/B of one change between two builds or two environments (min and every round printed); then one profiled
/// pass of each batch.
@MainActor func runUNetPassBenchmark(folder: String, latentSide n: Int, rounds: Int) throws {
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    var noise = SeededNormalNoise(seed: 5)
    let x1 = Tensor(shape: [1, 4, n, n], data: noise.normal(count: 4 * n * n))
    let c1 = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
    let x2 = Tensor(shape: [2, 4, n, n], data: x1.data + noise.normal(count: 4 * n * n))
    let c2 = Tensor(shape: [2, 77, 768], data: c1.data + noise.normal(count: 77 * 768))
    let compared = ProcessInfo.processInfo.environment["PAINTSD_BENCH_COMPARE"]
    if compared != "panels" { _ = try unet(x1, timesteps: [500], context: c1) }   // panels: warmed up under its settings
    if let name = compared {
        // Two settings of one switch, pass by pass in turn (which goes first alternates): the ratio of each pair.
        let settings: [(String, (() throws -> Void) throws -> Void)]
        // A second model for a setting that packs weights in another layout (a weight keeps one packed copy).
        let other = name == "panels" ? try UNet2DConditionModel(folder: folder + "/unet", variant: "") : unet
        switch name {
        // Few-row layers (context projections, time embeddings, the mid block's) on panels, or on oneDNN's packed matmul.
        case "panels": settings = [("panels", { try Tensor.$float32OnPanels.withValue(true, operation: $0) }),
                                   ("onednn", { try Tensor.$linearOnPanels.withValue(false, operation: $0) })]
        case "parallel": settings = [("openmp", { try Parallel.$threads.withValue(.openMP, operation: $0) }),
                                     ("dispatch", { try Parallel.$threads.withValue(.dispatch, operation: $0) })]
        // The heap as a job's later pass finds it, against as the first pass of a job finds it (returned to the system).
        case "heap": settings = [("kept", { try $0() }), ("returned", { HeapRetention.returnNow(); try $0() })]
        default: fatalError("PAINTSD_BENCH_COMPARE: parallel, heap or panels")
        }
        // Each model packs its weights for its setting before the timed pairs.
        if name == "panels" { for (i, model) in [unet, other].enumerated() { try settings[i].1 { _ = try model(x1, timesteps: [500], context: c1) } } }
        for (batch, x, c) in [(1, x1, c1), (2, x2, c2)] {
            var times: [[Double]] = [[], []]
            for round in 0..<(rounds * 2) {
                for i in (round % 2 == 0 ? [0, 1] : [1, 0]) {
                    let model = i == 0 ? unet : other
                    try settings[i].1 { times[i].append(try seconds { _ = try model(x, timesteps: [500], context: c) }) }
                }
            }
            let ratios = zip(times[1], times[0]).map { $0 / $1 }.sorted()
            print(String(format: "unet pass %dx%d batch %d, %@ %@: min %.3f s, median %.3f s; %@: min %.3f s, median %.3f s; "
                         + "%@ time / %@ time per pair: median %.3f (%.3f-%.3f); cpu: %@", n, n, batch, name,
                         settings[0].0, times[0].min()!, times[0].sorted()[rounds], settings[1].0, times[1].min()!,
                         times[1].sorted()[rounds], settings[1].0, settings[0].0, ratios[rounds], ratios.first!, ratios.last!,
                         cpuSummary()))
            fflush(nil)
        }
        return
    }
    var one: [Double] = [], two: [Double] = []
    for _ in 0..<rounds {
        one.append(try seconds { _ = try unet(x1, timesteps: [500], context: c1) })
        two.append(try seconds { _ = try unet(x2, timesteps: [500], context: c2) })
    }
    print(String(format: "unet pass %dx%d: batch 1 min %.3f s (%@), batch 2 min %.3f s (%@); cpu: %@", n, n, one.min()!,
                 one.map { String(format: "%.2f", $0) }.joined(separator: " "), two.min()!,
                 two.map { String(format: "%.2f", $0) }.joined(separator: " "), cpuSummary()))
    // Then one profiled pass of each: where the time goes, by kind of operation and convolution path.
    for (batch, x, c) in [(1, x1, c1), (2, x2, c2)] {
        KernelProfile.reset()
        KernelProfile.isEnabled = true
        let wall = try seconds { _ = try unet(x, timesteps: [500], context: c) }
        KernelProfile.isEnabled = false
        let flops = KernelProfile.totals.flops.values.reduce(0, +)
        print(String(format: "batch %d, one profiled pass: %.2f s, %.0f GFLOP counted (%.0f GFLOP/s)", batch, wall, flops / 1e9, flops / wall / 1e9))
        print(KernelProfile.table(KernelProfile.totals, wall: wall))
    }
}

/// |a - b| / |b| (L2 over every element).
func relativeL2(_ a: Tensor, _ b: Tensor) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a.data, b.data) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
    return (num / max(den, 1e-30)).squareRoot()
}
