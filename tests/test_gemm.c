/* tapegrad's own GEMM kernel (src/ops/gemm.c) called directly: every
 * transpose pair, both dtypes, sizes on each side of the tile (8 rows, 32 /
 * 16 columns) and block edges (120 rows, 256 of the inner dimension, 2048 /
 * 1024 columns), leading dimensions wider than the matrices, and beta 0, 1
 * and 0.5, each against a naive sum in double. Around every C sits a frame
 * of sentinels that must come back untouched (no write outside the m×n
 * corner), and beta = 0 starts from NaN (C must not be read). A product cut
 * by rows or columns, as the thread pool cuts it, must equal the whole
 * product bitwise. Where the CPU has no AVX-512 the kernel declines every
 * call, which is checked instead. */
#include "../src/tape/internal.h"
#include "check.h"

#include <cblas.h>
#include <stdlib.h>

static tg_rng rng;            /* seeded in main */
static double uniform(void) { /* [−0.5, 0.5) */
    return tg_rng_uniform(&rng) - 0.5;
}

static double get(tg_dtype dt, const void *p, size_t i) {
    return dt == TG_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}
static void put(tg_dtype dt, void *p, size_t i, double v) {
    if (dt == TG_F32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* rows × cols stored with leading dimension ld, random values. */
static void *random_matrix(tg_dtype dt, size_t rows, size_t ld) {
    void *p = malloc(rows * ld * tg_dtype_size(dt));
    for (size_t i = 0; p && i < rows * ld; i++)
        put(dt, p, i, uniform());
    return p;
}

#define SENTINEL 777.0 /* exact in both dtypes */

typedef struct product {
    tg_dtype dt;
    int ta, tb;
    size_t m, n, k, lda, ldb, ldc;
    double beta;
} product;

/* Element (i, p) of op(A), (p, j) of op(B). */
static double op_a(const product *q, const void *a, size_t i, size_t p) {
    return get(q->dt, a, q->ta ? p * q->lda + i : i * q->lda + p);
}
static double op_b(const product *q, const void *b, size_t p, size_t j) {
    return get(q->dt, b, q->tb ? j * q->ldb + p : p * q->ldb + j);
}

/* Runs one product and checks every element of C and of its frame. */
static void check_product(const product *q) {
    tg_dtype dt = q->dt;
    size_t arows = q->ta ? q->k : q->m, brows = q->tb ? q->n : q->k;
    size_t crows = q->m + 2; /* a sentinel row below C, and one at the right (ldc > n) */
    void *a = random_matrix(dt, arows, q->lda), *b = random_matrix(dt, brows, q->ldb);
    void *c = random_matrix(dt, crows, q->ldc), *c0 = malloc(crows * q->ldc * sizeof(double));
    CHECK(a && b && c && c0, "out of memory");
    if (!a || !b || !c || !c0) goto out;
    for (size_t i = 0; i < crows; i++)
        for (size_t j = 0; j < q->ldc; j++) {
            int inside = i < q->m && j < q->n;
            if (!inside) put(dt, c, i * q->ldc + j, SENTINEL);
            if (inside && q->beta == 0) put(dt, c, i * q->ldc + j, NAN);
            ((double *)c0)[i * q->ldc + j] = get(dt, c, i * q->ldc + j);
        }
    int done = tg_gemm_kernel(dt, q->ta, q->tb, q->m, q->n, q->k, a, q->lda, b, q->ldb, q->beta, c,
                              q->ldc);
    CHECK(done, "kernel declined %s ta=%d tb=%d %zux%zux%zu", dt == TG_F32 ? "f32" : "f64", q->ta,
          q->tb, q->m, q->n, q->k);
    if (!done) goto out;
    /* Error bound: a k-term dot product in precision u, plus the add of
     * beta·C and of one partial sum per 256-long chunk of k, is within
     * (k + k/256 + 2)·u·(Σ|a·b| + |beta·c|) of the exact value (Higham,
     * "Accuracy and Stability", 3.1, first order); the double reference
     * adds at most k·2⁻⁵³ of the same magnitude. Doubled for margin. */
    double u = dt == TG_F32 ? 0x1p-24 : 0x1p-53;
    double gamma = 2.0 * ((double)q->k + (double)q->k / 256.0 + 2.0) * u + (double)q->k * 0x1p-53;
    size_t bad = 0, outside = 0;
    double worst = 0;
    for (size_t i = 0; i < crows; i++)
        for (size_t j = 0; j < q->ldc; j++) {
            double got = get(dt, c, i * q->ldc + j), old = ((double *)c0)[i * q->ldc + j];
            if (!(i < q->m && j < q->n)) {
                outside += got != SENTINEL;
                continue;
            }
            double s = 0, mag = 0;
            for (size_t p = 0; p < q->k; p++) {
                double t = op_a(q, a, i, p) * op_b(q, b, p, j);
                s += t, mag += fabs(t);
            }
            if (q->beta != 0) s += q->beta * old, mag += fabs(q->beta * old);
            double e = fabs(got - s) / (mag + 1e-300);
            if (!(e <= gamma)) bad++; /* NaN counts as bad */
            if (!(e <= worst)) worst = e;
        }
    CHECK(bad == 0 && outside == 0,
          "%s ta=%d tb=%d m=%zu n=%zu k=%zu ld=%zu,%zu,%zu beta=%g: %zu wrong (worst %.3g, bound "
          "%.3g), %zu written outside C",
          dt == TG_F32 ? "f32" : "f64", q->ta, q->tb, q->m, q->n, q->k, q->lda, q->ldb, q->ldc,
          q->beta, bad, worst, gamma, outside);
out:
    free(a), free(b), free(c), free(c0);
}

static void test_shapes(void) {
    /* m: 1, tile edges 7/8/9, 25, block edges 120/121, 250; n: 1, 7/8/9,
     * 15/16/17, 31/32/33, 70; k: 1, 7, 255/256/257, 600 (three chunks).
     * The kernel takes every shape; linalg.c gives it only those that
     * tg_gemm_suits (test_suits). */
    static const size_t ms[] = {1, 7, 8, 9, 25, 120, 121, 250};
    static const size_t ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 70};
    static const size_t ks[] = {1, 7, 255, 256, 257, 600};
    static const double betas[] = {0.0, 1.0, 0.5};
    int count = 0;
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++)
            for (size_t im = 0; im < 8; im++)
                for (size_t in = 0; in < 11; in++) {
                    /* every (m, n) pair, k and beta rotating along so every k
                     * and beta meets every transpose pair and dtype */
                    size_t k = ks[(im * 8 + in + (size_t)t) % 6];
                    product q = {d ? TG_F64 : TG_F32,
                                 t & 1,
                                 t >> 1,
                                 ms[im],
                                 ns[in],
                                 k,
                                 0,
                                 0,
                                 0,
                                 betas[(im + in * 3 + (size_t)d) % 3]};
                    size_t pad = (im + in) % 3; /* leading dimensions 0–2 wider */
                    q.lda = (q.ta ? q.m : q.k) + pad;
                    q.ldb = (q.tb ? q.k : q.n) + pad;
                    q.ldc = q.n + 1 + pad; /* at least one sentinel column */
                    check_product(&q);
                    count++;
                }
    /* wide products: past the column blocks (2048 float32, 1024 float64),
     * beta 1 with a short k; then every block edge at once (rows past MC,
     * columns past NC, k past KC, all ragged) with beta 0 */
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++) {
            product q = {d ? TG_F64 : TG_F32, t & 1, t >> 1, 13, 2049, 9, 0, 0, 0, 1.0};
            if (t == 3) q.m = 125, q.n = d ? 1030 : 2050, q.k = 260, q.beta = 0.0;
            q.lda = q.ta ? q.m : q.k;
            q.ldb = q.tb ? q.k : q.n;
            q.ldc = q.n + 3;
            check_product(&q);
            count++;
        }
    printf("test_gemm: %d products checked element by element\n", count);
}

