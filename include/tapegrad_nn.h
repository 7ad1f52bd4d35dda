/*
 * tapegrad_nn.h — training toolkit: layers, initialisers, optimizers,
 * learning-rate schedules, the multilayer perceptron, and models as lists of
 * layers (what the CLI trains).
 * Everything here is built from the primitive ops of tapegrad.h; composing
 * ops by hand stays possible.
 */
#ifndef TAPEGRAD_NN_H
#define TAPEGRAD_NN_H

#include "tapegrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- layers */

typedef enum tg_act {
    TG_ACT_NONE = 0, /* identity: logits */
    TG_ACT_RELU,
    TG_ACT_TANH,
    TG_ACT_SIGMOID,
    TG_ACT_LEAKY_RELU /* slope 0.01 */
} tg_act;

/* "relu" → TG_ACT_RELU ...; returns -1 for an unknown name. */
int tg_act_parse(const char *name);
const char *tg_act_name(tg_act a);
/* Record the activation G on the tape (TG_ACT_NONE: *out = x). */
tg_status tg_activate(tg_tape *t, tg_act act, const tg_tensor *x, tg_tensor **out);

/* A dense layer: G(ψ(b, φ(X, W))) = G(X·W + b), W in×out, b out. */
typedef struct tg_dense {
    tg_tensor *w, *b;
    tg_act act;
} tg_dense;

/* Records matmul, then bias-add and G fused in one op (tg_bias_relu & co;
 * tg_bias_add alone for TG_ACT_NONE). */
tg_status tg_dense_forward(tg_tape *t, const tg_dense *l, const tg_tensor *x, tg_tensor **out);

/* ---------------------------------------------------------------- initialisers */

typedef enum tg_init {
    TG_INIT_ZEROS = 0,
    TG_INIT_NORMAL_SMALL, /* N(0,1)·0.01, the seed's initialisation */
    TG_INIT_XAVIER_UNIFORM,
    TG_INIT_XAVIER_NORMAL,
    TG_INIT_HE_NORMAL,
    TG_INIT_HE_UNIFORM
} tg_init;

/* Fill w from the seeded generator. fan_in/fan_out: the layer's widths.
 * Same seed → bitwise-identical values on every platform. */
tg_status tg_init_fill(tg_tensor *w, tg_init kind, size_t fan_in, size_t fan_out, tg_rng *rng);

/* ---------------------------------------------------------------- optimizers */

typedef enum tg_opt_kind {
    TG_OPT_SGD = 0, /* W := W − α·∇ (the seed's update) */
    TG_OPT_MOMENTUM,
    TG_OPT_NESTEROV,
    TG_OPT_RMSPROP,
    TG_OPT_ADAM,
    TG_OPT_ADAMW
} tg_opt_kind;

int tg_opt_parse(const char *name); /* "adam" → TG_OPT_ADAM; -1 if unknown */
const char *tg_opt_name(tg_opt_kind k);

typedef struct tg_opt_config {
    tg_opt_kind kind;
    double lr;           /* learning rate α */
    double momentum;     /* momentum / nesterov: μ (0.9) */
    double rho;          /* rmsprop: decay of the squared-gradient average (0.99) */
    double beta1, beta2; /* adam/adamw (0.9, 0.999) */
    double eps;          /* rmsprop/adam (1e-8) */
    double weight_decay; /* L2 added to the gradient; decoupled for adamw */
    double clip_norm;    /* > 0: scale gradients so their global norm <= clip_norm */
} tg_opt_config;

/* PyTorch's defaults for the kind, with lr 1e-3 (adam/adamw/rmsprop) or 1e-2. */
tg_opt_config tg_opt_defaults(tg_opt_kind kind);

typedef struct tg_optimizer tg_optimizer;

/* An optimizer over n parameters (kept by pointer; they must outlive it).
 * Allocates its state once, here. */
tg_status tg_optimizer_new(tg_optimizer **out, const tg_opt_config *cfg, int n,
                           tg_tensor *const *params);
