/* Allocation failure (issue 5): tg_testing_fail_alloc_at(n) makes the n-th
 * tapegrad allocation fail, for EVERY n along
 *   (a) a whole first training step: tape, MLP, initialisation, batch
 *       tensors, optimizer, forward, cost, backward, optimizer step, for
 *       several dtypes, losses and optimizers; and a failed step on a live
 *       tape that the caller then simply retries;
 *   (b) a model load, and a load followed by predictions;
 *   (c) the loaders' paths that tests/test_data.c does not reach (a CSV
 *       whose buffers must grow, a gzipped IDX pair); test_data.c covers the
 *       small CSV and IDX files, test_model.c the model save;
 *   (d) the derivative checks and forward mode (tg_jvp, tg_adjoint_check,
 *       tg_gradcheck).
 * Each path is first run without the hook to count its allocations A; then
 * for n = 1 .. A it must return TG_OK or TG_ERR_NOMEM with a message (an
 * allocation the library can do without, like a shrinking realloc, may
 * fail silently), and for n = A + 1 it must succeed. The sanitizer build
 * (ASan + LSan) fails the test if any of these runs leaks or touches freed
 * memory. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"
#include "tapegrad_testing.h"

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

/* A failed expectation inside a path under test: say why, report a status. */
static tg_status test_fail(const char *why) {
    fprintf(stderr, "%s\n", why);
    return TG_ERR_STATE;
}

static char dir[] = "/tmp/tg-allocfail-XXXXXX";

static const char *in_dir(const char *name) {
    return check_path(dir, name);
}

/* Runs path(arg) under every failing allocation, as described above.
 * Returns the allocation count A. */
typedef tg_status (*path_fn)(void *arg);

static uint64_t every_failure(const char *what, path_fn path, void *arg) {
    uint64_t before = tg_alloc_count();
    tg_status s = path(arg);
    uint64_t total = tg_alloc_count() - before;
    CHECK(s == TG_OK, "%s without failures: %s: %s", what, tg_status_name(s), tg_last_error());
    CHECK(total > 0, "%s: no allocation to fail", what);
    int wrong = 0, silent = 0, nomem = 0;
    for (uint64_t n = 1; n <= total + 1; n++) {
        tg_testing_fail_alloc_at(n);
        s = path(arg);
        tg_testing_fail_alloc_at(0);
        if (s == TG_ERR_NOMEM && tg_last_error()[0]) {
            nomem++;
        } else if (s == TG_OK) {
            silent += n <= total;
        } else if (wrong++ < 5) {
            fprintf(stderr, "%s: allocation %llu of %llu failing gives %s: %s\n", what,
                    (unsigned long long)n, (unsigned long long)total, tg_status_name(s),
                    tg_last_error());
        }
        if (n == total + 1)
            CHECK(s == TG_OK, "%s: allocation %llu (past the last) failing: %s", what,
                  (unsigned long long)n, tg_status_name(s));
    }
    CHECK(wrong == 0, "%s: %d of %llu failing allocations gave a status other than NOMEM", what,
          wrong, (unsigned long long)total);
    CHECK(nomem > 0, "%s: no failing allocation was reported", what);
    printf("%-40s %3llu allocations: %d NOMEM, %d done without\n", what, (unsigned long long)total,
           nomem, silent);
    return total;
}

/* ---------------------------------------------------------------- (a) training */

#define ROWS 12
#define N_IN 5

typedef struct step_cfg {
    tg_dtype dt;
    tg_loss_kind loss;
    size_t n_out;
    tg_opt_kind opt;
    tg_act act;
    int n_hidden;
    double clip_norm;
} step_cfg;

static void fill_batch(tg_tensor *x, tg_tensor *y, const step_cfg *c) {
    tg_rng g;
    tg_rng_seed(&g, 17);
    for (size_t i = 0; i < x->size; i++)
        tg_set(x, i, tg_rng_normal(&g));
    for (size_t i = 0; i < y->size; i++)
        tg_set(y, i,
               c->loss == TG_LOSS_CE    ? (double)(i % c->n_out)
               : c->loss == TG_LOSS_BCE ? (double)(i % 2)
                                        : tg_rng_normal(&g));
}

static tg_status new_target(tg_tensor **y, const step_cfg *c) {
    if (c->loss == TG_LOSS_CE) return tg_tensor_new(y, c->dt, 1, (size_t[]){ROWS});
    return tg_tensor_new(y, c->dt, 2, (size_t[]){ROWS, c->n_out});
}

