// Weights kept in their stored dtype (read in place or widened per use) and the vector kernels behind softmax and
// the sigmoid gates, checked against independent conversions and libm.
import Foundation
import PaintsTestSupport
import Testing
import CTensorKernels

@testable import PaintsTensor

@Suite struct WeightTests {
    /// A safetensors file with one F16 and one BF16 tensor holding every 16-bit pattern.
    func everyPattern() throws -> (dir: String, file: SafeTensorsFile) {
        let dir = try TemporaryDirectory.make(prefix: "weights")
        let patterns = (0...0xFFFF).map { UInt16($0) }
        var body = Data()
        for p in patterns { withUnsafeBytes(of: p.littleEndian) { body.append(contentsOf: $0) } }
        let header = #"{"bf16":{"dtype":"BF16","shape":[256,256],"data_offsets":[131072,262144]},"# +
            #""f16":{"dtype":"F16","shape":[256,256],"data_offsets":[0,131072]}}"#
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data += Data(header.utf8) + body + body
        let path = dir + "/patterns.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        return (dir, try SafeTensorsFile(path: path))
    }

    /// Floats kept as f16 round to nearest even as Swift's own Float16 conversion does: every half value and every
    /// midpoint between neighbours (the ties), values past the largest half, subnormals, signed zeros, NaN, and a sweep
    /// of random floats; widening gives back the rounded values.
    @Test func narrowingToHalfRoundsToNearestEven() throws {
        var values: [Float] = []
        for bits in 0...0xFFFF {
            let h = Float16(bitPattern: UInt16(bits))
            values.append(Float(h))
            if h.isFinite, !h.nextUp.isInfinite || h < 0 {
                let up = Float(h.nextUp)
                if up.isFinite { values.append((Float(h) + up) / 2) }   // the tie: rounds to the even one
            }
        }
        values += [65504, 65519.99, 65520, 70000, .greatestFiniteMagnitude, -.infinity, .infinity, 1e-8, -1e-9, 6e-8, 3e-8, -0.0]
        // Random bit patterns with exponents around the half range (2^-30 ... 2^20), both signs.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<40_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let bits = UInt32(truncatingIfNeeded: state >> 32)
            let exponent = UInt32(97 + (bits >> 8) % 50) << 23
            values.append(Float(bitPattern: (bits & 0x8000_0000) | exponent | (UInt32(truncatingIfNeeded: state) & 0x7F_FFFF)))
        }
        let weight = Weight(Tensor(shape: [values.count], data: values), storedAs: .f16)
        #expect(weight.dtype == .f16 && weight.storedBytes == 2 * values.count)
        let back = weight.tensor().data
        var mismatches = 0
        for (v, b) in zip(values, back) {
            let expected = Float(Float16(v))
            if !(expected.bitPattern == b.bitPattern || (expected.isNaN && b.isNaN)) { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(mismatches) of \(values.count) values round otherwise than Float16()")
        #expect(Weight(Tensor(shape: [1], data: [Float.nan]), storedAs: .f16).tensor().data[0].isNaN)
        // f32 stays f32.
        #expect(Weight(Tensor(shape: [2], data: [1.1, 2.2]), storedAs: .f32).tensor().data == [1.1, 2.2])
    }

    @Test func halfAndBFloat16WidenExactly() throws {
        let file = try everyPattern().file
        let half = try file.weight("f16"), bf16 = try file.weight("bf16")
        #expect(half.dtype == .f16 && bf16.dtype == .bf16 && half.storedBytes == 131_072)
        let widenedHalf = half.tensor().data, widenedBF16 = bf16.tensor().data
        for p in 0...0xFFFF {
            let expectedHalf = Float(Float16(bitPattern: UInt16(p)))  // the compiler's own conversion
            let expectedBF16 = Float(bitPattern: UInt32(p) << 16)
            if expectedHalf.isNaN { #expect(widenedHalf[p].isNaN) } else { #expect(widenedHalf[p] == expectedHalf, "f16 0x\(String(p, radix: 16))") }
            if expectedBF16.isNaN { #expect(widenedBF16[p].isNaN) } else { #expect(widenedBF16[p] == expectedBF16) }
        }
        // The in-use path (scratch buffer) and row lookups give the same values.
        half.withFloats { p in #expect(Array(UnsafeBufferPointer(start: p, count: 65_536)) .elementsEqual(widenedHalf) { $0 == $1 || ($0.isNaN && $1.isNaN) }) }
        var row = [Float](repeating: 0, count: 256)
        row.withUnsafeMutableBufferPointer { half.row(60, into: $0.baseAddress!) }
        #expect(row.elementsEqual(widenedHalf[(60 * 256)..<(61 * 256)]) { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }

    @Test func layersComputeTheSameFromHalfWeights() throws {
        // A weight stored as f16 computes exactly what its float32 widening computes.
        let (dir, file) = try everyPattern()
        var noise = SplitMix64(seed: 3)
        let finite = try file.weight("f16").tensor().data.map { $0.isFinite ? $0 : 0 }
        let source = Tensor(shape: [16, 16, 3, 3], data: Array(finite[0..<2304]).map { max(-2, min(2, $0)) })
        let halfFile = dir + "/kernel.safetensors"
        try SafeTensorsWriter.write([.init("k", shape: source.shape, values: source.data, dtype: .f16)], to: halfFile)
        let stored = try SafeTensorsFile(path: halfFile).weight("k")
        let x = Tensor(shape: [1, 16, 9, 7], data: (0..<(16 * 63)).map { _ in Float(noise.next() % 1000) / 500 - 1 })
        let fromHalf = try x.conv2d(weight: stored, bias: nil, padding: 1)
        let fromFloat = try x.conv2d(weight: stored.tensor(), bias: nil, padding: 1)
        #expect(fromHalf == fromFloat)
        #expect(stored.dtype == .f16)
    }

    @Test func vectorExpMatchesLibm() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let expected = Foundation.exp(Double(x))
            worst = max(worst, Float(abs(Double(pk_exp(x)) - expected) / expected))
            x += 0.0137
        }
        #expect(worst < 4e-7, "worst relative error \(worst)")
        #expect(pk_exp(-.infinity) == 0 && pk_exp(-100) == 0 && pk_exp(0) == 1)
    }

    @Test func softmaxNumeratorsHandleMaskedRows() {
        // Rows of 37 (a vector body and a scalar tail), one fully masked except its first entry, as causal attention has.
        var scores = (0..<74).map { Float($0 % 11) - 5 }
        for i in 38..<74 { scores[i] = -.infinity }
        let sums = scores.withUnsafeMutableBufferPointer { Tensor.softmaxNumerators($0.baseAddress!, rows: 2, columns: 37) }
        let firstRow = (0..<37).map { Float($0 % 11) - 5 }
        let m = firstRow.max()!
        let expected = firstRow.map { Foundation.exp(Double($0 - m)) }
        #expect(abs(Double(sums[0]) - expected.reduce(0, +)) < 1e-5 * expected.reduce(0, +))
        #expect(zip(scores[0..<37], expected).allSatisfy { abs(Double($0) - $1) <= 4e-7 * $1 })
        #expect(sums[1] == 1 && scores[37] == 1 && scores[38...].allSatisfy { $0 == 0 })
    }
}
