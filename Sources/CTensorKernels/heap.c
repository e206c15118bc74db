// CTensorKernels/heap: glibc malloc's policy for large blocks while a model pass runs (see include/tensor_kernels.h).
#include "tensor_kernels.h"
#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
#endif

int pk_heap_retention(int retain) {
#if defined(__GLIBC__)
    if (retain) return mallopt(M_MMAP_THRESHOLD, 256 << 20) && mallopt(M_TRIM_THRESHOLD, INT_MAX);
    const int set = mallopt(M_TRIM_THRESHOLD, 64 << 20) && mallopt(M_MMAP_THRESHOLD, 32 << 20);
    malloc_trim(0);
    return set;
#else
    (void)retain;
    return 0;
#endif
}

int pk_heap_single_arena(void) {
#if defined(__GLIBC__)
    return mallopt(M_ARENA_MAX, 1);
#else
    return 0;
#endif
}
