/* The maps of an elementwise op y = g(x), written once (activation.c,
 * math.c). Not installed. g acts on each element, so its differential is
 * diagonal and self-adjoint: dG_x(ξ) = g'(x) ⊙ ξ = rG_x(ξ). */
#ifndef TG_UNARY_H
#define TG_UNARY_H

#include "ops.h"

/* Below this many elements a map stays on the calling thread; above it,
 * with tg_set_threads(n), the elements are cut in n parts at multiples of
 * 16 (whole cache lines), each computed as it would be on one thread:
 * results do not depend on the thread count. */
#define TG_UNARY_SPLIT_MIN 32768

/* What a part of one map needs. */
typedef struct tg_unary_job {
    const tg_call *c;
    const void *in; /* jvp: the tangent; vjp: ζ */
    void *out;      /* jvp: the output tangent; vjp: x̄ */
} tg_unary_job;

/* Run part(job, p, parts) over the pool when n is large. */
static inline void tg_unary_run(tg_task_fn part, tg_unary_job *j, size_t n) {
    int parts = n >= TG_UNARY_SPLIT_MIN && tg_threads_managed() ? tg_get_threads() : 1;
    if (parts == 1)
        part(j, 0, 1);
    else
        tg_parallel(part, j, parts);
}

/* Defines NAME_forward, NAME_jvp, NAME_vjp of y = FWD, g'(x) = DERIV, both
 * written with x (the input) and, in DERIV, y = g(x), whichever is cheaper;
 * f0, f1 are the op's attr.f[0], attr.f[1] in the dtype (a slope, bounds).
 * Each map is a loop over elements [lo, hi) (NAME_*_part), run in parts on
 * the pool for large tensors (tg_unary_run). */
#define TG_UNARY_MAPS(NAME, FWD, DERIV)                                                            \
    TG_SIMD_CLONES static void NAME##_forward_part(void *ctx, int part, int parts) {               \
        const tg_call *c = ((const tg_unary_job *)ctx)->c;                                         \
        size_t lo, hi;                                                                             \
        tg_part_range(c->out->size, part, parts, 16, &lo, &hi);                                    \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *xs = c->in[0]->data; real *ys = c->out->data;               \
            const real f0 = (real)c->attr.f[0], f1 = (real)c->attr.f[1]; (void)f0, (void)f1;       \
            for (size_t i = lo; i < hi; i++) {                                                     \
                const real x = xs[i];                                                              \
                ys[i] = (FWD);                                                                     \
            });                                                                                    \
    }                                                                                              \
    static void NAME##_forward(tg_call *c) {                                                       \
        tg_unary_job j = {c, NULL, NULL};                                                          \
        tg_unary_run(NAME##_forward_part, &j, c->out->size);                                       \
    }                                                                                              \
    /* d-map: g'(x) ⊙ ξ */                                                                      \
    static void NAME##_jvp_part(void *ctx, int part, int parts) {                                  \
        const tg_unary_job *j = ctx;                                                               \
        const tg_call *c = j->c;                                                                   \
        size_t lo, hi;                                                                             \
        tg_part_range(c->out->size, part, parts, 16, &lo, &hi);                                    \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *xs = c->in[0]->data; const real *ys = c->out->data;         \
            const real *t = j->in; real *to = j->out;                                              \
            const real f0 = (real)c->attr.f[0], f1 = (real)c->attr.f[1]; (void)f0, (void)f1;       \
            for (size_t i = lo; i < hi; i++) {                                                     \
                const real x = xs[i], y = ys[i];                                                   \
                (void)x, (void)y;                                                                  \
                to[i] = (DERIV)*t[i];                                                              \
            });                                                                                    \
    }                                                                                              \
    static void NAME##_jvp(const tg_call *c, const void *const *tin, void *tout) {                 \
        tg_unary_job j = {c, tin[0], tout};                                                        \
        tg_unary_run(NAME##_jvp_part, &j, c->out->size);                                           \
    }                                                                                              \
    /* r-map: g'(x) ⊙ ζ, accumulated */                                                         \
    TG_SIMD_CLONES static void NAME##_vjp_part(void *ctx, int part, int parts) {                   \
        const tg_unary_job *j = ctx;                                                               \
        const tg_call *c = j->c;                                                                   \
        size_t lo, hi;                                                                             \
        tg_part_range(c->out->size, part, parts, 16, &lo, &hi);                                    \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *xs = c->in[0]->data; const real *ys = c->out->data;         \
            const real *g = j->in; real *gi = j->out;                                              \
            const real f0 = (real)c->attr.f[0], f1 = (real)c->attr.f[1]; (void)f0, (void)f1;       \
            for (size_t i = lo; i < hi; i++) {                                                     \
                const real x = xs[i], y = ys[i];                                                   \
                (void)x, (void)y;                                                                  \
                gi[i] += (DERIV)*g[i];                                                             \
            });                                                                                    \
    }                                                                                              \
    static void NAME##_vjp(const tg_call *c, const void *gout, void *const *gin) {                 \
        tg_unary_job j = {c, gout, gin[0]};                                                        \
        tg_unary_run(NAME##_vjp_part, &j, c->out->size);                                           \
    }

/* Second order (issue 18): r(ζ) = g'(x) ⊙ ζ, so along ẋ
 *   vjp_dot: ġin += g''(x) ⊙ ẋ ⊙ ζ.
 * Defines NAME_vjp_dot from DERIV2 = g''(x), written with x and y = g(x)
 * (and f0, f1) as DERIV is. */
#define TG_UNARY_DOT(NAME, DERIV2)                                                                 \
    static void NAME##_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,         \
                               const void *gout, void *const *gin) {                               \
        (void)tout;                                                                                \
        size_t n = c->out->size;                                                                   \
        TG_DISPATCH(                                                                               \
            c->out->dtype, const real *xs = c->in[0]->data; const real *ys = c->out->data;         \
            const real *t = tin[0]; const real *g = gout; real *gi = gin[0];                       \
            const real f0 = (real)c->attr.f[0], f1 = (real)c->attr.f[1]; (void)f0, (void)f1;       \
            for (size_t i = 0; i < n; i++) {                                                       \
                const real x = xs[i], y = ys[i];                                                   \
                (void)x, (void)y;                                                                  \
                gi[i] += (DERIV2)*t[i] * g[i];                                                     \
            });                                                                                    \
    }
/* SECOND of TG_UNARY_OP: the op's vjp_dot (TG_UNARY_DOT), or TG_R_CONST for
 * an op whose g' is constant or piecewise constant (g'' = 0 a.e.). */
#define TG_DOT(NAME) .vjp_dot = NAME##_vjp_dot
#define TG_R_CONST   .r_const = 1

/* The table entry of a one-input op whose maps TG_UNARY_MAPS defined;
 * SECOND is TG_DOT(FN) or TG_R_CONST. */
#define TG_UNARY_OP(VAR, NAME, FN, CHECK, SAMPLE, SECOND)                                          \
    const tg_op VAR = {.name = NAME,                                                               \
                       .arity = 1,                                                                 \
                       .check = CHECK,                                                             \
                       .forward = FN##_forward,                                                    \
                       .jvp = FN##_jvp,                                                            \
                       .vjp = FN##_vjp,                                                            \
                       .sample = SAMPLE,                                                           \
                       SECOND};

#endif
