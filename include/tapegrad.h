/*
 * tapegrad.h — reverse-mode automatic differentiation on a tape, in C11.
 *
 * The model (notes 001, section 3.4 "Better Backpropagation"): a network is a
 * composition of primitive ops F = h∘g∘f. Every op carries
 *   - its differential d (forward mode, JVP):    ξ ↦ dF_x(ξ), and
 *   - its reverse derivative r (VJP), the adjoint of d:  ⟨rF_x(ζ), ξ⟩ = ⟨ζ, dF_x(ξ)⟩.
 * tg_backward composes the r-maps in reverse, r(h∘g∘f) = rf∘rg∘rh
 * (Proposition 3.1); tg_jvp composes the d-maps forward.
 *
 * Conventions
 *   - Tensors are dense, row-major, rank 0..4, float32 or float64.
 *   - Batches are ROWS: a batch of n examples with d features is an n×d
 *     tensor, as in seed 003 and in BLAS/PyTorch code. The seed-001 formulas,
 *     written with examples in columns, read here transposed: the seed's
 *     Z = W·X + b becomes Z = X·Wᵀ + b, or with W stored as d_in×d_out,
 *     Z = X·W + b (the layout the examples use).
 *   - Every call that can fail returns a tg_status; on failure
 *     tg_last_error() holds one line naming the op and the shapes, e.g.
 *     "matmul: inner dimensions differ: (3x4)·(5x2)". Nothing aborts.
 *   - Tensors produced by ops live in the tape's arena and are valid until
 *     tg_tape_reset or tg_tape_free. Passing one to an op after a reset is
 *     an error that is detected (TG_ERR_STATE) only while the tape holds
 *     fewer ops than when the tensor was made; after that its memory has
 *     been reused and the call is undefined.
 *   - Leaves (tg_tensor_new, tg_param_new: inputs and parameters) live
 *     outside any tape and are freed with tg_tensor_free. A tape keeps
 *     pointers to the leaves it recorded, not copies: a leaf must outlive
 *     every tg_backward, tg_backward_seed, tg_jvp and tg_replay of a tape
 *     that recorded it (free it after the tape's next reset, or its free).
 *   - Parameters own a gradient buffer (tensor->grad, same dtype and shape)
 *     that accumulates across tg_backward calls until tg_zero_grad.
 *
 * Threads: a tape is used by one thread at a time; different tapes may be
 * used concurrently. tg_last_error() is per thread.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0
#define TG_MAX_RANK      4  /* tensors have rank 0..4 */
#define TG_MAX_ARITY     3  /* an op takes at most 3 tensor inputs */
#define TG_MAX_THREADS   64 /* tg_set_threads takes 1..64 */

/* ---------------------------------------------------------------- status */

typedef enum tg_status {
    TG_OK = 0,
    TG_ERR_ARG,     /* NULL pointer, bad enum, bad option */
    TG_ERR_SHAPE,   /* shapes do not fit the op */
    TG_ERR_DTYPE,   /* mixed float32/float64 */
    TG_ERR_VALUE,   /* a value out of its domain (e.g. label >= classes) */
    TG_ERR_NOMEM,   /* an allocation failed */
    TG_ERR_STATE,   /* call out of order (tensor from another tape, ...) */
    TG_ERR_CHECK,   /* tg_gradcheck / tg_adjoint_check found a mismatch */
    TG_ERR_NUMERIC, /* NaN or Inf where none is allowed */
    TG_ERR_IO       /* file input/output */
} tg_status;

/* The message of the last failed call on this thread ("" if none). */
const char *tg_last_error(void);
/* A constant name for a status, e.g. "TG_ERR_SHAPE". */
const char *tg_status_name(tg_status s);

/* ---------------------------------------------------------------- tensors */

typedef enum tg_dtype { TG_F32 = 0, TG_F64 = 1 } tg_dtype;

typedef enum tg_kind {
    TG_CONST = 0, /* input or constant: no gradient */
    TG_PARAM = 1, /* parameter: owns grad, lives outside tapes */
    TG_NODE = 2   /* output of an op on a tape */
} tg_kind;

