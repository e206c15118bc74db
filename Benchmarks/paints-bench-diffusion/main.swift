// paints-bench-diffusion: times full-size SD1.5 components (random weights written by Benchmarks/torch/sd15_random.py)
// in the Swift engine: peak RSS of a whole 512x512 txt2img from the fp16 files; then, from the f32 files as PyTorch
// runs them, one UNet pass at 64x64 latents (batch 1 and 2), VAE decode and encode at 512x512 and one CLIP encode.
// Then one classifier-free guidance step with the line-art ControlNet of OUT_DIR/controlnet/sd15-lineart-random (f32):
// the ControlNet pass and the UNet pass with its residuals at 64x64 latents, batch 2, over timed rounds.
// Prints the figures and writes them as JSON to OUT_DIR/swift-figures.json for the PyTorch script to compare.
// With --paints-undo, OUT_DIR is a Paints-UNDO single-frame folder (Benchmarks/torch/paints_undo_random.py) and the
// figures are its sampling step at 512x640 (two UNet calls), VAE passes and a whole keyframe from the fp16 files.
// Then issue 13's parts, timed as the ControlNet step (a warm-up, then rounds; min and median; peak RSS per part), on the
// f32 files Benchmarks/torch/sd15_random.py writes: one SD1.5 CFG step (UNet batch 2) with the IP-Adapter of
// OUT_DIR/ip-adapter/ip-adapter_sd15-random.safetensors (IPAdapter.applied, scale 0.6, tokens of [zeros; random]
// image embeddings, made once per run and timed apart) beside the same step without it, alternating in each round;
// one CLIP ViT-H/14 image encode at 224x224 (OUT_DIR/clip-vision/vit-h-random); one SDRO sampling step
// (OUT_DIR/sdro-random/unet: one UNet call, batch 1, context [1, 257, 1024], the blueprint embedded once per run as
// StableDiffusionReferenceOnlyPipeline does, and that embedding timed apart).
// --quick (or PAINTSD_BENCH_QUICK=1): a smoke run of the same code at 128x128 (16x16 latents), one round (SD1.5 part);
// issue 13's CLIP and SDRO parts then take the small stand-ins under OUT_DIR/quick/.
//
//     paints-bench-diffusion OUT_DIR [--steps N] [--controlnet DIR] [--quick]
//     paints-bench-diffusion --paints-undo OUT_DIR [--steps N]
import Foundation
import PaintsDiffusion
import PaintsTensor

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Peak resident set (VmHWM) in GiB.
func peakRSS() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return Double(line.split(separator: " ").compactMap { Int($0) }.first ?? 0) / 1_048_576
}

/// Starts a new peak (Linux: writing 5 to clear_refs resets VmHWM to the current RSS).
func resetPeakRSS() { try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8) }

/// Median of `values` (the upper one of an even count).
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// The CPU as /proc/cpuinfo names it (first processor) and whether it has the vector extensions that decide the kernels.
func cpuSummary() -> String {
    let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let rows = text.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    func field(_ key: String) -> String {
        rows.first { $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) == key }
            .map { $0.split(separator: ":", maxSplits: 1).dropFirst().first?.trimmingCharacters(in: .whitespaces) ?? "" } ?? "?"
    }
    let flags = Set(field("flags").split(separator: " ").map(String.init))
    let marks = ["avx2", "avx512f", "avx512_bf16"].map { "\($0) \(flags.contains($0) ? "yes" : "no")" }.joined(separator: " ")
    return "\(field("model name")) (family \(field("cpu family")) model \(field("model"))); \(marks)"
}

