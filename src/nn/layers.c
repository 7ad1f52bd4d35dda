/* The layer API (tapegrad_nn.h): layer kinds as table entries, models as
 * ordered lists of layers. Every kind checks its options and infers its
 * output shape in create, without allocating anything but its tensors, so
 * that building a model from a hostile file costs no more memory than the
 * file's tensors (tg_model_build's max_elem). */
#include "../tape/internal.h"
#include "model_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_LAYERS 1024
#define MAX_KINDS  64

/* ---------------------------------------------------------------- helpers */

static const char *shape_text(int rank, const size_t *shape, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < rank && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, i ? "x%zu" : "%zu", shape[i]);
    if (n < len) snprintf(buf + n, len - n, ")");
    return buf;
}

tg_status tg_layer_fail(const tg_layer *l, tg_status s, const char *fmt, ...) {
    char msg[384], in[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tg_fail(s, "layer %s (%s): input %s: %s", l->name, l->kind ? l->kind->name : "?",
                   shape_text(l->in_rank, l->in_shape, in, sizeof in), msg);
}

tg_status tg_layer_add_tensor(tg_layer *l, const char *name, int is_state, int rank,
                              const size_t *shape, tg_tensor **out) {
    if (!l || !name || !out) return tg_fail(TG_ERR_ARG, "layer: add_tensor: NULL argument");
    if (l->n_tensors >= TG_LAYER_MAX_T)
        return tg_layer_fail(l, TG_ERR_ARG, "more than %d tensors", TG_LAYER_MAX_T);
    if (strlen(name) == 0 || strlen(name) >= TG_LAYER_NAME_MAX)
        return tg_layer_fail(l, TG_ERR_ARG, "tensor name '%s' empty or too long", name);
    size_t elems = 1;
    for (int i = 0; i < rank; i++)
        elems = shape[i] && elems > SIZE_MAX / shape[i] ? SIZE_MAX : elems * shape[i];
    if (elems > l->max_elem)
        return tg_layer_fail(l, TG_ERR_SHAPE, "tensor '%s' of %zu elements is too large here", name,
                             elems);
    tg_layer_tensor *lt = &l->tensors[l->n_tensors];
    tg_status s = is_state ? tg_tensor_new(&lt->t, l->dtype, rank, shape)
                           : tg_param_new(&lt->t, l->dtype, rank, shape);
    if (s) return s;
    l->max_elem -= elems;
    snprintf(lt->name, sizeof lt->name, "%s", name);
    snprintf(lt->full, sizeof lt->full, "%s.%s", l->name, name);
    lt->is_state = is_state;
    l->n_tensors++;
    *out = lt->t;
    return TG_OK;
}

void tg_layer_uniform(tg_tensor *t, double bound, tg_rng *rng) {
    /* 2u − 1 with u in [0, 1) is in [−1, 1), as tg_init_fill's uniform draws */
    for (size_t i = 0; t && i < t->size; i++)
        tg_set(t, i, bound * (2.0 * tg_rng_uniform(rng) - 1.0));
}

static tg_tensor *tensor_named(const tg_layer *l, const char *name) {
    for (int i = 0; i < l->n_tensors; i++)
        if (strcmp(l->tensors[i].name, name) == 0) return l->tensors[i].t;
    return NULL;
}

/* An option that sizes something: 1..1e8 (0 = its default `def`). */
static tg_status size_opt(const tg_layer *l, long v, long def, const char *what, long *out) {
    if (v == 0) v = def;
    if (v < 1 || v > TG_LAYER_MAX_DIM)
        return tg_layer_fail(l, TG_ERR_VALUE, "%s %ld (must be 1..1e8)", what, v);
    *out = v;
    return TG_OK;
}

static tg_status flag_opt(const tg_layer *l, long v, const char *what) {
    if (v != 0 && v != 1)
        return tg_layer_fail(l, TG_ERR_VALUE, "%s must be 0 or 1, got %ld", what, v);
    return TG_OK;
}

static tg_status want_rank(const tg_layer *l, int rank, const char *layout) {
    if (l->in_rank != rank)
        return tg_layer_fail(l, TG_ERR_SHAPE, "needs examples of shape %s (rank %d)", layout, rank);
    return TG_OK;
}

static void same_shape(tg_layer *l) {
    l->out_rank = l->in_rank;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
}

/* ---------------------------------------------------------------- dense */

/* nn.Linear on the last axis of examples of any rank: N×…×F → N×…×out. */
static tg_status dense_create(tg_layer *l) {
    long out = 0; /* set by size_opt; initialised for -O2 -Wmaybe-uninitialized */
    tg_tensor *w, *b;
    size_t in = l->in_shape[l->in_rank - 1];
    tg_status s = size_opt(l, l->spec.i[0], -1, "out_features", &out);
    if (!s) s = flag_opt(l, l->spec.i[1], "no_bias (i1)");
    if (!s) s = tg_layer_add_tensor(l, "weight", 0, 2, (size_t[]){(size_t)out, in}, &w);
    if (!s && !l->spec.i[1]) s = tg_layer_add_tensor(l, "bias", 0, 1, (size_t[]){(size_t)out}, &b);
    same_shape(l);
    l->out_shape[l->in_rank - 1] = (size_t)out;
    return s;
}

/* nn.Linear, nn.Conv2d and nn.ConvTranspose2d: kaiming_uniform(a = √5)
 * gives the weight U(±gain·√(3/fan_in)) with gain √(2/(1 + a²)) = √(1/3),
 * i.e. U(±1/√fan_in); the bias gets U(±1/√fan_in) too. fan_in is
 * weight.size(1) × the kernel's area = the weight's size over its axis 0. */
static tg_status linear_init(tg_layer *l, tg_rng *rng) {
    tg_tensor *w = tensor_named(l, "weight");
    double bound = 1.0 / sqrt((double)(w->size / w->shape[0]));
    tg_layer_uniform(w, bound, rng);
    tg_layer_uniform(tensor_named(l, "bias"), bound, rng);
    return TG_OK;
}

/* y = x·Wᵀ + b. Examples of rank > 1 are one (N·…)×F matrix for the
 * product: reshape views on either side (no copy), one GEMM instead of a
 * broadcast product per example. */
static tg_status dense_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                               tg_tensor **out) {
    (void)c;
    tg_tensor *x2 = (tg_tensor *)x, *u, *y;
    tg_tensor *b = tensor_named(l, "bias");
    tg_status s = TG_OK;
    if (x->rank > 2) s = tg_reshape(t, x, 2, (long[]){-1, (long)x->shape[x->rank - 1]}, &x2);
    if (!s) s = tg_matmul_t(t, x2, tensor_named(l, "weight"), 0, 1, &u);
    if (!s && b) s = tg_bias_add(t, u, b, &u);
    if (s || x->rank <= 2) {
        *out = s ? NULL : u;
        return s;
    }
    long shape[TG_MAX_RANK];
    for (int a = 0; a < x->rank; a++)
        shape[a] = (long)x->shape[a];
    shape[x->rank - 1] = (long)u->shape[1];
    s = tg_reshape(t, u, x->rank, shape, &y);
    *out = s ? NULL : y;
    return s;
}

