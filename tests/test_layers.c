/* The layer API and model files v2 (issue 16): a small CNN built from specs
 * has PyTorch's shapes, names and parameter counts, records exactly the
 * ops a hand-written forward records (bitwise), trains, passes gradcheck in
 * float64, and comes back from a file bitwise; batch norm's running
 * statistics are state that is saved; eval differs from train where it
 * should; a kind defined here works like a built-in one; bad specs, shapes
 * and files are refused with messages naming the layer or the file. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/tg-layers-XXXXXX";

/* conv2d 4 3 → relu → max_pool 2 → flatten → dense 10 on 1×8×8 examples:
 * 4×6×6 → 4×3×3 → 36 → 10. */
static const tg_layer_spec cnn[] = {
    {.kind = "conv2d", .i = {4, 3}},  {.kind = "relu"},
    {.kind = "max_pool2d", .i = {2}}, {.kind = "flatten"},
    {.kind = "dense", .i = {10}},
};
static const size_t cnn_in[3] = {1, 8, 8};

static tg_tensor *random_input(tg_dtype dt, int rank, const size_t *shape, uint64_t seed) {
    tg_tensor *x = NULL;
    CHECK_OK(tg_tensor_new(&x, dt, rank, shape));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, tg_rng_normal(&rng));
    return x;
}

static tg_model *make_cnn(tg_dtype dt, uint64_t seed) {
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, dt, 3, cnn_in, 5, cnn));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    if (m) CHECK_OK(tg_model_init(m, &rng));
    return m;
}

static int same_data(const tg_tensor *a, const tg_tensor *b) {
    return a && b && a->dtype == b->dtype && a->size == b->size && a->rank == b->rank &&
           memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
           memcmp(a->data, b->data, a->size * (a->dtype == TG_F32 ? 4 : 8)) == 0;
}

/* ---------------------------------------------------------------- shapes and names */

