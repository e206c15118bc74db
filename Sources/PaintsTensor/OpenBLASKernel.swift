// PaintsTensor/OpenBLASKernel: sets the OpenBLAS environment this engine wants (AVX-512 kernels on CPUs Debian's
// OpenBLAS 0.3.21 does not recognise; worker threads that sleep between calls, OpenBLAS's and oneDNN's OpenMP ones)
// before the libraries read it.
import CTensorKernels
import Foundation
import Glibc

public enum OpenBLASKernel {
    /// OpenBLAS reads its settings from the environment once, when the library loads, so a program that wants others
    /// sets them and re-executes itself once. Call it first thing in main. It changes only variables that are unset:
    /// - `OPENBLAS_CORETYPE=SkylakeX` where the CPU has AVX-512F and OpenBLAS chose another kernel: Debian's 0.3.21
    ///   takes Zen 5 for Haswell (AVX2); the AVX-512 kernels run sgemm ~1.5-1.9x faster here.
    /// - `OPENBLAS_THREAD_TIMEOUT=4`: idle OpenBLAS workers sleep almost at once instead of spinning on sched_yield for
    ///   ~2^28 cycles, which took a core from the engine's own parallel work between GEMMs (measured: UNet batch 2
    ///   8.97 s -> 7.42 s on 2 cores).
    /// - `GOMP_SPINCOUNT=10000` (unless it or OMP_WAIT_POLICY is set): oneDNN's OpenMP workers spin about 10 000
    ///   rounds after a primitive, not libgomp's 300 000, before they sleep. Between oneDNN primitives the engine's
    ///   own threads and OpenBLAS's run (Winograd's transforms, most GEMMs); perf of a UNet pass put 3.6-9% of its
    ///   samples in libgomp's spinning, 1.1% with this.
    /// - In a build without AVX-512 kernels (`-Xcc -DPK_MAX_WIDTH=8`) on an AVX-512 CPU: `OPENBLAS_CORETYPE=Haswell`
    ///   and `ONEDNN_MAX_CPU_ISA=AVX2`, so that the libraries take an AVX2 machine's paths too, and so do the
    ///   processes started from this one (the benchmarks' OpenVINO).
    /// Set `PAINTSD_KEEP_BLAS_KERNEL=1` to leave OpenBLAS's and libgomp's own choices alone.
    public static func selectBestKernelOrReexecute() {
        let env = ProcessInfo.processInfo.environment
        guard env["PAINTSD_KEEP_BLAS_KERNEL"] == nil, env["PAINTSD_REEXECUTED"] == nil else { return }
        var changed = false
        let avx2Only = pk_max_width() == 8 && cpuHasAVX512F()
        if env["OPENBLAS_CORETYPE"] == nil, avx2Only || pk_cpu_has(16) != 0,
           BLAS.coreName.lowercased() != (avx2Only ? "haswell" : "skylakex") {
            setenv("OPENBLAS_CORETYPE", avx2Only ? "Haswell" : "SkylakeX", 1)
            changed = true
        }
        if avx2Only, env["ONEDNN_MAX_CPU_ISA"] == nil {
            setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1)
            changed = true
        }
        if env["OPENBLAS_THREAD_TIMEOUT"] == nil, BLAS.threads > 1 {
            setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
            changed = true
        }
        if env["GOMP_SPINCOUNT"] == nil, env["OMP_WAIT_POLICY"] == nil {
            setenv("GOMP_SPINCOUNT", "10000", 1)
            changed = true
        }
        guard changed else { return }
        setenv("PAINTSD_REEXECUTED", "1", 1)
        var argv = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // execv returned: keep running with OpenBLAS's defaults.
    }

    /// Whether the CPU has AVX-512F, whatever the kernels were built for.
    static func cpuHasAVX512F() -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { $0.hasPrefix("flags") && $0.split(separator: " ").contains("avx512f") }
    }

    /// What `hello` and the benchmarks report.
    public static var description: String {
        let timeout = ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"].map { ", thread timeout 2^\($0) cycles" } ?? ""
        return "\(BLAS.coreName) (OpenBLAS, \(BLAS.threads) threads\(timeout))"
    }
}
