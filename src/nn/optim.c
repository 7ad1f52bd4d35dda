/* First-order optimizers with PyTorch's update rules (torch.optim, single
 * tensor, dampening 0, no amsgrad). Per parameter p with gradient g:
 *
 *   clipping (clip_norm > 0, torch.nn.utils.clip_grad_norm_): with the
 *     global norm N = sqrt(Σ‖g‖²) over all parameters, c = clip/(N + 1e-6);
 *     if c < 1 every g becomes c·g. N is taken before anything else.
 *   coupled weight decay (every kind but adamw): g ← g + wd·p
 *   sgd:       p ← p − α·g
 *   momentum:  v ← μ·v + g;  p ← p − α·v
 *   nesterov:  v ← μ·v + g;  p ← p − α·(g + μ·v)
 *   rmsprop:   s ← ρ·s + (1−ρ)·g²;  p ← p − α·g/(sqrt(s) + ε)
 *   adam:      m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *              p ← p − α·m̂/(sqrt(v̂) + ε),  m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ),
 *              PyTorch computes p ← p − (α/bc1)·m/(sqrt(v)/sqrt(bc2) + ε); here
 *              p ← p − (α/bc1·sqrt(bc2))·m/(sqrt(v) + ε·sqrt(bc2)), the same
 *              value up to rounding with one division less (see adam_f32)
 *   adamw:     p ← p·(1 − α·wd) (decoupled decay, on the old p), then adam
 *              with g undecayed.
 * State (v, s, m) starts at 0, so momentum's first v is g, as PyTorch's
 * buffer clone. t counts steps from 1.
 *
 * Subnormals: the update treats them as 0. Where a gradient stays 0 (a
 * dead ReLU unit, a pixel that is always 0) the state decays geometrically
 * into the subnormal range, and arithmetic on subnormals is many times
 * slower on x86: Fashion-MNIST, Adam, float32, after 1000 steps 2.4 % of
 * the first layer's m was subnormal; bench_update's Adam step (1 thread)
 * took 77–79 µs with such units against 44–49 with none, and 48–57 µs
 * with them once flushed (benches/RESULTS.md, stop 10). On x86 the update
 * runs with the thread's MXCSR set to flush-to-zero and
 * denormals-are-zero (restored after): a subnormal result is stored as 0,
 * a subnormal input read as 0, at no cost per element. Elsewhere the state
 * alone is flushed, by a compare. Either way no state is ever subnormal;
 * such values are far below half an ulp of any weight they could move.
 *
 * Speed: each rule is one loop per dtype over restrict pointers, with the
 * per-step scalars (α, c, bias corrections) hoisted, no calls but sqrt (an
 * instruction under -fno-math-errno) and no branches, so it vectorises, with
 * AVX-512 and AVX2 clones (SGD at batch 1, 1 thread: update 35.5 → 27.6
 * → 22.7 µs, bench_step --phases); the same pass zeroes the gradient. With
 * tg_set_threads the pool updates a share of every parameter each. A step
 * allocates nothing. */
#include "../tape/internal.h"
#include "tapegrad_nn.h"

#include <float.h>
#include <string.h>
#include <tgmath.h> /* sqrt on float is sqrtf */
#if defined(__SSE2__)
#include <xmmintrin.h> /* _mm_getcsr, _mm_setcsr */
#endif

struct tg_optimizer {
    tg_opt_config cfg;
    int n;
    size_t elems;       /* the parameters' elements in all: whether a step is split */
    tg_tensor **params; /* copy of the caller's array */
    void **m, **v;      /* per-parameter state (NULL where the kind has none) */
    void *state;        /* one block holding every m and v */
    long long t;        /* steps taken */
};

