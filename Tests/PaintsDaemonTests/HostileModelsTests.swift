// Issue 10's reproductions through the real daemon and the real executables: a hostile checkpoint in the models
// folder (once a SIGILL on any sd colorize), the model a job names being the only one loaded (a broken first model
// once failed every job), a named pipe in the models folder (once the daemon never listened), and `paintsd tool
// forward` on inputs of the wrong shape (once array traps).
import Foundation
import PaintsClient
import PaintsDiffusion
import PaintsEngine
import PaintsProtocol
import PaintsTensor
import PaintsTestSupport
import Testing

/// The issue's reproduction: an original-layout checkpoint whose only key is a bare `output_blocks.`.
private let brokenCheckpoint = HostileFiles.raw(#"{"model.diffusion_model.output_blocks.":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                                                data: Data(count: 4))

/// A models directory with `a_broken.safetensors` (the reproduction) and `b_other`, the tiny SD1 pipeline folder.
private func brokenAndOther() throws -> String {
    let dir = try tinyModelsDirectory()
    try FileManager.default.moveItem(atPath: dir + "/tiny", toPath: dir + "/b_other")
    try brokenCheckpoint.write(to: URL(fileURLWithPath: dir + "/a_broken.safetensors"))
    return dir
}

@Suite(.serialized) struct HostileModelsTests {
    func colorize(_ client: PaintsClient, options: [String: JSONValue]) throws -> Reply {
        try client.collect(.colorize, ["sketch": ["frame": 1, "encoding": "png"], "engine": "sd", "seed": 1,
                                       "options": .object(["size": 32, "steps": 2].merging(options) { $1 })],
                           frames: [try Repository.data("Examples/art/blocks-lineart.png")], timeout: 300).final
    }

    @Test func theNamedModelIsTheOnlyOneLoaded() throws {
        let models = try brokenAndOther()
        var engines = BuiltinEngines.registry()
        let sd = StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30)
        engines.register(sd)
        let d = try TestDaemon(engines: engines)
        defer { d.stop() }
        let client = try d.client()
        #expect(sd.models == ["a_broken", "b_other"])
        let named = try colorize(client, options: ["model": "b_other"])
        #expect(named.type == .result, "\(named.header.serializedString())")
        #expect(named.result["info"]?["model"] == "b_other")
        #expect(sd.cache.loadedNames == ["b_other"])
        // Named again: still the only one, never a_broken.
        _ = try colorize(client, options: ["model": "b_other"])
        #expect(sd.cache.loadedNames == ["b_other"])
    }

    @Test func aHostileCheckpointIsATypedErrorAndTheDaemonLives() throws {
        let models = try brokenAndOther()
        var engines = BuiltinEngines.registry()
        engines.register(StableDiffusionEngine(modelsDirectory: models, memoryBudgetBytes: 1 << 30))
        let d = try TestDaemon(engines: engines)
        defer { d.stop() }
        let client = try d.client()
        // With no model named, the default (the first, a_broken) is loaded, and refused with a typed error.
        for options: [String: JSONValue] in [[:], ["model": "a_broken"]] {
            let refused = try colorize(client, options: options)
            #expect(refused.protocolError?.code == .modelNotFound, "\(refused.header.serializedString())")
            #expect(refused.protocolError?.message.contains("a_broken") == true)
        }
        #expect(try client.call(.ping).type == .result)
        let hello = try client.call(.hello)
        #expect(hello.result["engines"]?.arrayValue?.contains { $0["name"] == "sd" } == true)
    }

    @Test func aNamedPipeInTheModelsFolderDoesNotStopTheDaemon() throws {
        let models = try brokenAndOther()
        let fifo = models + "/p.safetensors"
        #expect(HostileFiles.makeFIFO(fifo))
        defer { HostileFiles.releaseReaders(fifo) }
        let runtime = try TemporaryDirectory.make(prefix: "paintsd-fifo")
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let daemon = try DaemonProcess(runtimeDirectory: runtime, arguments: ["--models", models])
        #expect(daemon.waitUntilListening(), "the daemon did not listen: \(daemon.printed)")
        let client = try PaintsClient(endpoint: daemon.endpoint)
        let hello = try client.call(.hello)
        let sd = hello.result["engines"]?.arrayValue?.first { $0["name"] == "sd" }
        let listed = sd?["capabilities"]?["colorize"]?["options"]?["model"]
        #expect(sd?["status"] == "available", "\(hello.header.serializedString())")
        #expect(listed?["default"] == "a_broken")
        let final = try colorize(client, options: ["model": "b_other"])
        #expect(final.type == .result, "\(final.header.serializedString())")
        daemon.process.terminate()
        #expect(daemon.waitForExit() != nil)
    }
}

/// `paintsd tool forward` with the given component and inputs; its termination and output.
private func toolForward(component: String, model: String, inputs: Data) throws -> (reason: Process.TerminationReason, status: Int32, output: String) {
    let dir = try TemporaryDirectory.make(prefix: "forward")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try inputs.write(to: URL(fileURLWithPath: dir + "/in.safetensors"))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
    process.arguments = ["tool", "forward", "--model", model, "--component", component, "--inputs", dir + "/in.safetensors",
                         "--output", dir + "/out.safetensors"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationReason, process.terminationStatus, String(decoding: output, as: UTF8.self))
}

@Suite struct ToolForwardBadInputTests {
    let fixtures = Repository.path("Tests/Fixtures/diffusion")

    @Test(arguments: [[1, 0], [0], [0, 77], [], [1, 1, 77]])
    func textEncoderIdsOfABadShapeAreAnError(_ shape: [Int]) throws {
        let count = shape.reduce(1, *)
        let header = #"{"input_ids":{"dtype":"I64","shape":\#(shape),"data_offsets":[0,\#(count * 8)]}}"#
        let run = try toolForward(component: "text-encoder", model: fixtures + "/clip-sd1",
                                  inputs: HostileFiles.raw(header, data: Data(count: count * 8)))
        #expect(run.reason == .exit && run.status != 0, "\(shape): \(run.output)")
        #expect(run.output.contains("input_ids") || run.output.contains("token ids"), "\(run.output)")
    }

    @Test(arguments: [[4, 4], [4], [1, 3, 4, 4], [1, 4, 0, 4]])
    func vaeLatentsOfABadShapeAreAnError(_ shape: [Int]) throws {
        let count = shape.reduce(1, *)
        let header = #"{"latents":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,\#(count * 4)]}}"#
        let run = try toolForward(component: "vae-decode", model: fixtures + "/vae", inputs: HostileFiles.raw(header, data: Data(count: count * 4)))
        #expect(run.reason == .exit && run.status != 0, "\(shape): \(run.output)")
        #expect(run.output.contains("AutoencoderKL.decode"), "\(run.output)")
    }

    @Test func goodInputsStillRun() throws {
        let run = try toolForward(component: "text-encoder", model: fixtures + "/clip-sd1",
                                  inputs: try Data(contentsOf: URL(fileURLWithPath: fixtures + "/clip-sd1/io.safetensors")))
        #expect(run.reason == .exit && run.status == 0, "\(run.output)")
        #expect(run.output.contains("last_hidden_state"))
    }
}
