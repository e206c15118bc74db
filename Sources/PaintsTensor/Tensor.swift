// PaintsTensor/Tensor: a float32 tensor (shape + row-major storage). Images and feature maps are NCHW.
//
// Why NCHW: convolution weights arrive as [out, in, kh, kw], so im2col + sgemm writes NCHW output directly with no
// transpose; GroupNorm reads each channel as one contiguous run. Attention and linear layers transpose to [N, HW, C]
// and back, which costs a few percent of a UNet pass (performance.md measured NHWC vs NCHW GEMM speed within 10%).

/// Why a tensor operation refused its inputs.
public enum TensorError: Error, Sendable, Equatable, CustomStringConvertible {
    case shapeMismatch(operation: String, shapes: [[Int]])
    /// The computation stopped because `ComputeCancellation`'s check said so.
    case cancelled

    public var description: String {
        switch self {
        case .shapeMismatch(let op, let shapes): "\(op): incompatible shapes \(shapes.map { "\($0)" }.joined(separator: ", "))"
        case .cancelled: "cancelled"
        }
    }
}

public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// A tensor whose values are whatever the allocator's memory held: only for the output of a kernel that writes
    /// every value before anything reads it (clearing it first cost a memset per output: 25 MB per text encode).
    init(unfilled shape: [Int]) {
        self.shape = shape
        data = [Float](unsafeUninitializedCapacity: shape.reduce(1, *)) { _, initialized in initialized = shape.reduce(1, *) }
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// The same values under another shape of equal size.
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, data: data) }

    /// Element-wise sum of equal shapes.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "+: shapes \(a.shape) and \(b.shape)")
        return KernelProfile.measure(.elementwise) { sum(a, b) }
    }

    /// Adds `b` (of equal shape) in place: no new tensor when `a`'s storage is its own.
    public static func += (a: inout Tensor, b: Tensor) {
        precondition(a.shape == b.shape, "+=: shapes \(a.shape) and \(b.shape)")
        KernelProfile.measure(.elementwise) { add(b, into: &a) }
    }

    /// Adds `bias` [N, C] to every plane of this [N, C, ...] tensor (a UNet resnet's time embedding), planes in parallel.
    public mutating func addPlaneBias(_ bias: Tensor) {
        precondition(rank >= 2 && bias.shape == [shape[0], shape[1]], "addPlaneBias: \(bias.shape) for \(shape)")
        let planes = shape[0] * shape[1], plane = count / max(1, planes)
        KernelProfile.measure(.elementwise) {
            data.withUnsafeMutableBufferPointer { y in
                let target = UnsafeSendablePointer(y.baseAddress!)
                Parallel.forEachChunk(planes, minimumChunk: max(1, 16_384 / max(1, plane))) { range in
                    for i in range { VectorMath.scaleShift(target.pointer + i * plane, count: plane, scale: 1, shift: bias.data[i]) }
                }
            }
        }
    }

    private static func sum(_ a: Tensor, _ b: Tensor) -> Tensor {
        var out = a
        add(b, into: &out)
        return out
    }

    private static func add(_ b: Tensor, into out: inout Tensor) {
        out.data.withUnsafeMutableBufferPointer { o in
            b.data.withUnsafeBufferPointer { bb in
                let target = UnsafeSendablePointer(o.baseAddress!), source = UnsafeSendablePointer(bb.baseAddress!)
                Parallel.forEachChunk(o.count) { range in for i in range { target.pointer[i] += source.pointer[i] } }
            }
        }
    }

    /// Applies `f` to every element, split across cores for large tensors.
    /// torch.cat([a, b], dim=1) for tensors [N, C, ...] of equal N and trailing dimensions.
    public static func concatenatingChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape[0] == b.shape[0] && a.shape.dropFirst(2) == b.shape.dropFirst(2), "concatenating \(a.shape) and \(b.shape)")
        return KernelProfile.measure(.elementwise) { concatenated(a, b) }
    }

    private static func concatenated(_ a: Tensor, _ b: Tensor) -> Tensor {
        let n = a.shape[0], (sa, sb) = (a.count / max(n, 1), b.count / max(n, 1))
        var out = [Float]()
        out.reserveCapacity(a.count + b.count)
        for i in 0..<n {
            out.append(contentsOf: a.data[(i * sa)..<((i + 1) * sa)])
            out.append(contentsOf: b.data[(i * sb)..<((i + 1) * sb)])
        }
        return Tensor(shape: [n, a.shape[1] + b.shape[1]] + Array(a.shape.dropFirst(2)), data: out)
    }

    public func map(_ f: @Sendable (Float) -> Float) -> Tensor {
        var out = self
        let n = count
        out.data.withUnsafeMutableBufferPointer { o in
            let base = UnsafeSendablePointer(o.baseAddress!)
            Parallel.forEachChunk(n) { range in for i in range { base.pointer[i] = f(base.pointer[i]) } }
        }
        return out
    }
}

/// A raw pointer handed to worker closures. `@unchecked Sendable`: every user reads shared input, or writes only the
/// indices of its own chunk, while the buffer is pinned by the enclosing `withUnsafe...` call.
public struct UnsafeSendablePointer<Pointee>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Pointee>
    public init(_ pointer: UnsafeMutablePointer<Pointee>) { self.pointer = pointer }
    public init(_ pointer: UnsafePointer<Pointee>) { self.pointer = UnsafeMutablePointer(mutating: pointer) }
}
