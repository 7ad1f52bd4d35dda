/* tapegrad's thread pool (tg_set_threads): the split products and the split
 * optimizer step compute what one thread computes, a busy pool falls back
 * to the caller without changing a result, and bad thread counts are
 * refused. The products are checked against a naive sum in double, with
 * shapes that take each split of linalg.c (rows of C, columns of C, the
 * inner dimension with partial sums added after), none under 32768
 * multiply-adds, and gemv/ger where a dimension is 1. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

/* A tensor of uniform values in [−0.5, 0.5); NULL if it cannot be made.
 * No CHECK inside: the two-caller test calls it from its own threads. */
static tg_tensor *make(tg_dtype dt, size_t r, size_t c, tg_rng *g, int param) {
    tg_tensor *t = NULL;
    size_t shape[2] = {r, c};
    if ((param ? tg_param_new : tg_tensor_new)(&t, dt, 2, shape)) return NULL;
    for (size_t i = 0; i < t->size; i++)
        tg_set(t, i, tg_rng_uniform(g) - 0.5);
    return t;
}

static tg_tensor *filled(tg_dtype dt, size_t r, size_t c, tg_rng *g, int param) {
    tg_tensor *t = make(dt, r, c, g, param);
    CHECK(t != NULL, "cannot make a %zux%zu tensor: %s", r, c, tg_last_error());
    return t;
}

/* Largest |got − want| / (Σ_k |a||b| + tiny) over C = A·B, in double. */
static double product_error(const tg_tensor *a, const tg_tensor *b, const tg_tensor *c) {
    size_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    double worst = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (size_t q = 0; q < k; q++) {
                double p = tg_get(a, i * k + q) * tg_get(b, q * n + j);
                s += p, mag += p < 0 ? -p : p;
            }
            double e = (tg_get(c, i * n + j) - s) / (mag + 1e-300);
            worst = e > worst ? e : -e > worst ? -e : worst;
        }
    return worst;
}

/* A rounding bound for a k-term dot product relative to Σ|terms|: k·u,
 * u = 2⁻²⁴ (float32) or 2⁻⁵³ (float64); the naive sum in double adds
 * nothing visible at float32 and at most k·2⁻⁵³ more at float64. */
static double product_bound(tg_dtype dt, size_t k) {
    return 2.0 * (double)k * (dt == TG_F32 ? 0x1p-24 : 0x1p-53);
}

/* ---------------------------------------------------------------- products */

/* Σ and Σ|·| of count elements of t from start, stride apart, in double. */
static double line_sum(const tg_tensor *t, size_t start, size_t stride, size_t count, double *mag) {
    double s = 0;
    *mag = 0;
    for (size_t i = 0; i < count; i++) {
        double v = tg_get(t, start + i * stride);
        s += v, *mag += fabs(v);
    }
    return s;
}

static double grad_at(const tg_tensor *p, size_t i) {
    return p->dtype == TG_F32 ? ((float *)p->grad)[i] : ((double *)p->grad)[i];
}

/* Forward C = A·B and both r-maps (Ā = ζ·Bᵀ, B̄ = Aᵀ·ζ, transposed BLAS
 * calls) against the naive products; the gradients are themselves
 * products, checked the same way with ζ = ones (so Ā = row sums of B...). */
static void check_products(int threads, tg_dtype dt, size_t m, size_t k, size_t n) {
    CHECK_OK(tg_set_threads(threads));
    tg_rng g;
    tg_rng_seed(&g, 1000 + m * 7 + k * 3 + n);
    tg_tensor *a = filled(dt, m, k, &g, 1), *b = filled(dt, k, n, &g, 1);
    tg_tape *t = NULL;
    tg_tensor *c = NULL, *s = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_matmul(t, a, b, &c));
    CHECK_OK(tg_sum(t, c, &s));
    CHECK_OK(tg_backward(t, s));
    double bound = product_bound(dt, k);
    double e = c ? product_error(a, b, c) : 1;
    CHECK(e <= bound, "%d threads, %s %zux%zu·%zux%zu: forward error %.3g > %.3g", threads,
          dt == TG_F32 ? "f32" : "f64", m, k, k, n, e, bound);
    /* Ā[i][q] = Σ_j B[q][j] (a row of B), B̄[q][j] = Σ_i A[i][q] (a column of A) */
    double worst = 0, mag;
    for (size_t i = 0; i < m; i++)
        for (size_t q = 0; q < k; q++) {
            double want = line_sum(b, q * n, 1, n, &mag);
            worst = fmax(worst, fabs(grad_at(a, i * k + q) - want) / (mag + 1e-300));
        }
    for (size_t q = 0; q < k; q++)
        for (size_t j = 0; j < n; j++) {
            double want = line_sum(a, q, k, m, &mag);
            worst = fmax(worst, fabs(grad_at(b, q * n + j) - want) / (mag + 1e-300));
        }
    double gbound = product_bound(dt, m > n ? m : n);
    CHECK(worst <= gbound, "%d threads, %s %zux%zu·%zux%zu: gradient error %.3g > %.3g", threads,
          dt == TG_F32 ? "f32" : "f64", m, k, k, n, worst, gbound);
    tg_tape_free(t);
    tg_tensor_free(a), tg_tensor_free(b);
}

