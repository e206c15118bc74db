// PaintsTensor/FMAPeak: the machine's measured fused multiply-add limit (GFLOP/s on all cores), the yardstick the
// benchmarks hold the kernels to. It varies per machine and per run on shared vCPUs, so it is measured, not assumed.
import CTensorKernels
import Dispatch
import Foundation

public enum FMAPeak {
    /// Vector widths the CPU runs: 16 (AVX-512F) and 8 (AVX2 + FMA).
    public static var widths: [Int] { [16, 8].filter { pk_cpu_has(Int32($0)) == 1 } }

    /// GFLOP/s of `threads` threads each running the FMA loop at `width` for about `seconds`; the best of `rounds`.
    /// nil when the CPU lacks the width.
    public static func measure(width: Int, threads: Int = Parallel.cores, seconds: Double = 0.5, rounds: Int = 3) -> Double? {
        guard pk_cpu_has(Int32(width)) == 1 else { return nil }
        // 2 FLOPs per lane per FMA, 16 or 12 FMAs per iteration; size one round from a short calibration.
        let flopsPerIteration = Double(Int(width == 16 ? PK_FMA_CHAINS_16 : PK_FMA_CHAINS_8) * 2 * width)
        let probe = 200_000
        let start = DispatchTime.now().uptimeNanoseconds
        _ = pk_fma_loop(Int32(width), probe)
        let probeSeconds = max(1e-6, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        let iterations = max(probe, Int(Double(probe) * seconds / probeSeconds))
        var best = 0.0
        for _ in 0..<rounds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                let sink = pk_fma_loop(Int32(width), iterations)
                if sink.isNaN { print("") }   // keeps the result alive
            }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            best = max(best, Double(threads) * Double(iterations) * flopsPerIteration / elapsed / 1e9)
        }
        return best
    }
}
