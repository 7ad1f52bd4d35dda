/* Shape and movement: reshape, flatten, squeeze, unsqueeze (the same
 * elements in the same order under a new shape), permute (and transpose),
 * slice, pad, broadcast_to, concat and stack. Each is linear and moves
 * elements without arithmetic: y = S·x for a selection matrix S (every
 * output element is one input element, or pad's constant). So
 *   d-map: ẏ = S·ξ   (the forward move applied to the tangent ξ; pad's
 *                     constant border has tangent 0),
 *   r-map: x̄ += Sᵀ·ζ (each adjoint element goes back to the element it was
 *                     copied from, summed where one input element fed
 *                     several outputs: broadcast_to),
 * adjoint by construction: ⟨Sᵀζ, ξ⟩ = ⟨ζ, Sξ⟩. Values are copied exactly,
 * NaN and ±inf like any value. Tensors have no axis of size 0, so a result
 * with an empty axis (a slice past the end, a pad that crops everything)
 * is refused, where PyTorch would return an empty tensor.
 *
 * Second order (issue 18): S depends on the shapes and attr only, never on
 * x's values, so the r-map x̄ += Sᵀζ is the same at x + εẋ and its
 * derivative along ẋ is zero: every entry here is r_const (pad's constant
 * border makes it affine, which changes nothing). */
#include "shape.h"

#include "broadcast.h"

#include <limits.h>

/* ---------------------------------------------------------------- helpers */

tg_status tg_set_out_shape(tg_call *c, int rank, const size_t *dims, char *msg, size_t len) {
    size_t n = 1, limit = SIZE_MAX / sizeof(double);
    for (int a = 0; a < rank; a++) {
        if (dims[a] == 0 || n > limit / dims[a]) {
            snprintf(msg, len, "result of %d axes too large (axis %d of size %zu)", rank, a,
                     dims[a]);
            return TG_ERR_SHAPE;
        }
        n *= dims[a];
    }
    c->out->rank = rank;
    for (int a = 0; a < TG_MAX_RANK; a++)
        c->out->shape[a] = a < rank ? dims[a] : 1;
    return TG_OK;
}

tg_status tg_check_indices(const tg_tensor *idx, size_t n, const char *what, char *msg,
                           size_t len) {
    for (size_t k = 0; k < idx->size; k++) {
        if (tg_index_at(idx, k, n) >= 0) continue;
        double v = tg_get(idx, k);
        snprintf(msg, len, "index %g at position %zu %s %s", v, k,
                 v == floor(v) ? "is out of range for" : "is not an integer, for", what);
        return TG_ERR_VALUE;
    }
    return TG_OK;
}

void tg_flat_copy(const tg_call *c, const void *src, void *dst) {
    size_t b = c->out->size * tg_dtype_size(c->out->dtype);
    if (src)
        memcpy(dst, src, b);
    else
        memset(dst, 0, b);
}

void tg_flat_add(const tg_call *c, const void *src, void *dst) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *s = src; real *d = dst;
                for (size_t i = 0; i < n; i++) d[i] += s[i];);
}

/* Row-major element strides of x. */
static void strides_of(const tg_tensor *x, size_t *s) {
    size_t k = 1;
    for (int a = x->rank - 1; a >= 0; a--)
        s[a] = k, k *= x->shape[a];
}

/* "(2x-1x5)" for a list of longs (a requested shape). */
static const char *list_str(const long *v, int n, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int a = 0; a < n && k < len; a++)
        k += (size_t)snprintf(buf + k, len - k, "%s%ld", a ? "x" : "", v[a]);
    if (k < len) snprintf(buf + k, len - k, ")");
    return buf;
}

/* ---------------------------------------------------------------- the box walk */

/* A box of elements: element (i₀, …, i_{r−1}) is at a0 + Σ iₐ·sa[a] in the
 * destination A and at b0 + Σ iₐ·sb[a] in the source B. Every move of this
 * file is one box: a permutation, a strided sub-box (slice), the interior
 * of a pad, a stride 0 (broadcast). */
typedef struct box {
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t sa[TG_MAX_RANK], sb[TG_MAX_RANK];
    size_t a0, b0;
} box;

/* Drop axes of size 1 and fold an axis into the one before where both
 * strides chain, so that contiguous runs become one long inner row. */
static box box_merge(const box *w) {
    box m = *w;
    m.rank = 0;
    for (int a = 0; a < w->rank; a++) {
        if (w->shape[a] == 1) continue;
        int k = m.rank;
        if (k > 0 && m.sa[k - 1] == w->sa[a] * w->shape[a] &&
            m.sb[k - 1] == w->sb[a] * w->shape[a]) {
            m.shape[k - 1] *= w->shape[a];
            m.sa[k - 1] = w->sa[a], m.sb[k - 1] = w->sb[a];
            continue;
        }
        m.shape[k] = w->shape[a], m.sa[k] = w->sa[a], m.sb[k] = w->sb[a];
        m.rank++;
    }
    if (m.rank == 0) m.rank = 1, m.shape[0] = 1, m.sa[0] = m.sb[0] = 1;
    return m;
}

/* One row of the box: n elements, A stepping by sa, B by sb. */
static void row_move(tg_dtype dt, char *A, const char *B, size_t n, size_t sa, size_t sb, int acc) {
    if (!acc && sa == 1 && sb == 1) {
        memcpy(A, B, n * tg_dtype_size(dt));
        return;
    }
    TG_DISPATCH(dt, real *pa = (real *)A; const real *pb = (const real *)B;
                if (acc) for (size_t i = 0; i < n; i++) pa[i * sa] += pb[i * sb];
                else for (size_t i = 0; i < n; i++) pa[i * sa] = pb[i * sb];);
}

