/* Indexing: gather, embedding, where, masked_fill, and the constants
 * one_hot and argmax. Indices, masks and labels are tensors of the data's
 * dtype holding integers (as softmax_ce's labels): they carry no
 * derivative (nondiff). Indices are validated when the op is recorded
 * (TG_ERR_VALUE naming the position); a replay after they changed to a
 * non-index gives NaN at that output, never an access out of bounds.
 *
 * gather and embedding copy selected elements: y = S·x with S a 0/1
 * selection, one 1 per row, so ẏ = S·ξ and x̄ += Sᵀζ: each adjoint element
 * is added back at the element it came from; an index used twice receives
 * the sum of both adjoints (a scatter-add). where and masked_fill select
 * per element between two values: y = m·a + (1 − m)·b with m ∈ {0, 1}
 * fixed, so ẏ = m·ȧ + (1 − m)·ḃ, ā += m·ζ, b̄ += (1 − m)·ζ, summed over
 * broadcast axes.
 *
 * Second order (issue 18): S and m come from the indices and masks, which
 * are nondiff, never from the differentiable inputs' values, so the r-maps
 * above are the same at x + εẋ: gather, embedding, where and masked_fill
 * are r_const (second-order term zero); one_hot and argmax are constant. */
#include "shape.h"

#include "broadcast.h"

#include <limits.h>

/* ---------------------------------------------------------------- gather */

/* gather (torch.gather): y[i₀…i_{r−1}] = x[i₀ … idx[i] … i_{r−1}], the
 * index replacing the coordinate along axis attr.i[0]. index (input 1) has
 * x's rank and sizes <= x's on the other axes; y has index's shape. The
 * element offsets into x are computed by forward into saved (SIZE_MAX
 * where an index is no longer valid) and read by both maps. */
static tg_status gather_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *idx = c->in[1];
    int r = x->rank, ax;
    char sx[64], si[64], what[120];
    if (!tg_wrap_dim(c->attr.i[0], r ? r : 1, &ax)) {
        snprintf(msg, len, "dim %ld out of range for %s", c->attr.i[0], SHP(sx, x));
        return TG_ERR_ARG;
    }
    int ok = idx->rank == r;
    for (int a = 0; ok && a < r; a++)
        ok = a == ax || idx->shape[a] <= x->shape[a];
    if (!ok) {
        snprintf(msg, len,
                 "index %s must have the rank of input %s and no larger size except along dim %d",
                 SHP(si, idx), SHP(sx, x), ax);
        return TG_ERR_SHAPE;
    }
    c->attr.i[1] = ax;
    snprintf(what, sizeof what, "dim %d of %s", ax, SHP(sx, x));
    tg_status s = tg_check_indices(idx, x->shape[ax], what, msg, len);
    if (s) return s;
    c->saved_bytes = idx->size * sizeof(size_t);
    tg_out_like(c, idx);
    return TG_OK;
}

static void gather_offsets(const tg_call *c, size_t *off) {
    const tg_tensor *x = c->in[0], *idx = c->in[1];
    int r = idx->rank, ax = (int)c->attr.i[1];
    size_t sx[TG_MAX_RANK], at[TG_MAX_RANK] = {0}, base = 0, k = 1;
    for (int a = r - 1; a >= 0; a--)
        sx[a] = k, k *= x->shape[a];
    for (size_t e = 0; e < idx->size; e++) {
        long j = tg_index_at(idx, e, r ? x->shape[ax] : 1);
        off[e] = j < 0 ? SIZE_MAX : base + (size_t)j * (r ? sx[ax] : 1);
        for (int a = r - 1; a >= 0; a--) { /* odometer over index's shape */
            if (a != ax) base += sx[a];
            if (++at[a] < idx->shape[a]) break;
            if (a != ax) base -= sx[a] * idx->shape[a];
            at[a] = 0;
        }
    }
}

