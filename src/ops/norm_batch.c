/* batch_norm's training-mode forward and r-map on N×C×S (norm.c's formulas
 * with P = N, Q = C, one set and one affine index per channel), written
 * for speed (issue 16: the generic per-element walk of norm.c took half of
 * the CNN's training step with batch norm):
 *   - each channel's N runs of S contiguous elements are summed with 8
 *     partial double sums, which the compiler keeps in vector registers
 *     (the walk added into one memory cell: a serial chain of double adds);
 *   - the r-map needs only two sums per channel, Σζ and Σζ·d (d = x − μ):
 *     Σg = γΣζ, Σg·d = γΣζd, γ̄ = sΣζd, β̄ = Σζ;
 *   - channels are split across the tg_set_threads threads (each channel's
 *     statistics are its own; the order of every sum depends on the shape
 *     only, so the bits do not depend on the thread count).
 * Values differ from the walk's only by the order of double additions. */
#include "ops.h"

enum { LANES = 8, MIN_PARALLEL = 1 << 16 };

/* Σ (x − c) and Σ (x − c)² over n elements (sq NULL: the first only). */
#define RUN_SUMS(NAME, real)                                                                       \
    TG_SIMD_CLONES static void NAME(const real *restrict x, size_t n, double c, double *sum,       \
                                    double *sq) {                                                  \
        double a[LANES] = {0}, b[LANES] = {0};                                                     \
        size_t i = 0;                                                                              \
        for (; i + LANES <= n; i += LANES)                                                         \
            for (int l = 0; l < LANES; l++) {                                                      \
                const double d = (double)x[i + l] - c;                                             \
                a[l] += d, b[l] += d * d;                                                          \
            }                                                                                      \
        for (; i < n; i++) {                                                                       \
            const double d = (double)x[i] - c;                                                     \
            a[0] += d, b[0] += d * d;                                                              \
        }                                                                                          \
        *sum += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));                 \
        if (sq) *sq += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));          \
    }
RUN_SUMS(sums_f32, float)
RUN_SUMS(sums_f64, double)

/* Σ ζ and Σ ζ·(x − μ) over n elements. */
#define RUN_ZSUMS(NAME, real)                                                                      \
    TG_SIMD_CLONES static void NAME(const real *restrict x, const real *restrict z, size_t n,      \
                                    double mu, double *sz, double *szd) {                          \
        double a[LANES] = {0}, b[LANES] = {0};                                                     \
        size_t i = 0;                                                                              \
        for (; i + LANES <= n; i += LANES)                                                         \
            for (int l = 0; l < LANES; l++) {                                                      \
                const double zz = (double)z[i + l];                                                \
                a[l] += zz, b[l] += zz * ((double)x[i + l] - mu);                                  \
            }                                                                                      \
        for (; i < n; i++)                                                                         \
            a[0] += (double)z[i], b[0] += (double)z[i] * ((double)x[i] - mu);                      \
        *sz += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));                  \
        *szd += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));                 \
    }
RUN_ZSUMS(zsums_f32, float)
RUN_ZSUMS(zsums_f64, double)

/* y = (x − μ)·(γs) + β (forward, gx NULL), or gx += ζ·(γs) + c0 + c1·(x − μ)
 * (r-map): one affine map per element in double, as norm.c's. */
#define RUN_APPLY(NAME, real)                                                                      \
    TG_SIMD_CLONES static void NAME(const real *restrict x, const real *restrict z,                \
                                    real *restrict y, size_t n, double mu, double gs, double c0,   \
                                    double c1) {                                                   \
        if (z)                                                                                     \
            for (size_t i = 0; i < n; i++)                                                         \
                y[i] += (real)((double)z[i] * gs + c0 + c1 * ((double)x[i] - mu));                 \
        else                                                                                       \
            for (size_t i = 0; i < n; i++)                                                         \
                y[i] = (real)(((double)x[i] - mu) * gs + c0);                                      \
    }
RUN_APPLY(apply_f32, float)
RUN_APPLY(apply_f64, double)

typedef struct bn_job {
    const tg_bn_args *a;
    int bwd;
} bn_job;

