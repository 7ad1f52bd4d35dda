/* Model files, version 2 (docs/model-format.md): any tg_model, as its layer
 * specs, its named tensors and its standardisation statistics.
 *
 * The loader treats the file as hostile: the trailer (length, CRC) is
 * checked first, then every field is read through the bounds-checked
 * reader, every count is checked against the bytes left before it is used,
 * and the model is rebuilt from the specs with its tensors limited to what
 * the file could hold (tg_model_build's max_elem): a spec claiming a huge
 * layer in a small file is refused before anything of that size is made. */
#include "../nn/model_internal.h"
#include "model_bytes.h"
#include "tapegrad_io.h"

#include <math.h>

#define VERSION    2u
#define MAX_LAYERS 1024
#define NAME_MAX_  (2 * TG_LAYER_NAME_MAX) /* a tensor's full name, NUL included */
#define SPEC_BYTES (8 * TG_LAYER_NI + 8 * TG_LAYER_NF)

/* ---------------------------------------------------------------- save */

/* With w->p NULL the writer only counts: the same code sizes and writes. */
static void put_u8c(writer *w, uint8_t v) {
    if (w->p)
        put_u8(w, v);
    else
        w->n++;
}

static void put_str(writer *w, const char *s) {
    size_t n = strlen(s);
    put_u8c(w, (uint8_t)n);
    if (w->p) memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void put_n(writer *w, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        put_u8c(w, (uint8_t)(v >> (8 * i)));
}

static void put_dbl(writer *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_n(w, bits, 8);
}

static void put_spec(writer *w, const tg_layer *l) {
    put_str(w, l->kind->name);
    put_str(w, l->name);
    for (int k = 0; k < TG_LAYER_NI; k++)
        put_n(w, (uint64_t)l->spec.i[k], 8);
    for (int k = 0; k < TG_LAYER_NF; k++)
        put_dbl(w, l->spec.f[k]);
}

static void put_tensor(writer *w, const tg_layer_tensor *lt) {
    const tg_tensor *t = lt->t;
    put_str(w, lt->full);
    put_u8c(w, (uint8_t)t->rank);
    for (int a = 0; a < t->rank; a++)
        put_n(w, t->shape[a], 8);
    if (w->p)
        put_values(w, t);
    else
        w->n += t->size * (t->dtype == TG_F32 ? 4 : 8);
}

static int count_tensors(const tg_model *m) {
    return tg_model_tensors(m, NULL, NULL, NULL, 0);
}

/* The body of the file (everything before the trailer). */
static void put_body(writer *w, const tg_model *m) {
    for (int k = 0; k < 8; k++)
        put_u8c(w, tg_model_magic[k]);
    put_n(w, VERSION, 4);
    put_n(w, (uint64_t)m->dtype, 4);
    put_n(w, (uint64_t)m->in_rank, 4);
    for (int a = 0; a < m->in_rank; a++)
        put_n(w, m->in_shape[a], 8);
    put_n(w, (uint64_t)m->n_layers, 4);
    for (int i = 0; i < m->n_layers; i++)
        put_spec(w, &m->layers[i]);
    put_n(w, (uint64_t)count_tensors(m), 4);
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_tensors; k++)
            put_tensor(w, &m->layers[i].tensors[k]);
    put_u8c(w, m->mean ? 1 : 0);
    if (m->mean) put_n(w, m->n_stats, 8);
    for (size_t j = 0; m->mean && j < m->n_stats; j++)
        put_dbl(w, m->mean[j]);
    for (size_t j = 0; m->mean && j < m->n_stats; j++)
        put_dbl(w, m->std[j]);
    /* The optional metadata block: absent when there is none, so that a
     * file has one encoding and files without metadata are as before. */
    if (m->n_meta < 1) return;
    put_u8c(w, (uint8_t)m->n_meta);
    for (int i = 0; i < m->n_meta; i++) {
        put_str(w, m->meta[i].key);
        put_str(w, m->meta[i].value);
    }
}

static size_t features(const tg_model *m) {
    size_t n = 1;
    for (int a = 0; a < m->in_rank; a++)
        n *= m->in_shape[a];
    return n;
}

