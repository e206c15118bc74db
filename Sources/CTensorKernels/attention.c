// CTensorKernels/attention: fused scaled dot-product attention for one head (see include/tensor_kernels.h). The scores
// exist one block of 48 queries by 256 keys at a time, the softmax runs online between the two products, and both
// products run on register tiles: AVX-512 (6 rows by 64 keys or values), AVX2 + FMA (6 by 16) or plain C, picked at
// run time from what the CPU reports.
#include "tensor_kernels.h"
#include "exp_inline.h"
#include <stdlib.h>

// Query rows per block, keys per score block, key padding, register-tile rows, and the panel width of the packed
// keys and values (64 keys, or 64 value columns, contiguous: a tile streams through memory instead of striding by
// the key count, which made every row of a tile fall in the same L1 sets).
enum { BLOCK_ROWS = 48, KEY_BLOCK = 256, KEY_ALIGN = 64, MR = 6, PANEL = 64 };

static inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
static inline size_t padded_keys(size_t keys) { return round_up(keys, KEY_ALIGN); }

// Per-thread working memory (queries, one score block, the output rows, running max and sum), kept between calls;
// it grows to the largest head width seen, a few hundred KiB at most.
static _Thread_local float *scratch_buffer;
static _Thread_local size_t scratch_capacity;

static float *scratch_floats(size_t count) {
    if (count > scratch_capacity) {
        free(scratch_buffer);
        scratch_buffer = aligned_alloc(64, round_up(count * sizeof(float), 64));
        scratch_capacity = scratch_buffer ? count : 0;
    }
    return scratch_buffer;
}

#define TARGET
#define VW 1
#define NV 4
#define VT float
#define VZERO() 0.0f
#define VLOAD(p) (*(p))
#define VSTORE(p, x) (*(p) = (x))
#define VSET1(x) (x)
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define NAME(x) x##_scalar
#include "attention_body.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define VW 8
#define NV 2
#define VT __m256
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps(p, x)
#define VSET1(x) _mm256_set1_ps(x)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define NAME(x) x##_avx2
#include "attention_body.h"

#define TARGET __attribute__((target("avx512f")))
#define VW 16
#define NV 4
#define VT __m512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps(p, x)
#define VSET1(x) _mm512_set1_ps(x)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define NAME(x) x##_avx512
#include "attention_body.h"
#endif

int pk_attention_lanes(void) {
#if defined(__x86_64__)
    if (pk_cpu_has(16)) return 16;
    if (pk_cpu_has(8)) return 8;
#endif
    return 1;
}

size_t pk_attention_packed_floats(size_t keys, size_t d, int lanes) {
    return padded_keys(keys) * (d + round_up(d, (size_t)lanes));
}

void pk_attention_pack(const float *k, const float *v, size_t stride, size_t keys, size_t d, int lanes, float *packed) {
    const size_t lkp = padded_keys(keys), dp = round_up(d, (size_t)lanes);
    float *kt = packed, *vp = packed + d * lkp;
    for (size_t j = 0; j < lkp; j++)  // keys transposed, in panels of PANEL keys: [lkp / PANEL][d][PANEL]
        for (size_t i = 0; i < d; i++) kt[j / PANEL * d * PANEL + i * PANEL + j % PANEL] = j < keys ? k[j * stride + i] : 0;
    for (size_t panel = 0; panel < dp; panel += PANEL) {  // values in panels of PANEL columns: [lkp][width] each
        const size_t width = dp - panel < PANEL ? dp - panel : PANEL;
        for (size_t j = 0; j < lkp; j++)
            for (size_t i = 0; i < width; i++)
                vp[panel * lkp + j * width + i] = j < keys && panel + i < d ? v[j * stride + panel + i] : 0;
    }
}

int pk_attention(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d, float scale,
                 long causal_start, float *out, size_t out_stride, size_t rows, int lanes) {
    if (lanes != 1 && (lanes > pk_attention_lanes() || (lanes != 8 && lanes != 16))) return 0;
    if (!scratch_floats(BLOCK_ROWS * (d + KEY_BLOCK + round_up(d, (size_t)lanes) + 3))) return 0;
    switch (lanes) {
#if defined(__x86_64__)
    case 16: attention_avx512(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows); break;
    case 8: attention_avx2(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows); break;
#endif
    default: attention_scalar(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows); break;
    }
    return 1;
}
