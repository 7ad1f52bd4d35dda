/* Elementwise binary ops with broadcasting (NumPy's and PyTorch's rules,
 * broadcast.c): add, sub, mul, div, pow, maximum, minimum; and scale.
 * Each binary op is y = F(a, b) on the stretched operands, so with the
 * partials F_a = ∂F/∂a and F_b = ∂F/∂b at each element
 *   d(ȧ, ḃ) = F_a ⊙ ȧ + F_b ⊙ ḃ,     r(ζ) = (Bᵀ(F_a ⊙ ζ), Bᵀ(F_b ⊙ ζ))
 * where Bᵀ sums over each operand's stretched axes (broadcast.c):
 *   a ± b:    F_a = 1,      F_b = ±1
 *   a ⊙ b:    F_a = b,      F_b = a
 *   a / b:    F_a = 1/b,    F_b = −y/b
 *   a ** b:   F_a = b·a^(b−1) (0 where b = 0),  F_b = y·log a (0 where a = 0, b ≥ 0)
 *   max(a,b): F_a = [a > b] + ½[a = b],  F_b = [a < b] + ½[a = b]  (min: mirrored)
 *   d(c·a) = c·ȧ,  r(ζ) = c·ζ.
 * Range: add, sub, mul, div values are one correctly rounded IEEE operation
 * (½ ulp), pow is libm's pow (≤ 1 ulp); overflow gives ±inf, inf − inf,
 * 0·inf and 0/0 give NaN, and NaN propagates (as PyTorch). */
#include "ops.h"

#include "broadcast.h"

/* ---------------------------------------------------------------- broadcasting */

/* Shapes broadcast; the geometry is kept in the call's scratch by forward
 * for the maps (a few hundred bytes, no allocation), followed by room for
 * the adjoint of each stretched operand (bin_vjp). */
#define BIN_HEAD ((sizeof(tg_bcast) + 63) & ~(size_t)63)
static tg_status bin_check(tg_call *c, char *msg, size_t len) {
    tg_bcast g;
    tg_status s = tg_bcast_init(&g, 2, c->in, msg, len);
    if (s) return s;
    tg_bcast_out(&g, c);
    c->saved_bytes = BIN_HEAD;
    for (int i = 0; i < 2; i++) /* r-map scratch for each stretched operand */
        if (c->in[i]->size < g.size)
            c->saved_bytes += c->in[i]->size * tg_dtype_size(c->out->dtype);
    return TG_OK;
}

/* Run fn over the output's rows: one flat row when no operand is
 * stretched (the same-shape fast path), else broadcast.c's walk. */
static void bin_run(const tg_call *c, tg_bcast_row_fn fn, void *ctx) {
    const tg_bcast *g = c->saved;
    if (tg_bcast_trivial(g)) {
        const size_t off[2] = {0, 0}, step[2] = {1, 1};
        fn(ctx, g->size, 0, off, step);
    } else
        tg_bcast_rows(g, fn, ctx);
}

/* The r-map: the rows' contributions to a stretched operand are summed in
 * scratch first and added to its adjoint once, so that the r-map adds one
 * rounded r(ζ), as every r-map does (two passes give exactly twice one:
 * test_ops), not a running sum continued from what the adjoint held. An
 * operand of the output's size gets one term per element: added directly. */
static void bin_vjp(const tg_call *c, tg_bcast_row_fn fn, void *ctx, void **gin) {
    const tg_bcast *g = c->saved;
    const size_t es = tg_dtype_size(c->out->dtype);
    void *dst[2] = {gin[0], gin[1]};
    char *scratch = (char *)c->saved + BIN_HEAD;
    for (int i = 0; i < 2; i++)
        if (c->in[i]->size < g->size) {
            if (dst[i]) gin[i] = memset(scratch, 0, c->in[i]->size * es);
            scratch += c->in[i]->size * es;
        }
    bin_run(c, fn, ctx);
    for (int i = 0; i < 2; i++) {
        size_t n = c->in[i]->size;
        if (!dst[i] || gin[i] == dst[i]) continue;
        TG_DISPATCH(c->out->dtype, real *d = dst[i]; const real *v = gin[i];
                    for (size_t k = 0; k < n; k++) d[k] += v[k];);
    }
}