/* What the loader would refuse, refused before writing (TG_ERR_ARG). */
static tg_status check_saveable(const tg_model *m, const char *path) {
    if (!m->mean != !m->std)
        return tg_fail(TG_ERR_ARG, "%s: model has a mean without a std or the reverse", path);
    if (m->mean && m->n_stats != features(m))
        return tg_fail(TG_ERR_ARG, "%s: %zu standardisation statistics for %zu features", path,
                       m->n_stats, features(m));
    if (m->n_meta < 0 || m->n_meta > TG_MODEL_META_MAX)
        return tg_fail(TG_ERR_ARG, "%s: %d metadata entries (0..%d)", path, m->n_meta,
                       TG_MODEL_META_MAX);
    for (int i = 0; i < m->n_meta; i++) /* tg_model_meta_set's rules, for structs set by hand */
        if (tg_model_meta_get(m, m->meta[i].key) != m->meta[i].value ||
            !tg_meta_str_ok(m->meta[i].key) || !tg_meta_str_ok(m->meta[i].value))
            return tg_fail(TG_ERR_ARG, "%s: bad or repeated metadata key '%.63s'", path,
                           m->meta[i].key);
    if (m->mean) return tg_model_check_stats(m->mean, m->std, m->n_stats, path, TG_ERR_ARG);
    return TG_OK;
}

tg_status tg_model_save(const tg_model *m, const char *path) {
    if (!m || !path) return tg_fail(TG_ERR_ARG, "save: model or path is NULL");
    tg_status s = check_saveable(m, path);
    if (s) return s;
    writer w = {NULL, 0};
    put_body(&w, m);
    uint64_t total = (uint64_t)w.n + TG_MODEL_TRAILER;
    if (total > TG_MODEL_MAX_FILE)
        return tg_fail(TG_ERR_ARG, "%s: model too large for a model file (%llu bytes, limit 2 GiB)",
                       path, (unsigned long long)total);
    w.p = tg_malloc((size_t)total);
    if (!w.p) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    w.n = 0;
    put_body(&w, m);
    put_u64(&w, total - TG_MODEL_TRAILER);
    put_u32(&w, crc_of(w.p, (size_t)total - 4));
    s = tg_write_file_atomic(path, w.p, (size_t)total);
    tg_free(w.p);
    return s;
}

/* ---------------------------------------------------------------- load */

/* A string of 1..max−1 bytes, printable, into out (NUL-terminated). */
static int get_str(reader *r, char *out, size_t max) {
    size_t n = (size_t)get_le(r, 1);
    if (!r->ok || n == 0 || n >= max || r->n - r->off < n) return 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = r->p[r->off + k];
        if (c <= ' ' || c >= 127) return 0;
        out[k] = (char)c;
    }
    out[n] = '\0';
    r->off += n;
    return 1;
}

typedef struct v2_head {
    uint32_t dtype, in_rank, n_layers;
    size_t in_shape[TG_MAX_RANK];
} v2_head;

static tg_status bad(const char *path, const char *what) {
    return tg_fail(TG_ERR_IO, "%s: %s", path, what);
}

static tg_status get_head(reader *r, const char *path, v2_head *h) {
    r->off = 12;
    h->dtype = get_u32(r), h->in_rank = get_u32(r);
    if (h->dtype > TG_F64) return tg_fail(TG_ERR_IO, "%s: unknown dtype %u", path, h->dtype);
    if (h->in_rank < 1 || h->in_rank >= TG_MAX_RANK)
        return tg_fail(TG_ERR_IO, "%s: input rank %u (must be 1..7)", path, h->in_rank);
    for (uint32_t a = 0; a < h->in_rank; a++) {
        uint64_t d = get_u64(r);
        if (d < 1 || d > (uint64_t)TG_LAYER_MAX_DIM)
            return tg_fail(TG_ERR_IO, "%s: input axis %u of size %llu (must be 1..1e8)", path, a,
                           (unsigned long long)d);
        h->in_shape[a] = (size_t)d;
    }
    h->n_layers = get_u32(r);
    if (!r->ok) return bad(path, "truncated header");
    /* each spec takes at least 2 + 2 + SPEC_BYTES bytes: bounds the array */
    if (h->n_layers < 1 || h->n_layers > MAX_LAYERS ||
        (uint64_t)h->n_layers * (4 + SPEC_BYTES) > r->n - r->off)
        return tg_fail(TG_ERR_IO, "%s: %u layers (must be 1..%d and fit the file)", path,
                       h->n_layers, MAX_LAYERS);
    return TG_OK;
}