/* The thread pool cuts C by rows or columns at multiples of 16 and calls
 * the kernel on each part: the parts together must give the whole product
 * bit for bit. Cut here by 20 rows and 16 columns, so that parts end inside
 * tiles of the whole (edge tiles go through put_tile, full ones not), with
 * beta 1 and 0.3 (rounded by an FMA in both paths). */
static void test_parts_bitwise(void) {
    for (int d = 0; d < 4; d++)
        for (int t = 0; t < 4; t++) {
            double beta = d >= 2 ? 0.3 : 1.0;
            tg_dtype dt = d & 1 ? TG_F64 : TG_F32;
            int ta = t & 1, tb = t >> 1;
            size_t m = 150, n = 90, k = 300, es = tg_dtype_size(dt);
            size_t lda = ta ? m : k, ldb = tb ? k : n;
            void *a = random_matrix(dt, ta ? k : m, lda), *b = random_matrix(dt, tb ? n : k, ldb);
            void *whole = random_matrix(dt, m, n), *rows = malloc(m * n * es),
                 *cols = malloc(m * n * es);
            if (!a || !b || !whole || !rows || !cols) {
                CHECK(0, "out of memory");
                free(a), free(b), free(whole), free(rows), free(cols);
                return;
            }
            memcpy(rows, whole, m * n * es), memcpy(cols, whole, m * n * es);
            tg_gemm_kernel(dt, ta, tb, m, n, k, a, lda, b, ldb, beta, whole, n);
            const char *ac = a, *bc = b;
            for (size_t lo = 0; lo < m; lo += 20) { /* rows lo.. of op(A) */
                size_t h = m - lo < 20 ? m - lo : 20;
                tg_gemm_kernel(dt, ta, tb, h, n, k, ac + (ta ? lo : lo * lda) * es, lda, b, ldb,
                               beta, (char *)rows + lo * n * es, n);
            }
            for (size_t lo = 0; lo < n; lo += 16) { /* columns lo.. of op(B) */
                size_t w = n - lo < 16 ? n - lo : 16;
                tg_gemm_kernel(dt, ta, tb, m, w, k, a, lda, bc + (tb ? lo * ldb : lo) * es, ldb,
                               beta, (char *)cols + lo * es, n);
            }
            CHECK(memcmp(whole, rows, m * n * es) == 0,
                  "%s ta=%d tb=%d beta=%g: cut by rows differs", d & 1 ? "f64" : "f32", ta, tb,
                  beta);
            CHECK(memcmp(whole, cols, m * n * es) == 0,
                  "%s ta=%d tb=%d beta=%g: cut by columns differs", d & 1 ? "f64" : "f32", ta, tb,
                  beta);
            free(a), free(b), free(whole), free(rows), free(cols);
        }
}

