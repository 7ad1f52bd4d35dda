/* safetensors interchange (issue 16): a model's named tensors in the layout
 * PyTorch users exchange weights in (huggingface/safetensors):
 *   u64 little-endian N, N bytes of JSON header, then the raw data;
 *   header {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 *           ..., "__metadata__": {"k": "v", ...}}, offsets relative to the
 *   byte after the header, values little-endian and row-major.
 * The JSON is written and parsed by cJSON (Debian's libcjson), not by hand.
 *
 * The loader treats the file as hostile. The whole file is read with memory
 * bounded by its size (tg_model_read_file); the header length must fit in
 * it; every entry is checked (dtype known, shape of integers, offsets
 * integers inside the data with end − begin = numel · dtype size, no two
 * tensors overlapping, the shape the model's) before a single value is
 * written, so a refused file leaves the model as it was. The only
 * allocations are cJSON's tree (bounded by the header's bytes) and arrays
 * sized by the model, never by a number the file claims. */
#include "model_bytes.h"
#include "tapegrad_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_INT_JSON 9007199254740992.0 /* 2^53: the integers a JSON double holds exactly */

/* ---------------------------------------------------------------- save */

static const char *dtype_name(tg_dtype dt) {
    return dt == TG_F32 ? "F32" : "F64";
}

static size_t dtype_size(tg_dtype dt) {
    return dt == TG_F32 ? 4 : 8;
}

/* One header entry: dtype, shape, data_offsets. NULL when out of memory. */
static cJSON *entry_json(const tg_tensor *t, size_t begin) {
    cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *off = cJSON_CreateArray();
    int ok = e && shape && off && cJSON_AddStringToObject(e, "dtype", dtype_name(t->dtype));
    for (int a = 0; ok && a < t->rank; a++)
        ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[a]));
    ok = ok && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)begin)) &&
         cJSON_AddItemToArray(off,
                              cJSON_CreateNumber((double)(begin + t->size * dtype_size(t->dtype))));
    if (ok && cJSON_AddItemToObject(e, "shape", shape)) {
        shape = NULL;
        if (cJSON_AddItemToObject(e, "data_offsets", off)) return e;
    }
    cJSON_Delete(shape);
    cJSON_Delete(off);
    cJSON_Delete(e);
    return NULL;
}

/* The header of m's n tensors, padded with spaces to a multiple of 8 bytes
 * (as the reference writer does, so the data is aligned); malloc'd by
 * cJSON (cJSON_free), NULL when out of memory. */
static char *header_text(tg_tensor **ts, const char **names, int n, size_t *len) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    int ok = root && meta && cJSON_AddStringToObject(meta, "format", "pt") &&
             cJSON_AddStringToObject(meta, "producer", "tapegrad");
    if (ok && cJSON_AddItemToObject(root, "__metadata__", meta))
        meta = NULL;
    else
        ok = 0;
    size_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        cJSON *e = entry_json(ts[i], off);
        ok = e && cJSON_AddItemToObject(root, names[i], e);
        if (!ok) cJSON_Delete(e);
        off += ts[i]->size * dtype_size(ts[i]->dtype);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    cJSON_Delete(meta);
    if (!text) return NULL;
    *len = strlen(text);
    return text;
}

static tg_status save_tensors(tg_tensor **ts, const char **names, int n, const char *path) {
    size_t hlen = 0;
    char *text = header_text(ts, names, n, &hlen);
    if (!text) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    size_t padded = (hlen + 7) / 8 * 8;
    uint64_t total = add_sat(8, padded);
    for (int i = 0; i < n; i++)
        total = add_sat(total, mul_sat(ts[i]->size, dtype_size(ts[i]->dtype)));
    tg_status s = TG_OK;
    writer w = {NULL, 0};
    if (total > TG_MODEL_MAX_FILE)
        s = tg_fail(TG_ERR_ARG, "%s: model too large for a safetensors file here (limit 2 GiB)",
                    path);
    else if (!(w.p = tg_malloc((size_t)total)))
        s = tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    if (!s) {
        put_u64(&w, padded);
        memcpy(w.p + w.n, text, hlen);
        memset(w.p + w.n + hlen, ' ', padded - hlen);
        w.n += padded;
        for (int i = 0; i < n; i++)
            put_values(&w, ts[i]);
        s = tg_write_file_atomic(path, w.p, w.n);
    }
    tg_free(w.p);
    cJSON_free(text);
    return s;
}

tg_status tg_safetensors_save(const tg_model *m, const char *path) {
    if (!m || !path) return tg_fail(TG_ERR_ARG, "safetensors save: model or path is NULL");
    int n = tg_model_tensors(m, NULL, NULL, NULL, 0);
    tg_tensor **ts = tg_calloc(n ? (size_t)n : 1, sizeof *ts);
    const char **names = tg_calloc(n ? (size_t)n : 1, sizeof *names);
    tg_status s = ts && names ? TG_OK : tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    if (!s) {
        tg_model_tensors(m, ts, names, NULL, n);
        s = save_tensors(ts, names, n, path);
    }
    tg_free(ts);
    tg_free(names);
    return s;
}