/* y[e] = x[off[e]]: forward on the values, d-map on the tangent. */
static void pick(const tg_call *c, const void *src, void *dst) {
    const size_t *off = c->saved;
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *x = src; real *y = dst;
                for (size_t e = 0; e < n; e++) y[e] = off[e] == SIZE_MAX ? (real)NAN : x[off[e]];);
}

static void gather_forward(tg_call *c) {
    gather_offsets(c, c->saved);
    pick(c, c->in[0]->data, c->out->data);
}

static void gather_jvp(const tg_call *c, const void *const *tin, void *tout) {
    pick(c, tin[0], tout);
}

/* x̄[off[e]] += ζ[e]: duplicates accumulate. */
static void gather_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const size_t *off = c->saved;
    size_t n = c->out->size;
    if (!gin[0]) return;
    TG_DISPATCH(c->out->dtype, const real *g = gout; real *gx = gin[0];
                for (size_t e = 0; e < n; e++) if (off[e] != SIZE_MAX) gx[off[e]] += g[e];);
}

/* Along the last axis, every position in turn (duplicates when n > k). */
static void gather_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = s->rank[1] = 3;
    size_t sx[3] = {2, m, k}, si[3] = {2, m, n};
    memcpy(s->shape[0], sx, sizeof sx), memcpy(s->shape[1], si, sizeof si);
    s->domain[0] = TG_DOM_REAL, s->domain[1] = TG_DOM_CYCLE;
    s->attr.i[0] = -1;
}

const tg_op tg_op_gather = {.name = "gather",
                            .arity = 2,
                            .nondiff = 2u,
                            .check = gather_check,
                            .forward = gather_forward,
                            .jvp = gather_jvp,
                            .vjp = gather_vjp,
                            .sample = gather_sample,
                            .r_const = 1u};

/* ---------------------------------------------------------------- embedding */

/* embedding (torch.nn.functional.embedding without padding_idx and
 * max_norm): weight V×D, indices of any shape (rank <= 7) holding rows in
 * [0, V); y = indices.shape × D, y[i, :] = weight[idx[i], :]. saved: the
 * row of each index (SIZE_MAX if no longer valid). */
static tg_status embedding_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *w = c->in[0], *idx = c->in[1];
    char sw[64], si[64], what[100];
    if (w->rank != 2 || idx->rank == TG_MAX_RANK) {
        snprintf(msg, len, "weight must be 2-D (V x D) and indices of rank < %d: %s and %s",
                 TG_MAX_RANK, SHP(sw, w), SHP(si, idx));
        return TG_ERR_SHAPE;
    }
    snprintf(what, sizeof what, "the %zu rows of weight %s", w->shape[0], SHP(sw, w));
    tg_status s = tg_check_indices(idx, w->shape[0], what, msg, len);
    if (s) return s;
    size_t dims[TG_MAX_RANK];
    for (int a = 0; a < idx->rank; a++)
        dims[a] = idx->shape[a];
    dims[idx->rank] = w->shape[1];
    c->saved_bytes = idx->size * sizeof(size_t);
    return tg_set_out_shape(c, idx->rank + 1, dims, msg, len);
}

/* Rows of src (weight or its tangent) into dst, or NaN rows. */
static void take_rows(const tg_call *c, const void *src, void *dst) {
    const size_t *row = c->saved;
    size_t n = c->in[1]->size, d = c->in[0]->shape[1];
    TG_DISPATCH(
        c->out->dtype, const real *w = src; real *y = dst; for (size_t e = 0; e < n; e++) {
            real *ye = y + e * d;
            if (row[e] == SIZE_MAX)
                for (size_t j = 0; j < d; j++)
                    ye[j] = (real)NAN;
            else
                memcpy(ye, w + row[e] * d, d * sizeof(real));
        });
}

static void embedding_forward(tg_call *c) {
    size_t *row = c->saved, V = c->in[0]->shape[0];
    for (size_t e = 0; e < c->in[1]->size; e++) {
        long j = tg_index_at(c->in[1], e, V);
        row[e] = j < 0 ? SIZE_MAX : (size_t)j;
    }
    take_rows(c, c->in[0]->data, c->out->data);
}

