/* Normalisation: torch.nn.functional.batch_norm (training and eval),
 * layer_norm and group_norm, NCHW as PyTorch.
 *
 * The training-mode ops (batch_norm, layer_norm, group_norm) share one map.
 * Each element i of x belongs to a set k(i) of M elements normalised
 * together and has an affine index a(i) (its channel, or its position in
 * the normalized shape):
 *   μ_k = Σ x / M,   σ²_k = Σ (x − μ)² / M (biased, as PyTorch),
 *   s_k = 1/√(σ²_k + ε),   x̂ = (x − μ)·s,   y = γ_a·x̂ + β_a
 * (γ = 1, β = 0 without the affine inputs). With x viewed as P×Q×S (i =
 * (p·Q + q)·S + s, s contiguous):
 *   batch_norm (N, C, *):  P = N, Q = C, S = spatial;  k = q, a = q
 *   group_norm (N, C, *):  P = N·G, Q = C/G;           k = p, a = (p mod G)·Q + q
 *   layer_norm (…, D):     P = rows, Q = 1, S = D;     k = p, a = s.
 * The maps go through μ and σ² as the graph does (not the folded
 * per-element formula), with d = x − μ:
 *   d-map: μ̇ = Σξ/M,  σ̇² = 2Σ d·(ξ − μ̇)/M,  ṡ = −½s³σ̇²,
 *          ẏ = γ((ξ − μ̇)s + d·ṡ) + γ̇ x̂ + β̇;
 *   r-map: g = ζγ;  σ̄² = −½s³·Σ g·d;  μ̄ = −s·Σg − σ̄²·2Σd/M;
 *          x̄ += g·s + μ̄/M + σ̄²·2d/M,  γ̄_a += Σ ζx̂,  β̄_a += Σ ζ
 * (Σd is 0 but for rounding; it is kept on both sides so that d and r are
 * adjoint term by term). Sums in double; c->saved keeps μ, s, σ² and Σd per
 * set, then scratch for the maps. NaN or ±inf in a set makes its outputs
 * NaN, as PyTorch.
 *
 * batch_norm_eval (inputs x, stats = [running_mean; running_var] (2×C, no
 * derivative), γ, β): per channel α = γ/√(var + ε), b = β − mean·α, and
 * y = x·α + b — exactly an affine map, as PyTorch's CPU kernel computes it:
 *   d: ẏ = ξα + γ̇x̂ + β̇,  r: x̄ += ζα, γ̄ += Σζx̂, β̄ += Σζ,  x̂ = (x − mean)/√(var + ε).
 *
 * The ops are variadic: x alone, or x, γ, β (eval: x, stats[, γ, β]), the
 * affine inputs being PyTorch's optional weight and bias. attr: f[0] = ε;
 * layer_norm i[0] = k normalized axes with their sizes in v[0..k−1];
 * group_norm i[0] = G. The running statistics are updated by tg_batch_norm
 * (below), never by a forward map: tg_replay re-runs forwards. */
#include "ops.h"

#include <limits.h>

typedef enum nkind { NK_BATCH, NK_GROUP, NK_LAYER } nkind;

typedef struct ngeom {
    nkind kind;
    size_t P, Q, S, G;
    size_t K; /* sets */
    size_t A; /* affine length */
    size_t M; /* elements per set */
} ngeom;