typedef struct tg_tape tg_tape;

typedef struct tg_tensor {
    tg_dtype dtype;
    tg_kind kind;
    int rank;
    size_t shape[TG_MAX_RANK]; /* shape[rank..3] are 1 */
    size_t size;               /* number of elements (1 for rank 0) */
    void *data;                /* float* or double*, row-major, 64-byte aligned */
    void *grad;                /* parameters only: accumulated gradient (aligned too) */
    /* Bookkeeping for the tape; users read, never write. */
    tg_tape *tape;     /* TG_NODE: the tape that holds it */
    int node;          /* TG_NODE: its index on that tape */
    int requires_grad; /* a parameter, or an op result that depends on one */
} tg_tensor;

/* A constant/input tensor with zeroed data. shape has `rank` entries (NULL
 * allowed for rank 0). */
tg_status tg_tensor_new(tg_tensor **out, tg_dtype dtype, int rank, const size_t *shape);
/* A parameter: zeroed data and a zeroed gradient buffer. */
tg_status tg_param_new(tg_tensor **out, tg_dtype dtype, int rank, const size_t *shape);
/* Frees a leaf made by tg_tensor_new/tg_param_new. NULL is fine. Passing a
 * tape-owned tensor is ignored (the tape owns it). */
void tg_tensor_free(tg_tensor *t);
/* Zero a parameter's gradient. */
void tg_zero_grad(tg_tensor *param);
/* Element i (flat, row-major) as a double, whatever the dtype. */
double tg_get(const tg_tensor *t, size_t i);
void tg_set(tg_tensor *t, size_t i, double v);
/* Copy n values from a double array into t (converting to t's dtype). */
tg_status tg_fill(tg_tensor *t, const double *values, size_t n);
/* Shape as text, "(3x4)", for messages. buf of 64 bytes suffices. */
const char *tg_shape_str(const tg_tensor *t, char *buf, size_t len);

/* ---------------------------------------------------------------- tape */

tg_status tg_tape_new(tg_tape **out);
void tg_tape_free(tg_tape *t);
/* Forget every recorded op; keep the memory for the next step. After one
 * step of the same shape, record/backward/reset allocate nothing. */
void tg_tape_reset(tg_tape *t);
/* Anomaly mode (off by default): every op's output and every adjoint an
 * r-map produces is checked for NaN and Inf; the first one found stops the
 * call with TG_ERR_NUMERIC and a message naming the op, its position on the
 * tape and its inputs' min and max. Off, it costs one branch per op. */
void tg_tape_detect_anomaly(tg_tape *t, int on);

/* Number of ops recorded since the last reset. */
int tg_tape_size(const tg_tape *t);

/* Reverse mode. `loss` must be a scalar (size 1) on tape t. Adds
 * ∂loss/∂p into p->grad for every parameter p the loss depends on.
 * If it fails part-way (TG_ERR_NOMEM, TG_ERR_NUMERIC in anomaly mode, an op
 * without an r-map), the gradients are partly accumulated: some parameters
 * got their share, others not. Zero them (tg_zero_grad) before trusting
 * them again. */
tg_status tg_backward(tg_tape *t, const tg_tensor *loss);
/* The same with any output and an explicit seed adjoint ζ (same dtype and
 * size as out): adds r(ζ) into the parameters' gradients. */
tg_status tg_backward_seed(tg_tape *t, const tg_tensor *out, const void *seed);

/* Forward mode. Tangents ξ for n leaves (parameters or inputs; tangent i
 * has leaves[i]->size elements of leaves[i]->dtype); every other leaf has
 * tangent zero. Afterwards tg_tangent gives dF(ξ) for any node. */
tg_status tg_jvp(tg_tape *t, int n, const tg_tensor *const *leaves, const void *const *tangents);
/* The tangent of a node after tg_jvp (NULL when it is identically zero). */
const void *tg_tangent(const tg_tape *t, const tg_tensor *node);

/* Recompute every recorded op's forward from the current values of the
 * leaves (same graph, new numbers): used by finite differences, and by
 * training loops whose graph does not change. */
