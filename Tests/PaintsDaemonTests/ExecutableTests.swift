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

@Suite(.serialized) struct ExecutableTests {
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

        let daemon = try DaemonProcess(runtimeDirectory: dir, arguments: ["--listen", "tcp://127.0.0.1:*"])
        #expect(daemon.waitUntilListening())
        let endpoint = daemon.endpoint
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
}
