/* Reductions over axis sets, softmax and log_softmax along any dim: values,
 * r-maps and d-maps against naive references written here (loops over
 * multi-indices, in double), at ranks 1..6, every axis set, keepdim or
 * not, both dtypes; values from PyTorch 1.13 float64 pasted beside the call
 * that made them; the edge cases (ties, NaN, ±inf, var's corrections, std
 * and norm at 0) as torch gives them; the errors. */
#include "extremes.h"

#include <stdlib.h>

enum { SUM, MEAN, AMAX, AMIN, LSE, VAR, STD, NORM, N_KINDS };
static const char *const kind_name[N_KINDS] = {"sum",       "mean", "amax", "amin",
                                               "logsumexp", "var",  "std",  "norm"};

typedef tg_status (*red_fn)(tg_tape *, const tg_tensor *, const int *, int, int, tg_tensor **);

/* One reduction through its public function (var/std with `corr`). */
static tg_status reduce_call(int k, tg_tape *t, const tg_tensor *x, const int *dims, int n,
                             int keepdim, long corr, tg_tensor **out) {
    static const red_fn fns[N_KINDS] = {tg_sum_dims,  tg_mean_dims, tg_amax, tg_amin,
                                        tg_logsumexp, NULL,         NULL,    tg_norm};
    if (k == VAR) return tg_var(t, x, dims, n, corr, keepdim, out);
    if (k == STD) return tg_std(t, x, dims, n, corr, keepdim, out);
    return fns[k](t, x, dims, n, keepdim, out);
}

/* ---------------------------------------------------------------- naive reference */

/* The output index of flat input index i: the row-major index among the
 * kept axes. */
static size_t out_index(size_t i, int rank, const size_t *shape, unsigned mask) {
    size_t o = 0, stride = 1;
    for (int a = rank - 1; a >= 0; a--) {
        size_t idx = i % shape[a];
        i /= shape[a];
        if (!(mask >> a & 1u)) o += idx * stride, stride *= shape[a];
    }
    return o;
}

/* y[o] and the Jacobian weights J[i] = ∂y_{o(i)}/∂xᵢ of reduction k, from
 * the definitions (torch's edge rules included). */
static void naive(int k, const double *x, size_t size, int rank, const size_t *shape, unsigned mask,
                  long corr, double *y, double *J, size_t n_out) {
    size_t *oi = malloc(size * sizeof *oi);
    double *N = calloc(n_out, sizeof *N), *mu = calloc(n_out, sizeof *mu),
           *m = malloc(n_out * sizeof *m), *cnt = calloc(n_out, sizeof *cnt);
    for (size_t o = 0; o < n_out; o++)
        y[o] = 0, m[o] = k == AMIN ? INFINITY : -INFINITY;
    for (size_t i = 0; i < size; i++) {
        size_t o = oi[i] = out_index(i, rank, shape, mask);
        N[o] += 1, mu[o] += x[i];
        if (isnan(x[i]) || isnan(m[o]))
            m[o] = NAN;
        else if (k == AMIN ? x[i] < m[o] : x[i] > m[o])
            m[o] = x[i];
    }
    for (size_t i = 0; i < size; i++) {
        size_t o = oi[i];
        double d = x[i] - mu[o] / N[o];
        if (k == SUM || k == MEAN) y[o] += x[i];
        if (k == AMAX || k == AMIN) cnt[o] += x[i] == m[o];
        if (k == LSE) y[o] += isinf(m[o]) ? exp(x[i]) : exp(x[i] - m[o]);
        if (k == VAR || k == STD) y[o] += d * d;
        if (k == NORM) y[o] += x[i] * x[i];
    }
    for (size_t o = 0; o < n_out; o++) {
        double D = fmax(0, N[o] - (double)corr);
        if (k == MEAN) y[o] /= N[o];
        if (k == AMAX || k == AMIN) y[o] = m[o];
        if (k == LSE) y[o] = isinf(m[o]) ? log(y[o]) : m[o] + log(y[o]);
        if (k == VAR || k == STD) y[o] /= D;
        if (k == STD || k == NORM) y[o] = sqrt(y[o]);
    }
    for (size_t i = 0; i < size; i++) {
        size_t o = oi[i];
        double d = x[i] - mu[o] / N[o], D = fmax(0, N[o] - (double)corr);
        J[i] = k == SUM                 ? 1
               : k == MEAN              ? 1 / N[o]
               : k == AMAX || k == AMIN ? (x[i] == y[o]) / cnt[o]
               : k == LSE               ? exp(x[i] - y[o])
               : k == VAR               ? 2 * d / D
               : k == STD               ? (y[o] == 0 ? 0 : d / (D * y[o]))
                                        : (y[o] == 0 ? 0 : x[i] / y[o]);
    }
    free(oi), free(N), free(mu), free(m), free(cnt);
}

