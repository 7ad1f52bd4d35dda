/* Linear ops of the seed (001 §3.4): matmul φ and bias-add ψ.
 * Batches are rows, so the seed's φ(W, x) = Wx on a column x appears here
 * as the generic C = A·B; its two reverse derivatives are
 *   r₁φ(ζ) = ζ·Bᵀ  (w.r.t. the left factor:  the seed's ζxᵀ)
 *   rφ(ζ)  = Aᵀ·ζ  (w.r.t. the right factor: the seed's Wᵀζ)
 * computed by BLAS with transpose flags and beta = 1 (accumulate). */
#include "ops.h"

#include "broadcast.h"

#include <cblas.h>
#include <pthread.h>

static pthread_mutex_t blas_threads_lock = PTHREAD_MUTEX_INITIALIZER;

/* y = beta·y + op(M)·x: M rows × cols row-major with leading dimension ld. */
static void gemv(tg_dtype dt, int trans, size_t rows, size_t cols, const void *m, size_t ld,
                 const void *x, size_t incx, double beta, void *y, size_t incy) {
    enum CBLAS_TRANSPOSE T = trans ? CblasTrans : CblasNoTrans;
    /* beta = 0 must not read y (it is a reused arena buffer that may hold a
     * NaN from an earlier step); some OpenBLAS releases compute 0·y there,
     * which keeps the NaN. A cleared y makes that harmless. */
    if (beta == 0.0) {
        size_t n = trans ? cols : rows;
        TG_DISPATCH(dt, real *yy = y; for (size_t i = 0; i < n; i++) yy[i * incy] = 0;);
    }
    if (dt == TG_F32)
        cblas_sgemv(CblasRowMajor, T, (int)rows, (int)cols, 1.0f, m, (int)ld, x, (int)incx,
                    (float)beta, y, (int)incy);
    else
        cblas_dgemv(CblasRowMajor, T, (int)rows, (int)cols, 1.0, m, (int)ld, x, (int)incx, beta, y,
                    (int)incy);
}

/* C (m×n, ldc) = beta·C + a·bᵀ with strided vectors a (m) and b (n); beta
 * is 0 or 1, the only values the r-maps, d-maps and partial products use. */
static void ger(tg_dtype dt, size_t m, size_t n, const void *a, size_t inca, const void *b,
                size_t incb, double beta, void *c, size_t ldc) {
    size_t es = tg_dtype_size(dt);
    if (beta == 0.0) /* ger only accumulates: clear the rows first */
        for (size_t i = 0; i < m; i++)
            memset((char *)c + i * ldc * es, 0, n * es);
    if (dt == TG_F32)
        cblas_sger(CblasRowMajor, (int)m, (int)n, 1.0f, a, (int)inca, b, (int)incb, c, (int)ldc);
    else
        cblas_dger(CblasRowMajor, (int)m, (int)n, 1.0, a, (int)inca, b, (int)incb, c, (int)ldc);
}

/* C = op(A)·op(B) + beta·C, row-major, for either dtype, by OpenBLAS. When
 * a dimension is 1 the product is a matrix-vector or an outer product, and
 * OpenBLAS 0.3.21's gemm does not switch to gemv/ger by itself. Its own
 * gemv/ger made the MLP step at batch 1 faster in three of four settings
 * (float32 on 2 threads 2x, float64 on 1 thread 10 %; float32 on 1 thread
 * 4 % slower: benches/RESULTS.md, issue 13). Strides of the vector
 * operands follow from the transposes: a 1×k row is contiguous; a k×1
 * column steps by its leading dimension. */
static void gemm_any(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a,
                     size_t lda, const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    if (m == 1) /* c (1×n) = op(B)ᵀ·a */
        gemv(dt, !tb, tb ? n : k, tb ? k : n, b, ldb, a, ta ? lda : 1, beta, c, 1);
    else if (n == 1) /* c (m×1) = op(A)·b */
        gemv(dt, ta, ta ? k : m, ta ? m : k, a, lda, b, tb ? 1 : ldb, beta, c, ldc);
    else if (k == 1) /* C = a·bᵀ */
        ger(dt, m, n, a, ta ? 1 : lda, b, tb ? ldb : 1, beta, c, ldc);
    else {
        enum CBLAS_TRANSPOSE A = ta ? CblasTrans : CblasNoTrans;
        enum CBLAS_TRANSPOSE B = tb ? CblasTrans : CblasNoTrans;
        if (dt == TG_F32)
            cblas_sgemm(CblasRowMajor, A, B, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
                        (float)beta, c, (int)ldc);
        else
            cblas_dgemm(CblasRowMajor, A, B, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb,
                        beta, c, (int)ldc);
    }
}

