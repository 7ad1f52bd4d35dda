/* Second order (issue 18): tg_hvp, tg_hvp_seed, tg_ggn, tg_hessian_check.
 *  - known Hessians written out here (a product, the seed's logistic
 *    regression) against tg_hvp on basis vectors;
 *  - an op without a second-order map is refused by name, never a product;
 *  - tg_hessian_check catches a wrong map (symmetry and finite differences);
 *  - float32 agrees with float64; a repeated call allocates nothing. */
#include "check.h"
#include "tapegrad.h"

#include <stdlib.h>
#include <string.h>

/* A user op y = x³ (float64) with d- and r-maps; its second-order map is
 * absent (cube_op), right (6x·ẋ⊙ζ), or wrong by a factor (cube_bad_op). */
static tg_status cube_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    c->out->rank = c->in[0]->rank;
    for (int i = 0; i < TG_MAX_RANK; i++)
        c->out->shape[i] = c->in[0]->shape[i];
    return TG_OK;
}
static void cube_forward(tg_call *c) {
    const double *x = c->in[0]->data;
    double *y = c->out->data;
    for (size_t i = 0; i < c->out->size; i++)
        y[i] = x[i] * x[i] * x[i];
}
static void cube_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const double *x = c->in[0]->data, *t = tin[0];
    double *o = tout;
    for (size_t i = 0; i < c->out->size; i++)
        o[i] = 3 * x[i] * x[i] * t[i];
}
static void cube_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const double *x = c->in[0]->data, *g = gout;
    double *gi = gin[0];
    for (size_t i = 0; i < c->out->size; i++)
        gi[i] += 3 * x[i] * x[i] * g[i];
}
/* ∂/∂ε 3(x + εẋ)²·ζ = 6x·ẋ·ζ */
static void cube_dot(const tg_call *c, const void *const *tin, const void *tout, const void *gout,
                     void *const *gin) {
    (void)tout;
    const double *x = c->in[0]->data, *t = tin[0], *g = gout;
    double *gi = gin[0];
    for (size_t i = 0; gi && i < c->out->size; i++)
        gi[i] += 6 * x[i] * t[i] * g[i];
}
/* wrong: 5x instead of 6x */
static void cube_bad_dot(const tg_call *c, const void *const *tin, const void *tout,
                         const void *gout, void *const *gin) {
    (void)tout;
    const double *x = c->in[0]->data, *t = tin[0], *g = gout;
    double *gi = gin[0];
    for (size_t i = 0; gi && i < c->out->size; i++)
        gi[i] += 5 * x[i] * t[i] * g[i];
}
/* wrong and asymmetric: the tangent of the next element */
static void cube_asym_dot(const tg_call *c, const void *const *tin, const void *tout,
                          const void *gout, void *const *gin) {
    (void)tout;
    const double *x = c->in[0]->data, *t = tin[0], *g = gout;
    double *gi = gin[0];
    size_t n = c->out->size;
    for (size_t i = 0; gi && i < n; i++)
        gi[i] += 6 * x[i] * t[(i + 1) % n] * g[i];
}
#define CUBE_OP(VAR, NAME, DOT)                                                                    \
    static const tg_op VAR = {.name = NAME,                                                        \
                              .arity = 1,                                                          \
                              .check = cube_check,                                                 \
                              .forward = cube_forward,                                             \
                              .jvp = cube_jvp,                                                     \
                              .vjp = cube_vjp,                                                     \
                              .vjp_dot = DOT};
CUBE_OP(cube_op, "cube_without_map", NULL)
CUBE_OP(cube_good_op, "cube", cube_dot)
CUBE_OP(cube_bad_op, "cube_bad", cube_bad_dot)
CUBE_OP(cube_asym_op, "cube_asym", cube_asym_dot)

static tg_tensor *param(tg_dtype dt, size_t n, double first, double step) {
    tg_tensor *p;
    CHECK_OK(tg_param_new(&p, dt, 1, &n));
    for (size_t i = 0; i < n; i++)
        tg_set(p, i, first + step * (double)i);
    return p;
}

/* f = ⟨ζ, x ⊙ y⟩ has Hessian [[0, diag ζ], [diag ζ, 0]]: Hv = (ζ ⊙ v_y,
 * ζ ⊙ v_x), exactly (one rounded product each: 0 tolerance would do in
 * float64; float32 rounds the inputs, so 1e-6 relative there). */
