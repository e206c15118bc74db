// paints-bench: prints the figures `make bench` promises: built-in engine speed at 2048x2048, PNG codec speed,
// socket round trips to a live daemon (idle and while a job runs), cancel latency per engine and method, and the
// daemon's peak memory per job kind beside the engine's estimate. Run from the repository root, release build.
//
//     paints-bench [ART_DIR [MODELS_DIR]]
//     paints-bench --sd-colorize [BENCH_MODELS [ART_DIR]] [--quick]     (see SDColorize.swift)
//     paints-bench --sd-speed [BENCH_MODELS [ART_DIR]] [--quick]        (see SDSpeed.swift)
//
// MODELS_DIR (or $PAINTS_BENCH_MODELS) adds the model engines (sd, paints-undo, wd-tagger) to the cancel and memory
// figures: a models directory as the daemon reads it, `fixtures` (the default when run from the repository root: the
// tiny test models of Tests/Fixtures, linked into a temporary models directory) or `none`.
import Foundation
import Logging
import PaintsClient
import PaintsDaemon
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTensor

OpenBLASKernel.selectBestKernelOrReexecute()

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Runs `body` `count` times; returns the median seconds.
func time(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<count {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

func line(_ name: String, _ value: String) {
    print((name.count < 52 ? name.padding(toLength: 52, withPad: " ", startingAt: 0) : name + " ") + value)
}

/// The CPU as /proc/cpuinfo names it (first processor), with its family and model numbers (and the Zen generation
/// they mean for AMD, whose virtual machines often say only "AMD EPYC") and whether it has AVX-512, which decides the
/// OpenBLAS and tensor kernels.
func cpuSummary() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown (no /proc/cpuinfo)" }
    var fields: [String: String] = [:]
    for row in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if row.trimmingCharacters(in: .whitespaces).isEmpty, !fields.isEmpty { break }     // end of the first processor
        guard let colon = row.firstIndex(of: ":") else { continue }
        let key = row[..<colon].trimmingCharacters(in: .whitespaces)
        if fields[key] == nil { fields[key] = row[row.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
    }
    let flags = Set((fields["flags"] ?? "").split(separator: " ").map(String.init))
    let avx512 = flags.filter { $0.hasPrefix("avx512") }.sorted()
    let vector = !avx512.isEmpty ? "AVX-512 yes (\(avx512.joined(separator: " ")))"
        : flags.contains("avx2") ? "AVX-512 no (AVX2)" : "AVX-512 no, AVX2 no"
    var generation = ""
    if fields["vendor_id"] == "AuthenticAMD", let family = fields["cpu family"].flatMap({ Int($0) }),
       let model = fields["model"].flatMap({ Int($0) }) {
        switch (family, model) {
        case (23, _): generation = ", Zen/Zen 2"
        case (25, 0x00...0x0F), (25, 0x20...0x5F): generation = ", Zen 3"
        case (25, _): generation = ", Zen 4"
        case (26, _): generation = ", Zen 5"
        default: break
        }
    }
    return "\(fields["model name"] ?? "?") (\(fields["vendor_id"] ?? "?") family \(fields["cpu family"] ?? "?") model \(fields["model"] ?? "?")\(generation)); \(vector)"
}

// `paints-bench --sd-colorize [BENCH_MODELS [ART_DIR]]`: issue 12's whole sd colorize with a ControlNet through a
// fresh daemon (SDColorize.swift; run by `make bench-diffusion`).
if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "--sd-colorize" {
    exit(sdColorizeBench(Array(CommandLine.arguments.dropFirst(2))))
}
// `paints-bench --sd-speed [BENCH_MODELS [ART_DIR]]`: issue 14's quality presets, TAESD previews and a LoRA switch
// through a fresh daemon (SDSpeed.swift; run by `make bench-diffusion`).
if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "--sd-speed" {
    exit(sdSpeedBench(Array(CommandLine.arguments.dropFirst(2))))
}

let art = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Examples/art"
let sketch512 = try PNGCodec.read(path: art + "/umbrella-lineart.png")
let hints512 = try PNGCodec.read(path: art + "/umbrella-hints.png")
let colored512 = try PNGCodec.read(path: art + "/umbrella-colored.png")
let side = 2048
let sketch = sketch512.resized(width: side, height: side)
let hints = hints512.resized(width: side, height: side)
let picture = colored512.resized(width: side, height: side)

print("paints-bench (release build; medians) on \(ProcessInfo.processInfo.activeProcessorCount) cores; OpenBLAS kernel \(BLAS.coreName)")
line("CPU", cpuSummary())
let engine = BuiltinEngine()
let context = DetachedJobContext()
let colorize = try time(5) { _ = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: context) }
line("builtin colorize 2048x2048 (hints)", String(format: "%.3f s", colorize))
let withReference = try time(3) {
    _ = try engine.colorize(ColorizeInput(sketch: sketch, reference: picture, options: ["composite_lines": true]), context: context)
}
line("builtin colorize 2048x2048 (reference palette)", String(format: "%.3f s", withReference))
let undoOne = try time(3) { _ = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [500]), context: context) }
let undoSix = try time(3) {
    _ = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [400, 600, 800, 900, 950, 999]), context: context)
}
line("builtin undo.preview 2048x2048, 1 frame", String(format: "%.3f s", undoOne))
line("builtin undo.preview 2048x2048, 6 frames", String(format: "%.3f s (%.3f s per extra frame)", undoSix, (undoSix - undoOne) / 5))
var encoded = Data()
let encodeFast = try time(5) { encoded = try PNGCodec.encode(picture, fast: true) }
line("PNG encode 2048x2048 (fast)", String(format: "%.3f s, %d KiB", encodeFast, encoded.count / 1024))
let decode = try time(5) { _ = try PNGCodec.decode(encoded) }
line("PNG decode 2048x2048", String(format: "%.3f s", decode))

