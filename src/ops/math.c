/* Unary math (issue 14): PyTorch's elementwise functions, each y = g(x) on
 * every element with the diagonal maps of unary.h, dG(ξ) = rG(ξ) = g'(x) ⊙ ξ.
 * Beside each op: g, g', its domain, and where the form differs from the
 * textbook one and why. Outside its domain an op gives what PyTorch gives
 * (NaN, ±inf), never UB. NaN propagates through both maps: selections are
 * written so that a NaN x takes the branch that returns it (house rule of
 * activation.c: where PyTorch's r-map makes 0 of a NaN input — abs, clamp,
 * elu — ours makes NaN, the derivative there being undefined).
 * Accuracy (tests/test_extremes_math.c, in ulps against long double):
 * values and derivatives within a few ulps over the whole range, tails and
 * ±inf included; the forms avoid overflow (x³, x·φ(x)) and cancellation
 * (1 + erf(x) for x ≪ 0). float32 uses fastmath.h's exp, expm1, log, log1p,
 * erf, erfc and σ, which vectorise; the other functions are libm's. */
#include "ops.h"
#include "fastmath.h"
#include "unary.h"

static tg_status same_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    tg_out_like(c, c->in[0]);
    return TG_OK;
}

static void sample_in(size_t m, size_t k, tg_domain d, tg_sample *s) {
    tg_sample_2d(s, 0, m, k, d);
}
/* NAME_sample: an m×k input of domain DOM. */
#define SAMPLE(NAME, DOM)                                                                          \
    static void NAME##_sample(size_t m, size_t k, size_t n, tg_sample *s) {                        \
        (void)n;                                                                                   \
        sample_in(m, k, DOM, s);                                                                   \
    }
SAMPLE(real, TG_DOM_REAL)
/* log, sqrt, rsqrt: positive inputs, so that x ± 1e-6 stays in the domain. */
SAMPLE(pos, TG_DOM_POS)
/* log1p: x > −1. */
SAMPLE(prob, TG_DOM_PROB)
/* abs, reciprocal: off 0 (the kink, the pole). */
SAMPLE(away0, TG_DOM_AWAY0)

/* ---------------------------------------------------------------- plain functions */

/* −x: linear, g' = −1 (a NaN in x leaves the adjoint alone). */
TG_UNARY_MAPS(neg, -x, (real)-1)
/* e^x, g' = y. float32: fastmath's exp (1 ulp, to the subnormals and inf). */
TG_UNARY_MAPS(exp, TG_EXP(x), y)
/* log x, domain x ≥ 0 (log 0 = −inf, log of x < 0 is NaN); g' = 1/x. */
TG_UNARY_MAPS(log, TG_LOG(x), 1 / x)
/* log(1 + x), domain x ≥ −1; g' = 1/(1 + x) (1 + x is exact near −1). */
TG_UNARY_MAPS(log1p, TG_LOG1P(x), 1 / (1 + x))
/* e^x − 1; g' = e^x, not y + 1 as torch (which loses e^x below −37). */
TG_UNARY_MAPS(expm1, TG_EXPM1(x), TG_EXP(x))
/* √x, domain x ≥ 0 (√−0 = −0, NaN below); g' = ½/y (±inf at ±0, as torch). */
TG_UNARY_MAPS(sqrt, sqrt(x), (real)0.5 / y)
/* 1/√x, domain x ≥ 0 (inf at 0, −inf at −0); g' = −½y³ (torch's form). */
TG_UNARY_MAPS(rsqrt, 1 / sqrt(x), (real)-0.5 * y * y * y)
/* |x|; g' = sign x: 0 at ±0 (as torch), NaN at NaN (x − x). */
TG_UNARY_MAPS(abs, fabs(x), x > 0 ? (real)1 : x < 0 ? (real)-1 : x - x)
/* x²; g' = 2x. */
TG_UNARY_MAPS(square, x *x, 2 * x)
/* 1/x (±inf at ±0); g' = −y² (torch's form). */
TG_UNARY_MAPS(reciprocal, 1 / x, -y *y)
/* sin, cos: libm (exact argument reduction: sin(1e22) right); NaN at ±inf. */
TG_UNARY_MAPS(sin, sin(x), cos(x))
TG_UNARY_MAPS(cos, cos(x), -sin(x))
/* erf x; g' = (2/√π)·e^{−x²} (0 once x² overflows). */
TG_UNARY_MAPS(erf, TG_ERF(x), (real)1.12837916709551257 * TG_EXP(-x * x))

