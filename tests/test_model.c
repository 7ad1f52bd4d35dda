/* Model files and graph export: save → load gives back the same bits and
 * the same predictions; saving replaces atomically and leaves no temporary
 * files; every damaged file is a clean TG_ERR_IO naming what is wrong;
 * allocation failures leak nothing. The DOT export is valid Graphviz. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, open_memstream */

#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"
#include "tapegrad_testing.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/tg-model-XXXXXX";

static const char *in_dir(const char *name) {
    return check_path(dir, name);
}

/* ---------------------------------------------------------------- helpers */

/* A 5 → 7 → 4 → 3 classifier with random parameters (set directly, so the
 * test does not depend on the initialisers). */
static tg_mlp *make_model(tg_dtype dt, int with_std, uint64_t seed) {
    size_t widths[2] = {7, 4};
    tg_mlp *m = NULL;
    CHECK_OK(tg_mlp_new(&m, dt, 5, 2, widths, TG_ACT_TANH, 3, TG_LOSS_CE));
    if (!m) return NULL;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_tensor *p[8];
    int n = tg_mlp_params(m, p, 8);
    for (int i = 0; i < n; i++)
        for (size_t e = 0; e < p[i]->size; e++)
            tg_set(p[i], e, tg_rng_normal(&rng));
    if (with_std) {
        /* tg_mlp_free releases these with free(), as the CLI allocates them. */
        m->mean = malloc(m->n_in * sizeof(double));
        m->std = malloc(m->n_in * sizeof(double));
        for (size_t i = 0; i < m->n_in; i++)
            m->mean[i] = tg_rng_normal(&rng), m->std[i] = 0.5 + tg_rng_uniform(&rng);
    }
    return m;
}

static int same_tensor(const tg_tensor *a, const tg_tensor *b) {
    return a->dtype == b->dtype && a->rank == b->rank && a->size == b->size &&
           memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
           memcmp(a->data, b->data, a->size * (a->dtype == TG_F32 ? 4 : 8)) == 0;
}

static int same_stats(const tg_mlp *a, const tg_mlp *b) {
    if (!a->mean || !b->mean) return !a->mean && !b->mean && !a->std && !b->std;
    size_t bytes = a->n_in * sizeof(double);
    return b->std && memcmp(a->mean, b->mean, bytes) == 0 && memcmp(a->std, b->std, bytes) == 0;
}

/* Architecture, every parameter bit and the statistics. */
static int same_model(const tg_mlp *a, const tg_mlp *b) {
    if (a->dtype != b->dtype || a->n_in != b->n_in || a->n_out != b->n_out ||
        a->n_layers != b->n_layers || a->act != b->act || a->loss != b->loss ||
        a->n_classes != b->n_classes)
        return 0;
    for (int i = 0; i < a->n_layers; i++)
        if (!same_tensor(a->layers[i].w, b->layers[i].w) ||
            !same_tensor(a->layers[i].b, b->layers[i].b) || a->layers[i].act != b->layers[i].act)
            return 0;
    return same_stats(a, b);
}

/* Both models' logits on the same random batch are bitwise equal. */
static int same_forward(const tg_mlp *a, const tg_mlp *b) {
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *ya = NULL, *yb = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, a->dtype, 2, (size_t[]){6, a->n_in}));
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, tg_rng_normal(&rng));
    CHECK_OK(tg_mlp_forward(t, a, x, &ya));
    CHECK_OK(tg_mlp_forward(t, b, x, &yb));
    int same = ya && yb && same_tensor(ya, yb);
    tg_tensor_free(x);
    tg_tape_free(t);
    return same;
}

static void write_bytes(const char *path, const unsigned char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n, "short write to %s", path);
    fclose(f);
}

/* The whole file; *n its size. Caller frees. */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    unsigned char *p = malloc(1 << 20);
    *n = p ? fread(p, 1, 1 << 20, f) : 0;
    fclose(f);
    return p;
}

