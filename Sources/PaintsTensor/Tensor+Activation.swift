// PaintsTensor/Tensor+Activation: SiLU, GELU (erf and tanh forms), quick GELU, GEGLU.
import Foundation

extension Tensor {
    public func silu() -> Tensor { map { $0 / (1 + exp(-$0)) } }

    /// GELU, exact (erf) form: torch's default.
    public func gelu() -> Tensor { map { 0.5 * $0 * (1 + erf($0 * Self.inverseSquareRootOfTwo)) } }

    static let inverseSquareRootOfTwo = Float(1 / 2.0.squareRoot())

    /// CLIP's quick GELU: x * sigmoid(1.702 x).
    public func quickGELU() -> Tensor { map { $0 / (1 + exp(-1.702 * $0)) } }

    /// GEGLU: the last dimension splits into (hidden, gate); returns hidden * gelu(gate) (diffusers `GEGLU`).
    public func geglu() -> Tensor {
        let d = shape[rank - 1] / 2
        var out = Tensor(zeros: Array(shape.dropLast()) + [d])
        let rows = count / (2 * d)
        for r in 0..<rows {
            for i in 0..<d {
                let hidden = data[r * 2 * d + i], gate = data[r * 2 * d + d + i]
                out.data[r * d + i] = hidden * 0.5 * gate * (1 + erf(gate * Self.inverseSquareRootOfTwo))
            }
        }
        return out
    }
}
