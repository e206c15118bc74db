// CTensorKernels/attention_body: the fused attention of attention.c for one vector width. attention.c includes it once
// per width after defining VW (lanes), VT (vector type), NR (vectors of query rows per block), MT (the register tile's
// height: keys in a score tile, value columns in an output tile), TARGET, NAME(x) and the V* operations (undefined
// again at the end). A block holds ROWS = NR * VW queries, and everything between the two products is laid out
// transposed, one key (or one value column) per row of ROWS queries: the softmax's maxima, exponentials and sums then
// run down the columns, vector by vector, with no reduction across a vector's lanes.
#define ROWS (NR * VW)

// S^T[MT][ROWS] = K[MT][d] Q^T[d][ROWS]: k is a panel of MT keys ([d][MT]), qt and s have rows ROWS apart.
static inline __attribute__((always_inline)) TARGET void NAME(score_tile)(const float *qt, size_t d, const float *k,
                                                                          float *s) {
    VT acc[MT][NR];
#pragma clang loop unroll(full)
    for (int t = 0; t < MT; t++)
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) acc[t][c] = VZERO();
    for (size_t i = 0; i < d; i++) {
        VT b[NR];
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) b[c] = VLOAD(qt + i * ROWS + c * VW);
#pragma clang loop unroll(full)
        for (int t = 0; t < MT; t++) {
            VT a = VSET1(k[i * MT + t]);
#pragma clang loop unroll(full)
            for (int c = 0; c < NR; c++) acc[t][c] = VFMA(a, b[c], acc[t][c]);
        }
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < MT; t++)
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) VSTORE(s + t * ROWS + c * VW, acc[t][c]);
}

// O^T[MT][ROWS] = alpha * O^T + V^T[MT][nk] P^T[nk][ROWS]: v is a panel of MT value columns ([nk][MT]).
static inline __attribute__((always_inline)) TARGET void NAME(value_tile)(const float *p, size_t nk, const float *v,
                                                                          float *ot, const float *alpha) {
    VT acc[MT][NR];
#pragma clang loop unroll(full)
    for (int c = 0; c < NR; c++) {
        VT scale = VLOAD(alpha + c * VW);
#pragma clang loop unroll(full)
        for (int t = 0; t < MT; t++) acc[t][c] = VMUL(VLOAD(ot + t * ROWS + c * VW), scale);
    }
    for (size_t kk = 0; kk < nk; kk++) {
        VT b[NR];
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) b[c] = VLOAD(p + kk * ROWS + c * VW);
#pragma clang loop unroll(full)
        for (int t = 0; t < MT; t++) {
            VT a = VSET1(v[kk * MT + t]);
#pragma clang loop unroll(full)
            for (int c = 0; c < NR; c++) acc[t][c] = VFMA(a, b[c], acc[t][c]);
        }
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < MT; t++)
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) VSTORE(ot + t * ROWS + c * VW, acc[t][c]);
}