/* ---------------------------------------------------------------- convolutions */

typedef struct conv_geom {
    long out_ch, kh, kw, stride, pad, dil, groups, out_pad;
    int same;
} conv_geom;

static tg_status conv_options(const tg_layer *l, int transposed, conv_geom *g) {
    const long *o = l->spec.i;
    tg_status s = size_opt(l, o[0], -1, "out_channels", &g->out_ch);
    if (!s) s = size_opt(l, o[1], -1, "kernel height", &g->kh);
    if (!s) s = size_opt(l, o[2], g->kh, "kernel width", &g->kw);
    if (!s) s = size_opt(l, o[3], 1, "stride", &g->stride);
    if (!s) s = size_opt(l, o[5], 1, "dilation", &g->dil);
    if (!s) s = size_opt(l, o[6], 1, "groups", &g->groups);
    if (!s) s = flag_opt(l, o[7], "no_bias (i7)");
    if (s) return s;
    g->same = o[4] == -1;
    g->pad = g->same ? 0 : o[4];
    g->out_pad = transposed ? o[8] : 0;
    if (g->pad < 0 || g->pad > TG_LAYER_MAX_DIM || (g->same && (transposed || g->stride != 1)))
        return tg_layer_fail(l, TG_ERR_VALUE, "padding %ld (0..1e8, or −1 = same with stride 1)",
                             o[4]);
    if (g->out_pad < 0 || (g->out_pad >= g->stride && g->out_pad >= g->dil))
        return tg_layer_fail(l, TG_ERR_VALUE,
                             "output_padding %ld (must be below stride or dilation)", g->out_pad);
    if ((long)l->in_shape[0] % g->groups || g->out_ch % g->groups)
        return tg_layer_fail(l, TG_ERR_SHAPE,
                             "groups %ld does not divide %zu in and %ld out channels", g->groups,
                             l->in_shape[0], g->out_ch);
    return TG_OK;
}

/* Output extent of one axis (torch.nn.Conv2d's and ConvTranspose2d's
 * formulas), or <= 0 if none; every term is at most 1e8, so no overflow. */
