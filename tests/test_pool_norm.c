/* Pooling and normalisation (issue 15) against naive references written
 * here (loops, double): forward values and r-maps of max_pool2d,
 * avg_pool2d, global_avg_pool2d, batch_norm (training and eval),
 * layer_norm and group_norm over grids of shapes and attributes, float64
 * and float32; ties and NaN in max pooling; batch_norm eval exactly affine;
 * the running statistics against torch 1.13; dropout on N×C×H×W; errors.
 *
 * Tolerances: float64 results are sums of at most a few hundred rounded
 * terms, within 1e-12 relative of the double reference (1e-13 would do;
 * the margin absorbs the different summation orders); float32 within 1e-5
 * relative to max(1, |v|) (unit roundoff 6e-8 times the same sums, and
 * the normalisations' 1/σ of at most ~10 here). */
#include "check.h"
#include "tapegrad.h"

#include <stdlib.h>

static tg_rng rng;

static tg_tensor *rand_tensor(tg_dtype dt, int param, int rank, const size_t *shape) {
    tg_tensor *x = NULL;
    CHECK_OK(param ? tg_param_new(&x, dt, rank, shape) : tg_tensor_new(&x, dt, rank, shape));
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, tg_rng_normal(&rng));
    return x;
}

static double grad_at(const tg_tensor *p, size_t i) {
    return p->dtype == TG_F32 ? ((float *)p->grad)[i] : ((double *)p->grad)[i];
}

/* A seed ζ of n values in dtype dt, and the same values in double. */
static void *make_seed(tg_dtype dt, size_t n, double *z) {
    void *p = malloc(n * (dt == TG_F32 ? sizeof(float) : sizeof(double)));
    for (size_t i = 0; i < n; i++) {
        double v = tg_rng_normal(&rng);
        if (dt == TG_F32) {
            ((float *)p)[i] = (float)v;
            z[i] = (float)v;
        } else {
            ((double *)p)[i] = v;
            z[i] = v;
        }
    }
    return p;
}

static double tol_of(tg_dtype dt) {
    return dt == TG_F32 ? 1e-5 : 1e-12;
}

/* Worst |a − b| / max(1, |b|) over n values of t (data or grad) against ref. */
static double worst_err(const tg_tensor *t, int grad, const double *ref, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double v = grad ? grad_at(t, i) : tg_get(t, i);
        double e = v == ref[i] || (isnan(v) && isnan(ref[i]))
                       ? 0
                       : fabs(v - ref[i]) / fmax(1, fabs(ref[i]));
        if (!(e <= w)) w = e; /* NaN counts as worst */
    }
    return w;
}

/* ---------------------------------------------------------------- pooling references */

typedef struct pool {
    int k[2], s[2], p[2], d[2], ceil, include_pad;
} pool;

