// paints-fuzz: a seeded random mutator over the parsers and loaders that read what others wrote (safetensors files,
// single-file checkpoints, model folders, PNGs, request headers). `make fuzz` runs it; CI does not.
//
//   paints-fuzz [--iterations N] [--seed S] [--targets a,b] [--hang-seconds T] [--save DIR]
//   paints-fuzz --replay TARGET FILE [LABEL]      runs one saved input in this process (a trap shows its message)
//
// Input i of a target is a function of (seed, target, i) alone, so a run is reproducible. The supervisor runs the
// inputs in a child process (this executable with --worker), which writes each input to disk before trying it: when
// the child dies (an array trap is SIGILL, an overflow SIGTRAP) or stops making progress, the supervisor saves that
// input under Tests/Fixtures/fuzz/regressions/<target>/ (named by a hash of its content) and restarts the child at
// the next input. Saved inputs become regression tests (each must load to a typed error).
import Foundation
import Glibc
import PaintsTensor

struct Options {
    var iterations = 500
    var seed: UInt64 = 1
    var targets = Targets.all.map(\.name)
    var hangSeconds = 60.0
    var root = FileManager.default.currentDirectoryPath
    var save: String?
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("paints-fuzz: \(message)\n".utf8))
    exit(2)
}

func required<T>(_ value: T?, _ message: String) -> T {
    guard let value else { fail(message) }
    return value
}

func target(named name: String) -> any FuzzTarget {
    guard let t = Targets.all.first(where: { $0.name == name }) else {
        fail("no target \(name) (targets: \(Targets.all.map(\.name).joined(separator: ", ")))")
    }
    return t
}

/// FNV-1a, for content-addressed file names.
func fnv1a(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(h, radix: 16)
}

/// The generator of input `index` of `target`: independent of every other input.
func generator(seed: UInt64, target: String, index: Int) -> SplitMix64 {
    var mixer = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15))
    var h = mixer.next()
    for b in target.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return SplitMix64(seed: h)
}

func input(_ t: any FuzzTarget, seeds: [Seed], seed: UInt64, index: Int) -> (input: FuzzInput, seed: Seed) {
    var rng = generator(seed: seed, target: t.name, index: index)
    // Larger seeds (whole models) more often than the small hand-made ones: weight log2(size) squared.
    let weights = seeds.map { s -> Int in let bits = max(1, s.bytes.count.bitWidth - s.bytes.count.leadingZeroBitCount); return bits * bits }
    var ticket = rng.below(weights.reduce(0, +)), chosen = 0
    while ticket >= weights[chosen] { ticket -= weights[chosen]; chosen += 1 }
    let base = seeds[chosen]
    // Now and then the seed itself (the loaders must accept the corpus), else a mutation.
    if index < seeds.count { return (FuzzInput(bytes: seeds[index].bytes, label: seeds[index].label), seeds[index]) }
    return (t.mutate(base, &rng), base)
}

// MARK: - Worker: runs inputs from..<to, writing each before trying it.

/// Writes a state file; the worker stops when it cannot (a crash could not be attributed to its input).
func put(_ path: String, _ data: Data) {
    guard FileManager.default.createFile(atPath: path, contents: data) else { fail("cannot write \(path)") }
}