static long conv_extent(const conv_geom *g, int transposed, long in, long k) {
    long span = g->dil * (k - 1);
    if (transposed) return (in - 1) * g->stride - 2 * g->pad + span + g->out_pad + 1;
    if (g->same) return in;
    long num = in + 2 * g->pad - span - 1; /* ⌊num/stride⌋ + 1, num may be < 0 */
    return (num < 0 ? -((-num + g->stride - 1) / g->stride) : num / g->stride) + 1;
}

static tg_status conv_create_any(tg_layer *l, int transposed) {
    conv_geom g = {0};
    tg_tensor *w, *b;
    tg_status s = want_rank(l, 3, "C×H×W");
    if (!s) s = conv_options(l, transposed, &g);
    if (s) return s;
    long oh = conv_extent(&g, transposed, (long)l->in_shape[1], g.kh);
    long ow = conv_extent(&g, transposed, (long)l->in_shape[2], g.kw);
    if (oh < 1 || ow < 1 || oh > TG_LAYER_MAX_DIM || ow > TG_LAYER_MAX_DIM)
        return tg_layer_fail(l, TG_ERR_SHAPE, "a %ldx%ld kernel gives an output of %ldx%ld", g.kh,
                             g.kw, oh, ow);
    size_t cin = l->in_shape[0], cout = (size_t)g.out_ch, gr = (size_t)g.groups;
    size_t wshape[4] = {transposed ? cin : cout, transposed ? cout / gr : cin / gr, (size_t)g.kh,
                        (size_t)g.kw};
    s = tg_layer_add_tensor(l, "weight", 0, 4, wshape, &w);
    if (!s && !l->spec.i[7]) s = tg_layer_add_tensor(l, "bias", 0, 1, &cout, &b);
    l->out_rank = 3;
    l->out_shape[0] = cout, l->out_shape[1] = (size_t)oh, l->out_shape[2] = (size_t)ow;
    return s;
}

static tg_status conv_create(tg_layer *l) {
    return conv_create_any(l, 0);
}

static tg_status convt_create(tg_layer *l) {
    return conv_create_any(l, 1);
}

static tg_conv2d_opts conv_opts_of(const tg_layer *l) {
    const long *o = l->spec.i;
    tg_conv2d_opts c = tg_conv2d_defaults();
    long pad = o[4] > 0 ? o[4] : 0;
    c.stride[0] = c.stride[1] = o[3] ? o[3] : 1;
    c.dilation[0] = c.dilation[1] = o[5] ? o[5] : 1;
    c.groups = o[6] ? o[6] : 1;
    c.padding[0] = c.padding[1] = c.padding[2] = c.padding[3] = pad;
    c.padding_same = o[4] == -1;
    c.output_padding[0] = c.output_padding[1] = o[8];
    return c;
}

static tg_status conv_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                              tg_tensor **out) {
    (void)c;
    tg_conv2d_opts o = conv_opts_of(l);
    return tg_conv2d(t, x, tensor_named(l, "weight"), tensor_named(l, "bias"), &o, out);
}

static tg_status convt_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                               tg_tensor **out) {
    (void)c;
    tg_conv2d_opts o = conv_opts_of(l);
    return tg_conv_transpose2d(t, x, tensor_named(l, "weight"), tensor_named(l, "bias"), &o, out);
}

/* ---------------------------------------------------------------- pooling */

static tg_status pool_create(tg_layer *l) {
    const long *o = l->spec.i;
    long k = 1, st = 1; /* set by size_opt; initialised for -O2 -Wmaybe-uninitialized */
    tg_status s = want_rank(l, 3, "C×H×W");
    if (!s) s = size_opt(l, o[0], -1, "kernel", &k);
    if (!s) s = size_opt(l, o[1], k, "stride", &st);
    if (!s) s = flag_opt(l, o[3], "ceil_mode (i3)");
    if (!s) s = flag_opt(l, o[4], "count_include_pad False (i4)");
    if (s) return s;
    if (o[2] < 0 || o[2] > k / 2)
        return tg_layer_fail(l, TG_ERR_VALUE, "padding %ld (must be 0..kernel/2 = %ld)", o[2],
                             k / 2);
    same_shape(l);
    for (int a = 1; a < 3; a++) {
        long in = (long)l->in_shape[a] + 2 * o[2], n = in - k + (o[3] ? st - 1 : 0);
        long ext = n < 0 ? 0 : n / st + 1;
        /* ceil_mode: no window may start in the right padding (PyTorch) */
        if (o[3] && ext > 0 && (ext - 1) * st >= (long)l->in_shape[a] + o[2]) ext--;
        if (in < k || ext < 1)
            return tg_layer_fail(l, TG_ERR_SHAPE, "kernel %ld is larger than the padded input", k);
        l->out_shape[a] = (size_t)ext;
    }
    return TG_OK;
}

