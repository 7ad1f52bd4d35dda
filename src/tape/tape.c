/* The tape: record, reset, backward, jvp, replay. It knows no particular
 * op: it calls the maps of the tg_op entries it recorded. */
#include "tape_impl.h"

#include <stdio.h>
#include <string.h>

void tg_tape_detect_anomaly(tg_tape *t, int on) {
    if (t) t->anomaly = on != 0;
}

tg_status tg_tape_new(tg_tape **out) {
    if (!out) return tg_fail(TG_ERR_ARG, "tape: out is NULL");
    *out = tg_calloc(1, sizeof(tg_tape));
    if (!*out) return tg_fail(TG_ERR_NOMEM, "tape: out of memory");
    tg_arena_init(&(*out)->arena);
    return TG_OK;
}

void tg_tape_free(tg_tape *t) {
    if (!t) return;
    tg_arena_free(&t->arena);
    tg_free(t->nodes);
    tg_free(t->maps);
    tg_free(t);
}

void tg_tape_reset(tg_tape *t) {
    if (!t) return;
    t->n = 0;
    tg_arena_reset(&t->arena);
}

int tg_tape_size(const tg_tape *t) {
    return t ? t->n : 0;
}

const tg_call *tg_tape_call(const tg_tape *t, int i) {
    return t && i >= 0 && i < t->n ? &t->nodes[i].call : NULL;
}

/* A new pass: every adjoint/tangent of an earlier pass becomes stale. Zero
 * is skipped because fresh nodes carry generation 0. */
void tg_tape_bump_gen(tg_tape *t) {
    if (++t->gen == 0) t->gen = 1;
}

/* ------------------------------------------------------------- record */

static tg_status check_inputs(const tg_tape *t, const tg_op *op, int n_in,
                              const tg_tensor *const *in) {
    if (op->variadic && (n_in < 1 || n_in > TG_MAX_INPUTS))
        return tg_fail(TG_ERR_ARG, "%s: takes 1..%d inputs, got %d", op->name, TG_MAX_INPUTS, n_in);
    if (!op->variadic && n_in != op->arity)
        return tg_fail(TG_ERR_ARG, "%s: takes %d inputs, got %d", op->name, op->arity, n_in);
    if (n_in > 0 && !in) return tg_fail(TG_ERR_ARG, "%s: inputs array is NULL", op->name);
    for (int i = 0; i < n_in; i++) {
        const tg_tensor *x = in[i];
        if (!x) return tg_fail(TG_ERR_ARG, "%s: input %d is NULL", op->name, i);
        if (x->kind == TG_NODE && x->tape != t)
            return tg_fail(TG_ERR_STATE, "%s: input %d is the result of an op on another tape",
                           op->name, i);
        /* A result from before a reset is caught only while the tape holds
         * fewer ops than when it was made: after that its index is valid
         * again and its memory reused (tapegrad.h says it must not be used). */
        if (x->kind == TG_NODE && (x->node < 0 || x->node >= t->n))
            return tg_fail(TG_ERR_STATE, "%s: input %d is a result from before the tape was reset",
                           op->name, i);
        if (x->dtype != in[0]->dtype)
            return tg_fail(TG_ERR_DTYPE, "%s: mixed dtypes: input 0 is %s, input %d is %s",
                           op->name, in[0]->dtype == TG_F32 ? "f32" : "f64", i,
                           x->dtype == TG_F32 ? "f32" : "f64");
        if (tg_op_nondiff(op, i) && x->requires_grad && !op->constant)
            return tg_fail(TG_ERR_ARG,
                           "%s: input %d carries no derivative and must not be a "
                           "parameter or depend on one",
                           op->name, i);
    }
    return TG_OK;
}

static tg_status grow_nodes(tg_tape *t) {
    if (t->n < t->cap) return TG_OK;
    int cap = t->cap ? t->cap * 2 : 64;
    tg_node *nodes = tg_realloc(t->nodes, (size_t)cap * sizeof *nodes);
    if (!nodes) return tg_fail(TG_ERR_NOMEM, "tape: out of memory for %d ops", cap);
    t->nodes = nodes;
    t->cap = cap;
    return TG_OK;
}

