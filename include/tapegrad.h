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
 *   - Tensors are dense, row-major, rank 0..8, float32 or float64.
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
#define TG_MAX_RANK      8     /* tensors have rank 0..8 */
#define TG_MAX_ARITY     4     /* a fixed-arity op takes at most 4 tensor inputs */
#define TG_MAX_INPUTS    65536 /* a variadic op (concat, stack) takes 1..65536 */
#define TG_MAX_THREADS   64    /* tg_set_threads takes 1..64 */

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
    size_t shape[TG_MAX_RANK]; /* shape[rank..TG_MAX_RANK-1] are 1 */
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
/* torch.matmul for operands of rank >= 2, with transpose flags: C =
 * op(A)·op(B) on the last two axes, op(X) = Xᵀ (of those two axes) when
 * its flag is set, so attention's Q·Kᵀ reads K as stored, without a copy.
 * The axes before the last two (the batch) broadcast as PyTorch's: A
 * (2×1×m×k) and B (3×k×n) give (2×3×m×n). One OpenBLAS product per batch
 * item; the r-maps accumulate into a broadcast operand over the items that
 * read it. TG_ERR_SHAPE if a rank is < 2, the inner sizes differ, the batch
 * axes do not broadcast, or the result's rank would pass 8. Unlike
 * torch.matmul, 1-D operands are not promoted: reshape them. */
tg_status tg_matmul_t(tg_tape *t, const tg_tensor *a, const tg_tensor *b, int transpose_a,
                      int transpose_b, tg_tensor **out);
/* ψ(b, X) = X + b, X n×d (or any rank with last dim d), b of size d with
 * all its elements on its last axis (d, 1×d; not d×1), broadcast over the
 * rows (the batch). TG_ERR_SHAPE otherwise. */
tg_status tg_bias_add(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out);

/* Broadcast activations G (elementwise; softmax along the last axis).
 * leaky_relu: slope beta for x <= 0; TG_ERR_VALUE if beta is not finite
 * (also for tg_bias_leaky_relu). */
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

/* Elementwise a + b, a − b, a ⊙ b with broadcasting (NumPy's and
 * PyTorch's rules: shapes aligned at their trailing axes; along each axis
 * the sizes are equal or one of them is 1, or the axis is missing, and the
 * 1 stretches; the result has the broadcast shape). The r-map sums the
 * adjoint over each input's stretched axes (torch's sum_to_size).
 * TG_ERR_SHAPE "shapes (3x4) and (5x4) do not broadcast at axis -2 (3 vs
 * 5)" otherwise. The same-shape case runs one flat loop. More binary ops
 * with the same broadcasting: tg_div, tg_pow, tg_maximum, tg_minimum. */
