/* Helpers shared by the shape, index and random families (shape.c,
 * index.c, random.c). Not installed. */
#ifndef TG_SHAPE_H
#define TG_SHAPE_H

#include "ops.h"

/* PyTorch's dim wrapping: dim in [−n, n) names axis dim (or n + dim when
 * negative). 1 and *axis set if in range, else 0. */
static inline int tg_wrap_dim(long dim, int n, int *axis) {
    if (dim < -(long)n || dim >= (long)n) return 0;
    *axis = (int)(dim < 0 ? dim + n : dim);
    return 1;
}

/* Set c->out's rank and shape to dims[0..rank-1] (each >= 1), refusing a
 * result whose element count or byte size overflows size_t
 * (TG_ERR_SHAPE, "result of N axes too large"). */
tg_status tg_set_out_shape(tg_call *c, int rank, const size_t *dims, char *msg, size_t len);

/* The value at element k of an index tensor (labels, gather indices) as an
 * index in [0, n), or −1 if it is not an integer there (NaN, 1.5, −1, n). */
static inline long tg_index_at(const tg_tensor *idx, size_t k, size_t n) {
    double v = tg_get(idx, k);
    return v >= 0 && v < (double)n && v == floor(v) ? (long)v : -1;
}

/* TG_OK if every element of idx is an index in [0, n); else TG_ERR_VALUE
 * with "index V at position P is out of range for WHAT" in msg (or "is not
 * an integer"), where WHAT names the axis and shape. */
tg_status tg_check_indices(const tg_tensor *idx, size_t n, const char *what, char *msg, size_t len);

/* Flat moves over out->size elements in out's dtype: dst = src, and
 * dst += src (the d- and r-maps of the ops that keep the elements' order). */
void tg_flat_copy(const tg_call *c, const void *src, void *dst);
void tg_flat_add(const tg_call *c, const void *src, void *dst);

#endif
