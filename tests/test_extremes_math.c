/* The unary math ops (issue 14) at the extremes, float32 and float64, as
 * test_extremes.c does it for the activations: each op's value, r-map
 * (ζ = 1) and d-map (ξ = 1) at 0, ±0, subnormals, tiny and huge values,
 * the float range ends, ±inf, NaN and each domain's edges (log 0 = −inf,
 * log(−1) = NaN, √−0 = −0, log1p(−1) = −inf), against references computed
 * here in long double (64-bit significand) from textbook formulas, then
 * rounded once to the dtype; the error is counted in ulps of the dtype. */
#include "extremes.h"

#include <float.h>

/* Tolerances, in ulps of the dtype. float64: libm's functions are within 1
 * ulp and each form adds at most a few correctly rounded operations (½ ulp
 * each): 4, as test_extremes. float32: libm's float functions are within 1
 * ulp (2 for erff, erfcf, log1pf, expm1f), fastmath's exp and σ within 2
 * to 3, plus up to four rounded operations: 8. Individual ops that compose
 * more (gelu's derivatives: Φ + xφ, each a few ulps; rsqrt's −½y³: three
 * times y's error plus two roundings) get the sum of their parts, said
 * where they are listed. A wrong tail, a clamp, a 0·inf NaN or a
 * cancellation errs by millions of ulps or gives NaN. */
#define ULPS_F64 4
#define ULPS_F32 8

/* The inputs: act_in of test_extremes and the subnormals of both dtypes,
 * the edges of log, log1p, sqrt (0, −0, −1), and where forms switch
 * (softplus's threshold 20, gelu's tails from −6 on, silu's root). */
static const double in_x[] = {
    0.0,    -0.0,   1e-30,   -1e-30,  1e-6,     -1e-6,    0.5,       -0.5,  0.62,  0.63,   -0.63,
    1,      -1,     2,       -2,      3,        -3,       5,         -5,    6,     -6,     9,
    -9,     10,     -10,     15,      -15,      19.9,     20.1,      -20,   30,    -30,    38,
    -38,    50,     -50,     87,      -87,      88.5,     -88.5,     89,    -89,   100,    -100,
    103.9,  -103.9, 104,     -104,    200,      -200,     709,       -709,  710,   -710,   745,
    -745,   1e4,    -1e4,    1e16,    -1e16,    1e22,     3e38,      -3e38, 1e300, -1e300, 1e-40,
    -1e-40, 1e-310, -1e-310, DBL_MAX, -DBL_MAX, INFINITY, -INFINITY, NAN};
#define N_X (sizeof in_x / sizeof in_x[0])

typedef long double ld;

/* One op: name, attributes, value and derivative in long double, and its
 * tolerances in ulps (0: the defaults). */
typedef struct math_ref {
    const char *name;
    tg_attr attr;
    ld (*g)(ld x);
    ld (*dg)(ld x);
    int ulps32, ulps64;
    /* Extra ulps allowed at x in dtype dt (NULL: none): the condition of
     * the op's form where it exceeds the few roundings above (below). */
    double (*cond)(ld x, tg_dtype dt);
} math_ref;

