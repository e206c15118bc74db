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
/// p[i] = p[i] * scale + shift.
void pk_scale_shift(float *p, size_t n, float scale, float shift);
/// Sum and sum of squares of p[0..<n] (float partial sums gathered in double).
void pk_sum_squares(const float *p, size_t n, double *sum, double *squares);
/// IEEE half and bfloat16 to float.
void pk_half_to_float(const uint16_t *src, float *dst, size_t n);
void pk_bf16_to_float(const uint16_t *src, float *dst, size_t n);
/// The machine's FMA limit, for the benchmarks: `iterations` rounds of 16 independent fused multiply-adds on 16-wide
/// (AVX-512F) or 8-wide (AVX2 + FMA) float vectors; returns a value that depends on every lane (so nothing is elided).
/// `pk_cpu_has(...)` says whether the CPU can run a width: 1 for 16 (AVX-512F), 1 for 8 (AVX2 and FMA), else 0.
float pk_fma_loop(int width, long iterations);
int pk_cpu_has(int width);
/// e^x for one value, with the vector kernels' accuracy (scalar tails elsewhere).
float pk_exp(float x);

#endif