static void test_products(void) {
    /* rows split (m ≥ 32), columns split (m < 32, n ≥ 32), below the
     * threshold, batch 1 (gemv by columns), k = 1 (ger by rows), odd sizes
     * that leave a ragged last part; 8x200·200x300 cuts Aᵀ·ζ by rows of
     * the transposed A */
    static const size_t shapes[][3] = {{128, 96, 80}, {16, 200, 64}, {8, 8, 8},
                                       {1, 300, 200}, {300, 1, 200}, {97, 65, 33},
                                       {33, 40, 1},   {200, 50, 31}, {8, 200, 300}};
    for (int th = 1; th <= 3; th++)
        for (int d = 0; d < 2; d++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_products(th, d ? TG_F64 : TG_F32, shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* Workers that went to sleep (idle over 2 ms) wake for the next product,
 * and the pool can grow and shrink between products. */
static void test_sleep_and_resize(void) {
    static const int counts[] = {2, 3, 1, 4, 2};
    for (int i = 0; i < 5; i++) {
        check_products(counts[i], TG_F64, 128, 96, 80);
        struct timespec ts = {0, 5000000L}; /* 5 ms: every worker sleeps */
        nanosleep(&ts, NULL);
        check_products(counts[i], TG_F32, 16, 200, 64);
    }
}

/* ---------------------------------------------------------------- optimizer */

/* An Adam step is elementwise, so its split cannot change a result: the
 * parameters after 3 steps with 2 threads equal those with 1, bitwise. */
static void adam_params(int threads, tg_dtype dt, unsigned char *out, size_t *len) {
    CHECK_OK(tg_set_threads(threads));
    tg_rng g;
    tg_rng_seed(&g, 5);
    tg_tensor *p[3] = {filled(dt, 300, 200, &g, 1), filled(dt, 1, 7, &g, 1),
                       filled(dt, 33, 65, &g, 1)};
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    tg_optimizer *o = NULL;
    CHECK_OK(tg_optimizer_new(&o, &c, 3, p));
    for (int s = 0; o && s < 3; s++) {
        for (int i = 0; i < 3; i++)
            for (size_t e = 0; e < p[i]->size; e++) {
                double v = tg_rng_uniform(&g) - 0.5;
                if (dt == TG_F32)
                    ((float *)p[i]->grad)[e] = (float)v;
                else
                    ((double *)p[i]->grad)[e] = v;
            }
        CHECK_OK(tg_optimizer_step(o));
    }
    *len = 0;
    for (int i = 0; i < 3; i++) {
        size_t b = p[i]->size * (dt == TG_F32 ? 4 : 8);
        memcpy(out + *len, p[i]->data, b);
        *len += b;
        tg_tensor_free(p[i]);
    }
    tg_optimizer_free(o);
}

static void test_optimizer(void) {
    size_t cap = (300 * 200 + 7 + 33 * 65) * 8, l1 = 0, l2 = 0;
    unsigned char *one = malloc(cap), *two = malloc(cap);
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        adam_params(1, dt, one, &l1);
        adam_params(2, dt, two, &l2);
        CHECK(l1 == l2 && memcmp(one, two, l1) == 0, "%s: Adam on 2 threads differs from 1",
              d ? "f64" : "f32");
    }
    free(one), free(two);
}

/* ---------------------------------------------------------------- batches */

static void test_batch_fill(void) {
    tg_dataset ds = {200, 50, malloc(200 * 50 * sizeof(double)), malloc(200 * sizeof(double))};
    for (size_t i = 0; i < 200 * 50; i++)
        ds.x[i] = (double)i * 0.25;
    for (size_t i = 0; i < 200; i++)
        ds.y[i] = (double)(i % 10);
    size_t idx[200];
    for (size_t i = 0; i < 200; i++)
        idx[i] = (i * 37) % 200; /* a permutation: 37 is prime to 200 */
    tg_tensor *x = NULL, *y = NULL;
    CHECK_OK(tg_set_threads(2));
    CHECK_OK(tg_tensor_new(&x, TG_F32, 2, (size_t[]){100, 50}));
    CHECK_OK(tg_tensor_new(&y, TG_F32, 1, (size_t[]){100}));
    CHECK_OK(tg_batch_fill(&ds, idx, 50, 100, x, y));
    size_t bad = 0;
    for (size_t i = 0; i < 100; i++) {
        size_t k = idx[50 + i];
        bad += tg_get(y, i) != ds.y[k];
        for (size_t j = 0; j < 50; j++)
            bad += tg_get(x, i * 50 + j) != (double)(float)ds.x[k * 50 + j];
    }
    CHECK(bad == 0, "batch filled on 2 threads: %zu values wrong", bad);
    tg_tensor_free(x), tg_tensor_free(y);
    /* float64, no index (rows in order), 37 rows: ragged parts */
    CHECK_OK(tg_tensor_new(&x, TG_F64, 2, (size_t[]){37, 50}));
    CHECK_OK(tg_tensor_new(&y, TG_F64, 1, (size_t[]){37}));
    CHECK_OK(tg_batch_fill(&ds, NULL, 150, 37, x, y));
    bad = 0;
    for (size_t i = 0; i < 37; i++) {
        bad += tg_get(y, i) != ds.y[150 + i];
        for (size_t j = 0; j < 50; j++)
            bad += tg_get(x, i * 50 + j) != ds.x[(150 + i) * 50 + j];
    }
    CHECK(bad == 0, "float64 batch without index: %zu values wrong", bad);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_dataset_free(&ds);
}

/* ---------------------------------------------------------------- two callers */

/* Two threads of the user's each train their own copy of one problem, while
 * the pool has 2 threads: whoever finds the pool busy runs its parts itself,
 * which must not change a bit of the result. */
typedef struct run {
    unsigned char bytes[64 * 48 * 4];
    int ok;
} run;

static void *train_copy(void *arg) {
    run *r = arg;
    tg_rng g;
    tg_rng_seed(&g, 11);
    tg_tensor *x = make(TG_F32, 96, 64, &g, 0), *w = make(TG_F32, 64, 48, &g, 1);
    tg_tape *t = NULL;
    tg_optimizer *o = NULL;
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    r->ok = x && w && !tg_tape_new(&t) && !tg_optimizer_new(&o, &c, 1, &w);
    for (int s = 0; r->ok && s < 40; s++) {
        tg_tensor *z, *a, *l;
        r->ok = !tg_matmul(t, x, w, &z) && !tg_tanh(t, z, &a) && !tg_mean(t, a, &l) &&
                !tg_backward(t, l) && !tg_optimizer_step(o);
        tg_tape_reset(t);
    }
    if (r->ok) memcpy(r->bytes, w->data, sizeof r->bytes);
    tg_tape_free(t);
    tg_optimizer_free(o);
    tg_tensor_free(x), tg_tensor_free(w);
    return NULL;
}

static void test_two_callers(void) {
    CHECK_OK(tg_set_threads(2));
    run *solo = calloc(1, sizeof *solo), *r = calloc(2, sizeof *r);
    train_copy(solo);
    CHECK(solo->ok, "training alone failed: %s", tg_last_error());
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, train_copy, &r[i]) == 0, "pthread_create");
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(r[i].ok, "caller %d: training failed", i);
        CHECK(memcmp(r[i].bytes, solo->bytes, sizeof solo->bytes) == 0,
              "caller %d: result differs from the run alone", i);
    }
    free(solo), free(r);
}

