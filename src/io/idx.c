/* IDX files, the MNIST format: a big-endian header (magic, then one 32-bit
 * size per dimension) and unsigned bytes. zlib's gzread reads both plain
 * and gzip files, so PREFIX-...-ubyte and PREFIX-...-ubyte.gz share one
 * path. Headers are distrusted: memory grows with the bytes actually read,
 * so a header that claims more data than the file holds reports
 * "truncated" instead of asking for a huge allocation. Each file is read to
 * its end (issue 12 §4): zlib checks a gzip stream's CRC and length only
 * there, and bytes past what the header promised mean the header is wrong. */
#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define MAX_ITEMS    100000000u  /* 1e8: far above any real data set */
#define MAX_PIXELS   (1u << 24)  /* per image: 4096 × 4096 */

typedef struct idx_file {
    gzFile f;
    char path[4096];
} idx_file;

/* Opens PREFIX-STEM, or PREFIX-STEM.gz when the first does not exist. */
static tg_status idx_open(idx_file *F, const char *prefix, const char *stem) {
    const char *const ext[2] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        int len = snprintf(F->path, sizeof F->path, "%s-%s%s", prefix, stem, ext[i]);
        if (len < 0 || (size_t)len >= sizeof F->path)
            return tg_fail(TG_ERR_ARG, "idx: prefix too long: %.64s...", prefix);
        errno = 0;
        F->f = gzopen(F->path, "rb");
        if (F->f) return TG_OK;
        if (errno != ENOENT) /* zlib leaves errno 0 when its own malloc fails */
            return tg_fail(TG_ERR_IO, "%s: %s", F->path, errno ? strerror(errno) : "out of memory");
    }
    return tg_fail(TG_ERR_IO, "%s-%s[.gz]: %s", prefix, stem, strerror(ENOENT));
}

/* Reads up to n bytes; returns the count read, or -1 on a read error. */
static long long read_bytes(idx_file *F, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got; /* gzread takes unsigned */
        int k = gzread(F->f, buf + got, (unsigned)want);
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (long long)got;
}

/* Z_DATA_ERROR is zlib finding the compressed bytes damaged: a bad CRC or
 * length in the trailer, or a stream that does not decode. */
