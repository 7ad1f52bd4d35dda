/* Two tapes used at once on two of the user's threads ("different tapes may
 * be used concurrently", tapegrad.h), first on OpenBLAS's threads (no
 * tg_set_threads: a large product on OpenBLAS's pool, a small one on one
 * OpenBLAS thread set and restored under linalg.c's lock), then on
 * tapegrad's pool of 2 (whoever finds it busy runs its parts alone). Each
 * thread trains its own network, one at batch 64 and one at batch 1
 * (gemv/ger); the result must equal, bit for bit, the same training run
 * alone, and each thread's tg_last_error must be its own. scripts/test.sh
 * runs this under ThreadSanitizer. No CHECK inside the threads: its
 * counters are not atomic. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "tapegrad_nn.h"

#include <pthread.h>
#include <stdlib.h>

enum { IN = 96, HID = 64, STEPS = 12 };

typedef struct job {
    size_t batch;
    tg_dtype dt;
    uint64_t seed;
    unsigned char w[2][IN * HID * sizeof(double)]; /* the two weights after training */
    int ok;
    int own_error; /* tg_last_error named this thread's shapes after the other's calls */
} job;

static tg_tensor *uniform(tg_dtype dt, size_t r, size_t c, tg_rng *g, int param) {
    tg_tensor *t = NULL;
    size_t shape[2] = {r, c};
    if ((param ? tg_param_new : tg_tensor_new)(&t, dt, 2, shape)) return NULL;
    for (size_t i = 0; i < t->size; i++)
        tg_set(t, i, tg_rng_uniform(g) - 0.5);
    return t;
}

/* A failed matmul whose message names this job's batch; checked after
 * training, when the other thread has made calls (and errors) of its own. */
static int make_error(const job *j, tg_tape *t, tg_tensor *x, char *want, size_t len) {
    tg_tensor *out;
    snprintf(want, len, "(%zux%d)·(%zux%d)", j->batch, IN, j->batch, IN);
    return tg_matmul(t, x, x, &out) == TG_ERR_SHAPE;
}

/* x (batch × 96) → tanh(x·W1) (× 64) → ·W2 (64 × 1) → mean, Adam on W1, W2. */
static void *train(void *arg) {
    job *j = arg;
    tg_rng g;
    tg_rng_seed(&g, j->seed);
    tg_tensor *x = uniform(j->dt, j->batch, IN, &g, 0);
    tg_tensor *w[2] = {uniform(j->dt, IN, HID, &g, 1), uniform(j->dt, HID, 1, &g, 1)};
    tg_tape *t = NULL;
    tg_optimizer *o = NULL;
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    char want[64];
    j->ok = x && w[0] && w[1] && !tg_tape_new(&t) && !tg_optimizer_new(&o, &c, 2, w) &&
            make_error(j, t, x, want, sizeof want);
    for (int s = 0; j->ok && s < STEPS; s++) {
        tg_tensor *z, *a, *y, *l;
        j->ok = !tg_matmul(t, x, w[0], &z) && !tg_tanh(t, z, &a) && !tg_matmul(t, a, w[1], &y) &&
                !tg_mean(t, y, &l) && !tg_backward(t, l) && !tg_optimizer_step(o);
        tg_tape_reset(t);
    }
    j->own_error = strstr(tg_last_error(), want) != NULL;
    size_t es = j->dt == TG_F32 ? sizeof(float) : sizeof(double);
    for (int i = 0; j->ok && i < 2; i++)
        memcpy(j->w[i], w[i]->data, w[i]->size * es);
    tg_optimizer_free(o);
    tg_tape_free(t);
    tg_tensor_free(x), tg_tensor_free(w[0]), tg_tensor_free(w[1]);
    return NULL;
}

/* Both jobs alone, then both at once: the same bits. */
static void check_concurrent(const char *mode, tg_dtype dt) {
    job *solo = calloc(2, sizeof *solo), *both = calloc(2, sizeof *both);
    CHECK(solo && both, "out of memory");
    if (!solo || !both) return;
    for (int i = 0; i < 2; i++) {
        solo[i].batch = both[i].batch = i ? 1 : 64;
        solo[i].dt = both[i].dt = dt;
        solo[i].seed = both[i].seed = 100 + (uint64_t)i;
        train(&solo[i]);
        CHECK(solo[i].ok && solo[i].own_error, "%s: job %d alone failed: %s", mode, i,
              tg_last_error());
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, train, &both[i]) == 0, "pthread_create");
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(both[i].ok, "%s: job %d failed beside the other", mode, i);
        CHECK(both[i].own_error, "%s: job %d: tg_last_error is not its own", mode, i);
        CHECK(memcmp(both[i].w, solo[i].w, sizeof solo[i].w) == 0,
              "%s: job %d: weights differ from the run alone", mode, i);
    }
    free(solo), free(both);
}

int main(void) {
    /* OpenBLAS's threads: float64, whose results do not depend on how many
     * threads OpenBLAS gives a product (fuzz/findings/sgemm_threads.c). */
    check_concurrent("OpenBLAS threads", TG_F64);
    CHECK_OK(tg_set_threads(2));
    check_concurrent("tapegrad pool", TG_F32);
    check_concurrent("tapegrad pool", TG_F64);
    CHECK_OK(tg_set_threads(1)); /* workers stopped: nothing left running at exit */
    return check_summary();
}