static void embedding_jvp(const tg_call *c, const void *const *tin, void *tout) {
    take_rows(c, tin[0], tout);
}

/* weight̄[idx[e], :] += ζ[e, :]: a row indexed twice gets both adjoints. */
static void embedding_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const size_t *row = c->saved;
    size_t n = c->in[1]->size, d = c->in[0]->shape[1];
    if (!gin[0]) return;
    TG_DISPATCH(
        c->out->dtype, const real *g = gout; real *gw = gin[0]; for (size_t e = 0; e < n; e++) {
            if (row[e] == SIZE_MAX) continue;
            real *gr = gw + row[e] * d;
            const real *ge = g + e * d;
            for (size_t j = 0; j < d; j++)
                gr[j] += ge[j];
        });
}

/* weight (k+2)×k; indices m×n cycling through rows 0..k−1 (repeats when
 * m·n > k; rows k, k+1 are never read: their adjoint stays 0). */
static void embedding_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    tg_sample_2d(s, 0, k + 2, k, TG_DOM_REAL);
    tg_sample_2d(s, 1, m, n, TG_DOM_CYCLE);
}

const tg_op tg_op_embedding = {.name = "embedding",
                               .arity = 2,
                               .nondiff = 2u,
                               .check = embedding_check,
                               .forward = embedding_forward,
                               .jvp = embedding_jvp,
                               .vjp = embedding_vjp,
                               .sample = embedding_sample,
                               .r_const = 1u};

/* ---------------------------------------------------------------- where */

/* where(mask, a, b) (torch.where): y = mask ≠ 0 ? a : b, the three
 * broadcast together (a NaN mask is ≠ 0: it selects a). */
typedef struct sel_ctx {
    tg_dtype dt;
    const void *m, *a, *b; /* b NULL: masked_fill's constant attr.f[0] */
    void *y;
    double fill;
    int mode; /* 0 values, 1 tangents, 2 adjoints (a += , b +=) */
} sel_ctx;

static void sel_row(void *ctx, size_t n, size_t yo, const size_t *off, const size_t *st) {
    const sel_ctx *s = ctx;
    TG_DISPATCH(
        s->dt, const real *m = (const real *)s->m + off[0]; real *y = (real *)s->y + yo;
        const real *a = s->a ? (const real *)s->a + off[1] : NULL;
        const real *b = s->b ? (const real *)s->b + off[2] : NULL; const real f = (real)s->fill;
        for (size_t i = 0; i < n; i++) {
            int on = m[i * st[0]] != 0;
            y[i] = on ? (a ? a[i * st[1]] : 0) : (b ? b[i * st[2]] : f);
        });
}

/* ā += [m]·ζ, b̄ += [¬m]·ζ at their (possibly stretched) offsets. */
static void sel_row_vjp(void *ctx, size_t n, size_t yo, const size_t *off, const size_t *st) {
    const sel_ctx *s = ctx;
    TG_DISPATCH(
        s->dt, const real *m = (const real *)s->m + off[0]; const real *g = (const real *)s->y + yo;
        real *ga = s->a ? (real *)s->a + off[1] : NULL;
        real *gb = s->b ? (real *)s->b + off[2] : NULL; for (size_t i = 0; i < n; i++) {
            int on = m[i * st[0]] != 0;
            if (on && ga) ga[i * st[1]] += g[i];
            if (!on && gb) gb[i * st[2]] += g[i];
        });
}

static tg_status where_geometry(const tg_call *c, tg_bcast *g, char *msg, size_t len) {
    return tg_bcast_init(g, 3, c->in, msg, len);
}

static tg_status where_check(tg_call *c, char *msg, size_t len) {
    tg_bcast g;
    tg_status s = where_geometry(c, &g, msg, len);
    if (s) return s;
    return tg_set_out_shape(c, g.rank, g.shape, msg, len);
}

