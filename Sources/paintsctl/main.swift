// paintsctl: a command-line client of paintsd for scripts and terminals (files in and out, progress, exit codes).
import ArgumentParser
import Foundation
import Glibc
import PaintsClient
import PaintsProtocol

/// Exit codes scripts can rely on (also in the README).
enum Exit {
    static let daemonError: Int32 = 1
    static let badInput: Int32 = 2
    static let noDaemon: Int32 = 3
    static let timeout: Int32 = 4
    static let cancelled: Int32 = 5
    static let busy: Int32 = 6

    static func code(for error: ClientError) -> Int32 {
        switch error {
        case .noDaemon, .transport: return noDaemon
        case .timeout: return timeout
        case .badReply: return daemonError
        case .daemon(let e):
            switch e.code {
            case .invalidParams, .invalidRequest, .parseError, .imageDecodeFailed, .imageTooLarge, .imageSizeMismatch,
                 .pathNotAllowed, .frameOutOfRange, .messageTooLarge, .unsupportedEngine, .unknownMethod:
                return badInput
            case .cancelled: return cancelled
            case .queueFull, .shuttingDown, .resourceExhausted: return busy
            default: return daemonError
            }
        }
    }
}

struct Connection: ParsableArguments {
    @Option(name: .long, help: "Daemon endpoint (default: $PAINTSD_ENDPOINT, else the per-user ipc socket).")
    var endpoint: String?

    @Option(name: .long, help: "Seconds to wait for any reply before giving up.")
    var timeout: Double = 120

    @Flag(name: .long, help: "Print the daemon's JSON replies instead of text.")
    var json = false

    var resolvedEndpoint: String { endpoint ?? DefaultEndpoint.endpoint() }

    /// Runs `body` with a connected client, mapping failures to messages and exit codes; returns what `body` returns.
    @discardableResult
    func with<T>(_ body: (PaintsClient) throws(ClientError) -> T) throws -> T {
        do {
            let client = try PaintsClient(endpoint: resolvedEndpoint)
            defer { client.close() }
            return try body(client)
        } catch {
            let message: String
            if case .daemon(let e) = error, json {
                message = e.json.serializedString()
            } else {
                message = "paintsctl: \(error)"
            }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            throw ExitCode(Exit.code(for: error))
        }
    }

    func printResult(_ reply: Reply, text: () -> String) {
        print(json ? reply.header.serializedString() : text())
    }

    /// An engine's warning about its result (`info.warning`, e.g. nothing to colour from), on stderr.
    func printWarning(_ reply: Reply) {
        if let warning = reply.result["info"]?["warning"]?.stringValue {
            FileHandle.standardError.write(Data("paintsctl: warning: \(warning)\n".utf8))
        }
    }

    /// Sends a job request, showing its progress unless `quiet`, and waits for the result.
    func runJob(_ client: PaintsClient, _ method: PaintsProtocol.Method, _ params: [String: JSONValue], frames: [Data],
                quiet: Bool) throws(ClientError) -> Reply {
        var display = ProgressDisplay()
        let request = Request(id: client.makeId(), method: method, params: params, stream: !quiet, frames: frames)
        let reply = try client.call(request, timeout: timeout) { if !quiet { display.show($0) } }
        display.finish()
        return reply
    }
}

/// Progress display: a bar on a terminal, plain lines otherwise (on stderr, so stdout stays machine-readable).
struct ProgressDisplay {
    let isTerminal = isatty(2) == 1
    var lastLine = ""

    mutating func show(_ reply: Reply) {
        var line: String
        switch reply.type {
        case .accepted:
            line = "accepted as \(reply.job ?? "?") (queue position \(reply.body["queue_position"]?.intValue ?? 0))"
        case .progress:
            guard let p = reply.body["progress"].flatMap(ProgressReport.init(json:)) else { return }
            let percent = Int((p.fraction * 100).rounded())
            let eta = p.etaSeconds.map { String(format: " eta %.1fs", $0) } ?? ""
            if isTerminal {
                let filled = percent / 5
                line = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 20 - filled) + "] "
                    + "\(percent)% \(p.stage) \(p.step)/\(p.steps)\(eta)"
            } else {
                line = "progress \(percent)% \(p.stage) \(p.step)/\(p.steps)\(eta)"
            }
        default:
            return
        }
        if isTerminal && reply.type == .progress {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        lastLine = line
    }

