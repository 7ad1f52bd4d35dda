/* fuzz_idx: tg_idx_load on an images file and a labels file made from one
 * input.
 * Input: byte 0 = flags, bytes 1..2 = L (u16, little-endian), then L bytes
 * of the images file and the rest for the labels file.
 *   flags bit 0/1: write images/labels gzip-compressed as PREFIX-...-ubyte.gz
 *   flags bit 2/3: write images/labels bytes as they are, but named .gz
 *                  (gzread then sees a foreign or damaged gzip stream)
 *   flags bit 4/5: leave the labels/images file out
 * Properties: an error is TG_ERR_IO with a message naming the files and an
 * empty dataset; a success has n >= 1 examples of d >= 1 pixels in [0, 1]
 * and labels that are bytes (integers 0..255). */
#include "fuzz_common.h"
#include "tapegrad_io.h"

#include <math.h>
#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_dir_init("idx");
    return 0;
}

/* gzip-compress p[0..n) into a malloc'd buffer. */
static unsigned char *gzip_of(const uint8_t *p, size_t n, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    FUZZ_ASSERT(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    uLong cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    FUZZ_ASSERT(out);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    FUZZ_ASSERT(deflate(&z, Z_FINISH) == Z_STREAM_END);
    *out_len = (size_t)z.total_out;
    deflateEnd(&z);
    return out;
}

/* PREFIX-stem or PREFIX-stem.gz holding p[0..n), the other one removed. */
static void put(const char *prefix, const char *stem, const uint8_t *p, size_t n, int gz, int raw_gz,
                int absent) {
    char plain[600], zipped[600];
    snprintf(plain, sizeof plain, "%s-%s", prefix, stem);
    snprintf(zipped, sizeof zipped, "%s-%s.gz", prefix, stem);
    unlink(plain);
    unlink(zipped);
    if (absent) return;
    if (gz) {
        size_t len = 0;
        unsigned char *z = gzip_of(p, n, &len);
        fuzz_write(zipped, z, len);
        free(z);
    } else {
        fuzz_write(raw_gz ? zipped : plain, p, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    unsigned flags = data[0];
    size_t L = (size_t)data[1] | (size_t)data[2] << 8;
    const uint8_t *rest = data + 3;
    size_t n = size - 3;
    if (L > n) L = n;
    char prefix[512];
    fuzz_path(prefix, sizeof prefix, "set");
    put(prefix, "images-idx3-ubyte", rest, L, flags & 1, flags & 4, flags & 32);
    put(prefix, "labels-idx1-ubyte", rest + L, n - L, flags & 2, flags & 8, flags & 16);
    tg_dataset ds;
    memset(&ds, 0xA5, sizeof ds);
    tg_status s = tg_idx_load(prefix, &ds);
    if (s != TG_OK) {
        fuzz_check_error(s);
        FUZZ_ASSERT(s == TG_ERR_IO);
        FUZZ_ASSERT(ds.x == NULL && ds.y == NULL && ds.n == 0);
        FUZZ_ASSERT(strstr(tg_last_error(), prefix) != NULL);
        fuzz_stats_note(1, data, size);
        return 0;
    }
    fuzz_stats_note(0, data, size);
    FUZZ_ASSERT(ds.n >= 1 && ds.d >= 1 && ds.x && ds.y);
    for (size_t i = 0; i < ds.n * ds.d; i++)
        FUZZ_ASSERT(ds.x[i] >= 0 && ds.x[i] <= 1);
    for (size_t i = 0; i < ds.n; i++)
        FUZZ_ASSERT(ds.y[i] >= 0 && ds.y[i] <= 255 && ds.y[i] == floor(ds.y[i]));
    int classes = tg_dataset_classes(&ds);
    FUZZ_ASSERT(classes >= 1 && classes <= 256);
    tg_dataset_free(&ds);
    FUZZ_ASSERT(ds.x == NULL && ds.y == NULL);
    return 0;
}