/* The specs; names[i] holds layer i's name, kinds[i] its kind. */
static tg_status get_specs(reader *r, const char *path, const v2_head *h, tg_layer_spec *specs,
                           char (*names)[TG_LAYER_NAME_MAX]) {
    char kind[TG_LAYER_NAME_MAX];
    for (uint32_t i = 0; i < h->n_layers; i++) {
        if (!get_str(r, kind, sizeof kind) || !get_str(r, names[i], TG_LAYER_NAME_MAX))
            return tg_fail(TG_ERR_IO, "%s: layer %u: bad kind or name", path, i);
        const tg_layer_kind *k = tg_layer_kind_find(kind);
        if (!k)
            return tg_fail(TG_ERR_IO,
                           "%s: layer %u: unknown layer kind '%s' (a program's own "
                           "kind must be registered before loading)",
                           path, i, kind);
        specs[i].kind = k->name, specs[i].name = names[i];
        for (int j = 0; j < TG_LAYER_NI; j++)
            specs[i].i[j] = (long)(int64_t)get_u64(r);
        for (int j = 0; j < TG_LAYER_NF; j++)
            specs[i].f[j] = get_f64(r);
    }
    return r->ok ? TG_OK : bad(path, "truncated layer list");
}

/* One tensor record: its name must be the model's next tensor, its shape
 * that tensor's; then its values. */
static tg_status get_tensor(reader *r, const char *path, const tg_layer_tensor *lt) {
    char name[NAME_MAX_];
    const tg_tensor *t = lt->t;
    if (!get_str(r, name, sizeof name) || strcmp(name, lt->full) != 0)
        return tg_fail(TG_ERR_IO, "%s: expected tensor '%s' here", path, lt->full);
    uint32_t rank = (uint32_t)get_le(r, 1);
    int ok = r->ok && rank == (uint32_t)t->rank;
    for (int a = 0; ok && a < t->rank; a++)
        ok = get_u64(r) == t->shape[a] && r->ok;
    if (!ok) {
        char sh[128];
        return tg_fail(TG_ERR_IO, "%s: tensor '%s' is not of shape %s as its layer", path, name,
                       tg_shape_str(t, sh, sizeof sh));
    }
    if ((r->n - r->off) / (t->dtype == TG_F32 ? 4 : 8) < t->size)
        return tg_fail(TG_ERR_IO, "%s: truncated values of tensor '%s'", path, name);
    get_values(r, (tg_tensor *)t);
    return TG_OK;
}

static tg_status get_tensors(reader *r, const char *path, tg_model *m) {
    uint32_t n = get_u32(r);
    if (!r->ok || n != (uint32_t)count_tensors(m))
        return tg_fail(TG_ERR_IO, "%s: %u tensors, the layers have %d", path, n, count_tensors(m));
    tg_status s = TG_OK;
    for (int i = 0; !s && i < m->n_layers; i++)
        for (int k = 0; !s && k < m->layers[i].n_tensors; k++)
            s = get_tensor(r, path, &m->layers[i].tensors[k]);
    return s;
}

static tg_status get_std(reader *r, const char *path, tg_model *m) {
    uint8_t has = (uint8_t)get_le(r, 1);
    if (!r->ok || has > 1) return bad(path, "bad standardisation flag");
    if (!has) return TG_OK;
    uint64_t n = get_u64(r);
    if (!r->ok || n != features(m) || (r->n - r->off) / 16 < n)
        return tg_fail(TG_ERR_IO, "%s: %llu standardisation statistics for %zu features", path,
                       (unsigned long long)n, features(m));
    m->mean = tg_malloc((size_t)n * sizeof(double));
    m->std = tg_malloc((size_t)n * sizeof(double));
    if (!m->mean || !m->std) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    m->n_stats = (size_t)n;
    for (size_t j = 0; j < n; j++)
        m->mean[j] = get_f64(r);
    for (size_t j = 0; j < n; j++)
        m->std[j] = get_f64(r);
    return tg_model_check_stats(m->mean, m->std, m->n_stats, path, TG_ERR_IO);
}

