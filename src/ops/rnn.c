/* lstm_seq (issue 17): the LSTM recurrence over a whole sequence as one
 * op, for speed. The composition of table ops (src/nn/recurrent.c's
 * first version, still the GRU's) spent a third of a char_lm step in the
 * per-step weight-gradient products dG_tᵀ·h_{t−1}, each with an inner
 * dimension of only N (the batch), and a tenth in the ~17 small ops per
 * step; here the r-map accumulates W̄ in ONE product over all N·T
 * positions, and each step's gates are one pass over memory.
 *
 * Inputs P N×T×4H (x_t·W_ihᵀ + b_ih + b_hh, every step), W = W_hh 4H×H,
 * optionally h0, c0 (N×H; absent: zeros). Output Y N×T×2H: per step
 * [h_t | c_t]. Per step, gate order (i, f, g, o) as PyTorch:
 *   G = P_t + h_{t−1}·Wᵀ, i, f, o = σ(G_i), σ(G_f), σ(G_o), g = tanh(G_g),
 *   c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t).
 * saved: A (N·T·4H, the activations i, f, g, o), D (N·T·4H, the gate
 * adjoints in the r-map, a step's gate tangents in the d-map), Hp (N·T·H,
 * h_{t−1} per position for W̄), TC (N·T·H, tanh c_t), dh, dc (N·H each). */
#include "fastmath.h"
#include "ops.h"

typedef struct lstm_geom {
    size_t n, T, H, G; /* G = 4H */
    int state;         /* h0, c0 given */
} lstm_geom;

static lstm_geom geom_of(const tg_call *c) {
    lstm_geom g = {c->in[0]->shape[0], c->in[0]->shape[1], c->in[1]->shape[1], 0, c->n_in == 4};
    g.G = 4 * g.H;
    return g;
}

/* Elements of vjp_dot's scratch (lstm_dot.h), after the others in c->saved. */
static size_t lstm_dot_elems(lstm_geom g) {
    return 2 * g.n * g.T * g.G + 2 * g.n * g.T * g.H + 4 * g.n * g.H + g.H;
}

static tg_status lstm_seq_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *p = c->in[0], *w = c->in[1];
    char sp[64], sw[64], sh[64];
    if (c->n_in != 2 && c->n_in != 4) {
        snprintf(msg, len, "takes P and W_hh, or P, W_hh, h0 and c0: %d inputs", c->n_in);
        return TG_ERR_ARG;
    }
    if (p->rank != 3 || w->rank != 2 || w->shape[0] != 4 * w->shape[1] ||
        p->shape[2] != w->shape[0]) {
        snprintf(msg, len, "needs P N×T×4H and W_hh 4H×H: %s and %s", SHP(sp, p), SHP(sw, w));
        return TG_ERR_SHAPE;
    }
    for (int i = 2; i < c->n_in; i++)
        if (c->in[i]->rank != 2 || c->in[i]->shape[0] != p->shape[0] ||
            c->in[i]->shape[1] != w->shape[1]) {
            snprintf(msg, len, "%s must be N×H for P %s: %s", i == 2 ? "h0" : "c0", SHP(sp, p),
                     SHP(sh, c->in[i]));
            return TG_ERR_SHAPE;
        }
    size_t n = p->shape[0], T = p->shape[1], H = w->shape[1];
    if (p->size > INT32_MAX / 2 || H > INT32_MAX / 8) {
        snprintf(msg, len, "too large for BLAS: %s", SHP(sp, p));
        return TG_ERR_SHAPE;
    }
    size_t es = p->dtype == TG_F32 ? sizeof(float) : sizeof(double);
    c->saved_bytes = (2 * n * T * 4 * H + 2 * n * T * H + 2 * n * H) * es;
    c->saved_bytes += lstm_dot_elems((lstm_geom){n, T, H, 4 * H, c->n_in == 4}) * es; /* vjp_dot */
    c->out->rank = 3;
    c->out->shape[0] = n, c->out->shape[1] = T, c->out->shape[2] = 2 * H;
    return TG_OK;
}

/* The scratch buffers, typed; Y_OF the output. */
#define Y_OF(real, c) ((real *)(c)->out->data)
#define LSTM_BUFS(real, c, g)                                                                      \
    real *A = (c)->saved, *D = A + (g).n * (g).T * (g).G, *Hp = D + (g).n * (g).T * (g).G;         \
    real *TC = Hp + (g).n * (g).T * (g).H, *dh = TC + (g).n * (g).T * (g).H,                       \
         *dc = dh + (g).n * (g).H;                                                                 \
    (void)A, (void)D, (void)Hp, (void)TC, (void)dh, (void)dc