    func finish() {
        if isTerminal && !lastLine.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

func readFile(_ path: String) throws -> Data {
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("paintsctl: cannot read \(path)\n".utf8))
        throw ExitCode(Exit.badInput)
    }
    return data
}

/// Says what is wrong on stderr and exits with `code`.
func fail(_ message: String, code: Int32 = Exit.badInput) -> ExitCode {
    FileHandle.standardError.write(Data("paintsctl: \(message)\n".utf8))
    return ExitCode(code)
}

/// `path` joined to a directory given on the command line (which may end with a slash).
func join(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// Why a system call on `path` failed, in words.
func reason(_ error: Int32, _ path: String) -> String {
    switch error {
    case EACCES, EPERM: "permission denied"
    case EROFS: "the file system is read-only"
    case EISDIR: "\(path) is a directory"
    case ENOSPC: "no space left on the device"
    case ENAMETOOLONG: "the name is too long"
    case ENOENT: "files cannot be created there"
    default: String(cString: strerror(error)).lowercased()
    }
}

/// Checks, before a job is sent, that `path` can be written as a file (`flag` names the option in the message). The
/// file is opened for writing without truncation, or created and removed again; nothing is left changed.
func checkWritableFile(_ path: String, flag: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let parent = directory.isEmpty ? "." : directory
    var info = stat()
    if stat(parent, &info) != 0 {
        throw fail("cannot write \(flag) \(path): the directory \(parent) does not exist")
    }
    guard info.st_mode & S_IFMT == S_IFDIR else { throw fail("cannot write \(flag) \(path): \(parent) is not a directory") }
    if stat(path, &info) == 0 {
        guard info.st_mode & S_IFMT != S_IFDIR else { throw fail("cannot write \(flag) \(path): it is a directory") }
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw fail("cannot write \(flag) \(path): \(reason(errno, path))") }
        close(fd)
    } else {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot write \(flag) \(path): \(reason(errno, path))") }
        close(fd)
        unlink(path)
    }
}

/// Creates `path` (and its parents) if needed and checks that files can be written in it, before a job is sent.
func prepareDirectory(_ path: String, flag: String) throws {
    var info = stat()
    if stat(path, &info) == 0 {
        guard info.st_mode & S_IFMT == S_IFDIR else { throw fail("cannot use \(flag) \(path): it is a file, not a directory") }
    } else {
        // Component by component, so the message names the part that is wrong.
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if stat(prefix, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw fail("cannot create \(flag) \(path): \(prefix) is a file, not a directory")
                }
            } else if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw fail("cannot create \(flag) \(path): cannot create \(prefix): \(reason(errno, prefix))")
            }
            prefix += "/"
        }
    }
    let probe = join(path, ".paintsctl-\(getpid())")
    let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw fail("cannot write files in \(flag) \(path): \(reason(errno, path))") }
    close(fd)
    unlink(probe)
}

/// Writes result images; returns the "wrote PATH" lines to print.
func save(_ files: [(data: Data, path: String)]) throws -> String {
    for file in files {
        let fd = open(file.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot write \(file.path): \(reason(errno, file.path))") }
        defer { close(fd) }
        var written = 0
        while written < file.data.count {
            let n = file.data.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail("cannot write \(file.path): \(reason(errno, file.path))") }
            written += n
        }
    }
    return files.map { "wrote \($0.path)" }.joined(separator: "\n")
}

/// `--seed`: -1 (or absent) lets the daemon choose one, as the plug-ins do.
func checkSeed(_ seed: Int?) throws {
    if let seed, seed != -1, !(0...maxSeed).contains(seed) {
        throw ValidationError("--seed takes -1 (random) or an integer in 0...\(maxSeed), got \(seed)")
    }
}

func requestSeed(_ seed: Int?) -> Int? { seed == -1 ? nil : seed }