static void check_product(tg_dtype dt) {
    enum { N = 5 };
    tg_tape *t;
    tg_tensor *x = param(dt, N, 0.3, -0.2), *y = param(dt, N, -1.1, 0.45), *z;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_mul(t, x, y, &z));
    double zeta[N], vx[N], vy[N];
    float zf[N], vxf[N], vyf[N], hxf[N], hyf[N];
    double hx[N], hy[N];
    for (int i = 0; i < N; i++) {
        zeta[i] = 0.7 - 0.3 * i, vx[i] = 1.0 + i, vy[i] = 0.5 - i;
        zf[i] = (float)zeta[i], vxf[i] = (float)vx[i], vyf[i] = (float)vy[i];
    }
    tg_tensor *ps[2] = {x, y};
    int f32 = dt == TG_F32;
    const void *v[2] = {f32 ? (void *)vxf : (void *)vx, f32 ? (void *)vyf : (void *)vy};
    void *hv[2] = {f32 ? (void *)hxf : (void *)hx, f32 ? (void *)hyf : (void *)hy};
    CHECK_OK(tg_hvp_seed(t, z, f32 ? (const void *)zf : (const void *)zeta, 2, ps, v, hv));
    for (int i = 0; i < N; i++) {
        CHECK_CLOSE(f32 ? hxf[i] : hx[i], zeta[i] * vy[i], f32 ? 1e-6 : 1e-15);
        CHECK_CLOSE(f32 ? hyf[i] : hy[i], zeta[i] * vx[i], f32 ? 1e-6 : 1e-15);
    }
    /* the parameters' gradients are untouched */
    const unsigned char *gb = x->grad;
    int clean = 1;
    for (size_t i = 0; i < N * (f32 ? sizeof(float) : sizeof(double)); i++)
        clean &= gb[i] == 0;
    CHECK(clean, "hvp wrote into x's gradient");
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

/* y = x³ then ⟨ζ, y⟩: (Hv)ᵢ = 6xᵢζᵢvᵢ. The op without a map is refused
 * naming it; the right map passes tg_hessian_check; the wrong one fails
 * both halves of it. */