/* One product cut in parts for the thread pool, at multiples of 16 so that
 * each part's edges fall on whole BLAS micro-tiles:
 *   ROWS   C's rows (op(A)'s rows),
 *   COLS   C's columns (op(B)'s columns),
 *   INNER  the inner dimension k: part p computes op(A)[:, K_p]·op(B)[K_p, :],
 *          part 0 into C, the others into scratch that is then added to C
 *          in part order.
 * Why three: a thread should always touch the same rows of a weight W from
 * one product to the next and in the optimizer's update, which cuts W by
 * rows. Written lines that move to another core cost more than the split
 * saves on the VM measured here (benches/RESULTS.md). So at a small batch,
 * where W is the largest operand, the product cuts W's stored rows: the
 * forward X·W by INNER, dX = G·Wᵀ by COLS, dW = Xᵀ·G by ROWS. At a large
 * batch it cuts the batch rows (ROWS), where the activations live. The
 * optimizer (optim.c) cuts a matrix parameter by rows at multiples of 16,
 * as tg_part_range does here.
 * Every element of C is computed by the same BLAS calls whichever thread
 * runs its part: results depend on the number of parts only. */
enum { SPLIT_ROWS, SPLIT_COLS, SPLIT_INNER };

typedef struct gemm_job {
    tg_dtype dt;
    int ta, tb, split;
    size_t m, n, k, lda, ldb, ldc;
    const void *a, *b;
    void *c;
    double beta;
    char *scratch; /* INNER: parts 1.. write m×n each here */
} gemm_job;

static void gemm_part(void *ctx, int part, int parts) {
    const gemm_job *j = ctx;
    size_t es = tg_dtype_size(j->dt), lo, hi;
    size_t len = j->split == SPLIT_ROWS ? j->m : j->split == SPLIT_COLS ? j->n : j->k;
    tg_part_range(len, part, parts, 16, &lo, &hi);
    /* Only a ROWS or COLS part can be empty (it then has nothing to do):
     * choose_split picks INNER only when k has 16 per part, so every INNER
     * part gets k of its own, writes its partial and, part 0, applies beta. */
    if (lo == hi) return;
    const char *a = j->a, *b = j->b;
    char *c = j->c;
    if (j->split == SPLIT_ROWS) /* rows lo..hi of op(A): rows of A, or columns of Aᵀ */
        gemm_any(j->dt, j->ta, j->tb, hi - lo, j->n, j->k, a + (j->ta ? lo : lo * j->lda) * es,
                 j->lda, b, j->ldb, j->beta, c + lo * j->ldc * es, j->ldc);
    else if (j->split == SPLIT_COLS) /* columns lo..hi of op(B) */
        gemm_any(j->dt, j->ta, j->tb, j->m, hi - lo, j->k, a, j->lda,
                 b + (j->tb ? lo * j->ldb : lo) * es, j->ldb, j->beta, c + lo * es, j->ldc);
    else { /* columns lo..hi of op(A), rows lo..hi of op(B); with beta 0, BLAS does
            * not read the (uninitialised) scratch: "when BETA is zero, C need not
            * be set on input" (reference BLAS) */
        char *out = part ? j->scratch + (size_t)(part - 1) * j->m * j->n * es : c;
        gemm_any(j->dt, j->ta, j->tb, j->m, j->n, hi - lo, a + (j->ta ? lo * j->lda : lo) * es,
                 j->lda, b + (j->tb ? lo : lo * j->ldb) * es, j->ldb, part ? 0.0 : j->beta, out,
                 part ? j->n : j->ldc);
    }
}

