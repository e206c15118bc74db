// CTensorKernels/exp_inline: the scalar e^x every vector kernel here inlines, and the softmax row helpers built on it
// (written so that loops over them vectorise).
#ifndef PAINTS_EXP_INLINE_H
#define PAINTS_EXP_INLINE_H
#include <stdint.h>
#include <string.h>

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// Cephes expf: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n built in the exponent bits.
// Relative error below 2e-7; inputs below -87.3 (and -inf) give 0, above 88.7 saturate.
static inline float exp_inline(float x) {
    const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    float c = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float shifted = c * 1.44269504f + shifter;
    float n = shifted - shifter;
    float r = c - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t e = (bits_of(shifted) - 0x4b400000u + 127u) << 23;
    float result = p * float_of(e);
    return x < -87.3f ? 0.0f : result;
}

// Largest of row[0..<n] (-inf for an empty or all -inf row); lanes so it vectorises.
static inline float row_max(const float *row, size_t n) {
    float lanes[16];
    for (int j = 0; j < 16; j++) lanes[j] = -__builtin_inff();
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lanes[j] = row[i + j] > lanes[j] ? row[i + j] : lanes[j];
    float m = -__builtin_inff();
    for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    return m;
}

// row[i] = e^(row[i] - shift); returns their sum.
static inline float exp_shift_sum(float *row, size_t n, float shift) {
    float sums[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float e = exp_inline(row[i + j] - shift);
            row[i + j] = e;
            sums[j] += e;
        }
    float sum = 0;
    for (; i < n; i++) {
        row[i] = exp_inline(row[i] - shift);
        sum += row[i];
    }
    for (int j = 0; j < 16; j++) sum += sums[j];
    return sum;
}

#endif