// One block of at most ROWS queries against every key, flash-style: per block of KEY_BLOCK keys (64 when d > 256), the scores S^T, the
// online softmax (running maxima m and sums l per query, the output so far rescaled by alpha = e^(m_old - m_new)),
// then O^T += V^T P^T. Scratch: Q^T and O^T [dp][ROWS], S^T [KEY_BLOCK][ROWS], then m, l, alpha, shift and next [ROWS].
static TARGET void NAME(attention_rows)(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d,
                                        float scale, long causal_start, float *out, size_t out_stride, size_t rows,
                                        float *scratch) {
    const size_t dp = round_up(d, MT), lkp = round_up(keys, MT);
    const float *kp = packed, *vp = packed + lkp * dp;
    float *qt = scratch, *ot = qt + dp * ROWS, *s = ot + dp * ROWS, *m = s + KEY_BLOCK * ROWS;
    float *l = m + ROWS, *alpha = l + ROWS, *shift = alpha + ROWS, *next = shift + ROWS;
    for (size_t i = 0; i < dp; i++)
        for (size_t r = 0; r < ROWS; r++) {
            qt[i * ROWS + r] = r < rows && i < d ? q[r * q_stride + i] * scale : 0;
            ot[i * ROWS + r] = 0;
        }
    for (size_t r = 0; r < ROWS; r++) {
        m[r] = -__builtin_inff();
        l[r] = 0;
    }
    const size_t key_block = d > 256 ? 64 : KEY_BLOCK;
    // With a causal mask the block's last query sees keys up to causal_start + rows - 1: the key blocks past them are
    // skipped (the keys of the last register tile past them are masked below).
    const size_t seen = causal_start >= 0 && (size_t)causal_start + rows < keys ? (size_t)causal_start + rows : keys;
    const size_t seen_p = round_up(seen, MT);
    for (size_t k0 = 0; k0 < seen_p; k0 += key_block) {
        const size_t nk = seen_p - k0 < key_block ? seen_p - k0 : key_block;
        for (size_t j = 0; j < nk; j += MT) NAME(score_tile)(qt, d, kp + (k0 + j) * dp, s + j * ROWS);
        for (size_t j = keys > k0 ? keys - k0 : 0; j < nk; j++)  // padding keys
            for (size_t r = 0; r < ROWS; r++) s[j * ROWS + r] = -__builtin_inff();
        if (causal_start >= 0)  // query r sees keys up to causal_start + r
            for (size_t j = 0; j < nk; j++) {
                const long hidden = (long)(k0 + j) - causal_start;
                for (long r = 0; r < hidden && r < ROWS; r++) s[j * ROWS + r] = -__builtin_inff();
            }
        VT acc[NR];  // the block's maxima, then its sums
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) acc[c] = VLOAD(m + c * VW);
        for (size_t j = 0; j < nk; j++)
#pragma clang loop unroll(full)
            for (int c = 0; c < NR; c++) acc[c] = VMAX(acc[c], VLOAD(s + j * ROWS + c * VW));
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) VSTORE(next + c * VW, acc[c]);
        for (size_t r = 0; r < ROWS; r++) {  // a query that sees no key yet keeps an empty row: alpha 1, e^-inf = 0
            const int empty = next[r] == -__builtin_inff();
            alpha[r] = empty ? 1.0f : exp_inline(m[r] - next[r]);
            shift[r] = empty ? 0.0f : next[r];
            m[r] = next[r];
        }
        VT shifts[NR];
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) {
            shifts[c] = VLOAD(shift + c * VW);
            acc[c] = VZERO();
        }
        for (size_t j = 0; j < nk; j++)
#pragma clang loop unroll(full)
            for (int c = 0; c < NR; c++) {
                const VT e = VEXP(VSUB(VLOAD(s + j * ROWS + c * VW), shifts[c]));
                VSTORE(s + j * ROWS + c * VW, e);
                acc[c] = VADD(acc[c], e);
            }
#pragma clang loop unroll(full)
        for (int c = 0; c < NR; c++) VSTORE(next + c * VW, acc[c]);
        for (size_t r = 0; r < ROWS; r++) l[r] = l[r] * alpha[r] + next[r];
        for (size_t i = 0; i < dp; i += MT) NAME(value_tile)(s, nk, vp + i * lkp + k0 * MT, ot + i * ROWS, alpha);
    }
    for (size_t r = 0; r < rows; r++) {
        const float inverse = l[r] > 0 ? 1 / l[r] : 0;
        for (size_t i = 0; i < d; i++) out[r * out_stride + i] = ot[i * ROWS + r] * inverse;
    }
}

static size_t NAME(attention_scratch)(size_t d) { return 2 * round_up(d, MT) * ROWS + KEY_BLOCK * ROWS + 5 * ROWS; }

static void NAME(attention)(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d, float scale,
                            long causal_start, float *out, size_t out_stride, size_t rows, float *scratch) {
    for (size_t r0 = 0; r0 < rows; r0 += ROWS) {
        const size_t n = rows - r0 < ROWS ? rows - r0 : ROWS;
        NAME(attention_rows)(q + r0 * q_stride, q_stride, packed, keys, d, scale,
                             causal_start < 0 ? -1 : causal_start + (long)r0, out + r0 * out_stride, out_stride, n, scratch);
    }
}

#undef ROWS
#undef TARGET
#undef VW
#undef NR
#undef MT
#undef VT
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VMUL
#undef VFMA
#undef VADD
#undef VSUB
#undef VMAX
#undef VEXP
#undef NAME