/* PyTorch's output size, written out from its documentation. */
static long ref_out(long in, int k, int s, int p, int d, int ceil_mode) {
    double v = (double)(in + 2 * p - d * (k - 1) - 1) / s;
    long o = (long)(ceil_mode ? ceil(v) : floor(v)) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* Max pooling of one N×C×H×W array: y and the winner of each output (−1:
 * none), the first maximum in row-major window order, NaN winning. */
static void ref_max(const double *x, size_t planes, long H, long W, const pool *q, long OH, long OW,
                    double *y, long *win) {
    for (size_t pl = 0; pl < planes; pl++)
        for (long oh = 0; oh < OH; oh++)
            for (long ow = 0; ow < OW; ow++) {
                double m = -INFINITY;
                long best = -1;
                for (int a = 0; a < q->k[0]; a++)
                    for (int b = 0; b < q->k[1]; b++) {
                        long h = oh * q->s[0] - q->p[0] + a * q->d[0];
                        long w = ow * q->s[1] - q->p[1] + b * q->d[1];
                        if (h < 0 || h >= H || w < 0 || w >= W) continue;
                        long i = (long)pl * H * W + h * W + w;
                        if (best < 0 || isnan(x[i]) || x[i] > m) m = x[i], best = i;
                    }
                size_t o = (pl * (size_t)OH + (size_t)oh) * (size_t)OW + (size_t)ow;
                y[o] = m, win[o] = best;
            }
}

/* Average pooling; the divisor counts window positions inside the padded
 * input (include_pad) or inside the input. */
static void ref_avg(const double *x, size_t planes, long H, long W, const pool *q, long OH, long OW,
                    const double *z, double *y, double *gx) {
    for (size_t pl = 0; pl < planes; pl++)
        for (long oh = 0; oh < OH; oh++)
            for (long ow = 0; ow < OW; ow++) {
                double sum = 0;
                long real = 0, padded = 0;
                for (int a = 0; a < q->k[0]; a++)
                    for (int b = 0; b < q->k[1]; b++) {
                        long h = oh * q->s[0] - q->p[0] + a, w = ow * q->s[1] - q->p[1] + b;
                        padded += h < H + q->p[0] && w < W + q->p[1];
                        if (h < 0 || h >= H || w < 0 || w >= W) continue;
                        real++, sum += x[(long)pl * H * W + h * W + w];
                    }
                size_t o = (pl * (size_t)OH + (size_t)oh) * (size_t)OW + (size_t)ow;
                double div = (double)(q->include_pad ? padded : real);
                y[o] = real ? sum / div : 0;
                for (int a = 0; real && a < q->k[0]; a++)
                    for (int b = 0; b < q->k[1]; b++) {
                        long h = oh * q->s[0] - q->p[0] + a, w = ow * q->s[1] - q->p[1] + b;
                        if (h >= 0 && h < H && w >= 0 && w < W)
                            gx[(long)pl * H * W + h * W + w] += z[o] / div;
                    }
            }
}

/* One pooling call on x (N, C, H, W) against the reference: values and
 * the r-map. is_max selects max_pool2d. */
static void pool_case(int is_max, tg_dtype dt, const size_t *shape, const pool *q) {
    long H = (long)shape[2], W = (long)shape[3];
    long OH = ref_out(H, q->k[0], q->s[0], q->p[0], is_max ? q->d[0] : 1, q->ceil);
    long OW = ref_out(W, q->k[1], q->s[1], q->p[1], is_max ? q->d[1] : 1, q->ceil);
    tg_tensor *x = rand_tensor(dt, 1, 4, shape), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_status s = is_max ? tg_max_pool2d(t, x, q->k, q->s, q->p, q->d, q->ceil, &y)
                         : tg_avg_pool2d(t, x, q->k, q->s, q->p, q->ceil, q->include_pad, &y);
    if (OH < 1 || OW < 1) {
        CHECK(s == TG_ERR_SHAPE && strstr(tg_last_error(), "output size"),
              "%s: expected an output-size error: %s", is_max ? "max" : "avg", tg_last_error());
    } else if (s == TG_OK) {
        size_t planes = shape[0] * shape[1], n = planes * (size_t)(OH * OW);
        CHECK(y->shape[2] == (size_t)OH && y->shape[3] == (size_t)OW,
              "output (%zux%zu) vs (%ldx%ld)", y->shape[2], y->shape[3], OH, OW);
        double *xs = malloc(x->size * sizeof *xs), *yr = calloc(n, sizeof *yr),
               *gr = calloc(x->size, sizeof *gr), *z = malloc(n * sizeof *z);
        long *win = malloc(n * sizeof *win);
        for (size_t i = 0; i < x->size; i++)
            xs[i] = tg_get(x, i);
        void *seed = make_seed(dt, n, z);
        if (is_max) {
            ref_max(xs, planes, H, W, q, OH, OW, yr, win);
            for (size_t o = 0; o < n; o++)
                if (win[o] >= 0) gr[win[o]] += z[o];
        } else {
            ref_avg(xs, planes, H, W, q, OH, OW, z, yr, gr);
        }
        CHECK_OK(tg_backward_seed(t, y, seed));
        double ey = worst_err(y, 0, yr, n), eg = worst_err(x, 1, gr, x->size);
        CHECK(ey <= tol_of(dt) && eg <= tol_of(dt),
              "%s %s (%zux%zux%zux%zu) k %dx%d s %dx%d p %dx%d d %dx%d ceil %d pad %d: value err "
              "%g, adjoint err %g",
              is_max ? "max_pool2d" : "avg_pool2d", dt ? "f64" : "f32", shape[0], shape[1],
              shape[2], shape[3], q->k[0], q->k[1], q->s[0], q->s[1], q->p[0], q->p[1], q->d[0],
              q->d[1], q->ceil, q->include_pad, ey, eg);
        free(xs), free(yr), free(gr), free(z), free(win), free(seed);
    } else {
        CHECK_OK(s);
    }
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* Kernels 1..5 (one 3×2), strides 1..3 (stride > kernel included), every
 * valid padding, dilation 1 and 2, ceil_mode both ways; inputs from 1×1
 * (a kernel larger than the input, with padding) to 7×6, a batch of 1, one
 * channel. */
static void test_pool_grid(void) {
    static const size_t shapes[][4] = {{1, 1, 1, 1}, {1, 1, 4, 4}, {2, 3, 5, 7},
                                       {1, 2, 7, 6}, {3, 1, 2, 5}, {2, 2, 6, 3}};
    static const int kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {3, 2}, {5, 5}};
    int cases = 0;
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
        for (size_t kk = 0; kk < sizeof kernels / sizeof kernels[0]; kk++)
            for (int st = 1; st <= 3; st++)
                for (int p = 0; p <= kernels[kk][0] / 2; p++)
                    for (int d = 1; d <= 2; d++)
                        for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
                            pool q = {{kernels[kk][0], kernels[kk][1]},
                                      {st, st == 3 ? 2 : st},
                                      {p, p < kernels[kk][1] / 2 + 1 ? p : 0},
                                      {d, d},
                                      ceil_mode,
                                      (st + p) % 2};
                            tg_dtype dt = (cases++ % 3 == 0) ? TG_F32 : TG_F64;
                            pool_case(1, dt, shapes[sh], &q);
                            if (d == 1) pool_case(0, dt, shapes[sh], &q);
                        }
}