/* tg_mlp_load must fail with TG_ERR_IO, leave *out NULL, and say `text`. */
static void expect_load_error(const char *path, const char *text, const char *what) {
    tg_mlp *m = (tg_mlp *)1;
    tg_status s = tg_mlp_load(&m, path);
    CHECK(s == TG_ERR_IO, "%s: got %s (%s)", what, tg_status_name(s), tg_last_error());
    CHECK(m == NULL, "%s: out not cleared", what);
    CHECK(strstr(tg_last_error(), text) != NULL, "%s: message '%s' lacks '%s'", what,
          tg_last_error(), text);
    if (s == TG_OK && m != (tg_mlp *)1) tg_mlp_free(m);
}

/* Files in dir whose name contains `part`. */
static int count_files(const char *part) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, part) != NULL;
    if (d) closedir(d);
    return n;
}

/* Little-endian stores, for forging headers. */
static void set_le(unsigned char *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Recompute the length field and CRC of a forged n-byte file, so that the
 * loader gets past them to the check under test. */
static void reseal(unsigned char *p, size_t n) {
    set_le(p + n - 12, n - 12, 8);
    set_le(p + n - 4, crc32(crc32(0L, Z_NULL, 0), p, (uInt)(n - 4)), 4);
}

/* ---------------------------------------------------------------- model files */

static void test_roundtrip(tg_dtype dt, int with_std) {
    const char *path = in_dir("model.tgm");
    tg_mlp *m = make_model(dt, with_std, 42 + (uint64_t)dt), *back = NULL;
    CHECK_OK(tg_mlp_save(m, path));
    CHECK_OK(tg_mlp_load(&back, path));
    CHECK(back && same_model(m, back), "dtype %d std %d: model differs after load", (int)dt,
          with_std);
    CHECK(back && same_forward(m, back), "dtype %d std %d: logits differ after load", (int)dt,
          with_std);
    size_t n;
    unsigned char *p = read_bytes(path, &n);
    size_t params = 5 * 7 + 7 + 7 * 4 + 4 + 4 * 3 + 3;
    size_t want = 49 + 16 * 3 + (with_std ? 16 * 5 : 0) + params * (dt == TG_F32 ? 4 : 8) + 12;
    CHECK(p && n == want && memcmp(p, "TGMODEL", 8) == 0 && p[8] == 1 && p[9] == 0,
          "layout: %zu bytes, want %zu", n, want);
    free(p);
    tg_mlp_free(m);
    tg_mlp_free(back);
}

/* A second save replaces the first and leaves only the target behind. */
static void test_replace(void) {
    const char *path = in_dir("replace.tgm");
    tg_mlp *a = make_model(TG_F64, 0, 1), *b = make_model(TG_F32, 1, 2), *back = NULL;
    CHECK_OK(tg_mlp_save(a, path));
    CHECK_OK(tg_mlp_save(b, path));
    CHECK_OK(tg_mlp_load(&back, path));
    CHECK(back && same_model(b, back), "the second save did not replace the first");
    CHECK(count_files(".tmp.") == 0, "temporary files left behind");
    CHECK(count_files("replace.tgm") == 1, "expected exactly the target file");
    tg_mlp_free(a), tg_mlp_free(b), tg_mlp_free(back);
}

/* The saved good file's bytes, for the corruption tests. */
static unsigned char *good_file(int with_std, size_t *n) {
    const char *path = in_dir("good.tgm");
    tg_mlp *m = make_model(TG_F32, with_std, 3);
    CHECK_OK(tg_mlp_save(m, path));
    tg_mlp_free(m);
    return read_bytes(path, n);
}

static void test_truncation(const unsigned char *good, size_t n) {
    const char *path = in_dir("cut.tgm");
    char what[64], text[96];
    for (size_t len = 0; len <= 64; len++) {
        write_bytes(path, good, len);
        snprintf(what, sizeof what, "cut at %zu", len);
        expect_load_error(path, len == 0 ? "empty file" : "truncated", what);
    }
    size_t cuts[] = {n / 2, n - 13, n - 12, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(path, good, cuts[i]);
        snprintf(what, sizeof what, "cut at %zu", cuts[i]);
        snprintf(text, sizeof text, "cut.tgm: truncated: expected %zu bytes, file has %zu", n,
                 cuts[i]);
        expect_load_error(path, text, what);
    }
}

static void test_damage(const unsigned char *good, size_t n) {
    const char *path = in_dir("bad.tgm");
    unsigned char *p = malloc(n + 1);
    size_t flips[] = {200, n / 2, n - 20, n - 8, n - 1};
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        memcpy(p, good, n);
        p[flips[i]] ^= 0x10;
        write_bytes(path, p, n);
        expect_load_error(path, "bad.tgm: checksum mismatch (file corrupt)", "flipped byte");
    }
    memcpy(p, good, n);
    p[0] = 'X';
    write_bytes(path, p, n);
    expect_load_error(path, "bad.tgm: not a tapegrad model file", "wrong magic");
    memcpy(p, good, n);
    set_le(p + 8, 7, 4);
    write_bytes(path, p, n);
    expect_load_error(path, "bad.tgm: format version 7 is newer than this tapegrad (1)", "v7");
    memcpy(p, good, n);
    p[n] = 0;
    write_bytes(path, p, n + 1);
    expect_load_error(path, "1 trailing bytes", "trailing byte");
    write_bytes(path, (const unsigned char *)"hello, world\n", 13);
    expect_load_error(path, "not a tapegrad model file", "text file");
    free(p);
}

