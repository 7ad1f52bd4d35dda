/* Helpers shared by the op families in src/ops/. Not installed. */
#ifndef TG_OPS_H
#define TG_OPS_H

#include "../tape/internal.h"

#include <stdio.h>
#include <string.h>
#include <tgmath.h> /* exp, log, tanh... pick the float or double version */

/* Run the statements once with `real` = float (TG_F32) or double (TG_F64),
 * so each kernel is written once and compiled for both dtypes. */
#define TG_DISPATCH(dtype, ...)                                                                    \
    do {                                                                                           \
        if ((dtype) == TG_F32) {                                                                   \
            typedef float real;                                                                    \
            __VA_ARGS__                                                                            \
        } else {                                                                                   \
            typedef double real;                                                                   \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

/* Shape text for messages: SHP(x) uses a buffer local to the caller. */
#define SHP(buf, x) tg_shape_str((x), (buf), sizeof(buf))

static inline int tg_same_shape(const tg_tensor *a, const tg_tensor *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* Output shaped like x. */
static inline void tg_out_like(tg_call *c, const tg_tensor *x) {
    c->out->rank = x->rank;
    for (int i = 0; i < TG_MAX_RANK; i++)
        c->out->shape[i] = x->shape[i];
}

/* Output of rank 0 (a scalar: a cost). */
static inline void tg_out_scalar(tg_call *c) {
    c->out->rank = 0;
}

/* Last dimension (1 for rank 0) and the number of rows before it. */
static inline size_t tg_last_dim(const tg_tensor *x) {
    return x->rank ? x->shape[x->rank - 1] : 1;
}
static inline size_t tg_rows(const tg_tensor *x) {
    return x->size / tg_last_dim(x);
}

/* Shape-check helper for two inputs of equal shape. */
static inline tg_status tg_check_same(const tg_call *c, char *msg, size_t len) {
    if (tg_same_shape(c->in[0], c->in[1])) return TG_OK;
    char a[64], b[64];
    snprintf(msg, len, "shapes differ: %s and %s", SHP(a, c->in[0]), SHP(b, c->in[1]));
    return TG_ERR_SHAPE;
}

/* Sample helpers for self-tests. */
static inline void tg_sample_2d(tg_sample *s, int i, size_t r, size_t c, tg_domain d) {
    s->rank[i] = 2;
    s->shape[i][0] = r;
    s->shape[i][1] = c;
    s->domain[i] = d;
}

/* Bias-add's shape check (X n×d, b of size d), shared with the fused
 * bias + activation ops, and its samples: X m×k from dx, b (k) from db;
 * tg_bias_real_sample, both real (bias_add's, and the smooth fused ops'). */
tg_status tg_bias_check(tg_call *c, char *msg, size_t len);
void tg_bias_sample(size_t m, size_t k, tg_domain dx, tg_domain db, tg_sample *s);
void tg_bias_real_sample(size_t m, size_t k, size_t n, tg_sample *s);

/* The op entries, one per op, defined in the family files. */
extern const tg_op tg_op_matmul, tg_op_bias_add, tg_op_batched_matmul;
extern const tg_op tg_op_sigmoid, tg_op_tanh, tg_op_relu, tg_op_leaky_relu, tg_op_softmax;
extern const tg_op tg_op_bias_sigmoid, tg_op_bias_tanh, tg_op_bias_relu, tg_op_bias_leaky_relu;
extern const tg_op tg_op_add, tg_op_sub, tg_op_mul, tg_op_scale;
extern const tg_op tg_op_sum, tg_op_mean, tg_op_sum_axis, tg_op_mean_axis;
extern const tg_op tg_op_bce, tg_op_bce_logits, tg_op_softmax_ce, tg_op_softmax_ce_onehot;
extern const tg_op tg_op_sse, tg_op_mse, tg_op_l2, tg_op_l1;
/* Shape and movement (shape.c), indexing (index.c), randomness and control (random.c). */
extern const tg_op tg_op_reshape, tg_op_flatten, tg_op_squeeze, tg_op_unsqueeze, tg_op_permute;
extern const tg_op tg_op_slice, tg_op_pad, tg_op_broadcast_to, tg_op_concat, tg_op_stack;
extern const tg_op tg_op_gather, tg_op_embedding, tg_op_where, tg_op_masked_fill;
extern const tg_op tg_op_one_hot, tg_op_argmax, tg_op_dropout, tg_op_detach;

/* Reductions, softmax and losses (issue 14): the geometry of reducing x
 * over a set of axes (a bitmask), shared by reduce.c, the softmax family
 * (activation.c) and the class-axis losses (loss.c). Axes of size 1 are
 * dropped and neighbouring axes of one kind (reduced or kept) merged into
 * n groups; x is walked in memory order, `rows` runs of len[n−1] elements,
 * so each input element i meets its output element o (the row-major index
 * among the kept axes) and each output's elements come in increasing order.
 * The last group is either reduced (o constant along a run) or kept (o
 * steps by 1): either way the inner loop is contiguous. */
typedef struct tg_rgeom {
    int n;                       /* groups, >= 1 */
    int red_inner;               /* the last group is reduced */
    size_t len[TG_MAX_RANK];     /* group sizes */
    size_t ostride[TG_MAX_RANK]; /* output stride of a kept group, 0 if reduced */
    size_t rows;                 /* product of len[0..n−2] */
    size_t count;                /* elements reduced into each output (N) */
    size_t out_size;             /* outputs: x->size / count */
} tg_rgeom;

void tg_rgeom_init(tg_rgeom *g, const tg_tensor *x, unsigned mask);

/* The step to the next row of TG_RWALK/TG_RFOLD: an odometer over the
 * outer groups, moving the output base ob_. */
#define TG_RSTEP_(g)                                                                               \
    for (int a_ = (g)->n - 2; a_ >= 0; a_--) {                                                     \
        ob_ += (g)->ostride[a_];                                                                   \
        if (++idx_[a_] < (g)->len[a_]) break;                                                      \
        ob_ -= (g)->ostride[a_] * (g)->len[a_];                                                    \
        idx_[a_] = 0;                                                                              \
    }

/* Visit every input element: the statements see `const size_t i, o`. */
#define TG_RWALK(g, ...)                                                                           \
    do {                                                                                           \
        size_t idx_[TG_MAX_RANK] = {0}, ob_ = 0;                                                   \
        const size_t run_ = (g)->len[(g)->n - 1];                                                  \
        for (size_t r_ = 0; r_ < (g)->rows; r_++) {                                                \
            const size_t ib_ = r_ * run_;                                                          \
            if ((g)->red_inner) {                                                                  \
                const size_t o = ob_;                                                              \
                for (size_t l_ = 0; l_ < run_; l_++) {                                             \
                    const size_t i = ib_ + l_;                                                     \
                    __VA_ARGS__                                                                    \
                }                                                                                  \
            } else {                                                                               \
                for (size_t l_ = 0; l_ < run_; l_++) {                                             \
                    const size_t i = ib_ + l_, o = ob_ + l_;                                       \
                    __VA_ARGS__                                                                    \
                }                                                                                  \
            }                                                                                      \
            TG_RSTEP_(g);                                                                          \
        }                                                                                          \
    } while (0)

/* A NaN-propagating maximum: a NaN x replaces m, and a NaN m stays. */
#define TG_MAX_NAN(x, m) (((x) > (m) || (x) != (x)) ? (x) : (m))

/* acc = F(acc, expr) over every input element, as TG_RWALK visits them
 * (acc and expr see `const size_t i, o`: acc is an lvalue such as y[o] or
 * l[o].m; T is its type). Where the
 * reduced axis is the inner one, `acc[o] += x[i]` is one dependency chain
 * through memory that the compiler must keep in order: latency-bound, one
 * element per add's latency (0.85 ms for 2^20 floats, 8x slower than the
 * memory). There each run is computed TG_CHUNK values at a time into a
 * buffer (a plain loop, which the compiler vectorises, exp included),
 * then folded into TG_LANES partial results, combined at the run's end:
 * the same values, summed in another order (sums are in double, so the
 * order changes the result by a few ulps of the double at most). F(a, v)
 * must be associative up to that (+, TG_MAX_NAN). */
#define TG_LANES       8
#define TG_CHUNK       64
#define TG_ADD_(a, v)  ((a) + (v))
#define TG_MAXF_(a, v) TG_MAX_NAN(v, a)
#define TG_MINF_(a, v) (((v) < (a) || (v) != (v)) ? (v) : (a))
#define TG_RFOLD(g, T, acc, F, expr)                                                               \
    do {                                                                                           \
        size_t idx_[TG_MAX_RANK] = {0}, ob_ = 0;                                                   \
        const size_t run_ = (g)->len[(g)->n - 1];                                                  \
        for (size_t r_ = 0; r_ < (g)->rows; r_++) {                                                \
            const size_t ib_ = r_ * run_;                                                          \
            if ((g)->red_inner) {                                                                  \
                const size_t o = ob_;                                                              \
                T q_ = acc, p_[TG_LANES], b_[TG_CHUNK];                                            \
                int started_ = 0;                                                                  \
                for (size_t l_ = 0; l_ < run_;) {                                                  \
                    const size_t n_ = run_ - l_ < TG_CHUNK ? run_ - l_ : TG_CHUNK;                 \
                    for (size_t k_ = 0; k_ < n_; k_++) {                                           \
                        const size_t i = ib_ + l_ + k_;                                            \
                        b_[k_] = (T)(expr);                                                        \
                    }                                                                              \
                    size_t k_ = 0;                                                                 \
                    if (n_ >= TG_LANES && !started_) {                                             \
                        for (int j_ = 0; j_ < TG_LANES; j_++)                                      \
                            p_[j_] = b_[j_];                                                       \
                        k_ = TG_LANES, started_ = 1;                                               \
                    }                                                                              \
                    for (; k_ + TG_LANES <= n_; k_ += TG_LANES)                                    \
                        for (int j_ = 0; j_ < TG_LANES; j_++)                                      \
                            p_[j_] = F(p_[j_], b_[k_ + (size_t)j_]);                               \
                    for (; k_ < n_; k_++)                                                          \
                        q_ = F(q_, b_[k_]);                                                        \
                    l_ += n_;                                                                      \
                }                                                                                  \
                for (int j_ = 0; started_ && j_ < TG_LANES; j_++)                                  \
                    q_ = F(q_, p_[j_]);                                                            \
                acc = q_;                                                                          \
            } else {                                                                               \
                for (size_t l_ = 0; l_ < run_; l_++) {                                             \
                    const size_t i = ib_ + l_, o = ob_ + l_;                                       \
                    acc = F(acc, (T)(expr));                                                       \
                }                                                                                  \
            }                                                                                      \
            TG_RSTEP_(g);                                                                          \
        }                                                                                          \
    } while (0)

/* log Σ e^x over each reduced set, kept apart as its maximum m and
 * log Σ e^{x − m} (in double) so that log_softmax = (x − m) − log_sum never
 * adds m back (exact at logits of 1e16). NaN in a set makes m NaN; a set of
 * only −inf, or holding +inf, has x − m NaN somewhere, so log_sum NaN. */
typedef struct tg_lse {
    double m, log_sum;
} tg_lse;
void tg_lse_reduce(const tg_tensor *x, const tg_rgeom *g, tg_lse *out);

/* Reductions over axis sets (reduce.c), softmax/log_softmax along any axis
 * (activation.c), and the losses of issue 14 (loss.c). */
extern const tg_op tg_op_amax, tg_op_amin, tg_op_logsumexp, tg_op_var, tg_op_std, tg_op_norm;
extern const tg_op tg_op_log_softmax;
extern const tg_op tg_op_nll, tg_op_cross_entropy, tg_op_huber, tg_op_smooth_l1, tg_op_kl_div;
/* Issue 14, broadcasting binary ops (elementwise.c) and unary math (math.c). */
extern const tg_op tg_op_div, tg_op_pow, tg_op_maximum, tg_op_minimum;
extern const tg_op tg_op_neg, tg_op_exp, tg_op_log, tg_op_log1p, tg_op_expm1, tg_op_sqrt,
    tg_op_rsqrt, tg_op_abs, tg_op_square, tg_op_reciprocal, tg_op_sin, tg_op_cos, tg_op_erf;
extern const tg_op tg_op_softplus, tg_op_gelu, tg_op_silu, tg_op_elu, tg_op_clamp, tg_op_pow_scalar;

/* Convolutions (issue 15, conv.c): C = op(A)·op(B) + beta·C row-major by
 * OpenBLAS on tapegrad's threads, as matmul's (linalg.c); beta 0 or 1. */
void tg_gemm(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a, size_t lda,
             const void *b, size_t ldb, double beta, void *c, size_t ldc);
/* The same on the calling thread only (a part of tg_parallel's). */
void tg_gemm1(tg_dtype dt, int ta, int tb, size_t m, size_t n, size_t k, const void *a, size_t lda,
              const void *b, size_t ldb, double beta, void *c, size_t ldc);
extern const tg_op tg_op_conv2d, tg_op_conv_transpose2d, tg_op_conv1d, tg_op_channel_bias;
/* Issue 15: pooling (pool.c) and normalisation (norm.c), NCHW. */
extern const tg_op tg_op_max_pool2d, tg_op_avg_pool2d, tg_op_global_avg_pool2d;
extern const tg_op tg_op_batch_norm, tg_op_batch_norm_eval, tg_op_layer_norm, tg_op_group_norm;
/* issue 17: the LSTM recurrence (rnn.c) */
extern const tg_op tg_op_lstm_seq;

/* Issue 16: batch_norm's training-mode forward and r-map on N×C×S, fast
 * (norm_batch.c): x, y (forward), z = ζ and gx (r-map, gx may be NULL),
 * γ, β (NULL without the affine inputs); per channel the forward writes
 * mu, rs = 1/√(var + ε), var, dev = Σ(x − μ) (norm.c's saved layout), the
 * r-map reads them and writes sz = Σζ and szd = Σζ·(x − μ). */
typedef struct tg_bn_args {
    int f32;
    size_t N, C, S;
    const void *x, *z, *gamma, *beta;
    void *y, *gx;
    double eps;
    double *mu, *rs, *var, *dev, *sz, *szd;
} tg_bn_args;
void tg_bn_forward_fast(const tg_bn_args *a);
void tg_bn_vjp_fast(const tg_bn_args *a);

/* Record a built-in op with one or two inputs. */
static inline tg_status tg_apply1(tg_tape *t, const tg_op *op, const tg_tensor *a,
                                  const tg_attr *attr, tg_tensor **out) {
    const tg_tensor *in[1] = {a};
    return tg_apply(t, op, 1, in, attr, out);
}
static inline tg_status tg_apply2(tg_tape *t, const tg_op *op, const tg_tensor *a,
                                  const tg_tensor *b, const tg_attr *attr, tg_tensor **out) {
    const tg_tensor *in[2] = {a, b};
    return tg_apply(t, op, 2, in, attr, out);
}

#endif