// Socket round trips against a live in-process daemon.
let directory = "/tmp/paints-bench-\(getpid())"
var logger = Logger(label: "bench")
logger.logLevel = .error
let server = PaintsServer(configuration: DaemonConfiguration(endpoints: ["ipc://\(directory)/paintsd.sock"]),
                          engines: BuiltinEngines.registry(), logger: logger)
let endpoint = try server.start()[0]
let client = try PaintsClient(endpoint: endpoint)
@MainActor func pings(_ count: Int) throws -> [Double] {
    try (0..<count).map { _ in
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try client.call(.ping)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3
    }
}
_ = try pings(50)
let idle = try pings(2000).sorted()
line("ping round trip, idle daemon (ipc)", String(format: "mean %.0f us, p50 %.0f us, p99 %.0f us",
                                                  idle.reduce(0, +) / Double(idle.count), idle[idle.count / 2], idle[idle.count * 99 / 100]))
let worker = try PaintsClient(endpoint: endpoint)
let big = try PNGCodec.encode(picture, fast: true)
try worker.send(Request(id: "busy", method: .undoPreview, params: ["image": ["frame": 1, "encoding": "png"], "count": 12],
                        frames: [Data(), big]))
Thread.sleep(forTimeInterval: 0.3)
let busy = try pings(300).sorted()
line("ping round trip while a 2048x2048 job runs", String(format: "mean %.0f us, p50 %.0f us, p99 %.0f us",
                                                          busy.reduce(0, +) / Double(busy.count), busy[busy.count / 2], busy[busy.count * 99 / 100]))
let start = Date()
let roundTrip = try client.call(Request(id: "rt", method: .colorize, params: ["sketch": ["frame": 1, "encoding": "png"],
                                                                              "hints": ["frame": 2, "encoding": "png"]],
                                        frames: [Data(), try PNGCodec.encode(sketch), try PNGCodec.encode(hints)]), timeout: 120)
line("colorize 2048x2048 over the socket, end to end", String(format: "%.3f s (queued behind the job above; timings %@)",
                                                              Date().timeIntervalSince(start),
                                                              roundTrip.result["timings"]?.serializedString() ?? "?"))
_ = try? worker.cancel(job: "none")
server.requestShutdown(mode: .cancel)
server.wait()
try? FileManager.default.removeItem(atPath: directory)

