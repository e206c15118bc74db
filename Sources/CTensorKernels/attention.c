// CTensorKernels/attention: fused scaled dot-product attention for one head (see include/tensor_kernels.h). The scores
// exist one block of ROWS queries by KEY_BLOCK keys at a time, transposed (queries along the vector lanes) so the
// online softmax between the two products runs down columns with no reduction across lanes, and both products run on
// register tiles: AVX-512 (8 keys or value columns by 48 queries, by 16 for causal attention), AVX2 + FMA (4 by 16) or plain C (4 by 4), picked
// at run time from what the CPU reports. Head widths need no padding to the vector width (d = 40 wasted a sixth of the
// value product when the values ran along the lanes).
#include "tensor_kernels.h"
#include "exp_inline.h"
#include <stdlib.h>

// Keys per score block: 256 (48 KiB of scores at AVX-512), 64 for heads wider than 256 (the VAE's 512), whose
// transposed queries and outputs already fill the cache.
enum { KEY_BLOCK = 256 };

static inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// The register tile's height for a width: keys and value columns are padded to it.
static size_t tile_height(int lanes) { return lanes == 16 ? 8 : 4; }

// Per-thread working memory (Q^T, O^T, one score block, running maxima and sums), kept between calls; it grows to the
// largest head width seen, a few hundred KiB at most.
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
#define NR 4
#define MT 4
#define VT float
#define VZERO() 0.0f
#define VLOAD(p) (*(p))
#define VSTORE(p, x) (*(p) = (x))
#define VSET1(x) (x)
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define VEXP(x) exp_inline(x)
#define NAME(x) x##_scalar
#include "attention_body.h"

#if defined(__x86_64__)
#include <immintrin.h>

// e^x for the softmax's x <= 0, lane by lane as exp_inline (the same polynomial; 0 below -87.3 and for -inf).
static inline __attribute__((always_inline, target("avx2,fma"))) __m256 exp_avx2(__m256 x) {
    const __m256 visible = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), visible);
}

static inline __attribute__((always_inline, target("avx512f"))) __m512 exp_avx512(__m512 x) {
    const __mmask16 visible = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(visible, p, n);  // p * 2^n
}

#define TARGET __attribute__((target("avx2,fma")))
#define VW 8
#define NR 2
#define MT 4
#define VT __m256
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps(p, x)
#define VSET1(x) _mm256_set1_ps(x)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VEXP(x) exp_avx2(x)
#define NAME(x) x##_avx2
#include "attention_body.h"

// AVX-512 on blocks of 48 queries; and on blocks of 16 for causal attention: with 48-query blocks a block's first
// queries compute scores of keys they cannot see, and a 77-token text encoder pads its queries to 96.
#define NR 3
#define NAME(x) x##_avx512
#include "attention_avx512.h"
#include "attention_body.h"

#define NR 1
#define NAME(x) x##_avx512_causal
#include "attention_avx512.h"
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
    const size_t mt = tile_height(lanes);
    return 2 * round_up(keys, mt) * round_up(d, mt);
}

void pk_attention_pack(const float *k, const float *v, size_t stride, size_t keys, size_t d, int lanes, float *packed) {
    const size_t mt = tile_height(lanes), lkp = round_up(keys, mt), dp = round_up(d, mt);
    // In panels of mt, zero padded, so a register tile's broadcasts walk through memory: keys as [lkp / mt][dp][mt]
    // (mt keys side by side), values as [dp / mt][lkp][mt] (mt columns side by side).
    float *kp = packed, *vp = packed + lkp * dp;
    for (size_t j0 = 0; j0 < lkp; j0 += mt) {
        float *panel = kp + j0 * dp;
        for (size_t jj = 0; jj < mt; jj++) {
            const size_t j = j0 + jj;
            for (size_t i = 0; i < dp; i++) panel[i * mt + jj] = j < keys && i < d ? k[j * stride + i] : 0;
        }
    }
    for (size_t i0 = 0; i0 < dp; i0 += mt) {
        float *panel = vp + i0 * lkp;
        const size_t width = d - i0 < mt ? d - i0 : mt;
        for (size_t j = 0; j < lkp; j++)
            for (size_t ii = 0; ii < mt; ii++) panel[j * mt + ii] = j < keys && ii < width ? v[j * stride + i0 + ii] : 0;
    }
}

int pk_attention(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d, float scale,
                 long causal_start, float *out, size_t out_stride, size_t rows, int lanes) {
    if (lanes != 1 && (lanes > pk_attention_lanes() || (lanes != 8 && lanes != 16))) return 0;
    switch (lanes) {
#if defined(__x86_64__)
    case 16: {
        if (causal_start >= 0) {
            float *scratch = scratch_floats(attention_scratch_avx512_causal(d));
            if (!scratch) return 0;
            attention_avx512_causal(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows, scratch);
            break;
        }
        float *scratch = scratch_floats(attention_scratch_avx512(d));
        if (!scratch) return 0;
        attention_avx512(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows, scratch);
        break;
    }
    case 8: {
        float *scratch = scratch_floats(attention_scratch_avx2(d));
        if (!scratch) return 0;
        attention_avx2(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows, scratch);
        break;
    }
#endif
    default: {
        float *scratch = scratch_floats(attention_scratch_scalar(d));
        if (!scratch) return 0;
        attention_scalar(q, q_stride, packed, keys, d, scale, causal_start, out, out_stride, rows, scratch);
        break;
    }
    }
    return 1;
}
