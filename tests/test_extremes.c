/* Every loss and activation at the extremes, float32 and float64: huge
 * logits, ±inf (masked positions), probabilities of exactly 0 and 1, the
 * ends of the float range, NaN. Values and derivatives are compared with
 * references computed here independently, in long double (64-bit
 * significand) from textbook formulas, then rounded once to the dtype; the
 * error is counted in ulps of the dtype. And NaN must propagate through
 * every op of the table whose derivative depends on the input (issue 12):
 * relu(NaN) = 0 made a network with a NaN weight report an ordinary loss. */
#include "extremes.h"
#include "tapegrad_io.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>

/* Tolerances, in ulps of the dtype. float64: libm's exp/tanh/log1p are
 * within 1 ulp and each of our forms adds at most three correctly rounded
 * operations (+, ×, ÷: ½ ulp each), so ≤ 3; 4 gives room for the reference's
 * own rounding to double. float32: the fast exp of fastmath.h is within
 * about 1 ulp (2 in the subnormal range, where it rounds twice), the
 * polynomial tanh within 2, plus up to four rounded operations: 6. Both are
 * far below what the faults they catch give (a clamp at exp(−87): 10^6
 * ulps; 0 for 3.7e−44: the whole subnormal range; 1 − y² at |x| = 30: all). */
#define ULPS_F64 4
#define ULPS_F32 6
static int64_t tol_of(tg_dtype dt) {
    return dt == TG_F32 ? ULPS_F32 : ULPS_F64;
}

/* ---------------------------------------------------------------- activations */

/* The inputs: 0, ±0 and tiny values, both sides of tanh's polynomial switch
 * (0.625), where 1 − y² and y(1 − y) cancel (5..50), the float32 exp's old
 * clamp (±87, ±88) and its subnormal and overflow ends (±89, ±103.9, ±104),
 * float64's (±709, ±710, ±745), huge values, the float range ends, ±inf
 * and NaN. Each is taken as the dtype rounds it. */
static const double act_in[] = {
    0.0,   -0.0, 1e-30, -1e-30, 1e-6,   -1e-6,   0.5,      -0.5,     0.62,      0.63,  -0.63,  1,
    -1,    5,    -5,    9,      -9,     15,      -15,      20,       -20,       30,    -30,    50,
    -50,   87,   -87,   88.5,   -88.5,  89,      -89,      100,      -100,      103.9, -103.9, 104,
    -104,  200,  -200,  709,    -709,   710,     -710,     745,      -745,      1e4,   -1e4,   1e16,
    -1e16, 3e38, -3e38, 1e300,  -1e300, DBL_MAX, -DBL_MAX, INFINITY, -INFINITY, NAN};
#define N_ACT (sizeof act_in / sizeof act_in[0])

/* Independent references in long double: the value g(x) and g'(x). */
typedef struct act_ref {
    const char *name;
    long double (*g)(long double x, long double beta);
    long double (*dg)(long double x, long double beta);
} act_ref;

static long double sig_l(long double x, long double b) {
    (void)b;
    if (isnan(x)) return x;
    return x >= 0 ? 1 / (1 + expl(-x)) : expl(x) / (1 + expl(x));
}
/* σ' = σ(x)·σ(−x): a product of two values, not the form the library uses. */
static long double dsig_l(long double x, long double b) {
    return sig_l(x, b) * sig_l(-x, b);
}
static long double tanh_l(long double x, long double b) {
    (void)b;
    return tanhl(x);
}
/* tanh' = 1/cosh²: coshl overflows only where 1/cosh² is 0 in double too. */
static long double dtanh_l(long double x, long double b) {
    (void)b;
    long double ch = coshl(x);
    return 1 / (ch * ch);
}
static long double relu_l(long double x, long double b) {
    (void)b;
    return isnan(x) ? x : x < 0 ? 0 : x;
}
static long double drelu_l(long double x, long double b) {
    (void)b;
    return isnan(x) ? x : x > 0 ? 1 : 0;
}
static long double leaky_l(long double x, long double b) {
    return isnan(x) ? x : x > 0 ? x : b * x;
}
static long double dleaky_l(long double x, long double b) {
    return isnan(x) ? x : x > 0 ? 1 : b;
}

static const act_ref act_refs[] = {{"sigmoid", sig_l, dsig_l},
                                   {"tanh", tanh_l, dtanh_l},
                                   {"relu", relu_l, drelu_l},
                                   {"leaky_relu", leaky_l, dleaky_l}};

static int64_t worst_act[2]; /* the largest error seen per dtype, printed */

