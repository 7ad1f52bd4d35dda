/* Valid random inputs for an op, from the domains its table entry names:
 * how tests, `tapegrad gradcheck` and fuzzers exercise every op. */
#include "internal.h"

#include <string.h>

static double draw(tg_rng *g, tg_domain d) {
    double u = tg_rng_uniform(g);
    switch (d) {
    case TG_DOM_AWAY0: /* ±[0.1, 1.1): finite differences of 1e-6 never cross 0 */
        return (u < 0.5 ? -1.0 : 1.0) * (0.1 + tg_rng_uniform(g));
    case TG_DOM_PROB:
        return 0.05 + 0.9 * u;
    case TG_DOM_BINARY:
        return u < 0.5 ? 0.0 : 1.0;
    case TG_DOM_SMALL:
        return 0.05 * (2 * u - 1);
    case TG_DOM_POS:
        return 0.5 + 2 * u;
    case TG_DOM_AWAY_HALF: { /* a sign, a band, a place in it: 1e-6 steps never cross ±½ or 0 */
        double v = tg_rng_uniform(g), band = u < 0.5 ? 0.1 + 0.3 * v : 0.6 + 0.5 * v;
        return tg_rng_uniform(g) < 0.5 ? -band : band;
    }
    default:
        return tg_rng_normal(g);
    }
}

void tg_sample_fill(tg_tensor *x, tg_domain d, size_t classes, tg_rng *g) {
    if (!x || !g) return;
    size_t cols = x->rank ? x->shape[x->rank - 1] : 1;
    for (size_t i = 0; i < x->size; i++) {
        if (d == TG_DOM_LABEL)
            tg_set(x, i, (double)(tg_rng_next(g) % (classes ? classes : 1)));
        else if (d == TG_DOM_CYCLE)
            tg_set(x, i, (double)(i % (classes ? classes : 1)));
        else if (d == TG_DOM_SIMPLEX)
            tg_set(x, i, 0.1 + tg_rng_uniform(g));
        else
            tg_set(x, i, draw(g, d));
    }
    if (d == TG_DOM_DISTINCT) { /* Fisher–Yates over the ramp −2 + 4(i + ½)/size */
        for (size_t i = 0; i < x->size; i++)
            tg_set(x, i, -2 + 4 * ((double)i + 0.5) / (double)x->size);
        for (size_t i = x->size; i > 1; i--) {
            size_t j = (size_t)(tg_rng_next(g) % i);
            double v = tg_get(x, i - 1);
            tg_set(x, i - 1, tg_get(x, j)), tg_set(x, j, v);
        }
    }
    if (d != TG_DOM_SIMPLEX) return;
    for (size_t r = 0; r < x->size / cols; r++) { /* normalise each row to sum 1 */
        double s = 0;
        for (size_t j = 0; j < cols; j++)
            s += tg_get(x, r * cols + j);
        for (size_t j = 0; j < cols; j++)
            tg_set(x, r * cols + j, tg_get(x, r * cols + j) / s);
    }
}

tg_status tg_sample_inputs(const tg_op *op, size_t m, size_t k, size_t n, tg_dtype dtype,
                           tg_rng *rng, tg_tensor **in, tg_attr *attr) {
    if (!op || !in || !attr || !rng) return tg_fail(TG_ERR_ARG, "sample: NULL argument");
    if (!op->sample) return tg_fail(TG_ERR_ARG, "%s: has no sample function", op->name);
    if (op->arity < 1 || op->arity > TG_MAX_ARITY)
        return tg_fail(TG_ERR_ARG, "%s: arity %d outside 1..%d", op->name, op->arity, TG_MAX_ARITY);
    tg_sample s;
    memset(&s, 0, sizeof s);
    op->sample(m ? m : 1, k ? k : 1, n ? n : 1, &s);
    for (int i = 0; i < op->arity; i++)
        in[i] = NULL;
    for (int i = 0; i < op->arity; i++) {
        int param = !(op->nondiff >> i & 1u);
        tg_status st = param ? tg_param_new(&in[i], dtype, s.rank[i], s.shape[i])
                             : tg_tensor_new(&in[i], dtype, s.rank[i], s.shape[i]);
        if (st) {
            for (int j = 0; j < i; j++)
                tg_tensor_free(in[j]), in[j] = NULL;
            return st;
        }
        size_t classes = s.rank[0] ? s.shape[0][s.rank[0] - 1] : 1;
        tg_sample_fill(in[i], s.domain[i], classes, rng);
    }
    *attr = s.attr;
    return TG_OK;
}
