/* Graph export: the ops recorded on a tape as Graphviz DOT.
 *
 * Ops are nodes n0, n1, ... (their index on the tape); leaves (inputs that
 * are not op results) are nodes l0, l1, ..., one per distinct tensor. Edges
 * go from each input to the op that reads it, so the picture reads in the
 * order the forward pass ran. */
#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <stdint.h>
#include <stdlib.h>

/* An input is an earlier op's result on this tape; anything else (a
 * parameter, a constant, or a node of another tape, which the tape would
 * have refused) is drawn as a leaf. */
static int is_op_result(const tg_tape *t, const tg_tensor *x, int i) {
    return x->kind == TG_NODE && x->tape == t && x->node >= 0 && x->node < i;
}

/* A distinct leaf; id is given when it is first drawn, so the output
 * numbers leaves in the order ops use them, the same on every run. */
typedef struct leaf {
    const tg_tensor *x;
    size_t id; /* SIZE_MAX until drawn */
} leaf;

static int cmp_leaf(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const leaf *)a)->x, y = (uintptr_t)((const leaf *)b)->x;
    return x < y ? -1 : x > y;
}

/* The distinct leaves of the tape, sorted by address so that finding an
 * input's leaf is a binary search (graphs can have thousands of ops). */
static tg_status collect_leaves(const tg_tape *t, leaf **out, size_t *count) {
    int n = tg_tape_size(t);
    size_t inputs = 1;
    for (int i = 0; i < n; i++)
        inputs += (size_t)tg_tape_call(t, i)->n_in;
    leaf *v = tg_malloc(inputs * sizeof *v);
    if (!v) return tg_fail(TG_ERR_NOMEM, "dot: out of memory");
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        const tg_call *c = tg_tape_call(t, i);
        for (int j = 0; c && j < c->n_in; j++)
            if (c->in[j] && !is_op_result(t, c->in[j], i)) v[k++] = (leaf){c->in[j], SIZE_MAX};
    }
    qsort(v, k, sizeof *v, cmp_leaf);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || v[u - 1].x != v[i].x) v[u++] = v[i];
    *out = v, *count = u;
    return TG_OK;
}

/* A DOT string body: quotes and backslashes escaped, so that any op name a
 * user gives a custom op stays one valid string. */
static void put_escaped(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

static void put_leaf(FILE *f, size_t id, const tg_tensor *x) {
    char shape[64];
    tg_shape_str(x, shape, sizeof shape);
    if (x->kind == TG_PARAM)
        fprintf(f, "  l%zu [shape=box, style=filled, fillcolor=lightblue, label=\"param %s\"];\n",
                id, shape);
    else
        fprintf(f, "  l%zu [shape=box, label=\"input %s\"];\n", id, shape);
}

/* The id of x's leaf node, declaring the node on first use. */
static size_t use_leaf(FILE *f, leaf *leaves, size_t n, size_t *next_id, const tg_tensor *x) {
    leaf key = {x, 0};
    leaf *l = bsearch(&key, leaves, n, sizeof *leaves, cmp_leaf);
    if (!l) return 0; /* cannot happen: every leaf input was collected */
    if (l->id == SIZE_MAX) {
        l->id = (*next_id)++;
        put_leaf(f, l->id, x);
    }
    return l->id;
}

/* Op i: its node, then one edge per input. */
static void put_op(FILE *f, const tg_tape *t, int i, leaf *leaves, size_t n_leaves,
                   size_t *next_id) {
    const tg_call *c = tg_tape_call(t, i);
    if (!c) return;
    char shape[64];
    tg_shape_str(c->out, shape, sizeof shape);
    fprintf(f, "  n%d [shape=ellipse, label=\"", i);
    put_escaped(f, c->op ? c->op->name : "?");
    fprintf(f, "\\n%s\"];\n", shape);
    for (int j = 0; j < c->n_in; j++) {
        const tg_tensor *x = c->in[j];
        if (!x) continue;
        if (is_op_result(t, x, i))
            fprintf(f, "  n%d -> n%d;\n", x->node, i);
        else
            fprintf(f, "  l%zu -> n%d;\n", use_leaf(f, leaves, n_leaves, next_id, x), i);
    }
}

tg_status tg_tape_dot(const tg_tape *t, FILE *f) {
    if (!t || !f) return tg_fail(TG_ERR_ARG, "dot: tape or file is NULL");
    leaf *leaves = NULL;
    size_t n_leaves = 0, next_id = 0;
    tg_status s = collect_leaves(t, &leaves, &n_leaves);
    if (s) return s;
    fprintf(f, "digraph tapegrad {\n  rankdir=TB;\n");
    for (int i = 0; i < tg_tape_size(t); i++)
        put_op(f, t, i, leaves, n_leaves, &next_id);
    fprintf(f, "}\n");
    tg_free(leaves);
    /* Check once at the end: stdio keeps the error flag sticky. */
    if (fflush(f) != 0 || ferror(f)) return tg_fail(TG_ERR_IO, "dot: write error");
    return TG_OK;
}
