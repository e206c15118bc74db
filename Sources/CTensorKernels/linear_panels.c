// CTensorKernels/linear_panels: fully connected layers of few rows (text encoders, the UNet's context projections) on
// weights packed once into panels, on CPUs with AVX2 + FMA (+ F16C for half weights), AVX-512 ones included:
// y = x W^T + b, a BLAS's packed sgemm with the weights' packing paid once at load instead of on every call, and half
// weights read as stored (widened in registers).
// A panel is [in][16] (the last one zero padded; float32 or IEEE half). Each thread first packs all of x into tiles of
// 6 rows, [in][6], of its own (8x8 transposes in registers; once for all the layers that read that x): no thread waits
// for another's packing, and no tile's row of x falls in the L1 set of the others (x's rows 12 KiB apart, 3072 inputs,
// would). A 6x16
// register tile (12 accumulators) multiplies one broadcast element of x by the panel's two vectors per input, over
// blocks of 256 inputs, so that the panel's block stays in L1 while it meets every tile of x; meanwhile the next block
// (the next in memory: the same panel's, or the next panel's first) is prefetched into L2, each tile taking its share.
// Streamed from memory on first touch instead, CLIP's weights held the kernel about 10% under its rate on weights
// already in cache. An AVX-512 version (panels of 32, tiles of 12 rows) ran CLIP's layers 1-2% slower on float32
// weights and 9% slower on half ones (vcvtph2ps on 512 bits), so there is none.
#include "tensor_kernels.h"
#include <string.h>

#define BLOCK_INPUTS 256

#define PANEL 16
#define TILE_ROWS 6

