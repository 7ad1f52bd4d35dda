/* bench_ops: every op of the table, forward + backward, at a memory-bound
 * size (issue 14's "Performance"), against a triad measured in the same run.
 *
 *   bench_ops [--seconds S] [--only NAME]
 *
 * For each op in tg_op_table (in table order) and each recipe this file has
 * for it (shapes, domains, attributes), one step is: record the op (its
 * forward), tg_backward_seed with a fixed random seed ζ of the output's
 * size, tg_tape_reset. Inputs that carry a derivative are parameters, so the
 * backward accumulates (+=) into their gradient buffers, as a training step
 * does; labels, indices, masks and loss targets are constants. Constant ops
 * (one_hot, argmax, detach) have no backward: forward only. One line per
 * recipe:
 *
 *   op=exp case=- shape=1024x1024 us=<median step µs> fwd_us=<median forward
 *   µs> traffic=5N bytes=<b> GBps=<bytes/us/1e3> triad=<GBps / triad GBps>
 *
 * `traffic` is the least memory traffic the step must do, in elements of
 * the size named N (or M, S...: the case's shape says which); bytes is that
 * times 4 (float32). Forward reads the inputs and writes the output; backward
 * reads ζ and what the derivative needs (x, y, a mask) and writes each
 * gradient once (accumulation's read is not counted, torch writes a fresh
 * buffer). `triad` is printed for the elementwise ops only: the fraction of
 * the bandwidth that a[i] = b[i] + s·c[i] over 2^20 floats (12 MB: the
 * same working-set scale as the ops, so on a large-L3 host this is cache
 * bandwidth rather than DRAM) reaches in the same run. An op of the table
 * with no recipe prints "not benchmarked", so none is silently skipped.
 * benches/torch_ops.py prints the same lines for PyTorch; benches/
 * torch_ops.py --compare joins them. float32 only, 1 thread (tapegrad's
 * default). */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <math.h>
#include <tapegrad_op.h>

#define R  1024
#define NN ((size_t)R * R)

typedef struct spec {
    int rank;
    size_t shape[4];
    tg_domain dom;
    size_t classes; /* TG_DOM_LABEL: labels in [0, classes) */
    int param;      /* 1: a parameter (gets a gradient), 0: a constant */
} spec;

typedef tg_status (*record_fn)(tg_tape *t, tg_tensor *const *in, tg_tensor **out);

typedef struct recipe {
    const char *op, *variant, *shape;
    record_fn record;
    int n_in;
    spec in[4];
    double elems;        /* least traffic in elements */
    const char *traffic; /* the same as a formula, for the reader */
    int elementwise;     /* compared with the triad */
} recipe;

static tg_rng rng;

/* ---- record functions: one public call each */
#define UN(fn, call)                                                                               \
    static tg_status fn(tg_tape *t, tg_tensor *const *x, tg_tensor **o) {                          \
        return call;                                                                               \
    }