/* One little-endian field to overwrite in a forged file. */
typedef struct edit {
    size_t off;
    uint64_t v;
    int bytes;
} edit;

/* The good file with some fields changed and a valid checksum, so that the
 * loader reaches the field checks themselves: it must say `text`. */
static void expect_forged(const unsigned char *good, size_t n, int n_edits, const edit *e,
                          const char *text) {
    const char *path = in_dir("forged.tgm");
    unsigned char *p = malloc(n);
    memcpy(p, good, n);
    for (int i = 0; i < n_edits; i++)
        set_le(p + e[i].off, e[i].v, e[i].bytes);
    reseal(p, n);
    write_bytes(path, p, n);
    expect_load_error(path, text, text);
    free(p);
}

#define FORGE(good, n, text, ...)                                                                  \
    expect_forged(good, n, (int)(sizeof((edit[]){__VA_ARGS__}) / sizeof(edit)),                    \
                  (edit[]){__VA_ARGS__}, text)

/* Offsets in the good file (f32, 3 layers 5x7, 7x4, 4x3, with statistics). */
enum { DTYPE = 12, LOSS = 16, ACT = 20, LAYERS = 24, CLASSES = 28, N_IN = 32, N_OUT = 40 };
enum { FAN = 48, HAS_STD = 96, MEAN = 97, STD = 97 + 5 * 8 };

static void test_forged(const unsigned char *good, size_t n) {
    uint64_t nan_bits, zero_bits = 0;
    double nan = NAN;
    memcpy(&nan_bits, &nan, sizeof nan_bits);
    FORGE(good, n, "unknown dtype 2", {DTYPE, 2, 4});
    FORGE(good, n, "unknown loss 9", {LOSS, 9, 4});
    FORGE(good, n, "unknown activation 5", {ACT, 5, 4});
    FORGE(good, n, "0 layers (must be 1..65)", {LAYERS, 0, 4});
    FORGE(good, n, "66 layers (must be 1..65)", {LAYERS, 66, 4});
    FORGE(good, n, "4294967295 layers", {LAYERS, 0xFFFFFFFF, 4});
    FORGE(good, n, "4 classes does not fit loss ce with 3 outputs", {CLASSES, 4, 4});
    FORGE(good, n, "bad sizes: 0 inputs", {N_IN, 0, 8});
    FORGE(good, n, "must be 1..1e8", {N_OUT, 100000001, 8});
    FORGE(good, n, "layer 1 has bad size 0x7", {FAN, 0, 8});
    FORGE(good, n, "layer 2 has bad size 7x18446744073709551615", {FAN + 24, UINT64_MAX, 8});
    /* Huge but legal sizes are refused by the length, before allocating:
     * under a 64 KiB limit on any one block (issue 12 §5) the message is
     * still "truncated", not "out of memory". */
    tg_testing_alloc_limit((size_t)64 << 10);
    FORGE(good, n, "truncated: expected 1600", {FAN + 16, 100000000, 8});
    FORGE(good, n, "truncated: expected 44000325 bytes, file has 545", {N_IN, 1000000, 8},
          {FAN, 1000000, 8});
    tg_testing_alloc_limit(0);
    FORGE(good, n, "bad standardisation flag 2", {HAS_STD, 2, 1});
    FORGE(good, n, "bad standardisation for feature 0", {STD, zero_bits, 8});
    FORGE(good, n, "bad standardisation for feature 1: mean nan", {MEAN + 8, nan_bits, 8});
    /* 5x1 and 16x4 hold as many values as 5x7 and 7x4: same size, broken chain. */
    FORGE(good, n, "layer 2 takes 16 inputs, but the layer before gives 1", {FAN + 8, 1, 8},
          {FAN + 16, 16, 8});
    FORGE(good, n, "last layer gives 3 outputs, the model 4", {N_OUT, 4, 8}, {CLASSES, 4, 4});
    FORGE(good, n, "loss bce does not fit 3 outputs", {LOSS, 0, 4});
    FORGE(good, n, "trailing bytes", {FAN + 40, 2, 8});
}

