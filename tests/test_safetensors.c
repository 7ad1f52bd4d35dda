/* safetensors interchange (issue 16): tg_safetensors_save / _load.
 * Without arguments: round trips (bit for bit in each dtype, exact or
 * rounded across dtypes), a file written here byte by byte with known
 * values, and hostile files (truncated, lying header lengths, bad JSON,
 * missing/extra/duplicate tensors, wrong shapes and dtypes, offsets out of
 * the data, overlapping or of the wrong size), each refused with TG_ERR_IO
 * naming the file and the tensor, leaving the model as it was.
 * With `--import IN --export OUT` (tests/safetensors_check.py drives it):
 * loads the file Python wrote (value k of every tensor is k/10; ".bias"
 * tensors F64, the others F32) and checks every value, then writes OUT with
 * known values for Python to check (value k of tensor j is j + k/1000),
 * and prints the model's logits on a fixed input (print_logits), which
 * Python compares with torch's where torch is installed. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/tg-safet-XXXXXX";

/* conv2d 2 3 → batch_norm → relu → flatten → dense 3 on 1×4×4 examples:
 * tensors 0.weight 2×1×3×3, 0.bias 2, 1.weight/bias/running_mean/
 * running_var 2, 4.weight 3×8, 4.bias 3 (PyTorch's state_dict order). */
static const tg_layer_spec specs[] = {
    {.kind = "conv2d", .i = {2, 3}}, {.kind = "batch_norm"}, {.kind = "relu"}, {.kind = "flatten"},
    {.kind = "dense", .i = {3}},
};
static const size_t in_shape[3] = {1, 4, 4};
#define N_T 8

static tg_model *make_model(tg_dtype dt, uint64_t seed) {
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, dt, 3, in_shape, 5, specs));
    if (!m) return NULL;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    CHECK_OK(tg_model_init(m, &rng));
    tg_tensor *ts[N_T];
    CHECK(tg_model_tensors(m, ts, NULL, NULL, N_T) == N_T, "tensor count");
    for (size_t k = 0; k < ts[4]->size; k++) /* state not at its default */
        tg_set(ts[4], k, tg_rng_normal(&rng)), tg_set(ts[5], k, 1 + tg_rng_uniform(&rng));
    return m;
}

/* m's tensors' bytes equal (same dtype) or each value of a rounded to b's
 * dtype equal to b's (round = 1). */
static int same_values(const tg_model *a, const tg_model *b, int round) {
    tg_tensor *ta[N_T], *tb[N_T];
    tg_model_tensors(a, ta, NULL, NULL, N_T);
    tg_model_tensors(b, tb, NULL, NULL, N_T);
    for (int i = 0; i < N_T; i++)
        for (size_t k = 0; k < ta[i]->size; k++) {
            double x = tg_get(ta[i], k), y = tg_get(tb[i], k);
            if (round && tb[i]->dtype == TG_F32) x = (float)x;
            if (memcmp(&x, &y, sizeof x) != 0) return 0;
        }
    return 1;
}

static void test_roundtrip(tg_dtype from, tg_dtype to) {
    const char *path = check_path(dir, "rt.safetensors");
    tg_model *a = make_model(from, 1), *b = make_model(to, 2);
    if (!a || !b) goto out;
    CHECK_OK(tg_safetensors_save(a, path));
    CHECK(!same_values(a, b, 1), "models differ before the load");
    CHECK_OK(tg_safetensors_load(b, path));
    CHECK(same_values(a, b, 1), "round trip %d -> %d", from, to);
out:
    tg_model_free(a);
    tg_model_free(b);
}

/* ---------------------------------------------------------------- files by hand */

/* A one-layer model (dense 2 on 3 features: 0.weight 2×3, 0.bias 2). */
static tg_model *dense_model(tg_dtype dt) {
    static const tg_layer_spec d[] = {{.kind = "dense", .i = {2}}};
    size_t in = 3;
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, dt, 1, &in, 1, d));
    return m;
}