static void where_run(const tg_call *c, tg_bcast_row_fn fn, const void *a, const void *b, void *y) {
    tg_bcast g;
    char msg[8];
    where_geometry(c, &g, msg, sizeof msg);
    sel_ctx s = {c->out->dtype, c->in[0]->data, a, b, y, 0, 0};
    tg_bcast_rows(&g, fn, &s);
}

static void where_forward(tg_call *c) {
    where_run(c, sel_row, c->in[1]->data, c->in[2]->data, c->out->data);
}
/* A NULL tangent is zero: sel_row reads 0 for it (b's constant f is 0). */
static void where_jvp(const tg_call *c, const void *const *tin, void *tout) {
    where_run(c, sel_row, tin[1], tin[2], tout);
}
static void where_vjp(const tg_call *c, const void *gout, void *const *gin) {
    where_run(c, sel_row_vjp, gin[1], gin[2], (void *)gout);
}

/* mask (2) cycling 0, 1 against a (m×k×1) and b (k×1): y is m×k×2, y[…, 0]
 * from b and y[…, 1] from a, so both reach the output. */
static void where_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    s->rank[0] = 1, s->shape[0][0] = 2, s->domain[0] = TG_DOM_CYCLE;
    s->rank[1] = 3, s->shape[1][0] = m, s->shape[1][1] = k, s->shape[1][2] = 1;
    s->domain[1] = TG_DOM_REAL;
    tg_sample_2d(s, 2, k, 1, TG_DOM_REAL);
}

const tg_op tg_op_where = {.name = "where",
                           .arity = 3,
                           .nondiff = 1u,
                           .check = where_check,
                           .forward = where_forward,
                           .jvp = where_jvp,
                           .vjp = where_vjp,
                           .sample = where_sample,
                           .r_const = 1u};

/* ---------------------------------------------------------------- masked_fill */

/* masked_fill(x, mask, value) (Tensor.masked_fill): y = mask ≠ 0 ? value : x,
 * mask broadcast to x's shape (x itself is never stretched); value =
 * attr.f[0], any double (−inf for attention masks). As where(¬mask, x, v):
 * the walk's operands are mask, x, and none for the constant. */
static tg_status mf_geometry(const tg_call *c, tg_bcast *g, char *msg, size_t len) {
    const tg_tensor *ops[2] = {c->in[1], c->in[0]};
    tg_status s = tg_bcast_init(g, 2, ops, msg, len);
    if (s) return s;
    if (g->size != c->in[0]->size || g->rank != c->in[0]->rank) {
        char sx[64], sm[64];
        snprintf(msg, len, "mask %s does not broadcast to the shape of x %s", SHP(sm, c->in[1]),
                 SHP(sx, c->in[0]));
        return TG_ERR_SHAPE;
    }
    return TG_OK;
}

static tg_status masked_fill_check(tg_call *c, char *msg, size_t len) {
    tg_bcast g;
    tg_status s = mf_geometry(c, &g, msg, len);
    if (!s) tg_out_like(c, c->in[0]);
    return s;
}

/* Rows of the walk over (mask, x): y = mask ≠ 0 ? value : x, and
 * x̄ += [mask = 0]·ζ. x sits in sel_ctx's b. */
static void mf_row(void *ctx, size_t n, size_t yo, const size_t *off, const size_t *st) {
    const sel_ctx *s = ctx;
    TG_DISPATCH(s->dt, const real *m = (const real *)s->m + off[0]; real *y = (real *)s->y + yo;
                const real *x = s->b ? (const real *)s->b + off[1] : NULL;
                const real f = (real)s->fill; for (size_t i = 0; i < n; i++) y[i] =
                                                  m[i * st[0]] != 0 ? f : (x ? x[i * st[1]] : 0););
}

static void mf_row_vjp(void *ctx, size_t n, size_t yo, const size_t *off, const size_t *st) {
    const sel_ctx *s = ctx;
    TG_DISPATCH(s->dt, const real *m = (const real *)s->m + off[0];
                const real *g = (const real *)s->y + yo; real *gx = (real *)s->b + off[1];
                for (size_t i = 0; i < n; i++) if (m[i * st[0]] == 0) gx[i * st[1]] += g[i];);
}

