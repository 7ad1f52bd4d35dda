/* Weight initialisers. Each draws one value per element, in flat order, from
 * the seeded splitmix64 generator, in double precision; float32 tensors get
 * the same draws rounded. A seed therefore fixes every value bit for bit,
 * and the float32 and float64 fills of one seed agree up to that rounding.
 *
 * The scales keep the variance of activations (forward) and gradients
 * (backward) roughly constant from layer to layer:
 *   Xavier/Glorot: Var = 2/(fan_in + fan_out)  (tanh, sigmoid)
 *   He/Kaiming:    Var = 2/fan_in              (relu: half the units are 0)
 * A uniform U(−a, a) has variance a²/3, so the matching bounds are
 * a = sqrt(6/(fan_in + fan_out)) and a = sqrt(6/fan_in). */
#include "../tape/internal.h"
#include "tapegrad_nn.h"

#include <math.h>

/* How a kind draws: a constant 0, scale·N(0,1), or U(−scale, scale). */
typedef enum draw { DRAW_ZERO, DRAW_NORMAL, DRAW_UNIFORM } draw;

static void fill_values(tg_tensor *w, draw d, double scale, tg_rng *rng) {
    for (size_t i = 0; i < w->size; i++) {
        double x = 0.0;
        if (d == DRAW_NORMAL) x = scale * tg_rng_normal(rng);
        /* 2u − 1 with u in [0, 1) is in [−1, 1) */
        if (d == DRAW_UNIFORM) x = scale * (2.0 * tg_rng_uniform(rng) - 1.0);
        tg_set(w, i, x);
    }
}

/* The draw and its scale for a kind; checks the fans the formula uses. */
static tg_status kind_scale(tg_init kind, size_t fan_in, size_t fan_out, draw *d, double *scale) {
    double fans = (double)fan_in + (double)fan_out;
    int xavier = kind == TG_INIT_XAVIER_UNIFORM || kind == TG_INIT_XAVIER_NORMAL;
    int he = kind == TG_INIT_HE_NORMAL || kind == TG_INIT_HE_UNIFORM;
    if (xavier && (fan_in == 0 || fan_out == 0))
        return tg_fail(TG_ERR_VALUE, "init: %s needs fan_in and fan_out > 0, got %zu and %zu",
                       kind == TG_INIT_XAVIER_UNIFORM ? "xavier_uniform" : "xavier_normal", fan_in,
                       fan_out);
    if (he && fan_in == 0)
        return tg_fail(TG_ERR_VALUE, "init: %s needs fan_in > 0",
                       kind == TG_INIT_HE_NORMAL ? "he_normal" : "he_uniform");
    switch (kind) {
    case TG_INIT_ZEROS:
        *d = DRAW_ZERO, *scale = 0.0;
        return TG_OK;
    case TG_INIT_NORMAL_SMALL:
        *d = DRAW_NORMAL, *scale = 0.01;
        return TG_OK;
    case TG_INIT_XAVIER_UNIFORM:
        *d = DRAW_UNIFORM, *scale = sqrt(6.0 / fans);
        return TG_OK;
    case TG_INIT_XAVIER_NORMAL:
        *d = DRAW_NORMAL, *scale = sqrt(2.0 / fans);
        return TG_OK;
    case TG_INIT_HE_NORMAL:
        *d = DRAW_NORMAL, *scale = sqrt(2.0 / (double)fan_in);
        return TG_OK;
    case TG_INIT_HE_UNIFORM:
        *d = DRAW_UNIFORM, *scale = sqrt(6.0 / (double)fan_in);
        return TG_OK;
    }
    return tg_fail(TG_ERR_ARG, "init: unknown initialiser %d", (int)kind);
}

tg_status tg_init_fill(tg_tensor *w, tg_init kind, size_t fan_in, size_t fan_out, tg_rng *rng) {
    if (!w || !w->data) return tg_fail(TG_ERR_ARG, "init: tensor is NULL");
    draw d = DRAW_ZERO;
    double scale = 0.0;
    tg_status s = kind_scale(kind, fan_in, fan_out, &d, &scale);
    if (s) return s;
    /* zeros draws nothing, so it may go without a generator */
    if (d != DRAW_ZERO && !rng) return tg_fail(TG_ERR_ARG, "init: generator is NULL");
    fill_values(w, d, scale, rng);
    return TG_OK;
}
