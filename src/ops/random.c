/* Randomness and control: dropout and detach.
 *
 * dropout (torch.nn.functional.dropout, inverted): in training, y = x ⊙ m
 * with mᵢ = 1/(1 − p) kept (probability 1 − p) or 0 dropped, so E[y] = x;
 * the identity in eval mode or for p = 0; p = 1 drops everything (y = x·0,
 * as PyTorch, whose product keeps NaN and makes NaN of ±inf). m is fixed
 * once drawn, so the op is linear in x: ẏ = m ⊙ ξ, x̄ += m ⊙ ζ.
 * The forward map must depend only on inputs and attr (tg_replay re-runs
 * it for finite differences), so the caller's tg_rng is drawn once, when
 * recording, for a 64-bit seed kept in attr.i[1..2]; element i is kept iff
 * uᵢ >= p, uᵢ = the top 53 bits of splitmix64(seed + i·γ) as a double in
 * [0, 1): a counter-based stream, the same mask on every replay.
 *
 * detach (Tensor.detach, a stop-gradient): y = x, a constant: no
 * derivative flows back, whatever x depends on. */
#include "shape.h"

/* ---------------------------------------------------------------- dropout */

static int dropout_active(const tg_call *c) {
    return c->attr.i[0] && c->attr.f[0] > 0;
}

static tg_status dropout_check(tg_call *c, char *msg, size_t len) {
    double p = c->attr.f[0];
    if (!(p >= 0 && p <= 1)) {
        snprintf(msg, len, "probability p = %g is not in [0, 1]", p);
        return TG_ERR_VALUE;
    }
    tg_out_like(c, c->in[0]);
    c->saved_bytes = dropout_active(c) ? c->in[0]->size : 0; /* the mask, a byte per element */
    return TG_OK;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The seed from attr.i[1] (low 32 bits) and attr.i[2] (high 32 bits). */
static uint64_t dropout_seed(const tg_call *c) {
    return ((uint64_t)(c->attr.i[1] & 0xffffffffL)) | (uint64_t)(c->attr.i[2] & 0xffffffffL) << 32;
}

/* y = m ⊙ x (acc = 0) or y += m ⊙ x (acc = 1), m from the saved mask. */
static void dropout_apply(const tg_call *c, const void *x, void *y, int acc) {
    size_t n = c->out->size;
    if (!dropout_active(c)) {
        if (acc)
            tg_flat_add(c, x, y);
        else
            tg_flat_copy(c, x, y);
        return;
    }
    const unsigned char *m = c->saved;
    double p = c->attr.f[0];
    TG_DISPATCH(
        c->out->dtype, const real *xs = x; real *ys = y;
        const real k = p < 1 ? (real)(1 / (1 - p)) : 0; for (size_t i = 0; i < n; i++) {
            real v = xs[i] * (m[i] ? k : 0);
            ys[i] = acc ? ys[i] + v : v;
        });
}

static void dropout_forward(tg_call *c) {
    if (dropout_active(c)) {
        unsigned char *m = c->saved;
        uint64_t seed = dropout_seed(c);
        double p = c->attr.f[0];
        for (size_t i = 0; i < c->out->size; i++)
            m[i] = (double)(mix64(seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL) >> 11) * 0x1p-53 >= p;
    }
    dropout_apply(c, c->in[0]->data, c->out->data, 0);
}

static void dropout_jvp(const tg_call *c, const void *const *tin, void *tout) {
    dropout_apply(c, tin[0], tout, 0);
}

static void dropout_vjp(const tg_call *c, const void *gout, void *const *gin) {
    if (gin[0]) dropout_apply(c, gout, gin[0], 1);
}

static void dropout_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    s->rank[0] = 3, s->domain[0] = TG_DOM_REAL;
    s->shape[0][0] = m, s->shape[0][1] = k, s->shape[0][2] = n;
    s->attr.f[0] = 0.3, s->attr.i[0] = 1, s->attr.i[1] = 12345, s->attr.i[2] = 678;
}

/* Second order (issue 18): y = m ⊙ x / (1 − p) with the mask m drawn from
 * the saved seed, not from x's values, so the r-map is the same at x + εẋ:
 * r_const (term zero). detach is a constant (no derivative of any order). */
const tg_op tg_op_dropout = {.name = "dropout",
                             .arity = 1,
                             .check = dropout_check,
                             .forward = dropout_forward,
                             .jvp = dropout_jvp,
                             .vjp = dropout_vjp,
                             .sample = dropout_sample,
                             .r_const = 1u};

tg_status tg_dropout(tg_tape *t, const tg_tensor *x, double p, int train, tg_rng *rng,
                     tg_tensor **out) {
    tg_attr at = {.f = {p}, .i = {train != 0}};
    if (out) *out = NULL;
    if (train && p > 0 && p <= 1) {
        if (!rng) return tg_fail(TG_ERR_ARG, "dropout: rng is NULL (needed in training, p > 0)");
        uint64_t seed = tg_rng_next(rng);
        at.i[1] = (long)(seed & 0xffffffffu), at.i[2] = (long)(seed >> 32);
    }
    return tg_apply1(t, &tg_op_dropout, x, &at, out);
}

/* ---------------------------------------------------------------- detach */

static tg_status detach_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    tg_out_like(c, c->in[0]);
    return TG_OK;
}

/* A view (tg_op.view): the result shares x's data, nothing to copy. */
static void detach_forward(tg_call *c) {
    (void)c;
}

static void detach_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    (void)n;
    tg_sample_2d(s, 0, m, k, TG_DOM_REAL);
}

const tg_op tg_op_detach = {.name = "detach",
                            .arity = 1,
                            .nondiff = 1u,
                            .constant = 1,
                            .view = 1,
                            .check = detach_check,
                            .forward = detach_forward,
                            .sample = detach_sample};

tg_status tg_detach(tg_tape *t, const tg_tensor *x, tg_tensor **out) {
    return tg_apply1(t, &tg_op_detach, x, NULL, out);
}
