/* Training: gradient descent W := W − α·r𝕁 on generated data lowers the
 * cost; after the first step a training step makes no heap allocation
 * (tapegrad's allocation counter); replaying a recorded tape gives the
 * same parameters, bit for bit, as recording it anew each step; every buffer
 * handed out is 64-byte aligned. */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>

#define N 64
#define D 5
#define H 16
#define C 3

typedef struct net {
    tg_tensor *x, *labels, *w1, *b1, *w2, *b2;
} net;

static void net_init(net *n, tg_dtype dt, uint64_t seed) {
    tg_rng g;
    tg_rng_seed(&g, seed);
    CHECK_OK(tg_tensor_new(&n->x, dt, 2, (size_t[]){N, D}));
    CHECK_OK(tg_tensor_new(&n->labels, dt, 1, (size_t[]){N}));
    CHECK_OK(tg_param_new(&n->w1, dt, 2, (size_t[]){D, H}));
    CHECK_OK(tg_param_new(&n->b1, dt, 1, (size_t[]){H}));
    CHECK_OK(tg_param_new(&n->w2, dt, 2, (size_t[]){H, C}));
    CHECK_OK(tg_param_new(&n->b2, dt, 1, (size_t[]){C}));
    /* three Gaussian blobs; the class is the blob */
    for (size_t i = 0; i < N; i++) {
        size_t c = i % C;
        tg_set(n->labels, i, (double)c);
        for (size_t j = 0; j < D; j++)
            tg_set(n->x, i * D + j, (j == c ? 2.0 : 0.0) + tg_rng_normal(&g));
    }
    for (size_t i = 0; i < n->w1->size; i++)
        tg_set(n->w1, i, 0.3 * tg_rng_normal(&g));
    for (size_t i = 0; i < n->w2->size; i++)
        tg_set(n->w2, i, 0.3 * tg_rng_normal(&g));
}

static void net_free(net *n) {
    tg_tensor *all[] = {n->x, n->labels, n->w1, n->b1, n->w2, n->b2};
    for (int i = 0; i < 6; i++)
        tg_tensor_free(all[i]);
}

static tg_tensor *record(tg_tape *t, const net *n) {
    tg_tensor *z, *a, *cost = NULL;
    CHECK_OK(tg_matmul(t, n->x, n->w1, &z));
    CHECK_OK(tg_bias_add(t, z, n->b1, &z));
    CHECK_OK(tg_relu(t, z, &a));
    CHECK_OK(tg_matmul(t, a, n->w2, &z));
    CHECK_OK(tg_bias_add(t, z, n->b2, &z));
    CHECK_OK(tg_softmax_ce(t, z, n->labels, &cost));
    return cost;
}

static void sgd(const net *n, double lr) {
    tg_tensor *ps[] = {n->w1, n->b1, n->w2, n->b2};
    for (int p = 0; p < 4; p++) {
        tg_tensor g = *ps[p];
        g.data = g.grad;
        for (size_t i = 0; i < ps[p]->size; i++)
            tg_set(ps[p], i, tg_get(ps[p], i) - lr * tg_get(&g, i));
        tg_zero_grad(ps[p]);
    }
}

/* Record → backward → update → reset, `steps` times. Returns first and last
 * cost and the allocations made after step 1. */
static void train(tg_dtype dt, int steps, double *first, double *last, uint64_t *allocs) {
    net n;
    tg_tape *t;
    net_init(&n, dt, 11);
    CHECK_OK(tg_tape_new(&t));
    uint64_t before = 0;
    for (int s = 0; s < steps; s++) {
        tg_tensor *cost = record(t, &n);
        CHECK_OK(tg_backward(t, cost));
        if (s == 0) *first = tg_get(cost, 0);
        *last = tg_get(cost, 0);
        sgd(&n, 0.5);
        tg_tape_reset(t);
        if (s == 0) before = tg_alloc_count();
    }
    *allocs = tg_alloc_count() - before;
    tg_tape_free(t);
    net_free(&n);
}