static tg_status max_pool_forward(tg_layer *l, tg_tape *t, const tg_tensor *x,
                                  const tg_layer_ctx *c, tg_tensor **out) {
    (void)c;
    const long *o = l->spec.i;
    int k[2] = {(int)o[0], (int)o[0]},
        st[2] = {(int)(o[1] ? o[1] : o[0]), (int)(o[1] ? o[1] : o[0])};
    int pad[2] = {(int)o[2], (int)o[2]};
    return tg_max_pool2d(t, x, k, st, pad, NULL, (int)o[3], out);
}

static tg_status avg_pool_forward(tg_layer *l, tg_tape *t, const tg_tensor *x,
                                  const tg_layer_ctx *c, tg_tensor **out) {
    (void)c;
    const long *o = l->spec.i;
    int k[2] = {(int)o[0], (int)o[0]},
        st[2] = {(int)(o[1] ? o[1] : o[0]), (int)(o[1] ? o[1] : o[0])};
    int pad[2] = {(int)o[2], (int)o[2]};
    return tg_avg_pool2d(t, x, k, st, pad, (int)o[3], !o[4], out);
}

static tg_status gap_create(tg_layer *l) {
    tg_status s = want_rank(l, 3, "C×H×W");
    same_shape(l);
    l->out_shape[1] = l->out_shape[2] = 1;
    return s;
}

static tg_status gap_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                             tg_tensor **out) {
    (void)l, (void)c;
    return tg_global_avg_pool2d(t, x, out);
}

/* ---------------------------------------------------------------- shape layers */

static tg_status flatten_create(tg_layer *l) {
    long start = l->spec.i[0] ? l->spec.i[0] : 1;
    if (start < 1 || start > l->in_rank)
        return tg_layer_fail(l, TG_ERR_VALUE, "start_dim %ld (must be 1..%d: the batch stays)",
                             start, l->in_rank);
    l->out_rank = (int)start;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    for (int a = (int)start; a < l->in_rank; a++)
        l->out_shape[start - 1] *= l->in_shape[a];
    for (int a = (int)start; a < TG_MAX_RANK; a++)
        l->out_shape[a] = 1;
    return TG_OK;
}

static tg_status flatten_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                                 tg_tensor **out) {
    (void)c;
    return tg_flatten(t, x, (int)(l->spec.i[0] ? l->spec.i[0] : 1), -1, out);
}

static tg_status reshape_create(tg_layer *l) {
    const long *o = l->spec.i;
    size_t in = 1, known = 1;
    int infer = -1;
    if (o[0] < 1 || o[0] > TG_MAX_RANK - 1)
        return tg_layer_fail(l, TG_ERR_VALUE, "rank %ld (must be 1..%d)", o[0], TG_MAX_RANK - 1);
    for (int a = 0; a < l->in_rank; a++)
        in *= l->in_shape[a];
    for (int a = 0; a < (int)o[0]; a++) {
        long v = o[1 + a];
        if (v == -1 && infer < 0) {
            infer = a;
            continue;
        }
        if (v < 1 || v > TG_LAYER_MAX_DIM || known * (size_t)v > in)
            return tg_layer_fail(l, TG_ERR_SHAPE, "size %ld of axis %d does not fit %zu elements",
                                 v, a, in);
        known *= (size_t)v;
        l->out_shape[a] = (size_t)v;
    }
    if (infer >= 0) l->out_shape[infer] = in / known;
    if (infer >= 0 ? in % known != 0 : known != in)
        return tg_layer_fail(l, TG_ERR_SHAPE, "%zu elements do not fit the shape asked for", in);
    l->out_rank = (int)o[0];
    for (int a = l->out_rank; a < TG_MAX_RANK; a++)
        l->out_shape[a] = 1;
    return TG_OK;
}

static tg_status reshape_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                                 tg_tensor **out) {
    (void)c;
    long shape[TG_MAX_RANK] = {(long)x->shape[0]};
    for (int a = 0; a < l->out_rank; a++)
        shape[a + 1] = (long)l->out_shape[a];
    return tg_reshape(t, x, l->out_rank + 1, shape, out);
}

/* ---------------------------------------------------------------- normalisation */

/* eps and momentum: f0 and f1, 0 = PyTorch's defaults 1e-5 and 0.1. */
static double eps_of(const tg_layer *l) {
    return l->spec.f[0] != 0 ? l->spec.f[0] : 1e-5;
}

static double momentum_of(const tg_layer *l) {
    return l->spec.f[1] != 0 ? l->spec.f[1] : 0.1;
}

static tg_status eps_check(const tg_layer *l) {
    double e = eps_of(l);
    if (!(e > 0) || !isfinite(e))
        return tg_layer_fail(l, TG_ERR_VALUE, "eps %g (must be > 0 and finite)", e);
    return TG_OK;
}

