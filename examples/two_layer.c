/* A two-layer network trained by gradient descent on generated data: the
 * seed's planar-data example (001 §2), written with tapegrad.
 *   z1 = X·W1 + b1, a1 = tanh(z1), z2 = a1·W2 + b2, 𝕁 = bce_logits(z2, y)
 * Prints the cost every 500 iterations and the final training accuracy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <tapegrad.h>

#define N      400 /* examples (rows) */
#define HIDDEN 8

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != TG_OK) {                                                                     \
            fprintf(stderr, "two_layer: %s\n", tg_last_error());                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Two interleaved petals: label 1 where sin(4θ) > 0 (not linearly separable). */
static void make_data(tg_tensor *x, tg_tensor *y, tg_rng *g) {
    for (size_t i = 0; i < N; i++) {
        double th = 6.283185307179586 * tg_rng_uniform(g), r = 4 * sin(2 * th);
        r += 0.3 * tg_rng_normal(g);
        tg_set(x, 2 * i, r * cos(th));
        tg_set(x, 2 * i + 1, r * sin(th));
        tg_set(y, i, sin(4 * th) > 0);
    }
}

static void init(tg_tensor *w, tg_rng *g, double scale) {
    for (size_t i = 0; i < w->size; i++)
        tg_set(w, i, scale * tg_rng_normal(g));
}

/* W := W − α·∇W, then zero the gradient (the seed's update). */
static void sgd(tg_tensor *w, float lr) {
    float *v = w->data, *g = w->grad;
    for (size_t i = 0; i < w->size; i++)
        v[i] -= lr * g[i];
    tg_zero_grad(w);
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 5000;
    tg_rng g;
    tg_rng_seed(&g, 1);
    tg_tensor *x, *y, *w1, *b1, *w2, *b2;
    TRY(tg_tensor_new(&x, TG_F32, 2, (size_t[]){N, 2}));
    TRY(tg_tensor_new(&y, TG_F32, 2, (size_t[]){N, 1}));
    TRY(tg_param_new(&w1, TG_F32, 2, (size_t[]){2, HIDDEN}));
    TRY(tg_param_new(&b1, TG_F32, 1, (size_t[]){HIDDEN}));
    TRY(tg_param_new(&w2, TG_F32, 2, (size_t[]){HIDDEN, 1}));
    TRY(tg_param_new(&b2, TG_F32, 1, (size_t[]){1}));
    make_data(x, y, &g);
    init(w1, &g, 0.5), init(w2, &g, 0.5);

    tg_tape *tape;
    TRY(tg_tape_new(&tape));
    tg_tensor *z1, *a1, *z2, *cost;
    for (int it = 0; it <= iters; it++) {
        TRY(tg_matmul(tape, x, w1, &z1));    /* φ */
        TRY(tg_bias_add(tape, z1, b1, &z1)); /* ψ */
        TRY(tg_tanh(tape, z1, &a1));         /* G */
        TRY(tg_matmul(tape, a1, w2, &z2));
        TRY(tg_bias_add(tape, z2, b2, &z2));
        TRY(tg_bce_logits(tape, z2, y, &cost)); /* 𝕁 = mean of 𝕃 */
        TRY(tg_backward(tape, cost));
        if (it % 500 == 0) printf("Cost after iteration %d: %f\n", it, tg_get(cost, 0));
        if (it == iters) break;
        tg_tensor *params[] = {w1, b1, w2, b2};
        for (int p = 0; p < 4; p++)
            sgd(params[p], 1.2f);
        tg_tape_reset(tape);
    }
    int right = 0;
    for (size_t i = 0; i < N; i++)
        right += (tg_get(z2, i) > 0) == (tg_get(y, i) > 0.5);
    printf("train accuracy: %.3f\n", (double)right / N);
    tg_tape_free(tape);
    tg_tensor *all[] = {x, y, w1, b1, w2, b2};
    for (int i = 0; i < 6; i++)
        tg_tensor_free(all[i]);
    return 0;
}