static void check_custom_ops(void) {
    tg_tape *t;
    tg_tensor *x = param(TG_F64, 4, -0.9, 0.6), *y;
    CHECK_OK(tg_tape_new(&t));
    const tg_tensor *in[1] = {x};
    double zeta[4] = {1, -2, 0.5, 3}, v[4] = {0.1, 0.2, -0.3, 0.4}, hv[4];
    const void *vs[1] = {v};
    void *hvs[1] = {hv};
    CHECK_OK(tg_apply(t, &cube_op, 1, in, NULL, &y));
    EXPECT_ERR(tg_hvp_seed(t, y, zeta, 1, &x, vs, hvs), TG_ERR_STATE, "cube_without_map");
    tg_check_report r;
    EXPECT_ERR(tg_hessian_check(t, y, 1, &x, NULL, &r), TG_ERR_STATE, "no second-order map");
    tg_tape_reset(t);
    CHECK_OK(tg_apply(t, &cube_good_op, 1, in, NULL, &y));
    CHECK_OK(tg_hvp_seed(t, y, zeta, 1, &x, vs, hvs));
    for (int i = 0; i < 4; i++)
        CHECK_CLOSE(hv[i], 6 * tg_get(x, i) * zeta[i] * v[i], 1e-15);
    CHECK_OK(tg_hessian_check(t, y, 1, &x, NULL, &r));
    CHECK(r.symmetry_err <= 1e-12, "symmetry error %g", r.symmetry_err);
    tg_tape_reset(t);
    /* a diagonal Hessian is symmetric even when wrong: the finite
     * differences catch it */
    CHECK_OK(tg_apply(t, &cube_bad_op, 1, in, NULL, &y));
    EXPECT_ERR(tg_hessian_check(t, y, 1, &x, NULL, &r), TG_ERR_CHECK, "hessian check: param 0");
    /* an asymmetric wrong map: the symmetry half, before any difference */
    tg_tape_reset(t);
    CHECK_OK(tg_apply(t, &cube_asym_op, 1, in, NULL, &y));
    EXPECT_ERR(tg_hessian_check(t, y, 1, &x, NULL, &r), TG_ERR_CHECK, "<u, Hv>");
    CHECK(r.symmetry_err > 1e-3, "symmetry error %g", r.symmetry_err);
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* After the first call on a graph, tg_hvp allocates nothing (the arena
 * keeps its tangents and adjoint-tangents). */
static void check_no_allocation(void) {
    tg_tape *t;
    tg_tensor *x = param(TG_F64, 6, -0.9, 0.3), *y = param(TG_F64, 6, 0.2, 0.1), *z, *w;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_mul(t, x, y, &z));
    CHECK_OK(tg_mul(t, z, x, &w));
    double zeta[6] = {1, 2, 3, 4, 5, 6}, v[2][6] = {{1}, {0, 1}}, hv[2][6];
    tg_tensor *ps[2] = {x, y};
    const void *vs[2] = {v[0], v[1]};
    void *hvs[2] = {hv[0], hv[1]};
    CHECK_OK(tg_hvp_seed(t, w, zeta, 2, ps, vs, hvs));
    uint64_t before = tg_alloc_count();
    for (int k = 0; k < 3; k++)
        CHECK_OK(tg_hvp_seed(t, w, zeta, 2, ps, vs, hvs));
    CHECK(tg_alloc_count() == before, "%llu allocations in 3 calls",
          (unsigned long long)(tg_alloc_count() - before));
    /* w = x²y: ∂²/∂x₀² = 2y₀ζ₀, ∂²/∂y₁∂x₁ = 2x₁ζ₁ */
    CHECK_CLOSE(hv[0][0], 2 * 0.2 * 1, 1e-15);
    CHECK_CLOSE(hv[0][1], 2 * (-0.6) * 2, 1e-15);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

/* ------------------------------------------------ the seed's logistic regression */

/* Seed 001 §1: a = σ(Xw + b), 𝕁 = mean log-loss over n examples (rows).
 * With X̃ = [X, 1] and θ = (w, b), ∇𝕁 = X̃ᵀ(a − y)/n and the Hessian is
 *   H = X̃ᵀ·diag(a(1 − a))·X̃ / n,
 * written out below in loops. tg_hvp on each basis vector e_j gives column
 * j; to 1e-12 relative to max(1, |H|) (the figure: each entry is a
 * sum of n = 9 products computed two ways, error ~1e-16·n·|terms|). The
 * Gauss-Newton product of bce_logits is H itself (the logits are linear in
 * θ), and the float32 product agrees to 1e-5 (float32 ulp 6e-8 times
 * ~100 operations). */
enum { LR_N = 9, LR_D = 4 };

static tg_tensor *leaf(int param, tg_dtype dt, size_t r, size_t c, tg_rng *g, int labels) {
    tg_tensor *x;
    size_t shape[2] = {r, c};
    CHECK_OK(param ? tg_param_new(&x, dt, 2, shape) : tg_tensor_new(&x, dt, 2, shape));
    for (size_t i = 0; i < x->size; i++)
        tg_set(x, i, labels ? (double)(tg_rng_next(g) % 2) : tg_rng_normal(g));
    return x;
}

/* The cost on t: via 0 bce(σ(z), y), via 1 bce_logits(z, y). */
static tg_tensor *lr_cost(tg_tape *t, tg_tensor *x, tg_tensor *y, tg_tensor *w, tg_tensor *b,
                          int via) {
    tg_tensor *z, *a, *cost = NULL;
    CHECK_OK(tg_matmul(t, x, w, &z));
    CHECK_OK(tg_bias_add(t, z, b, &z));
    if (via == 0) {
        CHECK_OK(tg_sigmoid(t, z, &a));
        CHECK_OK(tg_bce(t, a, y, &cost));
    } else {
        CHECK_OK(tg_bce_logits(t, z, y, &cost));
    }
    return cost;
}

/* Column j of the product (hvp or ggn) on e_j, as doubles, in dtype dt. */
static void lr_columns(tg_dtype dt, int via, int ggn, double H[LR_D + 1][LR_D + 1]) {
    tg_rng g;
    tg_rng_seed(&g, 101);
    tg_tensor *x = leaf(0, dt, LR_N, LR_D, &g, 0), *y = leaf(0, dt, LR_N, 1, &g, 1);
    tg_tensor *w = leaf(1, dt, LR_D, 1, &g, 0), *b = leaf(1, dt, 1, 1, &g, 0);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_tensor *cost = lr_cost(t, x, y, w, b, via), *ps[2] = {w, b};
    for (int j = 0; j <= LR_D; j++) {
        double vw[LR_D] = {0}, vb = 0, hw[LR_D], hb;
        float vwf[LR_D] = {0}, vbf = 0, hwf[LR_D], hbf;
        if (j < LR_D)
            vw[j] = 1, vwf[j] = 1;
        else
            vb = 1, vbf = 1;
        int f = dt == TG_F32;
        const void *v[2] = {f ? (void *)vwf : (void *)vw, f ? (void *)&vbf : (void *)&vb};
        void *hv[2] = {f ? (void *)hwf : (void *)hw, f ? (void *)&hbf : (void *)&hb};
        CHECK_OK(ggn ? tg_ggn(t, cost, 2, ps, v, hv) : tg_hvp(t, cost, 2, ps, v, hv));
        for (int k = 0; k < LR_D; k++)
            H[k][j] = f ? hwf[k] : hw[k];
        H[LR_D][j] = f ? hbf : hb;
    }
    tg_tensor *all[] = {x, y, w, b};
    for (int i = 0; i < 4; i++)
        tg_tensor_free(all[i]);
    tg_tape_free(t);
}

static void check_logistic_regression(void) {
    /* the Hessian by hand, from the same data */
    tg_rng g;
    tg_rng_seed(&g, 101);
    tg_tensor *x = leaf(0, TG_F64, LR_N, LR_D, &g, 0), *y = leaf(0, TG_F64, LR_N, 1, &g, 1);
    tg_tensor *w = leaf(1, TG_F64, LR_D, 1, &g, 0), *b = leaf(1, TG_F64, 1, 1, &g, 0);
    double Xt[LR_N][LR_D + 1], a[LR_N], H[LR_D + 1][LR_D + 1];
    for (int i = 0; i < LR_N; i++) {
        double z = tg_get(b, 0);
        for (int k = 0; k < LR_D; k++)
            z += (Xt[i][k] = tg_get(x, (size_t)(i * LR_D + k))) * tg_get(w, (size_t)k);
        Xt[i][LR_D] = 1;
        a[i] = 1 / (1 + exp(-z));
    }
    for (int j = 0; j <= LR_D; j++)
        for (int k = 0; k <= LR_D; k++) {
            double s = 0;
            for (int i = 0; i < LR_N; i++)
                s += Xt[i][j] * a[i] * (1 - a[i]) * Xt[i][k];
            H[j][k] = s / LR_N;
        }
    for (int via = 0; via < 2; via++)
        for (int ggn = 0; ggn <= via; ggn++) { /* GN = H for bce_logits only */
            double got[LR_D + 1][LR_D + 1], f32[LR_D + 1][LR_D + 1];
            lr_columns(TG_F64, via, ggn, got);
            lr_columns(TG_F32, via, ggn, f32);
            double worst = 0, worst32 = 0;
            for (int j = 0; j <= LR_D; j++)
                for (int k = 0; k <= LR_D; k++) {
                    double sc = fmax(1, fabs(H[j][k]));
                    worst = fmax(worst, fabs(got[j][k] - H[j][k]) / sc);
                    worst32 = fmax(worst32, fabs(f32[j][k] - H[j][k]) / sc);
                }
            CHECK(worst <= 1e-12, "logistic regression via %s %s: relative error %g",
                  via ? "bce_logits" : "bce(sigmoid)", ggn ? "ggn" : "hvp", worst);
            CHECK(worst32 <= 1e-5, "logistic regression f32 via %d ggn %d: relative error %g", via,
                  ggn, worst32);
        }
    tg_tensor *all[] = {x, y, w, b};
    for (int i = 0; i < 4; i++)
        tg_tensor_free(all[i]);
}

/* A two-layer tanh network under softmax_ce: the Hessian is indefinite
 * somewhere (tanh'' changes sign), the Gauss-Newton matrix never: ⟨v, Gv⟩
 * ≥ 0 for every v (up to rounding, −1e-14·‖v‖²), and G is symmetric
 * (⟨u, Gv⟩ = ⟨Gu, v⟩ to 1e-12). tg_ggn refuses a top op that is not a
 * built-in loss. */
static void check_ggn_psd(void) {
    tg_rng g;
    tg_rng_seed(&g, 7);
    tg_tensor *x = leaf(0, TG_F64, 6, 3, &g, 0), *lab, *w1 = leaf(1, TG_F64, 3, 5, &g, 0);
    tg_tensor *w2 = leaf(1, TG_F64, 5, 4, &g, 0);
    CHECK_OK(tg_tensor_new(&lab, TG_F64, 1, (size_t[]){6}));
    for (size_t i = 0; i < 6; i++)
        tg_set(lab, i, (double)(i % 4));
    tg_tape *t;
    tg_tensor *h, *z, *cost;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_matmul(t, x, w1, &h));
    CHECK_OK(tg_tanh(t, h, &h));
    CHECK_OK(tg_matmul(t, h, w2, &z));
    CHECK_OK(tg_softmax_ce(t, z, lab, &cost));
    tg_tensor *ps[2] = {w1, w2};
    enum { P = 15 + 20 };
    double u[P], v[P], gu[P], gv[P], hv[P];
    int negative_h = 0, ok = 1;
    for (int trial = 0; trial < 20; trial++) {
        double vv = 0, vgv = 0, vhv = 0, ugv = 0, guv = 0, scale = 0;
        for (int i = 0; i < P; i++)
            u[i] = tg_rng_normal(&g), v[i] = tg_rng_normal(&g), vv += v[i] * v[i];
        const void *vs[2] = {v, v + 15}, *us[2] = {u, u + 15};
        void *gvs[2] = {gv, gv + 15}, *gus[2] = {gu, gu + 15}, *hvs[2] = {hv, hv + 15};
        CHECK_OK(tg_ggn(t, cost, 2, ps, vs, gvs));
        CHECK_OK(tg_ggn(t, cost, 2, ps, us, gus));
        CHECK_OK(tg_hvp(t, cost, 2, ps, vs, hvs));
        for (int i = 0; i < P; i++) {
            vgv += v[i] * gv[i], vhv += v[i] * hv[i];
            ugv += u[i] * gv[i], guv += gu[i] * v[i];
            scale += fabs(u[i] * gv[i]) + fabs(gu[i] * v[i]);
        }
        ok &= vgv >= -1e-14 * vv;
        ok &= fabs(ugv - guv) <= 1e-12 * scale;
        negative_h |= vhv < 0;
    }
    CHECK(ok, "the Gauss-Newton product is not symmetric positive semi-definite");
    CHECK(negative_h, "no negative curvature found: the test would not tell G from H");
    tg_tensor *top;
    CHECK_OK(tg_tanh(t, cost, &top));
    double v1 = 1, g1;
    const void *vs1[1] = {&v1};
    void *gs1[1] = {&g1};
    EXPECT_ERR(tg_ggn(t, top, 1, ps, vs1, gs1), TG_ERR_ARG, "built-in loss op");
    tg_tensor *all[] = {x, lab, w1, w2};
    for (int i = 0; i < 4; i++)
        tg_tensor_free(all[i]);
    tg_tape_free(t);
}