// MARK: - Cancel latency and peak memory per job kind

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
func mib(_ bytes: Int) -> String { String(format: "%.0f MiB", Double(bytes) / Double(1 << 20)) }

/// One kind of job, as a client sends it.
struct JobKind {
    var name: String
    var method: Method
    var params: [String: JSONValue]
    /// The request's image frames (frame 1...).
    var images: [Data]
    /// What the daemon knows of the job before running it, and the engine that estimates its memory from that.
    var shape: JobShape
    var engine: any Engine

    func request(id: String, stream: Bool = false) -> Request {
        Request(id: id, method: method, params: params, stream: stream, frames: [Data()] + images)
    }
}

/// Where a models directory for the model engines comes from: the second argument, else $PAINTS_BENCH_MODELS, else the
/// tiny test fixtures when run from the repository root; `none` leaves the model engines out.
let modelsChoice = CommandLine.arguments.count > 2 ? CommandLine.arguments[2]
    : ProcessInfo.processInfo.environment["PAINTS_BENCH_MODELS"].flatMap { $0.isEmpty ? nil : $0 } ?? "fixtures"
let root = FileManager.default.currentDirectoryPath

/// A models directory like the tests make: the tiny SD1 stack as the pipeline folder `tiny`, the Paints-UNDO
/// single-frame fixture and the ViT tagger fixture, linked from Tests/Fixtures.
func fixtureModelsDirectory(in parent: String) throws -> String? {
    let fixtures = root + "/Tests/Fixtures"
    let fm = FileManager.default
    guard fm.fileExists(atPath: fixtures + "/diffusion/unet-sd1") else { return nil }
    let dir = parent + "/models"
    try fm.createDirectory(atPath: dir + "/tiny/scheduler", withIntermediateDirectories: true)
    for (link, target) in [("unet", "unet-sd1"), ("vae", "vae"), ("text_encoder", "clip-sd1"), ("tokenizer", "tokenizer")] {
        try fm.createSymbolicLink(atPath: dir + "/tiny/" + link, withDestinationPath: fixtures + "/diffusion/" + target)
    }
    try Data(#"{"_class_name": "StableDiffusionPipeline"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/tiny/model_index.json"))
    try Data(#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}"#.utf8)
        .write(to: URL(fileURLWithPath: dir + "/tiny/scheduler/scheduler_config.json"))
    try fm.createSymbolicLink(atPath: dir + "/paints_undo_single_frame", withDestinationPath: fixtures + "/paints-undo/model")
    try fm.createSymbolicLink(atPath: dir + "/wd-vit-tagger-v3", withDestinationPath: fixtures + "/tagger/vit")
    return dir
}

let workDirectory = "/tmp/paints-bench-\(getpid())-jobs"
try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
let emptyModels = workDirectory + "/no-models"
try FileManager.default.createDirectory(atPath: emptyModels, withIntermediateDirectories: true)
var models: String?
var modelsNote = ""
switch modelsChoice {
case "none": break
case "fixtures":
    models = try fixtureModelsDirectory(in: workDirectory)
    modelsNote = "tiny fixture model"
    if models == nil { line("model engines", "left out: no Tests/Fixtures here (run from the repository root, or name a models directory)") }
default:
    models = modelsChoice
}

// The job kinds. Built-in engines at the sizes issue 10 names; model engines at small working sizes and few steps,
// so that full-size models too give runs of seconds to tens of seconds on two cores.
let builtin = BuiltinEngine()
let sketchPNG = try PNGCodec.encode(sketch), hintsPNG = try PNGCodec.encode(hints), picturePNG = try PNGCodec.encode(picture)
let colorizeParams: [String: JSONValue] = ["sketch": ["frame": 1, "encoding": "png"], "hints": ["frame": 2, "encoding": "png"],
                                           "engine": "builtin"]
func undoParams(engine: String, count: Int? = nil, options: [String: JSONValue] = [:]) -> [String: JSONValue] {
    var p: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "engine": .string(engine), "seed": 1]
    if let count { p["count"] = JSONValue(count) }
    if !options.isEmpty { p["options"] = .object(options) }
    return p
}
let keyframes = UndoPreviewParams.defaultKeyframes.count
let kinds: [JobKind] = [
    JobKind(name: "builtin colorize 2048x2048 (hints)", method: .colorize, params: colorizeParams, images: [sketchPNG, hintsPNG],
            shape: JobShape(method: .colorize, width: side, height: side, otherPixels: side * side), engine: builtin),
    JobKind(name: "builtin undo.preview 2048x2048, count 64", method: .undoPreview, params: undoParams(engine: "builtin", count: 64),
            images: [picturePNG], shape: JobShape(method: .undoPreview, width: side, height: side, frames: 64), engine: builtin),
    JobKind(name: "builtin undo.sequence 2048x2048 (\(keyframes) keyframes)", method: .undoSequence,
            params: undoParams(engine: "builtin"), images: [picturePNG],
            shape: JobShape(method: .undoSequence, width: side, height: side, frames: keyframes + 2), engine: builtin),
]
var modelKinds: [JobKind] = []
if let models {
    let sd = StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 8 << 30)
    let tagger = WDTaggerEngine(modelsDirectory: models)
    let undo = PaintsUndoEngine(modelsDirectory: models, tagger: tagger)
    let note = modelsNote.isEmpty ? "" : ", \(modelsNote)"
    let art512 = (sketch: try PNGCodec.encode(sketch512), hints: try PNGCodec.encode(hints512), picture: try PNGCodec.encode(colored512))
    if let model = sd.models.first(where: { $0 == "tiny" }) ?? sd.models.first(where: { !$0.hasPrefix("paints_undo") }) ?? sd.models.first {
        // 256 rather than smaller: attention over 32x32 latents is where one operation runs longest.
        let options: [String: JSONValue] = ["model": .string(model), "size": 256, "steps": 4, "strength": 0.5]
        modelKinds.append(JobKind(
            name: "sd colorize 512x512 at 256, 2 steps\(note)", method: .colorize,
            params: ["sketch": ["frame": 1, "encoding": "png"], "hints": ["frame": 2, "encoding": "png"], "engine": "sd",
                     "prompt": "a watercolor painting", "seed": 1, "options": .object(options)],
            images: [art512.sketch, art512.hints],
            shape: JobShape(method: .colorize, width: 512, height: 512, otherPixels: 512 * 512, options: options), engine: sd))
    }
    if !undo.models.isEmpty {
        // No prompt: the tagger writes one first (stage `tag`), as for a user who gives none.
        let options: [String: JSONValue] = ["size": 256, "steps": 2]
        modelKinds.append(JobKind(
            name: "paints-undo undo.preview 512x512 at 256, 1x2 steps\(note)", method: .undoPreview,
            params: undoParams(engine: "paints-undo", count: 1, options: options), images: [art512.picture],
            shape: JobShape(method: .undoPreview, width: 512, height: 512, frames: 1, options: options), engine: undo))
        modelKinds.append(JobKind(
            name: "paints-undo undo.sequence 512x512 at 256, 1x2 steps\(note)", method: .undoSequence,
            params: undoParams(engine: "paints-undo", count: 1, options: options), images: [art512.picture],
            shape: JobShape(method: .undoSequence, width: 512, height: 512, frames: 3, options: options), engine: undo))
    }
    if !tagger.models.isEmpty {
        modelKinds.append(JobKind(
            name: "wd-tagger tag 2048x2048\(note)", method: .tag, params: ["image": ["frame": 1, "encoding": "png"], "engine": "wd-tagger"],
            images: [picturePNG], shape: JobShape(method: .tag, width: side, height: side), engine: tagger))
    }
    if modelKinds.isEmpty { line("model engines", "none found in \(models)") }
}