/* Record, backward, update. */
static tg_status step(tg_tape *t, tg_mlp *m, tg_optimizer *o, const tg_tensor *x,
                      const tg_tensor *y) {
    tg_tensor *logits = NULL, *cost = NULL;
    tg_status s = tg_mlp_forward(t, m, x, &logits);
    if (!s) s = tg_mlp_cost(t, m, logits, y, &cost);
    if (!s) s = tg_backward(t, cost);
    if (!s) s = tg_optimizer_step(o);
    return s;
}

/* Everything from nothing: the first step of a program that trains. */
static tg_status first_step(void *arg) {
    const step_cfg *c = arg;
    tg_tape *t = NULL;
    tg_mlp *m = NULL;
    tg_optimizer *o = NULL;
    tg_tensor *x = NULL, *y = NULL, *params[16];
    size_t widths[2] = {7, 4};
    tg_rng g;
    tg_rng_seed(&g, 3);
    tg_opt_config oc = tg_opt_defaults(c->opt);
    oc.clip_norm = c->clip_norm;
    tg_status s = tg_tape_new(&t);
    if (!s) s = tg_mlp_new(&m, c->dt, N_IN, c->n_hidden, widths, c->act, c->n_out, c->loss);
    if (!s) s = tg_mlp_init(m, &g);
    if (!s) s = tg_tensor_new(&x, c->dt, 2, (size_t[]){ROWS, N_IN});
    if (!s) s = new_target(&y, c);
    if (!s) fill_batch(x, y, c);
    if (!s) s = tg_optimizer_new(&o, &oc, tg_mlp_params(m, params, 16), params);
    if (!s) s = step(t, m, o, x, y);
    if (!s) { /* the second step reuses everything: no allocation to fail */
        tg_tape_reset(t);
        uint64_t before = tg_alloc_count();
        s = step(t, m, o, x, y);
        if (!s && tg_alloc_count() != before) {
            fprintf(stderr, "second step allocated %llu times\n",
                    (unsigned long long)(tg_alloc_count() - before));
            s = TG_ERR_STATE;
        }
    }
    tg_optimizer_free(o);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_mlp_free(m);
    tg_tape_free(t);
    return s;
}

static void test_first_step(void) {
    static const step_cfg cfgs[] = {
        {TG_F32, TG_LOSS_CE, 3, TG_OPT_ADAM, TG_ACT_RELU, 2, 0},
        {TG_F64, TG_LOSS_BCE, 1, TG_OPT_SGD, TG_ACT_TANH, 1, 0},
        {TG_F32, TG_LOSS_MSE, 2, TG_OPT_RMSPROP, TG_ACT_SIGMOID, 0, 1.0},
        {TG_F64, TG_LOSS_CE, 4, TG_OPT_NESTEROV, TG_ACT_LEAKY_RELU, 2, 0.5},
        {TG_F32, TG_LOSS_BCE, 1, TG_OPT_ADAMW, TG_ACT_RELU, 1, 0},
        {TG_F64, TG_LOSS_MSE, 1, TG_OPT_MOMENTUM, TG_ACT_TANH, 2, 0},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "first step %s/%s/%s", cfgs[i].dt == TG_F32 ? "f32" : "f64",
                 tg_loss_name(cfgs[i].loss), tg_opt_name(cfgs[i].opt));
        every_failure(what, first_step, (void *)&cfgs[i]);
    }
}

/* A step that fails half-way on a live tape (its arena cannot grow) is
 * retried by the caller: zero the gradients, reset the tape, step again.
 * The retry must succeed and give the very parameters of a run where
 * nothing failed. */
typedef struct live {
    step_cfg cfg;
    tg_tape *t;
    tg_mlp *m;
    tg_optimizer *o;
    tg_tensor *x, *y;
} live;

