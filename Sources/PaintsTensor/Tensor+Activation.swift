// PaintsTensor/Tensor+Activation: SiLU, GELU (erf and tanh forms), quick GELU, GEGLU.
import CTensorKernels
import Foundation

extension Tensor {
    public func silu() -> Tensor { sigmoidGated(k: 1) }

    /// GELU, exact (erf) form: torch's default.
    public func gelu() -> Tensor {
        KernelProfile.measure(.activation) {
            var out = self
            let n = count
            out.data.withUnsafeMutableBufferPointer { o in
                let base = UnsafeSendablePointer(o.baseAddress!)
                Parallel.forEachChunk(n) { range in pk_gelu(base.pointer + range.lowerBound, range.count) }
            }
            return out
        }
    }

    /// GELU, tanh approximation (torch `approximate="tanh"`, timm `gelu_tanh`).
    public func geluTanh() -> Tensor {
        let c = Float((2 / Double.pi).squareRoot())
        return map { 0.5 * $0 * (1 + Foundation.tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
    }

    /// CLIP's quick GELU: x * sigmoid(1.702 x).
    public func quickGELU() -> Tensor { sigmoidGated(k: 1.702) }

    /// x * sigmoid(k x), split across cores.
    public func sigmoidGated(k: Float) -> Tensor {
        KernelProfile.measure(.activation) { sigmoidGatedUnprofiled(k: k) }
    }

    private func sigmoidGatedUnprofiled(k: Float) -> Tensor {
        var out = self
        let n = count
        out.data.withUnsafeMutableBufferPointer { o in
            let base = UnsafeSendablePointer(o.baseAddress!)
            Parallel.forEachChunk(n) { range in VectorMath.sigmoidGate(base.pointer + range.lowerBound, count: range.count, k: k) }
        }
        return out
    }

    /// GEGLU: the last dimension splits into (hidden, gate); returns hidden * gelu(gate) (diffusers `GEGLU`).
    public func geglu() -> Tensor {
        KernelProfile.measure(.activation) { gegluUnprofiled() }
    }

    private func gegluUnprofiled() -> Tensor {
        let d = shape[rank - 1] / 2
        var out = Tensor(zeros: Array(shape.dropLast()) + [d])
        let rows = count / (2 * d)
        data.withUnsafeBufferPointer { x in
            out.data.withUnsafeMutableBufferPointer { y in
                let source = UnsafeSendablePointer(x.baseAddress!), target = UnsafeSendablePointer(y.baseAddress!)
                Parallel.forEachChunk(rows, minimumChunk: 16) { range in
                    pk_geglu(source.pointer + range.lowerBound * 2 * d, target.pointer + range.lowerBound * d, range.count, d)
                }
            }
        }
        return out
    }
}
