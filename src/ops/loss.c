/* Losses (seed 001 §1.2, seed 004): each op returns the cost 𝕁, a scalar,
 * the mean of the loss 𝕃 over all elements (over rows for the softmax ones),
 * or for sse the sum S. 𝕁 is ℝᴺ → ℝ, so its d-map is a dot product with the
 * gradient and its r-map scales the gradient by the scalar adjoint ζ:
 *   d𝕁(ξ) = ⟨∇𝕁, ξ⟩,   r𝕁(ζ) = ζ·∇𝕁,
 * which are adjoint by construction. Sums are accumulated in double. */
#include "ops.h"
#include "fastmath.h"

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

/* k of a pair loss over n elements: MEAN 1 (1/n) or 0 (1), or 2: from the
 * tg_reduction in attr i[0] (batchmean: 1/size of axis 0, 1 for rank 0, as
 * PyTorch's kl_div). */
static double pair_scale(const tg_call *c, size_t n, int mode) {
    long r = mode == 2 ? c->attr.i[0] : mode ? TG_REDUCTION_MEAN : TG_REDUCTION_SUM;
    if (r == TG_REDUCTION_SUM) return 1.0;
    if (r == TG_REDUCTION_BATCHMEAN) return c->in[0]->rank ? 1.0 / (double)c->in[0]->shape[0] : 1.0;
    return 1.0 / (double)n;
}

/* ---------------------------------------------------------------- elementwise pair losses */

/* 𝕁(a, b) = k·Σᵢ ℓ(aᵢ, bᵢ), k = 1/N (a mean) or 1 (a sum), ℓ: ℝ² → ℝ. Then
 *   d-map: d𝕁(ȧ, ḃ) = k·Σᵢ (∂ₐℓ·ȧᵢ + ∂_bℓ·ḃᵢ)
 *   r-map: r𝕁(ζ)    = (kζ·∂ₐℓ, kζ·∂_bℓ) elementwise.
 * BODY (the variadic part) sees `real a, b` and sets `real l, pa, pb` to
 * ℓ(a, b), ∂ₐℓ and ∂_bℓ; each map uses what it needs (the compiler drops the
 * rest). The r-map reads only ζ and the inputs, so gin[0] == gin[1] is fine.
 * MEAN: 1 for k = 1/N, 0 for k = 1, 2 for the reduction in attr i[0]
 * (pair_scale). */
/* The forward's sum of the per-element losses: computed a chunk (TG_CHUNK)
 * at a time into a buffer, so that the loss loop has no reduction and
 * vectorises (fastmath's log and exp), then added in double into TG_LANES
 * partial sums (the tail into the returned scalar), as TG_RFOLD sums: the
 * same values in another order, a few ulps of the double at most. */
#define PAIR_FOLD_DEF(T, NAME)                                                                     \
    static inline double NAME(const T *lb, size_t m, double *p) {                                  \
        size_t k = 0;                                                                              \
        double s = 0;                                                                              \
        for (; k + TG_LANES <= m; k += TG_LANES)                                                   \
            for (int j = 0; j < TG_LANES; j++)                                                     \
                p[j] += lb[k + (size_t)j];                                                         \
        for (; k < m; k++)                                                                         \
            s += lb[k];                                                                            \
        return s;                                                                                  \
    }
PAIR_FOLD_DEF(float, pair_fold_f)
PAIR_FOLD_DEF(double, pair_fold_d)
#define pair_fold(lb, m, p) _Generic((lb), float * : pair_fold_f, double * : pair_fold_d)(lb, m, p)

/* The r-map's loop, one per set of gradients wanted: the loss body is
 * branch-free and vectorised, so a derivative nobody reads would be
 * computed anyway (a log per element) if the choice were inside the loop. */
#define PAIR_VJP_LOOP(ACC, ...)                                                                    \
    for (size_t i = 0; i < n; i++) {                                                               \
        const real a = A[i], b = B[i];                                                             \
        real l, pa, pb;                                                                            \
        __VA_ARGS__(void) l, (void)pa, (void)pb;                                                   \
        ACC                                                                                        \
    }