/* Visit every element: the statements see `const size_t i, k, a`. */
#define NWALK(g, ...)                                                                              \
    for (size_t p_ = 0; p_ < (g)->P; p_++)                                                         \
        for (size_t q_ = 0; q_ < (g)->Q; q_++) {                                                   \
            const size_t k = (g)->kind == NK_BATCH ? q_ : p_;                                      \
            const size_t a0_ = (g)->kind == NK_GROUP ? (p_ % (g)->G) * (g)->Q + q_ : q_;           \
            const size_t as_ = (g)->kind == NK_LAYER, b_ = (p_ * (g)->Q + q_) * (g)->S;            \
            for (size_t s_ = 0; s_ < (g)->S; s_++) {                                               \
                const size_t i = b_ + s_, a = (as_ ? 0 : a0_) + as_ * s_;                          \
                (void)k, (void)a;                                                                  \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }

static nkind kind_of(const tg_call *c);

static void geom(const tg_call *c, ngeom *g) {
    const tg_tensor *x = c->in[0];
    memset(g, 0, sizeof *g);
    g->kind = kind_of(c);
    if (g->kind == NK_LAYER) {
        size_t D = 1;
        for (long a = 0; a < c->attr.i[0]; a++)
            D *= x->shape[x->rank - 1 - a];
        g->P = x->size / D, g->Q = 1, g->S = D, g->K = g->P, g->A = D, g->M = D;
        return;
    }
    size_t N = x->shape[0], C = x->shape[1], S = x->size / (N * C);
    g->S = S, g->A = C;
    if (g->kind == NK_BATCH) {
        g->P = N, g->Q = C, g->K = C, g->M = N * S;
    } else {
        g->G = (size_t)c->attr.i[0];
        g->P = N * g->G, g->Q = C / g->G, g->K = g->P, g->M = g->Q * S;
    }
}

/* The affine inputs (NULL without them) and their adjoint slots. */
static int affine_at(const tg_call *c) {
    return c->op == &tg_op_batch_norm_eval ? 2 : 1;
}
static const void *gamma_of(const tg_call *c) {
    int j = affine_at(c);
    return c->n_in > j ? c->in[j]->data : NULL;
}
static const void *beta_of(const tg_call *c) {
    int j = affine_at(c) + 1;
    return c->n_in > j ? c->in[j]->data : NULL;
}

/* ---------------------------------------------------------------- checks */

static tg_status eps_check(const tg_call *c, char *msg, size_t len) {
    double e = c->attr.f[0];
    if (e > 0 && isfinite(e)) return TG_OK; /* 0 would make a constant set 0·∞ = NaN */
    snprintf(msg, len, "eps = %g must be finite and > 0", e);
    return TG_ERR_VALUE;
}

/* The affine inputs: none, or γ and β both of shape want (rank r, dims). */
static tg_status affine_check(const tg_call *c, int r, const size_t *dims, char *msg, size_t len) {
    int j = affine_at(c);
    char sx[64], sg[64], sb[64];
    if (c->n_in != j && c->n_in != j + 2) {
        snprintf(msg, len, "takes %s, with or without weight and bias: got %d inputs",
                 j == 1 ? "x" : "x and the running statistics", c->n_in);
        return TG_ERR_ARG;
    }
    for (int q = j; q < c->n_in; q++) {
        const tg_tensor *w = c->in[q];
        int ok = w->rank == r;
        for (int a = 0; ok && a < r; a++)
            ok = w->shape[a] == dims[a];
        if (ok) continue;
        snprintf(msg, len, "weight %s and bias %s must have the shape %s of input %s",
                 SHP(sg, c->in[j]), SHP(sb, c->in[j + 1]),
                 c->op == &tg_op_layer_norm ? "of its normalized axes" : "(C) of the channels",
                 SHP(sx, c->in[0]));
        return TG_ERR_SHAPE;
    }
    return TG_OK;
}

/* Inputs (N, C, *): rank >= 2. */
static tg_status channels_check(const tg_call *c, char *msg, size_t len) {
    char sx[64];
    if (c->in[0]->rank >= 2) return TG_OK;
    snprintf(msg, len, "input must be (N x C) or (N x C x ...), got %s", SHP(sx, c->in[0]));
    return TG_ERR_SHAPE;
}

/* Scratch for the maps, after the kept statistics: 6 doubles per set
 * (norm_vjp_dot's; the r-map uses 2) and 2 per affine index. */
static size_t kept_doubles(const ngeom *g) {
    return 4 * g->K;
}
static void set_saved(tg_call *c) {
    ngeom g;
    geom(c, &g);
    c->saved_bytes = (kept_doubles(&g) + 6 * g.K + 2 * g.A) * sizeof(double);
}

static tg_status bn_check(tg_call *c, char *msg, size_t len) {
    tg_status s = eps_check(c, msg, len);
    if (!s) s = channels_check(c, msg, len);
    if (!s) s = affine_check(c, 1, &c->in[0]->shape[1], msg, len);
    if (s) return s;
    const tg_tensor *x = c->in[0];
    if (x->size / x->shape[1] < 2) {
        char sx[64];
        snprintf(msg, len, "expected more than 1 value per channel when training, got input %s",
                 SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    set_saved(c);
    return TG_OK;
}

static tg_status gn_check(tg_call *c, char *msg, size_t len) {
    tg_status s = eps_check(c, msg, len);
    if (!s) s = channels_check(c, msg, len);
    if (!s) s = affine_check(c, 1, &c->in[0]->shape[1], msg, len);
    if (s) return s;
    const tg_tensor *x = c->in[0];
    long G = c->attr.i[0];
    if (G < 1 || x->shape[1] % (size_t)G) {
        char sx[64];
        snprintf(msg, len, "num_groups %ld does not divide the %zu channels of input %s", G,
                 x->shape[1], SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    set_saved(c);
    return TG_OK;
}

static tg_status ln_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0];
    long k = c->attr.i[0];
    char sx[64];
    tg_status s = eps_check(c, msg, len);
    if (s) return s;
    int ok = k >= 1 && k <= x->rank;
    for (long a = 0; ok && a < k; a++)
        ok = c->attr.v[a] == (long)x->shape[x->rank - k + a];
    if (!ok) {
        char ns[200] = "(";
        for (long a = 0; a < k && a < TG_MAX_RANK; a++)
            snprintf(ns + strlen(ns), sizeof ns - strlen(ns), "%s%ld", a ? "x" : "", c->attr.v[a]);
        snprintf(msg, len, "normalized_shape %s) of %ld axes is not the trailing shape of input %s",
                 ns, k, SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    s = affine_check(c, (int)k, &x->shape[x->rank - k], msg, len);
    if (s) return s;
    tg_out_like(c, x);
    set_saved(c);
    return TG_OK;
}

/* ---------------------------------------------------------------- layer_norm's rows
 * layer_norm's sets are contiguous rows of D = M elements with a(i) = the
 * position in the row: the same maps as below, written per row so that
 * they vectorise (the transformer block's two layer norms were 8 % of its
 * step through the generic walk). Row sums go into 8 double lanes, added
 * in a fixed order at the end: deterministic, in double as everywhere. */
#define LANES 8

/* Σ over a row of expr(s), in lanes; `acc` names the result. */
#define ROW_SUM(acc, D, expr)                                                                      \
    double acc = 0;                                                                                \
    {                                                                                              \
        double l_[LANES] = {0};                                                                    \
        size_t s0_ = 0;                                                                            \
        for (; s0_ + LANES <= (D); s0_ += LANES)                                                   \
            for (size_t l = 0; l < LANES; l++) {                                                   \
                const size_t s = s0_ + l;                                                          \
                l_[l] += (expr);                                                                   \
            }                                                                                      \
        for (size_t s = s0_; s < (D); s++)                                                         \
            acc += (expr);                                                                         \
        for (size_t l = 0; l < LANES; l++)                                                         \
            acc += l_[l];                                                                          \
    }

/* Rows [k0, k1). */
TG_SIMD_CLONES static void ln_forward_rows(const tg_call *c, const ngeom *g, size_t k0, size_t k1) {
    double *mu = c->saved, *rs = mu + g->K, *var = rs + g->K, *dev = var + g->K;
    const double eps = c->attr.f[0], M = (double)g->M;
    const size_t D = g->S;
    TG_DISPATCH(
        c->out->dtype, const real *ga = gamma_of(c); const real *be = beta_of(c);
        for (size_t k = k0; k < k1; k++) {
            const real *X = (const real *)c->in[0]->data + k * D;
            real *Y = (real *)c->out->data + k * D;
            ROW_SUM(sum, D, (double)X[s]);
            const double m = sum / M;
            ROW_SUM(sd, D, (double)X[s] - m);
            ROW_SUM(sdd, D, ((double)X[s] - m) * ((double)X[s] - m));
            mu[k] = m, dev[k] = sd, var[k] = sdd / M, rs[k] = 1 / sqrt(var[k] + eps);
            const double r = rs[k];
            if (ga)
                for (size_t s = 0; s < D; s++)
                    Y[s] = (real)(ga[s] * (((double)X[s] - m) * r) + be[s]);
            else
                for (size_t s = 0; s < D; s++)
                    Y[s] = (real)(((double)X[s] - m) * r);
        });
}

/* The affine adjoints (in double, ag and ab of D) of columns [s0, s1),
 * summed over every row in order. */
TG_SIMD_CLONES static void ln_vjp_affine(const tg_call *c, const ngeom *g, const void *gout,
                                         double *ag, double *ab, size_t s0, size_t s1) {
    const double *mu = c->saved, *rs = mu + g->K;
    const size_t D = g->S;
    TG_DISPATCH(
        c->out->dtype, for (size_t k = 0; k < g->K; k++) {
            const real *X = (const real *)c->in[0]->data + k * D;
            const real *z = (const real *)gout + k * D;
            const double m = mu[k], r = rs[k];
            for (size_t s = s0; s < s1; s++) {
                ag[s] += z[s] * ((double)X[s] - m) * r;
                ab[s] += z[s];
            }
        });
}

/* x̄ of rows [k0, k1). */
TG_SIMD_CLONES static void ln_vjp_rows(const tg_call *c, const ngeom *g, const void *gout, void *gx,
                                       size_t k0, size_t k1) {
    const double *mu = c->saved, *rs = mu + g->K, *dev = rs + 2 * g->K, M = (double)g->M;
    const size_t D = g->S;
    TG_DISPATCH(
        c->out->dtype, const real *ga = gamma_of(c); for (size_t k = k0; k < k1; k++) {
            const real *X = (const real *)c->in[0]->data + k * D;
            const real *z = (const real *)gout + k * D;
            const double m = mu[k], r = rs[k];
            ROW_SUM(sg, D, ga ? (double)ga[s] * z[s] : (double)z[s]);
            ROW_SUM(sgd, D, (ga ? (double)ga[s] * z[s] : (double)z[s]) * ((double)X[s] - m));
            const double vbar = -0.5 * r * r * r * sgd;          /* σ̄² */
            const double mbar = -r * sg - vbar * 2 * dev[k] / M; /* μ̄ */
            real *gxs = (real *)gx + k * D;
            for (size_t s = 0; s < D; s++) {
                const double gz = ga ? (double)ga[s] * z[s] : (double)z[s];
                gxs[s] += (real)(gz * r + mbar / M + vbar * 2 * ((double)X[s] - m) / M);
            }
        });
}

/* On the pool (tg_set_threads) a large layer norm is cut by rows (the
 * forward, x̄) and by columns (γ̄, β̄, each still summed over the rows in
 * order): every number is computed as on one thread. */
typedef struct ln_job {
    const tg_call *c;
    const ngeom *g;
    const void *gout;
    void *gx;
    double *ag, *ab;
    int phase; /* 0 forward, 1 x̄, 2 γ̄ and β̄ */
} ln_job;

static void ln_part(void *ctx, int part, int parts) {
    const ln_job *j = ctx;
    size_t lo, hi;
    tg_part_range(j->phase == 2 ? j->g->S : j->g->K, part, parts, j->phase == 2 ? 16 : 1, &lo, &hi);
    if (j->phase == 0)
        ln_forward_rows(j->c, j->g, lo, hi);
    else if (j->phase == 1)
        ln_vjp_rows(j->c, j->g, j->gout, j->gx, lo, hi);
    else
        ln_vjp_affine(j->c, j->g, j->gout, j->ag, j->ab, lo, hi);
}

static void ln_run(ln_job *j) {
    int parts = j->c->out->size >= 32768 && tg_threads_managed() ? tg_get_threads() : 1;
    if (parts > 1)
        tg_parallel(ln_part, j, parts);
    else
        ln_part(j, 0, 1);
}

/* ---------------------------------------------------------------- training-mode maps */

/* batch_norm's maps through norm_batch.c (same formulas, fast). */
static tg_bn_args bn_args(const tg_call *c, const ngeom *g) {
    double *mu = c->saved;
    tg_bn_args a = {.f32 = c->out->dtype == TG_F32,
                    .N = g->P,
                    .C = g->Q,
                    .S = g->S,
                    .x = c->in[0]->data,
                    .gamma = gamma_of(c),
                    .beta = beta_of(c),
                    .y = c->out->data,
                    .eps = c->attr.f[0],
                    .mu = mu,
                    .rs = mu + g->K,
                    .var = mu + 2 * g->K,
                    .dev = mu + 3 * g->K,
                    .sz = mu + kept_doubles(g),
                    .szd = mu + kept_doubles(g) + g->K};
    return a;
}

static void norm_forward(tg_call *c) {
    ngeom g;
    geom(c, &g);
    if (g.kind == NK_LAYER) {
        ln_job j = {.c = c, .g = &g, .phase = 0};
        ln_run(&j);
        return;
    }
    double *mu = c->saved, *rs = mu + g.K, *var = rs + g.K, *dev = var + g.K;
    const double eps = c->attr.f[0], M = (double)g.M;
    if (g.kind == NK_BATCH) {
        tg_bn_args a = bn_args(c, &g);
        tg_bn_forward_fast(&a);
        return;
    }
    memset(mu, 0, kept_doubles(&g) * sizeof(double));
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; const real *ga = gamma_of(c);
        const real *be = beta_of(c); real *Y = c->out->data; NWALK(&g, mu[k] += X[i];);
        for (size_t k = 0; k < g.K; k++) mu[k] /= M;
        NWALK(&g, const double d = X[i] - mu[k]; dev[k] += d; var[k] += d * d;);
        for (size_t k = 0; k < g.K; k++) {
            var[k] /= M;
            rs[k] = 1 / sqrt(var[k] + eps);
        } NWALK(&g, const double xh = (X[i] - mu[k]) * rs[k];
                Y[i] = (real)(ga ? ga[a] * xh + be[a] : xh);););
}

static void norm_jvp(const tg_call *c, const void *const *tin, void *tout) {
    ngeom g;
    geom(c, &g);
    const double *mu = c->saved, *rs = mu + g.K, *dev = rs + 2 * g.K, M = (double)g.M;
    double *md = (double *)c->saved + kept_doubles(&g), *vd = md + g.K;
    const int j = affine_at(c);
    memset(md, 0, 2 * g.K * sizeof(double));
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; const real *ga = gamma_of(c);
        const real *tx = tin[0]; const real *tgm = c->n_in > j ? tin[j] : NULL;
        const real *tb = c->n_in > j ? tin[j + 1] : NULL; real *to = tout; if (tx) {
            NWALK(&g, md[k] += tx[i];);
            for (size_t k = 0; k < g.K; k++)
                md[k] /= M;
            NWALK(&g, vd[k] += (X[i] - mu[k]) * tx[i];);
            for (size_t k = 0; k < g.K; k++) /* σ̇² = 2Σ d·(ξ − μ̇)/M */
                vd[k] = 2 * (vd[k] - dev[k] * md[k]) / M;
        } NWALK(&g, const double d = X[i] - mu[k];
                const double xhd =
                    tx ? (tx[i] - md[k]) * rs[k] - 0.5 * rs[k] * rs[k] * rs[k] * vd[k] * d : 0;
                double v = ga ? ga[a] * xhd : xhd; if (tgm) v += tgm[a] * d * rs[k];
                if (tb) v += tb[a]; to[i] = (real)v;););
}

/* The r-map's sums and x̄ by the generic walk (group_norm, layer_norm). */
static void norm_vjp_walk(const tg_call *c, const ngeom *g, const void *gout, void *gx) {
    const double *mu = c->saved, *rs = mu + g->K, *dev = rs + 2 * g->K, M = (double)g->M;
    double *sg = (double *)c->saved + kept_doubles(g), *sgd = sg + g->K, *ag = sgd + g->K,
           *ab = ag + g->A;
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; const real *ga = gamma_of(c);
        const real *z = gout;
        NWALK(g, const double d = X[i] - mu[k]; const double gz = ga ? ga[a] * z[i] : z[i];
              sg[k] += gz; sgd[k] += gz * d; ag[a] += z[i] * d * rs[k]; ab[a] += z[i];);
        if (gx) {
            for (size_t k = 0; k < g->K; k++) {
                const double vbar = -0.5 * rs[k] * rs[k] * rs[k] * sgd[k];
                sg[k] = -rs[k] * sg[k] - vbar * 2 * dev[k] / M; /* μ̄ */
                sgd[k] = vbar;                                  /* σ̄² */
            }
            real *gxs = gx;
            NWALK(g, const double gz = ga ? ga[a] * z[i] : z[i];
                  gxs[i] += (real)(gz * rs[k] + sg[k] / M + sgd[k] * 2 * (X[i] - mu[k]) / M););
        });
}

static void norm_vjp(const tg_call *c, const void *gout, void *const *gin) {
    ngeom g;
    geom(c, &g);
    const double *rs = (const double *)c->saved + g.K;
    double *sg = (double *)c->saved + kept_doubles(&g), *ag = sg + 2 * g.K, *ab = ag + g.A;
    const int j = affine_at(c);
    void *gx = gin[0], *gg = c->n_in > j ? gin[j] : NULL, *gb = c->n_in > j ? gin[j + 1] : NULL;
    memset(sg, 0, (2 * g.K + 2 * g.A) * sizeof(double));
    if (g.kind == NK_LAYER) { /* by rows (ln_vjp_rows, ln_vjp_affine), on the pool if large */
        ln_job lj = {.c = c, .g = &g, .gout = gout, .gx = gx, .ag = ag, .ab = ab, .phase = 2};
        if (gg || gb) ln_run(&lj);
        lj.phase = 1;
        if (gx) ln_run(&lj);
    } else if (g.kind == NK_BATCH) { /* γ̄ = sΣζd, β̄ = Σζ from the per-channel sums */
        tg_bn_args a = bn_args(c, &g);
        a.z = gout, a.gx = gx;
        tg_bn_vjp_fast(&a);
        for (size_t k = 0; k < g.K; k++)
            ag[k] = rs[k] * sg[g.K + k], ab[k] = sg[k];
    } else {
        norm_vjp_walk(c, &g, gout, gx);
    }
    TG_DISPATCH(
        c->out->dtype,
        if (gg) {
            real *gs = gg;
            for (size_t a = 0; a < g.A; a++)
                gs[a] += (real)ag[a];
        } if (gb) {
            real *bs = gb;
            for (size_t a = 0; a < g.A; a++)
                bs[a] += (real)ab[a];
        });
}

/* Second order (issue 18): the derivative of norm_vjp's computation along
 * the tangents (ẋ, γ̇, β̇), step by step, with ζ fixed. Per set k, with
 * d = x − μ, g = γ_a ζ (ζ without γ), ḋ = ẋ − μ̇, μ̇ = Σẋ/M,
 * σ̇² = 2Σ d·ḋ/M (norm_jvp's), ṡ = −½s³σ̇², ġ = γ̇_a ζ:
 *   Σg, Σgd          → (Σg)˙ = Σġ,  (Σgd)˙ = Σ(ġd + gḋ)
 *   σ̄² = −½s³Σgd     → σ̄²˙ = −½(3s²ṡ·Σgd + s³(Σgd)˙)
 *   μ̄ = −sΣg         → μ̄˙ = −ṡΣg − s(Σg)˙
 *   ẋ̄ᵢ += ġs + gṡ + μ̄˙/M + σ̄²˙·2d/M + σ̄²·2ḋ/M
 *   γ̄̇_a += Σ ζ(ḋs + dṡ)   (the derivative of Σ ζx̂)
 *   β̄̇ += 0                 (Σ ζ does not depend on the inputs)
 * The r-map's terms in Σd (0 but for rounding) are left out here: they
 * change the product by rounding only (Σḋ is exactly 0 in exact
 * arithmetic). Scratch after the kept statistics: μ̇, ṡ, Σg, Σgd, (Σg)˙,
 * (Σgd)˙ per set and γ̄̇'s sums per affine index (set_saved's 6K + 2A). */
static void norm_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                         const void *gout, void *const *gin) {
    (void)tout;
    ngeom g;
    geom(c, &g);
    const double *mu = c->saved, *rs = mu + g.K, M = (double)g.M;
    double *md = (double *)c->saved + kept_doubles(&g), *sd = md + g.K, *sg = sd + g.K,
           *sgd = sg + g.K, *sgt = sgd + g.K, *sgdt = sgt + g.K, *agt = sgdt + g.K;
    const int j = affine_at(c);
    void *gx = gin[0], *gg = c->n_in > j ? gin[j] : NULL;
    memset(md, 0, (6 * g.K + g.A) * sizeof(double));
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; const real *ga = gamma_of(c);
        const real *z = gout; const real *tx = tin[0];
        const real *tgm = c->n_in > j ? tin[j] : NULL; if (tx) {
            NWALK(&g, md[k] += tx[i];);
            for (size_t k = 0; k < g.K; k++)
                md[k] /= M;
            NWALK(&g, sd[k] += (X[i] - mu[k]) * (tx[i] - md[k]););
            for (size_t k = 0; k < g.K; k++) /* ṡ = −½s³σ̇², σ̇² = 2Σd·ḋ/M */
                sd[k] = -0.5 * rs[k] * rs[k] * rs[k] * 2 * sd[k] / M;
        } NWALK(&g, const double d = X[i] - mu[k]; const double gz = ga ? ga[a] * z[i] : z[i];
                const double gzt = tgm ? tgm[a] * z[i] : 0;
                const double dt = tx ? tx[i] - md[k] : 0; sg[k] += gz; sgd[k] += gz * d;
                sgt[k] += gzt; sgdt[k] += gzt * d + gz * dt;
                agt[a] += z[i] * (dt * rs[k] + d * sd[k]););
        if (gx) {
            for (size_t k = 0; k < g.K; k++) {
                const double s = rs[k], s3 = s * s * s;
                const double vbar = -0.5 * s3 * sgd[k];
                const double vbart = -0.5 * (3 * s * s * sd[k] * sgd[k] + s3 * sgdt[k]);
                sgt[k] = -sd[k] * sg[k] - s * sgt[k]; /* μ̄˙ */
                sg[k] = vbar, sgd[k] = vbart;         /* σ̄², σ̄²˙ */
            }
            real *gxs = gx;
            NWALK(&g, const double d = X[i] - mu[k]; const double gz = ga ? ga[a] * z[i] : z[i];
                  const double gzt = tgm ? tgm[a] * z[i] : 0;
                  const double dt = tx ? tx[i] - md[k] : 0;
                  gxs[i] += (real)(gzt * rs[k] + gz * sd[k] + sgt[k] / M + sgd[k] * 2 * d / M +
                                   sg[k] * 2 * dt / M););
        } if (gg) {
            real *gs = gg;
            for (size_t a = 0; a < g.A; a++)
                gs[a] += (real)agt[a];
        });
}