tg_status tg_add(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
tg_status tg_sub(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
tg_status tg_mul(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
/* c·a; TG_ERR_VALUE if c is not finite. */
tg_status tg_scale(tg_tape *t, const tg_tensor *a, double c, tg_tensor **out);

/* Reductions: of all elements (→ rank 0), or along one axis (removed). */
tg_status tg_sum(tg_tape *t, const tg_tensor *a, tg_tensor **out);
tg_status tg_mean(tg_tape *t, const tg_tensor *a, tg_tensor **out);
tg_status tg_sum_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out);
tg_status tg_mean_axis(tg_tape *t, const tg_tensor *a, int axis, tg_tensor **out);

/* Losses: each returns the cost 𝕁 (rank 0) = mean of the loss 𝕃 over all
 * elements (over examples, for one output per example) unless said. */
/* Binary log-loss on probabilities p in [0,1] (seed 001 §1.2), logs clamped
 * at −100 as PyTorch does. TG_ERR_VALUE when recorded if some p is outside
 * [0, 1] or NaN (naming its position). */
tg_status tg_bce(tg_tape *t, const tg_tensor *p, const tg_tensor *y, tg_tensor **out);
/* Binary cross-entropy on logits x: max(x,0) − x·y + log1p(exp(−|x|)). */
tg_status tg_bce_logits(tg_tape *t, const tg_tensor *x, const tg_tensor *y, tg_tensor **out);
/* Softmax cross-entropy fused with log-softmax. logits n×C; labels of size n
 * holding class indices 0..C−1 (stored as floats). Mean over the n rows. */
tg_status tg_softmax_ce(tg_tape *t, const tg_tensor *logits, const tg_tensor *labels,
                        tg_tensor **out);
/* The same against targets of the logits' shape (one-hot or any
 * distribution per row): any rank >= 1, classes on the last axis, the mean
 * over the rows (every axis but the last). */
tg_status tg_softmax_ce_onehot(tg_tape *t, const tg_tensor *logits, const tg_tensor *targets,
                               tg_tensor **out);
/* Squared error S = Σ ‖F − y‖² summed over everything (seed 004's S). */
tg_status tg_sse(tg_tape *t, const tg_tensor *f, const tg_tensor *y, tg_tensor **out);
/* Mean squared error, mean over all elements. */
tg_status tg_mse(tg_tape *t, const tg_tensor *f, const tg_tensor *y, tg_tensor **out);

/* Regularisation (seed 001's cost_function with n examples):
 * L2: λ/(2n)·‖W‖²;  L1: λ/(2n)·Σ|W|  (the seed's R with lp_reg = 2, 1).
 * TG_ERR_VALUE unless λ >= 0 and n > 0, both finite. */
tg_status tg_l2(tg_tape *t, const tg_tensor *w, double lambda, double n, tg_tensor **out);
tg_status tg_l1(tg_tape *t, const tg_tensor *w, double lambda, double n, tg_tensor **out);

/* ---------------------------------------------------------------- shape and movement
 * PyTorch's names and semantics; dims may be negative (counted from the
 * end). Each is linear (y = S·x for a 0/1 selection S): d-map S·ξ, r-map
 * Sᵀζ, which adds an adjoint back where its value came from (and sums it
 * over broadcast axes). Values are copied exactly, NaN and ±inf included.
 * Tensors have no axis of size 0: a result that would have one (an empty
 * slice, a pad that crops everything) is refused with TG_ERR_SHAPE where
 * PyTorch returns an empty tensor. Bad dims: TG_ERR_ARG; shapes that do
 * not fit: TG_ERR_SHAPE; messages name the shapes. reshape, flatten,
 * squeeze and unsqueeze (and tg_detach) are views, as PyTorch's: the
 * result is a new node sharing its input's data (no copy), so it follows
 * the input through tg_replay; results are read-only. The others copy. */

/* torch.reshape: the elements in order under shape[0..rank-1] (rank 0..8);
 * one entry may be −1 (inferred); the element count must match. */
tg_status tg_reshape(tg_tape *t, const tg_tensor *x, int rank, const long *shape, tg_tensor **out);
/* torch.flatten(x, start_dim, end_dim): those axes become one (a scalar
 * becomes a vector of 1). start_dim must not come after end_dim. */
tg_status tg_flatten(tg_tape *t, const tg_tensor *x, int start_dim, int end_dim, tg_tensor **out);
/* torch.squeeze(x, dim): removes axis dim if its size is 1 (else y = x);
 * torch.unsqueeze(x, dim): a new axis of size 1 at dim in [−r−1, r]. */
tg_status tg_squeeze(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out);
tg_status tg_unsqueeze(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out);
/* torch.permute: y's axis a is x's axis perm[a]; n must be x's rank and
 * perm a permutation. torch.transpose: dims dim0 and dim1 swapped. */
tg_status tg_permute(tg_tape *t, const tg_tensor *x, int n, const long *perm, tg_tensor **out);
tg_status tg_transpose(tg_tape *t, const tg_tensor *x, int dim0, int dim1, tg_tensor **out);
/* x[start[0]:stop[0]:step[0], …] over the first n axes (the rest whole):
 * Python's slicing: negative start/stop count from the end, out-of-range
 * ones are clamped to [0, size] (LONG_MAX: to the end); step >= 1 (as
 * PyTorch: no negative steps). NULL start/stop/step mean 0/LONG_MAX/1.
 * An empty result is an error (TG_ERR_SHAPE). tg_slice_dim slices one
 * axis (torch's x.narrow with a step). */
tg_status tg_slice(tg_tape *t, const tg_tensor *x, int n, const long *start, const long *stop,
                   const long *step, tg_tensor **out);
tg_status tg_slice_dim(tg_tape *t, const tg_tensor *x, int dim, long start, long stop, long step,
                       tg_tensor **out);
/* torch.nn.functional.pad(x, pad, mode="constant", value): pad[0..npad-1]
 * in PyTorch's order, (before, after) of the last axis, then of the axis
 * before it, …; npad even and <= 2·rank. Negative widths crop. The border
 * is `value` (any double: −inf and NaN too). The op's attr keeps the same
 * list: attr.i[0] = npad, attr.v[0..npad-1]. */
tg_status tg_pad(tg_tape *t, const tg_tensor *x, int npad, const long *pad, double value,
                 tg_tensor **out);
/* torch.broadcast_to: x stretched to shape[0..rank-1] by PyTorch's
 * broadcasting rules; −1 keeps x's size on an axis x has. The r-map sums
 * the adjoint over the stretched axes. */
tg_status tg_broadcast_to(tg_tape *t, const tg_tensor *x, int rank, const long *shape,
                          tg_tensor **out);
/* torch.cat and torch.stack of n tensors xs[0..n-1] (1 <= n <= 65536,
 * TG_MAX_INPUTS; variadic ops): cat joins along axis dim (equal shapes
 * elsewhere, rank >= 1); stack along a new axis dim in [−r−1, r] (equal
 * shapes, rank < 8). A tensor may appear more than once. */
tg_status tg_concat(tg_tape *t, int n, const tg_tensor *const *xs, int dim, tg_tensor **out);
tg_status tg_stack(tg_tape *t, int n, const tg_tensor *const *xs, int dim, tg_tensor **out);

/* ---------------------------------------------------------------- indexing
 * Indices, labels and masks are tensors of the data's dtype holding
 * integers (as tg_softmax_ce's labels); they carry no derivative and must
 * not be parameters or depend on one. An index that is not an integer in
 * range is refused when the op is recorded (TG_ERR_VALUE naming its
 * position: "gather: index 7 at position 5 is out of range for dim 1 of
 * (3x5)"); should it change afterwards, tg_replay gives NaN at the outputs
 * that read it, never an access out of bounds. */

/* torch.gather(x, dim, index): y[i] = x[i with coordinate dim replaced by
 * index[i]]; index has x's rank and sizes <= x's except along dim; y has
 * index's shape. r-map: a scatter-add (an index used twice accumulates). */
tg_status tg_gather(tg_tape *t, const tg_tensor *x, int dim, const tg_tensor *index,
                    tg_tensor **out);
/* torch.nn.functional.embedding(indices, weight): weight V×D, indices of
 * any shape (rank <= 7) holding rows in [0, V) → indices.shape × D. The
 * r-map scatter-adds rows of the adjoint into weight's (duplicates
 * accumulate). No padding_idx, max_norm or sparse gradient. */
tg_status tg_embedding(tg_tape *t, const tg_tensor *weight, const tg_tensor *indices,
                       tg_tensor **out);
/* torch.where(mask, a, b): y = mask != 0 ? a : b, the three broadcast
 * together (PyTorch takes a bool mask; here any value != 0 is true, NaN
 * included). r-maps: a gets ζ where the mask holds, b elsewhere. */
tg_status tg_where(tg_tape *t, const tg_tensor *mask, const tg_tensor *a, const tg_tensor *b,
                   tg_tensor **out);
/* Tensor.masked_fill(mask, value): y = mask != 0 ? value : x, mask
 * broadcast to x's shape; value any double (−inf for attention masks).
 * r-map: ζ where the mask is 0. */
tg_status tg_masked_fill(tg_tape *t, const tg_tensor *x, const tg_tensor *mask, double value,
                         tg_tensor **out);
/* torch.nn.functional.one_hot(labels, classes): labels (rank <= 7) →
 * labels.shape × classes of 0 and 1 in the labels' dtype (PyTorch: int64);
 * classes = −1 takes the largest label + 1. A constant (no derivative).
 * TG_ERR_ARG for classes 0 or below −1; TG_ERR_SHAPE for labels of rank 8. */
tg_status tg_one_hot(tg_tape *t, const tg_tensor *labels, long classes, tg_tensor **out);
/* torch.argmax(x, dim, keepdim): the index of the largest element along
 * dim, as a value of x's dtype; the first on ties; NaN counts as the
 * largest (the first NaN's index), as PyTorch. A constant: x may depend
 * on parameters, no derivative flows back. */
tg_status tg_argmax(tg_tape *t, const tg_tensor *x, int dim, int keepdim, tg_tensor **out);

/* ---------------------------------------------------------------- randomness and control */

/* torch.nn.functional.dropout(x, p, training): inverted dropout. Training
 * (train != 0): each element kept with probability 1 − p and scaled by
 * 1/(1 − p), else 0 (y = x·0 as PyTorch computes it, so a NaN or ±inf x
 * gives NaN even where dropped); p = 1 gives x·0. Eval (train = 0) or
 * p = 0: y = x. The mask is drawn from a seed taken from rng (one
 * tg_rng_next) when recorded, so tg_replay repeats it; rng may be NULL
 * in eval or for p = 0. TG_ERR_VALUE unless 0 <= p <= 1. The mask's
 * stream is tapegrad's own (not PyTorch's generator). */
typedef struct tg_rng tg_rng; /* defined below with its functions */
tg_status tg_dropout(tg_tape *t, const tg_tensor *x, double p, int train, tg_rng *rng,
                     tg_tensor **out);
/* Tensor.detach: y = x as a constant (a stop-gradient); x may depend on
 * parameters, no derivative flows back through y. */
tg_status tg_detach(tg_tape *t, const tg_tensor *x, tg_tensor **out);
/* ---- Reductions, softmax along any axis, losses (issue 14; src/ops/reduce.c,
 * activation.c, loss.c). PyTorch's names and semantics, float32 and float64.
 *
 * Reductions over a set of axes: dims holds n_dims axes, each in
 * [−rank, rank) (negative counted from the end; a rank-0 x takes 0 and −1),
 * none twice; n_dims = 0 reduces every axis (as torch's dim=[]). keepdim
 * keeps the reduced axes with size 1. Errors: TG_ERR_ARG for an axis out
 * of range ("sum: dim 3 out of range for shape (2x3)"; every op's dim is an
 * option: a bad one is TG_ERR_ARG), for a repeated axis, n_dims outside 0..8 or a NULL dims with n_dims > 0. Sums
 * accumulate in double. tg_sum and tg_mean above are n_dims = 0, keepdim 0;
 * tg_sum_axis and tg_mean_axis one axis, removed. */
tg_status tg_sum_dims(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                      tg_tensor **out);
tg_status tg_mean_dims(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                       tg_tensor **out);
/* torch.amax / amin: ties share the adjoint equally (ζ/c to each of the c
 * extremal elements); a NaN in a reduced set makes the result NaN and, as
 * torch 1.13, the gradient of every element of that set NaN. */
tg_status tg_amax(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                  tg_tensor **out);
tg_status tg_amin(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                  tg_tensor **out);
/* torch.logsumexp: m + log Σ e^{x − m}, m the set's maximum; gradient the
 * softmax of the set, computed as e^{(x − m) − log Σ} (exact at 1e16, where
 * torch's e^{x − y} gives 1 for each of two equal logits: a deviation). A
 * set of only −inf gives −inf, one holding +inf gives +inf, NaN gives NaN,
 * with torch's gradients (NaN at ±inf maxima). */
tg_status tg_logsumexp(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                       tg_tensor **out);
/* torch.var / torch.std with correction (1: unbiased N − 1, torch's
 * default; 0: biased): Σ(x − μ)²/max(0, N − correction). A divisor of 0
 * gives inf, or NaN where all x are equal (N = 1 unbiased: NaN), with
 * ±inf/NaN gradients. std's gradient (x − μ)/(D·std) is 0 where std = 0,
 * as torch 1.13 (which masks it). */
tg_status tg_var(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, long correction,
                 int keepdim, tg_tensor **out);
tg_status tg_std(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, long correction,
                 int keepdim, tg_tensor **out);
/* torch.linalg.vector_norm(x, ord=2, dim, keepdim): √Σx², gradient x/‖x‖,
 * 0 at the zero vector (as torch). Float32 inputs are summed in double, so
 * the result overflows only where the true norm does (torch's float32 sum
 * overflows from about 1e19). */
tg_status tg_norm(tg_tape *t, const tg_tensor *x, const int *dims, int n_dims, int keepdim,
                  tg_tensor **out);

/* Softmax and log_softmax along dim (negative counted from the end; rank
 * >= 1: TG_ERR_SHAPE for a scalar, TG_ERR_ARG for a dim out of range).
 * log_softmax = (x − m) − log Σ e^{x − m},
 * m never added back. A slice with NaN or +inf, or only −inf, gives NaN
 * throughout, as torch; a −inf entry gives 0 (softmax) / −inf (log_softmax).
 * tg_softmax above is dim = −1. */
tg_status tg_softmax_dim(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out);
tg_status tg_log_softmax(tg_tape *t, const tg_tensor *x, int dim, tg_tensor **out);

/* Reduction of a loss to its scalar: the mean (torch's default), the sum,
 * or for kl_div the batchmean (sum / size of axis 0). Others: TG_ERR_ARG. */
typedef enum tg_reduction {
    TG_REDUCTION_MEAN = 0,
    TG_REDUCTION_SUM = 1,
    TG_REDUCTION_BATCHMEAN = 2
} tg_reduction;

/* torch.nn.functional.nll_loss on log-probabilities logp of shape (N, C),
 * (N, C, d1, ...) or (C,); target of logp's shape without the class axis
 * (axis 1; rank 0 for a (C,) input) holding class indices as floats (no
 * derivative). Positions whose target equals ignore_index (−100: torch's
 * default) are left out of the sum and of the mean's count; all ignored
 * gives NaN for the mean, as torch. TG_ERR_VALUE for a target that is
 * neither a class in [0, C) nor ignore_index, TG_ERR_SHAPE for a target
 * shape that does not fit. No class weights (torch's `weight`). */
tg_status tg_nll(tg_tape *t, const tg_tensor *logp, const tg_tensor *target, long ignore_index,
                 tg_reduction reduction, tg_tensor **out);
/* torch.nn.functional.cross_entropy on logits with class indices: nll of
 * log_softmax along axis 1, fused, with label_smoothing ε in [0, 1]:
 * (1 − ε)·nll + ε·mean over classes of −log p per position. Exact at huge
 * logits (log 2 for [1e16, 1e16]). A −inf logit (a masked class) with
 * ε = 0 contributes nothing; with ε > 0 the loss is +inf and the gradient
 * finite, as torch 1.13. Shapes, targets, ignore_index and errors as
 * tg_nll; TG_ERR_VALUE for ε outside [0, 1]. */
tg_status tg_cross_entropy(tg_tape *t, const tg_tensor *logits, const tg_tensor *target,
                           long ignore_index, double label_smoothing, tg_reduction reduction,
                           tg_tensor **out);
/* torch.nn.functional.huber_loss (delta > 0, finite) and smooth_l1_loss
 * (beta >= 0, finite; 0 is the L1 loss): input and target of one shape,
 * both differentiable; reduction mean or sum. TG_ERR_VALUE for a bad
 * delta/beta. At |input − target| = delta both pieces meet (value ½δ²,
 * slope ±δ). */
tg_status tg_huber(tg_tape *t, const tg_tensor *input, const tg_tensor *target, double delta,
                   tg_reduction reduction, tg_tensor **out);
tg_status tg_smooth_l1(tg_tape *t, const tg_tensor *input, const tg_tensor *target, double beta,
                       tg_reduction reduction, tg_tensor **out);
/* torch.nn.functional.kl_div(input = log q, target = p, reduction,
 * log_target): Σ p·(log p − input) (log_target: Σ e^t·(t − input)), both
 * differentiable, one shape. A target of 0 contributes 0 even where
 * input = −inf (torch gives NaN there: a deliberate difference, as
 * xlogy's 0·log 0 = 0). reduction mean (over all elements, torch's default),
 * sum or batchmean (sum / size of axis 0: the KL divergence per example). */
tg_status tg_kl_div(tg_tape *t, const tg_tensor *input, const tg_tensor *target,
                    tg_reduction reduction, int log_target, tg_tensor **out);
/* ---------------------------------------------------------------- math (issue 14)
 * Broadcasting binary ops: shapes, broadcasting and errors as tg_add;
 * float32 or float64; values and derivatives as PyTorch's (torch.div,
 * torch.pow, torch.maximum, torch.minimum), NaN propagating. */
/* a / b (IEEE: x/0 = ±inf, 0/0 = NaN); d/db = −(a/b)/b. */
tg_status tg_div(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
/* a ** b (libm pow: a < 0 with a non-integer b is NaN, 0 ** b<0 is inf).
 * Derivatives as torch's: d/da = b·a^(b−1), 0 where b = 0; d/db =
 * a^b·log a, 0 where a = 0 and b >= 0 (NaN for a < 0). */
tg_status tg_pow(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
/* max(a, b), min(a, b): NaN if either is NaN. At a tie the adjoint is split
 * equally (½ each, as torch.maximum's backward). Deviation: at a NaN both
 * adjoints are NaN (torch passes ζ to both), the derivative being undefined. */
tg_status tg_maximum(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);
tg_status tg_minimum(tg_tape *t, const tg_tensor *a, const tg_tensor *b, tg_tensor **out);

/* Unary math: y = g(x) elementwise, any shape, float32 or float64; values
 * and derivatives as PyTorch's functions of the same name, within a few
 * ulps over the whole range (ends and ±inf included). Outside a function's
 * domain the result is PyTorch's (NaN, ±inf). Deviations: at a NaN input
 * every derivative that depends on x is NaN (torch gives 0 for abs, clamp,
 * elu); neg's is −1 whatever x, and pow_scalar with c = 0 has y = 1 and
 * derivative 0 everywhere, NaN included (as pow(NaN, 0) = 1); and where
 * torch's form loses a tail or makes 0·inf = NaN we keep the true value or
 * limit (noted per op). Errors: TG_ERR_VALUE for a bad attribute. */
tg_status tg_neg(tg_tape *t, const tg_tensor *x, tg_tensor **out);   /* −x */
tg_status tg_exp(tg_tape *t, const tg_tensor *x, tg_tensor **out);   /* e^x */
tg_status tg_log(tg_tape *t, const tg_tensor *x, tg_tensor **out);   /* x >= 0; log 0 = −inf */
tg_status tg_log1p(tg_tape *t, const tg_tensor *x, tg_tensor **out); /* log(1+x), x >= −1 */
/* e^x − 1; derivative e^x (torch: y + 1, which is 0 below x ≈ −37). */
tg_status tg_expm1(tg_tape *t, const tg_tensor *x, tg_tensor **out);
/* √x, x >= 0: √−0 = −0 (derivative −inf), NaN for x < 0. */
tg_status tg_sqrt(tg_tape *t, const tg_tensor *x, tg_tensor **out);
/* 1/√x, x >= 0: inf at 0, −inf at −0, NaN for x < 0; derivative −½y³. */
tg_status tg_rsqrt(tg_tape *t, const tg_tensor *x, tg_tensor **out);
/* |x|; derivative sign x, 0 at ±0 (as torch). */
tg_status tg_abs(tg_tape *t, const tg_tensor *x, tg_tensor **out);
tg_status tg_square(tg_tape *t, const tg_tensor *x, tg_tensor **out);     /* x² */
tg_status tg_reciprocal(tg_tape *t, const tg_tensor *x, tg_tensor **out); /* 1/x, ±inf at ±0 */
tg_status tg_sin(tg_tape *t, const tg_tensor *x, tg_tensor **out);        /* NaN at ±inf */
tg_status tg_cos(tg_tape *t, const tg_tensor *x, tg_tensor **out);        /* NaN at ±inf */
tg_status tg_erf(tg_tape *t, const tg_tensor *x, tg_tensor **out);
/* torch.nn.functional.softplus(x, beta, threshold) (torch's defaults: beta
 * 1, threshold 20): x where beta·x > threshold, else log(1 + e^{beta·x})/beta
 * computed without overflow; derivative σ(beta·x), 1 above the threshold.
 * TG_ERR_VALUE unless beta is finite and nonzero and threshold is not NaN. */
tg_status tg_softplus(tg_tape *t, const tg_tensor *x, double beta, double threshold,
                      tg_tensor **out);
/* gelu(x) = x·Φ(x) (TG_GELU_NONE), or torch's approximate='tanh' form
 * ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (TG_GELU_TANH). Deviations: both
 * keep the tail for x ≪ 0 (torch's 1 + erf cancels to −0 from x ≈ −6:
 * gelu(−10) = −7.6e−23 here) and give the limits at ±inf (torch: NaN).
 * TG_ERR_VALUE for another approximate. */
typedef enum tg_gelu_approx { TG_GELU_NONE = 0, TG_GELU_TANH = 1 } tg_gelu_approx;
tg_status tg_gelu(tg_tape *t, const tg_tensor *x, tg_gelu_approx approximate, tg_tensor **out);
/* silu(x) = x·σ(x); limits at ±inf (torch: NaN at −inf). */
tg_status tg_silu(tg_tape *t, const tg_tensor *x, tg_tensor **out);
/* elu(x) = x for x > 0, alpha·(e^x − 1) else (torch's default alpha is 1);
 * derivative alpha·e^x for x <= 0. TG_ERR_VALUE unless alpha is finite. */
tg_status tg_elu(tg_tape *t, const tg_tensor *x, double alpha, tg_tensor **out);
/* torch.clamp(x, min, max) = min(max(x, min), max) (max wins if min > max);
 * pass −INFINITY / INFINITY for an absent bound. Derivative 1 where min <=
 * x <= max (the bounds included, torch's convention), 0 elsewhere.
 * TG_ERR_VALUE for a NaN bound, min = +inf or max = −inf (torch would
 * return NaN or ±inf everywhere). */
tg_status tg_clamp(tg_tape *t, const tg_tensor *x, double min, double max, tg_tensor **out);
/* x ** c (torch.pow(x, c) with a number c, rounded to x's dtype): NaN for
 * x < 0 and a non-integer c; derivative c·x^(c−1), 0 where c = 0.
 * TG_ERR_VALUE unless c is finite. */
tg_status tg_pow_scalar(tg_tape *t, const tg_tensor *x, double c, tg_tensor **out);

/* ---------------------------------------------------------------- convolutions (issue 15)
 * Layout NCHW, as PyTorch: input N×C×H×W (conv1d: N×C×L), row-major; the
 * weights in PyTorch's layouts (below). float32 or float64, both inputs
 * differentiable. Computed as im2col + one OpenBLAS product per block of
 * images (about 1024 output pixels side by side) and group; with
 * tg_set_threads(n), whole blocks go to each thread, each with its im2col
 * buffer (one block's) in the tape's arena. Output extent per axis
 * (torch.nn.Conv2d's formula):
 *   conv:       ⌊(in + pad_lo + pad_hi − dilation·(k − 1) − 1) / stride⌋ + 1
 *   transposed: (in − 1)·stride − pad_lo − pad_hi + dilation·(k − 1) + output_padding + 1
 * Errors name the op and the shapes: TG_ERR_SHAPE for ranks, an empty
 * dimension, channels not divisible by groups, a weight whose channels do
 * not match the input's, an output size <= 0; TG_ERR_VALUE for stride,
 * dilation or groups < 1, padding < 0, padding "same" with a stride other
 * than 1 (PyTorch refuses it too) or on a transposed convolution, an
 * output_padding not smaller than stride or dilation (PyTorch's rule).
 * Values as PyTorch's up to rounding (a different summation order). */
typedef struct tg_conv2d_opts {
    long stride[2];         /* (sH, sW) >= 1; default (1, 1) */
    long padding[4];        /* zeros added top, bottom, left, right, >= 0; default 0.
                             * PyTorch's padding=(p, q) is {p, p, q, q} */
    int padding_same;       /* 1: PyTorch's padding="same" (stride 1 only; padding[] is
                             * ignored): d·(k − 1) zeros, ⌊half⌋ before, the rest after */
    long dilation[2];       /* (dH, dW) >= 1; default (1, 1) */
    long groups;            /* >= 1, divides both channel counts; default 1 (C: depthwise) */
    long output_padding[2]; /* conv_transpose2d only: extra rows/columns at the bottom and
                             * right; default 0 */
} tg_conv2d_opts;
/* PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1. */
tg_conv2d_opts tg_conv2d_defaults(void);

/* torch.nn.functional.conv2d(x, w, bias, stride, padding, dilation, groups):
 * x N×C×H×W, w O×(C/groups)×kH×kW, bias (O) or NULL; y N×O×OH×OW with
 * y[n, o] = Σ_{c in o's group, i, j} w[o, c, i, j]·x[n, c, oh·sH − pT + i·dH,
 * ow·sW − pL + j·dW] (+ bias[o]), x zero outside. opts NULL: defaults. With
 * a bias, records conv2d then channel_bias (two tape entries). */
tg_status tg_conv2d(tg_tape *t, const tg_tensor *x, const tg_tensor *w, const tg_tensor *bias,
                    const tg_conv2d_opts *opts, tg_tensor **out);
/* torch.nn.functional.conv_transpose2d(x, w, bias, stride, padding,
 * output_padding, groups, dilation): x N×C_in×H×W, w C_in×(C_out/groups)×kH×kW
 * (PyTorch's ConvTranspose2d layout), bias (C_out) or NULL; the adjoint of
 * conv2d w.r.t. its input: conv2d(y', w) with y' of the output's shape has
 * ⟨conv2d(y', w), x⟩ = ⟨y', conv_transpose2d(x, w)⟩. padding[] per side
 * (PyTorch's padding=(p, q) is {p, p, q, q}); padding_same refused. */
tg_status tg_conv_transpose2d(tg_tape *t, const tg_tensor *x, const tg_tensor *w,
                              const tg_tensor *bias, const tg_conv2d_opts *opts, tg_tensor **out);

typedef struct tg_conv1d_opts {
    long stride;      /* >= 1; default 1 */
    long padding[2];  /* zeros added left, right; default 0 (PyTorch's padding=p: {p, p}) */
    int padding_same; /* 1: PyTorch's padding="same" (stride 1 only) */
    long dilation;    /* >= 1; default 1 */
    long groups;      /* default 1 */
} tg_conv1d_opts;
tg_conv1d_opts tg_conv1d_defaults(void);
/* torch.nn.functional.conv1d: x N×C×L, w O×(C/groups)×k, bias (O) or NULL;
 * y N×O×L_out. conv2d with H = 1 (one op, "conv1d", sharing its code). */
tg_status tg_conv1d(tg_tape *t, const tg_tensor *x, const tg_tensor *w, const tg_tensor *bias,
                    const tg_conv1d_opts *opts, tg_tensor **out);
/* y[n, c, …] = x[n, c, …] + b[c]: x of rank >= 2, b a vector of x's
 * axis-1 size (a convolution's bias; the "+ bias" of torch's conv layers).
 * TG_ERR_SHAPE otherwise. */
tg_status tg_channel_bias(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out);
/* ---------------------------------------------------------------- pooling and normalisation (issue
 * 15) Layout NCHW, as PyTorch: x is N×C×H×W (the pools also take an unbatched C×H×W), the channel
 * on axis 1, H and W the last two axes. float32 and float64. Errors name the op and the shapes:
 * TG_ERR_SHAPE for shapes that do not fit (an output size < 1: a kernel larger than the padded
 * input), TG_ERR_VALUE for attributes out of range, TG_ERR_ARG for NULL arguments. */

/* torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation,
 * ceil_mode): each output is the maximum of its window over H and W;
 * kernel[2] (kH, kW) >= 1; stride NULL = the kernel (PyTorch's default);
 * padding NULL = 0, each side padded with −inf, at most half the kernel
 * (kH/2, kW/2, as PyTorch); dilation NULL = 1. Output size per axis
 * ⌊(in + 2p − d(k − 1) − 1 + (ceil_mode ? s − 1 : 0))/s⌋ + 1 (under ceil_mode
 * one less if the last window would start in the right padding). The
 * adjoint of each output goes to the FIRST maximal element of its window
 * (row-major order in the window); a window holding NaN gives NaN and its
 * adjoint goes to the NaN (the last NaN, as PyTorch's kernel). The winners'
 * indices live with the op (the tape's arena). Deviation: a window of
 * padding only (possible with dilation) gives −inf and no adjoint (PyTorch
 * reads outside the window there). */
tg_status tg_max_pool2d(tg_tape *t, const tg_tensor *x, const int *kernel, const int *stride,
                        const int *padding, const int *dilation, int ceil_mode, tg_tensor **out);
/* torch.nn.functional.avg_pool2d(x, kernel, stride, padding, ceil_mode,
 * count_include_pad): the mean of each window, padding counted as zeros.
 * PyTorch's default is count_include_pad = 1: the divisor is the window's
 * size clipped to the padded input; with 0, the number of real elements.
 * kernel, stride, padding, ceil_mode and errors as tg_max_pool2d (no
 * dilation). No divisor_override. Sums in double. */
tg_status tg_avg_pool2d(tg_tape *t, const tg_tensor *x, const int *kernel, const int *stride,
                        const int *padding, int ceil_mode, int count_include_pad, tg_tensor **out);
/* Global average pooling: torch.nn.functional.adaptive_avg_pool2d(x, 1),
 * N×C×H×W → N×C×1×1 (C×H×W → C×1×1): the mean of each H×W plane. Flatten
 * or reshape the result for a N×C classifier input. */
tg_status tg_global_avg_pool2d(tg_tape *t, const tg_tensor *x, tg_tensor **out);

/* torch.nn.functional.batch_norm(x, running_mean, running_var, weight =
 * gamma, bias = beta, training = train, momentum, eps) on x N×C (per
 * feature) or N×C×... (per channel, e.g. N×C×H×W): y = γ·(x − μ)/√(σ² + ε) + β.
 * Training (train != 0): μ, σ² are the batch's statistics over every axis
 * but 1 (σ² biased, as PyTorch); its r-map goes through μ and σ²; more than
 * one value per channel is needed (TG_ERR_SHAPE otherwise, as PyTorch).
 * Eval: μ, σ² are running_mean and running_var, and y = x·α + b per channel
 * (α = γ/√(σ² + ε), b = β − μα), exactly affine; no derivative flows into
 * the running statistics (they are stacked into one (2×C) constant node,
 * then the op "batch_norm_eval" is recorded: two nodes).
 * gamma, beta: parameters of C elements, or both NULL (affine = False).
 * running_mean, running_var: constant leaves (tg_tensor_new) of C elements
 * and x's dtype, the state beside the layer (not parameters); both NULL in
 * training means none kept (track_running_stats = False); required in eval.
 * In training they are updated HERE, once, right after the op is recorded,
 * with PyTorch's rule running = (1 − momentum)·running + momentum·batch, the
 * batch variance unbiased (× M/(M − 1), M values per channel) for
 * running_var; momentum in [0, 1] (PyTorch's default 0.1; no cumulative
 * average for momentum = None). The op itself never writes them, so
 * tg_replay and finite differences do not move them. eps > 0 finite
 * (PyTorch's default 1e-5; PyTorch also takes 0, where a constant set gives
 * 0·∞ = NaN: refused here, TG_ERR_VALUE). Errors: TG_ERR_SHAPE for γ, β or the running
 * statistics not of C elements; TG_ERR_ARG for a parameter or op result as
 * running statistics, only one of a pair given; TG_ERR_VALUE for eps or
 * momentum. */
tg_status tg_batch_norm(tg_tape *t, const tg_tensor *x, const tg_tensor *gamma,
                        const tg_tensor *beta, tg_tensor *running_mean, tg_tensor *running_var,
                        int train, double momentum, double eps, tg_tensor **out);
/* torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps):
 * each set of the last n_norm axes, whose sizes must be normalized_shape
 * (1 <= n_norm <= rank), is normalised with its own mean and biased
 * variance, y = γ ⊙ x̂ + β with gamma, beta of shape normalized_shape, or
 * both NULL (elementwise_affine = False). eps > 0 finite, as tg_batch_norm. */
tg_status tg_layer_norm(tg_tape *t, const tg_tensor *x, int n_norm, const size_t *normalized_shape,
                        const tg_tensor *gamma, const tg_tensor *beta, double eps, tg_tensor **out);
/* torch.nn.functional.group_norm(x, num_groups, weight, bias, eps): x
 * N×C×..., the C channels split into num_groups groups of C/num_groups
 * consecutive channels; each (example, group) normalised with its mean and
 * biased variance, then γ, β per channel (C elements, or both NULL).
 * TG_ERR_SHAPE unless num_groups >= 1 divides C. */
tg_status tg_group_norm(tg_tape *t, const tg_tensor *x, int num_groups, const tg_tensor *gamma,
                        const tg_tensor *beta, double eps, tg_tensor **out);

/* ---------------------------------------------------------------- recurrence (issue 17)
 * The LSTM recurrence over a whole sequence as one op (what tg_lstm in
 * tapegrad_nn.h records after the input projection): P N×T×4H holds
 * x_t·W_ihᵀ + b_ih + b_hh for every step, w_hh is 4H×H, h0 and c0 are N×H,
 * or both NULL (zero states). Per step, PyTorch's equations and gate order
 * (i, f, g, o): G = P_t + h_{t−1}·W_hhᵀ; i, f, o = σ(G_i), σ(G_f), σ(G_o);
 * g = tanh(G_g); c_t = f ⊙ c_{t−1} + i ⊙ g; h_t = o ⊙ tanh(c_t). *out is
 * N×T×2H: [h_t | c_t] at every step. One matrix product per step forward
 * (and per step backward for the adjoint of h), the gradient of W_hh in
 * ONE product over all N·T positions. float32 or float64; every input
 * differentiable. Errors: TG_ERR_SHAPE naming the shapes, TG_ERR_ARG for
 * only one of h0, c0. */
tg_status tg_lstm_seq(tg_tape *t, const tg_tensor *p, const tg_tensor *w_hh, const tg_tensor *h0,
                      const tg_tensor *c0, tg_tensor **out);

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
    int ok;              /* 1 if every element passed */
    int param;           /* index (in params[]) of the worst element */
    size_t index;        /* its flat index in that parameter */
    size_t out_index;    /* flat index of the output element */
    double analytic;     /* ∂out/∂param from the r-maps */
    double numeric;      /* central difference */
    double abs_err;      /* max |analytic − numeric| over all elements */
    double rel_err;      /* max |analytic − numeric| / max(|numeric|, tiny) */
    double adjoint_err;  /* tg_adjoint_check: |⟨rF(ζ),ξ⟩ − ⟨ζ,dF(ξ)⟩| / scale */
    double symmetry_err; /* tg_hessian_check: |⟨u,Hv⟩ − ⟨Hu,v⟩| / scale */
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

/* The second-order twin of tg_adjoint_check, on a float64 graph: with
 * f = ⟨ζ, out⟩ (ζ = 1 for a scalar out, else random N(0,1) from
 * opts->seed) and H its Hessian in the params,
 *  - symmetry ⟨u, Hv⟩ = ⟨Hu, v⟩ for random u, v: relative error against
 *    max(Σ|uᵢ(Hv)ᵢ| + Σ|(Hu)ᵢvᵢ|, ‖ζ‖‖u‖‖v‖) at most opts->adjoint_tol
 *    (1e-12) — report->symmetry_err;
 *  - every column H·e_j against central differences of gradients
 *    (∇f(p + εe_j) − ∇f(p − εe_j)) / 2ε with gradcheck's eps, atol, rtol;
 *    report->param/index name the worst column (the direction e_j),
 *    out_index the flat row over the concatenated params.
 * opts->eps = 0: the symmetry half only (any number of parameters; the
 * differences need 2n² doubles and n ≤ 2048).
 * Parameters' values and gradients are restored. TG_ERR_CHECK on a
 * mismatch, TG_ERR_STATE for an op without a second-order map. */
tg_status tg_hessian_check(tg_tape *t, const tg_tensor *out, int nparams, tg_tensor *const *params,
                           const tg_check_opts *opts, tg_check_report *report);

/* ---------------------------------------------------------------- second order (issue 18) */

/* Hessian-vector product by forward-over-reverse (Pearlmutter's
 * R-operator; docs/hessian.md): with F the graph from the parameters to
 * `loss` (a scalar on t), hv = ∇²F(p)·v, exactly (no finite difference).
 * v[i] and hv[i] hold params[i]->size elements of the params' dtype (the
 * loss's: float32 or float64); hv is overwritten; parameters not listed
 * are held constant. Costs a tangent pass and a backward pass carrying two
 * adjoints (about 2–4 gradients). The parameters' gradients are left
 * untouched. TG_ERR_STATE naming the op when an op on the path from the
 * params to the loss has no second-order map (tg_op.vjp_dot). After the
 * first call on a graph, a call allocates nothing (the tape's arena).
 * hv[i] must not overlap any v[j]; each parameter listed once. In anomaly
 * mode (tg_tape_detect_anomaly) a NaN or Inf in an adjoint or
 * adjoint-tangent stops the pass with TG_ERR_NUMERIC naming the op. */
tg_status tg_hvp(tg_tape *t, const tg_tensor *loss, int nparams, tg_tensor *const *params,
                 const void *const *v, void *const *hv);
/* The same for any output and a fixed adjoint ζ (`seed`, out's dtype and
 * size): the Hessian of ⟨ζ, out⟩, as tg_backward_seed is its gradient. */
tg_status tg_hvp_seed(tg_tape *t, const tg_tensor *out, const void *seed, int nparams,
                      tg_tensor *const *params, const void *const *v, void *const *hv);
/* Gauss-Newton-vector product gv = Jᵀ·H_L·J·v: L the built-in loss op
 * that produced `loss` (mse, cross_entropy, bce...: tg_op.convex), J the
 * Jacobian of its inputs with respect to the params, H_L the Hessian of L
 * in those inputs. Positive semi-definite when the loss's other inputs
 * (targets) are constants, as L is convex in its predictions. The same
 * pass as tg_hvp without the second-order terms of the ops below the loss.
 * TG_ERR_ARG when loss was not made by a built-in loss op. */
tg_status tg_ggn(tg_tape *t, const tg_tensor *loss, int nparams, tg_tensor *const *params,
                 const void *const *v, void *const *gv);

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