UN(r_matmul, tg_matmul(t, x[0], x[1], o))
UN(r_bmm_qk, tg_matmul_t(t, x[0], x[1], 0, 1, o))
UN(r_bmm_pv, tg_matmul_t(t, x[0], x[1], 0, 0, o))
UN(r_bias_add, tg_bias_add(t, x[0], x[1], o))
UN(r_sigmoid, tg_sigmoid(t, x[0], o))
UN(r_tanh, tg_tanh(t, x[0], o))
UN(r_relu, tg_relu(t, x[0], o))
UN(r_leaky_relu, tg_leaky_relu(t, x[0], 0.01, o))
UN(r_softmax, tg_softmax(t, x[0], o))
UN(r_bias_sigmoid, tg_bias_sigmoid(t, x[0], x[1], o))
UN(r_bias_tanh, tg_bias_tanh(t, x[0], x[1], o))
UN(r_bias_relu, tg_bias_relu(t, x[0], x[1], o))
UN(r_bias_leaky_relu, tg_bias_leaky_relu(t, x[0], x[1], 0.01, o))
UN(r_add, tg_add(t, x[0], x[1], o))
UN(r_sub, tg_sub(t, x[0], x[1], o))
UN(r_mul, tg_mul(t, x[0], x[1], o))
UN(r_scale, tg_scale(t, x[0], 0.5, o))
UN(r_sum, tg_sum(t, x[0], o))
UN(r_mean, tg_mean(t, x[0], o))
UN(r_sum_axis, tg_sum_axis(t, x[0], 1, o))
UN(r_mean_axis, tg_mean_axis(t, x[0], 1, o))
UN(r_bce, tg_bce(t, x[0], x[1], o))
UN(r_bce_logits, tg_bce_logits(t, x[0], x[1], o))
UN(r_softmax_ce, tg_softmax_ce(t, x[0], x[1], o))
UN(r_softmax_ce_onehot, tg_softmax_ce_onehot(t, x[0], x[1], o))
UN(r_sse, tg_sse(t, x[0], x[1], o))
UN(r_mse, tg_mse(t, x[0], x[1], o))
UN(r_l2, tg_l2(t, x[0], 0.01, 1.0, o))
UN(r_l1, tg_l1(t, x[0], 0.01, 1.0, o))
static const long flat_shape[1] = {-1};
UN(r_reshape, tg_reshape(t, x[0], 1, flat_shape, o))
UN(r_flatten, tg_flatten(t, x[0], 0, -1, o))
UN(r_squeeze, tg_squeeze(t, x[0], 1, o))
UN(r_unsqueeze, tg_unsqueeze(t, x[0], 1, o))
static const long perm_t[2] = {1, 0}, perm_heads[4] = {0, 2, 1, 3};
UN(r_transpose, tg_permute(t, x[0], 2, perm_t, o))
UN(r_permute_heads, tg_permute(t, x[0], 4, perm_heads, o))
UN(r_slice, tg_slice_dim(t, x[0], 1, 1, R - 1, 1, o))
UN(r_slice_step, tg_slice_dim(t, x[0], 1, 0, 2 * R, 2, o))
static const long pad_1[2] = {1, 1};
UN(r_pad, tg_pad(t, x[0], 2, pad_1, 0.0, o))
static const long bshape[2] = {R, R};
UN(r_broadcast_to, tg_broadcast_to(t, x[0], 2, bshape, o))
UN(r_concat, tg_concat(t, 2, (const tg_tensor *const *)x, 1, o))
UN(r_stack, tg_stack(t, 2, (const tg_tensor *const *)x, 0, o))
UN(r_gather, tg_gather(t, x[0], 1, x[1], o))
UN(r_embedding, tg_embedding(t, x[0], x[1], o))
UN(r_where, tg_where(t, x[0], x[1], x[2], o))
UN(r_masked_fill, tg_masked_fill(t, x[0], x[1], -INFINITY, o))
UN(r_one_hot, tg_one_hot(t, x[0], R, o))
UN(r_argmax_inner, tg_argmax(t, x[0], -1, 0, o))
UN(r_argmax_outer, tg_argmax(t, x[0], 0, 0, o))
UN(r_dropout, tg_dropout(t, x[0], 0.1, 1, &rng, o))
UN(r_detach, tg_detach(t, x[0], o))
static const int last[1] = {-1};
UN(r_amax, tg_amax(t, x[0], last, 1, 0, o))
UN(r_amin, tg_amin(t, x[0], last, 1, 0, o))
UN(r_logsumexp, tg_logsumexp(t, x[0], last, 1, 0, o))
UN(r_var, tg_var(t, x[0], last, 1, 1, 0, o))
UN(r_std, tg_std(t, x[0], last, 1, 1, 0, o))
UN(r_norm, tg_norm(t, x[0], last, 1, 0, o))
UN(r_log_softmax, tg_log_softmax(t, x[0], -1, o))
UN(r_nll, tg_nll(t, x[0], x[1], -100, TG_REDUCTION_MEAN, o))
UN(r_cross_entropy, tg_cross_entropy(t, x[0], x[1], -100, 0.0, TG_REDUCTION_MEAN, o))
UN(r_huber, tg_huber(t, x[0], x[1], 1.0, TG_REDUCTION_MEAN, o))
UN(r_smooth_l1, tg_smooth_l1(t, x[0], x[1], 1.0, TG_REDUCTION_MEAN, o))
UN(r_kl_div, tg_kl_div(t, x[0], x[1], TG_REDUCTION_BATCHMEAN, 0, o))
UN(r_div, tg_div(t, x[0], x[1], o))
UN(r_pow, tg_pow(t, x[0], x[1], o))
UN(r_maximum, tg_maximum(t, x[0], x[1], o))
UN(r_minimum, tg_minimum(t, x[0], x[1], o))
UN(r_neg, tg_neg(t, x[0], o))
UN(r_exp, tg_exp(t, x[0], o))
UN(r_log, tg_log(t, x[0], o))
UN(r_log1p, tg_log1p(t, x[0], o))
UN(r_expm1, tg_expm1(t, x[0], o))
UN(r_sqrt, tg_sqrt(t, x[0], o))
UN(r_rsqrt, tg_rsqrt(t, x[0], o))
UN(r_abs, tg_abs(t, x[0], o))
UN(r_square, tg_square(t, x[0], o))
UN(r_reciprocal, tg_reciprocal(t, x[0], o))
UN(r_sin, tg_sin(t, x[0], o))
UN(r_cos, tg_cos(t, x[0], o))
UN(r_erf, tg_erf(t, x[0], o))
UN(r_softplus, tg_softplus(t, x[0], 1.0, 20.0, o))
UN(r_gelu, tg_gelu(t, x[0], TG_GELU_NONE, o))
UN(r_gelu_tanh, tg_gelu(t, x[0], TG_GELU_TANH, o))
UN(r_silu, tg_silu(t, x[0], o))
UN(r_elu, tg_elu(t, x[0], 1.0, o))
UN(r_clamp, tg_clamp(t, x[0], -0.5, 0.5, o))
UN(r_pow_scalar, tg_pow_scalar(t, x[0], 2.5, o))