/* The per-row kernels, once per dtype: every array its own restrict
 * pointer (the four gates of a row included) and no branch, so that the
 * loops vectorise (as one loop over a[0..4H) they did not: 36 % of a step).
 *   fwd: gates activated in place, c_t, h_t, tanh c_t
 *   jvp: ċ_t, ḣ_t from the gate tangents gd and ċ_{t−1}
 *   vjp: gate adjoints d from ζ (zh, zc) and the adjoints dh, dc reaching
 *        h_t and c_t from step t + 1; dc becomes the one reaching c_{t−1}. */
#define LSTM_ROWS(real, sfx)                                                                       \
    TG_SIMD_CLONES static void fwd_row_##sfx(real *restrict ai, real *restrict af,                 \
                                             real *restrict ag, real *restrict ao,                 \
                                             const real *restrict cp, real *restrict yh,           \
                                             real *restrict yc, real *restrict tc, size_t H) {     \
        for (size_t j = 0; j < H; j++) {                                                           \
            const real i = TG_SIGMOID(ai[j]), f = TG_SIGMOID(af[j]);                               \
            const real gg = TG_TANH(ag[j]), o = TG_SIGMOID(ao[j]);                                 \
            const real cv = f * cp[j] + i * gg, th = TG_TANH(cv);                                  \
            ai[j] = i, af[j] = f, ag[j] = gg, ao[j] = o;                                           \
            yc[j] = cv, tc[j] = th, yh[j] = o * th;                                                \
        }                                                                                          \
    }                                                                                              \
    TG_SIMD_CLONES static void jvp_row_##sfx(const real *restrict a, const real *restrict gd,      \
                                             const real *restrict tc, const real *restrict cp,     \
                                             const real *restrict cpd, real *restrict th,          \
                                             real *restrict tcd, size_t H) {                       \
        for (size_t j = 0; j < H; j++) {                                                           \
            const real i = a[j], f = a[H + j], gg = a[2 * H + j], o = a[3 * H + j];                \
            const real di = i * (1 - i) * gd[j], df = f * (1 - f) * gd[H + j];                     \
            const real dg = (1 - gg * gg) * gd[2 * H + j], dO = o * (1 - o) * gd[3 * H + j];       \
            const real dcv = df * cp[j] + f * cpd[j] + di * gg + i * dg;                           \
            tcd[j] = dcv, th[j] = dO * tc[j] + o * (1 - tc[j] * tc[j]) * dcv;                      \
        }                                                                                          \
    }                                                                                              \
    TG_SIMD_CLONES static void vjp_row_##sfx(                                                      \
        const real *restrict a, const real *restrict tc, const real *restrict zh,                  \
        const real *restrict zc, const real *restrict cp, real *restrict di, real *restrict df,    \
        real *restrict dg, real *restrict dO, const real *restrict dh, real *restrict dc,          \
        size_t H) {                                                                                \
        for (size_t j = 0; j < H; j++) {                                                           \
            const real i = a[j], f = a[H + j], gg = a[2 * H + j], o = a[3 * H + j];                \
            const real dhv = dh[j] + zh[j];                                                        \
            const real dcv = dc[j] + zc[j] + dhv * o * (1 - tc[j] * tc[j]);                        \
            di[j] = dcv * gg * i * (1 - i);                                                        \
            df[j] = dcv * cp[j] * f * (1 - f);                                                     \
            dg[j] = dcv * i * (1 - gg * gg);                                                       \
            dO[j] = dhv * tc[j] * o * (1 - o);                                                     \
            dc[j] = dcv * f;                                                                       \
        }                                                                                          \
    }
LSTM_ROWS(float, f32)
LSTM_ROWS(double, f64)

/* Step t's gates, row by row (fwd_row); c_{t−1}: Y's previous step, c0, or
 * zeros (Hp's first row, cleared by the caller). */
#define FWD_STEP(real, sfx)                                                                        \
    do {                                                                                           \
        LSTM_BUFS(real, c, g);                                                                     \
        real *a = A + r * g.G, *y = Y_OF(real, c) + r * 2 * H;                                     \
        const real *c0 = g.state ? c->in[3]->data : NULL;                                          \
        fwd_row_##sfx(a, a + H, a + 2 * H, a + 3 * H,                                              \
                      t    ? y - H                                                                 \
                      : c0 ? c0 + n * H                                                            \
                           : Hp,                                                                   \
                      y, y + H, TC + r * H, H);                                                    \
    } while (0)

