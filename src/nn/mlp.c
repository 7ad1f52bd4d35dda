/* Layers and the multilayer perceptron, composed from the primitive ops:
 * a dense layer is G ∘ ψ ∘ φ, the network is the seed's composition
 * F = 𝕃 ∘ G[L] ∘ ψ[L] ∘ φ[L] ∘ … ∘ G[1] ∘ ψ[1] ∘ φ[1]. */
#include "../ops/ops.h" /* the op entries */
#include "tapegrad_nn.h"

#include <string.h>

static const char *const act_names[] = {"none", "relu", "tanh", "sigmoid", "leaky_relu"};
static const char *const loss_names[] = {"bce", "ce", "mse"};

int tg_act_parse(const char *name) {
    for (int i = 0; name && i < (int)(sizeof act_names / sizeof *act_names); i++)
        if (strcmp(name, act_names[i]) == 0) return i;
    return -1;
}

const char *tg_act_name(tg_act a) {
    return (unsigned)a < sizeof act_names / sizeof *act_names ? act_names[a] : "?";
}

const char *tg_loss_name(tg_loss_kind k) {
    return (unsigned)k < sizeof loss_names / sizeof *loss_names ? loss_names[k] : "?";
}

/* Each activation as an op of the table, alone and fused with bias-add
 * (TG_ACT_NONE: bias-add alone), with its attr: leaky relu's slope for
 * x <= 0 (tapegrad_nn.h), 0 for the others, which ignore it. */
static const struct act_ops {
    const tg_op *plain, *fused;
    double beta;
} act_ops[] = {
    [TG_ACT_NONE] = {NULL, &tg_op_bias_add, 0},
    [TG_ACT_RELU] = {&tg_op_relu, &tg_op_bias_relu, 0},
    [TG_ACT_TANH] = {&tg_op_tanh, &tg_op_bias_tanh, 0},
    [TG_ACT_SIGMOID] = {&tg_op_sigmoid, &tg_op_bias_sigmoid, 0},
    [TG_ACT_LEAKY_RELU] = {&tg_op_leaky_relu, &tg_op_bias_leaky_relu, 0.01},
};

static const struct act_ops *act_of(tg_act act) {
    return (unsigned)act < sizeof act_ops / sizeof act_ops[0] ? &act_ops[act] : NULL;
}

tg_status tg_activate(tg_tape *t, tg_act act, const tg_tensor *x, tg_tensor **out) {
    const struct act_ops *a = act_of(act);
    if (!a) return tg_fail(TG_ERR_ARG, "activate: unknown activation %d", (int)act);
    if (a->plain) {
        tg_attr attr = {.f = {a->beta, 0}, .i = {0, 0}};
        return tg_apply1(t, a->plain, x, &attr, out);
    }
    if (!out) return tg_fail(TG_ERR_ARG, "activate: out is NULL");
    *out = (tg_tensor *)x;
    return TG_OK;
}

/* G(ψ(b, φ(X, W))): the matmul, then bias-add and G as one fused op (the
 * same values as the two ops, one pass over the batch fewer). */
tg_status tg_dense_forward(tg_tape *t, const tg_dense *l, const tg_tensor *x, tg_tensor **out) {
    if (!l) return tg_fail(TG_ERR_ARG, "dense: layer is NULL");
    const struct act_ops *a = act_of(l->act);
    if (!a) return tg_fail(TG_ERR_ARG, "dense: unknown activation %d", (int)l->act);
    tg_tensor *u;
    tg_status s = tg_matmul(t, x, l->w, &u);
    tg_attr attr = {.f = {a->beta, 0}, .i = {0, 0}};
    return s ? s : tg_apply2(t, a->fused, u, l->b, &attr, out);
}

/* ---------------------------------------------------------------- MLP */

void tg_mlp_free(tg_mlp *m) {
    if (!m) return;
    for (int i = 0; m->layers && i < m->n_layers; i++) {
        tg_tensor_free(m->layers[i].w);
        tg_tensor_free(m->layers[i].b);
    }
    tg_free(m->layers);
    tg_free(m->mean);
    tg_free(m->std);
    tg_free(m);
}

static tg_status check_config(tg_dtype dtype, size_t n_in, int n_hidden, const size_t *widths,
                              tg_act act, size_t n_out, tg_loss_kind loss) {
    if (dtype != TG_F32 && dtype != TG_F64) return tg_fail(TG_ERR_ARG, "mlp: unknown dtype");
    if (n_in == 0 || n_out == 0) return tg_fail(TG_ERR_SHAPE, "mlp: zero inputs or outputs");
    if (n_hidden < 0 || n_hidden > 64 || (n_hidden > 0 && !widths))
        return tg_fail(TG_ERR_ARG, "mlp: bad hidden layer count %d", n_hidden);
    for (int i = 0; i < n_hidden; i++)
        if (widths[i] == 0) return tg_fail(TG_ERR_SHAPE, "mlp: hidden layer %d has width 0", i + 1);
    if ((unsigned)act > TG_ACT_LEAKY_RELU) return tg_fail(TG_ERR_ARG, "mlp: unknown activation");
    if ((unsigned)loss > TG_LOSS_MSE) return tg_fail(TG_ERR_ARG, "mlp: unknown loss");
    if (loss == TG_LOSS_BCE && n_out != 1)
        return tg_fail(TG_ERR_SHAPE, "mlp: bce needs 1 output, got %zu", n_out);
    if (loss == TG_LOSS_CE && n_out < 2)
        return tg_fail(TG_ERR_SHAPE, "mlp: ce needs >= 2 outputs, got %zu", n_out);
    return TG_OK;
}

