/* tapegrad's own matrix products for CPUs with AVX-512: C = op(A)·op(B) +
 * beta·C, row-major, float32 and float64, for matmul (linalg.c) wherever C
 * has at least one vector of columns (tg_gemm_suits); at batch 1, y = Mᵀx
 * and C += a·bᵀ (strips, further down). Narrower products, and y = Mx,
 * stay with OpenBLAS.
 *
 * Why: the OpenBLAS this project runs under is told which kernels to use
 * (OPENBLAS_CORETYPE=Haswell, AVX2), so on a CPU with AVX-512 half of each
 * vector unit idles. The step's 8 GEMMs at batch 128 take 1254 µs on one
 * thread with OpenBLAS's Haswell kernels, 680 µs with its SkylakeX kernels
 * (measured here with bench_step; benches/RESULTS.md). This file is the
 * textbook blocked GEMM (Goto, van de Geijn: "Anatomy of high-performance
 * matrix multiplication", the BLIS loop order):
 *
 *   for jc: NC columns of C          B block   KC×NC  packed once per (jc, pc)
 *     for pc: KC of the inner dim
 *       for ic: MC rows of C         A block   MC×KC  packed once per (ic, pc)
 *         for jr: NR columns         B panel   KC×NR  stays in L1
 *           for ir: MR rows          A panel   MR×KC  streams from L2
 *             micro-kernel: an MR×NR tile of C in 16 vector registers,
 *             one rank-1 update per p (MR broadcasts × NR/width FMAs).
 *
 * Packing copies op(A) and op(B) into the order the micro-kernel reads, so
 * every transpose costs only the copy, and pads edge panels with zeros so
 * the kernel always computes a full tile (only the valid part is written).
 *
 * Rounding: C[i][j] is the same chain whatever the tile or thread — for
 * each KC chunk in order, acc = Σ_p a·b by FMAs from 0, then C += acc — so a
 * split of C by rows or columns changes no bit (linalg.c's contract).
 * beta = 0 never reads C (it may hold garbage, as BLAS allows).
 *
 * Chosen at run time: AVX-512F present (cpuid, and the OS saves its
 * registers — __builtin_cpu_supports checks both) and tg_set_gemm not set
 * to OpenBLAS. Valgrind reports no AVX-512, so under it OpenBLAS runs. */
#include "ops.h"

#include <stdatomic.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define TG_GEMM_AVX512 1
#include <immintrin.h>
#define TARGET __attribute__((target("avx512f")))
#endif

/* Read by the pool's workers: atomic (relaxed) so that a set between two
 * products is seen without a data race. */
static atomic_int chosen = TG_GEMM_AUTO;

tg_status tg_set_gemm(tg_gemm_impl impl) {
    if (impl != TG_GEMM_AUTO && impl != TG_GEMM_OPENBLAS)
        return tg_fail(TG_ERR_ARG, "set_gemm: unknown implementation %d", (int)impl);
    atomic_store_explicit(&chosen, (int)impl, memory_order_relaxed);
    return TG_OK;
}

#ifdef TG_GEMM_AVX512
static int have_avx512(void) {
    static atomic_int known = -1; /* threads that race here all store the same */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k < 0) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k;
}
#else
static int have_avx512(void) {
    return 0;
}
#endif

/* tapegrad's kernels can run (AVX-512) and are chosen (tg_set_gemm). */
static int kernels_on(void) {
    return atomic_load_explicit(&chosen, memory_order_relaxed) == TG_GEMM_AUTO && have_avx512();
}

const char *tg_gemm_name(void) {
    return kernels_on() ? "tapegrad-avx512" : "openblas";
}

/* A C narrower than one vector (W = 16 float32, 8 float64 columns: the
 * MLP's 10 outputs) would leave most lanes idle: OpenBLAS's narrow kernels
 * are faster there (batch 128, 1 thread: 128×128·128×10 took 10.7 µs with
 * the tiles, 6.0 µs in OpenBLAS; its transposed-A twin 9.4 and 6.1 µs).
 * Of the vector products that suit, y = Mx (a dot product per row: m = 1
 * with op(B) = Bᵀ) has no kernel here and still goes to OpenBLAS's gemv. */
