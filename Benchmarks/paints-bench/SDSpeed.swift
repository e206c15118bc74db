// paints-bench --sd-speed: issue 14's speed options through a real daemon, on the random full-size SD1.5 weights of
// Benchmarks/torch/sd15_random.py --write (which also writes lora/lcm-lora-sdv1-5.safetensors, a RANDOM rank-64 kohya
// LoRA on the UNet attention/feed-forward linears and the text encoder's q/k/v/out, and taesd/, a random AutoencoderTiny
// at diffusers' default config). The LoRA is named like the LCM-LoRA so that `quality: fast` takes it; it is no LCM
// distillation, its pictures are noise: only the times mean something.
//
// One fresh `paintsd`, a models directory of links under /tmp (the one --sd-colorize makes, plus lora/ with the file
// under its own name and as ink-rank64.safetensors, and taesd/ linked in or out between jobs: the engine looks for it
// per job). The 512x512 sketch (Examples/art/umbrella-lineart.png), NO hints (txt2img from noise: every step runs), the
// line-art ControlNet, working size 512, seed 1. The jobs, in order:
//   1. steps 1 (balanced otherwise: CFG), no LoRA, no TAESD   the cold job: loads the models
//   2. the same again                                          warm: the 1-step baseline
//   3. steps 1 with loras [ink-rank64, weight 1]               the LoRA switch (read, bind to copies, embed)
//   3b. the same again; 3c. steps 1 without it                 the switch when bound already, and back
//   4. quality fast, no TAESD                                  4 LCM steps, guidance 1 (one UNet call a step)
//   4m. quality fast, lora_merge, twice                        the LoRA merged (the first job merges; the second reuses)
//   5. quality fast, TAESD installed                           the same with a TAESD preview each step
//   6. quality balanced, steps 6, TAESD installed              CFG steps (the per-step time is the figure; 20 run)
// For each: total (request to result), the daemon's run_ms, the time per step from the `sample` progress events, the
// time outside sampling. Then the TAESD preview cost per step (5 less 4), the LoRA switch (3 less 2), the merge (4m's
// first less its second) and balanced / best at their 20 / 30 steps, estimated from 6's time per step.
//
//     paints-bench --sd-speed [BENCH_MODELS [ART_DIR]] [--quick]
//
// --quick (or PAINTSD_BENCH_QUICK=1): working size 128, balanced 2 steps: a smoke run of the same code.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster

func sdSpeedBench(_ arguments: [String]) -> Int32 {
    do {
        try SDSpeedBench(arguments).run()
        return 0
    } catch {
        print("sd speed bench failed: \(error)")
        return 1
    }
}

struct SDSpeedBench {
    typealias Failure = SDColorizeBench.Failure
    let base: SDColorizeBench
    init(_ arguments: [String]) { base = SDColorizeBench(arguments) }

    struct Outcome {
        var total: Double
        var runMs: Double
        var steps: [Double]  // elapsed_s of each sample event (step >= 1)
        var gaps: [Double]
        var perStep: Double { gaps.isEmpty ? (steps.first ?? 0) : gaps.reduce(0, +) / Double(gaps.count) }
        var sampling: Double { perStep * Double(steps.count) }
        var info: JSONValue?
    }

    func run() throws {
        let fm = FileManager.default
        let bench = base.benchModels
        try fm.createDirectory(atPath: base.work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: base.work) }
        let models = try base.modelsDirectory()
        let loraFile = bench + "/lora/lcm-lora-sdv1-5.safetensors", taesdFolder = bench + "/taesd"
        guard SDColorizeBench.exists(loraFile), SDColorizeBench.exists(taesdFolder + "/config.json") else {
            throw Failure("no \(loraFile) or \(taesdFolder) (Benchmarks/torch/sd15_random.py \(bench) --write writes them)")
        }
        guard SDColorizeBench.exists(models + "/controlnet/" + SDColorizeBench.controlNetName + "/config.json") else {
            throw Failure("no ControlNet under \(models)/controlnet")
        }
        try fm.createDirectory(atPath: models + "/lora", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: models + "/lora/lcm-lora-sdv1-5.safetensors", withDestinationPath: loraFile)
        try fm.createSymbolicLink(atPath: models + "/lora/ink-rank64.safetensors", withDestinationPath: loraFile)
        let taesdLink = models + "/taesd"
        func taesd(_ on: Bool) throws {
            try? fm.removeItem(atPath: taesdLink)
            if on { try fm.createSymbolicLink(atPath: taesdLink, withDestinationPath: taesdFolder) }
        }
        try taesd(false)

