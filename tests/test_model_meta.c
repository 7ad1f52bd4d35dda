/* A model's metadata (tg_model_meta_set/get) and its block in model file
 * version 2: round trip in order, one encoding (no block when empty, so
 * files without metadata keep their bytes), bad keys and values refused by
 * the setter, and by the loader: a repeated key, a count of 0 or 17, a
 * string with a space, a truncated block. tg_model_from_mlp: the MLP's
 * logits, names and statistics. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "check.h"
#include "tapegrad_io.h"

#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

static char dir[] = "/tmp/tg-meta-XXXXXX";

static tg_model *small_model(void) {
    tg_model *m = NULL;
    tg_layer_spec sp[2] = {{.kind = "dense", .i = {3}}, {.kind = "relu"}};
    CHECK_OK(tg_model_new(&m, TG_F32, 1, (size_t[]){2}, 2, sp));
    return m;
}

static long read_all(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long n = (long)fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* Rewrite the file with its body replaced (new length and CRC trailer). */
static void write_body(const char *path, const unsigned char *body, size_t n) {
    unsigned char buf[4096];
    memcpy(buf, body, n);
    for (int k = 0; k < 8; k++)
        buf[n + k] = (unsigned char)((uint64_t)n >> (8 * k));
    uint32_t crc = (uint32_t)crc32(0, buf, (uInt)(n + 8));
    for (int k = 0; k < 4; k++)
        buf[n + 8 + k] = (unsigned char)(crc >> (8 * k));
    FILE *f = fopen(path, "wb");
    if (f) fwrite(buf, 1, n + 12, f), fclose(f);
}

static void test_set_get(void) {
    tg_model *m = small_model();
    CHECK(m && m->n_meta == 0 && !tg_model_meta_get(m, "loss"), "a new model has no metadata");
    CHECK_OK(tg_model_meta_set(m, "loss", "ce"));
    CHECK_OK(tg_model_meta_set(m, "classes", "10"));
    CHECK_OK(tg_model_meta_set(m, "loss", "mse")); /* replaced in place */
    CHECK(m->n_meta == 2 && !strcmp(m->meta[0].key, "loss") &&
              !strcmp(tg_model_meta_get(m, "loss"), "mse"),
          "set replaces a key's value and keeps its place");
    EXPECT_ERR(tg_model_meta_set(m, "a key", "v"), TG_ERR_ARG, "printable");
    EXPECT_ERR(tg_model_meta_set(m, "k", ""), TG_ERR_ARG, "printable");
    char long_text[80];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[79] = 0;
    EXPECT_ERR(tg_model_meta_set(m, "k", long_text), TG_ERR_ARG, "1..63");
    for (int i = m->n_meta; i < TG_MODEL_META_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        CHECK_OK(tg_model_meta_set(m, k, "1"));
    }
    EXPECT_ERR(tg_model_meta_set(m, "one-more", "1"), TG_ERR_ARG, "more than 16");
    tg_model_free(m);
}

