/* Reductions over any set of axes, with keepdim, as PyTorch's torch.sum,
 * mean, amax, amin, logsumexp, var, std and linalg.vector_norm (ord 2).
 *
 * attr (the "sum"..."norm" ops): i[0] = number of dims listed in v[0..]
 * (0: every axis), each in [−rank, rank) (negative counted from the end, as
 * PyTorch; a rank-0 input takes 0 and −1), no axis twice; i[1] = keepdim;
 * i[2] = var/std's correction (the divisor is max(0, N − correction));
 * i[3] is set by check to the bitmask of reduced axes. sum_axis and
 * mean_axis (one axis in i[0], removed) are the same maps.
 *
 * Each output o reduces a set X_o of N inputs (tg_rgeom, ops.h). Maps, with
 * ξ a tangent and ζ an adjoint (sums over i ∈ X_o):
 *   sum   y = Σx                    d = Σξ                 r: x̄ᵢ += ζ
 *   mean  y = Σx/N                  d = Σξ/N               r: x̄ᵢ += ζ/N
 *   amax  y = max x, c = #{x = y}   d = Σ_{x=y} ξ/c        r: x̄ᵢ += ζ·[xᵢ = y]/c
 *   lse   y = m + log Σ e^{x−m}     d = Σ pᵢξᵢ             r: x̄ᵢ += ζ·pᵢ
 *         pᵢ = e^{(xᵢ − m) − log Σ} (softmax, exact where m + log Σ rounds)
 *   var   y = Σ(x − μ)²/D           d = 2Σ(x − μ)ξ/D       r: x̄ᵢ += ζ·2(xᵢ − μ)/D
 *   std   s = √var                  d = Σ(x − μ)ξ/(D·s)    r: x̄ᵢ += ζ·(xᵢ − μ)/(D·s)
 *   norm  n = √Σx²                  d = Σxξ/n              r: x̄ᵢ += ζ·xᵢ/n
 * (var's d drops μ's own tangent: Σ(x − μ) = 0.) Each pair is adjoint by
 * construction: r is the transpose of the same per-element weights.
 * Sums accumulate in double (a float32 result is the exact value rounded
 * once unless the double sum cancels; float32 norms and variances do not
 * overflow before the result does).
 *
 * Edge values, as torch 1.13 (checked there, float64):
 *   - amax/amin: ties share ζ equally; a NaN in X_o makes y NaN, c = 0,
 *     and every gradient of X_o NaN (torch's ζ·[x = y]/c gives 0/0 too).
 *   - logsumexp: a set of only −inf gives −inf, one holding +inf gives
 *     +inf (p = e^{x − y} there: NaN at the +inf, 0 elsewhere; all NaN for
 *     −inf); NaN gives NaN. At logits of 1e16 torch's gradient e^{x − y}
 *     is 1 for both of [1e16, 1e16]; ours is the exact ½ (a deviation).
 *   - var/std: D = N − correction ≤ 0 gives Σ/0: inf, or NaN where every
 *     x = μ (N = 1 unbiased: NaN), and gradients ±inf/NaN; past D < 0 torch's
 *     gradient divides by the negative D while its value uses 0: ours is
 *     the derivative of the value. std's gradient is 0 where s = 0 (torch
 *     masks it so), NaN where s is NaN.
 *   - norm: gradient 0 at the zero vector (torch masks it); inf/inf = NaN at
 *     an infinite element. */
#include "ops.h"
#include "fastmath.h"

typedef enum kind { K_SUM, K_MEAN, K_AMAX, K_AMIN, K_LSE, K_VAR, K_STD, K_NORM } kind;

void tg_rgeom_init(tg_rgeom *g, const tg_tensor *x, unsigned mask) {
    int red[TG_MAX_RANK], n = 0;
    memset(g, 0, sizeof *g);
    g->count = g->out_size = 1;
    for (int a = 0; a < x->rank; a++) {
        int r = mask >> a & 1u;
        *(r ? &g->count : &g->out_size) *= x->shape[a];
        if (x->shape[a] == 1) continue; /* no index: belongs to no group */
        if (n && red[n - 1] == r) {
            g->len[n - 1] *= x->shape[a];
        } else {
            red[n] = r;
            g->len[n++] = x->shape[a];
        }
    }
    if (!n) red[0] = 1, g->len[0] = 1, n = 1; /* one element */
    g->n = n;
    g->red_inner = red[n - 1];
    g->rows = 1;
    for (int a = 0; a < n - 1; a++)
        g->rows *= g->len[a];
    for (size_t s = 1, a = (size_t)n; a-- > 0;) {
        g->ostride[a] = red[a] ? 0 : s;
        if (!red[a]) s *= g->len[a];
    }
}

