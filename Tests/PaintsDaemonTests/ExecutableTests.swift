// The real paintsd and paintsctl executables: listening, the lock, signals, and paintsctl's files and exit codes.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster
import PaintsTensor
import PaintsTestSupport
import Testing

/// A started paintsd process on a private runtime directory.
final class DaemonProcess {
    let process = Process()
    let runtimeDirectory: String
    let output = Pipe()
    var endpoint: String { "ipc://\(runtimeDirectory)/paintsd.sock" }

    init(runtimeDirectory: String, arguments: [String] = []) throws {
        self.runtimeDirectory = runtimeDirectory
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["--runtime-dir", runtimeDirectory, "--log-level", "warning"] + arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    /// Waits for the socket file to appear (the daemon prints its endpoint once bound).
    func waitUntilListening(timeout: TimeInterval = 120) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: runtimeDirectory + "/paintsd.sock") { return true }
            if !process.isRunning { return false }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    func waitForExit(timeout: TimeInterval = 120) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    var printed: String { String(decoding: output.fileHandleForReading.availableData, as: UTF8.self) }

    deinit { if process.isRunning { process.terminate() } }
}

/// Runs paintsctl; returns its exit status, stdout and stderr.
func paintsctl(_ arguments: [String], endpoint: String) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Repository.executable("paintsctl"))
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["PAINTSD_ENDPOINT"] = endpoint
    process.environment = environment
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// A unix stream socket bound at `path`. Closed without listening, it is what a crashed daemon leaves: a socket file
/// nobody listens on. Listening, it accepts connections but never answers: a daemon too busy to reply.
func bindUnixSocket(_ path: String, listening: Bool) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    precondition(fd >= 0 && bound == 0, "cannot bind \(path)")
    if listening { precondition(listen(fd, 16) == 0) } else { close(fd) }
    return fd
}

