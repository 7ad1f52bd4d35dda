/* Helpers for the extreme-value tests (test_extremes*.c): errors counted
 * in ulps of a dtype against long-double references, and leaves, gradients
 * and tangents read as doubles whatever the dtype. */
#ifndef TG_TEST_EXTREMES_H
#define TG_TEST_EXTREMES_H

#include "check.h"
#include "tapegrad_op.h"

#include <stdint.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- ulps */

/* The float's bits as an integer that orders like the values. */
static inline int64_t ord32(float v) {
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b < 0 ? (int64_t)INT32_MIN - b : b;
}
static inline int64_t ord64(double v) {
    int64_t b;
    memcpy(&b, &v, sizeof b);
    return b < 0 ? INT64_MIN - b : b;
}

/* Distance in ulps of dt between got and want (want rounded to dt once):
 * 0 if both are NaN, or the same infinity; INT64_MAX if only one is NaN. */
static inline int64_t ulps(tg_dtype dt, double got, long double want) {
    if (isnan(got) || isnan(want)) return isnan(got) && isnan(want) ? 0 : INT64_MAX;
    if (dt == TG_F32) {
        int64_t d = ord32((float)got) - ord32((float)want);
        return d < 0 ? -d : d;
    }
    int64_t a = ord64(got), b = ord64((double)want);
    if ((a < 0) != (b < 0)) return a == b ? 0 : INT64_MAX / 2; /* opposite signs */
    return a > b ? a - b : b - a;
}

static inline const char *dt_name(tg_dtype dt) {
    return dt == TG_F32 ? "f32" : "f64";
}

/* ---------------------------------------------------------------- tensors */

static inline tg_tensor *leaf(int param, tg_dtype dt, int rank, const size_t *shape,
                              const double *v) {
    tg_tensor *t = NULL;
    CHECK_OK(param ? tg_param_new(&t, dt, rank, shape) : tg_tensor_new(&t, dt, rank, shape));
    if (t && v) CHECK_OK(tg_fill(t, v, t->size));
    return t;
}

static inline double grad_at(const tg_tensor *p, size_t i) {
    return p->dtype == TG_F32 ? (double)((const float *)p->grad)[i] : ((const double *)p->grad)[i];
}

static inline double tangent_at(const tg_tape *t, const tg_tensor *node, size_t i) {
    const void *tn = tg_tangent(t, node);
    if (!tn) return 0;
    return node->dtype == TG_F32 ? (double)((const float *)tn)[i] : ((const double *)tn)[i];
}

/* A seed in dt, n elements: ζᵢ = 1 + slope·i (slope 0: ones). */
static inline void *ramp(tg_dtype dt, size_t n, double slope) {
    void *p = malloc(n * (dt == TG_F32 ? sizeof(float) : sizeof(double)));
    for (size_t i = 0; p && i < n; i++) {
        if (dt == TG_F32)
            ((float *)p)[i] = (float)(1 + slope * (double)i);
        else
            ((double *)p)[i] = 1 + slope * (double)i;
    }
    return p;
}
static inline void *ones(tg_dtype dt, size_t n) {
    return ramp(dt, n, 0);
}

#endif
