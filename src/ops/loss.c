/* Losses (seed 001 §1.2, seed 004): each op returns the cost 𝕁, a scalar,
 * the mean of the loss 𝕃 over all elements (over rows for the softmax ones),
 * or for sse the sum S. 𝕁 is ℝᴺ → ℝ, so its d-map is a dot product with the
 * gradient and its r-map scales the gradient by the scalar adjoint ζ:
 *   d𝕁(ξ) = ⟨∇𝕁, ξ⟩,   r𝕁(ζ) = ζ·∇𝕁,
 * which are adjoint by construction. Sums are accumulated in double. */
#include "ops.h"

/* The scalar adjoint ζ, and writing a scalar result, in either dtype. */
static double scalar_in(tg_dtype dt, const void *p) {
    return dt == TG_F32 ? (double)*(const float *)p : *(const double *)p;
}

static void scalar_out(tg_dtype dt, void *p, double v) {
    if (dt == TG_F32)
        *(float *)p = (float)v;
    else
        *(double *)p = v;
}

/* a·b with 0·b = 0 for every b (as xlogy): a target of 0 at a masked class
 * (a logit or log-probability of −inf) contributes nothing, never 0·(−inf) = NaN. */
static inline double xmul(double a, double b) {
    return a == 0 ? 0 : a * b;
}

/* ---------------------------------------------------------------- elementwise pair losses */

/* 𝕁(a, b) = k·Σᵢ ℓ(aᵢ, bᵢ), k = 1/N (a mean) or 1 (a sum), ℓ: ℝ² → ℝ. Then
 *   d-map: d𝕁(ȧ, ḃ) = k·Σᵢ (∂ₐℓ·ȧᵢ + ∂_bℓ·ḃᵢ)
 *   r-map: r𝕁(ζ)    = (kζ·∂ₐℓ, kζ·∂_bℓ) elementwise.
 * BODY (the variadic part) sees `real a, b` and sets `real l, pa, pb` to
 * ℓ(a, b), ∂ₐℓ and ∂_bℓ; each map uses what it needs (the compiler drops the
 * rest). The r-map reads only ζ and the inputs, so gin[0] == gin[1] is fine. */
#define PAIR_LOSS(NAME, OPNAME, MEAN, CHECK, SAMPLE, ...)                                          \
    static void NAME##_forward(tg_call *c) {                                                       \
        size_t n = c->in[0]->size;                                                                 \
        double s = 0;                                                                              \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *A = c->in[0]->data; const real *B = c->in[1]->data;         \
            for (size_t i = 0; i < n; i++) {                                                       \
                const real a = A[i], b = B[i];                                                     \
                real l, pa, pb;                                                                    \
                __VA_ARGS__(void) pa, (void)pb;                                                    \
                s += l;                                                                            \
            });                                                                                    \
        scalar_out(c->out->dtype, c->out->data, (MEAN ? 1.0 / (double)n : 1.0) * s);               \
    }                                                                                              \
    static void NAME##_jvp(const tg_call *c, const void *const *tin, void *tout) {                 \
        size_t n = c->in[0]->size;                                                                 \
        double s = 0;                                                                              \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *A = c->in[0]->data; const real *B = c->in[1]->data;         \
            const real *ta = tin[0]; const real *tb = tin[1]; for (size_t i = 0; i < n; i++) {     \
                const real a = A[i], b = B[i];                                                     \
                real l, pa, pb;                                                                    \
                __VA_ARGS__(void) l;                                                               \
                if (ta) s += pa * ta[i];                                                           \
                if (tb) s += pb * tb[i];                                                           \
            });                                                                                    \
        scalar_out(c->out->dtype, tout, (MEAN ? 1.0 / (double)n : 1.0) * s);                       \
    }                                                                                              \
    static void NAME##_vjp(const tg_call *c, const void *gout, void *const *gin) {                 \
        size_t n = c->in[0]->size;                                                                 \
        double kg = (MEAN ? 1.0 / (double)n : 1.0) * scalar_in(c->out->dtype, gout);               \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *A = c->in[0]->data; const real *B = c->in[1]->data;         \
            real *ga = gin[0]; real *gb = gin[1]; const real k = (real)kg;                         \
            for (size_t i = 0; i < n; i++) {                                                       \
                const real a = A[i], b = B[i];                                                     \
                real l, pa, pb;                                                                    \
                __VA_ARGS__(void) l;                                                               \
                if (ga) ga[i] += k * pa;                                                           \
                if (gb) gb[i] += k * pb;                                                           \
            });                                                                                    \
    }                                                                                              \
    const tg_op tg_op_##NAME = {.name = OPNAME,                                                    \
                                .arity = 2,                                                        \
                                .check = CHECK,                                                    \
                                .forward = NAME##_forward,                                         \
                                .jvp = NAME##_jvp,                                                 \
                                .vjp = NAME##_vjp,                                                 \
                                .sample = SAMPLE};                                                 \
    tg_status tg_##NAME(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out) {     \
        return tg_apply2(t, &tg_op_##NAME, a, b, NULL, out);                                       \
    }

