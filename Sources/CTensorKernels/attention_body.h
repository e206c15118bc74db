// CTensorKernels/attention_body: the fused attention of attention.c for one vector width. attention.c includes it once
// per width after defining VW (lanes), VT (vector type), NV (vectors per register tile), TARGET, NAME(x) and the V*
// operations (undefined again at the end); register tiles are MR query rows by NV vectors.

// S[MR][NV*VW] = Q[MR][d] K^T[d][NV*VW]: q rows d apart, kt rows `lkp` apart, scores rows `ls` apart.
static inline __attribute__((always_inline)) TARGET void NAME(score_tile)(const float *q, size_t d, const float *kt,
                                                                          size_t lkp, float *s, size_t ls) {
    VT acc[MR][NV];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++)
#pragma clang loop unroll(full)
        for (int c = 0; c < NV; c++) acc[r][c] = VZERO();
    for (size_t kk = 0; kk < d; kk++) {
        VT b[NV];
#pragma clang loop unroll(full)
        for (int c = 0; c < NV; c++) b[c] = VLOAD(kt + kk * lkp + c * VW);
#pragma clang loop unroll(full)
        for (int r = 0; r < MR; r++) {
            VT a = VSET1(q[r * d + kk]);
#pragma clang loop unroll(full)
            for (int c = 0; c < NV; c++) acc[r][c] = VFMA(a, b[c], acc[r][c]);
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++)
#pragma clang loop unroll(full)
        for (int c = 0; c < NV; c++) VSTORE(s + r * ls + c * VW, acc[r][c]);
}

// O[MR][nv*VW] = alpha * O + P[MR][nk] V[nk][nv*VW]: p rows `ls` apart, v rows `vs` apart, o rows `dp` apart.
static inline __attribute__((always_inline)) TARGET void NAME(value_tile)(const float *p, size_t ls, size_t nk,
                                                                          const float *v, size_t vs, float *o, size_t dp,
                                                                          const float *alpha, const int nv) {
    VT acc[MR][NV];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
        VT scale = VSET1(alpha[r]);
#pragma clang loop unroll(full)
        for (int c = 0; c < NV; c++)
            if (c < nv) acc[r][c] = VMUL(VLOAD(o + r * dp + c * VW), scale);
    }
    for (size_t kk = 0; kk < nk; kk++) {
        VT b[NV];
#pragma clang loop unroll(full)
        for (int c = 0; c < NV; c++)
            if (c < nv) b[c] = VLOAD(v + kk * vs + c * VW);
#pragma clang loop unroll(full)
        for (int r = 0; r < MR; r++) {
            VT a = VSET1(p[r * ls + kk]);
#pragma clang loop unroll(full)
            for (int c = 0; c < NV; c++)
                if (c < nv) acc[r][c] = VFMA(a, b[c], acc[r][c]);
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++)
#pragma clang loop unroll(full)
        for (int c = 0; c < NV; c++)
            if (c < nv) VSTORE(o + r * dp + c * VW, acc[r][c]);
}

