/*
 * tapegrad_op.h — the op table: how an op is defined.
 *
 * An op is one tg_op entry: name, arity, shape check, forward, d-map (JVP)
 * and r-map (VJP). The tape knows no particular op; it calls these. A user
 * defines a new op by filling a tg_op in their own code and recording it
 * with tg_apply; tg_gradcheck and tg_adjoint_check then check its maps like
 * any built-in one (examples/custom_op.c shows it).
 */
#ifndef TAPEGRAD_OP_H
#define TAPEGRAD_OP_H

#include "tapegrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Non-tensor arguments of an op: scalars in f (leaky relu's β, λ and n,
 * clamp's bounds), integers in i (an axis, a flag, a seed), and per-axis
 * lists in v (a permutation, a shape, slice starts/stops/steps, pad
 * widths: up to three values per axis). Copied into each recorded call. */
#define TG_ATTR_V (3 * TG_MAX_RANK)
typedef struct tg_attr {
    double f[2];
    long i[4];
    long v[TG_ATTR_V];
} tg_attr;

/* One recorded application of an op: what its maps see. */
typedef struct tg_call {
    const struct tg_op *op;
    int n_in;                   /* op->arity, or any 1..TG_MAX_INPUTS if variadic */
    const tg_tensor *const *in; /* n_in inputs (kept in the tape's arena) */
    tg_tensor *out;             /* dtype and shape set by check; data by forward */
    tg_attr attr;
    void *saved;        /* scratch kept from forward for the maps */
    size_t saved_bytes; /* set by check: bytes of scratch forward needs */
} tg_call;

/* Value domains of inputs, for generating valid random inputs in self-tests
 * (tests, `tapegrad gradcheck`, fuzzers). */
typedef enum tg_domain {
    TG_DOM_REAL = 0, /* any real, N(0,1) */
    TG_DOM_AWAY0,    /* |x| >= 0.1: away from the kink of relu & co */
    TG_DOM_PROB,     /* in [0.05, 0.95] */
    TG_DOM_BINARY,   /* 0 or 1 */
    TG_DOM_LABEL,    /* integer class in [0, C), C = last dim of input 0 */
    TG_DOM_SIMPLEX,  /* each row a probability distribution */
    TG_DOM_SMALL,    /* |x| < 0.05: a bias that keeps an AWAY0 input on its side of 0 */
    TG_DOM_CYCLE,    /* element i is i mod C (C as for LABEL): every class in turn, so that
                        indices and masks reach every position (gather, embedding, where) */
    TG_DOM_POS,      /* in [0.5, 2.5): log, sqrt, rsqrt, a pow base, away from 0 */
    TG_DOM_AWAY_HALF, /* |x| in [0.1, 0.4] or [0.6, 1.1]: off the kinks of abs and clamp(−½, ½) */
    TG_DOM_DISTINCT   /* a shuffle of evenly spaced values in [−2, 2], at least 4/size apart:
                         no ties, so the winner of a max pool stays put under a 1e-6 step */
} tg_domain;

typedef struct tg_sample {
    int rank[TG_MAX_ARITY];
    size_t shape[TG_MAX_ARITY][TG_MAX_RANK];
    tg_domain domain[TG_MAX_ARITY];
    tg_attr attr;
} tg_sample;

