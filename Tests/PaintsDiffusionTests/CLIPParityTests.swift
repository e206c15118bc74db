// The CLIP text encoder against transformers: tiny random SD1 (quick GELU) and SD2 (GELU) layouts, last layer and
// clip skip.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct CLIPParityTests {
    @Test(arguments: ["clip-sd1", "clip-sd2"])
    func matchesTransformers(_ name: String) throws {
        let folder = Repository.path("Tests/Fixtures/diffusion/\(name)")
        let model = try CLIPTextModel(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let flat = try io.integers("input_ids")
        let ids = stride(from: 0, to: flat.count, by: 77).map { Array(flat[$0..<($0 + 77)]) }
        let last = relativeError(try model.encode(ids), try io.tensor("last_hidden_state"))
        let skipped = relativeError(try model.encode(ids, clipSkip: 1), try io.tensor("penultimate_normed"))
        print("\(name): last layer \(last), clip skip 1 \(skipped)")
        #expect(last <= 1e-4 && skipped <= 1e-4)
        #expect(throws: ModelError.self) { try model.encode([[5000]]) }
    }
}