/* ---------------------------------------------------------------- against the reference */

/* Relative tolerance: float64 sums of ≤ 216 terms in double, a few libm
 * calls: 1e-12 leaves 10^3 ulps of room. float32: inputs, outputs and
 * gradients each rounded to float (6e-8) after double sums: 1e-5. */
static double tol_dt(tg_dtype dt) {
    return dt == TG_F32 ? 1e-5 : 1e-12;
}

static void check_one(int k, tg_dtype dt, int rank, const size_t *shape, unsigned mask, int keepdim,
                      int negative, tg_rng *rng) {
    tg_tensor *x = leaf(1, dt, rank, shape, NULL), *y = NULL;
    size_t size = x->size;
    double *xv = malloc(size * sizeof *xv), *J = malloc(size * sizeof *J);
    for (size_t i = 0; i < size; i++) {
        tg_set(x, i, tg_rng_normal(rng));
        xv[i] = tg_get(x, i); /* as the dtype holds it */
    }
    int dims[TG_MAX_RANK], n = 0;
    for (int a = 0; a < rank; a++)
        if (mask >> a & 1u) dims[n++] = negative && a % 2 ? a - rank : a;
    if (!n) mask = (1u << rank) - 1; /* none listed: every axis */
    size_t n_out = 1;
    for (int a = 0; a < rank; a++)
        if (!(mask >> a & 1u)) n_out *= shape[a];
    double *yr = malloc(n_out * sizeof *yr), *zeta = malloc(n_out * sizeof *zeta);
    long corr = k == VAR || k == STD ? (size / n_out > 1 ? 1 : 0) : 0;
    naive(k, xv, size, rank, shape, mask, corr, yr, J, n_out);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(reduce_call(k, t, x, dims, n, keepdim, corr, &y));
    if (y) {
        int want_rank = keepdim ? rank : rank - (n ? n : rank);
        CHECK(y->rank == want_rank && y->size == n_out, "%s rank %d mask %x keepdim %d: rank %d",
              kind_name[k], rank, mask, keepdim, y->rank);
        void *seed = malloc(n_out * sizeof(double)), *tan = malloc(size * sizeof(double));
        for (size_t o = 0; o < n_out; o++) {
            zeta[o] = tg_rng_normal(rng);
            if (dt == TG_F32)
                ((float *)seed)[o] = (float)zeta[o], zeta[o] = (float)zeta[o];
            else
                ((double *)seed)[o] = zeta[o];
        }
        double *xi = malloc(size * sizeof *xi), *tr = calloc(n_out, sizeof *tr);
        for (size_t i = 0; i < size; i++) {
            xi[i] = tg_rng_normal(rng);
            if (dt == TG_F32)
                ((float *)tan)[i] = (float)xi[i], xi[i] = (float)xi[i];
            else
                ((double *)tan)[i] = xi[i];
        }
        CHECK_OK(tg_backward_seed(t, y, seed));
        const tg_tensor *leaves[1] = {x};
        const void *tans[1] = {tan};
        CHECK_OK(tg_jvp(t, 1, leaves, tans));
        for (size_t i = 0; i < size; i++)
            tr[out_index(i, rank, shape, mask)] += J[i] * xi[i];
        int bad = 0;
        for (size_t o = 0; o < n_out; o++) {
            bad += fabs(tg_get(y, o) - yr[o]) > tol_dt(dt) * fmax(1, fabs(yr[o]));
            bad += fabs(tangent_at(t, y, o) - tr[o]) > tol_dt(dt) * fmax(1, fabs(tr[o])) * 4;
        }
        for (size_t i = 0; i < size; i++) {
            double g = J[i] * zeta[out_index(i, rank, shape, mask)];
            bad += fabs(grad_at(x, i) - g) > tol_dt(dt) * fmax(1, fabs(g));
        }
        CHECK(!bad, "%s %s rank %d mask 0x%x keepdim %d: %d values/gradients/tangents off",
              kind_name[k], dt_name(dt), rank, mask, keepdim, bad);
        free(seed), free(tan), free(xi), free(tr);
    }
    free(xv), free(J), free(yr), free(zeta);
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* Every kind, ranks 1..6 (sizes 1..3 mixed, so size-1 axes are merged
 * away), every axis set (mask 0 listed as n_dims = 0: all), keepdim on and
 * off, dims given negative for odd axes half the time. */
static void test_against_naive(void) {
    static const size_t shape6[6] = {2, 3, 1, 2, 3, 2};
    tg_rng rng;
    tg_rng_seed(&rng, 14);
    for (int dt = 0; dt < 2; dt++)
        for (int k = 0; k < N_KINDS; k++)
            for (int rank = 1; rank <= 6; rank++)
                for (unsigned mask = 0; mask < 1u << rank; mask++)
                    for (int keepdim = 0; keepdim < 2; keepdim++)
                        check_one(k, (tg_dtype)dt, rank, shape6 + (6 - rank), mask, keepdim,
                                  (int)(mask & 1), &rng);
}

/* ---------------------------------------------------------------- PyTorch values */

/* x = [2 sin(i + 1) for i in range(24)] as (2, 3, 4), float64, backward
 * with ζ = 1: the values and gradients torch 1.13 printed (%.17g). The
 * calls are in each row's comment. 1e-13: a few ulps of sums of 24 terms. */
static void check_torch(int k, const int *dims, int n, long corr, const double *want_y, size_t ny,
                        const double *want_g) {
    size_t shape[3] = {2, 3, 4};
    double xv[24];
    for (int i = 0; i < 24; i++)
        xv[i] = 2 * sin(i + 1);
    tg_tensor *x = leaf(1, TG_F64, 3, shape, xv), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(reduce_call(k, t, x, dims, n, 0, corr, &y));
    if (y) {
        CHECK(y->size == ny, "%s: %zu outputs", kind_name[k], y->size);
        void *seed = ones(TG_F64, y->size);
        CHECK_OK(tg_backward_seed(t, y, seed));
        free(seed);
        for (size_t o = 0; o < ny && o < y->size; o++)
            CHECK_CLOSE(tg_get(y, o), want_y[o], 1e-13);
        for (size_t i = 0; i < 24; i++)
            CHECK_CLOSE(grad_at(x, i), want_g[i], 1e-13);
    }
    tg_tensor_free(x);
    tg_tape_free(t);
}

static void test_torch_values(void) {
    /* torch.logsumexp(x, (0, 1)) */
    static const double lse_y[4] = {2.7473704764672373, 2.7426856810912827, 2.3405906381121069,
                                    2.6898547440761265};
    static const double lse_g[24] = {
        0.34492492067988184,   0.39689209849549711,  0.12766436313104146,  0.014943785746473913,
        0.0094171853911086383, 0.036827269931446763, 0.35821660248228171,  0.49108490141543359,
        0.14614828734266019,   0.021693818888268775, 0.013029085803385188, 0.023213980360005802,
        0.14851988814358569,   0.46697900957440924,  0.35344939509463008,  0.038171680846038968,
        0.0093707189174543348, 0.014340606152794933, 0.1299200238770333,   0.42148788580859675,
        0.34161899952530894,   0.063267196957583052, 0.017720529611627896, 0.0110977658234512};
    /* torch.var(x, (1, 2)) (unbiased) */
    static const double var_y[2] = {2.2865496874969318, 2.2693516787649632};
    static const double var_g[24] = {
        0.30978868397054199,  0.3344528447042821,     0.055115601516713165, -0.27140167243521246,
        -0.34490050129165256, -0.097806400759211598,  0.24270345266541202,  0.36356587008526392,
        0.15366050231012748,  -0.19402662355573666,   -0.35983356743258527, -0.19131818977794218,
        0.14673946185160375,  0.35417230507641445,    0.23041975397177678,  -0.11074066669083489,
        -0.35564763949610456, -0.27913482309323884,   0.048452251973898811, 0.32593153963378074,
        0.29818986247320922,  -0.0092672094636852779, -0.31376506214905503, -0.33534977408776528};
    /* torch.std(x, 0, unbiased=False) */
    static const double std_y[12] = {
        0.42130394798125553,   0.081309928869188586, 0.5091678320972497,  0.4688991786428629,
        0.0024732172164183552, 0.47157174857275019,  0.50710938905583669, 0.076412995895754177,
        0.42453715329429947,   0.53516980159896588,  0.15376980237553278, 0.36900544400618895};
    static const double std_g[24] = {0.50000000000000022,
                                     -0.500000000000001,
                                     -0.5,
                                     -0.49999999999999994,
                                     0.5,
                                     0.49999999999999994,
                                     0.5,
                                     0.49999999999999895,
                                     -0.50000000000000011,
                                     -0.5,
                                     -0.50000000000000056,
                                     0.5,
                                     -0.49999999999999994,
                                     0.49999999999999967,
                                     0.49999999999999989,
                                     0.49999999999999994,
                                     -0.5,
                                     -0.49999999999999994,
                                     -0.5,
                                     -0.50000000000000033,
                                     0.49999999999999994,
                                     0.5,
                                     0.49999999999999983,
                                     -0.5};
    /* torch.linalg.vector_norm(x, 2, (-1, -3)) */
    static const double norm_y[3] = {3.8941833388169673, 4.3599399570353006, 3.9949586580325978};
    static const double norm_g[24] = {
        0.43216813981004348,  0.46700288492422215,    0.072477331333217987, -0.38868354643920844,
        -0.4398795782110696,  -0.12817401200585549,   0.30137414973280086,  0.45384030806522019,
        0.20631927412471052,  -0.27235381262107206,   -0.5006260600669995,  -0.26862501664269123,
        0.21579211879340301,  0.50876256688818955,    0.3339790572647619,   -0.14786325738455286,
        -0.44101409714517903, -0.34449430688138977,   0.068751960412256133, 0.41878799236878389,
        0.41885571799538218,  -0.0044312394936086227, -0.42364413582788357, -0.45336056741703312};
    const int d01[2] = {0, 1}, d12[2] = {1, 2}, d0[1] = {0}, dn[2] = {-1, -3};
    check_torch(LSE, d01, 2, 0, lse_y, 4, lse_g);
    check_torch(VAR, d12, 2, 1, var_y, 2, var_g);
    check_torch(STD, d0, 1, 0, std_y, 12, std_g);
    check_torch(NORM, dn, 2, 0, norm_y, 3, norm_g);
}

/* ---------------------------------------------------------------- edge cases */

/* One reduction of a vector over its axis, backward with ζ = 1: the value
 * and gradient must match `want` exactly (NaN matching NaN). */
static void check_vec(int k, const double *v, size_t n, long corr, double want,
                      const double *want_g) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tensor *x = leaf(1, (tg_dtype)dt, 1, &n, v), *y = NULL;
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(reduce_call(k, t, x, NULL, 0, 0, corr, &y));
        if (y) {
            CHECK_OK(tg_backward(t, y));
            CHECK(ulps((tg_dtype)dt, tg_get(y, 0), want) <= 1, "%s %s: %.17g, want %.17g",
                  kind_name[k], dt_name((tg_dtype)dt), tg_get(y, 0), want);
            for (size_t i = 0; i < n; i++)
                CHECK(ulps((tg_dtype)dt, grad_at(x, i), want_g[i]) <= 1,
                      "%s %s: gradient[%zu] %.17g, want %.17g", kind_name[k], dt_name((tg_dtype)dt),
                      i, grad_at(x, i), want_g[i]);
        }
        tg_tensor_free(x);
        tg_tape_free(t);
    }
}

