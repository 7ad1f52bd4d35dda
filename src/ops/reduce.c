/* Reductions: sum and mean of all elements (→ a scalar) or along one axis
 * (the axis is removed). Both are linear maps R, so d = R and r = Rᵀ:
 * r broadcasts ζ back over the reduced axis (times 1/len for the mean).
 * Range: sums accumulate in double, so a float32 result is the exact sum
 * rounded once unless the float64 sum itself cancels (error ≤ len·u·Σ|x|
 * in double); ±inf and NaN propagate; the r-maps read no input values. */
#include "ops.h"

/* The reduction as outer × len × inner: out[o, j] = k · Σ_l x[o, l, j]. */
typedef struct geom {
    size_t outer, len, inner;
    double k;
} geom;

static geom geometry(const tg_call *c, int all, int mean) {
    const tg_tensor *x = c->in[0];
    geom g = {1, x->size, 1, 1.0};
    if (!all) {
        int ax = (int)c->attr.i[0];
        g.outer = g.inner = 1;
        for (int i = 0; i < x->rank; i++) {
            if (i < ax) g.outer *= x->shape[i];
            if (i > ax) g.inner *= x->shape[i];
        }
        g.len = x->shape[ax];
    }
    if (mean) g.k = 1.0 / (double)g.len;
    return g;
}

/* y = R(x) (forward and d-map). */
static void reduce_map(const tg_call *c, int all, int mean, const void *x, void *y) {
    geom g = geometry(c, all, mean);
    TG_DISPATCH(
        c->out->dtype, const real *xs = x; real *ys = y; for (size_t o = 0; o < g.outer; o++) {
            for (size_t j = 0; j < g.inner; j++) {
                double s = 0; /* double accumulator: sums of many float32 stay accurate */
                for (size_t l = 0; l < g.len; l++)
                    s += xs[(o * g.len + l) * g.inner + j];
                ys[o * g.inner + j] = (real)(g.k * s);
            }
        });
}

/* gx += Rᵀ(ζ): ζ broadcast back over the reduced axis. */
static void reduce_adjoint(const tg_call *c, int all, int mean, const void *gout, void *gin) {
    geom g = geometry(c, all, mean);
    TG_DISPATCH(
        c->out->dtype, const real *gy = gout; real *gx = gin; const real k = (real)g.k;
        for (size_t o = 0; o < g.outer; o++) {
            for (size_t l = 0; l < g.len; l++)
                for (size_t j = 0; j < g.inner; j++)
                    gx[(o * g.len + l) * g.inner + j] += k * gy[o * g.inner + j];
        });
}

static tg_status all_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    tg_out_scalar(c);
    return TG_OK;
}

static tg_status axis_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long ax = c->attr.i[0];
    if (ax < 0) ax += x->rank; /* −1 is the last axis */
    if (x->rank < 1 || ax < 0 || ax >= x->rank) {
        char b[64];
        snprintf(msg, len, "axis %ld out of range for shape %s", c->attr.i[0], SHP(b, x));
        return TG_ERR_SHAPE;
    }
    c->attr.i[0] = ax;
    c->out->rank = x->rank - 1;
    for (int i = 0, k = 0; i < x->rank; i++)
        if (i != ax) c->out->shape[k++] = x->shape[i];
    return TG_OK;
}

static void all_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
}

/* Reduce a 3-D input along its middle axis: outer, len and inner all > 1. */
static void axis_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3;
    s->shape[0][0] = m;
    s->shape[0][1] = k;
    s->shape[0][2] = n;
    s->domain[0] = TG_DOM_REAL;
    s->attr.i[0] = 1;
}

#define REDUCTION(VAR, NAME, FN, ALL, MEAN, CHECK, SAMPLE)                                         \
    static void FN##_forward(tg_call *c) {                                                         \
        reduce_map(c, ALL, MEAN, c->in[0]->data, c->out->data);                                    \
    }                                                                                              \
    static void FN##_jvp(const tg_call *c, const void *const *tin, void *tout) {                   \
        reduce_map(c, ALL, MEAN, tin[0], tout);                                                    \
    }                                                                                              \
    static void FN##_vjp(const tg_call *c, const void *gout, void *const *gin) {                   \
        reduce_adjoint(c, ALL, MEAN, gout, gin[0]);                                                \
    }                                                                                              \
    const tg_op VAR = {.name = NAME,                                                               \
                       .arity = 1,                                                                 \
                       .check = CHECK,                                                             \
                       .forward = FN##_forward,                                                    \
                       .jvp = FN##_jvp,                                                            \
                       .vjp = FN##_vjp,                                                            \
                       .sample = SAMPLE};

REDUCTION(tg_op_sum, "sum", sum, 1, 0, all_check, all_sample)
REDUCTION(tg_op_mean, "mean", mean, 1, 1, all_check, all_sample)
REDUCTION(tg_op_sum_axis, "sum_axis", sum_axis, 0, 0, axis_check, axis_sample)
REDUCTION(tg_op_mean_axis, "mean_axis", mean_axis, 0, 1, axis_check, axis_sample)

tg_status tg_sum(tg_tape *t, const tg_tensor *a, tg_tensor **out) {
    return tg_apply1(t, &tg_op_sum, a, NULL, out);
}

tg_status tg_mean(tg_tape *t, const tg_tensor *a, tg_tensor **out) {
    return tg_apply1(t, &tg_op_mean, a, NULL, out);
}

tg_status tg_sum_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out) {
    tg_attr at = {.f = {0, 0}, .i = {axis, 0}};
    return tg_apply1(t, &tg_op_sum_axis, a, &at, out);
}

tg_status tg_mean_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out) {
    tg_attr at = {.f = {0, 0}, .i = {axis, 0}};
    return tg_apply1(t, &tg_op_mean_axis, a, &at, out);
}