int pk_linear_panels_available(void) {
#if defined(__x86_64__)
    return pk_cpu_has(8) && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

size_t pk_panels_floats(size_t outputs, size_t inputs) { return (outputs + PANEL - 1) / PANEL * PANEL * inputs; }

// The tiles, and 8 floats of slack: the packing's last 8-wide store reaches 2 floats past the last tile.
size_t pk_panel_scratch_floats(size_t rows, size_t inputs) {
    return (rows + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS * inputs + 8;
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

#if defined(__x86_64__)
#include <immintrin.h>
#include "exp_inline.h"
#include "transpose_inline.h"
#define INLINE static inline __attribute__((always_inline))

// Six rows of x (NULL: a zero row past the last) at inputs k..<k+8, transposed: column[j] holds the six rows' input
// k + j in its first 6 lanes (zeros in the last 2).
__attribute__((target("avx2"))) INLINE void transpose_six(const float *const source[6], size_t k, __m256 column[8]) {
    __m256 x[8];
    for (int i = 0; i < 6; i++) x[i] = source[i] ? _mm256_loadu_ps(source[i] + k) : _mm256_setzero_ps();
    x[6] = x[7] = _mm256_setzero_ps();
    transpose8x8(x, column);
}

// x [rows][inputs] into tiles of 6 rows: tile t at packed + t * inputs * 6, [in][6], rows past the last zero. Each
// 8-wide store also writes 2 floats that the next input's store writes over; tiles in order, so the last spill of one
// lands where later stores go (the next tile, or the 8 floats of slack).
__attribute__((target("avx2"))) static void pack_tiles(const float *x, size_t rows, size_t inputs, float *packed) {
    const size_t tiles = (rows + TILE_ROWS - 1) / TILE_ROWS, wide = inputs / 8 * 8;
    for (size_t t = 0; t < tiles; t++) {
        float *tile = packed + t * inputs * TILE_ROWS;
        const float *source[TILE_ROWS];
        for (size_t r = 0; r < TILE_ROWS; r++) source[r] = t * TILE_ROWS + r < rows ? x + (t * TILE_ROWS + r) * inputs : NULL;
        for (size_t k = 0; k < wide; k += 8) {
            __m256 column[8];
            transpose_six(source, k, column);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(tile + (k + j) * TILE_ROWS, column[j]);
        }
        for (size_t k = wide; k < inputs; k++)
            for (size_t r = 0; r < TILE_ROWS; r++) tile[k * TILE_ROWS + r] = source[r] ? source[r][k] : 0.0f;
    }
}

#define AVX2 __attribute__((target("avx2,fma,f16c")))

// One input k of a tile: the panel's 16 weights as two vectors (half ones widened), each times the tile's rows'
// broadcast x. Written out (not a loop over the two vectors): at -O2 clang then left the accumulators in memory.
#define PANEL_STEP(k)                                                                                                 \
    do {                                                                                                              \
        const __m256 w0_ = half ? _mm256_cvtph_ps(_mm_load_si128((const __m128i *)((const uint16_t *)b + (k) * PANEL))) \
                                : _mm256_load_ps((const float *)b + (k) * PANEL);                                     \
        const __m256 w1_ = half ? _mm256_cvtph_ps(_mm_load_si128((const __m128i *)((const uint16_t *)b + (k) * PANEL + 8))) \
                                : _mm256_load_ps((const float *)b + (k) * PANEL + 8);                                 \
        for (int r_ = 0; r_ < rows; r_++) {                                                                           \
            const __m256 x_ = _mm256_broadcast_ss(a + (k) * TILE_ROWS + r_);                                          \
            acc[r_][0] = _mm256_fmadd_ps(x_, w0_, acc[r_][0]);                                                        \
            acc[r_][1] = _mm256_fmadd_ps(x_, w1_, acc[r_][1]);                                                        \
        }                                                                                                             \
    } while (0)

// One tile of `rows` rows over `count` inputs: c (rows x columns, stride ldc) = its start + a . b, where the start is
// c itself (`load`), plus the bias (`bias`, when not NULL), then times sigmoid(gate c) where `gate` is not 0 (the last
// block). a: the tile of x from the block's first input, b: the panel's. It prefetches `prefetch_lines` cache lines
// from `next` on, one per input (a second one where the share has more lines than the block has inputs).
AVX2 INLINE void tile(int rows, int half, int columns, const float *a, const void *b, size_t count, float *c, size_t ldc,
                      int load, const float *bias, float gate, const char *next, size_t prefetch_lines) {
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
    size_t k = 0;
    for (; k < prefetch_lines && k < count; k++) {
        _mm_prefetch(next + k * 64, _MM_HINT_T1);
        if (k + count < prefetch_lines) _mm_prefetch(next + (k + count) * 64, _MM_HINT_T1);
        PANEL_STEP(k);
    }
    for (; k < count; k++) PANEL_STEP(k);
    for (int r = 0; r < rows; r++) {
        float *row = c + r * ldc, *out = columns == PANEL ? row : edge;
        for (int v = 0; v < 2; v++) _mm256_storeu_ps(out + 8 * v, acc[r][v]);
        if (gate != 0)   // in L1 here: a pass of its own over y read it back from memory
            for (int j = 0; j < PANEL; j++) out[j] = out[j] / (1.0f + exp_inline(-gate * out[j]));
        if (columns < PANEL) memcpy(row, edge, (size_t)columns * sizeof(float));
    }
}

// The tile with its row count and weight type as constants, so that the accumulators stay in registers.
#define TILE_CASES(h)                                                                                                 \
    switch (rows) {                                                                                                   \
    case 6: tile(6, h, columns, a, b, count, c, ldc, load, bias, gate, next, prefetch_lines); break;                 \
    case 5: tile(5, h, columns, a, b, count, c, ldc, load, bias, gate, next, prefetch_lines); break;                 \
    case 4: tile(4, h, columns, a, b, count, c, ldc, load, bias, gate, next, prefetch_lines); break;                 \
    case 3: tile(3, h, columns, a, b, count, c, ldc, load, bias, gate, next, prefetch_lines); break;                 \
    case 2: tile(2, h, columns, a, b, count, c, ldc, load, bias, gate, next, prefetch_lines); break;                 \
    default: tile(1, h, columns, a, b, count, c, ldc, load, bias, gate, next, prefetch_lines); break;                \
    }
AVX2 static void tile_rows(int rows, int half, int columns, const float *a, const void *b, size_t count, float *c,
                           size_t ldc, int load, const float *bias, float gate, const char *next, size_t prefetch_lines) {
    if (half) TILE_CASES(1) else TILE_CASES(0)
}

AVX2 static void linear_panels_avx2(const float *packed_rows, size_t rows, size_t inputs, const void *panels, int half,
                                    size_t outputs, const float *bias, float gate, int accumulate, float *y, size_t p0,
                                    size_t p1) {
    const size_t row_bytes = PANEL * (half ? 2 : 4), tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    for (size_t p = p0; p < p1; p++) {
        const char *panel = (const char *)panels + p * inputs * row_bytes;
        const size_t n0 = p * PANEL;
        const int columns = outputs - n0 < PANEL ? (int)(outputs - n0) : PANEL;
        float padded_bias[PANEL] = {0};
        if (bias) memcpy(padded_bias, bias + n0, (size_t)columns * sizeof(float));
        for (size_t k0 = 0; k0 < inputs; k0 += BLOCK_INPUTS) {
            const size_t count = inputs - k0 < BLOCK_INPUTS ? inputs - k0 : BLOCK_INPUTS;
            const char *next = panel + (k0 + count) * row_bytes;   // prefetching past the end is harmless
            const size_t lines = count * row_bytes / 64;
            for (size_t t = 0; t < tiles; t++) {
                const size_t r0 = t * TILE_ROWS, share0 = lines * t / tiles, share1 = lines * (t + 1) / tiles;
                const int tile_height = rows - r0 < TILE_ROWS ? (int)(rows - r0) : TILE_ROWS;
                tile_rows(tile_height, half, columns, packed_rows + (r0 * inputs + k0 * TILE_ROWS), panel + k0 * row_bytes,
                          count, y + r0 * outputs + n0, outputs, k0 > 0 || accumulate, k0 == 0 && bias ? padded_bias : NULL,
                          k0 + count == inputs ? gate : 0.0f, next + share0 * 64, share1 - share0);
            }
        }
    }
}
#endif

void pk_panel_pack_x(const float *x, size_t rows, size_t inputs, float *scratch) {
#if defined(__x86_64__)
    if (pk_linear_panels_available()) pack_tiles(x, rows, inputs, scratch);
#else
    (void)x, (void)rows, (void)inputs, (void)scratch;
#endif
}

int pk_linear_panels(const float *packed, size_t rows, size_t inputs, const void *panels, int half, size_t outputs,
                     const float *bias, float gate, int accumulate, float *y, size_t p0, size_t p1) {
#if defined(__x86_64__)
    if (!pk_linear_panels_available()) return 0;
    linear_panels_avx2(packed, rows, inputs, panels, half, outputs, bias, gate, accumulate, y, p0, p1);
    return 1;
#else
    (void)packed, (void)rows, (void)inputs, (void)panels, (void)half, (void)outputs, (void)bias, (void)gate;
    (void)accumulate, (void)y, (void)p0, (void)p1;
    return 0;
#endif
}