/* Ties: the first maximal element of a window takes its adjoint; NaN wins
 * (output NaN, adjoint to the NaN); a window of −inf gives −inf and its
 * adjoint to its first element, as PyTorch. */
static void test_max_ties_nan(void) {
    static const double vals[3][8] = {
        {1, 1, 1, 1, 0, 2, 5, 2},     /* a 4-way tie; a tie of 2 after a 5 */
        {3, NAN, 1, 9, 0, 2, 5, NAN}, /* NaN beats 9; NaN after 5 */
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, 1, 2, 2, 1}, /* −inf; a tie at 1 and 2 */
    };
    /* x (1, 2, 2, 2), kernel 2: one window per channel. */
    static const double want_y[3][2] = {{1, 5}, {NAN, NAN}, {-INFINITY, 2}};
    static const size_t want_arg[3][2] = {{0, 6}, {1, 7}, {0, 5}};
    for (int dt = 0; dt < 2; dt++)
        for (int c = 0; c < 3; c++) {
            tg_tensor *x, *y;
            tg_tape *t;
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_param_new(&x, (tg_dtype)dt, 4, (size_t[]){1, 2, 2, 2}));
            CHECK_OK(tg_fill(x, vals[c], 8));
            CHECK_OK(tg_max_pool2d(t, x, (int[]){2, 2}, NULL, NULL, NULL, 0, &y));
            double z[2];
            void *seed = make_seed((tg_dtype)dt, 2, z);
            CHECK_OK(tg_backward_seed(t, y, seed));
            for (int ch = 0; ch < 2; ch++) {
                double v = tg_get(y, (size_t)ch), w = want_y[c][ch];
                CHECK(isnan(w) ? isnan(v) : v == w, "case %d channel %d: y = %g, want %g", c, ch, v,
                      w);
                for (size_t e = 0; e < 4; e++) {
                    size_t i = (size_t)ch * 4 + e;
                    double want = i == want_arg[c][ch] ? z[ch] : 0;
                    CHECK(grad_at(x, i) == want, "case %d: adjoint of x[%zu] = %g, want %g", c, i,
                          grad_at(x, i), want);
                }
            }
            free(seed);
            tg_tensor_free(x);
            tg_tape_free(t);
        }
}

static void test_global_avg(void) {
    static const size_t shapes[][4] = {{1, 1, 1, 1}, {2, 3, 4, 5}, {1, 4, 7, 1}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t sh = 0; sh < 3; sh++) {
            const size_t *s = shapes[sh];
            tg_tensor *x = rand_tensor((tg_dtype)dt, 1, 4, s), *y;
            tg_tape *t;
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_global_avg_pool2d(t, x, &y));
            CHECK(y->rank == 4 && y->shape[0] == s[0] && y->shape[1] == s[1] && y->shape[2] == 1 &&
                      y->shape[3] == 1,
                  "global_avg_pool2d shape");
            size_t P = s[0] * s[1], A = s[2] * s[3];
            double yr[16], z[16], *gr = calloc(x->size, sizeof *gr);
            void *seed = make_seed((tg_dtype)dt, P, z);
            for (size_t p = 0; p < P; p++) {
                yr[p] = 0;
                for (size_t i = 0; i < A; i++)
                    yr[p] += tg_get(x, p * A + i) / (double)A, gr[p * A + i] = z[p] / (double)A;
            }
            CHECK_OK(tg_backward_seed(t, y, seed));
            CHECK(worst_err(y, 0, yr, P) <= tol_of((tg_dtype)dt) &&
                      worst_err(x, 1, gr, x->size) <= tol_of((tg_dtype)dt),
                  "global_avg_pool2d (%zux%zux%zux%zu)", s[0], s[1], s[2], s[3]);
            free(gr), free(seed);
            tg_tensor_free(x);
            tg_tape_free(t);
        }
}

/* ---------------------------------------------------------------- normalisation references */

/* Sets of x to normalise: element i is in set set_of(i) and has affine
 * index aff_of(i). The reference forward and the closed-form r-map
 *   x̄ = (s/M)·(M·g − Σg − x̂·Σ g x̂),  g = γζ
 * (derived by hand, not the op's route through μ and σ²). */
typedef struct nref {
    size_t n, K, A;
    size_t *set, *aff;
} nref;

