// CTensorKernels/attention_avx512: the AVX-512 operations and register tile (8 keys or value columns) for one
// instantiation of attention_body.h; attention.c defines NR and NAME, includes this, then the body (which undefines
// them all). No include guard: it is included once per instantiation.
#define TARGET __attribute__((target("avx512f")))
#define VW 16
#define MT 8
#define VT __m512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps(p, x)
#define VSET1(x) _mm512_set1_ps(x)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VEXP(x) exp_avx512(x)