static const char *const opt_names[] = {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"};
#define N_OPT ((int)(sizeof opt_names / sizeof opt_names[0]))

int tg_opt_parse(const char *name) {
    for (int k = 0; name && k < N_OPT; k++)
        if (strcmp(name, opt_names[k]) == 0) return k;
    return -1;
}

const char *tg_opt_name(tg_opt_kind k) {
    return (unsigned)k < (unsigned)N_OPT ? opt_names[k] : "unknown";
}

/* Every field is filled whatever the kind, so that changing cfg.kind later
 * still gives a valid configuration. */
tg_opt_config tg_opt_defaults(tg_opt_kind kind) {
    int slow = kind == TG_OPT_RMSPROP || kind == TG_OPT_ADAM || kind == TG_OPT_ADAMW;
    tg_opt_config c = {
        .kind = kind,
        .lr = slow ? 1e-3 : 1e-2,
        .momentum = 0.9,
        .rho = 0.99,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .weight_decay = kind == TG_OPT_ADAMW ? 1e-2 : 0.0,
        .clip_norm = 0.0,
    };
    return c;
}

/* ---------------------------------------------------------------- kernels
 * Each kernel updates n elements, reads g as c·g + wd·p (c the clipping
 * factor, 1 when off; wd the coupled decay, 0 for adamw) and zeroes g. */

/* Subnormals as 0 (see above). FLUSH(x, tiny): x, or 0 where |x| is below
 * tiny, the smallest normal; on x86 the MXCSR does that already. */
#if defined(__SSE2__)
#define FTZ_DAZ 0x8040u /* MXCSR bits 15 (flush to zero) and 6 (denormals are zero) */
static unsigned subnormals_off(void) {
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | FTZ_DAZ);
    return csr;
}
static void subnormals_restore(unsigned csr) {
    _mm_setcsr(csr);
}
#define FLUSH(x, tiny) (x)
#else
static unsigned subnormals_off(void) {
    return 0;
}
static void subnormals_restore(unsigned csr) {
    (void)csr;
}
#define FLUSH(x, tiny) (fabs(x) < (tiny) ? 0 : (x))
#endif