static void mf_run(const tg_call *c, tg_bcast_row_fn fn, const void *x, void *y, double fill) {
    tg_bcast g;
    char msg[8];
    mf_geometry(c, &g, msg, sizeof msg);
    sel_ctx s = {c->out->dtype, c->in[1]->data, NULL, x, y, fill, 0};
    tg_bcast_rows(&g, fn, &s);
}

static void masked_fill_forward(tg_call *c) {
    mf_run(c, mf_row, c->in[0]->data, c->out->data, c->attr.f[0]);
}
static void masked_fill_jvp(const tg_call *c, const void *const *tin, void *tout) {
    mf_run(c, mf_row, tin[0], tout, 0);
}
static void masked_fill_vjp(const tg_call *c, const void *gout, void *const *gin) {
    if (gin[0]) mf_run(c, mf_row_vjp, gin[0], (void *)gout, 0);
}

/* x m×k, mask m×1 cycling 0, 1, …: row 0 kept, row 1 filled (k > 1). */
static void masked_fill_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    tg_sample_2d(s, 1, m, 1, TG_DOM_CYCLE);
    s->attr.f[0] = -1e9;
}

const tg_op tg_op_masked_fill = {.name = "masked_fill",
                                 .arity = 2,
                                 .nondiff = 2u,
                                 .check = masked_fill_check,
                                 .forward = masked_fill_forward,
                                 .jvp = masked_fill_jvp,
                                 .vjp = masked_fill_vjp,
                                 .sample = masked_fill_sample,
                                 .r_const = 1u};

/* ---------------------------------------------------------------- one_hot */

/* one_hot (torch.nn.functional.one_hot): labels of any shape (rank <= 7)
 * holding classes in [0, C) → labels.shape × C of 0 and 1, in the labels'
 * dtype (PyTorch gives int64). C = attr.i[0]; −1 (PyTorch's default) takes
 * the largest label + 1, fixed when recorded. A constant. */
static tg_status one_hot_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *y = c->in[0];
    char sy[64], what[100];
    long C = c->attr.i[0];
    if (y->rank == TG_MAX_RANK || C == 0 || C < -1) {
        snprintf(msg, len, "labels %s with %ld classes: need rank < %d and classes >= 1 (or -1)",
                 SHP(sy, y), C, TG_MAX_RANK);
        return y->rank == TG_MAX_RANK ? TG_ERR_SHAPE : TG_ERR_ARG;
    }
    if (C == -1) { /* the largest valid label + 1; any invalid one is named below */
        C = 1;
        for (size_t e = 0; e < y->size; e++) {
            double v = tg_get(y, e);
            if (v >= C && v < (double)LONG_MAX) C = (long)v + 1;
        }
        c->attr.i[0] = C;
    }
    snprintf(what, sizeof what, "%ld classes", C);
    tg_status s = tg_check_indices(y, (size_t)C, what, msg, len);
    if (s) return s;
    size_t dims[TG_MAX_RANK];
    for (int a = 0; a < y->rank; a++)
        dims[a] = y->shape[a];
    dims[y->rank] = (size_t)C;
    return tg_set_out_shape(c, y->rank + 1, dims, msg, len);
}

/* A label that changed into a non-class after recording gives a NaN row. */
static void one_hot_forward(tg_call *c) {
    size_t n = c->in[0]->size, C = (size_t)c->attr.i[0];
    TG_DISPATCH(
        c->out->dtype, real *y = c->out->data; for (size_t e = 0; e < n; e++) {
            long j = tg_index_at(c->in[0], e, C);
            for (size_t k = 0; k < C; k++)
                y[e * C + k] = j < 0 ? (real)NAN : (real)((long)k == j);
        });
}

static void one_hot_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_LABEL);
    s->attr.i[0] = (long)k + 1;
}

