// The safetensors reader: round trips, files written by the reference Python library, and hostile files.
import Foundation
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct SafeTensorsTests {
    func temporaryFile(_ data: Data) throws -> String {
        let path = try TemporaryDirectory.make(prefix: "st") + "/t.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func valid() throws -> Data {
        try SafeTensorsWriter.encode([
            .init("a.weight", shape: [2, 3], values: [1, -2, 3.5, 0, 1e-3, -7]),
            .init("b.half", shape: [4], values: [0.5, -1, 65504, 1e-4], dtype: .f16),
        ], metadata: ["format": "pt"])
    }

    @Test func roundTripsFloatAndHalf() throws {
        let file = try SafeTensorsFile(path: temporaryFile(valid()))
        #expect(file.names == ["a.weight", "b.half"])
        #expect(file.metadata["format"] == "pt")
        #expect(try file.floats("a.weight", shape: [2, 3]) == [1, -2, 3.5, 0, 1e-3, -7])
        let half = try file.floats("b.half")
        #expect(half[0] == 0.5 && half[1] == -1 && half[2] == 65504)
        #expect(abs(half[3] - 1e-4) < 1e-7)
        #expect(throws: WeightError.missingTensor("c")) { try file.floats("c") }
        #expect(throws: WeightError.shapeMismatch(tensor: "a.weight", expected: [3, 2], actual: [2, 3])) {
            try file.floats("a.weight", shape: [3, 2])
        }
    }

    @Test func readsFilesWrittenByTheReferenceLibrary() throws {
        // Written by Tests/Fixtures/diffusion/generate.py with the safetensors Python package from torch tensors.
        let file = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/diffusion/dtypes.safetensors"))
        let expected = try file.floats("values_f32")
        for name in ["values_f16", "values_bf16", "values_f64"] {
            let got = try file.floats(name)
            let rounded = try file.floats(name + "_rounded_f32")
            #expect(got == rounded, "\(name)")
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 0.01 * max(1, abs($1)) })
        }
        #expect(try file.integers("token_ids_i64") == [49406, 320, 1125, 49407])
    }

    /// A header (as JSON text) followed by `dataBytes` zero bytes.
    func file(header: String, dataBytes: Int) -> Data {
        var d = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        return d + Data(header.utf8) + Data(count: dataBytes)
    }

    @Test func rejectsHostileAndDamagedFiles() throws {
        let good = try valid()
        let cases: [(String, Data)] = [
            ("empty", Data()),
            ("short", Data([1, 2, 3])),
            ("truncated data", good.prefix(good.count - 3)),
            ("header longer than the file", file(header: "{}", dataBytes: 0).prefix(9) + Data(count: 0)),
            ("huge header length", Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) + Data(count: 16)),
            ("not JSON", file(header: "{nope", dataBytes: 0)),
            ("JSON array", file(header: "[1]", dataBytes: 0)),
            ("unknown dtype", file(header: #"{"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)),
            ("bytes do not match shape", file(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4)),
            ("offsets past the end", file(header: #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, dataBytes: 8)),
            ("reversed offsets", file(header: #"{"x":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, dataBytes: 8)),
            ("negative size", file(header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, dataBytes: 4)),
            ("overflowing shape", file(header: #"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, dataBytes: 4)),
            ("overlapping tensors", file(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, dataBytes: 12)),
            ("metadata not strings", file(header: #"{"__metadata__":{"a":1}}"#, dataBytes: 0)),
        ]
        for (name, data) in cases {
            #expect(throws: WeightError.self, "\(name)") { try SafeTensorsFile(path: temporaryFile(data)) }
        }
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: "/nonexistent/model.safetensors") }
    }
}
