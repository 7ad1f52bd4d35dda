/* bench_attention: forward + backward of one pre-LN transformer block at the
 * character LM's shapes (issue 17): batch 32, T 64, d_model 128, 4 heads,
 * dim_feedforward 512, causal mask, gelu, float32, as
 * nn.TransformerEncoderLayer(128, 4, 512, dropout=0, activation="gelu",
 * batch_first=True, norm_first=True)(x, src_mask=causal) in
 * benches/torch_attention.py. One iteration = record the block on a tape,
 * backward with a seed of ones (the gradients of the 12 parameters and of
 * x, which requires grad as an embedding's output would), reset the tape.
 * Also the multi-head attention alone (layer=mha). Median over --seconds.
 *
 *   bench_attention [--threads N] [--seconds S] [--layer block|mha] [--batch N]
 *
 * Output, one line per layer:
 *   attn layer=block dtype=f32 threads=1 batch=32 us=<median> tokens_per_s=<N·T/time> */
#include "bench_util.h"

#include <tapegrad_nn.h>

enum { T = 64, D = 128, HEADS = 4 };

typedef struct ctx {
    tg_tape *t;
    tg_model *m;
    tg_tensor *x;
    float *seed;
} ctx;

static double time_median(ctx *c, double seconds) {
    enum { MAX_RUNS = 2000 };
    static double v[MAX_RUNS];
    size_t n = 0;
    for (int warm = 0; warm < 2; warm++) { /* the first makes the causal mask and the arena */
        tg_tensor *y = NULL;
        BENCH_OK(tg_model_forward(c->t, c->m, c->x, 1, NULL, &y));
        BENCH_OK(tg_backward_seed(c->t, y, c->seed));
        tg_tape_reset(c->t);
    }
    double t0 = bench_now();
    while (n < MAX_RUNS && (n < 5 || bench_now() - t0 < seconds)) {
        double a = bench_now();
        tg_tensor *y = NULL;
        BENCH_OK(tg_model_forward(c->t, c->m, c->x, 1, NULL, &y));
        BENCH_OK(tg_backward_seed(c->t, y, c->seed));
        tg_tape_reset(c->t);
        v[n++] = 1e6 * (bench_now() - a);
    }
    return bench_median(v, n);
}

static void run(const char *name, const tg_layer_spec *spec, size_t batch, int threads,
                double seconds) {
    ctx c;
    tg_rng rng;
    tg_rng_seed(&rng, 17);
    BENCH_OK(tg_tape_new(&c.t));
    BENCH_OK(tg_model_new(&c.m, TG_F32, 2, (size_t[]){T, D}, 1, spec));
    BENCH_OK(tg_model_init(c.m, &rng));
    BENCH_OK(tg_param_new(&c.x, TG_F32, 3, (size_t[]){batch, T, D}));
    for (size_t i = 0; i < c.x->size; i++)
        ((float *)c.x->data)[i] = (float)tg_rng_normal(&rng);
    c.seed = bench_malloc("bench_attention", c.x->size * sizeof(float));
    for (size_t i = 0; i < c.x->size; i++)
        c.seed[i] = 1.0f;
    double us = time_median(&c, seconds);
    printf("attn layer=%s dtype=f32 threads=%d batch=%zu us=%.1f tokens_per_s=%.0f\n", name,
           threads, batch, us, (double)(batch * T) / (us * 1e-6));
    fflush(stdout);
    free(c.seed);
    tg_tape_free(c.t);
    tg_tensor_free(c.x);
    tg_model_free(c.m);
}

int main(int argc, char **argv) {
    int threads = 1;
    long batch = 32;
    double seconds = 2.0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (int)bench_parse_pos(argv[0], "--threads", argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = bench_parse_pos(argv[0], "--batch", argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = bench_parse_seconds(argv[0], "--seconds", argv[++i]);
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--seconds S] [--layer block|mha] [--batch N]\n",
                    argv[0]);
            return 1;
        }
    }
    bench_check_build("bench_attention");
    BENCH_OK(tg_set_threads(threads));
    static const tg_layer_spec block[] = {{.kind = "transformer_block", .i = {D, HEADS, 1}}};
    static const tg_layer_spec mha[] = {{.kind = "multihead_attention", .i = {D, HEADS, 1}}};
    if (!only || !strcmp(only, "block")) run("block", block, (size_t)batch, threads, seconds);
    if (!only || !strcmp(only, "mha")) run("mha", mha, (size_t)batch, threads, seconds);
    return 0;
}
