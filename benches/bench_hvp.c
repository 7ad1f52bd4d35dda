/* bench_hvp (issue 18): one Hessian-vector product against one gradient on
 * the MLP 784-256-128-10 of the other benches (bench_mlp.h: ReLU, softmax
 * cross-entropy, random data from a fixed seed).
 *
 *   bench_hvp [--batch N] [--dtype f32|f64] [--threads N] [--seconds S]
 *
 * Defaults: batch 128, f32, 1 thread, 0.5 s. Each repetition records the
 * graph from scratch, as a training step does:
 *   grad: forward + cost + tg_backward + tg_tape_reset
 *   hvp:  forward + cost + tg_hvp (v random, fixed) + tg_tape_reset
 *   ggn:  forward + cost + tg_ggn + tg_tape_reset
 * in 10 alternating rounds (a burst of load from elsewhere hits all three),
 * every repetition timed on its own, medians reported:
 *
 *   hvp batch=128 dtype=f32 threads=1 grad_us=.. hvp_us=.. ratio=.. ggn_us=.. ggn_ratio=..
 *       cpu_grad_us=.. cpu_hvp_us=.. cpu_ratio=.. cpu_ggn_us=.. cpu_ggn_ratio=..
 *
 * us: wall time; cpu_us: the process's CPU time (CLOCK_PROCESS_CPUTIME_ID).
 * On a machine shared by many busy processes a call longer than the
 * scheduler's slice is preempted and its wall time grows several-fold
 * (batch 128 float64: bench_step's forward + backward timed apart sum to
 * 3.2 ms, the whole step to 11.5 ms, at a load average of 17 on 2 cores),
 * so the wall ratio there compares preemptions; the CPU-time ratio, on one
 * thread, compares the work.
 *
 * The theory gives an HVP 2–4 gradients: a tangent pass (the forward's
 * cost again, twice the products for the weights' tangents), and a
 * backward carrying two adjoints, each r-map run twice, plus the
 * second-order maps (matmul's: two more products). */
#define _POSIX_C_SOURCE 200809L
#include "bench_mlp.h"

typedef struct run {
    bench_mlp b;
    int np;
    tg_tensor *params[8];
    void *v[8], *hv[8];
} run;

static void record(run *r, tg_tensor **cost) {
    tg_tensor *logits;
    BENCH_OK(tg_mlp_forward(r->b.tape, r->b.m, r->b.x, &logits));
    BENCH_OK(tg_mlp_cost(r->b.tape, r->b.m, logits, r->b.y, cost));
}

static void do_grad(run *r) {
    tg_tensor *cost;
    record(r, &cost);
    BENCH_OK(tg_backward(r->b.tape, cost));
    tg_tape_reset(r->b.tape);
}

static void do_hvp(run *r, int ggn) {
    tg_tensor *cost;
    record(r, &cost);
    BENCH_OK((ggn ? tg_ggn : tg_hvp)(r->b.tape, cost, r->np, r->params, (const void *const *)r->v,
                                     r->hv));
    tg_tape_reset(r->b.tape);
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* µs of wall and CPU time of one call of kind k (0 grad, 1 hvp, 2 ggn). */
static double time_one(run *r, int k, double *cpu) {
    double t0 = bench_now(), c0 = cpu_now();
    if (k == 0)
        do_grad(r);
    else
        do_hvp(r, k == 2);
    *cpu = 1e6 * (cpu_now() - c0);
    return 1e6 * (bench_now() - t0);
}

int main(int argc, char **argv) {
    size_t batch = 128;
    tg_dtype dtype = TG_F32;
    int threads = 1;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc &&
                 bench_parse_dtype(argv[i + 1], &dtype))
            i++;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_hvp [--batch N] [--dtype f32|f64] [--threads N] "
                            "[--seconds S]\n");
            return 2;
        }
    }
    if (batch == 0 || threads < 1 || seconds <= 0) return 2;
    bench_check_build("bench_hvp");
    (void)bench_mlp_step; /* bench_mlp.h's training step: not timed here */
    BENCH_OK(tg_set_threads(threads));
    run r;
    bench_mlp_new(&r.b, dtype, batch, 42);
    r.np = tg_mlp_params(r.b.m, r.params, 8);
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    size_t es = dtype == TG_F32 ? sizeof(float) : sizeof(double);
    for (int i = 0; i < r.np; i++) {
        size_t n = r.params[i]->size;
        r.v[i] = bench_malloc("bench_hvp", n * es);
        r.hv[i] = bench_malloc("bench_hvp", n * es);
        for (size_t e = 0; e < n; e++) {
            double x = tg_rng_normal(&rng);
            if (dtype == TG_F32)
                ((float *)r.v[i])[e] = (float)x;
            else
                ((double *)r.v[i])[e] = x;
        }
    }
    double cpu;
    for (int k = 0; k < 3; k++) /* warm-up: the arena reaches its size */
        for (double t0 = bench_now(); bench_now() - t0 < 0.1;)
            time_one(&r, k, &cpu);
    enum { ROUNDS = 10, MAX_REPS = 100000 };
    double *t[3], *c[3];
    size_t n[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        t[k] = bench_malloc("bench_hvp", MAX_REPS * sizeof(double));
        c[k] = bench_malloc("bench_hvp", MAX_REPS * sizeof(double));
    }
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < 3; k++) {
            double t0 = bench_now();
            int reps = 0;
            while ((bench_now() - t0 < seconds / ROUNDS || reps < 2) && n[k] < MAX_REPS) {
                t[k][n[k]] = time_one(&r, k, &c[k][n[k]]);
                n[k]++, reps++;
            }
        }
    double w[3], u[3];
    for (int k = 0; k < 3; k++)
        w[k] = bench_median(t[k], n[k]), u[k] = bench_median(c[k], n[k]);
    printf("hvp batch=%zu dtype=%s threads=%d grad_us=%.1f hvp_us=%.1f ratio=%.2f ggn_us=%.1f "
           "ggn_ratio=%.2f cpu_grad_us=%.1f cpu_hvp_us=%.1f cpu_ratio=%.2f cpu_ggn_us=%.1f "
           "cpu_ggn_ratio=%.2f\n",
           batch, bench_dtype_name(dtype), threads, w[0], w[1], w[1] / w[0], w[2], w[2] / w[0],
           u[0], u[1], u[1] / u[0], u[2], u[2] / u[0]);
    for (int k = 0; k < 3; k++)
        free(t[k]), free(c[k]);
    for (int i = 0; i < r.np; i++)
        free(r.v[i]), free(r.hv[i]);
    bench_mlp_free(&r.b);
    return 0;
}
