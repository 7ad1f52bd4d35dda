/* Second-order maps of the reductions, normalisations, convolutions and l2
 * (issue 18) against PyTorch float64 double backward: Hv of
 * f = ⟨ζ, op(params)⟩ for fixed inputs, directions and ζ given by formulas
 * that tests/gen_hvp_ops_ref.py repeats (tests/hvp_ops_ref.h holds its
 * output). float64 to 1e-12 relative to max(1, |Hv|∞): both sides compute
 * the same exact product and differ by rounding only (a few ulps times the
 * sums of at most 24 terms). float32 against the same values, to 1e-4:
 * its inputs, ζ and v are rounded to 24 bits (6e-8) and the normalisations
 * amplify relative errors by s³·Σ|terms| ≈ 10²; the measured worst is
 * logged. Then the kinks: std of a constant set and norm of the zero
 * vector (0: the first-order maps' convention; torch 1.13 gives 0 and NaN).
 * test_ops checks every op's map by symmetry and finite differences; this
 * checks them against an independent implementation, and that they
 * compose in two small networks (check_composite). */
#include "check.h"
#include "hvp_ops_ref.h"
#include "tapegrad.h"

#include <math.h>
#include <stdlib.h>

/* The formulas of gen_hvp_ops_ref.py. */
static double value(int j, size_t i) {
    double x = (double)i;
    return j == 0 ? sin(0.7 * x + 0.3) : j == 1 ? 1 + 0.3 * cos(0.9 * x) : 0.2 * sin(0.5 * x + 1);
}
static double vdir(int j, size_t i) {
    return sin(1.1 * (double)i + 0.5 + j);
}
static double zeta(size_t i) {
    return cos(1.3 * (double)i + 0.2);
}

typedef tg_status (*build_fn)(tg_tape *t, tg_tensor *const *p, tg_tensor **out);

enum { MAXP = 3 };

typedef struct hcase {
    const char *name;
    int np;
    int rank[MAXP];
    size_t shape[MAXP][4];
    build_fn build;
    const double *ref;
    size_t nref;
} hcase;

static const int dim1[1] = {1};

static tg_status b_lse(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_logsumexp(t, p[0], dim1, 1, 0, o);
}
static tg_status b_var(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_var(t, p[0], dim1, 1, 1, 0, o);
}
static tg_status b_std(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_std(t, p[0], dim1, 1, 0, 0, o);
}
static tg_status b_norm(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_norm(t, p[0], dim1, 1, 0, o);
}
static tg_status b_layer_norm(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    const size_t ns[1] = {4};
    return tg_layer_norm(t, p[0], 1, ns, p[1], p[2], 1e-5, o);
}
static tg_status b_batch_norm(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_batch_norm(t, p[0], p[1], p[2], NULL, NULL, 1, 0.1, 1e-5, o);
}
static tg_status b_group_norm(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_group_norm(t, p[0], 2, p[1], p[2], 1e-5, o);
}
/* Running statistics rm_c = 0.1c, rv_c = 0.5 + 0.25c: constants kept
 * until the tape is freed (the tape records a stack of them). */
static tg_tensor *running[2];
static tg_status b_batch_norm_eval(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    const size_t C = 3;
    for (int q = 0; q < 2; q++) {
        tg_status s = tg_tensor_new(&running[q], p[0]->dtype, 1, &C);
        if (s) return s;
        for (size_t c = 0; c < C; c++)
            tg_set(running[q], c, q ? 0.5 + 0.25 * (double)c : 0.1 * (double)c);
    }
    return tg_batch_norm(t, p[0], p[1], p[2], running[0], running[1], 0, 0.1, 1e-5, o);
}
static tg_status b_conv2d(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    tg_conv2d_opts op = tg_conv2d_defaults();
    op.stride[0] = 1, op.stride[1] = 2;
    for (int k = 0; k < 4; k++)
        op.padding[k] = 1;
    return tg_conv2d(t, p[0], p[1], NULL, &op, o);
}
static tg_status b_conv_transpose2d(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    tg_conv2d_opts op = tg_conv2d_defaults();
    op.stride[0] = op.stride[1] = 2;
    op.padding[0] = op.padding[1] = 1; /* PyTorch's padding=(1, 0) */
    return tg_conv_transpose2d(t, p[0], p[1], NULL, &op, o);
}
static tg_status b_l2(tg_tape *t, tg_tensor *const *p, tg_tensor **o) {
    return tg_l2(t, p[0], 0.7, 3, o);
}

