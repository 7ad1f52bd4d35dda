/* Leaf tensors (inputs, constants, parameters) and element access. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* Validates dtype, rank and shape; sets rank, shape and size of t. */
static tg_status set_shape(tg_tensor *t, tg_dtype dtype, int rank, const size_t *shape) {
    if (dtype != TG_F32 && dtype != TG_F64)
        return tg_fail(TG_ERR_ARG, "tensor: unknown dtype %d", (int)dtype);
    if (rank < 0 || rank > TG_MAX_RANK)
        return tg_fail(TG_ERR_SHAPE, "tensor: rank %d outside 0..%d", rank, TG_MAX_RANK);
    if (rank > 0 && !shape) return tg_fail(TG_ERR_ARG, "tensor: shape is NULL for rank %d", rank);
    size_t size = 1;
    for (int i = 0; i < TG_MAX_RANK; i++) {
        size_t d = i < rank ? shape[i] : 1;
        if (d == 0) return tg_fail(TG_ERR_SHAPE, "tensor: dimension %d is 0", i);
        if (size > SIZE_MAX / 16 / d) return tg_fail(TG_ERR_SHAPE, "tensor: too many elements");
        size *= d;
        t->shape[i] = d;
    }
    t->dtype = dtype;
    t->rank = rank;
    t->size = size;
    return TG_OK;
}

static tg_status leaf_new(tg_tensor **out, tg_dtype dtype, int rank, const size_t *shape,
                          int param) {
    if (!out) return tg_fail(TG_ERR_ARG, "tensor: out is NULL");
    *out = NULL;
    tg_tensor tmp;
    memset(&tmp, 0, sizeof tmp);
    tg_status s = set_shape(&tmp, dtype, rank, shape);
    if (s) return s;
    tg_tensor *t = tg_malloc(sizeof *t);
    if (!t) return tg_fail(TG_ERR_NOMEM, "tensor: out of memory");
    *t = tmp;
    t->kind = param ? TG_PARAM : TG_CONST;
    t->node = -1;
    t->requires_grad = param;
    t->data = tg_calloc(t->size, tg_dtype_size(dtype));
    t->grad = param ? tg_calloc(t->size, tg_dtype_size(dtype)) : NULL;
    if (!t->data || (param && !t->grad)) {
        tg_free(t->data);
        tg_free(t->grad);
        tg_free(t);
        return tg_fail(TG_ERR_NOMEM, "tensor: out of memory for %zu elements", tmp.size);
    }
    *out = t;
    return TG_OK;
}

tg_status tg_tensor_new(tg_tensor **out, tg_dtype dtype, int rank, const size_t *shape) {
    return leaf_new(out, dtype, rank, shape, 0);
}

tg_status tg_param_new(tg_tensor **out, tg_dtype dtype, int rank, const size_t *shape) {
    return leaf_new(out, dtype, rank, shape, 1);
}

void tg_tensor_free(tg_tensor *t) {
    if (!t || t->kind == TG_NODE) return;
    tg_free(t->data);
    tg_free(t->grad);
    tg_free(t);
}

void tg_zero_grad(tg_tensor *p) {
    if (p && p->grad) memset(p->grad, 0, p->size * tg_dtype_size(p->dtype));
}

double tg_get(const tg_tensor *t, size_t i) {
    if (!t || i >= t->size) return 0.0;
    return t->dtype == TG_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

void tg_set(tg_tensor *t, size_t i, double v) {
    if (!t || i >= t->size) return;
    if (t->dtype == TG_F32)
        ((float *)t->data)[i] = (float)v;
    else
        ((double *)t->data)[i] = v;
}

tg_status tg_fill(tg_tensor *t, const double *values, size_t n) {
    if (!t || !values) return tg_fail(TG_ERR_ARG, "fill: NULL argument");
    if (n != t->size) {
        char b[64];
        return tg_fail(TG_ERR_SHAPE, "fill: %zu values for a tensor of shape %s (%zu elements)", n,
                       tg_shape_str(t, b, sizeof b), t->size);
    }
    for (size_t i = 0; i < n; i++)
        tg_set(t, i, values[i]);
    return TG_OK;
}

const char *tg_shape_str(const tg_tensor *t, char *buf, size_t len) {
    if (!buf || len == 0) return "";
    if (!t) {
        snprintf(buf, len, "(null)");
        return buf;
    }
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < t->rank && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? "x%zu" : "%zu", t->shape[i]);
    if (k < len) snprintf(buf + k, len - k, ")");
    return buf;
}
