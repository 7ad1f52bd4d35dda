/* Small helpers shared by the benchmarks: a monotonic clock, medians,
 * argument parsing, and a warning when the build is not a release build.
 * Header-only (static functions) so that each bench stays one file. */
#ifndef TAPEGRAD_BENCH_UTIL_H
#define TAPEGRAD_BENCH_UTIL_H

#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

/* Any failing tapegrad call ends the bench: a benchmark of an error path
 * would report nonsense. */
#define BENCH_OK(call)                                                                             \
    do {                                                                                           \
        tg_status s_ = (call);                                                                     \
        if (s_ != TG_OK) {                                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,              \
                    tg_status_name(s_), tg_last_error());                                          \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

/* malloc, or exit with "<prog>: out of memory": a bench has no fallback. */
static inline void *bench_malloc(const char *prog, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(2);
    }
    return p;
}

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v in place). */
static inline double bench_median(double *v, size_t n) {
    if (n == 0) return 0.0;
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Timings from a debug or sanitized build say nothing about the library. */
static inline void bench_check_build(const char *name) {
    if (strcmp(BENCH_BUILDTYPE, "release") != 0)
        fprintf(stderr,
                "%s: warning: built with buildtype=%s; numbers are meaningful only from a "
                "--buildtype=release build\n",
                name, BENCH_BUILDTYPE);
}

static inline int bench_parse_dtype(const char *s, tg_dtype *out) {
    if (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0)
        *out = TG_F32;
    else if (strcmp(s, "f64") == 0 || strcmp(s, "float64") == 0)
        *out = TG_F64;
    else
        return 0;
    return 1;
}

static inline const char *bench_dtype_name(tg_dtype d) {
    return d == TG_F32 ? "f32" : "f64";
}

/* A positive integer option value, or exit with a message. */
static inline long bench_parse_pos(const char *prog, const char *opt, const char *s) {
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || v <= 0) {
        fprintf(stderr, "%s: %s needs a positive integer, got '%s'\n", prog, opt, s ? s : "");
        exit(1);
    }
    return v;
}

static inline double bench_parse_seconds(const char *prog, const char *opt, const char *s) {
    char *end = NULL;
    double v = s ? strtod(s, &end) : 0;
    if (!s || *end || !(v > 0)) {
        fprintf(stderr, "%s: %s needs a positive number of seconds, got '%s'\n", prog, opt,
                s ? s : "");
        exit(1);
    }
    return v;
}

#endif