/* Without statistics the file's size does not depend on n_in. */
static void test_forged_n_in(void) {
    size_t n = 0;
    unsigned char *good = good_file(0, &n);
    if (good) FORGE(good, n, "layer 1 takes 5 inputs, but the model gives 6", {N_IN, 6, 8});
    free(good);
}

static void test_files(void) {
    expect_load_error(in_dir("missing.tgm"), "missing.tgm: No such file or directory", "missing");
    expect_load_error(dir, "is a directory", "load a directory");
    tg_mlp *m = make_model(TG_F32, 0, 9);
    tg_status s = tg_mlp_save(m, dir);
    CHECK(s == TG_ERR_IO && strstr(tg_last_error(), "is a directory"), "save over a directory: %s",
          tg_last_error());
    s = tg_mlp_save(m, in_dir("no/such/dir.tgm"));
    CHECK(s == TG_ERR_IO && strstr(tg_last_error(), "No such file or directory"),
          "save into a missing directory: %s", tg_last_error());
    CHECK(tg_mlp_save(NULL, "x") == TG_ERR_ARG && tg_mlp_load(NULL, "x") == TG_ERR_ARG, "NULLs");
    tg_mlp_free(m);
}

/* Fail the n-th allocation for n = 1, 2, ... until the call succeeds:
 * every failure must be TG_ERR_NOMEM, and ASan checks that none leaks. */
static void test_nomem(void) {
    const char *path = in_dir("nomem.tgm");
    tg_mlp *m = make_model(TG_F64, 1, 11), *back = NULL;
    CHECK_OK(tg_mlp_save(m, path));
    int n = 1, done = 0;
    for (; !done && n < 1000; n++) {
        tg_testing_fail_alloc_at((uint64_t)n);
        tg_status s = tg_mlp_load(&back, path);
        tg_testing_fail_alloc_at(0);
        CHECK(s == TG_OK || s == TG_ERR_NOMEM, "load, alloc %d fails: %s", n, tg_status_name(s));
        CHECK(s == TG_OK || back == NULL, "load, alloc %d: out not cleared", n);
        done = s == TG_OK;
    }
    CHECK(done && back && same_model(m, back), "load never succeeded (%d tries)", n);
    tg_mlp_free(back);
    for (n = 1, done = 0; !done && n < 100; n++) {
        tg_testing_fail_alloc_at((uint64_t)n);
        tg_status s = tg_mlp_save(m, path);
        tg_testing_fail_alloc_at(0);
        CHECK(s == TG_OK || s == TG_ERR_NOMEM, "save, alloc %d fails: %s", n, tg_status_name(s));
        done = s == TG_OK;
    }
    CHECK(done && count_files(".tmp.") == 0, "save under failing allocations");
    tg_mlp_free(m);
}

/* ---------------------------------------------------------------- DOT */

static int count_of(const char *s, const char *part) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, part)); p += strlen(part))
        n++;
    return n;
}

/* Render the text with Graphviz if it is installed: exit 0 means valid. */
static void check_with_graphviz(const char *text) {
    if (system("command -v dot >/dev/null 2>&1") != 0) {
        printf("note: graphviz 'dot' not found; DOT syntax not checked\n");
        return;
    }
    const char *path = in_dir("graph.dot");
    write_bytes(path, (const unsigned char *)text, strlen(text));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s' 2>&1", path, in_dir("graph.svg"));
    CHECK(system(cmd) == 0, "dot -Tsvg rejected the export:\n%s", text);
}