static void ref_norm(const nref *r, const double *x, const double *gam, const double *bet,
                     double eps, const double *z, double *y, double *gx, double *gg, double *gb) {
    double *mu = calloc(r->K, sizeof *mu), *var = calloc(r->K, sizeof *var),
           *cnt = calloc(r->K, sizeof *cnt), *sg = calloc(r->K, sizeof *sg),
           *sgx = calloc(r->K, sizeof *sgx);
    for (size_t i = 0; i < r->n; i++)
        mu[r->set[i]] += x[i], cnt[r->set[i]] += 1;
    for (size_t k = 0; k < r->K; k++)
        mu[k] /= cnt[k];
    for (size_t i = 0; i < r->n; i++)
        var[r->set[i]] += (x[i] - mu[r->set[i]]) * (x[i] - mu[r->set[i]]);
    for (size_t k = 0; k < r->K; k++)
        var[k] = 1 / sqrt(var[k] / cnt[k] + eps); /* now s */
    for (size_t i = 0; i < r->n; i++) {
        size_t k = r->set[i], a = r->aff[i];
        double xh = (x[i] - mu[k]) * var[k], ga = gam ? gam[a] : 1;
        y[i] = ga * xh + (bet ? bet[a] : 0);
        if (gg) gg[a] += z[i] * xh;
        if (gb) gb[a] += z[i];
        sg[k] += ga * z[i], sgx[k] += ga * z[i] * xh;
    }
    for (size_t i = 0; i < r->n; i++) {
        size_t k = r->set[i];
        double xh = (x[i] - mu[k]) * var[k], g = (gam ? gam[r->aff[i]] : 1) * z[i];
        gx[i] = var[k] / cnt[k] * (cnt[k] * g - sg[k] - xh * sgx[k]);
    }
    free(mu), free(var), free(cnt), free(sg), free(sgx);
}

enum { BN, GN, LN };

/* Run one norm (kind) on x with γ, β (or none) and compare with ref_norm. */
static void norm_case(int kind, tg_dtype dt, int rank, const size_t *shape, int affine, int groups,
                      int n_norm) {
    tg_tensor *x = rand_tensor(dt, 1, rank, shape), *g = NULL, *b = NULL, *y = NULL;
    size_t C = shape[1], n = x->size, S = 1, A = C, D = 1;
    for (int a = 2; a < rank; a++)
        S *= shape[a];
    for (int a = rank - n_norm; kind == LN && a < rank; a++)
        D *= shape[a];
    if (kind == LN) A = D;
    const size_t *ashape = kind == LN ? shape + rank - n_norm : &C;
    int arank = kind == LN ? n_norm : 1;
    if (affine) g = rand_tensor(dt, 1, arank, ashape), b = rand_tensor(dt, 1, arank, ashape);
    nref r = {n, 0, A, malloc(n * sizeof(size_t)), malloc(n * sizeof(size_t))};
    for (size_t i = 0; i < n; i++) {
        size_t ch = (i / S) % C, ex = i / (S * C);
        if (kind == BN) r.set[i] = ch, r.aff[i] = ch;
        if (kind == GN) r.set[i] = ex * (size_t)groups + ch / (C / (size_t)groups), r.aff[i] = ch;
        if (kind == LN) r.set[i] = i / D, r.aff[i] = i % D;
    }
    r.K = kind == BN ? C : kind == GN ? shape[0] * (size_t)groups : n / D;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    const double eps = 1e-5;
    if (kind == BN) CHECK_OK(tg_batch_norm(t, x, g, b, NULL, NULL, 1, 0.1, eps, &y));
    if (kind == GN) CHECK_OK(tg_group_norm(t, x, groups, g, b, eps, &y));
    if (kind == LN) CHECK_OK(tg_layer_norm(t, x, n_norm, shape + rank - n_norm, g, b, eps, &y));
    double *xs = malloc(n * sizeof *xs), *yr = malloc(n * sizeof *yr), *z = malloc(n * sizeof *z),
           *gx = malloc(n * sizeof *gx), *gg = calloc(A, sizeof *gg), *gb = calloc(A, sizeof *gb),
           *gv = malloc(A * sizeof *gv), *bv = malloc(A * sizeof *bv);
    for (size_t i = 0; i < n; i++)
        xs[i] = tg_get(x, i);
    for (size_t a = 0; affine && a < A; a++)
        gv[a] = tg_get(g, a), bv[a] = tg_get(b, a);
    void *seed = make_seed(dt, n, z);
    ref_norm(&r, xs, affine ? gv : NULL, affine ? bv : NULL, eps, z, yr, gx, gg, gb);
    if (y) CHECK_OK(tg_backward_seed(t, y, seed));
    /* The r-map's cancellation (M·g − Σg − x̂Σgx̂) loses about log2(M) bits
     * more than the values: 1e-11 in float64, 1e-4 in float32. */
    double tv = tol_of(dt), tgx = dt == TG_F32 ? 1e-4 : 1e-11;
    double e[4] = {y ? worst_err(y, 0, yr, n) : 1, worst_err(x, 1, gx, n),
                   affine ? worst_err(g, 1, gg, A) : 0, affine ? worst_err(b, 1, gb, A) : 0};
    static const char *const names[] = {"batch_norm", "group_norm", "layer_norm"};
    char sx[64];
    CHECK(e[0] <= tv && e[1] <= tgx && e[2] <= tgx && e[3] <= tgx,
          "%s %s %s affine %d groups %d n_norm %d: errors y %g, x̄ %g, γ̄ %g, β̄ %g", names[kind],
          dt ? "f64" : "f32", tg_shape_str(x, sx, sizeof sx), affine, groups, n_norm, e[0], e[1],
          e[2], e[3]);
    free(xs), free(yr), free(z), free(gx), free(gg), free(gb), free(gv), free(bv), free(seed);
    free(r.set), free(r.aff);
    tg_tensor_free(x), tg_tensor_free(g), tg_tensor_free(b);
    tg_tape_free(t);
}

