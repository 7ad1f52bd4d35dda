/* fuzz_model: tg_mlp_load on hostile model files (docs/model-format.md).
 * Input: byte 0 picks a mode (byte % 3), the rest is the material:
 *   0  raw:        the rest is the file, as it is;
 *   1  fixed CRC:  the rest is the file, with its trailer (length field and
 *                  CRC-32) rewritten to match, so that mutations get past
 *                  the checksum to the checks behind it;
 *   2  structured: the rest drives a generator that writes a model file
 *                  field by field (mostly valid sizes, enums and statistics,
 *                  sometimes not), then optionally damages it before or
 *                  after the trailer is fixed.
 * Properties: a refusal is TG_ERR_IO naming the file, with *out NULL; an
 * accepted file gives a consistent model that saves back to the very same
 * bytes, loads again, and runs forward and backward on a small batch.
 * The same file also goes to the version-2 loader (tg_model_load; check_v2),
 * whose seeds in the corpus start with a mode byte 0 (raw) or 1 (fixed CRC). */
#include "fuzz_common.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <math.h>
#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_dir_init("model");
    return 0;
}

/* ---------------------------------------------------------------- bytes out */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put_bytes(buf *b, const void *p, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        FUZZ_ASSERT(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_le(buf *b, uint64_t v, int bytes) {
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    put_bytes(b, t, (size_t)bytes);
}

static void put_f64(buf *b, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_le(b, bits, 8);
}

/* Rewrite the trailer of p[0..n): length field = n − 12, CRC of p[0..n−4). */
static void fix_trailer(unsigned char *p, size_t n) {
    if (n < 12) return;
    uint64_t len = n - 12;
    for (int i = 0; i < 8; i++)
        p[n - 12 + (size_t)i] = (unsigned char)(len >> (8 * i));
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        p[n - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
}

/* ---------------------------------------------------------------- generator */

/* A model file from the fuzz bytes: small sizes, fields mostly valid. */
static void generate(fuzz_bytes *in, buf *out) {
    uint8_t f1 = fb_u8(in), f2 = fb_u8(in);
    uint32_t dtype = f1 & 1;
    if (f1 & 0x80) dtype = fb_u8(in); /* anything */
    uint32_t version = (f2 & 0x40) ? fb_u8(in) % 4 : 1;
    uint32_t loss = fb_u8(in) % 4; /* 3 is unknown */
    uint32_t act = fb_u8(in) % 6;  /* 5 is unknown */
    uint32_t n_layers = fb_u8(in) % 5;
    if (f2 & 0x20) n_layers = fb_u8(in) % 70; /* up to and past the limit of 65 */
    uint64_t n_in = 1 + fb_u8(in) % 6;
    uint64_t n_out = loss == 0 ? 1 : loss == 1 ? 2 + fb_u8(in) % 4 : 1 + fb_u8(in) % 4;
    if (f1 & 0x02) n_out = fb_u8(in) % 7; /* maybe wrong for the loss, maybe 0 */
    int32_t n_classes = loss == 1 ? (int32_t)n_out : loss == 0 ? 2 : 0;
    if (f1 & 0x04) n_classes = (int32_t)(int8_t)fb_u8(in);
    uint8_t has_std = (f1 & 0x08) ? 1 : 0;
    if ((f1 & 0x10) && (f2 & 0x01)) has_std = fb_u8(in); /* maybe > 1 */

    put_bytes(out, "TGMODEL", 8);
    put_le(out, version, 4);
    put_le(out, dtype, 4);
    put_le(out, loss, 4);
    put_le(out, act, 4);
    put_le(out, n_layers, 4);
    put_le(out, (uint32_t)n_classes, 4);
    put_le(out, n_in, 8);
    put_le(out, n_out, 8);
    uint64_t fan_in = n_in, params = 0;
    for (uint32_t i = 0; i < n_layers; i++) {
        uint64_t fan_out = i + 1 == n_layers ? n_out : (uint64_t)(1 + fb_u8(in) % 6);
        uint64_t fi = fan_in, fo = fan_out;
        if (f2 & 0x02) { /* break the chain or the sizes now and then */
            uint8_t e = fb_u8(in);
            if (e % 16 == 1) fi++;
            if (e % 16 == 2) fo = 0;
            if (e % 16 == 3) fo = 100000001ull; /* over 1e8 */
            if (e % 16 == 4) fi = UINT64_MAX;
        }
        put_le(out, fi, 8);
        put_le(out, fo, 8);
        if (fi <= 64 && fo <= 64) params += fi * fo + fo;
        fan_in = fan_out;
    }
    put_le(out, has_std, 1);
    for (int s = 0; has_std == 1 && s < 2; s++) {
        for (uint64_t j = 0; j < n_in; j++) {
            uint8_t v = fb_u8(in);
            double x = s == 0 ? (double)(int8_t)v / 16.0 : (double)v / 32.0; /* std 0: refused */
            if ((f2 & 0x04) && v == 0x7f) x = (f2 & 0x08) ? NAN : INFINITY;
            if ((f2 & 0x04) && v == 0x80) x = -x;
            put_f64(out, x);
        }
    }
    size_t esize = dtype == 0 ? 4 : 8;
    for (uint64_t k = 0; k < params * esize; k++) { /* raw bits: NaNs and all */
        uint8_t v = fb_u8(in);
        put_bytes(out, &v, 1);
    }
    put_le(out, 0, 8); /* length and CRC: fixed below */
    put_le(out, 0, 4);

    uint8_t damage = fb_u8(in);
    size_t at = out->n ? fb_u32(in) % out->n : 0;
    size_t cut = 1 + at % 16;
    if (damage % 8 == 1) out->n -= cut < out->n ? cut : out->n; /* truncated */
    if (damage % 8 == 2) put_le(out, fb_u8(in), 1 + fb_u8(in) % 8); /* trailing bytes */
    if (damage % 8 == 3 && at < out->n) out->p[at] ^= (uint8_t)(1u << (fb_u8(in) % 8)); /* flip */
    fix_trailer(out->p, out->n);
    if (damage % 8 == 4 && at < out->n) out->p[at] ^= 0x10; /* damage after the CRC: refused */
}

/* ---------------------------------------------------------------- properties */

static void check_model(const tg_mlp *m) {
    FUZZ_ASSERT(m->dtype == TG_F32 || m->dtype == TG_F64);
    FUZZ_ASSERT(m->n_layers >= 1 && m->n_layers <= 65 && m->layers);
    FUZZ_ASSERT(m->n_in >= 1 && m->n_out >= 1);
    FUZZ_ASSERT((unsigned)m->loss <= TG_LOSS_MSE && (unsigned)m->act <= TG_ACT_LEAKY_RELU);
    size_t fan_in = m->n_in;
    for (int i = 0; i < m->n_layers; i++) {
        const tg_dense *l = &m->layers[i];
        FUZZ_ASSERT(l->w && l->b && l->w->rank == 2 && l->w->shape[0] == fan_in);
        FUZZ_ASSERT(l->b->size == l->w->shape[1]);
        FUZZ_ASSERT(l->act == (i + 1 == m->n_layers ? TG_ACT_NONE : m->act));
        fan_in = l->w->shape[1];
    }
    FUZZ_ASSERT(fan_in == m->n_out);
    FUZZ_ASSERT((m->mean == NULL) == (m->std == NULL));
    for (size_t j = 0; m->std && j < m->n_in; j++)
        FUZZ_ASSERT(m->std[j] > 0);
}

/* Read a whole (small) file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    FUZZ_ASSERT(f);
    buf b = {0};
    unsigned char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        put_bytes(&b, chunk, k);
    fclose(f);
    *n = b.n;
    return b.p;
}

/* Forward and backward on two rows of zeros: a loaded model must run. */
static void run_model(const tg_mlp *m) {
    size_t rows = 2;
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *y = NULL, *logits = NULL, *cost = NULL;
    FUZZ_ASSERT(tg_tape_new(&t) == TG_OK);
    FUZZ_ASSERT(tg_tensor_new(&x, m->dtype, 2, (size_t[]){rows, m->n_in}) == TG_OK);
    if (m->loss == TG_LOSS_CE)
        FUZZ_ASSERT(tg_tensor_new(&y, m->dtype, 1, (size_t[]){rows}) == TG_OK);
    else
        FUZZ_ASSERT(tg_tensor_new(&y, m->dtype, 2, (size_t[]){rows, m->n_out}) == TG_OK);
    FUZZ_ASSERT(tg_mlp_forward(t, m, x, &logits) == TG_OK);
    FUZZ_ASSERT(logits->rank == 2 && logits->shape[0] == rows && logits->shape[1] == m->n_out);
    FUZZ_ASSERT(tg_mlp_cost(t, m, logits, y, &cost) == TG_OK);
    FUZZ_ASSERT(tg_backward(t, cost) == TG_OK);
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* The version-2 loader on the same file: a refusal is TG_ERR_IO naming the
 * file with *out NULL; an accepted model saves back to the same bytes and
 * runs forward in eval on one example of zeros. */
static void check_v2(const char *path, const char *again, const buf *file) {
    tg_model *m = (tg_model *)(uintptr_t)1;
    tg_status s = tg_model_load(&m, path);
    if (s != TG_OK) {
        fuzz_check_error(s);
        FUZZ_ASSERT(s == TG_ERR_IO && m == NULL);
        FUZZ_ASSERT(strstr(tg_last_error(), path) != NULL);
        return;
    }
    FUZZ_ASSERT(m && tg_model_save(m, again) == TG_OK);
    size_t n2 = 0;
    unsigned char *bytes2 = slurp(again, &n2);
    FUZZ_ASSERT(n2 == file->n && memcmp(bytes2, file->p, n2) == 0);
    free(bytes2);
    size_t shape[TG_MAX_RANK] = {1};
    memcpy(shape + 1, m->in_shape, (size_t)m->in_rank * sizeof *shape);
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *y = NULL;
    FUZZ_ASSERT(tg_tape_new(&t) == TG_OK);
    FUZZ_ASSERT(tg_tensor_new(&x, m->dtype, m->in_rank + 1, shape) == TG_OK);
    tg_model_forward(t, m, x, 0, NULL, &y); /* may refuse (shapes an op rejects): no crash */
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    buf file = {0};
    if (mode == 2) {
        fuzz_bytes in = {data + 1, size - 1, 0};
        generate(&in, &file);
    } else {
        put_bytes(&file, data + 1, size - 1);
        if (mode == 1) fix_trailer(file.p, file.n);
    }
    char path[512], again[512];
    fuzz_path(path, sizeof path, "in.tgm");
    fuzz_path(again, sizeof again, "again.tgm");
    fuzz_write(path, file.p, file.n);

    check_v2(path, again, &file);
    tg_mlp *m = (tg_mlp *)(uintptr_t)1; /* the loader must set *out */
    tg_status s = tg_mlp_load(&m, path);
    if (s != TG_OK) {
        fuzz_check_error(s);
        FUZZ_ASSERT(s == TG_ERR_IO);
        FUZZ_ASSERT(m == NULL);
        FUZZ_ASSERT(strstr(tg_last_error(), path) != NULL);
        fuzz_stats_note(1, file.p, file.n); /* count distinct files, not inputs */
        free(file.p);
        return 0;
    }
    fuzz_stats_note(0, file.p, file.n);
    FUZZ_ASSERT(m != NULL);
    check_model(m);
    /* The format has one encoding per model: saving gives back the input. */
    FUZZ_ASSERT(tg_mlp_save(m, again) == TG_OK);
    size_t n2 = 0;
    unsigned char *bytes2 = slurp(again, &n2);
    FUZZ_ASSERT(n2 == file.n && memcmp(bytes2, file.p, n2) == 0);
    free(bytes2);
    tg_mlp *m2 = NULL;
    FUZZ_ASSERT(tg_mlp_load(&m2, again) == TG_OK && m2);
    check_model(m2);
    tg_mlp_free(m2);
    run_model(m);
    tg_mlp_free(m);
    free(file.p);
    return 0;
}