/* A 2-D face of the box (axis p and the last axis) in TILE × TILE tiles:
 * in a transpose one side runs along the last axis and the other along p,
 * so row by row one of them would be read or written with a large stride,
 * a cache line per element; within a tile both stay in L1. The inner loop
 * runs along the destination's contiguous axis (strided reads are cheaper
 * than strided read-modify-writes), and tiles are small because a row
 * stride of 4 KiB maps every strided line to one L1 set. 1024×1024
 * float32 on this VM, forward + backward: 21.3 ms row by row, 14.1 with
 * 32×32 tiles along the last axis, 1.6 as here; PyTorch 1.13 5.1 (best of
 * 20, one thread). */
enum { TILE = 8 };
static void tile_move(tg_dtype dt, char *A, const char *B, const box *w, int p, int acc) {
    int last = w->rank - 1, in = w->sa[last] == 1 ? last : p, out = in == last ? p : last;
    size_t ni = w->shape[in], no = w->shape[out];
    size_t sai = w->sa[in], sbi = w->sb[in], sao = w->sa[out], sbo = w->sb[out];
    for (size_t o0 = 0; o0 < no; o0 += TILE)
        for (size_t i0 = 0; i0 < ni; i0 += TILE) {
            size_t oe = no - o0 < TILE ? no : o0 + TILE, ie = ni - i0 < TILE ? ni : i0 + TILE;
            TG_DISPATCH(
                dt, real *pa = (real *)A; const real *pb = (const real *)B;
                for (size_t o = o0; o < oe; o++) {
                    real *ra = pa + o * sao;
                    const real *rb = pb + o * sbo;
                    if (acc)
                        for (size_t i = i0; i < ie; i++)
                            ra[i * sai] += rb[i * sbi];
                    else
                        for (size_t i = i0; i < ie; i++)
                            ra[i * sai] = rb[i * sbi];
                });
        }
}

/* The axis to tile with the last one: where the last axis is contiguous on
 * one side only, the axis (of 8 or more) along which the other side is
 * contiguous; −1 if none (rows are then fine as they are). */
static int tile_axis(const box *w) {
    int last = w->rank - 1;
    int a_runs = w->sa[last] == 1, b_runs = w->sb[last] == 1;
    if (a_runs == b_runs) return -1;
    for (int p = last - 1; p >= 0; p--)
        if ((a_runs ? w->sb[p] : w->sa[p]) == 1 && w->shape[p] >= 8) return p;
    return -1;
}

/* A[a] = B[b] (acc = 0) or A[a] += B[b] (acc = 1) over the box: rows along
 * its last merged axis, or tiles when that is a transpose; an odometer
 * over the remaining (outer) axes. */
static void box_move(tg_dtype dt, const box *w0, void *A, const void *B, int acc) {
    box w = box_merge(w0);
    int last = w.rank - 1, p = tile_axis(&w);
    size_t idx[TG_MAX_RANK] = {0}, oa = w.a0, ob = w.b0, es = tg_dtype_size(dt), outer = 1;
    for (int a = 0; a < last; a++)
        outer *= a == p ? 1 : w.shape[a];
    for (size_t r = 0; r < outer; r++) {
        char *pa = (char *)A + oa * es;
        const char *pb = (const char *)B + ob * es;
        if (p >= 0)
            tile_move(dt, pa, pb, &w, p, acc);
        else
            row_move(dt, pa, pb, w.shape[last], w.sa[last], w.sb[last], acc);
        for (int a = last - 1; a >= 0; a--) { /* odometer over the outer axes */
            if (a == p) continue;
            oa += w.sa[a], ob += w.sb[a];
            if (++idx[a] < w.shape[a]) break;
            oa -= w.sa[a] * w.shape[a], ob -= w.sb[a] * w.shape[a];
            idx[a] = 0;
        }
    }
}

/* The box of a call: forward reads the input through it (B = x, A = y). */
typedef void (*box_fn)(const tg_call *c, box *w);

static void box_forward(tg_call *c, box_fn f) {
    box w;
    f(c, &w);
    box_move(c->out->dtype, &w, c->out->data, c->in[0]->data, 0);
}

/* ẏ = S·ξ: the same move on the tangent. */
static void box_jvp(const tg_call *c, box_fn f, const void *tin, void *tout) {
    box w;
    f(c, &w);
    box_move(c->out->dtype, &w, tout, tin, 0);
}

/* x̄ += Sᵀζ: the box with source and destination exchanged, accumulating. */
static void box_vjp(const tg_call *c, box_fn f, const void *gout, void *gin) {
    box w, t;
    f(c, &w);
    t = w;
    for (int a = 0; a < w.rank; a++)
        t.sa[a] = w.sb[a], t.sb[a] = w.sa[a];
    t.a0 = w.b0, t.b0 = w.a0;
    box_move(c->out->dtype, &t, gin, gout, 1);
}

/* The output's own row-major strides as the box's destination. */
static void box_of_out(const tg_call *c, box *w) {
    memset(w, 0, sizeof *w);
    w->rank = c->out->rank;
    for (int a = 0; a < w->rank; a++)
        w->shape[a] = c->out->shape[a];
    strides_of(c->out, w->sa);
}

