/* Attention (issue 17): scaled dot-product attention, multi-head
 * self-attention, the pre-LN transformer block and the learned positional
 * embedding, as functions (tapegrad_nn.h) and as layer kinds. Everything is
 * composed from table ops, so the d-maps, r-maps and checks are theirs. */
#include "../tape/internal.h"
#include "model_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- masks */

tg_status tg_causal_mask(tg_tensor **out, tg_dtype dtype, size_t T) {
    if (!out) return tg_fail(TG_ERR_ARG, "causal_mask: out is NULL");
    *out = NULL;
    if (T < 1 || T > 65536)
        return tg_fail(TG_ERR_ARG, "causal_mask: T = %zu (must be 1..65536)", T);
    tg_status s = tg_tensor_new(out, dtype, 2, (size_t[]){T, T});
    for (size_t i = 0; !s && i < T; i++)
        for (size_t j = i + 1; j < T; j++)
            if (dtype == TG_F32)
                ((float *)(*out)->data)[i * T + j] = 1.0f;
            else
                ((double *)(*out)->data)[i * T + j] = 1.0;
    return s;
}

/* ---------------------------------------------------------------- scaled dot-product */

static tg_status dropout_check(const char *who, double p, int train, const tg_rng *rng) {
    if (!(p >= 0 && p < 1))
        return tg_fail(TG_ERR_VALUE, "%s: dropout %g (must be in [0, 1))", who, p);
    if (train && p > 0 && !rng)
        return tg_fail(TG_ERR_ARG, "%s: training with dropout needs a random generator", who);
    return TG_OK;
}

/* softmax(S masked by m1 and m2)·V with S = q·kᵀ (q already scaled). */
static tg_status sdpa(tg_tape *t, const tg_tensor *q, const tg_tensor *k, const tg_tensor *v,
                      const tg_tensor *m1, const tg_tensor *m2, double p, int train, tg_rng *rng,
                      tg_tensor **out) {
    tg_tensor *s, *w;
    tg_status st = tg_matmul_t(t, q, k, 0, 1, &s);
    if (!st && m1) st = tg_masked_fill(t, s, m1, -INFINITY, &s);
    if (!st && m2) st = tg_masked_fill(t, s, m2, -INFINITY, &s);
    if (!st) st = tg_softmax_dim(t, s, -1, &w);
    if (!st && train && p > 0) st = tg_dropout(t, w, p, 1, rng, &w);
    if (!st) st = tg_matmul_t(t, w, v, 0, 0, out);
    return st;
}

tg_status tg_attention(tg_tape *t, const tg_tensor *q, const tg_tensor *k, const tg_tensor *v,
                       const tg_tensor *mask, double p, int train, tg_rng *rng, tg_tensor **out) {
    if (!out) return tg_fail(TG_ERR_ARG, "attention: out is NULL");
    *out = NULL;
    if (!t || !q || !k || !v) return tg_fail(TG_ERR_ARG, "attention: NULL argument");
    char sq[64], sk[64], sv[64];
    int rq = q->rank, rk = k->rank, rv = v->rank;
    if (rq < 2 || rk < 2 || rv < 2 || q->shape[rq - 1] != k->shape[rk - 1] ||
        k->shape[rk - 2] != v->shape[rv - 2])
        return tg_fail(TG_ERR_SHAPE,
                       "attention: q %s, k %s, v %s do not fit (q …×L×E, k …×S×E, v …×S×Ev)",
                       tg_shape_str(q, sq, 64), tg_shape_str(k, sk, 64), tg_shape_str(v, sv, 64));
    tg_status s = dropout_check("attention", p, train, rng);
    if (s) return s;
    tg_tensor *qs;
    s = tg_scale(t, q, 1.0 / sqrt((double)q->shape[rq - 1]), &qs);
    if (!s) s = sdpa(t, qs, k, v, mask, NULL, p, train, rng, out);
    return s;
}