/* Two inputs of one shape → a scalar. */
static tg_status pair_check(tg_call *c, char *msg, size_t len) {
    tg_status s = tg_check_same(c, msg, len);
    if (!s) tg_out_scalar(c);
    return s;
}

/* bce also needs p in [0, 1] (as PyTorch): outside it log is NaN. A NaN p
 * is refused too (written so that NaN fails the test). Checked when
 * recorded; a replay with p outside gives NaN, as the math does. */
static tg_status bce_check(tg_call *c, char *msg, size_t len) {
    tg_status s = pair_check(c, msg, len);
    for (size_t i = 0; !s && i < c->in[0]->size; i++) {
        double p = tg_get(c->in[0], i);
        if (!(p >= 0 && p <= 1)) {
            snprintf(msg, len, "p[%zu] = %g is not a probability in [0, 1]", i, p);
            s = TG_ERR_VALUE;
        }
    }
    return s;
}

static void sample_2d_pair(size_t m, size_t k, tg_sample *s, tg_domain d0, tg_domain d1) {
    tg_sample_2d(s, 0, m, k, d0);
    tg_sample_2d(s, 1, m, k, d1);
}

static void bce_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    sample_2d_pair(m, k, s, TG_DOM_PROB, TG_DOM_PROB); /* soft targets: the general case */
}

static void logits_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    sample_2d_pair(m, k, s, TG_DOM_REAL, TG_DOM_PROB);
}

static void real_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    sample_2d_pair(m, k, s, TG_DOM_REAL, TG_DOM_REAL);
}

/* bce: ℓ(p, y) = −(y·L₁ + (1−y)·L₀), L₁ = max(log p, −100), L₀ = max(log(1−p), −100)
 * (PyTorch's clamp: ℓ stays finite at p = 0 or 1).
 *   ∂_yℓ = −(L₁ − L₀).
 *   ∂_pℓ is the EXACT derivative of this clamped ℓ, so that the d- and r-maps
 *   agree with finite differences everywhere: a clamped log is constant, so
 *   its term contributes 0:
 *     ∂_pℓ = −y·[log p > −100]/p + (1−y)·[log(1−p) > −100]/(1−p),
 *   which with neither clamp active is the usual (p − y)/(p(1 − p)), used then
 *   (no cancellation between the two terms when p ≈ y). At p = 0 or 1 it is
 *   finite, where PyTorch's (p−y)/max(p(1−p), 1e-12) is not the derivative of
 *   its own forward. log(1−p) is log1p(−p), exact for small p.
 *   Range: value and derivatives a few ulps from the clamped ℓ's for every p
 *   in [0, 1] (0 and 1 included) and y in [0, 1]; NaN y gives NaN. */
PAIR_LOSS(bce, "bce", 1, bce_check, bce_sample, {
    const real l1 = log(a), l0 = log1p(-a), lo = (real)-100;
    const int on1 = l1 > lo, on0 = l0 > lo;
    const real L1 = on1 ? l1 : lo, L0 = on0 ? l0 : lo;
    l = -(b * L1 + (1 - b) * L0);
    pa = on1 && on0 ? (a - b) / (a * (1 - a)) : (on1 ? -b / a : 0) + (on0 ? (1 - b) / (1 - a) : 0);
    pb = L0 - L1;
})

