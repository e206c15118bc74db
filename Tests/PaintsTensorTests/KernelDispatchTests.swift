// Which build of CTensorKernels' vector kernels the loader picks: on a CPU with AVX2 and FMA, one with fused
// multiply-adds. An `arch=haswell` clone is picked by CPU model, not features, and AMD's AVX2 machines ran the plain
// x86-64 build of every multiversioned kernel (the Winograd transforms, norms, activations, conversions).
import CTensorKernels
import Testing

@Suite struct KernelDispatchTests {
    @Test func aCPUWithFMARunsTheKernelsBuiltWithIt() {
        let fused = pk_kernels_fuse_multiply_add(1 + 0x1p-23, 1 - 0x1p-23, -1)
        print("CPU has AVX2 + FMA: \(pk_cpu_has(8) != 0), AVX-512 kernels built: \(pk_max_width() == 16); clone fuses: \(fused != 0)")
        if pk_cpu_has(8) != 0 {
            #expect(fused == 1, "the plain x86-64 clone of the vector kernels runs on a CPU with AVX2 and FMA")
        }
    }
}