/// A loopback tcp port that nothing holds (bound to find a free one, then closed).
func closedLoopbackPort() -> Int {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    precondition(ok)
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite(.serialized) struct ExecutableTests {
    @Test func paintsctlTellsASocketLeftByADeadDaemonFromABusyOne() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-exe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // After a crash the socket file stays, with nothing listening: exit 3 and the command that starts a daemon,
        // at once rather than after the 120 s reply timeout (the bound only separates the two).
        let dead = dir + "/dead.sock"
        _ = bindUnixSocket(dead, listening: false)
        #expect(FileManager.default.fileExists(atPath: dead))
        let start = Date()
        let hello = try paintsctl(["hello"], endpoint: "ipc://" + dead)
        #expect(hello.status == 3, "\(hello.err)")
        #expect(hello.err.contains("start one with"))
        #expect(Date().timeIntervalSince(start) < 30)
        #expect(EndpointProbe.check("ipc://" + dead) != .listening)
        // Every Swift client gets the check, on its first reply that is late.
        let client = try PaintsClient(endpoint: "ipc://" + dead)
        defer { client.close() }
        do {
            _ = try client.call(.ping, timeout: 60)
            Issue.record("a ping to a dead socket was answered")
        } catch {
            guard case .noDaemon = error else { Issue.record("expected noDaemon, got \(error)"); return }
        }
        // A refused tcp port likewise.
        let port = closedLoopbackPort()
        let refused = try paintsctl(["ping"], endpoint: "tcp://127.0.0.1:\(port)")
        #expect(refused.status == 3, "\(refused.err)")
        #expect(refused.err.contains("start one with"))
        // A listener that accepts but never answers is a busy daemon: paintsctl waits for its timeout (exit 4).
        let busy = dir + "/busy.sock"
        let fd = bindUnixSocket(busy, listening: true)
        defer { close(fd) }
        #expect(EndpointProbe.check("ipc://" + busy) == .listening)
        let waited = try paintsctl(["hello", "--timeout", "1"], endpoint: "ipc://" + busy)
        #expect(waited.status == 4, "\(waited.err)")
        #expect(waited.err.contains("no reply"))
    }

    @Test func paintsdHelpShowsTheDaemonSettings() throws {
        for arguments in [["--help"], ["help"], ["serve", "--help"]] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
            process.arguments = arguments
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            for setting in ["--listen", "--workers", "--queue-capacity", "--daemon-memory-gib", "paintsd tool"] {
                #expect(text.contains(setting), "paintsd \(arguments.joined(separator: " ")): no \(setting) in\n\(text)")
            }
        }
    }

    @Test func paintsctlChecksSeedsOptionsAndOutputsBeforeSendingAndPassesOnWarnings() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-exe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonProcess(runtimeDirectory: dir)
        #expect(daemon.waitUntilListening())
        let endpoint = daemon.endpoint
        let sketch = Repository.path("Examples/art/umbrella-lineart.png"), hints = Repository.path("Examples/art/umbrella-hints.png")
        func colorize(_ extra: [String], out: String? = nil) throws -> (status: Int32, out: String, err: String) {
            try paintsctl(["colorize", "--sketch", sketch, "--hints", hints, "--out", out ?? dir + "/out.png", "--quiet"] + extra,
                          endpoint: endpoint)
        }
        func jobCount() throws -> Int? {
            try JSONValue.parse(Data(paintsctl(["jobs", "--json"], endpoint: endpoint).out.utf8))["result"]?["jobs"]?.arrayValue?.count
        }

        // -1 means random, as in the plug-ins: the daemon picks the seed.
        let random = try colorize(["--seed", "-1", "--json"])
        #expect(random.status == 0, "\(random.err)")
        #expect((try JSONValue.parse(Data(random.out.utf8))["result"]?["seed"]?.intValue ?? -1) >= 0)
        #expect(try jobCount() == 1)
        // Other negative seeds are usage errors that say the value (not "Missing value"), and nothing is sent.
        let negative = try colorize(["--seed", "-5"])
        #expect(negative.status == 64)
        #expect(negative.err.contains("got -5") && !negative.err.contains("Missing value"), "\(negative.err)")
        let undoNegative = try paintsctl(["undo", "--image", sketch, "--out-dir", dir + "/u", "--seed", "-5"], endpoint: endpoint)
        #expect(undoNegative.status == 64 && undoNegative.err.contains("got -5"), "\(undoNegative.err)")
        // A malformed --option: the subcommand's usage, not the top-level one.
        let foo = try colorize(["--option", "foo"])
        #expect(foo.status == 64)
        #expect(foo.err.contains("key=value, got foo") && foo.err.contains("paintsctl colorize"), "\(foo.err)")
        // An option out of range: the daemon's message says the value.
        let gap = try colorize(["--option", "gap_closing=99"])
        #expect(gap.status == 2)
        #expect(gap.err.contains("gap_closing") && gap.err.contains("got 99"), "\(gap.err)")
        #expect(try jobCount() == 2)

        // Outputs that cannot be written are refused before the job is sent, in words.
        let missingDirectory = try colorize([], out: dir + "/no/such/dir/out.png")
        #expect(missingDirectory.status == 2)
        #expect(missingDirectory.err.contains("does not exist") && !missingDirectory.err.contains("unreadable reply"),
                "\(missingDirectory.err)")
        let intoADirectory = try colorize([], out: dir)
        #expect(intoADirectory.status == 2 && intoADirectory.err.contains("is a directory"), "\(intoADirectory.err)")
        FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        let underAFile = try paintsctl(["undo", "--image", Repository.path("Examples/art/blocks-colored.png"),
                                        "--out-dir", dir + "/file/undo"], endpoint: endpoint)
        #expect(underAFile.status == 2)
        #expect(underAFile.err.contains("is a file, not a directory") && !underAFile.err.contains("NSCocoaErrorDomain"),
                "\(underAFile.err)")
        #expect(try jobCount() == 2)

        // A directory given with a trailing slash: no double slash in the names printed.
        let undo = try paintsctl(["undo", "--image", Repository.path("Examples/art/blocks-colored.png"), "--steps", "999",
                                  "--out-dir", dir + "/undo/", "--quiet"], endpoint: endpoint)
        #expect(undo.status == 0, "\(undo.err)")
        #expect(undo.out.contains("undo/step-999.png") && !undo.out.contains("//"), "\(undo.out)")

        // Neither scribbles nor a reference: the result says there was nothing to colour from, on stderr too.
        let nothing = try paintsctl(["colorize", "--sketch", sketch, "--out", dir + "/empty.png", "--quiet", "--json"],
                                    endpoint: endpoint)
        #expect(nothing.status == 0)
        #expect(nothing.err.contains("warning: nothing to colour from"), "\(nothing.err)")
        #expect(try JSONValue.parse(Data(nothing.out.utf8))["result"]?["info"]?["warning"]?.stringValue?.contains("nothing") == true)
        let withHints = try colorize(["--json"])
        #expect(withHints.status == 0 && !withHints.err.contains("warning"), "\(withHints.err)")
        #expect(try JSONValue.parse(Data(withHints.out.utf8))["result"]?["info"]?["warning"] == nil)

        #expect(try paintsctl(["jobs"], endpoint: endpoint).out.contains("1 worker)"))
        #expect(try paintsctl(["shutdown", "--timeout", "30"], endpoint: endpoint).status == 0)
        #expect(daemon.waitForExit() == 0)
    }

    @Test func listensRefusesASecondDaemonAndStopsCleanlyOnSIGTERM() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-exe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(chmod(dir, 0o755) == 0)
        let daemon = try DaemonProcess(runtimeDirectory: dir)
        #expect(daemon.waitUntilListening())
        // The directory existed: its mode stays; the socket is for this user only.
        var info = stat()
        #expect(stat(dir, &info) == 0 && info.st_mode & 0o777 == 0o755)
        #expect(stat(dir + "/paintsd.sock", &info) == 0 && info.st_mode & 0o777 == 0o600)
        // A second daemon on the same socket fails loudly instead of stealing it.
        let second = try DaemonProcess(runtimeDirectory: dir)
        #expect(second.waitForExit() == 3)
        #expect(second.printed.contains("already listening"))
        // The first one still answers.
        let client = try PaintsClient(endpoint: daemon.endpoint)
        #expect(try client.call(.ping).result["pong"] == true)
        // hello says how it computes: the BLAS kernel, which library runs the convolutions, the attention kernel's width.
        let compute = try client.call(.hello).result["compute"]
        #expect(compute?["convolutions"] == .string(OneDNN.backend.rawValue))
        #expect([1, 8, 16].map { JSONValue($0) }.contains(compute?["attention_lanes"] ?? .null), "\(String(describing: compute))")
        // The precision in use (f32 unless PAINTSD_PRECISION=bf16 on a CPU with bfloat16 dot products), and whether
        // bfloat16 could be had.
        #expect(compute?["precision"] == .string(OneDNN.precision.rawValue) && compute?["bf16_available"] == .bool(OneDNN.hasBF16))
        // The Winograd forms in use: oneDNN's kernel (AVX-512) and the sgemm form, or the sgemm form alone.
        let winograd = OneDNN.winograd ? (OneDNN.winogradOnOneDNN ? "\(OneDNN.winogradKernel ?? "") + sgemm" : "sgemm") : "off"
        #expect(compute?["winograd"] == .string(winograd), "\(String(describing: compute))")
        // Whether model passes keep their freed memory in the heap (glibc, unless PAINTSD_HEAP_RETENTION=0).
        #expect(compute?["heap_retention"] == .bool(HeapRetention.isEnabled), "\(String(describing: compute))")
        // The few-rows kernel's width for f16/bf16 weights (0: off, PAINTSD_LINEAR_ROWS=0), and whether float32 file
        // weights of few-row layers are packed once (PAINTSD_PACKED_WEIGHTS=0 turns it off).
        #expect(compute?["linear_rows_lanes"] == JSONValue(Tensor.linearRowsLanes ?? 0), "\(String(describing: compute))")
        #expect(compute?["packed_weights"] == .bool(Tensor.packedWeights), "\(String(describing: compute))")
        // Whether few-row layers run on CTensorKernels' panels (AVX2 + FMA + F16C), and their float32 weights too (no AVX-512).
        #expect(compute?["linear_panels"] == .bool(Tensor.packedWeights && Tensor.linearOnPanels), "\(String(describing: compute))")
        #expect(compute?["linear_panels_float32"] == .bool(Tensor.packedWeights && Tensor.linearOnPanels && Tensor.float32OnPanels))
        #expect(compute?["parallel"] == .string(Parallel.defaultThreads.rawValue), "\(String(describing: compute))")
        client.close()
        daemon.process.terminate()  // SIGTERM
        #expect(daemon.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/paintsd.sock"))
        // A new daemon can take the same directory at once.
        let third = try DaemonProcess(runtimeDirectory: dir)
        #expect(third.waitUntilListening())
        third.process.interrupt()  // SIGINT
        #expect(third.waitForExit() == 0)
    }

    @Test func refusesNonLoopbackTCP() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-exe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonProcess(runtimeDirectory: dir, arguments: ["--listen", "tcp://0.0.0.0:5999"])
        #expect(daemon.waitForExit() == 3)
        #expect(daemon.printed.contains("loopback"))
    }

    @Test func paintsctlWritesFilesAndReturnsExitCodesScriptsCanUse() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-exe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // No daemon yet: exit code 3 and the command that starts one.
        let absent = try paintsctl(["ping"], endpoint: "ipc://\(dir)/paintsd.sock")
        #expect(absent.status == 3)
        #expect(absent.err.contains("start one with"))

        let daemon = try DaemonProcess(runtimeDirectory: dir, arguments: ["--listen", "tcp://127.0.0.1:*", "--precision", "bf16"])
        #expect(daemon.waitUntilListening())
        let endpoint = daemon.endpoint
        // --precision bf16 holds where the CPU has bfloat16 dot products, else the daemon computes (and says) f32.
        let helloClient = try PaintsClient(endpoint: endpoint)
        #expect(try helloClient.call(.hello).result["compute"]?["precision"] == .string(OneDNN.hasBF16 ? "bf16" : "f32"))
        helloClient.close()
        let out = dir + "/out.png"
        let colorize = try paintsctl(["colorize", "--sketch", Repository.path("Examples/art/umbrella-lineart.png"),
                                      "--hints", Repository.path("Examples/art/umbrella-hints.png"), "--out", out, "--seed", "4"],
                                     endpoint: endpoint)
        #expect(colorize.status == 0, "\(colorize.err)")
        #expect(colorize.out.contains("seed 4"))
        #expect(colorize.err.contains("progress 100%"))  // plain progress lines when stderr is not a terminal
        let image = try PNGCodec.read(path: out)
        #expect(image.width == 512)

        let undo = try paintsctl(["undo", "--image", Repository.path("Examples/art/blocks-colored.png"), "--steps", "999,0",
                                  "--out-dir", dir + "/undo", "--quiet", "--json"], endpoint: endpoint)
        #expect(undo.status == 0)
        #expect(try JSONValue.parse(Data(undo.out.utf8))["type"] == "result")
        #expect(FileManager.default.fileExists(atPath: dir + "/undo/step-999.png"))
        #expect(try PNGCodec.read(path: dir + "/undo/step-000.png") == Repository.image("Examples/art/blocks-colored.png"))

        let jobs = try paintsctl(["jobs", "--json"], endpoint: endpoint)
        #expect(try JSONValue.parse(Data(jobs.out.utf8))["result"]?["queue"]?["completed"] == 2)

        // Bad input: exit code 2; unknown job: 1.
        let bad = try paintsctl(["colorize", "--sketch", Repository.path("Package.swift"), "--out", out], endpoint: endpoint)
        #expect(bad.status == 2)
        #expect(bad.err.contains("image_decode_failed"))
        #expect(try paintsctl(["cancel", "no-such-job"], endpoint: endpoint).status == 1)

        let shutdown = try paintsctl(["shutdown", "--timeout", "30"], endpoint: endpoint)
        #expect(shutdown.status == 0)
        #expect(daemon.waitForExit() == 0)
    }

    @Test func paintsctlTagsAndWritesATimelapseWithTheModelEngines() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-exe")
        let models = try undoModelsDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: models)
        }
        let daemon = try DaemonProcess(runtimeDirectory: dir, arguments: ["--models", models])
        #expect(daemon.waitUntilListening())
        let picture = Repository.path("Examples/art/blocks-colored.png")
        let tag = try paintsctl(["tag", "--image", picture, "--threshold", "0", "--character-threshold", "0", "--exclude", "solo",
                                 "--quiet"], endpoint: daemon.endpoint)
        #expect(tag.status == 0, "\(tag.err)")
        #expect(tag.out.hasPrefix("hatsune miku, ") && !tag.out.contains("solo"))

        let undo = try paintsctl(["undo", "--image", picture, "--sequence", "--steps", "999,500", "--option", "steps=2",
                                  "--option", "size=256", "--out-dir", dir + "/seq", "--quiet"], endpoint: daemon.endpoint)
        #expect(undo.status == 0, "\(undo.err)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/seq").sorted()
        #expect(files == ["00-blank-1000.png", "01-keyframe-999.png", "02-keyframe-500.png", "03-finished-000.png"])
        #expect(try PNGCodec.read(path: dir + "/seq/03-finished-000.png") == Repository.image("Examples/art/blocks-colored.png"))
        #expect(try paintsctl(["shutdown", "--timeout", "30"], endpoint: daemon.endpoint).status == 0)
        #expect(daemon.waitForExit() == 0)
    }

    @Test func toolForwardRunsAComponentOnTensorsFromAFile() throws {
        let dir = try TemporaryDirectory.make(prefix: "forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixtures = Repository.path("Tests/Fixtures/diffusion")
        for (component, model, outputName, expectedName) in [("unet", "unet-sd1", "output", "output"),
                                                            ("vae-decode", "vae", "decoded", "decoded"),
                                                            ("text-encoder", "clip-sd1", "last_hidden_state", "last_hidden_state")] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
            process.arguments = ["tool", "forward", "--model", "\(fixtures)/\(model)", "--component", component,
                                 "--inputs", "\(fixtures)/\(model)/io.safetensors", "--output", "\(dir)/\(component).safetensors"]
            process.standardOutput = Pipe()
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(component)")
            let got = try SafeTensorsFile(path: "\(dir)/\(component).safetensors").floats(outputName)
            let expected = try SafeTensorsFile(path: "\(fixtures)/\(model)/io.safetensors").floats(expectedName)
            let error = relativeError(got, expected)
            #expect(error <= 1e-4, "\(component): \(error)")
        }
    }

    /// `tool forward --component unet --ip-adapter FILE --ip-adapter-scale S` with image_embeds among the inputs.
    @Test(arguments: ["linear/ip-adapter_tiny", "plus/ip-adapter-plus_tiny"])
    func toolForwardRunsAUNetWithAnIPAdapter(_ adapter: String) throws {
        let dir = try TemporaryDirectory.make(prefix: "forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = Repository.path("Tests/Fixtures/ip-adapter/" + adapter + ".safetensors")
        let io = (fixture as NSString).deletingLastPathComponent + "/io.safetensors"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["tool", "forward", "--model", Repository.path("Tests/Fixtures/diffusion/unet-sd1"), "--component", "unet",
                             "--ip-adapter", fixture, "--ip-adapter-scale", "0.7", "--inputs", io, "--output", dir + "/out.safetensors"]
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let error = relativeError(try SafeTensorsFile(path: dir + "/out.safetensors").floats("output"), try SafeTensorsFile(path: io).floats("output"))
        #expect(error <= 1e-4, "\(adapter): \(error)")
    }

    /// A diffusers folder and an original-layout ControlNet 1.1 single file.
    @Test(arguments: ["tiny", "single/control_v11p_sd15_tiny_lineart.safetensors"])
    func toolForwardRunsAControlNet(_ model: String) throws {
        // Every residual diffusers makes (down_0 ... down_11 and mid), with the fixture's conditioning_scale.
        let dir = try TemporaryDirectory.make(prefix: "forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = Repository.path("Tests/Fixtures/controlnet/" + model)
        let fixture = model.hasSuffix(".safetensors") ? (path as NSString).deletingLastPathComponent : path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["tool", "forward", "--model", path, "--component", "controlnet",
                             "--inputs", fixture + "/io.safetensors", "--output", dir + "/controlnet.safetensors"]
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let got = try SafeTensorsFile(path: dir + "/controlnet.safetensors")
        let expected = try SafeTensorsFile(path: fixture + "/io.safetensors")
        let names = (0..<12).map { "down_\($0)" } + ["mid"]
        #expect(got.names.sorted() == names.sorted())
        for name in names {
            let error = relativeError(try got.floats(name), try expected.floats(name))
            #expect(error <= 1e-4, "\(name): \(error)")
        }
    }

    /// The CLIP vision encoders: with a projection (image_embeds) and without (its output absent).
    @Test(arguments: ["vit-h-projection", "vit-l"])
    func toolForwardRunsAClipVisionEncoder(_ model: String) throws {
        let dir = try TemporaryDirectory.make(prefix: "forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = Repository.path("Tests/Fixtures/clip-vision/" + model)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["tool", "forward", "--model", fixture, "--component", "clip-vision",
                             "--inputs", fixture + "/io.safetensors", "--output", dir + "/clip-vision.safetensors"]
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let got = try SafeTensorsFile(path: dir + "/clip-vision.safetensors")
        let expected = try SafeTensorsFile(path: fixture + "/io.safetensors")
        let names = ["last_hidden_state", "penultimate_hidden_state"] + (model == "vit-l" ? [] : ["image_embeds"])
        #expect(got.names.sorted() == names.sorted())
        for name in names {
            let error = relativeError(try got.floats(name), try expected.floats(name))
            #expect(error <= 1e-4, "\(name): \(error)")
        }
    }
}