OpenBLASKernel.selectBestKernelOrReexecute()
HeapRetention.configureProcess()
var arguments = CommandLine.arguments.filter { $0 != "--paints-undo" && $0 != "--quick" && $0 != "--lora-bind" && $0 != "--kernels" && $0 != "--attention" && $0 != "--precision" && $0 != "--winograd" && $0 != "--thresholds" && $0 != "--txt2img-memory" && $0 != "--text-encoder" && $0 != "--unet-passes" && $0 != "--interleaved-openvino" }
let paintsUndo = CommandLine.arguments.contains("--paints-undo")
let quick = CommandLine.arguments.contains("--quick") || !["", "0"].contains(ProcessInfo.processInfo.environment["PAINTSD_BENCH_QUICK"] ?? "")
let controlNetFolder = arguments.firstIndex(of: "--controlnet").map { arguments[$0 + 1] }
if let i = arguments.firstIndex(of: "--controlnet") { arguments.removeSubrange(i...i + 1) }
let folder = arguments.count > 1 ? arguments[1] : "/tmp/paintsd-sd15-random"
let steps = arguments.firstIndex(of: "--steps").map { Int(arguments[$0 + 1]) ?? 2 } ?? 2
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
print("paints-bench-diffusion: \(OpenBLASKernel.description), \(Parallel.cores) cores; convolutions: \(OneDNN.backend.rawValue)")
print("CPU: \(cpuSummary())")
// --lora-bind: issue 14's LoRA switch in-process: reading OUT_DIR/lora/lcm-lora-sdv1-5.safetensors (the random rank-64
// kohya LoRA sd15_random.py --write makes) and binding it to the f32 UNet and text encoder (LoRA.applied: copies that
// carry a LoRABinding; the base weights untouched), 3 rounds, min and median; then one UNet pass 64x64 batch 1 with and
// without it (after a warm-up of each); then the merge (lora_merge) onto the f16 UNet the daemon runs (one round: the
// merge time and the merged copies' bytes) and one pass of each form on it.
if CommandLine.arguments.contains("--lora-bind") {
    let loraPath = folder + "/lora/lcm-lora-sdv1-5.safetensors"
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    let clip = try CLIPTextModel(folder: folder + "/text_encoder", variant: "")
    var reads: [Double] = [], unetBinds: [Double] = [], clipBinds: [Double] = []
    var bound = unet
    var layers = (0, 0)
    for _ in 0..<3 {
        var lora: LoRA?
        reads.append(try seconds { lora = try LoRA(path: loraPath) })
        unetBinds.append(try seconds { bound = try lora!.applied(to: unet, weight: 1) })
        var te = clip
        clipBinds.append(try seconds { te = try lora!.applied(to: clip, weight: 1) })
        layers = (bound.lora?.layerCount ?? -1, te.lora?.layerCount ?? -1)
    }
    func mm(_ v: [Double]) -> String { String(format: "min %.1f ms, median %.1f ms", v.min()! * 1000, median(v) * 1000) }
    print("lora rank-64 (random, kohya, \(layers.0) UNet + \(layers.1) text encoder layers): read \(mm(reads)); bind UNet \(mm(unetBinds)); bind text encoder \(mm(clipBinds))")
    var noise = SeededNormalNoise(seed: 1)
    let n = quick ? 16 : 64
    let x = Tensor(shape: [1, 4, n, n], data: noise.normal(count: 4 * n * n))
    let c = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
    _ = try unet(x, timesteps: [500], context: c)
    _ = try bound(x, timesteps: [500], context: c)
    let plain = try seconds { _ = try unet(x, timesteps: [500], context: c) }
    let withLoRA = try seconds { _ = try bound(x, timesteps: [500], context: c) }
    print(String(format: "unet pass %dx%d batch 1: %.2f s without, %.2f s with the rank-64 LoRA (+%.1f%%)", n, n, plain, withLoRA, 100 * (withLoRA / plain - 1)))
    // The f16 UNet (what the daemon keeps resident): unfused, merged, and the base, alternating after a warm-up.
    let half = try UNet2DConditionModel(folder: folder + "/unet")
    let unfused = try LoRA(path: loraPath).applied(to: half, weight: 1)
    var merged = unfused
    let mergeTime = try seconds { merged = try unfused.mergingLoRAs() }
    print(String(format: "lora merge onto the f16 UNet: %.2f s, %d MiB of merged copies (%d layers)", mergeTime,
                 (merged.lora?.mergedBytes ?? 0) >> 20, merged.lora?.layerCount ?? 0))
    var times: [String: [Double]] = [:]
    for model in [half, unfused, merged] { _ = try model(x, timesteps: [500], context: c) }
    for _ in 0..<(quick ? 1 : 2) {
        for (name, model) in [("base", half), ("unfused", unfused), ("merged", merged)] {
            times[name, default: []].append(try seconds { _ = try model(x, timesteps: [500], context: c) })
        }
    }
    let b = times["base"]!.min()!, u = times["unfused"]!.min()!, m = times["merged"]!.min()!
    print(String(format: "f16 unet pass %dx%d batch 1 (min of %d): base %.2f s, LoRA unfused %.2f s (+%.1f%%), merged %.2f s (+%.1f%%)",
                 n, n, times["base"]!.count, b, u, 100 * (u / b - 1), m, 100 * (m / b - 1)))
    exit(0)
}

