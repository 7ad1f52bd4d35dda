/* bench_conv: forward + backward (both r-maps: the input's and the
 * weight's, and the bias's) of the convolutional layers of issue 15, NCHW,
 * with a bias as torch.nn.Conv2d:
 *   c1    conv 1→32 3×3 on 128×1×28×28        (Fashion-MNIST's first layer)
 *   pool  max_pool2d 2 on 128×32×26×26        (maxpool2)
 *   c2    conv 32→64 3×3 on 128×32×13×13
 *   c3    conv 64→64 3×3 padding 1 on 32×64×32×32 (a ResNet layer)
 * and, for reference, the sgemm rate of this run (tg_matmul of 1024³ float32
 * on the same threads). One iteration = record the layer on a tape, backward
 * with a seed of ones, reset the tape. Median over --seconds per line.
 *
 *   bench_conv [--threads N] [--dtype f32|f64] [--seconds S] [--layer NAME]
 *
 * --layer runs one line only (c1, maxpool2, c2 or c3), e.g. under perf.
 *
 * Output, one line per layer:
 *   conv layer=c1 dtype=f32 threads=1 us=<median> gflops=<3·forward flops / time>
 *        sgemm_gflops=<rate> frac=<gflops / sgemm_gflops> */
#include "bench_util.h"

typedef struct layer {
    const char *name;
    size_t n, c, h, w, o, k;
    long pad;
} layer;

static const layer layers[] = {
    {"c1", 128, 1, 28, 28, 32, 3, 0},
    {"c2", 128, 32, 13, 13, 64, 3, 0},
    {"c3", 32, 64, 32, 32, 64, 3, 1},
};

static tg_tensor *param(tg_dtype dt, int rank, const size_t *shape, tg_rng *rng) {
    tg_tensor *t = NULL;
    BENCH_OK(tg_param_new(&t, dt, rank, shape));
    for (size_t i = 0; i < t->size; i++)
        tg_set(t, i, 0.1 * tg_rng_normal(rng));
    return t;
}

/* A seed of ones (malloc'd). */
static void *ones(size_t n, tg_dtype dt) {
    void *p = bench_malloc("bench_conv", n * (dt == TG_F32 ? 4 : 8));
    for (size_t i = 0; i < n; i++)
        if (dt == TG_F32)
            ((float *)p)[i] = 1.0f;
        else
            ((double *)p)[i] = 1.0;
    return p;
}

/* Median µs of fn over about `seconds`, after one warm-up call. */
typedef void (*step_fn)(void *);
static double time_median(step_fn fn, void *ctx, double seconds) {
    enum { MAX_RUNS = 2000 };
    static double v[MAX_RUNS];
    fn(ctx);
    size_t n = 0;
    double t0 = bench_now();
    while (n < MAX_RUNS && (n < 5 || bench_now() - t0 < seconds)) {
        double a = bench_now();
        fn(ctx);
        v[n++] = 1e6 * (bench_now() - a);
    }
    return bench_median(v, n);
}

typedef struct conv_ctx {
    tg_tape *t;
    tg_tensor *x, *w, *b;
    tg_conv2d_opts o;
    void *seed;
} conv_ctx;

static void conv_step(void *p) {
    conv_ctx *c = p;
    tg_tensor *y = NULL;
    BENCH_OK(tg_conv2d(c->t, c->x, c->w, c->b, &c->o, &y));
    BENCH_OK(tg_backward_seed(c->t, y, c->seed));
    tg_tape_reset(c->t);
}

typedef struct mm_ctx {
    tg_tape *t;
    tg_tensor *a, *b;
} mm_ctx;

static void mm_step(void *p) {
    mm_ctx *c = p;
    tg_tensor *y = NULL;
    BENCH_OK(tg_matmul(c->t, c->a, c->b, &y));
    tg_tape_reset(c->t);
}

static double sgemm_rate(double seconds, tg_rng *rng) {
    size_t s[2] = {1024, 1024};
    mm_ctx c;
    BENCH_OK(tg_tape_new(&c.t));
    c.a = param(TG_F32, 2, s, rng), c.b = param(TG_F32, 2, s, rng); /* forward only */
    double us = time_median(mm_step, &c, seconds);
    tg_tape_free(c.t);
    tg_tensor_free(c.a), tg_tensor_free(c.b);
    return 2.0 * 1024 * 1024 * 1024 / (us * 1e3);
}

