/* Broadcasting geometry shared by the broadcasting ops (broadcast.c says
 * the rules and why the r-maps sum over stretched axes). Not installed. */
#ifndef TG_BROADCAST_H
#define TG_BROADCAST_H

#include "ops.h"

#define TG_BCAST_MAX 3 /* operands of one broadcast: where(mask, a, b) has 3 */

/* The output's shape and, per operand, its element strides over the
 * output's axes (0 along a stretched or missing axis). */
typedef struct tg_bcast {
    int n, rank;
    size_t size;
    size_t shape[TG_MAX_RANK];
    size_t stride[TG_BCAST_MAX][TG_MAX_RANK];
} tg_bcast;

/* The broadcast of n (1..TG_BCAST_MAX) tensors. TG_ERR_SHAPE with
 * "shapes (3x4) and (5x4) do not broadcast at axis -2 (3 vs 5)" in msg
 * (axes counted from the end, as they are aligned) when they do not. */
tg_status tg_bcast_init(tg_bcast *g, int n, const tg_tensor *const *x, char *msg, size_t len);
/* Set c->out's rank and shape to the broadcast shape. */
void tg_bcast_out(const tg_bcast *g, tg_call *c);
/* 1 if no operand is stretched (every one has the output's shape, up to
 * leading axes of size 1): the op may run its flat same-shape loop. */
int tg_bcast_trivial(const tg_bcast *g);

/* Called once per row of the walk: n elements; the output's row starts at
 * element out_off, operand i's at off[i] and advances by step[i] (0 when
 * stretched along the row). Rows cover the output once, in order. */
typedef void (*tg_bcast_row_fn)(void *ctx, size_t n, size_t out_off, const size_t *off,
                                const size_t *step);
/* Walk the output in rows, axes merged where every operand is contiguous
 * across them (same shapes: one row; a vector over rows: one row each). */
void tg_bcast_rows(const tg_bcast *g, tg_bcast_row_fn fn, void *ctx);

#endif