static void fwd_gates(const tg_call *c, lstm_geom g, size_t t) {
    const size_t H = g.H;
    for (size_t n = 0; n < g.n; n++) {
        size_t r = n * g.T + t;
        if (c->out->dtype == TG_F32)
            FWD_STEP(float, f32);
        else
            FWD_STEP(double, f64);
    }
}

static void lstm_seq_forward(tg_call *c) {
    lstm_geom g = geom_of(c);
    size_t es = c->out->dtype == TG_F32 ? sizeof(float) : sizeof(double);
    char *A = c->saved, *Y = c->out->data;
    memcpy(A, c->in[0]->data, g.n * g.T * g.G * es);
    memset(A + 2 * g.n * g.T * g.G * es, 0, g.H * es); /* Hp's first row: zeros */
    for (size_t t = 0; t < g.T; t++) {
        /* G_t += h_{t−1}·Wᵀ, one product for the four gates of the batch */
        const void *hp = t ? Y + (t - 1) * 2 * g.H * es : g.state ? c->in[2]->data : NULL;
        if (hp)
            tg_gemm(c->out->dtype, 0, 1, g.n, g.G, g.H, hp, t ? g.T * 2 * g.H : g.H, c->in[1]->data,
                    g.H, 1.0, A + t * g.G * es, g.T * g.G);
        fwd_gates(c, g, t);
    }
}

/* d-map of step t from its gate tangents Ġ (D, N×4H): the tangents of c_t
 * and h_t into tout (ċ_{t−1} from tout's previous step, ċ0, or zeros). */
#define JVP_STEP(real, sfx)                                                                        \
    do {                                                                                           \
        LSTM_BUFS(real, c, g);                                                                     \
        const real *c0 = g.state ? c->in[3]->data : NULL, *c0d = dc0;                              \
        const real *y = Y_OF(real, c) + r * 2 * H;                                                 \
        real *ty = (real *)tout + r * 2 * H;                                                       \
        jvp_row_##sfx(A + r * g.G, D + n * g.G, TC + r * H,                                        \
                      t    ? y - H                                                                 \
                      : c0 ? c0 + n * H                                                            \
                           : Hp,                                                                   \
                      t     ? ty - H                                                               \
                      : c0d ? c0d + n * H                                                          \
                            : Hp,                                                                  \
                      ty, ty + H, H);                                                              \
    } while (0)

static void jvp_gates(const tg_call *c, lstm_geom g, size_t t, const void *dc0, void *tout) {
    const size_t H = g.H;
    for (size_t n = 0; n < g.n; n++) {
        size_t r = n * g.T + t;
        if (c->out->dtype == TG_F32)
            JVP_STEP(float, f32);
        else
            JVP_STEP(double, f64);
    }
}

/* dY = d-map(Ṗ, Ẇ, ḣ0, ċ0), step by step: Ġ_t = Ṗ_t + ḣ_{t−1}·Wᵀ + h_{t−1}·Ẇᵀ. */
static void lstm_seq_jvp(const tg_call *c, const void *const *tin, void *tout) {
    lstm_geom g = geom_of(c);
    tg_dtype dt = c->out->dtype;
    size_t es = dt == TG_F32 ? sizeof(float) : sizeof(double);
    char *D = (char *)c->saved + g.n * g.T * g.G * es, *Y = c->out->data, *to = tout;
    const char *pd = tin[0];
    memset(D + g.n * g.T * g.G * es, 0, g.H * es); /* Hp's first row: zeros */
    for (size_t t = 0; t < g.T; t++) {
        for (size_t n = 0; n < g.n; n++) {
            if (pd)
                memcpy(D + n * g.G * es, pd + (n * g.T + t) * g.G * es, g.G * es);
            else
                memset(D + n * g.G * es, 0, g.G * es);
        }
        size_t ld = t ? g.T * 2 * g.H : g.H;
        const void *hpd = t ? to + (t - 1) * 2 * g.H * es : g.state ? tin[2] : NULL;
        const void *hp = t ? Y + (t - 1) * 2 * g.H * es : g.state ? c->in[2]->data : NULL;
        if (hpd) tg_gemm(dt, 0, 1, g.n, g.G, g.H, hpd, ld, c->in[1]->data, g.H, 1.0, D, g.G);
        if (hp && tin[1]) tg_gemm(dt, 0, 1, g.n, g.G, g.H, hp, ld, tin[1], g.H, 1.0, D, g.G);
        jvp_gates(c, g, t, g.state ? tin[3] : NULL, tout);
    }
}