/* Entries of an op moving one input through box_of_NAME. */
#define BOX_OP(NAME, SAMPLE)                                                                       \
    static void NAME##_forward(tg_call *c) {                                                       \
        box_forward(c, box_of_##NAME);                                                             \
    }                                                                                              \
    static void NAME##_jvp(const tg_call *c, const void *const *tin, void *tout) {                 \
        box_jvp(c, box_of_##NAME, tin[0], tout);                                                   \
    }                                                                                              \
    static void NAME##_vjp(const tg_call *c, const void *gout, void *const *gin) {                 \
        if (gin[0]) box_vjp(c, box_of_##NAME, gout, gin[0]);                                       \
    }                                                                                              \
    const tg_op tg_op_##NAME = {.name = #NAME,                                                     \
                                .arity = 1,                                                        \
                                .check = NAME##_check,                                             \
                                .forward = NAME##_forward,                                         \
                                .jvp = NAME##_jvp,                                                 \
                                .vjp = NAME##_vjp,                                                 \
                                .sample = SAMPLE,                                                  \
                                .r_const = 1u};

/* ---------------------------------------------------------------- views */

/* reshape, flatten, squeeze, unsqueeze: the same elements in the same
 * order, so S is the identity: ẏ = ξ, x̄ += ζ (identity_r: the tape may hand
 * the adjoint buffer over instead). They are views (tg_op.view): the result
 * shares x's data, as PyTorch's views do, so forward has nothing to copy
 * (a copy of 2^20 floats cost 60× PyTorch's view, bench_ops). */
static void view_forward(tg_call *c) {
    (void)c;
}
static void view_jvp(const tg_call *c, const void *const *tin, void *tout) {
    tg_flat_copy(c, tin[0], tout);
}
static void view_vjp(const tg_call *c, const void *gout, void *const *gin) {
    if (gin[0]) tg_flat_add(c, gout, gin[0]);
}

#define VIEW_OP(NAME, SAMPLE)                                                                      \
    const tg_op tg_op_##NAME = {.name = #NAME,                                                     \
                                .arity = 1,                                                        \
                                .check = NAME##_check,                                             \
                                .forward = view_forward,                                           \
                                .jvp = view_jvp,                                                   \
                                .vjp = view_vjp,                                                   \
                                .sample = SAMPLE,                                                  \
                                .identity_r = 1u,                                                  \
                                .view = 1,                                                         \
                                .r_const = 1u};

/* reshape: attr.i[0] = rank n (0..8), attr.v[0..n-1] = the sizes, one of
 * which may be −1 (inferred); the element count must match. */
static tg_status reshape_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long n = c->attr.i[0];
    const long *v = c->attr.v;
    char sx[64], sv[200];
    if (n < 0 || n > TG_MAX_RANK) {
        snprintf(msg, len, "rank %ld outside 0..%d", n, TG_MAX_RANK);
        return TG_ERR_ARG;
    }
    size_t dims[TG_MAX_RANK], known = 1;
    int infer = -1;
    for (int a = 0; a < n; a++) {
        if (v[a] == -1 && infer < 0) {
            infer = a;
            continue;
        }
        if (v[a] < 1 || known > x->size / (size_t)v[a]) {
            snprintf(msg, len, "shape %s is invalid for input of size %zu %s",
                     list_str(v, (int)n, sv, sizeof sv), x->size, SHP(sx, x));
            return TG_ERR_SHAPE;
        }
        dims[a] = (size_t)v[a], known *= dims[a];
    }
    if (infer >= 0) dims[infer] = x->size / known;
    if ((infer >= 0 ? known * dims[infer] : known) != x->size) {
        snprintf(msg, len, "shape %s is invalid for input of size %zu %s",
                 list_str(v, (int)n, sv, sizeof sv), x->size, SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    return tg_set_out_shape(c, (int)n, dims, msg, len);
}

static void reshape_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    tg_sample_2d(s, 0, m * k, n, TG_DOM_REAL);
    s->attr.i[0] = 4; /* (m·k)×n → m×1×k×n by (m, 1, −1, n) */
    s->attr.v[0] = (long)m, s->attr.v[1] = 1, s->attr.v[2] = -1, s->attr.v[3] = (long)n;
}
VIEW_OP(reshape, reshape_sample)

/* flatten: axes attr.i[0]..attr.i[1] (PyTorch's start_dim, end_dim) become
 * one; a scalar becomes a vector of 1. */
static tg_status flatten_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    int r = x->rank ? x->rank : 1, s0, s1;
    char sx[64];
    if (!tg_wrap_dim(c->attr.i[0], r, &s0) || !tg_wrap_dim(c->attr.i[1], r, &s1) || s0 > s1) {
        snprintf(msg, len, "start_dim %ld and end_dim %ld are not axes in order of %s",
                 c->attr.i[0], c->attr.i[1], SHP(sx, x));
        return TG_ERR_ARG;
    }
    size_t dims[TG_MAX_RANK];
    int k = 0;
    for (int a = 0; a < r; a++) {
        if (a <= s0 || a > s1) dims[k++] = x->shape[a];
        if (a > s0 && a <= s1) dims[k - 1] *= x->shape[a];
    }
    return tg_set_out_shape(c, k, dims, msg, len);
}

static void flatten_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 5, s->domain[0] = TG_DOM_REAL;
    size_t sh[5] = {2, m, k, n, 1};
    memcpy(s->shape[0], sh, sizeof sh);
    s->attr.i[0] = 1, s->attr.i[1] = -2; /* 2×m×k×n×1 → 2×(m·k·n)×1 */
}
VIEW_OP(flatten, flatten_sample)

/* squeeze: removes axis attr.i[0] if its size is 1, else keeps x's shape
 * (as PyTorch). */
