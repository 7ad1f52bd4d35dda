/* The GEMM floor of the MLP step (bench_mlp.h): its 8 matrix products
 * called directly through CBLAS on buffers of the same shapes, nothing else.
 *   forward   Z1 = X·W1, Z2 = A1·W2, Z3 = A2·W3                 (beta 0)
 *   backward  dW3 += A2ᵀ·G3, dA2 += G3·W3ᵀ, dW2 += A1ᵀ·G2,
 *             dA1 += G2·W2ᵀ, dW1 += Xᵀ·G1                       (beta 1)
 * dX is not needed. Transposes are BLAS flags, as in the library. With
 * gemv set (batch 1), products are gemv and weight gradients ger. */
#ifndef TAPEGRAD_BENCH_FLOOR_H
#define TAPEGRAD_BENCH_FLOOR_H

#include "bench_mlp.h"

#include <cblas.h>

enum { FLOOR_AUTO, FLOOR_GEMM, FLOOR_GEMV };

/* ---------------------------------------------------------------- the floor */

typedef struct floor_bufs {
    tg_dtype dtype;
    size_t n;               /* batch */
    int gemv;               /* batch 1: gemv/ger instead of gemm */
    void *x, *w1, *w2, *w3; /* inputs and weights */
    void *z1, *z2, *z3;     /* forward outputs (also the activations A1, A2) */
    void *g3, *g2, *g1;     /* adjoints of Z3, Z2, Z1 (inputs of the backward) */
    void *da2, *da1;        /* adjoints of A2, A1 (outputs of the backward) */
    void *dw1, *dw2, *dw3;  /* weight gradients */
} floor_bufs;

