/* The op table: every built-in op, in the order `tapegrad ops` lists them.
 * Adding an op: define its entry in its family file, declare it in ops.h,
 * list it here. The tape needs no change. */
#include "ops.h"

static const tg_op *const table[] = {
    &tg_op_matmul,
    &tg_op_batched_matmul,
    &tg_op_bias_add, /* linalg.c */
    &tg_op_sigmoid,
    &tg_op_tanh,
    &tg_op_relu,
    &tg_op_leaky_relu, /* activation.c */
    &tg_op_softmax,    /* activation.c */
    &tg_op_bias_sigmoid,
    &tg_op_bias_tanh,
    &tg_op_bias_relu,
    &tg_op_bias_leaky_relu, /* activation.c: bias-add fused with G */
    &tg_op_add,
    &tg_op_sub,
    &tg_op_mul,
    &tg_op_scale, /* elementwise.c */
    &tg_op_sum,
    &tg_op_mean,
    &tg_op_sum_axis,
    &tg_op_mean_axis, /* reduce.c */
    &tg_op_bce,
    &tg_op_bce_logits,
    &tg_op_softmax_ce, /* loss.c */
    &tg_op_softmax_ce_onehot,
    &tg_op_sse,
    &tg_op_mse, /* loss.c */
    &tg_op_l2,
    &tg_op_l1, /* regularize.c */
    /* shape.c: shape and movement */
    &tg_op_reshape,
    &tg_op_flatten,
    &tg_op_squeeze,
    &tg_op_unsqueeze,
    &tg_op_permute,
    &tg_op_slice,
    &tg_op_pad,
    &tg_op_broadcast_to,
    &tg_op_concat,
    &tg_op_stack,
    /* index.c: indexing */
    &tg_op_gather,
    &tg_op_embedding,
    &tg_op_where,
    &tg_op_masked_fill,
    &tg_op_one_hot,
    &tg_op_argmax,
    /* random.c: randomness and control */
    &tg_op_dropout,
    &tg_op_detach,
    /* issue 14: reductions over axis sets (reduce.c), log_softmax
     * (activation.c), losses (loss.c) */
    &tg_op_amax,
    &tg_op_amin,
    &tg_op_logsumexp,
    &tg_op_var,
    &tg_op_std,
    &tg_op_norm,
    &tg_op_log_softmax,
    &tg_op_nll,
    &tg_op_cross_entropy,
    &tg_op_huber,
    &tg_op_smooth_l1,
    &tg_op_kl_div,
    /* issue 14: broadcasting binary ops (elementwise.c) */
    &tg_op_div,
    &tg_op_pow,
    &tg_op_maximum,
    &tg_op_minimum,
    /* issue 14: unary math (math.c) */
    &tg_op_neg,
    &tg_op_exp,
    &tg_op_log,
    &tg_op_log1p,
    &tg_op_expm1,
    &tg_op_sqrt,
    &tg_op_rsqrt,
    &tg_op_abs,
    &tg_op_square,
    &tg_op_reciprocal,
    &tg_op_sin,
    &tg_op_cos,
    &tg_op_erf,
    &tg_op_softplus,
    &tg_op_gelu,
    &tg_op_silu,
    &tg_op_elu,
    &tg_op_clamp,
    &tg_op_pow_scalar,
    /* issue 15: convolutions (conv.c) */
    &tg_op_conv2d,
    &tg_op_conv_transpose2d,
    &tg_op_conv1d,
    &tg_op_channel_bias,
    /* issue 15: pooling (pool.c) and normalisation (norm.c) */
    &tg_op_max_pool2d,
    &tg_op_avg_pool2d,
    &tg_op_global_avg_pool2d,
    &tg_op_batch_norm,
    &tg_op_batch_norm_eval,
    &tg_op_layer_norm,
    &tg_op_group_norm,
    /* issue 17: the LSTM recurrence fused (rnn.c) */
    &tg_op_lstm_seq,
};

const tg_op *const *tg_op_table(int *count) {
    if (count) *count = (int)(sizeof table / sizeof table[0]);
    return table;
}

const tg_op *tg_op_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i]->name, name) == 0) return table[i];
    return NULL;
}