static void live_new(live *L, const step_cfg *c) {
    size_t widths[2] = {64, 64}; /* big enough that the arena grows in the step */
    tg_rng g;
    tg_rng_seed(&g, 3);
    tg_opt_config oc = tg_opt_defaults(c->opt);
    tg_tensor *params[16];
    memset(L, 0, sizeof *L);
    L->cfg = *c;
    CHECK_OK(tg_tape_new(&L->t));
    CHECK_OK(tg_mlp_new(&L->m, c->dt, N_IN, c->n_hidden, widths, c->act, c->n_out, c->loss));
    CHECK_OK(tg_mlp_init(L->m, &g));
    CHECK_OK(tg_tensor_new(&L->x, c->dt, 2, (size_t[]){ROWS, N_IN}));
    CHECK_OK(new_target(&L->y, c));
    fill_batch(L->x, L->y, c);
    CHECK_OK(tg_optimizer_new(&L->o, &oc, tg_mlp_params(L->m, params, 16), params));
}

static void live_free(live *L) {
    tg_optimizer_free(L->o);
    tg_tensor_free(L->x);
    tg_tensor_free(L->y);
    tg_mlp_free(L->m);
    tg_tape_free(L->t);
}

static int same_params(const tg_mlp *a, const tg_mlp *b) {
    tg_tensor *pa[16], *pb[16];
    int n = tg_mlp_params(a, pa, 16);
    if (n != tg_mlp_params(b, pb, 16)) return 0;
    for (int i = 0; i < n; i++)
        if (memcmp(pa[i]->data, pb[i]->data, pa[i]->size * (pa[i]->dtype == TG_F32 ? 4 : 8)))
            return 0;
    return 1;
}

static void test_retry_after_failure(void) {
    const step_cfg c = {TG_F32, TG_LOSS_CE, 3, TG_OPT_ADAM, TG_ACT_RELU, 2, 0};
    live ref;
    live_new(&ref, &c);
    uint64_t before = tg_alloc_count();
    CHECK_OK(step(ref.t, ref.m, ref.o, ref.x, ref.y));
    uint64_t total = tg_alloc_count() - before;
    CHECK(total > 0, "the first step on a fresh tape allocates");
    int retried = 0;
    for (uint64_t n = 1; n <= total; n++) {
        live L;
        live_new(&L, &c);
        tg_testing_fail_alloc_at(n);
        tg_status s = step(L.t, L.m, L.o, L.x, L.y);
        tg_testing_fail_alloc_at(0);
        CHECK(s == TG_ERR_NOMEM || s == TG_OK, "step, allocation %llu failing: %s",
              (unsigned long long)n, tg_status_name(s));
        if (s == TG_ERR_NOMEM) {
            tg_tensor *params[16];
            int np = tg_mlp_params(L.m, params, 16);
            for (int i = 0; i < np; i++)
                tg_zero_grad(params[i]);
            tg_tape_reset(L.t);
            CHECK_OK(step(L.t, L.m, L.o, L.x, L.y));
            CHECK(same_params(L.m, ref.m), "retry after allocation %llu failed differs",
                  (unsigned long long)n);
            retried++;
        }
        live_free(&L);
    }
    CHECK(retried > 0, "no step failed");
    printf("%-40s %3llu allocations: %d failed steps retried\n", "step on a live tape",
           (unsigned long long)total, retried);
    live_free(&ref);
}

/* ---------------------------------------------------------------- (b) model load */

typedef struct load_arg {
    const char *path;
    const tg_mlp *want;
    int predict;
} load_arg;

static int same_model(const tg_mlp *a, const tg_mlp *b) {
    if (a->dtype != b->dtype || a->n_in != b->n_in || a->n_out != b->n_out ||
        a->n_layers != b->n_layers || a->act != b->act || a->loss != b->loss ||
        a->n_classes != b->n_classes || !same_params(a, b))
        return 0;
    if (!a->mean || !b->mean) return !a->mean && !b->mean && !a->std && !b->std;
    return memcmp(a->mean, b->mean, a->n_in * sizeof(double)) == 0 &&
           memcmp(a->std, b->std, a->n_in * sizeof(double)) == 0;
}

static tg_status load_path(void *arg) {
    const load_arg *L = arg;
    tg_mlp *m = (tg_mlp *)(uintptr_t)1;
    tg_status s = tg_mlp_load(&m, L->path);
    if (s) {
        if (m != NULL) {
            fprintf(stderr, "load failed but left *out set\n");
            s = TG_ERR_STATE;
        }
        return s;
    }
    if (!same_model(m, L->want)) {
        fprintf(stderr, "loaded model differs\n");
        s = TG_ERR_STATE;
    }
    if (!s && L->predict) { /* load, then predict on a batch */
        tg_tape *t = NULL;
        tg_tensor *x = NULL, *logits = NULL;
        s = tg_tape_new(&t);
        if (!s) s = tg_tensor_new(&x, m->dtype, 2, (size_t[]){ROWS, m->n_in});
        if (!s) s = tg_mlp_forward(t, m, x, &logits);
        tg_tensor_free(x);
        tg_tape_free(t);
    }
    tg_mlp_free(m);
    return s;
}

