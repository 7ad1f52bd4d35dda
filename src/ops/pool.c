/* Pooling over the last two axes of N×C×H×W (or C×H×W) tensors, NCHW as
 * PyTorch: torch.nn.functional.max_pool2d, avg_pool2d and
 * adaptive_avg_pool2d(x, 1) (global average pooling).
 *
 * attr (max_pool2d, avg_pool2d): v[0..1] kernel (kH, kW), v[2..3] stride,
 * v[4..5] padding, v[6..7] dilation (max_pool2d only; avg_pool2d has none),
 * i[0] ceil_mode, i[1] count_include_pad (avg_pool2d). Output size per axis,
 * PyTorch's pooling_output_shape:
 *   o = ⌊(in + 2p − d(k − 1) − 1 + (ceil ? s − 1 : 0)) / s⌋ + 1,
 * less one under ceil_mode if the last window would start past in + p.
 * Every plane (n, c) is pooled alone; window (oh, ow) reads rows
 * oh·s − p + a·d, a < k (and the same for columns), padding outside.
 *
 * max_pool2d: y_o = max of its window's real elements (padding is −inf),
 * selected as PyTorch's CPU kernel does: the first real element, then any
 * v > m or v NaN replaces it, so the FIRST of tied maxima wins and a NaN
 * wins (the last NaN, as PyTorch). The winner's index i(o) is kept in
 * c->saved; y is then the selection y_o = x_{i(o)}, linear once i is fixed:
 *   d: ẏ_o = ξ_{i(o)},   r: x̄_{i(o)} += ζ_o.
 * A window of padding only (possible with dilation) gives −inf and no
 * adjoint (PyTorch reads out of its window there).
 *
 * avg_pool2d: y_o = Σ_{window ∩ input} x / D_o, D_o = the window's size
 * clipped to the padded input (count_include_pad, PyTorch's default) or to
 * the input (count_include_pad = 0); a window that misses the input gives
 * 0. Linear: d is the same average of ξ, r spreads ζ_o/D_o back.
 *
 * global_avg_pool2d: y_p = Σ_{plane p} x / (H·W), kept as p×1×1:
 *   d: the mean of ξ, r: x̄ += ζ_p/(H·W). Sums in double. */
#include "ops.h"

/* Attributes are bounded so that sizes and products stay far from overflow. */
#define POOL_MAX_ATTR (1L << 24)

typedef struct pgeom {
    size_t planes, H, W, OH, OW;
    long k[2], s[2], p[2], d[2];
} pgeom;