/// Sends a job and waits for `accepted`; returns the job id.
func submit(_ kind: JobKind, id: String, stream: Bool = false, on client: PaintsClient) throws -> String {
    try client.send(kind.request(id: id, stream: stream))
    guard let reply = try client.receive(for: id, timeout: 60) else { throw BenchError("no reply to \(kind.name)") }
    guard reply.type == .accepted, let job = reply.job else {
        throw BenchError(reply.protocolError.map { "\($0)" } ?? reply.header.serializedString())
    }
    return job
}

/// The job's last reply (`result` or `error`), or nil after `timeout` seconds; `progress` sees its progress events.
func final(of id: String, on client: PaintsClient, timeout: TimeInterval,
           progress: (JSONValue) -> Void = { _ in }) throws -> Reply? {
    let deadline = Date().addingTimeInterval(timeout)
    while deadline.timeIntervalSinceNow > 0 {
        guard let reply = try client.receive(for: id, timeout: deadline.timeIntervalSinceNow) else { return nil }
        if reply.type == .result || reply.type == .error { return reply }
        if reply.type == .progress, let report = reply.body["progress"] { progress(report) }
    }
    return nil
}

/// Polls `jobs.status` until the job runs (a worker took it); false when it ended first.
func waitUntilRunning(_ job: String, control: PaintsClient) throws -> Bool {
    while true {
        let state = try control.call(.jobsStatus, ["job": .string(job)]).result["state"]?.stringValue
        if state == "running" { return true }
        if state != "queued" { return false }
        Thread.sleep(forTimeInterval: 0.001)
    }
}