static tg_mlp *model(tg_dtype dt, tg_loss_kind loss, size_t n_out, int n_hidden, int with_std) {
    size_t widths[3] = {6, 5, 4};
    tg_mlp *m = NULL;
    CHECK_OK(tg_mlp_new(&m, dt, N_IN, n_hidden, widths, TG_ACT_TANH, n_out, loss));
    tg_rng g;
    tg_rng_seed(&g, 9);
    CHECK_OK(tg_mlp_init(m, &g));
    if (with_std) {
        m->mean = malloc(N_IN * sizeof(double));
        m->std = malloc(N_IN * sizeof(double));
        for (size_t i = 0; i < N_IN; i++)
            m->mean[i] = tg_rng_normal(&g), m->std[i] = 0.5 + tg_rng_uniform(&g);
    }
    return m;
}

static void test_model_load(void) {
    struct {
        const char *name;
        tg_mlp *m;
    } models[] = {
        {"f32-ce-std.tgm", model(TG_F32, TG_LOSS_CE, 3, 2, 1)},
        {"f64-bce.tgm", model(TG_F64, TG_LOSS_BCE, 1, 3, 0)},
        {"f32-mse-linear.tgm", model(TG_F32, TG_LOSS_MSE, 2, 0, 1)},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const char *path = in_dir(models[i].name);
        CHECK_OK(tg_mlp_save(models[i].m, path));
        for (int predict = 0; predict < 2; predict++) {
            load_arg a = {path, models[i].m, predict};
            char what[96];
            snprintf(what, sizeof what, "load %s%s", models[i].name, predict ? " + predict" : "");
            every_failure(what, load_path, &a);
        }
        tg_mlp_free(models[i].m);
    }
}

/* ---------------------------------------------------------------- (c) loaders */

static tg_status csv_path(void *arg) {
    tg_dataset ds;
    tg_status s = tg_csv_load(arg, -1, &ds);
    if (!s && (ds.n != 300 || ds.d != 40)) s = test_fail("csv: wrong size");
    if (!s)
        tg_dataset_free(&ds);
    else if (ds.x || ds.y)
        s = test_fail("csv: failed but left data behind");
    return s;
}

static tg_status idx_path(void *arg) {
    tg_dataset ds;
    tg_status s = tg_idx_load(arg, &ds);
    if (!s && (ds.n != 40 || ds.d != 28 * 28)) s = test_fail("idx: wrong size");
    if (!s)
        tg_dataset_free(&ds);
    else if (ds.x || ds.y)
        s = test_fail("idx: failed but left data behind");
    return s;
}

static void write_gz(const char *path, const unsigned char *p, size_t n) {
    gzFile f = gzopen(path, "wb");
    CHECK(f && gzwrite(f, p, (unsigned)n) == (int)n && gzclose(f) == Z_OK, "write %s", path);
}

static void test_loaders(void) {
    /* 300 rows (x, y grow past their first 64 rows), 41 columns in lines of
     * ~500 bytes (the line buffer grows past 256), a header. */
    const char *csv = in_dir("grow.csv");
    FILE *f = fopen(csv, "w");
    CHECK(f != NULL, "create %s", csv);
    if (f) {
        for (int j = 0; j < 41; j++)
            fprintf(f, "%sfeature_%d", j ? "," : "", j);
        fputc('\n', f);
        for (int i = 0; i < 300; i++)
            for (int j = 0; j < 41; j++)
                fprintf(f, "%.9f%c", j == 40 ? (double)(i % 3) : i * 0.001 + j,
                        j == 40 ? '\n' : ',');
        fclose(f);
    }
    every_failure("csv load, growing buffers", csv_path, (void *)csv);

    /* 40 images of 28x28 and their labels, gzipped. */
    enum { N = 40, P = 28 * 28 };
    static unsigned char img[16 + N * P], lab[8 + N];
    const unsigned char hi[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, 28, 0, 0, 0, 28};
    const unsigned char hl[8] = {0, 0, 8, 1, 0, 0, 0, N};
    memcpy(img, hi, 16);
    memcpy(lab, hl, 8);
    for (int i = 0; i < N * P; i++)
        img[16 + i] = (unsigned char)(i * 7);
    for (int i = 0; i < N; i++)
        lab[8 + i] = (unsigned char)(i % 10);
    write_gz(in_dir("set-images-idx3-ubyte.gz"), img, sizeof img);
    write_gz(in_dir("set-labels-idx1-ubyte.gz"), lab, sizeof lab);
    every_failure("idx load, gzipped", idx_path, (void *)in_dir("set"));
}

