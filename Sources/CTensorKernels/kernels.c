// CTensorKernels: see include/tensor_kernels.h.
#include "tensor_kernels.h"
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define MULTIVERSION
#endif

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// Cephes expf: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n built in the exponent bits.
// Relative error below 2e-7; inputs below -87.3 (and -inf) give 0, above 88.7 saturate.
static inline float exp_inline(float x) {
    const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    float c = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float shifted = c * 1.44269504f + shifter;
    float n = shifted - shifter;
    float r = c - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t e = (bits_of(shifted) - 0x4b400000u + 127u) << 23;
    float result = p * float_of(e);
    return x < -87.3f ? 0.0f : result;
}

float pk_exp(float x) { return exp_inline(x); }

MULTIVERSION
float pk_exp_shifted(float *row, size_t n) {
    float lanes[16];
    for (int j = 0; j < 16; j++) lanes[j] = -__builtin_inff();
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lanes[j] = row[i + j] > lanes[j] ? row[i + j] : lanes[j];
    float m = -__builtin_inff();
    for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    if (m == -__builtin_inff()) m = 0;
    float sums[16] = {0};
    i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float e = exp_inline(row[i + j] - m);
            row[i + j] = e;
            sums[j] += e;
        }
    float sum = 0;
    for (; i < n; i++) {
        row[i] = exp_inline(row[i] - m);
        sum += row[i];
    }
    for (int j = 0; j < 16; j++) sum += sums[j];
    return sum;
}

MULTIVERSION
void pk_sigmoid_gate(float *p, size_t n, float k) {
    for (size_t i = 0; i < n; i++) p[i] = p[i] / (1.0f + exp_inline(-k * p[i]));
}

MULTIVERSION
void pk_scale_shift(float *p, size_t n, float scale, float shift) {
    for (size_t i = 0; i < n; i++) p[i] = p[i] * scale + shift;
}

MULTIVERSION
void pk_sum_squares(const float *p, size_t n, double *sum, double *squares) {
    double total = 0, total2 = 0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 4096 ? i + 4096 : n;
        float s[16] = {0}, q[16] = {0};
        for (; i + 16 <= end; i += 16)
            for (int j = 0; j < 16; j++) {
                s[j] += p[i + j];
                q[j] += p[i + j] * p[i + j];
            }
        for (; i < end; i++) {
            total += p[i];
            total2 += (double)p[i] * p[i];
        }
        for (int j = 0; j < 16; j++) {
            total += s[j];
            total2 += q[j];
        }
    }
    *sum = total;
    *squares = total2;
}

// Half to float without branches: the 15 exponent+mantissa bits placed in a float and scaled by 2^112 give normals
// and subnormals exactly; infinities and NaNs get the all-ones exponent.
MULTIVERSION
void pk_half_to_float(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t h = src[i], magnitude = h & 0x7fffu;
        float scaled = float_of(magnitude << 13) * 0x1p112f;
        uint32_t special = magnitude >= 0x7c00u ? 0x7f800000u : 0u;
        dst[i] = float_of(bits_of(scaled) | special | (h & 0x8000u) << 16);
    }
}

MULTIVERSION
void pk_bf16_to_float(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = float_of((uint32_t)src[i] << 16);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static float fma_loop_16(long iterations) {
    __m512 acc[16], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < iterations; k++)
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    float sum = 0;
    for (int i = 0; i < 16; i++) sum += _mm512_reduce_add_ps(acc[i]);
    return sum;
}

__attribute__((target("avx2,fma"))) static float fma_loop_8(long iterations) {
    __m256 acc[16], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    for (int i = 0; i < 16; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < iterations; k++)
        for (int i = 0; i < 16; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
    float lanes[8], sum = 0;
    for (int i = 0; i < 16; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        for (int j = 0; j < 8; j++) sum += lanes[j];
    }
    return sum;
}

int pk_cpu_has(int width) {
    __builtin_cpu_init();
    if (width == 16) return __builtin_cpu_supports("avx512f");
    if (width == 8) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return 0;
}

float pk_fma_loop(int width, long iterations) {
    if (!pk_cpu_has(width)) return 0;
    return width == 16 ? fma_loop_16(iterations) : fma_loop_8(iterations);
}
#else
int pk_cpu_has(int width) { (void)width; return 0; }
float pk_fma_loop(int width, long iterations) { (void)width; (void)iterations; return 0; }
#endif
