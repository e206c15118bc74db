// CTensorKernels/winograd: the three transforms of Winograd F(4x4, 3x3) convolution (Lavin and Gray, 2015):
// Y = A^T [(G g G^T) . (B^T d B)] A for each 4x4 output tile d of 6x6 input, on channels-last data and vectorised over
// channels. The 36 element-wise products, summed over input channels, are matrix products the caller runs (sgemm).
// Interpolation points 0, +-1, +-2 and infinity: the matrices of wincnn and of oneDNN's F(4x4, 3x3).
#include "tensor_kernels.h"
#include "multiversion.h"

#define INLINE static inline __attribute__((always_inline))

/// Channels per step: the working tile (36 x CHUNK floats) stays in L1.
enum { CHUNK = 64 };

/// r[i] = sum_k B^T[i][k] d[k] over n channels. B^T rows: (4 0 -5 0 1 0) (0 -4 -4 1 1 0) (0 4 -4 -1 1 0)
/// (0 -2 -1 2 1 0) (0 2 -1 -2 1 0) (0 4 0 -5 0 1).
INLINE void input6(const float *d0, const float *d1, const float *d2, const float *d3, const float *d4, const float *d5,
                   float *r0, float *r1, float *r2, float *r3, float *r4, float *r5, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float a0 = d0[i], a1 = d1[i], a2 = d2[i], a3 = d3[i], a4 = d4[i], a5 = d5[i];
        r0[i] = 4 * a0 - 5 * a2 + a4;
        r1[i] = (a3 + a4) - 4 * (a1 + a2);
        r2[i] = (a4 - a3) + 4 * (a1 - a2);
        r3[i] = (a4 - a2) + 2 * (a3 - a1);
        r4[i] = (a4 - a2) - 2 * (a3 - a1);
        r5[i] = 4 * a1 - 5 * a3 + a5;
    }
}

/// s[i] = sum_k A^T[i][k] m[k] over n channels. A^T rows: (1 1 1 1 1 0) (0 1 -1 2 -2 0) (0 1 1 4 4 0) (0 1 -1 8 -8 1).
INLINE void output6(const float *m0, const float *m1, const float *m2, const float *m3, const float *m4, const float *m5,
                    float *s0, float *s1, float *s2, float *s3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float p = m1[i] + m2[i], q = m1[i] - m2[i], u = m3[i] + m4[i], v = m3[i] - m4[i];
        s0[i] = m0[i] + p + u;
        s1[i] = q + 2 * v;
        s2[i] = p + 4 * u;
        s3[i] = q + 8 * v + m5[i];
    }
}

/// u[i] = sum_k G[i][k] g[k] over n channels. G rows: (1/4 0 0) (-1/6 -1/6 -1/6) (-1/6 1/6 -1/6) (1/24 1/12 1/6)
/// (1/24 -1/12 1/6) (0 0 1).
INLINE void kernel6(const float *g0, const float *g1, const float *g2, float *u0, float *u1, float *u2, float *u3,
                    float *u4, float *u5, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float a = g0[i], b = g1[i], c = g2[i];
        u0[i] = a * 0.25f;
        u1[i] = (a + b + c) * (-1.0f / 6);
        u2[i] = (a - b + c) * (-1.0f / 6);
        u3[i] = a * (1.0f / 24) + b * (1.0f / 12) + c * (1.0f / 6);
        u4[i] = a * (1.0f / 24) - b * (1.0f / 12) + c * (1.0f / 6);
        u5[i] = c;
    }
}

MULTIVERSION
void pk_winograd_weights(const float *g, size_t c, size_t o0, size_t o1, float *u, size_t u_stride) {
    float taps[9][CHUNK], rows[6][3][CHUNK];
    for (size_t o = o0; o < o1; o++) {
        for (size_t c0 = 0; c0 < c; c0 += CHUNK) {
            size_t n = c - c0 < CHUNK ? c - c0 : CHUNK;
            const float *filters = g + (o * c + c0) * 9;
            for (size_t i = 0; i < n; i++)
                for (int t = 0; t < 9; t++) taps[t][i] = filters[i * 9 + t];
            // G g: each kernel column, then (G g) G^T: each row of that.
            for (int l = 0; l < 3; l++)
                kernel6(taps[l], taps[3 + l], taps[6 + l], rows[0][l], rows[1][l], rows[2][l], rows[3][l], rows[4][l], rows[5][l], n);
            float *base = u + (o - o0) * c + c0;
            for (int i = 0; i < 6; i++)
                kernel6(rows[i][0], rows[i][1], rows[i][2], base + (6 * i) * u_stride, base + (6 * i + 1) * u_stride,
                        base + (6 * i + 2) * u_stride, base + (6 * i + 3) * u_stride, base + (6 * i + 4) * u_stride,
                        base + (6 * i + 5) * u_stride, n);
        }
    }
}