/// Cancel latency of one job kind: one uncancelled run gives its length T (from running to result); then each sample
/// submits the job, waits until it runs, waits a delay drawn from a seeded RNG in 0...0.9 T, sends `jobs.cancel` and
/// times from sending it to receiving the job's `cancelled` error. Samples stream progress, so the slowest one's stage
/// (the last reported before the cancel) is named.
@MainActor func cancelLatency(_ kind: JobKind, warmUp: Bool, worker: PaintsClient, control: PaintsClient,
                              rng: inout SplitMix64) throws -> String {
    func run() throws -> Double {
        let id = worker.makeId()
        let job = try submit(kind, id: id, on: worker)
        _ = try waitUntilRunning(job, control: control)
        let start = DispatchTime.now().uptimeNanoseconds
        guard let reply = try final(of: id, on: worker, timeout: 600) else { throw BenchError("no result within 600 s") }
        guard reply.type == .result else { throw BenchError("\(reply.protocolError.map { "\($0)" } ?? "error")") }
        return seconds(since: start)
    }
    if warmUp { _ = try run() }          // loads the model
    let length = try run()
    // About 20 s of samples at most (the whole bench stays within minutes on 2 cores): 20 of a short job, fewer (at
    // least 5) of a long one.
    let count = max(5, min(20, Int(20 / (0.45 * length + 0.1))))
    var latencies: [Double] = []
    var slowest = (latency: 0.0, stage: "")
    var finishedFirst = 0
    for _ in 0..<count {
        let delay = Double(rng.next() >> 11) / Double(1 << 53) * 0.9 * length
        let id = worker.makeId()
        let job = try submit(kind, id: id, stream: true, on: worker)
        guard try waitUntilRunning(job, control: control) else { finishedFirst += 1; continue }
        Thread.sleep(forTimeInterval: delay)
        let cancelId = "c" + id
        let start = DispatchTime.now().uptimeNanoseconds
        try control.send(Request(id: cancelId, method: .jobsCancel, params: ["job": .string(job)]))
        var stage = "start"
        guard let reply = try final(of: id, on: worker, timeout: 120, progress: { report in
            if let elapsed = report["elapsed_s"]?.doubleValue, elapsed <= delay, let name = report["stage"]?.stringValue { stage = name }
        }) else { throw BenchError("job \(job) did not end within 120 s of its cancel") }
        let latency = seconds(since: start)
        _ = try control.receive(for: cancelId, timeout: 10)
        if reply.protocolError?.code == .cancelled {
            latencies.append(latency)
            if latency > slowest.latency { slowest = (latency, stage) }
        } else if reply.type == .result {
            finishedFirst += 1
        } else {
            throw BenchError("cancelled job ended with \(reply.protocolError.map { "\($0)" } ?? "?")")
        }
    }
    guard !latencies.isEmpty else { return "no sample: every job finished before its cancel (run \(String(format: "%.2f", length)) s)" }
    let sorted = latencies.sorted().map { $0 * 1000 }
    let p99 = sorted.count >= 100 ? String(format: "p99 %.0f ms", sorted[sorted.count * 99 / 100])
        : String(format: "p99 %.0f ms (the max; last progress before it: %@)", sorted[sorted.count - 1], slowest.stage)
    let early = finishedFirst > 0 ? " (\(finishedFirst) more finished before their cancel)" : ""
    return String(format: "p50 %.0f ms, %@; %d samples%@ of a %.2f s run", sorted[sorted.count / 2], p99,
                  sorted.count, early, length)
}