#define OPT_KERNELS(real, sfx, tiny)                                                               \
    /* plain SGD (no clipping, no decay): p ← p − α·g, two flops fewer */                    \
    TG_SIMD_CLONES static void sgd_plain_##sfx(size_t n, real *restrict p, real *restrict g,       \
                                               real lr) {                                          \
        for (size_t i = 0; i < n; i++) {                                                           \
            p[i] -= lr * g[i];                                                                     \
            g[i] = 0;                                                                              \
        }                                                                                          \
    }                                                                                              \
    TG_SIMD_CLONES static void sgd_##sfx(size_t n, real *restrict p, real *restrict g, real lr,    \
                                         real c, real wd) {                                        \
        for (size_t i = 0; i < n; i++) {                                                           \
            const real gi = c * g[i] + wd * p[i];                                                  \
            p[i] -= lr * gi;                                                                       \
            g[i] = 0;                                                                              \
        }                                                                                          \
    }                                                                                              \
    TG_SIMD_CLONES static void momentum_##sfx(size_t n, real *restrict p, real *restrict g,        \
                                              real *restrict v, real lr, real c, real wd,          \
                                              real mu) {                                           \
        for (size_t i = 0; i < n; i++) {                                                           \
            const real gi = c * g[i] + wd * p[i];                                                  \
            const real vi = FLUSH(mu * v[i] + gi, tiny);                                           \
            v[i] = vi;                                                                             \
            p[i] -= lr * vi;                                                                       \
            g[i] = 0;                                                                              \
        }                                                                                          \
    }                                                                                              \
    TG_SIMD_CLONES static void nesterov_##sfx(size_t n, real *restrict p, real *restrict g,        \
                                              real *restrict v, real lr, real c, real wd,          \
                                              real mu) {                                           \
        for (size_t i = 0; i < n; i++) {                                                           \
            const real gi = c * g[i] + wd * p[i];                                                  \
            const real vi = FLUSH(mu * v[i] + gi, tiny);                                           \
            v[i] = vi;                                                                             \
            p[i] -= lr * (gi + mu * vi);                                                           \
            g[i] = 0;                                                                              \
        }                                                                                          \
    }                                                                                              \
    TG_SIMD_CLONES static void rmsprop_##sfx(size_t n, real *restrict p, real *restrict g,         \
                                             real *restrict s, real lr, real c, real wd, real rho, \
                                             real eps) {                                           \
        const real one_rho = 1 - rho;                                                              \
        for (size_t i = 0; i < n; i++) {                                                           \
            const real gi = c * g[i] + wd * p[i];                                                  \
            const real si = FLUSH(rho * s[i] + one_rho * gi * gi, tiny);                           \
            s[i] = si;                                                                             \
            p[i] -= lr * (gi / (sqrt(si) + eps));                                                  \
            g[i] = 0;                                                                              \
        }                                                                                          \
    }                                                                                              \
    /* decay = 1 − α·wd for adamw, 1 for adam; step = α/bc1; bc2s = sqrt(bc2).                \
     * m/(sqrt(v)/bc2s + ε) is computed as (bc2s·m)/(sqrt(v) + bc2s·ε): one division instead   \
     * of two (divisions and the square root bound this loop, not memory); it differs from         \
     * PyTorch's order of operations by rounding only. SIMD clones: 8 or 16 lanes per divide. */   \
    TG_SIMD_CLONES static void adam_##sfx(size_t n, real *restrict p, real *restrict g,            \
                                          real *restrict m, real *restrict v,                      \
                                          const adam_scalars *k) {                                 \
        const real c = (real)k->c, wd = (real)k->wd, decay = (real)k->decay;                       \
        const real b1 = (real)k->b1, b2 = (real)k->b2;                                             \
        const real one_b1 = (real)(1 - k->b1), one_b2 = (real)(1 - k->b2);                         \
        const real step_bc = (real)(k->step * k->bc2s), eps_bc = (real)(k->eps * k->bc2s);         \
        for (size_t i = 0; i < n; i++) {                                                           \
            const real gi = c * g[i] + wd * p[i];                                                  \
            const real mi = FLUSH(b1 * m[i] + one_b1 * gi, tiny);                                  \
            const real vi = FLUSH(b2 * v[i] + one_b2 * gi * gi, tiny);                             \
            m[i] = mi, v[i] = vi;                                                                  \
            p[i] = p[i] * decay - step_bc * mi / (sqrt(vi) + eps_bc);                              \
            g[i] = 0;                                                                              \
        }                                                                                          \
    }

/* Adam's per-step scalars, computed once per step in double. */
typedef struct adam_scalars {
    double c, wd, decay, b1, b2, eps, step, bc2s;
} adam_scalars;

OPT_KERNELS(float, f32, FLT_MIN)
OPT_KERNELS(double, f64, DBL_MIN)

/* ---------------------------------------------------------------- construction */

static int needs_m(tg_opt_kind k) {
    return k != TG_OPT_SGD;
}
static int needs_v(tg_opt_kind k) {
    return k == TG_OPT_ADAM || k == TG_OPT_ADAMW;
}

/* x in [0, 1) (NaN is not). */
static int in_unit(double x) {
    return isfinite(x) && x >= 0.0 && x < 1.0;
}