/* bce_logits: ℓ(x, y) = −(y log σ(x) + (1−y) log(1−σ(x))) = y·sp(−x) + (1−y)·sp(x),
 * sp(x) = log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}). Written per sign of x as
 *   x ≥ 0: ℓ = (1−y)·x + log1p(e),   ∂ₓℓ = (1−y) − e/(1+e),
 *   x < 0: ℓ = −y·x + log1p(e),      ∂ₓℓ = e/(1+e) − y,     e = e^{−|x|},
 * (∂ₓℓ = σ(x) − y, ∂_yℓ = −x): e never overflows, and with a hard label the
 * large-|x| terms are exact where σ(x) − y would round σ to 1 first. The
 * products use 0·x = 0, so a masked logit (−inf with target 0, or +inf with
 * target 1) contributes 0 and gradient 0, not NaN (PyTorch gives NaN there:
 * a deliberate difference). Exact to a few ulps for every finite x and y in
 * [0, 1]; NaN in x or y gives NaN. */
PAIR_LOSS(bce_logits, "bce_logits", 1, pair_check, logits_sample, {
    const real e = exp(-fabs(a)), q = e / (1 + e);
    l = (a >= 0 ? (real)xmul(1 - b, a) : (real)xmul(-b, a)) + log1p(e);
    pa = a >= 0 ? (1 - b) - q : q - b;
    pb = -a;
})

/* sse: S = Σ (f − y)² (seed 004's S, a sum): ∂_f = 2(f − y), ∂_y = −2(f − y).
 * Range (sse and mse): each ℓ is two rounded operations, exact to 1 ulp
 * while |f − y| < √max of the dtype (1.8e19 in float32); beyond, inf, as
 * the true value is; inf − inf and NaN give NaN. */
PAIR_LOSS(sse, "sse", 0, pair_check, real_sample, {
    const real r = a - b;
    l = r * r;
    pa = 2 * r;
    pb = -2 * r;
})

/* mse: the mean of (f − y)²: the same ℓ with k = 1/N. */
PAIR_LOSS(mse, "mse", 1, pair_check, real_sample, {
    const real r = a - b;
    l = r * r;
    pa = 2 * r;
    pb = -2 * r;
})

/* ---------------------------------------------------------------- softmax cross-entropy */

/* Both ops act on rows x of the logits (last axis, C classes) through
 *   log_softmax(x)ⱼ = (xⱼ − m) − log Σₖ e^{xₖ − m},  m = maxₖ xₖ,
 * and softmax sⱼ = e^{log_softmax(x)ⱼ}. The row maximum is never added
 * back: m + log Σ then − xⱼ loses everything below ulp(m) (at logits of
 * 1e16 the loss came out 0 instead of log 2). forward keeps each row's m and
 * log Σ in c->saved (two doubles) for the maps; replay recomputes them.
 * Exact to a few ulps for any finite logits; a logit of −inf is a masked
 * class (sⱼ = 0, log_softmax −inf); a row holding +inf or NaN, or only
 * −inf, gives NaN, as PyTorch. */
typedef struct row_lse {
    double m, log_sum;
} row_lse;

static void rows_lse(const tg_tensor *x, row_lse *rl) {
    size_t C = tg_last_dim(x), rows = tg_rows(x);
    TG_DISPATCH(
        x->dtype, const real *X = x->data; for (size_t r = 0; r < rows; r++) {
            const real *xr = X + r * C;
            real m = xr[0];
            for (size_t j = 1; j < C; j++)
                m = xr[j] > m ? xr[j] : m;
            double s = 0;
            for (size_t j = 0; j < C; j++)
                s += exp((double)xr[j] - (double)m);
            rl[r].m = (double)m;
            rl[r].log_sum = log(s);
        });
}

/* log_softmax of logit v in the row described by rl, in double. */
static inline double log_softmax_at(double v, const row_lse *rl) {
    return (v - rl->m) - rl->log_sum;
}

/* The class of row r: labels[r] if it is an integer in [0, C), else −1. */
static long label_of(const tg_tensor *labels, size_t r, size_t C) {
    double v = tg_get(labels, r);
    return v >= 0 && v < (double)C && v == floor(v) ? (long)v : -1;
}