static void run_layer(const layer *L, tg_dtype dt, int threads, double seconds, double sgemm,
                      tg_rng *rng) {
    size_t xs[4] = {L->n, L->c, L->h, L->w}, ws[4] = {L->o, L->c, L->k, L->k}, bs[1] = {L->o};
    conv_ctx c;
    BENCH_OK(tg_tape_new(&c.t));
    c.x = param(dt, 4, xs, rng), c.w = param(dt, 4, ws, rng), c.b = param(dt, 1, bs, rng);
    c.o = tg_conv2d_defaults();
    c.o.padding[0] = c.o.padding[1] = c.o.padding[2] = c.o.padding[3] = L->pad;
    size_t oh = L->h + 2 * (size_t)L->pad - L->k + 1, ow = L->w + 2 * (size_t)L->pad - L->k + 1;
    size_t ysize = L->n * L->o * oh * ow;
    c.seed = ones(ysize, dt);
    double us = time_median(conv_step, &c, seconds);
    /* forward 2·N·O·OH·OW·C·k² flops; each r-map as many */
    double flops = 3 * 2.0 * (double)(L->n * L->o * oh * ow * L->c * L->k * L->k);
    double gf = flops / (us * 1e3);
    printf("conv layer=%s dtype=%s threads=%d us=%.1f gflops=%.2f sgemm_gflops=%.2f frac=%.2f\n",
           L->name, bench_dtype_name(dt), threads, us, gf, sgemm, gf / sgemm);
    fflush(stdout);
    free(c.seed);
    tg_tape_free(c.t);
    tg_tensor_free(c.x), tg_tensor_free(c.w), tg_tensor_free(c.b);
}

typedef struct pool_ctx {
    tg_tape *t;
    tg_tensor *x;
    void *seed;
} pool_ctx;

static void pool_step(void *p) {
    pool_ctx *c = p;
    tg_tensor *y = NULL;
    const int k[2] = {2, 2};
    BENCH_OK(tg_max_pool2d(c->t, c->x, k, NULL, NULL, NULL, 0, &y));
    BENCH_OK(tg_backward_seed(c->t, y, c->seed));
    tg_tape_reset(c->t);
}

/* max_pool2d 2 (stride 2) on c1's output, 128×32×26×26, forward + backward
 * with a seed of ones: torch_conv.py's maxpool2 line. */
static void run_pool(tg_dtype dt, int threads, double seconds, tg_rng *rng) {
    size_t xs[4] = {128, 32, 26, 26}, ysize = 128 * 32 * 13 * 13;
    pool_ctx c;
    BENCH_OK(tg_tape_new(&c.t));
    c.x = param(dt, 4, xs, rng);
    c.seed = ones(ysize, dt);
    double us = time_median(pool_step, &c, seconds);
    printf("pool layer=maxpool2 dtype=%s threads=%d us=%.1f\n", bench_dtype_name(dt), threads, us);
    fflush(stdout);
    free(c.seed);
    tg_tape_free(c.t);
    tg_tensor_free(c.x);
}

int main(int argc, char **argv) {
    int threads = 1;
    tg_dtype dt = TG_F32;
    double seconds = 2.0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (int)bench_parse_pos(argv[0], "--threads", argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            if (!bench_parse_dtype(argv[++i], &dt)) {
                fprintf(stderr, "%s: --dtype f32|f64\n", argv[0]);
                return 1;
            }
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = bench_parse_seconds(argv[0], "--seconds", argv[++i]);
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--dtype f32|f64] [--seconds S] [--layer NAME]\n",
                    argv[0]);
            return 1;
        }
    }
    bench_check_build("bench_conv");
    BENCH_OK(tg_set_threads(threads));
    tg_rng rng;
    tg_rng_seed(&rng, 15);
    double sgemm = sgemm_rate(seconds, &rng);
    printf("sgemm threads=%d gflops=%.2f (1024^3 float32 by tg_matmul)\n", threads, sgemm);
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        if (i == 1 && (!only || !strcmp(only, "maxpool2"))) run_pool(dt, threads, seconds, &rng);
        if (!only || !strcmp(only, layers[i].name))
            run_layer(&layers[i], dt, threads, seconds, sgemm, &rng);
    }
    return 0;
}