tg_status tg_apply(tg_tape *t, const tg_op *op, int n_in, const tg_tensor *const *in,
                   const tg_attr *attr, tg_tensor **out) {
    if (out) *out = NULL;
    if (!op || !op->name || !op->check || !op->forward)
        return tg_fail(TG_ERR_ARG, "apply: op or its name/check/forward is NULL");
    if (!t || !out) return tg_fail(TG_ERR_ARG, "%s: tape or out is NULL", op->name);
    if (op->arity < 1 || op->arity > TG_MAX_ARITY)
        return tg_fail(TG_ERR_ARG, "%s: arity %d outside 1..%d", op->name, op->arity, TG_MAX_ARITY);
    tg_status s = check_inputs(t, op, n_in, in);
    if (s) return s;

    /* The call is built in its node's slot; it counts only once n moves.
     * Its inputs are copied to the arena (the node array may move). */
    if ((s = grow_nodes(t))) return s;
    const tg_tensor **ins = tg_arena_alloc(&t->arena, (size_t)n_in * sizeof *ins);
    if (!ins) return tg_fail(TG_ERR_NOMEM, "%s: out of memory for the inputs", op->name);
    memcpy(ins, in, (size_t)n_in * sizeof *ins);
    tg_node *nd = &t->nodes[t->n];
    memset(nd, 0, sizeof *nd);
    tg_call *c = &nd->call;
    c->op = op;
    c->n_in = n_in;
    c->in = ins;
    if (attr) c->attr = *attr;
    tg_tensor shape = {.dtype = in[0]->dtype};
    for (int i = 0; i < TG_MAX_RANK; i++)
        shape.shape[i] = 1;
    c->out = &shape;
    char msg[400];
    msg[0] = '\0';
    s = op->check(c, msg, sizeof msg);
    if (s) return tg_fail(s, "%s: %s", op->name, msg);
    /* Every op's result, user ops included: a size whose bytes would wrap
     * size_t gets a clear refusal, not a small block written past. */
    shape.size = 1;
    for (int i = 0; i < shape.rank; i++) {
        size_t d = shape.shape[i];
        if (d == 0 || shape.size > SIZE_MAX / 16 / d) {
            char b[64];
            return tg_fail(TG_ERR_SHAPE, "%s: result %s too large", op->name,
                           tg_shape_str(&shape, b, sizeof b));
        }
        shape.size *= d;
    }

    if (op->view && shape.size != in[0]->size)
        return tg_fail(TG_ERR_STATE, "%s: a view op's result must have its input's size", op->name);
    /* One arena block: the tensor header, its data (none for a view), the
     * saved scratch. */
    size_t head = (sizeof shape + 63) & ~(size_t)63;
    size_t bytes = op->view ? 0 : (bytes_of(&shape) + 63) & ~(size_t)63;
    unsigned char *mem = tg_arena_alloc(&t->arena, head + bytes + c->saved_bytes);
    if (!mem) return tg_fail(TG_ERR_NOMEM, "%s: out of memory for the result", op->name);
    tg_tensor *o = (tg_tensor *)mem;
    *o = shape;
    o->kind = TG_NODE;
    o->data = op->view ? in[0]->data : mem + head;
    o->tape = t;
    o->node = t->n;
    for (int i = 0; i < n_in; i++)
        if (!tg_op_nondiff(op, i)) o->requires_grad |= in[i]->requires_grad;
    c->out = o;
    c->saved = c->saved_bytes ? mem + head + bytes : NULL;
    op->forward(c);
    if (t->anomaly && (s = tg_anomaly_forward(c, t->n))) return s;
    t->n++;
    *out = o;
    return TG_OK;
}

tg_status tg_replay(tg_tape *t) {
    if (!t) return tg_fail(TG_ERR_ARG, "replay: tape is NULL");
    for (int i = 0; i < t->n; i++) {
        t->nodes[i].call.op->forward(&t->nodes[i].call);
        tg_status s = t->anomaly ? tg_anomaly_forward(&t->nodes[i].call, i) : TG_OK;
        if (s) return s;
    }
    return TG_OK;
}

/* ------------------------------------------------------------- reverse */

/* The node's adjoint buffer, zeroed on first use in this backward pass. */
void *tg_tape_zeroed(tg_tape *t, const tg_node *nd, void **buf) {
    size_t b = bytes_of(nd->call.out);
    if (!*buf) *buf = tg_arena_alloc(&t->arena, b);
    return *buf ? memset(*buf, 0, b) : NULL;
}

void *tg_tape_adjoint(tg_tape *t, tg_node *nd) {
    if (nd->adj_gen == t->gen) return nd->adj;
    if (!(nd->adj = tg_tape_zeroed(t, nd, &nd->own))) return NULL;
    nd->adj_gen = t->gen;
    return nd->adj;
}