int tg_gemm_suits(tg_dtype dt, size_t m, size_t n, size_t k) {
    (void)m, (void)k;
    return kernels_on() && n >= (dt == TG_F32 ? 16u : 8u);
}

#ifdef TG_GEMM_AVX512

/* Tile and block sizes. A tile is MR rows × NR columns: 8 × 2 vectors = 16
 * accumulators, enough independent FMA chains to hide their latency on two
 * FMA pipes; 8 rows divide every batch and weight dimension of the usual
 * networks and the pool's 16-row parts (12 × 2 left a 4-row tile in each
 * 64-row part). KC·NR (the B panel, reused by every A panel of the block)
 * is 32 KB of a 48 KB L1; MC·KC (the A block) well inside a 1 MB L2.
 * Measured here (bench_step --phases, batch 128 f32, 1 thread, forward +
 * backward): MR 12: 762 µs, MR 8: 685 µs; KC 128 to 384 and MC 48 to 240
 * within noise of KC 256, MC 120. */
#define MR   8
#define KC   256
#define MC   120
#define NC32 2048 /* float32: NR = 32 */
#define NC64 1024 /* float64: NR = 16 */

/* Packing. A row of op(A) or a column of op(B) is a "line" of the inner
 * dimension p; element (line l, p) sits at src[l·ls + p·ps]. pack_W copies
 * len lines × kc into panels of W lines, each panel stored p-major (W values
 * per p, as the micro-kernel reads them), zero lines past the edge. A full
 * panel takes a loop with constant bounds, which the compiler unrolls and
 * vectorises, reading along whichever stride is 1. */
#define PACKER(real, name, W)                                                                      \
    static void name(const real *src, size_t ls, size_t ps, size_t len, size_t kc,                 \
                     real *restrict dst) {                                                         \
        for (size_t l0 = 0; l0 < len; l0 += W) {                                                   \
            const real *s = src + l0 * ls;                                                         \
            real *d = dst + l0 * kc;                                                               \
            size_t w = len - l0 < W ? len - l0 : W;                                                \
            if (w < W)                                                                             \
                for (size_t p = 0; p < kc; p++)                                                    \
                    for (size_t l = 0; l < W; l++)                                                 \
                        d[p * W + l] = l < w ? s[l * ls + p * ps] : 0;                             \
            else if (ls == 1) /* W contiguous values per p */                                      \
                for (size_t p = 0; p < kc; p++)                                                    \
                    for (size_t l = 0; l < W; l++)                                                 \
                        d[p * W + l] = s[p * ps + l];                                              \
            else /* W lines, each contiguous along p when ps = 1, read side by side */             \
                for (size_t p = 0; p < kc; p++)                                                    \
                    for (size_t l = 0; l < W; l++)                                                 \
                        d[p * W + l] = s[l * ls + p * ps];                                         \
        }                                                                                          \
    }

PACKER(float, pack_a_f32, MR)
PACKER(float, pack_b_f32, 32)
PACKER(double, pack_a_f64, MR)
PACKER(double, pack_b_f64, 16)

#define PUT_TILE(real, sfx, NR)                                                                    \
    /* Write an MR×NR tile (row-major in t) to C's mr×nr corner: C = t + beta·C,                \
     * rounded as the full tile's FMA rounds it (fma; 1·C is exact). */                           \
    static void put_tile_##sfx(const real *t, real *c, size_t ldc, size_t mr, size_t nr,           \
                               real beta) {                                                        \
        for (size_t i = 0; i < mr; i++)                                                            \
            for (size_t j = 0; j < nr; j++) {                                                      \
                real *ci = c + i * ldc + j;                                                        \
                *ci = beta == 0   ? t[i * NR + j]                                                  \
                      : beta == 1 ? t[i * NR + j] + *ci                                            \
                                  : fma(beta, *ci, t[i * NR + j]);                                 \
            }                                                                                      \
    }