/// "1 worker", "2 workers".
func counted(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

/// Parses `key=value` options; values are JSON when they parse as JSON (numbers, true/false, "quoted"), else strings.
/// `types` (an engine's option types from the daemon: "string", "number"...) keeps the text of a string option as it
/// is, so `model=1.5` or `controlnet=null` name a model or ControlNet instead of becoming a number or null.
func parseOptions(_ items: [String], types: [String: String] = [:]) throws -> [String: JSONValue] {
    var out: [String: JSONValue] = [:]
    for item in items {
        guard let eq = item.firstIndex(of: "=") else { throw ValidationError("--option takes key=value, got \(item)") }
        let key = String(item[..<eq]), raw = String(item[item.index(after: eq)...])
        guard !key.isEmpty else { throw ValidationError("--option takes key=value, got \(item)") }
        let parsed = (try? JSONValue.parse(Data(raw.utf8))) ?? .string(raw)
        if types[key] == "string", parsed.stringValue == nil {
            out[key] = .string(raw)
        } else {
            out[key] = parsed
        }
    }
    return out
}

/// The option types ("string", "integer", "number", "boolean") of `engine`'s `method`, from `engines.list`; the
/// daemon's default engine for the method when `engine` is nil. Empty when the daemon does not say.
func optionTypes(_ client: PaintsClient, method: String, engine: String?, timeout: Double) throws(ClientError) -> [String: String] {
    let list = try client.call(.enginesList, timeout: timeout).result
    guard let name = engine ?? list["defaults"]?[method]?.stringValue,
          let entry = list["engines"]?.arrayValue?.first(where: { $0["name"]?.stringValue == name }),
          let options = entry["capabilities"]?[method]?["options"]?.objectValue else { return [:] }
    return options.compactMapValues { $0["type"]?.stringValue }
}

/// A file name for a result layer named `name` by the daemon: letters, digits, '.', '-' and '_' kept, anything else
/// '_'; never "image" (the picture's own file) nor one already `taken`.
func layerFileName(_ name: String, taken: Set<String>) -> String {
    var base = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    if base.isEmpty || base.allSatisfy({ $0 == "." }) { base = "layer" }
    var candidate = base, n = 2
    while candidate == "image" || taken.contains(candidate) {
        candidate = "\(base)-\(n)"
        n += 1
    }
    return candidate
}

@main
struct Paintsctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paintsctl",
        abstract: "Talk to a running paintsd: colorize line art, make undo previews, inspect and cancel jobs.",
        discussion: """
            Exit codes: 0 ok, 1 daemon error, 2 bad input, 3 no daemon, 4 timeout, 5 cancelled, 6 busy \
            (queue full or shutting down), 64 usage.
            """,
        subcommands: [Hello.self, Ping.self, Colorize.self, Undo.self, Tag.self, Jobs.self, Result.self, Cancel.self, Shutdown.self])
}

struct Hello: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's version, engines and limits.")
    @OptionGroup var connection: Connection

    func run() throws {
        try connection.with { client throws(ClientError) in
            let reply = try client.call(.hello, timeout: connection.timeout)
            connection.printResult(reply) {
                let r = reply.result
                var lines = ["paintsd \(r["daemon"]?["version"]?.stringValue ?? "?") (protocol \(r["protocol"]?.intValue ?? 0)) at \(client.endpoint)"]
                for engine in r["engines"]?.arrayValue ?? [] {
                    let methods = engine["methods"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ", ") ?? ""
                    // An engine that cannot run says why (e.g. its model files are missing, with the path looked in).
                    let reason = engine["reason"]?.stringValue.map { " (\($0))" } ?? ""
                    lines.append("  engine \(engine["name"]?.stringValue ?? "?") [\(engine["status"]?.stringValue ?? "?")]: \(methods)\(reason)")
                    // The files it found: models, and ControlNets with what each is for or why it cannot be used.
                    if let models = engine["assets"]?["models"]?.arrayValue?.compactMap(\.stringValue), !models.isEmpty {
                        lines.append("    models: \(models.joined(separator: ", "))")
                    }
                    for net in engine["assets"]?["controlnets"]?.arrayValue ?? [] {
                        let problem = net["problem"]?.stringValue.map { "; cannot be used: \($0)" } ?? ""
                        lines.append("    controlnet \(net["name"]?.stringValue ?? "?"): \(net["kind"]?.stringValue ?? "?")\(problem)")
                    }
                }
                if let q = r["queue"] {
                    lines.append("  queue: \(q["queued"]?.intValue ?? 0) waiting, \(q["running"]?.intValue ?? 0) running, capacity \(q["capacity"]?.intValue ?? 0)")
                }
                return lines.joined(separator: "\n")
            }
        }
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers; prints the round trip.")
    @OptionGroup var connection: Connection

    func run() throws {
        try connection.with { client throws(ClientError) in
            let start = Date()
            let reply = try client.call(.ping, timeout: connection.timeout)
            connection.printResult(reply) { String(format: "pong in %.2f ms", Date().timeIntervalSince(start) * 1000) }
        }
    }
}