static tg_status bn_create(tg_layer *l) {
    tg_tensor *p;
    size_t c = l->in_shape[0];
    double mom = momentum_of(l);
    if (l->in_rank < 1 || l->in_rank > 3)
        return tg_layer_fail(l, TG_ERR_SHAPE, "needs examples C, C×L or C×H×W");
    tg_status s = eps_check(l);
    if (!s && !(mom >= 0 && mom <= 1))
        s = tg_layer_fail(l, TG_ERR_VALUE, "momentum %g (must be in [0, 1])", mom);
    if (!s) s = flag_opt(l, l->spec.i[0], "no_affine (i0)");
    if (!s && !l->spec.i[0]) s = tg_layer_add_tensor(l, "weight", 0, 1, &c, &p);
    if (!s && !l->spec.i[0]) s = tg_layer_add_tensor(l, "bias", 0, 1, &c, &p);
    if (!s) s = tg_layer_add_tensor(l, "running_mean", 1, 1, &c, &p);
    if (!s) s = tg_layer_add_tensor(l, "running_var", 1, 1, &c, &p);
    same_shape(l);
    return s;
}

/* BatchNorm and LayerNorm: γ = 1, β = 0; running_var 1, running_mean 0. */
static tg_status norm_init(tg_layer *l, tg_rng *rng) {
    (void)rng;
    for (int i = 0; i < l->n_tensors; i++) {
        const char *n = l->tensors[i].name;
        double v = strcmp(n, "weight") == 0 || strcmp(n, "running_var") == 0 ? 1.0 : 0.0;
        for (size_t e = 0; e < l->tensors[i].t->size; e++)
            tg_set(l->tensors[i].t, e, v);
    }
    return TG_OK;
}

static tg_status bn_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                            tg_tensor **out) {
    return tg_batch_norm(t, x, tensor_named(l, "weight"), tensor_named(l, "bias"),
                         tensor_named(l, "running_mean"), tensor_named(l, "running_var"), c->train,
                         momentum_of(l), eps_of(l), out);
}

static tg_status ln_create(tg_layer *l) {
    tg_tensor *p;
    long n = l->spec.i[0] ? l->spec.i[0] : 1;
    if (n < 1 || n > l->in_rank)
        return tg_layer_fail(l, TG_ERR_VALUE, "normalises the last %ld axes of %d", n, l->in_rank);
    const size_t *shape = l->in_shape + (l->in_rank - n);
    tg_status s = eps_check(l);
    if (!s) s = flag_opt(l, l->spec.i[1], "no_affine (i1)");
    if (!s && !l->spec.i[1]) s = tg_layer_add_tensor(l, "weight", 0, (int)n, shape, &p);
    if (!s && !l->spec.i[1]) s = tg_layer_add_tensor(l, "bias", 0, (int)n, shape, &p);
    same_shape(l);
    return s;
}

static tg_status ln_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                            tg_tensor **out) {
    (void)c;
    int n = (int)(l->spec.i[0] ? l->spec.i[0] : 1);
    return tg_layer_norm(t, x, n, l->in_shape + (l->in_rank - n), tensor_named(l, "weight"),
                         tensor_named(l, "bias"), eps_of(l), out);
}

static double p_of(const tg_layer *l) {
    return l->spec.f[0] != 0 ? l->spec.f[0] : 0.5;
}

static tg_status dropout_create(tg_layer *l) {
    double p = p_of(l);
    same_shape(l);
    if (!(p > 0 && p <= 1)) return tg_layer_fail(l, TG_ERR_VALUE, "p %g (must be in (0, 1])", p);
    return TG_OK;
}

static tg_status dropout_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                                 tg_tensor **out) {
    if (c->train && !c->rng)
        return tg_layer_fail(l, TG_ERR_ARG, "training needs a random generator (rng is NULL)");
    return tg_dropout(t, x, p_of(l), c->train, c->rng, out);
}

/* ---------------------------------------------------------------- activations */

static tg_status act_create(tg_layer *l) {
    same_shape(l);
    return TG_OK;
}

static tg_status gelu_create(tg_layer *l) {
    same_shape(l);
    return flag_opt(l, l->spec.i[0], "approximate tanh (i0)");
}

static tg_status softmax_create(tg_layer *l) {
    long d = l->spec.i[0] ? l->spec.i[0] : -1, r = l->in_rank + 1;
    same_shape(l);
    if (d < -r || d >= r || d == 0 || d == -r)
        return tg_layer_fail(l, TG_ERR_VALUE, "dim %ld (must be an example axis of the batch)", d);
    return TG_OK;
}

/* The activations without options: one forward, the op found by the
 * kind's name (the kind table stays one line per kind). */