/* A file of a u64 header length hlen, the header text and n data bytes. */
static const char *write_raw(uint64_t hlen, const char *header, const void *data, size_t n) {
    const char *path = check_path(dir, "hand.safetensors");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return path;
    for (int i = 0; i < 8; i++)
        fputc((int)(hlen >> (8 * i)) & 0xff, f);
    fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static const char *write_file(const char *header, const void *data, size_t n) {
    return write_raw(strlen(header), header, data, n);
}

/* Little-endian data: 6 F64 weights (k/10) then 2 F32 biases (1, 2). */
static size_t hand_data(unsigned char *p) {
    size_t n = 0;
    for (int k = 0; k < 6; k++) {
        double v = k / 10.0;
        uint64_t bits;
        memcpy(&bits, &v, 8);
        for (int i = 0; i < 8; i++)
            p[n++] = (unsigned char)(bits >> (8 * i));
    }
    for (int k = 0; k < 2; k++) {
        float v = (float)(k + 1);
        uint32_t bits;
        memcpy(&bits, &v, 4);
        for (int i = 0; i < 4; i++)
            p[n++] = (unsigned char)(bits >> (8 * i));
    }
    return n;
}

#define W_ENTRY "\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]}"
#define B_ENTRY "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[48,56]}"

static void test_hand_file(void) {
    unsigned char data[64];
    size_t n = hand_data(data);
    /* bias first, metadata in the middle, padding after: all allowed. */
    const char *path =
        write_file("{" B_ENTRY ",\"__metadata__\":{\"format\":\"pt\"}," W_ENTRY "}   ", data, n);
    for (int dt = 0; dt < 2; dt++) {
        tg_model *m = dense_model((tg_dtype)dt);
        if (!m) continue;
        CHECK_OK(tg_safetensors_load(m, path));
        tg_tensor *ts[2];
        tg_model_tensors(m, ts, NULL, NULL, 2);
        for (int k = 0; k < 6; k++) {
            double want = dt == TG_F32 ? (double)(float)(k / 10.0) : k / 10.0;
            CHECK(tg_get(ts[0], (size_t)k) == want, "weight %d: %.17g", k,
                  tg_get(ts[0], (size_t)k));
        }
        CHECK(tg_get(ts[1], 0) == 1 && tg_get(ts[1], 1) == 2, "bias");
        tg_model_free(m);
    }
}

/* The header m's file has: length a multiple of 8, names in order. */
static void test_written_header(void) {
    const char *path = check_path(dir, "hdr.safetensors");
    tg_model *m = make_model(TG_F32, 3);
    if (!m) return;
    CHECK_OK(tg_safetensors_save(m, path));
    tg_model_free(m);
    FILE *f = fopen(path, "rb");
    unsigned char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    uint64_t hlen = 0;
    for (int i = 0; i < 8 && n >= 8; i++)
        hlen |= (uint64_t)buf[i] << (8 * i);
    CHECK(n > 8 && hlen % 8 == 0 && hlen < n, "header length %llu", (unsigned long long)hlen);
    const char *h = (const char *)buf + 8;
    CHECK(strstr(h, "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[0,72]}"),
          "header: %.300s", h);
    CHECK(strstr(h, "\"1.running_var\"") && strstr(h, "\"format\":\"pt\""), "header: %.300s", h);
}

/* Each hostile file: TG_ERR_IO naming the path and `text`, m unchanged. */
static void expect_refused(tg_model *m, const char *path, const char *text) {
    tg_tensor *ts[2];
    tg_model_tensors(m, ts, NULL, NULL, 2);
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < ts[i]->size; k++)
            tg_set(ts[i], k, -7);
    EXPECT_ERR(tg_safetensors_load(m, path), TG_ERR_IO, text);
    CHECK(strncmp(tg_last_error(), path, strlen(path)) == 0, "'%s' does not name the file",
          tg_last_error());
    int same = 1;
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < ts[i]->size; k++)
            same = same && tg_get(ts[i], k) == -7;
    CHECK(same, "model changed by a refused file (%s)", text);
}