/* Where an op's r-map w.r.t. input i is the identity (bias-add's rψ(ζ) = ζ,
 * add), input i's adjoint IS the output's adjoint when nothing else has
 * contributed to it yet: hand over the buffer instead of zeroing one and
 * adding ζ into it. The consumer is done with its adjoint after its r-map,
 * so later contributions to the input may accumulate into the shared
 * buffer. Once per call (two inputs must not share one buffer), and not
 * when input i also appears as another input of the call. */
static int hand_over(tg_tape *t, tg_node *nd, int i) {
    const tg_call *c = &nd->call;
    const tg_tensor *x = c->in[i];
    if (!tg_op_identity_r(c->op, i) || x->kind != TG_NODE || !x->requires_grad) return 0;
    tg_node *src = &t->nodes[x->node];
    if (src->adj_gen == t->gen || x->size != c->out->size) return 0;
    for (int j = 0; j < c->n_in; j++)
        if (j != i && c->in[j] == x) return 0;
    src->adj = nd->adj;
    src->adj_gen = t->gen;
    return 1;
}

tg_status tg_tape_check_output(const tg_tape *t, const tg_tensor *out, const char *who) {
    if (!t || !out) return tg_fail(TG_ERR_ARG, "%s: tape or output is NULL", who);
    if (out->kind != TG_NODE || out->tape != t || out->node < 0 || out->node >= t->n)
        return tg_fail(TG_ERR_STATE, "%s: the output is not the result of an op on this tape", who);
    return TG_OK;
}

/* Where input i of a call accumulates its adjoint, or NULL if nobody needs it. */
static tg_status input_adjoint(tg_tape *t, const tg_call *c, int i, void **gin) {
    const tg_tensor *x = c->in[i];
    *gin = NULL;
    if (tg_op_nondiff(c->op, i) || !x->requires_grad) return TG_OK;
    if (x->kind == TG_PARAM) {
        *gin = x->grad;
        return TG_OK;
    }
    if (x->kind != TG_NODE) return TG_OK;
    *gin = tg_tape_adjoint(t, &t->nodes[x->node]);
    return *gin ? TG_OK : tg_fail(TG_ERR_NOMEM, "backward: out of memory for adjoints");
}

/* Room for the gin/tin pointers of a call with n inputs: `local` (of
 * TG_MAX_ARITY) or array `which` (0..TG_MAP_ARRAYS-1) of the tape's, grown
 * for variadic calls. Zeroed. */
void **tg_tape_slots(tg_tape *t, void **local, int n, int which) {
    if (n > TG_MAX_ARITY && n > t->maps_cap) {
        void **m = tg_realloc(t->maps, (size_t)n * TG_MAP_ARRAYS * sizeof *m);
        if (!m) return NULL;
        t->maps = m, t->maps_cap = n;
    }
    void **slots = n > TG_MAX_ARITY ? t->maps + (size_t)which * (size_t)t->maps_cap : local;
    memset(slots, 0, (size_t)(n > TG_MAX_ARITY ? n : TG_MAX_ARITY) * sizeof *slots);
    return slots;
}

/* r(h∘g∘f) = rf∘rg∘rh (Proposition 3.1): walk the tape from `out` back to
 * the start, handing each op the adjoint of its output; ops accumulate into
 * their inputs' adjoints, which sums adjoints where a value fans out. */
tg_status tg_backward_seed(tg_tape *t, const tg_tensor *out, const void *seed) {
    tg_status s = tg_tape_check_output(t, out, "backward");
    if (s) return s;
    if (!seed) return tg_fail(TG_ERR_ARG, "backward: seed is NULL");
    if (!out->requires_grad) return TG_OK; /* depends on no parameter */
    tg_tape_bump_gen(t);
    void *g = tg_tape_adjoint(t, &t->nodes[out->node]);
    if (!g) return tg_fail(TG_ERR_NOMEM, "backward: out of memory for adjoints");
    memcpy(g, seed, bytes_of(out));
    for (int k = out->node; k >= 0; k--) {
        tg_node *nd = &t->nodes[k];
        if (!nd->call.out->requires_grad || nd->adj_gen != t->gen) continue;
        void *local[TG_MAX_ARITY], **gin = tg_tape_slots(t, local, nd->call.n_in, 0);
        if (!gin)
            return tg_fail(TG_ERR_NOMEM, "backward: out of memory for %d inputs", nd->call.n_in);
        int any = 0, handed = 0; /* one buffer can be handed to one input only */
        for (int i = 0; i < nd->call.n_in; i++) {
            if (!handed && hand_over(t, nd, i)) {
                handed = 1;
                continue;
            }
            if ((s = input_adjoint(t, &nd->call, i, &gin[i]))) return s;
            any |= gin[i] != NULL;
        }
        if (any && nd->call.op->vjp) {
            nd->call.op->vjp(&nd->call, nd->adj, gin);
            if (t->anomaly && (s = tg_anomaly_backward(&nd->call, k, gin))) return s;
        } else if (any)
            return tg_fail(TG_ERR_STATE, "backward: op %s has no r-map", nd->call.op->name);
    }
    return TG_OK;
}