/* C += the partial products of parts 1.. (m×n each, in part order). */
static void add_partials(const gemm_job *j, int parts) {
    size_t m = j->m, n = j->n, ldc = j->ldc;
    for (int p = 1; p < parts; p++)
        TG_DISPATCH(j->dt, real *c = j->c;
                    const real *s = (const real *)j->scratch + (size_t)(p - 1) * m * n;
                    for (size_t i = 0; i < m; i++) for (size_t q = 0; q < n; q++) c[i * ldc + q] +=
                    s[i * n + q];);
}

/* The split that cuts the largest of A, B, C along its stored rows (see
 * above) where that dimension has 16 or more per part; ROWS when C has 128
 * rows per part or more (a batch of 256 on 2 threads: there the batch's
 * activations are the largest operands). -1: no split. Measured on 2
 * threads (bench_step, f32): batch 128 step 920 µs with ROWS always, 825
 * µs with this rule; batch 32 404 → 270 µs; batch 1 176 → 50 µs. */
static int choose_split(int ta, int tb, size_t m, size_t n, size_t k, int parts) {
    size_t room = 16 * (size_t)parts;
    if (m >= 128 * (size_t)parts) return SPLIT_ROWS;
    double sa = (double)m * (double)k, sb = (double)k * (double)n, sc = (double)m * (double)n;
    int want = sb >= sa && sb >= sc ? (tb ? SPLIT_COLS : SPLIT_INNER)
               : sc >= sa           ? SPLIT_ROWS
               : ta                 ? SPLIT_INNER
                                    : SPLIT_ROWS;
    size_t len = want == SPLIT_ROWS ? m : want == SPLIT_COLS ? n : k;
    if (len >= room) return want;
    return m >= room ? SPLIT_ROWS : n >= room ? SPLIT_COLS : -1;
}

/* Products under this many multiply-adds stay on one thread: waking the
 * pool's workers costs about a microsecond. */
#define SPLIT_MIN_MACS 32768.0

/* A product on tapegrad's pool (tg_set_threads was called; OpenBLAS is on
 * one thread): a large one cut in parts, one part per thread. */
