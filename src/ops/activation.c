/* Broadcast activations G (seed 001 §3.4): G applies g: ℝ → ℝ to every
 * element, so its differential is diagonal and self-adjoint:
 *   dG_x(ξ) = G'(x) ⊙ ξ = rG_x(ξ).
 * Fused with bias-add ψ (linalg.c), y = G(ψ(b, X)) = G(X + b), by the
 * chain rule (Proposition 3.1: r(G∘ψ) = rψ ∘ rG):
 *   d(ξ, β) = G'(X + b) ⊙ (ξ + β),
 *   r(ζ) = (δ, Σ_rows δ) with δ = G'(X + b) ⊙ ζ,
 * one pass over the batch instead of two, and no buffer for X + b; the
 * values and their rounding are those of bias_add followed by G, bit for
 * bit (test_ops).
 * Softmax acts on each row (last axis); its Jacobian S(δ − S) is symmetric:
 *   dS(ξ) = rS(ξ) = S ⊙ (ξ − ⟨S, ξ⟩). */
#include "ops.h"
#include "fastmath.h"
#include "unary.h"

/* One activation, written once: FWD is y = g(x), DERIV is g'(x), from x and
 * from y = g(x), whichever is cheaper; f0 (leaky relu's β) is attr.f[0]. Defines
 * the plain op (NAME_forward, _jvp, _vjp: x is the input) and the fused op
 * (bias_NAME_...: x is X + b, recomputed in the maps). */
#define ACTIVATION(NAME, FWD, DERIV)                                                               \
    TG_UNARY_MAPS(NAME, FWD, DERIV)                                                                \
    /* fused: y = G(X + b) */                                                                      \
    TG_SIMD_CLONES static void bias_##NAME##_forward(tg_call *c) {                                 \
        size_t d = tg_last_dim(c->out), rows = tg_rows(c->out);                                    \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *X = c->in[0]->data; const real *b = c->in[1]->data;         \
            real *ys = c->out->data; const real f0 = (real)c->attr.f[0]; (void)f0;                 \
            for (size_t r = 0; r < rows; r++) for (size_t j = 0; j < d; j++) {                     \
                const real x = X[r * d + j] + b[j];                                                \
                ys[r * d + j] = (FWD);                                                             \
            });                                                                                    \
    }                                                                                              \
    /* fused d-map: G'(X + b) ⊙ (ξ + β); either tangent may be absent (0) */                   \
    static void bias_##NAME##_jvp(const tg_call *c, const void *const *tin, void *tout) {          \
        size_t d = tg_last_dim(c->out), rows = tg_rows(c->out);                                    \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *X = c->in[0]->data; const real *b = c->in[1]->data;         \
            const real *ys = c->out->data; const real *tx = tin[0]; const real *tb = tin[1];       \
            real *to = tout; const real f0 = (real)c->attr.f[0]; (void)f0;                         \
            for (size_t r = 0; r < rows; r++) for (size_t j = 0; j < d; j++) {                     \
                size_t i = r * d + j;                                                              \
                const real x = X[i] + b[j], y = ys[i];                                             \
                (void)x, (void)y;                                                                  \
                to[i] = (DERIV) * ((tx ? tx[i] : 0) + (tb ? tb[j] : 0));                           \
            });                                                                                    \
    }                                                                                              \
    /* fused r-map: δ = G'(X + b) ⊙ ζ added to X's adjoint, its row sums to b's.               \
     * One loop per pair of wanted adjoints, so that each vectorises. */                           \
    TG_SIMD_CLONES static void bias_##NAME##_vjp(const tg_call *c, const void *gout,               \
                                                 void *const *gin) {                               \
        size_t d = tg_last_dim(c->out), rows = tg_rows(c->out);                                    \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *X = c->in[0]->data; const real *b = c->in[1]->data;         \
            const real *ys = c->out->data; const real *g = gout; real *gx = gin[0];                \
            real *gb = gin[1]; const real f0 = (real)c->attr.f[0]; (void)f0;                       \
            if (gx && gb) { FUSED_R_LOOP(DERIV, gx[i] += delta; gb[j] += delta;) } else if (gx) {  \
                FUSED_R_LOOP(DERIV, gx[i] += delta;)                                               \
            } else if (gb) { FUSED_R_LOOP(DERIV, gb[j] += delta;) });                              \
    }