/* Which products the kernels are given: those whose C has at least one
 * vector of columns (16 float32, 8 float64), matrix or vector products. */
static void test_suits(void) {
    CHECK(tg_gemm_suits(TG_F32, 128, 16, 128) && !tg_gemm_suits(TG_F32, 128, 15, 128), "f32 16");
    CHECK(tg_gemm_suits(TG_F64, 128, 8, 128) && !tg_gemm_suits(TG_F64, 128, 7, 128), "f64 8");
    CHECK(tg_gemm_suits(TG_F32, 1, 256, 784) && tg_gemm_suits(TG_F32, 784, 256, 1), "batch 1");
    CHECK(!tg_gemm_suits(TG_F32, 1, 10, 128) && !tg_gemm_suits(TG_F32, 256, 1, 128), "narrow");
}

/* ---------------------------------------------------------------- batch 1 */

/* y (cols) = beta·y + Mᵀx and C += a·bᵀ, M and C rows × cols with a
 * leading dimension cols + pad, x and a strided: every strip width (16, 4, 1
 * vectors and single columns) against a naive sum in double, with
 * sentinels after y and around C that must stay, and beta = 0 starting from
 * NaN. Bound: rows-term dot products, as for the matrix products. */
static void check_vector_products(tg_dtype dt, size_t rows, size_t cols, size_t inc, size_t pad,
                                  double beta) {
    size_t ld = cols + pad;
    void *m = random_matrix(dt, rows, ld), *x = random_matrix(dt, rows, inc);
    void *b = random_matrix(dt, 1, cols), *y = random_matrix(dt, 1, cols + 4);
    void *c = random_matrix(dt, rows + 1, ld), *c0 = malloc((rows + 1) * ld * sizeof(double));
    double *y0 = malloc((cols + 4) * sizeof(double));
    if (!m || !x || !b || !y || !c || !c0 || !y0) {
        CHECK(0, "out of memory");
        goto out;
    }
    for (size_t j = 0; j < cols + 4; j++) {
        put(dt, y, j, j >= cols ? SENTINEL : beta == 0 ? NAN : get(dt, y, j));
        y0[j] = get(dt, y, j);
    }
    for (size_t i = 0; i <= rows; i++)
        for (size_t j = 0; j < ld; j++) {
            if (i == rows || j >= cols) put(dt, c, i * ld + j, SENTINEL);
            ((double *)c0)[i * ld + j] = get(dt, c, i * ld + j);
        }
    CHECK(tg_gemv_kernel(dt, rows, cols, m, ld, x, inc, beta, y), "gemv declined");
    CHECK(tg_ger_kernel(dt, rows, cols, x, inc, b, c, ld), "ger declined");
    double u = dt == TG_F32 ? 0x1p-24 : 0x1p-53;
    double gamma = 2.0 * ((double)rows + 2.0) * u + (double)rows * 0x1p-53;
    size_t bad = 0, outside = 0;
    for (size_t j = 0; j < cols + 4; j++) {
        double got = get(dt, y, j);
        if (j >= cols) {
            outside += got != SENTINEL;
            continue;
        }
        double sum = beta == 0 ? 0 : beta * y0[j], mag = fabs(sum);
        for (size_t i = 0; i < rows; i++) {
            double t = get(dt, x, i * inc) * get(dt, m, i * ld + j);
            sum += t, mag += fabs(t);
        }
        bad += !(fabs(got - sum) <= gamma * (mag + 1e-300));
    }
    for (size_t i = 0; i <= rows; i++)
        for (size_t j = 0; j < ld; j++) {
            double got = get(dt, c, i * ld + j), old = ((double *)c0)[i * ld + j];
            if (i == rows || j >= cols) {
                outside += got != SENTINEL;
                continue;
            }
            double want = old + get(dt, x, i * inc) * get(dt, b, j);
            double mag = fabs(old) + fabs(want - old);
            bad += !(fabs(got - want) <= 2 * u * (mag + 1e-300));
        }
    CHECK(bad == 0 && outside == 0,
          "%s rows=%zu cols=%zu inc=%zu pad=%zu beta=%g: %zu wrong, %zu written outside",
          dt == TG_F32 ? "f32" : "f64", rows, cols, inc, pad, beta, bad, outside);
out:
    free(m), free(x), free(b), free(y), free(c), free(c0), free(y0);
}