/* ---------------------------------------------------------------- eval-mode maps */

static tg_status bne_check(tg_call *c, char *msg, size_t len) {
    tg_status s = eps_check(c, msg, len);
    if (!s) s = channels_check(c, msg, len);
    if (!s) s = affine_check(c, 1, &c->in[0]->shape[1], msg, len);
    if (s) return s;
    const tg_tensor *x = c->in[0], *st = c->in[1];
    if (st->rank != 2 || st->shape[0] != 2 || st->shape[1] != x->shape[1]) {
        char sx[64], ss[64];
        snprintf(msg, len, "running statistics %s must be (2 x C) for input %s", SHP(ss, st),
                 SHP(sx, x));
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    c->saved_bytes = 5 * x->shape[1] * sizeof(double);
    return TG_OK;
}

/* saved: α, b, 1/√(var + ε), then 2C of scratch for γ̄, β̄. */
static void bne_forward(tg_call *c) {
    ngeom g;
    geom(c, &g);
    double *al = c->saved, *bb = al + g.A, *inv = bb + g.A;
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; const real *st = c->in[1]->data;
        const real *ga = gamma_of(c); const real *be = beta_of(c); real *Y = c->out->data;
        for (size_t a = 0; a < g.A; a++) {
            inv[a] = 1 / sqrt((double)st[g.A + a] + c->attr.f[0]);
            al[a] = ga ? ga[a] * inv[a] : inv[a];
            bb[a] = (be ? be[a] : 0) - st[a] * al[a];
        } NWALK(&g, Y[i] = X[i] * (real)al[a] + (real)bb[a];););
}