TG_UNARY_OP(tg_op_neg, "neg", neg, same_check, real_sample)
TG_UNARY_OP(tg_op_exp, "exp", exp, same_check, real_sample)
TG_UNARY_OP(tg_op_log, "log", log, same_check, pos_sample)
TG_UNARY_OP(tg_op_log1p, "log1p", log1p, same_check, prob_sample)
TG_UNARY_OP(tg_op_expm1, "expm1", expm1, same_check, real_sample)
TG_UNARY_OP(tg_op_sqrt, "sqrt", sqrt, same_check, pos_sample)
TG_UNARY_OP(tg_op_rsqrt, "rsqrt", rsqrt, same_check, pos_sample)
TG_UNARY_OP(tg_op_abs, "abs", abs, same_check, away0_sample)
TG_UNARY_OP(tg_op_square, "square", square, same_check, real_sample)
TG_UNARY_OP(tg_op_reciprocal, "reciprocal", reciprocal, same_check, away0_sample)
TG_UNARY_OP(tg_op_sin, "sin", sin, same_check, real_sample)
TG_UNARY_OP(tg_op_cos, "cos", cos, same_check, real_sample)
TG_UNARY_OP(tg_op_erf, "erf", erf, same_check, real_sample)

#define UNARY_API(FN)                                                                              \
    tg_status tg_##FN(tg_tape *t, const tg_tensor *x, tg_tensor **out) {                           \
        return tg_apply1(t, &tg_op_##FN, x, NULL, out);                                            \
    }
UNARY_API(neg)
UNARY_API(exp)
UNARY_API(log)
UNARY_API(log1p)
UNARY_API(expm1)
UNARY_API(sqrt)
UNARY_API(rsqrt)
UNARY_API(abs)
UNARY_API(square)
UNARY_API(reciprocal)
UNARY_API(sin)
UNARY_API(cos)
UNARY_API(erf)

/* ---------------------------------------------------------------- activations */

/* softplus with β = f0, threshold = f1 (torch's defaults 1, 20): y = x
 * where βx > threshold (torch's switch to the identity, kept so that the
 * values are torch's), else log(1 + e^{βx})/β written
 * (max(βx, 0) + log1p(e^{−|βx|}))/β, which never overflows (any threshold);
 * g' = 1 above the threshold, else σ(βx) (fastmath.h). */
#define SOFTPLUS(x)                                                                                \
    (f0 * (x) > f1 ? (x) : ((f0 * (x) > 0 ? f0 * (x) : 0) + TG_LOG1P(TG_EXP(-fabs(f0 * (x))))) / f0)
TG_UNARY_MAPS(softplus, SOFTPLUS(x), f0 *x > f1 ? (real)1 : TG_SIGMOID(f0 * x))

/* gelu, erf form: y = x·Φ(x), Φ(x) = ½·erfc(−x/√2) (torch's ½(1 + erf(x/√2))
 * cancels to 0 below x ≈ −6: the tail x·Φ(x) is kept, e.g. −7.6e−23 at −10;
 * y = −0 where Φ underflows, the limit at −inf where x·0 is NaN);
 * g' = Φ(x) + x·φ(x), φ(x) = e^{−x²/2}/√(2π), x·φ = 0 where φ underflows
 * (g'(±inf) = 1, 0 where torch gives NaN). */
#define GELU_PHI(x) ((real)0.5 * TG_ERFC((real)-0.70710678118654752 * (x)))
#define GELU_XPHI(x)                                                                               \
    (TG_EXP((real)-0.5 * (x) * (x)) == 0                                                           \
         ? 0                                                                                       \
         : (x) * (real)0.39894228040143268 * TG_EXP((real)-0.5 * (x) * (x)))
TG_UNARY_MAPS(gelu_erf, GELU_PHI(x) == 0 ? (real)-0.0 : x * GELU_PHI(x), GELU_PHI(x) + GELU_XPHI(x))

/* gelu, tanh form (torch's approximate='tanh'): ½x(1 + tanh u), u =
 * √(2/π)(x + 0.044715x³), written x·σ(2u) (the same function: ½(1 + tanh u)
 * = σ(2u)), which has no cancellation for x ≪ 0; −0 where σ underflows.
 * g' = σ(2u) + x·σ'(2u)·2u', u' = √(2/π)(1 + 0.134145x²); the second term
 * is 0 where σ'(2u) underflows (x³ may be inf there). */