/* ---------------------------------------------------------------- load */

/* What one header entry says, once checked. */
typedef struct span {
    uint64_t begin, end;
    tg_dtype dtype;
    const char *name; /* into the cJSON tree */
} span;

/* A JSON number that is an integer in [0, 2^53]; -1 otherwise. */
static double json_index(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    return d >= 0 && d <= MAX_INT_JSON && d == floor(d) ? d : -1;
}

static void shape_text(char *buf, size_t cap, int rank, const uint64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int a = 0; a < rank && k < cap; a++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%llu", a ? ", " : "",
                              (unsigned long long)shape[a]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* The shape of entry e (at most TG_MAX_RANK integers) must be t's. */
static tg_status check_shape(const cJSON *e, const tg_tensor *t, const char *path,
                             const char *name) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return tg_fail(TG_ERR_IO, "%s: tensor '%s': \"shape\" is missing or not an array", path,
                       name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > TG_MAX_RANK)
        return tg_fail(TG_ERR_IO, "%s: tensor '%s': rank %d (at most %d)", path, name, rank,
                       TG_MAX_RANK);
    uint64_t dims[TG_MAX_RANK], want[TG_MAX_RANK];
    int a = 0, same = rank == t->rank;
    for (const cJSON *v = shape->child; v; v = v->next, a++) {
        double d = json_index(v);
        if (d < 0)
            return tg_fail(TG_ERR_IO, "%s: tensor '%s': shape entry %d is not a size", path, name,
                           a);
        dims[a] = (uint64_t)d;
        same = same && dims[a] == t->shape[a];
    }
    if (same) return TG_OK;
    char got[160], exp[160];
    for (int k = 0; k < t->rank; k++)
        want[k] = t->shape[k];
    shape_text(got, sizeof got, rank, dims);
    shape_text(exp, sizeof exp, t->rank, want);
    return tg_fail(TG_ERR_IO, "%s: tensor '%s' has shape %s, the model's is %s", path, name, got,
                   exp);
}

/* dtype and data_offsets of entry e for tensor t, against the data's size. */
static tg_status check_data(const cJSON *e, const tg_tensor *t, uint64_t data_len, const char *path,
                            const char *name, span *sp) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return tg_fail(TG_ERR_IO, "%s: tensor '%s': \"dtype\" is missing or not a string", path,
                       name);
    if (strcmp(dt->valuestring, "F32") == 0)
        sp->dtype = TG_F32;
    else if (strcmp(dt->valuestring, "F64") == 0)
        sp->dtype = TG_F64;
    else
        return tg_fail(TG_ERR_IO, "%s: tensor '%s': dtype \"%.20s\" (F32 and F64 are read)", path,
                       name, dt->valuestring);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    double b = -1, en = -1;
    if (cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2)
        b = json_index(off->child), en = json_index(off->child->next);
    if (b < 0 || en < 0)
        return tg_fail(TG_ERR_IO, "%s: tensor '%s': \"data_offsets\" is not [begin, end]", path,
                       name);
    sp->begin = (uint64_t)b, sp->end = (uint64_t)en, sp->name = name;
    if (sp->begin > sp->end || sp->end > data_len)
        return tg_fail(TG_ERR_IO,
                       "%s: tensor '%s': data_offsets [%llu, %llu] outside the %llu "
                       "data bytes",
                       path, name, (unsigned long long)sp->begin, (unsigned long long)sp->end,
                       (unsigned long long)data_len);
    uint64_t want = mul_sat(t->size, dtype_size(sp->dtype));
    if (sp->end - sp->begin != want)
        return tg_fail(TG_ERR_IO, "%s: tensor '%s': %llu data bytes, its shape and dtype need %llu",
                       path, name, (unsigned long long)(sp->end - sp->begin),
                       (unsigned long long)want);
    return TG_OK;
}

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin   ? -1
           : x->begin > y->begin ? 1
                                 : (x->end > y->end) - (x->end < y->end);
}

/* No two tensors share a byte (empty tensors share none). Sorts sp. */
static tg_status check_overlap(span *sp, int n, const char *path) {
    qsort(sp, (size_t)n, sizeof *sp, by_begin);
    for (int i = 1; i < n; i++)
        if (sp[i].begin < sp[i - 1].end && sp[i].begin < sp[i].end)
            return tg_fail(TG_ERR_IO, "%s: tensors '%s' and '%s' overlap in the data", path,
                           sp[i - 1].name, sp[i].name);
    return TG_OK;
}

/* __metadata__, if there, is an object of strings (the format's rule). */
static tg_status check_metadata(const cJSON *meta, const char *path) {
    if (!cJSON_IsObject(meta)) return tg_fail(TG_ERR_IO, "%s: __metadata__ is not an object", path);
    for (const cJSON *v = meta->child; v; v = v->next)
        if (!cJSON_IsString(v))
            return tg_fail(TG_ERR_IO, "%s: __metadata__ entry '%s' is not a string", path,
                           v->string);
    return TG_OK;
}