static void test_descent(tg_dtype dt) {
    double first = 0, last = 0;
    uint64_t allocs = 1;
    train(dt, 200, &first, &last, &allocs);
    /* log(3) ≈ 1.1 at the start; separable blobs should fall far below. */
    CHECK(last < 0.5 * first, "%s: cost %g -> %g did not fall by half", dt ? "f64" : "f32", first,
          last);
    CHECK(allocs == 0, "%s: %llu allocations in 199 steps after the first", dt ? "f64" : "f32",
          (unsigned long long)allocs);
}

/* Record once, then replay → backward → update: same numbers as re-recording. */
static void test_replay_matches_record(void) {
    net a, b;
    tg_tape *ta, *tb;
    net_init(&a, TG_F32, 5), net_init(&b, TG_F32, 5);
    CHECK_OK(tg_tape_new(&ta));
    CHECK_OK(tg_tape_new(&tb));
    tg_tensor *cost_b = record(tb, &b);
    for (int s = 0; s < 20; s++) {
        tg_tensor *cost_a = record(ta, &a);
        CHECK_OK(tg_backward(ta, cost_a));
        sgd(&a, 0.5);
        tg_tape_reset(ta);
        if (s > 0) CHECK_OK(tg_replay(tb));
        CHECK_OK(tg_backward(tb, cost_b));
        sgd(&b, 0.5);
    }
    CHECK(memcmp(a.w1->data, b.w1->data, a.w1->size * sizeof(float)) == 0 &&
              memcmp(a.b2->data, b.b2->data, a.b2->size * sizeof(float)) == 0,
          "replayed training differs from re-recorded training");
    tg_tape_free(ta), tg_tape_free(tb);
    net_free(&a), net_free(&b);
}

/* Every buffer the library hands out starts on a 64-byte line (tapegrad.h
 * promises it; an AVX-512 access to a misaligned one reads two lines):
 * leaves' data and gradients and op results, for sizes that are not
 * multiples of a line, after other allocations of odd sizes. */
static int aligned64(const void *p) {
    return ((uintptr_t)p & 63u) == 0;
}

static void test_alignment(void) {
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    /* up to 337 × 339 floats (457 KB): large blocks come from mmap, where
     * malloc's header leaves them 16 bytes past a page */
    for (size_t n = 1; n <= 337; n += n < 37 ? 6 : 100) {
        void *odd = malloc(n * 24 + 8); /* disturbs malloc's state between tensors */
        tg_tensor *x, *w, *z, *a;
        CHECK_OK(tg_tensor_new(&x, TG_F32, 2, (size_t[]){n, n}));
        CHECK_OK(tg_param_new(&w, TG_F32, 2, (size_t[]){n, n + 2}));
        CHECK_OK(tg_matmul(t, x, w, &z));
        CHECK_OK(tg_relu(t, z, &a));
        CHECK(aligned64(x->data) && aligned64(w->data) && aligned64(w->grad),
              "n=%zu: leaf buffers %p %p %p not 64-byte aligned", n, x->data, w->data, w->grad);
        CHECK(aligned64(z->data) && aligned64(a->data), "n=%zu: op results %p %p not aligned", n,
              z->data, a->data);
        tg_tape_reset(t);
        tg_tensor_free(x), tg_tensor_free(w);
        free(odd);
    }
    /* a block of 4 MiB or more takes the allocator's huge-page path */
    tg_tensor *big;
    CHECK_OK(tg_param_new(&big, TG_F64, 2, (size_t[]){1031, 517}));
    CHECK(aligned64(big->data) && aligned64(big->grad), "large leaf %p %p not aligned", big->data,
          big->grad);
    for (size_t i = 0; i < big->size; i += 4099)
        CHECK(tg_get(big, i) == 0.0, "large leaf not zeroed at %zu", i);
    tg_tensor_free(big);
    tg_tape_free(t);
}

int main(void) {
    test_alignment();
    test_descent(TG_F32);
    test_descent(TG_F64);
    test_replay_matches_record();
    return check_summary();
}