static void bne_jvp(const tg_call *c, const void *const *tin, void *tout) {
    ngeom g;
    geom(c, &g);
    const double *al = c->saved, *inv = al + 2 * g.A;
    TG_DISPATCH(c->out->dtype, const real *X = c->in[0]->data; const real *mean = c->in[1]->data;
                const real *tx = tin[0]; const real *tgm = c->n_in > 2 ? tin[2] : NULL;
                const real *tb = c->n_in > 2 ? tin[3] : NULL; real *to = tout;
                NWALK(&g, double v = tx ? tx[i] * al[a] : 0;
                      if (tgm) v += tgm[a] * (X[i] - mean[a]) * inv[a]; if (tb) v += tb[a];
                      to[i] = (real)v;););
}

static void bne_vjp(const tg_call *c, const void *gout, void *const *gin) {
    ngeom g;
    geom(c, &g);
    const double *al = c->saved, *inv = al + 2 * g.A;
    double *ag = (double *)c->saved + 3 * g.A, *ab = ag + g.A;
    void *gx = gin[0], *gg = c->n_in > 2 ? gin[2] : NULL, *gb = c->n_in > 2 ? gin[3] : NULL;
    memset(ag, 0, 2 * g.A * sizeof(double));
    TG_DISPATCH(
        c->out->dtype, const real *X = c->in[0]->data; const real *mean = c->in[1]->data;
        const real *z = gout; NWALK(&g, ag[a] += z[i] * (X[i] - mean[a]) * inv[a]; ab[a] += z[i];);
        if (gx) {
            real *gxs = gx;
            NWALK(&g, gxs[i] += z[i] * (real)al[a];);
        } if (gg) {
            real *gs = gg;
            for (size_t a = 0; a < g.A; a++)
                gs[a] += (real)ag[a];
        } if (gb) {
            real *bs = gb;
            for (size_t a = 0; a < g.A; a++)
                bs[a] += (real)ab[a];
        });
}