static void test_hostile(void) {
    tg_model *m = dense_model(TG_F64);
    if (!m) return;
    unsigned char data[64];
    size_t n = hand_data(data);
    static const struct {
        const char *header, *text;
    } cases[] = {
        {"[1,2]", "not a JSON object"},
        {"{\"0.weight\":", "not valid JSON"},
        {"{" W_ENTRY "}", "tensor '0.bias' is missing"},
        {"{" W_ENTRY "," B_ENTRY ",\"1.weight\":{}}", "tensor '1.weight' is not in the model"},
        {"{" W_ENTRY "," B_ENTRY "," B_ENTRY "}", "tensor '0.bias' appears twice"},
        {"{" W_ENTRY "," B_ENTRY "}xx", "bytes after the header's JSON"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[3,2],\"data_offsets\":[0,48]}}",
         "tensor '0.weight' has shape [3, 2], the model's is [2, 3]"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[6],\"data_offsets\":[0,48]}}",
         "tensor '0.weight' has shape [6], the model's is [2, 3]"},
        {"{" B_ENTRY
         ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,1e300],\"data_offsets\":[0,48]}}",
         "tensor '0.weight': shape entry 1 is not a size"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,-3],\"data_offsets\":[0,48]}}",
         "tensor '0.weight': shape entry 1 is not a size"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[1,1,1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,48]}}",
         "tensor '0.weight': rank 9"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}",
         "tensor '0.weight': dtype \"F16\""},
        {"{" B_ENTRY ",\"0.weight\":{\"shape\":[2,3],\"data_offsets\":[0,48]}}",
         "tensor '0.weight': \"dtype\" is missing"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,4.5]}}",
         "tensor '0.weight': \"data_offsets\" is not [begin, end]"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0]}}",
         "tensor '0.weight': \"data_offsets\" is not [begin, end]"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],"
         "\"data_offsets\":[18446744073709551615,18446744073709551663]}}",
         "tensor '0.weight': \"data_offsets\" is not [begin, end]"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[16,64]}}",
         "tensor '0.weight': data_offsets [16, 64] outside the 56 data bytes"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[8,0]}}",
         "tensor '0.weight': data_offsets [8, 0] outside"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,40]}}",
         "tensor '0.weight': 40 data bytes, its shape and dtype need 48"},
        {"{" B_ENTRY ",\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[32,56]}}",
         "overlap in the data"},
        {"{" W_ENTRY "," B_ENTRY ",\"__metadata__\":{\"n\":3}}",
         "__metadata__ entry 'n' is not a string"},
        {"{" W_ENTRY "," B_ENTRY ",\"__metadata__\":[]}", "__metadata__ is not an object"},
        {"{" W_ENTRY ",\"0.bias\":[]}", "tensor '0.bias': entry is not an object"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        expect_refused(m, write_file(cases[c].header, data, n), cases[c].text);
    /* Header lengths that lie: past the end, 2^64 − 1, too short to be JSON. */
    const char *good = "{" W_ENTRY "," B_ENTRY "}";
    expect_refused(m, write_raw(strlen(good) + 57, good, data, n), "does not fit the file's");
    expect_refused(m, write_raw(UINT64_MAX, good, data, n), "header length 18446744073709551615");
    expect_refused(m, write_raw(1, good, data, n), "header length 1 does not fit");
    /* Every truncation of a good file is refused. */
    const char *path = write_file(good, data, n);
    FILE *f = fopen(path, "rb");
    unsigned char whole[512];
    size_t len = f ? fread(whole, 1, sizeof whole, f) : 0;
    if (f) fclose(f);
    CHECK(len == 8 + strlen(good) + n, "file of %zu bytes", len);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        f = fopen(path, "wb");
        if (!f) break;
        fwrite(whole, 1, cut, f);
        fclose(f);
        refused += tg_safetensors_load(m, path) == TG_ERR_IO &&
                   strncmp(tg_last_error(), path, strlen(path)) == 0;
    }
    CHECK(refused == (int)len, "%d of %zu truncations refused", refused, len);
    expect_refused(m, check_path(dir, "absent.safetensors"), "absent.safetensors");
    EXPECT_ERR(tg_safetensors_load(NULL, path), TG_ERR_ARG, "NULL");
    EXPECT_ERR(tg_safetensors_save(m, check_path(dir, "no/such/dir.st")), TG_ERR_IO, "no/such");
    tg_model_free(m);
}

/* ---------------------------------------------------------------- with Python */

/* The eval-mode logits of m on x[n][0][h][w] = sin(16n + 4h + w), 2
 * examples, printed for the Python side to compare with torch's. */
static void print_logits(const tg_model *m) {
    size_t shape[4] = {2, 1, 4, 4};
    tg_tensor *x = NULL, *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tensor_new(&x, TG_F64, 4, shape));
    CHECK_OK(tg_tape_new(&t));
    if (!x || !t) goto out;
    for (size_t k = 0; k < x->size; k++)
        tg_set(x, k, sin((double)k));
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y));
    printf("logits:");
    for (size_t k = 0; y && k < y->size; k++)
        printf(" %.17g", tg_get(y, k));
    printf("\n");
out:
    tg_tape_free(t);
    tg_tensor_free(x);
}

static int python_direction(const char *in, const char *out) {
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, TG_F64, 3, in_shape, 5, specs));
    if (!m) return check_summary();
    CHECK_OK(tg_safetensors_load(m, in));
    tg_tensor *ts[N_T];
    const char *names[N_T];
    tg_model_tensors(m, ts, names, NULL, N_T);
    for (int i = 0; i < N_T; i++) {
        int f64 = strstr(names[i], ".bias") != NULL;
        int bad = 0;
        for (size_t k = 0; k < ts[i]->size; k++) {
            double want = f64 ? k / 10.0 : (double)(float)(k / 10.0);
            bad += tg_get(ts[i], k) != want;
        }
        CHECK(bad == 0, "%s: %d values differ from k/10", names[i], bad);
        for (size_t k = 0; k < ts[i]->size; k++)
            tg_set(ts[i], k, i + k / 1000.0);
    }
    CHECK_OK(tg_safetensors_save(m, out));
    print_logits(m);
    tg_model_free(m);
    return check_summary();
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--import") == 0 && strcmp(argv[3], "--export") == 0)
        return python_direction(argv[2], argv[4]);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            test_roundtrip((tg_dtype)a, (tg_dtype)b);
    test_written_header();
    test_hand_file();
    test_hostile();
    unlink(check_path(dir, "rt.safetensors"));
    unlink(check_path(dir, "hdr.safetensors"));
    unlink(check_path(dir, "hand.safetensors"));
    CHECK(rmdir(dir) == 0, "could not remove %s", dir);
    return check_summary();
}