func worker(_ arguments: [String]) -> Never {
    guard arguments.count == 6, let seed = UInt64(arguments[1]), let from = Int(arguments[2]), let to = Int(arguments[3]) else {
        fail("--worker TARGET SEED FROM TO STATE ROOT")
    }
    let t = target(named: arguments[0]), state = arguments[4], root = arguments[5]
    let scratch = state + "/scratch"
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    let seeds: [Seed]
    do { seeds = try t.seeds(root: root) } catch { fail("\(t.name): cannot read the corpus: \(error)") }
    guard !seeds.isEmpty else { fail("\(t.name): the corpus is empty") }
    var accepted = 0, refused = 0
    func progress(_ i: Int, _ phase: String) {
        put(state + "/progress", Data("\(i) \(accepted) \(refused) \(phase)".utf8))
    }
    let supervisor = getppid()
    for i in from..<to {
        if getppid() != supervisor { exit(3) }  // the supervisor is gone (interrupted): stop too
        progress(i, "mutate")
        let (x, base) = input(t, seeds: seeds, seed: seed, index: i)
        // On disk before it runs: if it kills this process, the supervisor knows which input did. A mutated model
        // file is also kept as a patch of its seed (a header change of a megabytes file).
        put(state + "/input", Data(x.bytes))
        put(state + "/label", Data(x.label.utf8))
        var patch: Data?
        if x.label.hasSuffix(".safetensors"), base.bytes.count > 1 << 16, let mine = SafeTensorsImage(Data(x.bytes)),
           let theirs = SafeTensorsImage(Data(base.bytes)) {
            patch = mine.patch(of: theirs, source: base.source)
        }
        try? FileManager.default.removeItem(atPath: state + "/patch")
        if let patch { put(state + "/patch", patch) }
        progress(i, "run")
        if t.run(x, scratch: scratch, root: root) == nil { accepted += 1 } else { refused += 1 }
    }
    progress(to, "done")
    exit(0)
}

// MARK: - Supervisor

struct Tally {
    var accepted = 0, refused = 0
    var saved: [String] = []
}

func readProgress(_ state: String) -> (index: Int, accepted: Int, refused: Int, phase: String)? {
    guard let text = try? String(contentsOfFile: state + "/progress", encoding: .utf8) else { return nil }
    let parts = text.split(separator: " ")
    guard parts.count == 4, let i = Int(parts[0]), let a = Int(parts[1]), let r = Int(parts[2]) else { return nil }
    return (i, a, r, String(parts[3]))
}

/// Runs `t`'s inputs 0..<iterations in child processes; saves those that kill or stall the child.
func supervise(_ t: any FuzzTarget, options: Options) -> Tally {
    let fm = FileManager.default
    let state = NSTemporaryDirectory() + "paints-fuzz-\(getpid())-\(t.name)"
    try? fm.removeItem(atPath: state)
    try? fm.createDirectory(atPath: state, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: state) }
    let saveDirectory = (options.save ?? options.root + "/Tests/Fixtures/fuzz/regressions") + "/" + t.name
    var tally = Tally()
    var next = 0
    while next < options.iterations {
        try? fm.removeItem(atPath: state + "/progress")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = ["--worker", t.name, String(options.seed), String(next), String(options.iterations), state, options.root]
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_DETERMINISTIC_HASHING"] = "1"
        environment["SWIFT_BACKTRACE"] = "enable=no"  // the runtime's one-line message is enough, and fast
        child.environment = environment
        put(state + "/log", Data())
        child.standardOutput = FileHandle(forWritingAtPath: state + "/log")
        child.standardError = child.standardOutput
        do { try child.run() } catch { fail("cannot start a worker: \(error)") }
        var last = "", lastChange = Date()
        var hung = false
        while child.isRunning {
            usleep(100_000)
            let now = readProgress(state).map { "\($0.index) \($0.phase)" } ?? ""
            if now != last {
                (last, lastChange) = (now, Date())
            } else if Date().timeIntervalSince(lastChange) > options.hangSeconds {
                kill(child.processIdentifier, SIGKILL)
                hung = true
                break
            }
        }
        child.waitUntilExit()
        guard let progress = readProgress(state) else {
            let log = (try? String(contentsOfFile: state + "/log", encoding: .utf8)) ?? ""
            fail("\(t.name): the worker ended before its first input (status \(child.terminationStatus)): \(log.suffix(2000))")
        }
        tally.accepted += progress.accepted
        tally.refused += progress.refused
        if child.terminationReason == .exit && child.terminationStatus == 0 && !hung { break }
        guard progress.phase == "run" else {
            // The mutator itself failed: a bug of this tool, not of the code under test.
            let log = ((try? String(contentsOfFile: state + "/log", encoding: .utf8)) ?? "").suffix(2000)
            fail("\(t.name): making input \(progress.index) failed (\(progress.phase)): \(log)")
        }
        // The input at progress.index killed or stalled the worker.
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: state + "/input"))) ?? Data())
        let patch = try? Data(contentsOf: URL(fileURLWithPath: state + "/patch"))
        let label = (try? String(contentsOfFile: state + "/label", encoding: .utf8)) ?? ""
        let kind = hung ? "hang" : "crash"
        var name = "\(kind)-\(fnv1a(bytes + Array(label.utf8)))"
        if t.name == "folder" { name += "__" + label.replacingOccurrences(of: "/", with: "%") } else { name += t.fileExtension }
        if patch != nil { name += ".patch.json" }
        try? fm.createDirectory(atPath: saveDirectory, withIntermediateDirectories: true)
        guard fm.createFile(atPath: saveDirectory + "/" + name, contents: patch ?? Data(bytes)) else { fail("cannot write \(saveDirectory)/\(name)") }
        let log = ((try? String(contentsOfFile: state + "/log", encoding: .utf8)) ?? "").split(separator: "\n")
            .filter { $0.contains("Fatal error") || $0.contains("rror:") }.suffix(2).joined(separator: " | ")
        let how = hung ? "no progress for \(Int(options.hangSeconds)) s" : "\(child.terminationReason == .uncaughtSignal ? "signal" : "status") \(child.terminationStatus)"
        print("  \(t.name) input \(progress.index): \(how), saved \(saveDirectory)/\(name) \(log.isEmpty ? "" : "(\(log))")")
        tally.saved.append(name)
        next = progress.index + 1
    }
    return tally
}