if CommandLine.arguments.contains("--attention") {  // attention alone (no model files): issue 15's kernel comparison
    var noise = SeededNormalNoise(seed: 5), figures: [String: Any] = [:]
    let peak = FMAPeak.widths.compactMap { FMAPeak.measure(width: $0) }.max() ?? 0
    compareAttentionKernels(latentSide: quick ? 16 : 64, rounds: 3, peak: peak, noise: &noise, figures: &figures)
    exit(0)
}

if CommandLine.arguments.contains("--text-encoder") {  // the text encoder alone, with its time by kind of operation
    try runTextEncoderBenchmark(folder: folder, rounds: quick ? 3 : 30)
    exit(0)
}

if CommandLine.arguments.contains("--interleaved-openvino") {  // issue 15: paintsd and OpenVINO part by part in turn
    let parts = arguments.firstIndex(of: "--parts").map { arguments[$0 + 1].split(separator: ",").map(String.init) }
        ?? ["unet_batch1", "unet_batch2", "vae_decode_512", "vae_encode_512", "clip_encode"]
    let rounds = arguments.firstIndex(of: "--rounds").flatMap { Int(arguments[$0 + 1]) } ?? 5
    let python = ProcessInfo.processInfo.environment["PAINTSD_BENCH_PYTHON"] ?? repository + "/.venv-fixtures/bin/python"
    try runInterleavedOpenVINO(folder: folder, parts: parts, rounds: rounds, python: python,
                               script: repository + "/Benchmarks/torch/sd15_openvino_server.py")
    exit(0)
}

if CommandLine.arguments.contains("--unet-passes") {  // the UNet pass alone, batch 1 and 2: quick A/B between builds
    try runUNetPassBenchmark(folder: folder, latentSide: quick ? 16 : 64, rounds: quick ? 1 : 4)
    exit(0)
}

if CommandLine.arguments.contains("--thresholds") {  // which UNet convolutions pay on oneDNN (f32)
    try runThresholdBenchmark(folder: folder, latentSide: quick ? 16 : 64, rounds: quick ? 1 : 2)
    exit(0)
}

if CommandLine.arguments.contains("--precision") {  // issue 15's bfloat16 convolutions beside float32: times and errors
    try runPrecisionBenchmark(folder: folder, latentSide: quick ? 16 : 64, rounds: quick ? 1 : 2)
    exit(0)
}

if CommandLine.arguments.contains("--winograd") {  // issue 15's Winograd convolutions beside the direct ones: times and errors
    try runPrecisionBenchmark(folder: folder, latentSide: quick ? 16 : 64, rounds: quick ? 1 : 2, winograd: true)
    exit(0)
}

if CommandLine.arguments.contains("--kernels") {
    try runKernelBenchmark(folder: folder, latentSide: quick ? 16 : 64, rounds: quick ? 1 : 2)
    exit(0)
}

// The SD1.5 part's image side and timed rounds of the ControlNet step (--quick: a smoke run, not figures).
let imageSide = quick && !paintsUndo ? 128 : 512
let latentSide = imageSide / 8
let rounds = quick ? 1 : 3
if quick && !paintsUndo { print("QUICK smoke run: \(imageSide)x\(imageSide), one round; the figures say nothing about speed") }
var figures: [String: Any] = ["kernel": OpenBLASKernel.description, "cpu": cpuSummary(), "quick": quick && !paintsUndo]
@MainActor func report(_ key: String, _ value: Double, _ label: String) {
    figures[key] = value
    print(String(format: "%@: %.2f", label, value))
}

/// Writes the figures beside the weights for the PyTorch script.
@MainActor func writeFigures() throws {
    let json = try JSONSerialization.data(withJSONObject: figures, options: [.prettyPrinted, .sortedKeys])
    try json.write(to: URL(fileURLWithPath: folder + "/swift-figures.json"))
}