static void test_norm_grid(void) {
    static const size_t s4[][4] = {
        {1, 1, 2, 2}, {2, 3, 4, 5}, {1, 4, 3, 1}, {5, 2, 1, 1}, {3, 6, 2, 3}};
    static const size_t s2[][2] = {{2, 1}, {7, 3}, {16, 5}};
    for (int dt = 0; dt < 2; dt++)
        for (int affine = 0; affine < 2; affine++) {
            for (size_t k = 0; k < 5; k++) {
                norm_case(BN, (tg_dtype)dt, 4, s4[k], affine, 0, 0);
                for (size_t G = 1; G <= s4[k][1]; G++)
                    if (s4[k][1] % G == 0) norm_case(GN, (tg_dtype)dt, 4, s4[k], affine, (int)G, 0);
                for (int nn = 1; nn <= 3; nn++)
                    norm_case(LN, (tg_dtype)dt, 4, s4[k], affine, 0, nn);
            }
            for (size_t k = 0; k < 3; k++) {
                norm_case(BN, (tg_dtype)dt, 2, s2[k], affine, 0, 0);
                norm_case(LN, (tg_dtype)dt, 2, s2[k], affine, 0, 1);
            }
        }
}

/* Eval mode: y = x·α + b per channel with α = γ/√(var + ε), b = β − mean·α,
 * exactly: the values are those products rounded, the r-map of x is ζ·α,
 * and y is linear along any line in x (y(x₀ + 2δ) − y(x₀ + δ) = y(x₀ + δ) −
 * y(x₀) to rounding). Also no derivative reaches the running statistics,
 * and they are not changed. */
static void test_bn_eval_affine(void) {
    for (int dt = 0; dt < 2; dt++) {
        size_t xs[4] = {2, 3, 2, 2}, cs[1] = {3};
        tg_tensor *x = rand_tensor((tg_dtype)dt, 1, 4, xs),
                  *g = rand_tensor((tg_dtype)dt, 1, 1, cs);
        tg_tensor *b = rand_tensor((tg_dtype)dt, 1, 1, cs),
                  *rm = rand_tensor((tg_dtype)dt, 0, 1, cs);
        tg_tensor *rv, *y;
        CHECK_OK(tg_tensor_new(&rv, (tg_dtype)dt, 1, cs));
        for (size_t c = 0; c < 3; c++)
            tg_set(rv, c, 0.5 + c);
        double rm0[3], rv0[3];
        for (size_t c = 0; c < 3; c++)
            rm0[c] = tg_get(rm, c), rv0[c] = tg_get(rv, c);
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_batch_norm(t, x, g, b, rm, rv, 0, 0.1, 1e-5, &y));
        double z[24], worst = 0, worst_g = 0;
        void *seed = make_seed((tg_dtype)dt, 24, z);
        CHECK_OK(tg_backward_seed(t, y, seed));
        for (size_t i = 0; i < 24; i++) {
            size_t c = (i / 4) % 3;
            double al = tg_get(g, c) / sqrt(rv0[c] + 1e-5), bb = tg_get(b, c) - rm0[c] * al;
            double want = dt == TG_F32 ? (double)((float)tg_get(x, i) * (float)al + (float)bb)
                                       : tg_get(x, i) * al + bb;
            worst = fmax(worst, fabs(tg_get(y, i) - want));
            worst_g = fmax(worst_g, fabs(grad_at(x, i) - z[i] * al) / fmax(1, fabs(z[i] * al)));
        }
        /* α and b are rounded once from double: at most one ulp apart, so
         * y within a few ulps of |y| ≲ 10. */
        CHECK(worst <= (dt == TG_F32 ? 1e-5 : 1e-14), "eval affine: worst %g", worst);
        CHECK(worst_g <= tol_of((tg_dtype)dt), "eval: x̄ vs ζα worst %g", worst_g);
        for (size_t c = 0; c < 3; c++)
            CHECK(tg_get(rm, c) == rm0[c] && tg_get(rv, c) == rv0[c], "eval changed running stats");
        tg_tape_free(t);
        /* Linearity along a line through x. */
        double yv[3][24];
        for (int step = 0; step < 3; step++) {
            tg_tensor *xi;
            CHECK_OK(tg_tensor_new(&xi, (tg_dtype)dt, 4, xs));
            for (size_t i = 0; i < 24; i++)
                tg_set(xi, i, tg_get(x, i) + step * 0.25 * (double)(i % 5));
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_batch_norm(t, xi, g, b, rm, rv, 0, 0.1, 1e-5, &y));
            for (size_t i = 0; i < 24; i++)
                yv[step][i] = tg_get(y, i);
            tg_tape_free(t);
            tg_tensor_free(xi);
        }
        double lin = 0;
        for (size_t i = 0; i < 24; i++)
            lin = fmax(lin, fabs((yv[2][i] - yv[1][i]) - (yv[1][i] - yv[0][i])));
        CHECK(lin <= (dt == TG_F32 ? 1e-5 : 1e-13), "eval not affine: second difference %g", lin);
        free(seed);
        tg_tensor_free(x), tg_tensor_free(g), tg_tensor_free(b), tg_tensor_free(rm),
            tg_tensor_free(rv);
    }
}