/* ---- input specs */
#define MAT(d)                                                                                     \
    { 2, {R, R}, d, 0, 1 }
#define VEC(d)                                                                                     \
    { 1, {R}, d, 0, 1 }
#define CMAT(d)                                                                                    \
    { 2, {R, R}, d, 0, 0 }
#define LABELS(n, c)                                                                               \
    { 1, {n}, TG_DOM_LABEL, c, 0 }
#define RE TG_DOM_REAL
/* unary elementwise on 1024x1024: fwd x → y (2N), bwd ζ, x → g (3N) */
#define UNARY(name, fn, dom)                                                                       \
    { name, "-", "1024x1024", fn, 1, {MAT(dom)}, 5.0 * NN, "5N", 1 }
/* binary on two 1024x1024: fwd 3N, bwd ζ, a, b → ga, gb (5N) */
#define BINARY(name, fn, d0, d1)                                                                   \
    { name, "-", "1024x1024", fn, 2, {MAT(d0), MAT(d1)}, 8.0 * NN, "8N", 1 }
/* a 1024x1024 with a 1024-vector broadcast over the rows: fwd a → y
 * (2N), bwd ζ, a → ga and gb (3N) */
#define BCAST(name, fn, d0, d1)                                                                    \
    { name, "bcast", "1024x1024,1024", fn, 2, {MAT(d0), VEC(d1)}, 5.0 * NN, "5N", 1 }
/* a reduction of 1024x1024 over the last axis: fwd x (N), bwd x → g (2N) */
#define ROWRED(name, fn)                                                                           \
    { name, "-", "1024x1024:-1", fn, 1, {MAT(RE)}, 3.0 * NN, "3N", 0 }
/* a loss of input and a constant target, both 1024x1024: fwd 2N, bwd x, y → g (3N) */
#define LOSS2(name, fn, d0, d1)                                                                    \
    { name, "-", "1024x1024", fn, 2, {MAT(d0), CMAT(d1)}, 5.0 * NN, "5N", 1 }

/* attention: Q, K, V (32x4x64x32) = 2^18 elements (M), scores 32x4x64x64 = 2^19 (S) */
#define QKV                                                                                        \
    { 4, {32, 4, 64, 32}, RE, 0, 1 }
#define SCO                                                                                        \
    { 4, {32, 4, 64, 64}, RE, 0, 1 }
#define MQ ((double)(1u << 18))

