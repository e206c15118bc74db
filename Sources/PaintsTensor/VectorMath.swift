// PaintsTensor/VectorMath: Swift names for the vector kernels of CTensorKernels (exp, sigmoid gates, norm statistics).
// libm's expf is a call per element and was a sixth of a UNet pass inside softmax; these run vector-wide.
import CTensorKernels

enum VectorMath {
    /// Replaces row[0..<count] by e^(row - max) and returns their sum (softmax without the final division).
    @inline(__always)
    static func exponentiateShifted(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float { pk_exp_shifted(row, count) }

    /// x * sigmoid(k x) in place (SiLU with k = 1, quick GELU with k = 1.702).
    @inline(__always)
    static func sigmoidGate(_ p: UnsafeMutablePointer<Float>, count: Int, k: Float) { pk_sigmoid_gate(p, count, k) }

    /// Sum and sum of squares of p[0..<count].
    @inline(__always)
    static func sumAndSquares(_ p: UnsafePointer<Float>, count: Int) -> (Double, Double) {
        var sum = 0.0, squares = 0.0
        pk_sum_squares(p, count, &sum, &squares)
        return (sum, squares)
    }

    /// p = p * scale + shift for every element.
    @inline(__always)
    static func scaleShift(_ p: UnsafeMutablePointer<Float>, count: Int, scale: Float, shift: Float) {
        pk_scale_shift(p, count, scale, shift)
    }

    /// IEEE half or bfloat16 values widened to float.
    @inline(__always)
    static func widen(half source: UnsafePointer<UInt16>, into target: UnsafeMutablePointer<Float>, count: Int) {
        pk_half_to_float(source, target, count)
    }

    /// Float to bfloat16, rounded to nearest even; in parallel over chunks for large counts.
    static func narrow(_ source: UnsafePointer<Float>, toBFloat16 target: UnsafeMutablePointer<UInt16>, count: Int) {
        let from = UnsafeSendablePointer(source), to = UnsafeSendablePointer(target)
        Parallel.forEachChunk(count, minimumChunk: 1 << 16) { range in
            pk_float_to_bf16(from.pointer + range.lowerBound, to.pointer + range.lowerBound, range.count)
        }
    }

    /// Float to IEEE half, rounded to nearest even.
    @inline(__always)
    static func narrow(_ source: UnsafePointer<Float>, toHalf target: UnsafeMutablePointer<UInt16>, count: Int) {
        pk_float_to_half(source, target, count)
    }

    @inline(__always)
    static func widen(bfloat16 source: UnsafePointer<UInt16>, into target: UnsafeMutablePointer<Float>, count: Int) {
        pk_bf16_to_float(source, target, count)
    }
}
