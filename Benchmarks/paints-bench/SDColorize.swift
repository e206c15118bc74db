// paints-bench --sd-colorize: issue 12's whole colorize through a real daemon. A fresh `paintsd` (the one beside this
// executable) gets a models directory with the random SD1.5 pipeline and its line-art ControlNet, and a PaintsClient
// sends it a 2048x2048 sketch with scribble hints (Examples/art's umbrella scaled up 4x, nearest neighbour) for the
// `sd` engine at its defaults (working size 512, 20 steps, hint_strength 0.75: img2img from the scribbles' flats, so
// 15 of the 20 steps run) with the ControlNet named explicitly. Prints the total time, the time per sampling step from
// the progress events' timestamps (elapsed_s of the `sample` stage, one event per step), the time outside sampling
// split by stage, and the daemon's peak RSS (VmHWM of /proc/PID/status; it ran nothing before) beside the job's
// `accepted.estimated_peak_bytes` (which leaves out the weights of a model not yet resident, so those are printed too).
//
//     paints-bench --sd-colorize [BENCH_MODELS [ART_DIR]] [--quick]
//
// BENCH_MODELS: what Benchmarks/torch/sd15_random.py --write made (unet/, vae/, text_encoder/ and
// controlnet/sd15-lineart-random/; default /tmp/paintsd-sd15-random), or a models directory as the daemon reads it
// (a pipeline folder and controlnet/ in it). For the first, a models directory of symbolic links is made under /tmp for
// the run: MODELS/sd15-random/ (the components, the tokenizer of BENCH_MODELS or else the fixtures' cut-down CLIP
// vocabulary, model_index.json and SD1.5's scheduler config) and MODELS/controlnet -> BENCH_MODELS/controlnet.
// --quick (or PAINTSD_BENCH_QUICK=1): working size 128 and 4 steps (3 run), a smoke run of the same code.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster

/// Runs the benchmark; the exit status.
func sdColorizeBench(_ arguments: [String]) -> Int32 {
    do {
        try SDColorizeBench(arguments).run()
        return 0
    } catch {
        print("sd colorize bench failed: \(error)")
        return 1
    }
}

struct SDColorizeBench {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static let controlNetName = "sd15-lineart-random"
    let benchModels: String
    let art: String
    let quick: Bool
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let work = "/tmp/paints-bench-sd-\(getpid())"

    init(_ arguments: [String]) {
        let plain = arguments.filter { $0 != "--quick" }
        benchModels = plain.first ?? "/tmp/paintsd-sd15-random"
        art = plain.count > 1 ? plain[1] : URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/Examples/art"
        quick = arguments.contains("--quick") || !["", "0"].contains(ProcessInfo.processInfo.environment["PAINTSD_BENCH_QUICK"] ?? "")
    }