static const struct unary_act {
    const char *name;
    tg_status (*op)(tg_tape *, const tg_tensor *, tg_tensor **);
} unary_acts[] = {{"relu", tg_relu}, {"tanh", tg_tanh}, {"sigmoid", tg_sigmoid}, {"silu", tg_silu}};

static tg_status unary_fw(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                          tg_tensor **out) {
    (void)c;
    for (size_t i = 0; i < sizeof unary_acts / sizeof *unary_acts; i++)
        if (strcmp(l->kind->name, unary_acts[i].name) == 0) return unary_acts[i].op(t, x, out);
    return tg_layer_fail(l, TG_ERR_ARG, "no activation of this name");
}

static tg_status leaky_fw(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                          tg_tensor **out) {
    (void)c;
    return tg_leaky_relu(t, x, l->spec.f[0] != 0 ? l->spec.f[0] : 0.01, out);
}

static tg_status gelu_fw(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                         tg_tensor **out) {
    (void)c;
    return tg_gelu(t, x, (tg_gelu_approx)l->spec.i[0], out);
}

static tg_status elu_fw(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                        tg_tensor **out) {
    (void)c;
    return tg_elu(t, x, l->spec.f[0] != 0 ? l->spec.f[0] : 1.0, out);
}

static tg_status softmax_fw(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                            tg_tensor **out) {
    (void)c;
    return tg_softmax_dim(t, x, (int)(l->spec.i[0] ? l->spec.i[0] : -1), out);
}

static tg_status log_softmax_fw(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                                tg_tensor **out) {
    (void)c;
    return tg_log_softmax(t, x, (int)(l->spec.i[0] ? l->spec.i[0] : -1), out);
}

/* ---------------------------------------------------------------- the kind table */

static const tg_layer_kind builtin[] = {
    {"dense", dense_create, linear_init, dense_forward, NULL},
    {"conv2d", conv_create, linear_init, conv_forward, NULL},
    {"conv_transpose2d", convt_create, linear_init, convt_forward, NULL},
    {"max_pool2d", pool_create, NULL, max_pool_forward, NULL},
    {"avg_pool2d", pool_create, NULL, avg_pool_forward, NULL},
    {"global_avg_pool2d", gap_create, NULL, gap_forward, NULL},
    {"flatten", flatten_create, NULL, flatten_forward, NULL},
    {"reshape", reshape_create, NULL, reshape_forward, NULL},
    {"batch_norm", bn_create, norm_init, bn_forward, NULL},
    {"layer_norm", ln_create, norm_init, ln_forward, NULL},
    {"dropout", dropout_create, NULL, dropout_forward, NULL},
    {"relu", act_create, NULL, unary_fw, NULL},
    {"tanh", act_create, NULL, unary_fw, NULL},
    {"sigmoid", act_create, NULL, unary_fw, NULL},
    {"leaky_relu", act_create, NULL, leaky_fw, NULL},
    {"gelu", gelu_create, NULL, gelu_fw, NULL},
    {"silu", act_create, NULL, unary_fw, NULL},
    {"elu", act_create, NULL, elu_fw, NULL},
    {"softmax", softmax_create, NULL, softmax_fw, NULL},
    {"log_softmax", softmax_create, NULL, log_softmax_fw, NULL},
    /* issue 17: sequence layers (recurrent.c) */
    {"embedding", tg_embedding_layer_create, tg_embedding_layer_init, tg_embedding_layer_forward,
     NULL},
    {"lstm", tg_rnn_layer_create, tg_rnn_layer_init, tg_rnn_layer_forward, NULL},
    {"gru", tg_rnn_layer_create, tg_rnn_layer_init, tg_rnn_layer_forward, NULL},
};

/* Built-in kinds in their own files (model_internal.h). */
static const tg_layer_kind *const builtin_more[] = {
    &tg_kind_multihead_attention, /* issue 17: attention.c */
    &tg_kind_transformer_block,
    &tg_kind_pos_embedding,
};

static const tg_layer_kind *registered[MAX_KINDS];
static int n_registered;

const tg_layer_kind *tg_layer_kind_find(const char *name) {
    for (size_t i = 0; name && i < sizeof builtin / sizeof *builtin; i++)
        if (strcmp(builtin[i].name, name) == 0) return &builtin[i];
    for (size_t i = 0; name && i < sizeof builtin_more / sizeof *builtin_more; i++)
        if (strcmp(builtin_more[i]->name, name) == 0) return builtin_more[i];
    for (int i = 0; name && i < n_registered; i++)
        if (strcmp(registered[i]->name, name) == 0) return registered[i];
    return NULL;
}