/* The running statistics after one training step, against torch 1.13:
 *   x = torch.sin(torch.arange(24, dtype=torch.float64) * 0.7).reshape(2, 3, 2, 2)
 *   rm = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
 *   rv = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
 *   g = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
 *   b = torch.tensor([0.25, 0.0, -1.0], dtype=torch.float64)
 *   y = F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-5)
 * rm, rv afterwards and y[0, 0] (flattened, first 4) are pasted below. A
 * tg_replay of the tape leaves the running statistics as they are. */
static void test_running_stats(void) {
    static const double rm_want[3] = {0.12025498956361329, -0.21454931868177815,
                                      0.3048512902700915};
    static const double rv_want[3] = {0.94484715908011696, 1.8399362250018145, 0.48956640170654236};
    static const double y_want[4] = {-0.47445470592643285, 1.0681223760424914, 1.8852013529296383,
                                     1.5924972146937895};
    tg_tensor *x, *g, *b, *rm, *rv, *y;
    size_t xs[4] = {2, 3, 2, 2}, cs[1] = {3};
    CHECK_OK(tg_tensor_new(&x, TG_F64, 4, xs));
    for (size_t i = 0; i < 24; i++)
        tg_set(x, i, sin((double)i * 0.7));
    CHECK_OK(tg_param_new(&g, TG_F64, 1, cs));
    CHECK_OK(tg_param_new(&b, TG_F64, 1, cs));
    CHECK_OK(tg_tensor_new(&rm, TG_F64, 1, cs));
    CHECK_OK(tg_tensor_new(&rv, TG_F64, 1, cs));
    CHECK_OK(tg_fill(g, (double[]){1.5, -0.5, 2.0}, 3));
    CHECK_OK(tg_fill(b, (double[]){0.25, 0.0, -1.0}, 3));
    CHECK_OK(tg_fill(rm, (double[]){0.1, -0.2, 0.3}, 3));
    CHECK_OK(tg_fill(rv, (double[]){1.0, 2.0, 0.5}, 3));
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_batch_norm(t, x, g, b, rm, rv, 1, 0.1, 1e-5, &y));
    for (size_t c = 0; c < 3; c++) {
        CHECK_CLOSE(tg_get(rm, c), rm_want[c], 1e-15);
        CHECK_CLOSE(tg_get(rv, c), rv_want[c], 1e-15);
    }
    for (size_t i = 0; i < 4; i++)
        CHECK_CLOSE(tg_get(y, i), y_want[i], 1e-14);
    CHECK_OK(tg_replay(t));
    for (size_t c = 0; c < 3; c++)
        CHECK(tg_get(rm, c) == rm_want[c] || fabs(tg_get(rm, c) - rm_want[c]) < 1e-15,
              "replay moved running_mean");
    tg_tape_free(t);
    tg_tensor_free(x), tg_tensor_free(g), tg_tensor_free(b), tg_tensor_free(rm), tg_tensor_free(rv);
}

/* Dropout on N×C×H×W: each element 0 or x/(1 − p), the r-map the same mask,
 * about 1 − p kept; eval the identity. */