static void test_cnn_shapes_names(void) {
    tg_model *m = make_cnn(TG_F32, 1);
    if (!m) return;
    /* torch: nn.Sequential(nn.Conv2d(1,4,3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
     * nn.Linear(36,10)).state_dict(): 0.weight (4,1,3,3), 0.bias (4,), 4.weight (10,36),
     * 4.bias (10,); sum of numel = 36 + 4 + 360 + 10 = 410. */
    static const char *want[] = {"0.weight", "0.bias", "4.weight", "4.bias"};
    static const size_t sizes[] = {36, 4, 360, 10};
    tg_tensor *p[8];
    const char *names[8];
    CHECK(tg_model_params(m, p, names, 8) == 4, "4 parameters");
    for (int i = 0; i < 4; i++) {
        CHECK(strcmp(names[i], want[i]) == 0, "name %d: %s, want %s", i, names[i], want[i]);
        CHECK(p[i]->size == sizes[i], "%s has %zu elements", names[i], p[i]->size);
    }
    CHECK(p[0]->rank == 4 && p[0]->shape[0] == 4 && p[0]->shape[1] == 1 && p[0]->shape[2] == 3,
          "conv weight 4x1x3x3");
    CHECK(p[2]->shape[0] == 10 && p[2]->shape[1] == 36, "dense weight 10x36 (out x in)");
    CHECK(tg_model_param_count(m) == 410, "%zu", tg_model_param_count(m));
    const tg_layer *l = m->layers;
    CHECK(l[0].out_rank == 3 && l[0].out_shape[0] == 4 && l[0].out_shape[1] == 6, "conv out");
    CHECK(l[2].out_shape[1] == 3 && l[2].out_shape[2] == 3, "pool out 4x3x3");
    CHECK(l[3].out_rank == 1 && l[3].out_shape[0] == 36, "flatten 36");
    CHECK(l[4].out_rank == 1 && l[4].out_shape[0] == 10, "dense 10");
    /* PyTorch's default init: U(±1/√fan_in), fan_in 9 for the conv, 36 for the dense */
    for (size_t e = 0; e < p[0]->size; e++)
        CHECK(fabs(tg_get(p[0], e)) <= 1.0 / 3.0, "conv weight %zu out of bound", e);
    for (size_t e = 0; e < p[3]->size; e++)
        CHECK(fabs(tg_get(p[3], e)) <= 1.0 / 6.0, "dense bias %zu out of bound", e);
    tg_model_free(m);

    /* Named layers: conv1.weight as a PyTorch module attribute would give. */
    tg_layer_spec named[5];
    memcpy(named, cnn, sizeof named);
    named[0].name = "conv1", named[4].name = "fc";
    CHECK_OK(tg_model_new(&m, TG_F32, 3, cnn_in, 5, named));
    if (!m) return;
    CHECK(tg_model_params(m, p, names, 8) == 4, "4 parameters");
    CHECK(strcmp(names[0], "conv1.weight") == 0 && strcmp(names[3], "fc.bias") == 0, "%s %s",
          names[0], names[3]);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- forward = the ops by hand */

static tg_status by_hand(tg_tape *t, tg_tensor *const *p, const tg_tensor *x, tg_tensor **out) {
    tg_tensor *a, *b, *c, *d, *e;
    int k[2] = {2, 2}, pad[2] = {0, 0};
    tg_status s = tg_conv2d(t, x, p[0], p[1], NULL, &a);
    if (!s) s = tg_relu(t, a, &b);
    if (!s) s = tg_max_pool2d(t, b, k, k, pad, NULL, 0, &c);
    if (!s) s = tg_flatten(t, c, 1, -1, &d);
    if (!s) s = tg_matmul_t(t, d, p[2], 0, 1, &e);
    if (!s) s = tg_bias_add(t, e, p[3], out);
    return s;
}

static void test_forward_bitwise(void) {
    tg_model *m = make_cnn(TG_F32, 2);
    tg_tensor *x = random_input(TG_F32, 4, (size_t[]){3, 1, 8, 8}, 3);
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    tg_tensor *p[4], *y = NULL, *z = NULL;
    if (m && x && t) {
        tg_model_params(m, p, NULL, 4);
        CHECK_OK(tg_model_forward(t, m, x, 1, NULL, &y));
        CHECK_OK(by_hand(t, p, x, &z));
        CHECK(y && y->rank == 2 && y->shape[0] == 3 && y->shape[1] == 10, "logits 3x10");
        CHECK(y && z && same_data(y, z), "model forward differs from the ops by hand");
    }
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- training */

static void test_training_lowers_loss(void) {
    tg_model *m = make_cnn(TG_F32, 4);
    tg_tensor *x = random_input(TG_F32, 4, (size_t[]){16, 1, 8, 8}, 5), *y = NULL;
    CHECK_OK(tg_tensor_new(&y, TG_F32, 1, (size_t[]){16}));
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!m || !x || !y || !t) return;
    for (size_t i = 0; i < 16; i++)
        tg_set(y, i, (double)(i % 10));
    tg_tensor *p[4];
    tg_model_params(m, p, NULL, 4);
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_ADAM);
    cfg.lr = 1e-2;
    tg_optimizer *opt = NULL;
    CHECK_OK(tg_optimizer_new(&opt, &cfg, 4, p));
    double first = 0, last = 0;
    for (int step = 0; opt && step < 30; step++) {
        tg_tensor *logits, *loss;
        tg_tape_reset(t);
        CHECK_OK(tg_model_forward(t, m, x, 1, NULL, &logits));
        CHECK_OK(tg_softmax_ce(t, logits, y, &loss));
        CHECK_OK(tg_backward(t, loss));
        CHECK_OK(tg_optimizer_step(opt));
        last = tg_get(loss, 0);
        if (step == 0) first = last;
    }
    /* 16 random examples, 410 parameters: Adam fits them; 30 steps at
     * lr 1e-2 take the loss well below its start (about ln 10 = 2.3). */
    CHECK(last < 0.5 * first, "loss %g -> %g", first, last);
    tg_optimizer_free(opt);
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- gradcheck */

static void gradcheck_model(int n, const tg_layer_spec *specs, int rank, const size_t *in,
                            const size_t *batch, const char *what) {
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, TG_F64, rank, in, n, specs));
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tensor *x = random_input(TG_F64, rank + 1, batch, 12), *p[16], *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!m || !x || !t) return;
    CHECK_OK(tg_model_init(m, &rng));
    /* γ, β away from 1, 0 so that their derivatives are exercised fully */
    int np = tg_model_params(m, p, NULL, 16);
    for (int i = 0; i < np; i++)
        for (size_t e = 0; e < p[i]->size; e++)
            tg_set(p[i], e, tg_get(p[i], e) + 0.3 * tg_rng_normal(&rng));
    CHECK_OK(tg_model_forward(t, m, x, 1, &rng, &y));
    tg_check_report rep;
    tg_status s = tg_gradcheck(t, y, np, p, NULL, &rep);
    CHECK(s == TG_OK, "%s: gradcheck: %s", what, tg_last_error());
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
}