/* One update from the parameters' gradients, then zero the gradients.
 * Allocates nothing. Subnormal numbers count as 0 in the update: state
 * (momentum, Adam's m and v) never holds one, since arithmetic on them is
 * many times slower on x86 (on x86 the update runs with the thread's MXCSR
 * set to flush-to-zero and denormals-are-zero, restored afterwards). */
tg_status tg_optimizer_step(tg_optimizer *o);
void tg_optimizer_set_lr(tg_optimizer *o, double lr);
double tg_optimizer_lr(const tg_optimizer *o);
void tg_optimizer_free(tg_optimizer *o);
/* Global gradient norm sqrt(Σ‖∇p‖²) over the optimizer's parameters. */
double tg_grad_norm(int n, tg_tensor *const *params);

/* ---------------------------------------------------------------- schedules */

typedef enum tg_sched_kind { TG_SCHED_CONSTANT = 0, TG_SCHED_STEP, TG_SCHED_COSINE } tg_sched_kind;

typedef struct tg_schedule {
    tg_sched_kind kind;
    double base_lr;
    int step_size; /* step: multiply by gamma every step_size epochs */
    double gamma;
    int total;     /* cosine: epochs (or steps) to anneal over */
    double min_lr; /* cosine: the floor */
} tg_schedule;

/* Learning rate at epoch (or step) e >= 0. */
double tg_schedule_lr(const tg_schedule *s, int e);

/* ---------------------------------------------------------------- MLP */

typedef enum tg_loss_kind {
    TG_LOSS_BCE = 0, /* one logit per example, labels 0/1 (bce_logits) */
    TG_LOSS_CE,      /* C logits per example, integer labels (softmax_ce) */
    TG_LOSS_MSE      /* n_out values per example (mse) */
} tg_loss_kind;

const char *tg_loss_name(tg_loss_kind k); /* "bce", "ce", "mse" */

/* A multilayer perceptron: dense layers with one hidden activation and a
 * linear last layer producing logits (or values for mse). It also carries
 * the standardisation statistics of its training data, so that a model file
 * applies them in eval and predict. */
typedef struct tg_mlp {
    tg_dtype dtype;
    size_t n_in, n_out;
    int n_layers;     /* hidden layers + 1 */
    tg_dense *layers; /* layers[n_layers − 1] has TG_ACT_NONE */
    tg_act act;       /* hidden activation */
    tg_loss_kind loss;
    int n_classes;      /* ce: C; bce: 2; mse: 0 */
    double *mean, *std; /* n_in each, or NULL: no standardisation */
} tg_mlp;

/* widths: n_hidden hidden widths. Parameters zeroed; see tg_mlp_init. */
tg_status tg_mlp_new(tg_mlp **out, tg_dtype dtype, size_t n_in, int n_hidden, const size_t *widths,
                     tg_act act, size_t n_out, tg_loss_kind loss);
void tg_mlp_free(tg_mlp *m);
/* He init for relu/leaky relu, Xavier for tanh/sigmoid; zero biases. */
tg_status tg_mlp_init(tg_mlp *m, tg_rng *rng);
/* Its parameters W1, b1, W2, b2, ... (2·n_layers of them). */
int tg_mlp_params(const tg_mlp *m, tg_tensor **params, int max);
/* Logits (rows × n_out) for a batch x (rows × n_in). */
tg_status tg_mlp_forward(tg_tape *t, const tg_mlp *m, const tg_tensor *x, tg_tensor **out);
/* The cost for logits and targets: for ce, class labels of size rows; for
 * bce (labels 0/1) and mse (values), a target shaped like the logits. */
tg_status tg_mlp_cost(tg_tape *t, const tg_mlp *m, const tg_tensor *logits, const tg_tensor *target,
                      tg_tensor **cost);

