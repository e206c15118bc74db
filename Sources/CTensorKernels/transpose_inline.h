// CTensorKernels/transpose_inline: an 8x8 float transpose in AVX registers (unpack, shuffle, lane permute), inlined by
// the kernels that lay rows out as columns (kernels.c's pk_transpose_rows, linear_panels.c's packing of x).
#ifndef PAINTS_TRANSPOSE_INLINE_H
#define PAINTS_TRANSPOSE_INLINE_H
#if defined(__x86_64__)
#include <immintrin.h>

// column[j] lane i = row[i] lane j.
__attribute__((target("avx2"), always_inline)) static inline void transpose8x8(const __m256 row[8], __m256 column[8]) {
    __m256 t[8], x[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(row[i], row[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(row[i], row[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        x[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        x[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        x[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        x[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        column[i] = _mm256_permute2f128_ps(x[i], x[i + 4], 0x20);
        column[i + 4] = _mm256_permute2f128_ps(x[i], x[i + 4], 0x31);
    }
}

#endif
#endif