static tg_status squeeze_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    int ax;
    char sx[64];
    if (!tg_wrap_dim(c->attr.i[0], x->rank ? x->rank : 1, &ax)) {
        snprintf(msg, len, "dim %ld out of range for %s", c->attr.i[0], SHP(sx, x));
        return TG_ERR_ARG;
    }
    tg_out_like(c, x);
    if (x->rank == 0 || x->shape[ax] != 1) return TG_OK;
    for (int a = ax; a < TG_MAX_RANK - 1; a++)
        c->out->shape[a] = x->shape[a + 1];
    c->out->shape[TG_MAX_RANK - 1] = 1;
    c->out->rank--;
    return TG_OK;
}

static void squeeze_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = 1, s->shape[0][2] = k;
    s->attr.i[0] = -2;
}
VIEW_OP(squeeze, squeeze_sample)

/* unsqueeze: a new axis of size 1 at attr.i[0] in [−(r+1), r]. */
static tg_status unsqueeze_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    int ax;
    char sx[64];
    if (x->rank == TG_MAX_RANK || !tg_wrap_dim(c->attr.i[0], x->rank + 1, &ax)) {
        snprintf(msg, len, "dim %ld out of range for %s (rank at most %d)", c->attr.i[0],
                 SHP(sx, x), TG_MAX_RANK);
        return x->rank == TG_MAX_RANK ? TG_ERR_SHAPE : TG_ERR_ARG;
    }
    size_t dims[TG_MAX_RANK];
    for (int a = 0, k = 0; a <= x->rank; a++)
        dims[a] = a == ax ? 1 : x->shape[k++];
    return tg_set_out_shape(c, x->rank + 1, dims, msg, len);
}

static void unsqueeze_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    s->attr.i[0] = -2;
}
VIEW_OP(unsqueeze, unsqueeze_sample)

/* ---------------------------------------------------------------- permute */

/* permute: y's axis a is x's axis perm[a], perm = attr.v[0..r−1] (negative
 * entries counted from the end), attr.i[0] = r: the number given, which
 * must be x's rank. y[i] = x[Σ iₐ·stride_x[perm[a]]]. */
static tg_status permute_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    int r = x->rank, seen = 0;
    char sx[64], sv[200];
    size_t dims[TG_MAX_RANK];
    int ok = c->attr.i[0] == r;
    for (int a = 0; ok && a < r; a++) {
        int p;
        ok = tg_wrap_dim(c->attr.v[a], r, &p) && !(seen >> p & 1);
        if (ok) seen |= 1 << p, dims[a] = x->shape[p], c->attr.v[a] = p;
    }
    if (!ok) {
        int n = c->attr.i[0] < 0 ? 0 : c->attr.i[0] > TG_MAX_RANK ? TG_MAX_RANK : (int)c->attr.i[0];
        snprintf(msg, len, "%s is not a permutation of the %d axes of %s",
                 list_str(c->attr.v, n, sv, sizeof sv), r, SHP(sx, x));
        return TG_ERR_ARG;
    }
    return tg_set_out_shape(c, r, dims, msg, len);
}

static void box_of_permute(const tg_call *c, box *w) {
    size_t sx[TG_MAX_RANK] = {0}; /* check made attr.v a permutation of 0..rank-1 */
    box_of_out(c, w);
    strides_of(c->in[0], sx);
    for (int a = 0; a < w->rank; a++)
        w->sb[a] = sx[c->attr.v[a]];
}

static void permute_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 5, s->domain[0] = TG_DOM_REAL;
    size_t sh[5] = {m, 2, k, 1, n};
    memcpy(s->shape[0], sh, sizeof sh);
    s->attr.i[0] = 5;
    long p[5] = {4, 2, 0, -2, 1};
    memcpy(s->attr.v, p, sizeof p);
}
BOX_OP(permute, permute_sample)

/* ---------------------------------------------------------------- slice */

/* slice: per axis a < attr.i[0] (the rest whole), start, stop, step in
 * attr.v[3a..3a+2], Python's rules: a negative start or stop counts from
 * the end, both are then clamped to [0, size]; step >= 1. The axis keeps
 * elements start, start + step, … below stop: ⌈(stop − start)/step⌉ of
 * them, which must be at least 1. y[i] = x[Σ (startₐ + iₐ·stepₐ)·strideₐ]. */
static long clamp_end(long v, size_t n) {
    long sz = (long)n;
    if (v < 0) v = v < -sz ? 0 : v + sz;
    return v > sz ? sz : v;
}

static tg_status slice_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long n = c->attr.i[0];
    char sx[64];
    if (n < 0 || n > x->rank) {
        snprintf(msg, len, "%ld axes given for %s", n, SHP(sx, x));
        return TG_ERR_ARG;
    }
    size_t dims[TG_MAX_RANK];
    for (int a = 0; a < x->rank; a++) {
        long *v = &c->attr.v[3 * a];
        if (a >= n) v[0] = 0, v[1] = (long)x->shape[a], v[2] = 1;
        if (v[2] < 1) {
            snprintf(msg, len, "step %ld of axis %d is not positive", v[2], a);
            return TG_ERR_ARG;
        }
        long lo = clamp_end(v[0], x->shape[a]), hi = clamp_end(v[1], x->shape[a]);
        if (hi <= lo) {
            snprintf(msg, len,
                     "axis %d of %s sliced [%ld:%ld] is empty (tensors have no empty axes)", a,
                     SHP(sx, x), v[0], v[1]);
            return TG_ERR_SHAPE;
        }
        v[0] = lo, v[1] = hi; /* normalised for the maps */
        dims[a] = (size_t)((hi - lo - 1) / v[2] + 1);
    }
    return tg_set_out_shape(c, x->rank, dims, msg, len);
}