static ld neg_l(ld x) {
    return -x;
}
static ld dneg_l(ld x) {
    (void)x;
    return -1;
}
static ld exp_l(ld x) {
    return expl(x);
}
static ld log_l(ld x) {
    return logl(x);
}
static ld dlog_l(ld x) {
    return 1 / x;
}
static ld log1p_l(ld x) {
    return log1pl(x);
}
static ld dlog1p_l(ld x) {
    return 1 / (1 + x);
}
static ld expm1_l(ld x) {
    return expm1l(x);
}
static ld sqrt_l(ld x) {
    return sqrtl(x);
}
static ld dsqrt_l(ld x) {
    return 0.5L / sqrtl(x);
}
static ld rsqrt_l(ld x) {
    return 1 / sqrtl(x);
}
/* −½x^{−3/2} as torch's −½y³, whose sign at −0 (y = −inf) it keeps: +inf. */
static ld drsqrt_l(ld x) {
    ld y = 1 / sqrtl(x);
    return -0.5L * y * y * y;
}
static ld abs_l(ld x) {
    return fabsl(x);
}
static ld dabs_l(ld x) {
    return isnan(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
}
static ld square_l(ld x) {
    return x * x;
}
static ld dsquare_l(ld x) {
    return 2 * x;
}
static ld recip_l(ld x) {
    return 1 / x;
}
static ld drecip_l(ld x) {
    return -1 / (x * x);
}
static ld sin_l(ld x) {
    return sinl(x);
}
static ld cos_l(ld x) {
    return cosl(x);
}
static ld dcos_l(ld x) {
    return -sinl(x);
}
static ld erf_l(ld x) {
    return erfl(x);
}
static ld derf_l(ld x) {
    return 2 / sqrtl(3.14159265358979323846264338327950288L) * expl(-x * x);
}
/* softplus, torch's (β = 1, threshold 20): x above 20, log(1 + e^x). */
static ld softplus_l(ld x) {
    if (isnan(x)) return x;
    return x > 20 ? x : x > 0 ? x + log1pl(expl(-x)) : log1pl(expl(x));
}
static ld dsoftplus_l(ld x) {
    if (isnan(x)) return x;
    return x > 20 ? 1 : 1 / (1 + expl(-x));
}
/* Φ(x) and φ(x) in long double. */
static ld Phi_l(ld x) {
    return 0.5L * erfcl(-x / sqrtl(2));
}
static ld phi_l(ld x) {
    return expl(-x * x / 2) / sqrtl(2 * 3.14159265358979323846264338327950288L);
}
static ld gelu_l(ld x) {
    if (isinf(x)) return x > 0 ? x : -0.0L; /* the limits */
    return x * Phi_l(x);
}
static ld dgelu_l(ld x) {
    if (isinf(x)) return x > 0 ? 1 : 0;
    return Phi_l(x) + x * phi_l(x);
}
/* tanh form: ½x(1 + tanh u) = x/(1 + e^{−2u}), u = √(2/π)(x + 0.044715x³). */
static ld gelu_u(ld x) {
    return sqrtl(2 / 3.14159265358979323846264338327950288L) * (x + 0.044715L * x * x * x);
}
static ld gelut_l(ld x) {
    if (isinf(x)) return x > 0 ? x : -0.0L;
    return x / (1 + expl(-2 * gelu_u(x)));
}
static ld dgelut_l(ld x) {
    if (isinf(x)) return x > 0 ? 1 : 0;
    ld u = gelu_u(x), th = tanhl(u),
       du = sqrtl(2 / 3.14159265358979323846264338327950288L) * (1 + 3 * 0.044715L * x * x);
    ld s = 1 / (1 + expl(-2 * u)), sech2 = 1 / (coshl(u) * coshl(u));
    (void)th;
    return s + 0.5L * x * sech2 * du;
}
static ld silu_l(ld x) {
    if (isinf(x)) return x > 0 ? x : -0.0L;
    return x / (1 + expl(-x));
}
static ld dsilu_l(ld x) {
    if (isinf(x)) return x > 0 ? 1 : 0;
    ld s = 1 / (1 + expl(-x));
    return s + x * s * (1 - s);
}
/* elu with α = 1.5. */
static ld elu_l(ld x) {
    return isnan(x) ? x : x > 0 ? x : 1.5L * expm1l(x);
}
static ld delu_l(ld x) {
    return isnan(x) ? x : x > 0 ? 1 : 1.5L * expl(x);
}
/* clamp to [−0.5, 2]. */
static ld clamp_l(ld x) {
    return isnan(x) ? x : x < -0.5L ? -0.5L : x > 2 ? 2 : x;
}
static ld dclamp_l(ld x) {
    return isnan(x) ? x : x >= -0.5L && x <= 2 ? 1 : 0;
}
/* x ** 2.5. */
static ld pow_l(ld x) {
    return powl(x, 2.5L);
}
static ld dpow_l(ld x) {
    return 2.5L * powl(x, 1.5L);
}

/* Conditioning of the tails (the extra ulps allowed, in units of the
 * dtype's ulp). The inputs are exact, but each form rounds an argument
 * once (x/√2, x², u) before a function whose relative change is the
 * argument's relative change times its condition number |w·f'(w)/f(w)|:
 * e^{−x²} and erfc(w) have 2w², so erf' and gelu's Φ tail err by up to
 * x² ulps (200 at x = −30, where torch's form gives 0); σ(2u) in gelu's
 * tanh form has |2u|, times the three roundings of u. Near the root of a
 * derivative (gelu' at −0.75, silu' at −1.28) two terms of opposite sign
 * cancel: the error grows as Σ|terms|/|sum|. A subnormal σ(x) (silu below
 * −87 in float32, −708 in float64) holds ½ ulp of absolute error, which x
 * multiplies: |x| ulps of the subnormal result. Each bound is what the
 * form guarantees; a wrong branch, a lost tail or a NaN errs by far more
 * (a tail lost to cancellation is all of the value: 2^52 ulps). */
static double subnormal_extra(ld v, ld x, tg_dtype dt) {
    return fabsl(v) < (dt == TG_F32 ? FLT_MIN : DBL_MIN) ? (double)fabsl(x) : 0;
}
static double erf_cond(ld x, tg_dtype dt) {
    (void)dt;
    return isfinite(x) ? (double)(x * x) : 0;
}
static double gelu_cond(ld x, tg_dtype dt) {
    if (!isfinite(x)) return 0;
    ld t1 = Phi_l(x), t2 = x * phi_l(x), d = fabsl(t1 + t2);
    return (double)(x * x + 4 * (fabsl(t1) + fabsl(t2)) / (d > 0 ? d : 1)) +
           subnormal_extra(gelu_l(x), x, dt);
}
static double gelut_cond(ld x, tg_dtype dt) {
    if (!isfinite(x)) return 0;
    ld u = gelu_u(x), s = 1 / (1 + expl(-2 * u)), d = fabsl(dgelut_l(x));
    ld t2 = fabsl(s - dgelut_l(x));
    return (double)(3 * fabsl(2 * u) + 4 * (s + t2) / (d > 0 ? d : 1)) +
           subnormal_extra(gelut_l(x), x, dt);
}
static double silu_cond(ld x, tg_dtype dt) {
    if (!isfinite(x)) return 0;
    ld s = 1 / (1 + expl(-x)), d = fabsl(dsilu_l(x)), t2 = fabsl(x * s * (1 - s));
    return (double)(4 * (s + t2) / (d > 0 ? d : 1)) + subnormal_extra(silu_l(x), x, dt);
}

static const math_ref refs[] = {
    {"neg", {.f = {0, 0}}, neg_l, dneg_l, 0, 0, NULL},
    {"exp", {.f = {0, 0}}, exp_l, exp_l, 0, 0, NULL},
    {"log", {.f = {0, 0}}, log_l, dlog_l, 0, 0, NULL},
    {"log1p", {.f = {0, 0}}, log1p_l, dlog1p_l, 0, 0, NULL},
    {"expm1", {.f = {0, 0}}, expm1_l, exp_l, 0, 0, NULL},
    {"sqrt", {.f = {0, 0}}, sqrt_l, dsqrt_l, 0, 0, NULL},
    /* y within 1 ulp, y³ triples it, two products: 5 (float64) */
    {"rsqrt", {.f = {0, 0}}, rsqrt_l, drsqrt_l, 0, 5, NULL},
    {"abs", {.f = {0, 0}}, abs_l, dabs_l, 0, 0, NULL},
    {"square", {.f = {0, 0}}, square_l, dsquare_l, 0, 0, NULL},
    {"reciprocal", {.f = {0, 0}}, recip_l, drecip_l, 0, 0, NULL},
    {"sin", {.f = {0, 0}}, sin_l, cos_l, 0, 0, NULL},
    {"cos", {.f = {0, 0}}, cos_l, dcos_l, 0, 0, NULL},
    {"erf", {.f = {0, 0}}, erf_l, derf_l, 0, 0, erf_cond},
    {"softplus", {.f = {1, 20}}, softplus_l, dsoftplus_l, 0, 0, NULL},
    {"gelu", {.f = {0, 0}}, gelu_l, dgelu_l, 0, 0, gelu_cond},
    {"gelu", {.i = {1}}, gelut_l, dgelut_l, 0, 0, gelut_cond},
    {"silu", {.f = {0, 0}}, silu_l, dsilu_l, 0, 0, silu_cond},
    {"elu", {.f = {1.5, 0}}, elu_l, delu_l, 0, 0, NULL},
    {"clamp", {.f = {-0.5, 2}}, clamp_l, dclamp_l, 0, 0, NULL},
    {"pow_scalar", {.f = {2.5, 0}}, pow_l, dpow_l, 0, 0, NULL},
};
#define N_REFS (sizeof refs / sizeof refs[0])

static int64_t worst[N_REFS][2][2]; /* [op][dtype][value, derivative] */

static void check_value(const math_ref *r, const char *what, tg_dtype dt, double x, double got,
                        ld want, int64_t *w) {
    int64_t tol =
        dt == TG_F32 ? (r->ulps32 ? r->ulps32 : ULPS_F32) : (r->ulps64 ? r->ulps64 : ULPS_F64);
    if (r->cond) tol += (int64_t)fmin(ceil(r->cond(x, dt)), 1e6); /* capped: no overflow */
    int64_t u = ulps(dt, got, want);
    if (u != INT64_MAX && u > *w) *w = u;
    CHECK(u <= tol, "%s%s %s %s at x = %.9g: %.9g, want %.9Lg (%lld ulps)", r->name,
          r->attr.i[0] ? " (tanh)" : "", what, dt_name(dt), x, got, want, (long long)u);
}

/* Where the true derivative is one of the ends of the range and the
 * rounded x sits on a pole, compare its value as a double (its own ulp):
 * ulps() handles ±inf and NaN already. */
static void check_op(size_t k, tg_dtype dt) {
    const math_ref *r = &refs[k];
    const tg_op *op = tg_op_find(r->name);
    CHECK(op != NULL, "%s not in the table", r->name);
    if (!op) return;
    size_t shape[2] = {1, N_X};
    tg_tensor *x = leaf(1, dt, 2, shape, in_x), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    const tg_tensor *in[1] = {x};
    CHECK_OK(tg_apply(t, op, 1, in, &r->attr, &y));
    void *seed = ones(dt, N_X), *tan = ones(dt, N_X);
    if (y) {
        CHECK_OK(tg_backward_seed(t, y, seed));
        const tg_tensor *leaves[1] = {x};
        CHECK_OK(tg_jvp(t, 1, leaves, (const void *const *)&tan));
    }
    for (size_t i = 0; y && i < N_X; i++) {
        const double xi = tg_get(x, i); /* the input as the dtype holds it */
        check_value(r, "value", dt, xi, tg_get(y, i), r->g(xi), &worst[k][dt][0]);
        check_value(r, "r-map", dt, xi, grad_at(x, i), r->dg(xi), &worst[k][dt][1]);
        check_value(r, "d-map", dt, xi, tangent_at(t, y, i), r->dg(xi), &worst[k][dt][1]);
    }
    free(seed), free(tan);
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* The domain edges spelt out (the comparisons above count −0 and +0 as
 * one value): √−0 = −0, log(±0) = −inf, log(−1) = NaN, log1p(−1) = −inf,
 * rsqrt(−0) = −inf, reciprocal(−0) = −inf, and gelu, silu at −inf = −0. */
static void test_edges(void) {
    for (int dt = 0; dt < 2; dt++) {
        static const struct {
            const char *name;
            double x, want;
        } e[] = {{"sqrt", -0.0, -0.0},      {"log", 0.0, -INFINITY},
                 {"log", -0.0, -INFINITY},  {"log", -1, NAN},
                 {"log1p", -1, -INFINITY},  {"log1p", -2, NAN},
                 {"sqrt", -1, NAN},         {"rsqrt", -0.0, -INFINITY},
                 {"rsqrt", 0.0, INFINITY},  {"reciprocal", -0.0, -INFINITY},
                 {"gelu", -INFINITY, -0.0}, {"silu", -INFINITY, -0.0},
                 {"neg", 0.0, -0.0},        {"abs", -0.0, 0.0},
                 {"exp", -INFINITY, 0.0}};
        for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
            size_t one = 1;
            tg_tensor *x = leaf(0, (tg_dtype)dt, 1, &one, &e[i].x), *y = NULL;
            tg_tape *t;
            CHECK_OK(tg_tape_new(&t));
            const tg_tensor *in[1] = {x};
            tg_attr a = {.f = {0, 0}};
            CHECK_OK(tg_apply(t, tg_op_find(e[i].name), 1, in, &a, &y));
            double v = y ? tg_get(y, 0) : 0;
            CHECK((isnan(v) && isnan(e[i].want)) ||
                      (v == e[i].want && signbit(v) == signbit(e[i].want)),
                  "%s(%g) %s = %g, want %g", e[i].name, e[i].x, dt_name((tg_dtype)dt), v,
                  e[i].want);
            tg_tensor_free(x);
            tg_tape_free(t);
        }
    }
}

/* Values from PyTorch 1.13 in float64, the documented semantics in a few
 * points (inputs where our forms and torch's agree):
 *   torch.nn.functional.softplus(torch.tensor([1.0, 25.0], dtype=torch.float64),
 *       beta=2, threshold=20) -> [1.0634640055214863, 25.0]
 *   torch.nn.functional.gelu(torch.tensor([1.0], dtype=torch.float64))
 *       -> 0.841344746068543
 *   torch.nn.functional.gelu(torch.tensor([1.0], dtype=torch.float64),
 *       approximate='tanh') -> 0.8411919906082768
 *   torch.nn.functional.elu(torch.tensor([-1.0], dtype=torch.float64), 0.5)
 *       -> -0.31606027941427883
 * Tolerance 1 ulp-ish (4e-16 relative): libm against torch's own loops. */
static void test_torch_values(void) {
    static const struct {
        const char *name;
        tg_attr a;
        double x, want;
    } v[] = {{"softplus", {.f = {2, 20}}, 1.0, 1.0634640055214863},
             {"softplus", {.f = {2, 20}}, 25.0, 25.0},
             {"gelu", {.f = {0, 0}}, 1.0, 0.841344746068543},
             {"gelu", {.i = {1}}, 1.0, 0.8411919906082768},
             {"elu", {.f = {0.5, 0}}, -1.0, -0.31606027941427883}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t one = 1;
        tg_tensor *x = leaf(0, TG_F64, 1, &one, &v[i].x), *y = NULL;
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        const tg_tensor *in[1] = {x};
        CHECK_OK(tg_apply(t, tg_op_find(v[i].name), 1, in, &v[i].a, &y));
        if (y) CHECK_CLOSE(tg_get(y, 0), v[i].want, 4e-16);
        tg_tensor_free(x);
        tg_tape_free(t);
    }
}

/* Bad attributes are refused with TG_ERR_VALUE naming them. */
static void test_attr_errors(void) {
    size_t one = 1;
    double v = 1;
    tg_tensor *x = leaf(0, TG_F64, 1, &one, &v), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_softplus(t, x, 0, 20, &y), TG_ERR_VALUE, "softplus: beta must be finite");
    EXPECT_ERR(tg_softplus(t, x, 1, NAN, &y), TG_ERR_VALUE, "threshold not nan");
    EXPECT_ERR(tg_gelu(t, x, (tg_gelu_approx)2, &y), TG_ERR_VALUE, "gelu: approximate must be");
    EXPECT_ERR(tg_elu(t, x, INFINITY, &y), TG_ERR_VALUE, "elu: alpha must be finite");
    EXPECT_ERR(tg_clamp(t, x, NAN, 1, &y), TG_ERR_VALUE, "clamp: bounds must not be nan");
    EXPECT_ERR(tg_clamp(t, x, INFINITY, INFINITY, &y), TG_ERR_VALUE, "min +inf");
    EXPECT_ERR(tg_clamp(t, x, 0, -INFINITY, &y), TG_ERR_VALUE, "max -inf");
    EXPECT_ERR(tg_pow_scalar(t, x, NAN, &y), TG_ERR_VALUE, "pow_scalar: the exponent must be");
    /* Finite as a double, infinite as the float32 the kernels read (the
     * review found pow_scalar(0.5, 1e39) giving a NaN gradient). */
    float fv = 0.5f;
    tg_tensor *x32 = leaf(0, TG_F32, 1, &one, NULL);
    memcpy(x32->data, &fv, sizeof fv);
    EXPECT_ERR(tg_pow_scalar(t, x32, 1e39, &y), TG_ERR_VALUE, "must be finite in float32");
    EXPECT_ERR(tg_elu(t, x32, -1e39, &y), TG_ERR_VALUE, "elu: alpha must be finite in float32");
    EXPECT_ERR(tg_softplus(t, x32, 1e39, 20, &y), TG_ERR_VALUE, "softplus: beta must be");
    EXPECT_ERR(tg_softplus(t, x32, 1e-50, 20, &y), TG_ERR_VALUE, "softplus: beta must be");
    EXPECT_ERR(tg_clamp(t, x32, 1e39, 2e39, &y), TG_ERR_VALUE, "min +inf");
    CHECK_OK(tg_pow_scalar(t, x, 1e39, &y)); /* finite in float64: accepted */
    tg_tensor_free(x32);
    CHECK(tg_tape_size(t) == 1, "refused calls recorded");
    /* Absent bounds: ±inf. min > max: max everywhere, derivative 0. */
    CHECK_OK(tg_clamp(t, x, -INFINITY, INFINITY, &y));
    CHECK(y && tg_get(y, 0) == 1, "clamp with no bounds");
    CHECK_OK(tg_clamp(t, x, 3, 2, &y));
    CHECK(y && tg_get(y, 0) == 2, "clamp with min > max gives max");
    tg_tensor_free(x);
    tg_tape_free(t);
}

int main(void) {
    for (size_t k = 0; k < N_REFS; k++)
        for (int dt = 0; dt < 2; dt++)
            check_op(k, (tg_dtype)dt);
    for (size_t k = 0; k < N_REFS; k++)
        printf("%-10s%s worst ulps: value %lld/%lld, derivative %lld/%lld (f32/f64)\n",
               refs[k].name, refs[k].attr.i[0] ? " tanh" : "     ", (long long)worst[k][0][0],
               (long long)worst[k][1][0], (long long)worst[k][0][1], (long long)worst[k][1][1]);
    test_edges();
    test_torch_values();
    test_attr_errors();
    return check_summary();
}