/* Second order: y = γ·(x − mean)·inv + β with the statistics constant
 * (nondiff) is bilinear in (x, γ) and affine in β. The r-map x̄ += ζα,
 * α = γ·inv, depends on γ, and γ̄ += Σ ζx̂ on x, so along (ẋ, γ̇):
 *   vjp_dot: ẋ̄ += ζ·γ̇·inv,  γ̄̇_a += Σ ζ·ẋ·inv,  β̄̇ += 0
 * (without γ, α = inv is constant and the term is zero). */
static void bne_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                        const void *gout, void *const *gin) {
    (void)tout;
    if (c->n_in <= 2) return;
    ngeom g;
    geom(c, &g);
    const double *inv = (const double *)c->saved + 2 * g.A;
    double *ag = (double *)c->saved + 3 * g.A;
    const void *tx = tin[0], *tgm = tin[2];
    void *gx = tgm ? gin[0] : NULL, *gg = tx ? gin[2] : NULL;
    memset(ag, 0, g.A * sizeof(double));
    TG_DISPATCH(
        c->out->dtype, const real *z = gout; const real *txs = tx; const real *tgs = tgm;
        real *gxs = gx; if (gxs) NWALK(&g, gxs[i] += (real)(z[i] * tgs[a] * inv[a]);); if (gg) {
            real *gs = gg;
            NWALK(&g, ag[a] += z[i] * txs[i] * inv[a];);
            for (size_t a = 0; a < g.A; a++)
                gs[a] += (real)ag[a];
        });
}