/* Cloned as a static function: clang gives an extern function with
 * target_clones no plain symbol to link against. */
TG_SIMD_CLONES static void lse_reduce(const tg_tensor *x, const tg_rgeom *g, tg_lse *out) {
    for (size_t o = 0; o < g->out_size; o++)
        out[o].m = -INFINITY, out[o].log_sum = 0;
    TG_DISPATCH(
        x->dtype, const real *xs = x->data; TG_RFOLD(g, double, out[o].m, TG_MAXF_, xs[i]);
        TG_RFOLD(g, double, out[o].log_sum, TG_ADD_, TG_EXP((real)(xs[i] - (real)out[o].m))););
    for (size_t o = 0; o < g->out_size; o++)
        out[o].log_sum = log(out[o].log_sum);
}

void tg_lse_reduce(const tg_tensor *x, const tg_rgeom *g, tg_lse *out) {
    lse_reduce(x, g, out);
}

static kind kind_of(const tg_call *c);

/* c->saved: two doubles per output kept from forward (amax's tie counts,
 * var's μ, logsumexp's tg_lse), then one of scratch for the maps. */
static double *kept(const tg_call *c) {
    return c->saved;
}
static double *scratch(const tg_call *c, const tg_rgeom *g) {
    return (double *)c->saved + 2 * g->out_size;
}

static void geometry(const tg_call *c, tg_rgeom *g) {
    tg_rgeom_init(g, c->in[0], (unsigned)c->attr.i[3]);
}

/* acc[o] = Σ v over X_o (v: x or a tangent), in double. */
TG_SIMD_CLONES static void sums(const tg_call *c, const tg_rgeom *g, const void *v, double *acc) {
    memset(acc, 0, g->out_size * sizeof *acc);
    TG_DISPATCH(c->in[0]->dtype, const real *vs = v; TG_RFOLD(g, double, acc[o], TG_ADD_, vs[i]););
}

/* var's divisor D = max(0, N − correction). */
static double divisor(const tg_call *c, const tg_rgeom *g) {
    double d = (double)g->count - (double)c->attr.i[2];
    return d > 0 ? d : 0;
}

/* The weight w of output o in the linear maps of var, std and norm:
 * d = w·Σ vᵢξᵢ, r: x̄ᵢ += w·ζ·vᵢ, vᵢ = xᵢ − μ (var, std) or xᵢ (norm). */
static double weight(kind k, double D, double y) {
    if (k == K_VAR) return 2 / D;
    if (k == K_STD) return y == 0 ? 0 : 1 / (D * y);
    return y == 0 ? 0 : 1 / y; /* norm */
}

/* logsumexp's pᵢ: softmax of X_o at x, from m and log Σ kept apart. */
static inline double lse_p(double x, double y, const tg_lse *l) {
    return isinf(l->m) ? exp(x - y) : exp((x - l->m) - l->log_sum);
}

TG_SIMD_CLONES static void extremum(const tg_call *c, const tg_rgeom *g, int is_max) {
    double *cnt = kept(c);
    TG_DISPATCH(c->out->dtype, const real *xs = c->in[0]->data; real *y = c->out->data;
                for (size_t o = 0; o < g->out_size; o++) y[o] = is_max ? -INFINITY : INFINITY;
                if (is_max) TG_RFOLD(g, real, y[o], TG_MAXF_, xs[i]);
                else TG_RFOLD(g, real, y[o], TG_MINF_, xs[i]);
                memset(cnt, 0, g->out_size * sizeof *cnt);
                TG_RFOLD(g, double, cnt[o], TG_ADD_, xs[i] == y[o]););
}

/* var and std: μ kept, Σ(x − μ)² in scratch. μ is the mean corrected by
 * the mean of the residuals (the corrected two-pass algorithm): a set of
 * equal values then has μ equal to them exactly, so its variance is 0, not
 * the 1e−16 that Σx/N's rounding left — whose std then had a gradient of
 * size 1 at a point where std has a kink (found by the API fuzzer). */