static const recipe recipes[] = {
    /* matmul 512³ is compute-bound (0.27 GFLOP fwd, 0.54 bwd): bytes
     * are A, B, C fwd and ζ, A, B → gA, gB bwd, 7·512² */
    {"matmul",
     "-",
     "512x512x512",
     r_matmul,
     2,
     {{2, {512, 512}, RE, 0, 1}, {2, {512, 512}, RE, 0, 1}},
     7.0 * 512 * 512,
     "7*512^2",
     0},
    /* Q·Kᵀ: fwd Q, K → S (2M + S), bwd ζ, Q, K → gQ, gK (S + 4M) */
    {"batched_matmul", "QKt", "32x4x64x32", r_bmm_qk, 2, {QKV, QKV}, 6 * MQ + 4 * MQ, "6M+2S", 0},
    /* P·V: fwd P, V → O (S + 2M), bwd ζ, P, V → gP, gV (3M + 2S) */
    {"batched_matmul",
     "PV",
     "32x4x64x64,32x4x64x32",
     r_bmm_pv,
     2,
     {SCO, QKV},
     5 * MQ + 8 * MQ,
     "5M+4S",
     0},
    BCAST("bias_add", r_bias_add, RE, RE),
    UNARY("sigmoid", r_sigmoid, RE),
    UNARY("tanh", r_tanh, RE),
    UNARY("relu", r_relu, RE),
    UNARY("leaky_relu", r_leaky_relu, RE),
    /* fwd x → y, bwd ζ, y → g */
    {"softmax", "-", "1024x1024:-1", r_softmax, 1, {MAT(RE)}, 5.0 * NN, "5N", 0},
    BCAST("bias_sigmoid", r_bias_sigmoid, RE, RE),
    BCAST("bias_tanh", r_bias_tanh, RE, RE),
    BCAST("bias_relu", r_bias_relu, RE, RE),
    BCAST("bias_leaky_relu", r_bias_leaky_relu, RE, RE),
    /* add and sub: bwd ζ → ga, gb (3N), no input read */
    {"add", "-", "1024x1024", r_add, 2, {MAT(RE), MAT(RE)}, 6.0 * NN, "6N", 1},
    {"add", "bcast", "1024x1024,1024", r_add, 2, {MAT(RE), VEC(RE)}, 4.0 * NN, "4N", 1},
    {"sub", "-", "1024x1024", r_sub, 2, {MAT(RE), MAT(RE)}, 6.0 * NN, "6N", 1},
    {"sub", "bcast", "1024x1024,1024", r_sub, 2, {MAT(RE), VEC(RE)}, 4.0 * NN, "4N", 1},
    BINARY("mul", r_mul, RE, RE),
    BCAST("mul", r_mul, RE, RE),
    /* scale: bwd ζ → g */
    {"scale", "-", "1024x1024", r_scale, 1, {MAT(RE)}, 4.0 * NN, "4N", 1},
    /* full and row sums: fwd x (N), bwd → g (N) */
    {"sum", "-", "1024x1024", r_sum, 1, {MAT(RE)}, 2.0 * NN, "2N", 0},
    {"mean", "-", "1024x1024", r_mean, 1, {MAT(RE)}, 2.0 * NN, "2N", 0},
    {"sum_axis", "-", "1024x1024:1", r_sum_axis, 1, {MAT(RE)}, 2.0 * NN, "2N", 0},
    {"mean_axis", "-", "1024x1024:1", r_mean_axis, 1, {MAT(RE)}, 2.0 * NN, "2N", 0},
    LOSS2("bce", r_bce, TG_DOM_PROB, TG_DOM_PROB),
    LOSS2("bce_logits", r_bce_logits, RE, TG_DOM_PROB),
    /* logits 1024x1024, 1024 labels: fwd x (N), bwd x → g (2N) */
    {"softmax_ce", "-", "1024x1024", r_softmax_ce, 2, {MAT(RE), LABELS(R, R)}, 3.0 * NN, "3N", 0},
    {"softmax_ce_onehot",
     "-",
     "1024x1024",
     r_softmax_ce_onehot,
     2,
     {MAT(RE), CMAT(TG_DOM_SIMPLEX)},
     5.0 * NN,
     "5N",
     0},
    LOSS2("sse", r_sse, RE, RE),
    LOSS2("mse", r_mse, RE, RE),
    /* penalties: fwd w (N), bwd w → g (2N) */
    {"l2", "-", "1024x1024", r_l2, 1, {MAT(RE)}, 3.0 * NN, "3N", 1},
    {"l1", "-", "1024x1024", r_l1, 1, {MAT(RE)}, 3.0 * NN, "3N", 1},
    /* movement: fwd x → y (2N), bwd ζ → g (2N); PyTorch's are views */
    {"reshape", "-", "1024x1024", r_reshape, 1, {MAT(RE)}, 4.0 * NN, "4N", 0},
    {"flatten", "-", "1024x1024", r_flatten, 1, {MAT(RE)}, 4.0 * NN, "4N", 0},
    {"squeeze", "-", "1024x1x1024", r_squeeze, 1, {{3, {R, 1, R}, RE, 0, 1}}, 4.0 * NN, "4N", 0},
    {"unsqueeze", "-", "1024x1024", r_unsqueeze, 1, {MAT(RE)}, 4.0 * NN, "4N", 0},
    {"permute", "T", "1024x1024", r_transpose, 1, {MAT(RE)}, 4.0 * NN, "4N", 0},
    {"permute",
     "heads",
     "32x64x4x32",
     r_permute_heads,
     1,
     {{4, {32, 64, 4, 32}, RE, 0, 1}},
     4.0 * NN / 4,
     "4M",
     0},
    /* 1024x1024[:, 1:1023]: ≈ 4N */
    {"slice", "-", "1024x1024", r_slice, 1, {MAT(RE)}, 4.0 * R *(R - 2), "4N'", 0},
    /* 1024x2048[:, ::2]: fwd reads N of the 2N (strided), writes N; bwd writes 2N (zeros
     * included) */
    {"slice",
     "step2",
     "1024x2048",
     r_slice_step,
     1,
     {{2, {R, 2 * R}, RE, 0, 1}},
     5.0 * NN,
     "5N",
     0},
    {"pad", "-", "1024x1022", r_pad, 1, {{2, {R, R - 2}, RE, 0, 1}}, 4.0 * NN, "4N", 0},
    /* 1024 → 1024x1024: fwd writes N, bwd reads ζ (N) */
    {"broadcast_to", "-", "1024", r_broadcast_to, 1, {VEC(RE)}, 2.0 * NN, "2N", 0},
    {"concat",
     "-",
     "1024x512,1024x512:1",
     r_concat,
     2,
     {{2, {R, R / 2}, RE, 0, 1}, {2, {R, R / 2}, RE, 0, 1}},
     4.0 * NN,
     "4N",
     0},
    {"stack",
     "-",
     "512x1024,512x1024:0",
     r_stack,
     2,
     {{2, {R / 2, R}, RE, 0, 1}, {2, {R / 2, R}, RE, 0, 1}},
     4.0 * NN,
     "4N",
     0},
    /* x 1024x1024, index 1024x256 along dim 1 (M = 2^18): fwd index, x[index] → y (3M),
     * bwd ζ, index → g (2M reads, M scattered writes) */
    {"gather",
     "-",
     "1024x1024,1024x256:1",
     r_gather,
     2,
     {MAT(RE), {2, {R, 256}, TG_DOM_LABEL, R, 0}},
     6.0 * MQ,
     "6M",
     0},
    /* weight 32768x256, 4096 token ids → 4096x256 (N): fwd rows → y (2N), bwd ζ → rows (2N) */
    {"embedding",
     "-",
     "32768x256,4096",
     r_embedding,
     2,
     {{2, {32768, 256}, RE, 0, 1}, LABELS(4096, 32768)},
     4.0 * NN,
     "4N",
     0},
    /* fwd mask, a, b → y (4N), bwd ζ, mask → ga, gb (4N) */
    {"where",
     "-",
     "1024x1024",
     r_where,
     3,
     {CMAT(TG_DOM_BINARY), MAT(RE), MAT(RE)},
     8.0 * NN,
     "8N",
     1},
    /* fwd x, mask → y (3N), bwd ζ, mask → g (3N) */
    {"masked_fill",
     "-",
     "1024x1024",
     r_masked_fill,
     2,
     {MAT(RE), CMAT(TG_DOM_BINARY)},
     6.0 * NN,
     "6N",
     1},
    /* constants, forward only */
    {"one_hot", "-", "1024:1024", r_one_hot, 1, {LABELS(R, R)}, 1.0 * NN, "N", 0},
    {"argmax", "inner", "1024x1024:-1", r_argmax_inner, 1, {MAT(RE)}, 1.0 * NN, "N", 0},
    {"argmax", "outer", "1024x1024:0", r_argmax_outer, 1, {MAT(RE)}, 1.0 * NN, "N", 0},
    /* fwd x → y (+ mask), bwd ζ, mask → g: 4N counting the mask as nothing */
    {"dropout", "-", "1024x1024", r_dropout, 1, {MAT(RE)}, 4.0 * NN, "4N", 1},
    {"detach", "-", "1024x1024", r_detach, 1, {MAT(RE)}, 2.0 * NN, "2N", 0},
    ROWRED("amax", r_amax),
    ROWRED("amin", r_amin),
    ROWRED("logsumexp", r_logsumexp),
    ROWRED("var", r_var),
    ROWRED("std", r_std),
    ROWRED("norm", r_norm),
    {"log_softmax", "-", "1024x1024:-1", r_log_softmax, 1, {MAT(RE)}, 5.0 * NN, "5N", 0},
    /* nll reads one log-probability per row; its gradient is the full N */
    {"nll", "-", "1024x1024", r_nll, 2, {MAT(RE), LABELS(R, R)}, 1.0 * NN, "N", 0},
    {"cross_entropy",
     "-",
     "1024x1024",
     r_cross_entropy,
     2,
     {MAT(RE), LABELS(R, R)},
     3.0 * NN,
     "3N",
     0},
    LOSS2("huber", r_huber, RE, RE),
    LOSS2("smooth_l1", r_smooth_l1, RE, RE),
    LOSS2("kl_div", r_kl_div, RE, TG_DOM_PROB),
    BINARY("div", r_div, RE, TG_DOM_POS),
    BCAST("div", r_div, RE, TG_DOM_POS),
    BINARY("pow", r_pow, TG_DOM_POS, RE),
    BCAST("pow", r_pow, TG_DOM_POS, RE),
    BINARY("maximum", r_maximum, RE, RE),
    BCAST("maximum", r_maximum, RE, RE),
    BINARY("minimum", r_minimum, RE, RE),
    BCAST("minimum", r_minimum, RE, RE),
    {"neg", "-", "1024x1024", r_neg, 1, {MAT(RE)}, 4.0 * NN, "4N", 1},
    UNARY("exp", r_exp, RE),
    UNARY("log", r_log, TG_DOM_POS),
    UNARY("log1p", r_log1p, TG_DOM_POS),
    UNARY("expm1", r_expm1, RE),
    UNARY("sqrt", r_sqrt, TG_DOM_POS),
    UNARY("rsqrt", r_rsqrt, TG_DOM_POS),
    UNARY("abs", r_abs, RE),
    UNARY("square", r_square, RE),
    UNARY("reciprocal", r_reciprocal, TG_DOM_POS),
    UNARY("sin", r_sin, RE),
    UNARY("cos", r_cos, RE),
    UNARY("erf", r_erf, RE),
    UNARY("softplus", r_softplus, RE),
    UNARY("gelu", r_gelu, RE),
    {"gelu", "tanh", "1024x1024", r_gelu_tanh, 1, {MAT(RE)}, 5.0 * NN, "5N", 1},
    UNARY("silu", r_silu, RE),
    UNARY("elu", r_elu, RE),
    UNARY("clamp", r_clamp, RE),
    UNARY("pow_scalar", r_pow_scalar, TG_DOM_POS),
};
#define N_RECIPES (sizeof recipes / sizeof recipes[0])