tg_status tg_mlp_new(tg_mlp **out, tg_dtype dtype, size_t n_in, int n_hidden, const size_t *widths,
                     tg_act act, size_t n_out, tg_loss_kind loss) {
    if (!out) return tg_fail(TG_ERR_ARG, "mlp: out is NULL");
    *out = NULL;
    tg_status s = check_config(dtype, n_in, n_hidden, widths, act, n_out, loss);
    if (s) return s;
    tg_mlp *m = tg_calloc(1, sizeof *m);
    if (!m) return tg_fail(TG_ERR_NOMEM, "mlp: out of memory");
    m->dtype = dtype, m->n_in = n_in, m->n_out = n_out, m->act = act, m->loss = loss;
    m->n_classes = loss == TG_LOSS_CE ? (int)n_out : loss == TG_LOSS_BCE ? 2 : 0;
    m->n_layers = n_hidden + 1;
    m->layers = tg_calloc((size_t)m->n_layers, sizeof *m->layers);
    if (!m->layers) s = tg_fail(TG_ERR_NOMEM, "mlp: out of memory");
    for (int i = 0; !s && i < m->n_layers; i++) {
        size_t fan_in = i ? widths[i - 1] : n_in, fan_out = i < n_hidden ? widths[i] : n_out;
        m->layers[i].act = i < n_hidden ? act : TG_ACT_NONE;
        s = tg_param_new(&m->layers[i].w, dtype, 2, (size_t[]){fan_in, fan_out});
        if (!s) s = tg_param_new(&m->layers[i].b, dtype, 1, &fan_out);
    }
    if (s) {
        tg_mlp_free(m);
        return s;
    }
    *out = m;
    return TG_OK;
}

/* He for the relu family (keeps activations' variance through layers),
 * Xavier for tanh and sigmoid; the linear last layer gets Xavier. */
tg_status tg_mlp_init(tg_mlp *m, tg_rng *rng) {
    if (!m || !rng) return tg_fail(TG_ERR_ARG, "mlp init: NULL argument");
    for (int i = 0; i < m->n_layers; i++) {
        tg_dense *l = &m->layers[i];
        int he = l->act == TG_ACT_RELU || l->act == TG_ACT_LEAKY_RELU;
        tg_status s = tg_init_fill(l->w, he ? TG_INIT_HE_NORMAL : TG_INIT_XAVIER_UNIFORM,
                                   l->w->shape[0], l->w->shape[1], rng);
        if (!s) s = tg_init_fill(l->b, TG_INIT_ZEROS, 1, l->b->size, rng);
        if (s) return s;
    }
    return TG_OK;
}

int tg_mlp_params(const tg_mlp *m, tg_tensor **params, int max) {
    int n = 0;
    for (int i = 0; m && i < m->n_layers; i++) {
        if (n < max) params[n] = m->layers[i].w;
        n++;
        if (n < max) params[n] = m->layers[i].b;
        n++;
    }
    return n;
}

tg_status tg_mlp_forward(tg_tape *t, const tg_mlp *m, const tg_tensor *x, tg_tensor **out) {
    if (!m || !x || !out) return tg_fail(TG_ERR_ARG, "mlp: NULL argument");
    const tg_tensor *a = x;
    tg_tensor *next = NULL;
    for (int i = 0; i < m->n_layers; i++) {
        tg_status s = tg_dense_forward(t, &m->layers[i], a, &next);
        if (s) return s;
        a = next;
    }
    *out = next;
    return TG_OK;
}

tg_status tg_mlp_cost(tg_tape *t, const tg_mlp *m, const tg_tensor *logits, const tg_tensor *target,
                      tg_tensor **cost) {
    if (!m) return tg_fail(TG_ERR_ARG, "mlp: NULL model");
    switch (m->loss) {
    case TG_LOSS_CE:
        return tg_softmax_ce(t, logits, target, cost);
    case TG_LOSS_BCE:
        return tg_bce_logits(t, logits, target, cost);
    case TG_LOSS_MSE:
        return tg_mse(t, logits, target, cost);
    }
    return tg_fail(TG_ERR_ARG, "mlp: unknown loss %d", (int)m->loss);
}