#define PAIR_LOSS_OP(NAME, OPNAME, MEAN, CHECK, SAMPLE, ...)                                       \
    TG_SIMD_CLONES static void NAME##_forward(tg_call *c) {                                        \
        size_t n = c->in[0]->size;                                                                 \
        double s = 0, p_[TG_LANES] = {0};                                                          \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *A = c->in[0]->data; const real *B = c->in[1]->data;         \
            for (size_t i0 = 0; i0 < n; i0 += TG_CHUNK) {                                          \
                const size_t m_ = n - i0 < TG_CHUNK ? n - i0 : TG_CHUNK;                           \
                real lb_[TG_CHUNK];                                                                \
                for (size_t k_ = 0; k_ < m_; k_++) {                                               \
                    const real a = A[i0 + k_], b = B[i0 + k_];                                     \
                    real l, pa, pb;                                                                \
                    __VA_ARGS__(void) pa, (void)pb;                                                \
                    lb_[k_] = l;                                                                   \
                }                                                                                  \
                s += pair_fold(lb_, m_, p_);                                                       \
            });                                                                                    \
        for (int j_ = 0; j_ < TG_LANES; j_++)                                                      \
            s += p_[j_];                                                                           \
        scalar_out(c->out->dtype, c->out->data, pair_scale(c, n, MEAN) * s);                       \
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
        scalar_out(c->out->dtype, tout, pair_scale(c, n, MEAN) * s);                               \
    }                                                                                              \
    TG_SIMD_CLONES static void NAME##_vjp(const tg_call *c, const void *gout, void *const *gin) {  \
        size_t n = c->in[0]->size;                                                                 \
        double kg = pair_scale(c, n, MEAN) * scalar_in(c->out->dtype, gout);                       \
        TG_DISPATCH(c->out->dtype, const real *A = c->in[0]->data; const real *B = c->in[1]->data; \
                    real *ga = gin[0]; real *gb = gin[1]; const real k = (real)kg; if (ga && gb)   \
                        PAIR_VJP_LOOP(ga[i] += k * pa; gb[i] += k * pb;, __VA_ARGS__) else if (ga) \
                            PAIR_VJP_LOOP(ga[i] += k * pa;, __VA_ARGS__) else if (gb)              \
                                PAIR_VJP_LOOP(gb[i] += k * pb;, __VA_ARGS__));                     \
    }                                                                                              \
    static void NAME##_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,         \
                               const void *gout, void *const *gin);                                \
    const tg_op tg_op_##NAME = {.name = OPNAME,                                                    \
                                .arity = 2,                                                        \
                                .check = CHECK,                                                    \
                                .forward = NAME##_forward,                                         \
                                .jvp = NAME##_jvp,                                                 \
                                .vjp = NAME##_vjp,                                                 \
                                .sample = SAMPLE,                                                  \
                                .vjp_dot = NAME##_vjp_dot,                                         \
                                .convex = 1};

/* Second order (issue 18): r𝕁(ζ) = (kζ·∂ₐℓ, kζ·∂_bℓ) elementwise, so along
 * (ȧ, ḃ)
 *   vjp_dot: ġin_a += kζ·(ℓ_aa·ȧ + ℓ_ab·ḃ),   ġin_b += kζ·(ℓ_ab·ȧ + ℓ_bb·ḃ).
 * BODY (variadic) sees `real a, b` and sets `real haa, hab, hbb` to the
 * second partials of ℓ. Every pair loss is convex in a (.convex: tg_ggn). */
#define PAIR_DOT(NAME, MEAN, ...)                                                                  \
    static void NAME##_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,         \
                               const void *gout, void *const *gin) {                               \
        (void)tout;                                                                                \
        size_t n = c->in[0]->size;                                                                 \
        double kg = pair_scale(c, n, MEAN) * scalar_in(c->out->dtype, gout);                       \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *A = c->in[0]->data; const real *B = c->in[1]->data;         \
            const real *ta = tin[0]; const real *tb = tin[1]; real *ga = gin[0];                   \
            real *gb = gin[1]; const real k = (real)kg; for (size_t i = 0; i < n; i++) {           \
                const real a = A[i], b = B[i];                                                     \
                real haa, hab, hbb;                                                                \
                __VA_ARGS__(void) a, (void)b;                                                      \
                const real da = ta ? ta[i] : 0, db = tb ? tb[i] : 0;                               \
                if (ga) ga[i] += k * ((ta ? haa * da : 0) + (tb ? hab * db : 0));                  \
                if (gb) gb[i] += k * ((ta ? hab * da : 0) + (tb ? hbb * db : 0));                  \
            });                                                                                    \
    }

