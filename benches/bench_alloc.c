/* bench_alloc: heap allocations per training step after warm-up, counted.
 *
 *   bench_alloc [--batch N] [--dtype f32|f64] [--threads N] [--steps N] [--all]
 *
 * This program defines malloc, calloc, realloc, free and the aligned
 * allocators itself; they count each call and forward to glibc's
 * __libc_malloc & co. A definition in the executable takes precedence over
 * libc's for every object in the process (the program, the static tapegrad,
 * OpenBLAS, libc itself), so every heap allocation is seen, not only
 * tapegrad's. Threads (OpenBLAS's workers) count too: the counters are
 * atomic. Not counted: mmap/brk called directly (OpenBLAS takes its GEMM
 * buffers with mmap once, at start-up); minflt_per_step (minor page faults,
 * getrusage) is printed as a hint of such memory traffic.
 *
 * The step is bench_mlp.h's (forward, softmax CE, backward, SGD, reset),
 * on tapegrad's pool of --threads threads (tg_set_threads: OpenBLAS on one
 * thread); the floor's BLAS calls on OpenBLAS's --threads threads.
 * After --warmup steps (default 5) it counts over --steps (default 200):
 *
 *   alloc per_step=<all heap allocations / steps> tg_per_step=<tapegrad's
 *         own counter, tg_alloc_count, / steps> blas_per_step=<allocations
 *         of the step's 8 BLAS calls made alone (bench_floor.h), / steps>
 *         batch=128 dtype=f32 threads=2 steps=200 total=<n> frees=<n>
 *         minflt_per_step=<x>
 *
 * per_step counts everything the step causes, OpenBLAS included;
 * blas_per_step says how much of it OpenBLAS makes by itself for the same
 * calls (its threaded GEMM driver mallocs a job array per call; the pool's
 * parts call OpenBLAS on one thread, which does not).
 *
 * Default: batch 128, f32, 2 threads. --all: batch {1,32,128,1024} x
 * {f32,f64} x threads {1,2}, one line each. */
#define _GNU_SOURCE /* RUSAGE_SELF, memalign declarations */
#include "bench_floor.h"
#include "bench_mlp.h"

#include <cblas.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>

/* ---------------------------------------------------------------- interposed allocator */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static atomic_uint_fast64_t n_alloc, n_free;

static void *counted(void *p) {
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return p;
}

void *malloc(size_t n) {
    return counted(__libc_malloc(n));
}
void *calloc(size_t n, size_t size) {
    return counted(__libc_calloc(n, size));
}
void *realloc(void *p, size_t n) {
    return counted(__libc_realloc(p, n));
}
void free(void *p) {
    if (p) atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
    __libc_free(p);
}
void *memalign(size_t align, size_t n) {
    return counted(__libc_memalign(align, n));
}
void *aligned_alloc(size_t align, size_t n) {
    return counted(__libc_memalign(align, n));
}
void *valloc(size_t n) {
    return counted(__libc_valloc(n));
}
void *pvalloc(size_t n) {
    return counted(__libc_pvalloc(n));
}
int posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = counted(__libc_memalign(align, n));
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

static uint64_t allocs(void) {
    return (uint64_t)atomic_load(&n_alloc);
}
static uint64_t frees(void) {
    return (uint64_t)atomic_load(&n_free);
}

static long minor_faults(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/* ---------------------------------------------------------------- count */

static void run(size_t batch, tg_dtype dt, int threads, int warmup, int steps) {
    BENCH_OK(tg_set_threads(threads)); /* the step on tapegrad's pool, OpenBLAS on one */
    bench_mlp net;
    bench_mlp_new(&net, dt, batch, 42);
    for (int i = 0; i < warmup; i++)
        bench_mlp_step(&net);
    uint64_t a0 = allocs(), f0 = frees(), t0 = tg_alloc_count();
    long m0 = minor_faults();
    for (int i = 0; i < steps; i++)
        bench_mlp_step(&net);
    uint64_t a = allocs() - a0, f = frees() - f0, t = tg_alloc_count() - t0;
    long m = minor_faults() - m0;
    bench_mlp_free(&net);

    /* the same 8 BLAS calls alone (bench_step's floor): what OpenBLAS
     * itself allocates per step, whoever calls it */
    floor_bufs fl;
    openblas_set_num_threads(threads);
    floor_new(&fl, dt, batch, batch == 1, 43);
    for (int i = 0; i < warmup; i++)
        floor_run(&fl);
    uint64_t b0 = allocs();
    for (int i = 0; i < steps; i++)
        floor_run(&fl);
    uint64_t b = allocs() - b0;
    floor_free(&fl);
    openblas_set_num_threads(1);

    printf("alloc per_step=%g tg_per_step=%g blas_per_step=%g batch=%zu dtype=%s threads=%d "
           "steps=%d total=%llu frees=%llu minflt_per_step=%g\n",
           (double)a / steps, (double)t / steps, (double)b / steps, batch, bench_dtype_name(dt),
           threads, steps, (unsigned long long)a, (unsigned long long)f, (double)m / steps);
    fflush(stdout);
}

int main(int argc, char **argv) {
    size_t batch = 128;
    tg_dtype dt = TG_F32;
    int threads = 2, steps = 200, warmup = 5, all = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--batch") == 0) {
            batch = (size_t)bench_parse_pos("bench_alloc", a, v), i++;
        } else if (strcmp(a, "--threads") == 0) {
            threads = (int)bench_parse_pos("bench_alloc", a, v), i++;
        } else if (strcmp(a, "--steps") == 0) {
            steps = (int)bench_parse_pos("bench_alloc", a, v), i++;
        } else if (strcmp(a, "--warmup") == 0) {
            warmup = (int)bench_parse_pos("bench_alloc", a, v), i++;
        } else if (strcmp(a, "--dtype") == 0 && v && bench_parse_dtype(v, &dt)) {
            i++;
        } else if (strcmp(a, "--all") == 0) {
            all = 1;
        } else {
            fprintf(stderr, "usage: bench_alloc [--batch N] [--dtype f32|f64] [--threads N] "
                            "[--steps N] [--warmup N] [--all]\n");
            return strcmp(a, "--help") == 0 ? 0 : 1;
        }
    }
    bench_check_build("bench_alloc");
    /* the interposition must be live: tg_tape_new alone calls calloc */
    uint64_t before = allocs();
    tg_tape *probe;
    BENCH_OK(tg_tape_new(&probe));
    tg_tape_free(probe);
    if (allocs() == before) {
        fprintf(stderr, "bench_alloc: malloc is not interposed; counts would be wrong\n");
        return 2;
    }
    if (!all) {
        run(batch, dt, threads, warmup, steps);
        return 0; /* a report, not a test: the numbers say what they say */
    }
    const size_t batches[] = {1, 32, 128, 1024};
    for (int b = 0; b < 4; b++)
        for (int d = 0; d < 2; d++)
            for (int t = 1; t <= 2; t++)
                run(batches[b], d ? TG_F64 : TG_F32, t, warmup, batches[b] >= 1024 ? 50 : steps);
    return 0;
}
