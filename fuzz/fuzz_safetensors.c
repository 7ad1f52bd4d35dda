/* fuzz_safetensors: tg_safetensors_load on hostile files (issue 16).
 * Input: byte 0 picks the model and the mode:
 *   bit 0     the model's dtype (F32, F64);
 *   bit 1     the model: dense 2 on 3 features (0.weight 2×3, 0.bias 2), or
 *             conv2d 2 3 → batch_norm → flatten → dense 3 on 1×4×4 (eight
 *             tensors, state among them);
 *   bit 2     the mode: 0 raw (the rest is the file as it is), 1 framed (byte
 *             1 is the header's length mod 256 plus 256 × byte 2; the rest
 *             is header then data, and the 8-byte length prefix is written
 *             to match, so that mutations reach the JSON and the offsets).
 * Properties: a refusal is TG_ERR_IO naming the file and leaves the model's
 * values as they were; an accepted file, loaded again, gives the same bits,
 * and the model saved and loaded into a fresh one gives them too. */
#include "fuzz_common.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#define MAX_T 8

static tg_model *models[2][2]; /* [kind][dtype], built once */

static const tg_layer_spec dense_spec[] = {{.kind = "dense", .i = {2}}};
static const tg_layer_spec cnn_spec[] = {
    {.kind = "conv2d", .i = {2, 3}},
    {.kind = "batch_norm"},
    {.kind = "flatten"},
    {.kind = "dense", .i = {3}},
};

static tg_model *build(int kind, tg_dtype dt) {
    static const size_t dense_in[1] = {3}, cnn_in[3] = {1, 4, 4};
    tg_model *m = NULL;
    tg_status s = kind ? tg_model_new(&m, dt, 3, cnn_in, 4, cnn_spec)
                       : tg_model_new(&m, dt, 1, dense_in, 1, dense_spec);
    FUZZ_ASSERT(s == TG_OK && m);
    return m;
}

static void free_models(void) {
    for (int k = 0; k < 2; k++)
        for (int d = 0; d < 2; d++)
            tg_model_free(models[k][d]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_dir_init("safetensors");
    for (int k = 0; k < 2; k++)
        for (int d = 0; d < 2; d++)
            models[k][d] = build(k, (tg_dtype)d);
    atexit(free_models);
    return 0;
}

/* Every value of m, as doubles, into v (room for all of them). */
static size_t snapshot(const tg_model *m, double *v) {
    tg_tensor *ts[MAX_T];
    int n = tg_model_tensors(m, ts, NULL, NULL, MAX_T);
    FUZZ_ASSERT(n <= MAX_T);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < ts[i]->size; j++)
            v[k++] = tg_get(ts[i], j);
    return k;
}

static void fill(tg_model *m, double value) {
    tg_tensor *ts[MAX_T];
    int n = tg_model_tensors(m, ts, NULL, NULL, MAX_T);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < ts[i]->size; j++)
            tg_set(ts[i], j, value);
}

/* Bitwise equality (NaN payloads included). */
static int same(const double *a, const double *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void check_accepted(tg_model *m, int kind, tg_dtype dt, const char *path, double *v,
                           size_t n) {
    char again[512];
    fuzz_path(again, sizeof again, "again.safetensors");
    double w[64];
    fill(m, -3);
    FUZZ_ASSERT(tg_safetensors_load(m, path) == TG_OK);
    FUZZ_ASSERT(snapshot(m, w) == n && same(v, w, n));
    FUZZ_ASSERT(tg_safetensors_save(m, again) == TG_OK);
    tg_model *fresh = build(kind, dt);
    FUZZ_ASSERT(tg_safetensors_load(fresh, again) == TG_OK);
    FUZZ_ASSERT(snapshot(fresh, w) == n && same(v, w, n));
    tg_model_free(fresh);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int dt = data[0] & 1, kind = (data[0] >> 1) & 1, framed = (data[0] >> 2) & 1;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    uint8_t *file = malloc(n + 8);
    FUZZ_ASSERT(file);
    size_t len = n;
    if (framed && n >= 2) {
        uint64_t hlen = rest[0] | (uint64_t)rest[1] << 8;
        rest += 2, n -= 2;
        if (hlen > n) hlen = n;
        for (int i = 0; i < 8; i++)
            file[i] = (uint8_t)(hlen >> (8 * i));
        memcpy(file + 8, rest, n);
        len = n + 8;
    } else {
        memcpy(file, rest, n);
    }
    char path[512];
    fuzz_path(path, sizeof path, "in.safetensors");
    fuzz_write(path, file, len);

    tg_model *m = models[kind][dt];
    double before[64], after[64];
    fill(m, -7);
    size_t count = snapshot(m, before);
    tg_status s = tg_safetensors_load(m, path);
    size_t count2 = snapshot(m, after);
    FUZZ_ASSERT(count2 == count);
    if (s != TG_OK) {
        fuzz_check_error(s);
        FUZZ_ASSERT(s == TG_ERR_IO);
        FUZZ_ASSERT(strstr(tg_last_error(), path) != NULL);
        FUZZ_ASSERT(same(before, after, count)); /* a refused file changes nothing */
        fuzz_stats_note(1, file, len);
    } else {
        fuzz_stats_note(0, file, len);
        check_accepted(m, kind, (tg_dtype)dt, path, after, count);
    }
    free(file);
    return 0;
}
