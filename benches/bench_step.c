/* bench_step: one training step of the MLP 784-256-128-10 (bench_mlp.h)
 * against its GEMM floor, measured in the same process on the same threads.
 *
 *   bench_step [--batch N] [--dtype f32|f64] [--threads N] [--seconds S]
 *              [--floor auto|gemm|gemv] [--pool tapegrad|openblas]
 *              [--step-only] [--phases]
 *
 * With no --batch/--dtype/--threads it runs every combination of batch
 * {1, 32, 128, 1024}, dtype {f32, f64}, threads {1, 2}; each given option
 * fixes that axis. One line per configuration:
 *
 *   step batch=128 dtype=f32 threads=2 us=<median µs per step>
 *        floor_us=<median µs of the floor> ratio=<us/floor_us> core=<OpenBLAS core>
 *
 * core= is openblas_get_corename(): the kernels OpenBLAS chose for this CPU
 * (or OPENBLAS_CORETYPE forced), which the step and the floor both use.
 *
 * The floor is the step's 8 matrix products called directly through CBLAS
 * on buffers of the same shapes, nothing else:
 *   forward   Z1 = X·W1, Z2 = A1·W2, Z3 = A2·W3                 (beta 0)
 *   backward  dW3 += A2ᵀ·G3, dA2 += G3·W3ᵀ, dW2 += A1ᵀ·G2,
 *             dA1 += G2·W2ᵀ, dW1 += Xᵀ·G1                       (beta 1)
 * (dX is not needed.) Transposes are BLAS flags, as in the library. At batch
 * 1 the floor (--floor auto) uses gemv for the products and ger for the
 * weight gradients, as the issue defines it; --floor gemm forces gemm
 * calls there too.
 *
 * Timing: a warm-up of each (>= 0.1 s), then --seconds (default 0.5) of
 * steps and as long of floors, in 10 alternating rounds (0.2 s of sleep
 * between rounds, so that one pool's idle threads do not spin beside the
 * other's; see quiet()) so that a burst of
 * load from elsewhere on the machine hits both; every repetition is timed
 * on its own and the medians are reported. At least 15 repetitions each.
 *
 * --step-only times the step alone (for perf). --phases prints instead
 *   phases batch=.. dtype=.. threads=.. forward_us backward_us update_us
 *          reset_us floor_fwd_us floor_bwd_us step_us floor_us
 * (medians of each part timed on its own; step_us and floor_us: medians of
 * the whole step and floor, the steps in one block, then the floors in
 * another): the non-GEMM cost of the forward is
 * forward_us − floor_fwd_us, and so on. */
#define _POSIX_C_SOURCE 200809L
#include "bench_floor.h"
#include "bench_mlp.h"

/* ---------------------------------------------------------------- timing */

typedef struct config {
    size_t batch;
    tg_dtype dtype;
    int threads;
    int openblas_pool; /* --pool openblas: the step on OpenBLAS's threads, as before */
} config;

/* Between blocks, 0.2 s of sleep: the pool that ran last (OpenBLAS's
 * workers spin for ~0.1 s after their last job, tapegrad's for 2 ms) goes
 * to sleep, so that it does not spin beside the other's threads. */
static void quiet(void) {
    struct timespec ts = {0, 200000000L};
    nanosleep(&ts, NULL);
}

/* The step runs on tapegrad's pool (OpenBLAS on one thread) unless
 * --pool openblas; the floor always calls OpenBLAS on c->threads threads.
 * Switched before each round, outside the timed runs. */
static void threads_for_step(const config *c) {
    quiet();
    if (c->openblas_pool)
        openblas_set_num_threads(c->threads);
    else
        BENCH_OK(tg_set_threads(c->threads)); /* which puts OpenBLAS on one thread */
}
static void threads_for_floor(const config *c) {
    quiet();
    openblas_set_num_threads(c->threads);
}

static void do_step(void *p) {
    bench_mlp_step(p);
}
static void do_floor(void *p) {
    floor_run(p);
}

/* Run fn for at least `seconds` and 3 times; the mean time of one run. */
static double warm_up(void (*fn)(void *), void *ctx, double seconds) {
    int runs = 0;
    double t0 = bench_now(), t = t0;
    while (runs < 3 || t - t0 < seconds) {
        fn(ctx);
        runs++;
        t = bench_now();
    }
    return (t - t0) / runs;
}

static size_t reps_for(double per_run, double seconds) {
    double r = seconds / (per_run > 1e-9 ? per_run : 1e-9);
    return r < 15 ? 15 : r > 1e6 ? 1000000 : (size_t)r;
}