/* ---------------------------------------------------------------- the layer API (issue 16)
 *
 * A model is an ordered list of layers built from an input shape and a list
 * of layer specs. A layer kind is ONE tg_layer_kind table entry (name,
 * create = option checks + shape inference + its parameters and state,
 * init = PyTorch's default initialisation, forward = the ops it records on a
 * tape), as an op is one tg_op entry: a program adds its own kind with
 * tg_layer_kind_register and then names it in specs (tests/test_layers.c
 * has an example). Shapes are PER EXAMPLE (no batch axis, as Keras's
 * input_shape): a model made for (1, 28, 28) takes batches N×1×28×28.
 *
 * Parameter names follow PyTorch's state_dict: "<layer>.<tensor>", the
 * layer's name being its index in the list ("0.weight", "3.bias", as
 * nn.Sequential) or the name the spec gives ("conv1.weight"). Layers with
 * state (batch norm's running_mean, running_var) list it after their
 * parameters, as state_dict does (PyTorch's num_batches_tracked is not kept:
 * it only matters for momentum=None, which tg_batch_norm does not offer).
 *
 * Layers that fit later (issue 17): a forward may record any small graph of
 * ops, so an LSTM or attention block is one kind with several parameters; a
 * residual block is a kind whose create builds a sub-model (tg_model_new on
 * its own specs, kept in `priv`) and whose forward records it and adds its
 * input (tg_add). Layers with several inputs (attention's query/key/value,
 * a skip connection from an earlier layer) would get a spec field naming
 * the layers they read and an optional `forward_n` hook taking n inputs;
 * kinds without it keep the single-input forward below, so neither the
 * kinds here nor the file format change (the spec's options are stored as
 * they are).
 */

#define TG_LAYER_NAME_MAX 48 /* a layer's name, its NUL included */
#define TG_LAYER_MAX_T    16 /* parameters + state tensors of one layer (a transformer block: 12) */
#define TG_LAYER_NI       10 /* integer options of a spec */
#define TG_LAYER_NF       4  /* real options of a spec */

/* What a layer is: its kind's name and its options. Zero means the
 * default for every option (so `{.kind = "conv2d", .i = {32, 3}}` is
 * nn.Conv2d(in, 32, 3)); the options of each kind are listed below. */
typedef struct tg_layer_spec {
    const char *kind;      /* "dense", "conv2d", ..., or a registered kind */
    const char *name;      /* NULL: the layer's index ("0", "1", ...) */
    long i[TG_LAYER_NI];   /* integer options */
    double f[TG_LAYER_NF]; /* real options */
} tg_layer_spec;

/* The built-in kinds and their options (0 = the default in brackets):
 *   dense             nn.Linear on the last axis: N×…×F → N×…×out (any rank, as
 *                     PyTorch; the rows go through one product, with reshape
 *                     views around it). i0 out_features (required), i1 1 = no
 *                     bias. weight out×in (PyTorch's layout), y = x·Wᵀ + b.
 *   conv2d            nn.Conv2d on N×C×H×W: i0 out_channels (required),
 *                     i1 kernel height (required), i2 kernel width [= i1],
 *                     i3 stride [1], i4 padding on every side [0] (−1: "same"),
 *                     i5 dilation [1], i6 groups [1], i7 1 = no bias.
 *   conv_transpose2d  nn.ConvTranspose2d: options as conv2d (no "same"),
 *                     i8 output_padding [0]; weight C_in×(C_out/groups)×kH×kW.
 *   max_pool2d        nn.MaxPool2d: i0 kernel (required), i1 stride [kernel],
 *                     i2 padding [0], i3 1 = ceil_mode.
 *   avg_pool2d        nn.AvgPool2d: as max_pool2d, i4 1 = count_include_pad False.
 *   global_avg_pool2d nn.AdaptiveAvgPool2d(1): C×H×W → C×1×1.
 *   flatten           nn.Flatten(start_dim, −1): i0 start_dim of the batched
 *                     tensor [1]; flattens the example into one axis.
 *   reshape           the example reshaped: i0 rank r (1..8), i1..ir its sizes
 *                     (one may be −1); the batch axis is kept.
 *   batch_norm        nn.BatchNorm1d on N×C or N×C×L, nn.BatchNorm2d on
 *                     N×C×H×W (from the input's rank): f0 eps [1e-5],
 *                     f1 momentum [0.1], i0 1 = no affine. State running_mean,
 *                     running_var, updated by forward in training.
 *   layer_norm        nn.LayerNorm over the last i0 axes [1]: f0 eps [1e-5],
 *                     i0 as said, i1 1 = no affine.
 *   dropout           nn.Dropout: f0 p [0.5]. Identity in eval.
 *   relu, tanh, sigmoid, silu       no options.
 *   leaky_relu        f0 negative slope [0.01].
 *   gelu              i0 1 = approximate "tanh".
 *   elu               f0 alpha [1].
 *   softmax, log_softmax            i0 dim of the batched tensor [−1].
 * Initialisation, PyTorch's defaults: dense, conv2d and conv_transpose2d
 * draw weight and bias from U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with
 * a = √5 for the weight, PyTorch's bias rule), fan_in = weight.size(1) ×
 * the kernel's area (for conv_transpose2d that is C_out/groups, as
 * PyTorch's _calculate_fan_in_and_fan_out); batch_norm and layer_norm
 * γ = 1, β = 0, running_mean 0, running_var 1. Values come from tg_rng in
 * flat order, weight then bias, layer after layer: a seed fixes every bit,
 * but the numbers are not PyTorch's (another generator). Override by
 * writing the tensors (tg_model_tensors) after tg_model_init. */