if paintsUndo {
    // One sampling step as the reference runs it at its default 512x640: cond and uncond UNet calls of one frame with
    // the image latent concatenated and the operation-step embedding (f32 files, after a warm-up call).
    var noise = SeededNormalNoise(seed: 3)
    let (h, w) = (640 / 8, 512 / 8)
    do {
        let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
        let x = Tensor(shape: [1, 8, h, w], data: noise.normal(count: 8 * h * w))
        let cond = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
        let uncond = Tensor(shape: [1, 77, 768], data: noise.normal(count: 77 * 768))
        let conditioning = UNetConditioning(addedTimeEmbedding: try unet.codedConditionEmbedding([400]))
        _ = try unet(x, timesteps: [500], context: cond, conditioning: conditioning)
        report("undo_step_512x640_s", try seconds {
            _ = try unet(x, timesteps: [500], context: cond, conditioning: conditioning)
            _ = try unet(x, timesteps: [500], context: uncond, conditioning: conditioning)
        }, "paints-undo sampling step 512x640 (2 UNet calls, s)")
        let vae = try AutoencoderKL(folder: folder + "/vae", variant: "")
        let image = Tensor(shape: [1, 3, 640, 512], data: noise.normal(count: 3 * 640 * 512).map { max(-1, min(1, $0 / 3)) })
        report("undo_vae_encode_512x640_s", try seconds { _ = try vae.encode(image) }, "vae encode 512x640 (s)")
        let z = Tensor(shape: [1, 4, h, w], data: noise.normal(count: 4 * h * w))
        report("undo_vae_decode_512x640_s", try seconds { _ = try vae.decode(z) }, "vae decode 512x640 (s)")
        report("undo_peak_rss_gib", peakRSS(), "peak RSS of the f32 part (GiB)")
    }
    resetPeakRSS()
    // A whole keyframe from the fp16 files (as published): prompt, image latent, `steps` sampling steps, decode.
    do {
        let pipeline = try PaintsUndoPipeline(folder: folder)
        let image = Tensor(shape: [1, 3, 640, 512], data: noise.normal(count: 3 * 640 * 512).map { max(-1, min(1, $0 / 3)) })
        var request = PaintsUndoPipeline.Request(image: image, operationSteps: [400], prompt: "1girl, solo, long hair")
        request.steps = steps
        let start = noise.normal(count: 4 * h * w)
        let t = try seconds { _ = try pipeline.frames(request, noise: start) }
        report("undo_keyframe_fp16_\(steps)_steps_s", t, "one keyframe 512x640 fp16 weights, \(steps) steps (s)")
        report("undo_keyframe_fp16_peak_rss_gib", peakRSS(), "keyframe fp16 peak RSS (GiB)")
        // A request encodes the picture once and decodes each frame: encode + frames x (steps x step + decode).
        let (step, encode, decode) = (figures["undo_step_512x640_s"] as? Double ?? 0, figures["undo_vae_encode_512x640_s"] as? Double ?? 0,
                                      figures["undo_vae_decode_512x640_s"] as? Double ?? 0)
        for (name, n) in [("draft", 10), ("standard", 20), ("reference", 50)] {
            report("undo_6_keyframes_\(name)_estimate_s", encode + 6 * (Double(n) * step + decode),
                   "estimate: the default 6 keyframes, \(name) (\(n) steps) (s)")
        }
    }
    try writeFigures()
    exit(0)
}