#define REF(NAME) ref_##NAME, sizeof ref_##NAME / sizeof ref_##NAME[0]
static const hcase cases[] = {
    {"logsumexp", 1, {2}, {{2, 4}}, b_lse, REF(lse)},
    {"var", 1, {2}, {{2, 4}}, b_var, REF(var)},
    {"std", 1, {2}, {{2, 4}}, b_std, REF(std)},
    {"norm", 1, {2}, {{2, 4}}, b_norm, REF(norm)},
    {"layer_norm", 3, {3, 1, 1}, {{2, 3, 4}, {4}, {4}}, b_layer_norm, REF(layer_norm)},
    {"batch_norm", 3, {4, 1, 1}, {{2, 3, 2, 2}, {3}, {3}}, b_batch_norm, REF(batch_norm)},
    {"group_norm", 3, {3, 1, 1}, {{2, 4, 3}, {4}, {4}}, b_group_norm, REF(group_norm)},
    {"batch_norm_eval",
     3,
     {3, 1, 1},
     {{2, 3, 2}, {3}, {3}},
     b_batch_norm_eval,
     REF(batch_norm_eval)},
    {"conv2d", 2, {4, 4}, {{1, 2, 4, 4}, {3, 2, 2, 2}}, b_conv2d, REF(conv2d)},
    {"conv_transpose2d",
     2,
     {4, 4},
     {{1, 2, 3, 3}, {2, 3, 2, 2}},
     b_conv_transpose2d,
     REF(conv_transpose2d)},
    {"l2", 1, {1}, {{5}}, b_l2, REF(l2)},
};

/* Element i of a buffer of dtype dt. */
static double get(tg_dtype dt, const void *b, size_t i) {
    return dt == TG_F32 ? ((const float *)b)[i] : ((const double *)b)[i];
}
static void put(tg_dtype dt, void *b, size_t i, double v) {
    if (dt == TG_F32)
        ((float *)b)[i] = (float)v;
    else
        ((double *)b)[i] = v;
}

/* Hv of case h in dtype dt against the reference; returns the largest
 * error relative to max(1, |ref|∞). */
static double run_case(const hcase *h, tg_dtype dt) {
    tg_tape *t;
    tg_tensor *p[MAXP] = {0}, *out = NULL;
    void *v[MAXP] = {0}, *hv[MAXP] = {0}, *z = NULL;
    size_t es = dt == TG_F32 ? sizeof(float) : sizeof(double), n = 0;
    double worst = 0, scale = 1;
    CHECK_OK(tg_tape_new(&t));
    for (int j = 0; j < h->np; j++) {
        CHECK_OK(tg_param_new(&p[j], dt, h->rank[j], h->shape[j]));
        v[j] = malloc(p[j]->size * es), hv[j] = malloc(p[j]->size * es);
        for (size_t i = 0; i < p[j]->size; i++) {
            tg_set(p[j], i, value(j, i));
            put(dt, v[j], i, vdir(j, i));
        }
        n += p[j]->size;
    }
    CHECK(n == h->nref, "%s: %zu parameters, %zu reference values", h->name, n, h->nref);
    CHECK_OK(h->build(t, p, &out));
    if (out && n == h->nref) {
        z = malloc(out->size * es);
        for (size_t i = 0; i < out->size; i++)
            put(dt, z, i, zeta(i));
        CHECK_OK(tg_hvp_seed(t, out, z, h->np, p, (const void *const *)v, hv));
        for (size_t k = 0; k < n; k++)
            scale = fmax(scale, fabs(h->ref[k]));
        for (int j = 0, k = 0; j < h->np; j++)
            for (size_t i = 0; i < p[j]->size; i++, k++) {
                double e = fabs(get(dt, hv[j], i) - h->ref[k]);
                worst = e > worst || e != e ? e : worst;
            }
        worst /= scale;
    }
    for (int j = 0; j < h->np; j++)
        tg_tensor_free(p[j]), free(v[j]), free(hv[j]);
    for (int q = 0; q < 2; q++)
        tg_tensor_free(running[q]), running[q] = NULL;
    free(z);
    tg_tape_free(t);
    return worst;
}

/* The kinks, on a rank-1 x of 4 (f = op(x), ζ = 1): std of a constant set
 * (s = 0) and norm of the zero vector (n = 0) have Hv = 0, the derivative
 * of their first-order maps' gradient 0 there. torch 1.13 (float64,
 * torch.autograd.grad twice) gives 0 for std and NaN for vector_norm: the
 * latter a deviation (docs/hessian.md). */
static void check_kinks(void) {
    const size_t n4 = 4;
    double v[4] = {1, -2, 0.5, 3}, hv[4];
    const void *vs[1] = {v};
    void *hvs[1] = {hv};
    for (int k = 0; k < 2; k++) {
        tg_tape *t;
        tg_tensor *x, *y;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_param_new(&x, TG_F64, 1, &n4));
        for (size_t i = 0; i < 4; i++)
            tg_set(x, i, k ? 0.0 : 0.7);
        CHECK_OK(k ? tg_norm(t, x, NULL, 0, 0, &y) : tg_std(t, x, NULL, 0, 0, 0, &y));
        CHECK_OK(tg_hvp(t, y, 1, &x, vs, hvs));
        for (int i = 0; i < 4; i++)
            CHECK(hv[i] == 0, "%s at its kink: Hv[%d] = %g, want 0", k ? "norm" : "std", i, hv[i]);
        tg_tensor_free(x);
        tg_tape_free(t);
    }
}

