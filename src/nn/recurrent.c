/* Sequence layers (issue 17): embedding, LSTM and GRU as layer kinds, and
 * tg_lstm / tg_gru with explicit state. The recurrences are compositions
 * of table ops unrolled on the tape (back-propagation through time): one
 * product for the input projections of every time step, then per step one
 * product for all the gates of the hidden state, PyTorch's gate equations
 * (torch/nn/modules/rnn.py; aten/src/ATen/native/RNN.cpp). */
#include "../tape/internal.h"
#include "model_internal.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- checks */

static tg_status rnn_fail(const char *op, const char *what, const tg_tensor *a,
                          const tg_tensor *b) {
    char sa[64], sb[64];
    return tg_fail(TG_ERR_SHAPE, "%s: %s: %s and %s", op, what, tg_shape_str(a, sa, sizeof sa),
                   b ? tg_shape_str(b, sb, sizeof sb) : "-");
}

/* A state h0/c0: N×H or 1×N×H (PyTorch's (num_layers·directions)×N×H). */
static int state_fits(const tg_tensor *s, size_t n, size_t h) {
    if (!s) return 1;
    if (s->rank == 3) return s->shape[0] == 1 && s->shape[1] == n && s->shape[2] == h;
    return s->rank == 2 && s->shape[0] == n && s->shape[1] == h;
}

/* x N×T×D, w_ih (G·H)×D, w_hh (G·H)×H, biases G·H or NULL; h0, c0 as
 * state_fits. Dtypes are checked by the ops themselves. */
static tg_status rnn_check(const char *op, size_t gates, const tg_tensor *x, const tg_tensor *w_ih,
                           const tg_tensor *w_hh, const tg_tensor *b_ih, const tg_tensor *b_hh,
                           const tg_tensor *h0, const tg_tensor *c0, size_t *hidden) {
    if (!x || !w_ih || !w_hh || !!b_ih != !!b_hh)
        return tg_fail(TG_ERR_ARG, "%s: NULL x or weight, or only one bias", op);
    if (x->rank != 3) return rnn_fail(op, "x must be N×T×D (batch_first)", x, NULL);
    if (w_ih->rank != 2 || w_ih->shape[0] % gates || w_ih->shape[1] != x->shape[2])
        return rnn_fail(op, "weight_ih must be (gates·H)×D for x", w_ih, x);
    size_t h = w_ih->shape[0] / gates;
    if (w_hh->rank != 2 || w_hh->shape[0] != gates * h || w_hh->shape[1] != h)
        return rnn_fail(op, "weight_hh must be (gates·H)×H as weight_ih", w_hh, w_ih);
    if (b_ih && (b_ih->size != gates * h || b_ih->shape[b_ih->rank - 1] != gates * h ||
                 b_hh->size != gates * h || b_hh->shape[b_hh->rank - 1] != gates * h))
        return rnn_fail(op, "biases must be vectors of gates·H", b_ih, b_hh);
    if (!state_fits(h0, x->shape[0], h) || !state_fits(c0, x->shape[0], h))
        return rnn_fail(op, "h0 and c0 must be N×H or 1×N×H", h0 ? h0 : c0, x);
    if (x->dtype != w_ih->dtype || x->dtype != w_hh->dtype || (b_ih && x->dtype != b_ih->dtype) ||
        (b_hh && x->dtype != b_hh->dtype) || (h0 && x->dtype != h0->dtype) ||
        (c0 && x->dtype != c0->dtype))
        return tg_fail(TG_ERR_DTYPE, "%s: x, weights, biases and states must share a dtype", op);
    *hidden = h;
    return TG_OK;
}

/* ---------------------------------------------------------------- shared pieces */