static void check_act_value(const char *what, tg_dtype dt, double x, double got, long double want) {
    int64_t u = ulps(dt, got, want);
    if (u != INT64_MAX && u > worst_act[dt]) worst_act[dt] = u;
    CHECK(u <= tol_of(dt), "%s %s at x = %.9g: %.9g, want %.9Lg (%lld ulps)", what, dt_name(dt), x,
          got, want, (long long)u);
}

/* One activation op (plain, or fused with a zero bias) on the whole input
 * row: forward, r-map with ζ = 1 and d-map with ξ = 1 at every element. */
static void check_activation(const tg_op *op, const act_ref *ref, int fused, tg_dtype dt) {
    const double beta = 0.01;
    size_t n = N_ACT, shape[2] = {1, N_ACT};
    tg_tensor *x = leaf(1, dt, 2, shape, act_in), *b = leaf(1, dt, 1, &n, NULL), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_attr attr = {.f = {beta, 0}, .i = {0, 0}};
    const tg_tensor *in[2] = {x, b};
    CHECK_OK(tg_apply(t, op, fused ? 2 : 1, in, &attr, &y));
    void *seed = ones(dt, n), *tan[2] = {ones(dt, n), NULL};
    if (y) {
        CHECK_OK(tg_backward_seed(t, y, seed));
        const tg_tensor *leaves[1] = {x};
        CHECK_OK(tg_jvp(t, 1, leaves, (const void *const *)tan));
    }
    for (size_t i = 0; y && i < n; i++) {
        const double xi = tg_get(x, i); /* the input as the dtype holds it */
        const long double bl = dt == TG_F32 ? (float)beta : beta, d = ref->dg(xi, bl);
        char what[64];
        snprintf(what, sizeof what, "%s value", op->name);
        check_act_value(what, dt, xi, tg_get(y, i), ref->g(xi, bl));
        snprintf(what, sizeof what, "%s r-map", op->name);
        check_act_value(what, dt, xi, grad_at(x, i), d);
        if (fused) { /* one row: b's adjoint is the row sum, δ itself */
            snprintf(what, sizeof what, "%s r-map (bias)", op->name);
            check_act_value(what, dt, xi, grad_at(b, i), d);
        }
        snprintf(what, sizeof what, "%s d-map", op->name);
        check_act_value(what, dt, xi, tangent_at(t, y, i), d);
    }
    free(seed), free(tan[0]);
    tg_tensor_free(x), tg_tensor_free(b);
    tg_tape_free(t);
}

static void test_activations(void) {
    for (int dt = 0; dt < 2; dt++) {
        for (size_t a = 0; a < sizeof act_refs / sizeof act_refs[0]; a++) {
            char fused_name[64];
            snprintf(fused_name, sizeof fused_name, "bias_%s", act_refs[a].name);
            check_activation(tg_op_find(act_refs[a].name), &act_refs[a], 0, (tg_dtype)dt);
            check_activation(tg_op_find(fused_name), &act_refs[a], 1, (tg_dtype)dt);
        }
    }
    printf("activations: worst error %lld ulps (f32), %lld ulps (f64)\n", (long long)worst_act[0],
           (long long)worst_act[1]);
}

/* ---------------------------------------------------------------- softmax */

/* Rows of two or three logits with their softmax in long double; NaN rows
 * (a NaN, +inf, or only −inf: as PyTorch) expected NaN throughout. */
typedef struct row3 {
    double x[3];
} row3;

static const row3 sm_rows[] = {
    {{1e16, 1e16, 1e16}}, {{0, -INFINITY, 1}},   {{-100, 0, 0}},
    {{1e30, 0, -1e30}},   {{3e38, 3e38, -3e38}}, {{-3e38, -3e38, -3e38}},
    {{-745, 0, 745}},     {{1, 2, 3}},           {{NAN, 0, 1}},
    {{0, NAN, 1}},        {{INFINITY, 0, 1}},    {{-INFINITY, -INFINITY, -INFINITY}},
};
#define N_SM (sizeof sm_rows / sizeof sm_rows[0])

/* log_softmax(x)_j in long double: (x_j − m) − log Σ e^{x_k − m}. */
static long double log_softmax_l(const double *xd, int C, int j, tg_dtype dt) {
    long double x[3], m = -INFINITY;
    for (int k = 0; k < C; k++) {
        x[k] = dt == TG_F32 ? (float)xd[k] : xd[k];
        if (isnan(x[k])) return NAN;
        m = x[k] > m ? x[k] : m;
    }
    if (isinf(m)) return NAN; /* +inf, or every logit −inf */
    long double s = 0;
    for (int k = 0; k < C; k++)
        s += expl(x[k] - m);
    return (x[j] - m) - logl(s);
}