TG_SIMD_CLONES static void variance(const tg_call *c, const tg_rgeom *g, kind k) {
    double *mu = kept(c), *ss = scratch(c, g), D = divisor(c, g);
    sums(c, g, c->in[0]->data, mu);
    for (size_t o = 0; o < g->out_size; o++)
        mu[o] /= (double)g->count;
    memset(ss, 0, g->out_size * sizeof *ss);
    TG_DISPATCH(c->out->dtype, const real *xs = c->in[0]->data;
                TG_RFOLD(g, double, ss[o], TG_ADD_, (double)xs[i] - mu[o]););
    for (size_t o = 0; o < g->out_size; o++)
        mu[o] += ss[o] / (double)g->count, ss[o] = 0;
    TG_DISPATCH(
        c->out->dtype, const real *xs = c->in[0]->data; real *y = c->out->data;
        TG_RFOLD(g, double, ss[o], TG_ADD_, ((double)xs[i] - mu[o]) * ((double)xs[i] - mu[o]));
        for (size_t o = 0; o < g->out_size; o++) {
            const double v = ss[o] / D;
            y[o] = (real)(k == K_STD ? sqrt(v) : v);
        });
}

TG_SIMD_CLONES static void reduce_forward(tg_call *c) {
    tg_rgeom g;
    geometry(c, &g);
    kind k = kind_of(c);
    double *acc = scratch(c, &g);
    tg_lse *l = (tg_lse *)kept(c);
    if (k == K_AMAX || k == K_AMIN) return extremum(c, &g, k == K_AMAX);
    if (k == K_VAR || k == K_STD) return variance(c, &g, k);
    if (k == K_LSE) tg_lse_reduce(c->in[0], &g, l);
    if (k == K_SUM || k == K_MEAN) sums(c, &g, c->in[0]->data, acc);
    if (k == K_NORM) {
        memset(acc, 0, g.out_size * sizeof *acc);
        TG_DISPATCH(c->out->dtype, const real *xs = c->in[0]->data;
                    TG_RFOLD(&g, double, acc[o], TG_ADD_, (double)xs[i] * xs[i]););
    }
    const double kn = k == K_MEAN ? 1.0 / (double)g.count : 1.0;
    TG_DISPATCH(
        c->out->dtype, real *y = c->out->data; for (size_t o = 0; o < g.out_size; o++) {
            if (k == K_LSE)
                y[o] = (real)(isinf(l[o].m) ? l[o].m : l[o].m + l[o].log_sum);
            else
                y[o] = (real)(k == K_NORM ? sqrt(acc[o]) : kn * acc[o]);
        });
}

TG_SIMD_CLONES static void reduce_jvp(const tg_call *c, const void *const *tin, void *tout) {
    tg_rgeom g;
    geometry(c, &g);
    kind k = kind_of(c);
    double *acc = scratch(c, &g), *kp = kept(c), D = divisor(c, &g);
    const tg_lse *l = (const tg_lse *)kp;
    memset(acc, 0, g.out_size * sizeof *acc);
    TG_DISPATCH(
        c->out->dtype, const real *xs = c->in[0]->data; const real *y = c->out->data;
        const real *t = tin[0]; real *to = tout;
        if (k == K_SUM || k == K_MEAN) TG_RWALK(&g, acc[o] += t[i];);
        else if (k == K_AMAX || k == K_AMIN) TG_RWALK(&g, acc[o] += xs[i] == y[o] ? t[i] : 0;);
        else if (k == K_LSE) TG_RWALK(&g, acc[o] += lse_p(xs[i], y[o], &l[o]) * t[i];);
        else if (k == K_NORM) TG_RWALK(&g, acc[o] += (double)xs[i] * t[i];);
        else TG_RWALK(&g, acc[o] += (xs[i] - kp[o]) * t[i];);
        for (size_t o = 0; o < g.out_size; o++) {
            double v = acc[o];
            if (k == K_MEAN) v /= (double)g.count;
            if (k == K_AMAX || k == K_AMIN) v /= kp[o];
            if (k == K_VAR || k == K_STD || k == K_NORM) v *= weight(k, D, y[o]);
            to[o] = (real)v;
        });
}

TG_SIMD_CLONES static void reduce_vjp(const tg_call *c, const void *gout, void *const *gin) {
    tg_rgeom g;
    geometry(c, &g);
    kind k = kind_of(c);
    double *w = scratch(c, &g), *kp = kept(c), D = divisor(c, &g);
    const tg_lse *l = (const tg_lse *)kp;
    TG_DISPATCH(
        c->out->dtype, const real *xs = c->in[0]->data; const real *y = c->out->data;
        const real *gy = gout; real *gx = gin[0]; for (size_t o = 0; o < g.out_size; o++) {
            /* w[o]: the factor of ζ that every element of X_o shares */
            double v = gy[o];
            if (k == K_MEAN) v /= (double)g.count;
            if (k == K_AMAX || k == K_AMIN) v /= kp[o];
            if (k == K_VAR || k == K_STD || k == K_NORM) v *= weight(k, D, y[o]);
            w[o] = v;
        } if (k == K_SUM || k == K_MEAN) TG_RWALK(&g, gx[i] += (real)w[o];);
        else if (k == K_AMAX || k == K_AMIN) TG_RWALK(&g, gx[i] += (real)((xs[i] == y[o]) * w[o]););
        else if (k == K_LSE) TG_RWALK(&g, gx[i] += (real)(lse_p(xs[i], y[o], &l[o]) * w[o]););
        else if (k == K_NORM) TG_RWALK(&g, gx[i] += (real)(xs[i] * w[o]););
        else TG_RWALK(&g, gx[i] += (real)((xs[i] - kp[o]) * w[o]);););
}