/* softmax_ce: 𝕁 = (1/n) Σᵣ 𝕃ᵣ, 𝕃ᵣ = −log_softmax(xᵣ)_{yᵣ} = lse(xᵣ) − x_{r,yᵣ}.
 * Labels (input 1) carry no derivative. ∂𝕁/∂x_{rj} = (s_{rj} − [j = yᵣ])/n. */
static tg_status sce_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *lab = c->in[1];
    char sx[64], sl[64];
    if (x->rank != 2 || lab->size != x->shape[0]) {
        snprintf(msg, len, "logits must be 2-D (n x C) and labels have n elements: %s and %s",
                 SHP(sx, x), SHP(sl, lab));
        return TG_ERR_SHAPE;
    }
    size_t n = x->shape[0], C = x->shape[1];
    for (size_t r = 0; r < n; r++) {
        if (label_of(lab, r, C) >= 0) continue;
        snprintf(msg, len, "label %g at row %zu is not a class in [0, %zu)", tg_get(lab, r), r, C);
        return TG_ERR_VALUE;
    }
    c->saved_bytes = n * sizeof(row_lse);
    tg_out_scalar(c);
    return TG_OK;
}

/* A label changed after recording (a replay) is not indexed: its row gives NaN. */
static void sce_forward(tg_call *c) {
    const tg_tensor *x = c->in[0];
    size_t n = x->shape[0], C = x->shape[1];
    row_lse *rl = c->saved;
    double s = 0;
    rows_lse(x, rl);
    for (size_t r = 0; r < n; r++) {
        long y = label_of(c->in[1], r, C);
        s -= y >= 0 ? log_softmax_at(tg_get(x, r * C + (size_t)y), &rl[r]) : NAN;
    }
    scalar_out(x->dtype, c->out->data, s / (double)n);
}

/* d-map: d𝕁(ẋ) = (1/n) Σᵣ (Σⱼ s_{rj} ẋ_{rj} − ẋ_{r,yᵣ}). */
static void sce_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const tg_tensor *x = c->in[0];
    size_t n = x->shape[0], C = x->shape[1];
    const row_lse *rl = c->saved;
    double s = 0;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *t = tin[0];
        for (size_t r = 0; t && r < n; r++) {
            long y = label_of(c->in[1], r, C);
            for (size_t j = 0; j < C; j++)
                s += exp((real)log_softmax_at(X[r * C + j], &rl[r])) * t[r * C + j];
            if (y >= 0) s -= t[r * C + (size_t)y];
        });
    scalar_out(x->dtype, tout, s / (double)n);
}

/* r-map: x̄_{rj} += ζ/n · (s_{rj} − [j = yᵣ]). */
static void sce_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const tg_tensor *x = c->in[0];
    size_t n = x->shape[0], C = x->shape[1];
    const row_lse *rl = c->saved;
    double kg = scalar_in(x->dtype, gout) / (double)n;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; real *gx = gin[0]; const real k = (real)kg;
        for (size_t r = 0; gx && r < n; r++) {
            long y = label_of(c->in[1], r, C);
            for (size_t j = 0; j < C; j++)
                gx[r * C + j] += k * exp((real)log_softmax_at(X[r * C + j], &rl[r]));
            if (y >= 0) gx[r * C + (size_t)y] -= k;
        });
}

static void sce_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    s->rank[1] = 1;
    s->shape[1][0] = m;
    s->domain[1] = TG_DOM_LABEL;
}

const tg_op tg_op_softmax_ce = {.name = "softmax_ce",
                                .arity = 2,
                                .nondiff = 2u,
                                .check = sce_check,
                                .forward = sce_forward,
                                .jvp = sce_jvp,
                                .vjp = sce_vjp,
                                .sample = sce_sample};

tg_status tg_softmax_ce(tg_tape *t, const tg_tensor *logits, const tg_tensor *labels,
                        tg_tensor **out) {
    return tg_apply2(t, &tg_op_softmax_ce, logits, labels, NULL, out);
}

/* softmax_ce_onehot: 𝕁 = (1/n) Σᵣ 𝕃ᵣ, 𝕃ᵣ = −Σⱼ y_{rj} log_softmax(xᵣ)ⱼ, targets y
 * of the logits' shape (rows on the last axis; any distribution, Σⱼ y_{rj}
 * need not be 1). With σᵣ = Σⱼ y_{rj}:
 *   ∂𝕁/∂x_{rj} = (s_{rj}·σᵣ − y_{rj})/n,   ∂𝕁/∂y_{rj} = −log_softmax(xᵣ)ⱼ/n. */