static void test_softmax(void) {
    for (int dt = 0; dt < 2; dt++) {
        for (size_t r = 0; r < N_SM; r++) {
            size_t shape[2] = {1, 3};
            tg_tensor *x = leaf(1, (tg_dtype)dt, 2, shape, sm_rows[r].x), *y = NULL;
            tg_tape *t;
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_softmax(t, x, &y));
            for (int j = 0; y && j < 3; j++) {
                long double want = expl(log_softmax_l(sm_rows[r].x, 3, j, (tg_dtype)dt));
                int64_t u = ulps((tg_dtype)dt, tg_get(y, (size_t)j), want);
                CHECK(u <= tol_of((tg_dtype)dt), "softmax %s row %zu [%d]: %.9g want %.9Lg",
                      dt_name((tg_dtype)dt), r, j, tg_get(y, (size_t)j), want);
            }
            tg_tensor_free(x);
            tg_tape_free(t);
        }
    }
}

/* ---------------------------------------------------------------- cross-entropy */

/* Softmax cross-entropy, both forms (labels and one-hot targets), on one
 * row of C logits with label c: the loss −log_softmax(x)_c and the gradient
 * softmax(x) − onehot(c), against long double. The case: [1e16,
 * 1e16] with label 1 gave 0 and [1, 0]; right: log 2 and [½, −½]. */
static void check_ce_row(const double *xr, int C, int c, tg_dtype dt) {
    size_t shape[2] = {1, (size_t)C}, one = 1;
    double lab = c, onehot[3] = {0, 0, 0};
    onehot[c] = 1;
    for (int form = 0; form < 2; form++) {
        tg_tensor *x = leaf(1, dt, 2, shape, xr), *y = NULL;
        tg_tensor *target = form ? leaf(0, dt, 2, shape, onehot) : leaf(0, dt, 1, &one, &lab);
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(form ? tg_softmax_ce_onehot(t, x, target, &y) : tg_softmax_ce(t, x, target, &y));
        if (y) CHECK_OK(tg_backward(t, y));
        const char *name = form ? "softmax_ce_onehot" : "softmax_ce";
        long double want = -log_softmax_l(xr, C, c, dt);
        int64_t u = y ? ulps(dt, tg_get(y, 0), want) : INT64_MAX;
        CHECK(u <= tol_of(dt), "%s %s [%g, %g] label %d: loss %.17g, want %.17Lg", name,
              dt_name(dt), xr[0], xr[1], c, y ? tg_get(y, 0) : NAN, want);
        for (int j = 0; y && j < C; j++) {
            long double g = expl(log_softmax_l(xr, C, j, dt)) - (j == c);
            u = ulps(dt, grad_at(x, (size_t)j), g);
            CHECK(u <= tol_of(dt), "%s %s [%g, %g] label %d: gradient[%d] %.17g, want %.17Lg", name,
                  dt_name(dt), xr[0], xr[1], c, j, grad_at(x, (size_t)j), g);
        }
        tg_tensor_free(x), tg_tensor_free(target);
        tg_tape_free(t);
    }
}

static void test_cross_entropy(void) {
    /* Equal logits at every scale (3e38: the float32 end; 1e300 float64's). */
    const double scales[] = {1, 1e4, 1e12, 1e16, 1e30, 3e38, 1e300};
    for (int dt = 0; dt < 2; dt++) {
        for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
            if (dt == TG_F32 && scales[s] > FLT_MAX) continue;
            double eq[2] = {scales[s], scales[s]}, apart[2] = {scales[s], 0};
            check_ce_row(eq, 2, 1, (tg_dtype)dt);
            check_ce_row(apart, 2, 0, (tg_dtype)dt); /* loss log1p(e^{−s}): tiny, exact */
            check_ce_row(apart, 2, 1, (tg_dtype)dt); /* loss ≈ s */
        }
        /* A masked class (−inf) whose target is 0: finite loss, gradient 0 there. */
        const double masked[3] = {0, -INFINITY, 1};
        check_ce_row(masked, 3, 2, (tg_dtype)dt);
        check_ce_row(masked, 3, 0, (tg_dtype)dt);
        /* The float32 range ends: the difference overflows to the true inf. */
        const double ends[2] = {3e38, -3e38};
        check_ce_row(ends, 2, 0, (tg_dtype)dt);
    }
    /* The figures, spelt out: log 2 = 0.6931471806, gradient ±½. */
    size_t shape[2] = {1, 2}, one = 1;
    double xv[2] = {1e16, 1e16}, lab = 1;
    tg_tensor *x = leaf(1, TG_F32, 2, shape, xv), *l = leaf(0, TG_F32, 1, &one, &lab), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_softmax_ce(t, x, l, &y));
    CHECK_OK(tg_backward(t, y));
    CHECK(fabs(tg_get(y, 0) - 0.6931471806) < 1e-7, "loss %.10g", tg_get(y, 0));
    CHECK(grad_at(x, 0) == 0.5 && grad_at(x, 1) == -0.5, "gradient %g %g", grad_at(x, 0),
          grad_at(x, 1));
    tg_tensor_free(x), tg_tensor_free(l);
    tg_tape_free(t);
}

