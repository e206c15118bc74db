// CTensorKernels/linear_rows_body: the few-rows kernel's register tile and its loop over outputs and rows, included
// once per vector width by linear_rows.c after defining TARGET, VT (vector type), VW (lanes), TR (rows of x per tile),
// VZERO(), VLOAD(p), VSTORE(p, v), VLOADW(w, dtype, i) (VW stored weights from element i, as floats), VFMA(a, b, c),
// VSUM(acc) (the TR * 4 accumulators to one vector: lane i * 4 + j holds the sum of acc[j * TR + i]) and NAME(x).

// R rows of x (1...TR) by C rows of W (1...4; missing ones repeat the last and are not stored). With `prefetch`, the
// next tile's rows of W are fetched into the cache along the way, a cache line of each every 16 inputs.
static inline __attribute__((always_inline)) TARGET void NAME(tile)(const float *x, size_t k, const int R, const char *w,
                                                                    int dtype, int C, const float *bias, float *y,
                                                                    size_t y_stride, const char *prefetch) {
    const size_t es = element_size(dtype), whole = k / VW * VW;
    const char *wr[4];
    for (int j = 0; j < 4; j++) wr[j] = w + (size_t)(j < C ? j : C - 1) * k * es;
    VT acc[TR * 4];  // acc[j * TR + i]: row i, output j
    for (int q = 0; q < TR * 4; q++) acc[q] = VZERO();
    for (size_t i0 = 0; i0 < whole; i0 += VW) {
        VT xv[TR];
        for (int i = 0; i < R; i++) xv[i] = VLOAD(x + i * k + i0);
        if (prefetch && i0 % 16 == 0)
            for (int j = 0; j < 4; j++) _mm_prefetch(prefetch + (j * k + i0) * es, _MM_HINT_T0);
        for (int j = 0; j < 4; j++) {
            const VT wv = VLOADW(wr[j], dtype, i0);
            for (int i = 0; i < R; i++) acc[j * TR + i] = VFMA(xv[i], wv, acc[j * TR + i]);
        }
    }
    float sums[TR * 4];  // [row][output]
    VSTORE(sums, VSUM(acc));
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            const float tail = whole < k ? tail_dot(x + i * k, wr[j], dtype, whole, k) : 0.0f;
            y[i * y_stride + j] = sums[i * 4 + j] + tail + (bias ? bias[j] : 0.0f);
        }
}

// Outputs n0..<n1 in blocks of 4, each block's rows of W (streamed from memory once) against every row of x in tiles
// of TR rows, the last tile of fewer.
static TARGET void NAME(linear_rows)(const float *x, size_t rows, size_t k, const void *w, int dtype, const float *bias,
                                     float *y, size_t y_stride, size_t n0, size_t n1) {
    const size_t es = element_size(dtype);
    for (size_t n = n0; n < n1; n += 4) {
        const int c = n1 - n < 4 ? (int)(n1 - n) : 4;
        const char *wn = (const char *)w + n * k * es, *next = n + 4 < n1 ? wn + 4 * k * es : 0;
        const float *b = bias ? bias + n : 0;
        size_t r = 0;
        for (; r + TR <= rows; r += TR)
            NAME(tile)(x + r * k, k, TR, wn, dtype, c, b, y + r * y_stride + n, y_stride, r == 0 ? next : 0);
        const char *pf = r == 0 ? next : 0;
#if TR == 4
        if (rows - r == 3) NAME(tile)(x + r * k, k, 3, wn, dtype, c, b, y + r * y_stride + n, y_stride, pf);
        if (rows - r == 2) NAME(tile)(x + r * k, k, 2, wn, dtype, c, b, y + r * y_stride + n, y_stride, pf);
#endif
        if (rows - r == 1) NAME(tile)(x + r * k, k, 1, wn, dtype, c, b, y + r * y_stride + n, y_stride, pf);
    }
}

#undef TARGET
#undef VT
#undef VW
#undef TR
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VLOADW
#undef VFMA
#undef VSUM
#undef NAME
