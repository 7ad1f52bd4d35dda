/* The training step the benchmarks time, as the CLI trains it: the MLP
 * 784-256-128-10 with ReLU (tg_mlp_forward: matmul, bias_relu per
 * layer; linear last layer), softmax cross-entropy on integer labels
 * (tg_mlp_cost → tg_softmax_ce), tg_backward, plain SGD through
 * tg_optimizer (W -= lr·grad, then the gradients are zeroed), and
 * tg_tape_reset. Random data from a fixed seed; the data and labels stay the
 * same from step to step (no batch loading is timed). */
#ifndef TAPEGRAD_BENCH_MLP_H
#define TAPEGRAD_BENCH_MLP_H

#include "bench_util.h"

#include <tapegrad_nn.h>

#include <math.h>

#define BENCH_D0 784 /* inputs */
#define BENCH_D1 256 /* hidden 1 */
#define BENCH_D2 128 /* hidden 2 */
#define BENCH_D3 10  /* classes */

typedef struct bench_mlp {
    tg_dtype dtype;
    size_t batch;
    tg_mlp *m;
    tg_tensor *x, *y; /* batch × 784 inputs in [0, 1); labels 0..9 */
    tg_optimizer *opt;
    tg_tape *tape;
    double cost; /* the cost of the last step, to check it stays finite */
} bench_mlp;

static void bench_mlp_new(bench_mlp *b, tg_dtype dtype, size_t batch, uint64_t seed) {
    memset(b, 0, sizeof *b);
    b->dtype = dtype;
    b->batch = batch;
    const size_t widths[] = {BENCH_D1, BENCH_D2};
    BENCH_OK(tg_mlp_new(&b->m, dtype, BENCH_D0, 2, widths, TG_ACT_RELU, BENCH_D3, TG_LOSS_CE));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    BENCH_OK(tg_mlp_init(b->m, &rng));
    BENCH_OK(tg_tensor_new(&b->x, dtype, 2, (size_t[]){batch, BENCH_D0}));
    BENCH_OK(tg_tensor_new(&b->y, dtype, 1, (size_t[]){batch}));
    for (size_t i = 0; i < b->x->size; i++)
        tg_set(b->x, i, tg_rng_uniform(&rng));
    for (size_t i = 0; i < batch; i++)
        tg_set(b->y, i, (double)(tg_rng_next(&rng) % BENCH_D3));
    tg_tensor *params[8];
    int np = tg_mlp_params(b->m, params, 8);
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_SGD);
    cfg.lr = 1e-2;
    BENCH_OK(tg_optimizer_new(&b->opt, &cfg, np, params));
    BENCH_OK(tg_tape_new(&b->tape));
}

/* One training step: forward + cost + backward + SGD update + reset. */
static void bench_mlp_step(bench_mlp *b) {
    tg_tensor *logits, *cost;
    BENCH_OK(tg_mlp_forward(b->tape, b->m, b->x, &logits));
    BENCH_OK(tg_mlp_cost(b->tape, b->m, logits, b->y, &cost));
    BENCH_OK(tg_backward(b->tape, cost));
    BENCH_OK(tg_optimizer_step(b->opt));
    b->cost = tg_get(cost, 0);
    tg_tape_reset(b->tape);
}

static void bench_mlp_free(bench_mlp *b) {
    tg_tape_free(b->tape);
    tg_optimizer_free(b->opt);
    tg_tensor_free(b->x);
    tg_tensor_free(b->y);
    tg_mlp_free(b->m);
    memset(b, 0, sizeof *b);
}

#endif