/* ---------------------------------------------------------------- checks */

/* The output shape from the mask, and the scratch (3 doubles per output). */
static void reduced_shape(tg_call *c, unsigned mask, int keepdim) {
    const tg_tensor *x = c->in[0];
    size_t n_out = 1;
    c->out->rank = 0;
    for (int a = 0; a < x->rank; a++) {
        int r = mask >> a & 1u;
        if (!r) n_out *= x->shape[a];
        if (!r || keepdim) c->out->shape[c->out->rank++] = r ? 1 : x->shape[a];
    }
    c->attr.i[3] = (long)mask;
    c->saved_bytes = 3 * n_out * sizeof(double);
}

static tg_status dims_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long n = c->attr.i[0], lim = x->rank ? x->rank : 1;
    char b[64];
    if (n < 0 || n > TG_MAX_RANK) {
        snprintf(msg, len, "%ld dims: the list holds 0..%d", n, TG_MAX_RANK);
        return TG_ERR_ARG;
    }
    unsigned mask = 0;
    for (long k = 0; k < n; k++) {
        long d = c->attr.v[k];
        if (d < -lim || d >= lim) {
            snprintf(msg, len, "dim %ld out of range for shape %s", d, SHP(b, x));
            return TG_ERR_ARG; /* a bad option, as every op's dim (torch: IndexError) */
        }
        d = d < 0 ? d + lim : d;
        if (mask >> d & 1u) {
            snprintf(msg, len, "dim %ld appears twice in the list of dims for shape %s",
                     c->attr.v[k], SHP(b, x));
            return TG_ERR_ARG;
        }
        mask |= 1u << d;
        c->attr.v[k] = d;
    }
    if (!n || !x->rank) mask = (1u << x->rank) - 1; /* none listed: every axis */
    reduced_shape(c, mask, c->attr.i[1] != 0);
    return TG_OK;
}

/* sum_axis / mean_axis: one axis in i[0], removed. */
static tg_status axis_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long ax = c->attr.i[0];
    if (ax < 0) ax += x->rank; /* −1 is the last axis */
    if (x->rank < 1 || ax < 0 || ax >= x->rank) {
        char b[64];
        snprintf(msg, len, "axis %ld out of range for shape %s", c->attr.i[0], SHP(b, x));
        return x->rank < 1 ? TG_ERR_SHAPE : TG_ERR_ARG; /* a scalar has no axis to reduce */
    }
    c->attr.i[0] = ax;
    reduced_shape(c, 1u << ax, 0);
    return TG_OK;
}

/* ---------------------------------------------------------------- samples */

/* Rank 4, (m, k, n, 2), reducing axes 1 and −1 (two groups apart) with
 * keepdim: an inner reduced run and an outer one. */
static void dims_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 4;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = n, s->shape[0][3] = 2;
    s->domain[0] = TG_DOM_REAL;
    s->attr.i[0] = 2, s->attr.v[0] = 1, s->attr.v[1] = -1, s->attr.i[1] = 1;
}

/* var/std over axes 0 and 2 of (m+1, k, n), biased (correction 0): the
 * fuzzer draws other shapes with the sample's attr, and a reduced set of
 * one element with correction 1 is 0/0 (NaN, as torch), which no
 * derivative check can take; test_reduce covers the corrections. */
static void var_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3;
    s->shape[0][0] = m + 1, s->shape[0][1] = k, s->shape[0][2] = n;
    s->domain[0] = TG_DOM_REAL;
    s->attr.i[0] = 2, s->attr.v[0] = 0, s->attr.v[1] = 2;
}

/* sum and mean: every axis of an m×k matrix (the zero attr). */
static void all_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
}

/* Reduce a 3-D input along its middle axis: outer, len and inner all > 1. */
static void axis_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3;
    s->shape[0][0] = m;
    s->shape[0][1] = k;
    s->shape[0][2] = n;
    s->domain[0] = TG_DOM_REAL;
    s->attr.i[0] = 1;
}