/* Run (n, c) of an N×C×S array: read-only, and written. */
static const void *run_at(const tg_bn_args *a, const void *base, size_t n, size_t c) {
    return (const char *)base + ((n * a->C + c) * a->S) * (a->f32 ? 4 : 8);
}
static void *run_w(const tg_bn_args *a, void *base, size_t n, size_t c) {
    return (char *)base + ((n * a->C + c) * a->S) * (a->f32 ? 4 : 8);
}

/* γ_c or β_c as a double; dflt without the affine inputs. */
static double affine(const tg_bn_args *a, const void *p, size_t c, double dflt) {
    return !p ? dflt : a->f32 ? ((const float *)p)[c] : ((const double *)p)[c];
}

static void fwd_channel(const tg_bn_args *a, size_t c) {
    const double M = (double)(a->N * a->S);
    double s = 0, d = 0, dd = 0;
    for (size_t n = 0; n < a->N; n++)
        a->f32 ? sums_f32(run_at(a, a->x, n, c), a->S, 0, &s, NULL)
               : sums_f64(run_at(a, a->x, n, c), a->S, 0, &s, NULL);
    const double mu = s / M;
    for (size_t n = 0; n < a->N; n++)
        a->f32 ? sums_f32(run_at(a, a->x, n, c), a->S, mu, &d, &dd)
               : sums_f64(run_at(a, a->x, n, c), a->S, mu, &d, &dd);
    const double var = dd / M, rs = 1 / sqrt(var + a->eps);
    a->mu[c] = mu, a->rs[c] = rs, a->var[c] = var, a->dev[c] = d;
    const double g = affine(a, a->gamma, c, 1), b = affine(a, a->beta, c, 0);
    for (size_t n = 0; n < a->N; n++) {
        void *y = run_w(a, a->y, n, c);
        a->f32 ? apply_f32(run_at(a, a->x, n, c), NULL, y, a->S, mu, g * rs, b, 0)
               : apply_f64(run_at(a, a->x, n, c), NULL, y, a->S, mu, g * rs, b, 0);
    }
}

/* norm.c's r-map for one channel: g = γζ, σ̄² = −½s³Σg·d, μ̄ = −sΣg − σ̄²·2Σd/M,
 * x̄ += g·s + μ̄/M + σ̄²·2d/M. */
static void bwd_channel(const tg_bn_args *a, size_t c) {
    const double M = (double)(a->N * a->S), mu = a->mu[c], rs = a->rs[c];
    double sz = 0, szd = 0;
    for (size_t n = 0; n < a->N; n++)
        a->f32 ? zsums_f32(run_at(a, a->x, n, c), run_at(a, a->z, n, c), a->S, mu, &sz, &szd)
               : zsums_f64(run_at(a, a->x, n, c), run_at(a, a->z, n, c), a->S, mu, &sz, &szd);
    a->sz[c] = sz, a->szd[c] = szd;
    if (!a->gx) return;
    const double g = affine(a, a->gamma, c, 1);
    const double vbar = -0.5 * rs * rs * rs * g * szd;
    const double mbar = -rs * g * sz - vbar * 2 * a->dev[c] / M;
    for (size_t n = 0; n < a->N; n++) {
        void *gx = run_w(a, a->gx, n, c);
        a->f32 ? apply_f32(run_at(a, a->x, n, c), run_at(a, a->z, n, c), gx, a->S, mu, g * rs,
                           mbar / M, vbar * 2 / M)
               : apply_f64(run_at(a, a->x, n, c), run_at(a, a->z, n, c), gx, a->S, mu, g * rs,
                           mbar / M, vbar * 2 / M);
    }
}

static void bn_part(void *ctx, int part, int parts) {
    const bn_job *j = ctx;
    size_t lo, hi;
    tg_part_range(j->a->C, part, parts, 1, &lo, &hi);
    for (size_t c = lo; c < hi; c++)
        j->bwd ? bwd_channel(j->a, c) : fwd_channel(j->a, c);
}

static void bn_run(const tg_bn_args *a, int bwd) {
    bn_job j = {a, bwd};
    int parts = a->N * a->C * a->S >= MIN_PARALLEL ? tg_get_threads() : 1;
    if ((size_t)parts > a->C) parts = (int)a->C;
    tg_parallel(bn_part, &j, parts);
}

void tg_bn_forward_fast(const tg_bn_args *a) {
    bn_run(a, 0);
}

void tg_bn_vjp_fast(const tg_bn_args *a) {
    bn_run(a, 1);
}