static void box_of_slice(const tg_call *c, box *w) {
    size_t sx[TG_MAX_RANK];
    box_of_out(c, w);
    strides_of(c->in[0], sx);
    for (int a = 0; a < w->rank; a++) {
        w->sb[a] = sx[a] * (size_t)c->attr.v[3 * a + 2];
        w->b0 += sx[a] * (size_t)c->attr.v[3 * a];
    }
}

/* Keeps x's element 1 (test_extremes puts a NaN there). */
static void slice_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m + 1, s->shape[0][1] = k + 1, s->shape[0][2] = n + 1;
    s->attr.i[0] = 3; /* [-100:∞:2, -(k+1):k+5, 0:-1]: clamped, negative, stepped */
    long v[9] = {-100, LONG_MAX, 2, -(long)k - 1, (long)k + 5, 1, 0, -1, 1};
    memcpy(s->attr.v, v, sizeof v);
}
BOX_OP(slice, slice_sample)

/* ---------------------------------------------------------------- pad */

/* pad: attr.v holds PyTorch's pad list (torch.nn.functional.pad, mode
 * "constant"): attr.i[0] = 2q entries, (before, after) widths of the last
 * axis, then of the axis before it, … for the last q axes (q <= rank). A
 * negative width crops. The border is attr.f[0] (any value: −inf, NaN). */
static long pad_width(const tg_call *c, int axis, int after) {
    int from_end = c->in[0]->rank - 1 - axis;
    return 2 * from_end < c->attr.i[0] ? c->attr.v[2 * from_end + after] : 0;
}

static tg_status pad_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long q2 = c->attr.i[0];
    char sx[64];
    if (q2 < 0 || q2 % 2 || q2 > 2 * x->rank) {
        snprintf(msg, len, "%ld pad widths for %s: need an even number, at most 2 per axis", q2,
                 SHP(sx, x));
        return TG_ERR_ARG;
    }
    const long big = 1L << 40; /* keeps the sums below in range */
    size_t dims[TG_MAX_RANK];
    for (int a = 0; a < x->rank; a++) {
        long b = pad_width(c, a, 0), e = pad_width(c, a, 1);
        int in_range = b >= -big && b <= big && e >= -big && e <= big;
        long d = in_range ? (long)x->shape[a] + b + e : 0;
        if (d < 1) {
            snprintf(msg, len, "widths (%ld, %ld) leave axis %d of %s empty or too large", b, e, a,
                     SHP(sx, x));
            return TG_ERR_SHAPE;
        }
        dims[a] = (size_t)d;
    }
    return tg_set_out_shape(c, x->rank, dims, msg, len);
}

/* The interior: x's elements kept by the crop, at their place in y. Empty
 * (rank −1) when a crop removes every element. */
static void box_of_pad(const tg_call *c, box *w) {
    const tg_tensor *x = c->in[0];
    size_t sx[TG_MAX_RANK];
    box_of_out(c, w);
    strides_of(x, sx);
    for (int a = 0; a < x->rank; a++) {
        long b = pad_width(c, a, 0), e = pad_width(c, a, 1);
        long lo = b < 0 ? -b : 0, hi = (long)x->shape[a] - (e < 0 ? -e : 0);
        if (hi <= lo) {
            w->rank = -1;
            return;
        }
        w->shape[a] = (size_t)(hi - lo);
        w->sb[a] = sx[a];
        w->b0 += (size_t)lo * sx[a];
        w->a0 += (size_t)(b > 0 ? b : 0) * w->sa[a];
    }
}

static void pad_fill(const tg_call *c, void *y, double v) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, real *p = y; const real k = (real)v;
                for (size_t i = 0; i < n; i++) p[i] = k;);
}

static void pad_forward(tg_call *c) {
    box w;
    box_of_pad(c, &w);
    pad_fill(c, c->out->data, c->attr.f[0]);
    if (w.rank >= 0) box_move(c->out->dtype, &w, c->out->data, c->in[0]->data, 0);
}

static void pad_jvp(const tg_call *c, const void *const *tin, void *tout) {
    box w;
    box_of_pad(c, &w);
    pad_fill(c, tout, 0);
    if (w.rank >= 0) box_move(c->out->dtype, &w, tout, tin[0], 0);
}

static void pad_vjp(const tg_call *c, const void *gout, void *const *gin) {
    box w;
    box_of_pad(c, &w);
    if (gin[0] && w.rank >= 0) {
        box t = w;
        for (int a = 0; a < w.rank; a++)
            t.sa[a] = w.sb[a], t.sb[a] = w.sa[a];
        t.a0 = w.b0, t.b0 = w.a0;
        box_move(c->out->dtype, &t, gin[0], gout, 1);
    }
}

static void pad_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = n + 1;
    s->attr.i[0] = 4; /* last axis: 1 before, crop 1 after; middle: 0 before, 2 after */
    long v[4] = {1, -1, 0, 2};
    memcpy(s->attr.v, v, sizeof v);
    s->attr.f[0] = -2.5;
}

const tg_op tg_op_pad = {.name = "pad",
                         .arity = 1,
                         .check = pad_check,
                         .forward = pad_forward,
                         .jvp = pad_jvp,
                         .vjp = pad_vjp,
                         .sample = pad_sample,
                         .r_const = 1u};

/* ---------------------------------------------------------------- broadcast_to */