static double run_triad(double seconds) {
    size_t n = NN;
    float *a = bench_malloc("bench_ops", n * sizeof *a), *b = bench_malloc("bench_ops", n * 4),
          *c = bench_malloc("bench_ops", n * 4);
    for (size_t i = 0; i < n; i++)
        a[i] = 0, b[i] = (float)i, c[i] = 1.0f / (float)(i + 1);
    double samples[1000];
    size_t k = 0;
    double t0 = bench_now();
    volatile float s = 0.5f;
    while (k < 1000 && (k < 20 || bench_now() - t0 < seconds)) {
        const float sc = s;
        double t = bench_now();
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + sc * c[i];
        samples[k++] = bench_now() - t;
        s = a[k % n]; /* the loop's result is used */
    }
    double us = 1e6 * bench_median(samples, k);
    double gbps = 3.0 * 4 * (double)n / us / 1e3;
    printf("op=triad case=- shape=1048576 us=%.1f fwd_us=%.1f traffic=3N bytes=%.0f GBps=%.2f "
           "triad=1.00\n",
           us, us, 12.0 * (double)n, gbps);
    free(a), free(b), free(c);
    return gbps;
}

typedef struct bench_case {
    tg_tape *tape;
    tg_tensor *in[4];
    const recipe *r;
    const float *seed;
    int backward;
} bench_case;