#define GELU_2U(x) ((real)1.5957691216057308 * ((x) + (real)0.044715 * (x) * (x) * (x)))
#define GELU_TANH_D2(x)                                                                            \
    (TG_DSIGMOID(GELU_2U(x)) == 0 ? 0                                                              \
                                  : (x)*TG_DSIGMOID(GELU_2U(x)) * (real)1.5957691216057308 *       \
                                        (1 + (real)0.134145 * (x) * (x)))
TG_UNARY_MAPS(gelu_tanh, TG_SIGMOID(GELU_2U(x)) == 0 ? (real)-0.0 : x * TG_SIGMOID(GELU_2U(x)),
              TG_SIGMOID(GELU_2U(x)) + GELU_TANH_D2(x))

/* silu (swish): y = x·σ(x), −0 where σ underflows (the limit at −inf);
 * g' = σ(x)(1 + x·σ(−x)), with x·σ(−x) = 0 where σ(−x) underflows and
 * g' = 0 where σ(x) does (limits at ±inf, where torch gives NaN). */
TG_UNARY_MAPS(silu, TG_SIGMOID(x) == 0 ? (real)-0.0 : x * TG_SIGMOID(x),
              TG_SIGMOID(x) == 0
                  ? 0
                  : TG_SIGMOID(x) * (1 + (TG_SIGMOID(-x) == 0 ? 0 : x * TG_SIGMOID(-x))))

/* elu with α = f0: y = x for x > 0, α(e^x − 1) = α·expm1(x) below (exact
 * near 0); g' = 1 for x > 0, α·e^x for x ≤ 0 (α at 0, as torch). */
TG_UNARY_MAPS(elu, x > 0 ? x : f0 * TG_EXPM1(x), x > 0 ? (real)1 : f0 * TG_EXP(x))

/* clamp to [f0, f1] = [min, max] (an absent bound is ∓inf): min(max(x, lo),
 * hi), so hi wins when lo > hi (as torch); g' = 1 where lo ≤ x ≤ hi (the
 * bounds included, torch's convention), 0 elsewhere, NaN at NaN. */
#define CLAMP_LO(x) ((x) < f0 ? f0 : (x))
TG_UNARY_MAPS(clamp, CLAMP_LO(x) > f1 ? f1 : CLAMP_LO(x),
              x >= f0 && x <= f1 ? (real)1
              : x == x           ? (real)0
                                 : x)

/* x ** c with c = f0 (libm pow): NaN for x < 0 and a non-integer c, as
 * torch; g' = c·x^(c−1), 0 where c = 0 (torch's pow_backward). */
TG_UNARY_MAPS(pow_scalar, pow(x, f0), f0 == 0 ? (real)0 : f0 * pow(x, f0 - 1))

/* One op entry for both gelu forms: attr.i[0] = 1 selects tanh. */
static void gelu_forward(tg_call *c) {
    (c->attr.i[0] ? gelu_tanh_forward : gelu_erf_forward)(c);
}
static void gelu_jvp(const tg_call *c, const void *const *tin, void *tout) {
    (c->attr.i[0] ? gelu_tanh_jvp : gelu_erf_jvp)(c, tin, tout);
}
static void gelu_vjp(const tg_call *c, const void *gout, void *const *gin) {
    (c->attr.i[0] ? gelu_tanh_vjp : gelu_erf_vjp)(c, gout, gin);
}

/* Whether attribute v is finite in the op's dtype: the kernels read it as
 * `real`, and a double such as 1e39 is finite but float32's inf. */
static int finite_in(const tg_call *c, double v) {
    return c->in[0]->dtype == TG_F32 ? isfinite((float)v) : isfinite(v);
}

/* Whether v rounds to 0 in the op's dtype (softplus's β = 1e-50 in float32). */
static int real_zero(const tg_call *c, double v) {
    return c->in[0]->dtype == TG_F32 ? (float)v == 0 : v == 0;
}
static tg_status softplus_check(tg_call *c, char *msg, size_t len) {
    if (!finite_in(c, c->attr.f[0]) || (real_zero(c, c->attr.f[0])) || isnan(c->attr.f[1])) {
        snprintf(msg, len, "beta must be finite and nonzero and threshold not nan, got %g, %g",
                 c->attr.f[0], c->attr.f[1]);
        return TG_ERR_VALUE;
    }
    return same_check(c, msg, len);
}
static tg_status gelu_check(tg_call *c, char *msg, size_t len) {
    if (c->attr.i[0] != TG_GELU_NONE && c->attr.i[0] != TG_GELU_TANH) {
        snprintf(msg, len, "approximate must be 0 (none) or 1 (tanh), got %ld", c->attr.i[0]);
        return TG_ERR_VALUE;
    }
    return same_check(c, msg, len);
}
/* elu's α, pow_scalar's exponent c (as scale's constant: an infinite c
 * makes 0·inf = NaN derivatives). */
