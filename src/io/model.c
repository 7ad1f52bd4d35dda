/* Model files: tg_mlp_save / tg_mlp_load. The format, and the order of the
 * checks the loader makes, are documented in docs/model-format.md.
 *
 * Every value is written byte by byte, little-endian, so files are the same
 * on every host. The loader treats the file as hostile: it checks every
 * size against fixed limits and against the file's length before it
 * allocates anything, and reads only through a bounds-checked cursor. */
#define _POSIX_C_SOURCE 200809L

#include "../tape/internal.h"
#include "model_bytes.h"
#include "tapegrad_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FORMAT_VERSION 1u
#define MAX_LAYERS     65           /* 64 hidden layers + the output layer */
#define MAX_DIM        100000000ull /* 1e8: any width or feature count */
#define MAX_FILE       TG_MODEL_MAX_FILE
#define FIXED_HEADER   48 /* magic .. n_out */
#define TRAILER        TG_MODEL_TRAILER

#define magic tg_model_magic

/* The header fields, as in the file. */
typedef struct header {
    uint32_t version, dtype, loss, act, n_layers;
    int32_t n_classes;
    uint64_t n_in, n_out;
    uint64_t fan[MAX_LAYERS][2]; /* fan_in, fan_out */
    uint8_t has_std;
} header;

/* ---------------------------------------------------------------- bytes */

/* ---------------------------------------------------------------- checks */

static uint64_t header_bytes(uint32_t n_layers) {
    return FIXED_HEADER + 16ull * n_layers + 1;
}

static int dim_ok(uint64_t d) {
    return d >= 1 && d <= MAX_DIM;
}

/* The fields that decide the file's layout; on success *total is the exact
 * file size they imply. err: TG_ERR_IO when reading, TG_ERR_ARG when saving. */
static tg_status check_layout(const header *h, const char *path, tg_status err, uint64_t *total) {
    if (h->dtype > TG_F64) return tg_fail(err, "%s: unknown dtype %u", path, h->dtype);
    if (h->n_layers < 1 || h->n_layers > MAX_LAYERS)
        return tg_fail(err, "%s: %u layers (must be 1..%d)", path, h->n_layers, MAX_LAYERS);
    if (!dim_ok(h->n_in) || !dim_ok(h->n_out))
        return tg_fail(err, "%s: bad sizes: %llu inputs, %llu outputs (must be 1..1e8)", path,
                       (unsigned long long)h->n_in, (unsigned long long)h->n_out);
    if (h->has_std > 1)
        return tg_fail(err, "%s: bad standardisation flag %u", path, (unsigned)h->has_std);
    uint64_t esize = h->dtype == TG_F32 ? 4 : 8, params = 0;
    for (uint32_t i = 0; i < h->n_layers; i++) {
        uint64_t fi = h->fan[i][0], fo = h->fan[i][1];
        if (!dim_ok(fi) || !dim_ok(fo))
            return tg_fail(err, "%s: layer %u has bad size %llux%llu (must be 1..1e8)", path, i + 1,
                           (unsigned long long)fi, (unsigned long long)fo);
        params = add_sat(params, add_sat(mul_sat(fi, fo), fo));
    }
    uint64_t t = header_bytes(h->n_layers) + (h->has_std ? 16 * h->n_in : 0);
    *total = add_sat(add_sat(t, mul_sat(params, esize)), TRAILER);
    return TG_OK;
}

/* The expected n_classes for a loss, as tg_mlp_new sets it. */
static int32_t classes_for(uint32_t loss, uint64_t n_out) {
    return loss == TG_LOSS_CE ? (int32_t)n_out : loss == TG_LOSS_BCE ? 2 : 0;
}

/* What the fields mean: enums known, layers chained, loss and outputs
 * consistent. Runs after the checksum, so a failure here is a file that was
 * written wrong, not one damaged since. */