static void *floor_buf(tg_dtype dt, size_t count, tg_rng *rng, double scale) {
    size_t esz = dt == TG_F32 ? sizeof(float) : sizeof(double);
    size_t bytes = (count * esz + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (!p) {
        fprintf(stderr, "bench: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < count; i++) {
        double v = scale == 0.0 ? 0.0 : scale * (tg_rng_uniform(rng) - 0.5);
        if (dt == TG_F32)
            ((float *)p)[i] = (float)v;
        else
            ((double *)p)[i] = v;
    }
    return p;
}

static void floor_new(floor_bufs *f, tg_dtype dt, size_t n, int gemv, uint64_t seed) {
    tg_rng r;
    tg_rng_seed(&r, seed);
    memset(f, 0, sizeof *f);
    f->dtype = dt, f->n = n, f->gemv = gemv;
    f->x = floor_buf(dt, n * BENCH_D0, &r, 1.0);
    f->w1 = floor_buf(dt, BENCH_D0 * BENCH_D1, &r, 0.1);
    f->w2 = floor_buf(dt, BENCH_D1 * BENCH_D2, &r, 0.1);
    f->w3 = floor_buf(dt, BENCH_D2 * BENCH_D3, &r, 0.1);
    f->z1 = floor_buf(dt, n * BENCH_D1, &r, 0.0);
    f->z2 = floor_buf(dt, n * BENCH_D2, &r, 0.0);
    f->z3 = floor_buf(dt, n * BENCH_D3, &r, 0.0);
    f->g3 = floor_buf(dt, n * BENCH_D3, &r, 0.01);
    f->g2 = floor_buf(dt, n * BENCH_D2, &r, 0.01);
    f->g1 = floor_buf(dt, n * BENCH_D1, &r, 0.01);
    f->da2 = floor_buf(dt, n * BENCH_D2, &r, 0.0);
    f->da1 = floor_buf(dt, n * BENCH_D1, &r, 0.0);
    f->dw1 = floor_buf(dt, BENCH_D0 * BENCH_D1, &r, 0.0);
    f->dw2 = floor_buf(dt, BENCH_D1 * BENCH_D2, &r, 0.0);
    f->dw3 = floor_buf(dt, BENCH_D2 * BENCH_D3, &r, 0.0);
}

static void floor_free(floor_bufs *f) {
    void *all[] = {f->x,  f->w1, f->w2,  f->w3,  f->z1,  f->z2,  f->z3, f->g3,
                   f->g2, f->g1, f->da2, f->da1, f->dw1, f->dw2, f->dw3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

/* C = op(A)·op(B) + beta·C, row-major, m×n result, inner dimension k. */
static void gemm(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a,
                 size_t lda, const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    enum CBLAS_TRANSPOSE A = ta ? CblasTrans : CblasNoTrans, B = tb ? CblasTrans : CblasNoTrans;
    if (dt == TG_F32)
        cblas_sgemm(CblasRowMajor, A, B, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
                    (float)beta, c, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, A, B, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb,
                    beta, c, (int)ldc);
}

/* y = op(A)·x + beta·y, A row-major rows×cols. */
static void gemv(tg_dtype dt, int ta, size_t rows, size_t cols, const void *a, const void *x,
                 double beta, void *y) {
    enum CBLAS_TRANSPOSE A = ta ? CblasTrans : CblasNoTrans;
    if (dt == TG_F32)
        cblas_sgemv(CblasRowMajor, A, (int)rows, (int)cols, 1.0f, a, (int)cols, x, 1, (float)beta,
                    y, 1);
    else
        cblas_dgemv(CblasRowMajor, A, (int)rows, (int)cols, 1.0, a, (int)cols, x, 1, beta, y, 1);
}

/* A += x·yᵀ, A row-major rows×cols. */
static void ger(tg_dtype dt, size_t rows, size_t cols, const void *x, const void *y, void *a) {
    if (dt == TG_F32)
        cblas_sger(CblasRowMajor, (int)rows, (int)cols, 1.0f, x, 1, y, 1, a, (int)cols);
    else
        cblas_dger(CblasRowMajor, (int)rows, (int)cols, 1.0, x, 1, y, 1, a, (int)cols);
}

/* The step's 8 products. */
/* The forward's 3 products. */
static void floor_forward(floor_bufs *f) {
    const tg_dtype dt = f->dtype;
    const size_t n = f->n, d0 = BENCH_D0, d1 = BENCH_D1, d2 = BENCH_D2, d3 = BENCH_D3;
    if (f->gemv) {                                     /* batch 1: rows are vectors */
        gemv(dt, 1, d0, d1, f->w1, f->x, 0.0, f->z1);  /* z1 = x·W1 = W1ᵀx */
        gemv(dt, 1, d1, d2, f->w2, f->z1, 0.0, f->z2); /* z2 = a1·W2 */
        gemv(dt, 1, d2, d3, f->w3, f->z2, 0.0, f->z3); /* z3 = a2·W3 */
        return;
    }
    gemm(dt, 0, 0, n, d1, d0, f->x, d0, f->w1, d1, 0.0, f->z1, d1);  /* Z1 = X·W1 */
    gemm(dt, 0, 0, n, d2, d1, f->z1, d1, f->w2, d2, 0.0, f->z2, d2); /* Z2 = A1·W2 */
    gemm(dt, 0, 0, n, d3, d2, f->z2, d2, f->w3, d3, 0.0, f->z3, d3); /* Z3 = A2·W3 */
}

/* The backward's 5 products. */
static void floor_backward(floor_bufs *f) {
    const tg_dtype dt = f->dtype;
    const size_t n = f->n, d0 = BENCH_D0, d1 = BENCH_D1, d2 = BENCH_D2, d3 = BENCH_D3;
    if (f->gemv) {
        ger(dt, d2, d3, f->z2, f->g3, f->dw3);          /* dW3 += a2ᵀ·g3 */
        gemv(dt, 0, d2, d3, f->w3, f->g3, 1.0, f->da2); /* da2 += g3·W3ᵀ = W3·g3 */
        ger(dt, d1, d2, f->z1, f->g2, f->dw2);          /* dW2 += a1ᵀ·g2 */
        gemv(dt, 0, d1, d2, f->w2, f->g2, 1.0, f->da1); /* da1 += W2·g2 */
        ger(dt, d0, d1, f->x, f->g1, f->dw1);           /* dW1 += xᵀ·g1 */
        return;
    }
    gemm(dt, 1, 0, d2, d3, n, f->z2, d2, f->g3, d3, 1.0, f->dw3, d3); /* dW3 += A2ᵀ·G3 */
    gemm(dt, 0, 1, n, d2, d3, f->g3, d3, f->w3, d3, 1.0, f->da2, d2); /* dA2 += G3·W3ᵀ */
    gemm(dt, 1, 0, d1, d2, n, f->z1, d1, f->g2, d2, 1.0, f->dw2, d2); /* dW2 += A1ᵀ·G2 */
    gemm(dt, 0, 1, n, d1, d2, f->g2, d2, f->w2, d2, 1.0, f->da1, d1); /* dA1 += G2·W2ᵀ */
    gemm(dt, 1, 0, d0, d1, n, f->x, d0, f->g1, d1, 1.0, f->dw1, d1);  /* dW1 += Xᵀ·G1 */
}

/* The step's 8 products. */
static void floor_run(floor_bufs *f) {
    floor_forward(f);
    floor_backward(f);
}

#endif
