/* The losses of issue 14 at the extremes, float32 and float64, the way
 * test_extremes.c checks softmax_ce: values and gradients against long
 * double references in ulps of the dtype. Huge logits (1e16: log 2), −inf
 * masked classes with target weight 0 (contributing 0), ignore_index rows,
 * label smoothing with −inf logits (torch 1.13: +inf loss, finite
 * gradients), huber and smooth_l1 at the switch point, kl_div with p = 0
 * and q = 0. */
#include "extremes.h"

#include <float.h>

/* float64: log/exp within 1 ulp, the forms add a few rounded operations
 * (the smoothing sum over C ≤ 3 classes, one division by the count): 8.
 * float32: the result of double arithmetic rounded once, plus the float
 * inputs' own conversions in the gradient: 8. */
#define ULPS 8

/* ---------------------------------------------------------------- cross-entropy and nll */

typedef struct ce_case {
    int rows, C;
    double x[6];
    double y[2];
    double eps;
} ce_case;

/* The reference: per non-ignored row λ = log_softmax (ce) or x (nll),
 * 𝕃 = −Σ wⱼλⱼ with 0·λ = 0, gradient (sⱼ − wⱼ) or −wⱼ, over the count. */
static void ce_ref(const ce_case *k, int ce, tg_dtype dt, long double *loss, long double *g) {
    long double total = 0;
    int count = 0;
    for (int r = 0; r < k->rows; r++)
        count += k->y[r] != -100;
    for (int r = 0; r < k->rows; r++) {
        long double x[3], m = -INFINITY, s = 0;
        for (int j = 0; j < k->C; j++) {
            x[j] = dt == TG_F32 ? (float)k->x[r * k->C + j] : k->x[r * k->C + j];
            m = x[j] > m ? x[j] : m;
            g[r * k->C + j] = 0;
        }
        if (k->y[r] == -100) continue;
        for (int j = 0; j < k->C; j++)
            s += expl(x[j] - m);
        for (int j = 0; j < k->C; j++) {
            long double lam = ce ? (x[j] - m) - logl(s) : x[j];
            long double w = (1 - k->eps) * (j == (int)k->y[r]) + k->eps / k->C;
            total -= w == 0 ? 0 : w * lam;
            g[r * k->C + j] = ((ce ? expl(lam) : 0) - w) / count;
        }
    }
    *loss = total / count;
}