    /// A fresh paintsd beside this benchmark, listening on `work`/paintsd.sock over `models`, its environment without
    /// this process's kernel choice (paintsd makes its own, as a user's daemon would); through setpriv where there is
    /// one, so that a bench killed mid-job leaves no daemon. Returns once the socket is there.
    static func launchDaemon(models: String, work: String) throws -> (Process, socket: String) {
        let fm = FileManager.default
        let paintsd = ((try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/paintsd"
        let socket = work + "/paintsd.sock"
        let daemonArguments = [paintsd, "--no-default-endpoint", "--listen", "ipc://" + socket, "--models", models, "--log-level", "error"]
        let process = Process()
        let setpriv = "/usr/bin/setpriv"
        if fm.isExecutableFile(atPath: setpriv) {
            process.executableURL = URL(fileURLWithPath: setpriv)
            process.arguments = ["--pdeathsig", "KILL", "--"] + daemonArguments
        } else {
            process.executableURL = URL(fileURLWithPath: paintsd)
            process.arguments = Array(daemonArguments.dropFirst())
        }
        var environment = ProcessInfo.processInfo.environment
        for key in ["OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT", "PAINTSD_REEXECUTED"] { environment[key] = nil }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let startDeadline = Date().addingTimeInterval(60)
        while !exists(socket) {
            guard process.isRunning, startDeadline.timeIntervalSinceNow > 0 else {
                if process.isRunning { process.terminate() }
                throw Failure("paintsd did not start")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return (process, socket)
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// A diffusers SD pipeline folder as the sd engine recognises one.
    static func isPipelineFolder(_ path: String) -> Bool {
        ["model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json"].allSatisfy { exists(path + "/" + $0) }
    }

    /// The models directory for the daemon: BENCH_MODELS itself when it holds a pipeline folder, else one of links.
    func modelsDirectory() throws -> String {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: benchModels)) ?? []
        if names.contains(where: { Self.isPipelineFolder(benchModels + "/" + $0) }) { return benchModels }
        for component in ["unet", "vae", "text_encoder"] where !Self.exists(benchModels + "/\(component)/config.json") {
            throw Failure("\(benchModels) has no \(component)/ (write it with Benchmarks/torch/sd15_random.py \(benchModels) --write)")
        }
        let models = work + "/models", pipeline = models + "/sd15-random"
        try fm.createDirectory(atPath: pipeline + "/scheduler", withIntermediateDirectories: true)
        for component in ["unet", "vae", "text_encoder"] {
            try fm.createSymbolicLink(atPath: pipeline + "/" + component, withDestinationPath: benchModels + "/" + component)
        }
        let tokenizer = Self.exists(benchModels + "/tokenizer/vocab.json") ? benchModels + "/tokenizer"
            : repository + "/Tests/Fixtures/diffusion/tokenizer"
        try fm.createSymbolicLink(atPath: pipeline + "/tokenizer", withDestinationPath: tokenizer)
        try Data(#"{"_class_name": "StableDiffusionPipeline"}"#.utf8).write(to: URL(fileURLWithPath: pipeline + "/model_index.json"))
        // SD1.5's published scheduler config (the engine samples with its own sampler over these betas).
        try Data(#"{"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "prediction_type": "epsilon"}"#.utf8)
            .write(to: URL(fileURLWithPath: pipeline + "/scheduler/scheduler_config.json"))
        if Self.exists(benchModels + "/controlnet") {
            try fm.createSymbolicLink(atPath: models + "/controlnet", withDestinationPath: benchModels + "/controlnet")
        }
        return models
    }

    /// `image` `factor` times larger, each pixel repeated (nearest neighbour: the lines stay as hard as drawn).
    static func nearest(_ image: RGBAImage, factor: Int) -> RGBAImage {
        var out = RGBAImage(width: image.width * factor, height: image.height * factor)
        for y in 0..<out.height {
            for x in 0..<out.width { out.setPixel(x: x, y: y, image.pixel(x: x / factor, y: y / factor)) }
        }
        return out
    }

    /// The bytes of the weights the daemon loads for a pipeline or ControlNet folder: per component, the fp16 variant
    /// when there is one (the loaders prefer it), else the plain file.
    static func weightBytes(_ folders: [String]) -> Int {
        let fm = FileManager.default
        var total = 0
        for folder in folders {
            let files = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }
            let pick = files.first { $0.hasSuffix(".fp16.safetensors") } ?? files.first
            if let pick, let size = (try? fm.attributesOfItem(atPath: folder + "/" + pick))?[.size] as? Int { total += size }
        }
        return total
    }

    /// VmRSS and VmHWM of a process, in bytes.
    static func memory(of pid: Int32) -> (resident: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> Int? {
            text.split(separator: "\n").first { $0.hasPrefix(key + ":") }?.split(separator: " ").compactMap { Int($0) }.first
        }
        guard let rss = kilobytes("VmRSS"), let hwm = kilobytes("VmHWM") else { return nil }
        return (rss * 1024, hwm * 1024)
    }

    static func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }

    static func row(_ name: String, _ value: String) {
        print("  " + (name.count < 44 ? name.padding(toLength: 44, withPad: " ", startingAt: 0) : name + " ") + value)
    }

    func run() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: work) }
        let models = try modelsDirectory()
        let pipelineName = ((try? fm.contentsOfDirectory(atPath: models)) ?? []).sorted().first { Self.isPipelineFolder(models + "/" + $0) }!
        let controlNet = models + "/controlnet/" + Self.controlNetName
        guard Self.exists(controlNet + "/config.json") else {
            throw Failure("no ControlNet at \(controlNet) (Benchmarks/torch/sd15_random.py \(benchModels) --write adds it)")
        }
        let (size, steps) = quick ? (128, 4) : (512, 20)
        let side = 2048
        let sketch512 = try PNGCodec.read(path: art + "/umbrella-lineart.png"), hints512 = try PNGCodec.read(path: art + "/umbrella-hints.png")
        let sketch = Self.nearest(sketch512, factor: side / sketch512.width), hints = Self.nearest(hints512, factor: side / hints512.width)
        let sketchPNG = try PNGCodec.encode(sketch), hintsPNG = try PNGCodec.encode(hints)

        let flags = Set(((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        print("paints-bench --sd-colorize: CPU \(cpuSummary()); "
              + ["avx2", "avx512f", "avx512_bf16"].map { "\($0) \(flags.contains($0) ? "yes" : "no")" }.joined(separator: " "))
        if quick { print("QUICK smoke run: working size \(size), \(steps) steps; the figures say nothing about speed") }
        print("models \(models) (pipeline \(pipelineName), ControlNet \(Self.controlNetName))")

        let (process, socket) = try Self.launchDaemon(models: models, work: work)
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        let pid = process.processIdentifier
        let client = try PaintsClient(endpoint: "ipc://" + socket)
        defer { client.close() }
        let hello = try client.call(.hello, timeout: 60).result
        let sd = hello["engines"]?.arrayValue?.first { $0["name"]?.stringValue == "sd" }
            ?? hello["engines"]?["sd"]
        print("daemon pid \(pid), compute \(hello["compute"]?.serializedString() ?? "?")")
        print("sd engine: status \(sd?["status"]?.serializedString() ?? "?"), assets \(sd?["assets"]?.serializedString() ?? "?")")
        guard let before = Self.memory(of: pid) else { throw Failure("cannot read /proc/\(pid)/status") }

        let options: [String: JSONValue] = ["controlnet": .string(Self.controlNetName), "size": JSONValue(size), "steps": JSONValue(steps)]
        let request = Request(id: "colorize", method: .colorize,
                              params: ["sketch": ["frame": 1, "encoding": "png"], "hints": ["frame": 2, "encoding": "png"],
                                       "engine": "sd", "prompt": "a red umbrella in the rain, watercolor", "seed": 1,
                                       "options": .object(options)],
                              stream: true, frames: [Data(), sketchPNG, hintsPNG])
        let start = DispatchTime.now().uptimeNanoseconds
        try client.send(request)
        var estimate: Int?
        var events: [(stage: String, step: Int, steps: Int, elapsed: Double)] = []
        var outcome: Reply?
        let limit: TimeInterval = quick ? 600 : 3600
        while outcome == nil {
            let left = limit - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            guard left > 0, let reply = try client.receive(for: "colorize", timeout: left) else { break }
            switch reply.type {
            case .accepted: estimate = reply.body["estimated_peak_bytes"]?.intValue
            case .progress:
                if let p = reply.body["progress"], let stage = p["stage"]?.stringValue {
                    events.append((stage, p["step"]?.intValue ?? 0, p["steps"]?.intValue ?? 0, p["elapsed_s"]?.doubleValue ?? 0))
                }
            case .result, .error: outcome = reply
            }
        }
        let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let after = Self.memory(of: pid)
        _ = try? client.call(.shutdown, ["mode": "cancel"], timeout: 10)
        guard let outcome else { throw Failure(String(format: "no result within %.0f s", limit)) }
        if let error = outcome.protocolError { throw Failure("the daemon answered \(error)") }
        let result = outcome.result
        let info = result["info"]
        let used = info?["controlnets"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []

        // Sampling steps from the `sample` events (one per step, elapsed_s since the job started running).
        let sample = events.filter { $0.stage == "sample" && $0.step >= 1 }
        let run = sample.last?.steps ?? 0
        let gaps = zip(sample.dropFirst(), sample).map { $0.elapsed - $1.elapsed }
        let perStep = gaps.isEmpty ? (sample.first?.elapsed ?? 0) : gaps.reduce(0, +) / Double(gaps.count)
        let sampling = perStep * Double(sample.count)
        func at(_ stage: String, _ step: Int) -> Double? { events.first { $0.stage == stage && $0.step == step }?.elapsed }
        let timings = result["timings"]
        func ms(_ key: String) -> Double { (timings?[key]?.doubleValue ?? 0) / 1000 }

        print(String(format: "sd colorize %dx%d through paintsd: hints, ControlNet %@, working size %@, %d steps asked, %d run (%@ start, hint_strength %@)",
                     side, side, used.isEmpty ? "NONE (check the models directory)" : used.joined(separator: ", "),
                     info?["working_size"]?.serializedString() ?? "?", steps, run, info?["start"]?.stringValue ?? "?",
                     info?["hint_strength"]?.serializedString() ?? "-"))
        if let warning = info?["warning"]?.stringValue { print("  warning: \(warning)") }
        Self.row("total (request sent to result received)", String(format: "%.2f s (daemon total_ms %.2f s: decode %.2f, run %.2f, encode %.2f)",
                                                                 total, ms("total_ms"), ms("decode_ms"), ms("run_ms"), ms("encode_ms")))
        if gaps.isEmpty {
            Self.row("sampling step", "fewer than 2 sample events: no per-step figure")
        } else {
            Self.row("sampling step (from the sample events)", String(format: "mean %.2f s, median %.2f s, min %.2f s, max %.2f s over %d gaps",
                                                                      perStep, gaps.sorted()[gaps.count / 2], gaps.min()!, gaps.max()!, gaps.count))
        }
        Self.row("sampling, all \(sample.count) steps (mean x count)", String(format: "%.2f s", sampling))
        Self.row("outside sampling (total less that)", String(format: "%.2f s", total - sampling))
        // The stages around sampling, from the events' timestamps.
        if let fill = at("fill", 0), let load = at("load", 0), let first = sample.first?.elapsed, let last = sample.last?.elapsed,
           let compose = at("compose", 0), let composed = at("compose", 1) {
            Self.row("  fill (built-in flats at 2048)", String(format: "%.2f s", load - fill))
            Self.row("  load, prompt, hint, VAE encode, embed", String(format: "%.2f s (to the first step's event less one step)", first - load - perStep))
            Self.row("  VAE decode (last step to compose)", String(format: "%.2f s", compose - last))
            Self.row("  compose (colour layer, palette lock, lines)", String(format: "%.2f s", composed - compose))
            // Before the fill event: the request's PNGs decoded (the events count from the job's start, before that).
            Self.row("  PNG decode and encode, transfer, queue", String(format: "%.2f s (the rest)", total - composed + fill))
        } else {
            Self.row("stages", "missing events: \(events.map { "\($0.stage) \($0.step)" }.joined(separator: ", "))")
        }
        let weights = Self.weightBytes(["unet", "vae", "text_encoder"].map { models + "/" + pipelineName + "/" + $0 } + [controlNet])
        if let after {
            Self.row("daemon peak RSS (VmHWM)", "\(Self.gib(after.peak)); RSS \(Self.gib(before.resident)) before the request, \(Self.gib(after.resident)) after it")
        }
        Self.row("accepted.estimated_peak_bytes", estimate.map { Self.gib($0) } ?? "none sent")
        if let estimate, let after {
            Self.row("  + weights loaded (fp16 files)", "\(Self.gib(weights)) -> \(Self.gib(estimate + weights)); peak less RSS before: \(Self.gib(after.peak - before.resident)) (measured/estimate+weights \(String(format: "%.2f", Double(after.peak - before.resident) / Double(estimate + weights))))")
        }
    }
}