PUT_TILE(float, f32, 32)
PUT_TILE(double, f64, 16)

/* The micro-kernels: acc[i] = Σ_p A(i, p)·B(p, ·) over one packed A panel
 * and one packed B panel, then C = acc + beta·C on the tile. A full tile
 * is written straight from the registers; an edge tile through t. */
#define MICRO_KERNEL(real, sfx, NR, vec, set1, loadu, storeu, fmadd, zero, W)                      \
    TARGET static void kernel_##sfx(size_t kc, const real *restrict a, const real *restrict b,     \
                                    real *c, size_t ldc, size_t mr, size_t nr, real beta) {        \
        vec acc[MR][2];                                                                            \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = zero();      \
        for (size_t p = 0; p < kc; p++, a += MR, b += NR) {                                        \
            const vec b0 = loadu(b), b1 = loadu(b + W);                                            \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                \
                const vec ai = set1(a[i]);                                                         \
                acc[i][0] = fmadd(ai, b0, acc[i][0]);                                              \
                acc[i][1] = fmadd(ai, b1, acc[i][1]);                                              \
            }                                                                                      \
        }                                                                                          \
        if (mr == MR && nr == NR) {                                                                \
            const vec vb = set1(beta);                                                             \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                \
                real *ci = c + i * ldc;                                                            \
                if (beta != 0) {                                                                   \
                    acc[i][0] = fmadd(vb, loadu(ci), acc[i][0]);                                   \
                    acc[i][1] = fmadd(vb, loadu(ci + W), acc[i][1]);                               \
                }                                                                                  \
                storeu(ci, acc[i][0]);                                                             \
                storeu(ci + W, acc[i][1]);                                                         \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        real t[MR * NR];                                                                           \
        for (int i = 0; i < MR; i++) {                                                             \
            storeu(t + i * NR, acc[i][0]);                                                         \
            storeu(t + i * NR + W, acc[i][1]);                                                     \
        }                                                                                          \
        put_tile_##sfx(t, c, ldc, mr, nr, beta);                                                   \
    }

MICRO_KERNEL(float, f32, 32, __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
             _mm512_fmadd_ps, _mm512_setzero_ps, 16)
MICRO_KERNEL(double, f64, 16, __m512d, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd,
             _mm512_fmadd_pd, _mm512_setzero_pd, 8)

/* The five loops around the micro-kernel (see the top of the file). */
#define DRIVER(real, sfx, NR, NC)                                                                  \
    static int gemm_##sfx(int ta, int tb, size_t m, size_t n, size_t k, const real *a, size_t lda, \
                          const real *b, size_t ldb, real beta, real *c, size_t ldc) {             \
        size_t ncmax = n < NC ? (n + NR - 1) / NR * NR : NC;                                       \
        size_t kcmax = k < KC ? k : KC;                                                            \
        real *bp = tg_scratch(TG_SCRATCH_PACK, (MC * kcmax + kcmax * ncmax) * sizeof(real));       \
        if (!bp) return 0;                                                                         \
        real *ap = bp + kcmax * ncmax;                                                             \
        for (size_t jc = 0; jc < n; jc += NC) {                                                    \
            size_t nc = n - jc < NC ? n - jc : NC;                                                 \
            for (size_t pc = 0; pc < k; pc += KC) {                                                \
                size_t kc = k - pc < KC ? k - pc : KC;                                             \
                real bt = pc ? 1 : beta; /* later chunks add to the first */                       \
                pack_b_##sfx(b + (tb ? jc * ldb + pc : pc * ldb + jc), tb ? ldb : 1, tb ? 1 : ldb, \
                             nc, kc, bp);                                                          \
                for (size_t ic = 0; ic < m; ic += MC) {                                            \
                    size_t mc = m - ic < MC ? m - ic : MC;                                         \
                    pack_a_##sfx(a + (ta ? pc * lda + ic : ic * lda + pc), ta ? 1 : lda,           \
                                 ta ? lda : 1, mc, kc, ap);                                        \
                    for (size_t jr = 0; jr < nc; jr += NR)                                         \
                        for (size_t ir = 0; ir < mc; ir += MR)                                     \
                            kernel_##sfx(kc, ap + ir * kc, bp + jr * kc,                           \
                                         c + (ic + ir) * ldc + jc + jr, ldc,                       \
                                         mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR, \
                                         bt);                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        return 1;                                                                                  \
    }