static void test_edges(void) {
    const double inf = INFINITY, nan = NAN;
    /* torch.amax([1, 3, 3]) = 3, grad [0, .5, .5]: ties share ζ */
    check_vec(AMAX, (double[]){1, 3, 3}, 3, 0, 3, (double[]){0, 0.5, 0.5});
    /* amin with three ties: ⅓ each (1/3 rounds alike in the check) */
    check_vec(AMIN, (double[]){2, 1, 1, 1}, 4, 0, 1, (double[]){0, 1. / 3, 1. / 3, 1. / 3});
    /* torch.amax([1, nan, 3, nan]) = nan, grad all nan (0/0 in torch's rule) */
    check_vec(AMAX, (double[]){1, nan, 3, nan}, 4, 0, nan, (double[]){nan, nan, nan, nan});
    check_vec(AMIN, (double[]){nan, 1, 3}, 3, 0, nan, (double[]){nan, nan, nan});
    /* torch.amax([1, inf, inf]) = inf, grad [0, .5, .5] */
    check_vec(AMAX, (double[]){1, inf, inf}, 3, 0, inf, (double[]){0, 0.5, 0.5});
    /* torch.logsumexp([-inf, -inf]) = -inf, grad [nan, nan]; [inf, 0, -inf]:
     * inf, grad [nan, 0, 0]; [nan, 0]: nan, grad nan */
    check_vec(LSE, (double[]){-inf, -inf}, 2, 0, -inf, (double[]){nan, nan});
    check_vec(LSE, (double[]){inf, 0, -inf}, 3, 0, inf, (double[]){nan, 0, 0});
    check_vec(LSE, (double[]){nan, 0}, 2, 0, nan, (double[]){nan, nan});
    /* [1e16, 1e16]: 1e16 (+ log 2, below its ulp); gradient the exact ½
     * (torch 1.13 gives 1, 1: e^{x − y} with y rounded). */
    check_vec(LSE, (double[]){1e16, 1e16}, 2, 0, 1e16, (double[]){0.5, 0.5});
    /* torch.var([2.]) = nan, grad nan; torch.std alike */
    check_vec(VAR, (double[]){2}, 1, 1, nan, (double[]){nan});
    check_vec(STD, (double[]){2}, 1, 1, nan, (double[]){nan});
    /* torch.var([2., 3.], correction=2) = inf, grad [-inf, inf]; [2, 2]: nan */
    check_vec(VAR, (double[]){2, 3}, 2, 2, inf, (double[]){-inf, inf});
    check_vec(VAR, (double[]){2, 2}, 2, 2, nan, (double[]){nan, nan});
    /* correction 3 > N: torch's value inf with gradient [1, −1] (its D = −1);
     * ours the derivative of the value, D = 0: [−inf, inf] (documented). */
    check_vec(VAR, (double[]){2, 3}, 2, 3, inf, (double[]){-inf, inf});
    /* torch.std([2., 2., 2.]) = 0, grad [0, 0, 0] (masked); biased alike */
    check_vec(STD, (double[]){2, 2, 2}, 3, 1, 0, (double[]){0, 0, 0});
    check_vec(STD, (double[]){2, 2}, 2, 0, 0, (double[]){0, 0});
    /* vector_norm([0, 0]) = 0, grad [0, 0]; [inf, 1]: inf, grad [nan, 0] */
    check_vec(NORM, (double[]){0, 0}, 2, 0, 0, (double[]){0, 0});
    check_vec(NORM, (double[]){inf, 1}, 2, 0, inf, (double[]){nan, 0});
    /* torch.var(x) of [1, 2, 3, 4] unbiased = 5/3, biased = 1.25 */
    check_vec(VAR, (double[]){1, 2, 3, 4}, 4, 1, 5. / 3,
              (double[]){-1.5 * 2 / 3, -0.5 * 2 / 3, 0.5 * 2 / 3, 1.5 * 2 / 3});
    check_vec(VAR, (double[]){1, 2, 3, 4}, 4, 0, 1.25, (double[]){-0.75, -0.25, 0.25, 0.75});
    /* A rank-0 input: every reduction of one element, dim 0 and −1 allowed. */
    tg_tensor *s = leaf(1, TG_F64, 0, NULL, (double[]){-2.5}), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    const int dm1[1] = {-1};
    CHECK_OK(tg_amax(t, s, dm1, 1, 1, &y));
    CHECK(y && y->rank == 0 && tg_get(y, 0) == -2.5, "amax of a scalar");
    CHECK_OK(tg_norm(t, s, NULL, 0, 0, &y));
    CHECK(y && tg_get(y, 0) == 2.5, "norm of a scalar");
    tg_tensor_free(s);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- softmax along a dim */

/* softmax and log_softmax of a (2, 3, 4) input along each dim (given
 * positive and negative) against naive slices; r-maps with a random ζ:
 * softmax s⊙(ζ − ⟨s, ζ⟩), log_softmax ζ − s·Σζ. */
static void test_softmax_dims(void) {
    size_t shape[3] = {2, 3, 4}, st[3] = {12, 4, 1};
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int dt = 0; dt < 2; dt++)
        for (int dim = 0; dim < 3; dim++)
            for (int lg = 0; lg < 2; lg++) {
                double xv[24], zv[24], s[24], g[24];
                for (int i = 0; i < 24; i++)
                    xv[i] = 3 * tg_rng_normal(&rng), zv[i] = tg_rng_normal(&rng);
                tg_tensor *x = leaf(1, (tg_dtype)dt, 3, shape, xv), *y = NULL;
                for (int i = 0; i < 24; i++)
                    xv[i] = tg_get(x, i);
                tg_tape *t;
                CHECK_OK(tg_tape_new(&t));
                int d = dim == 2 && !lg ? -1 : dim;
                CHECK_OK(lg ? tg_log_softmax(t, x, d - (dim == 1 ? 3 : 0), &y)
                            : tg_softmax_dim(t, x, d, &y));
                void *seed = malloc(24 * sizeof(double));
                for (int i = 0; i < 24; i++) {
                    if (dt == TG_F32)
                        ((float *)seed)[i] = (float)zv[i], zv[i] = (float)zv[i];
                    else
                        ((double *)seed)[i] = zv[i];
                }
                if (y) CHECK_OK(tg_backward_seed(t, y, seed));
                /* naive: each slice along dim */
                for (int i = 0; i < 24; i++) {
                    size_t base = i - (i / st[dim] % shape[dim]) * st[dim];
                    double m = -INFINITY, sum = 0, dot = 0, zs = 0;
                    for (size_t l = 0; l < shape[dim]; l++)
                        m = fmax(m, xv[base + l * st[dim]]);
                    for (size_t l = 0; l < shape[dim]; l++)
                        sum += exp(xv[base + l * st[dim]] - m);
                    s[i] = exp(xv[i] - m) / sum;
                    for (size_t l = 0; l < shape[dim]; l++) {
                        size_t j = base + l * st[dim];
                        double sj = exp(xv[j] - m) / sum;
                        dot += sj * zv[j], zs += zv[j];
                    }
                    g[i] = lg ? zv[i] - s[i] * zs : s[i] * (zv[i] - dot);
                    double want = lg ? (xv[i] - m) - log(sum) : s[i];
                    CHECK(y && fabs(tg_get(y, (size_t)i) - want) <=
                                   tol_dt((tg_dtype)dt) * fmax(1, fabs(want)),
                          "%s %s dim %d [%d]: %.17g want %.17g", lg ? "log_softmax" : "softmax",
                          dt_name((tg_dtype)dt), dim, i, y ? tg_get(y, (size_t)i) : NAN, want);
                    CHECK(fabs(grad_at(x, (size_t)i) - g[i]) <=
                              4 * tol_dt((tg_dtype)dt) * fmax(1, fabs(g[i])),
                          "%s %s dim %d [%d]: gradient %.17g want %.17g",
                          lg ? "log_softmax" : "softmax", dt_name((tg_dtype)dt), dim, i,
                          grad_at(x, (size_t)i), g[i]);
                }
                free(seed);
                tg_tensor_free(x);
                tg_tape_free(t);
            }
    /* tg_softmax is the last axis, bit for bit. */
    size_t sh[2] = {3, 5};
    double v[15];
    for (int i = 0; i < 15; i++)
        v[i] = sin(i) * 4;
    tg_tensor *x = leaf(0, TG_F32, 2, sh, v), *a = NULL, *b = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_softmax(t, x, &a));
    CHECK_OK(tg_softmax_dim(t, x, 1, &b));
    CHECK(a && b && memcmp(a->data, b->data, 15 * sizeof(float)) == 0, "softmax != dim 1");
    /* log_softmax at 1e16: [−log 2, −log 2], m never added back. */
    size_t two = 2;
    tg_tensor *h = leaf(0, TG_F32, 1, &two, (double[]){1e16, 1e16});
    CHECK_OK(tg_log_softmax(t, h, 0, &a));
    CHECK(a && fabs(tg_get(a, 0) + 0.69314718) < 1e-7, "log_softmax at 1e16: %g",
          a ? tg_get(a, 0) : NAN);
    /* torch.log_softmax([inf, 0]) = [nan, nan]; [−inf, −inf] too; [0, −inf] = [0, −inf] */
    tg_tensor *e1 = leaf(0, TG_F64, 1, &two, (double[]){INFINITY, 0});
    tg_tensor *e2 = leaf(0, TG_F64, 1, &two, (double[]){-INFINITY, -INFINITY});
    tg_tensor *e3 = leaf(0, TG_F64, 1, &two, (double[]){0, -INFINITY});
    CHECK_OK(tg_log_softmax(t, e1, -1, &a));
    CHECK(a && isnan(tg_get(a, 0)) && isnan(tg_get(a, 1)), "log_softmax [inf, 0]");
    CHECK_OK(tg_log_softmax(t, e2, -1, &a));
    CHECK(a && isnan(tg_get(a, 0)) && isnan(tg_get(a, 1)), "log_softmax [-inf, -inf]");
    CHECK_OK(tg_log_softmax(t, e3, -1, &a));
    CHECK(a && tg_get(a, 0) == 0 && tg_get(a, 1) == -INFINITY, "log_softmax [0, -inf]");
    tg_tensor_free(x), tg_tensor_free(h), tg_tensor_free(e1), tg_tensor_free(e2),
        tg_tensor_free(e3);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- errors and the old API */