static tg_status check_hyper(const tg_opt_config *c) {
    tg_opt_kind k = c->kind;
    if ((unsigned)k >= (unsigned)N_OPT)
        return tg_fail(TG_ERR_ARG, "optimizer: unknown kind %d", (int)k);
    const char *name = opt_names[k];
    if (!(isfinite(c->lr) && c->lr > 0.0))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: lr must be finite and > 0, got %g", name,
                       c->lr);
    if (!(isfinite(c->weight_decay) && c->weight_decay >= 0.0))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: weight_decay must be finite and >= 0, got %g",
                       name, c->weight_decay);
    if (!(isfinite(c->clip_norm) && c->clip_norm >= 0.0))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: clip_norm must be finite and >= 0, got %g",
                       name, c->clip_norm);
    if ((k == TG_OPT_MOMENTUM || k == TG_OPT_NESTEROV) && !in_unit(c->momentum))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: momentum must be in [0, 1), got %g", name,
                       c->momentum);
    if (k == TG_OPT_RMSPROP && !in_unit(c->rho))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: rho must be in [0, 1), got %g", name, c->rho);
    if (needs_v(k) && !(in_unit(c->beta1) && in_unit(c->beta2)))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: betas must be in [0, 1), got %g, %g", name,
                       c->beta1, c->beta2);
    /* ε keeps sqrt(v) + ε away from 0: a zero gradient would give 0/0 */
    if ((k == TG_OPT_RMSPROP || needs_v(k)) && !(isfinite(c->eps) && c->eps > 0.0))
        return tg_fail(TG_ERR_VALUE, "optimizer: %s: eps must be finite and > 0, got %g", name,
                       c->eps);
    return TG_OK;
}

static tg_status check_params(int n, tg_tensor *const *params) {
    if (n <= 0) return tg_fail(TG_ERR_ARG, "optimizer: %d parameters, need at least 1", n);
    if (!params) return tg_fail(TG_ERR_ARG, "optimizer: params is NULL");
    for (int i = 0; i < n; i++) {
        const tg_tensor *p = params[i];
        if (!p) return tg_fail(TG_ERR_ARG, "optimizer: params[%d] is NULL", i);
        if (p->kind != TG_PARAM || !p->grad || !p->data)
            return tg_fail(TG_ERR_ARG, "optimizer: params[%d] is not a parameter", i);
        if (p->dtype != params[0]->dtype)
            return tg_fail(TG_ERR_DTYPE, "optimizer: params[%d] is %s, params[0] is %s", i,
                           p->dtype == TG_F32 ? "float32" : "float64",
                           params[0]->dtype == TG_F32 ? "float32" : "float64");
        /* a repeated parameter would be updated twice per step */
        for (int j = 0; j < i; j++)
            if (params[j] == p)
                return tg_fail(TG_ERR_ARG, "optimizer: params[%d] repeats params[%d]", i, j);
    }
    return TG_OK;
}

/* Points m[i] (and v[i]) into one zeroed block: [m_0 .. m_{n−1} v_0 .. v_{n−1}]. */
static tg_status alloc_state(tg_optimizer *o) {
    int slots = needs_m(o->cfg.kind) + needs_v(o->cfg.kind);
    if (slots == 0) return TG_OK;
    size_t total = 0, es = tg_dtype_size(o->params[0]->dtype);
    for (int i = 0; i < o->n; i++)
        total += o->params[i]->size;
    o->m = tg_calloc((size_t)o->n, sizeof *o->m);
    o->v = tg_calloc((size_t)o->n, sizeof *o->v);
    o->state = tg_calloc(total * (size_t)slots, es);
    if (!o->m || !o->v || !o->state) return tg_fail(TG_ERR_NOMEM, "optimizer: out of memory");
    char *at = o->state;
    for (int i = 0; i < o->n; i++) {
        o->m[i] = at;
        at += o->params[i]->size * es;
    }
    for (int i = 0; slots == 2 && i < o->n; i++) {
        o->v[i] = at;
        at += o->params[i]->size * es;
    }
    return TG_OK;
}