DRIVER(float, f32, 32, NC32)
DRIVER(double, f64, 16, NC64)

/* Matrix-vector and outer products (batch 1), on strips of NV vectors of
 * columns of a row-major M or C, NV·W columns held in registers while the
 * rows stream past: the weight is read (gemv) or read and written (ger)
 * exactly once, at the rate memory gives, which is their whole cost.
 *   rows_gemv: y[s] = beta·y[s] + Σ_i x[i]·M[i][s]   (y = beta·y + Mᵀx on a strip s)
 *   rows_ger:  C[i][s] += a[i]·b[s]                    (C += a·bᵀ on a strip s)
 * Each y[j] is the same chain (beta·y, then one FMA per row in order)
 * whether its column falls in a strip of 16, 4 or 1 vectors or in the
 * scalar tail, so a split by columns changes no bit. */
#define STRIP_KERNELS(real, sfx, vec, set1, loadu, storeu, fmadd, mul, zero, W, NV)                \
    TARGET static void rows_gemv_##sfx##_##NV(size_t rows, const real *m, size_t ld,               \
                                              const real *x, size_t incx, real beta, real *y) {    \
        vec acc[NV];                                                                               \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[v] =                             \
            beta == 0 ? zero() : mul(set1(beta), loadu(y + v * W));                                \
        for (size_t i = 0; i < rows; i++) {                                                        \
            const vec xi = set1(x[i * incx]);                                                      \
            const real *mi = m + i * ld;                                                           \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[v] =                         \
                fmadd(xi, loadu(mi + v * W), acc[v]);                                              \
        }                                                                                          \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) storeu(y + v * W, acc[v]);           \
    }                                                                                              \
    TARGET static void rows_ger_##sfx##_##NV(size_t rows, const real *a, size_t inca,              \
                                             const real *b, real *c, size_t ldc) {                 \
        vec bv[NV];                                                                                \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) bv[v] = loadu(b + v * W);            \
        for (size_t i = 0; i < rows; i++) {                                                        \
            const vec ai = set1(a[i * inca]);                                                      \
            real *ci = c + i * ldc;                                                                \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++)                                  \
                storeu(ci + v * W, fmadd(ai, bv[v], loadu(ci + v * W)));                           \
        }                                                                                          \
    }