/* broadcast_to: x stretched to the shape attr.v[0..n−1], n = attr.i[0]
 * (torch.broadcast_to; −1 keeps x's size on an axis x has). Through
 * broadcast.c: the r-map sums ζ over the stretched axes. */
static tg_status target_of(const tg_call *c, tg_tensor *tgt, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long n = c->attr.i[0];
    char sx[64], sv[200];
    int ok = n >= x->rank && n <= TG_MAX_RANK;
    memset(tgt, 0, sizeof *tgt);
    tgt->rank = ok ? (int)n : 0;
    for (int a = 0; a < TG_MAX_RANK; a++)
        tgt->shape[a] = 1;
    for (int a = 0; ok && a < n; a++) {
        long v = c->attr.v[a];
        int ax = a - (int)(n - x->rank); /* x's axis aligned with a, if any */
        if (v == -1 && ax >= 0) v = (long)x->shape[ax];
        ok = v >= 1;
        tgt->shape[a] = (size_t)v;
    }
    if (ok) return TG_OK;
    snprintf(msg, len, "cannot broadcast %s to %s", SHP(sx, x),
             list_str(c->attr.v,
                      n < 0             ? 0
                      : n > TG_MAX_RANK ? TG_MAX_RANK
                                        : (int)n,
                      sv, sizeof sv));
    return TG_ERR_SHAPE;
}

static tg_status geometry(const tg_call *c, tg_bcast *g, char *msg, size_t len) {
    tg_tensor tgt;
    tg_status s = target_of(c, &tgt, msg, len);
    if (s) return s;
    const tg_tensor *both[2] = {c->in[0], &tgt};
    if ((s = tg_bcast_init(g, 2, both, msg, len))) return s;
    for (int a = 0; a < g->rank; a++)
        if (g->shape[a] != tgt.shape[a]) {
            char sx[64], st[64];
            snprintf(msg, len, "cannot broadcast %s to %s: axis %d has %zu, not 1 or %zu",
                     SHP(sx, c->in[0]), SHP(st, &tgt), a, g->shape[a], tgt.shape[a]);
            return TG_ERR_SHAPE;
        }
    return TG_OK;
}

static tg_status broadcast_to_check(tg_call *c, char *msg, size_t len) {
    tg_bcast g;
    tg_status s = geometry(c, &g, msg, len);
    if (s) return s;
    return tg_set_out_shape(c, g.rank, g.shape, msg, len);
}

/* Rows of the walk: y = x (step 0: x's element repeated), and its adjoint
 * x̄ += ζ (step 0: the row's sum). */
typedef struct bc_ctx {
    tg_dtype dt;
    const void *src;
    void *dst;
} bc_ctx;

static void bc_row_fwd(void *ctx, size_t n, size_t out_off, const size_t *off, const size_t *step) {
    bc_ctx *b = ctx;
    TG_DISPATCH(b->dt, const real *x = (const real *)b->src + off[0];
                real *y = (real *)b->dst + out_off;
                if (step[0]) for (size_t i = 0; i < n; i++) y[i] = x[i];
                else for (size_t i = 0; i < n; i++) y[i] = x[0];);
}

static void bc_row_vjp(void *ctx, size_t n, size_t out_off, const size_t *off, const size_t *step) {
    bc_ctx *b = ctx;
    TG_DISPATCH(
        b->dt, const real *g = (const real *)b->src + out_off; real *gx = (real *)b->dst + off[0];
        if (step[0]) for (size_t i = 0; i < n; i++) gx[i] += g[i]; else {
            real s = 0;
            for (size_t i = 0; i < n; i++)
                s += g[i];
            gx[0] += s;
        });
}

static void bc_run(const tg_call *c, tg_bcast_row_fn fn, const void *src, void *dst) {
    tg_bcast g;
    char msg[8];
    geometry(c, &g, msg, sizeof msg); /* validated when recorded */
    bc_ctx b = {c->out->dtype, src, dst};
    tg_bcast_rows(&g, fn, &b);
}

static void broadcast_to_forward(tg_call *c) {
    bc_run(c, bc_row_fwd, c->in[0]->data, c->out->data);
}
static void broadcast_to_jvp(const tg_call *c, const void *const *tin, void *tout) {
    bc_run(c, bc_row_fwd, tin[0], tout);
}
static void broadcast_to_vjp(const tg_call *c, const void *gout, void *const *gin) {
    if (gin[0]) bc_run(c, bc_row_vjp, gout, gin[0]);
}

static void broadcast_to_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    tg_sample_2d(s, 0, k, 1, TG_DOM_REAL); /* (k×1) → (2×m×k×n) */
    s->attr.i[0] = 4;
    long v[4] = {2, (long)m, -1, (long)n};
    memcpy(s->attr.v, v, sizeof v);
}

const tg_op tg_op_broadcast_to = {.name = "broadcast_to",
                                  .arity = 1,
                                  .check = broadcast_to_check,
                                  .forward = broadcast_to_forward,
                                  .jvp = broadcast_to_jvp,
                                  .vjp = broadcast_to_vjp,
                                  .sample = broadcast_to_sample,
                                  .r_const = 1u};

/* ---------------------------------------------------------------- concat, stack */

/* concat (torch.cat) of n inputs along axis attr.i[0]: equal shapes except
 * along that axis; stack (torch.stack): equal shapes, joined along a new
 * axis attr.i[0] in [−(r+1), r]. Both are the same move: with `outer` the
 * product of the sizes before the axis, input i is outer blocks of
 * chunkᵢ = lenᵢ·inner elements, and y's block o is the inputs' blocks o
 * one after another. The r-map hands each input its blocks of ζ back. */