typedef struct tg_layer_kind tg_layer_kind;

/* One tensor of a layer: a parameter (trained) or state (saved, not
 * trained). name is the layer-local name ("weight"). */
typedef struct tg_layer_tensor {
    char name[TG_LAYER_NAME_MAX];
    char full[2 * TG_LAYER_NAME_MAX]; /* "<layer name>.<name>" */
    tg_tensor *t;
    int is_state;
} tg_layer_tensor;

typedef struct tg_layer {
    const tg_layer_kind *kind;
    tg_layer_spec spec; /* as given; spec.name points into name[] */
    char name[TG_LAYER_NAME_MAX];
    int index; /* its position in the model */
    tg_dtype dtype;
    int in_rank, out_rank; /* per example */
    size_t in_shape[TG_MAX_RANK], out_shape[TG_MAX_RANK];
    int n_tensors; /* parameters first, then state (tg_layer_add_tensor) */
    tg_layer_tensor tensors[TG_LAYER_MAX_T];
    void *priv;      /* the kind's own data, freed by its destroy */
    size_t max_elem; /* create: the most elements its tensors may hold (file loads) */
} tg_layer;

/* The context of one forward. */
typedef struct tg_layer_ctx {
    int train;   /* 1: training (batch statistics, dropout), 0: eval */
    tg_rng *rng; /* dropout's masks; may be NULL in eval */
} tg_layer_ctx;

struct tg_layer_kind {
    const char *name;
    /* Check l->spec, set l->out_rank/out_shape from l->in_rank/in_shape,
     * make the tensors (tg_layer_add_tensor: zeroed). Errors: tg_layer_fail. */
    tg_status (*create)(tg_layer *l);
    /* PyTorch's default values for the tensors; NULL: leave them zero. */
    tg_status (*init)(tg_layer *l, tg_rng *rng);
    /* Record the layer on t: x is batched (N × in_shape), *out N × out_shape. */
    tg_status (*forward)(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *ctx,
                         tg_tensor **out);
    /* Free l->priv; NULL if the kind keeps none. */
    void (*destroy)(tg_layer *l);
};

/* A parameter (is_state 0: tg_param_new) or state (1: tg_tensor_new) of
 * l->dtype, zeroed, named `name`; *out points at it (owned by the layer). */
tg_status tg_layer_add_tensor(tg_layer *l, const char *name, int is_state, int rank,
                              const size_t *shape, tg_tensor **out);
/* tg_fail with the layer's name, kind and input shape before the message:
 * "layer 3 (dense): input (4x13x13): needs a flat input; add a flatten". */