/* The optional metadata block: u8 count (1..16), then count × (str key,
 * str value), keys unique. */
static tg_status get_meta(reader *r, const char *path, tg_model *m) {
    if (r->off == r->n) return TG_OK;
    uint32_t n = (uint32_t)get_le(r, 1);
    if (!r->ok || n < 1 || n > TG_MODEL_META_MAX)
        return tg_fail(TG_ERR_IO, "%s: %u metadata entries (1..%d)", path, n, TG_MODEL_META_MAX);
    char key[TG_MODEL_META_LEN], value[TG_MODEL_META_LEN];
    for (uint32_t i = 0; i < n; i++) {
        if (!get_str(r, key, sizeof key) || !get_str(r, value, sizeof value))
            return tg_fail(TG_ERR_IO, "%s: metadata entry %u: bad key or value", path, i);
        if (tg_model_meta_get(m, key))
            return tg_fail(TG_ERR_IO, "%s: metadata key '%s' repeated", path, key);
        tg_status s = tg_model_meta_set(m, key, value);
        if (s) return s;
    }
    return TG_OK;
}

/* Version, then the trailer (so every later field is as written), then the
 * fields in file order; the body must end right at the trailer. */
static tg_status decode(const unsigned char *p, size_t n, const char *path, tg_model **out) {
    if (n == 0 || memcmp(p, tg_model_magic, n < 8 ? n : 8) != 0)
        return bad(path, "not a tapegrad model file");
    reader r = {p, n, 8, 1};
    uint32_t v = get_u32(&r);
    if (!r.ok || n < 12 + 4 + TG_MODEL_TRAILER)
        return tg_fail(TG_ERR_IO, "%s: truncated: %zu bytes", path, n);
    if (v == 1) return bad(path, "a version-1 (MLP) model file: load it with tg_mlp_load");
    if (v != VERSION)
        return tg_fail(TG_ERR_IO, "%s: format version %u, this reader reads version 2", path, v);
    tg_status s = tg_model_check_integrity(p, n, n, path);
    if (s) return s;
    r.n = n - TG_MODEL_TRAILER; /* the body: fields may not run into the trailer */
    v2_head h;
    s = get_head(&r, path, &h);
    if (s) return s;
    tg_layer_spec *specs = tg_calloc(h.n_layers, sizeof *specs);
    char(*names)[TG_LAYER_NAME_MAX] = tg_calloc(h.n_layers, sizeof *names);
    tg_model *m = NULL;
    s = specs && names ? get_specs(&r, path, &h, specs, names)
                       : tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    size_t esize = h.dtype == TG_F32 ? 4 : 8;
    if (!s)
        s = tg_model_build(&m, (tg_dtype)h.dtype, (int)h.in_rank, h.in_shape, (int)h.n_layers,
                           specs, (r.n - r.off) / esize);
    if (s && s != TG_ERR_NOMEM && strncmp(tg_last_error(), path, strlen(path)) != 0)
        s = tg_fail(TG_ERR_IO, "%s: %s", path, tg_last_error());
    if (!s) s = get_tensors(&r, path, m);
    if (!s) s = get_std(&r, path, m);
    if (!s) s = get_meta(&r, path, m);
    if (!s && r.off != r.n)
        s = tg_fail(TG_ERR_IO, "%s: %zu unread bytes before the trailer", path, r.n - r.off);
    tg_free(specs);
    tg_free(names);
    if (s)
        tg_model_free(m);
    else
        *out = m;
    return s;
}

tg_status tg_model_load(tg_model **out, const char *path) {
    if (!out || !path) return tg_fail(TG_ERR_ARG, "load: out or path is NULL");
    *out = NULL;
    unsigned char *buf = NULL;
    size_t n = 0;
    tg_status s = tg_model_read_file(path, &buf, &n);
    if (!s) s = decode(buf, n, path, out);
    tg_free(buf);
    return s;
}