static tg_status read_error(idx_file *F) {
    int zerr;
    const char *msg = gzerror(F->f, &zerr);
    size_t n = strlen(F->path); /* zlib's message starts with the path: ours does already */
    if (strncmp(msg, F->path, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
    if (zerr == Z_DATA_ERROR)
        return tg_fail(TG_ERR_IO, "%s: gzip data check failed (%s): the file is damaged", F->path,
                       msg);
    return tg_fail(TG_ERR_IO, "%s: read error: %s", F->path,
                   zerr == Z_ERRNO ? strerror(errno) : msg);
}

/* After the `n` bytes of `what` the header promised: nothing more, and for
 * a gzip file a complete, checked trailer. gzread checks the CRC and the
 * length when it reaches the end of the stream, which only a read past the
 * last data byte does; a stream cut inside its trailer ends with
 * Z_BUF_ERROR and no error from gzread. */
static tg_status expect_end(idx_file *F, size_t n, const char *what) {
    unsigned char extra[1];
    int k = gzread(F->f, extra, sizeof extra);
    if (k < 0) return read_error(F);
    if (k > 0)
        return tg_fail(TG_ERR_IO, "%s: trailing data after the %zu bytes of %s the header promised",
                       F->path, n, what);
    int zerr;
    gzerror(F->f, &zerr);
    if (zerr == Z_BUF_ERROR)
        return tg_fail(TG_ERR_IO, "%s: truncated gzip stream: its CRC and length are missing",
                       F->path);
    return TG_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static tg_status header_bytes(idx_file *F, unsigned char *h, size_t want, size_t before) {
    long long got = read_bytes(F, h, want);
    if (got < 0) return read_error(F);
    if ((size_t)got < want)
        return tg_fail(TG_ERR_IO, "%s: truncated: expected a %zu-byte header, got %zu", F->path,
                       before + want, before + (size_t)got);
    return TG_OK;
}

/* Reads the header: the magic, then `ndims` sizes into dims[]. The magic
 * is checked on its own first, so that a foreign file is named as such
 * even when it is shorter than the header it was mistaken for. */
static tg_status read_header(idx_file *F, uint32_t magic, int ndims, uint32_t *dims) {
    unsigned char h[16];
    tg_status st = header_bytes(F, h, 4, 0);
    if (st) return st;
    uint32_t m = be32(h);
    if (m != magic)
        return tg_fail(TG_ERR_IO, "%s: bad magic 0x%08x, expected 0x%08x: not an IDX %s file",
                       F->path, m, magic, ndims == 3 ? "images" : "labels");
    if ((st = header_bytes(F, h + 4, 4 * (size_t)ndims, 4))) return st;
    for (int i = 0; i < ndims; i++)
        dims[i] = be32(h + 4 + 4 * i);
    if (dims[0] == 0 || dims[0] > MAX_ITEMS)
        return tg_fail(TG_ERR_IO, "%s: %u items: expected 1 to %u", F->path, dims[0], MAX_ITEMS);
    return TG_OK;
}

/* Reads n bytes as doubles b / div into *out, growing the array with the
 * bytes that arrive rather than with what the header claims. A table of
 * the 256 quotients gives the correctly rounded b / 255 (b · (1/255) is
 * off by an ulp for some b) at the cost of a lookup. */
static tg_status read_values(idx_file *F, size_t n, double div, const char *what, double **out) {
    double table[256];
    for (int b = 0; b < 256; b++)
        table[b] = b / div;
    unsigned char chunk[1 << 16];
    double *v = NULL;
    size_t got = 0, cap = 0;
    while (got < n) {
        size_t want = n - got < sizeof chunk ? n - got : sizeof chunk;
        if (got + want > cap) {
            size_t c = cap ? cap * 2 : sizeof chunk; /* 512 KiB of doubles, then doubling */
            c = c < n ? c : n;
            double *w = tg_realloc(v, c * sizeof(double));
            if (!w) {
                tg_free(v);
                return tg_fail(TG_ERR_NOMEM, "%s: out of memory for %zu %s", F->path, n, what);
            }
            v = w;
            cap = c;
        }
        long long k = read_bytes(F, chunk, want);
        if (k < 0) {
            tg_free(v);
            return read_error(F);
        }
        for (long long i = 0; i < k; i++)
            v[got + (size_t)i] = table[chunk[i]];
        got += (size_t)k;
        if ((size_t)k < want) {
            tg_free(v);
            return tg_fail(TG_ERR_IO, "%s: truncated: expected %zu bytes of %s, got %zu", F->path,
                           n, what, got);
        }
    }
    tg_status st = expect_end(F, n, what);
    if (st) {
        tg_free(v);
        return st;
    }
    *out = v;
    return TG_OK;
}

/* Both headers, checked against each other; then the labels and pixels. */
static tg_status load(idx_file *img, idx_file *lab, tg_dataset *out) {
    uint32_t di[3] = {0}, dl[1] = {0}; /* set by read_header on success */
    tg_status st;
    if ((st = read_header(img, MAGIC_IMAGES, 3, di))) return st;
    if ((st = read_header(lab, MAGIC_LABELS, 1, dl))) return st;
    uint64_t pixels = (uint64_t)di[1] * di[2];
    if (pixels == 0 || pixels > MAX_PIXELS)
        return tg_fail(TG_ERR_IO, "%s: images of %ux%u pixels: expected 1 to %u pixels", img->path,
                       di[1], di[2], MAX_PIXELS);
    if (di[0] != dl[0])
        return tg_fail(TG_ERR_IO, "%s has %u images but %s has %u labels", img->path, di[0],
                       lab->path, dl[0]);
    /* ≤ 1e8 · 2^24 < 2^51 bytes: fits size_t on 64-bit hosts; checked for 32-bit ones. */
    uint64_t total = (uint64_t)di[0] * pixels;
    if (total > SIZE_MAX / sizeof(double))
        return tg_fail(TG_ERR_NOMEM, "%s: %llu pixels do not fit in memory", img->path,
                       (unsigned long long)total);
    if ((st = read_values(lab, dl[0], 1.0, "labels", &out->y))) return st;
    if ((st = read_values(img, (size_t)total, 255.0, "pixels", &out->x))) return st;
    out->n = di[0];
    out->d = (size_t)pixels;
    return TG_OK;
}

tg_status tg_idx_load(const char *prefix, tg_dataset *out) {
    if (!prefix || !out) return tg_fail(TG_ERR_ARG, "idx: prefix or out is NULL");
    memset(out, 0, sizeof *out);
    idx_file *img = tg_calloc(2, sizeof *img); /* two 4 KiB paths: kept off the stack */
    if (!img) return tg_fail(TG_ERR_NOMEM, "idx: out of memory");
    idx_file *lab = img + 1;
    tg_status st = idx_open(img, prefix, "images-idx3-ubyte");
    if (!st) st = idx_open(lab, prefix, "labels-idx1-ubyte");
    if (!st) st = load(img, lab, out);
    if (img->f) gzclose(img->f);
    if (lab->f) gzclose(lab->f);
    tg_free(img);
    if (st) tg_dataset_free(out);
    return st;
}
