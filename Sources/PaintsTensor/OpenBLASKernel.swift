// PaintsTensor/OpenBLASKernel: picks OpenBLAS's AVX-512 kernels on CPUs Debian's OpenBLAS 0.3.21 does not recognise.
import Foundation
import Glibc

public enum OpenBLASKernel {
    /// Debian's OpenBLAS 0.3.21 takes Zen 5 for Haswell (AVX2). `OPENBLAS_CORETYPE=SkylakeX` selects its AVX-512
    /// kernels (sgemm ~1.5-1.9x faster here), but OpenBLAS reads it only when the library loads. So: where the CPU has
    /// AVX-512F and the variable is unset, set it and re-execute this program once. Call it first thing in main.
    /// Set `PAINTSD_KEEP_BLAS_KERNEL=1` to leave OpenBLAS's own choice alone.
    public static func selectBestKernelOrReexecute() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["PAINTSD_KEEP_BLAS_KERNEL"] == nil, env["PAINTSD_REEXECUTED"] == nil,
              cpuHasAVX512F(), BLAS.coreName.lowercased() != "skylakex"
        else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        setenv("PAINTSD_REEXECUTED", "1", 1)
        var argv = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // execv returned: keep running with the default kernel.
    }

    static func cpuHasAVX512F() -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { $0.hasPrefix("flags") && $0.split(separator: " ").contains("avx512f") }
    }

    /// What `hello` and the benchmarks report.
    public static var description: String { "\(BLAS.coreName) (OpenBLAS, \(BLAS.threads) threads)" }
}
