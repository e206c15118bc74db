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
        // oneDNN's layout, also where panels are the default (AVX2 without AVX-512: PanelWeightTests).
        try Tensor.$linearOnPanels.withValue(false) { try packedOnOneDNN() }
    }

    func packedOnOneDNN() throws {
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

/// Few-row layers on CTensorKernels' panels (`Weight.panels()`, pk_linear_panels: the default on CPUs with AVX2 + FMA
/// + F16C, for float32 weights where there is no AVX-512; forced here for both): float32 and half weights from a file give what OpenBLAS gives on the same values widened, for row counts
/// around the 6-row tile, outputs that leave a partial 16-wide panel, inputs that leave a partial 256-input block and
/// a partial 8-input step of the packing, with the bias, the residual added in the kernel, the gate in the kernel, and
/// the gate and the residual (the gate first, outside).
@Suite struct PanelWeightTests {
    static let runs = pk_linear_panels_available() != 0
    /// Float32 sums of 601 products in another order (1.3e-6 measured at worst); a wrong panel, tile, block or
    /// packing edge gives errors of order 1.
    let tolerance = 5e-6

    @Test(.enabled(if: runs), arguments: [DType.f32, .f16])
    func panelsEqualTheWeightsAsStored(dtype: DType) throws {
        let (inputs, outputs) = (601, 72)
        let stored = PackedWeightTests().random([outputs, inputs], seed: 61)
        let weight = try PackedWeightTests.storedWeight(stored, dtype: dtype)
        let values = weight.tensor()   // what the file holds, widened: the reference's weights
        let bias = PackedWeightTests().random([outputs], seed: 62)
        #expect(weight.canKeepPanels && !Weight(values).canKeepPanels)
        try Tensor.$linearOnPanels.withValue(true) { try Tensor.$float32OnPanels.withValue(true) {
            for rows in [1, 5, 6, 7, 12, 13, 77] {
                let x = PackedWeightTests().random([rows, inputs], seed: UInt64(70 + rows))
                let residual = PackedWeightTests().random([rows, outputs], seed: UInt64(170 + rows))
                let reference = try Tensor.$linearOnOneDNNOverride.withValue(false) { try x.linear(weight: values, bias: bias) }
                let out = try x.linear(weight: weight, bias: bias)
                #expect(relativeError(out, reference) <= tolerance, "\(dtype) \(rows) rows: \(relativeError(out, reference))")
                let added = try x.linear(weight: weight, bias: bias, adding: residual)
                let addedReference = try Tensor.$linearOnOneDNNOverride.withValue(false) {
                    try x.linear(weight: Weight(values), bias: bias, adding: residual)
                }
                #expect(relativeError(added, addedReference) <= tolerance, "\(dtype) \(rows) rows, residual")
                let gated = try x.linear(weight: weight, bias: nil, gate: 1.702, adding: residual)
                let gatedReference = try Tensor.$linearOnOneDNNOverride.withValue(false) {
                    try x.linear(weight: Weight(values), bias: nil, gate: 1.702, adding: residual)
                }
                #expect(relativeError(gated, gatedReference) <= tolerance, "\(dtype) \(rows) rows, gate and residual")
                let gatedAlone = try x.linear(weight: weight, bias: bias, gate: 1.702)
                let gatedAloneReference = try Tensor.$linearOnOneDNNOverride.withValue(false) {
                    try x.linear(weight: Weight(values), bias: bias, gate: 1.702)
                }
                #expect(relativeError(gatedAlone, gatedAloneReference) <= tolerance, "\(dtype) \(rows) rows, gate")
            }
            #expect(weight.hasPanels)
            // More rows than few after the panels were kept: still the panels (the file pages are released).
            let tall = PackedWeightTests().random([200, inputs], seed: 63)
            let tallReference = try Tensor.$linearOnOneDNNOverride.withValue(false) { try tall.linear(weight: values, bias: bias) }
            #expect(relativeError(try tall.linear(weight: weight, bias: bias), tallReference) <= tolerance)
        } }
    }

    /// Layers of one input together (`linear(_:)`: attention's q, k and v projections): each output as the layer alone
    /// gives it, for panel counts (5, 3, 1) that the cores split inside a layer, float32 and half weights mixed, with
    /// and without a bias; and, where one weight is held in memory (no panels), one call per layer, same values.
    @Test(.enabled(if: runs))
    func layersOfOneInputTogether() throws {
        let inputs = 601
        let specs: [(outputs: Int, dtype: DType)] = [(72, .f32), (40, .f16), (16, .f32)]
        let weights = try specs.enumerated().map { i, spec in
            try PackedWeightTests.storedWeight(PackedWeightTests().random([spec.outputs, inputs], seed: UInt64(80 + i)), dtype: spec.dtype)
        }
        let biases: [Tensor?] = [PackedWeightTests().random([72], seed: 90), nil, PackedWeightTests().random([16], seed: 91)]
        func reference(_ x: Tensor, _ i: Int) throws -> Tensor {
            try Tensor.$linearOnOneDNNOverride.withValue(false) { try x.linear(weight: Weight(weights[i].tensor()), bias: biases[i]) }
        }
        try Tensor.$linearOnPanels.withValue(true) { try Tensor.$float32OnPanels.withValue(true) {
            for rows in [1, 7, 77] {
                let x = PackedWeightTests().random([rows, inputs], seed: UInt64(100 + rows))
                let together = try x.linear(Array(zip(weights, biases)))
                #expect(together.map(\.shape) == specs.map { [rows, $0.outputs] })
                for i in specs.indices {
                    let expected = try reference(x, i)
                    #expect(relativeError(together[i], expected) <= tolerance, "\(rows) rows, layer \(i)")
                }
            }
            #expect(weights.allSatisfy { $0.hasPanels })
            let x = PackedWeightTests().random([13, inputs], seed: 113)
            let inMemory = Weight(weights[1].tensor())
            let mixed = try x.linear([(weights[0], biases[0]), (inMemory, nil)])
            let (first, second) = (try reference(x, 0), try reference(x, 1))
            #expect(relativeError(mixed[0], first) <= tolerance)
            #expect(relativeError(mixed[1], second) <= tolerance)
        } }
    }
}