/* A label on the masked class is an infinite loss, not NaN; a row with NaN,
 * +inf or only −inf is NaN, as PyTorch. */
static void test_cross_entropy_nan(void) {
    const double rows[][2] = {{NAN, 0}, {0, NAN}, {INFINITY, 0}, {-INFINITY, -INFINITY}};
    for (int dt = 0; dt < 2; dt++) {
        for (size_t r = 0; r < 4; r++)
            for (int c = 0; c < 2; c++)
                check_ce_row(rows[r], 2, c, (tg_dtype)dt);
        const double masked[2] = {0, -INFINITY};
        size_t shape[2] = {1, 2}, one = 1;
        double lab = 1;
        tg_tensor *x = leaf(1, (tg_dtype)dt, 2, shape, masked), *y = NULL;
        tg_tensor *l = leaf(0, (tg_dtype)dt, 1, &one, &lab);
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_softmax_ce(t, x, l, &y));
        CHECK(y && isinf(tg_get(y, 0)) && tg_get(y, 0) > 0, "label on a masked class: %g",
              y ? tg_get(y, 0) : NAN);
        tg_tensor_free(x), tg_tensor_free(l);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- pair losses */

/* A pair loss on one element (1×1 tensors, so the mean is ℓ itself), with
 * its backward run: a and b hold the derivatives. */
typedef tg_status (*pair_fn)(tg_tape *, const tg_tensor *, const tg_tensor *, tg_tensor **);
typedef struct pair_run {
    tg_tensor *a, *b, *l;
    tg_tape *t;
} pair_run;

static pair_run run_pair(pair_fn f, double av, double bv, tg_dtype dt) {
    size_t shape[2] = {1, 1};
    pair_run r = {leaf(1, dt, 2, shape, &av), leaf(1, dt, 2, shape, &bv), NULL, NULL};
    CHECK_OK(tg_tape_new(&r.t));
    CHECK_OK(f(r.t, r.a, r.b, &r.l));
    if (r.l) CHECK_OK(tg_backward(r.t, r.l));
    return r;
}

static double loss_of(const pair_run *r) {
    return r->l ? tg_get(r->l, 0) : NAN;
}

static void pair_free(pair_run *r) {
    tg_tensor_free(r->a), tg_tensor_free(r->b);
    tg_tape_free(r->t);
}

/* ---------------------------------------------------------------- binary cross-entropy */

/* sp(x) = log(1 + eˣ), stably, in long double. */
static long double softplus_l(long double x) {
    return x > 0 ? x + log1pl(expl(-x)) : log1pl(expl(x));
}

/* a·b with 0·b = 0 (a target of 0 on an infinite logit contributes 0). */
static long double xmul_l(long double a, long double b) {
    return a == 0 ? 0 : a * b;
}

/* One element (a 1×1 tensor, so the mean is ℓ itself) of bce_logits: ℓ =
 * y·sp(−x) + (1 − y)·sp(x), ∂ₓℓ = σ(x) − y, ∂_yℓ = −x. For soft targets
 * σ(x) − y may cancel: its error is then bounded by ulps of max(σ, y)
 * instead (the `soft` flag). */
static void check_bce_logits(double xv, double yv, tg_dtype dt) {
    pair_run r = run_pair(tg_bce_logits, xv, yv, dt);
    long double X = tg_get(r.a, 0), Y = tg_get(r.b, 0);
    long double want = xmul_l(Y, softplus_l(-X)) + xmul_l(1 - Y, softplus_l(X));
    /* σ(x) − y with σ(x) = 1 − σ(−x) for x ≥ 0: (1 − y) − σ(−x), so that a
     * hard label's gradient keeps its tail (−e^{−100}, not 1 − 1). */
    long double sig = sig_l(X, 0), gx = X >= 0 ? (1 - Y) - sig_l(-X, 0) : sig - Y;
    CHECK(ulps(dt, loss_of(&r), want) <= tol_of(dt),
          "bce_logits %s x=%g y=%g: loss %.17g want %.17Lg", dt_name(dt), xv, yv, loss_of(&r),
          want);
    int soft = Y != 0 && Y != 1;
    double err = fabs(grad_at(r.a, 0) - (double)gx);
    double eps = dt == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
    int ok = soft ? err <= tol_of(dt) * eps * (double)fmaxl(sig, Y) || isnan(gx)
                  : ulps(dt, grad_at(r.a, 0), gx) <= tol_of(dt);
    CHECK(ok, "bce_logits %s x=%g y=%g: d/dx %.17g want %.17Lg", dt_name(dt), xv, yv,
          grad_at(r.a, 0), gx);
    CHECK(ulps(dt, grad_at(r.b, 0), -X) == 0, "bce_logits %s x=%g y=%g: d/dy %.17g", dt_name(dt),
          xv, yv, grad_at(r.b, 0));
    pair_free(&r);
}

/* bce on probabilities (PyTorch's clamp of log at −100): p of exactly 0
 * and 1, the smallest subnormals, 1 − ulp. */
static void check_bce(double pv, double yv, tg_dtype dt) {
    pair_run r = run_pair(tg_bce, pv, yv, dt);
    long double P = tg_get(r.a, 0), Y = tg_get(r.b, 0);
    long double L1 = fmaxl(logl(P), -100), L0 = fmaxl(log1pl(-P), -100);
    long double want = -(xmul_l(Y, L1) + xmul_l(1 - Y, L0));
    /* The derivative of this clamped ℓ: a clamped log contributes 0. */
    long double gp = (logl(P) > -100 ? -Y / P : 0) + (log1pl(-P) > -100 ? (1 - Y) / (1 - P) : 0);
    CHECK(ulps(dt, loss_of(&r), want) <= tol_of(dt), "bce %s p=%g y=%g: %.17g want %.17Lg",
          dt_name(dt), pv, yv, loss_of(&r), want);
    CHECK(ulps(dt, grad_at(r.a, 0), gp) <= tol_of(dt), "bce %s p=%g y=%g: d/dp %.17g want %.17Lg",
          dt_name(dt), pv, yv, grad_at(r.a, 0), gp);
    CHECK(isfinite(loss_of(&r)) && isfinite(grad_at(r.a, 0)), "bce %s p=%g y=%g: not finite",
          dt_name(dt), pv, yv);
    pair_free(&r);
}

static void test_binary_ce(void) {
    const double xs[] = {0, 1e-30, 1, -1, 20, -20, 30, -30, 100, -100, 1e16, -1e16, 3e38, -3e38};
    const double ys[] = {0, 1, 0.25};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
            for (size_t j = 0; j < 3; j++)
                check_bce_logits(xs[i], ys[j], (tg_dtype)dt);
    for (int dt = 0; dt < 2; dt++) {
        /* Masked logits: −inf with target 0, +inf with target 1: 0, not NaN. */
        check_bce_logits(-INFINITY, 0, (tg_dtype)dt);
        check_bce_logits(INFINITY, 1, (tg_dtype)dt);
        /* The wrong side of a mask is an infinite loss. */
        check_bce_logits(-INFINITY, 1, (tg_dtype)dt);
        check_bce_logits(NAN, 1, (tg_dtype)dt);
        check_bce_logits(1, NAN, (tg_dtype)dt);
    }
    const double ps[] = {0, 1, 1e-45, 1e-300, 1e-30, 0.5, 1 - 0x1p-24, 1 - 0x1p-53};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
            for (size_t j = 0; j < 3; j++)
                check_bce(ps[i], ys[j], (tg_dtype)dt);
}

/* ---------------------------------------------------------------- squared error */

/* mse and sse of one pair: (f − y)², derivative ±2(f − y); exact to the
 * dtype's rounding of each step while |f − y| < √max (above: inf, as the
 * true value is). */
static void test_squared(void) {
    const double pairs[][2] = {{1e150, 0},    {1e18, -1e18},        {3e38, -3e38}, {1e-200, 0},
                               {INFINITY, 0}, {INFINITY, INFINITY}, {NAN, 1},      {1, NAN}};
    for (int dt = 0; dt < 2; dt++)
        for (int sum = 0; sum < 2; sum++)
            for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
                pair_run r =
                    run_pair(sum ? tg_sse : tg_mse, pairs[i][0], pairs[i][1], (tg_dtype)dt);
                long double d = (long double)tg_get(r.a, 0) - tg_get(r.b, 0);
                CHECK(ulps((tg_dtype)dt, loss_of(&r), d * d) <= 1, "%s %s (%g, %g): %.17g",
                      sum ? "sse" : "mse", dt_name((tg_dtype)dt), pairs[i][0], pairs[i][1],
                      loss_of(&r));
                CHECK(ulps((tg_dtype)dt, grad_at(r.a, 0), 2 * d) <= 1, "%s %s (%g, %g): d/df %.17g",
                      sum ? "sse" : "mse", dt_name((tg_dtype)dt), pairs[i][0], pairs[i][1],
                      grad_at(r.a, 0));
                pair_free(&r);
            }
}

