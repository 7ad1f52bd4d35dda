/* fuzz_api: op graphs built from the fuzz input through the public API:
 * the op table, tg_sample_inputs, tg_tensor_new/tg_param_new with
 * fuzzer-chosen shapes (rank 0..3, dims 1..6), dtypes, values and
 * attributes, and tg_apply; some calls valid, some deliberately not.
 *
 * The input is a sequence of actions (see act_* below); each consumes a few
 * bytes. Properties checked after every call:
 *   - a call that is invalid (NULL input or tape, wrong arity, a tensor of
 *     another tape, mixed dtypes, a parameter where an op takes no
 *     derivative, shapes or attributes the op refuses) returns a status
 *     other than TG_OK with a fresh, non-empty tg_last_error() naming the
 *     op, sets *out to NULL and records nothing (tg_tape_size unchanged);
 *   - which calls are valid, and the shape of their result, are predicted
 *     independently (oracle() below, from the documented op semantics) and
 *     must agree with the library;
 *   - a valid call records one node with the predicted shape and
 *     requires_grad; on float64 it passes tg_adjoint_check (1e-12), the
 *     inputs being drawn from the op's sample domains (tg_sample_inputs or
 *     the same domains at fuzzer-chosen shapes), and chained ops taking only
 *     results whose values lie in the next op's domain, and its Hessian is
 *     symmetric (tg_hessian_check, eps = 0) unless an op on it has no
 *     second-order map yet (then refused by name); on float32 the r-maps
 *     run (tg_backward_seed);
 *   - tg_replay recomputes every node bit for bit.
 * A violated property aborts, so libFuzzer saves the input. */
#include "fuzz_common.h"
#include "tapegrad_io.h"
#include "tapegrad_op.h"

#include <cblas.h>
#include <math.h>

#define MAX_LEAVES  48
#define MAX_NODES   32
#define MAX_ACTIONS 24

typedef struct ctx {
    fuzz_bytes b;
    tg_tape *t, *other;
    tg_tensor *leaves[MAX_LEAVES];
    int n_leaves;
    tg_tensor *nodes[MAX_NODES]; /* results on t usable as inputs of later ops */
    int n_nodes;
    const tg_op *const *ops;
    int n_ops;
    tg_rng rng;
} ctx;

/* Calls made, by outcome, printed at exit. */
static struct {
    uint64_t inputs, refused, accepted, adjoint_checked, gradchecked;
    uint64_t hessian_checked, hessian_unmapped; /* issue 18 */
} counts;

static void print_counts(void) {
    fprintf(stderr,
            "fuzz stats: target=api inputs=%llu calls_refused=%llu calls_accepted=%llu "
            "adjoint_checks=%llu gradchecks=%llu hessian_checks=%llu hessian_unmapped=%llu\n",
            (unsigned long long)counts.inputs, (unsigned long long)counts.refused,
            (unsigned long long)counts.accepted, (unsigned long long)counts.adjoint_checked,
            (unsigned long long)counts.gradchecked, (unsigned long long)counts.hessian_checked,
            (unsigned long long)counts.hessian_unmapped);
}

/* FUZZ_VERBOSE=1: print every call (to study a saved input). */
static int verbose;