/* ---------------------------------------------------------------- fork */

/* A child forked while the pool runs has no workers: its products must
 * still finish (on one thread), not wait for a worker that is not there.
 * alarm() turns a hang into a failure. */
static void test_fork(void) {
    CHECK_OK(tg_set_threads(2));
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        tg_rng g;
        tg_rng_seed(&g, 3);
        tg_tensor *a = make(TG_F64, 128, 96, &g, 0), *b = make(TG_F64, 96, 80, &g, 0), *c;
        tg_tape *t = NULL;
        int ok = a && b && !tg_tape_new(&t) && !tg_matmul(t, a, b, &c) &&
                 product_error(a, b, c) <= product_bound(TG_F64, 96) && tg_get_threads() == 1;
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid failed");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forked child: %s",
          WIFSIGNALED(st) ? "killed (hung?)" : "wrong product or thread count");
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void) {
    EXPECT_ERR(tg_set_threads(0), TG_ERR_ARG, "set_threads: 0 threads, need 1..64");
    EXPECT_ERR(tg_set_threads(65), TG_ERR_ARG, "set_threads: 65 threads, need 1..64");
    EXPECT_ERR(tg_set_threads(-3), TG_ERR_ARG, "set_threads: -3 threads, need 1..64");
    CHECK_OK(tg_set_threads(3));
    CHECK(tg_get_threads() == 3, "3 threads asked, %d in use", tg_get_threads());
    CHECK_OK(tg_set_threads(1));
    CHECK(tg_get_threads() == 1, "1 thread asked, %d in use", tg_get_threads());
}