static tg_status finite_check(tg_call *c, char *msg, size_t len, const char *what) {
    if (!finite_in(c, c->attr.f[0])) {
        snprintf(msg, len, "%s must be finite in %s, got %g", what,
                 c->in[0]->dtype == TG_F32 ? "float32" : "float64", c->attr.f[0]);
        return TG_ERR_VALUE;
    }
    return same_check(c, msg, len);
}
static tg_status elu_check(tg_call *c, char *msg, size_t len) {
    return finite_check(c, msg, len, "alpha");
}
static tg_status pow_scalar_check(tg_call *c, char *msg, size_t len) {
    return finite_check(c, msg, len, "the exponent");
}
/* A NaN bound would make every value NaN, min = +inf or max = −inf every
 * value infinite: refused as a caller's bug (torch returns them). */
static tg_status clamp_check(tg_call *c, char *msg, size_t len) {
    /* the bounds as the kernel reads them: 1e39 is float32's +inf */
    int f32 = c->in[0]->dtype == TG_F32;
    double lo = f32 ? (float)c->attr.f[0] : c->attr.f[0],
           hi = f32 ? (float)c->attr.f[1] : c->attr.f[1];
    if (isnan(lo) || isnan(hi) || lo == INFINITY || hi == -INFINITY) {
        snprintf(msg, len, "bounds must not be nan, min +inf or max -inf, got min %g, max %g", lo,
                 hi);
        return TG_ERR_VALUE;
    }
    return same_check(c, msg, len);
}

/* softplus with β = 1.5 (threshold 20 is out of reach of N(0, 1)). */
static void softplus_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    real_sample(m, k, n, s);
    s->attr.f[0] = 1.5, s->attr.f[1] = 20;
}
/* Both gelu forms, chosen by the sizes, so test_ops's six shapes see each. */
static void gelu_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    real_sample(m, k, n, s);
    s->attr.i[0] = (long)((m + k + n) % 2);
}
static void elu_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    away0_sample(m, k, n, s);
    s->attr.f[0] = 1.5;
}
/* [−½, ½], or [−½, inf) by the sizes; inputs off ±½. */
static void clamp_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    sample_in(m, k, TG_DOM_AWAY_HALF, s);
    s->attr.f[0] = -0.5, s->attr.f[1] = (m + k + n) % 2 ? INFINITY : 0.5;
}
static void pow_scalar_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    pos_sample(m, k, n, s);
    s->attr.f[0] = 2.5;
}

TG_UNARY_OP(tg_op_softplus, "softplus", softplus, softplus_check, softplus_sample)
TG_UNARY_OP(tg_op_gelu, "gelu", gelu, gelu_check, gelu_sample)
TG_UNARY_OP(tg_op_silu, "silu", silu, same_check, real_sample)
TG_UNARY_OP(tg_op_elu, "elu", elu, elu_check, elu_sample)
TG_UNARY_OP(tg_op_clamp, "clamp", clamp, clamp_check, clamp_sample)
TG_UNARY_OP(tg_op_pow_scalar, "pow_scalar", pow_scalar, pow_scalar_check, pow_scalar_sample)

tg_status tg_softplus(tg_tape *t, const tg_tensor *x, double beta, double threshold,
                      tg_tensor **out) {
    tg_attr a = {.f = {beta, threshold}};
    return tg_apply1(t, &tg_op_softplus, x, &a, out);
}
tg_status tg_gelu(tg_tape *t, const tg_tensor *x, tg_gelu_approx approximate, tg_tensor **out) {
    tg_attr a = {.i = {(long)approximate}};
    return tg_apply1(t, &tg_op_gelu, x, &a, out);
}
UNARY_API(silu)
tg_status tg_elu(tg_tape *t, const tg_tensor *x, double alpha, tg_tensor **out) {
    tg_attr a = {.f = {alpha, 0}};
    return tg_apply1(t, &tg_op_elu, x, &a, out);
}
tg_status tg_clamp(tg_tape *t, const tg_tensor *x, double min, double max, tg_tensor **out) {
    tg_attr a = {.f = {min, max}};
    return tg_apply1(t, &tg_op_clamp, x, &a, out);
}
tg_status tg_pow_scalar(tg_tape *t, const tg_tensor *x, double c, tg_tensor **out) {
    tg_attr a = {.f = {c, 0}};
    return tg_apply1(t, &tg_op_pow_scalar, x, &a, out);
}