/* ---------------------------------------------------------------- NaN through every op */

/* A flat copy of every parameter's gradient, in double. */
static size_t grads_of(tg_tensor **in, int arity, unsigned nondiff, double *g, size_t cap) {
    size_t k = 0;
    for (int i = 0; i < arity; i++)
        for (size_t e = 0; !(nondiff >> i & 1u) && e < in[i]->size && k < cap; e++)
            g[k++] = grad_at(in[i], e);
    return k;
}

/* Apply op to in and run backward with a ramp ζ; gradients into g. Returns the
 * status of the apply; *has_nan says whether the output holds a NaN. */
static tg_status run_op(const tg_op *op, tg_tensor **in, const tg_attr *attr, double *g, size_t cap,
                        size_t *ng, int *has_nan) {
    tg_tape *t;
    tg_tensor *y = NULL;
    *has_nan = 0, *ng = 0;
    if (tg_tape_new(&t) != TG_OK) return TG_ERR_NOMEM;
    for (int i = 0; i < op->arity; i++)
        if (in[i]->kind == TG_PARAM) tg_zero_grad(in[i]);
    tg_status s = tg_apply(t, op, op->arity, (const tg_tensor *const *)in, attr, &y);
    if (s == TG_OK) {
        for (size_t e = 0; e < y->size; e++)
            *has_nan |= isnan(tg_get(y, e));
        void *seed = ramp(y->dtype, y->size, 0.125); /* not ones: softmax's r(1) is 0 */
        CHECK_OK(tg_backward_seed(t, y, seed));
        free(seed);
        *ng = grads_of(in, op->arity, op->nondiff, g, cap);
    }
    tg_tape_free(t);
    return s;
}

