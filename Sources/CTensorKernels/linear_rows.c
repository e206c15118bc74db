// CTensorKernels/linear_rows: fully connected layers of few rows (text encoders, the UNet's context projections, time
// embeddings): y = x W^T + b with W [out][in] read as stored (f32, f16 or bf16), no packing and no widened copy.
// Each register tile takes a few rows of x and a few rows of W and multiplies along the inputs (dot products, vector
// lanes along k), so W streams from memory once, row by row, and a tile of W stays in L1 while it meets every row of
// x. The tile's accumulators are summed across lanes in one shuffle tree at the end. AVX-512 (4 rows by 4 outputs),
// AVX2 + FMA + F16C (2 by 4; both from linear_rows_body.h) or plain C, picked at run time from what the CPU reports.
// PaintsTensor runs f16 and bf16 weights on it (no widened copy per call: the text encoder from fp16 files about 1.1x
// faster on the Zen 4 machine); for float32 weights oneDNN's matmul on weights packed once is faster (about 1.2x there).
// On AVX2-only CPUs f16 file weights run on linear_panels.c instead (the text encoder 0.081 against this kernel's
// 0.106-0.109 s with the Zen 4's AVX-512 left out).
#include "tensor_kernels.h"
#include <string.h>

enum { DTYPE_F32 = 0, DTYPE_F16 = 1, DTYPE_BF16 = 2 };

static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) bits = sign | 0x7f800000u | (mantissa << 13);
    else if (exponent) bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    else if (!mantissa) bits = sign;
    else {  // subnormal: normalise
        int e = -1;
        uint32_t m = mantissa;
        do { e++; m <<= 1; } while (!(m & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float stored(const void *w, int dtype, size_t i) {
    if (dtype == DTYPE_F32) return ((const float *)w)[i];
    const uint16_t h = ((const uint16_t *)w)[i];
    if (dtype == DTYPE_F16) return half_to_float(h);
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static size_t element_size(int dtype) { return dtype == DTYPE_F32 ? 4 : 2; }

// Plain C: one output at a time, four partial sums.
static void linear_rows_scalar(const float *x, size_t rows, size_t k, const void *w, int dtype, const float *bias,
                               float *y, size_t y_stride, size_t n0, size_t n1) {
    const size_t es = element_size(dtype);
    for (size_t n = n0; n < n1; n++) {
        const void *wn = (const char *)w + n * k * es;
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * k;
            float s[4] = {0, 0, 0, 0};
            size_t i = 0;
            for (; i + 4 <= k; i += 4)
                for (int l = 0; l < 4; l++) s[l] += xr[i + l] * stored(wn, dtype, i + l);
            for (; i < k; i++) s[0] += xr[i] * stored(wn, dtype, i);
            y[r * y_stride + n] = (s[0] + s[1]) + (s[2] + s[3]) + (bias ? bias[n] : 0.0f);
        }
    }
}

// The inputs past the last whole vector, added to a tile's sums one element at a time.
static inline float tail_dot(const float *x, const void *w, int dtype, size_t from, size_t k) {
    float s = 0;
    for (size_t i = from; i < k; i++) s += x[i] * stored(w, dtype, i);
    return s;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AVX512_INLINE __m512 load16(const void *w, int dtype, size_t i) {
    if (dtype == DTYPE_F32) return _mm512_loadu_ps((const float *)w + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    if (dtype == DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Sixteen accumulators to one vector of their sums: lane l holds the sum of a[(l % 4) * 4 + l / 4].
AVX512_INLINE __m512 sum_lanes16(const __m512 a[16]) {
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44), _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
}

#define TARGET __attribute__((target("avx512f")))
#define VT __m512
#define VW 16
#define TR 4
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VLOADW(w, dtype, i) load16(w, dtype, i)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSUM(acc) sum_lanes16(acc)
#define NAME(x) x##_avx512
#include "linear_rows_body.h"

AVX2_INLINE __m256 load8(const void *w, int dtype, size_t i) {
    if (dtype == DTYPE_F32) return _mm256_loadu_ps((const float *)w + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (dtype == DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Eight accumulators to one vector of their sums: lane l holds the sum of a[(l % 4) * 2 + l / 4].
AVX2_INLINE __m256 sum_lanes8(const __m256 a[8]) {
    __m256 b[4], c[2];
    for (int i = 0; i < 4; i++)
        b[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20), _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
    for (int i = 0; i < 2; i++)
        c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88), _mm256_shuffle_ps(c[0], c[1], 0xDD));
}

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define VT __m256
#define VW 8
#define TR 2
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VLOADW(w, dtype, i) load8(w, dtype, i)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSUM(acc) sum_lanes8(acc)
#define NAME(x) x##_avx2
#include "linear_rows_body.h"
#endif

int pk_linear_rows_lanes(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (pk_cpu_has(16)) return 16;
    if (pk_cpu_has(8) && __builtin_cpu_supports("f16c")) return 8;
#endif
    return 1;
}

int pk_linear_rows(const float *x, size_t rows, size_t k, const void *w, int dtype, const float *bias, float *y,
                   size_t y_stride, size_t n0, size_t n1, int lanes) {
    if (dtype < DTYPE_F32 || dtype > DTYPE_BF16 || (lanes != 1 && (lanes > pk_linear_rows_lanes() || (lanes != 8 && lanes != 16))))
        return 0;
    switch (lanes) {
#if defined(__x86_64__)
    case 16: linear_rows_avx512(x, rows, k, w, dtype, bias, y, y_stride, n0, n1); break;
    case 8: linear_rows_avx2(x, rows, k, w, dtype, bias, y, y_stride, n0, n1); break;
#endif
    default: linear_rows_scalar(x, rows, k, w, dtype, bias, y, y_stride, n0, n1); break;
    }
    return 1;
}