static void check_ce(const ce_case *k, int ce, tg_dtype dt) {
    size_t shape[2] = {(size_t)k->rows, (size_t)k->C}, n = (size_t)k->rows;
    tg_tensor *x = leaf(1, dt, 2, shape, k->x), *y = leaf(0, dt, 1, &n, k->y), *l = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(ce ? tg_cross_entropy(t, x, y, -100, k->eps, TG_REDUCTION_MEAN, &l)
                : tg_nll(t, x, y, -100, TG_REDUCTION_MEAN, &l));
    if (l) CHECK_OK(tg_backward(t, l));
    long double want, g[6];
    ce_ref(k, ce, dt, &want, g);
    const char *name = ce ? "cross_entropy" : "nll";
    double got = l ? tg_get(l, 0) : NAN;
    CHECK(ulps(dt, got, want) <= ULPS, "%s %s [%g, %g, ...] eps %g: loss %.17g, want %.17Lg", name,
          dt_name(dt), k->x[0], k->x[1], k->eps, got, want);
    for (int i = 0; i < k->rows * k->C; i++)
        CHECK(ulps(dt, grad_at(x, (size_t)i), g[i]) <= ULPS,
              "%s %s [%g, %g, ...] eps %g: gradient[%d] %.17g, want %.17Lg", name, dt_name(dt),
              k->x[0], k->x[1], k->eps, i, grad_at(x, (size_t)i), g[i]);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

static void test_class_losses(void) {
    const double inf = INFINITY;
    const ce_case cases[] = {
        {1, 2, {1e16, 1e16}, {1}, 0},             /* log 2, gradient ±½ */
        {1, 2, {1e16, 1e16}, {1}, 0.1},           /* torch: log 2, [0.45, −0.45] */
        {1, 2, {3e38, -3e38}, {0}, 0},            /* the float32 range ends */
        {1, 3, {0, -inf, 1}, {2}, 0},             /* a masked class, target weight 0 */
        {1, 3, {0, -inf, 1}, {0}, 0},             /* the same, another label */
        {2, 2, {0, 1, 1e16, 0}, {1, -100}, 0},    /* an ignored row leaves sum and count */
        {2, 2, {0, 1, 1, 2}, {1, -100}, 0.2},     /* torch: 0.4132616875182229 */
        {2, 3, {0, -inf, 1, 1, 2, 3}, {2, 0}, 0}, /* torch: 1.3604338259813018 */
    };
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            check_ce(&cases[i], 1, (tg_dtype)dt);
            if (cases[i].eps == 0) check_ce(&cases[i], 0, (tg_dtype)dt);
        }
    /* Label smoothing with a −inf logit: torch 1.13 gives +inf and finite
     * gradients (F.cross_entropy(x, [2, 0], label_smoothing=0.1) on
     * [[0, -inf, 1], [1, 2, 3]]). */
    static const double torch_g[6] = {0.11780404401833089,  -0.016666666666666666,
                                      -0.10113737735166423, -0.42165138008147646,
                                      0.10569756886073216,  0.31595381122074423};
    for (int dt = 0; dt < 2; dt++) {
        size_t shape[2] = {2, 3}, n = 2;
        tg_tensor *x = leaf(1, (tg_dtype)dt, 2, shape, (double[]){0, -inf, 1, 1, 2, 3});
        tg_tensor *y = leaf(0, (tg_dtype)dt, 1, &n, (double[]){2, 0}), *l = NULL;
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_cross_entropy(t, x, y, -100, 0.1, TG_REDUCTION_MEAN, &l));
        if (l) CHECK_OK(tg_backward(t, l));
        CHECK(l && tg_get(l, 0) == inf, "smoothing with -inf: %g", l ? tg_get(l, 0) : NAN);
        for (size_t i = 0; i < 6; i++)
            CHECK(fabs(grad_at(x, i) - torch_g[i]) <= (dt == TG_F32 ? 1e-7 : 1e-15),
                  "smoothing with -inf %s: gradient[%zu] %.17g, torch %.17g", dt_name((tg_dtype)dt),
                  i, grad_at(x, i), torch_g[i]);
        /* Every position ignored: 0/0 = NaN, zero gradients (torch). */
        tg_tensor *z = leaf(0, (tg_dtype)dt, 1, &n, (double[]){-100, -100});
        tg_zero_grad(x);
        CHECK_OK(tg_cross_entropy(t, x, z, -100, 0.2, TG_REDUCTION_MEAN, &l));
        if (l) CHECK_OK(tg_backward(t, l));
        CHECK(l && isnan(tg_get(l, 0)), "all ignored: %g", l ? tg_get(l, 0) : 0);
        for (size_t i = 0; i < 6; i++)
            CHECK(grad_at(x, i) == 0, "all ignored: gradient[%zu] %g", i, grad_at(x, i));
        CHECK_OK(tg_nll(t, x, z, -100, TG_REDUCTION_SUM, &l));
        CHECK(l && tg_get(l, 0) == 0, "all ignored, sum: %g", l ? tg_get(l, 0) : NAN);
        /* F.cross_entropy on (1, 2, 2) logits [[[1, 2], [3, 4]]], target
         * [[1, 0]]: 1.1269280110429727 (classes on axis 1). */
        size_t s3[3] = {1, 2, 2}, s2[2] = {1, 2};
        tg_tensor *x3 = leaf(1, (tg_dtype)dt, 3, s3, (double[]){1, 2, 3, 4});
        tg_tensor *y3 = leaf(0, (tg_dtype)dt, 2, s2, (double[]){1, 0});
        CHECK_OK(tg_cross_entropy(t, x3, y3, -100, 0, TG_REDUCTION_MEAN, &l));
        CHECK(l && ulps((tg_dtype)dt, tg_get(l, 0), 1.1269280110429727) <= ULPS, "3-D: %.17g",
              l ? tg_get(l, 0) : NAN);
        /* Errors: a target that is no class, a shape that does not fit. */
        tg_tensor *bad = leaf(0, (tg_dtype)dt, 1, &n, (double[]){3, 0});
        EXPECT_ERR(tg_cross_entropy(t, x, bad, -100, 0, TG_REDUCTION_MEAN, &l), TG_ERR_VALUE,
                   "target 3 at position 0 is not a class in [0, 3)");
        EXPECT_ERR(tg_nll(t, x, y3, -100, TG_REDUCTION_MEAN, &l), TG_ERR_SHAPE,
                   "target (1x2) must have the shape of input (2x3)");
        EXPECT_ERR(tg_cross_entropy(t, x, y, -100, 1.5, TG_REDUCTION_MEAN, &l), TG_ERR_VALUE,
                   "label_smoothing 1.5 outside [0, 1]");
        EXPECT_ERR(tg_nll(t, x, y, -100, TG_REDUCTION_BATCHMEAN, &l), TG_ERR_ARG, "reduction 2");
        tg_tensor_free(x), tg_tensor_free(y), tg_tensor_free(z), tg_tensor_free(x3),
            tg_tensor_free(y3), tg_tensor_free(bad);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- huber, smooth_l1 */

/* One element (the mean is ℓ itself): value and d/dinput against long
 * double, at the switch point ±w, beside it, at 0, huge and infinite. */
static void check_width(int huber, double xv, double w, tg_dtype dt) {
    size_t one = 1;
    tg_tensor *x = leaf(1, dt, 1, &one, &xv), *y = leaf(1, dt, 1, &one, (double[]){0}), *l = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(huber ? tg_huber(t, x, y, w, TG_REDUCTION_MEAN, &l)
                   : tg_smooth_l1(t, x, y, w, TG_REDUCTION_MEAN, &l));
    if (l) CHECK_OK(tg_backward(t, l));
    long double r = tg_get(x, 0), z = fabsl(r), W = dt == TG_F32 ? (float)w : w;
    long double sg = r > 0 ? 1 : r < 0 ? -1 : r, want, g; /* sign(NaN) = NaN */
    if (huber)
        want = z < W ? r * r / 2 : W * (z - W / 2), g = z < W ? r : W * sg;
    else
        want = z < W ? r * r / 2 / W : z - W / 2, g = z < W ? r / W : sg;
    const char *name = huber ? "huber" : "smooth_l1";
    CHECK(l && ulps(dt, tg_get(l, 0), want) <= 1, "%s %s x=%g w=%g: %.17g want %.17Lg", name,
          dt_name(dt), xv, w, l ? tg_get(l, 0) : NAN, want);
    CHECK(ulps(dt, grad_at(x, 0), g) <= 1 && ulps(dt, grad_at(y, 0), -g) <= 1,
          "%s %s x=%g w=%g: gradient %.17g want %.17Lg", name, dt_name(dt), xv, w, grad_at(x, 0),
          g);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

static void test_width_losses(void) {
    const double ws[] = {0.5, 1, 2, 1e-30};
    for (int dt = 0; dt < 2; dt++)
        for (int huber = 0; huber < 2; huber++)
            for (size_t i = 0; i < 4; i++) {
                const double w = ws[i];
                const double xs[] = {w, -w, w * (1 - 1e-7), w * (1 + 1e-7), 0, 1e30, -INFINITY};
                for (size_t j = 0; j < sizeof xs / sizeof xs[0]; j++)
                    check_width(huber, xs[j], w, (tg_dtype)dt);
            }
    /* smooth_l1 with beta 0 is L1 (sign(0) = 0); NaN passes through. */
    for (int dt = 0; dt < 2; dt++) {
        check_width(0, 0, 0, (tg_dtype)dt);
        check_width(0, -3, 0, (tg_dtype)dt);
        check_width(1, NAN, 1, (tg_dtype)dt);
    }
    /* torch: F.huber_loss([0.5, -0.5, 0.3, 5], 0, delta=0.5) = 0.6675,
     * F.smooth_l1_loss(..., beta=0.5) = 1.335 */
    size_t four = 4;
    tg_tensor *x = leaf(1, TG_F64, 1, &four, (double[]){0.5, -0.5, 0.3, 5}), *l = NULL;
    tg_tensor *y = leaf(0, TG_F64, 1, &four, NULL);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_huber(t, x, y, 0.5, TG_REDUCTION_MEAN, &l));
    CHECK(l && fabs(tg_get(l, 0) - 0.6675) < 1e-15, "huber: %.17g", l ? tg_get(l, 0) : NAN);
    CHECK_OK(tg_smooth_l1(t, x, y, 0.5, TG_REDUCTION_SUM, &l));
    CHECK(l && fabs(tg_get(l, 0) - 4 * 1.335) < 1e-14, "smooth_l1 sum: %.17g",
          l ? tg_get(l, 0) : NAN);
    EXPECT_ERR(tg_huber(t, x, y, 0, TG_REDUCTION_MEAN, &l), TG_ERR_VALUE, "delta must be finite");
    EXPECT_ERR(tg_smooth_l1(t, x, y, -1, TG_REDUCTION_MEAN, &l), TG_ERR_VALUE, "beta");
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- kl_div */

/* One row of three (batchmean over 1 row = the sum): p = 0 contributes 0,
 * also at q = 0 (input −inf; torch gives NaN there, documented); the
 * gradient with respect to the input is −p (−e^t with log_target). */
static void check_kl(const double *in, const double *p, int log_target, tg_dtype dt) {
    size_t shape[2] = {1, 3};
    tg_tensor *x = leaf(1, dt, 2, shape, in), *y = leaf(0, dt, 2, shape, p), *l = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_kl_div(t, x, y, TG_REDUCTION_BATCHMEAN, log_target, &l));
    if (l) CHECK_OK(tg_backward(t, l));
    long double want = 0, scale = 0; /* Σ of the terms' magnitudes */
    for (size_t j = 0; j < 3; j++) {
        long double a = tg_get(x, j), b = tg_get(y, j), q = log_target ? expl(b) : b;
        long double lq = log_target ? b : (q == 0 ? 0 : logl(q));
        want += q == 0 ? 0 : q * (lq - a);
        scale += q == 0 ? 0 : fabsl(q * lq) + fabsl(q * a);
        CHECK(ulps(dt, grad_at(x, j), -q) <= 1, "kl_div %s [%zu]: gradient %.17g want %.17Lg",
              dt_name(dt), j, grad_at(x, j), -q);
    }
    /* p·log p − p·a cancels where q ≈ p (as in torch's form): the error is
     * bounded by ulps of the terms, not of the result. */
    double eps = dt == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
    CHECK(l && (ulps(dt, tg_get(l, 0), want) <= ULPS ||
                fabsl(tg_get(l, 0) - want) <= ULPS * eps * scale),
          "kl_div %s log_target %d: %.17g want %.17Lg", dt_name(dt), log_target,
          l ? tg_get(l, 0) : NAN, want);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

static void test_kl(void) {
    const double inf = INFINITY;
    for (int dt = 0; dt < 2; dt++) {
        check_kl((double[]){-inf, -0.5, -1}, (double[]){0, 0.5, 0.5}, 0, (tg_dtype)dt);
        check_kl((double[]){-1, -inf, -2}, (double[]){0.2, 0, 0.8}, 0, (tg_dtype)dt);
        check_kl((double[]){-1e30, -0.7, -0.7}, (double[]){0, 0.5, 0.5}, 0, (tg_dtype)dt);
        check_kl((double[]){-inf, -0.5, -1}, (double[]){-inf, log(0.5), log(0.5)}, 1, (tg_dtype)dt);
        check_kl((double[]){-0.1, -3, -1e4}, (double[]){1e-30, 1e-45, 1}, 0, (tg_dtype)dt);
    }
    /* torch: F.kl_div([[-1, -.5, -1], [-1, -2, -3]], [[0, .5, .5], [.2, .8, 0]],
     * reduction='mean') = 0.2260750659836445 */
    size_t shape[2] = {2, 3};
    tg_tensor *x = leaf(1, TG_F64, 2, shape, (double[]){-1, -.5, -1, -1, -2, -3});
    tg_tensor *y = leaf(0, TG_F64, 2, shape, (double[]){0, .5, .5, .2, .8, 0}), *l = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_kl_div(t, x, y, TG_REDUCTION_MEAN, 0, &l));
    CHECK(l && fabs(tg_get(l, 0) - 0.2260750659836445) < 1e-15, "kl_div mean: %.17g",
          l ? tg_get(l, 0) : NAN);
    EXPECT_ERR(tg_kl_div(t, x, y, (tg_reduction)3, 0, &l), TG_ERR_ARG, "reduction 3");
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

int main(void) {
    test_class_losses();
    test_width_losses();
    test_kl();
    return check_summary();
}