/* ---------------------------------------------------------------- multi-head self-attention */

/* Rows [lo, lo + n) of w (a copy: weights are small) and, if b, of b; the
 * pair scaled by c when c != 1. */
static tg_status rows_of(tg_tape *t, const tg_tensor *w, const tg_tensor *b, size_t lo, size_t n,
                         double c, tg_tensor **wo, tg_tensor **bo) {
    tg_status s = tg_slice_dim(t, w, 0, (long)lo, (long)(lo + n), 1, wo);
    if (!s && b) s = tg_slice_dim(t, b, 0, (long)lo, (long)(lo + n), 1, bo);
    if (!s && c != 1.0) s = tg_scale(t, *wo, c, wo);
    if (!s && b && c != 1.0) s = tg_scale(t, *bo, c, bo);
    return s;
}

/* x2 (N·T)×D → one of q, k, v as N×H×T×E: a row-block product, its bias,
 * a reshape view and the one permute that brings the heads forward. */
static tg_status project_heads(tg_tape *t, const tg_tensor *x2, const tg_tensor *w,
                               const tg_tensor *b, size_t N, size_t T, size_t H, tg_tensor **out) {
    tg_tensor *u;
    size_t D = x2->shape[1];
    tg_status s = tg_matmul_t(t, x2, w, 0, 1, &u);
    if (!s && b) s = tg_bias_add(t, u, b, &u);
    if (!s) s = tg_reshape(t, u, 4, (long[]){(long)N, (long)T, (long)H, (long)(D / H)}, &u);
    if (!s) s = tg_permute(t, u, 4, (long[]){0, 2, 1, 3}, out);
    return s;
}

/* Multi-head self-attention on x2 = the batch as (N·T)×D rows; result
 * (N·T)×D. m1 broadcasts to N×H×T×T; kpm is N×T or NULL. */
static tg_status mha_rows(tg_tape *t, const tg_tensor *x2, size_t N, size_t T,
                          const tg_tensor *in_w, const tg_tensor *in_b, const tg_tensor *out_w,
                          const tg_tensor *out_b, const tg_mha_opts *o, tg_tensor **out) {
    size_t D = x2->shape[1], H = (size_t)o->heads, E = D / H;
    tg_tensor *w[3], *b[3] = {NULL, NULL, NULL}, *qkv[3], *kpm = NULL, *a;
    tg_status s = TG_OK;
    for (int i = 0; !s && i < 3; i++) /* 1/√E folded into W_q, b_q */
        s = rows_of(t, in_w, in_b, (size_t)i * D, D, i == 0 ? 1.0 / sqrt((double)E) : 1.0, &w[i],
                    &b[i]);
    for (int i = 0; !s && i < 3; i++)
        s = project_heads(t, x2, w[i], b[i], N, T, H, &qkv[i]);
    if (!s && o->key_padding_mask)
        s = tg_reshape(t, o->key_padding_mask, 4, (long[]){(long)N, 1, 1, (long)T}, &kpm);
    if (!s)
        s = sdpa(t, qkv[0], qkv[1], qkv[2], o->attn_mask, kpm, o->dropout, o->train, o->rng, &a);
    if (!s) s = tg_permute(t, a, 4, (long[]){0, 2, 1, 3}, &a); /* N×T×H×E */
    if (!s) s = tg_reshape(t, a, 2, (long[]){(long)(N * T), (long)D}, &a);
    if (!s) s = tg_matmul_t(t, a, out_w, 0, 1, &a);
    if (!s && out_b) s = tg_bias_add(t, a, out_b, &a);
    *out = s ? NULL : a;
    return s;
}

static int is_shape(const tg_tensor *x, int rank, size_t d0, size_t d1) {
    return x->rank == rank && x->shape[0] == d0 && (rank < 2 || x->shape[1] == d1);
}

