/* bench_lstm_hvp (lstm-dot): one Hessian-vector product against one
 * gradient through an LSTM layer (tg_lstm: the matmul of the input
 * projections, then lstm_seq, whose second-order map is its backward
 * recurrence in dual numbers), adjoint ζ fixed on the output sequence.
 *
 *   bench_lstm_hvp [--dtype f32|f64] [--seconds S]
 *
 * Shapes of examples/char_lm's LSTM: batch 32, 64 steps, D 64, H 256, on 1
 * thread. Each repetition records the layer from scratch, as a step does:
 *   grad: tg_lstm + tg_backward_seed + tg_tape_reset
 *   hvp:  tg_lstm + tg_hvp_seed (v random, fixed) + tg_tape_reset
 * in 10 alternating rounds, each call timed on its own, medians of the
 * process's CPU time (the machine is shared: wall time there measures
 * preemption, see bench_hvp.c):
 *   lstm_hvp dtype=f32 cpu_grad_us=.. cpu_hvp_us=.. cpu_ratio=..
 * Theory: ≈ 2 forwards (the layer, its tangent) + 2 r-maps + the
 * second-order map (the gates again and their tangents, the dual backward:
 * about 3 products per step and 4 over all positions): 3–5 gradients. */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <tapegrad_nn.h>

enum { N = 32, T = 64, D = 64, H = 256, NP = 5 };

typedef struct run {
    tg_tape *t;
    tg_tensor *p[NP]; /* x, w_ih, w_hh, b_ih, b_hh */
    void *v[NP], *hv[NP], *seed;
} run;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(tg_dtype dt, void *buf, size_t n, double scale, tg_rng *rng) {
    for (size_t i = 0; i < n; i++) {
        double v = scale * (2 * tg_rng_uniform(rng) - 1);
        if (dt == TG_F32)
            ((float *)buf)[i] = (float)v;
        else
            ((double *)buf)[i] = v;
    }
}

/* CPU µs of one call: 0 gradient, 1 Hessian-vector product. */
static double time_one(run *r, int k) {
    double c0 = cpu_now();
    tg_tensor *y;
    BENCH_OK(
        tg_lstm(r->t, r->p[0], r->p[1], r->p[2], r->p[3], r->p[4], NULL, NULL, &y, NULL, NULL));
    if (k == 0)
        BENCH_OK(tg_backward_seed(r->t, y, r->seed));
    else
        BENCH_OK(tg_hvp_seed(r->t, y, r->seed, NP, r->p, (const void *const *)r->v, r->hv));
    tg_tape_reset(r->t);
    return 1e6 * (cpu_now() - c0);
}

int main(int argc, char **argv) {
    tg_dtype dt = TG_F32;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc && bench_parse_dtype(argv[i + 1], &dt))
            i++;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = bench_parse_seconds("bench_lstm_hvp", "--seconds", argv[++i]);
        else {
            fprintf(stderr, "usage: bench_lstm_hvp [--dtype f32|f64] [--seconds S]\n");
            return 2;
        }
    }
    bench_check_build("bench_lstm_hvp");
    BENCH_OK(tg_set_threads(1));
    run r;
    BENCH_OK(tg_tape_new(&r.t));
    const size_t shapes[NP][3] = {{N, T, D}, {4 * H, D}, {4 * H, H}, {4 * H}, {4 * H}};
    const int ranks[NP] = {3, 2, 2, 1, 1};
    size_t es = dt == TG_F32 ? sizeof(float) : sizeof(double);
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int i = 0; i < NP; i++) {
        BENCH_OK(tg_param_new(&r.p[i], dt, ranks[i], shapes[i]));
        size_t n = r.p[i]->size;
        fill(dt, r.p[i]->data, n, i ? 0.0625 : 1.0, &rng); /* U(±1/√H), PyTorch's init */
        r.v[i] = bench_malloc("bench_lstm_hvp", n * es);
        r.hv[i] = bench_malloc("bench_lstm_hvp", n * es);
        fill(dt, r.v[i], n, 1.0, &rng);
    }
    r.seed = bench_malloc("bench_lstm_hvp", (size_t)N * T * H * es);
    fill(dt, r.seed, (size_t)N * T * H, 1.0, &rng);
    time_one(&r, 0), time_one(&r, 1); /* warm: the tape's arena */
    enum { ROUNDS = 10, MAXREP = 1000 };
    static double c[2][ROUNDS * MAXREP];
    size_t n[2] = {0, 0};
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < 2; k++) {
            double used = 0;
            for (int rep = 0; rep < MAXREP && used < 1e6 * seconds / ROUNDS; rep++) {
                double us = time_one(&r, k);
                c[k][n[k]++] = us, used += us;
            }
        }
    double g = bench_median(c[0], n[0]), h = bench_median(c[1], n[1]);
    printf("lstm_hvp dtype=%s N=%d T=%d D=%d H=%d cpu_grad_us=%.0f cpu_hvp_us=%.0f "
           "cpu_ratio=%.2f\n",
           bench_dtype_name(dt), N, T, D, H, g, h, h / g);
    for (int i = 0; i < NP; i++)
        tg_tensor_free(r.p[i]), free(r.v[i]), free(r.hv[i]);
    free(r.seed);
    tg_tape_free(r.t);
    return 0;
}
