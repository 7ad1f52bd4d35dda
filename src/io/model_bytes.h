/* Byte-level helpers shared by the model file formats (model.c: version 1,
 * model_v2.c: version 2): little-endian writers, a bounds-checked reader,
 * the CRC, and the whole-file read whose memory is bounded by the file. */
#ifndef TG_IO_MODEL_BYTES_H
#define TG_IO_MODEL_BYTES_H

#include "../tape/internal.h"
#include "tapegrad.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

#define TG_MODEL_MAX_FILE (1ull << 31) /* 2 GiB: the largest model file read or written */
#define TG_MODEL_TRAILER  12           /* u64 length + u32 crc */

static const unsigned char tg_model_magic[8] = {'T', 'G', 'M', 'O', 'D', 'E', 'L', '\0'};

typedef struct writer {
    unsigned char *p;
    size_t n;
} writer;

static inline void put_u8(writer *w, uint8_t v) {
    w->p[w->n++] = v;
}

static inline void put_u32(writer *w, uint32_t v) {
    for (int i = 0; i < 4; i++)
        put_u8(w, (uint8_t)(v >> (8 * i)));
}

static inline void put_u64(writer *w, uint64_t v) {
    for (int i = 0; i < 8; i++)
        put_u8(w, (uint8_t)(v >> (8 * i)));
}

static inline void put_f64(writer *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_u64(w, bits);
}

/* A cursor over the file's bytes. Reading past the end yields zeros and
 * clears ok: the loader checks lengths first, so this is a second fence. */
typedef struct reader {
    const unsigned char *p;
    size_t n, off;
    int ok;
} reader;

static inline uint64_t get_le(reader *r, int bytes) {
    if (r->off > r->n || r->n - r->off < (size_t)bytes) {
        r->ok = 0;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += (size_t)bytes;
    return v;
}

static inline uint32_t get_u32(reader *r) {
    return (uint32_t)get_le(r, 4);
}

static inline uint64_t get_u64(reader *r) {
    return get_le(r, 8);
}

static inline double get_f64(reader *r) {
    uint64_t bits = get_u64(r);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* zlib's crc32 takes a 32-bit length: feed it in chunks. */
static inline uint32_t crc_of(const unsigned char *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k, n -= k;
    }
    return (uint32_t)c;
}

/* a·b and a+b, clamped to UINT64_MAX on overflow (which the callers then
 * refuse as too large). */
static inline uint64_t mul_sat(uint64_t a, uint64_t b) {
    return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

static inline uint64_t add_sat(uint64_t a, uint64_t b) {
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

static inline void put_values(writer *w, const tg_tensor *t) {
    for (size_t i = 0; i < t->size; i++) {
        if (t->dtype == TG_F32) {
            uint32_t bits;
            memcpy(&bits, (const float *)t->data + i, sizeof bits);
            put_u32(w, bits);
        } else {
            uint64_t bits;
            memcpy(&bits, (const double *)t->data + i, sizeof bits);
            put_u64(w, bits);
        }
    }
}

static inline void get_values(reader *r, tg_tensor *t) {
    for (size_t i = 0; i < t->size; i++) {
        if (t->dtype == TG_F32) {
            uint32_t bits = get_u32(r);
            memcpy((float *)t->data + i, &bits, sizeof bits);
        } else {
            uint64_t bits = get_u64(r);
            memcpy((double *)t->data + i, &bits, sizeof bits);
        }
    }
}

/* The whole file at path into a fresh buffer (tg_free), at most 2 GiB;
 * memory grows with the bytes actually read. TG_ERR_IO naming the path. */
tg_status tg_model_read_file(const char *path, unsigned char **buf, size_t *len);

/* The trailer of a file that must be `total` bytes: its length, the CRC,
 * then the length field (docs/model-format.md, rules 4 and 5). */
tg_status tg_model_check_integrity(const unsigned char *p, size_t n, uint64_t total,
                                   const char *path);

/* Every mean finite, every std finite and > 0; err names the status. */
tg_status tg_model_check_stats(const double *mean, const double *std, size_t n, const char *path,
                               tg_status err);

#endif
