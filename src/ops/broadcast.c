/* Broadcasting (NumPy's and PyTorch's rules): shapes are aligned at their
 * trailing axes; along each axis the sizes must be equal or 1, and a size
 * 1 (or a missing leading axis) stretches to the other. An op F on
 * broadcast inputs is F on the stretched copies, and stretching is the
 * linear map B: x ↦ x repeated, whose adjoint Bᵀ sums over the stretched
 * axes (torch's sum_to_size). So the r-map of a broadcast op is the same-
 * shape r-map followed by Bᵀ: each input's adjoint is accumulated at its
 * own offset, once per output element that read it (Proposition 3.1 with
 * B as the first map).
 *
 * The walk: the output's axes are merged where every operand is contiguous
 * across them (same shape: one row of all elements; a vector over rows:
 * rows of the vector's length), then a callback sees one row at a time
 * with each operand's offset and step (1 along, 0 stretched), so that its
 * inner loop is a plain strided loop the compiler vectorises. */
#include "ops.h"

#include "broadcast.h"

/* Shape text of the i-th tensor for the error message. */
static const char *shp(const tg_tensor *x, char *buf, size_t len) {
    return tg_shape_str(x, buf, len);
}

tg_status tg_bcast_init(tg_bcast *g, int n, const tg_tensor *const *x, char *msg, size_t len) {
    memset(g, 0, sizeof *g);
    g->n = n;
    for (int i = 0; i < n; i++)
        g->rank = x[i]->rank > g->rank ? x[i]->rank : g->rank;
    /* Output axis a (0..rank-1) meets input axis a − (rank − rank_i). */
    for (int a = 0; a < g->rank; a++) {
        size_t d = 1;
        for (int i = 0; i < n; i++) {
            int ai = a - (g->rank - x[i]->rank);
            size_t di = ai >= 0 ? x[i]->shape[ai] : 1;
            if (di == 1 || di == d) continue;
            if (d != 1) {
                char s0[64], s1[64];
                int j = 0; /* the first input whose size along a is the other one */
                while (j < i) {
                    int aj = a - (g->rank - x[j]->rank);
                    if (aj >= 0 && x[j]->shape[aj] == d) break;
                    j++;
                }
                snprintf(msg, len, "shapes %s and %s do not broadcast at axis %d (%zu vs %zu)",
                         shp(x[j], s0, sizeof s0), shp(x[i], s1, sizeof s1), a - g->rank, d, di);
                return TG_ERR_SHAPE;
            }
            d = di;
        }
        g->shape[a] = d;
    }
    g->size = 1;
    for (int a = 0; a < g->rank; a++)
        g->size *= g->shape[a];
    /* Element strides: row-major over each input's own shape, 0 where the
     * input is stretched or lacks the axis. */
    for (int i = 0; i < n; i++) {
        size_t s = 1;
        for (int a = g->rank - 1; a >= 0; a--) {
            int ai = a - (g->rank - x[i]->rank);
            size_t di = ai >= 0 ? x[i]->shape[ai] : 1;
            g->stride[i][a] = di == 1 ? 0 : s;
            s *= di;
        }
    }
    return TG_OK;
}

void tg_bcast_out(const tg_bcast *g, tg_call *c) {
    c->out->rank = g->rank;
    for (int a = 0; a < TG_MAX_RANK; a++)
        c->out->shape[a] = a < g->rank ? g->shape[a] : 1;
}

int tg_bcast_trivial(const tg_bcast *g) {
    for (int i = 0; i < g->n; i++)
        for (int a = 0; a < g->rank; a++)
            if (g->stride[i][a] == 0 && g->shape[a] != 1) return 0;
    return 1;
}

/* The merged walk: axes whose strides chain for every operand and for the
 * output (stride[a] = stride[a+1]·shape[a+1], 0 chaining with 0) fold
 * into one. Axes of size 1 drop out first. */
typedef struct walk {
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t stride[TG_BCAST_MAX + 1][TG_MAX_RANK]; /* [n] is the output */
} walk;

static walk merge_axes(const tg_bcast *g) {
    walk w = {0};
    size_t out_stride[TG_MAX_RANK], s = 1;
    for (int a = g->rank - 1; a >= 0; a--)
        out_stride[a] = s, s *= g->shape[a];
    for (int a = 0; a < g->rank; a++) {
        if (g->shape[a] == 1) continue;
        int k = w.rank;
        int chains = k > 0;
        for (int i = 0; chains && i <= g->n; i++) {
            size_t inner = i < g->n ? g->stride[i][a] : out_stride[a];
            chains = w.stride[i][k - 1] == inner * g->shape[a];
        }
        if (chains) { /* fold axis a into the previous merged one */
            w.shape[k - 1] *= g->shape[a];
            for (int i = 0; i <= g->n; i++)
                w.stride[i][k - 1] = i < g->n ? g->stride[i][a] : out_stride[a];
            continue;
        }
        w.shape[k] = g->shape[a];
        for (int i = 0; i <= g->n; i++)
            w.stride[i][k] = i < g->n ? g->stride[i][a] : out_stride[a];
        w.rank++;
    }
    if (w.rank == 0) { /* every axis of size 1: one row of one element */
        w.rank = 1;
        w.shape[0] = 1;
        for (int i = 0; i <= g->n; i++)
            w.stride[i][0] = i < g->n ? 0 : 1;
    }
    return w;
}

void tg_bcast_rows(const tg_bcast *g, tg_bcast_row_fn fn, void *ctx) {
    walk w = merge_axes(g);
    int last = w.rank - 1;
    size_t idx[TG_MAX_RANK] = {0}, off[TG_BCAST_MAX + 1] = {0}, step[TG_BCAST_MAX];
    for (int i = 0; i < g->n; i++)
        step[i] = w.stride[i][last];
    size_t rows = 1;
    for (int a = 0; a < last; a++)
        rows *= w.shape[a];
    for (size_t r = 0; r < rows; r++) {
        fn(ctx, w.shape[last], off[g->n], off, step);
        /* Odometer over the outer axes, offsets carried along. */
        for (int a = last - 1; a >= 0; a--) {
            for (int i = 0; i <= g->n; i++)
                off[i] += w.stride[i][a];
            if (++idx[a] < w.shape[a]) break;
            for (int i = 0; i <= g->n; i++)
                off[i] -= w.stride[i][a] * w.shape[a];
            idx[a] = 0;
        }
    }
}
