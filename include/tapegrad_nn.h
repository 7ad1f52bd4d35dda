/*
 * tapegrad_nn.h — training toolkit: layers, initialisers, optimizers,
 * learning-rate schedules, and the multilayer perceptron the CLI trains.
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

#ifdef __cplusplus
}
#endif

#endif
