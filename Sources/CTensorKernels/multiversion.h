// CTensorKernels/multiversion: which instruction sets the kernels are built for. MULTIVERSION compiles a function
// for AVX-512F, x86-64-v3 (AVX2, FMA, F16C) and plain x86-64, and the loader picks the best the CPU has
// (target_clones). Not `arch=haswell`: its clone is picked by CPU model (an Intel Haswell or later), so AMD's AVX2
// machines (Zen 3) ran the plain x86-64 clone; x86-64-v3 is picked by the features.
// Built with `-Xcc -DPK_MAX_WIDTH=8`, the AVX-512 versions are left out and pk_cpu_has(16) answers 0: an AVX-512
// machine then runs the paths of an AVX2-only one (benchmarks; see pk_max_width).
#ifndef PK_MULTIVERSION_H
#define PK_MULTIVERSION_H

#if defined(PK_MAX_WIDTH) && PK_MAX_WIDTH < 16
#define PK_AVX512_BUILT 0
#else
#define PK_AVX512_BUILT 1
#endif

#if defined(__x86_64__) && defined(__clang__)
#if PK_AVX512_BUILT
#define MULTIVERSION __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#else
#define MULTIVERSION
#endif

#endif