tg_status tg_replay(tg_tape *t);

/* Threads. Matrix products are OpenBLAS's (cblas ?gemm; ?gemv and ?ger
 * where a dimension is 1). tg_set_threads(n) gives tapegrad n threads (the caller and n−1
 * workers it starts) for its matrix products and optimizer steps, and sets
 * OpenBLAS to one thread, so that one thread pool runs, not two. n = 1
 * stops the workers. Until it is first called, tapegrad runs on the
 * calling thread and OpenBLAS keeps its own thread count. Results depend
 * on n only (bitwise reproducible for a given n). A worker idle for 2 ms
 * sleeps. Not to be called while another thread is inside tapegrad. A
 * child process made by fork() runs on one thread.
 * TG_ERR_ARG unless 1 <= n <= TG_MAX_THREADS (64); TG_ERR_NOMEM if a
 * thread cannot start (the threads that did start stay in use). */
tg_status tg_set_threads(int n);
int tg_get_threads(void); /* threads in use, the caller included (1 before any set) */

/* Heap allocations made by tapegrad since the process started. A training
 * loop can read it before and after a step to see that none happened. */
uint64_t tg_alloc_count(void);

/* ---------------------------------------------------------------- ops
 * Each records one op on the tape and returns its result in *out.
 * Inputs may be leaves or results on the same tape; dtypes must match. */