typedef struct tg_op {
    const char *name;
    /* Number of tensor inputs, 1..TG_MAX_ARITY. A variadic op (variadic = 1)
     * takes any number 1..TG_MAX_INPUTS instead, and arity is then the
     * number its sample makes. */
    int arity;
    int variadic;
    unsigned nondiff; /* bit i set: input i carries no derivative (labels) */
    /* Validate inputs and attr; set c->out's dtype, rank and shape and
     * c->saved_bytes. On failure return a status and write the reason into
     * msg ("inner dimensions differ: (3x4)·(5x2)"); the tape prefixes the
     * op's name. Inputs are non-NULL with one dtype when this is called. */
    tg_status (*check)(tg_call *c, char *msg, size_t len);
    /* out = F(in). Must depend only on the inputs and attr (tg_replay). */
    void (*forward)(tg_call *c);
    /* d-map: tout = Σ_i d_iF(tin[i]); tin[i] == NULL means a zero tangent.
     * Overwrites tout (out->size elements of out->dtype). */
    void (*jvp)(const tg_call *c, const void *const *tin, void *tout);
    /* r-map: gin[i] += r_iF(gout) for every i with gin[i] != NULL. Must
     * accumulate (fan-out sums adjoints) and may see gin[i] == gin[j]. */
    void (*vjp)(const tg_call *c, const void *gout, void *const *gin);
    /* Optional: valid random-input shapes and domains for sizes m, k, n. */
    void (*sample)(size_t m, size_t k, size_t n, tg_sample *s);
    /* Bit i set: the r-map w.r.t. input i is the identity and input i has
     * the output's size (bias-add's X, add). The tape may then give input i
     * the output's adjoint buffer itself and leave gin[i] NULL. Optional. */
    unsigned identity_r;
    /* 1: the output is a constant, whatever the inputs: it never requires
     * grad and has no derivative (argmax, one_hot, detach). Such an op sets
     * every input's nondiff bit as well, and the tape then lets those
     * inputs be parameters or depend on them (the one case where a nondiff
     * input may require grad); jvp and vjp are never called and may be
     * NULL. Derivative checks see a zero Jacobian. */
    unsigned constant;
    /* 1: the output is input 0's elements in the same order (reshape,
     * flatten, squeeze, unsqueeze, detach): the tape gives the output input
     * 0's data instead of new memory (no copy, as PyTorch's views), and
     * forward has nothing to do. The result then aliases its input: op
     * results are read-only (tapegrad never writes one after its forward).
     * check must give the output input 0's size. */
    unsigned view;
    /* Second order (issue 18; docs/hessian.md). The derivative of the
     * r-map along the inputs' tangents, for Hessian-vector products by
     * forward-over-reverse (Pearlmutter's R-operator). With x the inputs,
     * tin[i] their tangents ẋᵢ (NULL: zero; NULL for every nondiff input),
     * tout the output's tangent ẏ = dF_x(ẋ) (from jvp, never NULL: the map
     * is called only when some tin[i] is not NULL) and gout the output's
     * adjoint ζ:
     *   gin_dot[i] += ∂/∂ε r_iF_{x+εẋ}(ζ) at ε = 0
     * for every i with gin_dot[i] != NULL. Like vjp it must accumulate and
     * may see gin_dot[i] == gin_dot[j]. Whatever forward keeps in c->saved
     * is valid (the values at x). For y = g(x) elementwise it is
     * g''(x)·ẋ ⊙ ζ; for matmul, r with the tangent operands substituted.
     * NULL and r_const 0: the op has no second-order map, and tg_hvp on a
     * graph that passes through it fails naming it. */
    void (*vjp_dot)(const tg_call *c, const void *const *tin, const void *tout, const void *gout,
                    void *const *gin_dot);
    /* 1: the r-map does not depend on the values of the differentiable
     * inputs, so the second-order term is exactly zero and no vjp_dot is
     * needed: F is linear (or affine) in them — views, shape and index
     * ops, sum/mean, add/sub, scale, slicing, average pooling, dropout
     * with its saved mask, a constant op. Also for piecewise-linear ops
     * (relu, max pooling, amax, abs, clamp): their r-map is constant on
     * each piece, so the term is zero wherever the derivative exists
     * (almost everywhere; at a kink neither it nor PyTorch's is defined). */
    unsigned r_const;
    /* 1: a built-in loss, a convex function of input 0 (the predictions)
     * with a scalar result: tg_ggn accepts it as the outer function of a
     * Gauss-Newton product. */
    unsigned convex;
} tg_op;

/* Whether input i of op carries no derivative / has the identity r-map:
 * bit i of nondiff / identity_r, 0 for i past the mask's width (the
 * inputs of a variadic op beyond it carry derivatives); every input of a
 * constant op carries none. */
static inline int tg_op_nondiff(const tg_op *op, int i) {
    return i >= 0 &&
           (op->constant || (i < (int)(8 * sizeof op->nondiff) && (op->nondiff >> i & 1u)));
}
static inline int tg_op_identity_r(const tg_op *op, int i) {
    return i >= 0 && i < (int)(8 * sizeof op->identity_r) && (op->identity_r >> i & 1u);
}

/* Record op on the tape: checks NULLs, arity, dtypes, then op->check, then
 * runs op->forward. The result is in *out. */
tg_status tg_apply(tg_tape *t, const tg_op *op, int n_in, const tg_tensor *const *in,
                   const tg_attr *attr, tg_tensor **out);

/* Leaves holding valid random inputs for op (from op->sample; NULL sample:
 * TG_ERR_ARG): parameters for inputs that carry a derivative, constants for
 * the others; in[0..arity-1] receive them (free with tg_tensor_free) and
 * *attr the op's sample attributes. Used by self-tests and fuzzers. */
tg_status tg_sample_inputs(const tg_op *op, size_t m, size_t k, size_t n, tg_dtype dtype,
                           tg_rng *rng, tg_tensor **in, tg_attr *attr);
/* Fill x with random values of domain d, as tg_sample_inputs does
 * (TG_DOM_LABEL: integers in [0, classes); TG_DOM_SIMPLEX: rows summing to
 * 1 along the last axis). Does nothing if x or rng is NULL. */
void tg_sample_fill(tg_tensor *x, tg_domain d, size_t classes, tg_rng *rng);

/* The i-th op recorded on t (0 <= i < tg_tape_size(t)), NULL otherwise:
 * read-only access for graph export and tools. */
const tg_call *tg_tape_call(const tg_tape *t, int i);

/* The built-in op table, and a lookup by name (NULL if absent). */
const tg_op *const *tg_op_table(int *count);
const tg_op *tg_op_find(const char *name);

#ifdef __cplusplus
}
#endif

#endif