static void test_gradcheck(void) {
    /* The CNN on 1×6×6: conv 4×4×4, pool 4×2×2, 16 → 3. */
    tg_layer_spec c[5];
    memcpy(c, cnn, sizeof c);
    c[4].i[0] = 3;
    gradcheck_model(5, c, 3, (size_t[]){1, 6, 6}, (size_t[]){2, 1, 6, 6}, "cnn");
    /* Normalisation and smooth activations, batch statistics in training. */
    static const tg_layer_spec n[] = {
        {.kind = "conv2d", .i = {3, 2, 0, 1, 1}},
        {.kind = "batch_norm"},
        {.kind = "tanh"},
        {.kind = "avg_pool2d", .i = {2}},
        {.kind = "conv_transpose2d", .i = {2, 2, 0, 2}},
        {.kind = "global_avg_pool2d"},
        {.kind = "reshape", .i = {1, 2}},
        {.kind = "layer_norm"},
        {.kind = "dense", .i = {4}},
        {.kind = "gelu"},
        {.kind = "dense", .i = {3}},
        {.kind = "log_softmax"},
    };
    gradcheck_model(12, n, 3, (size_t[]){2, 4, 4}, (size_t[]){3, 2, 4, 4}, "norm stack");
}

/* ---------------------------------------------------------------- files */

static tg_tensor *eval_out(tg_tape *t, const tg_model *m, const tg_tensor *x) {
    tg_tensor *y = NULL;
    tg_tape_reset(t);
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y));
    return y;
}

static void test_save_load(void) {
    const char *path = check_path(dir, "cnn.tgm");
    tg_model *m = make_cnn(TG_F32, 6), *back = NULL;
    tg_tensor *x = random_input(TG_F32, 4, (size_t[]){2, 1, 8, 8}, 7);
    tg_tape *t1 = NULL, *t2 = NULL;
    CHECK_OK(tg_tape_new(&t1));
    CHECK_OK(tg_tape_new(&t2));
    if (!m) return;
    m->n_stats = 64;
    m->mean = calloc(64, sizeof(double));
    m->std = malloc(64 * sizeof(double));
    for (int i = 0; i < 64; i++)
        m->mean[i] = 0.01 * i, m->std[i] = 1 + 0.5 * i;
    CHECK_OK(tg_model_save(m, path));
    CHECK_OK(tg_model_load(&back, path));
    if (back) {
        tg_tensor *y1 = eval_out(t1, m, x), *y2 = eval_out(t2, back, x);
        CHECK(same_data(y1, y2), "outputs after save/load differ");
        CHECK(back->n_stats == 64 && back->std && back->std[63] == m->std[63], "stats kept");
        CHECK(strcmp(back->layers[0].kind->name, "conv2d") == 0 && back->layers[0].spec.i[1] == 3,
              "spec kept");
        /* saved again: the same bytes (one encoding per model) */
        const char *again = check_path(dir, "again.tgm");
        CHECK_OK(tg_model_save(back, again));
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "cmp -s %s %s", path, again);
        CHECK(system(cmd) == 0, "re-saved file differs");
    }
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_tensor_free(x);
    tg_model_free(m);
    tg_model_free(back);
}

/* batch norm: training moves the running statistics; they are saved and
 * restored; eval uses them, so train and eval outputs differ. */