/* Elementwise maps of large tensors run in parts on the pool (unary.h,
 * issue 17), softmax's and layer_norm's rows too: gelu's value, r-map and
 * d-map on 100003 elements (not a multiple of the parts' 16), softmax's
 * and layer_norm's (with γ's adjoint, cut by columns) on 7 rows, are
 * bitwise those of one thread. */
static void unary_maps(int threads, tg_dtype dt, int kind, unsigned char *out, size_t bytes) {
    size_t n = kind ? 100002 : 100003, es = dt == TG_F32 ? 4 : 8; /* kinds 1, 2: 7×14286 */
    tg_tensor *x = NULL, *y = NULL;
    CHECK_OK(tg_set_threads(threads));
    CHECK_OK(tg_param_new(&x, dt, 1, &n));
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!x || !t || bytes < 4 * n * es) return;
    for (size_t i = 0; i < n; i++)
        tg_set(x, i, -8.0 + 16.0 * (double)i / (double)n);
    /* gelu on the vector, or softmax along the last axis of (7×14286)
     * (kind 1: its rows go to the pool; 100002 of the elements) */
    tg_tensor *v = x;
    if (kind) CHECK_OK(tg_reshape(t, x, 2, (long[]){7, 14286}, &v));
    tg_tensor *gamma = NULL, *beta = NULL;
    size_t cols = 14286;
    if (kind == 2) { /* layer norm of the rows, γ and β away from 1 and 0 */
        CHECK_OK(tg_param_new(&gamma, dt, 1, &cols));
        CHECK_OK(tg_param_new(&beta, dt, 1, &cols));
        for (size_t i = 0; gamma && beta && i < cols; i++)
            tg_set(gamma, i, 1.0 + 0.001 * (double)(i % 97)),
                tg_set(beta, i, 0.01 * (double)(i % 13));
    }
    if (kind == 1)
        CHECK_OK(tg_softmax(t, v, &y));
    else if (kind == 2)
        CHECK_OK(tg_layer_norm(t, v, 1, &cols, gamma, beta, 1e-5, &y));
    else
        CHECK_OK(tg_gelu(t, x, TG_GELU_NONE, &y));
    void *seed = malloc(n * es);
    for (size_t i = 0; seed && i < n; i++)
        memcpy((char *)seed + i * es, (char *)x->data + ((i * 7) % n) * es, es);
    if (y && seed) {
        CHECK_OK(tg_backward_seed(t, y, seed));
        const tg_tensor *leaves[1] = {x};
        const void *tans[1] = {seed};
        CHECK_OK(tg_jvp(t, 1, leaves, tans));
        memcpy(out, y->data, n * es), memcpy(out + n * es, x->grad, n * es);
        const void *ty = tg_tangent(t, y);
        if (ty) memcpy(out + 2 * n * es, ty, n * es);
        if (gamma) memcpy(out + 3 * n * es, gamma->grad, cols * es);
    }
    tg_tensor_free(gamma), tg_tensor_free(beta);
    free(seed);
    tg_tape_free(t);
    tg_tensor_free(x);
}

static void test_unary_parts(void) {
    size_t bytes = 4 * 100003 * 8;
    unsigned char *one = calloc(1, bytes), *two = calloc(1, bytes);
    for (int dt = 0; one && two && dt < 2; dt++) {
        for (int kind = 0; kind < 3; kind++) {
            memset(one, 0, bytes), memset(two, 0, bytes);
            unary_maps(1, (tg_dtype)dt, kind, one, bytes);
            unary_maps(2, (tg_dtype)dt, kind, two, bytes);
            CHECK(memcmp(one, two, bytes) == 0, "%s's maps differ on 2 threads (%s)",
                  kind == 2 ? "layer_norm"
                  : kind    ? "softmax"
                            : "gelu",
                  dt ? "f64" : "f32");
        }
    }
    free(one), free(two);
    CHECK_OK(tg_set_threads(1));
}

int main(void) {
    CHECK(tg_get_threads() == 1, "before tg_set_threads: %d threads", tg_get_threads());
    test_unary_parts();
    test_errors();
    test_products();
    test_sleep_and_resize();
    test_optimizer();
    test_batch_fill();
    test_two_callers();
    test_fork();
    CHECK_OK(tg_set_threads(1)); /* workers stopped: nothing left running at exit */
    return check_summary();
}