static void gemm_pooled(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a,
                        size_t lda, const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    int parts = tg_get_threads();
    double macs = (double)m * (double)n * (double)k;
    int split = parts > 1 && macs >= SPLIT_MIN_MACS ? choose_split(ta, tb, m, n, k, parts) : -1;
    gemm_job j = {dt, ta, tb, split, m, n, k, lda, ldb, ldc, a, b, c, beta, NULL};
    if (split == SPLIT_INNER) {
        j.scratch =
            tg_scratch(TG_SCRATCH_PARTIALS, (size_t)(parts - 1) * m * n * tg_dtype_size(dt));
        if (!j.scratch) split = -1; /* out of memory: one thread (sums rounded apart) */
    }
    if (split < 0) {
        gemm_any(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    tg_parallel(gemm_part, &j, parts);
    if (split == SPLIT_INNER) add_partials(&j, parts);
}

/* The matrix product of every op, by OpenBLAS. With tapegrad's threads
 * (tg_set_threads) on the pool; without them, a large product runs on
 * OpenBLAS's threads, a small one (a dimension of 1, or under ~2 MFLOP) on
 * one OpenBLAS thread: waking and joining its pool costs more than the
 * product. The count the user set is restored after the call. */
static void gemm(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a,
                 size_t lda, const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    if (tg_threads_managed()) {
        gemm_pooled(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    double macs = (double)m * (double)n * (double)k;
    if (!(m == 1 || n == 1 || k == 1 || macs < 1e6)) {
        gemm_any(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* OpenBLAS's thread count is global: it is read, set to 1 and restored
     * under a lock, so that two tapes on two threads do not save each
     * other's 1. */
    pthread_mutex_lock(&blas_threads_lock);
    int th = openblas_get_num_threads();
    if (th > 1) openblas_set_num_threads(1);
    gemm_any(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    if (th > 1) openblas_set_num_threads(th);
    pthread_mutex_unlock(&blas_threads_lock);
}

/* The same product for the other op families (conv.c): one threading layer. */
void tg_gemm(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a, size_t lda,
             const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    gemm(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* The same product on the calling thread only, for an op that shares its
 * work out among the pool's threads itself (conv.c: whole images per
 * thread); OpenBLAS is then on one thread (tg_set_threads). */
void tg_gemm1(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a, size_t lda,
              const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    gemm_any(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* ---------------------------------------------------------------- matmul φ */

static tg_status matmul_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    char sa[64], sb[64];
    if (a->rank != 2 || b->rank != 2) {
        snprintf(msg, len, "needs 2-D inputs: %s·%s", SHP(sa, a), SHP(sb, b));
        return TG_ERR_SHAPE;
    }
    if (a->shape[1] != b->shape[0]) {
        snprintf(msg, len, "inner dimensions differ: %s·%s", SHP(sa, a), SHP(sb, b));
        return TG_ERR_SHAPE;
    }
    if (a->shape[0] > INT32_MAX || a->shape[1] > INT32_MAX || b->shape[1] > INT32_MAX) {
        snprintf(msg, len, "dimension too large for BLAS: %s·%s", SHP(sa, a), SHP(sb, b));
        return TG_ERR_SHAPE;
    }
    c->out->rank = 2;
    c->out->shape[0] = a->shape[0];
    c->out->shape[1] = b->shape[1];
    return TG_OK;
}

static void matmul_forward(tg_call *c) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    size_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    gemm(a->dtype, 0, 0, m, n, k, a->data, k, b->data, n, 0.0, c->out->data, n);
}

/* d(A·B)(Ȧ, Ḃ) = Ȧ·B + A·Ḃ  (d₁φ(Z) = Zx and dφ(ξ) = Aξ). */
static void matmul_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    size_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    double beta = 0.0;
    if (tin[0]) {
        gemm(a->dtype, 0, 0, m, n, k, tin[0], k, b->data, n, beta, tout, n);
        beta = 1.0;
    }
    if (tin[1]) gemm(a->dtype, 0, 0, m, n, k, a->data, k, tin[1], n, beta, tout, n);
}

/* Ā += ζ·Bᵀ (r₁φ) into ga, B̄ += Aᵀ·ζ (rφ) into gb, with A, B the operands
 * given (the values for the r-map, the tangents for the second order). */
static void matmul_r(const tg_call *c, const void *A, const void *B, const void *gout, void *ga,
                     void *gb) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    size_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    if (ga) gemm(a->dtype, 0, 1, m, k, n, gout, n, B, n, 1.0, ga, k);
    if (gb) gemm(a->dtype, 1, 0, k, n, m, A, k, gout, n, 1.0, gb, n);
}

static void matmul_vjp(const tg_call *c, const void *gout, void *const *gin) {
    matmul_r(c, c->in[0]->data, c->in[1]->data, gout, gin[0], gin[1]);
}

/* Second order (issue 18): r(ζ) = (ζBᵀ, Aᵀζ) is linear in each operand, so
 * its derivative along (Ȧ, Ḃ) is r with the tangent operands substituted:
 *   vjp_dot: ġin_A += ζ·Ḃᵀ,  ġin_B += Ȧᵀ·ζ   (a zero tangent: no term). */
static void matmul_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                           const void *gout, void *const *gin) {
    (void)tout;
    matmul_r(c, tin[0], tin[1], gout, tin[1] ? gin[0] : NULL, tin[0] ? gin[1] : NULL);
}

static void matmul_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    tg_sample_2d(s, 1, k, n, TG_DOM_REAL);
}

const tg_op tg_op_matmul = {.name = "matmul",
                            .arity = 2,
                            .check = matmul_check,
                            .forward = matmul_forward,
                            .jvp = matmul_jvp,
                            .vjp = matmul_vjp,
                            .sample = matmul_sample,
                            .vjp_dot = matmul_vjp_dot};

tg_status tg_matmul(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_matmul, a, b, NULL, out);
}

/* ---------------------------------------------------------------- batched matmul */

/* torch.matmul on operands of rank >= 2 with transpose flags: C = op(A)·op(B)
 * on the last two axes, op(X) = X or Xᵀ (attr.i[0], attr.i[1]), and the
 * axes before them (the batch) broadcast as in broadcast.c. Per batch item
 * it is φ again, so its maps are matmul's with the transposes carried
 * along:
 *   d: Ċ = op(Ȧ)·op(B) + op(A)·op(Ḃ)
 *   r: Ā += ζ·op(B)ᵀ (stored Aᵀ: Ā += op(B)·ζᵀ),
 *      B̄ += op(A)ᵀ·ζ (stored Bᵀ: B̄ += ζᵀ·op(A)),
 * one BLAS call per batch item with the flags (Q·Kᵀ needs no copy of K),
 * accumulated with beta = 1, which for a broadcast operand also sums over
 * the batch items that read it (Bᵀ of broadcast.c). */
typedef struct bmm_geom {
    size_t m, n, k;    /* op(A) m×k, op(B) k×n */
    size_t batch;      /* output batch items */
    tg_bcast g;        /* the batch axes: operand 0 = A, 1 = B */
    size_t sa, sb, sc; /* elements per matrix of A, B, C */
    int ta, tb;        /* the transpose flags (attr.i[0], attr.i[1]) */
    size_t es;         /* bytes per element */
} bmm_geom;

/* The batch part of x (all but its last two axes) as a tensor header. */
static tg_tensor batch_of(const tg_tensor *x) {
    tg_tensor h;
    memset(&h, 0, sizeof h);
    h.dtype = x->dtype;
    h.rank = x->rank - 2;
    for (int a = 0; a < TG_MAX_RANK; a++)
        h.shape[a] = a < h.rank ? x->shape[a] : 1;
    return h;
}

static tg_status bmm_geometry(const tg_call *c, bmm_geom *G, char *msg, size_t len) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    int ta = c->attr.i[0] != 0, tb = c->attr.i[1] != 0;
    char s0[64], s1[64];
    if (a->rank < 2 || b->rank < 2) {
        snprintf(msg, len, "needs rank >= 2 operands: %s·%s", SHP(s0, a), SHP(s1, b));
        return TG_ERR_SHAPE;
    }
    size_t ar = a->shape[a->rank - 2], ac = a->shape[a->rank - 1];
    size_t br = b->shape[b->rank - 2], bc = b->shape[b->rank - 1];
    G->m = ta ? ac : ar, G->k = ta ? ar : ac, G->n = tb ? br : bc;
    if ((tb ? bc : br) != G->k) {
        snprintf(msg, len, "inner dimensions differ: %s%s·%s%s", SHP(s0, a), ta ? "ᵀ" : "",
                 SHP(s1, b), tb ? "ᵀ" : "");
        return TG_ERR_SHAPE;
    }
    if (ar > INT32_MAX || ac > INT32_MAX || br > INT32_MAX || bc > INT32_MAX) {
        snprintf(msg, len, "dimension too large for BLAS: %s·%s", SHP(s0, a), SHP(s1, b));
        return TG_ERR_SHAPE;
    }
    tg_tensor ha = batch_of(a), hb = batch_of(b);
    const tg_tensor *hs[2] = {&ha, &hb};
    char bmsg[200];
    if (tg_bcast_init(&G->g, 2, hs, bmsg, sizeof bmsg)) {
        snprintf(msg, len, "batch axes of %s and %s do not broadcast", SHP(s0, a), SHP(s1, b));
        return TG_ERR_SHAPE;
    }
    G->batch = G->g.size;
    G->sa = ar * ac, G->sb = br * bc, G->sc = G->m * G->n;
    G->ta = ta, G->tb = tb, G->es = tg_dtype_size(a->dtype);
    return TG_OK;
}

/* Byte offsets of batch item i's matrices: A's and B's (broadcast: the
 * item that reads them) and C's. */
typedef struct bmm_item {
    size_t a, b, c;
} bmm_item;

static bmm_item bmm_at(const bmm_geom *G, size_t i) {
    size_t oa = 0, ob = 0, rest = i;
    for (int ax = G->g.rank - 1; ax >= 0; ax--) {
        size_t d = rest % G->g.shape[ax];
        rest /= G->g.shape[ax];
        oa += d * G->g.stride[0][ax], ob += d * G->g.stride[1][ax];
    }
    return (bmm_item){oa * G->sa * G->es, ob * G->sb * G->es, i * G->sc * G->es};
}

/* The geometry of a recorded call (its check passed). */
static bmm_geom bmm_of(const tg_call *c) {
    bmm_geom G;
    char msg[8];
    bmm_geometry(c, &G, msg, sizeof msg);
    return G;
}

/* Element `off` bytes into buffer p. */
static const char *at(const void *p, size_t off) {
    return (const char *)p + off;
}

static tg_status bmm_check(tg_call *c, char *msg, size_t len) {
    bmm_geom G;
    tg_status s = bmm_geometry(c, &G, msg, len);
    if (s) return s;
    int r = G.g.rank;
    if (r + 2 > TG_MAX_RANK) {
        snprintf(msg, len, "result would have rank %d > %d", r + 2, TG_MAX_RANK);
        return TG_ERR_SHAPE;
    }
    c->out->rank = r + 2;
    for (int a = 0; a < r; a++)
        c->out->shape[a] = G.g.shape[a];
    c->out->shape[r] = G.m, c->out->shape[r + 1] = G.n;
    return TG_OK;
}

/* Row lengths (leading dimensions) of the stored A and B. */
static size_t lead(const tg_tensor *x) {
    return x->shape[x->rank - 1];
}

/* Batch item i of each map; `one` is the product routine: gemm (which may
 * cut one product across the pool) or gemm1 (the calling thread only). */
typedef void (*gemm_fn)(tg_dtype, int, int, size_t, size_t, size_t, const void *, size_t,
                        const void *, size_t, double, void *, size_t);

static void bmm_forward_item(const tg_call *c, const bmm_geom *G, size_t i, gemm_fn one) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    bmm_item it = bmm_at(G, i);
    one(a->dtype, G->ta, G->tb, G->m, G->n, G->k, at(a->data, it.a), lead(a), at(b->data, it.b),
        lead(b), 0.0, (char *)c->out->data + it.c, G->n);
}

static void bmm_jvp_item(const tg_call *c, const bmm_geom *G, size_t i, const void *const *tin,
                         void *tout, gemm_fn one) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    bmm_item it = bmm_at(G, i);
    char *pc = (char *)tout + it.c;
    if (tin[0]) /* op(Ȧ)·op(B) */
        one(a->dtype, G->ta, G->tb, G->m, G->n, G->k, at(tin[0], it.a), lead(a), at(b->data, it.b),
            lead(b), 0.0, pc, G->n);
    if (tin[1]) /* + op(A)·op(Ḃ) */
        one(a->dtype, G->ta, G->tb, G->m, G->n, G->k, at(a->data, it.a), lead(a), at(tin[1], it.b),
            lead(b), tin[0] ? 1.0 : 0.0, pc, G->n);
}