MULTIVERSION
void pk_winograd_input(const float *x, size_t row0, size_t h, size_t w, size_t c, size_t padding, size_t tiles_w, size_t t0,
                       size_t t1, const float *zeros, float *v, size_t v_stride) {
    float columns[6][6][CHUNK];
    for (size_t t = t0; t < t1; t++) {
        long oy = (long)(t / tiles_w) * 4 - (long)padding, ox = (long)(t % tiles_w) * 4 - (long)padding;
        const float *patch[6][6];
        for (int k = 0; k < 6; k++)
            for (int l = 0; l < 6; l++) {
                long y = oy + k, xx = ox + l;
                patch[k][l] = y >= 0 && y < (long)h && xx >= 0 && xx < (long)w ? x + (((size_t)y - row0) * w + (size_t)xx) * c : zeros;
            }
        for (size_t c0 = 0; c0 < c; c0 += CHUNK) {
            size_t n = c - c0 < CHUNK ? c - c0 : CHUNK;
            // B^T d: each patch column; then (B^T d) B: each row of that, into the 36 planes.
            for (int l = 0; l < 6; l++)
                input6(patch[0][l] + c0, patch[1][l] + c0, patch[2][l] + c0, patch[3][l] + c0, patch[4][l] + c0, patch[5][l] + c0,
                       columns[0][l], columns[1][l], columns[2][l], columns[3][l], columns[4][l], columns[5][l], n);
            float *base = v + (t - t0) * c + c0;
            for (int i = 0; i < 6; i++)
                input6(columns[i][0], columns[i][1], columns[i][2], columns[i][3], columns[i][4], columns[i][5],
                       base + (6 * i) * v_stride, base + (6 * i + 1) * v_stride, base + (6 * i + 2) * v_stride,
                       base + (6 * i + 3) * v_stride, base + (6 * i + 4) * v_stride, base + (6 * i + 5) * v_stride, n);
        }
    }
}

MULTIVERSION
void pk_winograd_output(const float *m, size_t m_stride, size_t channels, size_t t0, size_t t1, size_t tiles_w,
                        const float *bias, float *y, size_t row0, size_t oh, size_t ow, size_t y_stride) {
    float rows[4][6][CHUNK], out[4][4][CHUNK];
    for (size_t t = t0; t < t1; t++) {
        size_t oy = (t / tiles_w) * 4, ox = (t % tiles_w) * 4;
        for (size_t c0 = 0; c0 < channels; c0 += CHUNK) {
            size_t n = channels - c0 < CHUNK ? channels - c0 : CHUNK;
            const float *base = m + (t - t0) * channels + c0;
            // A^T M: each column of the 6x6 products; then (A^T M) A: each of its 4 rows.
            for (int j = 0; j < 6; j++)
                output6(base + j * m_stride, base + (6 + j) * m_stride, base + (12 + j) * m_stride, base + (18 + j) * m_stride,
                        base + (24 + j) * m_stride, base + (30 + j) * m_stride, rows[0][j], rows[1][j], rows[2][j], rows[3][j], n);
            for (int i = 0; i < 4; i++)
                output6(rows[i][0], rows[i][1], rows[i][2], rows[i][3], rows[i][4], rows[i][5], out[i][0], out[i][1], out[i][2],
                        out[i][3], n);
            for (int i = 0; i < 4 && oy + i < oh; i++)
                for (int j = 0; j < 4 && ox + j < ow; j++) {
                    float *target = y + ((oy + i - row0) * ow + ox + j) * y_stride + c0;
                    if (bias)
                        for (size_t k = 0; k < n; k++) target[k] = out[i][j][k] + bias[c0 + k];
                    else
                        for (size_t k = 0; k < n; k++) target[k] = out[i][j][k];
                }
        }
    }
}