tg_status tg_layer_kind_register(const tg_layer_kind *k) {
    if (!k || !k->name || !k->create || !k->forward)
        return tg_fail(TG_ERR_ARG, "layer kind: name, create and forward are required");
    if (strlen(k->name) == 0 || strlen(k->name) >= TG_LAYER_NAME_MAX)
        return tg_fail(TG_ERR_ARG, "layer kind: name '%s' empty or too long", k->name);
    if (tg_layer_kind_find(k->name))
        return tg_fail(TG_ERR_ARG, "layer kind '%s' already exists", k->name);
    if (n_registered == MAX_KINDS)
        return tg_fail(TG_ERR_ARG, "layer kind '%s': %d kinds registered already", k->name,
                       MAX_KINDS);
    registered[n_registered++] = k;
    return TG_OK;
}

/* ---------------------------------------------------------------- models */

static void layer_free(tg_layer *l) {
    if (l->kind && l->kind->destroy) l->kind->destroy(l);
    for (int i = 0; i < l->n_tensors; i++)
        tg_tensor_free(l->tensors[i].t);
}

void tg_model_free(tg_model *m) {
    if (!m) return;
    for (int i = 0; m->layers && i < m->n_layers; i++)
        layer_free(&m->layers[i]);
    tg_free(m->layers);
    tg_free(m->mean);
    tg_free(m->std);
    tg_free(m);
}

/* A layer's name: printable, no '.', which separates it from the tensor's
 * (PyTorch refuses "." in module names for the same reason). */
static tg_status name_layer(tg_layer *l, const tg_layer_spec *sp, int index) {
    if (!sp->name) {
        snprintf(l->name, sizeof l->name, "%d", index);
        return TG_OK;
    }
    size_t n = strlen(sp->name);
    int ok = n > 0 && n < TG_LAYER_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = sp->name[i] > ' ' && sp->name[i] < 127 && sp->name[i] != '.';
    if (!ok)
        return tg_fail(TG_ERR_ARG, "layer %d: bad name (1..47 printable characters, no '.')",
                       index);
    memcpy(l->name, sp->name, n + 1);
    return TG_OK;
}

static tg_status unique_name(const tg_model *m, int upto) {
    for (int i = 0; i < upto; i++)
        if (strcmp(m->layers[i].name, m->layers[upto].name) == 0)
            return tg_fail(TG_ERR_ARG, "layers %d and %d are both named '%s'", i, upto,
                           m->layers[upto].name);
    return TG_OK;
}

/* Layer `index` on top of the previous one's output (or the input). */
static tg_status add_layer(tg_model *m, int index, const tg_layer_spec *sp, size_t *budget) {
    tg_layer *l = &m->layers[index];
    const tg_layer *prev = index ? &m->layers[index - 1] : NULL;
    l->index = index, l->dtype = m->dtype, l->max_elem = *budget;
    l->in_rank = prev ? prev->out_rank : m->in_rank;
    memcpy(l->in_shape, prev ? prev->out_shape : m->in_shape, sizeof l->in_shape);
    tg_status s = name_layer(l, sp, index);
    if (s) return s;
    l->kind = tg_layer_kind_find(sp->kind);
    if (!l->kind)
        return tg_fail(TG_ERR_ARG, "layer %s: unknown kind '%s'", l->name,
                       sp->kind ? sp->kind : "(null)");
    l->spec = *sp;
    l->spec.kind = l->kind->name, l->spec.name = l->name;
    s = unique_name(m, index);
    if (!s) s = l->kind->create(l);
    if (!s && (l->out_rank < 1 || l->out_rank >= TG_MAX_RANK))
        s = tg_layer_fail(l, TG_ERR_SHAPE, "output rank %d (must be 1..%d)", l->out_rank,
                          TG_MAX_RANK - 1);
    *budget = l->max_elem;
    return s;
}

static tg_status check_input(tg_dtype dtype, int in_rank, const size_t *in_shape, int n,
                             const tg_layer_spec *specs) {
    if (dtype != TG_F32 && dtype != TG_F64) return tg_fail(TG_ERR_ARG, "model: unknown dtype");
    if (n < 1 || n > MAX_LAYERS || !specs)
        return tg_fail(TG_ERR_ARG, "model: %d layers (must be 1..%d)", n, MAX_LAYERS);
    if (in_rank < 1 || in_rank >= TG_MAX_RANK || !in_shape)
        return tg_fail(TG_ERR_SHAPE, "model: input rank %d (must be 1..%d)", in_rank,
                       TG_MAX_RANK - 1);
    size_t total = 1;
    for (int a = 0; a < in_rank; a++) {
        if (in_shape[a] < 1 || in_shape[a] > (size_t)TG_LAYER_MAX_DIM ||
            total * in_shape[a] > (size_t)TG_LAYER_MAX_DIM)
            return tg_fail(TG_ERR_SHAPE,
                           "model: input axis %d of size %zu (an example holds "
                           "1..1e8 values)",
                           a, in_shape[a]);
        total *= in_shape[a];
    }
    return TG_OK;
}