tg_status tg_backward(tg_tape *t, const tg_tensor *loss) {
    tg_status s = tg_tape_check_output(t, loss, "backward");
    if (s) return s;
    if (loss->size != 1) {
        char b[64];
        return tg_fail(TG_ERR_SHAPE, "backward: the loss must be a scalar, got shape %s",
                       tg_shape_str(loss, b, sizeof b));
    }
    const float one_f = 1.0f;
    const double one_d = 1.0;
    return tg_backward_seed(t, loss,
                            loss->dtype == TG_F32 ? (const void *)&one_f : (const void *)&one_d);
}

/* ------------------------------------------------------------- forward mode */

static const void *leaf_tangent(const tg_tensor *x, int n, const tg_tensor *const *leaves,
                                const void *const *tangents) {
    for (int i = 0; i < n; i++)
        if (leaves[i] == x) return tangents[i];
    return NULL;
}

/* d(h∘g∘f) = dh∘dg∘df: tangents flow forward in recording order, through
 * ops 0..last. */
tg_status tg_tape_jvp_pass(tg_tape *t, int n, const tg_tensor *const *leaves,
                           const void *const *tangents, int last) {
    tg_tape_bump_gen(t);
    for (int k = 0; k <= last; k++) {
        tg_node *nd = &t->nodes[k];
        const tg_call *c = &nd->call;
        void *local[TG_MAX_ARITY], **slots = tg_tape_slots(t, local, c->n_in, 0);
        if (!slots) return tg_fail(TG_ERR_NOMEM, "jvp: out of memory for %d inputs", c->n_in);
        const void **tin = (const void **)slots;
        int any = 0;
        for (int i = 0; i < c->n_in; i++) {
            const tg_tensor *x = c->in[i];
            if (tg_op_nondiff(c->op, i)) continue;
            if (x->kind == TG_NODE) {
                const tg_node *src = &t->nodes[x->node];
                tin[i] = src->tan_gen == t->gen ? src->tan : NULL;
            } else {
                tin[i] = leaf_tangent(x, n, leaves, tangents);
            }
            any |= tin[i] != NULL;
        }
        if (!any) continue;
        if (!c->op->jvp) return tg_fail(TG_ERR_STATE, "jvp: op %s has no d-map", c->op->name);
        if (!nd->tan) nd->tan = tg_arena_alloc(&t->arena, bytes_of(c->out));
        if (!nd->tan) return tg_fail(TG_ERR_NOMEM, "jvp: out of memory for tangents");
        c->op->jvp(c, (const void *const *)tin, nd->tan);
        nd->tan_gen = t->gen;
    }
    return TG_OK;
}

tg_status tg_jvp(tg_tape *t, int n, const tg_tensor *const *leaves, const void *const *tangents) {
    if (!t) return tg_fail(TG_ERR_ARG, "jvp: tape is NULL");
    if (n < 0 || (n > 0 && (!leaves || !tangents)))
        return tg_fail(TG_ERR_ARG, "jvp: bad leaves/tangents (n = %d)", n);
    for (int i = 0; i < n; i++)
        if (!leaves[i] || !tangents[i] || leaves[i]->kind == TG_NODE)
            return tg_fail(TG_ERR_ARG,
                           "jvp: leaf %d is NULL, has a NULL tangent, or is not a "
                           "leaf",
                           i);
    return tg_tape_jvp_pass(t, n, leaves, tangents, t->n - 1);
}

const void *tg_tangent(const tg_tape *t, const tg_tensor *x) {
    if (!t || !x || x->kind != TG_NODE || x->tape != t || x->node < 0 || x->node >= t->n)
        return NULL;
    const tg_node *nd = &t->nodes[x->node];
    return nd->tan_gen == t->gen ? nd->tan : NULL;
}