static tg_status sceo_check(tg_call *c, char *msg, size_t len) {
    tg_status s = tg_check_same(c, msg, len);
    if (!s && c->in[0]->rank < 1) {
        snprintf(msg, len, "logits need a class axis (n x C), got a scalar");
        s = TG_ERR_SHAPE;
    }
    if (s) return s;
    c->saved_bytes = tg_rows(c->in[0]) * sizeof(row_lse);
    tg_out_scalar(c);
    return TG_OK;
}

static void sceo_forward(tg_call *c) {
    const tg_tensor *x = c->in[0];
    size_t C = tg_last_dim(x), n = tg_rows(x);
    row_lse *rl = c->saved;
    double s = 0;
    rows_lse(x, rl);
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *Y = c->in[1]->data;
        for (size_t r = 0; r < n; r++) {
            for (size_t j = 0; j < C; j++)
                s -= xmul(Y[r * C + j], (real)log_softmax_at(X[r * C + j], &rl[r]));
        });
    scalar_out(x->dtype, c->out->data, s / (double)n);
}

/* d-map: d𝕁(ẋ, ẏ) = (1/n) Σᵣ Σⱼ ((s_{rj}σᵣ − y_{rj})·ẋ_{rj} − log_softmax(xᵣ)ⱼ·ẏ_{rj}). */
static void sceo_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const tg_tensor *x = c->in[0];
    size_t C = tg_last_dim(x), n = tg_rows(x);
    const row_lse *rl = c->saved;
    double s = 0;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *Y = c->in[1]->data; const real *tx = tin[0];
        const real *ty = tin[1]; for (size_t r = 0; r < n; r++) {
            double sigma = 0; /* σᵣ = Σⱼ y_{rj} */
            for (size_t j = 0; j < C; j++)
                sigma += Y[r * C + j];
            for (size_t j = 0; j < C; j++) {
                size_t i = r * C + j;
                const real ls = (real)log_softmax_at(X[i], &rl[r]);
                if (tx) s += (exp(ls) * (real)sigma - Y[i]) * tx[i];
                if (ty) s -= xmul(ty[i], ls);
            }
        });
    scalar_out(x->dtype, tout, s / (double)n);
}

/* r-map: x̄_{rj} += ζ/n·(s_{rj}σᵣ − y_{rj}),  ȳ_{rj} += −ζ/n·log_softmax(xᵣ)ⱼ.
 * Both read only x, y and ζ, so x̄ and ȳ may be one buffer. */
static void sceo_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const tg_tensor *x = c->in[0];
    size_t C = tg_last_dim(x), n = tg_rows(x);
    const row_lse *rl = c->saved;
    double kg = scalar_in(x->dtype, gout) / (double)n;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *Y = c->in[1]->data; real *gx = gin[0];
        real *gy = gin[1]; const real k = (real)kg; for (size_t r = 0; r < n; r++) {
            double sigma = 0; /* σᵣ = Σⱼ y_{rj} */
            for (size_t j = 0; j < C; j++)
                sigma += Y[r * C + j];
            for (size_t j = 0; j < C; j++) {
                size_t i = r * C + j;
                const real ls = (real)log_softmax_at(X[i], &rl[r]);
                if (gx) gx[i] += k * (exp(ls) * (real)sigma - Y[i]);
                if (gy) gy[i] -= (real)xmul(k, ls);
            }
        });
}

static void sceo_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    sample_2d_pair(m, k, s, TG_DOM_REAL, TG_DOM_SIMPLEX);
}

const tg_op tg_op_softmax_ce_onehot = {.name = "softmax_ce_onehot",
                                       .arity = 2,
                                       .check = sceo_check,
                                       .forward = sceo_forward,
                                       .jvp = sceo_jvp,
                                       .vjp = sceo_vjp,
                                       .sample = sceo_sample};

tg_status tg_softmax_ce_onehot(tg_tape *t, const tg_tensor *logits, const tg_tensor *targets,
                               tg_tensor **out) {
    return tg_apply2(t, &tg_op_softmax_ce_onehot, logits, targets, NULL, out);
}