#define STRIPS(real, sfx, vec, set1, loadu, storeu, fmadd, mul, zero, W)                           \
    STRIP_KERNELS(real, sfx, vec, set1, loadu, storeu, fmadd, mul, zero, W, 16)                    \
    STRIP_KERNELS(real, sfx, vec, set1, loadu, storeu, fmadd, mul, zero, W, 4)                     \
    STRIP_KERNELS(real, sfx, vec, set1, loadu, storeu, fmadd, mul, zero, W, 1)                     \
    /* y (cols) = beta·y + Mᵀx: strips of 16, 4, 1 vectors, then single columns */              \
    static void gemv_t_##sfx(size_t rows, size_t cols, const real *m, size_t ld, const real *x,    \
                             size_t incx, real beta, real *y) {                                    \
        size_t j = 0;                                                                              \
        for (; cols - j >= 16 * W; j += 16 * W)                                                    \
            rows_gemv_##sfx##_16(rows, m + j, ld, x, incx, beta, y + j);                           \
        for (; cols - j >= 4 * W; j += 4 * W)                                                      \
            rows_gemv_##sfx##_4(rows, m + j, ld, x, incx, beta, y + j);                            \
        for (; cols - j >= W; j += W)                                                              \
            rows_gemv_##sfx##_1(rows, m + j, ld, x, incx, beta, y + j);                            \
        for (; j < cols; j++) {                                                                    \
            real s = beta == 0 ? 0 : beta * y[j];                                                  \
            for (size_t i = 0; i < rows; i++)                                                      \
                s = fma(x[i * incx], m[i * ld + j], s);                                            \
            y[j] = s;                                                                              \
        }                                                                                          \
    }                                                                                              \
    /* C (rows × cols) += a·bᵀ */                                                              \
    static void ger_##sfx(size_t rows, size_t cols, const real *a, size_t inca, const real *b,     \
                          real *c, size_t ldc) {                                                   \
        size_t j = 0;                                                                              \
        for (; cols - j >= 16 * W; j += 16 * W)                                                    \
            rows_ger_##sfx##_16(rows, a, inca, b + j, c + j, ldc);                                 \
        for (; cols - j >= 4 * W; j += 4 * W)                                                      \
            rows_ger_##sfx##_4(rows, a, inca, b + j, c + j, ldc);                                  \
        for (; cols - j >= W; j += W)                                                              \
            rows_ger_##sfx##_1(rows, a, inca, b + j, c + j, ldc);                                  \
        for (; j < cols; j++)                                                                      \
            for (size_t i = 0; i < rows; i++)                                                      \
                c[i * ldc + j] = fma(a[i * inca], b[j], c[i * ldc + j]);                           \
    }

STRIPS(float, f32, __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps,
       _mm512_mul_ps, _mm512_setzero_ps, 16)
STRIPS(double, f64, __m512d, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_fmadd_pd,
       _mm512_mul_pd, _mm512_setzero_pd, 8)

int tg_gemv_kernel(tg_dtype dt, size_t rows, size_t cols, const void *m, size_t ld, const void *x,
                   size_t incx, double beta, void *y) {
    if (!kernels_on()) return 0;
    if (dt == TG_F32)
        gemv_t_f32(rows, cols, m, ld, x, incx, (float)beta, y);
    else
        gemv_t_f64(rows, cols, m, ld, x, incx, beta, y);
    return 1;
}

int tg_ger_kernel(tg_dtype dt, size_t rows, size_t cols, const void *a, size_t inca, const void *b,
                  void *c, size_t ldc) {
    if (!kernels_on()) return 0;
    if (dt == TG_F32)
        ger_f32(rows, cols, a, inca, b, c, ldc);
    else
        ger_f64(rows, cols, a, inca, b, c, ldc);
    return 1;
}

int tg_gemm_kernel(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a,
                   size_t lda, const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    if (!kernels_on() || !m || !n || !k) return 0;
    if (dt == TG_F32) return gemm_f32(ta, tb, m, n, k, a, lda, b, ldb, (float)beta, c, ldc);
    return gemm_f64(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

#else /* no AVX-512 kernel on this compiler or CPU family: OpenBLAS always */

int tg_gemv_kernel(tg_dtype dt, size_t rows, size_t cols, const void *m, size_t ld, const void *x,
                   size_t incx, double beta, void *y) {
    (void)dt, (void)rows, (void)cols, (void)m, (void)ld, (void)x, (void)incx, (void)beta, (void)y;
    return 0;
}

int tg_ger_kernel(tg_dtype dt, size_t rows, size_t cols, const void *a, size_t inca, const void *b,
                  void *c, size_t ldc) {
    (void)dt, (void)rows, (void)cols, (void)a, (void)inca, (void)b, (void)c, (void)ldc;
    return 0;
}

int tg_gemm_kernel(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a,
                   size_t lda, const void *b, size_t ldb, double beta, void *c, size_t ldc) {
    (void)dt, (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b;
    (void)ldb, (void)beta, (void)c, (void)ldc;
    return 0;
}

#endif
