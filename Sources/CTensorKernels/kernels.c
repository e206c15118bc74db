// CTensorKernels: see include/tensor_kernels.h.
#include "tensor_kernels.h"
#include <math.h>
#include "exp_inline.h"
#include "multiversion.h"
#include "transpose_inline.h"

float pk_exp(float x) { return exp_inline(x); }

// Contracted into one FMA (C's default FP_CONTRACT) where the clone has FMA, two roundings in the plain x86-64 one.
MULTIVERSION
int pk_kernels_fuse_multiply_add(float a, float b, float c) { return a * b + c != 0.0f; }

MULTIVERSION
float pk_exp_shifted(float *row, size_t n) {
    float m = row_max(row, n);
    return exp_shift_sum(row, n, m == -__builtin_inff() ? 0 : m);
}

MULTIVERSION
void pk_sigmoid_gate(float *p, size_t n, float k) {
    for (size_t i = 0; i < n; i++) p[i] = p[i] / (1.0f + exp_inline(-k * p[i]));
}

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, about float rounding), branch-free so loops over
// it vectorise: 1 - t (a1 + t (a2 + ...)) e^(-x^2) with t = 1 / (1 + p|x|), the sign put back.
static inline float erf_inline(float x) {
    float a = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float y = 1.0f - poly * exp_inline(-a * a);
    return x < 0 ? -y : y;
}

static inline float gelu_inline(float x) { return 0.5f * x * (1.0f + erf_inline(x * 0.70710678118654752f)); }

MULTIVERSION
void pk_gelu(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = gelu_inline(p[i]);
}

MULTIVERSION
void pk_geglu(const float *x, float *out, size_t rows, size_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *hidden = x + r * 2 * d, *gate = hidden + d;
        float *o = out + r * d;
        for (size_t i = 0; i < d; i++) o[i] = hidden[i] * gelu_inline(gate[i]);
    }
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

MULTIVERSION
void pk_layer_norm(const float *x, float *y, size_t rows, size_t d, const float *weight, const float *bias, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * d;
        float *out = y + r * d;
        double sum, squares;
        pk_sum_squares(row, d, &sum, &squares);
        const double mean = sum / (double)d, variance = squares / (double)d - mean * mean;
        const float m = (float)mean, inv = (float)(1 / sqrt((variance > 0 ? variance : 0) + (double)epsilon));
        for (size_t i = 0; i < d; i++) out[i] = (row[i] - m) * inv * weight[i] + bias[i];
    }
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

// Float to half without branches on the value (F. Giesen's float_to_half_fast3_rtne): values at or above 65520 become
// infinity (NaN stays a NaN), values below 2^-14 are rounded by adding 0.5f (whose exponent puts the half subnormal's
// last bit at the float's last mantissa bit), the rest rebias the exponent and round the mantissa to nearest even.
MULTIVERSION
void pk_float_to_half(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x = bits_of(src[i]), sign = x & 0x80000000u;
        x ^= sign;
        uint32_t big = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
        uint32_t tiny = bits_of(float_of(x) + 0.5f) - 0x3f000000u;
        uint32_t normal = (x + 0xc8000fffu + ((x >> 13) & 1u)) >> 13;
        uint32_t h = x >= 0x47800000u ? big : x < 0x38800000u ? tiny : normal;
        dst[i] = (uint16_t)(h | sign >> 16);
    }
}

// Float to bfloat16, rounded to nearest even (NaN kept a quiet NaN).
MULTIVERSION
void pk_float_to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x = bits_of(src[i]);
        uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
        dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? (x >> 16) | 0x40u : rounded);
    }
}

MULTIVERSION
void pk_bf16_to_float(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = float_of((uint32_t)src[i] << 16);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static float fma_loop_16(long iterations) {
    __m512 acc[PK_FMA_CHAINS_16], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    for (int i = 0; i < PK_FMA_CHAINS_16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < iterations; k++)
        for (int i = 0; i < PK_FMA_CHAINS_16; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    float sum = 0;
    for (int i = 0; i < PK_FMA_CHAINS_16; i++) sum += _mm512_reduce_add_ps(acc[i]);
    return sum;
}

// 12 chains, not 16: AVX2 has 16 vector registers, and 16 accumulators with b and c spilled to the stack (the loop
// then measured 123-127 GFLOP/s on the Zen 4, half its FMA rate). Two FMA pipes of latency 4 need 8.
__attribute__((target("avx2,fma"))) static float fma_loop_8(long iterations) {
    __m256 acc[PK_FMA_CHAINS_8], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    for (int i = 0; i < PK_FMA_CHAINS_8; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < iterations; k++)
        for (int i = 0; i < PK_FMA_CHAINS_8; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
    float lanes[8], sum = 0;
    for (int i = 0; i < PK_FMA_CHAINS_8; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        for (int j = 0; j < 8; j++) sum += lanes[j];
    }
    return sum;
}

int pk_cpu_has(int width) {
    __builtin_cpu_init();
    if (width == 16) return PK_AVX512_BUILT && __builtin_cpu_supports("avx512f");
    if (width == 8) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return 0;
}

int pk_cpu_has_bf16_dot(void) {
    __builtin_cpu_init();
    return PK_AVX512_BUILT && (__builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16"));
}

int pk_max_width(void) { return PK_AVX512_BUILT ? 16 : 8; }

float pk_fma_loop(int width, long iterations) {
    if (!pk_cpu_has(width)) return 0;
    return width == 16 ? fma_loop_16(iterations) : fma_loop_8(iterations);
}
#else
int pk_cpu_has(int width) { (void)width; return 0; }
int pk_cpu_has_bf16_dot(void) { return 0; }
int pk_max_width(void) { return 0; }
float pk_fma_loop(int width, long iterations) { (void)width; (void)iterations; return 0; }
#endif

// Transpose: 8x8 blocks through AVX registers (unpack, shuffle, lane permute) where the CPU has AVX2, the edges and
// other CPUs element by element.
static void transpose_scalar(const float *src, size_t src_stride, float *dst, size_t dst_stride, size_t r0, size_t r1,
                             size_t c0, size_t c1) {
    for (size_t r = r0; r < r1; r++)
        for (size_t c = c0; c < c1; c++) dst[c * dst_stride + r] = src[r * src_stride + c];
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void transpose_avx2(const float *src, size_t src_stride, float *dst,
                                                            size_t dst_stride, size_t columns, size_t r0, size_t r1) {
    size_t r = r0;
    for (; r + 8 <= r1; r += 8) {
        size_t c = 0;
        for (; c + 8 <= columns; c += 8) {
            __m256 x[8], columns8[8];
            for (int i = 0; i < 8; i++) x[i] = _mm256_loadu_ps(src + (r + i) * src_stride + c);
            transpose8x8(x, columns8);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + (c + j) * dst_stride + r, columns8[j]);
        }
        transpose_scalar(src, src_stride, dst, dst_stride, r, r + 8, c, columns);
    }
    transpose_scalar(src, src_stride, dst, dst_stride, r, r1, 0, columns);
}
#endif

void pk_transpose_rows(const float *src, size_t src_stride, float *dst, size_t dst_stride, size_t columns, size_t r0,
                       size_t r1) {
#if defined(__x86_64__)
    if (pk_cpu_has(8)) {
        transpose_avx2(src, src_stride, dst, dst_stride, columns, r0, r1);
        return;
    }
#endif
    transpose_scalar(src, src_stride, dst, dst_stride, r0, r1, 0, columns);
}