/* φ(A, B) = A·B, A m×k, B k×n → m×n. */
tg_status tg_matmul(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
/* ψ(b, X) = X + b, X n×d (or any rank with last dim d), b of size d,
 * broadcast over the rows (the batch). */
tg_status tg_bias_add(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out);

/* Broadcast activations G (elementwise; softmax along the last axis). */
tg_status tg_sigmoid(tg_tape *t, const tg_tensor *x, tg_tensor **out);
tg_status tg_tanh(tg_tape *t, const tg_tensor *x, tg_tensor **out);
tg_status tg_relu(tg_tape *t, const tg_tensor *x, tg_tensor **out);
tg_status tg_leaky_relu(tg_tape *t, const tg_tensor *x, double beta, tg_tensor **out);
tg_status tg_softmax(tg_tape *t, const tg_tensor *x, tg_tensor **out);

/* Fused bias-add and activation, G(X + b) with X and b as for tg_bias_add:
 * the same values, bit for bit, as tg_bias_add then the activation, in one
 * pass over the batch and without the intermediate X + b (what dense layers
 * use: tapegrad_nn.h). */
tg_status tg_bias_sigmoid(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out);
tg_status tg_bias_tanh(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out);
tg_status tg_bias_relu(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out);
tg_status tg_bias_leaky_relu(tg_tape *t, const tg_tensor *x, const tg_tensor *b, double beta,
                             tg_tensor **out);

/* Elementwise, same shapes. */
tg_status tg_add(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
tg_status tg_sub(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
tg_status tg_mul(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
tg_status tg_scale(tg_tape *t, const tg_tensor *a, double c, tg_tensor **out);

/* Reductions: of all elements (→ rank 0), or along one axis (removed). */
tg_status tg_sum(tg_tape *t, const tg_tensor *a, tg_tensor **out);
tg_status tg_mean(tg_tape *t, const tg_tensor *a, tg_tensor **out);
tg_status tg_sum_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out);
tg_status tg_mean_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out);

/* Losses: each returns the cost 𝕁 (rank 0) = mean of the loss 𝕃 over all
 * elements (over examples, for one output per example) unless said. */
/* Binary log-loss on probabilities p in [0,1] (seed 001 §1.2), logs clamped
 * at −100 as PyTorch does. */
tg_status tg_bce(tg_tape *t, const tg_tensor *p, const tg_tensor *y, tg_tensor **out);
/* Binary cross-entropy on logits x: max(x,0) − x·y + log1p(exp(−|x|)). */
tg_status tg_bce_logits(tg_tape *t, const tg_tensor *x, const tg_tensor *y, tg_tensor **out);
/* Softmax cross-entropy fused with log-softmax. logits n×C; labels of size n
 * holding class indices 0..C−1 (stored as floats). Mean over the n rows. */
tg_status tg_softmax_ce(tg_tape *t, const tg_tensor *logits, const tg_tensor *labels,
                        tg_tensor **out);
/* The same against targets n×C (one-hot or any distribution per row). */
tg_status tg_softmax_ce_onehot(tg_tape *t, const tg_tensor *logits, const tg_tensor *targets,
                               tg_tensor **out);
/* Squared error S = Σ ‖F − y‖² summed over everything (seed 004's S). */
tg_status tg_sse(tg_tape *t, const tg_tensor *f, const tg_tensor *y, tg_tensor **out);
/* Mean squared error, mean over all elements. */
tg_status tg_mse(tg_tape *t, const tg_tensor *f, const tg_tensor *y, tg_tensor **out);

/* Regularisation (seed 001's cost_function with n examples):
 * L2: λ/(2n)·‖W‖²;  L1: λ/(2n)·Σ|W|  (the seed's R with lp_reg = 2, 1). */
tg_status tg_l2(tg_tape *t, const tg_tensor *w, double lambda, double n, tg_tensor **out);
tg_status tg_l1(tg_tape *t, const tg_tensor *w, double lambda, double n, tg_tensor **out);

/* ---------------------------------------------------------------- checks */

typedef struct tg_check_opts {
    double eps;  /* finite-difference step (default 1e-6) */
    double atol; /* |a − n| <= atol + rtol·|n| (defaults 1e-5, 1e-3) */
    double rtol;
    double adjoint_tol; /* relative tolerance of the adjoint test (1e-12) */
    uint64_t seed;      /* random ξ, ζ for the adjoint test */
} tg_check_opts;

/* PyTorch's gradcheck defaults. */
tg_check_opts tg_check_defaults(void);

typedef struct tg_check_report {
    int ok;             /* 1 if every element passed */
    int param;          /* index (in params[]) of the worst element */
    size_t index;       /* its flat index in that parameter */
    size_t out_index;   /* flat index of the output element */
    double analytic;    /* ∂out/∂param from the r-maps */
    double numeric;     /* central difference */
    double abs_err;     /* max |analytic − numeric| over all elements */
    double rel_err;     /* max |analytic − numeric| / max(|numeric|, tiny) */
    double adjoint_err; /* tg_adjoint_check: |⟨rF(ζ),ξ⟩ − ⟨ζ,dF(ξ)⟩| / scale */
} tg_check_report;

/* Central finite differences against the r-maps, every element of every
 * parameter against every element of `out` (the full Jacobian), on a
 * float64 graph recorded on t. The parameters' values are restored and
 * their gradients left as they were. Returns TG_ERR_CHECK on a mismatch
 * and names the worst element in tg_last_error() and *report. */
tg_status tg_gradcheck(tg_tape *t, const tg_tensor *out, int nparams, tg_tensor *const *params,
                       const tg_check_opts *opts, tg_check_report *report);

/* The adjoint identity ⟨rF(ζ), ξ⟩ = ⟨ζ, dF(ξ)⟩ for random ξ (over the
 * params) and ζ (over out), F the graph from params to out: the seeds'
 * definition of r. Relative error against max(Σ|terms|, ‖ζ‖·‖ξ‖); float64. */
tg_status tg_adjoint_check(tg_tape *t, const tg_tensor *out, int nparams, tg_tensor *const *params,
                           const tg_check_opts *opts, tg_check_report *report);

/* ---------------------------------------------------------------- rng */

/* A small seeded generator (splitmix64), reproducible across platforms. */
typedef struct tg_rng {
    uint64_t state;
} tg_rng;
void tg_rng_seed(tg_rng *r, uint64_t seed);
uint64_t tg_rng_next(tg_rng *r);
double tg_rng_uniform(tg_rng *r); /* [0, 1) */
double tg_rng_normal(tg_rng *r);  /* N(0, 1) */

#ifdef __cplusplus
}
#endif

#include "tapegrad_op.h"

#endif