static void test_batch_norm_state(void) {
    static const tg_layer_spec s[] = {{.kind = "conv2d", .i = {3, 3}, .name = "conv1"},
                                      {.kind = "batch_norm", .name = "bn1"},
                                      {.kind = "relu"},
                                      {.kind = "flatten"},
                                      {.kind = "dropout", .f = {0.5}},
                                      {.kind = "dense", .i = {2}}};
    const char *path = check_path(dir, "bn.tgm");
    tg_model *m = NULL, *back = NULL;
    CHECK_OK(tg_model_new(&m, TG_F64, 3, (size_t[]){2, 5, 5}, 6, s));
    tg_tensor *x = random_input(TG_F64, 4, (size_t[]){4, 2, 5, 5}, 8), *all[8];
    const char *names[8];
    int st[8];
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_tape *t = NULL, *t2 = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tape_new(&t2));
    if (!m || !x) return;
    CHECK_OK(tg_model_init(m, &rng));
    int n = tg_model_tensors(m, all, names, st, 8);
    /* torch: state_dict() order, without num_batches_tracked */
    CHECK(n == 8 && strcmp(names[4], "bn1.running_mean") == 0 && st[4] && !st[3] &&
              strcmp(names[5], "bn1.running_var") == 0,
          "%d tensors, %s", n, names[4]);
    CHECK(tg_get(all[5], 0) == 1.0 && tg_get(all[4], 0) == 0.0, "running stats start at 0, 1");
    tg_tensor *ytrain = NULL, *ytrain2 = NULL;
    CHECK_OK(tg_model_forward(t, m, x, 1, &rng, &ytrain));
    CHECK(tg_get(all[4], 0) != 0.0 && tg_get(all[5], 0) != 1.0, "running stats updated");
    CHECK_OK(tg_model_forward(t, m, x, 1, &rng, &ytrain2));
    CHECK(ytrain && ytrain2 && !same_data(ytrain, ytrain2), "dropout masks differ between calls");
    tg_tensor *yeval = eval_out(t2, m, x), *yeval2 = NULL;
    CHECK(ytrain && yeval && !same_data(ytrain, yeval), "eval equals train");
    CHECK_OK(tg_model_save(m, path));
    CHECK_OK(tg_model_load(&back, path));
    if (back) {
        tg_tensor *ball[8];
        tg_model_tensors(back, ball, NULL, NULL, 8);
        CHECK(same_data(all[4], ball[4]) && same_data(all[5], ball[5]), "running stats restored");
        tg_tape *t3 = NULL;
        CHECK_OK(tg_tape_new(&t3));
        yeval2 = eval_out(t3, back, x);
        CHECK(same_data(yeval, yeval2), "eval after load differs");
        tg_tape_free(t3);
    }
    tg_tape_free(t);
    tg_tape_free(t2);
    tg_tensor_free(x);
    tg_model_free(m);
    tg_model_free(back);
}

/* ---------------------------------------------------------------- a kind of our own */

/* "scale": y = x · alpha, one learnable scalar per feature of the last axis
 * (initialised to 2), the way a program adds a kind without touching the
 * library. */
static tg_status scale_create(tg_layer *l) {
    tg_tensor *a;
    if (l->in_rank != 1) return tg_layer_fail(l, TG_ERR_SHAPE, "scale wants flat examples");
    l->out_rank = 1;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    return tg_layer_add_tensor(l, "alpha", 0, 1, l->in_shape, &a);
}

static tg_status scale_init(tg_layer *l, tg_rng *rng) {
    (void)rng;
    for (size_t e = 0; e < l->tensors[0].t->size; e++)
        tg_set(l->tensors[0].t, e, 2.0);
    return TG_OK;
}

static tg_status scale_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                               tg_tensor **out) {
    (void)c;
    return tg_mul(t, x, l->tensors[0].t, out);
}

static const tg_layer_kind scale_kind = {"scale", scale_create, scale_init, scale_forward, NULL};

