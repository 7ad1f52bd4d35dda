/* Determinism (issue 5): the same seed and the same thread count give
 * bitwise-identical parameters after N steps of training — data generated
 * and shuffled from the seed, He/Xavier initialisation from the seed,
 * minibatches, Adam — on 1 OpenBLAS thread and on 2.
 *
 * OpenBLAS's gemm splits its work between threads by blocks of the output
 * matrix, each block computed by one thread with the full inner product,
 * so the order of every sum is fixed whatever the thread count; tapegrad's
 * own loops are single-threaded. The matrices here are large enough
 * (256 × 64 · 64 × 128 and up) for OpenBLAS to use its threads. The test
 * also prints, for information, whether 1 and 2 threads agree with each
 * other (not required by the issue). The same holds with tapegrad's own
 * pool (tg_set_threads): runs with 2 threads are bitwise equal. */
#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <cblas.h>
#include <stdlib.h>

#define STEPS 30
#define N     1024 /* examples */
#define D     64   /* features */
#define C     10   /* classes */
#define BATCH 256

typedef struct result {
    unsigned char *bytes; /* every parameter, concatenated */
    size_t len;
    double last_cost;
} result;

static void make_data(tg_dataset *ds, uint64_t seed) {
    tg_rng g;
    tg_rng_seed(&g, seed);
    ds->n = N, ds->d = D;
    ds->x = malloc(N * D * sizeof(double));
    ds->y = malloc(N * sizeof(double));
    for (size_t i = 0; i < N; i++) {
        size_t c = (size_t)(tg_rng_next(&g) % C);
        ds->y[i] = (double)c;
        for (size_t j = 0; j < D; j++)
            ds->x[i * D + j] = (j % C == c ? 1.5 : 0.0) + tg_rng_normal(&g);
    }
}

/* pool: threads from tg_set_threads (tapegrad's pool, OpenBLAS on one)
 * instead of OpenBLAS's; once used, the pool stays in charge. */
static result train(tg_dtype dt, int threads, uint64_t seed, int pool) {
    result r = {NULL, 0, 0};
    if (pool)
        CHECK_OK(tg_set_threads(threads));
    else
        openblas_set_num_threads(threads);
    tg_dataset ds;
    make_data(&ds, seed);
    tg_rng g;
    tg_rng_seed(&g, seed + 1);
    size_t widths[2] = {128, 64};
    tg_mlp *m = NULL;
    tg_tape *t = NULL;
    tg_optimizer *o = NULL;
    tg_tensor *x = NULL, *y = NULL, *params[8];
    CHECK_OK(tg_mlp_new(&m, dt, D, 2, widths, TG_ACT_RELU, C, TG_LOSS_CE));
    CHECK_OK(tg_mlp_init(m, &g));
    int np = tg_mlp_params(m, params, 8);
    tg_opt_config oc = tg_opt_defaults(TG_OPT_ADAM);
    oc.lr = 1e-2;
    CHECK_OK(tg_optimizer_new(&o, &oc, np, params));
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, dt, 2, (size_t[]){BATCH, D}));
    CHECK_OK(tg_tensor_new(&y, dt, 1, (size_t[]){BATCH}));
    size_t *idx = malloc(N * sizeof *idx);
    for (size_t i = 0; i < N; i++)
        idx[i] = i;
    for (int s = 0, pos = N; s < STEPS; s++, pos += BATCH) {
        if (pos + BATCH > N) {
            tg_shuffle(idx, N, &g);
            pos = 0;
        }
        tg_tensor *logits = NULL, *cost = NULL;
        CHECK_OK(tg_batch_fill(&ds, idx, (size_t)pos, BATCH, x, y));
        CHECK_OK(tg_mlp_forward(t, m, x, &logits));
        CHECK_OK(tg_mlp_cost(t, m, logits, y, &cost));
        CHECK_OK(tg_backward(t, cost));
        CHECK_OK(tg_optimizer_step(o));
        r.last_cost = tg_get(cost, 0);
        tg_tape_reset(t);
    }
    for (int i = 0; i < np; i++)
        r.len += params[i]->size * (dt == TG_F32 ? 4 : 8);
    r.bytes = malloc(r.len);
    for (int i = 0, off = 0; i < np; i++) {
        size_t b = params[i]->size * (dt == TG_F32 ? 4 : 8);
        memcpy(r.bytes + off, params[i]->data, b);
        off += (int)b;
    }
    free(idx);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
    tg_optimizer_free(o);
    tg_mlp_free(m);
    tg_dataset_free(&ds);
    return r;
}

static int same(const result *a, const result *b) {
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* Elements (of 4 or 8 bytes) that differ. */
static size_t differing(const result *a, const result *b, size_t esize) {
    size_t n = 0;
    for (size_t i = 0; i + esize <= a->len && a->len == b->len; i += esize)
        n += memcmp(a->bytes + i, b->bytes + i, esize) != 0;
    return n;
}

int main(void) {
    int max_threads = openblas_get_num_procs();
    openblas_set_num_threads(2);
    int two = openblas_get_num_threads();
    printf("OpenBLAS: %d processors; asking for 2 threads gives %d\n", max_threads, two);
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        const char *name = d ? "f64" : "f32";
        size_t es = d ? 8 : 4;
        result one_a = train(dt, 1, 7, 0), one_b = train(dt, 1, 7, 0);
        result two_a = train(dt, 2, 7, 0), two_b = train(dt, 2, 7, 0);
        result other = train(dt, 1, 8, 0);
        CHECK(same(&one_a, &one_b), "%s, 1 thread: two runs differ in %zu parameters", name,
              differing(&one_a, &one_b, es));
        CHECK(same(&two_a, &two_b), "%s, 2 threads: two runs differ in %zu parameters", name,
              differing(&two_a, &two_b, es));
        /* Another seed gives other parameters: the comparison can fail. */
        CHECK(!same(&one_a, &other), "%s: seeds 7 and 8 give the same parameters", name);
        CHECK(one_a.last_cost < 2.0, "%s: training went nowhere (cost %g)", name, one_a.last_cost);
        printf("%s: %d steps, cost %.6f; 1 thread vs 2 threads: %s (%zu of %zu parameters "
               "differ)\n",
               name, STEPS, one_a.last_cost, same(&one_a, &two_a) ? "identical" : "different",
               differing(&one_a, &two_a, es), one_a.len / es);
        free(one_a.bytes), free(one_b.bytes), free(two_a.bytes), free(two_b.bytes);
        free(other.bytes);
    }
    /* tapegrad's pool: its split products and steps are just as reproducible */
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        size_t es = d ? 8 : 4;
        result a = train(dt, 2, 7, 1), b = train(dt, 2, 7, 1), one = train(dt, 1, 7, 1);
        CHECK(same(&a, &b), "%s, pool of 2: two runs differ in %zu parameters", d ? "f64" : "f32",
              differing(&a, &b, es));
        printf("%s: pool of 2 threads vs 1: %s (%zu of %zu parameters differ)\n", d ? "f64" : "f32",
               same(&a, &one) ? "identical" : "different", differing(&a, &one, es), a.len / es);
        free(a.bytes), free(b.bytes), free(one.bytes);
    }
    return check_summary();
}
