/* Anomaly mode: find the first op whose output (forward) or whose r-map's
 * result (backward) holds a NaN or an Inf, and say which op it was, where
 * on the tape, and what its inputs looked like. The tape calls these only
 * when the mode is on, so it costs one branch per op when off. */
#include "internal.h"

#include <math.h>
#include <stdio.h>

/* Index of the first non-finite element, or -1. Sets *what to "NaN"/"Inf". */
static long first_bad(const void *p, tg_dtype dt, size_t n, const char **what) {
    for (size_t i = 0; i < n; i++) {
        double v = dt == TG_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
        if (!isfinite(v)) {
            *what = isnan(v) ? "NaN" : "Inf";
            return (long)i;
        }
    }
    return -1;
}

/* "; input 0 (128x784) min -1 max 3" for each input, into buf. */
static void describe_inputs(const tg_call *c, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < c->n_in && k < len; i++) {
        const tg_tensor *x = c->in[i];
        double lo = INFINITY, hi = -INFINITY;
        for (size_t e = 0; e < x->size; e++) {
            double v = tg_get(x, e);
            lo = v < lo ? v : lo; /* NaN never wins a comparison: report it below */
            hi = v > hi ? v : hi;
        }
        const char *bad = NULL;
        long at = first_bad(x->data, x->dtype, x->size, &bad);
        char shape[64];
        k += (size_t)snprintf(buf + k, len - k, "; input %d %s min %g max %g%s", i,
                              tg_shape_str(x, shape, sizeof shape), lo, hi,
                              at >= 0 && bad[0] == 'N' ? " (has NaN)" : "");
    }
}

tg_status tg_anomaly_forward(const tg_call *c, int pos) {
    const char *what = NULL;
    long at = first_bad(c->out->data, c->out->dtype, c->out->size, &what);
    if (at < 0) return TG_OK;
    char ins[300];
    describe_inputs(c, ins, sizeof ins);
    return tg_fail(TG_ERR_NUMERIC, "anomaly: op %d (%s) produced %s at output element %ld%s", pos,
                   c->op->name, what, at, ins);
}

tg_status tg_anomaly_backward(const tg_call *c, int pos, void *const *gin) {
    for (int i = 0; i < c->n_in; i++) {
        const char *what = NULL;
        long at = gin[i] ? first_bad(gin[i], c->in[i]->dtype, c->in[i]->size, &what) : -1;
        if (at < 0) continue;
        char ins[300];
        describe_inputs(c, ins, sizeof ins);
        return tg_fail(TG_ERR_NUMERIC,
                       "anomaly: backward of op %d (%s) produced %s in the adjoint of input %d "
                       "at element %ld%s",
                       pos, c->op->name, what, i, at, ins);
    }
    return TG_OK;
}