static void test_dropout_nchw(void) {
    size_t xs[4] = {4, 3, 8, 8};
    tg_tensor *x = rand_tensor(TG_F64, 1, 4, xs), *y;
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_dropout(t, x, 0.25, 1, &r, &y));
    CHECK(y->rank == 4 && y->size == x->size, "dropout shape");
    CHECK_OK(tg_backward_seed(t, y, ((double *)x->data))); /* ζ = x: x̄ = m·x */
    size_t kept = 0, bad = 0;
    for (size_t i = 0; i < x->size; i++) {
        double v = tg_get(y, i), xv = tg_get(x, i);
        int k = v != 0;
        kept += k;
        bad += !(k ? fabs(v - xv / 0.75) <= 1e-15 * fabs(v) : 1);
        bad += grad_at(x, i) != v; /* the same mask and scale */
    }
    CHECK(bad == 0, "dropout on NCHW: %zu wrong elements", bad);
    CHECK(kept > 0.7 * (double)x->size && kept < 0.8 * (double)x->size, "kept %zu of %zu", kept,
          x->size);
    CHECK_OK(tg_dropout(t, x, 0.25, 0, NULL, &y));
    for (size_t i = 0; i < x->size; i++)
        bad += tg_get(y, i) != tg_get(x, i);
    CHECK(bad == 0, "dropout eval on NCHW is not the identity");
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void) {
    tg_tensor *x, *x2, *g4, *g3, *rm, *rv, *y = (tg_tensor *)1;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, TG_F64, 4, (size_t[]){1, 3, 2, 2}));
    CHECK_OK(tg_tensor_new(&x2, TG_F64, 2, (size_t[]){2, 2}));
    CHECK_OK(tg_param_new(&g4, TG_F64, 1, (size_t[]){4}));
    CHECK_OK(tg_param_new(&g3, TG_F64, 1, (size_t[]){3}));
    CHECK_OK(tg_tensor_new(&rm, TG_F64, 1, (size_t[]){3}));
    CHECK_OK(tg_tensor_new(&rv, TG_F64, 1, (size_t[]){4}));
    int k3[2] = {3, 3}, k2[2] = {2, 2}, p2[2] = {2, 2}, s0[2] = {0, 1};
    /* a kernel larger than the input: output size 0 */
    EXPECT_ERR(tg_max_pool2d(t, x, k3, NULL, NULL, NULL, 0, &y), TG_ERR_SHAPE,
               "max_pool2d: output size (0x0) is too small: input (1x3x2x2), kernel (3x3)");
    CHECK(y == NULL, "out not cleared");
    EXPECT_ERR(tg_avg_pool2d(t, x, k3, NULL, NULL, 0, 1, &y), TG_ERR_SHAPE,
               "avg_pool2d: output size");
    EXPECT_ERR(tg_max_pool2d(t, x, k2, NULL, p2, NULL, 0, &y), TG_ERR_VALUE,
               "max_pool2d: padding (2x2) must be at most half the kernel (2x2)");
    EXPECT_ERR(tg_max_pool2d(t, x, k2, s0, NULL, NULL, 0, &y), TG_ERR_VALUE,
               "max_pool2d: stride (0x1) must be in [1,");
    EXPECT_ERR(tg_max_pool2d(t, x2, k2, NULL, NULL, NULL, 0, &y), TG_ERR_SHAPE,
               "max_pool2d: input must be 3-D (C x H x W) or 4-D (N x C x H x W), got (2x2)");
    EXPECT_ERR(tg_max_pool2d(t, x, NULL, NULL, NULL, NULL, 0, &y), TG_ERR_ARG, "kernel is NULL");
    EXPECT_ERR(tg_global_avg_pool2d(t, x2, &y), TG_ERR_SHAPE, "global_avg_pool2d: input must be");
    /* batch_norm */
    EXPECT_ERR(tg_batch_norm(t, x, g4, g4, NULL, NULL, 1, 0.1, 1e-5, &y), TG_ERR_SHAPE,
               "batch_norm: weight (4) and bias (4) must have the shape (C) of the channels of "
               "input (1x3x2x2)");
    EXPECT_ERR(tg_batch_norm(t, x, g3, NULL, NULL, NULL, 1, 0.1, 1e-5, &y), TG_ERR_ARG,
               "both weight and bias");
    EXPECT_ERR(tg_batch_norm(t, x, g3, g3, rm, rv, 1, 0.1, 1e-5, &y), TG_ERR_SHAPE,
               "batch_norm: running_mean (3) and running_var (4) must be (3) for input (1x3x2x2)");
    EXPECT_ERR(tg_batch_norm(t, x, g3, g3, rm, g3, 0, 0.1, 1e-5, &y), TG_ERR_ARG,
               "must be constant tensors");
    EXPECT_ERR(tg_batch_norm(t, x, g3, g3, NULL, NULL, 0, 0.1, 1e-5, &y), TG_ERR_ARG,
               "eval mode needs running_mean");
    EXPECT_ERR(tg_batch_norm(t, x, g3, g3, NULL, NULL, 1, 0.1, -1, &y), TG_ERR_VALUE,
               "batch_norm: eps = -1");
    tg_tensor *one;
    CHECK_OK(tg_tensor_new(&one, TG_F64, 2, (size_t[]){1, 3}));
    EXPECT_ERR(tg_batch_norm(t, one, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5, &y), TG_ERR_SHAPE,
               "batch_norm: expected more than 1 value per channel when training, got input "
               "(1x3)");
    /* group_norm, layer_norm */
    EXPECT_ERR(tg_group_norm(t, x, 2, NULL, NULL, 1e-5, &y), TG_ERR_SHAPE,
               "group_norm: num_groups 2 does not divide the 3 channels of input (1x3x2x2)");
    EXPECT_ERR(tg_group_norm(t, x, 3, g4, g4, 1e-5, &y), TG_ERR_SHAPE, "weight (4) and bias (4)");
    EXPECT_ERR(tg_layer_norm(t, x, 2, (size_t[]){3, 2}, NULL, NULL, 1e-5, &y), TG_ERR_SHAPE,
               "layer_norm: normalized_shape (3x2) of 2 axes is not the trailing shape of input "
               "(1x3x2x2)");
    EXPECT_ERR(tg_layer_norm(t, x, 1, (size_t[]){2}, g3, g3, 1e-5, &y), TG_ERR_SHAPE,
               "layer_norm: weight (3) and bias (3) must have the shape of its normalized axes");
    EXPECT_ERR(tg_layer_norm(t, x, 0, (size_t[]){2}, NULL, NULL, 1e-5, &y), TG_ERR_ARG,
               "layer_norm: normalized_shape needs 1..8 sizes");
    CHECK(tg_tape_size(t) == 0, "a failed call recorded %d ops", tg_tape_size(t));
    tg_tensor_free(x), tg_tensor_free(x2), tg_tensor_free(g4), tg_tensor_free(g3);
    tg_tensor_free(rm), tg_tensor_free(rv), tg_tensor_free(one);
    tg_tape_free(t);
}