/* Whether redrawing input `which` (every input if −1) changes the
 * gradients g0 that the inputs `in` gave. */
static int redraw_changes(const tg_op *op, tg_tensor **in, const tg_attr *attr, int which,
                          const double *g0, size_t n0, tg_rng *rng) {
    enum { CAP = 256 };
    double g1[CAP];
    size_t n1;
    int nan1, changed = 0;
    tg_tensor *redraw[TG_MAX_ARITY], *mixed[TG_MAX_ARITY];
    tg_attr a2;
    if (tg_sample_inputs(op, 3, 4, 2, in[0]->dtype, rng, redraw, &a2) != TG_OK) return 0;
    for (int k = 0; k < op->arity; k++)
        mixed[k] = which < 0 || k == which ? redraw[k] : in[k];
    CHECK_OK(run_op(op, mixed, attr, g1, CAP, &n1, &nan1));
    for (size_t e = 0; e < n0 && e < n1; e++)
        changed |= g0[e] != g1[e];
    for (int k = 0; k < op->arity; k++)
        tg_tensor_free(redraw[k]);
    return changed;
}

/* Ops whose r-map routes each adjoint to one element chosen by comparing
 * values (max_pool2d): a NaN wins its window, as in PyTorch, and receives
 * that window's adjoint, a number; the other elements get nothing. There
 * the check is that the NaN took the adjoint, not that it became NaN. */
static int is_selection(const tg_op *op) {
    return strcmp(op->name, "max_pool2d") == 0;
}

/* For every op in the table, every input that carries a derivative, both
 * dtypes: a NaN put into the input must show in the output (or be refused
 * by the op's check, naming it: bce refuses p = NaN); and if the r-maps
 * depend on that input's values at all — found by redrawing it and seeing
 * the gradients change — a NaN must show in the gradients too. Linear ops
 * (add, bias_add, sum: redrawing every input changes nothing) pass ζ
 * through whatever the input, and must not make a NaN of it. (bias_relu's
 * b is neither: its r-map reads X + b, but a small b never flips a sign, so
 * a redraw changes nothing; there only the output is checked.) */
