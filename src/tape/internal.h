/* Internal helpers shared by the tape and the ops: allocation, errors,
 * the arena. Not installed. */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include "tapegrad.h"

#include <stdarg.h>

/* Every heap allocation of the library goes through these, so that
 * tg_alloc_count() is exact and tests can make the n-th one fail.
 * tg_malloc and tg_calloc return blocks aligned to TG_ALIGN bytes (a cache
 * line, one AVX-512 vector); tg_realloc keeps only malloc's alignment (it
 * grows buffers read by scalar code: lines of text, rows being parsed). */
#define TG_ALIGN 64
void *tg_malloc(size_t bytes);
void *tg_calloc(size_t n, size_t bytes);
void *tg_realloc(void *p, size_t bytes);
void tg_free(void *p);

/* Set the thread's last error; returns s so callers can `return tg_fail(...)`. */
tg_status tg_fail(tg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Hot elementwise loops get AVX-512 and AVX2 clones chosen at load time
 * (ifunc), so one binary runs everywhere and uses the widest vectors the
 * CPU has (SGD update at batch 1, 1 thread: 35.5 µs plain, 27.6 with the
 * AVX2 clone, 22.7 with AVX-512; bench_step --phases). GCC and clang on
 * x86-64 with glibc; elsewhere a no-op. Off in sanitized builds (meson.build
 * defines TG_NO_SIMD_CLONES): an ifunc resolver runs before the sanitizer's
 * runtime starts. __SANITIZE_ADDRESS__ covers a gcc -fsanitize=address
 * build made without meson; clang defines no such macro. */
#if defined(__x86_64__) && defined(__gnu_linux__) && defined(__GNUC__) &&                          \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && !defined(TG_NO_SIMD_CLONES)
#define TG_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TG_SIMD_CLONES
#endif

/* The thread pool (threads.c). tg_parallel runs fn(ctx, p, parts) for p in
 * [0, parts) and returns when all are done: with n = tg_get_threads(),
 * thread k (the caller is 0) runs parts k, k + n, ...; all on the caller
 * if the pool is busy or n = 1. Each part must compute the same numbers
 * whichever thread runs it. */
typedef void (*tg_task_fn)(void *ctx, int part, int parts);
void tg_parallel(tg_task_fn fn, void *ctx, int parts);
/* 1 once tg_set_threads was called (tapegrad threads, OpenBLAS on one). */
int tg_threads_managed(void);
/* A buffer of at least `bytes` owned by the calling thread, valid until its
 * next call for the same slot on this thread; grows, never shrinks. NULL if
 * out of memory. One slot per user, so that a caller's buffer survives the
 * calls it makes: the inner split's partial products (linalg.c). */
enum { TG_SCRATCH_PARTIALS, TG_SCRATCH_SLOTS };
void *tg_scratch(int slot, size_t bytes);
/* [lo, hi) of part `part` of [0, n) in `parts` parts, cut at multiples of align. */
void tg_part_range(size_t n, int part, int parts, size_t align, size_t *lo, size_t *hi);

/* Element size of a dtype. */
static inline size_t tg_dtype_size(tg_dtype d) {
    return d == TG_F32 ? sizeof(float) : sizeof(double);
}

/* A bump allocator in blocks; tg_arena_reset keeps the memory, merging the
 * blocks into one so that a repeated step fits without allocating. */
typedef struct tg_block tg_block;
typedef struct tg_arena {
    tg_block *head; /* first block */
    tg_block *cur;  /* block being filled */
    size_t in_use;  /* bytes handed out since reset, over all blocks */
} tg_arena;

void tg_arena_init(tg_arena *a);
void *tg_arena_alloc(tg_arena *a, size_t bytes); /* 64-byte aligned; NULL on failure */
void tg_arena_reset(tg_arena *a);
void tg_arena_free(tg_arena *a);

/* Anomaly mode (anomaly.c): TG_ERR_NUMERIC naming the op at tape position
 * pos whose output, or whose r-map's results gin, hold a NaN or an Inf. */
tg_status tg_anomaly_forward(const tg_call *c, int pos);
tg_status tg_anomaly_backward(const tg_call *c, int pos, void *const *gin);

#endif