/* r-map of step t: the gate adjoints into D, dc := dc_t·f (the adjoint
 * reaching c_{t−1}); dh holds the adjoint reaching h_t from step t + 1. */
#define VJP_STEP(real, sfx)                                                                        \
    do {                                                                                           \
        LSTM_BUFS(real, c, g);                                                                     \
        const real *c0 = g.state ? c->in[3]->data : NULL, *z = (const real *)gout + r * 2 * H;     \
        const real *y = Y_OF(real, c) + r * 2 * H;                                                 \
        real *d = D + r * g.G;                                                                     \
        vjp_row_##sfx(A + r * g.G, TC + r * H, z, z + H,                                           \
                      t    ? y - H                                                                 \
                      : c0 ? c0 + n * H                                                            \
                           : Hp,                                                                   \
                      d, d + H, d + 2 * H, d + 3 * H, dh + n * H, dc + n * H, H);                  \
    } while (0)

static void vjp_gates(const tg_call *c, lstm_geom g, size_t t, const void *gout) {
    const size_t H = g.H;
    for (size_t n = 0; n < g.n; n++) {
        size_t r = n * g.T + t;
        if (c->out->dtype == TG_F32)
            VJP_STEP(float, f32);
        else
            VJP_STEP(double, f64);
    }
}

/* P̄ += D; W̄ += Dᵀ·Hp (one product, inner dimension N·T); h̄0 += dh, c̄0 += dc. */
TG_SIMD_CLONES static void vjp_finish(const tg_call *c, lstm_geom g, void *const *gin) {
    size_t NT = g.n * g.T;
    TG_DISPATCH(
        c->out->dtype, LSTM_BUFS(real, c, g); const real *Y = c->out->data;
        const real *h0 = g.state ? c->in[2]->data : NULL; real *gp = gin[0];
        for (size_t e = 0; gp && e < NT * g.G; e++) gp[e] += D[e]; if (gin[1]) {
            for (size_t n = 0; n < g.n; n++) {
                real *row = Hp + n * g.T * g.H;
                if (h0)
                    memcpy(row, h0 + n * g.H, g.H * sizeof(real));
                else
                    memset(row, 0, g.H * sizeof(real));
                for (size_t t = 1; t < g.T; t++)
                    memcpy(row + t * g.H, Y + (n * g.T + t - 1) * 2 * g.H, g.H * sizeof(real));
            }
            tg_gemm(c->out->dtype, 1, 0, g.G, g.H, NT, D, g.G, Hp, g.H, 1.0, gin[1], g.H);
        } for (size_t e = 0; g.state && e < g.n * g.H; e++) {
            if (gin[2]) ((real *)gin[2])[e] += dh[e];
            if (gin[3]) ((real *)gin[3])[e] += dc[e];
        });
}

static void lstm_seq_vjp(const tg_call *c, const void *gout, void *const *gin) {
    lstm_geom g = geom_of(c);
    tg_dtype dt = c->out->dtype;
    size_t es = dt == TG_F32 ? sizeof(float) : sizeof(double);
    char *D = (char *)c->saved + g.n * g.T * g.G * es;
    char *dh = D + g.n * g.T * (g.G + 2 * g.H) * es; /* dh, then dc */
    memset(dh, 0, 2 * g.n * g.H * es);               /* dh and dc */
    memset(D + g.n * g.T * g.G * es, 0, g.H * es);   /* Hp's first row: zeros */
    for (size_t t = g.T; t-- > 0;) {
        vjp_gates(c, g, t, gout);
        /* the adjoint reaching h_{t−1}: Ḡ_t·W (not needed before h0 unless h̄0 is) */
        if (t || (g.state && gin[2]))
            tg_gemm(dt, 0, 0, g.n, g.H, g.G, D + t * g.G * es, g.T * g.G, c->in[1]->data, g.H, 0.0,
                    dh, g.H);
    }
    vjp_finish(c, g, gin);
}

