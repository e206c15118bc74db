// CTensorKernels/parallel: runs numbered tasks on the OpenMP runtime's threads (libgomp, which Debian's oneDNN runs its
// primitives on), so that one team of threads serves oneDNN and our own kernels (see include/tensor_kernels.h).
#include "tensor_kernels.h"
#include <dlfcn.h>
#include <stddef.h>

// libgomp's entry points, as GCC's code for `#pragma omp parallel` calls them (its ABI since GCC 4.9).
typedef void (*gomp_parallel_function)(void (*body)(void *), void *data, unsigned threads, unsigned flags);
typedef int (*omp_int_function)(void);

static gomp_parallel_function gomp_parallel;
static omp_int_function thread_number, team_size;

int pk_openmp_team_available(void) {
    static int resolved = -1;
    if (resolved < 0) {
        // Looked up in the libraries already loaded: libgomp comes with oneDNN, not with this target.
        gomp_parallel = (gomp_parallel_function)dlsym(RTLD_DEFAULT, "GOMP_parallel");
        thread_number = (omp_int_function)dlsym(RTLD_DEFAULT, "omp_get_thread_num");
        team_size = (omp_int_function)dlsym(RTLD_DEFAULT, "omp_get_num_threads");
        resolved = gomp_parallel && thread_number && team_size;
    }
    return resolved;
}

struct team_job {
    pk_numbered_task task;
    void *context;
    long count;
};

static void team_member(void *data) {
    const struct team_job *job = data;
    // The team may be smaller than asked (inside another parallel region it is one thread): stride by its size.
    const long members = team_size(), first = thread_number();
    for (long i = first; i < job->count; i += members) job->task(job->context, i);
}

int pk_openmp_team_run(long count, int threads, void *context, pk_numbered_task task) {
    if (!pk_openmp_team_available()) return 0;
    struct team_job job = {task, context, count};
    gomp_parallel(team_member, &job, (unsigned)(threads < 1 ? 1 : threads), 0);
    return 1;
}