// 1. txt2img at 512x512 from the fp16 weights (the daemon's default when a folder ships them): peak memory.
do {
    // The cut-down real CLIP vocabulary of the fixtures: its ids all lie inside the full-size model's vocabulary.
    let tokenizer = try CLIPTokenizer(folder: repository + "/Tests/Fixtures/diffusion/tokenizer")
    let prompts = PromptEncoder(tokenizer: tokenizer, textModel: try CLIPTextModel(folder: folder + "/text_encoder", variant: "fp16"))
    let pipeline = StableDiffusionPipeline(unet: try UNet2DConditionModel(folder: folder + "/unet", variant: "fp16"),
                                           vae: try AutoencoderKL(folder: folder + "/vae", variant: "fp16"), prompts: prompts,
                                           scheduler: SchedulerConfiguration())
    var request = StableDiffusionPipeline.Request(prompt: "a red umbrella, (line art:1.2)", width: imageSide, height: imageSide)
    request.steps = steps
    var noise = SeededNormalNoise(seed: 7)
    let t = try seconds { _ = try pipeline.generate(request, noise: &noise) }
    report("txt2img_fp16_\(steps)_steps_s", t, "txt2img \(imageSide)x\(imageSide) fp16 weights, \(steps) steps, cfg 7.5 (s)")
    report("txt2img_fp16_peak_rss_gib", peakRSS(), "txt2img fp16 peak RSS (GiB)")
    // --txt2img-memory: this part alone (run once per precision: PAINTSD_PRECISION=bf16 for the other).
    if CommandLine.arguments.contains("--txt2img-memory") {
        print("precision \(OneDNN.precision.rawValue); \(OneDNN.description)")
        exit(0)
    }
}
resetPeakRSS()

// 2. The f32 files, pass by pass, as the PyTorch script times them (after one warm-up pass that faults the mapped
// weights in).
var noise = SeededNormalNoise(seed: 1)
do {
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    for batch in [1, 2] {
        let x = Tensor(shape: [batch, 4, latentSide, latentSide], data: noise.normal(count: batch * 4 * latentSide * latentSide))
        let c = Tensor(shape: [batch, 77, 768], data: noise.normal(count: batch * 77 * 768))
        if batch == 1 { _ = try unet(x, timesteps: [500], context: c) }
        report("unet_batch\(batch)_s", try seconds { _ = try unet(x, timesteps: [500], context: c) },
               "unet pass \(latentSide)x\(latentSide) batch \(batch) (s)")
    }
    report("unet_peak_rss_gib", peakRSS(), "unet f32 peak RSS (GiB)")
}
do {
    let vae = try AutoencoderKL(folder: folder + "/vae", variant: "")
    let z = Tensor(shape: [1, 4, latentSide, latentSide], data: noise.normal(count: 4 * latentSide * latentSide))
    report("vae_decode_512_s", try seconds { _ = try vae.decode(z) }, "vae decode \(imageSide)x\(imageSide) (s)")
    let image = Tensor(shape: [1, 3, imageSide, imageSide], data: noise.normal(count: 3 * imageSide * imageSide).map { max(-1, min(1, $0 / 3)) })
    report("vae_encode_512_s", try seconds { _ = try vae.encode(image) }, "vae encode \(imageSide)x\(imageSide) (s)")
    // Twice the side (issue 15's second VAE size; the quick run's is 256).
    let z2 = Tensor(shape: [1, 4, 2 * latentSide, 2 * latentSide], data: noise.normal(count: 16 * latentSide * latentSide))
    report("vae_decode_1024_s", try seconds { _ = try vae.decode(z2) }, "vae decode \(2 * imageSide)x\(2 * imageSide) (s)")
    let image2 = Tensor(shape: [1, 3, 2 * imageSide, 2 * imageSide],
                        data: noise.normal(count: 12 * imageSide * imageSide).map { max(-1, min(1, $0 / 3)) })
    report("vae_encode_1024_s", try seconds { _ = try vae.encode(image2) }, "vae encode \(2 * imageSide)x\(2 * imageSide) (s)")
}
do {
    let clip = try CLIPTextModel(folder: folder + "/text_encoder", variant: "")
    let ids = [(0..<77).map { ($0 * 7919) % 49408 }]
    _ = try clip.encode(ids)
    report("clip_encode_s", try seconds { _ = try clip.encode(ids) }, "clip encode 77 tokens (s)")
}
report("peak_rss_gib", peakRSS(), "peak RSS of the f32 part (GiB)")
resetPeakRSS()