#define REDUCTION(VAR, NAME, CHECK, SAMPLE)                                                        \
    const tg_op VAR = {.name = NAME,                                                               \
                       .arity = 1,                                                                 \
                       .check = CHECK,                                                             \
                       .forward = reduce_forward,                                                  \
                       .jvp = reduce_jvp,                                                          \
                       .vjp = reduce_vjp,                                                          \
                       .sample = SAMPLE};

REDUCTION(tg_op_sum, "sum", dims_check, all_sample)
REDUCTION(tg_op_mean, "mean", dims_check, all_sample)
REDUCTION(tg_op_sum_axis, "sum_axis", axis_check, axis_sample)
REDUCTION(tg_op_mean_axis, "mean_axis", axis_check, axis_sample)
REDUCTION(tg_op_amax, "amax", dims_check, dims_sample)
REDUCTION(tg_op_amin, "amin", dims_check, dims_sample)
REDUCTION(tg_op_logsumexp, "logsumexp", dims_check, dims_sample)
REDUCTION(tg_op_var, "var", dims_check, var_sample)
REDUCTION(tg_op_std, "std", dims_check, var_sample)
REDUCTION(tg_op_norm, "norm", dims_check, dims_sample)

static kind kind_of(const tg_call *c) {
    const tg_op *op = c->op;
    return op == &tg_op_sum || op == &tg_op_sum_axis     ? K_SUM
           : op == &tg_op_mean || op == &tg_op_mean_axis ? K_MEAN
           : op == &tg_op_amax                           ? K_AMAX
           : op == &tg_op_amin                           ? K_AMIN
           : op == &tg_op_logsumexp                      ? K_LSE
           : op == &tg_op_var                            ? K_VAR
           : op == &tg_op_std                            ? K_STD
                                                         : K_NORM;
}

/* ---------------------------------------------------------------- public */

tg_status tg_sum(tg_tape *t, const tg_tensor *a, tg_tensor **out) {
    return tg_apply1(t, &tg_op_sum, a, NULL, out);
}

tg_status tg_mean(tg_tape *t, const tg_tensor *a, tg_tensor **out) {
    return tg_apply1(t, &tg_op_mean, a, NULL, out);
}

tg_status tg_sum_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out) {
    tg_attr at = {.f = {0, 0}, .i = {axis, 0}};
    return tg_apply1(t, &tg_op_sum_axis, a, &at, out);
}

tg_status tg_mean_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out) {
    tg_attr at = {.f = {0, 0}, .i = {axis, 0}};
    return tg_apply1(t, &tg_op_mean_axis, a, &at, out);
}

/* The attr of a dims reduction (n_dims outside 0..8 is refused by check). */
static tg_status dims_apply(tg_tape *t, const tg_op *op, const tg_tensor *x, const int *dims,
                            int n_dims, int keepdim, long correction, tg_tensor **out) {
    tg_attr at = {.f = {0, 0}, .i = {n_dims, keepdim != 0, correction, 0}};
    if (n_dims > 0 && !dims) {
        if (out) *out = NULL;
        return tg_fail(TG_ERR_ARG, "%s: dims is NULL with n_dims = %d", op->name, n_dims);
    }
    for (int k = 0; k < n_dims && k < TG_MAX_RANK; k++)
        at.v[k] = dims[k];
    return tg_apply1(t, op, x, &at, out);
}

tg_status tg_sum_dims(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                      tg_tensor **out) {
    return dims_apply(t, &tg_op_sum, x, dims, n_dims, keepdim, 0, out);
}

tg_status tg_mean_dims(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                       tg_tensor **out) {
    return dims_apply(t, &tg_op_mean, x, dims, n_dims, keepdim, 0, out);
}

tg_status tg_amax(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                  tg_tensor **out) {
    return dims_apply(t, &tg_op_amax, x, dims, n_dims, keepdim, 0, out);
}

tg_status tg_amin(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                  tg_tensor **out) {
    return dims_apply(t, &tg_op_amin, x, dims, n_dims, keepdim, 0, out);
}

tg_status tg_logsumexp(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                       tg_tensor **out) {
    return dims_apply(t, &tg_op_logsumexp, x, dims, n_dims, keepdim, 0, out);
}

tg_status tg_var(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, long correction,
                 int keepdim, tg_tensor **out) {
    return dims_apply(t, &tg_op_var, x, dims, n_dims, keepdim, correction, out);
}

tg_status tg_std(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, long correction,
                 int keepdim, tg_tensor **out) {
    return dims_apply(t, &tg_op_std, x, dims, n_dims, keepdim, correction, out);
}

tg_status tg_norm(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                  tg_tensor **out) {
    return dims_apply(t, &tg_op_norm, x, dims, n_dims, keepdim, 0, out);
}
