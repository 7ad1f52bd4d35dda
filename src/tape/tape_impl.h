/* The tape's data structures, shared by tape.c (record, backward, jvp) and
 * hvp.c (second order). Not installed. */
#ifndef TG_TAPE_IMPL_H
#define TG_TAPE_IMPL_H

#include "internal.h"

typedef struct tg_node {
    tg_call call;
    void *adj;  /* adjoint ζ of the output, valid if adj_gen == gen: own, or a consumer's */
    void *own;  /* this node's adjoint buffer in the arena, made on first need */
    void *tan;  /* tangent dF(ξ) of the output (arena), valid if tan_gen == gen */
    void *adot; /* adjoint-tangent ζ̇ of the output (hvp.c; arena), valid if adot_gen == gen */
    unsigned adj_gen, tan_gen, adot_gen;
} tg_node;

/* Pointer arrays per call: gin and tin, and hvp.c's ζ̇ adjoints. */
#define TG_MAP_ARRAYS 3

struct tg_tape {
    tg_arena arena;
    tg_node *nodes;
    int n, cap;
    void **maps; /* TG_MAP_ARRAYS arrays of maps_cap pointers for calls of more
                    than TG_MAX_ARITY inputs */
    int maps_cap;
    unsigned gen; /* bumped by each backward/jvp: marks adjoints/tangents stale */
    int anomaly;  /* check every output and adjoint for NaN/Inf */
};

static inline size_t bytes_of(const tg_tensor *x) {
    return x->size * tg_dtype_size(x->dtype);
}

/* A new pass: every adjoint/tangent of an earlier pass becomes stale. */
void tg_tape_bump_gen(tg_tape *t);
/* *buf (the node's output size, made in the arena if NULL), zeroed; NULL: out of memory. */
void *tg_tape_zeroed(tg_tape *t, const tg_node *nd, void **buf);
/* The node's adjoint buffer, zeroed on first use in this pass (NULL: out of memory). */
void *tg_tape_adjoint(tg_tape *t, tg_node *nd);
/* Zeroed room for the pointers of a call with n inputs: `local` (of
 * TG_MAX_ARITY) or the tape's array `which` < TG_MAP_ARRAYS. */
void **tg_tape_slots(tg_tape *t, void **local, int n, int which);
/* TG_OK if out is a result on t, else a status and a message starting with who. */
tg_status tg_tape_check_output(const tg_tape *t, const tg_tensor *out, const char *who);
/* A new generation and the tangents of ops 0..last from the leaves' (arguments checked). */
tg_status tg_tape_jvp_pass(tg_tape *t, int n, const tg_tensor *const *leaves,
                           const void *const *tangents, int last);

#endif