/* ---------------------------------------------------------------- (d) checks */

typedef struct graph {
    tg_tape *t;
    tg_tensor *w, *b, *x, *out;
} graph;

static tg_status adjoint_path(void *arg) {
    graph *g = arg;
    tg_check_report r;
    return tg_adjoint_check(g->t, g->out, 2, (tg_tensor *[]){g->w, g->b}, NULL, &r);
}

static tg_status gradcheck_path(void *arg) {
    graph *g = arg;
    tg_check_report r;
    return tg_gradcheck(g->t, g->out, 2, (tg_tensor *[]){g->w, g->b}, NULL, &r);
}

static tg_status jvp_path(void *arg) {
    graph *g = arg;
    static double tw[12], tb[4];
    return tg_jvp(g->t, 2, (const tg_tensor *[]){g->w, g->b}, (const void *[]){tw, tb});
}

/* The graph on a fresh tape each time, so that its arena must grow. */
static tg_status record(graph *g) {
    tg_tensor *z = NULL, *a = NULL;
    tg_status s = tg_tape_new(&g->t);
    if (!s) s = tg_matmul(g->t, g->x, g->w, &z);
    if (!s) s = tg_bias_add(g->t, z, g->b, &z);
    if (!s) s = tg_tanh(g->t, z, &a);
    if (!s) s = tg_softmax(g->t, a, &g->out);
    return s;
}

typedef struct check_arg {
    graph *g;
    path_fn check;
} check_arg;

/* Record on a fresh tape, run the check: parameters and gradients must be
 * as before, whatever failed. */
static tg_status record_and_check(void *arg) {
    check_arg *c = arg;
    graph *g = c->g;
    double w0[12], gw0[12];
    memcpy(w0, g->w->data, sizeof w0);
    memcpy(gw0, g->w->grad, sizeof gw0);
    tg_status s = record(g);
    if (!s) s = c->check(g);
    if (memcmp(w0, g->w->data, sizeof w0) || memcmp(gw0, g->w->grad, sizeof gw0))
        s = test_fail("a check changed the parameters or their gradients");
    tg_tape_free(g->t);
    g->t = NULL;
    return s;
}

static void test_checks(void) {
    graph g = {0};
    tg_rng r;
    tg_rng_seed(&r, 4);
    CHECK_OK(tg_param_new(&g.w, TG_F64, 2, (size_t[]){3, 4}));
    CHECK_OK(tg_param_new(&g.b, TG_F64, 1, (size_t[]){4}));
    CHECK_OK(tg_tensor_new(&g.x, TG_F64, 2, (size_t[]){5, 3}));
    for (size_t i = 0; i < 12; i++)
        tg_set(g.w, i, tg_rng_normal(&r)), ((double *)g.w->grad)[i] = 0.25 * (double)i;
    for (size_t i = 0; i < 15; i++)
        tg_set(g.x, i, tg_rng_normal(&r));
    check_arg a = {&g, adjoint_path};
    every_failure("record + tg_adjoint_check", record_and_check, &a);
    a.check = gradcheck_path;
    every_failure("record + tg_gradcheck", record_and_check, &a);
    a.check = jvp_path;
    every_failure("record + tg_jvp", record_and_check, &a);
    tg_tensor_free(g.w), tg_tensor_free(g.b), tg_tensor_free(g.x);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_first_step();
    test_retry_after_failure();
    test_model_load();
    test_loaders();
    test_checks();
    /* Leave nothing behind. */
    const char *files[] = {"f32-ce-std.tgm",           "f64-bce.tgm",
                           "f32-mse-linear.tgm",       "grow.csv",
                           "set-images-idx3-ubyte.gz", "set-labels-idx1-ubyte.gz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(in_dir(files[i]));
    rmdir(dir);
    return check_summary();
}
