// Fully connected layers of few rows: CTensorKernels' few-rows kernel (f16 and bf16 weights read as stored) at every
// vector width against OpenBLAS on the widened weights, and the linear layers' epilogues (a gate, a residual) against
// the separate operations on every path.
import CTensorKernels
import Foundation
import PaintsTestSupport
import Testing

@testable import PaintsTensor

@Suite struct LinearRowsTests {
    /// Values spread over -1...1, different per seed.
    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(generator.next() % 20_001) / 10_000 - 1 })
    }

    func storedWeight(_ values: Tensor, dtype: DType) throws -> Weight { try PackedWeightTests.storedWeight(values, dtype: dtype) }

    /// The widths this CPU runs: 1 always, 8 and 16 where it has them.
    var widths: [Int] { [16, 8, 1].filter { $0 == 1 || $0 <= Int(pk_linear_rows_lanes()) } }

    /// Rows past the 4-row (AVX-512) and 2-row (AVX2) tiles, inputs past whole vectors, outputs past blocks of 4, a
    /// single row (time embeddings), the most rows the kernel takes; with and without bias.
    @Test(arguments: [(77, 96, 40, true), (1, 64, 33, true), (7, 37, 6, false), (160, 48, 130, true), (3, 768, 9, true)])
    func halfAndBFloat16WeightsEqualTheWidenedProduct(_ rows: Int, _ inputs: Int, _ outputs: Int, _ withBias: Bool) throws {
        let x = random([rows, inputs], seed: 31), values = random([outputs, inputs], seed: 32)
        let bias = withBias ? random([outputs], seed: 33) : nil
        for dtype in [DType.f16, .bf16] {
            let weight = try storedWeight(values, dtype: dtype)
            #expect(weight.dtype == dtype)
            // OpenBLAS on the float32 widening of the same stored values.
            let reference = try Tensor.$linearOnOneDNNOverride.withValue(false) { try x.linear(weight: weight.tensor(), bias: bias) }
            for lanes in widths {
                let out = try Tensor.$linearRowsLanes.withValue(lanes) { try x.linear(weight: weight, bias: bias) }
                #expect(out.shape == [rows, outputs])
                let error = relativeError(out, reference)
                #expect(error <= 1e-6, "\(dtype) \(rows)x\(inputs) -> \(outputs), \(lanes) lanes: \(error)")
            }
        }
    }

    /// The kernel called directly writes only outputs n0..<n1 of each row (the cores' shares), at a row stride wider
    /// than the layer, for float32 weights too; an unknown dtype or a width the CPU lacks writes nothing.
    @Test func theKernelWritesOnlyItsShareOfTheOutputs() throws {
        let (rows, inputs, outputs, stride) = (5, 50, 11, 14)
        let x = random([rows, inputs], seed: 41), w = random([outputs, inputs], seed: 42), bias = random([outputs], seed: 43)
        let reference = try Tensor.$linearOnOneDNNOverride.withValue(false) { try x.linear(weight: w, bias: bias) }
        for lanes in widths {
            var y = [Float](repeating: .nan, count: rows * stride)
            let done = x.data.withUnsafeBufferPointer { xp in w.data.withUnsafeBufferPointer { wp in bias.data.withUnsafeBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    pk_linear_rows(xp.baseAddress!, rows, inputs, wp.baseAddress!, 0, bp.baseAddress!, yp.baseAddress!, stride, 3, 9, Int32(lanes))
                }
            } } }
            #expect(done == 1)
            for r in 0..<rows {
                for n in 0..<stride {
                    let value = y[r * stride + n]
                    if (3..<9).contains(n) {
                        let expected = reference.data[r * outputs + n]
                        #expect(abs(value - expected) <= 1e-5 * max(1, abs(expected)), "row \(r) output \(n), \(lanes) lanes")
                    } else {
                        #expect(value.isNaN, "row \(r) column \(n) written by \(lanes) lanes")
                    }
                }
            }
            let refused = x.data.withUnsafeBufferPointer { xp in w.data.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    pk_linear_rows(xp.baseAddress!, rows, inputs, wp.baseAddress!, 7, nil, yp.baseAddress!, stride, 0, outputs, Int32(lanes))
                }
            } }
            #expect(refused == 0)
        }
        let tooWide = pk_linear_rows_lanes() == 16 ? 32 : 16
        #expect(pk_linear_rows(nil, 0, 0, nil, 0, nil, nil, 0, 0, 0, Int32(tooWide)) == 0)
    }

    /// The epilogue (quick GELU's gate, a residual added, or both) equals the separate operations on every path: OpenBLAS,
    /// oneDNN on weights as stored and packed, the few-rows kernel.
    @Test func epiloguesEqualTheSeparateOperations() throws {
        let (rows, inputs, outputs) = (77, 640, 72)
        let x = random([rows, inputs], seed: 61), values = random([outputs, inputs], seed: 62)
        let bias = random([outputs], seed: 63), residual = random([rows, outputs], seed: 64)
        let file32 = try storedWeight(values, dtype: .f32), file16 = try storedWeight(values, dtype: .f16)
        let paths: [(String, Weight, Bool?)] = [("openblas", Weight(values), false), ("onednn", Weight(values), true),
                                               ("onednn packed", file32, nil), ("few rows", file16, nil)]
        for (path, weight, onOneDNN) in paths {
            for (gate, adding) in [(Float(1.702), residual), (Float(1.702), nil), (nil, residual)] as [(Float?, Tensor?)] {
                let (fused, separate) = try Tensor.$linearOnOneDNNOverride.withValue(onOneDNN) {
                    let plain = try x.linear(weight: weight, bias: bias)
                    let gated = gate.map { plain.sigmoidGated(k: $0) } ?? plain
                    return (try x.linear(weight: weight, bias: bias, gate: gate, adding: adding), adding.map { gated + $0 } ?? gated)
                }
                let error = relativeError(fused, separate)
                #expect(error <= 1e-6, "\(path), gate \(gate as Any), residual \(adding != nil): \(error)")
            }
        }
        #expect(throws: TensorError.self) { try x.linear(weight: Weight(values), bias: bias, adding: random([rows, outputs + 1], seed: 65)) }
    }
}
