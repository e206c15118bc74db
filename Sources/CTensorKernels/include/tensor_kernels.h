// CTensorKernels: the element-wise and row kernels of PaintsTensor that must run vector-wide (exp, sigmoid gates,
// norm statistics, f16 widening). Plain C so the compiler vectorises them, built for AVX-512, AVX2+FMA and baseline
// x86-64 with the best one picked at load (target_clones). Only PaintsTensor calls them.
#ifndef PAINTS_TENSOR_KERNELS_H
#define PAINTS_TENSOR_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// row[i] = e^(row[i] - max(row)); returns the sum of the new values (softmax before its division).
float pk_exp_shifted(float *row, size_t n);
/// p[i] = p[i] * sigmoid(k * p[i]) (SiLU for k = 1, quick GELU for k = 1.702).
void pk_sigmoid_gate(float *p, size_t n, float k);
/// Transpose of rows r0..<r1 of a row-major matrix with `columns` columns: dst[c * dst_stride + r] =
/// src[r * src_stride + c] (strides in elements, so either side may be a window of a larger matrix).
void pk_transpose_rows(const float *src, size_t src_stride, float *dst, size_t dst_stride, size_t columns, size_t r0,
                       size_t r1);
/// GELU, erf form, in place; and GEGLU: out[r][i] = x[r][i] * gelu(x[r][d + i]) for rows of 2d (erf to 1.5e-7).
void pk_gelu(float *p, size_t n);
void pk_geglu(const float *x, float *out, size_t rows, size_t d);
/// p[i] = p[i] * scale + shift.
void pk_scale_shift(float *p, size_t n, float scale, float shift);
/// Layer norm of `rows` rows of d from x into y (x itself allowed): (x - mean) / sqrt(variance + epsilon) * weight +
/// bias, statistics from pk_sum_squares.
void pk_layer_norm(const float *x, float *y, size_t rows, size_t d, const float *weight, const float *bias, float epsilon);
/// Sum and sum of squares of p[0..<n] (float partial sums gathered in double).
void pk_sum_squares(const float *p, size_t n, double *sum, double *squares);
/// IEEE half and bfloat16 to float.
void pk_half_to_float(const uint16_t *src, float *dst, size_t n);
void pk_bf16_to_float(const uint16_t *src, float *dst, size_t n);
/// Float to bfloat16, rounded to nearest even (NaN stays a NaN).
void pk_float_to_bf16(const float *src, uint16_t *dst, size_t n);
/// Float to IEEE half, rounded to nearest even (overflow to infinity, NaN kept a NaN, subnormals exact).
void pk_float_to_half(const float *src, uint16_t *dst, size_t n);
/// The machine's FMA limit, for the benchmarks: `iterations` rounds of PK_FMA_CHAINS_16 independent fused multiply-adds
/// on 16-wide (AVX-512F) or PK_FMA_CHAINS_8 on 8-wide (AVX2 + FMA) float vectors; returns a value that depends on every
/// lane (so nothing is elided).
#define PK_FMA_CHAINS_16 16
#define PK_FMA_CHAINS_8 12
/// `pk_cpu_has(...)` says whether the CPU can run a width: 1 for 16 (AVX-512F), 1 for 8 (AVX2 and FMA), else 0.
float pk_fma_loop(int width, long iterations);
int pk_cpu_has(int width);
/// 1 when the CPU has bfloat16 dot products (AVX512-BF16 or AMX-BF16), else 0.
int pk_cpu_has_bf16_dot(void);
/// The widest vectors the kernels were built for: 16 (AVX-512F), or 8 in a build with `-Xcc -DPK_MAX_WIDTH=8`, which
/// leaves the AVX-512 kernels out so that an AVX-512 machine runs an AVX2 one's paths (benchmarks); 0 off x86-64.
int pk_max_width(void);
/// Whether the vector kernels' clone that runs on this CPU fuses multiply-adds (the AVX-512 and x86-64-v3 ones do, the
/// plain x86-64 one cannot): 1 for a * b + c != 0 with a = 1 + 2^-23, b = 1 - 2^-23, c = -1, whose product 1 - 2^-46
/// rounds to 1 before an unfused add.
int pk_kernels_fuse_multiply_add(float a, float b, float c);
/// e^x for one value, with the vector kernels' accuracy (scalar tails elsewhere).
float pk_exp(float x);

/// Fused attention for one head (attention.c): out[i] = softmax(scale * q[i] K^T) V for the `rows` query rows, with
/// keys and values first packed by pk_attention_pack (both in panels of the register tile's height, zero padded). The
/// scores never exist beyond one block of 48 queries (AVX-512; 16 with AVX2, 4 in plain C) by 256 keys (64 for heads
/// wider than 256). With causal_start >= 0, query row i sees keys 0...causal_start+i only. Returns 0 when its working
/// memory could not be allocated (out untouched).
/// `lanes` picks the kernel and the packed layout: 16 (AVX-512), 8 (AVX2 + FMA) or 1 (plain C); pk_attention_lanes is
/// the widest this CPU runs, and pk_attention returns 0 for one it cannot.
int pk_attention_lanes(void);
size_t pk_attention_packed_floats(size_t keys, size_t d, int lanes);
void pk_attention_pack(const float *k, const float *v, size_t stride, size_t keys, size_t d, int lanes, float *packed);
int pk_attention(const float *q, size_t q_stride, const float *packed, size_t keys, size_t d, float scale,
                 long causal_start, float *out, size_t out_stride, size_t rows, int lanes);