static void test_vector_products(void) {
    /* columns: under one vector, 1, 4 and 16 vectors of either dtype and
     * their neighbours, and the MLP's 256 and 784 */
    static const size_t cols[] = {1,  7,  8,  9,   15,  16,  17,  31, 33,
                                  63, 64, 65, 128, 129, 256, 300, 784};
    static const size_t rows[] = {1, 3, 130};
    static const double betas[] = {0.0, 1.0, 0.5};
    int count = 0;
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
            for (size_t r = 0; r < 3; r++, count++)
                check_vector_products(d ? TG_F64 : TG_F32, rows[r], cols[c], 1 + (c + r) % 3,
                                      (c + r) % 2, betas[(c + r + (size_t)d) % 3]);
    printf("test_gemm: %d matrix-vector and outer products checked\n", count);
}

/* ---------------------------------------------------------------- routing */

/* C = A·B through tg_matmul, forward and both r-maps (ζ = ones): the
 * output and the two gradients, concatenated as doubles into out. */
static void matmul_bits(tg_dtype dt, size_t m, size_t k, size_t n, double *out) {
    tg_tensor *a = NULL, *b = NULL, *c = NULL, *s = NULL;
    tg_tape *t = NULL;
    size_t sa[2] = {m, k}, sb[2] = {k, n};
    CHECK_OK(tg_param_new(&a, dt, 2, sa));
    CHECK_OK(tg_param_new(&b, dt, 2, sb));
    CHECK_OK(tg_tape_new(&t));
    if (!a || !b || !t) goto out;
    tg_rng_seed(&rng, 777);
    for (size_t i = 0; i < a->size; i++)
        tg_set(a, i, uniform());
    for (size_t i = 0; i < b->size; i++)
        tg_set(b, i, uniform());
    CHECK_OK(tg_matmul(t, a, b, &c));
    CHECK_OK(tg_sum(t, c, &s));
    CHECK_OK(tg_backward(t, s));
    if (!c || !s) goto out;
    for (size_t i = 0; i < m * n; i++)
        *out++ = tg_get(c, i);
    for (size_t i = 0; i < m * k; i++)
        *out++ = dt == TG_F32 ? ((float *)a->grad)[i] : ((double *)a->grad)[i];
    for (size_t i = 0; i < k * n; i++)
        *out++ = dt == TG_F32 ? ((float *)b->grad)[i] : ((double *)b->grad)[i];
out:
    tg_tape_free(t);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* With OpenBLAS on one thread, a product takes the same kernels whether
 * tapegrad's pool runs it (tg_set_threads(1)) or not: bitwise equal, for
 * batch 1 (the strips and OpenBLAS's gemv), a small and a large product.
 * Once tg_set_threads is called the process stays managed, so the
 * unmanaged results are computed first. */
static void test_routing(void) {
    static const size_t shapes[][3] = {{1, 300, 40}, {1, 784, 256}, {20, 30, 40}, {150, 200, 90}};
    enum { NS = sizeof shapes / sizeof shapes[0] };
    double *bits[2][2][NS];
    openblas_set_num_threads(1);
    for (int managed = 0; managed < 2; managed++) {
        if (managed) CHECK_OK(tg_set_threads(1));
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < NS; i++) {
                size_t m = shapes[i][0], k = shapes[i][1], n = shapes[i][2];
                bits[managed][d][i] = calloc(m * n + m * k + k * n, sizeof(double));
                if (bits[managed][d][i])
                    matmul_bits(d ? TG_F64 : TG_F32, m, k, n, bits[managed][d][i]);
            }
    }
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < NS; i++) {
            size_t m = shapes[i][0], k = shapes[i][1], n = shapes[i][2];
            size_t len = (m * n + m * k + k * n) * sizeof(double);
            CHECK(bits[0][d][i] && bits[1][d][i] && !memcmp(bits[0][d][i], bits[1][d][i], len),
                  "%s %zux%zu·%zux%zu: managed and unmanaged differ", d ? "f64" : "f32", m, k, k,
                  n);
            free(bits[0][d][i]), free(bits[1][d][i]);
        }
}