/* x·W_ihᵀ (+ b) for all N·T positions at once: N×T×(G·H). */
static tg_status input_projection(tg_tape *t, const tg_tensor *x, const tg_tensor *w_ih,
                                  const tg_tensor *b, tg_tensor **out) {
    size_t n = x->shape[0], T = x->shape[1];
    tg_tensor *x2, *p;
    long flat[2] = {(long)(n * T), (long)x->shape[2]};
    tg_status s = tg_reshape(t, x, 2, flat, &x2);
    if (!s) s = tg_matmul_t(t, x2, w_ih, 0, 1, &p);
    if (!s && b) s = tg_bias_add(t, p, b, &p);
    long back[3] = {(long)n, (long)T, (long)w_ih->shape[0]};
    return s ? s : tg_reshape(t, p, 3, back, out);
}

/* Step t of the projection, N×(G·H). */
static tg_status step_of(tg_tape *t, const tg_tensor *proj, size_t step, tg_tensor **out) {
    tg_tensor *s3;
    long shape[2] = {(long)proj->shape[0], (long)proj->shape[2]};
    tg_status s = tg_slice_dim(t, proj, 1, (long)step, (long)step + 1, 1, &s3);
    return s ? s : tg_reshape(t, s3, 2, shape, out);
}

/* Gate k (columns k·H .. (k+1)·H) of a N×(G·H) tensor. */
static tg_status gate(tg_tape *t, const tg_tensor *g, size_t k, size_t h, tg_tensor **out) {
    return tg_slice_dim(t, g, -1, (long)(k * h), (long)((k + 1) * h), 1, out);
}

/* A state as N×H (h0 may come as 1×N×H). */
static tg_status as_2d(tg_tape *t, const tg_tensor *s0, size_t n, size_t h, tg_tensor **out) {
    long shape[2] = {(long)n, (long)h};
    return tg_reshape(t, s0, 2, shape, out);
}

/* The per-step outputs, stacked to N×T×H without a heap allocation per
 * call: steps are stacked in chunks of SEQ_CHUNK, the chunks concatenated
 * (one stack when T <= SEQ_CHUNK). At most SEQ_CHUNK² steps. */
#define SEQ_CHUNK 256

typedef struct seq_out {
    tg_tensor *step[SEQ_CHUNK], *chunk[SEQ_CHUNK];
    int n_step, n_chunk;
} seq_out;

static tg_status seq_flush(tg_tape *t, seq_out *q) {
    tg_status s =
        tg_stack(t, q->n_step, (const tg_tensor *const *)q->step, 1, &q->chunk[q->n_chunk]);
    q->n_chunk++, q->n_step = 0;
    return s;
}

static tg_status seq_push(tg_tape *t, seq_out *q, tg_tensor *h) {
    q->step[q->n_step++] = h;
    return q->n_step == SEQ_CHUNK ? seq_flush(t, q) : TG_OK;
}

/* The output N×T×H, and the final states as 1×N×H (PyTorch's h_n, c_n). */
static tg_status seq_finish(tg_tape *t, seq_out *q, tg_tensor *const *last,
                            tg_tensor **const *finals, int n_finals, tg_tensor **out) {
    tg_status s = q->n_step ? seq_flush(t, q) : TG_OK;
    if (!s && q->n_chunk == 1)
        *out = q->chunk[0];
    else if (!s)
        s = tg_concat(t, q->n_chunk, (const tg_tensor *const *)q->chunk, 1, out);
    for (int k = 0; !s && k < n_finals; k++) {
        if (!finals[k]) continue;
        long shape[3] = {1, (long)last[k]->shape[0], (long)last[k]->shape[1]};
        s = tg_reshape(t, last[k], 3, shape, finals[k]);
    }
    return s;
}

static tg_status steps_ok(const char *op, const tg_tensor *x) {
    if (x->shape[1] > (size_t)SEQ_CHUNK * SEQ_CHUNK)
        return tg_fail(TG_ERR_SHAPE, "%s: %zu time steps (at most %d)", op, x->shape[1],
                       SEQ_CHUNK * SEQ_CHUNK);
    return TG_OK;
}

/* ---------------------------------------------------------------- LSTM */

/* The recurrence is the fused table op lstm_seq (src/ops/rnn.c): as a
 * composition (slices, σ, tanh, products per step) the per-step weight
 * gradients dominated a char_lm step; see benches/RESULTS.md. */