tg_status tg_model_build(tg_model **out, tg_dtype dtype, int in_rank, const size_t *in_shape, int n,
                         const tg_layer_spec *specs, size_t max_elem) {
    if (!out) return tg_fail(TG_ERR_ARG, "model: out is NULL");
    *out = NULL;
    tg_status s = check_input(dtype, in_rank, in_shape, n, specs);
    if (s) return s;
    tg_model *m = tg_calloc(1, sizeof *m);
    if (m) m->layers = tg_calloc((size_t)n, sizeof *m->layers);
    if (!m || !m->layers) {
        tg_free(m);
        return tg_fail(TG_ERR_NOMEM, "model: out of memory");
    }
    m->dtype = dtype, m->in_rank = in_rank, m->n_layers = n;
    for (int a = 0; a < TG_MAX_RANK; a++)
        m->in_shape[a] = a < in_rank ? in_shape[a] : 1;
    for (int i = 0; !s && i < n; i++)
        s = add_layer(m, i, &specs[i], &max_elem);
    if (s) {
        tg_model_free(m);
        return s;
    }
    *out = m;
    return TG_OK;
}

tg_status tg_model_new(tg_model **out, tg_dtype dtype, int in_rank, const size_t *in_shape, int n,
                       const tg_layer_spec *specs) {
    return tg_model_build(out, dtype, in_rank, in_shape, n, specs, SIZE_MAX);
}

tg_status tg_model_init(tg_model *m, tg_rng *rng) {
    if (!m || !rng) return tg_fail(TG_ERR_ARG, "model init: NULL argument");
    for (int i = 0; i < m->n_layers; i++) {
        tg_layer *l = &m->layers[i];
        tg_status s = l->kind->init ? l->kind->init(l, rng) : TG_OK;
        if (s) return s;
    }
    return TG_OK;
}

static tg_status check_batch(const tg_model *m, const tg_tensor *x) {
    int ok = x->rank == m->in_rank + 1 && x->dtype == m->dtype;
    for (int a = 0; ok && a < m->in_rank; a++)
        ok = x->shape[a + 1] == m->in_shape[a];
    if (ok) return TG_OK;
    char xs[128], ms[128];
    return tg_fail(x->dtype == m->dtype ? TG_ERR_SHAPE : TG_ERR_DTYPE,
                   "model: input %s %s does not fit the model's N×%s %s", tg_shape_str(x, xs, 128),
                   x->dtype == TG_F32 ? "float32" : "float64",
                   shape_text(m->in_rank, m->in_shape, ms, 128),
                   m->dtype == TG_F32 ? "float32" : "float64");
}

tg_status tg_model_forward(tg_tape *t, const tg_model *m, const tg_tensor *x, int train,
                           tg_rng *rng, tg_tensor **out) {
    if (!t || !m || !x || !out) return tg_fail(TG_ERR_ARG, "model forward: NULL argument");
    tg_status s = check_batch(m, x);
    tg_layer_ctx ctx = {train, rng};
    const tg_tensor *a = x;
    tg_tensor *next = NULL;
    for (int i = 0; !s && i < m->n_layers; i++) {
        tg_layer *l = &m->layers[i];
        s = l->kind->forward(l, t, a, &ctx, &next);
        /* An op's own message names the op and shapes; add the layer. */
        if (s && strncmp(tg_last_error(), "layer ", 6) != 0)
            s = tg_layer_fail(l, s, "%s", tg_last_error());
        a = next;
    }
    *out = s ? NULL : next;
    return s;
}

int tg_model_tensors(const tg_model *m, tg_tensor **tensors, const char **names, int *is_state,
                     int max) {
    int n = 0;
    for (int i = 0; m && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_tensors; k++, n++) {
            const tg_layer_tensor *lt = &m->layers[i].tensors[k];
            if (n >= max) continue;
            if (tensors) tensors[n] = lt->t;
            if (names) names[n] = lt->full;
            if (is_state) is_state[n] = lt->is_state;
        }
    return n;
}

int tg_model_params(const tg_model *m, tg_tensor **params, const char **names, int max) {
    int n = 0;
    for (int i = 0; m && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_tensors; k++) {
            const tg_layer_tensor *lt = &m->layers[i].tensors[k];
            if (lt->is_state) continue;
            if (n < max && params) params[n] = lt->t;
            if (n < max && names) names[n] = lt->full;
            n++;
        }
    return n;
}

size_t tg_model_param_count(const tg_model *m) {
    size_t n = 0;
    for (int i = 0; m && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_tensors; k++)
            if (!m->layers[i].tensors[k].is_state) n += m->layers[i].tensors[k].t->size;
    return n;
}