/* The body of the fused r-map's loops: delta = G'(X + b) ⊙ ζ at (r, j). */
#define FUSED_R_LOOP(DERIV, ...)                                                                   \
    for (size_t r = 0; r < rows; r++)                                                              \
        for (size_t j = 0; j < d; j++) {                                                           \
            size_t i = r * d + j;                                                                  \
            const real x = X[i] + b[j], y = ys[i];                                                 \
            (void)x, (void)y;                                                                      \
            const real delta = (DERIV)*g[i];                                                       \
            __VA_ARGS__                                                                            \
        }

static tg_status unary_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    tg_out_like(c, c->in[0]);
    return TG_OK;
}

static tg_status finite_beta(const tg_call *c, char *msg, size_t len) {
    if (isfinite(c->attr.f[0])) return TG_OK;
    snprintf(msg, len, "beta must be finite, got %g", c->attr.f[0]);
    return TG_ERR_VALUE;
}

static tg_status leaky_check(tg_call *c, char *msg, size_t len) {
    tg_status s = finite_beta(c, msg, len);
    return s ? s : unary_check(c, msg, len);
}

static tg_status bias_leaky_check(tg_call *c, char *msg, size_t len) {
    tg_status s = finite_beta(c, msg, len);
    return s ? s : tg_bias_check(c, msg, len);
}

/* Inputs away from 0 so that finite differences do not straddle a kink. */
static void away0_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_AWAY0);
    s->attr.f[0] = 0.01;
}

static void real_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
}

/* Fused: X away from 0 and a small b, so that X + b stays off the kink. */
static void bias_away0_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_bias_sample(m, k, TG_DOM_AWAY0, TG_DOM_SMALL, s);
    s->attr.f[0] = 0.01;
}

/* Each activation's value and derivative are a few ulps from the true
 * ones at every input, ±inf and the tails included (test_extremes): the
 * forms below avoid both overflow and cancellation. NaN propagates through
 * both maps: every selection is written so that a NaN x takes the branch
 * that returns it (NaN > 0 and NaN <= 0 are both false), because hiding a
 * NaN (relu(NaN) = 0) makes a broken network report an ordinary loss.
 * PyTorch gives relu(NaN) = NaN too; its r-map passes ζ at a NaN input,
 * ours gives NaN (the derivative there is undefined). */

/* σ(x) = 1/(1+e^{−x}), σ'(x) = σ(x)σ(−x), both from e^{−|x|} (fastmath.h). */
ACTIVATION(sigmoid, TG_SIGMOID(x), TG_DSIGMOID(x))
/* tanh' = sech² = 1 − tanh², from e^{−2|x|} (fastmath.h): 1 − y² of a
 * rounded y is exactly 0 in float32 from |x| ≈ 9.1 on (true value 5e−8 there). */
ACTIVATION(tanh, TG_TANH(x), TG_DTANH(x))
/* relu(x) = max(x, 0) (relu(−0) = −0), relu' = [x > 0] (0 at the kink), as PyTorch. */
ACTIVATION(relu, (x < 0) ? (real)0 : x, (x > 0) ? (real)1 : (x <= 0) ? (real)0 : x)
/* leaky relu with slope β for x ≤ 0 (β·NaN is NaN already). */
ACTIVATION(leaky, x > 0 ? x : f0 * x, x > 0 ? (real)1 : x <= 0 ? f0 : x)

TG_UNARY_OP(tg_op_sigmoid, "sigmoid", sigmoid, unary_check, real_sample)
TG_UNARY_OP(tg_op_tanh, "tanh", tanh, unary_check, real_sample)
TG_UNARY_OP(tg_op_relu, "relu", relu, unary_check, away0_sample)
TG_UNARY_OP(tg_op_leaky_relu, "leaky_relu", leaky, leaky_check, away0_sample)

#define BIAS_OP(VAR, NAME, FN, CHECK, SAMPLE)                                                      \
    const tg_op VAR = {.name = NAME,                                                               \
                       .arity = 2,                                                                 \
                       .check = CHECK,                                                             \
                       .forward = bias_##FN##_forward,                                             \
                       .jvp = bias_##FN##_jvp,                                                     \
                       .vjp = bias_##FN##_vjp,                                                     \
                       .sample = SAMPLE};

BIAS_OP(tg_op_bias_sigmoid, "bias_sigmoid", sigmoid, tg_bias_check, tg_bias_real_sample)
BIAS_OP(tg_op_bias_tanh, "bias_tanh", tanh, tg_bias_check, tg_bias_real_sample)
BIAS_OP(tg_op_bias_relu, "bias_relu", relu, tg_bias_check, bias_away0_sample)
BIAS_OP(tg_op_bias_leaky_relu, "bias_leaky_relu", leaky, bias_leaky_check, bias_away0_sample)