tg_status tg_layer_fail(const tg_layer *l, tg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Fill t with U(−bound, bound) from rng, in flat order. */
void tg_layer_uniform(tg_tensor *t, double bound, tg_rng *rng);

/* Make a kind known by name (built-in names and registered ones must be
 * unique: TG_ERR_ARG otherwise; at most 64 registered). Not thread-safe:
 * register at start-up. The kind is kept by pointer. */
tg_status tg_layer_kind_register(const tg_layer_kind *k);
/* A built-in or registered kind by name; NULL if none. */
const tg_layer_kind *tg_layer_kind_find(const char *name);

/* One key/value pair of a model's metadata: 1..63 printable ASCII
 * characters each (0x21..0x7e: no spaces), as the model file's strings. */
#define TG_MODEL_META_MAX 16
#define TG_MODEL_META_LEN 64
typedef struct tg_model_meta {
    char key[TG_MODEL_META_LEN], value[TG_MODEL_META_LEN];
} tg_model_meta;

/* A model: its input shape (per example), its layers, and optionally the
 * standardisation statistics of its training data (n_stats = the number of
 * features per example, or 0), kept in the model file. */
typedef struct tg_model {
    tg_dtype dtype;
    int in_rank;
    size_t in_shape[TG_MAX_RANK];
    int n_layers;
    tg_layer *layers;
    size_t n_stats;
    double *mean, *std; /* n_stats each, malloc'd (tg_model_free frees them), or NULL */
    /* Key/value text kept in the model file (tg_model_meta_set); the CLI
     * stores what its eval and predict need: "loss" (bce, ce, mse),
     * "classes", and a standardised regression target's "target_mean",
     * "target_std". */
    int n_meta;
    tg_model_meta meta[TG_MODEL_META_MAX];
} tg_model;

/* Build a model for examples of shape in_shape[0..in_rank) (rank 1..7)
 * from n specs (1..1024): each layer's shape is inferred from the one
 * before; the first failing layer is named in the error with its input
 * shape. Tensors zeroed: call tg_model_init. */
tg_status tg_model_new(tg_model **out, tg_dtype dtype, int in_rank, const size_t *in_shape, int n,
                       const tg_layer_spec *specs);
/* PyTorch's default initialisation of every layer (see above). */
tg_status tg_model_init(tg_model *m, tg_rng *rng);
/* Record the model on t for a batch x (N × in_shape) in training (train 1:
 * batch statistics, which also move batch norm's running statistics, and
 * dropout drawing from rng) or eval mode (0). */
tg_status tg_model_forward(tg_tape *t, const tg_model *m, const tg_tensor *x, int train,
                           tg_rng *rng, tg_tensor **out);
/* The parameters (for tg_optimizer_new), in order; names (may be NULL)
 * receive their full names, valid while the model lives. Returns the
 * count, which may exceed max (then only max are written). */
int tg_model_params(const tg_model *m, tg_tensor **params, const char **names, int max);
/* Parameters and state, in state_dict order (per layer: parameters, state);
 * is_state may be NULL. Same conventions. */
int tg_model_tensors(const tg_model *m, tg_tensor **tensors, const char **names, int *is_state,
                     int max);
/* The number of trained scalars (PyTorch's sum(p.numel() for p in
 * model.parameters())). */
size_t tg_model_param_count(const tg_model *m);
void tg_model_free(tg_model *m);

/* Set (or replace) the metadata value of key: TG_ERR_ARG for a key or
 * value that is empty, too long or not printable, or a 17th key. Kept in
 * insertion order, written by tg_model_save (format version 2's optional
 * metadata block). */
tg_status tg_model_meta_set(tg_model *m, const char *key, const char *value);
/* The value of key, or NULL if the model has none. */
const char *tg_model_meta_get(const tg_model *m, const char *key);

/* The MLP as a model of layers, as nn.Sequential holds it: per hidden layer
 * a dense layer and the activation layer, then the last dense layer;
 * weights transposed to PyTorch's out×in, biases, the standardisation
 * statistics and metadata "loss" and "classes" copied. Its forward gives
 * tg_mlp_forward's values (to rounding: another product layout). How a
 * version-1 model file reaches tools that take a tg_model. */
tg_status tg_model_from_mlp(tg_model **out, const tg_mlp *mlp);
/* ---------------------------------------------------------------- attention (issue 17)
 * Scaled dot-product attention (Vaswani et al. 2017, "Attention is all you
 * need", eq. 1) and multi-head self-attention as torch.nn.MultiheadAttention
 * computes it (torch 1.13, batch_first=True), composed from the op
 * vocabulary (batched_matmul with a transpose flag, masked_fill, softmax,
 * permute and reshape views), so that every derivative, gradcheck and
 * tg_jvp come from the ops.
 *
 * Masks are constant tensors (not parameters) of the data's dtype holding
 * 0 = may attend and nonzero = may NOT attend, as PyTorch's bool masks
 * (True = "not allowed to attend"; PyTorch's float, additive masks are not
 * taken). A blocked logit is set to −inf before the softmax (masked_fill),
 * so its weight is exactly 0 and no value, derivative or tangent passes
 * through it. A query row whose keys are ALL blocked gives NaN for that
 * row (softmax of only −inf), and NaN gradients for its example, exactly
 * as torch 1.13's nn.MultiheadAttention does (checked against torch in
 * tests/test_attention.c); avoid such rows (e.g. with right padding and a
 * causal mask, a query always sees key 0). */

/* A causal ("subsequent") mask: T×T leaf of dtype, 1 above the diagonal
 * (query i may not attend key j > i), 0 elsewhere: torch.triu(ones(T, T),
 * diagonal=1).bool(), the mask nn.Transformer.generate_square_subsequent_mask
 * encodes with −inf. Free with tg_tensor_free. TG_ERR_ARG unless
 * 1 <= T <= 65536. */
tg_status tg_causal_mask(tg_tensor **out, tg_dtype dtype, size_t T);

/* softmax(Q·Kᵀ/√E + mask)·V: q (B…×L×E), k (B…×S×E), v (B…×S×Ev), the
 * batch axes B… broadcasting as tg_matmul_t's; mask NULL or broadcastable
 * to B…×L×S (nonzero = blocked). Result B…×L×Ev. Dropout with probability
 * p on the attention weights when train (PyTorch's dropout_p; rng as
 * tg_dropout's; p = 0 or train = 0: none). Errors: TG_ERR_SHAPE naming the
 * shapes (ranks < 2, E or S differing, a mask that does not broadcast),
 * TG_ERR_VALUE for p outside [0, 1), TG_ERR_ARG for NULL tensors or a
 * training dropout without rng. */
tg_status tg_attention(tg_tape *t, const tg_tensor *q, const tg_tensor *k, const tg_tensor *v,
                       const tg_tensor *mask, double p, int train, tg_rng *rng, tg_tensor **out);

typedef struct tg_mha_opts {
    int heads;                         /* num_heads >= 1, dividing D */
    const tg_tensor *attn_mask;        /* T×T or NULL: nonzero = query i may not attend key j
                                        * (tg_causal_mask: causal self-attention) */
    const tg_tensor *key_padding_mask; /* N×T or NULL: nonzero = key j of example n is padding */
    double dropout;                    /* on the attention weights, in training; [0, 1) */
    int train;                         /* 1: training (dropout), 0: eval */
    tg_rng *rng;                       /* dropout's masks; NULL when there is no dropout */
} tg_mha_opts;

/* Multi-head self-attention, torch.nn.MultiheadAttention(D, heads,
 * batch_first=True)(x, x, x, key_padding_mask, attn_mask=attn_mask,
 * need_weights=False)[0]: x N×T×D; in_w 3D×D (in_proj_weight: the rows of
 * W_q, W_k, W_v), in_b 3D or NULL, out_w D×D (out_proj.weight), out_b D or
 * NULL. With E = D/heads, for each head h:
 *   Q_h = (x·W_qᵀ + b_q)[…, hE:(h+1)E] (K_h, V_h likewise),
 *   O_h = softmax(Q_h·K_hᵀ/√E, masked)·V_h, y = concat_h(O_h)·W_oᵀ + b_o.
 * Computed as three row-block products (the slices of in_w and in_b are
 * copies of the weights, not of the activations), 1/√E folded into W_q
 * and b_q (torch divides q: the same up to rounding), the heads split and
 * merged by one permute each. Errors: TG_ERR_SHAPE for shapes that do not
 * fit (named), TG_ERR_VALUE for heads or dropout, TG_ERR_ARG for NULLs. */
tg_status tg_multihead_attention(tg_tape *t, const tg_tensor *x, const tg_tensor *in_w,
                                 const tg_tensor *in_b, const tg_tensor *out_w,
                                 const tg_tensor *out_b, const tg_mha_opts *o, tg_tensor **out);

/* The layer kinds (src/nn/attention.c), on examples T×D (batches N×T×D,
 * batch_first as PyTorch's); 0 = the default in brackets:
 *   multihead_attention  nn.MultiheadAttention(D, heads, batch_first=True) as
 *                     self-attention: i0 embed_dim [D; must be D], i1 num_heads
 *                     (required, divides D), i2 1 = causal mask, i3 1 = no bias,
 *                     f0 dropout on the weights [0]. Tensors in_proj_weight (3D×D),
 *                     in_proj_bias (3D), out_proj.weight (D×D), out_proj.bias (D).
 *                     Init as PyTorch's _reset_parameters: in_proj_weight
 *                     xavier_uniform (U(±√(6/(D + 3D)))), out_proj.weight
 *                     kaiming_uniform(a = √5) (U(±1/√D)), both biases 0.
 *   transformer_block pre-LN block, nn.TransformerEncoderLayer(D, heads, ff,
 *                     dropout, activation="gelu", batch_first=True,
 *                     norm_first=True) called with src_mask = the causal mask
 *                     when i2 = 1:  x ← x + MHA(LN₁(x));  x ← x + W₂·gelu(W₁·LN₂(x))
 *                     (gelu the exact erf form). i0 d_model [D; must be D],
 *                     i1 heads (required), i2 1 = causal mask (what a GPT
 *                     needs; 0 = none: bidirectional, as PyTorch's default),
 *                     i3 dim_feedforward [4·D, the 4× MLP], f0 dropout [0]
 *                     (PyTorch's four places: attention weights, after
 *                     attention, after gelu, after linear2; training only),
 *                     f1 layer norm eps [1e-5]. Tensors, state_dict order:
 *                     self_attn.in_proj_weight, self_attn.in_proj_bias,
 *                     self_attn.out_proj.weight, self_attn.out_proj.bias,
 *                     linear1.weight (ff×D), linear1.bias, linear2.weight (D×ff),
 *                     linear2.bias, norm1.weight, norm1.bias, norm2.weight,
 *                     norm2.bias. Init: self_attn as above, linear1/linear2
 *                     nn.Linear's (U(±1/√fan_in), weight and bias), norms 1, 0.
 *   pos_embedding     learned positional embedding, y = x + weight[:T] (T ≤
 *                     max_len): i0 max_len [T], i1 dim [D; must be D]. Tensor
 *                     weight (max_len×D), initialised N(0, 1) as nn.Embedding's
 *                     (the PyTorch equivalent: x + nn.Embedding(max_len, D)(arange(T))).
 * The layer kinds take no key padding mask (a layer has one input): call
 * tg_multihead_attention for that. A causal layer makes its T×T mask at its
 * first forward (kept until tg_model_free). */

/* ---------------------------------------------------------------- sequence layers (issue 17)
 * Layer kinds (src/nn/recurrent.c), PyTorch's names, layouts and default
 * initialisation:
 *   embedding  nn.Embedding: i0 num_embeddings V (required), i1 embedding_dim
 *              D (required); weight V×D drawn from N(0, 1) (init.normal_).
 *              Examples of any shape (rank <= 6) holding token ids in
 *              [0, V) stored as floats (T → T×D); no padding_idx, max_norm.
 *   lstm, gru  nn.LSTM / nn.GRU(D, i0 hidden_size H (required), bias = !i1,
 *              batch_first=True), one layer, one direction: examples T×D →
 *              T×H (the output sequence; the forward starts from zero
 *              states). Parameters weight_ih_l0 (G·H)×D, weight_hh_l0
 *              (G·H)×H, bias_ih_l0, bias_hh_l0 (G·H), G = 4 gates (i, f, g, o)
 *              for the LSTM, 3 (r, z, n) for the GRU, all drawn from
 *              U(−1/√H, 1/√H) (nn.RNNBase.reset_parameters), in that order.
 * Values come from tg_rng, not PyTorch's generator (as the other kinds). */

/* torch.nn.LSTM (one layer, batch_first=True) on x N×T×D with PyTorch's
 * equations, gate order (i, f, g, o):
 *   G = x_t·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh,
 *   i, f, o = σ(G_i), σ(G_f), σ(G_o),  g = tanh(G_g),
 *   c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c').
 * w_ih 4H×D, w_hh 4H×H, b_ih and b_hh vectors of 4H (both NULL: no bias);
 * h0, c0 N×H or 1×N×H (PyTorch's layout), NULL = zeros. *out N×T×H (h at
 * every step); *h_n, *c_n (each may be NULL) the final states, 1×N×H as
 * PyTorch's. Records one matmul for the input projections of every step
 * (x·W_ihᵀ + b_ih + b_hh on the N·T positions at once), then the op
 * lstm_seq (tg_lstm_seq): the recurrence unrolled over the T steps inside
 * one op, per step one matmul h·W_hhᵀ for the four gates, gradients by
 * back-propagation through time (W_hh's in one product over all steps);
 * then slices for out, h_n, c_n. Truncated BPTT: on one tape, feed h_n,
 * c_n through tg_detach into the next chunk; across tg_tape_reset, copy
 * their values into leaves first (a tape's nodes die with the reset).
 * Errors: TG_ERR_SHAPE naming the shapes, TG_ERR_DTYPE, TG_ERR_ARG (NULL,
 * one bias only, h0 without c0 or the reverse, as PyTorch's hx). */
tg_status tg_lstm(tg_tape *t, const tg_tensor *x, const tg_tensor *w_ih, const tg_tensor *w_hh,
                  const tg_tensor *b_ih, const tg_tensor *b_hh, const tg_tensor *h0,
                  const tg_tensor *c0, tg_tensor **out, tg_tensor **h_n, tg_tensor **c_n);
/* torch.nn.GRU likewise, gate order (r, z, n):
 *   r = σ(X_r + H_r), z = σ(X_z + H_z), n = tanh(X_n + r ⊙ H_n),
 *   h' = (1 − z) ⊙ n + z ⊙ h,  X = x_t·W_ihᵀ + b_ih, H = h·W_hhᵀ + b_hh;
 * w_ih 3H×D, w_hh 3H×H, biases 3H; h0 alone (no c0). Recorded as a
 * composition of table ops unrolled over the steps (per step one matmul
 * h·W_hhᵀ for the three gates, then slices, σ, tanh, products: about 15
 * ops per step; no fused op yet, the example trains an LSTM); at most
 * 65536 steps. */
tg_status tg_gru(tg_tape *t, const tg_tensor *x, const tg_tensor *w_ih, const tg_tensor *w_hh,
                 const tg_tensor *b_ih, const tg_tensor *b_hh, const tg_tensor *h0, tg_tensor **out,
                 tg_tensor **h_n);
/* A model's layer of kind lstm or gru with explicit states (tg_lstm /
 * tg_gru on its parameters): x N×T×D; h0, c0 may be NULL (zeros); for a GRU
 * c0 must be NULL (TG_ERR_ARG) and *c_n is set to NULL. Use it on
 * m->layers[i] to carry the state across batches, recording the rest of the
 * model by hand. */
tg_status tg_rnn_layer_state(tg_tape *t, const tg_layer *l, const tg_tensor *x, const tg_tensor *h0,
                             const tg_tensor *c0, tg_tensor **out, tg_tensor **h_n,
                             tg_tensor **c_n);

#ifdef __cplusplus
}
#endif

#endif