/* Time runs [from, to) of fn, one clock read per run. */
static void time_runs(void (*fn)(void *), void *ctx, double *samples, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        double t0 = bench_now();
        fn(ctx);
        samples[i] = bench_now() - t0;
    }
}

/* --phases: the step cut in its parts, each timed on its own (medians),
 * beside the floor's forward (3 products) and backward (5 products):
 * forward = tg_mlp_forward + tg_mlp_cost, backward = tg_backward, update =
 * tg_optimizer_step (SGD, zeroes the gradients), reset = tg_tape_reset. */
static void run_phases(const config *c, double seconds, int gemv) {
    threads_for_step(c);
    bench_mlp net;
    floor_bufs fl;
    bench_mlp_new(&net, c->dtype, c->batch, 42);
    floor_new(&fl, c->dtype, c->batch, gemv, 43);
    double per = warm_up(do_step, &net, 0.1);
    threads_for_floor(c);
    warm_up(do_floor, &fl, 0.1);
    size_t n = reps_for(per, seconds);
    double *t = malloc(8 * n * sizeof *t);
    if (!t) exit(2);
    threads_for_step(c);
    for (size_t i = 0; i < n; i++) {
        tg_tensor *logits, *cost;
        double t0 = bench_now();
        BENCH_OK(tg_mlp_forward(net.tape, net.m, net.x, &logits));
        BENCH_OK(tg_mlp_cost(net.tape, net.m, logits, net.y, &cost));
        double t1 = bench_now();
        BENCH_OK(tg_backward(net.tape, cost));
        double t2 = bench_now();
        BENCH_OK(tg_optimizer_step(net.opt));
        double t3 = bench_now();
        tg_tape_reset(net.tape);
        double t4 = bench_now();
        t[i] = t1 - t0, t[n + i] = t2 - t1, t[2 * n + i] = t3 - t2, t[3 * n + i] = t4 - t3;
        t[6 * n + i] = t4 - t0;
    }
    threads_for_floor(c);
    for (size_t i = 0; i < n; i++) {
        double t4 = bench_now();
        floor_forward(&fl);
        double t5 = bench_now();
        floor_backward(&fl);
        double t6 = bench_now();
        t[4 * n + i] = t5 - t4, t[5 * n + i] = t6 - t5, t[7 * n + i] = t6 - t4;
    }
    double m[8];
    for (int k = 0; k < 8; k++)
        m[k] = 1e6 * bench_median(t + (size_t)k * n, n);
    printf("phases batch=%zu dtype=%s threads=%d forward_us=%.1f backward_us=%.1f update_us=%.1f "
           "reset_us=%.2f floor_fwd_us=%.1f floor_bwd_us=%.1f step_us=%.1f floor_us=%.1f "
           "core=%s\n",
           c->batch, bench_dtype_name(c->dtype), c->threads, m[0], m[1], m[2], m[3], m[4], m[5],
           m[6], m[7], openblas_get_corename());
    fflush(stdout);
    free(t);
    floor_free(&fl);
    bench_mlp_free(&net);
}

static int run_config(const config *c, double seconds, int floor_mode, int step_only) {
    threads_for_step(c);
    bench_mlp net;
    floor_bufs fl;
    bench_mlp_new(&net, c->dtype, c->batch, 42);
    int gemv = floor_mode == FLOOR_GEMV || (floor_mode == FLOOR_AUTO && c->batch == 1);
    floor_new(&fl, c->dtype, c->batch, gemv, 43);

    double t_step = warm_up(do_step, &net, 0.1);
    if (step_only) { /* for profilers: the step alone, no floor */
        size_t n = reps_for(t_step, seconds);
        double *s = malloc(n * sizeof *s);
        if (!s) exit(2);
        time_runs(do_step, &net, s, 0, n);
        printf("step batch=%zu dtype=%s threads=%d us=%.1f core=%s\n", c->batch,
               bench_dtype_name(c->dtype), c->threads, 1e6 * bench_median(s, n),
               openblas_get_corename());
        free(s);
        floor_free(&fl);
        bench_mlp_free(&net);
        return 1;
    }
    threads_for_floor(c);
    double t_floor = warm_up(do_floor, &fl, 0.1);
    size_t ns = reps_for(t_step, seconds), nf = reps_for(t_floor, seconds);
    double *ss = malloc(ns * sizeof *ss), *sf = malloc(nf * sizeof *sf);
    if (!ss || !sf) {
        fprintf(stderr, "bench_step: out of memory\n");
        exit(2);
    }
    const size_t rounds = 10;
    for (size_t r = 0; r < rounds; r++) {
        threads_for_step(c);
        time_runs(do_step, &net, ss, ns * r / rounds, ns * (r + 1) / rounds);
        threads_for_floor(c);
        time_runs(do_floor, &fl, sf, nf * r / rounds, nf * (r + 1) / rounds);
    }
    double us = 1e6 * bench_median(ss, ns), floor_us = 1e6 * bench_median(sf, nf);
    int ok = isfinite(net.cost);
    if (!ok) fprintf(stderr, "bench_step: the cost became %g: the step diverged\n", net.cost);
    printf("step batch=%zu dtype=%s threads=%d us=%.1f floor_us=%.1f ratio=%.3f core=%s\n",
           c->batch, bench_dtype_name(c->dtype), c->threads, us, floor_us, us / floor_us,
           openblas_get_corename());
    fflush(stdout);
    free(ss);
    free(sf);
    floor_free(&fl);
    bench_mlp_free(&net);
    return ok;
}