static tg_status join_check(tg_call *c, char *msg, size_t len, int stack) {
    const tg_tensor *x = c->in[0];
    int r = x->rank, ax;
    char s0[64], si[64];
    if ((!stack && r == 0) || (stack && r == TG_MAX_RANK) ||
        !tg_wrap_dim(c->attr.i[0], r + stack, &ax)) {
        snprintf(msg, len, "dim %ld out of range for %s%s", c->attr.i[0], SHP(s0, x),
                 stack ? " (the result has one axis more)" : "");
        return r == 0 || r == TG_MAX_RANK ? TG_ERR_SHAPE : TG_ERR_ARG;
    }
    c->attr.i[1] = ax;
    size_t along = 0;
    for (int i = 0; i < c->n_in; i++) {
        const tg_tensor *y = c->in[i];
        int ok = y->rank == r;
        for (int a = 0; ok && a < r; a++)
            ok = y->shape[a] == x->shape[a] || (!stack && a == ax);
        if (!ok) {
            snprintf(msg, len, "input %d has shape %s, input 0 %s: they differ %s", i, SHP(si, y),
                     SHP(s0, x), stack ? "" : "outside the joined axis");
            return TG_ERR_SHAPE;
        }
        along += stack ? 1 : y->shape[ax];
    }
    size_t dims[TG_MAX_RANK];
    for (int a = 0, k = 0; a < r + stack; a++, k++) {
        if (stack && a == ax) k--; /* the new axis takes no axis of x */
        dims[a] = a == ax ? along : x->shape[k];
    }
    return tg_set_out_shape(c, r + stack, dims, msg, len);
}

static tg_status concat_check(tg_call *c, char *msg, size_t len) {
    return join_check(c, msg, len, 0);
}
static tg_status stack_check(tg_call *c, char *msg, size_t len) {
    return join_check(c, msg, len, 1);
}

/* Blocks of input i: outer count and chunk; where the axis is (attr.i[1]). */
static size_t join_outer(const tg_call *c) {
    size_t outer = 1;
    for (long a = 0; a < c->attr.i[1]; a++)
        outer *= c->out->shape[a];
    return outer;
}

/* dir 0: y's blocks = inputs' (src[i] → dst); dir 1: gin[i] += ζ's blocks. */
static void join_move(const tg_call *c, const void *const *src, void *y, void *const *gin) {
    size_t outer = join_outer(c), row = c->out->size / outer, es = tg_dtype_size(c->out->dtype);
    size_t at = 0;
    for (int i = 0; i < c->n_in; i++) {
        size_t chunk = c->in[i]->size / outer;
        if (gin && gin[i]) {
            TG_DISPATCH(
                c->out->dtype, real *g = gin[i]; const real *z = y;
                for (size_t o = 0; o < outer; o++) {
                    const real *zo = z + o * row + at;
                    real *go = g + o * chunk;
                    for (size_t e = 0; e < chunk; e++)
                        go[e] += zo[e];
                });
        } else if (!gin) {
            for (size_t o = 0; o < outer; o++) {
                char *yo = (char *)y + (o * row + at) * es;
                if (src[i])
                    memcpy(yo, (const char *)src[i] + o * chunk * es, chunk * es);
                else
                    memset(yo, 0, chunk * es);
            }
        }
        at += chunk;
    }
}

static void join_forward(tg_call *c) {
    const void **src = (const void **)c->saved;
    for (int i = 0; i < c->n_in; i++)
        src[i] = c->in[i]->data;
    join_move(c, src, c->out->data, NULL);
}
static void join_jvp(const tg_call *c, const void *const *tin, void *tout) {
    join_move(c, tin, tout, NULL);
}
static void join_vjp(const tg_call *c, const void *gout, void *const *gin) {
    join_move(c, NULL, (void *)gout, gin);
}

static tg_status concat_check_saved(tg_call *c, char *msg, size_t len) {
    c->saved_bytes = (size_t)c->n_in * sizeof(void *);
    return concat_check(c, msg, len);
}
static tg_status stack_check_saved(tg_call *c, char *msg, size_t len) {
    c->saved_bytes = (size_t)c->n_in * sizeof(void *);
    return stack_check(c, msg, len);
}

static void concat_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    for (int i = 0; i < 3; i++) {
        s->rank[i] = 3, s->domain[i] = TG_DOM_REAL;
        s->shape[i][0] = m, s->shape[i][1] = i == 0 ? k : i == 1 ? 1 : n, s->shape[i][2] = 2;
    }
    s->attr.i[0] = -2;
}

static void stack_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    for (int i = 0; i < 3; i++)
        tg_sample_2d(s, i, m, k, TG_DOM_REAL);
    s->attr.i[0] = 1;
}

const tg_op tg_op_concat = {.name = "concat",
                            .arity = 3,
                            .variadic = 1,
                            .check = concat_check_saved,
                            .forward = join_forward,
                            .jvp = join_jvp,
                            .vjp = join_vjp,
                            .sample = concat_sample,
                            .r_const = 1u};
const tg_op tg_op_stack = {.name = "stack",
                           .arity = 3,
                           .variadic = 1,
                           .check = stack_check_saved,
                           .forward = join_forward,
                           .jvp = join_jvp,
                           .vjp = join_vjp,
                           .sample = stack_sample,
                           .r_const = 1u};

/* ---------------------------------------------------------------- public wrappers */