tg_status tg_sigmoid(tg_tape *t, const tg_tensor *x, tg_tensor **out) {
    return tg_apply1(t, &tg_op_sigmoid, x, NULL, out);
}

tg_status tg_tanh(tg_tape *t, const tg_tensor *x, tg_tensor **out) {
    return tg_apply1(t, &tg_op_tanh, x, NULL, out);
}

tg_status tg_relu(tg_tape *t, const tg_tensor *x, tg_tensor **out) {
    return tg_apply1(t, &tg_op_relu, x, NULL, out);
}

tg_status tg_leaky_relu(tg_tape *t, const tg_tensor *x, double beta, tg_tensor **out) {
    tg_attr a = {.f = {beta, 0}, .i = {0, 0}};
    return tg_apply1(t, &tg_op_leaky_relu, x, &a, out);
}

tg_status tg_bias_sigmoid(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_bias_sigmoid, x, b, NULL, out);
}

tg_status tg_bias_tanh(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_bias_tanh, x, b, NULL, out);
}

tg_status tg_bias_relu(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_bias_relu, x, b, NULL, out);
}

tg_status tg_bias_leaky_relu(tg_tape *t, const tg_tensor *x, const tg_tensor *b, double beta,
                             tg_tensor **out) {
    tg_attr a = {.f = {beta, 0}, .i = {0, 0}};
    return tg_apply2(t, &tg_op_bias_leaky_relu, x, b, &a, out);
}

/* ---------------------------------------------------------------- softmax */

/* Softmax and log_softmax along one axis (PyTorch's dim): attr i[1] != 0
 * takes the axis from i[0] (negative counted from the end); i[1] = 0 is
 * the last axis (tg_softmax, and a zeroed attr, as the op always was).
 * Each slice along the axis is a reduced set of tg_rgeom (ops.h), walked in
 * memory order, so the loops run contiguously whatever the axis. */
static void slices(const tg_call *c, tg_rgeom *g) {
    tg_rgeom_init(g, c->in[0], 1u << c->attr.i[0]);
}

/* S(x)_j = e^{x_j − m} / Σ_k e^{x_k − m}, m = max_k x_k (no overflow).
 * Range: a few ulps for any finite slice (float32 tails down to the
 * subnormals, fastmath.h); a −inf entry gives 0; a slice holding NaN or
 * +inf, or only −inf, gives NaN throughout, as PyTorch. m and Σ per slice
 * live in c->saved. */
TG_SIMD_CLONES static void softmax_forward(tg_call *c) {
    tg_rgeom g;
    slices(c, &g);
    TG_DISPATCH(
        c->out->dtype, const real *x = c->in[0]->data; real *y = c->out->data; real *m = c->saved;
        real *s = m + g.out_size; for (size_t o = 0; o < g.out_size; o++) {
            m[o] = -INFINITY;
            s[o] = 0;
        } TG_RFOLD(&g, real, m[o], TG_MAXF_, x[i]);
        TG_RFOLD(&g, real, s[o], TG_ADD_, (y[i] = TG_EXP(x[i] - m[o])));
        TG_RWALK(&g, y[i] /= s[o];););
}

/* out = S ⊙ (v − ⟨S, v⟩) per slice, written (acc = 0) or added (acc = 1):
 * the d-map and the r-map are the same symmetric map. */
TG_SIMD_CLONES static void softmax_map(const tg_call *c, const void *v, void *out, int acc) {
    tg_rgeom g;
    slices(c, &g);
    TG_DISPATCH(c->out->dtype, const real *S = c->out->data; const real *gv = v; real *o_ = out;
                real *dot = c->saved; memset(dot, 0, g.out_size * sizeof *dot);
                TG_RFOLD(&g, real, dot[o], TG_ADD_, S[i] * gv[i]);
                TG_RWALK(&g, o_[i] = (acc ? o_[i] : 0) + S[i] * (gv[i] - dot[o]);););
}

static void softmax_jvp(const tg_call *c, const void *const *tin, void *tout) {
    softmax_map(c, tin[0], tout, 0);
}

static void softmax_vjp(const tg_call *c, const void *gout, void *const *gin) {
    softmax_map(c, gout, gin[0], 1);
}