tg_status tg_multihead_attention(tg_tape *t, const tg_tensor *x, const tg_tensor *in_w,
                                 const tg_tensor *in_b, const tg_tensor *out_w,
                                 const tg_tensor *out_b, const tg_mha_opts *o, tg_tensor **out) {
    if (!out) return tg_fail(TG_ERR_ARG, "multihead_attention: out is NULL");
    *out = NULL;
    if (!t || !x || !in_w || !out_w || !o)
        return tg_fail(TG_ERR_ARG, "multihead_attention: NULL argument");
    char sx[64], sw[64];
    if (x->rank != 3)
        return tg_fail(TG_ERR_SHAPE, "multihead_attention: x %s (must be N×T×D)",
                       tg_shape_str(x, sx, 64));
    size_t N = x->shape[0], T = x->shape[1], D = x->shape[2];
    const tg_tensor *bad = !is_shape(in_w, 2, 3 * D, D)                       ? in_w
                           : in_b && !is_shape(in_b, 1, 3 * D, 0)             ? in_b
                           : !is_shape(out_w, 2, D, D)                        ? out_w
                           : out_b && !is_shape(out_b, 1, D, 0)               ? out_b
                           : o->attn_mask && !is_shape(o->attn_mask, 2, T, T) ? o->attn_mask
                           : o->key_padding_mask && !is_shape(o->key_padding_mask, 2, N, T)
                               ? o->key_padding_mask
                               : NULL;
    if (bad)
        return tg_fail(TG_ERR_SHAPE,
                       "multihead_attention: x %s: %s does not fit (in_proj 3D×D and 3D, out_proj "
                       "D×D and D, attn_mask T×T, key_padding_mask N×T)",
                       tg_shape_str(x, sx, 64), tg_shape_str(bad, sw, 64));
    if (o->heads < 1 || D % (size_t)o->heads)
        return tg_fail(TG_ERR_VALUE, "multihead_attention: %d heads do not divide D = %zu",
                       o->heads, D);
    tg_status s = dropout_check("multihead_attention", o->dropout, o->train, o->rng);
    tg_tensor *x2, *y;
    if (!s) s = tg_reshape(t, x, 2, (long[]){(long)(N * T), (long)D}, &x2);
    if (!s) s = mha_rows(t, x2, N, T, in_w, in_b, out_w, out_b, o, &y);
    if (!s) s = tg_reshape(t, y, 3, (long[]){(long)N, (long)T, (long)D}, out);
    return s;
}

/* ---------------------------------------------------------------- layer kinds */

/* A causal layer's T×T mask, made at its first forward. */
typedef struct attn_priv {
    tg_tensor *mask;
} attn_priv;

static pthread_mutex_t mask_lock = PTHREAD_MUTEX_INITIALIZER;

static tg_status layer_mask(tg_layer *l, const tg_tensor **mask) {
    *mask = NULL;
    if (!l->spec.i[2]) return TG_OK;
    pthread_mutex_lock(&mask_lock);
    attn_priv *p = l->priv;
    tg_status s = TG_OK;
    if (!p) {
        p = tg_calloc(1, sizeof *p);
        s = p ? tg_causal_mask(&p->mask, l->dtype, l->in_shape[0])
              : tg_fail(TG_ERR_NOMEM, "out of memory");
        if (s) tg_free(p);
        l->priv = s ? NULL : p;
    }
    pthread_mutex_unlock(&mask_lock);
    if (s) return tg_layer_fail(l, s, "its causal mask: %s", tg_last_error());
    *mask = p->mask;
    return TG_OK;
}

static void attn_destroy(tg_layer *l) {
    attn_priv *p = l->priv;
    if (p) tg_tensor_free(p->mask);
    tg_free(p);
    l->priv = NULL;
}

/* Checks shared by the attention kinds: examples T×D, i0 = D if given,
 * i1 heads dividing D, i2 a flag, f0 dropout in [0, 1). */