/* ---------------------------------------------------------------- samples */

/* x (m, C, 2, n) with C = k (batch_norm) or 2k in k groups (group_norm),
 * at least 2 values per set; γ, β of C; ε = 1e-5 (PyTorch's default). */
static void channels_sample(size_t m, size_t C, size_t n, tg_sample *s) {
    s->rank[0] = 4, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = C, s->shape[0][2] = 2, s->shape[0][3] = n;
    for (int q = 1; q < 3; q++)
        s->rank[q] = 1, s->shape[q][0] = C, s->domain[q] = TG_DOM_REAL;
    s->attr.f[0] = 1e-5;
}

static void bn_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    channels_sample(m, k, n, s);
}

static void gn_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    channels_sample(m, 2 * k, n, s);
    s->attr.i[0] = (long)k;
}

/* x (m, k, n + 1) normalised over its last two axes; γ, β (k, n + 1). */
static void ln_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = n + 1;
    for (int q = 1; q < 3; q++) {
        s->rank[q] = 2, s->domain[q] = TG_DOM_REAL;
        s->shape[q][0] = k, s->shape[q][1] = n + 1;
    }
    s->attr.f[0] = 1e-5, s->attr.i[0] = 2, s->attr.v[0] = (long)k, s->attr.v[1] = (long)n + 1;
}