tg_status tg_lstm(tg_tape *t, const tg_tensor *x, const tg_tensor *w_ih, const tg_tensor *w_hh,
                  const tg_tensor *b_ih, const tg_tensor *b_hh, const tg_tensor *h0,
                  const tg_tensor *c0, tg_tensor **out, tg_tensor **h_n, tg_tensor **c_n) {
    size_t h = 0;
    if (out) *out = NULL;
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!t || !out) return tg_fail(TG_ERR_ARG, "lstm: NULL tape or out");
    if (!h0 != !c0) return tg_fail(TG_ERR_ARG, "lstm: h0 and c0 go together (both or neither)");
    tg_status s = rnn_check("lstm", 4, x, w_ih, w_hh, b_ih, b_hh, h0, c0, &h);
    if (s) return s;
    size_t n = x->shape[0], T = x->shape[1];
    tg_tensor *b = NULL, *proj, *y, *last, *h2 = NULL, *c2 = NULL;
    /* b_ih + b_hh once: both are added to every gate pre-activation */
    if (b_ih) s = tg_add(t, b_ih, b_hh, &b);
    if (!s && b && b->rank != 1) s = tg_reshape(t, b, 1, (long[]){(long)(4 * h)}, &b);
    if (!s) s = input_projection(t, x, w_ih, b, &proj);
    if (!s && h0) s = as_2d(t, h0, n, h, &h2);
    if (!s && c0) s = as_2d(t, c0, n, h, &c2);
    if (!s) s = tg_lstm_seq(t, proj, w_hh, h2, c2, &y); /* N×T×[h | c] */
    if (!s) s = tg_slice_dim(t, y, -1, 0, (long)h, 1, out);
    long fin[3] = {1, (long)n, (long)h};
    if (!s && (h_n || c_n)) s = tg_slice_dim(t, y, 1, (long)T - 1, (long)T, 1, &last);
    for (int k = 0; k < 2 && !s; k++) {
        tg_tensor **dst = k ? c_n : h_n, *part;
        if (!dst) continue;
        s = tg_slice_dim(t, last, -1, k ? (long)h : 0, k ? (long)(2 * h) : (long)h, 1, &part);
        if (!s) s = tg_reshape(t, part, 3, fin, dst); /* N×1×H → 1×N×H, same order */
    }
    if (s && out) *out = NULL;
    return s;
}

/* ---------------------------------------------------------------- GRU */

/* One GRU step (gate order r, z, n as PyTorch):
 *   r = σ(X_r + H_r), z = σ(X_z + H_z), n = tanh(X_n + r ⊙ H_n)
 *   h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
 * X = x_t·W_ihᵀ + b_ih, H = h·W_hhᵀ + b_hh. hp NULL (h = 0): H = b_hh (bh,
 * or 0 if NULL) and h' = n − z ⊙ n. */
static tg_status gru_cell(tg_tape *t, const tg_tensor *X, const tg_tensor *hp, const tg_tensor *bh,
                          const tg_tensor *hprev, size_t h, tg_tensor **h_out) {
    tg_tensor *xrz, *hrz, *rz, *r, *z, *xn, *hn, *u;
    tg_status s = tg_slice_dim(t, X, -1, 0, (long)(2 * h), 1, &xrz);
    if (!s && (hp || bh)) {
        s = tg_slice_dim(t, hp ? hp : bh, -1, 0, (long)(2 * h), 1, &hrz);
        if (!s) s = tg_add(t, xrz, hrz, &xrz);
    }
    if (!s) s = tg_sigmoid(t, xrz, &rz);
    if (!s) s = gate(t, rz, 0, h, &r);
    if (!s) s = gate(t, rz, 1, h, &z);
    if (!s) s = gate(t, X, 2, h, &xn);
    if (!s && (hp || bh)) {
        s = tg_slice_dim(t, hp ? hp : bh, -1, (long)(2 * h), (long)(3 * h), 1, &hn);
        if (!s) s = tg_mul(t, r, hn, &hn);
        if (!s) s = tg_add(t, xn, hn, &xn);
    }
    if (!s) s = tg_tanh(t, xn, &xn);
    if (!s && hprev) s = tg_sub(t, hprev, xn, &u);
    if (!s && !hprev) u = xn;
    if (!s) s = tg_mul(t, z, u, &u);
    if (!s) s = hprev ? tg_add(t, xn, u, h_out) : tg_sub(t, xn, u, h_out);
    return s;
}

