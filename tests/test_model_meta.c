/* A model's metadata (tg_model_meta_set/get) and its block in model file
 * version 2: round trip in order, one encoding (no block when empty, so
 * files without metadata keep their bytes), bad keys and values refused by
 * the setter, and by the loader: a repeated key, a count of 0 or 17, a
 * string with a space, a truncated block. */
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

int main(void) {
    if (!mkdtemp(dir)) return 2;
    test_set_get();
    test_file();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