static void describe(const char *what, const tg_op *op, int n_in, const tg_tensor *const *in,
                     const tg_attr *a) {
    if (!verbose) return;
    fprintf(stderr, "%s %s(", what, op ? op->name : "NULL");
    for (int i = 0; i < n_in; i++) {
        char b[64];
        const tg_tensor *x = in ? in[i] : NULL;
        fprintf(stderr, "%s%s%s%s", i ? ", " : "", x ? (x->dtype == TG_F32 ? "f32" : "f64") : "",
                x ? tg_shape_str(x, b, sizeof b) : "NULL",
                x ? (x->kind == TG_PARAM ? "P" : x->kind == TG_NODE ? "N" : "C") : "");
        for (size_t e = 0; x && e < x->size && e < 4; e++)
            fprintf(stderr, "%s%.3g", e ? " " : "[", tg_get(x, e));
        if (x) fprintf(stderr, "%s", x->size > 4 ? " ...]" : "]");
    }
    fprintf(stderr, ")");
    if (a) fprintf(stderr, " attr f={%g,%g} i={%ld,%ld}", a->f[0], a->f[1], a->i[0], a->i[1]);
    fprintf(stderr, "\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    openblas_set_num_threads(1); /* tiny matrices; replay must be bitwise */
    atexit(print_counts);
    return 0;
}

/* ---------------------------------------------------------------- leaves and values */

static tg_tensor *new_leaf(ctx *c, tg_dtype dt, int rank, const size_t *shape, int param) {
    if (c->n_leaves == MAX_LEAVES) return NULL;
    tg_tensor *x = NULL;
    tg_status s = param ? tg_param_new(&x, dt, rank, shape) : tg_tensor_new(&x, dt, rank, shape);
    FUZZ_ASSERT(s == TG_OK && x);
    FUZZ_ASSERT(x->rank == rank && x->dtype == dt && x->kind == (param ? TG_PARAM : TG_CONST));
    FUZZ_ASSERT(x->requires_grad == param && (x->grad != NULL) == param);
    c->leaves[c->n_leaves++] = x;
    return x;
}

static size_t last_dim(const tg_tensor *x) {
    return x->rank ? x->shape[x->rank - 1] : 1;
}

/* Values from a sample domain (tg_sample_fill, as tg_sample_inputs draws
 * them); `bad` puts one value outside it. */
static void fill(ctx *c, tg_tensor *x, tg_domain d, size_t classes, int bad) {
    tg_sample_fill(x, d, classes, &c->rng);
    if (bad) {
        static const double label_bad[] = {-1, 0.5, 1e9};
        size_t i = tg_rng_next(&c->rng) % x->size;
        if (d == TG_DOM_LABEL)
            tg_set(x, i, tg_rng_next(&c->rng) % 2 ? (double)classes : label_bad[tg_rng_next(&c->rng) % 3]);
        else if (d == TG_DOM_PROB)
            tg_set(x, i, tg_rng_next(&c->rng) % 2 ? 1.5 : -0.25);
    }
}

/* The domains of an op's inputs and its sample attributes. */
static tg_sample sample_of(const tg_op *op) {
    tg_sample s;
    memset(&s, 0, sizeof s);
    if (op->sample) op->sample(2, 3, 2, &s);
    return s;
}

/* Are x's values inside domain d (so that the adjoint check's 1e-12 holds
 * as it does for sampled inputs)? Labels and distributions are never
 * chained. */
static int in_domain(const tg_tensor *x, tg_domain d) {
    for (size_t i = 0; i < x->size; i++) {
        double v = tg_get(x, i);
        if (!isfinite(v)) return 0;
        if (d == TG_DOM_REAL && fabs(v) > 3) return 0;
        if (d == TG_DOM_AWAY0 && (fabs(v) < 0.1 || fabs(v) > 3)) return 0;
        if (d == TG_DOM_PROB && (v < 0.05 || v > 0.95)) return 0;
        if (d == TG_DOM_POS && (v < 0.5 || v > 3)) return 0;
        if (d != TG_DOM_REAL && d != TG_DOM_AWAY0 && d != TG_DOM_PROB && d != TG_DOM_POS) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- the oracle */

static int same_shape(const tg_tensor *a, const tg_tensor *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int all_probabilities(const tg_tensor *p) {
    for (size_t i = 0; i < p->size; i++)
        if (!(tg_get(p, i) >= 0 && tg_get(p, i) <= 1)) return 0;
    return 1;
}

static int all_labels(const tg_tensor *y, size_t classes) {
    for (size_t i = 0; i < y->size; i++) {
        double v = tg_get(y, i);
        if (!(v >= 0 && v < (double)classes && v == floor(v))) return 0;
    }
    return 1;
}

/* The reductions over a list of dims (i[0] of them in v, 0: every axis;
 * negative counted from the end; none twice; i[1] keepdim). */
static int reduce_shape(const tg_tensor *x, const tg_attr *a, int *rank, size_t *shape) {
    long n = a->i[0], lim = x->rank ? x->rank : 1;
    unsigned mask = 0;
    if (n < 0 || n > TG_MAX_RANK) return 0;
    for (long k = 0; k < n; k++) {
        long d = a->v[k] < 0 ? a->v[k] + lim : a->v[k];
        if (d < 0 || d >= lim || (mask >> d & 1u)) return 0;
        mask |= 1u << d;
    }
    if (!n) mask = ~0u;
    *rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(mask >> i & 1u) || a->i[1]) shape[(*rank)++] = mask >> i & 1u ? 1 : x->shape[i];
    return 1;
}

/* nll and cross_entropy: classes on axis 1 (0 for rank 1), targets of the
 * input's shape without it, each a class or the active ignore_index. */
static int class_loss_valid(const tg_op *op, const tg_tensor *x, const tg_tensor *y, const tg_attr *a) {
    if (x->rank < 1 || y->rank != (x->rank > 1 ? x->rank - 1 : 0)) return 0;
    for (int i = 0; i < y->rank; i++)
        if (y->shape[i] != x->shape[i ? i + 1 : 0]) return 0;
    if (a->i[0] != 0 && a->i[0] != 1) return 0;
    if (!(a->f[0] >= 0 && a->f[0] <= 1) || (a->f[0] != 0 && strcmp(op->name, "nll") == 0)) return 0;
    size_t classes = x->shape[x->rank > 1];
    for (size_t i = 0; i < y->size; i++) {
        double v = tg_get(y, i);
        if (a->i[2] && v == (double)a->i[1]) continue;
        if (!(v >= 0 && v < (double)classes && v == floor(v))) return 0;
    }
    return 1;
}

/* NumPy's broadcasting of x and y, written out here independently of
 * src/ops/broadcast.c: trailing axes aligned, sizes equal or one of them 1
 * (a missing axis counts as 1). 1 and the result's shape if they broadcast. */
static int broadcast(const tg_tensor *x, const tg_tensor *y, int *rank, size_t *shape) {
    int r = x->rank > y->rank ? x->rank : y->rank;
    for (int k = 1; k <= r; k++) { /* k-th axis from the end */
        size_t dx = k <= x->rank ? x->shape[x->rank - k] : 1, dy = k <= y->rank ? y->shape[y->rank - k] : 1;
        if (dx != dy && dx != 1 && dy != 1) return 0;
        shape[r - k] = dx == 1 ? dy : dx;
    }
    *rank = r;
    return 1;
}

/* For non-NULL inputs of one dtype on the right tape: 1 if the call is valid
 * (and *rank, shape[] its result's shape), 0 if it is not, −1 for an op
 * this oracle does not know. From the semantics in tapegrad.h. */
static int oracle(const tg_op *op, const tg_tensor *const *in, const tg_attr *a, int *rank,
                  size_t *shape) {
    const char *n = op->name;
    const tg_tensor *x = in[0], *y = op->arity > 1 ? in[1] : NULL;
    *rank = 0;
#define IS(s) (strcmp(n, s) == 0)
#define LIKE(t)                                                                                    \
    do {                                                                                           \
        *rank = (t)->rank;                                                                         \
        for (int i_ = 0; i_ < (t)->rank; i_++)                                                     \
            shape[i_] = (t)->shape[i_];                                                            \
    } while (0)
    if (IS("matmul")) {
        if (x->rank != 2 || y->rank != 2 || x->shape[1] != y->shape[0]) return 0;
        *rank = 2, shape[0] = x->shape[0], shape[1] = y->shape[1];
        return 1;
    }
    if (IS("bias_add")) {
        if (x->rank < 1 || y->size != last_dim(y) || y->size != last_dim(x)) return 0;
        LIKE(x);
        return 1;
    }
    if (IS("sigmoid") || IS("tanh") || IS("relu")) {
        LIKE(x);
        return 1;
    }
    if (IS("leaky_relu") || IS("scale")) {
        LIKE(x);
        return isfinite(a->f[0]);
    }
    if (IS("softmax") || IS("log_softmax")) { /* i[1]: dim i[0] given, else the last */
        long d = a->i[1] ? a->i[0] : -1;
        LIKE(x);
        return x->rank >= 1 && d >= -x->rank && d < x->rank;
    }
    if (IS("add") || IS("sub") || IS("mul") || IS("div") || IS("pow") || IS("maximum") || IS("minimum"))
        return broadcast(x, y, rank, shape);
    if (IS("neg") || IS("exp") || IS("log") || IS("log1p") || IS("expm1") || IS("sqrt") || IS("rsqrt") ||
        IS("abs") || IS("square") || IS("reciprocal") || IS("sin") || IS("cos") || IS("erf") || IS("silu")) {
        LIKE(x);
        return 1;
    }
    if (IS("softplus")) {
        LIKE(x);
        return isfinite(a->f[0]) && a->f[0] != 0 && !isnan(a->f[1]);
    }
    if (IS("gelu")) {
        LIKE(x);
        return a->i[0] == 0 || a->i[0] == 1;
    }
    if (IS("elu") || IS("pow_scalar")) {
        LIKE(x);
        return isfinite(a->f[0]);
    }
    if (IS("clamp")) {
        LIKE(x);
        return !isnan(a->f[0]) && !isnan(a->f[1]) && a->f[0] != INFINITY && a->f[1] != -INFINITY;
    }
    if (IS("sum") || IS("mean") || IS("amax") || IS("amin") || IS("logsumexp") || IS("var") ||
        IS("std") || IS("norm"))
        return reduce_shape(x, a, rank, shape);
    if (IS("sum_axis") || IS("mean_axis")) {
        long ax = a->i[0] < 0 ? a->i[0] + x->rank : a->i[0];
        if (x->rank < 1 || ax < 0 || ax >= x->rank) return 0;
        for (int i = 0, k = 0; i < x->rank; i++)
            if (i != ax) shape[k++] = x->shape[i];
        *rank = x->rank - 1;
        return 1;
    }
    if (IS("bce")) {
        for (size_t i = 0; i < x->size; i++)
            if (isnan(tg_get(x, i))) return -1; /* not documented either way */
        return same_shape(x, y) && all_probabilities(x);
    }
    if (IS("bce_logits") || IS("sse") || IS("mse")) return same_shape(x, y);
    if (IS("softmax_ce"))
        return x->rank == 2 && y->size == x->shape[0] && all_labels(y, x->shape[1]);
    if (IS("softmax_ce_onehot")) return same_shape(x, y) && x->rank >= 1;
    if (IS("nll") || IS("cross_entropy")) return class_loss_valid(op, x, y, a);
    if (IS("huber") || IS("smooth_l1"))
        return same_shape(x, y) && (a->i[0] == 0 || a->i[0] == 1) && isfinite(a->f[0]) &&
               (IS("huber") ? a->f[0] > 0 : a->f[0] >= 0);
    if (IS("kl_div")) return same_shape(x, y) && a->i[0] >= 0 && a->i[0] <= 2;
    if (IS("l2") || IS("l1"))
        return isfinite(a->f[0]) && a->f[0] >= 0 && isfinite(a->f[1]) && a->f[1] > 0;
#undef IS
#undef LIKE
    return -1;
}

/* ---------------------------------------------------------------- calls */

enum { EXPECT_ANY, EXPECT_OK, EXPECT_FAIL };

/* Leaves tg_last_error() holding a text no call under test produces, so
 * that a failure is seen to write its own message. */
static const char *sentinel(void) {
    FUZZ_ASSERT(tg_fill(NULL, NULL, 0) == TG_ERR_ARG);
    return tg_last_error();
}

static void expect_failed(tg_status s, const char *name) {
    counts.refused++;
    fuzz_check_error(s);
    FUZZ_ASSERT(strcmp(tg_last_error(), "fill: NULL argument") != 0);
    if (name) FUZZ_ASSERT(strstr(tg_last_error(), name) != NULL);
}

static void zero_grads(ctx *c) {
    for (int i = 0; i < c->n_leaves; i++)
        tg_zero_grad(c->leaves[i]);
}

/* Every float64 parameter among the leaves. */
static int f64_params(ctx *c, tg_tensor **p) {
    int n = 0;
    for (int i = 0; i < c->n_leaves; i++)
        if (c->leaves[i]->kind == TG_PARAM && c->leaves[i]->dtype == TG_F64) p[n++] = c->leaves[i];
    return n;
}

/* Whether a constant op (detach, argmax, one_hot) on the tape reads a value
 * that depends on a parameter: finite differences see through it (detach
 * passes its value on), its derivative is 0 by definition, so a gradcheck
 * would compare two different things. The adjoint check still holds. */
static int cuts_gradient(const tg_tape *t) {
    for (int k = 0; k < tg_tape_size(t); k++) {
        const tg_call *call = tg_tape_call(t, k);
        for (int i = 0; call->op->constant && i < call->n_in; i++)
            if (call->in[i]->requires_grad) return 1;
    }
    return 0;
}

/* Second order (issue 18): the Hessian of ⟨ζ, out⟩ is symmetric,
 * ⟨u, Hv⟩ = ⟨Hu, v⟩ to 1e-12 (tg_hessian_check with eps = 0: no finite
 * differences, which kinks inside a long graph could upset). A graph
 * through an op still without a second-order map must be refused with
 * TG_ERR_STATE naming the op (counted as unmapped), never a product. */
static void check_hessian(ctx *c, const tg_tensor *out, int np, tg_tensor **p) {
    tg_check_opts o = tg_check_defaults();
    o.seed = tg_rng_next(&c->rng);
    o.eps = 0;
    tg_check_report r;
    tg_status s = tg_hessian_check(c->t, out, np, p, &o, &r);
    if (s == TG_ERR_STATE && strstr(tg_last_error(), "no second-order map")) {
        counts.hessian_unmapped++;
        return;
    }
    if (s != TG_OK)
        fprintf(stderr, "hessian symmetry failed after %s (tape of %d ops): %s\n",
                tg_tape_call(c->t, out->node)->op->name, tg_tape_size(c->t), tg_last_error());
    FUZZ_ASSERT(s == TG_OK && r.ok);
    counts.hessian_checked++;
}

/* A recorded result: float64 → adjoint check; float32 → the r-maps run. */
static void check_result(ctx *c, const tg_tensor *out, int checkable) {
    if (out->dtype == TG_F64 && checkable) {
        tg_tensor *p[MAX_LEAVES];
        int np = f64_params(c, p);
        tg_check_opts o = tg_check_defaults();
        o.seed = tg_rng_next(&c->rng);
        tg_check_report r;
        tg_status s = tg_adjoint_check(c->t, out, np, p, &o, &r);
        if (s != TG_OK)
            fprintf(stderr, "adjoint check failed after %s (tape of %d ops): %s\n",
                    tg_tape_call(c->t, out->node)->op->name, tg_tape_size(c->t), tg_last_error());
        FUZZ_ASSERT(s == TG_OK && r.ok);
        counts.adjoint_checked++;
        check_hessian(c, out, np, p);
        /* The adjoint identity cannot see d- and r-maps that are wrong in
         * the same way: on small graphs, also compare the r-maps with
         * finite differences of the forward maps (PyTorch's tolerances). */
        size_t cols = 0;
        for (int i = 0; i < np; i++)
            cols += p[i]->size;
        if (out->size <= 8 && cols <= 64 && tg_tape_size(c->t) <= 8 && !cuts_gradient(c->t)) {
            s = tg_gradcheck(c->t, out, np, p, NULL, &r);
            if (s != TG_OK)
                fprintf(stderr, "gradcheck failed after %s (tape of %d ops): %s\n",
                        tg_tape_call(c->t, out->node)->op->name, tg_tape_size(c->t),
                        tg_last_error());
            FUZZ_ASSERT(s == TG_OK && r.ok);
            counts.gradchecked++;
        }
    } else { /* the r-maps run (float32, or values outside the domains) */
        size_t es = out->dtype == TG_F32 ? sizeof(float) : sizeof(double);
        void *seed = malloc(out->size * es);
        FUZZ_ASSERT(seed);
        for (size_t i = 0; i < out->size; i++) {
            double v = tg_rng_normal(&c->rng);
            if (es == sizeof(float))
                ((float *)seed)[i] = (float)v;
            else
                ((double *)seed)[i] = v;
        }
        FUZZ_ASSERT(tg_backward_seed(c->t, out, seed) == TG_OK);
        free(seed);
        zero_grads(c);
    }
}

/* A call whose result the fuzzer's memory cannot hold: one_hot's class
 * count comes from the data (−1: the largest label + 1), so a "bad" label
 * of 1e9 asks for gigabytes, which the library would rightly try to
 * allocate (and report TG_ERR_NOMEM if refused) but libFuzzer counts as an
 * out-of-memory crash. Such calls are not made. */
static int result_too_large(const tg_op *op, const tg_tensor *const *in, const tg_attr *a) {
    if (strcmp(op->name, "one_hot") != 0 || !in || !in[0]) return 0;
    double classes = a ? (double)a->i[0] : 0;
    for (size_t e = 0; classes < 0 && e < in[0]->size; e++)
        if (tg_get(in[0], e) + 1 > -classes) classes = -(tg_get(in[0], e) + 1);
    return fabs(classes) * (double)in[0]->size > (double)(1 << 22);
}

/* tg_apply with the properties above. expect: from the way the call was
 * built; the oracle decides when it is EXPECT_ANY. Returns the result. */
static tg_tensor *apply_checked(ctx *c, const tg_op *op, int n_in, const tg_tensor *const *in,
                                const tg_attr *attr, int expect, int checkable) {
    int prank = 0, valid = -1;
    size_t pshape[TG_MAX_RANK] = {0};
    if (expect == EXPECT_ANY) {
        valid = oracle(op, in, attr ? attr : &(tg_attr){.f = {0, 0}, .i = {0, 0}}, &prank, pshape);
        if (valid >= 0) expect = valid ? EXPECT_OK : EXPECT_FAIL;
    } else if (expect == EXPECT_OK) {
        valid = oracle(op, in, attr ? attr : &(tg_attr){.f = {0, 0}, .i = {0, 0}}, &prank, pshape);
        FUZZ_ASSERT(valid != 0); /* the harness built a valid call */
    }
    if (result_too_large(op, in, attr)) return NULL;
    int before = tg_tape_size(c->t);
    tg_tensor *out = (tg_tensor *)(uintptr_t)1;
    describe(expect == EXPECT_OK ? "valid" : expect == EXPECT_FAIL ? "invalid" : "unknown", op, n_in,
             in, attr);
    sentinel();
    tg_status s = tg_apply(c->t, op, n_in, in, attr, &out);
    if (s != TG_OK) {
        if (expect == EXPECT_OK)
            fprintf(stderr, "valid call of %s refused: %s\n", op->name, tg_last_error());
        FUZZ_ASSERT(expect != EXPECT_OK);
        expect_failed(s, op->name);
        /* Out of memory only for a result too large to allocate (one_hot of a
         * label 1e9 with the classes inferred asks for gigabytes): a proper
         * refusal, said as such, not a failure of the library. */
        FUZZ_ASSERT(s != TG_ERR_NOMEM || strstr(tg_last_error(), "out of memory for the result"));
        FUZZ_ASSERT(out == NULL);
        FUZZ_ASSERT(tg_tape_size(c->t) == before);
        return NULL;
    }
    if (expect == EXPECT_FAIL) fprintf(stderr, "invalid call of %s accepted\n", op->name);
    counts.accepted++;
    FUZZ_ASSERT(expect != EXPECT_FAIL);
    FUZZ_ASSERT(out && out->kind == TG_NODE && out->tape == c->t && out->node == before);
    FUZZ_ASSERT(tg_tape_size(c->t) == before + 1 && tg_tape_call(c->t, before)->op == op);
    FUZZ_ASSERT(out->dtype == in[0]->dtype && out->rank >= 0 && out->rank <= TG_MAX_RANK);
    size_t size = 1;
    for (int i = 0; i < TG_MAX_RANK; i++)
        size *= i < out->rank ? out->shape[i] : 1;
    FUZZ_ASSERT(size == out->size && out->data);
    if (valid == 1) {
        FUZZ_ASSERT(out->rank == prank);
        for (int i = 0; i < prank; i++)
            FUZZ_ASSERT(out->shape[i] == pshape[i]);
    }
    int rg = 0;
    for (int i = 0; i < n_in; i++)
        if (!(op->nondiff >> i & 1u)) rg |= in[i]->requires_grad;
    FUZZ_ASSERT(out->requires_grad == rg);
    check_result(c, out, checkable);
    return out;
}

static tg_tensor *apply(ctx *c, const tg_op *op, int n_in, const tg_tensor *const *in,
                        const tg_attr *attr, int expect) {
    return apply_checked(c, op, n_in, in, attr, expect, 1);
}

/* A result becomes a candidate input for later ops if its values are sane.
 * Softmax results are chained too: sum, mean ... of rows that sum to 1 are
 * constant, with a derivative that is rounding noise, which the adjoint
 * check's scale floor ‖ζ‖·‖ξ‖ now absorbs (fuzz/findings/README.md). */
static void keep(ctx *c, tg_tensor *out) {
    if (!out || c->n_nodes == MAX_NODES || !in_domain(out, TG_DOM_REAL)) return;
    c->nodes[c->n_nodes++] = out;
}

static const tg_op *pick_op(ctx *c) {
    return c->ops[fb_u8(&c->b) % c->n_ops];
}

static tg_dtype pick_dtype(ctx *c) {
    return fb_u8(&c->b) % 4 == 0 ? TG_F32 : TG_F64; /* mostly float64: it is checked */
}

/* ---------------------------------------------------------------- actions */

/* Inputs from tg_sample_inputs at fuzzer-chosen sizes: always valid. */
static void act_sample(ctx *c) {
    const tg_op *op = pick_op(c);
    size_t m = 1 + fb_u8(&c->b) % 6, k = 1 + fb_u8(&c->b) % 6, n = 1 + fb_u8(&c->b) % 6;
    tg_dtype dt = pick_dtype(c);
    if (c->n_leaves + op->arity > MAX_LEAVES) return;
    tg_tensor *in[TG_MAX_ARITY] = {NULL, NULL, NULL};
    tg_attr attr;
    FUZZ_ASSERT(tg_sample_inputs(op, m, k, n, dt, &c->rng, in, &attr) == TG_OK);
    for (int i = 0; i < op->arity; i++) {
        FUZZ_ASSERT(in[i] && in[i]->dtype == dt);
        c->leaves[c->n_leaves++] = in[i];
    }
    keep(c, apply(c, op, op->arity, (const tg_tensor *const *)in, &attr, EXPECT_OK));
}

/* A shape for input i: like input 0, derived from it the way matmul,
 * bias_add and softmax_ce pair their inputs, or anything. */
static int pick_shape(ctx *c, int i, const tg_tensor *first, size_t *shape) {
    uint8_t mode = fb_u8(&c->b) % 12;
    if (i > 0 && first && mode < 5) {
        for (int d = 0; d < first->rank; d++)
            shape[d] = first->shape[d];
        if (mode == 4 && first->rank) shape[fb_u8(&c->b) % first->rank] += 1; /* off by one */
        return first->rank;
    }
    if (i > 0 && first && mode < 7) { /* a bias vector, or a matrix to multiply by */
        shape[0] = last_dim(first);
        if (mode == 5) return 1;
        shape[1] = 1 + fb_u8(&c->b) % 6;
        return 2;
    }
    if (i > 0 && first && mode < 8) { /* one entry per row (labels) */
        shape[0] = first->rank ? first->shape[0] : 1;
        return 1;
    }
    int rank = fb_u8(&c->b) % 4;
    for (int d = 0; d < rank; d++)
        shape[d] = 1 + fb_u8(&c->b) % 6;
    return rank;
}

/* Attributes: the op's sample ones, sometimes replaced (maybe invalid). */
static tg_attr pick_attr(ctx *c, const tg_sample *s) {
    static const double odd[] = {NAN, INFINITY, -INFINITY, -1.0, 0.0, 2.5, 1e-3, 7.0};
    tg_attr a = s->attr;
    uint8_t f = fb_u8(&c->b);
    if (f & 1) a.f[0] = odd[fb_u8(&c->b) % 8];
    if (f & 2) a.f[1] = odd[fb_u8(&c->b) % 8];
    if (f & 4) a.i[0] = (long)(fb_u8(&c->b) % 7) - 3; /* axes −3..3 */
    return a;
}

/* Fresh leaves at fuzzer-chosen shapes, dtypes and kinds, values from the
 * op's domains (one sometimes outside). */
static void act_random(ctx *c) {
    const tg_op *op = pick_op(c);
    if (c->n_leaves + op->arity > MAX_LEAVES) return;
    tg_sample smp = sample_of(op);
    tg_dtype dt = pick_dtype(c);
    uint8_t flags = fb_u8(&c->b);
    int mixed = 0, nondiff_param = 0, tame = 1;
    tg_tensor *in[TG_MAX_ARITY] = {NULL, NULL, NULL};
    for (int i = 0; i < op->arity; i++) {
        size_t shape[TG_MAX_RANK];
        int rank = pick_shape(c, i, in[0], shape);
        tg_dtype di = dt;
        if (i > 0 && (flags & 0x07) == 1 && i == 1) di = dt == TG_F32 ? TG_F64 : TG_F32, mixed = 1;
        int nondiff = op->nondiff >> i & 1u;
        int param = !nondiff;
        if ((flags & 0x38) == 0x08) param = !param; /* a constant where a parameter fits: valid */
        if (nondiff && param && !op->constant) nondiff_param = 1; /* a constant op takes any */
        in[i] = new_leaf(c, di, rank, shape, param);
        size_t classes = last_dim(in[0]);
        fill(c, in[i], smp.domain[i], classes, (flags & 0xc0) == 0x40);
        if ((flags & 0xc0) == 0x80 && fb_u8(&c->b) % 2) { /* a wild value: NaN, Inf, huge, tiny */
            static const double wild[] = {NAN, INFINITY, -INFINITY, 1e30, -1e30, 89.0, -88.0, 1e-40};
            tg_set(in[i], fb_u8(&c->b) % in[i]->size, wild[fb_u8(&c->b) % 8]);
            tame = 0;
        }
    }
    tg_attr a = pick_attr(c, &smp);
    /* A NaN or inf constant (pad's border, masked_fill's value) is valid,
     * but finite differences of it are NaN: no derivative check then. */
    if (!isfinite(a.f[0]) || !isfinite(a.f[1])) tame = 0;
    /* Wild values: no crash, no undefined behaviour, the r-maps run; the
     * derivative checks need sane values, and the result is not chained. */
    apply_checked(c, op, op->arity, (const tg_tensor *const *)in, &a,
                  mixed || nondiff_param ? EXPECT_FAIL : EXPECT_ANY, tame);
}

/* A kept result as an input of another op, where its values lie in that
 * input's domain; the other inputs made to fit. */
static void act_chain(ctx *c) {
    if (!c->n_nodes) return;
    tg_tensor *x = c->nodes[fb_u8(&c->b) % c->n_nodes];
    const tg_op *op = pick_op(c);
    if (c->n_leaves + op->arity > MAX_LEAVES) return;
    int pos = op->arity > 1 ? fb_u8(&c->b) % op->arity : 0;
    tg_sample smp = sample_of(op);
    if (op->nondiff >> pos & 1u) return; /* a result may not go where no derivative goes */
    if (!in_domain(x, smp.domain[pos])) return;
    const tg_tensor *in[TG_MAX_ARITY] = {NULL, NULL, NULL};
    in[pos] = x;
    for (int i = 0; i < op->arity; i++) {
        if (i == pos) continue;
        size_t shape[TG_MAX_RANK];
        int rank;
        if (strcmp(op->name, "matmul") == 0 && i == 1) { /* x·W */
            rank = 2, shape[0] = last_dim(x), shape[1] = 1 + fb_u8(&c->b) % 6;
        } else if (strcmp(op->name, "matmul") == 0) { /* W·x */
            rank = 2, shape[0] = 1 + fb_u8(&c->b) % 6, shape[1] = x->rank ? x->shape[0] : 1;
        } else if (strcmp(op->name, "bias_add") == 0 && i == 1) {
            rank = 1, shape[0] = last_dim(x);
        } else if (strcmp(op->name, "softmax_ce") == 0) {
            rank = 1, shape[0] = x->rank ? x->shape[0] : 1;
        } else {
            rank = x->rank;
            for (int d = 0; d < rank; d++)
                shape[d] = x->shape[d];
        }
        tg_tensor *leaf = new_leaf(c, x->dtype, rank, shape, !(op->nondiff >> i & 1u));
        fill(c, leaf, smp.domain[i], last_dim(in[0] ? in[0] : x), 0);
        in[i] = leaf;
    }
    keep(c, apply(c, op, op->arity, in, &smp.attr, EXPECT_ANY));
}

/* Calls that are invalid by construction. */
static void act_invalid(ctx *c) {
    const tg_op *op = pick_op(c);
    uint8_t kind = fb_u8(&c->b) % 8;
    if (c->n_leaves + op->arity + 1 > MAX_LEAVES) return;
    tg_dtype dt = pick_dtype(c);
    /* Valid material first: sampled inputs. */
    tg_tensor *in[TG_MAX_ARITY + 1] = {NULL, NULL, NULL, NULL};
    tg_attr attr;
    FUZZ_ASSERT(tg_sample_inputs(op, 2, 3, 2, dt, &c->rng, in, &attr) == TG_OK);
    for (int i = 0; i < op->arity; i++)
        c->leaves[c->n_leaves++] = in[i];
    int before = tg_tape_size(c->t), pos = fb_u8(&c->b) % op->arity;
    tg_tensor *out = (tg_tensor *)(uintptr_t)1;
    tg_status s;
    switch (kind) {
    case 0: /* a NULL input */
        in[pos] = NULL;
        apply(c, op, op->arity, (const tg_tensor *const *)in, &attr, EXPECT_FAIL);
        break;
    case 1: { /* the wrong number of inputs */
        int n = op->variadic ? (fb_u8(&c->b) % 2 ? 0 : TG_MAX_INPUTS + 1)
                             : op->arity + (fb_u8(&c->b) % 2 ? 1 : -1);
        in[op->arity] = in[0];
        sentinel();
        s = tg_apply(c->t, op, n, (const tg_tensor *const *)in, &attr, &out);
        expect_failed(s, op->name);
        FUZZ_ASSERT(out == NULL && tg_tape_size(c->t) == before);
        break;
    }
    case 2: { /* the result of an op on another tape */
        tg_tensor *o = NULL;
        const tg_tensor *src[1] = {in[pos]};
        const tg_op *unary = tg_op_find(fb_u8(&c->b) % 2 ? "sigmoid" : "tanh");
        FUZZ_ASSERT(unary && tg_apply(c->other, unary, 1, src, NULL, &o) == TG_OK);
        in[pos] = o;
        apply(c, op, op->arity, (const tg_tensor *const *)in, &attr, EXPECT_FAIL);
        break;
    }
    case 3: { /* a parameter (or a result that depends on one) where no derivative goes */
        int nd = -1;
        for (int i = 0; i < op->arity; i++)
            if (op->nondiff >> i & 1u) nd = i;
        if (nd < 0 || op->constant) break; /* a constant op takes parameters */
        tg_tensor *p = new_leaf(c, dt, in[nd]->rank, in[nd]->shape, 1);
        if (!p) break;
        memcpy(p->data, in[nd]->data, in[nd]->size * (dt == TG_F32 ? 4 : 8));
        in[nd] = p;
        apply(c, op, op->arity, (const tg_tensor *const *)in, &attr, EXPECT_FAIL);
        break;
    }
    case 4: { /* mixed dtypes */
        if (op->arity < 2) break;
        int j = 1 + fb_u8(&c->b) % (op->arity - 1);
        tg_dtype other = dt == TG_F32 ? TG_F64 : TG_F32;
        tg_tensor *p = new_leaf(c, other, in[j]->rank, in[j]->shape, in[j]->kind == TG_PARAM);
        if (!p) break;
        for (size_t e = 0; e < p->size; e++)
            tg_set(p, e, tg_get(in[j], e));
        in[j] = p;
        apply(c, op, op->arity, (const tg_tensor *const *)in, &attr, EXPECT_FAIL);
        break;
    }
    case 5: { /* NULL tape, NULL out, NULL op, an op without maps */
        sentinel();
        s = tg_apply(NULL, op, op->arity, (const tg_tensor *const *)in, &attr, &out);
        expect_failed(s, op->name);
        FUZZ_ASSERT(s == TG_ERR_ARG && out == NULL);
        sentinel();
        s = tg_apply(c->t, op, op->arity, (const tg_tensor *const *)in, &attr, NULL);
        expect_failed(s, op->name);
        sentinel();
        out = (tg_tensor *)(uintptr_t)1;
        s = tg_apply(c->t, NULL, op->arity, (const tg_tensor *const *)in, &attr, &out);
        expect_failed(s, NULL);
        FUZZ_ASSERT(out == NULL);
        tg_op broken = *op;
        broken.forward = NULL;
        sentinel();
        s = tg_apply(c->t, &broken, op->arity, (const tg_tensor *const *)in, &attr, &out);
        expect_failed(s, NULL);
        FUZZ_ASSERT(tg_tape_size(c->t) == before);
        break;
    }
    case 6: { /* bad leaves */
        static const size_t zero_dim[2] = {3, 0};
        tg_tensor *x = (tg_tensor *)(uintptr_t)1;
        int rank = fb_u8(&c->b) % 2 ? TG_MAX_RANK + 1 + fb_u8(&c->b) % 3 : -1 - fb_u8(&c->b) % 3;
        size_t big[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        sentinel();
        expect_failed(tg_tensor_new(&x, TG_F64, rank, big), "tensor");
        FUZZ_ASSERT(x == NULL);
        x = (tg_tensor *)(uintptr_t)1;
        sentinel();
        expect_failed(tg_param_new(&x, TG_F64, 2, zero_dim), "tensor");
        FUZZ_ASSERT(x == NULL);
        x = (tg_tensor *)(uintptr_t)1;
        sentinel();
        expect_failed(tg_tensor_new(&x, (tg_dtype)(2 + fb_u8(&c->b) % 5), 1, big), "tensor");
        FUZZ_ASSERT(x == NULL);
        x = (tg_tensor *)(uintptr_t)1;
        sentinel();
        expect_failed(tg_param_new(&x, TG_F32, 2, NULL), "tensor");
        FUZZ_ASSERT(x == NULL);
        size_t huge[4] = {SIZE_MAX / 2, 4, 1, 1};
        x = (tg_tensor *)(uintptr_t)1;
        sentinel();
        expect_failed(tg_tensor_new(&x, TG_F64, 2, huge), "tensor");
        FUZZ_ASSERT(x == NULL);
        break;
    }
    default: { /* an attribute the op refuses, where it has one */
        tg_attr a = attr;
        static const double nonfinite[] = {NAN, INFINITY, -INFINITY};
        const char *n = op->name;
        if (!strcmp(n, "leaky_relu") || !strcmp(n, "scale") || !strcmp(n, "l1") || !strcmp(n, "l2"))
            a.f[0] = nonfinite[fb_u8(&c->b) % 3];
        else if (!strcmp(n, "sum_axis") || !strcmp(n, "mean_axis"))
            a.i[0] = fb_u8(&c->b) % 2 ? 3 + fb_u8(&c->b) % 5 : -4 - fb_u8(&c->b) % 5;
        else
            break;
        apply(c, op, op->arity, (const tg_tensor *const *)in, &a, EXPECT_FAIL);
        break;
    }
    }
}

/* Backward from a kept result, and misuses of backward. */
static void act_backward(ctx *c) {
    if (!c->n_nodes) return;
    tg_tensor *x = c->nodes[fb_u8(&c->b) % c->n_nodes];
    int before = tg_tape_size(c->t);
    if (x->size == 1) {
        FUZZ_ASSERT(tg_backward(c->t, x) == TG_OK);
    } else {
        sentinel();
        expect_failed(tg_backward(c->t, x), "backward");
        check_result(c, x, 1);
    }
    zero_grads(c);
    sentinel(); /* an output that is not on this tape */
    expect_failed(tg_backward(c->other, x), "backward");
    sentinel();
    expect_failed(tg_backward(c->t, c->leaves[0]), "backward");
    sentinel();
    expect_failed(tg_backward_seed(c->t, x, NULL), "backward");
    FUZZ_ASSERT(tg_tape_size(c->t) == before);
}

/* Replay recomputes every node from the leaves: the same bits. */
static void act_replay(ctx *c) {
    if (!c->n_nodes) return;
    tg_tensor *x = c->nodes[fb_u8(&c->b) % c->n_nodes];
    size_t bytes = x->size * (x->dtype == TG_F32 ? 4 : 8);
    void *copy = malloc(bytes);
    FUZZ_ASSERT(copy);
    memcpy(copy, x->data, bytes);
    FUZZ_ASSERT(tg_replay(c->t) == TG_OK);
    FUZZ_ASSERT(memcmp(copy, x->data, bytes) == 0);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ctx c;
    memset(&c, 0, sizeof c);
    counts.inputs++;
    c.b = (fuzz_bytes){data, size, 0};
    c.ops = tg_op_table(&c.n_ops);
    FUZZ_ASSERT(c.ops && c.n_ops >= 4);
    tg_rng_seed(&c.rng, fb_u64(&c.b));
    FUZZ_ASSERT(tg_tape_new(&c.t) == TG_OK && tg_tape_new(&c.other) == TG_OK);
    for (int k = 0; k < MAX_ACTIONS && fb_left(&c.b); k++) {
        switch (fb_u8(&c.b) % 10) {
        case 0:
        case 1:
        case 2: act_sample(&c); break;
        case 3:
        case 4: act_random(&c); break;
        case 5: act_chain(&c); break;
        case 6: act_invalid(&c); break;
        case 7: act_backward(&c); break;
        case 8: act_replay(&c); break;
        default:
            tg_tape_reset(c.t);
            FUZZ_ASSERT(tg_tape_size(c.t) == 0);
            c.n_nodes = 0;
            break;
        }
    }
    /* The graph export takes any tape. */
    FILE *devnull = fopen("/dev/null", "w");
    FUZZ_ASSERT(devnull && tg_tape_dot(c.t, devnull) == TG_OK && tg_tape_dot(c.other, devnull) == TG_OK);
    fclose(devnull);
    tg_tape_free(c.t);
    tg_tape_free(c.other);
    for (int i = 0; i < c.n_leaves; i++)
        tg_tensor_free(c.leaves[i]);
    return 0;
}
