// CTensorKernels/linear_panels: fully connected layers of few rows (text encoders, the UNet's context projections)
// on CPUs with AVX2 + FMA but no AVX-512. y = x W^T + b with W packed once into panels of 16 outputs ([in][16] each,
// the last one zero padded; float32, or IEEE half widened in registers with F16C) and x into tiles of 6 rows ([in][6],
// zero padded) on each call: a BLAS's packed sgemm, with the weights' packing paid once at load instead of on every
// call, and half weights read as stored. A 6x16 register tile (12 accumulators) multiplies one broadcast element of x
// by two vectors of the panel per input, over blocks of 256 inputs, so that the panel's block stays in L1 while it
// meets every tile of x.
#include "tensor_kernels.h"
#include <string.h>

#define PANEL 16
#define TILE_ROWS 6
#define BLOCK_INPUTS 256

size_t pk_panels_floats(size_t outputs, size_t inputs) { return (outputs + PANEL - 1) / PANEL * PANEL * inputs; }

size_t pk_panel_rows_floats(size_t rows, size_t inputs) {
    return (rows + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS * inputs;
}

void pk_panels_pack(const void *w, int half, size_t outputs, size_t inputs, void *panels, size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; p++)
        for (size_t j = 0; j < PANEL; j++) {
            const size_t o = p * PANEL + j, first = p * inputs * PANEL + j;
            if (half) {
                const uint16_t *row = (const uint16_t *)w + o * inputs;
                uint16_t *panel = (uint16_t *)panels + first;
                for (size_t k = 0; k < inputs; k++) panel[k * PANEL] = o < outputs ? row[k] : 0;
            } else {
                const float *row = (const float *)w + o * inputs;
                float *panel = (float *)panels + first;
                for (size_t k = 0; k < inputs; k++) panel[k * PANEL] = o < outputs ? row[k] : 0.0f;
            }
        }
}

