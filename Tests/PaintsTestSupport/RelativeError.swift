// PaintsTestSupport/RelativeError: the parity measure of the numerical tests.
import PaintsTensor

/// Largest absolute difference divided by the largest expected magnitude (infinite when the sizes differ).
public func relativeError(_ got: [Float], _ expected: [Float]) -> Double {
    guard got.count == expected.count else { return .infinity }
    var worst = 0.0, scale = 0.0
    for (g, e) in zip(got, expected) {
        worst = max(worst, abs(Double(g) - Double(e)))
        scale = max(scale, abs(Double(e)))
    }
    return worst / max(scale, 1e-12)
}

/// `relativeError` of two tensors; infinite when their shapes differ.
public func relativeError(_ got: Tensor, _ expected: Tensor) -> Double {
    got.shape == expected.shape ? relativeError(got.data, expected.data) : .infinity
}