do {
    var engines = BuiltinEngines.registry()
    if let models {
        engines.register(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 8 << 30))
        let tagger = WDTaggerEngine(modelsDirectory: models)
        engines.register(tagger)
        engines.register(PaintsUndoEngine(modelsDirectory: models, tagger: tagger))
    }
    let cancelServer = PaintsServer(configuration: DaemonConfiguration(endpoints: ["ipc://\(workDirectory)/cancel.sock"]),
                                    engines: engines, logger: logger)
    let cancelEndpoint = try cancelServer.start()[0]
    let worker = try PaintsClient(endpoint: cancelEndpoint), control = try PaintsClient(endpoint: cancelEndpoint)
    var rng = SplitMix64(seed: 10)
    line("cancel latency (jobs.cancel sent to error received)",
         "each job cancelled once running plus a seeded delay in 0-90% of one uncancelled run; p99 is the max below 100 samples")
    var warm: Set<String> = ["builtin"]     // model engines run once untimed first, to load their model
    for kind in kinds + modelKinds {
        do {
            let warmUp = warm.insert(kind.engine.name).inserted
            line("cancel " + kind.name, try cancelLatency(kind, warmUp: warmUp, worker: worker, control: control, rng: &rng))
        } catch {
            line("cancel " + kind.name, "failed: \(error)")
        }
    }
    cancelServer.requestShutdown(mode: .cancel)
    cancelServer.wait()
}

/// VmRSS and VmHWM of a process, in bytes.
func memory(of pid: Int32) -> (resident: Int, peak: Int)? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    func kilobytes(_ key: String) -> Int? {
        text.split(separator: "\n").first { $0.hasPrefix(key + ":") }?.split(separator: " ").compactMap { Int($0) }.first
    }
    guard let rss = kilobytes("VmRSS"), let hwm = kilobytes("VmHWM") else { return nil }
    return (rss * 1024, hwm * 1024)
}

/// The paintsd executable beside this one.
let paintsdPath = ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    .split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/paintsd"

/// The estimate of the job's peak the daemon sent: `estimated_peak_bytes` of its `accepted` reply, or of the details of
/// a `resource_exhausted` refusal.
func daemonEstimate(_ reply: Reply) -> Int? {
    reply.body["estimated_peak_bytes"]?.intValue ?? reply.protocolError?.details["estimated_peak_bytes"]?.intValue
}