/* One step: record (forward), backward with the seed, reset. */
static void step(bench_case *c) {
    tg_tensor *out;
    BENCH_OK(c->r->record(c->tape, c->in, &out));
    if (c->backward) BENCH_OK(tg_backward_seed(c->tape, out, c->seed));
    tg_tape_reset(c->tape);
}

static double median_us(bench_case *c, double seconds) {
    double samples[400];
    size_t k = 0;
    step(c); /* warm-up: the arena grows here */
    double t0 = bench_now();
    while (k < 400 && (k < 7 || bench_now() - t0 < seconds)) {
        double t = bench_now();
        step(c);
        samples[k++] = bench_now() - t;
    }
    return 1e6 * bench_median(samples, k);
}

static void run_recipe(const recipe *r, tg_tape *tape, const float *seed, double seconds,
                       double triad) {
    bench_case c = {tape, {NULL, NULL, NULL, NULL}, r, seed, 0};
    for (int i = 0; i < r->n_in; i++) {
        const spec *s = &r->in[i];
        BENCH_OK(s->param ? tg_param_new(&c.in[i], TG_F32, s->rank, s->shape)
                          : tg_tensor_new(&c.in[i], TG_F32, s->rank, s->shape));
        tg_sample_fill(c.in[i], s->dom, s->classes, &rng);
    }
    double fwd = median_us(&c, seconds / 2);
    c.backward = !tg_op_find(r->op)->constant;
    double us = c.backward ? median_us(&c, seconds) : fwd;
    double bytes = 4.0 * r->elems, gbps = bytes / us / 1e3;
    printf("op=%s case=%s shape=%s us=%.1f fwd_us=%.1f traffic=%s bytes=%.0f GBps=%.2f", r->op,
           r->variant, r->shape, us, fwd, r->traffic, bytes, gbps);
    if (r->elementwise)
        printf(" triad=%.2f\n", gbps / triad);
    else
        printf(" triad=-\n");
    fflush(stdout);
    for (int i = 0; i < r->n_in; i++)
        tg_tensor_free(c.in[i]);
}

