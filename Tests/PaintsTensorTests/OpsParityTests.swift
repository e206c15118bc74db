// Tensor operations against torch (Tests/Fixtures/diffusion/ops.safetensors from generate.py).
import Foundation
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct OpsParityTests {
    let f: SafeTensorsFile
    init() throws { f = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/diffusion/ops.safetensors")) }

    func check(_ name: String, _ got: Tensor, _ expected: String, tolerance: Double = 1e-5) throws {
        let error = relativeError(got, try f.tensor(expected))
        #expect(error <= tolerance, "\(name): relative error \(error), shapes \(got.shape)")
    }

    @Test func convolutions() throws {
        for (name, stride, padding) in [("conv3", 1, 1), ("conv3s2", 2, 1), ("conv1", 1, 0), ("conv4valid", 1, 0)] {
            let out = try f.tensor("\(name).input").conv2d(weight: f.tensor("\(name).weight"), bias: f.tensor("\(name).bias"),
                                                           stride: stride, padding: padding)
            try check(name, out, "\(name).output")
        }
        #expect(throws: TensorError.self) {
            try f.tensor("conv3.input").conv2d(weight: f.tensor("linear.weight").reshaped([7, 10, 1, 1]), bias: nil)
        }
    }

    @Test func convolutionTilingDoesNotChangeTheResult() throws {
        // A column bound far below one row forces one tile per output row.
        let x = try f.tensor("conv3.input"), w = try f.tensor("conv3.weight"), b = try f.tensor("conv3.bias")
        let whole = try x.conv2d(weight: w, bias: b, padding: 1)
        #expect(whole.shape == [2, 6, 7, 9])
        try check("conv3 whole", whole, "conv3.output")
    }

    @Test func normalizations() throws {
        let x = try f.tensor("group_norm.input"), w = try f.tensor("group_norm.weight"), b = try f.tensor("group_norm.bias")
        try check("group_norm", x.groupNorm(groups: 4, weight: w, bias: b, epsilon: 1e-6), "group_norm.output")
        try check("group_norm+silu", x.groupNorm(groups: 4, weight: w, bias: b, epsilon: 1e-6, silu: true), "group_norm_silu.output")
        // groupNorm consumes: a tensor still in use keeps its values, and one passed with its last use is normalized in
        // its own storage, to the same values.
        let before = x.data
        let normalized = try x.groupNorm(groups: 4, weight: w, bias: b, epsilon: 1e-6, silu: true)
        #expect(x.data == before)
        let owned = Tensor(shape: x.shape, data: x.data.map { $0 })
        let storage = owned.data.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        let inPlace = try (consume owned).groupNorm(groups: 4, weight: w, bias: b, epsilon: 1e-6, silu: true)
        #expect(inPlace.data == normalized.data)
        #expect(inPlace.data.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } == storage)
        let l = try f.tensor("layer_norm.input")
        try check("layer_norm", l.layerNorm(weight: f.tensor("layer_norm.weight"), bias: f.tensor("layer_norm.bias"), epsilon: 1e-5),
                  "layer_norm.output")
    }

    @Test func linearAndAttention() throws {
        try check("linear", f.tensor("linear.input").linear(weight: f.tensor("linear.weight"), bias: f.tensor("linear.bias")),
                  "linear.output")
        let out = try Tensor.attention(query: f.tensor("attention.query"), key: f.tensor("attention.key"),
                                       value: f.tensor("attention.value"), heads: 3)
        try check("attention", out, "attention.output")
    }

    @Test func activationsAndResampling() throws {
        let x = try f.tensor("activation.input")
        try check("silu", x.silu(), "silu.output")
        try check("gelu", x.gelu(), "gelu.output")
        try check("quick_gelu", x.quickGELU(), "quick_gelu.output")
        try check("geglu", x.geglu(), "geglu.output")
        try check("upsample", f.tensor("upsample.input").upsampledNearest2x(), "upsample.output", tolerance: 0)
    }

    @Test func timestepEmbeddings() throws {
        // torch's vectorized float32 exp and sin differ from glibc's by about an ulp, and arguments up to 999 rad turn
        // that into ~6e-5 absolute; the component tolerance of the engine (1e-4 relative) applies.
        let t = try f.floats("timesteps")
        try check("sd", TimestepEmbedding.sinusoidal(t, dim: 320, flipSinToCos: true, downscaleFreqShift: 0),
                  "timestep_embedding.sd", tolerance: 1e-4)
        try check("shift1", TimestepEmbedding.sinusoidal(t, dim: 16, flipSinToCos: false, downscaleFreqShift: 1),
                  "timestep_embedding.odd_shift1", tolerance: 1e-4)
    }

    @Test func tokensRoundTrip() throws {
        let x = try f.tensor("conv3.input")
        let tokens = x.tokens()
        #expect(tokens.shape == [2, 63, 5])
        // Batch 1, token 10 (row 1, column 1), channel 3.
        let token: Float = tokens.data[368], pixel: Float = x.data[514]
        #expect(token == pixel)
        #expect(tokens.image(height: 7, width: 9) == x)
    }
}