/* Issue 16: max pooling 2×2 (stride 2) on rows of 37 outputs, long enough
 * for the vectorised row loop's body (16 and 8 lanes) and its tail, with
 * values from {0, 1, 2} (ties everywhere), NaN and −inf sprinkled in; W
 * even and odd (a last column no window reads), on 1 and 2 threads (the
 * input is large enough to be split into planes). Values and adjoints
 * exactly as the reference: the first maximum, the last NaN. */
static void test_max_long_rows(void) {
    static const size_t shapes[][4] = {{4, 8, 30, 74}, {3, 5, 7, 75}};
    for (int th = 1; th <= 2; th++)
        for (int dt = 0; dt < 2; dt++)
            for (size_t sh = 0; sh < 2; sh++) {
                const size_t *shape = shapes[sh];
                const pool q = {{2, 2}, {2, 2}, {0, 0}, {1, 1}, 0, 0};
                long H = (long)shape[2], W = (long)shape[3], OH = H / 2, OW = W / 2;
                size_t planes = shape[0] * shape[1], n = planes * (size_t)(OH * OW);
                tg_tensor *x = NULL, *y = NULL;
                tg_tape *t = NULL;
                CHECK_OK(tg_set_threads(th));
                CHECK_OK(tg_tape_new(&t));
                CHECK_OK(tg_param_new(&x, (tg_dtype)dt, 4, shape));
                double *xs = malloc(x->size * sizeof *xs), *yr = malloc(n * sizeof *yr),
                       *gr = calloc(x->size, sizeof *gr), *z = malloc(n * sizeof *z);
                long *win = malloc(n * sizeof *win);
                for (size_t i = 0; i < x->size; i++) {
                    uint64_t r = tg_rng_next(&rng) % 64;
                    xs[i] = r == 0 ? NAN : r == 1 ? -INFINITY : (double)(r % 3);
                    tg_set(x, i, xs[i]);
                }
                ref_max(xs, planes, H, W, &q, OH, OW, yr, win);
                void *seed = make_seed((tg_dtype)dt, n, z);
                for (size_t o = 0; o < n; o++)
                    gr[win[o]] += z[o];
                CHECK_OK(tg_max_pool2d(t, x, q.k, NULL, NULL, NULL, 0, &y));
                if (y) CHECK_OK(tg_backward_seed(t, y, seed));
                double ey = y ? worst_err(y, 0, yr, n) : 1, eg = worst_err(x, 1, gr, x->size);
                CHECK(ey == 0 && eg <= tol_of((tg_dtype)dt),
                      "max_pool2d long rows %s (%zux%zux%zux%zu) threads %d: value err %g, "
                      "adjoint err %g",
                      dt ? "f64" : "f32", shape[0], shape[1], shape[2], shape[3], th, ey, eg);
                free(xs), free(yr), free(gr), free(z), free(win), free(seed);
                tg_tensor_free(x);
                tg_tape_free(t);
            }
    CHECK_OK(tg_set_threads(1));
}

int main(void) {
    tg_rng_seed(&rng, 15);
    test_pool_grid();
    test_max_ties_nan();
    test_global_avg();
    test_norm_grid();
    test_bn_eval_affine();
    test_running_stats();
    test_dropout_nchw();
    test_errors();
    test_max_long_rows(); /* issue 16 */
    return check_summary();
}