/* The axis, normalised into i[0] (i[1] set); scratch: 3 doubles per slice. */
static tg_status softmax_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long d = c->attr.i[1] ? c->attr.i[0] : -1;
    char b[64];
    if (x->rank < 1) {
        snprintf(msg, len, "needs rank >= 1 (a dim to normalise along), got a scalar");
        return TG_ERR_SHAPE;
    }
    if (d < -x->rank || d >= x->rank) {
        snprintf(msg, len, "dim %ld out of range for shape %s", d, SHP(b, x));
        return TG_ERR_ARG;
    }
    c->attr.i[0] = d < 0 ? d + x->rank : d;
    c->attr.i[1] = 1;
    c->saved_bytes = 3 * sizeof(double) * (x->size / x->shape[c->attr.i[0]]);
    return unary_check(c, msg, len);
}

/* A rank-3 input (m, k, n) normalised along its middle axis. */
static void dim1_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = n;
    s->domain[0] = TG_DOM_REAL;
    s->attr.i[0] = 1, s->attr.i[1] = 1;
}

const tg_op tg_op_softmax = {.name = "softmax",
                             .arity = 1,
                             .check = softmax_check,
                             .forward = softmax_forward,
                             .jvp = softmax_jvp,
                             .vjp = softmax_vjp,
                             .sample = dim1_sample};

tg_status tg_softmax(tg_tape *t, const tg_tensor *x, tg_tensor **out) {
    return tg_apply1(t, &tg_op_softmax, x, NULL, out);
}

tg_status tg_softmax_dim(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out) {
    tg_attr a = {.f = {0, 0}, .i = {dim, 1}};
    return tg_apply1(t, &tg_op_softmax, x, &a, out);
}

/* log_softmax(x)_j = (x_j − m) − log Σ_k e^{x_k − m} (tg_lse_reduce: m never
 * added back, exact to a few ulps at logits of 1e16; the sum in double).
 * A −inf entry gives −inf; a slice holding NaN or +inf, or only −inf, gives
 * NaN throughout, as PyTorch. With s = e^y (the softmax):
 *   d(ξ) = ξ − ⟨s, ξ⟩,   r(ζ) = ζ − s·Σζ   (per slice; adjoint: ⟨ζ, ξ − ⟨s,ξ⟩⟩ =
 *   ⟨ξ, ζ − s Σζ⟩). c->saved: the tg_lse of each slice, then a double each. */
TG_SIMD_CLONES static void log_softmax_forward(tg_call *c) {
    tg_rgeom g;
    slices(c, &g);
    tg_lse *l = c->saved;
    tg_lse_reduce(c->in[0], &g, l);
    TG_DISPATCH(c->out->dtype, const real *x = c->in[0]->data; real *y = c->out->data;
                TG_RWALK(&g, y[i] = (real)(((double)x[i] - l[o].m) - l[o].log_sum);););
}

/* Per slice: acc = ⟨s, v⟩ (jvp) or Σζ (vjp), then the elementwise step. */
TG_SIMD_CLONES static void log_softmax_jvp(const tg_call *c, const void *const *tin, void *tout) {
    tg_rgeom g;
    slices(c, &g);
    double *acc = (double *)c->saved + 2 * g.out_size;
    memset(acc, 0, g.out_size * sizeof *acc);
    TG_DISPATCH(c->out->dtype, const real *y = c->out->data; const real *t = tin[0];
                real *to = tout; TG_RFOLD(&g, double, acc[o], TG_ADD_, TG_EXP(y[i]) * t[i]);
                TG_RWALK(&g, to[i] = (real)(t[i] - acc[o]);););
}

TG_SIMD_CLONES static void log_softmax_vjp(const tg_call *c, const void *gout, void *const *gin) {
    tg_rgeom g;
    slices(c, &g);
    double *acc = (double *)c->saved + 2 * g.out_size;
    memset(acc, 0, g.out_size * sizeof *acc);
    TG_DISPATCH(c->out->dtype, const real *y = c->out->data; const real *gy = gout;
                real *gx = gin[0]; TG_RFOLD(&g, double, acc[o], TG_ADD_, gy[i]);
                TG_RWALK(&g, gx[i] += (real)(gy[i] - TG_EXP(y[i]) * acc[o]);););
}

/* The last axis of an m×k matrix (the zero attr: i[1] = 0). */
static void last_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    s->attr.i[0] = -1, s->attr.i[1] = 1;
}

const tg_op tg_op_log_softmax = {.name = "log_softmax",
                                 .arity = 1,
                                 .check = softmax_check,
                                 .forward = log_softmax_forward,
                                 .jvp = log_softmax_jvp,
                                 .vjp = log_softmax_vjp,
                                 .sample = last_sample};

tg_status tg_log_softmax(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out) {
    tg_attr a = {.f = {0, 0}, .i = {dim, 1}};
    return tg_apply1(t, &tg_op_log_softmax, x, &a, out);
}