/* The same with its public function tg_NAME(t, a, b, out) (no attributes). */
#define PAIR_LOSS(NAME, OPNAME, MEAN, CHECK, SAMPLE, ...)                                          \
    PAIR_LOSS_OP(NAME, OPNAME, MEAN, CHECK, SAMPLE, __VA_ARGS__)                                   \
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
    const real l1 = TG_LOG(a), l0 = TG_LOG1P(-a), lo = (real)-100;
    const int on1 = l1 > lo, on0 = l0 > lo;
    const real L1 = on1 ? l1 : lo, L0 = on0 ? l0 : lo;
    l = -(b * L1 + (1 - b) * L0);
    pa = on1 && on0 ? (a - b) / (a * (1 - a)) : (on1 ? -b / a : 0) + (on0 ? (1 - b) / (1 - a) : 0);
    pb = L0 - L1;
})
/* ℓ_pp = y/p² + (1−y)/(1−p)² (a clamped log's term is 0, as in ∂_pℓ),
 * ℓ_py = −[log p > −100]/p − [log(1−p) > −100]/(1−p), ℓ_yy = 0. */
PAIR_DOT(bce, 1, {
    const int on1 = TG_LOG(a) > (real)-100, on0 = TG_LOG1P(-a) > (real)-100;
    haa = (on1 ? b / (a * a) : 0) + (on0 ? (1 - b) / ((1 - a) * (1 - a)) : 0);
    hab = (on1 ? -1 / a : 0) - (on0 ? 1 / (1 - a) : 0);
    hbb = 0;
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
    const real e = TG_EXP(-fabs(a)), q = e / (1 + e);
    l = (a >= 0 ? (real)xmul(1 - b, a) : (real)xmul(-b, a)) + TG_LOG1P(e);
    pa = a >= 0 ? (1 - b) - q : q - b;
    pb = -a;
})
/* ∂ₓℓ = σ(x) − y: ℓ_xx = σ(x)σ(−x) = q(1 − q) with q = σ(−|x|), ℓ_xy = −1, ℓ_yy = 0. */
PAIR_DOT(bce_logits, 1, {
    const real e = TG_EXP(-fabs(a)), q = e / (1 + e);
    haa = q * (1 - q);
    hab = -1;
    hbb = 0;
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
/* sse, mse: ℓ = (a − b)²: ℓ_aa = ℓ_bb = 2, ℓ_ab = −2 (H_L = 2k·[[I, −I], [−I, I]]). */
#define SQUARE_H                                                                                   \
    {                                                                                              \
        haa = hbb = 2;                                                                             \
        hab = -2;                                                                                  \
    }
PAIR_DOT(sse, 0, SQUARE_H)
PAIR_DOT(mse, 1, SQUARE_H)

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
typedef tg_lse row_lse;

/* Each row's m and log Σ (tg_lse_reduce over the last axis). */
static void rows_lse(const tg_tensor *x, row_lse *rl) {
    tg_rgeom g;
    tg_rgeom_init(&g, x, 1u << (x->rank - 1));
    tg_lse_reduce(x, &g, rl);
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

/* Second order (issue 18): r(ζ) = ζ/n·(s − e_y) per row, and along ẋ
 * ṡ = (diag s − s sᵀ)ẋ = s ⊙ (ẋ − ⟨s, ẋ⟩), so
 *   vjp_dot: ġin_r += ζ/n·(diag s_r − s_r s_rᵀ)·ẋ_r,
 * the Hessian of the loss per row (positive semi-definite: the loss is
 * convex in the logits; Σⱼ of it is 0, as s·1 = 1 is constant). */
static void sce_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                        const void *gout, void *const *gin) {
    (void)tout;
    const tg_tensor *x = c->in[0];
    size_t n = x->shape[0], C = x->shape[1];
    const row_lse *rl = c->saved;
    double kg = scalar_in(x->dtype, gout) / (double)n;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *t = tin[0]; real *gx = gin[0];
        for (size_t r = 0; gx && r < n; r++) {
            double st = 0; /* ⟨s, ẋ⟩ */
            for (size_t j = 0; j < C; j++)
                st += exp(log_softmax_at(X[r * C + j], &rl[r])) * t[r * C + j];
            for (size_t j = 0; j < C; j++) {
                const double sj = exp(log_softmax_at(X[r * C + j], &rl[r]));
                gx[r * C + j] += (real)(kg * sj * (t[r * C + j] - st));
            }
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
                                .sample = sce_sample,
                                .vjp_dot = sce_vjp_dot,
                                .convex = 1};

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

/* Second order (issue 18): with ṡ = s ⊙ (ẋ − ⟨s, ẋ⟩), the tangent of
 * log_softmax λ̇ = ẋ − ⟨s, ẋ⟩ and σ̇ᵣ = Σⱼ ẏ_{rj}, the derivatives of the
 * r-map's two parts along (ẋ, ẏ):
 *   ġin_x += ζ/n·(ṡ·σᵣ + s·σ̇ᵣ − ẏ),   ġin_y += −ζ/n·λ̇   (per row).
 * Convex in x for targets ≥ 0 (σᵣ·(diag s − ssᵀ)). */
static void sceo_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                         const void *gout, void *const *gin) {
    (void)tout;
    const tg_tensor *x = c->in[0];
    size_t C = tg_last_dim(x), n = tg_rows(x);
    const row_lse *rl = c->saved;
    double kg = scalar_in(x->dtype, gout) / (double)n;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *Y = c->in[1]->data; const real *tx = tin[0];
        const real *ty = tin[1]; real *gx = gin[0]; real *gy = gin[1];
        for (size_t r = 0; r < n; r++) {
            double sigma = 0, sdot = 0, st = 0; /* σᵣ, σ̇ᵣ, ⟨s, ẋ⟩ */
            for (size_t j = 0; j < C; j++) {
                size_t i = r * C + j;
                sigma += Y[i];
                if (ty) sdot += ty[i];
                if (tx) st += exp(log_softmax_at(X[i], &rl[r])) * tx[i];
            }
            for (size_t j = 0; j < C; j++) {
                size_t i = r * C + j;
                const double sj = exp(log_softmax_at(X[i], &rl[r]));
                const double lam = tx ? tx[i] - st : 0; /* λ̇ */
                if (gx) gx[i] += (real)(kg * (sj * lam * sigma + sj * sdot - (ty ? ty[i] : 0)));
                if (gy) gy[i] -= (real)(kg * lam);
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
                                       .sample = sceo_sample,
                                       .vjp_dot = sceo_vjp_dot,
                                       .convex = 1};

tg_status tg_softmax_ce_onehot(tg_tape *t, const tg_tensor *logits, const tg_tensor *targets,
                               tg_tensor **out) {
    return tg_apply2(t, &tg_op_softmax_ce_onehot, logits, targets, NULL, out);
}

/* ---------------------------------------------------------------- losses of issue 14 */

/* sign(r) with sign(±0) = ±0 and NaN passed through. */
#define SIGN_NAN(r) ((r) > 0 ? (real)1 : (r) < 0 ? (real)-1 : (r))

/* The reduction in attr i[0]: mean or sum (batchmean too where allowed). */
static tg_status reduction_check(const tg_call *c, int batchmean, char *msg, size_t len) {
    long r = c->attr.i[0];
    if (r == TG_REDUCTION_MEAN || r == TG_REDUCTION_SUM ||
        (batchmean && r == TG_REDUCTION_BATCHMEAN))
        return TG_OK;
    snprintf(msg, len, "reduction %ld is not one of mean (0), sum (1)%s", r,
             batchmean ? ", batchmean (2)" : "");
    return TG_ERR_ARG;
}

/* huber and smooth_l1: same shapes, a reduction, and a finite width
 * f[0] (delta > 0; beta >= 0, 0 being the L1 loss). */
static tg_status width_check(tg_call *c, char *msg, size_t len) {
    const double w = c->attr.f[0];
    const int huber = c->op == &tg_op_huber;
    tg_status s = pair_check(c, msg, len);
    if (!s) s = reduction_check(c, 0, msg, len);
    if (!s && !(isfinite(w) && (huber ? w > 0 : w >= 0))) {
        snprintf(msg, len, "%s must be finite and %s 0, got %g", huber ? "delta" : "beta",
                 huber ? ">" : ">=", w);
        s = TG_ERR_VALUE;
    }
    return s;
}

static void huber_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    real_sample(m, k, n, s);
    s->attr.f[0] = 0.7; /* N(0,1) differences fall on both sides of it */
}

/* huber (torch.nn.functional.huber_loss, delta δ > 0), r = a − b, z = |r|:
 *   ℓ = ½r² (z < δ),  δ(z − ½δ) (otherwise);  ∂ₐℓ = r or δ·sign(r) = −∂_bℓ.
 * At the switch z = δ both pieces give ½δ² and slope ±δ (the derivative is
 * continuous there). NaN takes the second piece: NaN out. Reduction mean
 * (torch's default) or sum. */
PAIR_LOSS_OP(huber, "huber", 2, width_check, huber_sample, {
    const real r = a - b, z = fabs(r), dl = (real)c->attr.f[0];
    const int quad = z < dl;
    l = quad ? (real)0.5 * r * r : dl * (z - (real)0.5 * dl);
    pa = quad ? r : dl * SIGN_NAN(r);
    pb = -pa;
})
/* ℓ_aa = ℓ_bb = −ℓ_ab = [|r| < δ] (the linear piece has none). */
PAIR_DOT(huber, 2, {
    haa = hbb = fabs(a - b) < (real)c->attr.f[0] ? (real)1 : 0;
    hab = -haa;
})

/* smooth_l1 (torch.nn.functional.smooth_l1_loss, beta β >= 0):
 *   ℓ = ½r²/β (z < β),  z − ½β (otherwise);  ∂ₐℓ = r/β or sign(r) = −∂_bℓ.
 * β = 0 is the L1 loss (z < 0 never holds), with sign(0) = 0 (torch 1.13's
 * gradient at r = 0 with β = 0 is ∓½, from its division by β: not copied). */
PAIR_LOSS_OP(smooth_l1, "smooth_l1", 2, width_check, huber_sample, {
    const real r = a - b, z = fabs(r), bt = (real)c->attr.f[0];
    const int quad = z < bt;
    l = quad ? (real)0.5 * r * (r / bt) : z - (real)0.5 * bt; /* r·r alone underflows */
    pa = quad ? r / bt : SIGN_NAN(r);
    pb = -pa;
})
/* ℓ_aa = ℓ_bb = −ℓ_ab = [|r| < β]/β (0 for β = 0: never quadratic). */
PAIR_DOT(smooth_l1, 2, {
    const real bt = (real)c->attr.f[0];
    haa = hbb = fabs(a - b) < bt ? 1 / bt : 0;
    hab = -haa;
})

/* p·log p with 0·log 0 = 0 (torch.xlogy(p, p)), in the dtype (float32:
 * fastmath's log, which vectorises, as torch computes it in float). */
#define XLOGX(p) ((p) == 0 ? 0 : (p)*TG_LOG(p))

static tg_status kl_check(tg_call *c, char *msg, size_t len) {
    tg_status s = pair_check(c, msg, len);
    return s ? s : reduction_check(c, 1, msg, len);
}

static void kl_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    sample_2d_pair(m, k, s, TG_DOM_REAL, TG_DOM_SIMPLEX); /* a = log q: any real */
    s->attr.i[0] = TG_REDUCTION_BATCHMEAN;
}

/* kl_div (torch.nn.functional.kl_div): a = log q (log-probabilities), b the
 * target p, or log p with log_target (attr i[1]):
 *   ℓ = p·log p − p·a,        ∂ₐℓ = −p,   ∂_pℓ = log p + 1 − a;
 *   ℓ = e^b·(b − a),          ∂ₐℓ = −e^b, ∂_bℓ = e^b·(b − a + 1)   (log_target).
 * A target of 0 (p = 0, or b = −inf) contributes 0 to ℓ, also where a = −inf
 * (torch gives NaN there: 0·(−inf); a deliberate difference, as bce_logits');
 * ∂_pℓ at p = 0 is −inf (the one-sided limit; torch NaN). Reduction in i[0]:
 * mean over all elements (torch's default), sum, or batchmean (sum / size of
 * axis 0: the true KL divergence per example). */
PAIR_LOSS_OP(kl_div, "kl_div", 2, kl_check, kl_sample, {
    if (c->attr.i[1]) {
        const real e = TG_EXP(b);
        l = (real)xmul(e, b - a);
        pa = -e;
        pb = (real)xmul(e, b - a + 1);
    } else {
        l = (real)((double)XLOGX(b) - xmul(b, a));
        pa = -b;
        pb = TG_LOG(b) + 1 - a;
    }
})
/* Linear in a (ℓ_aa = 0: convex). Target p: ℓ_ap = −1, ℓ_pp = 1/p;
 * log_target b: ℓ_ab = −e^b, ℓ_bb = e^b·(b − a + 2). */
PAIR_DOT(kl_div, 2, {
    haa = 0;
    if (c->attr.i[1]) {
        const real e = TG_EXP(b);
        hab = -e;
        hbb = (real)xmul(e, b - a + 2);
    } else {
        hab = -1;
        hbb = 1 / b;
    }
})

tg_status tg_huber(tg_tape *t, const tg_tensor *input, const tg_tensor *target, double delta,
                   tg_reduction reduction, tg_tensor **out) {
    tg_attr a = {.f = {delta, 0}, .i = {reduction, 0}};
    return tg_apply2(t, &tg_op_huber, input, target, &a, out);
}

tg_status tg_smooth_l1(tg_tape *t, const tg_tensor *input, const tg_tensor *target, double beta,
                       tg_reduction reduction, tg_tensor **out) {
    tg_attr a = {.f = {beta, 0}, .i = {reduction, 0}};
    return tg_apply2(t, &tg_op_smooth_l1, input, target, &a, out);
}

tg_status tg_kl_div(tg_tape *t, const tg_tensor *input, const tg_tensor *target,
                    tg_reduction reduction, int log_target, tg_tensor **out) {
    tg_attr a = {.f = {0, 0}, .i = {reduction, log_target != 0}};
    return tg_apply2(t, &tg_op_kl_div, input, target, &a, out);
}

/* ---------------------------------------------------------------- nll and cross-entropy */

/* Both take x of shape (N, C, d1, ...) or (C,) — classes on axis 1 (axis 0
 * for rank 1) as PyTorch — and targets of x's shape without that axis
 * (rank 0 for a (C,) input) holding class indices as floats, no
 * derivative. attr: i[0] reduction (mean over the non-ignored positions,
 * or sum), i[1] ignore_index, active when i[2] != 0 (tg_nll and
 * tg_cross_entropy always set it: PyTorch's −100 matches no class), f[0]
 * cross_entropy's label smoothing ε in [0, 1].
 * Per non-ignored position p (logits xₚ ∈ ℝᶜ, class y), with log-probabilities
 * λ = xₚ (nll) or λ = log_softmax(xₚ) (cross_entropy, from tg_lse_reduce: m
 * never added back) and weights wⱼ = (1 − ε)[j = y] + ε/C:
 *   𝕃ₚ = −Σⱼ wⱼ λⱼ = (1 − ε)(−λ_y) + ε·mean_j(−λⱼ),
 *   ∂𝕃ₚ/∂xⱼ = −wⱼ (nll),   sⱼ − wⱼ (cross_entropy, s = e^λ, Σw = 1).
 * 𝕁 = Σₚ 𝕃ₚ / #{non-ignored} (mean) or Σₚ 𝕃ₚ (sum); every position ignored:
 * 0/0 = NaN for the mean, as torch, and zero gradients. Products use
 * 0·λ = 0, so a masked class (−inf) with weight 0 contributes 0; with
 * ε > 0 a −inf logit gives 𝕃 = +inf and finite gradients, as torch 1.13.
 * A NaN anywhere in a counted position's row makes 𝕁 NaN: cross_entropy's
 * log Σ reads the whole row, and nll checks it (torch's nll reads only the
 * target's entry and hides a NaN elsewhere: a deliberate difference, so
 * that a NaN model never reports an ordinary loss, issue 12). */
typedef struct cgeom {
    size_t N, C, inner;
} cgeom;

static cgeom cgeom_of(const tg_tensor *x) {
    cgeom g = {1, x->shape[0], 1};
    if (x->rank > 1) g.N = x->shape[0], g.C = x->shape[1], g.inner = x->size / (g.N * g.C);
    return g;
}

/* The class of position p: 0..C−1, −2 if ignored, −1 if not a class. */
static long target_class(const tg_call *c, size_t p, size_t C) {
    double v = tg_get(c->in[1], p);
    if (c->attr.i[2] && v == (double)c->attr.i[1]) return -2;
    return v >= 0 && v < (double)C && v == floor(v) ? (long)v : -1;
}

static int is_ce(const tg_call *c) {
    return c->op == &tg_op_cross_entropy;
}

static tg_status class_shape_check(const tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *y = c->in[1];
    int ok = x->rank >= 1 && y->rank == (x->rank > 1 ? x->rank - 1 : 0);
    for (int a = 0; ok && a < y->rank; a++)
        ok = y->shape[a] == x->shape[a ? a + 1 : 0];
    if (ok) return TG_OK;
    char sx[64], sy[64];
    snprintf(msg, len,
             "target %s must have the shape of input %s without its class axis (axis 1, or 0 "
             "for rank 1)",
             SHP(sy, y), SHP(sx, x));
    return TG_ERR_SHAPE;
}

static tg_status class_check(tg_call *c, char *msg, size_t len) {
    tg_status s = class_shape_check(c, msg, len);
    if (!s) s = reduction_check(c, 0, msg, len);
    const double eps = c->attr.f[0];
    if (!s && !(eps >= 0 && eps <= 1 && (eps == 0 || is_ce(c)))) {
        snprintf(msg, len, "label_smoothing %g outside [0, 1]%s", eps, is_ce(c) ? "" : " (nll: 0)");
        s = TG_ERR_VALUE;
    }
    if (s) return s;
    cgeom g = cgeom_of(c->in[0]);
    for (size_t p = 0; p < g.N * g.inner; p++) {
        if (target_class(c, p, g.C) != -1) continue;
        snprintf(msg, len, "target %g at position %zu is not a class in [0, %zu)%s",
                 tg_get(c->in[1], p), p, g.C, c->attr.i[2] ? " nor ignore_index" : "");
        return TG_ERR_VALUE;
    }
    c->saved_bytes = is_ce(c) ? g.N * g.inner * sizeof(tg_lse) : 0;
    tg_out_scalar(c);
    return TG_OK;
}

/* λ of logit v at position p. */
static inline double logp(const tg_call *c, double v, size_t p) {
    const tg_lse *l = c->saved;
    return is_ce(c) ? (v - l[p].m) - l[p].log_sum : v;
}

/* 1/#{non-ignored} (mean) or 1 (sum). */
static double class_scale(const tg_call *c, const cgeom *g) {
    size_t n = 0;
    for (size_t p = 0; p < g->N * g->inner; p++)
        n += target_class(c, p, g->C) != -2;
    return c->attr.i[0] == TG_REDUCTION_SUM ? 1.0 : 1.0 / (double)n;
}

/* A target changed after recording (a replay) to a non-class gives NaN. */
static void class_forward(tg_call *c) {
    const tg_tensor *x = c->in[0];
    cgeom g = cgeom_of(x);
    const double eps = c->attr.f[0], ec = eps / (double)g.C;
    double s = 0;
    if (is_ce(c)) {
        tg_rgeom rg;
        tg_rgeom_init(&rg, x, 1u << (x->rank > 1));
        tg_lse_reduce(x, &rg, c->saved);
    }
    TG_DISPATCH(
        x->dtype, const real *X = x->data; for (size_t p = 0; p < g.N * g.inner; p++) {
            const long y = target_class(c, p, g.C);
            const real *xp = X + (p / g.inner) * g.C * g.inner + p % g.inner;
            double all = 0;
            int nan = 0;
            if (y == -2) continue;
            if (y == -1) s = NAN;
            for (size_t j = 0; y >= 0 && eps != 0 && j < g.C; j++)
                all += logp(c, xp[j * g.inner], p);
            for (size_t j = 0; y >= 0 && !is_ce(c) && j < g.C; j++)
                nan |= xp[j * g.inner] != xp[j * g.inner];
            if (nan) s = NAN;
            if (y >= 0) s -= xmul(1 - eps, logp(c, xp[(size_t)y * g.inner], p)) + xmul(ec, all);
        });
    scalar_out(x->dtype, c->out->data, s * class_scale(c, &g));
}

/* d-map: d𝕁(ẋ) = k Σₚ Σⱼ ∂𝕃ₚ/∂xⱼ·ẋⱼ; the sⱼ and ε/C terms visit every class
 * only where they are not 0 (cross_entropy, or ε > 0). */
static void class_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const tg_tensor *x = c->in[0];
    cgeom g = cgeom_of(x);
    const double eps = c->attr.f[0], ec = eps / (double)g.C;
    double s = 0;
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *t = tin[0];
        for (size_t p = 0; t && p < g.N * g.inner; p++) {
            const long y = target_class(c, p, g.C);
            const size_t base = (p / g.inner) * g.C * g.inner + p % g.inner;
            if (y < 0) continue;
            for (size_t j = 0; (is_ce(c) || eps != 0) && j < g.C; j++) {
                const size_t i = base + j * g.inner;
                s += ((is_ce(c) ? exp(logp(c, X[i], p)) : 0) - ec) * t[i];
            }
            s -= (1 - eps) * t[base + (size_t)y * g.inner];
        });
    scalar_out(x->dtype, tout, s * class_scale(c, &g));
}