/// Fully connected layer of few rows (linear_rows.c): y[r * y_stride + n] = bias[n] + sum_i x[r * k + i] w[n * k + i]
/// for rows r < `rows` and outputs n0 <= n < n1, with w [outputs][k] read as stored (`dtype` 0: f32, 1: IEEE half,
/// 2: bfloat16) and bias optional. `lanes`: 16 (AVX-512), 8 (AVX2 + FMA + F16C) or 1 (plain C); pk_linear_rows_lanes
/// is the widest this CPU runs, and pk_linear_rows returns 0 (y untouched) for one it cannot or an unknown dtype.
int pk_linear_rows_lanes(void);
int pk_linear_rows(const float *x, size_t rows, size_t k, const void *w, int dtype, const float *bias, float *y,
                   size_t y_stride, size_t n0, size_t n1, int lanes);

/// Fully connected layers of few rows on panels (linear_panels.c; AVX2 + FMA + F16C: pk_linear_panels_available): w
/// [outputs][inputs], float32 or IEEE half (`half`), packed once into panels of 16 outputs by pk_panels_pack (panels
/// p0..<p1; pk_panels_floats values in all, 32-byte aligned). pk_panel_pack_x packs x [rows][inputs] into `scratch`
/// (pk_panel_scratch_floats floats; a thread's own, read by its calls for every layer of that x). pk_linear_panels
/// writes outputs 16 p0 ..< min(16 p1, outputs) of y [rows][outputs]: bias (optional) + x w^T, plus y's own values
/// with `accumulate` (a residual placed in y beforehand), then times sigmoid(gate * that) where `gate` is not 0 (so
/// with `accumulate`, callers gate apart). Returns 0 (y untouched) on a CPU without the instructions.
int pk_linear_panels_available(void);
size_t pk_panels_floats(size_t outputs, size_t inputs);
void pk_panels_pack(const void *w, int half, size_t outputs, size_t inputs, void *panels, size_t p0, size_t p1);
size_t pk_panel_scratch_floats(size_t rows, size_t inputs);
void pk_panel_pack_x(const float *x, size_t rows, size_t inputs, float *scratch);
int pk_linear_panels(const float *packed, size_t rows, size_t inputs, const void *panels, int half, size_t outputs,
                     const float *bias, float gate, int accumulate, float *y, size_t p0, size_t p1);

/// Winograd F(4x4, 3x3) convolution's transforms (winograd.c), channels last, for the 36 matrix products between them:
/// - pk_winograd_weights: U[xi][o - o0][ch] = (G g G^T)[xi] of filters o0..<o1 of g [o][c][3][3]; plane xi at u + xi * u_stride.
/// - pk_winograd_input: V[xi][t - t0][ch] = (B^T d B)[xi] for tiles t0..<t1 of one image [h][w][c] whose rows from
///   `row0` on are at x (tile t: output rows 4(t / tiles_w)..., columns 4(t % tiles_w)..., its 6x6 input window
///   shifted by -padding, all inside the rows held or the image's padding; outside the image reads `zeros`, c floats);
///   plane xi at v + xi * v_stride.
/// - pk_winograd_output: y[row - row0][column][ch] = (A^T M A) + bias[ch] for tiles t0..<t1 of one image from
///   M[xi][t - t0][ch] (`channels` wide, plane xi at m + xi * m_stride) into output rows from `row0` on of an
///   oh x ow image, `y_stride` floats per pixel, the tile's cells inside oh x ow only.
void pk_winograd_weights(const float *g, size_t c, size_t o0, size_t o1, float *u, size_t u_stride);
void pk_winograd_input(const float *x, size_t row0, size_t h, size_t w, size_t c, size_t padding, size_t tiles_w, size_t t0,
                       size_t t1, const float *zeros, float *v, size_t v_stride);
void pk_winograd_output(const float *m, size_t m_stride, size_t channels, size_t t0, size_t t1, size_t tiles_w,
                        const float *bias, float *y, size_t row0, size_t oh, size_t ow, size_t y_stride);

/// glibc malloc's handling of large blocks (heap.c). retain = 1: blocks up to 256 MiB come from the heap and freed ones
/// stay there (no mmap, munmap and page faults per tensor); retain = 0: blocks from 32 MiB are mapped on their own, the
/// heap is trimmed above 64 MiB free (about where glibc's adaptive thresholds settle), and the freed memory goes back
/// to the system now (malloc_trim). Returns 1 when glibc took the settings, 0 elsewhere (no glibc: nothing changes).
int pk_heap_retention(int retain);
/// One malloc arena for every thread (glibc's main heap, which grows without bound): the arenas of other threads are
/// heaps of at most 64 MiB, where larger blocks are always mapped on their own. Call before threads start.
int pk_heap_single_arena(void);

/// A numbered task: `task(context, i)`.
typedef void (*pk_numbered_task)(void *context, long index);
/// Whether the process has loaded libgomp (oneDNN's OpenMP runtime), whose threads `pk_openmp_team_run` uses.
int pk_openmp_team_available(void);
/// Runs task(context, i) for i in 0..<count on an OpenMP team of `threads` (the caller one of them; task i on member
/// i mod the team's size), and returns when all are done: 1. Returns 0 at once without libgomp. Inside another
/// parallel region the team is the calling thread alone.
int pk_openmp_team_run(long count, int threads, void *context, pk_numbered_task task);

#endif