/* x (m, k, 2, n), stats [mean; var] with var in [0.5, 2.5), γ, β of k. */
static void bne_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    channels_sample(m, k, n, s);
    s->rank[3] = 1, s->shape[3][0] = k, s->domain[3] = TG_DOM_REAL;
    s->rank[2] = 1, s->shape[2][0] = k, s->domain[2] = TG_DOM_REAL;
    s->rank[1] = 2, s->shape[1][0] = 2, s->shape[1][1] = k, s->domain[1] = TG_DOM_POS;
}

/* ---------------------------------------------------------------- table entries */

const tg_op tg_op_batch_norm = {.name = "batch_norm",
                                .arity = 3,
                                .variadic = 1,
                                .check = bn_check,
                                .forward = norm_forward,
                                .jvp = norm_jvp,
                                .vjp = norm_vjp,
                                .sample = bn_sample,
                                .vjp_dot = norm_vjp_dot};

const tg_op tg_op_batch_norm_eval = {.name = "batch_norm_eval",
                                     .arity = 4,
                                     .variadic = 1,
                                     .nondiff = 2u,
                                     .check = bne_check,
                                     .forward = bne_forward,
                                     .jvp = bne_jvp,
                                     .vjp = bne_vjp,
                                     .sample = bne_sample,
                                     .vjp_dot = bne_vjp_dot};

const tg_op tg_op_layer_norm = {.name = "layer_norm",
                                .arity = 3,
                                .variadic = 1,
                                .check = ln_check,
                                .forward = norm_forward,
                                .jvp = norm_jvp,
                                .vjp = norm_vjp,
                                .sample = ln_sample,
                                .vjp_dot = norm_vjp_dot};

const tg_op tg_op_group_norm = {.name = "group_norm",
                                .arity = 3,
                                .variadic = 1,
                                .check = gn_check,
                                .forward = norm_forward,
                                .jvp = norm_jvp,
                                .vjp = norm_vjp,
                                .sample = gn_sample,
                                .vjp_dot = norm_vjp_dot};

static nkind kind_of(const tg_call *c) {
    return c->op == &tg_op_layer_norm ? NK_LAYER : c->op == &tg_op_group_norm ? NK_GROUP : NK_BATCH;
}

/* ---------------------------------------------------------------- public functions */

/* Record op on x with the affine inputs if given (both or neither). */
static tg_status apply_affine(tg_tape *t, const tg_op *op, const tg_tensor *x,
                              const tg_tensor *stats, const tg_tensor *gamma, const tg_tensor *beta,
                              const tg_attr *at, tg_tensor **out) {
    const tg_tensor *in[4] = {x};
    int n = 1;
    if (!gamma != !beta)
        return tg_fail(TG_ERR_ARG, "%s: give both weight and bias, or neither", op->name);
    if (stats) in[n++] = stats;
    if (gamma) in[n++] = gamma, in[n++] = beta;
    return tg_apply(t, op, n, in, at, out);
}

/* Everything the ops would refuse, checked before anything is recorded (eval
 * mode records a stack of the statistics first); then the running
 * statistics: constant leaves of C elements, of x's dtype. */