static void usage(FILE *to) {
    fprintf(to, "usage: bench_step [--batch N] [--dtype f32|f64] [--threads N] [--seconds S]\n"
                "                  [--floor auto|gemm|gemv] [--pool tapegrad|openblas]\n"
                "                  [--step-only] [--phases]\n"
                "Without --batch/--dtype/--threads: batch {1,32,128,1024} x dtype {f32,f64}\n"
                "x threads {1,2}. --seconds: timed seconds for the step, and again for the\n"
                "floor, per configuration (default 0.5). --step-only: time the step alone\n"
                "(no floor, no ratio), for profilers. --phases: forward, backward, update\n"
                "and reset timed apart, beside the floor's forward and backward.\n"
                "--pool: whose threads run the step: tapegrad's (tg_set_threads, OpenBLAS\n"
                "on one thread; the default) or OpenBLAS's (the library before its pool).\n"
                "The floor always runs on OpenBLAS's threads.\n");
}

int main(int argc, char **argv) {
    size_t batches[] = {1, 32, 128, 1024};
    tg_dtype dtypes[] = {TG_F32, TG_F64};
    int threads[] = {1, 2};
    size_t nb = 4, nd = 2, nt = 2;
    double seconds = 0.5;
    int floor_mode = FLOOR_AUTO, step_only = 0, phases = 0, openblas_pool = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--batch") == 0) {
            batches[0] = (size_t)bench_parse_pos("bench_step", a, v), nb = 1, i++;
        } else if (strcmp(a, "--threads") == 0) {
            threads[0] = (int)bench_parse_pos("bench_step", a, v), nt = 1, i++;
        } else if (strcmp(a, "--dtype") == 0) {
            if (!v || !bench_parse_dtype(v, &dtypes[0])) {
                fprintf(stderr, "bench_step: --dtype is f32 or f64\n");
                return 1;
            }
            nd = 1, i++;
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = bench_parse_seconds("bench_step", a, v), i++;
        } else if (strcmp(a, "--phases") == 0) {
            phases = 1;
        } else if (strcmp(a, "--pool") == 0) {
            if (v && (strcmp(v, "openblas") == 0 || strcmp(v, "tapegrad") == 0))
                openblas_pool = strcmp(v, "openblas") == 0;
            else {
                fprintf(stderr, "bench_step: --pool is tapegrad or openblas\n");
                return 1;
            }
            i++;
        } else if (strcmp(a, "--step-only") == 0) {
            step_only = 1;
        } else if (strcmp(a, "--floor") == 0) {
            if (v && strcmp(v, "auto") == 0)
                floor_mode = FLOOR_AUTO;
            else if (v && strcmp(v, "gemm") == 0)
                floor_mode = FLOOR_GEMM;
            else if (v && strcmp(v, "gemv") == 0)
                floor_mode = FLOOR_GEMV;
            else {
                fprintf(stderr, "bench_step: --floor is auto, gemm or gemv\n");
                return 1;
            }
            i++;
        } else {
            usage(stderr);
            return 1;
        }
    }
    if (floor_mode == FLOOR_GEMV)
        for (size_t b = 0; b < nb; b++)
            if (batches[b] != 1) {
                fprintf(stderr, "bench_step: --floor gemv needs --batch 1\n");
                return 1;
            }
    bench_check_build("bench_step");
    int ok = 1;
    for (size_t b = 0; b < nb; b++)
        for (size_t d = 0; d < nd; d++)
            for (size_t t = 0; t < nt; t++) {
                config c = {batches[b], dtypes[d], threads[t], openblas_pool};
                if (phases)
                    run_phases(&c, seconds,
                               floor_mode == FLOOR_GEMV ||
                                   (floor_mode == FLOOR_AUTO && c.batch == 1));
                else
                    ok &= run_config(&c, seconds, floor_mode, step_only);
            }
    return ok ? 0 : 1;
}