/* r-map: x̄ⱼ += ζk·∂𝕃ₚ/∂xⱼ at each non-ignored position. */
static void class_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const tg_tensor *x = c->in[0];
    cgeom g = cgeom_of(x);
    const double eps = c->attr.f[0], ec = eps / (double)g.C;
    const double kg = scalar_in(x->dtype, gout) * class_scale(c, &g);
    TG_DISPATCH(
        x->dtype, const real *X = x->data; real *gx = gin[0];
        for (size_t p = 0; gx && p < g.N * g.inner; p++) {
            const long y = target_class(c, p, g.C);
            const size_t base = (p / g.inner) * g.C * g.inner + p % g.inner;
            if (y < 0) continue;
            for (size_t j = 0; (is_ce(c) || eps != 0) && j < g.C; j++) {
                const size_t i = base + j * g.inner;
                gx[i] += (real)(kg * ((is_ce(c) ? exp(logp(c, X[i], p)) : 0) - ec));
            }
            gx[base + (size_t)y * g.inner] -= (real)(kg * (1 - eps));
        });
}

/* Second order (issue 18). nll: r = −kζ·w depends on the targets only
 * (linear in x): r_const. cross_entropy: r = kζ·(s − w) per position, so
 * along ẋ, with ṡ = s ⊙ (ẋ − ⟨s, ẋ⟩) over the class axis,
 *   vjp_dot: ġin += kζ·ṡ = kζ·(diag s − s sᵀ)·ẋ   (0 at ignored positions),
 * label smoothing changing only w, a constant. Both convex in x. */