/* The r-map of item i with operands A, B (the values, or the tangents for
 * the second order) into g[0], g[1] (NULL: not wanted), for the inputs
 * whose bit is set in `which`. */
static void bmm_vjp_item(const tg_call *c, const bmm_geom *G, size_t i, const void *const *AB,
                         const void *gout, void *const *g, unsigned which, gemm_fn one) {
    const tg_tensor *a = c->in[0], *b = c->in[1];
    size_t m = G->m, n = G->n, k = G->k;
    bmm_item it = bmm_at(G, i);
    const char *pa = AB[0] ? at(AB[0], it.a) : NULL, *pb = AB[1] ? at(AB[1], it.b) : NULL,
               *z = at(gout, it.c);
    if (g[0] && (which & 1u)) {
        char *ga = (char *)g[0] + it.a;
        if (!G->ta) /* Ā (m×k) += ζ·op(B)ᵀ */
            one(a->dtype, 0, !G->tb, m, k, n, z, n, pb, lead(b), 1.0, ga, k);
        else /* stored Aᵀ (k×m) += op(B)·ζᵀ */
            one(a->dtype, G->tb, 1, k, m, n, pb, lead(b), z, n, 1.0, ga, m);
    }
    if (g[1] && (which & 2u)) {
        char *gb = (char *)g[1] + it.b;
        if (!G->tb) /* B̄ (k×n) += op(A)ᵀ·ζ */
            one(a->dtype, !G->ta, 0, k, n, m, pa, lead(a), z, n, 1.0, gb, n);
        else /* stored Bᵀ (n×k) += ζᵀ·op(A) */
            one(a->dtype, 1, G->ta, n, k, m, z, n, pa, lead(a), 1.0, gb, k);
    }
}