/* What a row callback of the maps needs besides the call. */
typedef struct bin_ctx {
    const tg_call *c;
    const void *const *tin; /* d-map: the tangents, and the output tangent */
    void *tout;
    const void *gout; /* r-map: the seed and the input adjoints */
    void *const *gin;
} bin_ctx;

/* The statements once per element j < n of a row, with ja, jb the operands'
 * offsets from their row starts: j, or 0 where the operand is stretched
 * along the row (step 0). One loop per case, each a plain loop that
 * vectorises; SA/SB are the steps (constants fold the dead cases). */
#define BIN_LOOP(SA, SB, n, ...)                                                                   \
    do {                                                                                           \
        if ((SA) && (SB))                                                                          \
            for (size_t j = 0; j < (n); j++) {                                                     \
                const size_t ja = j, jb = j;                                                       \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        else if (SA)                                                                               \
            for (size_t j = 0; j < (n); j++) {                                                     \
                const size_t ja = j, jb = 0;                                                       \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        else if (SB)                                                                               \
            for (size_t j = 0; j < (n); j++) {                                                     \
                const size_t ja = 0, jb = j;                                                       \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        else                                                                                       \
            for (size_t j = 0; j < (n); j++) {                                                     \
                const size_t ja = 0, jb = 0;                                                       \
                __VA_ARGS__                                                                        \
            }                                                                                      \
    } while (0)

/* The elements of a row: a, b, and y = F(a, b) (the output, after forward). */
#define BIN_ELEMS                                                                                  \
    const real a = A[ja], b = B[jb], y = Y[j];                                                     \
    (void)a, (void)b, (void)y;

/* Operand W's (0: a, 1: b) adjoint over a row: GX[jx] += P·ζ, or, where
 * the operand is stretched along the row (step 0), the row's sum added
 * once. The steps given to BIN_LOOP are constants for operand W. */
#define BIN_ADJ(W, GX, JX, P)                                                                      \
    do {                                                                                           \
        if (step[W]) {                                                                             \
            BIN_LOOP((W) ? step[0] : 1, (W) ? 1 : step[1], n, BIN_ELEMS(GX)[JX] += (P)*G[j];);     \
        } else {                                                                                   \
            real s_ = 0;                                                                           \
            BIN_LOOP((W) ? step[0] : 0, (W) ? 0 : step[1], n, BIN_ELEMS s_ += (P)*G[j];);          \
            (GX)[0] += s_;                                                                         \
        }                                                                                          \
    } while (0)

/* The head of a row callback of the maps: the context x, the call c, and
 * in the dtype's body the rows of a (A), b (B) and y (Y). */
#define BIN_ROW(FN, ...)                                                                           \
    static void FN(void *p, size_t n, size_t o, const size_t *off, const size_t *step) {           \
        const bin_ctx *x = p;                                                                      \
        const tg_call *c = x->c;                                                                   \
        TG_DISPATCH(c->out->dtype, const real *A = (const real *)c->in[0]->data + off[0];          \
                    const real *B = (const real *)c->in[1]->data + off[1];                         \
                    const real *Y = (const real *)c->out->data + o; __VA_ARGS__);                  \
    }

/* One broadcasting binary op: y = F, ∂y/∂a = FA, ∂y/∂b = FB, written with
 * the elements a, b and (in FA, FB) y. Defines NAME_forward, _jvp, _vjp;
 * the rows (the loops) are compiled for AVX-512, AVX2 and plain x86-64. */
#define BINARY(NAME, F, FA, FB)                                                                    \
    TG_SIMD_CLONES BIN_ROW(NAME##_fwd_row, real *W = (real *)c->out->data + o; (void)Y;            \
                           BIN_LOOP(step[0], step[1], n, {                                         \
                               const real a = A[ja], b = B[jb];                                    \
                               W[j] = (F);                                                         \
                           });) static void NAME##_forward(tg_call *c) {                           \
        bin_ctx x = {.c = c};                                                                      \
        tg_bcast_init(c->saved, 2, c->in, NULL, 0); /* checked: cannot fail */                     \
        bin_run(c, NAME##_fwd_row, &x);                                                            \
    }                                                                                              \
    /* d-map row: FA ⊙ ȧ + FB ⊙ ḃ (an absent tangent is 0) */                               \
    BIN_ROW(NAME##_jvp_row, const real *TA = x->tin[0] ? (const real *)x->tin[0] + off[0] : NULL;  \
            const real *TB = x->tin[1] ? (const real *)x->tin[1] + off[1] : NULL;                  \
            real *T = (real *)x->tout + o;                                                         \
            BIN_LOOP(step[0], step[1], n,                                                          \
                     BIN_ELEMS T[j] = (TA ? (FA)*TA[ja] : 0) + (TB ? (FB)*TB[jb] : 0););)          \
    static void NAME##_jvp(const tg_call *c, const void *const *tin, void *tout) {                 \
        bin_ctx x = {.c = c, .tin = tin, .tout = tout};                                            \
        bin_run(c, NAME##_jvp_row, &x);                                                            \
    }                                                                                              \
    /* r-map row: FA ⊙ ζ into a's adjoint, FB ⊙ ζ into b's, summed where stretched */        \
    TG_SIMD_CLONES BIN_ROW(                                                                        \
        NAME##_vjp_row, const real *G = (const real *)x->gout + o; real *GA = x->gin[0];           \
        real *GB = x->gin[1]; if (GA) BIN_ADJ(0, GA + off[0], ja, FA);                             \
        if (GB) BIN_ADJ(1, GB + off[1], jb, FB);) static void NAME##_vjp(const tg_call *c,         \
                                                                         const void *gout,         \
                                                                         void *const *gin) {       \
        void *g2[2] = {gin[0], gin[1]};                                                            \
        bin_ctx x = {.c = c, .gout = gout, .gin = g2};                                             \
        bin_vjp(c, NAME##_vjp_row, &x, g2);                                                        \
    }

/* Inputs for the self-tests: a (m×1×k) and b (n×1) broadcast to m×n×k,
 * each stretched along one axis, so both r-maps sum; domains da, db. */
static void bin_sample(size_t m, size_t k, size_t n, tg_domain da, tg_domain db, tg_sample *s) {
    s->rank[0] = 3;
    s->shape[0][0] = m, s->shape[0][1] = 1, s->shape[0][2] = k;
    s->domain[0] = da;
    tg_sample_2d(s, 1, n, 1, db);
}
static void real_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    bin_sample(m, k, n, TG_DOM_REAL, TG_DOM_REAL, s);
}

/* Second order (issue 18). r_a(ζ) = Bᵀ(F_a ⊙ ζ) and r_b(ζ) = Bᵀ(F_b ⊙ ζ),
 * so along the tangents (ȧ, ḃ)
 *   vjp_dot: ġin_a += Bᵀ((F_aa ȧ + F_ab ḃ) ⊙ ζ),  ġin_b += Bᵀ((F_ab ȧ + F_bb ḃ) ⊙ ζ)
 * PA and PB are the bracketed factors, written with a, b, y and the tangent
 * elements through BIN_TA(E) = E·ȧ and BIN_TB(E) = E·ḃ (0 for an absent
 * tangent, not E·0, which is NaN where E is infinite). The sums over
 * stretched axes are bin_vjp's, as for the r-map. */
#define BIN_TA(E) (TA ? (E)*TA[ja] : (real)0)
#define BIN_TB(E) (TB ? (E)*TB[jb] : (real)0)
#define BINARY_DOT(NAME, PA, PB)                                                                   \
    BIN_ROW(NAME##_dot_row, const real *G = (const real *)x->gout + o; real *GA = x->gin[0];       \
            real *GB = x->gin[1];                                                                  \
            const real *TA = x->tin[0] ? (const real *)x->tin[0] + off[0] : NULL;                  \
            const real *TB = x->tin[1] ? (const real *)x->tin[1] + off[1] : NULL;                  \
            if (GA) BIN_ADJ(0, GA + off[0], ja, PA); if (GB) BIN_ADJ(1, GB + off[1], jb, PB);)     \
    static void NAME##_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,         \
                               const void *gout, void *const *gin) {                               \
        (void)tout;                                                                                \
        void *g2[2] = {gin[0], gin[1]};                                                            \
        bin_ctx x = {.c = c, .tin = tin, .gout = gout, .gin = g2};                                 \
        bin_vjp(c, NAME##_dot_row, &x, g2);                                                        \
    }

/* One table entry. DOT: the op's vjp_dot, or NULL with R_CONST = 1 where
 * the partials are constants (add, sub) or piecewise constant (maximum,
 * minimum: the second-order term is zero off the ties). */
#define BINARY_OP(VAR, NAME, FN, SAMPLE, IDENTITY, DOT, R_CONST)                                   \
    const tg_op VAR = {.name = NAME,                                                               \
                       .arity = 2,                                                                 \
                       .check = bin_check,                                                         \
                       .forward = FN##_forward,                                                    \
                       .jvp = FN##_jvp,                                                            \
                       .vjp = FN##_vjp,                                                            \
                       .sample = SAMPLE,                                                           \
                       .identity_r = IDENTITY,                                                     \
                       .vjp_dot = DOT,                                                             \
                       .r_const = R_CONST};

/* The public function tg_FN(t, a, b, out) of a binary op. */
#define BINARY_API(FN)                                                                             \
    tg_status tg_##FN(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out) {       \
        return tg_apply2(t, &tg_op_##FN, a, b, NULL, out);                                         \
    }

/* ---------------------------------------------------------------- add, sub, mul */

BINARY(add, a + b, 1, 1)
BINARY(sub, a - b, 1, -1)
BINARY(mul, a *b, b, a)
/* a ⊙ b: F_aa = F_bb = 0, F_ab = 1: ġin_a += Bᵀ(ḃ ⊙ ζ), ġin_b += Bᵀ(ȧ ⊙ ζ). */
BINARY_DOT(mul, BIN_TB(1), BIN_TA(1))

/* r = identity for both inputs of add, for the first of sub: the tape hands
 * the output's adjoint over only to an input of the output's size (one not
 * stretched), tape.c's hand_over. */
BINARY_OP(tg_op_add, "add", add, real_sample, 3u, NULL, 1u)
BINARY_OP(tg_op_sub, "sub", sub, real_sample, 1u, NULL, 1u)
BINARY_OP(tg_op_mul, "mul", mul, real_sample, 0u, mul_vjp_dot, 0u)

BINARY_API(add)
BINARY_API(sub)
BINARY_API(mul)
/* ---------------------------------------------------------------- scale */

static tg_status scale_check(tg_call *c, char *msg, size_t len) {
    if (!isfinite(c->attr.f[0])) {
        snprintf(msg, len, "the constant must be finite, got %g", c->attr.f[0]);
        return TG_ERR_VALUE;
    }
    tg_out_like(c, c->in[0]);
    return TG_OK;
}

/* y = c·x, written (acc = 0) or added (acc = 1): forward, d and r alike. */
static void scale_map(const tg_call *c, const void *x, void *y, int acc) {
    size_t n = c->out->size;
    TG_DISPATCH(c->out->dtype, const real *xs = x; real *ys = y; const real k = (real)c->attr.f[0];
                for (size_t i = 0; i < n; i++) ys[i] = (acc ? ys[i] : 0) + k * xs[i];);
}

static void scale_forward(tg_call *c) {
    scale_map(c, c->in[0]->data, c->out->data, 0);
}
static void scale_jvp(const tg_call *c, const void *const *tin, void *tout) {
    scale_map(c, tin[0], tout, 0);
}
static void scale_vjp(const tg_call *c, const void *gout, void *const *gin) {
    scale_map(c, gout, gin[0], 1);
}

static void scale_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
    s->attr.f[0] = -1.5;
}

const tg_op tg_op_scale = {.name = "scale",
                           .arity = 1,
                           .check = scale_check,
                           .forward = scale_forward,
                           .jvp = scale_jvp,
                           .vjp = scale_vjp,
                           .sample = scale_sample,
                           .r_const = 1}; /* linear: no second-order term */

tg_status tg_scale(tg_tape *t, const tg_tensor *a, double c, tg_tensor **out) {
    tg_attr at = {.f = {c, 0}, .i = {0, 0}};
    return tg_apply1(t, &tg_op_scale, a, &at, out);
}

/* ---------------------------------------------------------------- div, pow, maximum, minimum */

/* a / b: F_b = −a/b² written −y/b (torch: −a/(b·b), which overflows first). */
BINARY(div, a / b, 1 / b, -y / b)
/* a ** b (libm pow): as PyTorch's pow_backward, F_a = 0 where b = 0 (not
 * 0·a^(−1) = NaN at a = 0), F_b = 0 where a = 0 and b ≥ 0 (not y·log 0 =
 * 0·(−inf)); elsewhere the formulas, so a negative a with a non-integer b
 * gives NaN in y and F_b, and a = 0 with b < 0 gives inf. */
BINARY(pow, pow(a, b), b == 0 ? (real)0 : b * pow(a, b - 1),
       a == 0 && b >= 0 ? (real)0 : y * log(a))
/* a / b: F_aa = 0, F_ab = −1/b², F_bb = 2a/b³ = 2y/b²:
 *   ġin_a += Bᵀ(−ḃ/b² ⊙ ζ),  ġin_b += Bᵀ((2y·ḃ − ȧ)/b² ⊙ ζ). */
BINARY_DOT(div, BIN_TB(-1 / (b * b)), BIN_TA(-1 / (b * b)) + BIN_TB(2 * y / (b * b)))
/* a ** b: F_aa = b(b−1)·a^(b−2) (0 where b = 0, as F_a is),
 * F_ab = a^(b−1)·(1 + b·log a) (= ∂/∂b of b·a^(b−1) = ∂/∂a of y·log a),
 * F_bb = y·(log a)². */
BINARY_DOT(pow,
           BIN_TA(b == 0 ? (real)0 : b * (b - 1) * pow(a, b - 2)) +
               BIN_TB(pow(a, b - 1) * (1 + b * log(a))),
           BIN_TA(pow(a, b - 1) * (1 + b * log(a))) + BIN_TB(y * log(a) * log(a)))
/* maximum and minimum: at a tie the adjoint is split in halves (as torch's
 * maximum backward); NaN propagates to y (a + b is NaN when a comparison
 * fails), and to both partials: torch passes ζ to both at a NaN, but the
 * derivative there is undefined and a NaN shows that. */
BINARY(maximum,
       a >= b  ? a
       : a < b ? b
               : a + b,
       a > b    ? (real)1
       : a < b  ? (real)0
       : a == b ? (real)0.5
                : a + b,
       a<b ? (real)1 : a> b ? (real)0
       : a == b             ? (real)0.5
                            : a + b)
BINARY(minimum,
       a <= b  ? a
       : a > b ? b
               : a + b,
       a<b ? (real)1 : a> b ? (real)0
       : a == b             ? (real)0.5
                            : a + b,
       a > b    ? (real)1
       : a < b  ? (real)0
       : a == b ? (real)0.5
                : a + b)

/* b away from 0 (finite differences of 1/b); a positive base, for which
 * a^b and log a are smooth at every exponent. */
static void div_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    bin_sample(m, k, n, TG_DOM_REAL, TG_DOM_AWAY0, s);
}
static void pow_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    bin_sample(m, k, n, TG_DOM_POS, TG_DOM_REAL, s);
}

BINARY_OP(tg_op_div, "div", div, div_sample, 0u, div_vjp_dot, 0u)
BINARY_OP(tg_op_pow, "pow", pow, pow_sample, 0u, pow_vjp_dot, 0u)
BINARY_OP(tg_op_maximum, "maximum", maximum, real_sample, 0u, NULL, 1u)
BINARY_OP(tg_op_minimum, "minimum", minimum, real_sample, 0u, NULL, 1u)

BINARY_API(div)
BINARY_API(pow)
BINARY_API(maximum)
BINARY_API(minimum)