static void test_nan_through_table(void) {
    int count;
    const tg_op *const *ops = tg_op_table(&count);
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    enum { CAP = 256 };
    double g0[CAP], gn[CAP];
    for (int o = 0; o < count; o++) {
        const tg_op *op = ops[o];
        for (int dt = 0; dt < 2; dt++)
            for (int i = 0; i < op->arity; i++) {
                if (op->nondiff >> i & 1u) continue;
                tg_tensor *in[TG_MAX_ARITY];
                tg_attr attr;
                CHECK_OK(tg_sample_inputs(op, 3, 4, 2, (tg_dtype)dt, &rng, in, &attr));
                size_t n0, nn;
                int nan0, nann;
                CHECK_OK(run_op(op, in, &attr, g0, CAP, &n0, &nan0));
                /* Redraw input i, then every input, in their domains: the
                 * gradients change iff the r-maps read them. */
                int depends = redraw_changes(op, in, &attr, i, g0, n0, &rng);
                int depends_any = redraw_changes(op, in, &attr, -1, g0, n0, &rng);
                tg_set(in[i], 1, NAN);
                tg_status s = run_op(op, in, &attr, gn, CAP, &nn, &nann);
                if (s == TG_ERR_VALUE) {
                    CHECK(strstr(tg_last_error(), "nan") != NULL,
                          "%s input %d: refused NaN without naming it: %s", op->name, i,
                          tg_last_error());
                } else {
                    CHECK(s == TG_OK && nann, "%s %s input %d: NaN in, no NaN out (%s)", op->name,
                          dt_name((tg_dtype)dt), i, tg_status_name(s));
                    int gnan = 0;
                    for (size_t e = 0; e < nn; e++)
                        gnan |= isnan(gn[e]);
                    if (is_selection(op)) { /* the NaN wins its windows and takes their ζ */
                        CHECK(i == 0 && nn > 1 && gn[1] >= 1 && !gnan,
                              "%s %s: the NaN's adjoint is %g, want the ζ of its windows (>= 1)",
                              op->name, dt_name((tg_dtype)dt), nn > 1 ? gn[1] : 0.0);
                    } else {
                        CHECK(!depends || gnan,
                              "%s %s input %d: the r-map reads the input, but a NaN there gave no "
                              "NaN gradient",
                              op->name, dt_name((tg_dtype)dt), i);
                        CHECK(depends_any || !gnan,
                              "%s %s input %d: a linear r-map made a NaN gradient", op->name,
                              dt_name((tg_dtype)dt), i);
                    }
                }
                for (int k = 0; k < op->arity; k++)
                    tg_tensor_free(in[k]);
            }
    }
}

/* ---------------------------------------------------------------- NaN in a network */

/* The network: 2-2-1, relu, bce_logits, first weight NaN. The loss
 * must be NaN (relu(NaN) = 0 made it 0.6444), and anomaly mode names the op
 * that made the first NaN: the matmul. */
static void test_nan_network(void) {
    for (int dt = 0; dt < 2; dt++) {
        size_t xs[2] = {1, 2}, w1s[2] = {2, 2}, w2s[2] = {2, 1}, ys[2] = {1, 1}, bs = 2;
        double xv[2] = {0.5, -1}, w1v[4] = {NAN, 0.3, -0.2, 0.4}, w2v[2] = {0.7, -0.5}, yv[1] = {1},
               bv[2] = {0.1, -0.1};
        tg_tensor *x = leaf(0, (tg_dtype)dt, 2, xs, xv), *w1 = leaf(1, (tg_dtype)dt, 2, w1s, w1v);
        tg_tensor *w2 = leaf(1, (tg_dtype)dt, 2, w2s, w2v), *y = leaf(0, (tg_dtype)dt, 2, ys, yv);
        tg_tensor *b1 = leaf(1, (tg_dtype)dt, 1, &bs, bv);
        for (int anomaly = 0; anomaly < 2; anomaly++) {
            tg_tape *t;
            tg_tensor *h, *a, *z, *l = NULL;
            CHECK_OK(tg_tape_new(&t));
            tg_tape_detect_anomaly(t, anomaly);
            tg_status s = tg_matmul(t, x, w1, &h);
            if (!anomaly) {
                CHECK_OK(s);
                CHECK_OK(tg_bias_add(t, h, b1, &a));
                CHECK_OK(tg_relu(t, a, &h));
                CHECK_OK(tg_matmul(t, h, w2, &z));
                CHECK_OK(tg_bce_logits(t, z, y, &l));
                CHECK(l && isnan(tg_get(l, 0)), "%s: loss %g, want NaN", dt_name((tg_dtype)dt),
                      l ? tg_get(l, 0) : 0);
                if (l) CHECK_OK(tg_backward(t, l));
                CHECK(isnan(grad_at(w1, 0)), "the NaN weight's gradient is %g", grad_at(w1, 0));
            } else {
                CHECK(s == TG_ERR_NUMERIC && strstr(tg_last_error(), "(matmul) produced NaN"),
                      "anomaly: %s: %s", tg_status_name(s), tg_last_error());
            }
            tg_tape_free(t);
        }
        tg_tensor_free(x), tg_tensor_free(w1), tg_tensor_free(w2), tg_tensor_free(y),
            tg_tensor_free(b1);
    }
}

/* NaN times an exact zero is NaN in every matrix-product path (a batch of 1
 * takes gemv and ger; reference BLAS skips zero multipliers there, which
 * would hide the NaN), forward and both r-maps. */
