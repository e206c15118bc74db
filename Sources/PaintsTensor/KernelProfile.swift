// PaintsTensor/KernelProfile: where a model's time goes, by kind of tensor operation (convolution by path, linear, attention,
// norms, activations, element-wise, layout changes, weight widening), with the FLOPs of the GEMM-shaped ones. Off
// unless a benchmark turns it on; it then assumes one computation at a time (a benchmark's), as it keeps one clock.
import Foundation
import Synchronization

public enum KernelProfile {
    public enum Part: Int, CaseIterable, Sendable {
        case winograd, convolution, im2col, pointwise, linear, attention, normalization, activation, elementwise, layout, widening

        public var name: String {
            switch self {
            case .winograd: "convolution 3x3, Winograd"
            case .convolution: "convolution, oneDNN direct"
            case .im2col: "convolution, OpenBLAS im2col"
            case .pointwise: "convolution 1x1, OpenBLAS"
            case .linear: "linear (GEMM)"
            case .attention: "attention (QK^T, softmax, AV)"
            case .normalization: "group/layer norm"
            case .activation: "activations (SiLU, GELU, GEGLU)"
            case .elementwise: "element-wise (residual adds, concat)"
            case .layout: "layout (NCHW<->tokens, upsample)"
            case .widening: "weight widening (f16/bf16 -> f32)"
            }
        }
    }

    /// Seconds and FLOPs spent per part since the last `reset`, each part's time without the parts it called.
    public struct Totals: Sendable {
        public var seconds: [Part: Double] = [:]
        public var flops: [Part: Double] = [:]
        public var total: Double { seconds.values.reduce(0, +) }
    }

    private struct State {
        var totals = Totals()
        /// Time spent inside nested parts of the part running now.
        var nested: UInt64 = 0
    }

    private static let enabled = Atomic<Bool>(false)
    private static let state = Mutex(State())

    public static var isEnabled: Bool {
        get { enabled.load(ordering: .relaxed) }
        set { enabled.store(newValue, ordering: .relaxed) }
    }

    public static func reset() { state.withLock { $0 = State() } }

    public static var totals: Totals { state.withLock { $0.totals } }

    /// Runs `body`, counting its time (less its nested parts') and `flops` to `part` when profiling is on.
    @inline(__always)
    static func measure<R, E: Error>(_ part: Part, flops: Double = 0, _ body: () throws(E) -> R) throws(E) -> R {
        guard isEnabled else { return try body() }
        let outer = state.withLock { s in
            defer { s.nested = 0 }
            return s.nested
        }
        let start = now()
        defer {
            let elapsed = now() - start
            state.withLock { s in
                let own = elapsed - min(elapsed, s.nested)
                s.totals.seconds[part, default: 0] += Double(own) * 1e-9
                s.totals.flops[part, default: 0] += flops
                s.nested = outer + elapsed
            }
        }
        return try body()
    }

    /// `measure` for a body that says which part it was (the path a convolution took), as (result, part); a body
    /// that throws counts to no part.
    @inline(__always)
    static func measure<R, E: Error>(flops: Double, _ body: () throws(E) -> (R, Part)) throws(E) -> R {
        guard isEnabled else { return try body().0 }
        let outer = state.withLock { s in
            defer { s.nested = 0 }
            return s.nested
        }
        let start = now()
        var taken: Part?
        defer {
            let elapsed = now() - start
            state.withLock { s in
                if let taken {
                    s.totals.seconds[taken, default: 0] += Double(elapsed - min(elapsed, s.nested)) * 1e-9
                    s.totals.flops[taken, default: 0] += flops
                }
                s.nested = outer + elapsed
            }
        }
        let (result, part) = try body()
        taken = part
        return result
    }

    private static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// A table of `totals` against `wall` seconds: each part's time, share and GFLOP/s, then what no part counted
    /// (the models' own loops, allocation, scheduling).
    public static func table(_ totals: Totals, wall: Double) -> String {
        var lines = ["  part                                    seconds   share   GFLOP/s"]
        for part in Part.allCases {
            guard let seconds = totals.seconds[part], seconds > 0 else { continue }
            let flops = totals.flops[part] ?? 0
            let rate = flops > 0 ? formatted(flops / seconds / 1e9, width: 9) : String(repeating: " ", count: 8) + "-"
            lines.append("  " + part.name.padding(toLength: 38, withPad: " ", startingAt: 0)
                         + formatted(seconds, width: 9, digits: 4) + formatted(100 * seconds / wall, width: 7) + "%" + rate)
        }
        let rest = max(0, wall - totals.total)
        lines.append("  " + "outside these (model code, allocation)".padding(toLength: 38, withPad: " ", startingAt: 0)
                     + formatted(rest, width: 9, digits: 4) + formatted(100 * rest / wall, width: 7) + "%")
        return lines.joined(separator: "\n")
    }

    private static func formatted(_ value: Double, width: Int, digits: Int = 2) -> String { String(format: "%\(width).\(digits)f", value) }
}