/* Second order (issue 18; seed 001 §3.4 notation, docs/hessian.md): the
 * r-map's backward recurrence differentiated along (Ṗ, Ẇ, ḣ0, ċ0). Per
 * position, with a = (i, f, g, o) the activations, G the pre-activations,
 * tc = tanh c_t, k = 1 − tc², and ζ = (ζh, ζc) fixed, the r-map is
 *   δh = dh + ζh,  δc = dc + ζc + δh·o·k,
 *   D = (δc·g·σ'_i, δc·c_{t−1}·σ'_f, δc·i·tanh'_g, δh·tc·σ'_o),
 *   dc ← δc·f,  dh ← D_t·W   (the adjoints reaching c_{t−1}, h_{t−1}),
 *   P̄ += D,  W̄ += Σ_t D_tᵀ·h_{t−1},  h̄0 += dh, c̄0 += dc (after t = 0),
 * with σ' = σ(1 − σ), tanh' = 1 − g². Its derivative (vjp_dot):
 *   tangents of the forward: Ġ_t = Ṗ_t + ḣ_{t−1}·Wᵀ + h_{t−1}·Ẇᵀ
 *     (ḣ_{t−1} from ẏ = tout, ḣ0, or 0), ȧ = σ'·Ġ (i, f, o), ġ = tanh'·Ġ_g,
 *     ċ_t, ċ_{t−1} from tout, (tc)˙ = k·ċ_t, k̇ = −2·tc·(tc)˙;
 *   σ'' and tanh'' along them: (σ')˙ = (1 − 2σ)·σ̇, (tanh')˙ = −2g·ġ;
 *   backward in dual numbers (ζ̇ = 0: the map's ζ is fixed):
 *     δḣ = dḣ,  δċ = dċ + (δḣ·o + δh·ȯ)·k + δh·o·k̇,
 *     Ḋ_i = δċ·g·σ'_i + δc·ġ·σ'_i + δc·g·(1 − 2i)·i̇,
 *     Ḋ_f = δċ·c_{t−1}·σ'_f + δc·ċ_{t−1}·σ'_f + δc·c_{t−1}·(1 − 2f)·ḟ,
 *     Ḋ_g = δċ·i·tanh'_g + δc·i̇·tanh'_g − 2·δc·i·g·ġ,
 *     Ḋ_o = δḣ·tc·σ'_o + δh·(tc)˙·σ'_o + δh·tc·(1 − 2o)·ȯ,
 *     dċ ← δċ·f + δc·ḟ,  dḣ ← Ḋ_t·W + D_t·Ẇ;
 *   P̄̇ += Ḋ,  W̄̇ += Σ_t Ḋ_tᵀ·h_{t−1} + D_tᵀ·ḣ_{t−1} (two products over all
 *   N·T positions, as the r-map's), h̄0̇ += dḣ, c̄0̇ += dċ (after t = 0).
 * The gates are recomputed from P, W and the saved states (Y) in the map's
 * own scratch, so it does not depend on the first-order maps' buffers. */
#define LD_REAL float
#define LD_SFX  f32
#include "lstm_dot.h"
#undef LD_REAL
#undef LD_SFX
#define LD_REAL double
#define LD_SFX  f64
#include "lstm_dot.h"
#undef LD_REAL
#undef LD_SFX

static void lstm_seq_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                             const void *gout, void *const *gin) {
    if (c->out->dtype == TG_F32)
        lstm_dot_f32(c, tin, tout, gout, gin);
    else
        lstm_dot_f64(c, tin, tout, gout, gin);
}

/* P m×(k+1)×4h, W_hh 4h×h, h0 and c0 m×h with h = ⌈n/2⌉: at least two
 * steps, so that the recurrence (and W̄'s product over positions) is
 * exercised, and at most 256 elements per tensor for test_ops's buffers. */
static void lstm_seq_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    size_t h = (n + 1) / 2;
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = k + 1, s->shape[0][2] = 4 * h;
    tg_sample_2d(s, 1, 4 * h, h, TG_DOM_REAL);
    tg_sample_2d(s, 2, m, h, TG_DOM_REAL);
    tg_sample_2d(s, 3, m, h, TG_DOM_REAL);
}

const tg_op tg_op_lstm_seq = {.name = "lstm_seq",
                              .arity = 4,
                              .variadic = 1,
                              .check = lstm_seq_check,
                              .forward = lstm_seq_forward,
                              .jvp = lstm_seq_jvp,
                              .vjp = lstm_seq_vjp,
                              .sample = lstm_seq_sample,
                              .vjp_dot = lstm_seq_vjp_dot};

tg_status tg_lstm_seq(tg_tape *t, const tg_tensor *p, const tg_tensor *w_hh, const tg_tensor *h0,
                      const tg_tensor *c0, tg_tensor **out) {
    const tg_tensor *in[4] = {p, w_hh, h0, c0};
    if (!h0 != !c0) {
        if (out) *out = NULL;
        return tg_fail(TG_ERR_ARG, "lstm_seq: h0 and c0 go together (both or neither)");
    }
    return tg_apply(t, &tg_op_lstm_seq, h0 ? 4 : 2, in, NULL, out);
}
