// `paintsd tool forward --lora FILE[:WEIGHT]` (repeatable; --lora-merge merges them) on the UNet and the text encoder, against the diffusers
// outputs of Tests/Fixtures/lora (its generate.py).
import Foundation
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct ToolForwardLoRATests {
    let lora = Repository.path("Tests/Fixtures/lora")
    let diffusion = Repository.path("Tests/Fixtures/diffusion")

    func forward(_ arguments: [String]) throws -> (status: Int32, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.executable("paintsd"))
        process.arguments = ["tool", "forward"] + arguments
        process.standardOutput = Pipe()
        let err = Pipe()
        process.standardError = err
        try process.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func loRAsStackOnTheUNetAndTheTextEncoder() throws {
        let dir = try TemporaryDirectory.make(prefix: "forward-lora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let io = "\(lora)/io.safetensors"
        let kohya = "\(lora)/kohya/lora_tiny.safetensors", peft = "\(lora)/peft/pytorch_lora_weights.safetensors"
        for (component, model, loras, outputName, expectedName, merge) in [
            ("unet", "unet-sd1", ["\(kohya):0.8", "\(peft):1.3"], "output", "unet_both", false),
            ("unet", "unet-sd1", [peft + ":1.3"], "output", "unet_peft", false),
            ("unet", "unet-sd1", ["\(kohya):0.8", "\(peft):1.3"], "output", "unet_both", true),
            ("text-encoder", "clip-sd1", ["\(kohya):0.8"], "last_hidden_state", "te_kohya", false),
            ("text-encoder", "clip-sd1", ["\(kohya):0.8"], "last_hidden_state", "te_kohya", true),
            ("text-encoder", "clip-sd1", [], "last_hidden_state", "te_base", false),
        ] {
            let out = "\(dir)/\(expectedName)\(merge ? "-merged" : "").safetensors"
            let run = try forward(["--model", "\(diffusion)/\(model)", "--component", component, "--inputs", io, "--output", out]
                                  + loras.flatMap { ["--lora", $0] } + (merge ? ["--lora-merge"] : []))
            #expect(run.status == 0, "\(expectedName): \(run.err)")
            let got = try SafeTensorsFile(path: out).floats(outputName)
            let error = relativeError(got, try SafeTensorsFile(path: io).floats(expectedName))
            #expect(error <= 1e-4, "\(expectedName): \(error)")
        }
        // A weight of 1 when none is given: differs from the 0.8 run.
        let out = "\(dir)/te-default.safetensors"
        #expect(try forward(["--model", "\(diffusion)/clip-sd1", "--component", "text-encoder", "--inputs", io, "--output", out,
                             "--lora", kohya]).status == 0)
        #expect(relativeError(try SafeTensorsFile(path: out).floats("last_hidden_state"), try SafeTensorsFile(path: io).floats("te_kohya")) > 1e-3)
        // --lora on another component is refused, not ignored.
        let refused = try forward(["--model", "\(diffusion)/vae", "--component", "vae-decode", "--inputs", "\(diffusion)/vae/io.safetensors",
                                   "--output", "\(dir)/vae.safetensors", "--lora", kohya])
        #expect(refused.status != 0 && refused.err.contains("--lora"))
    }
}