struct Colorize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Colorize line art with colour scribbles and/or a reference.",
        discussion: """
            The result is one picture (--out: the colour with the line art over it, or the one layer an engine \
            makes) and, with --out-dir, the layers a painting app places under the line art, top first: each as \
            DIR/NAME.png (the builtin engine: color; sd: color, and flats, the flat fill the colours came from), \
            plus DIR/image.png. Give --out, --out-dir or both.

            Engine options go as --option key=value (repeatable): numbers, true/false and strings as they are; a \
            string option (a model or ControlNet name) keeps its text even when it looks like a number. \
            `paintsctl hello --json` lists each engine's options with their ranges and choices. For example:

              paintsctl colorize --sketch lines.png --hints scribbles.png \\
                --out-dir out --engine sd --prompt "1girl, watercolor" \\
                --option model=anything-v5 --option controlnet=auto \\
                --option hint_strength=0.6 --option control_strength=1 \\
                --option palette_lock=0.5 --option steps=20
            """)
    @OptionGroup var connection: Connection
    @Option(help: "Line art PNG (dark lines on white or on transparent).") var sketch: String
    @Option(help: "Colour scribbles PNG (RGBA, alpha > 0 marks a hint), the sketch's size.") var hints: String?
    @Option(help: "Reference picture PNG.") var reference: String?
    @Option(help: "Where to write the result as one picture (PNG).") var out: String?
    @Option(help: "Directory for the result's layers, one NAME.png each (color, flats...), and image.png; created if needed.")
    var outDir: String?
    @Option(help: "Engine name (default: the daemon's default for colorize).") var engine: String?
    @Option(parsing: .unconditional, help: "Seed; -1 (the default): the daemon picks one.") var seed: Int?
    @Option(help: "Prompt (engines that read one).") var prompt: String?
    @Option(help: "Negative prompt.") var negativePrompt: String?
    @Option(name: .customLong("option"), help: "Engine option key=value (repeatable), e.g. composite_lines=true, model=anything-v5, hint_strength=0.6.")
    var options: [String] = []
    @Flag(help: "Do not show progress.") var quiet = false

    func validate() throws {
        try checkSeed(seed)
        _ = try parseOptions(options)
        guard out != nil || outDir != nil else { throw ValidationError("give --out FILE, --out-dir DIR or both") }
    }

    func run() throws {
        if let out { try checkWritableFile(out, flag: "--out") }
        if let outDir { try prepareDirectory(outDir, flag: "--out-dir") }
        var frames: [Data] = [Data()]
        func attach(_ path: String?) throws -> ImageReference? {
            guard let path else { return nil }
            frames.append(try readFile(path))
            return .frame(index: frames.count - 1, encoding: .png)
        }
        let sketchReference = try attach(sketch)!, hintsReference = try attach(hints), referenceReference = try attach(reference)
        let (reply, data) = try connection.with { client throws(ClientError) in
            // The engine's option types, so that a string option keeps its text (only needed with --option).
            let types = options.isEmpty ? [:]
                : try optionTypes(client, method: "colorize", engine: engine, timeout: connection.timeout)
            let parsed: [String: JSONValue]
            do { parsed = try parseOptions(options, types: types) } catch { parsed = [:] }  // checked in validate()
            let params = ColorizeParams(
                sketch: sketchReference, hints: hintsReference, reference: referenceReference, prompt: prompt ?? "",
                negativePrompt: negativePrompt ?? "", engine: engine, seed: requestSeed(seed), options: parsed)
            let reply = try connection.runJob(client, .colorize, params.json, frames: frames, quiet: quiet)
            guard let data = reply.imageData(reply.result["image"]) else { throw .badReply("result has no image frame") }
            return (reply, data)
        }
        let summary = "engine \(reply.result["engine"]?.stringValue ?? "?"), seed \(reply.result["seed"]?.intValue ?? 0), "
            + "\(Int(reply.result["timings"]?["total_ms"]?.doubleValue ?? 0)) ms"
        var lines: [String] = []
        if let out {
            _ = try save([(data, out)])
            lines.append("wrote \(out) (\(summary))")
        }
        if let outDir {
            // The layers, top first; a daemon's result without "layers" is one visible "color" layer: its image.
            let entries = reply.result["layers"]?.arrayValue
                ?? [["name": "color", "image": reply.result["image"] ?? .null, "visible": true]]
            var taken: Set<String> = []
            var files: [(Data, String)] = []
            for entry in entries {
                let name = entry["name"]?.stringValue ?? "layer"
                guard let layerData = reply.imageData(entry["image"]) else {
                    throw fail("the result's layer \(name) has no image frame", code: Exit.daemonError)
                }
                let file = layerFileName(name, taken: taken)
                taken.insert(file)
                files.append((layerData, join(outDir, file + ".png")))
                lines.append("wrote \(join(outDir, file + ".png")) (layer \(name)\(entry["visible"]?.boolValue == false ? ", hidden" : ""))")
            }
            files.append((data, join(outDir, "image.png")))
            lines.append("wrote \(join(outDir, "image.png"))" + (out == nil ? " (\(summary))" : ""))
            _ = try save(files)
        }
        connection.printWarning(reply)
        connection.printResult(reply) { lines.joined(separator: "\n") }
    }
}

