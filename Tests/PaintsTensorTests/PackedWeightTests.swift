// Float32 weights mapped from a file, reordered once into oneDNN's layout and kept in place of the released file pages
// (`Weight.packed(for:)`): linear layers on them give what the same layers give on the weights as stored, and a weight
// held in memory is never packed.
import CTensorKernels
import Foundation
import PaintsTestSupport
import Testing

@testable import PaintsTensor

@Suite struct PackedWeightTests {
    /// Values spread over -1...1, different per seed.
    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(generator.next() % 20_001) / 10_000 - 1 })
    }

    /// A weight written as `dtype` to a file of its own and read back from its mapping.
    static func storedWeight(_ values: Tensor, dtype: DType) throws -> Weight {
        let dir = try TemporaryDirectory.make(prefix: "packed-weights")
        let path = dir + "/w.safetensors"
        try SafeTensorsWriter.write([.init("w", shape: values.shape, values: values.data, dtype: dtype)], to: path)
        return try SafeTensorsFile(path: path).weight("w")
    }

    func storedWeight(_ values: Tensor, dtype: DType) throws -> Weight { try Self.storedWeight(values, dtype: dtype) }

    /// A text encoder's layer shape (77 rows, 640 inputs or more, so oneDNN's matmul) from a float32 file: on a CPU
    /// whose oneDNN kernel takes blocked weights (AVX-512) the weights are packed once, kept with the weight, and
    /// give the product of the weights as stored, then at more rows too; a weight held in memory is never packed.
    @Test func packedFileWeightsEqualTheWeightsAsStored() throws {
        let (rows, inputs, outputs) = (77, 640, 72)
        let x = random([rows, inputs], seed: 51), values = random([outputs, inputs], seed: 52), bias = random([outputs], seed: 53)
        let weight = try storedWeight(values, dtype: .f32)
        #expect(weight.isPackable)
        #expect(!Weight(values).isPackable)
        let plain = try Tensor.$packedWeights.withValue(false) { try x.linear(weight: weight, bias: bias) }
        #expect(!weight.hasPackedCopy)
        let packed = try x.linear(weight: weight, bias: bias)
        let again = try x.linear(weight: weight, bias: bias)
        let reference = try Tensor.$linearOnOneDNNOverride.withValue(false) { try x.linear(weight: values, bias: bias) }
        #expect(relativeError(plain, reference) <= 1e-6)
        #expect(relativeError(packed, reference) <= 1e-6, "packed: \(relativeError(packed, reference))")
        #expect(again == packed)
        // More rows (a batch of two prompts) after the copy was made: the packed kernel where its layout is the same.
        let tall = random([200, inputs], seed: 54)
        let tallReference = try Tensor.$linearOnOneDNNOverride.withValue(false) { try tall.linear(weight: values, bias: bias) }
        #expect(relativeError(try tall.linear(weight: weight, bias: bias), tallReference) <= 1e-6)
        let kept = weight.hasPackedCopy
        if OneDNN.runtime != nil && pk_cpu_has(16) != 0 {
            #expect(kept, "oneDNN's AVX-512 matmul takes blocked weights: the copy should be kept")
        }
        print("packed copy kept: \(kept)")
    }
}