/* A leaf of the given shape holding value(j, ·): a parameter or a constant. */
static tg_tensor *leaf(int is_param, int j, int rank, const size_t *shape) {
    tg_tensor *x = NULL;
    CHECK_OK((is_param ? tg_param_new : tg_tensor_new)(&x, TG_F64, rank, shape));
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, value(j, i));
    return x;
}

/* The maps compose: tg_hessian_check (symmetry to 1e-12, every column
 * against differences of gradients) on two small networks made of this
 * file's ops with the others (views handing adjoints over, r_const ops,
 * fused losses):
 *   cnn: conv2d (pad 1) → channel_bias → batch_norm → tanh → max_pool2d →
 *        flatten → matmul → softmax_ce, parameters w, b, γ, β, W2 (50);
 *   seq: group_norm → silu → conv1d → layer_norm (no affine) → logsumexp →
 *        std, parameters x, γ, β, w (56). */
static void check_composite(void) {
    const size_t sx[4] = {2, 1, 4, 4}, sw[4] = {2, 1, 3, 3}, s2[1] = {2}, sW[2] = {8, 3};
    const size_t sl[1] = {2}, qx[3] = {2, 4, 3}, q4[1] = {4}, qw[3] = {3, 4, 2};
    tg_tape *t;
    tg_tensor *a, *b, *o;
    tg_check_report r;
    CHECK_OK(tg_tape_new(&t));
    tg_tensor *x = leaf(0, 0, 4, sx), *w = leaf(1, 2, 4, sw), *bias = leaf(1, 2, 1, s2);
    tg_tensor *ga = leaf(1, 1, 1, s2), *be = leaf(1, 2, 1, s2), *W2 = leaf(1, 0, 2, sW);
    tg_tensor *lab = leaf(0, 0, 1, sl);
    tg_set(lab, 0, 0), tg_set(lab, 1, 2);
    tg_conv2d_opts op = tg_conv2d_defaults();
    for (int k = 0; k < 4; k++)
        op.padding[k] = 1;
    const int k2[2] = {2, 2};
    CHECK_OK(tg_conv2d(t, x, w, bias, &op, &a));
    CHECK_OK(tg_batch_norm(t, a, ga, be, NULL, NULL, 1, 0.1, 1e-5, &b));
    CHECK_OK(tg_tanh(t, b, &a));
    CHECK_OK(tg_max_pool2d(t, a, k2, NULL, NULL, NULL, 0, &b));
    CHECK_OK(tg_flatten(t, b, 1, -1, &a));
    CHECK_OK(tg_matmul(t, a, W2, &b));
    CHECK_OK(tg_softmax_ce(t, b, lab, &o));
    tg_tensor *ps[5] = {w, bias, ga, be, W2};
    CHECK_OK(tg_hessian_check(t, o, 5, ps, NULL, &r));
    CHECK(r.ok && r.symmetry_err <= 1e-12, "cnn: hessian check (symmetry %g)", r.symmetry_err);
    tg_tape_reset(t);
    tg_tensor *xs = leaf(1, 0, 3, qx), *g4 = leaf(1, 1, 1, q4), *b4 = leaf(1, 2, 1, q4);
    tg_tensor *w1 = leaf(1, 1, 3, qw);
    const size_t ln[1] = {2};
    const int last[1] = {2};
    CHECK_OK(tg_group_norm(t, xs, 2, g4, b4, 1e-5, &a));
    CHECK_OK(tg_silu(t, a, &b));
    CHECK_OK(tg_conv1d(t, b, w1, NULL, NULL, &a));
    CHECK_OK(tg_layer_norm(t, a, 1, ln, NULL, NULL, 1e-5, &b));
    CHECK_OK(tg_logsumexp(t, b, last, 1, 0, &a));
    CHECK_OK(tg_std(t, a, NULL, 0, 1, 0, &o));
    tg_tensor *qs[4] = {xs, g4, b4, w1};
    CHECK_OK(tg_hessian_check(t, o, 4, qs, NULL, &r));
    CHECK(r.ok && r.symmetry_err <= 1e-12, "seq: hessian check (symmetry %g)", r.symmetry_err);
    tg_tensor *all[] = {x, w, bias, ga, be, W2, lab, xs, g4, b4, w1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tg_tensor_free(all[i]);
    tg_tape_free(t);
}

int main(void) {
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double e64 = run_case(&cases[c], TG_F64), e32 = run_case(&cases[c], TG_F32);
        printf("%-18s float64 %.2e  float32 %.2e\n", cases[c].name, e64, e32);
        CHECK(e64 <= 1e-12, "%s float64: relative error %g against torch", cases[c].name, e64);
        CHECK(e32 <= 1e-4, "%s float32: relative error %g against torch", cases[c].name, e32);
    }
    check_kinks();
    check_composite();
    return check_summary();
}