static void test_nan_matmul(void) {
    const size_t ms[] = {1, 2, 5};
    for (int dt = 0; dt < 2; dt++)
        for (size_t mi = 0; mi < 3; mi++) {
            size_t m = ms[mi], as[2] = {m, 3}, bs[2] = {3, 4};
            tg_tensor *a = leaf(1, (tg_dtype)dt, 2, as, NULL),
                      *b = leaf(1, (tg_dtype)dt, 2, bs, NULL);
            tg_set(a, 0, NAN); /* row 0 of a: NaN, 0, 0; b all zero */
            tg_tape *t;
            tg_tensor *y = NULL;
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_matmul(t, a, b, &y));
            for (size_t j = 0; y && j < 4; j++)
                CHECK(isnan(tg_get(y, j)), "matmul %s m=%zu: NaN·0 gave %g at [0,%zu]",
                      dt_name((tg_dtype)dt), m, tg_get(y, j), j);
            /* ζ with a NaN at [0,0]: b's adjoint aᵀζ row 0 holds NaN... and
             * a's adjoint ζbᵀ = NaN·0 in row 0. */
            void *seed = ones((tg_dtype)dt, y ? y->size : 1);
            if (dt == TG_F32)
                ((float *)seed)[0] = NAN;
            else
                ((double *)seed)[0] = NAN;
            if (y) CHECK_OK(tg_backward_seed(t, y, seed));
            for (size_t k = 0; k < 3; k++)
                CHECK(isnan(grad_at(a, k)), "matmul %s m=%zu: a's adjoint [0,%zu] = %g",
                      dt_name((tg_dtype)dt), m, k, grad_at(a, k));
            CHECK(isnan(grad_at(b, 0)), "matmul %s m=%zu: b's adjoint [0,0] = %g",
                  dt_name((tg_dtype)dt), m, grad_at(b, 0));
            free(seed);
            tg_tensor_free(a), tg_tensor_free(b);
            tg_tape_free(t);
        }
}

/* A product's result buffer is arena memory reused from the step before:
 * a NaN left there must not reach the next step's result (BLAS with beta 0
 * must not read it). Batch 1 (gemv) and a general product, both dtypes. */
static void test_nan_reused_buffer(void) {
    for (int dt = 0; dt < 2; dt++)
        for (size_t m = 1; m <= 3; m += 2) {
            size_t as[2] = {m, 3}, bs[2] = {3, 4};
            tg_tensor *a = leaf(0, (tg_dtype)dt, 2, as, NULL),
                      *b = leaf(0, (tg_dtype)dt, 2, bs, NULL);
            tg_tensor *y = NULL;
            tg_tape *t;
            CHECK_OK(tg_tape_new(&t));
            tg_set(a, 0, NAN);
            CHECK_OK(tg_matmul(t, a, b, &y)); /* y's buffer now holds NaN */
            tg_tape_reset(t);
            tg_set(a, 0, 1);
            CHECK_OK(tg_matmul(t, a, b, &y)); /* the same buffer, b = 0: y = 0 */
            for (size_t e = 0; y && e < y->size; e++)
                CHECK(tg_get(y, e) == 0, "%s m=%zu: y[%zu] = %g after a NaN step",
                      dt_name((tg_dtype)dt), m, e, tg_get(y, e));
            tg_tensor_free(a), tg_tensor_free(b);
            tg_tape_free(t);
        }
}

/* Metrics: a row of NaN logits has no prediction; argmax by comparisons
 * alone skipped it and scored a NaN model like a live one. */
static void test_nan_metrics(void) {
    size_t shape[2] = {2, 3}, bshape[2] = {2, 1};
    const double v[6] = {NAN, 1, 0, 0, 2, 1}, bv[2] = {NAN, 1}, lab[2] = {1, 1};
    tg_tensor *l = leaf(0, TG_F32, 2, shape, v), *b = leaf(0, TG_F64, 2, bshape, bv);
    CHECK(isnan(tg_accuracy(l, lab, 2)), "accuracy with a NaN row: %g", tg_accuracy(l, lab, 2));
    CHECK(isnan(tg_accuracy(b, lab, 2)), "binary accuracy with a NaN logit: %g",
          tg_accuracy(b, lab, 2));
    CHECK(tg_accuracy(l, lab + 1, 0) != tg_accuracy(l, lab + 1, 0), "no rows: NaN");
    uint64_t conf[9] = {0};
    tg_confusion_add(l, lab, 2, 3, conf);
    uint64_t total = 0;
    for (int i = 0; i < 9; i++)
        total += conf[i];
    CHECK(total == 1 && conf[1 * 3 + 1] == 1, "confusion counted %llu rows",
          (unsigned long long)total);
    tg_tensor_free(l), tg_tensor_free(b);
}

int main(void) {
    test_activations();
    test_softmax();
    test_cross_entropy();
    test_cross_entropy_nan();
    test_binary_ce();
    test_squared();
    test_nan_through_table();
    test_nan_network();
    test_nan_matmul();
    test_nan_metrics();
    test_nan_reused_buffer();
    return check_summary();
}