tg_status tg_gru(tg_tape *t, const tg_tensor *x, const tg_tensor *w_ih, const tg_tensor *w_hh,
                 const tg_tensor *b_ih, const tg_tensor *b_hh, const tg_tensor *h0, tg_tensor **out,
                 tg_tensor **h_n) {
    size_t h = 0;
    if (out) *out = NULL;
    if (h_n) *h_n = NULL;
    if (!t || !out) return tg_fail(TG_ERR_ARG, "gru: NULL tape or out");
    tg_status s = rnn_check("gru", 3, x, w_ih, w_hh, b_ih, b_hh, h0, NULL, &h);
    if (!s) s = steps_ok("gru", x);
    if (s) return s;
    size_t n = x->shape[0], T = x->shape[1];
    tg_tensor *proj, *hc = NULL, *bi = NULL, *bh = NULL;
    seq_out q = {.n_step = 0};
    long vec[1] = {(long)(3 * h)};
    if (b_ih) s = tg_reshape(t, b_ih, 1, vec, &bi);
    if (!s && b_hh) s = tg_reshape(t, b_hh, 1, vec, &bh);
    if (!s) s = input_projection(t, x, w_ih, bi, &proj);
    if (!s && h0) s = as_2d(t, h0, n, h, &hc);
    for (size_t k = 0; !s && k < T; k++) {
        tg_tensor *X, *hp = NULL;
        s = step_of(t, proj, k, &X);
        if (!s && hc) s = tg_matmul_t(t, hc, w_hh, 0, 1, &hp);
        if (!s && hc && bh) s = tg_bias_add(t, hp, bh, &hp);
        if (!s) s = gru_cell(t, X, hp, bh, hc, h, &hc);
        if (!s) s = seq_push(t, &q, hc);
    }
    return s ? s : seq_finish(t, &q, &hc, (tg_tensor * *const[]){h_n}, 1, out);
}

/* ---------------------------------------------------------------- layer kinds */

static tg_tensor *tensor_named(const tg_layer *l, const char *name) {
    for (int i = 0; i < l->n_tensors; i++)
        if (strcmp(l->tensors[i].name, name) == 0) return l->tensors[i].t;
    return NULL;
}

static tg_status size_opt(const tg_layer *l, long v, const char *what, size_t *out) {
    if (v < 1 || v > TG_LAYER_MAX_DIM)
        return tg_layer_fail(l, TG_ERR_VALUE, "%s %ld (required, 1..1e8)", what, v);
    *out = (size_t)v;
    return TG_OK;
}

/* nn.Embedding(num_embeddings = i0, embedding_dim = i1): examples of any
 * shape holding token ids → that shape × D. */
tg_status tg_embedding_layer_create(tg_layer *l) {
    size_t v = 0, d = 0;
    tg_tensor *w;
    tg_status s = size_opt(l, l->spec.i[0], "num_embeddings", &v);
    if (!s) s = size_opt(l, l->spec.i[1], "embedding_dim", &d);
    if (!s && l->in_rank + 1 >= TG_MAX_RANK)
        s = tg_layer_fail(l, TG_ERR_SHAPE, "examples of rank %d leave no room for the D axis",
                          l->in_rank);
    if (!s) s = tg_layer_add_tensor(l, "weight", 0, 2, (size_t[]){v, d}, &w);
    l->out_rank = l->in_rank + 1;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    l->out_shape[l->in_rank] = d;
    return s;
}