/* Many items (attention: batch × heads products of T×E): whole items per
 * thread, each on one thread, instead of every small product cut across
 * the pool (one wake-up and join per product: 128 per map at the char
 * LM's shapes). Items write disjoint outputs; an r-map whose input is
 * broadcast (several items add into one adjoint) stays item by item.
 * Each item is then one BLAS call on one thread, as with one thread:
 * results do not depend on the thread count. */
static int bmm_by_items(const bmm_geom *G) {
    int parts = tg_get_threads();
    return tg_threads_managed() && parts > 1 && G->batch >= 2 * (size_t)parts;
}

/* Whether input j's batch items are all distinct (not broadcast). */
static int bmm_full(const tg_call *c, const bmm_geom *G, int j) {
    return c->in[j]->size / (j ? G->sb : G->sa) == G->batch;
}

typedef struct bmm_job {
    const tg_call *c;
    const bmm_geom *G;
    const void *const *tin;
    void *tout;
    const void *const *AB; /* the r-map's operands */
    const void *gout;
    void *const *gin;
    unsigned which;
    int map; /* 0 forward, 1 d-map, 2 r-map */
} bmm_job;

static void bmm_part(void *ctx, int part, int parts) {
    const bmm_job *j = ctx;
    size_t lo, hi;
    tg_part_range(j->G->batch, part, parts, 1, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        if (j->map == 0)
            bmm_forward_item(j->c, j->G, i, gemm_any);
        else if (j->map == 1)
            bmm_jvp_item(j->c, j->G, i, j->tin, j->tout, gemm_any);
        else
            bmm_vjp_item(j->c, j->G, i, j->AB, j->gout, j->gin, j->which, gemm_any);
}

static void bmm_forward(tg_call *c) {
    bmm_geom G = bmm_of(c);
    if (bmm_by_items(&G)) {
        bmm_job j = {.c = c, .G = &G, .map = 0};
        tg_parallel(bmm_part, &j, tg_get_threads());
        return;
    }
    for (size_t i = 0; i < G.batch; i++)
        bmm_forward_item(c, &G, i, gemm);
}

static void bmm_jvp(const tg_call *c, const void *const *tin, void *tout) {
    bmm_geom G = bmm_of(c);
    if (bmm_by_items(&G)) {
        bmm_job j = {.c = c, .G = &G, .tin = tin, .tout = tout, .map = 1};
        tg_parallel(bmm_part, &j, tg_get_threads());
        return;
    }
    for (size_t i = 0; i < G.batch; i++)
        bmm_jvp_item(c, &G, i, tin, tout, gemm);
}

/* The r-map with operands AB (values or tangents) into g[0], g[1]. */
static void bmm_r(const tg_call *c, const void *const *AB, const void *gout, void *const *g) {
    bmm_geom G = bmm_of(c);
    unsigned par = 0; /* inputs whose adjoints go item-parallel */
    if (bmm_by_items(&G)) par = (bmm_full(c, &G, 0) ? 1u : 0u) | (bmm_full(c, &G, 1) ? 2u : 0u);
    if (par) {
        bmm_job j = {.c = c, .G = &G, .AB = AB, .gout = gout, .gin = g, .which = par, .map = 2};
        tg_parallel(bmm_part, &j, tg_get_threads());
    }
    if (par != 3u)
        for (size_t i = 0; i < G.batch; i++)
            bmm_vjp_item(c, &G, i, AB, gout, g, 3u & ~par, gemm);
}

static void bmm_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const void *AB[2] = {c->in[0]->data, c->in[1]->data};
    bmm_r(c, AB, gout, gin);
}