/* Anomaly mode watches the second-order pass: 1/x at x = 1e-110 has a
 * finite value (1e110) and first derivative (−1e220) but a second
 * derivative 2/x³ that overflows to inf, which must be reported naming
 * reciprocal, not handed back as a product. */
static void check_anomaly(void) {
    tg_tape *t;
    tg_tensor *x = param(TG_F64, 1, 1e-110, 0), *y;
    CHECK_OK(tg_tape_new(&t));
    tg_tape_detect_anomaly(t, 1);
    CHECK_OK(tg_reciprocal(t, x, &y));
    double one = 1, hv;
    const void *v[1] = {&one};
    void *h[1] = {&hv};
    EXPECT_ERR(tg_hvp_seed(t, y, &one, 1, &x, v, h), TG_ERR_NUMERIC, "reciprocal");
    tg_tape_detect_anomaly(t, 0);
    CHECK_OK(tg_hvp_seed(t, y, &one, 1, &x, v, h));
    CHECK(isinf(hv), "2/x^3 at 1e-110 gave %g", hv);
    tg_tensor_free(x);
    tg_tape_free(t);
}

int main(void) {
    check_product(TG_F64);
    check_product(TG_F32);
    check_custom_ops();
    check_no_allocation();
    check_logistic_regression();
    check_ggn_psd();
    check_anomaly();
    return check_summary();
}