        let quick = base.quick
        let size = quick ? 128 : 512, balancedSteps = quick ? 2 : 6
        let sketchPNG = try PNGCodec.encode(try PNGCodec.read(path: base.art + "/umbrella-lineart.png"))
        let flags = Set(((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        print("paints-bench --sd-speed: CPU \(cpuSummary()); \(ProcessInfo.processInfo.activeProcessorCount) cores; "
              + ["avx2", "avx512f", "avx512_bf16"].map { "\($0) \(flags.contains($0) ? "yes" : "no")" }.joined(separator: " "))
        if quick { print("QUICK smoke run: working size \(size), balanced \(balancedSteps) steps; the figures say nothing about speed") }
        print("models \(models); RANDOM weights, and a RANDOM rank-64 LoRA named lcm-lora-sdv1-5 (not an LCM distillation: times only)")

        // A fresh daemon, as --sd-colorize starts one.
        let (process, socket) = try SDColorizeBench.launchDaemon(models: models, work: base.work)
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        let client = try PaintsClient(endpoint: "ipc://" + socket)
        defer { client.close() }
        let hello = try client.call(.hello, timeout: 60).result
        let sd = hello["engines"]?.arrayValue?.first { $0["name"]?.stringValue == "sd" } ?? hello["engines"]?["sd"]
        print("daemon pid \(process.processIdentifier); sd loras \(sd?["assets"]?["loras"]?.serializedString() ?? "?")")

        var counter = 0
        func job(_ label: String, _ extra: [String: JSONValue]) throws -> Outcome {
            counter += 1
            var options: [String: JSONValue] = ["controlnet": .string(SDColorizeBench.controlNetName), "size": JSONValue(size)]
            for (k, v) in extra { options[k] = v }
            let id = "speed\(counter)"
            let request = Request(id: id, method: .colorize,
                                  params: ["sketch": ["frame": 1, "encoding": "png"], "engine": "sd",
                                           "prompt": "a red umbrella in the rain, watercolor", "seed": 1, "options": .object(options)],
                                  stream: true, frames: [Data(), sketchPNG])
            let start = DispatchTime.now().uptimeNanoseconds
            try client.send(request)
            var sample: [Double] = []
            var outcome: Reply?
            let limit: TimeInterval = quick ? 600 : 1800
            while outcome == nil {
                let left = limit - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                guard left > 0, let reply = try client.receive(for: id, timeout: left) else { break }
                switch reply.type {
                case .progress:
                    if let p = reply.body["progress"], p["stage"]?.stringValue == "sample", (p["step"]?.intValue ?? 0) >= 1 {
                        sample.append(p["elapsed_s"]?.doubleValue ?? 0)
                    }
                case .result, .error: outcome = reply
                default: break
                }
            }
            let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            guard let outcome else { throw Failure("\(label): no result within \(Int(limit)) s") }
            if let error = outcome.protocolError { throw Failure("\(label): the daemon answered \(error)") }
            let result = outcome.result
            let o = Outcome(total: total, runMs: result["timings"]?["run_ms"]?.doubleValue ?? 0, steps: sample,
                            gaps: zip(sample.dropFirst(), sample).map { $0 - $1 }, info: result["info"])
            let i = o.info
            print(String(format: "%@: total %.2f s, run_ms %.0f, %d steps, %.2f s per step%@, outside sampling %.2f s",
                         label, o.total, o.runMs, o.steps.count, o.perStep,
                         o.gaps.isEmpty ? " (1 step: its elapsed_s)" : String(format: " (mean of %d gaps, min %.2f max %.2f)", o.gaps.count, o.gaps.min()!, o.gaps.max()!),
                         o.total - o.sampling))
            print("    info: quality \(i?["quality"]?.stringValue ?? "?"), sampler \(i?["sampler"]?.serializedString() ?? "?"), guidance \(i?["guidance"]?.serializedString() ?? "?"), "
                  + "preview \(i?["preview"]?.stringValue ?? "?"), loras \(i?["loras"]?.serializedString() ?? "none"), controlnets \(i?["controlnets"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.joined(separator: ",") ?? "none"), start \(i?["start"]?.stringValue ?? "?")")
            return o
        }

        let cold = try job("1. steps 1, no LoRA, no TAESD (cold: loads the models)", ["steps": 1])
        let one = try job("2. steps 1, no LoRA (warm)", ["steps": 1])
        let oneLoRA = try job("3. steps 1, loras [ink-rank64 1.0] (right after 2)", ["steps": 1, "loras": [["name": "ink-rank64", "weight": 1]]])
        let oneLoRAAgain = try job("3b. the same again (the LoRA set already bound)", ["steps": 1, "loras": [["name": "ink-rank64", "weight": 1]]])
        let oneBack = try job("3c. steps 1, no LoRA (switching back)", ["steps": 1])
        let fast = try job("4. quality fast, no TAESD", ["quality": "fast"])
        let fastMerging = try job("4m. quality fast, lora_merge (merges)", ["quality": "fast", "lora_merge": true])
        let fastMerged = try job("4m. quality fast, lora_merge (merged already)", ["quality": "fast", "lora_merge": true])
        try taesd(true)
        let fastTAESD = try job("5. quality fast, TAESD installed", ["quality": "fast"])
        let balanced = try job("6. quality balanced, steps \(balancedSteps), TAESD installed", ["quality": "balanced", "steps": JSONValue(balancedSteps)])
        _ = try? client.call(.shutdown, ["mode": "cancel"], timeout: 10)

        print("summary (512x512 sketch, no hints, ControlNet, working size \(size)):")
        let row = SDColorizeBench.row
        row("model load (cold 1-step job less warm one)", String(format: "%.2f s", cold.total - one.total))
        row("fast: time per step, no TAESD / TAESD", String(format: "%.2f s / %.2f s", fast.perStep, fastTAESD.perStep))
        row("fast: total, no TAESD / TAESD", String(format: "%.2f s / %.2f s (outside sampling %.2f / %.2f s)",
                                                   fast.total, fastTAESD.total, fast.total - fast.sampling, fastTAESD.total - fastTAESD.sampling))
        row("fast, LoRA merged: time per step / total", String(format: "%.2f s / %.2f s (unfused %.2f s / %.2f s); the merge %.2f s (first merged job less the second)",
                                                              fastMerged.perStep, fastMerged.total, fast.perStep, fast.total, fastMerging.total - fastMerged.total))
        row("TAESD preview cost per step (5 less 4)", String(format: "%.3f s (%.1f%% of a fast step)", fastTAESD.perStep - fast.perStep,
                                                              100 * (fastTAESD.perStep - fast.perStep) / max(fast.perStep, 1e-9)))
        row("balanced: time per step (CFG)", String(format: "%.2f s; %d steps total %.2f s, outside sampling %.2f s",
                                                    balanced.perStep, balanced.steps.count, balanced.total, balanced.total - balanced.sampling))
        if !quick {
            row("balanced at 20 steps (estimate)", String(format: "%.1f s = outside %.2f + 20 x %.2f", balanced.total - balanced.sampling + 20 * balanced.perStep,
                                                          balanced.total - balanced.sampling, balanced.perStep))
        }
        if !quick {
            row("best at 30 steps (estimate)", String(format: "%.1f s = outside %.2f + 30 x %.2f", balanced.total - balanced.sampling + 30 * balanced.perStep,
                                                      balanced.total - balanced.sampling, balanced.perStep))
        }
        row("fast vs balanced-20 (estimate)", String(format: "%.2f s vs %.1f s", fastTAESD.total, balanced.total - balanced.sampling + 20 * balanced.perStep))
        row("LoRA switch: run_ms 1 step with / without", String(format: "%.0f / %.0f ms: +%.2f s (read, bind to copies, text embeddings, LoRA'd step)",
                                                                  oneLoRA.runMs, one.runMs, (oneLoRA.runMs - one.runMs) / 1000))
        row("  again with it / back without", String(format: "%.0f / %.0f ms", oneLoRAAgain.runMs, oneBack.runMs))
    }
}