/* Second order (issue 18), as matmul's: r with the tangent operands,
 *   vjp_dot: ġin_A += ζ·op(Ḃ)ᵀ (stored as A is), ġin_B += op(Ȧ)ᵀ·ζ,
 * summed over the batch items a broadcast operand serves, as the r-map. */
static void bmm_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                        const void *gout, void *const *gin) {
    (void)tout;
    void *g[2] = {tin[1] ? gin[0] : NULL, tin[0] ? gin[1] : NULL};
    bmm_r(c, tin, gout, g);
}

/* Attention's shapes in small: A (2, 1, m, k) against a broadcast B
 * (3, n, k) read transposed (Q·Kᵀ), giving (2, 3, m, n). */
static void bmm_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 4;
    s->shape[0][0] = 2, s->shape[0][1] = 1, s->shape[0][2] = m, s->shape[0][3] = k;
    s->rank[1] = 3;
    s->shape[1][0] = 3, s->shape[1][1] = n, s->shape[1][2] = k;
    s->domain[0] = s->domain[1] = TG_DOM_REAL;
    s->attr.i[0] = 0, s->attr.i[1] = 1;
}

const tg_op tg_op_batched_matmul = {.name = "batched_matmul",
                                    .arity = 2,
                                    .check = bmm_check,
                                    .forward = bmm_forward,
                                    .jvp = bmm_jvp,
                                    .vjp = bmm_vjp,
                                    .sample = bmm_sample,
                                    .vjp_dot = bmm_vjp_dot};