int main(int argc, char **argv) {
    double seconds = 0.3;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seconds") == 0) {
            seconds = bench_parse_seconds("bench_ops", a, v), i++;
        } else if (strcmp(a, "--only") == 0 && v) {
            only = v, i++;
        } else {
            fprintf(stderr, "usage: bench_ops [--seconds S per op] [--only OPNAME]\n");
            return strcmp(a, "--help") == 0 ? 0 : 1;
        }
    }
    bench_check_build("bench_ops");
    tg_rng_seed(&rng, 14);
    size_t max_out = 4 * NN; /* the largest output of any recipe */
    float *seed = bench_malloc("bench_ops", max_out * sizeof *seed);
    for (size_t i = 0; i < max_out; i++)
        seed[i] = (float)tg_rng_normal(&rng);
    tg_tape *tape;
    BENCH_OK(tg_tape_new(&tape));
    double triad = run_triad(seconds);
    int n_ops;
    const tg_op *const *table = tg_op_table(&n_ops);
    for (int k = 0; k < n_ops; k++) {
        const char *name = table[k]->name;
        if (only && strcmp(only, name) != 0) continue;
        int found = 0;
        for (size_t j = 0; j < N_RECIPES; j++)
            if (strcmp(recipes[j].op, name) == 0) {
                run_recipe(&recipes[j], tape, seed, seconds, triad);
                found = 1;
            }
        if (!found) printf("op=%s case=- not benchmarked: no recipe in bench_ops.c\n", name);
    }
    tg_tape_free(tape);
    free(seed);
    return 0;
}