const tg_op tg_op_one_hot = {.name = "one_hot",
                             .arity = 1,
                             .nondiff = 1u,
                             .constant = 1,
                             .check = one_hot_check,
                             .forward = one_hot_forward,
                             .sample = one_hot_sample};

/* ---------------------------------------------------------------- argmax */

/* argmax (torch.argmax(x, dim, keepdim)): the index along axis attr.i[0]
 * of the largest element, attr.i[1] = keepdim; the first one on ties; a
 * NaN counts as larger than everything (the first NaN wins), as PyTorch.
 * Indices as values of x's dtype. A constant. */
static tg_status argmax_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    int ax;
    char sx[64];
    if (!tg_wrap_dim(c->attr.i[0], x->rank ? x->rank : 1, &ax)) {
        snprintf(msg, len, "dim %ld out of range for %s", c->attr.i[0], SHP(sx, x));
        return TG_ERR_ARG;
    }
    c->attr.i[2] = ax;
    size_t dims[TG_MAX_RANK];
    int k = 0;
    for (int a = 0; a < x->rank; a++)
        if (a != ax || c->attr.i[1]) dims[k++] = a == ax ? 1 : x->shape[a];
    return tg_set_out_shape(c, k, dims, msg, len);
}

static void argmax_forward(tg_call *c) {
    const tg_tensor *x = c->in[0];
    int ax = (int)c->attr.i[2];
    size_t len = x->rank ? x->shape[ax] : 1, inner = 1;
    for (int a = ax + 1; a < x->rank; a++)
        inner *= x->shape[a];
    size_t outer = x->size / (len * inner);
    TG_DISPATCH(
        x->dtype, const real *X = x->data; real *y = c->out->data;
        for (size_t o = 0; o < outer; o++) for (size_t i = 0; i < inner; i++) {
            const real *p = X + o * len * inner + i;
            size_t best = 0;
            real bv = p[0];
            for (size_t j = 1; j < len && bv == bv; j++) {
                real v = p[j * inner];
                if (v > bv || v != v) bv = v, best = j; /* NaN: taken, and stops */
            }
            y[o * inner + i] = (real)best;
        });
}

static void argmax_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = n;
    s->attr.i[0] = -2;
}

const tg_op tg_op_argmax = {.name = "argmax",
                            .arity = 1,
                            .nondiff = 1u,
                            .constant = 1,
                            .check = argmax_check,
                            .forward = argmax_forward,
                            .sample = argmax_sample};

/* ---------------------------------------------------------------- public wrappers */

tg_status tg_gather(tg_tape *t, const tg_tensor *x, int dim, const tg_tensor *index,
                    tg_tensor **out) {
    tg_attr at = {.i = {dim}};
    return tg_apply2(t, &tg_op_gather, x, index, &at, out);
}

tg_status tg_embedding(tg_tape *t, const tg_tensor *weight, const tg_tensor *indices,
                       tg_tensor **out) {
    return tg_apply2(t, &tg_op_embedding, weight, indices, NULL, out);
}

tg_status tg_where(tg_tape *t, const tg_tensor *mask, const tg_tensor *a, const tg_tensor *b,
                   tg_tensor **out) {
    const tg_tensor *in[3] = {mask, a, b};
    return tg_apply(t, &tg_op_where, 3, in, NULL, out);
}

tg_status tg_masked_fill(tg_tape *t, const tg_tensor *x, const tg_tensor *mask, double value,
                         tg_tensor **out) {
    tg_attr at = {.f = {value}};
    return tg_apply2(t, &tg_op_masked_fill, x, mask, &at, out);
}

tg_status tg_one_hot(tg_tape *t, const tg_tensor *labels, long classes, tg_tensor **out) {
    tg_attr at = {.i = {classes}};
    return tg_apply1(t, &tg_op_one_hot, labels, &at, out);
}

tg_status tg_argmax(tg_tape *t, const tg_tensor *x, int dim, int keepdim, tg_tensor **out) {
    tg_attr at = {.i = {dim, keepdim != 0}};
    return tg_apply1(t, &tg_op_argmax, x, &at, out);
}