// One block of at most BLOCK_ROWS queries against every key, flash-style: per key block, the scores, the online
// softmax (running row max m and sum l, earlier output rescaled by alpha = e^(m_old - m_new)), then O += P V.
static TARGET void NAME(attention_rows)(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d,
                                        float scale, long causal_start, float *out, size_t out_stride, size_t rows,
                                        float *scratch) {
    const size_t lkp = padded_keys(keys), dp = round_up(d, VW), mq = round_up(rows, MR);
    const float *kt = packed, *v = packed + d * lkp;
    float *qs = scratch, *s = qs + BLOCK_ROWS * d, *o = s + BLOCK_ROWS * KEY_BLOCK, *m = o + BLOCK_ROWS * dp;
    float *l = m + BLOCK_ROWS, *alpha = l + BLOCK_ROWS;
    for (size_t r = 0; r < mq; r++) {
        for (size_t i = 0; i < d; i++) qs[r * d + i] = r < rows ? q[r * q_stride + i] * scale : 0;
        for (size_t i = 0; i < dp; i++) o[r * dp + i] = 0;
        m[r] = -__builtin_inff();
        l[r] = 0;
    }
    for (size_t k0 = 0; k0 < lkp; k0 += KEY_BLOCK) {
        const size_t nk = lkp - k0 < KEY_BLOCK ? lkp - k0 : KEY_BLOCK;
        for (size_t j = 0; j < nk; j += NV * VW)
            for (size_t r = 0; r < mq; r += MR)
                NAME(score_tile)(qs + r * d, d, kt + (k0 + j) / PANEL * d * PANEL + (k0 + j) % PANEL, PANEL,
                                 s + r * KEY_BLOCK + j, KEY_BLOCK);
        for (size_t r = 0; r < mq; r++) {
            float *row = s + r * KEY_BLOCK;
            size_t visible = keys - k0 < nk ? keys - k0 : nk;
            if (causal_start >= 0) {
                long last = causal_start + (long)r - (long)k0;  // the row's last visible key, relative to the block
                visible = last < 0 ? 0 : ((size_t)last + 1 < visible ? (size_t)last + 1 : visible);
            }
            for (size_t j = visible; j < nk; j++) row[j] = -__builtin_inff();
            float next = row_max(row, nk);
            next = next > m[r] ? next : m[r];
            if (next == -__builtin_inff()) {  // nothing visible yet: the row stays empty
                alpha[r] = 1;
                for (size_t j = 0; j < nk; j++) row[j] = 0;
                continue;
            }
            alpha[r] = exp_inline(m[r] - next);
            l[r] = l[r] * alpha[r] + exp_shift_sum(row, nk, next);
            m[r] = next;
        }
        for (size_t c = 0; c < dp; c += NV * VW) {
            const int nv = (int)((dp - c) / VW < NV ? (dp - c) / VW : NV);
            // The value panel holding columns c...: PANEL columns wide (narrower for the last one).
            const size_t panel = c / PANEL * PANEL, width = dp - panel < PANEL ? dp - panel : PANEL;
            const float *vb = v + panel * lkp + k0 * width + (c - panel);
            for (size_t r = 0; r < mq; r += MR) {
                const float *p = s + r * KEY_BLOCK;
                float *ob = o + r * dp + c;
                switch (nv) {  // constant widths so each tile's accumulators stay in registers
#if NV >= 4
                case 4: NAME(value_tile)(p, KEY_BLOCK, nk, vb, width, ob, dp, alpha + r, 4); break;
                case 3: NAME(value_tile)(p, KEY_BLOCK, nk, vb, width, ob, dp, alpha + r, 3); break;
#endif
#if NV >= 2
                case 2: NAME(value_tile)(p, KEY_BLOCK, nk, vb, width, ob, dp, alpha + r, 2); break;
#endif
                default: NAME(value_tile)(p, KEY_BLOCK, nk, vb, width, ob, dp, alpha + r, 1); break;
                }
            }
        }
    }
    for (size_t r = 0; r < rows; r++) {
        const float inverse = l[r] > 0 ? 1 / l[r] : 0;
        for (size_t i = 0; i < d; i++) out[r * out_stride + i] = o[r * dp + i] * inverse;
    }
}

static void NAME(attention)(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d, float scale,
                            long causal_start, float *out, size_t out_stride, size_t rows) {
    float *scratch = scratch_floats(BLOCK_ROWS * (d + KEY_BLOCK + round_up(d, VW) + 3));
    for (size_t r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
        const size_t n = rows - r0 < BLOCK_ROWS ? rows - r0 : BLOCK_ROWS;
        NAME(attention_rows)(q + r0 * q_stride, q_stride, packed, keys, d, scale,
                             causal_start < 0 ? -1 : causal_start + (long)r0, out + r0 * out_stride, out_stride, n, scratch);
    }
}

#undef TARGET
#undef VW
#undef NV
#undef VT
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VMUL
#undef VFMA
#undef NAME