/* The export of tape t as a string (caller frees). */
static char *export_dot(const tg_tape *t) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL, "open_memstream");
    if (!f) return NULL;
    CHECK_OK(tg_tape_dot(t, f));
    fclose(f);
    return text;
}

static void test_dot(void) {
    tg_mlp *m = make_model(TG_F64, 0, 13);
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *y = NULL, *logits = NULL, *cost = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, TG_F64, 2, (size_t[]){8, 5}));
    CHECK_OK(tg_tensor_new(&y, TG_F64, 1, (size_t[]){8}));
    for (size_t i = 0; i < 8; i++)
        tg_set(y, i, (double)(i % 3));
    CHECK_OK(tg_mlp_forward(t, m, x, &logits));
    CHECK_OK(tg_mlp_cost(t, m, logits, y, &cost));
    /* 3 × matmul, 2 × bias_tanh (fused), bias_add, softmax_ce. */
    CHECK(tg_tape_size(t) == 7, "%d ops recorded", tg_tape_size(t));
    char *text = export_dot(t);
    if (text) {
        CHECK(strncmp(text, "digraph", 7) == 0, "does not start with digraph:\n%s", text);
        CHECK(count_of(text, "shape=ellipse") == 7, "one node per op:\n%s", text);
        CHECK(count_of(text, "->") == 3 * 4 + 2, "edges:\n%s", text);
        CHECK(count_of(text, "shape=box") == 8, "6 params + x + y:\n%s", text);
        CHECK(count_of(text, "label=\"param (") == 6, "params marked:\n%s", text);
        CHECK(count_of(text, "fillcolor") == 6, "params filled:\n%s", text);
        /* Leaves are numbered in order of use: x is matmul's first input. */
        CHECK(strstr(text, "l0 [shape=box, label=\"input (8x5)\"]") != NULL, "input box:\n%s",
              text);
        CHECK(strstr(text, "label=\"matmul\\n(8x7)\"") != NULL, "matmul node:\n%s", text);
        CHECK(strstr(text, "label=\"softmax_ce\\n()\"") != NULL, "cost node:\n%s", text);
        check_with_graphviz(text);
    }
    free(text);
    tg_tape_reset(t);
    text = export_dot(t);
    CHECK(text && strcmp(text, "digraph tapegrad {\n  rankdir=TB;\n}\n") == 0, "empty tape: %s",
          text ? text : "(null)");
    free(text);
    CHECK(tg_tape_dot(NULL, stdout) == TG_ERR_ARG && tg_tape_dot(t, NULL) == TG_ERR_ARG, "NULLs");
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
    tg_mlp_free(m);
}

/* A tensor used several times is one box with several edges. */
static void test_dot_shared_leaf(void) {
    tg_tape *t = NULL;
    tg_tensor *p = NULL, *sum = NULL, *prod = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_param_new(&p, TG_F32, 2, (size_t[]){2, 3}));
    CHECK_OK(tg_add(t, p, p, &sum));
    CHECK_OK(tg_mul(t, sum, p, &prod));
    char *text = export_dot(t);
    CHECK(text && count_of(text, "shape=box") == 1, "one box for p:\n%s", text ? text : "");
    CHECK(text && count_of(text, "l0 -> ") == 3 && count_of(text, "n0 -> n1") == 1, "edges:\n%s",
          text ? text : "");
    if (text) check_with_graphviz(text);
    free(text);
    tg_tensor_free(p);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- main */

static void remove_dir(void) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlink(in_dir(e->d_name));
    if (d) closedir(d);
    CHECK(rmdir(dir) == 0, "could not remove %s", dir);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int dt = 0; dt < 2; dt++)
        for (int std = 0; std < 2; std++)
            test_roundtrip((tg_dtype)dt, std);
    test_replace();
    size_t n = 0;
    unsigned char *good = good_file(1, &n);
    CHECK(good && n > 200, "good file: %zu bytes", n);
    if (good && n > 200) {
        test_truncation(good, n);
        test_damage(good, n);
        test_forged(good, n);
    }
    free(good);
    test_forged_n_in();
    test_files();
    test_nomem();
    test_dot();
    test_dot_shared_leaf();
    remove_dir();
    return check_summary();
}