static void class_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                          const void *gout, void *const *gin) {
    (void)tout;
    const tg_tensor *x = c->in[0];
    cgeom g = cgeom_of(x);
    const double kg = scalar_in(x->dtype, gout) * class_scale(c, &g);
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *t = tin[0]; real *gx = gin[0];
        for (size_t p = 0; gx && p < g.N * g.inner; p++) {
            const size_t base = (p / g.inner) * g.C * g.inner + p % g.inner;
            double st = 0; /* ⟨s, ẋ⟩ */
            if (target_class(c, p, g.C) < 0) continue;
            for (size_t j = 0; j < g.C; j++)
                st += exp(logp(c, X[base + j * g.inner], p)) * t[base + j * g.inner];
            for (size_t j = 0; j < g.C; j++) {
                const size_t i = base + j * g.inner;
                gx[i] += (real)(kg * exp(logp(c, X[i], p)) * (t[i] - st));
            }
        });
}

/* Input (m, k, k): classes on axis 1 (k of them) and a spatial axis of k,
 * targets (m, k) drawn in [0, k). */
static void class_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    s->rank[0] = 3;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = k;
    s->domain[0] = TG_DOM_REAL;
    tg_sample_2d(s, 1, m, k, TG_DOM_LABEL);
}

static void ce_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    class_sample(m, k, n, s);
    s->attr.f[0] = 0.1;
}