tg_status tg_matmul_t(tg_tape *t, const tg_tensor *a, const tg_tensor *b, int transpose_a,
                      int transpose_b, tg_tensor **out) {
    tg_attr at = {.i = {transpose_a != 0, transpose_b != 0}};
    return tg_apply2(t, &tg_op_batched_matmul, a, b, &at, out);
}

/* ---------------------------------------------------------------- bias-add ψ */

/* ψ(b, X) = X + b with b broadcast over the rows of X (the batch). Shared
 * with the fused bias + activation ops (activation.c). */
tg_status tg_bias_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *b = c->in[1];
    char sx[64], sb[64];
    int b_is_row = b->size == tg_last_dim(b);
    if (x->rank < 1 || !b_is_row || b->size != tg_last_dim(x)) {
        snprintf(msg, len, "bias must be a vector of the last dimension of x: %s+%s", SHP(sx, x),
                 SHP(sb, b));
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    return TG_OK;
}

static void bias_forward(tg_call *c) {
    const tg_tensor *x = c->in[0];
    size_t d = tg_last_dim(x), rows = tg_rows(x);
    TG_DISPATCH(
        x->dtype, const real *X = x->data; const real *b = c->in[1]->data; real *y = c->out->data;
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < d; j++)
                y[r * d + j] = X[r * d + j] + b[j];
        });
}

/* dψ(Ẋ, ḃ) = Ẋ + ḃ broadcast over rows. */
static void bias_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const tg_tensor *x = c->in[0];
    size_t d = tg_last_dim(x), rows = tg_rows(x);
    TG_DISPATCH(
        x->dtype, const real *tx = tin[0]; const real *tb = tin[1]; real *t = tout;
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < d; j++)
                t[r * d + j] = (tx ? tx[r * d + j] : 0) + (tb ? tb[j] : 0);
        });
}

/* rψ(ζ) = ζ for X; r̄ψ(ζ) = Σ_rows ζ for b (the seed's sum over the batch). */
static void bias_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const tg_tensor *x = c->in[0];
    size_t d = tg_last_dim(x), rows = tg_rows(x);
    TG_DISPATCH(
        x->dtype, const real *g = gout; real *gx = gin[0]; real *gb = gin[1];
        if (gx) for (size_t i = 0; i < rows * d; i++) gx[i] += g[i];
        if (gb) for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < d; j++)
                gb[j] += g[r * d + j];
        });
}

void tg_bias_sample(size_t m, size_t k, tg_domain dx, tg_domain db, tg_sample *s) {
    tg_sample_2d(s, 0, m, k, dx);
    s->rank[1] = 1;
    s->shape[1][0] = k;
    s->domain[1] = db;
}

void tg_bias_real_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_bias_sample(m, k, TG_DOM_REAL, TG_DOM_REAL, s);
}

/* rψ w.r.t. X is the identity (identity_r bit 0): X's adjoint is handed over.
 * ψ is affine, its r-map independent of X and b: no second-order term. */
const tg_op tg_op_bias_add = {.name = "bias_add",
                              .arity = 2,
                              .check = tg_bias_check,
                              .forward = bias_forward,
                              .jvp = bias_jvp,
                              .vjp = bias_vjp,
                              .sample = tg_bias_real_sample,
                              .identity_r = 1u,
                              .r_const = 1};

tg_status tg_bias_add(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_bias_add, x, b, NULL, out);
}