static void test_custom_kind(void) {
    CHECK_OK(tg_layer_kind_register(&scale_kind));
    EXPECT_ERR(tg_layer_kind_register(&scale_kind), TG_ERR_ARG, "'scale' already exists");
    static const tg_layer_spec s[] = {{.kind = "dense", .i = {3}}, {.kind = "scale"}};
    tg_model *m = NULL, *back = NULL;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    CHECK_OK(tg_model_new(&m, TG_F64, 1, (size_t[]){2}, 2, s));
    tg_tensor *x = random_input(TG_F64, 2, (size_t[]){1, 2}, 2), *y = NULL, *p[3];
    const char *names[3];
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!m || !x) return;
    CHECK_OK(tg_model_init(m, &rng));
    CHECK(tg_model_params(m, p, names, 3) == 3 && strcmp(names[2], "1.alpha") == 0, "names");
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y));
    for (int j = 0; y && j < 3; j++) { /* 2·(x·Wᵀ + b), in double by hand */
        double z = tg_get(p[1], (size_t)j);
        for (int k = 0; k < 2; k++)
            z += tg_get(x, (size_t)k) * tg_get(p[0], (size_t)(2 * j + k));
        CHECK_CLOSE(tg_get(y, (size_t)j), 2 * z, 1e-15);
    }
    tg_check_report rep;
    CHECK_OK(tg_gradcheck(t, y, 3, p, NULL, &rep));
    const char *path = check_path(dir, "custom.tgm");
    CHECK_OK(tg_model_save(m, path));
    CHECK_OK(tg_model_load(&back, path));
    CHECK(back && back->layers[1].kind == &scale_kind, "custom kind restored");
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
    tg_model_free(back);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void) {
    tg_model *m = (tg_model *)1;
    static const tg_layer_spec unknown[] = {{.kind = "conv3d", .i = {4, 3}}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 3, cnn_in, 1, unknown), TG_ERR_ARG,
               "layer 0: unknown kind 'conv3d'");
    CHECK(m == NULL, "*out cleared");
    /* dense acts on the last axis, as nn.Linear (issue 17): 4×6×6 → 4×6×10 */
    static const tg_layer_spec no_flat[] = {{.kind = "conv2d", .i = {4, 3}},
                                            {.kind = "dense", .i = {10}}};
    CHECK_OK(tg_model_new(&m, TG_F32, 3, cnn_in, 2, no_flat));
    CHECK(m && m->layers[1].out_rank == 3 && m->layers[1].out_shape[2] == 10 &&
              m->layers[1].tensors[0].t->shape[1] == 6,
          "dense on the last axis");
    tg_model_free(m);
    static const tg_layer_spec big[] = {{.kind = "conv2d", .i = {4, 9}, .name = "conv1"}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 3, cnn_in, 1, big), TG_ERR_SHAPE,
               "layer conv1 (conv2d): input (1x8x8): a 9x9 kernel gives an output of 0x0");
    static const tg_layer_spec no_out[] = {{.kind = "dense"}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 1, (size_t[]){5}, 1, no_out), TG_ERR_VALUE,
               "layer 0 (dense): input (5): out_features -1");
    static const tg_layer_spec dup[] = {{.kind = "relu", .name = "a"},
                                        {.kind = "tanh", .name = "a"}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 1, (size_t[]){5}, 2, dup), TG_ERR_ARG, "both named 'a'");
    static const tg_layer_spec dot[] = {{.kind = "relu", .name = "a.b"}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 1, (size_t[]){5}, 1, dot), TG_ERR_ARG, "no '.'");
    static const tg_layer_spec drop[] = {{.kind = "dropout", .f = {1.5}}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 1, (size_t[]){5}, 1, drop), TG_ERR_VALUE, "p 1.5");

    m = make_cnn(TG_F32, 1);
    tg_tensor *x = random_input(TG_F32, 4, (size_t[]){2, 1, 7, 8}, 1), *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_model_forward(t, m, x, 0, NULL, &y), TG_ERR_SHAPE,
               "model: input (2x1x7x8) float32 does not fit the model's N×(1x8x8) float32");
    tg_tape_free(t);
    tg_tensor_free(x);

    /* files: truncated, a flipped byte, the wrong version for each loader */
    const char *path = check_path(dir, "e.tgm"), *bad = check_path(dir, "bad.tgm");
    CHECK_OK(tg_model_save(m, path));
    tg_model_free(m);
    FILE *f = fopen(path, "rb");
    unsigned char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100 && n < sizeof buf, "file of %zu bytes", n);
    f = fopen(bad, "wb");
    fwrite(buf, 1, n - 7, f);
    fclose(f);
    m = (tg_model *)1;
    EXPECT_ERR(tg_model_load(&m, bad), TG_ERR_IO, "bad.tgm: checksum mismatch (file corrupt)");
    CHECK(m == NULL, "*out cleared");
    buf[60] ^= 4;
    f = fopen(bad, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    EXPECT_ERR(tg_model_load(&m, bad), TG_ERR_IO, "bad.tgm: checksum mismatch (file corrupt)");
    tg_mlp *mlp = NULL;
    EXPECT_ERR(tg_mlp_load(&mlp, path), TG_ERR_IO, "e.tgm: a version-2 (layer) model file");
    CHECK_OK(tg_mlp_new(&mlp, TG_F32, 2, 0, NULL, TG_ACT_RELU, 2, TG_LOSS_CE));
    CHECK_OK(tg_mlp_save(mlp, bad));
    tg_mlp_free(mlp);
    EXPECT_ERR(tg_model_load(&m, bad), TG_ERR_IO, "bad.tgm: a version-1 (MLP) model file");
    EXPECT_ERR(tg_model_load(&m, check_path(dir, "none.tgm")), TG_ERR_IO, "none.tgm");
}

int main(void) {
    if (!mkdtemp(dir)) return 2;
    test_cnn_shapes_names();
    test_forward_bitwise();
    test_training_lowers_loss();
    test_gradcheck();
    test_save_load();
    test_batch_norm_state();
    test_custom_kind();
    test_errors();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