static tg_status attn_options(tg_layer *l) {
    const long *o = l->spec.i;
    if (l->in_rank != 2)
        return tg_layer_fail(l, TG_ERR_SHAPE, "needs examples T×D (batches N×T×D)");
    long D = (long)l->in_shape[1];
    if (o[0] != 0 && o[0] != D)
        return tg_layer_fail(l, TG_ERR_SHAPE, "d_model %ld (i0) is not the input's D = %ld", o[0],
                             D);
    if (o[1] < 1 || o[1] > D || D % o[1])
        return tg_layer_fail(l, TG_ERR_VALUE, "heads %ld (i1, required) must divide D = %ld", o[1],
                             D);
    if (o[2] != 0 && o[2] != 1)
        return tg_layer_fail(l, TG_ERR_VALUE, "causal (i2) must be 0 or 1, got %ld", o[2]);
    if (l->in_shape[0] > 65536)
        return tg_layer_fail(l, TG_ERR_SHAPE, "T = %zu (at most 65536)", l->in_shape[0]);
    double p = l->spec.f[0];
    if (!(p >= 0 && p < 1))
        return tg_layer_fail(l, TG_ERR_VALUE, "dropout %g (f0) must be in [0, 1)", p);
    l->out_rank = 2;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    return TG_OK;
}

/* in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias under a prefix. */
static tg_status add_mha_tensors(tg_layer *l, const char *prefix, int bias) {
    size_t D = l->in_shape[1];
    char name[TG_LAYER_NAME_MAX];
    static const char *names[4] = {"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                   "out_proj.bias"};
    const size_t shapes[4][2] = {{3 * D, D}, {3 * D, 0}, {D, D}, {D, 0}};
    tg_status s = TG_OK;
    for (int i = 0; !s && i < 4; i++) {
        tg_tensor *p;
        if (!bias && i % 2) continue;
        snprintf(name, sizeof name, "%s%s", prefix, names[i]);
        s = tg_layer_add_tensor(l, name, 0, i % 2 ? 1 : 2, shapes[i], &p);
    }
    return s;
}

static tg_status mha_create(tg_layer *l) {
    tg_status s = attn_options(l);
    if (!s && l->spec.i[3] != 0 && l->spec.i[3] != 1)
        s = tg_layer_fail(l, TG_ERR_VALUE, "no_bias (i3) must be 0 or 1, got %ld", l->spec.i[3]);
    return s ? s : add_mha_tensors(l, "", !l->spec.i[3]);
}

static void fill(tg_tensor *x, double v) {
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, v);
}

/* PyTorch's MultiheadAttention._reset_parameters after Linear's own init:
 * in_proj_weight xavier_uniform (fan_in D, fan_out 3D), out_proj.weight
 * kaiming_uniform(a = √5) = U(±1/√D), in_proj_bias and out_proj.bias 0.
 * tensors: the four (or two without bias) in add_mha_tensors's order. */
static void init_mha(tg_layer_tensor *lt, int bias, tg_rng *rng) {
    double D = (double)lt[0].t->shape[1];
    tg_layer_uniform(lt[0].t, sqrt(6.0 / (D + 3.0 * D)), rng);
    tg_layer_uniform(lt[bias ? 2 : 1].t, 1.0 / sqrt(D), rng);
    if (bias) fill(lt[1].t, 0.0), fill(lt[3].t, 0.0);
}

static tg_status mha_init(tg_layer *l, tg_rng *rng) {
    init_mha(l->tensors, !l->spec.i[3], rng);
    return TG_OK;
}

static tg_mha_opts opts_of(tg_layer *l, const tg_layer_ctx *c, const tg_tensor *mask) {
    tg_mha_opts o = {.heads = (int)l->spec.i[1],
                     .attn_mask = mask,
                     .dropout = l->spec.f[0],
                     .train = c->train,
                     .rng = c->rng};
    return o;
}