tg_status tg_optimizer_new(tg_optimizer **out, const tg_opt_config *cfg, int n,
                           tg_tensor *const *params) {
    if (!out) return tg_fail(TG_ERR_ARG, "optimizer: out is NULL");
    *out = NULL;
    if (!cfg) return tg_fail(TG_ERR_ARG, "optimizer: config is NULL");
    tg_status s = check_hyper(cfg);
    if (!s) s = check_params(n, params);
    if (s) return s;
    tg_optimizer *o = tg_calloc(1, sizeof *o);
    if (!o) return tg_fail(TG_ERR_NOMEM, "optimizer: out of memory");
    o->cfg = *cfg;
    o->n = n;
    o->params = tg_malloc((size_t)n * sizeof *o->params);
    if (!o->params) s = tg_fail(TG_ERR_NOMEM, "optimizer: out of memory");
    if (!s) memcpy(o->params, params, (size_t)n * sizeof *o->params);
    for (int i = 0; i < n; i++)
        o->elems += params[i]->size;
    if (!s) s = alloc_state(o);
    if (s) {
        tg_optimizer_free(o);
        return s;
    }
    *out = o;
    return TG_OK;
}

void tg_optimizer_free(tg_optimizer *o) {
    if (!o) return;
    tg_free(o->state);
    tg_free(o->m);
    tg_free(o->v);
    tg_free(o->params);
    tg_free(o);
}

/* Schedules may anneal to 0, so 0 is accepted here (a step then moves
 * nothing); a negative or non-finite lr is ignored. */
void tg_optimizer_set_lr(tg_optimizer *o, double lr) {
    if (o && isfinite(lr) && lr >= 0.0) o->cfg.lr = lr;
}

double tg_optimizer_lr(const tg_optimizer *o) {
    return o ? o->cfg.lr : 0.0;
}

/* ---------------------------------------------------------------- step */

/* Σ g² accumulated in double, whatever the dtype. */
static double sum_sq(const tg_tensor *p) {
    double acc = 0.0;
    if (p->dtype == TG_F32) {
        const float *g = p->grad;
        for (size_t i = 0; i < p->size; i++)
            acc += (double)g[i] * (double)g[i];
    } else {
        const double *g = p->grad;
        for (size_t i = 0; i < p->size; i++)
            acc += g[i] * g[i];
    }
    return acc;
}

double tg_grad_norm(int n, tg_tensor *const *params) {
    double acc = 0.0;
    for (int i = 0; params && i < n; i++)
        if (params[i] && params[i]->grad) acc += sum_sq(params[i]);
    return sqrt(acc);
}

/* The clipping factor c (1 when off or not needed), as clip_grad_norm_:
 * c = clip/(N + 1e-6), applied only when c < 1. */
static tg_status clip_factor(const tg_optimizer *o, double *c) {
    *c = 1.0;
    if (o->cfg.clip_norm <= 0.0) return TG_OK;
    double norm = tg_grad_norm(o->n, o->params);
    if (!isfinite(norm)) return tg_fail(TG_ERR_NUMERIC, "optimizer: gradient norm is NaN/Inf");
    double f = o->cfg.clip_norm / (norm + 1e-6);
    if (f < 1.0) *c = f;
    return TG_OK;
}

static void adam_setup(const tg_optimizer *o, double c, adam_scalars *k) {
    const tg_opt_config *cf = &o->cfg;
    int decoupled = cf->kind == TG_OPT_ADAMW;
    double t = (double)o->t;
    k->c = c;
    k->wd = decoupled ? 0.0 : cf->weight_decay;
    k->decay = decoupled ? 1.0 - cf->lr * cf->weight_decay : 1.0;
    k->b1 = cf->beta1, k->b2 = cf->beta2, k->eps = cf->eps;
    k->step = cf->lr / (1.0 - pow(cf->beta1, t)); /* α/bc1 */
    k->bc2s = sqrt(1.0 - pow(cf->beta2, t));      /* sqrt(bc2) */
}

/* step_f32, step_f64: elements [lo, hi) of parameter i by the configured
 * rule, the per-step scalars cast once to the parameter's type. */
