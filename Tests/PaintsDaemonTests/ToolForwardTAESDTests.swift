// `paintsd tool forward --component taesd-decode|taesd-encode` on the tiny TAESD fixture, against diffusers' outputs.
import Foundation
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct ToolForwardTAESDTests {
    @Test(arguments: [("taesd-decode", "decoded", "decoded"), ("taesd-encode", "latents", "latents_encoded")])
    func toolForwardRunsTAESD(_ component: String, _ outputName: String, _ expectedName: String) throws {
        let dir = try TemporaryDirectory.make(prefix: "forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = Repository.path("Tests/Fixtures/taesd/tiny")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["tool", "forward", "--model", fixture, "--component", component,
                             "--inputs", fixture + "/io.safetensors", "--output", "\(dir)/\(component).safetensors"]
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(component)")
        let got = try SafeTensorsFile(path: "\(dir)/\(component).safetensors")
        #expect(got.names == [outputName])
        let error = relativeError(try got.floats(outputName), try SafeTensorsFile(path: fixture + "/io.safetensors").floats(expectedName))
        #expect(error <= 1e-4, "\(component): \(error)")
    }
}