// 3. One CFG step with a ControlNet (f32 files, as PyTorch runs them): the ControlNet on the batch-2 latents (the
// scaled latents twice, [uncond; cond] text) with the hint embedded once before the step, as StableDiffusionPipeline
// does per run; then the UNet on the same batch with its 12 down residuals and the mid one. One warm-up step, then
// `rounds` timed ones; min and median of each part and of the step, and the ControlNet's share (median over rounds).
let controlNetPath = controlNetFolder ?? folder + "/controlnet/sd15-lineart-random"
if FileManager.default.fileExists(atPath: controlNetPath + "/config.json") {
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    let controlNet = try ControlNetModel(folder: controlNetPath, variant: "")
    let (n, d) = (latentSide, controlNet.conditioningDownscale)
    let width = unet.configuration.crossAttentionDimension
    let x = Tensor(shape: [2, 4, n, n], data: noise.normal(count: 2 * 4 * n * n))
    let c = Tensor(shape: [2, 77, width], data: noise.normal(count: 2 * 77 * width))
    // A sparse white-on-black hint, as line art becomes one (the time does not depend on the values).
    let hint = Tensor(shape: [1, 3, n * d, n * d], data: noise.normal(count: 3 * n * d * n * d).map { $0 > 1.28 ? 1 : 0 })
    var embedded = Tensor(shape: [1], data: [0])
    report("controlnet_hint_embed_s", try seconds { embedded = try controlNet.embedHint(hint) },
           "controlnet hint embedding \(n * d)x\(n * d), once per run (s)")
    let pair = Tensor(shape: [2] + Array(embedded.shape.dropFirst()), data: embedded.data + embedded.data)
    var parts: [String: [Double]] = ["controlnet": [], "unet": [], "step": []]
    var shares: [Double] = []
    for r in 0...rounds {
        var residuals: (down: [Tensor], mid: Tensor)?
        let tNet = try seconds { residuals = try controlNet(x, timesteps: [500], context: c, embeddedHint: pair) }
        let conditioning = UNetConditioning(downResiduals: residuals!.down, midResidual: residuals!.mid)
        let tUNet = try seconds { _ = try unet(x, timesteps: [500], context: c, conditioning: conditioning) }
        guard r > 0 else { continue }      // warm-up: faults the mapped weights in
        parts["controlnet"]!.append(tNet)
        parts["unet"]!.append(tUNet)
        parts["step"]!.append(tNet + tUNet)
        shares.append(tNet / (tNet + tUNet))
        print(String(format: "  round %d: controlnet %.2f s + unet with residuals %.2f s = %.2f s", r, tNet, tUNet, tNet + tUNet))
    }
    figures["controlnet_rounds"] = rounds
    for (name, label) in [("controlnet", "controlnet pass"), ("unet", "unet pass with the residuals"), ("step", "whole cfg step with controlnet")] {
        let values = parts[name]!
        report("controlnet_\(name)_min_s", values.min()!, "\(label) \(n)x\(n) batch 2, min of \(rounds) (s)")
        report("controlnet_\(name)_median_s", median(values), "\(label) \(n)x\(n) batch 2, median of \(rounds) (s)")
    }
    report("controlnet_share", median(shares), "controlnet share of the step (median)")
    report("controlnet_peak_rss_gib", peakRSS(), "peak RSS of the controlnet part (GiB)")
} else {
    print("controlnet step: left out, no ControlNet folder at \(controlNetPath) (Benchmarks/torch/sd15_random.py OUT_DIR --write adds it)")
}
// 4. Issue 13 (f32 files, as PyTorch runs them). Each part's models are the only ones alive while it runs.
figures["issue13_rounds"] = rounds
let issue13Base = quick ? folder + "/quick" : folder
/// One warm-up call of each step, then `rounds` rounds calling each in turn: seconds per round, by name.
func timedRounds(_ steps: [(String, () throws -> Void)]) throws -> [String: [Double]] {
    var times: [String: [Double]] = [:]
    for r in 0...rounds {
        for (name, step) in steps {
            let t = try seconds(step)
            if r > 0 { times[name, default: []].append(t) }
        }
    }
    return times
}
@MainActor func reportRounds(_ key: String, _ values: [Double], _ label: String) {
    report("\(key)_min_s", values.min()!, "\(label), min of \(rounds) (s)")
    report("\(key)_median_s", median(values), "\(label), median of \(rounds) (s)")
}
let ipAdapterPath = folder + "/ip-adapter/ip-adapter_sd15-random.safetensors"
if FileManager.default.fileExists(atPath: ipAdapterPath) {
    resetPeakRSS()
    let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
    let adapter = try IPAdapter(path: ipAdapterPath)
    let n = latentSide, width = unet.configuration.crossAttentionDimension
    let x = Tensor(shape: [2, 4, n, n], data: noise.normal(count: 2 * 4 * n * n))
    let c = Tensor(shape: [2, 77, width], data: noise.normal(count: 2 * 77 * width))
    // [uncond; cond]: IPA's negative is the projection of a zero embedding.
    let embeds = Tensor(shape: [2, adapter.inputWidth], data: [Float](repeating: 0, count: adapter.inputWidth) + noise.normal(count: adapter.inputWidth))
    var adapted = unet
    report("ip_adapter_apply_s", try seconds {
        adapted = try adapter.applied(to: unet, tokens: try adapter.imageTokens(embeds), scale: 0.6)
    }, "IP-Adapter image tokens and their keys/values, once per run (s)")
    let times = try timedRounds([("plain", { _ = try unet(x, timesteps: [500], context: c) }),
                                 ("adapter", { _ = try adapted(x, timesteps: [500], context: c) })])
    reportRounds("ip_adapter_plain_step", times["plain"]!, "cfg step \(n)x\(n) batch 2 without the IP-Adapter")
    reportRounds("ip_adapter_step", times["adapter"]!, "cfg step \(n)x\(n) batch 2 with the IP-Adapter (\(adapter.layerCount) layers, \(adapter.tokenCount) tokens)")
    report("ip_adapter_peak_rss_gib", peakRSS(), "peak RSS of the IP-Adapter part (GiB)")
} else {
    print("ip-adapter step: left out, no \(ipAdapterPath) (Benchmarks/torch/sd15_random.py OUT_DIR --write adds it)")
}
let visionFolder = issue13Base + "/clip-vision/vit-h-random"
if FileManager.default.fileExists(atPath: visionFolder + "/config.json") {
    resetPeakRSS()
    let tower = try CLIPVisionModel(folder: visionFolder, variant: "")
    let c = tower.configuration
    let pixels = Tensor(shape: [1, 3, c.imageSize, c.imageSize], data: noise.normal(count: 3 * c.imageSize * c.imageSize))
    let times = try timedRounds([("encode", { _ = try tower(pixels) })])
    figures["clip_vision_layers"] = c.layers
    reportRounds("clip_vision_encode", times["encode"]!, "CLIP vision encode \(c.imageSize)x\(c.imageSize) (hidden \(c.hiddenSize), \(c.layers) layers)")
    report("clip_vision_peak_rss_gib", peakRSS(), "peak RSS of the CLIP vision part (GiB)")
} else {
    print("clip vision encode: left out, no \(visionFolder) (Benchmarks/torch/sd15_random.py OUT_DIR --write adds it)")
}
let sdroFolder = issue13Base + "/sdro-random/unet"
if FileManager.default.fileExists(atPath: sdroFolder + "/config.json") {
    resetPeakRSS()
    let unet = try UNet2DConditionModel(folder: sdroFolder, variant: "")
    let n = latentSide, width = unet.configuration.crossAttentionDimension, d = unet.blueprintDownscale ?? 8
    let x = Tensor(shape: [1, 4, n, n], data: noise.normal(count: 4 * n * n))
    let context = Tensor(shape: [1, 257, width], data: noise.normal(count: 257 * width))
    let blueprint = Tensor(shape: [1, 3, n * d, n * d], data: noise.normal(count: 3 * n * d * n * d).map { $0 > 1.28 ? 1 : 0 })
    var embedded = try unet.embedBlueprint(blueprint)
    let conditioning = UNetConditioning(blueprintEmbedding: embedded)
    let times = try timedRounds([("step", { _ = try unet(x, timesteps: [500], context: context, conditioning: conditioning) }),
                                 ("embed", { embedded = try unet.embedBlueprint(blueprint) })])
    reportRounds("sdro_step", times["step"]!, "SDRO step \(n)x\(n) batch 1 (one UNet call, blueprint embedded before)")
    reportRounds("sdro_blueprint_embed", times["embed"]!, "SDRO blueprint embedding \(n * d)x\(n * d), once per run")
    report("sdro_peak_rss_gib", peakRSS(), "peak RSS of the SDRO part (GiB)")
} else {
    print("sdro step: left out, no \(sdroFolder) (Benchmarks/torch/sd15_random.py OUT_DIR --write adds it)")
}
try writeFigures()
