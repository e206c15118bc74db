// The UNet against diffusers: tiny SD1.x- and SD2.x-layout models with random weights, loaded from their diffusers
// folders by the production loader (Tests/Fixtures/diffusion/unet-*, from generate.py).
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct UNetParityTests {
    @Test(arguments: ["unet-sd1", "unet-sd2"])
    func matchesDiffusers(_ name: String) throws {
        let folder = Repository.path("Tests/Fixtures/diffusion/\(name)")
        let unet = try UNet2DConditionModel(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let out = try unet(io.tensor("sample"), timesteps: io.floats("timesteps"), context: io.tensor("encoder_hidden_states"))
        let error = relativeError(out, try io.tensor("output"))
        print("\(name): relative error \(error)")
        #expect(error <= 1e-4)
    }

    /// With bfloat16 convolutions and linear layers (PAINTSD_PRECISION=bf16, where the CPU has them) the UNet stays
    /// within bfloat16's tolerance of diffusers' float32 output, and is no longer float32-exact (the path ran).
    @Test(arguments: ["unet-sd1", "unet-sd2"])
    func matchesDiffusersWithinBFloat16(_ name: String) throws {
        let folder = Repository.path("Tests/Fixtures/diffusion/\(name)")
        let unet = try UNet2DConditionModel(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let out = try OneDNN.$precisionOverride.withValue(.bf16) {
            try unet(io.tensor("sample"), timesteps: io.floats("timesteps"), context: io.tensor("encoder_hidden_states"))
        }
        let error = relativeError(out, try io.tensor("output"))
        print("\(name) in \(OneDNN.hasBF16 ? "bf16" : "f32 (no bfloat16 on this CPU)"): relative error \(error)")
        #expect(error <= (OneDNN.hasBF16 ? 5e-2 : 1e-4))   // 1.1-1.4e-2 measured on Zen 4
        if OneDNN.hasBF16 { #expect(error > 1e-4, "bf16 requested, float32-exact output") }
    }

    @Test func residualsAndAddedEmbeddingsChangeTheOutput() throws {
        // The seams later engines use: zero residuals leave the output alone, non-zero ones move it.
        let folder = Repository.path("Tests/Fixtures/diffusion/unet-sd1")
        let unet = try UNet2DConditionModel(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let (x, t, c) = (try io.tensor("sample"), try io.floats("timesteps"), try io.tensor("encoder_hidden_states"))
        let plain = try unet(x, timesteps: t, context: c)
        let skipShapes: [[Int]] = [[2, 32, 16, 12], [2, 32, 16, 12], [2, 32, 8, 6], [2, 64, 8, 6]]
        let zeros = UNetConditioning(addedTimeEmbedding: Tensor(zeros: [2, 128]), downResiduals: skipShapes.map { Tensor(zeros: $0) },
                                     midResidual: Tensor(zeros: [2, 64, 8, 6]))
        #expect(try unet(x, timesteps: t, context: c, conditioning: zeros) == plain)
        let mid = UNetConditioning(midResidual: Tensor(shape: [2, 64, 8, 6], data: [Float](repeating: 0.5, count: 2 * 64 * 48)))
        #expect(relativeError(try unet(x, timesteps: t, context: c, conditioning: mid), plain) > 1e-3)
        #expect(throws: ModelError.self) {
            try unet(x, timesteps: t, context: c, conditioning: UNetConditioning(downResiduals: [Tensor(zeros: [2, 32, 16, 12])]))
        }
    }

    @Test func missingOrMisshapenWeightsAreTypedErrors() throws {
        let folder = Repository.path("Tests/Fixtures/diffusion/unet-sd1")
        let configuration = try UNetConfiguration(folder: folder)
        let file = try SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors")
        // Drop one tensor and reshape another by writing a damaged copy.
        let dir = try TemporaryDirectory.make(prefix: "unet")
        var tensors = try file.names.filter { $0 != "mid_block.resnets.1.conv2.weight" }.map {
            SafeTensorsWriter.Tensor($0, shape: try file.entry($0).shape, values: try file.floats($0))
        }
        try SafeTensorsWriter.write(tensors, to: dir + "/missing.safetensors")
        #expect(throws: ModelError.self) { try UNet2DConditionModel(configuration: configuration, weights: WeightStore(path: dir + "/missing.safetensors")) }
        tensors = try file.names.map { name in
            let shape = try file.entry(name).shape
            return SafeTensorsWriter.Tensor(name, shape: name == "conv_in.bias" ? [shape[0] / 2, 2] : shape, values: try file.floats(name))
        }
        try SafeTensorsWriter.write(tensors, to: dir + "/reshaped.safetensors")
        #expect(throws: ModelError.self) { try UNet2DConditionModel(configuration: configuration, weights: WeightStore(path: dir + "/reshaped.safetensors")) }
    }
}
