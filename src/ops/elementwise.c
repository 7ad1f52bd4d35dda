/* Elementwise ops on tensors of one shape: add, sub, Hadamard mul, scale.
 * All are bilinear or linear, so d and r read off directly:
 *   d(a ± b) = ȧ ± ḃ,          r(ζ) = (ζ, ±ζ)
 *   d(a ⊙ b) = ȧ ⊙ b + a ⊙ ḃ,  r(ζ) = (ζ ⊙ b, ζ ⊙ a)
 *   d(c·a)   = c·ȧ,            r(ζ) = c·ζ
 * Range: each value and adjoint is one correctly rounded IEEE operation, so
 * exact to ½ ulp for every input; overflow gives ±inf, inf − inf and 0·inf
 * give NaN, and NaN propagates (as PyTorch). */
#include "ops.h"

static tg_status same_check(tg_call *c, char *msg, size_t len) {
    tg_status s = tg_check_same(c, msg, len);
    if (!s) tg_out_like(c, c->in[0]);
    return s;
}

static void two_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    tg_sample_2d(s, 1, m, k, TG_DOM_REAL);
}

/* ---------------------------------------------------------------- add, sub */

/* y = a + sign·b */
static void addsub_forward(const tg_call *c, int sign) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *a = c->in[0]->data; const real *b = c->in[1]->data;
                real *y = c->out->data; const real sg = (real)sign;
                for (size_t i = 0; i < n; i++) y[i] = a[i] + sg * b[i];);
}

static void addsub_jvp(const tg_call *c, const void *const *tin, void *tout, int sign) {
    size_t n = c->out->size;
    TG_DISPATCH(
        c->out->dtype, const real *ta = tin[0]; const real *tb = tin[1]; real *t = tout;
        const real sg = (real)sign;
        for (size_t i = 0; i < n; i++) { t[i] = (ta ? ta[i] : 0) + (tb ? sg * tb[i] : 0); });
}

static void addsub_vjp(const tg_call *c, const void *gout, void *const *gin, int sign) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *g = gout; real *ga = gin[0]; real *gb = gin[1];
                const real sg = (real)sign; if (ga) for (size_t i = 0; i < n; i++) ga[i] += g[i];
                if (gb) for (size_t i = 0; i < n; i++) gb[i] += sg * g[i];);
}

static void add_forward(tg_call *c) {
    addsub_forward(c, 1);
}
static void add_jvp(const tg_call *c, const void *const *t, void *o) {
    addsub_jvp(c, t, o, 1);
}
static void add_vjp(const tg_call *c, const void *g, void *const *o) {
    addsub_vjp(c, g, o, 1);
}
static void sub_forward(tg_call *c) {
    addsub_forward(c, -1);
}
static void sub_jvp(const tg_call *c, const void *const *t, void *o) {
    addsub_jvp(c, t, o, -1);
}
static void sub_vjp(const tg_call *c, const void *g, void *const *o) {
    addsub_vjp(c, g, o, -1);
}

/* r = identity for both inputs of add, for the first of sub (identity_r). */
const tg_op tg_op_add = {.name = "add",
                         .arity = 2,
                         .check = same_check,
                         .forward = add_forward,
                         .jvp = add_jvp,
                         .vjp = add_vjp,
                         .sample = two_sample,
                         .identity_r = 3u};
const tg_op tg_op_sub = {.name = "sub",
                         .arity = 2,
                         .check = same_check,
                         .forward = sub_forward,
                         .jvp = sub_jvp,
                         .vjp = sub_vjp,
                         .sample = two_sample,
                         .identity_r = 1u};

tg_status tg_add(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_add, a, b, NULL, out);
}

tg_status tg_sub(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_sub, a, b, NULL, out);
}

/* ---------------------------------------------------------------- mul (Hadamard) */

static void mul_forward(tg_call *c) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *a = c->in[0]->data; const real *b = c->in[1]->data;
                real *y = c->out->data; for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];);
}

static void mul_jvp(const tg_call *c, const void *const *tin, void *tout) {
    size_t n = c->out->size;
    TG_DISPATCH(
        c->out->dtype, const real *a = c->in[0]->data; const real *b = c->in[1]->data;
        const real *ta = tin[0]; const real *tb = tin[1]; real *t = tout;
        for (size_t i = 0; i < n;
             i++) { t[i] = (ta ? ta[i] * b[i] : 0) + (tb ? a[i] * tb[i] : 0); });
}

/* r(ζ) = (ζ ⊙ b, ζ ⊙ a); reads only a, b, ζ so gin[0] == gin[1] is fine. */
static void mul_vjp(const tg_call *c, const void *gout, void *const *gin) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *a = c->in[0]->data; const real *b = c->in[1]->data;
                const real *g = gout; real *ga = gin[0]; real *gb = gin[1];
                if (ga) for (size_t i = 0; i < n; i++) ga[i] += g[i] * b[i];
                if (gb) for (size_t i = 0; i < n; i++) gb[i] += g[i] * a[i];);
}

const tg_op tg_op_mul = {.name = "mul",
                         .arity = 2,
                         .check = same_check,
                         .forward = mul_forward,
                         .jvp = mul_jvp,
                         .vjp = mul_vjp,
                         .sample = two_sample};

tg_status tg_mul(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_mul, a, b, NULL, out);
}

/* ---------------------------------------------------------------- scale */

static tg_status scale_check(tg_call *c, char *msg, size_t len) {
    if (!isfinite(c->attr.f[0])) {
        snprintf(msg, len, "the constant must be finite, got %g", c->attr.f[0]);
        return TG_ERR_VALUE;
    }
    tg_out_like(c, c->in[0]);
    return TG_OK;
}

/* y = c·x, written (acc = 0) or added (acc = 1): forward, d and r alike. */
static void scale_map(const tg_call *c, const void *x, void *y, int acc) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *xs = x; real *ys = y; const real k = (real)c->attr.f[0];
                for (size_t i = 0; i < n; i++) ys[i] = (acc ? ys[i] : 0) + k * xs[i];);
}

static void scale_forward(tg_call *c) {
    scale_map(c, c->in[0]->data, c->out->data, 0);
}
static void scale_jvp(const tg_call *c, const void *const *tin, void *tout) {
    scale_map(c, tin[0], tout, 0);
}
static void scale_vjp(const tg_call *c, const void *gout, void *const *gin) {
    scale_map(c, gout, gin[0], 1);
}

static void scale_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    s->attr.f[0] = -1.5;
}

const tg_op tg_op_scale = {.name = "scale",
                           .arity = 1,
                           .check = scale_check,
                           .forward = scale_forward,
                           .jvp = scale_jvp,
                           .vjp = scale_vjp,
                           .sample = scale_sample};

tg_status tg_scale(tg_tape *t, const tg_tensor *a, double c, tg_tensor **out) {
    tg_attr at = {.f = {c, 0}, .i = {0, 0}};
    return tg_apply1(t, &tg_op_scale, a, &at, out);
}