struct Undo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo-step previews: what the picture looked like N steps earlier (--sequence: a timelapse from a blank canvas).")
    @OptionGroup var connection: Connection
    @Option(help: "The finished picture (PNG).") var image: String
    @Option(help: "Comma-separated steps in 0...999 (0 = finished, 999 = the first stroke on a blank canvas); default: 400,600,800,900,950,999.") var steps: String?
    @Option(help: "Or: this many evenly spaced steps.") var count: Int?
    @Option(help: "Directory for the frames (step-NNN.png; with --sequence, NN-kind-step.png in timelapse order).") var outDir: String
    @Flag(help: "undo.sequence: blank canvas, keyframes from 999 down, finished picture.") var sequence = false
    @Option(help: "Engine name (default: the daemon's default).") var engine: String?
    @Option(help: "Prompt (paints-undo: default the tagger's tags of the picture).") var prompt: String?
    @Option(parsing: .unconditional, help: "Seed; -1 (the default): the daemon picks one.") var seed: Int?
    @Option(name: .customLong("option"), help: "Engine option key=value (repeatable), e.g. quality=standard.")
    var options: [String] = []
    @Flag(help: "Do not show progress.") var quiet = false

    func validate() throws {
        guard steps == nil || count == nil else { throw ValidationError("give --steps or --count, not both") }
        _ = try stepList()
        try checkSeed(seed)
        _ = try parseOptions(options)
    }

    func stepList() throws -> [Int] {
        if let steps {
            return try steps.split(separator: ",").map {
                guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("bad step \($0) in --steps") }
                return v
            }
        } else if let count {
            return UndoPreviewParams.evenlySpacedSteps(count: max(1, count))
        }
        return UndoPreviewParams.defaultKeyframes
    }

    func run() throws {
        let frames = [Data(), try readFile(image)]
        let params = UndoPreviewParams(image: .frame(index: 1, encoding: .png), steps: try stepList(), engine: engine,
                                       seed: requestSeed(seed), prompt: prompt ?? "", options: try parseOptions(options))
        try prepareDirectory(outDir, flag: "--out-dir")
        let reply = try connection.with { client throws(ClientError) in
            try connection.runJob(client, sequence ? .undoSequence : .undoPreview, params.json, frames: frames, quiet: quiet)
        }
        let entries = reply.result["frames"]?.arrayValue ?? []
        let files = entries.enumerated().compactMap { i, entry -> (Data, String)? in
            guard let step = entry["step"]?.intValue, let data = reply.imageData(entry["image"]) else { return nil }
            let name = sequence ? String(format: "%02d-%@-%03d.png", i, entry["kind"]?.stringValue ?? "frame", step)
                : String(format: "step-%03d.png", step)
            return (data, join(outDir, name))
        }
        let written = try save(files)
        connection.printWarning(reply)
        connection.printResult(reply) { written }
    }
}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Danbooru tags of a picture, printed as a prompt.")
    @OptionGroup var connection: Connection
    @Option(help: "The picture (PNG).") var image: String
    @Option(help: "General tags kept above this probability.") var threshold: Double?
    @Option(help: "Character tags kept above this probability.") var characterThreshold: Double?
    @Option(help: "Comma-separated tag names to leave out.") var exclude: String?
    @Option(help: "Engine name.") var engine: String?
    @Flag(help: "Do not show progress.") var quiet = false

    func run() throws {
        var params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"]]
        if let threshold { params["threshold"] = JSONValue(threshold) }
        if let characterThreshold { params["character_threshold"] = JSONValue(characterThreshold) }
        if let exclude { params["exclude"] = .array(exclude.split(separator: ",").map { .string($0.trimmingCharacters(in: .whitespaces)) }) }
        if let engine { params["engine"] = .string(engine) }
        let frames = [Data(), try readFile(image)]
        try connection.with { client throws(ClientError) in
            let reply = try connection.runJob(client, .tag, params, frames: frames, quiet: quiet)
            connection.printResult(reply) { reply.result["prompt"]?.stringValue ?? "" }
        }
    }
}

struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs and the queue, or show one job's status.")
    @OptionGroup var connection: Connection
    @Argument(help: "A job id: show only its status.") var job: String?

    func run() throws {
        try connection.with { client throws(ClientError) in
            if let job {
                let reply = try client.call(.jobsStatus, ["job": .string(job)], timeout: connection.timeout)
                connection.printResult(reply) { Self.line(reply.result) }
                return
            }
            let reply = try client.call(.jobsList, timeout: connection.timeout)
            connection.printResult(reply) {
                let q = reply.result["queue"]
                var lines = ["queue: \(q?["queued"]?.intValue ?? 0) waiting, \(q?["running"]?.intValue ?? 0) running "
                    + "(capacity \(q?["capacity"]?.intValue ?? 0), \(counted(q?["workers"]?.intValue ?? 0, "worker"))); "
                    + "\(q?["completed"]?.intValue ?? 0) done, \(q?["failed"]?.intValue ?? 0) failed, \(q?["cancelled"]?.intValue ?? 0) cancelled"]
                lines += (reply.result["jobs"]?.arrayValue ?? []).map(Self.line)
                return lines.joined(separator: "\n")
            }
        }
    }

    static func line(_ job: JSONValue) -> String {
        var s = "\(job["job"]?.stringValue ?? "?") \(job["method"]?.stringValue ?? "?") \(job["engine"]?.stringValue ?? "?") \(job["state"]?.stringValue ?? "?")"
        if let p = job["progress"], let f = p["fraction"]?.doubleValue { s += " \(Int(f * 100))% \(p["stage"]?.stringValue ?? "")" }
        if let e = job["error"]?["code"]?.stringValue { s += " error=\(e)" }
        return s
    }
}

struct Result: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fetch a finished job's result again (e.g. after a crash).")
    @OptionGroup var connection: Connection
    @Argument(help: "The job id.") var job: String
    @Option(help: "Directory to write the result images into.") var outDir: String

    func run() throws {
        try prepareDirectory(outDir, flag: "--out-dir")
        let reply = try connection.with { client throws(ClientError) in
            try client.call(.jobsResult, ["job": .string(job)], timeout: connection.timeout)
        }
        // Results requested as raw rgba8 by their client are saved as .rgba files.
        let raw = reply.result.serializedString().contains("\"rgba8\"")
        let written = try save(reply.payloads.enumerated().map { ($1, join(outDir, "\(job)-\($0 + 1).\(raw ? "rgba" : "png")")) })
        connection.printWarning(reply)
        connection.printResult(reply) { written }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")
    @OptionGroup var connection: Connection
    @Argument(help: "The job id.") var job: String

    func run() throws {
        try connection.with { client throws(ClientError) in
            let reply = try client.cancel(job: job, timeout: connection.timeout)
            connection.printResult(reply) { "\(job): \(reply.result["state"]?.stringValue ?? "?") (was \(reply.result["was"]?.stringValue ?? "?"))" }
        }
    }
}

struct Shutdown: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the daemon to stop.")
    @OptionGroup var connection: Connection
    @Flag(help: "Cancel unfinished jobs instead of finishing them.") var cancelJobs = false

    func run() throws {
        try connection.with { client throws(ClientError) in
            let reply = try client.call(.shutdown, ["mode": cancelJobs ? "cancel" : "finish"], timeout: connection.timeout)
            connection.printResult(reply) { "shutting down (\(reply.result["mode"]?.stringValue ?? "?"))" }
        }
    }
}