static tg_status mha_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                             tg_tensor **out) {
    const tg_tensor *mask;
    tg_status s = layer_mask(l, &mask);
    tg_layer_tensor *lt = l->tensors;
    int bias = !l->spec.i[3];
    tg_mha_opts o = opts_of(l, c, mask);
    if (!s)
        s = tg_multihead_attention(t, x, lt[0].t, bias ? lt[1].t : NULL, lt[bias ? 2 : 1].t,
                                   bias ? lt[3].t : NULL, &o, out);
    return s;
}

/* ---------------------------------------------------------------- transformer block */

enum { SA_IN_W, SA_IN_B, SA_OUT_W, SA_OUT_B, L1_W, L1_B, L2_W, L2_B, N1_W, N1_B, N2_W, N2_B };

static long ff_of(const tg_layer *l) {
    return l->spec.i[3] ? l->spec.i[3] : 4 * (long)l->in_shape[1];
}

static double ln_eps_of(const tg_layer *l) {
    return l->spec.f[1] != 0 ? l->spec.f[1] : 1e-5;
}

static tg_status block_create(tg_layer *l) {
    tg_status s = attn_options(l);
    long ff = ff_of(l);
    double eps = ln_eps_of(l);
    if (!s && (ff < 1 || ff > TG_LAYER_MAX_DIM))
        s = tg_layer_fail(l, TG_ERR_VALUE, "dim_feedforward %ld (i3) must be 1..1e8", ff);
    if (!s && (!(eps > 0) || !isfinite(eps)))
        s = tg_layer_fail(l, TG_ERR_VALUE, "eps %g (f1) must be > 0 and finite", eps);
    if (!s) s = add_mha_tensors(l, "self_attn.", 1);
    size_t D = l->in_shape[1], F = (size_t)ff;
    static const char *names[] = {"linear1.weight", "linear1.bias", "linear2.weight",
                                  "linear2.bias",   "norm1.weight", "norm1.bias",
                                  "norm2.weight",   "norm2.bias"};
    const size_t shapes[8][2] = {{F, D}, {F, 0}, {D, F}, {D, 0}, {D, 0}, {D, 0}, {D, 0}, {D, 0}};
    for (int i = 0; !s && i < 8; i++) {
        tg_tensor *p;
        s = tg_layer_add_tensor(l, names[i], 0, shapes[i][1] ? 2 : 1, shapes[i], &p);
    }
    return s;
}

/* self_attn as above; linear1 and linear2 as nn.Linear (weight, then bias,
 * U(±1/√fan_in)); norms γ = 1, β = 0. */
static tg_status block_init(tg_layer *l, tg_rng *rng) {
    tg_layer_tensor *lt = l->tensors;
    init_mha(lt, 1, rng);
    for (int w = L1_W; w <= L2_W; w += 2) {
        double bound = 1.0 / sqrt((double)lt[w].t->shape[1]);
        tg_layer_uniform(lt[w].t, bound, rng);
        tg_layer_uniform(lt[w + 1].t, bound, rng);
    }
    fill(lt[N1_W].t, 1.0), fill(lt[N1_B].t, 0.0), fill(lt[N2_W].t, 1.0), fill(lt[N2_B].t, 0.0);
    return TG_OK;
}

/* Dropout in training when p > 0, else y = x (no op recorded). */
static tg_status maybe_dropout(tg_tape *t, tg_tensor *x, const tg_mha_opts *o, tg_tensor **out) {
    if (!o->train || o->dropout == 0) {
        *out = x;
        return TG_OK;
    }
    return tg_dropout(t, x, o->dropout, 1, o->rng, out);
}