static tg_status check_meaning(const header *h, const char *path, tg_status err) {
    if (h->loss > TG_LOSS_MSE) return tg_fail(err, "%s: unknown loss %u", path, h->loss);
    if (h->act > TG_ACT_LEAKY_RELU) return tg_fail(err, "%s: unknown activation %u", path, h->act);
    if ((h->loss == TG_LOSS_BCE && h->n_out != 1) || (h->loss == TG_LOSS_CE && h->n_out < 2))
        return tg_fail(err, "%s: loss %s does not fit %llu outputs", path,
                       tg_loss_name((tg_loss_kind)h->loss), (unsigned long long)h->n_out);
    if (h->n_classes != classes_for(h->loss, h->n_out))
        return tg_fail(err, "%s: %d classes does not fit loss %s with %llu outputs", path,
                       (int)h->n_classes, tg_loss_name((tg_loss_kind)h->loss),
                       (unsigned long long)h->n_out);
    for (uint32_t i = 0; i < h->n_layers; i++) {
        uint64_t want = i ? h->fan[i - 1][1] : h->n_in;
        if (h->fan[i][0] != want)
            return tg_fail(err, "%s: layer %u takes %llu inputs, but %s gives %llu", path, i + 1,
                           (unsigned long long)h->fan[i][0], i ? "the layer before" : "the model",
                           (unsigned long long)want);
    }
    if (h->fan[h->n_layers - 1][1] != h->n_out)
        return tg_fail(err, "%s: last layer gives %llu outputs, the model %llu", path,
                       (unsigned long long)h->fan[h->n_layers - 1][1],
                       (unsigned long long)h->n_out);
    return TG_OK;
}

/* Standardisation divides by std: a zero, negative or non-finite one would
 * turn every prediction into NaN or nonsense. */
tg_status tg_model_check_stats(const double *mean, const double *std, size_t n, const char *path,
                               tg_status err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0))
            return tg_fail(err, "%s: bad standardisation for feature %zu: mean %g, std %g", path, i,
                           mean[i], std[i]);
    return TG_OK;
}

/* ---------------------------------------------------------------- save */

/* The header of an in-memory model, refusing models that tg_mlp_load would
 * refuse or could not rebuild exactly. */
static tg_status header_of(const tg_mlp *m, const char *path, header *h) {
    memset(h, 0, sizeof *h);
    if (m->n_layers < 1 || m->n_layers > MAX_LAYERS || !m->layers)
        return tg_fail(TG_ERR_ARG, "%s: model has %d layers (must be 1..%d)", path, m->n_layers,
                       MAX_LAYERS);
    *h = (header){FORMAT_VERSION,
                  (uint32_t)m->dtype,
                  (uint32_t)m->loss,
                  (uint32_t)m->act,
                  (uint32_t)m->n_layers,
                  m->n_classes,
                  m->n_in,
                  m->n_out,
                  {{0}},
                  m->mean && m->std};
    for (int i = 0; i < m->n_layers; i++) {
        const tg_dense *l = &m->layers[i];
        tg_act want = i == m->n_layers - 1 ? TG_ACT_NONE : m->act;
        if (!l->w || !l->b || l->w->rank != 2 || l->b->size != l->w->shape[1] ||
            l->w->dtype != m->dtype || l->b->dtype != m->dtype || l->act != want)
            return tg_fail(TG_ERR_ARG, "%s: layer %d does not match the model", path, i + 1);
        h->fan[i][0] = l->w->shape[0];
        h->fan[i][1] = l->w->shape[1];
    }
    return TG_OK;
}

static void put_header(writer *w, const header *h) {
    memcpy(w->p, magic, sizeof magic);
    w->n = sizeof magic;
    put_u32(w, h->version);
    put_u32(w, h->dtype);
    put_u32(w, h->loss);
    put_u32(w, h->act);
    put_u32(w, h->n_layers);
    put_u32(w, (uint32_t)h->n_classes);
    put_u64(w, h->n_in);
    put_u64(w, h->n_out);
    for (uint32_t i = 0; i < h->n_layers; i++) {
        put_u64(w, h->fan[i][0]);
        put_u64(w, h->fan[i][1]);
    }
    put_u8(w, h->has_std);
}

/* The whole file, `total` bytes, into p. */
static void serialize(const tg_mlp *m, const header *h, unsigned char *p, size_t total) {
    writer w = {p, 0};
    put_header(&w, h);
    for (size_t i = 0; h->has_std && i < m->n_in; i++)
        put_f64(&w, m->mean[i]);
    for (size_t i = 0; h->has_std && i < m->n_in; i++)
        put_f64(&w, m->std[i]);
    for (int i = 0; i < m->n_layers; i++) {
        put_values(&w, m->layers[i].w);
        put_values(&w, m->layers[i].b);
    }
    put_u64(&w, total - TRAILER);
    put_u32(&w, crc_of(p, total - 4));
}

/* Validate m and serialise it into a fresh buffer. */
static tg_status encode(const tg_mlp *m, const char *path, unsigned char **buf, size_t *len) {
    header h;
    uint64_t total = 0;
    tg_status s = header_of(m, path, &h);
    if (!s) s = check_layout(&h, path, TG_ERR_ARG, &total);
    if (!s) s = check_meaning(&h, path, TG_ERR_ARG);
    if (!s && h.has_std) s = tg_model_check_stats(m->mean, m->std, m->n_in, path, TG_ERR_ARG);
    if (s) return s;
    if (total > MAX_FILE)
        return tg_fail(TG_ERR_ARG, "%s: model too large for a model file (%llu bytes, limit 2 GiB)",
                       path, (unsigned long long)total);
    *buf = tg_malloc((size_t)total);
    if (!*buf) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    serialize(m, &h, *buf, (size_t)total);
    *len = (size_t)total;
    return TG_OK;
}

