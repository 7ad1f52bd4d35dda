/* Regularisation (seed 001's cost_function with n examples): the penalty R
 * added to the cost 𝕁, with lp_reg = 2 or 1:
 *   l2: R(W) = λ/(2n)·Σ W²,   ∇R = λ/n·W
 *   l1: R(W) = λ/(2n)·Σ |W|,  ∇R = λ/(2n)·sign(W)  (0 at W = 0: a subgradient)
 * R is ℝᴺ → ℝ, so d R(ξ) = ⟨∇R, ξ⟩ and rR(ζ) = ζ·∇R. attr.f = {λ, n}.
 * Range: the sum accumulates in double (exact to a few ulps of the dtype
 * unless it overflows, W² beyond the dtype's range: inf); the gradients are
 * one or two rounded products; NaN propagates through both (sign(NaN) = NaN). */
#include "ops.h"

static tg_status reg_check(tg_call *c, char *msg, size_t len) {
    double lambda = c->attr.f[0], n = c->attr.f[1];
    char sw[64];
    if (!isfinite(lambda) || lambda < 0) {
        snprintf(msg, len, "lambda must be finite and >= 0, got %g (w %s)", lambda,
                 SHP(sw, c->in[0]));
        return TG_ERR_VALUE;
    }
    if (!isfinite(n) || n <= 0) {
        snprintf(msg, len, "n (the number of examples) must be finite and > 0, got %g (w %s)", n,
                 SHP(sw, c->in[0]));
        return TG_ERR_VALUE;
    }
    tg_out_scalar(c);
    return TG_OK;
}

/* R(W) = k·Σ ρ(w), k = λ/(2n), ρ(w) = w² or |w|. */
static void reg_forward(tg_call *c, int l1) {
    const tg_tensor *w = c->in[0];
    double k = c->attr.f[0] / (2 * c->attr.f[1]), s = 0;
    TG_DISPATCH(w->dtype, const real *W = w->data;
                for (size_t i = 0; i < w->size; i++) s += l1 ? fabs(W[i]) : W[i] * W[i];);
    if (w->dtype == TG_F32)
        *(float *)c->out->data = (float)(k * s);
    else
        *(double *)c->out->data = k * s;
}

/* ρ'(w)·k: λ/n·w (l2) or λ/(2n)·sign(w) (l1), with k = λ/(2n). sign(NaN) is
 * NaN, not 0: a NaN weight must show in its gradient (torch.sign(NaN) is 0,
 * so PyTorch's l1 hides it; a deliberate difference). */
#define REG_SIGN(w)        ((w) != (w) ? (w) : (real)(((w) > 0) - ((w) < 0)))
#define REG_GRAD(l1, k, w) ((l1) ? (k)*REG_SIGN(w) : 2 * (k) * (w))

/* d-map: dR(ẇ) = Σ ρ'(w)·k·ẇ. */
static void reg_jvp(const tg_call *c, const void *const *tin, void *tout, int l1) {
    const tg_tensor *w = c->in[0];
    double s = 0;
    TG_DISPATCH(w->dtype, const real *W = w->data; const real *t = tin[0];
                const real k = (real)(c->attr.f[0] / (2 * c->attr.f[1]));
                for (size_t i = 0; t && i < w->size; i++) s += REG_GRAD(l1, k, W[i]) * t[i];
                *(real *)tout = (real)s;);
}

/* r-map: W̄ += ζ·ρ'(w)·k. */
static void reg_vjp(const tg_call *c, const void *gout, void *const *gin, int l1) {
    const tg_tensor *w = c->in[0];
    TG_DISPATCH(w->dtype, const real *W = w->data; real *g = gin[0];
                const real k = (real)(c->attr.f[0] / (2 * c->attr.f[1])) * *(const real *)gout;
                for (size_t i = 0; g && i < w->size; i++) g[i] += REG_GRAD(l1, k, W[i]););
}

/* Second order (issue 18). l2: r = ζ·(λ/n)·W is linear in W, so along Ẇ
 *   vjp_dot: W̄̇ += ζ·(λ/n)·Ẇ   (R's Hessian is (λ/n)·I)
 * (reg_vjp with the tangent in place of W). l1: r = ζ·λ/(2n)·sign(W) is
 * constant on each orthant: r_const (zero off W = 0, where neither
 * derivative exists). */
static void l2_vjp_dot(const tg_call *c, const void *const *tin, const void *tout, const void *gout,
                       void *const *gin) {
    (void)tout;
    if (!gin[0] || !tin[0]) return;
    TG_DISPATCH(c->in[0]->dtype, const real *t = tin[0]; real *g = gin[0];
                const real k = (real)(c->attr.f[0] / c->attr.f[1]) * *(const real *)gout;
                for (size_t i = 0; i < c->in[0]->size; i++) g[i] += k * t[i];);
}

static void l2_forward(tg_call *c) {
    reg_forward(c, 0);
}
static void l2_jvp(const tg_call *c, const void *const *t, void *o) {
    reg_jvp(c, t, o, 0);
}
static void l2_vjp(const tg_call *c, const void *g, void *const *o) {
    reg_vjp(c, g, o, 0);
}
static void l1_forward(tg_call *c) {
    reg_forward(c, 1);
}
static void l1_jvp(const tg_call *c, const void *const *t, void *o) {
    reg_jvp(c, t, o, 1);
}
static void l1_vjp(const tg_call *c, const void *g, void *const *o) {
    reg_vjp(c, g, o, 1);
}

static void reg_sample(size_t m, size_t k, tg_sample *s, tg_domain d) {
    tg_sample_2d(s, 0, m, k, d);
    s->attr.f[0] = 0.7;       /* λ */
    s->attr.f[1] = (double)m; /* n: the batch */
}

/* l1 away from its kink at 0, so finite differences see one slope. */
static void l2_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    reg_sample(m, k, s, TG_DOM_REAL);
}

static void l1_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    reg_sample(m, k, s, TG_DOM_AWAY0);
}

const tg_op tg_op_l2 = {.name = "l2",
                        .arity = 1,
                        .check = reg_check,
                        .forward = l2_forward,
                        .jvp = l2_jvp,
                        .vjp = l2_vjp,
                        .sample = l2_sample,
                        .vjp_dot = l2_vjp_dot};
const tg_op tg_op_l1 = {.name = "l1",
                        .arity = 1,
                        .check = reg_check,
                        .forward = l1_forward,
                        .jvp = l1_jvp,
                        .vjp = l1_vjp,
                        .sample = l1_sample,
                        .r_const = 1u};

tg_status tg_l2(tg_tape *t, const tg_tensor *w, double lambda, double n, tg_tensor **out) {
    tg_attr at = {.f = {lambda, n}, .i = {0, 0}};
    return tg_apply1(t, &tg_op_l2, w, &at, out);
}

tg_status tg_l1(tg_tape *t, const tg_tensor *w, double lambda, double n, tg_tensor **out) {
    tg_attr at = {.f = {lambda, n}, .i = {0, 0}};
    return tg_apply1(t, &tg_op_l1, w, &at, out);
}