/* Model tensor index of a header key; -1 if the model has none. */
static int find_name(const char **names, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], key) == 0) return i;
    return -1;
}

/* Every header entry checked; sp[i] for model tensor i. Nothing written. */
static tg_status check_header(const cJSON *root, tg_tensor **ts, const char **names, int n,
                              uint64_t data_len, const char *path, span *sp) {
    if (!cJSON_IsObject(root))
        return tg_fail(TG_ERR_IO, "%s: the header is not a JSON object", path);
    for (int i = 0; i < n; i++)
        sp[i].name = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        tg_status s;
        if (strcmp(e->string, "__metadata__") == 0) {
            if ((s = check_metadata(e, path))) return s;
            continue;
        }
        int i = find_name(names, n, e->string);
        if (i < 0)
            return tg_fail(TG_ERR_IO,
                           "%s: tensor '%s' is not in the model (extra tensors are "
                           "refused)",
                           path, e->string);
        if (sp[i].name) return tg_fail(TG_ERR_IO, "%s: tensor '%s' appears twice", path, names[i]);
        if (!cJSON_IsObject(e))
            return tg_fail(TG_ERR_IO, "%s: tensor '%s': entry is not an object", path, names[i]);
        if ((s = check_shape(e, ts[i], path, names[i]))) return s;
        if ((s = check_data(e, ts[i], data_len, path, names[i], &sp[i]))) return s;
    }
    for (int i = 0; i < n; i++)
        if (!sp[i].name)
            return tg_fail(TG_ERR_IO, "%s: the model's tensor '%s' is missing", path, names[i]);
    return TG_OK;
}

/* Little-endian value k of a tensor stored as dt at p, as a double. */
static double value_at(const unsigned char *p, tg_dtype dt, size_t k) {
    reader r = {p, SIZE_MAX, k * dtype_size(dt), 1};
    if (dt == TG_F32) {
        uint32_t bits = get_u32(&r);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    return get_f64(&r);
}

static void copy_values(tg_tensor *t, const unsigned char *p, tg_dtype dt) {
    if (dt == t->dtype) {
        reader r = {p, t->size * dtype_size(dt), 0, 1};
        get_values(&r, t); /* bit for bit */
        return;
    }
    for (size_t k = 0; k < t->size; k++)
        tg_set(t, k, value_at(p, dt, k));
}

static tg_status decode(const unsigned char *p, size_t n, const char *path, tg_tensor **ts,
                        const char **names, int nt, span *sp) {
    if (n < 8) return tg_fail(TG_ERR_IO, "%s: truncated: %zu bytes, no header length", path, n);
    reader r = {p, n, 0, 1};
    uint64_t hlen = get_u64(&r);
    if (hlen < 2 || hlen > n - 8)
        return tg_fail(TG_ERR_IO, "%s: header length %llu does not fit the file's %zu bytes", path,
                       (unsigned long long)hlen, n);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)p - 8) : 0;
        return tg_fail(TG_ERR_IO, "%s: the header is not valid JSON (near byte %zu of %llu)", path,
                       at, (unsigned long long)hlen);
    }
    /* Only the padding (spaces) may follow the JSON value. */
    for (const char *q = end; q < (const char *)p + 8 + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return tg_fail(TG_ERR_IO, "%s: bytes after the header's JSON (at byte %zu of %llu)",
                           path, (size_t)(q - (const char *)p - 8), (unsigned long long)hlen);
        }
    span *spans = sp;
    tg_status s = check_header(root, ts, names, nt, n - 8 - hlen, path, spans);
    span *sorted = s ? NULL : tg_calloc(nt ? (size_t)nt : 1, sizeof *sorted);
    if (!s && !sorted) s = tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    if (!s) {
        memcpy(sorted, spans, (size_t)nt * sizeof *sorted);
        s = check_overlap(sorted, nt, path);
    }
    for (int i = 0; !s && i < nt; i++)
        copy_values(ts[i], p + 8 + hlen + spans[i].begin, spans[i].dtype);
    tg_free(sorted);
    cJSON_Delete(root);
    return s;
}

tg_status tg_safetensors_load(tg_model *m, const char *path) {
    if (!m || !path) return tg_fail(TG_ERR_ARG, "safetensors load: model or path is NULL");
    int n = tg_model_tensors(m, NULL, NULL, NULL, 0);
    size_t cap = n ? (size_t)n : 1;
    tg_tensor **ts = tg_calloc(cap, sizeof *ts);
    const char **names = tg_calloc(cap, sizeof *names);
    span *sp = tg_calloc(cap, sizeof *sp);
    unsigned char *buf = NULL;
    size_t len = 0;
    tg_status s = ts && names && sp ? TG_OK : tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    if (!s) {
        tg_model_tensors(m, ts, names, NULL, n);
        s = tg_model_read_file(path, &buf, &len);
    }
    if (!s) s = decode(buf, len, path, ts, names, n, sp);
    tg_free(buf);
    tg_free(ts);
    tg_free(names);
    tg_free(sp);
    return s;
}