static void test_errors(void) {
    size_t shape[3] = {2, 3, 4};
    tg_tensor *x = leaf(0, TG_F64, 3, shape, NULL), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_sum_dims(t, x, (int[]){3}, 1, 0, &y), TG_ERR_ARG,
               "sum: dim 3 out of range for shape (2x3x4)");
    EXPECT_ERR(tg_amax(t, x, (int[]){-4}, 1, 0, &y), TG_ERR_ARG, "dim -4 out of range");
    EXPECT_ERR(tg_var(t, x, (int[]){1, -2}, 2, 1, 0, &y), TG_ERR_ARG,
               "var: dim -2 appears twice in the list of dims for shape (2x3x4)");
    EXPECT_ERR(tg_norm(t, x, (int[]){0, 1, 2, 0, 1, 2, 0, 1, 2}, 9, 0, &y), TG_ERR_ARG, "9 dims");
    EXPECT_ERR(tg_logsumexp(t, x, NULL, 2, 0, &y), TG_ERR_ARG, "dims is NULL");
    EXPECT_ERR(tg_softmax_dim(t, x, 3, &y), TG_ERR_ARG, "softmax: dim 3 out of range");
    EXPECT_ERR(tg_log_softmax(t, x, -4, &y), TG_ERR_ARG, "log_softmax: dim -4 out of range");
    tg_tensor *s = leaf(0, TG_F64, 0, NULL, NULL);
    EXPECT_ERR(tg_log_softmax(t, s, 0, &y), TG_ERR_SHAPE, "got a scalar");
    EXPECT_ERR(tg_sum_axis(t, x, 3, &y), TG_ERR_ARG, "axis 3 out of range");
    /* sum_axis / mean_axis keep their meaning: one axis, removed. */
    for (size_t i = 0; i < 24; i++)
        tg_set(x, i, (double)i);
    CHECK_OK(tg_mean_axis(t, x, -2, &y));
    CHECK(y && y->rank == 2 && y->shape[1] == 4 && tg_get(y, 0) == 4 && tg_get(y, 4) == 16,
          "mean_axis");
    CHECK_OK(tg_sum(t, x, &y));
    CHECK(y && y->rank == 0 && tg_get(y, 0) == 276, "sum");
    tg_tensor_free(x), tg_tensor_free(s);
    tg_tape_free(t);
}

int main(void) {
    test_against_naive();
    test_torch_values();
    test_edges();
    test_softmax_dims();
    test_errors();
    return check_summary();
}