void pk_panel_pack_rows(const float *x, size_t rows, size_t inputs, float *packed, size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; t++) {
        float *tile = packed + t * inputs * TILE_ROWS;
        for (size_t r = 0; r < TILE_ROWS; r++) {
            const size_t row = t * TILE_ROWS + r;
            const float *source = x + row * inputs;
            for (size_t k = 0; k < inputs; k++) tile[k * TILE_ROWS + r] = row < rows ? source[k] : 0.0f;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

// The panel's 16 weights of input k as two float vectors.
AVX2 INLINE void weights_at(const void *b, int half, size_t k, __m256 *b0, __m256 *b1) {
    if (half) {
        const __m128i *h = (const __m128i *)((const uint16_t *)b + k * PANEL);
        *b0 = _mm256_cvtph_ps(_mm_load_si128(h));
        *b1 = _mm256_cvtph_ps(_mm_load_si128(h + 1));
    } else {
        *b0 = _mm256_load_ps((const float *)b + k * PANEL);
        *b1 = _mm256_load_ps((const float *)b + k * PANEL + 8);
    }
}

// One 6x16 tile over `count` inputs: c (rows x columns, stride ldc) = its start + a . b, where the start is c itself
// (`load`), plus the bias (`bias`, when not NULL). a: the tile of x from the block's first input, b: the panel's.
AVX2 INLINE void tile(int rows, int half, int columns, const float *a, const void *b, size_t count, float *c,
                      size_t ldc, int load, const float *bias) {
    __m256 acc[TILE_ROWS][2];
    float edge[PANEL];
    for (int r = 0; r < rows; r++) {
        for (int v = 0; v < 2; v++) acc[r][v] = bias ? _mm256_loadu_ps(bias + 8 * v) : _mm256_setzero_ps();
        if (!load) continue;
        const float *row = c + r * ldc;
        if (columns < PANEL) {
            memset(edge, 0, sizeof edge);
            memcpy(edge, row, (size_t)columns * sizeof(float));
            row = edge;
        }
        for (int v = 0; v < 2; v++) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_loadu_ps(row + 8 * v));
    }
    for (size_t k = 0; k < count; k++) {
        __m256 b0, b1;
        weights_at(b, half, k, &b0, &b1);
        for (int r = 0; r < rows; r++) {
            const __m256 x = _mm256_broadcast_ss(a + k * TILE_ROWS + r);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        float *row = c + r * ldc;
        if (columns == PANEL) {
            for (int v = 0; v < 2; v++) _mm256_storeu_ps(row + 8 * v, acc[r][v]);
        } else {
            for (int v = 0; v < 2; v++) _mm256_storeu_ps(edge + 8 * v, acc[r][v]);
            memcpy(row, edge, (size_t)columns * sizeof(float));
        }
    }
}

// The tile with its row count and weight type constants, so that the accumulators stay in registers.
#define TILE_CASES(half)                                                                                              \
    switch (rows) {                                                                                                   \
    case 6: tile(6, half, columns, a, b, count, c, ldc, load, bias); break;                                           \
    case 5: tile(5, half, columns, a, b, count, c, ldc, load, bias); break;                                           \
    case 4: tile(4, half, columns, a, b, count, c, ldc, load, bias); break;                                           \
    case 3: tile(3, half, columns, a, b, count, c, ldc, load, bias); break;                                           \
    case 2: tile(2, half, columns, a, b, count, c, ldc, load, bias); break;                                           \
    default: tile(1, half, columns, a, b, count, c, ldc, load, bias); break;                                          \
    }
__attribute__((target("avx2,fma,f16c"))) static void tile_rows(int rows, int half, int columns, const float *a,
                                                               const void *b, size_t count, float *c, size_t ldc,
                                                               int load, const float *bias) {
    if (half) TILE_CASES(1) else TILE_CASES(0)
}

AVX2 static void linear_panels_avx2(const float *packed_rows, size_t rows, size_t inputs, const void *panels, int half,
                                    size_t outputs, const float *bias, int accumulate, float *y, size_t p0, size_t p1) {
    const size_t element = half ? 2 : 4;
    for (size_t p = p0; p < p1; p++) {
        const char *panel = (const char *)panels + p * inputs * PANEL * element;
        const size_t n0 = p * PANEL;
        const int columns = outputs - n0 < PANEL ? (int)(outputs - n0) : PANEL;
        float padded_bias[PANEL] = {0};
        if (bias) memcpy(padded_bias, bias + n0, (size_t)columns * sizeof(float));
        for (size_t k0 = 0; k0 < inputs; k0 += BLOCK_INPUTS) {
            const size_t count = inputs - k0 < BLOCK_INPUTS ? inputs - k0 : BLOCK_INPUTS;
            for (size_t r0 = 0; r0 < rows; r0 += TILE_ROWS) {
                const int tile_height = rows - r0 < TILE_ROWS ? (int)(rows - r0) : TILE_ROWS;
                tile_rows(tile_height, half, columns, packed_rows + (r0 * inputs + k0 * TILE_ROWS), panel + k0 * PANEL * element, count,
                          y + r0 * outputs + n0, outputs, k0 > 0 || accumulate, k0 == 0 && bias ? padded_bias : NULL);
            }
        }
    }
}
#endif

int pk_linear_panels(const float *packed_rows, size_t rows, size_t inputs, const void *panels, int half,
                     size_t outputs, const float *bias, int accumulate, float *y, size_t p0, size_t p1) {
#if defined(__x86_64__)
    if (!pk_cpu_has(8) || (half && !__builtin_cpu_supports("f16c"))) return 0;
    linear_panels_avx2(packed_rows, rows, inputs, panels, half, outputs, bias, accumulate, y, p0, p1);
    return 1;
#else
    (void)packed_rows, (void)rows, (void)inputs, (void)panels, (void)half, (void)outputs, (void)bias, (void)accumulate, (void)y;
    (void)p0, (void)p1;
    return 0;
#endif
}