tg_status tg_mlp_save(const tg_mlp *m, const char *path) {
    if (!m || !path) return tg_fail(TG_ERR_ARG, "save: model or path is NULL");
    /* tg_write_file_atomic refuses a folder as the target before writing. */
    unsigned char *buf = NULL;
    size_t len = 0;
    tg_status s = encode(m, path, &buf, &len);
    if (!s) s = tg_write_file_atomic(path, buf, len);
    tg_free(buf);
    return s;
}

/* ---------------------------------------------------------------- load */

/* Read a whole file, at most MAX_FILE bytes. Reads until end of file
 * rather than trusting st_size, so pipes and files that change under us
 * are bounded too. */
static tg_status read_fd(int fd, const char *path, size_t cap, unsigned char **out, size_t *len) {
    unsigned char *buf = tg_malloc(cap);
    if (!buf) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (cap > MAX_FILE) break;
            /* Stop growing one byte past the limit: enough to tell. */
            size_t grow = cap > MAX_FILE / 2 ? (size_t)MAX_FILE + 1 : 2 * cap;
            unsigned char *b = tg_realloc(buf, grow);
            if (!b) {
                tg_free(buf);
                return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = b, cap = grow;
            continue;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            tg_free(buf);
            return tg_fail(TG_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    if (n > MAX_FILE) {
        tg_free(buf);
        return tg_fail(TG_ERR_IO, "%s: file too large (over 2 GiB)", path);
    }
    *out = buf, *len = n;
    return TG_OK;
}

tg_status tg_model_read_file(const char *path, unsigned char **buf, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tg_fail(TG_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    tg_status s = TG_OK;
    if (fstat(fd, &st) != 0)
        s = tg_fail(TG_ERR_IO, "%s: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        s = tg_fail(TG_ERR_IO, "%s: is a directory", path);
    else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > MAX_FILE)
        s = tg_fail(TG_ERR_IO, "%s: file too large (%lld bytes, limit 2 GiB)", path,
                    (long long)st.st_size);
    /* One byte over st_size so that a single read also sees end of file. */
    if (!s) s = read_fd(fd, path, S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, buf, len);
    close(fd);
    return s;
}

static tg_status truncated(const char *path, const char *at_least, uint64_t want, size_t have) {
    return tg_fail(TG_ERR_IO, "%s: truncated: expected %s%llu bytes, file has %zu", path, at_least,
                   (unsigned long long)want, have);
}

/* Magic and version: the two fields every version keeps in place. */
static tg_status check_ident(const unsigned char *p, size_t n, const char *path) {
    if (n == 0) return tg_fail(TG_ERR_IO, "%s: empty file, not a tapegrad model file", path);
    if (memcmp(p, magic, n < 8 ? n : 8) != 0)
        return tg_fail(TG_ERR_IO, "%s: not a tapegrad model file", path);
    if (n < 12) return truncated(path, "at least ", header_bytes(1) + TRAILER, n);
    reader r = {p, n, 8, 1};
    uint32_t v = get_u32(&r);
    if (v == 0) return tg_fail(TG_ERR_IO, "%s: not a tapegrad model file (version 0)", path);
    if (v == 2)
        return tg_fail(TG_ERR_IO, "%s: a version-2 (layer) model file: load it with tg_model_load",
                       path);
    if (v > FORMAT_VERSION)
        return tg_fail(TG_ERR_IO, "%s: format version %u is newer than this tapegrad (%u)", path, v,
                       FORMAT_VERSION);
    return TG_OK;
}

/* Parse the header; on success *total is the exact size it implies. */
static tg_status parse_header(reader *r, const char *path, header *h, uint64_t *total) {
    if (r->n < FIXED_HEADER) return truncated(path, "at least ", header_bytes(1) + TRAILER, r->n);
    r->off = 8;
    h->version = get_u32(r);
    h->dtype = get_u32(r), h->loss = get_u32(r), h->act = get_u32(r);
    h->n_layers = get_u32(r);
    h->n_classes = (int32_t)get_u32(r);
    h->n_in = get_u64(r), h->n_out = get_u64(r);
    if (h->n_layers < 1 || h->n_layers > MAX_LAYERS)
        return tg_fail(TG_ERR_IO, "%s: %u layers (must be 1..%d)", path, h->n_layers, MAX_LAYERS);
    if (r->n < header_bytes(h->n_layers))
        return truncated(path, "at least ", header_bytes(h->n_layers) + TRAILER, r->n);
    for (uint32_t i = 0; i < h->n_layers; i++)
        h->fan[i][0] = get_u64(r), h->fan[i][1] = get_u64(r);
    h->has_std = (uint8_t)get_le(r, 1);
    return check_layout(h, path, TG_ERR_IO, total);
}

/* Length, length field, checksum: after these the bytes are as written. */
tg_status tg_model_check_integrity(const unsigned char *p, size_t n, uint64_t total,
                                   const char *path) {
    if (n < total) return truncated(path, "", total, n);
    if (n > total)
        return tg_fail(TG_ERR_IO, "%s: %zu trailing bytes after the model (expected %llu bytes)",
                       path, n - (size_t)total, (unsigned long long)total);
    reader r = {p, n, n - TRAILER, 1};
    uint64_t len = get_u64(&r);
    uint32_t crc = get_u32(&r);
    if (crc != crc_of(p, n - 4))
        return tg_fail(TG_ERR_IO, "%s: checksum mismatch (file corrupt)", path);
    /* Covered by the checksum, so a mismatch is a writer's bug. */
    if (len != total - TRAILER)
        return tg_fail(TG_ERR_IO, "%s: length field says %llu bytes, the header %llu", path,
                       (unsigned long long)len, (unsigned long long)(total - TRAILER));
    return TG_OK;
}

/* The standardisation statistics, if the file has them, into m. */
static tg_status get_stats(reader *r, const header *h, tg_mlp *m, const char *path) {
    if (!h->has_std) return TG_OK;
    m->mean = tg_malloc((size_t)h->n_in * sizeof(double));
    m->std = tg_malloc((size_t)h->n_in * sizeof(double));
    if (!m->mean || !m->std) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < h->n_in; i++)
        m->mean[i] = get_f64(r);
    for (size_t i = 0; i < h->n_in; i++)
        m->std[i] = get_f64(r);
    return tg_model_check_stats(m->mean, m->std, (size_t)h->n_in, path, TG_ERR_IO);
}

/* Build the model the checked header describes and fill it from r. */
static tg_status build(reader *r, const header *h, const char *path, tg_mlp **out) {
    size_t widths[MAX_LAYERS];
    for (uint32_t i = 0; i + 1 < h->n_layers; i++)
        widths[i] = (size_t)h->fan[i][1];
    tg_mlp *m = NULL;
    tg_status s = tg_mlp_new(&m, (tg_dtype)h->dtype, (size_t)h->n_in, (int)h->n_layers - 1, widths,
                             (tg_act)h->act, (size_t)h->n_out, (tg_loss_kind)h->loss);
    if (s == TG_ERR_NOMEM) return s;
    /* check_meaning accepted the header, so this should not happen; keep
     * tg_mlp_new's reason but say which file. */
    if (s) return tg_fail(TG_ERR_IO, "%s: %s", path, tg_last_error());
    r->off = (size_t)header_bytes(h->n_layers);
    s = get_stats(r, h, m, path);
    for (int i = 0; !s && i < m->n_layers; i++) {
        get_values(r, m->layers[i].w);
        get_values(r, m->layers[i].b);
    }
    if (!s && !r->ok) s = tg_fail(TG_ERR_IO, "%s: internal error: read past the end", path);
    if (s) {
        tg_mlp_free(m);
        return s;
    }
    *out = m;
    return TG_OK;
}

/* Every check, in the documented order, then the model. */
static tg_status decode(const unsigned char *p, size_t n, const char *path, tg_mlp **out) {
    header h;
    uint64_t total = 0;
    reader r = {p, n, 0, 1};
    tg_status s = check_ident(p, n, path);
    if (!s) s = parse_header(&r, path, &h, &total);
    if (!s) s = tg_model_check_integrity(p, n, total, path);
    if (!s) s = check_meaning(&h, path, TG_ERR_IO);
    if (!s) s = build(&r, &h, path, out);
    return s;
}

tg_status tg_mlp_load(tg_mlp **out, const char *path) {
    if (!out || !path) return tg_fail(TG_ERR_ARG, "load: out or path is NULL");
    *out = NULL;
    unsigned char *buf = NULL;
    size_t n = 0;
    tg_status s = tg_model_read_file(path, &buf, &n);
    if (!s) s = decode(buf, n, path, out);
    tg_free(buf);
    return s;
}