func replay(_ arguments: [String]) -> Never {
    guard arguments.count >= 2 else { fail("--replay TARGET FILE [LABEL]") }
    let t = target(named: arguments[0])
    guard var data = FileManager.default.contents(atPath: arguments[1]) else { fail("cannot read \(arguments[1])") }
    var label = arguments.count > 2 ? arguments[2] : (arguments[1] as NSString).lastPathComponent
    if label.hasSuffix(".patch.json") {
        do { data = try SafeTensorsPatch.apply(data, root: FileManager.default.currentDirectoryPath) } catch { fail("\(error)") }
        label = String(label.dropLast(".patch.json".count))
    }
    if t.name == "folder", arguments.count == 2, let r = label.range(of: "__") {
        label = String(label[r.upperBound...]).replacingOccurrences(of: "%", with: "/")
    }
    let scratch = NSTemporaryDirectory() + "paints-fuzz-replay-\(getpid())"
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let outcome = t.run(FuzzInput(bytes: [UInt8](data), label: label), scratch: scratch, root: FileManager.default.currentDirectoryPath)
    print(outcome.map { "refused: \($0)" } ?? "accepted")
    exit(0)
}

// MARK: - Main

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--worker" { worker(Array(arguments.dropFirst())) }
if arguments.first == "--replay" { replay(Array(arguments.dropFirst())) }
var options = Options()
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    guard let value = arguments.first else { fail("\(flag) needs a value") }
    arguments.removeFirst()
    switch flag {
    case "--iterations": options.iterations = required(Int(value), "--iterations: a count")
    case "--seed": options.seed = required(UInt64(value), "--seed: an unsigned integer")
    case "--targets": options.targets = value.split(separator: ",").map(String.init)
    case "--hang-seconds": options.hangSeconds = required(Double(value), "--hang-seconds: seconds")
    case "--root": options.root = value
    case "--save": options.save = value
    default: fail("unknown option \(flag)")
    }
}
let started = Date()
var found = 0
print("paints-fuzz: seed \(options.seed), \(options.iterations) inputs per target")
for name in options.targets {
    let t = target(named: name)
    let begin = Date()
    let tally = supervise(t, options: options)
    found += tally.saved.count
    let seconds = String(format: "%.1f", Date().timeIntervalSince(begin))
    print("\(t.name): \(tally.accepted) accepted, \(tally.refused) refused with a typed error, \(tally.saved.count) crashed or hung, \(seconds) s")
}
print("paints-fuzz: \(found) inputs saved as regressions, \(String(format: "%.1f", Date().timeIntervalSince(started))) s in all")
exit(found == 0 ? 0 : 1)