#define CLASS_OP(NAME, OPNAME, SAMPLE, SECOND)                                                     \
    const tg_op tg_op_##NAME = {.name = OPNAME,                                                    \
                                .arity = 2,                                                        \
                                .nondiff = 2u,                                                     \
                                .check = class_check,                                              \
                                .forward = class_forward,                                          \
                                .jvp = class_jvp,                                                  \
                                .vjp = class_vjp,                                                  \
                                .sample = SAMPLE,                                                  \
                                .convex = 1,                                                       \
                                SECOND};

CLASS_OP(nll, "nll", class_sample, .r_const = 1)
CLASS_OP(cross_entropy, "cross_entropy", ce_sample, .vjp_dot = class_vjp_dot)

tg_status tg_nll(tg_tape *t, const tg_tensor *logp, const tg_tensor *target, long ignore_index,
                 tg_reduction reduction, tg_tensor **out) {
    tg_attr a = {.f = {0, 0}, .i = {reduction, ignore_index, 1}};
    return tg_apply2(t, &tg_op_nll, logp, target, &a, out);
}

tg_status tg_cross_entropy(tg_tape *t, const tg_tensor *logits, const tg_tensor *target,
                           long ignore_index, double label_smoothing, tg_reduction reduction,
                           tg_tensor **out) {
    tg_attr a = {.f = {label_smoothing, 0}, .i = {reduction, ignore_index, 1}};
    return tg_apply2(t, &tg_op_cross_entropy, logits, target, &a, out);
}