static void test_file(void) {
    const char *plain = check_path(dir, "plain.tgm"), *with = check_path(dir, "meta.tgm");
    unsigned char a[4096], b[4096];
    tg_model *m = small_model(), *back = NULL;
    CHECK_OK(tg_model_save(m, plain));
    CHECK_OK(tg_model_meta_set(m, "loss", "ce"));
    CHECK_OK(tg_model_meta_set(m, "target_mean", "-1.5e+03"));
    CHECK_OK(tg_model_save(m, with));
    long na = read_all(plain, a, sizeof a), nb = read_all(with, b, sizeof b);
    /* the block: u8 count, then (u8 len, key, u8 len, value) per entry */
    long block = 1 + (1 + 4 + 1 + 2) + (1 + 11 + 1 + 8);
    CHECK(na > 12 && nb == na + block && !memcmp(a, b, (size_t)na - 12),
          "the block is appended before the trailer, the rest unchanged (%ld, %ld)", na, nb);
    CHECK(b[na - 12] == 2 && b[na - 11] == 4 && !memcmp(b + na - 10, "loss", 4),
          "count 2, then \"loss\"");
    CHECK_OK(tg_model_load(&back, with));
    CHECK(back && back->n_meta == 2 &&
              !strcmp(tg_model_meta_get(back, "target_mean"), "-1.5e+03") &&
              !strcmp(back->meta[0].key, "loss"),
          "loaded in order");
    tg_model_free(back);
    back = NULL;
    CHECK_OK(tg_model_load(&back, plain));
    CHECK(back && back->n_meta == 0, "a file without the block has no metadata");
    tg_model_free(back);

    /* hostile blocks, each with a valid trailer so that the block's own
     * checks are what refuses them */
    const char *bad = check_path(dir, "bad.tgm");
    unsigned char body[4096];
    size_t base = (size_t)na - 12;
    memcpy(body, a, base);
    struct {
        const char *bytes;
        size_t len;
        const char *err;
    } cases[] = {
        {"\x00", 1, "0 metadata entries"},
        {"\x11", 1, "17 metadata entries"},
        {"\x02\x01k\x01v\x01k\x01w", 9, "repeated"},
        {"\x01\x03"
         "a b\x01v",
         7, "bad key or value"},
        {"\x01\x01k\x05v", 5, "bad key or value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(body + base, cases[i].bytes, cases[i].len);
        write_body(bad, body, base + cases[i].len);
        back = NULL;
        EXPECT_ERR(tg_model_load(&back, bad), TG_ERR_IO, cases[i].err);
        CHECK(back == NULL, "nothing returned on error");
    }
    tg_model_free(m);
}

/* tg_model_from_mlp: the same logits as tg_mlp_forward in float64 (to
 * 1e-12: the two order their products' sums differently, at most a few
 * ulps on sums of 5 terms of size ~1), PyTorch's names and layouts, the
 * statistics and metadata copied. */
static void from_mlp_case(int n_hidden, tg_act act, tg_loss_kind loss, size_t n_out) {
    tg_mlp *mlp = NULL;
    tg_model *m = NULL;
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *a, *b;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    CHECK_OK(tg_mlp_new(&mlp, TG_F64, 4, n_hidden, (size_t[]){5, 3}, act, n_out, loss));
    CHECK_OK(tg_mlp_init(mlp, &rng));
    for (int i = 0; i < mlp->n_layers; i++) /* non-zero biases, so a swap would show */
        for (size_t k = 0; k < mlp->layers[i].b->size; k++)
            tg_set(mlp->layers[i].b, k, 0.1 * (double)(k + 1) - 0.2);
    mlp->mean = malloc(4 * sizeof(double));
    mlp->std = malloc(4 * sizeof(double));
    for (int k = 0; k < 4; k++)
        mlp->mean[k] = k, mlp->std[k] = 1 + k;
    CHECK_OK(tg_model_from_mlp(&m, mlp));
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, TG_F64, 2, (size_t[]){6, 4}));
    for (size_t k = 0; k < x->size; k++)
        tg_set(x, k, sin((double)k));
    CHECK_OK(tg_mlp_forward(t, mlp, x, &a));
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &b));
    double worst = 0;
    for (size_t k = 0; k < a->size && b && b->size == a->size; k++)
        worst = fmax(worst, fabs(tg_get(a, k) - tg_get(b, k)));
    CHECK(b && b->size == a->size && worst <= 1e-12, "logits differ by %g", worst);
    const char *names[8];
    tg_tensor *ts[8];
    int n = tg_model_tensors(m, ts, names, NULL, 8);
    CHECK(n == 2 * (n_hidden + 1) && !strcmp(names[0], "0.weight") &&
              ts[0]->shape[0] == (n_hidden ? 5 : n_out) && ts[0]->shape[1] == 4,
          "weight out×in as nn.Linear: %s", names[0]);
    CHECK(m->n_layers == (act == TG_ACT_NONE ? 1 : 2) * n_hidden + 1, "%d layers", m->n_layers);
    CHECK(m->n_stats == 4 && m->mean[3] == 3 && m->std[2] == 3, "statistics copied");
    CHECK(!strcmp(tg_model_meta_get(m, "loss"), tg_loss_name(loss)), "loss in the metadata");
    tg_tensor_free(x);
    tg_tape_free(t);
    tg_model_free(m);
    tg_mlp_free(mlp);
}

static void test_from_mlp(void) {
    from_mlp_case(2, TG_ACT_RELU, TG_LOSS_CE, 3);
    from_mlp_case(1, TG_ACT_LEAKY_RELU, TG_LOSS_BCE, 1);
    from_mlp_case(2, TG_ACT_TANH, TG_LOSS_MSE, 1);
    from_mlp_case(0, TG_ACT_SIGMOID, TG_LOSS_MSE, 1);
    tg_model *m = NULL;
    EXPECT_ERR(tg_model_from_mlp(&m, NULL), TG_ERR_ARG, "model from mlp");
}

int main(void) {
    if (!mkdtemp(dir)) return 2;
    test_set_get();
    test_file();
    test_from_mlp();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