/// Peak memory of one job kind: a fresh `paintsd` runs it as its first job; the daemon's peak RSS (VmHWM, reset through
/// /proc/PID/clear_refs just before the request is sent) less its RSS then.
func peakMemory(_ kind: JobKind, models: String, index: Int, limit: TimeInterval) throws -> String {
    let socket = "\(workDirectory)/memory-\(index).sock"
    let process = Process()
    let arguments = ["--no-default-endpoint", "--listen", "ipc://" + socket, "--models", models, "--log-level", "error"]
    // Through setpriv (util-linux) where there is one, so that a bench killed mid-job leaves no daemon behind; it
    // execs paintsd, which keeps its pid.
    let setpriv = "/usr/bin/setpriv"
    if FileManager.default.isExecutableFile(atPath: setpriv) {
        process.executableURL = URL(fileURLWithPath: setpriv)
        process.arguments = ["--pdeathsig", "KILL", "--", paintsdPath] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: paintsdPath)
        process.arguments = arguments
    }
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    defer {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
    let pid = process.processIdentifier
    let startDeadline = Date().addingTimeInterval(30)
    while !FileManager.default.fileExists(atPath: socket) {
        guard process.isRunning, startDeadline.timeIntervalSinceNow > 0 else { throw BenchError("paintsd did not start") }
        Thread.sleep(forTimeInterval: 0.01)
    }
    let client = try PaintsClient(endpoint: "ipc://" + socket)
    defer { client.close() }
    _ = try client.call(.hello, timeout: 30)
    try "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)      // VmHWM = VmRSS from here
    guard let before = memory(of: pid) else { throw BenchError("cannot read /proc/\(pid)/status") }
    let start = DispatchTime.now().uptimeNanoseconds
    try client.send(kind.request(id: "memory"))
    var reported: Int?
    var outcome: Reply?
    while outcome == nil {
        let left = limit - seconds(since: start)
        guard left > 0, let reply = try client.receive(for: "memory", timeout: left) else { break }
        if let bytes = daemonEstimate(reply) { reported = bytes }
        if reply.type == .result || reply.type == .error { outcome = reply }
    }
    let elapsed = seconds(since: start)
    guard let after = memory(of: pid) else { throw BenchError("cannot read /proc/\(pid)/status") }
    _ = try? client.call(.shutdown, ["mode": "cancel"], timeout: 10)
    // The daemon's own figure when it sends one, else what the engine says for the job's shape as the bench sees it.
    let estimateBytes = reported ?? kind.engine.estimatedPeakBytes(kind.shape)
    let source = reported == nil ? " (the engine's, computed here: the daemon sent none)" : ""
    let growth = after.peak - before.resident
    guard let outcome else {
        return String(format: "at least %@ when stopped after %.0f s; estimate %@%@", mib(growth), limit, mib(estimateBytes), source)
    }
    if let error = outcome.protocolError { return "refused, \(error); estimate \(mib(estimateBytes))\(source)" }
    let model = models == emptyModels ? "" : ", with loading the model"
    return String(format: "%@, estimate %@ (measured %.2f of it)%@; %.1f s%@", mib(growth), mib(estimateBytes),
                  Double(growth) / Double(max(1, estimateBytes)), source, elapsed, model)
}

// Memory: the kinds above and the built-in engines on bigger pictures, each the first job of its own daemon.
let large = 4096
let sketchLarge = sketch512.resized(width: large, height: large), hintsLarge = hints512.resized(width: large, height: large)
// Issue 10's 62 KB all-zero PNG is 8-bit grey, which decodes to opaque black: the same pixels, sent as RGBA.
let zeros = try PNGCodec.encode(RGBAImage(width: 8000, height: 8000, fill: .black))
let memoryKinds = [kinds[0],
                   JobKind(name: "builtin colorize 4096x4096 (hints)", method: .colorize, params: colorizeParams,
                           images: [try PNGCodec.encode(sketchLarge), try PNGCodec.encode(hintsLarge)],
                           shape: JobShape(method: .colorize, width: large, height: large, otherPixels: large * large), engine: builtin),
                   kinds[1],
                   JobKind(name: "builtin undo.preview 4096x4096, count 4", method: .undoPreview, params: undoParams(engine: "builtin", count: 4),
                           images: [try PNGCodec.encode(colored512.resized(width: large, height: large), fast: true)],
                           shape: JobShape(method: .undoPreview, width: large, height: large, frames: 4), engine: builtin),
                   kinds[2],
                   JobKind(name: "builtin undo.preview 8000x8000 black (\(zeros.count / 1024) KiB PNG), count 16", method: .undoPreview,
                           params: undoParams(engine: "builtin", count: 16), images: [zeros],
                           shape: JobShape(method: .undoPreview, width: 8000, height: 8000, frames: 16), engine: builtin)]
line("peak memory (each job alone in a fresh paintsd)",
     "its peak RSS (VmHWM) less its RSS before the request, beside the daemon's estimated_peak_bytes")
for (index, kind) in (memoryKinds + modelKinds).enumerated() {
    let name = "memory " + kind.name
    do {
        line(name, try peakMemory(kind, models: kind.engine.name == "builtin" ? emptyModels : models ?? emptyModels, index: index, limit: 90))
    } catch {
        line(name, "failed: \(error)")
    }
}
try? FileManager.default.removeItem(atPath: workDirectory)