/* tg_set_gemm: OpenBLAS on request (the kernel declines), bad values refused. */
static void test_switch(void) {
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {0};
    CHECK_OK(tg_set_gemm(TG_GEMM_OPENBLAS));
    CHECK(strcmp(tg_gemm_name(), "openblas") == 0, "name %s", tg_gemm_name());
    CHECK(!tg_gemm_kernel(TG_F32, 0, 0, 2, 2, 2, a, 2, b, 2, 0.0, c, 2), "kernel ran");
    CHECK(!tg_gemm_suits(TG_F32, 128, 256, 128), "OpenBLAS chosen, yet the kernel suits");
    EXPECT_ERR(tg_set_gemm((tg_gemm_impl)7), TG_ERR_ARG, "set_gemm: unknown implementation 7");
    CHECK_OK(tg_set_gemm(TG_GEMM_AUTO));
    CHECK(!tg_gemm_kernel(TG_F32, 0, 0, 2, 2, 0, a, 2, b, 2, 0.0, c, 2), "k = 0 not declined");
}

int main(void) {
    tg_rng_seed(&rng, 12345);
    const char *name = tg_gemm_name();
    printf("test_gemm: matrix products by %s\n", name);
    if (strcmp(name, "tapegrad-avx512") == 0) {
        test_shapes();
        test_parts_bitwise();
        test_suits();
        test_vector_products();
    } else { /* no AVX-512 here: the kernel must decline, OpenBLAS multiplies */
        float a[4] = {1, 2, 3, 4}, c[4] = {0};
        CHECK(!tg_gemm_kernel(TG_F32, 0, 0, 2, 2, 2, a, 2, a, 2, 0.0, c, 2), "kernel ran");
        CHECK(!tg_gemm_suits(TG_F32, 128, 256, 128), "no kernel, yet it suits");
        printf("test_gemm: no AVX-512 on this CPU: the kernel's products are not tested here\n");
    }
    test_switch();
    test_routing(); /* last: it leaves the process on tapegrad's pool */
    return check_summary();
}