static long floor_div(long a, long b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* PyTorch's pooling_output_shape. */
static long pool_out(long in, long k, long s, long p, long d, int ceil_mode) {
    long o = floor_div(in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

static void pool_geom(const tg_call *c, int dilated, pgeom *g) {
    const tg_tensor *x = c->in[0];
    g->H = x->shape[x->rank - 2], g->W = x->shape[x->rank - 1];
    g->planes = x->size / (g->H * g->W);
    for (int a = 0; a < 2; a++) {
        g->k[a] = c->attr.v[a], g->s[a] = c->attr.v[2 + a], g->p[a] = c->attr.v[4 + a];
        g->d[a] = dilated ? c->attr.v[6 + a] : 1;
    }
    g->OH = c->out->shape[c->out->rank - 2], g->OW = c->out->shape[c->out->rank - 1];
}

/* Validate attributes and shapes; set the output (…×OH×OW). */
static tg_status pool_check(tg_call *c, char *msg, size_t len, int dilated) {
    const tg_tensor *x = c->in[0];
    char sx[64];
    const long *v = c->attr.v;
    if (x->rank != 3 && x->rank != 4) {
        snprintf(msg, len, "input must be 3-D (C x H x W) or 4-D (N x C x H x W), got %s",
                 SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    static const char *const what[] = {"kernel", "stride", "padding", "dilation"};
    for (int q = 0; q < (dilated ? 4 : 3); q++) {
        long lo = q == 2 ? 0 : 1;
        if (v[2 * q] < lo || v[2 * q + 1] < lo || v[2 * q] > POOL_MAX_ATTR ||
            v[2 * q + 1] > POOL_MAX_ATTR) {
            snprintf(msg, len, "%s (%ldx%ld) must be in [%ld, %ld]", what[q], v[2 * q],
                     v[2 * q + 1], lo, POOL_MAX_ATTR);
            return TG_ERR_VALUE;
        }
    }
    if (v[4] > v[0] / 2 || v[5] > v[1] / 2) {
        snprintf(msg, len, "padding (%ldx%ld) must be at most half the kernel (%ldx%ld)", v[4],
                 v[5], v[0], v[1]);
        return TG_ERR_VALUE;
    }
    long o[2];
    for (int a = 0; a < 2; a++)
        o[a] = pool_out((long)x->shape[x->rank - 2 + a], v[a], v[2 + a], v[4 + a],
                        dilated ? v[6 + a] : 1, c->attr.i[0] != 0);
    if (o[0] < 1 || o[1] < 1) {
        snprintf(msg, len,
                 "output size (%ldx%ld) is too small: input %s, kernel (%ldx%ld), stride "
                 "(%ldx%ld), padding (%ldx%ld), dilation (%ldx%ld)",
                 o[0], o[1], SHP(sx, x), v[0], v[1], v[2], v[3], v[4], v[5], dilated ? v[6] : 1,
                 dilated ? v[7] : 1);
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    c->out->shape[x->rank - 2] = (size_t)o[0], c->out->shape[x->rank - 1] = (size_t)o[1];
    return TG_OK;
}

/* Fill the attr of a 2-D pool from the public arguments (NULL stride: the
 * kernel; NULL padding: 0; NULL dilation: 1). */
static tg_status pool_attr(const char *name, const int *kernel, const int *stride,
                           const int *padding, const int *dilation, tg_attr *at) {
    memset(at, 0, sizeof *at);
    if (!kernel) return tg_fail(TG_ERR_ARG, "%s: kernel is NULL", name);
    for (int a = 0; a < 2; a++) {
        at->v[a] = kernel[a];
        at->v[2 + a] = stride ? stride[a] : kernel[a];
        at->v[4 + a] = padding ? padding[a] : 0;
        at->v[6 + a] = dilation ? dilation[a] : 1;
    }
    return TG_OK;
}

/* ---------------------------------------------------------------- max_pool2d */

static tg_status max_check(tg_call *c, char *msg, size_t len) {
    tg_status s = pool_check(c, msg, len, 1);
    size_t n = 1; /* the output's size: one winner's index per output */
    for (int a = 0; !s && a < c->out->rank; a++)
        n *= c->out->shape[a];
    c->saved_bytes = s ? 0 : n * sizeof(long);
    return s;
}

/* t ? a : b for t in {0, 1} by masks, not branches: GCC turns the
 * ternary into branches in the scalar tail of the row loop below (13 and 5
 * outputs per row in issue 16's CNN, so the tail is most of it), and random
 * data mispredicts them about half the time. */
#define SEL_FN(NAME, real, bits)                                                                   \
    static inline real NAME(int t, real a, real b) {                                               \
        bits ua, ub, m = -(bits)t;                                                                 \
        memcpy(&ua, &a, sizeof a), memcpy(&ub, &b, sizeof b);                                      \
        ua = (ua & m) | (ub & ~m);                                                                 \
        memcpy(&a, &ua, sizeof a);                                                                 \
        return a;                                                                                  \
    }
SEL_FN(sel_f32, float, uint32_t)
SEL_FN(sel_f64, double, uint64_t)
static inline long sel_long(int t, long a, long b) {
    return b ^ ((a ^ b) & -(long)t);
}

/* One output row of a 2×2 stride-2 max pool without padding: rows r0 and
 * r1 of the input, n outputs; the winners' indices from base (r0[0]'s) and
 * the row length W. The same order and rule as the general loop (so the
 * same winners), with selects so that the loop vectorises. */
#define MAX2_ROW(NAME, real, SEL)                                                                  \
    TG_SIMD_CLONES static void NAME(const real *restrict r0, const real *restrict r1, size_t n,    \
                                    long base, long W, real *restrict y, long *restrict arg) {     \
        for (size_t j = 0; j < n; j++) {                                                           \
            const real b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];                        \
            const long i = base + 2 * (long)j;                                                     \
            real m = r0[2 * j];                                                                    \
            long k = i;                                                                            \
            int t = (b > m) | (b != b);                                                            \
            m = SEL(t, b, m), k = sel_long(t, i + 1, k);                                           \
            t = (c > m) | (c != c);                                                                \
            m = SEL(t, c, m), k = sel_long(t, i + W, k);                                           \
            t = (d > m) | (d != d);                                                                \
            m = SEL(t, d, m), k = sel_long(t, i + W + 1, k);                                       \
            y[j] = m, arg[j] = k;                                                                  \
        }                                                                                          \
    }
MAX2_ROW(max2_row_f32, float, sel_f32)
MAX2_ROW(max2_row_f64, double, sel_f64)

/* Planes [lo, hi) of max_forward. Windows that lie inside the input (no
 * padding, dilation 1, all of them inside: the usual kernel = stride case)
 * take loops without bounds tests; 2×2 stride 2, the vectorised rows. */
static void max_planes(const tg_call *c, const pgeom *g, size_t lo, size_t hi) {
    long *arg = c->saved;
    const size_t HW = g->H * g->W;
    const long W = (long)g->W;
    const int inside = g->p[0] == 0 && g->p[1] == 0 && g->d[0] == 1 && g->d[1] == 1 &&
                       (long)(g->OH - 1) * g->s[0] + g->k[0] <= (long)g->H &&
                       (long)(g->OW - 1) * g->s[1] + g->k[1] <= W;
    const int two = inside && g->k[0] == 2 && g->k[1] == 2 && g->s[0] == 2 && g->s[1] == 2;
    const int f32 = c->out->dtype == TG_F32;
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; real *Y = c->out->data;
        for (size_t pl = lo; pl < hi; pl++) {
            const real *xp = X + pl * HW;
            for (size_t oh = 0; oh < g->OH; oh++) {
                const size_t o0 = (pl * g->OH + oh) * g->OW;
                const long h0 = (long)oh * g->s[0] - g->p[0];
                if (two) {
                    const long base = (long)(pl * HW) + h0 * W;
                    if (f32)
                        max2_row_f32((const float *)(const void *)(xp + h0 * W),
                                     (const float *)(const void *)(xp + h0 * W + W), g->OW, base, W,
                                     (float *)(void *)(Y + o0), arg + o0);
                    else
                        max2_row_f64((const double *)(const void *)(xp + h0 * W),
                                     (const double *)(const void *)(xp + h0 * W + W), g->OW, base,
                                     W, (double *)(void *)(Y + o0), arg + o0);
                    continue;
                }
                for (size_t ow = 0; ow < g->OW; ow++) {
                    const long w0 = (long)ow * g->s[1] - g->p[1];
                    long best = -1;
                    real m = -INFINITY;
                    if (inside) {
                        best = h0 * W + w0, m = xp[best];
                        for (long a = 0; a < g->k[0]; a++)
                            for (long b = 0; b < g->k[1]; b++) {
                                const long i = (h0 + a) * W + w0 + b;
                                const real v = xp[i];
                                if (v > m || v != v) m = v, best = i;
                            }
                    } else
                        for (long a = 0; a < g->k[0]; a++) {
                            const long h = h0 + a * g->d[0];
                            if (h < 0 || h >= (long)g->H) continue;
                            for (long b = 0; b < g->k[1]; b++) {
                                const long w = w0 + b * g->d[1];
                                if (w < 0 || w >= W) continue;
                                const real v = xp[h * W + w];
                                if (best < 0 || v > m || v != v) m = v, best = h * W + w;
                            }
                        }
                    Y[o0 + ow] = m;
                    arg[o0 + ow] = best < 0 ? -1 : (long)(pl * HW) + best;
                }
            }
        });
}

/* Planes are independent (each writes its own outputs, and its winners'
 * adjoints land in its own input plane): whole planes go to each thread. */
typedef struct max_job {
    const tg_call *c;
    const void *z; /* vjp: ζ */
    void *gx;      /* vjp: x̄, or NULL for the forward */
    pgeom g;
} max_job;

static void max_part(void *ctx, int part, int parts) {
    max_job *j = ctx;
    size_t lo, hi;
    tg_part_range(j->g.planes, part, parts, 1, &lo, &hi);
    if (!j->gx) {
        max_planes(j->c, &j->g, lo, hi);
        return;
    }
    const long *arg = j->c->saved;
    const size_t per = j->g.OH * j->g.OW;
    TG_DISPATCH(j->c->out->dtype, const real *z = j->z; real *gx = j->gx;
                for (size_t o = lo * per; o < hi * per; o++) if (arg[o] >= 0) gx[arg[o]] += z[o];);
}

/* Threads only where a part has enough work to pay for the hand-off. */
static void max_run(const tg_call *c, const void *z, void *gx) {
    max_job j = {.c = c, .z = z, .gx = gx};
    pool_geom(c, 1, &j.g);
    int parts = c->in[0]->size >= (1u << 16) ? tg_get_threads() : 1;
    if ((size_t)parts > j.g.planes) parts = (int)j.g.planes;
    tg_parallel(max_part, &j, parts);
}

static void max_forward(tg_call *c) {
    max_run(c, NULL, NULL);
}

static void max_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const long *arg = c->saved;
    TG_DISPATCH(c->out->dtype, const real *t = tin[0]; real *to = tout;
                for (size_t o = 0; o < c->out->size; o++) to[o] = arg[o] < 0 ? 0 : t[arg[o]];);
}

static void max_vjp(const tg_call *c, const void *gout, void *const *gin) {
    if (gin[0]) max_run(c, gout, gin[0]);
}

/* N×C×H×W from m, k and n, with attributes that vary with n: kernel 2
 * stride 2; dilation 2 stride 1; padding 1 with a 3×2 kernel and strides
 * (1, 2); ceil_mode with kernel 3, stride 2, padding 1. Every element lies
 * in some window (so a NaN anywhere shows). Distinct values: no ties. */
static void pool_sample(size_t m, size_t k, size_t n, tg_sample *s, int dilated) {
    static const long cfg[4][9] = {
        /* kH kW sH sW pH pW dH dW ceil */
        {2, 2, 2, 2, 0, 0, 1, 1, 0},
        {2, 2, 1, 1, 0, 0, 2, 2, 0},
        {3, 2, 1, 2, 1, 1, 1, 1, 0},
        {3, 3, 2, 2, 1, 1, 1, 1, 1},
    };
    const long *q = cfg[n % 4];
    s->rank[0] = 4;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = 4, s->shape[0][3] = 3 + n % 2;
    s->domain[0] = dilated ? TG_DOM_DISTINCT : TG_DOM_REAL;
    for (int a = 0; a < 8; a++)
        s->attr.v[a] = q[a];
    if (!dilated) s->attr.v[6] = s->attr.v[7] = 1, s->attr.i[1] = n % 3 != 0;
    s->attr.i[0] = q[8];
}

static void max_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    pool_sample(m, k, n, s, 1);
}

/* Second order (issue 18): y is one input element per window (the argmax,
 * saved by forward), so the r-map scatters ζ to fixed positions: constant
 * on each piece where the winners stay put, r_const (term zero almost
 * everywhere; at a tie neither derivative is defined, as in PyTorch). */
const tg_op tg_op_max_pool2d = {.name = "max_pool2d",
                                .arity = 1,
                                .check = max_check,
                                .forward = max_forward,
                                .jvp = max_jvp,
                                .vjp = max_vjp,
                                .sample = max_sample,
                                .r_const = 1u};

tg_status tg_max_pool2d(tg_tape *t, const tg_tensor *x, const int *kernel, const int *stride,
                        const int *padding, const int *dilation, int ceil_mode, tg_tensor **out) {
    tg_attr at;
    if (out) *out = NULL;
    tg_status s = pool_attr("max_pool2d", kernel, stride, padding, dilation, &at);
    if (s) return s;
    at.i[0] = ceil_mode != 0;
    return tg_apply1(t, &tg_op_max_pool2d, x, &at, out);
}

/* ---------------------------------------------------------------- avg_pool2d */

static tg_status avg_check(tg_call *c, char *msg, size_t len) {
    return pool_check(c, msg, len, 0);
}

/* PyTorch's window of output index o on one axis: [lo, hi) inside the
 * input, and the divisor's factor (count_include_pad: clipped to the padded
 * input only). */
static void avg_window(long o, long k, long s, long p, long in, int include_pad, long *lo, long *hi,
                       long *count) {
    long a = o * s - p, b = a + k < in + p ? a + k : in + p;
    long span = b - a;
    *lo = a < 0 ? 0 : a, *hi = b < in ? b : in;
    *count = include_pad ? span : *hi - *lo;
}

/* dst = the window averages of src (adjoint = 0), or src += ... spread
 * back: dst (the input's shape) += ζ_o / D_o over each window (adjoint = 1). */
static void avg_apply(const tg_call *c, const void *src, void *dst, int adjoint) {
    pgeom g;
    pool_geom(c, 0, &g);
    const int inc = c->attr.i[1] != 0;
    const size_t HW = g.H * g.W;
    TG_DISPATCH(
        c->out->dtype, const real *S = src; real *D = dst;
        for (size_t pl = 0; pl < g.planes; pl++) for (size_t oh = 0; oh < g.OH; oh++) {
            long h0, h1, ch, w0, w1, cw;
            avg_window((long)oh, g.k[0], g.s[0], g.p[0], (long)g.H, inc, &h0, &h1, &ch);
            for (size_t ow = 0; ow < g.OW; ow++) {
                avg_window((long)ow, g.k[1], g.s[1], g.p[1], (long)g.W, inc, &w0, &w1, &cw);
                const size_t o = (pl * g.OH + oh) * g.OW + ow;
                const int empty = h0 >= h1 || w0 >= w1;
                const double div = (double)(ch * cw);
                if (adjoint) {
                    const real z = (real)(S[o] / div);
                    for (long h = h0; !empty && h < h1; h++)
                        for (long w = w0; w < w1; w++)
                            D[pl * HW + (size_t)(h * (long)g.W + w)] += z;
                } else {
                    double acc = 0;
                    for (long h = h0; !empty && h < h1; h++)
                        for (long w = w0; w < w1; w++)
                            acc += S[pl * HW + (size_t)(h * (long)g.W + w)];
                    D[o] = empty ? 0 : (real)(acc / div);
                }
            }
        });
}

static void avg_forward(tg_call *c) {
    avg_apply(c, c->in[0]->data, c->out->data, 0);
}

static void avg_jvp(const tg_call *c, const void *const *tin, void *tout) {
    avg_apply(c, tin[0], tout, 0);
}

static void avg_vjp(const tg_call *c, const void *gout, void *const *gin) {
    if (gin[0]) avg_apply(c, gout, gin[0], 1);
}

static void avg_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    pool_sample(m, k, n, s, 0);
}

/* Second order: linear in x (fixed window weights): r_const, term zero. */
const tg_op tg_op_avg_pool2d = {.name = "avg_pool2d",
                                .arity = 1,
                                .check = avg_check,
                                .forward = avg_forward,
                                .jvp = avg_jvp,
                                .vjp = avg_vjp,
                                .sample = avg_sample,
                                .r_const = 1u};

tg_status tg_avg_pool2d(tg_tape *t, const tg_tensor *x, const int *kernel, const int *stride,
                        const int *padding, int ceil_mode, int count_include_pad, tg_tensor **out) {
    tg_attr at;
    if (out) *out = NULL;
    tg_status s = pool_attr("avg_pool2d", kernel, stride, padding, NULL, &at);
    if (s) return s;
    at.i[0] = ceil_mode != 0, at.i[1] = count_include_pad != 0;
    return tg_apply1(t, &tg_op_avg_pool2d, x, &at, out);
}

/* ---------------------------------------------------------------- global_avg_pool2d */

static tg_status gap_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    char sx[64];
    if (x->rank != 3 && x->rank != 4) {
        snprintf(msg, len, "input must be 3-D (C x H x W) or 4-D (N x C x H x W), got %s",
                 SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    c->out->shape[x->rank - 2] = c->out->shape[x->rank - 1] = 1;
    return TG_OK;
}

static size_t gap_area(const tg_call *c) {
    return c->in[0]->size / c->out->size;
}

/* dst_p = mean of src over plane p (the forward and the d-map). */
static void gap_mean(const tg_call *c, const void *src, void *dst) {
    const size_t A = gap_area(c);
    TG_DISPATCH(
        c->out->dtype, const real *S = src; real *D = dst;
        for (size_t p = 0; p < c->out->size; p++) {
            double acc = 0;
            for (size_t i = 0; i < A; i++)
                acc += S[p * A + i];
            D[p] = (real)(acc / (double)A);
        });
}

static void gap_forward(tg_call *c) {
    gap_mean(c, c->in[0]->data, c->out->data);
}

static void gap_jvp(const tg_call *c, const void *const *tin, void *tout) {
    gap_mean(c, tin[0], tout);
}

static void gap_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const size_t A = gap_area(c);
    if (!gin[0]) return;
    TG_DISPATCH(
        c->out->dtype, const real *z = gout; real *gx = gin[0];
        for (size_t p = 0; p < c->out->size; p++) {
            const real v = (real)(z[p] / (double)A);
            for (size_t i = 0; i < A; i++)
                gx[p * A + i] += v;
        });
}

static void gap_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 4, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = 2, s->shape[0][3] = n;
}

/* Second order: linear in x (a plane mean): r_const, term zero. */
const tg_op tg_op_global_avg_pool2d = {.name = "global_avg_pool2d",
                                       .arity = 1,
                                       .check = gap_check,
                                       .forward = gap_forward,
                                       .jvp = gap_jvp,
                                       .vjp = gap_vjp,
                                       .sample = gap_sample,
                                       .r_const = 1u};

tg_status tg_global_avg_pool2d(tg_tape *t, const tg_tensor *x, tg_tensor **out) {
    return tg_apply1(t, &tg_op_global_avg_pool2d, x, NULL, out);
}