/* Up to TG_MAX_RANK longs into attr.v, or TG_ERR_ARG naming the op. */
static tg_status put_list(tg_attr *at, const char *op, int n, int cap, const long *v) {
    if (n < 0 || n > cap || (n > 0 && !v))
        return tg_fail(TG_ERR_ARG, "%s: %d values given (0..%d, non-NULL)", op, n, cap);
    at->i[0] = n;
    for (int a = 0; a < n; a++)
        at->v[a] = v[a];
    return TG_OK;
}

tg_status tg_reshape(tg_tape *t, const tg_tensor *x, int rank, const long *shape, tg_tensor **out) {
    tg_attr at = {.i = {0}};
    tg_status s = put_list(&at, "reshape", rank, TG_MAX_RANK, shape);
    if (out) *out = NULL;
    return s ? s : tg_apply1(t, &tg_op_reshape, x, &at, out);
}

tg_status tg_flatten(tg_tape *t, const tg_tensor *x, int start_dim, int end_dim, tg_tensor **out) {
    tg_attr at = {.i = {start_dim, end_dim}};
    return tg_apply1(t, &tg_op_flatten, x, &at, out);
}

tg_status tg_squeeze(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out) {
    tg_attr at = {.i = {dim}};
    return tg_apply1(t, &tg_op_squeeze, x, &at, out);
}

tg_status tg_unsqueeze(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out) {
    tg_attr at = {.i = {dim}};
    return tg_apply1(t, &tg_op_unsqueeze, x, &at, out);
}

tg_status tg_permute(tg_tape *t, const tg_tensor *x, int n, const long *perm, tg_tensor **out) {
    tg_attr at = {.i = {0}};
    tg_status s = put_list(&at, "permute", n, TG_MAX_RANK, perm);
    if (out) *out = NULL;
    return s ? s : tg_apply1(t, &tg_op_permute, x, &at, out);
}

tg_status tg_transpose(tg_tape *t, const tg_tensor *x, int dim0, int dim1, tg_tensor **out) {
    tg_attr at = {.i = {0}};
    int r = x ? x->rank : 0, a0 = 0, a1 = 0;
    if (out) *out = NULL;
    if (x && (!tg_wrap_dim(dim0, r ? r : 1, &a0) || !tg_wrap_dim(dim1, r ? r : 1, &a1))) {
        char sx[64];
        return tg_fail(TG_ERR_ARG, "transpose: dims %d and %d out of range for %s", dim0, dim1,
                       SHP(sx, x));
    }
    at.i[0] = r;
    for (int a = 0; a < r; a++)
        at.v[a] = a == a0 ? a1 : a == a1 ? a0 : a;
    return tg_apply1(t, &tg_op_permute, x, &at, out);
}

tg_status tg_slice(tg_tape *t, const tg_tensor *x, int n, const long *start, const long *stop,
                   const long *step, tg_tensor **out) {
    tg_attr at = {.i = {n}};
    if (out) *out = NULL;
    if (n < 0 || n > TG_MAX_RANK)
        return tg_fail(TG_ERR_ARG, "slice: %d axes given (0..%d)", n, TG_MAX_RANK);
    for (int a = 0; a < n; a++) {
        at.v[3 * a] = start ? start[a] : 0;
        at.v[3 * a + 1] = stop ? stop[a] : LONG_MAX;
        at.v[3 * a + 2] = step ? step[a] : 1;
    }
    return tg_apply1(t, &tg_op_slice, x, &at, out);
}

tg_status tg_slice_dim(tg_tape *t, const tg_tensor *x, int dim, long start, long stop, long step,
                       tg_tensor **out) {
    long lo[TG_MAX_RANK], hi[TG_MAX_RANK], st[TG_MAX_RANK];
    int r = x ? x->rank : 0, ax = 0;
    if (out) *out = NULL;
    if (x && !tg_wrap_dim(dim, r, &ax)) {
        char sx[64];
        return tg_fail(TG_ERR_ARG, "slice: dim %d out of range for %s", dim, SHP(sx, x));
    }
    for (int a = 0; a < r; a++)
        lo[a] = a == ax ? start : 0, hi[a] = a == ax ? stop : LONG_MAX, st[a] = a == ax ? step : 1;
    return tg_slice(t, x, r, lo, hi, st, out);
}

tg_status tg_pad(tg_tape *t, const tg_tensor *x, int npad, const long *pad, double value,
                 tg_tensor **out) {
    tg_attr at = {.f = {value}};
    tg_status s = put_list(&at, "pad", npad, 2 * TG_MAX_RANK, pad);
    if (out) *out = NULL;
    return s ? s : tg_apply1(t, &tg_op_pad, x, &at, out);
}

tg_status tg_broadcast_to(tg_tape *t, const tg_tensor *x, int rank, const long *shape,
                          tg_tensor **out) {
    tg_attr at = {.i = {0}};
    tg_status s = put_list(&at, "broadcast_to", rank, TG_MAX_RANK, shape);
    if (out) *out = NULL;
    return s ? s : tg_apply1(t, &tg_op_broadcast_to, x, &at, out);
}

tg_status tg_concat(tg_tape *t, int n, const tg_tensor *const *xs, int dim, tg_tensor **out) {
    tg_attr at = {.i = {dim}};
    return tg_apply(t, &tg_op_concat, n, xs, &at, out);
}

tg_status tg_stack(tg_tape *t, int n, const tg_tensor *const *xs, int dim, tg_tensor **out) {
    tg_attr at = {.i = {dim}};
    return tg_apply(t, &tg_op_stack, n, xs, &at, out);
}
