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

int main(void) {
    check_product(TG_F64);
    check_product(TG_F32);
    check_custom_ops();
    check_no_allocation();
    return check_summary();
}