/* nn.Embedding's reset_parameters: init.normal_(weight), N(0, 1). */
tg_status tg_embedding_layer_init(tg_layer *l, tg_rng *rng) {
    tg_tensor *w = tensor_named(l, "weight");
    for (size_t i = 0; i < w->size; i++)
        tg_set(w, i, tg_rng_normal(rng));
    return TG_OK;
}

tg_status tg_embedding_layer_forward(tg_layer *l, tg_tape *t, const tg_tensor *x,
                                     const tg_layer_ctx *c, tg_tensor **out) {
    (void)c;
    return tg_embedding(t, tensor_named(l, "weight"), x, out);
}

static size_t gates_of(const tg_layer *l) {
    return strcmp(l->kind->name, "lstm") == 0 ? 4 : 3;
}

/* nn.LSTM / nn.GRU(input_size = D, hidden_size = i0, bias = !i1,
 * batch_first = True), one layer, one direction: T×D → T×H. */
tg_status tg_rnn_layer_create(tg_layer *l) {
    size_t h = 0, g = gates_of(l), d = l->in_shape[1];
    tg_tensor *p;
    tg_status s = size_opt(l, l->spec.i[0], "hidden_size", &h);
    if (!s && l->spec.i[1] != 0 && l->spec.i[1] != 1)
        s = tg_layer_fail(l, TG_ERR_VALUE, "no_bias (i1) must be 0 or 1, got %ld", l->spec.i[1]);
    if (!s && l->in_rank != 2)
        s = tg_layer_fail(l, TG_ERR_SHAPE, "needs examples of shape T×D (rank 2)");
    if (!s) s = tg_layer_add_tensor(l, "weight_ih_l0", 0, 2, (size_t[]){g * h, d}, &p);
    if (!s) s = tg_layer_add_tensor(l, "weight_hh_l0", 0, 2, (size_t[]){g * h, h}, &p);
    if (!s && !l->spec.i[1]) s = tg_layer_add_tensor(l, "bias_ih_l0", 0, 1, (size_t[]){g * h}, &p);
    if (!s && !l->spec.i[1]) s = tg_layer_add_tensor(l, "bias_hh_l0", 0, 1, (size_t[]){g * h}, &p);
    l->out_rank = 2;
    l->out_shape[0] = l->in_shape[0], l->out_shape[1] = h;
    return s;
}

/* nn.RNNBase.reset_parameters: every weight and bias U(−1/√H, 1/√H), in
 * state_dict order. */
tg_status tg_rnn_layer_init(tg_layer *l, tg_rng *rng) {
    double bound = 1.0 / sqrt((double)l->out_shape[1]);
    for (int i = 0; i < l->n_tensors; i++)
        tg_layer_uniform(l->tensors[i].t, bound, rng);
    return TG_OK;
}

tg_status tg_rnn_layer_state(tg_tape *t, const tg_layer *l, const tg_tensor *x, const tg_tensor *h0,
                             const tg_tensor *c0, tg_tensor **out, tg_tensor **h_n,
                             tg_tensor **c_n) {
    if (!l || !l->kind || (strcmp(l->kind->name, "lstm") && strcmp(l->kind->name, "gru")))
        return tg_fail(TG_ERR_ARG, "rnn layer: not a layer of kind lstm or gru");
    const tg_tensor *wi = tensor_named(l, "weight_ih_l0"), *wh = tensor_named(l, "weight_hh_l0"),
                    *bi = tensor_named(l, "bias_ih_l0"), *bh = tensor_named(l, "bias_hh_l0");
    if (gates_of(l) == 4) return tg_lstm(t, x, wi, wh, bi, bh, h0, c0, out, h_n, c_n);
    if (c0) return tg_layer_fail(l, TG_ERR_ARG, "a GRU has no cell state (c0 given)");
    if (c_n) *c_n = NULL;
    return tg_gru(t, x, wi, wh, bi, bh, h0, out, h_n);
}

tg_status tg_rnn_layer_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                               tg_tensor **out) {
    (void)c;
    return tg_rnn_layer_state(t, l, x, NULL, NULL, out, NULL, NULL);
}