static tg_status block_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                               tg_tensor **out) {
    const tg_tensor *mask;
    tg_status s = layer_mask(l, &mask);
    if (s) return s;
    tg_tensor *p[12];
    for (int i = 0; i < 12; i++)
        p[i] = l->tensors[i].t;
    size_t N = x->shape[0], T = x->shape[1], D = x->shape[2];
    size_t nd[1] = {D};
    double eps = ln_eps_of(l);
    tg_mha_opts o = opts_of(l, c, mask);
    s = dropout_check("transformer_block", o.dropout, o.train, o.rng);
    tg_tensor *x2, *h, *a, *x1, *u, *y;
    /* x ← x + dropout(MHA(LN₁(x))), on the rows (N·T)×D */
    if (!s) s = tg_reshape(t, x, 2, (long[]){(long)(N * T), (long)D}, &x2);
    if (!s) s = tg_layer_norm(t, x2, 1, nd, p[N1_W], p[N1_B], eps, &h);
    if (!s) s = mha_rows(t, h, N, T, p[SA_IN_W], p[SA_IN_B], p[SA_OUT_W], p[SA_OUT_B], &o, &a);
    if (!s) s = maybe_dropout(t, a, &o, &a);
    if (!s) s = tg_add(t, x2, a, &x1);
    /* x ← x + dropout(W₂·dropout(gelu(W₁·LN₂(x) + b₁)) + b₂) */
    if (!s) s = tg_layer_norm(t, x1, 1, nd, p[N2_W], p[N2_B], eps, &h);
    if (!s) s = tg_matmul_t(t, h, p[L1_W], 0, 1, &u);
    if (!s) s = tg_bias_add(t, u, p[L1_B], &u);
    if (!s) s = tg_gelu(t, u, TG_GELU_NONE, &u);
    if (!s) s = maybe_dropout(t, u, &o, &u);
    if (!s) s = tg_matmul_t(t, u, p[L2_W], 0, 1, &u);
    if (!s) s = tg_bias_add(t, u, p[L2_B], &u);
    if (!s) s = maybe_dropout(t, u, &o, &u);
    if (!s) s = tg_add(t, x1, u, &y);
    if (!s) s = tg_reshape(t, y, 3, (long[]){(long)N, (long)T, (long)D}, out);
    return s;
}

/* ---------------------------------------------------------------- positional embedding */

static tg_status pos_create(tg_layer *l) {
    const long *o = l->spec.i;
    tg_tensor *w;
    if (l->in_rank != 2)
        return tg_layer_fail(l, TG_ERR_SHAPE, "needs examples T×D (batches N×T×D)");
    long T = (long)l->in_shape[0], D = (long)l->in_shape[1], len = o[0] ? o[0] : T;
    if (len < T || len > TG_LAYER_MAX_DIM)
        return tg_layer_fail(l, TG_ERR_VALUE, "max_len %ld (i0) must be T = %ld .. 1e8", len, T);
    if (o[1] != 0 && o[1] != D)
        return tg_layer_fail(l, TG_ERR_SHAPE, "dim %ld (i1) is not the input's D = %ld", o[1], D);
    l->out_rank = 2;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    return tg_layer_add_tensor(l, "weight", 0, 2, (size_t[]){(size_t)len, (size_t)D}, &w);
}

/* nn.Embedding's default: N(0, 1). */
static tg_status pos_init(tg_layer *l, tg_rng *rng) {
    tg_tensor *w = l->tensors[0].t;
    for (size_t i = 0; i < w->size; i++)
        tg_set(w, i, tg_rng_normal(rng));
    return TG_OK;
}

static tg_status pos_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                             tg_tensor **out) {
    (void)c;
    tg_tensor *w = l->tensors[0].t, *rows = w;
    tg_status s = TG_OK;
    if (w->shape[0] != x->shape[1]) s = tg_slice_dim(t, w, 0, 0, (long)x->shape[1], 1, &rows);
    return s ? s : tg_add(t, x, rows, out);
}

const tg_layer_kind tg_kind_multihead_attention = {"multihead_attention", mha_create, mha_init,
                                                   mha_forward, attn_destroy};
const tg_layer_kind tg_kind_transformer_block = {"transformer_block", block_create, block_init,
                                                 block_forward, attn_destroy};
const tg_layer_kind tg_kind_pos_embedding = {"pos_embedding", pos_create, pos_init, pos_forward,
                                             NULL};