static tg_status running_check(const tg_tensor *x, const tg_tensor *gamma, const tg_tensor *beta,
                               const tg_tensor *rm, const tg_tensor *rv, double eps) {
    char sx[64], sm[64], sv[64];
    if (!x) return tg_fail(TG_ERR_ARG, "batch_norm: x is NULL");
    if (x->rank < 2)
        return tg_fail(TG_ERR_SHAPE, "batch_norm: input must be (N x C) or (N x C x ...), got %s",
                       SHP(sx, x));
    if (!(eps > 0 && isfinite(eps)))
        return tg_fail(TG_ERR_VALUE, "batch_norm: eps = %g must be finite and > 0", eps);
    const tg_tensor *w[2] = {gamma, beta};
    for (int q = 0; q < 2; q++)
        if (w[q] && (w[q]->rank != 1 || w[q]->size != x->shape[1]))
            return tg_fail(TG_ERR_SHAPE,
                           "batch_norm: weight and bias must have the shape (C) of the "
                           "channels of input %s, got %s",
                           SHP(sx, x), SHP(sm, w[q]));
    if (rm->kind != TG_CONST || rv->kind != TG_CONST)
        return tg_fail(TG_ERR_ARG, "batch_norm: running_mean and running_var must be constant "
                                   "tensors (not parameters or op results)");
    if (rm->dtype != x->dtype || rv->dtype != x->dtype)
        return tg_fail(TG_ERR_DTYPE, "batch_norm: running statistics of another dtype than x");
    if (rm->size != x->shape[1] || rv->size != x->shape[1] || rm->rank != 1 || rv->rank != 1)
        return tg_fail(TG_ERR_SHAPE,
                       "batch_norm: running_mean %s and running_var %s must be (%zu) for input %s",
                       SHP(sm, rm), SHP(sv, rv), x->shape[1], SHP(sx, x));
    return TG_OK;
}

/* PyTorch's momentum rule, from the batch statistics the op kept:
 * running = (1 − m)·running + m·batch, the variance unbiased (× M/(M − 1)). */
static void running_update(tg_tape *t, const tg_tensor *y, tg_tensor *rm, tg_tensor *rv,
                           double momentum) {
    const tg_call *c = tg_tape_call(t, y->node);
    ngeom g;
    geom(c, &g);
    const double *mu = c->saved, *var = mu + 2 * g.K, M = (double)g.M;
    for (size_t k = 0; k < g.K; k++) {
        tg_set(rm, k, (1 - momentum) * tg_get(rm, k) + momentum * mu[k]);
        tg_set(rv, k, (1 - momentum) * tg_get(rv, k) + momentum * var[k] * M / (M - 1));
    }
}

tg_status tg_batch_norm(tg_tape *t, const tg_tensor *x, const tg_tensor *gamma,
                        const tg_tensor *beta, tg_tensor *running_mean, tg_tensor *running_var,
                        int train, double momentum, double eps, tg_tensor **out) {
    tg_attr at = {.f = {eps}};
    if (out) *out = NULL;
    if (!running_mean != !running_var)
        return tg_fail(TG_ERR_ARG,
                       "batch_norm: give both running_mean and running_var, or neither");
    if (!train && !running_mean)
        return tg_fail(TG_ERR_ARG, "batch_norm: eval mode needs running_mean and running_var");
    if (running_mean) {
        tg_status s = running_check(x, gamma, beta, running_mean, running_var, eps);
        if (s) return s;
        if (train && !(momentum >= 0 && momentum <= 1))
            return tg_fail(TG_ERR_VALUE, "batch_norm: momentum = %g is not in [0, 1]", momentum);
    }
    if (train) {
        tg_status s = apply_affine(t, &tg_op_batch_norm, x, NULL, gamma, beta, &at, out);
        if (!s && running_mean) running_update(t, *out, running_mean, running_var, momentum);
        return s;
    }
    tg_tensor *stats;
    const tg_tensor *rs[2] = {running_mean, running_var};
    tg_status s = tg_stack(t, 2, rs, 0, &stats);
    if (s) return s;
    return apply_affine(t, &tg_op_batch_norm_eval, x, stats, gamma, beta, &at, out);
}

tg_status tg_layer_norm(tg_tape *t, const tg_tensor *x, int n_norm, const size_t *normalized_shape,
                        const tg_tensor *gamma, const tg_tensor *beta, double eps,
                        tg_tensor **out) {
    tg_attr at = {.f = {eps}, .i = {n_norm}};
    if (out) *out = NULL;
    if (n_norm < 1 || n_norm > TG_MAX_RANK || !normalized_shape)
        return tg_fail(TG_ERR_ARG, "layer_norm: normalized_shape needs 1..%d sizes, got %d%s",
                       TG_MAX_RANK, n_norm, normalized_shape ? "" : " (NULL)");
    for (int a = 0; a < n_norm; a++)
        at.v[a] = normalized_shape[a] > (size_t)LONG_MAX ? -1 : (long)normalized_shape[a];
    return apply_affine(t, &tg_op_layer_norm, x, NULL, gamma, beta, &at, out);
}

tg_status tg_group_norm(tg_tape *t, const tg_tensor *x, int num_groups, const tg_tensor *gamma,
                        const tg_tensor *beta, double eps, tg_tensor **out) {
    tg_attr at = {.f = {eps}, .i = {num_groups}};
    if (out) *out = NULL;
    return apply_affine(t, &tg_op_group_norm, x, NULL, gamma, beta, &at, out);
}