#define STEP_FN(real, sfx)                                                                         \
    static void step_##sfx(tg_optimizer *o, int i, double c, const adam_scalars *k, size_t lo,     \
                           size_t hi) {                                                            \
        const tg_opt_config *cf = &o->cfg;                                                         \
        tg_tensor *p = o->params[i];                                                               \
        size_t n = hi - lo;                                                                        \
        real *w = (real *)p->data + lo, *g = (real *)p->grad + lo;                                 \
        /* v[i] is NULL under a one-slot rule (momentum): no offset from it */                     \
        real *m = o->m && o->m[i] ? (real *)o->m[i] + lo : NULL;                                   \
        real *v = o->v && o->v[i] ? (real *)o->v[i] + lo : NULL;                                   \
        real lr = (real)cf->lr, cc = (real)c, wd = (real)cf->weight_decay;                         \
        switch (cf->kind) {                                                                        \
        case TG_OPT_SGD:                                                                           \
            if (c == 1.0 && cf->weight_decay == 0.0)                                               \
                sgd_plain_##sfx(n, w, g, lr);                                                      \
            else                                                                                   \
                sgd_##sfx(n, w, g, lr, cc, wd);                                                    \
            break;                                                                                 \
        case TG_OPT_MOMENTUM:                                                                      \
            momentum_##sfx(n, w, g, m, lr, cc, wd, (real)cf->momentum);                            \
            break;                                                                                 \
        case TG_OPT_NESTEROV:                                                                      \
            nesterov_##sfx(n, w, g, m, lr, cc, wd, (real)cf->momentum);                            \
            break;                                                                                 \
        case TG_OPT_RMSPROP:                                                                       \
            rmsprop_##sfx(n, w, g, m, lr, cc, wd, (real)cf->rho, (real)cf->eps);                   \
            break;                                                                                 \
        case TG_OPT_ADAM:                                                                          \
        case TG_OPT_ADAMW:                                                                         \
            adam_##sfx(n, w, g, m, v, k);                                                          \
            break;                                                                                 \
        }                                                                                          \
    }

STEP_FN(float, f32)
STEP_FN(double, f64)

/* One part of a step: the same share of every parameter, cut at multiples
 * of 16 rows (or elements: 64-byte lines for float32) so that no two
 * threads write one cache line. Elementwise rules: the split does not
 * change a result. */
typedef struct step_job {
    tg_optimizer *o;
    double c;
    const adam_scalars *k;
} step_job;

static void step_part(void *ctx, int part, int parts) {
    const step_job *j = ctx;
    unsigned csr = subnormals_off();
    for (int i = 0; i < j->o->n; i++) {
        const tg_tensor *p = j->o->params[i];
        /* a matrix is cut by rows, at multiples of 16 rows, as the matrix
         * products cut it (linalg.c), so each thread updates the rows it
         * computed the gradient of */
        size_t row = p->rank == 2 ? p->shape[1] : 1, lo, hi;
        tg_part_range(p->size / row, part, parts, 16, &lo, &hi);
        lo *= row, hi *= row;
        if (lo == hi) continue;
        if (p->dtype == TG_F32)
            step_f32(j->o, i, j->c, j->k, lo, hi);
        else
            step_f64(j->o, i, j->c, j->k, lo, hi);
    }
    subnormals_restore(csr);
}

/* Below this many elements a step stays on the calling thread. */
#define STEP_SPLIT_MIN 16384

tg_status tg_optimizer_step(tg_optimizer *o) {
    if (!o) return tg_fail(TG_ERR_ARG, "optimizer: step on NULL");
    double c;
    tg_status s = clip_factor(o, &c);
    if (s) return s; /* nothing touched, t unchanged */
    o->t++;
    adam_scalars k = {0};
    if (needs_v(o->cfg.kind)) adam_setup(o, c, &k);
    step_job j = {o, c, &k};
    tg_parallel(step_part, &j, o->elems >= STEP_SPLIT_MIN ? tg_get_threads() : 1);
    return TG_OK;
}
