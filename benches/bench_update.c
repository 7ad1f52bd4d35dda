/* bench_update: one Adam step (tg_optimizer_step) on the parameters of the
 * 784-256-128-10 MLP, float32, with two gradient patterns:
 *
 *   pattern=live   every gradient element nonzero at every step;
 *   pattern=dying  the same, but from step 100 on, every fifth column of
 *                  each weight and bias gets gradient 0 (hidden units that
 *                  died, pixels that are always 0: 16 % of the first layer's
 *                  gradient was exactly 0 in the Fashion-MNIST run).
 *
 * With gradient 0, Adam's m shrinks by β1 = 0.9 per step and, some 750
 * steps later, passes through the float32 subnormal range (about 150
 * steps) on its way to 0. The timed steps (860..990) are in that window.
 * Arithmetic on subnormals is slow on x86; optim.c stores state below
 * FLT_MIN as 0, so the two patterns should cost the same. A build without
 * that flush shows the dying pattern slower (benches/RESULTS.md, stop 10).
 *
 *   bench_update [--threads N]
 *
 * One line per thread count (1 and 2, or --threads) and pattern:
 *   update opt=adam dtype=f32 threads=2 pattern=dying us=<median µs> */
#include "bench_util.h"

#include <tapegrad_nn.h>

#define NPARAM    6
#define DIE_AT    100
#define TIME_FROM 860
#define TIME_TO   990

static const size_t shapes[NPARAM][2] = {{784, 256}, {1, 256},  {256, 128},
                                         {1, 128},   {128, 10}, {1, 10}};

/* A gradient for each parameter, uniform in ±1e-3 (the scale of the
 * Fashion run's first-layer gradients). */
static float *gradients(tg_rng *g, size_t n) {
    float *v = bench_malloc("bench_update", n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2e-3 * tg_rng_uniform(g) - 1e-3);
    return v;
}

static double run(int threads, int dying) {
    BENCH_OK(tg_set_threads(threads));
    tg_tensor *p[NPARAM];
    float *grad[2][NPARAM];
    tg_rng g;
    tg_rng_seed(&g, 7);
    for (int i = 0; i < NPARAM; i++) {
        const size_t *s = shapes[i];
        BENCH_OK(s[0] == 1 ? tg_param_new(&p[i], TG_F32, 1, &s[1])
                           : tg_param_new(&p[i], TG_F32, 2, s));
        grad[0][i] = gradients(&g, p[i]->size);
        grad[1][i] = gradients(&g, p[i]->size);
    }
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_ADAM);
    tg_optimizer *o;
    BENCH_OK(tg_optimizer_new(&o, &cfg, NPARAM, p));
    double us[TIME_TO - TIME_FROM];
    for (int t = 1; t <= TIME_TO; t++) {
        for (int i = 0; i < NPARAM; i++) { /* the backward pass's part, untimed */
            float *dst = p[i]->grad;
            const float *src = grad[t & 1][i];
            size_t cols = shapes[i][1];
            for (size_t e = 0; e < p[i]->size; e++)
                dst[e] = dying && t > DIE_AT && (e % cols) % 5 == 0 ? 0.0f : src[e];
        }
        double t0 = bench_now();
        BENCH_OK(tg_optimizer_step(o));
        if (t > TIME_FROM) us[t - TIME_FROM - 1] = 1e6 * (bench_now() - t0);
    }
    tg_optimizer_free(o);
    for (int i = 0; i < NPARAM; i++) {
        tg_tensor_free(p[i]);
        free(grad[0][i]);
        free(grad[1][i]);
    }
    return bench_median(us, TIME_TO - TIME_FROM);
}

int main(int argc, char **argv) {
    bench_check_build("bench_update");
    int only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            only = (int)bench_parse_pos("bench_update", "--threads", argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_update [--threads N]\n");
            return 1;
        }
    }
    for (int th = 1; th <= 2; th++) {
        int threads = only ? only : th;
        for (int dying = 0; dying <= 1; dying++)
            printf("update opt=adam dtype=f32 threads=%d pattern=%s us=%.1f\n", threads,
                   dying ? "dying" : "live", run(threads, dying));
        if (only) break;
    }
    return 0;
}
