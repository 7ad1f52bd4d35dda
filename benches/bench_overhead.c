/* bench_overhead: the tape's cost per op, as the issue defines it.
 *
 *   bench_overhead [--ops N] [--len N] [--dtype f32|f64] [--seconds S]
 *
 * One step records a chain of N (100) tg_tanh ops on a float32 parameter of
 * LEN (16) elements, then tg_sum, tg_backward and tg_tape_reset; the
 * parameter's gradient is left to accumulate (no update, no zeroing). The
 * reported figure is the median time of one step divided by N:
 *
 *   overhead us_per_op=<x> step_us=<median µs per step> ops=100 len=16 dtype=f32
 *
 * so us_per_op covers, per tanh, its recording, its forward on 16 floats and
 * its backward (r-map) on 16 floats, plus 1/N of the fixed per-step work:
 * the sum op (forward and backward), seeding the backward, and the reset.
 * The first field is the issue's `overhead us_per_op=<x>`. */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

typedef struct chain {
    tg_tape *tape;
    tg_tensor *p;
    int ops;
} chain;

static void chain_step(chain *c) {
    tg_tensor *h = c->p, *s;
    for (int i = 0; i < c->ops; i++)
        BENCH_OK(tg_tanh(c->tape, h, &h));
    BENCH_OK(tg_sum(c->tape, h, &s));
    BENCH_OK(tg_backward(c->tape, s));
    tg_tape_reset(c->tape);
}

int main(int argc, char **argv) {
    int ops = 100;
    size_t len = 16;
    tg_dtype dt = TG_F32;
    double seconds = 1.0;
    int anomaly = 0; /* --anomaly: the same chain with anomaly mode on */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ops") == 0) {
            ops = (int)bench_parse_pos("bench_overhead", a, v), i++;
        } else if (strcmp(a, "--len") == 0) {
            len = (size_t)bench_parse_pos("bench_overhead", a, v), i++;
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = bench_parse_seconds("bench_overhead", a, v), i++;
        } else if (strcmp(a, "--anomaly") == 0) {
            anomaly = 1;
        } else if (strcmp(a, "--dtype") == 0 && v && bench_parse_dtype(v, &dt)) {
            i++;
        } else {
            fprintf(stderr, "usage: bench_overhead [--ops N] [--len N] [--dtype f32|f64] "
                            "[--seconds S] [--anomaly]\n");
            return strcmp(a, "--help") == 0 ? 0 : 1;
        }
    }
    bench_check_build("bench_overhead");
    chain c = {NULL, NULL, ops};
    BENCH_OK(tg_tape_new(&c.tape));
    tg_tape_detect_anomaly(c.tape, anomaly);
    BENCH_OK(tg_param_new(&c.p, dt, 1, &len));
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (size_t i = 0; i < len; i++)
        tg_set(c.p, i, tg_rng_normal(&rng));

    /* warm-up: the arena and the node array grow to size here */
    double t0 = bench_now();
    size_t warm = 0;
    while (warm < 100 || bench_now() - t0 < 0.2) {
        chain_step(&c);
        warm++;
    }
    double per = (bench_now() - t0) / (double)warm;
    size_t n = (size_t)(seconds / per);
    if (n < 100) n = 100;
    double *samples = malloc(n * sizeof *samples);
    if (!samples) return 2;
    for (size_t i = 0; i < n; i++) {
        double s = bench_now();
        chain_step(&c);
        samples[i] = bench_now() - s;
    }
    double step_us = 1e6 * bench_median(samples, n);
    printf("overhead us_per_op=%.4f step_us=%.2f ops=%d len=%zu dtype=%s anomaly=%s\n",
           step_us / ops, step_us, ops, len, bench_dtype_name(dt), anomaly ? "on" : "off");
    free(samples);
    tg_tensor_free(c.p);
    tg_tape_free(c.tape);
    return 0;
}
