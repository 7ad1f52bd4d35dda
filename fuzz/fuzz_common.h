/* Shared by the fuzz targets: a byte cursor over the fuzz input, a private
 * scratch folder for the files the loaders read, and FUZZ_ASSERT, which
 * aborts so that libFuzzer reports a violated property as a crash (and
 * saves the input). The same harnesses are linked with replay.c instead
 * of libFuzzer in the ordinary builds, to replay the corpus and every saved
 * crash as a regression test. */
#ifndef TG_FUZZ_COMMON_H
#define TG_FUZZ_COMMON_H

#define _GNU_SOURCE /* mkdtemp, nftw */

#include "tapegrad.h"

#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz property violated: %s\n  last error: %s\n", __FILE__,    \
                    __LINE__, #cond, tg_last_error());                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- bytes */

typedef struct fuzz_bytes {
    const uint8_t *p;
    size_t n, i;
} fuzz_bytes;

/* The next byte; zeros once the input is used up. */
static inline uint8_t fb_u8(fuzz_bytes *b) {
    return b->i < b->n ? b->p[b->i++] : 0;
}

static inline uint32_t fb_u32(fuzz_bytes *b) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++)
        v |= (uint32_t)fb_u8(b) << (8 * k);
    return v;
}

static inline uint64_t fb_u64(fuzz_bytes *b) {
    return (uint64_t)fb_u32(b) | (uint64_t)fb_u32(b) << 32;
}

static inline int fb_left(const fuzz_bytes *b) {
    return b->i < b->n;
}

/* ---------------------------------------------------------------- counts */

/* How many inputs ran, how many the library refused, and how many of the
 * refused ones were distinct (a set of 64-bit FNV-1a hashes of the inputs):
 * printed at exit, so that a run says how many different bad inputs each
 * loader was tried with. */
static struct {
    const char *target;
    uint64_t inputs, refused, accepted, distinct;
    uint64_t *set;
    size_t cap;
} fuzz_stats;

static uint64_t fuzz_hash(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h | 1; /* 0 marks an empty slot */
}

static void fuzz_set_add(uint64_t h) {
    if (fuzz_stats.distinct * 2 >= fuzz_stats.cap) { /* grow, keep load <= 1/2 */
        size_t cap = fuzz_stats.cap ? fuzz_stats.cap * 2 : 1 << 16;
        uint64_t *set = calloc(cap, sizeof *set);
        if (!set) return; /* counting is best effort */
        for (size_t i = 0; i < fuzz_stats.cap; i++) {
            uint64_t v = fuzz_stats.set[i];
            if (!v) continue;
            size_t k = (size_t)(v % cap);
            while (set[k])
                k = (k + 1) % cap;
            set[k] = v;
        }
        free(fuzz_stats.set);
        fuzz_stats.set = set;
        fuzz_stats.cap = cap;
    }
    size_t k = (size_t)(h % fuzz_stats.cap);
    while (fuzz_stats.set[k] && fuzz_stats.set[k] != h)
        k = (k + 1) % fuzz_stats.cap;
    if (!fuzz_stats.set[k]) fuzz_stats.set[k] = h, fuzz_stats.distinct++;
}

static void fuzz_stats_print(void) {
    fprintf(stderr,
            "fuzz stats: target=%s inputs=%llu refused=%llu distinct_refused=%llu "
            "accepted=%llu\n",
            fuzz_stats.target, (unsigned long long)fuzz_stats.inputs,
            (unsigned long long)fuzz_stats.refused, (unsigned long long)fuzz_stats.distinct,
            (unsigned long long)fuzz_stats.accepted);
    free(fuzz_stats.set);
    fuzz_stats.set = NULL;
}

static inline void fuzz_stats_init(const char *target) {
    fuzz_stats.target = target;
    atexit(fuzz_stats_print);
}

/* One input done: refused by the library (1) or accepted (0). */
static inline void fuzz_stats_note(int refused, const uint8_t *data, size_t size) {
    fuzz_stats.inputs++;
    if (!refused) {
        fuzz_stats.accepted++;
        return;
    }
    fuzz_stats.refused++;
    fuzz_set_add(fuzz_hash(data, size));
}

/* ---------------------------------------------------------------- files */

/* A folder of our own: /dev/shm when it exists (no disk, fsync is free),
 * else /tmp; the pid in its name keeps parallel fuzzing jobs apart. */
static char fuzz_dir[256];

static int fuzz_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void fuzz_dir_remove(void) {
    if (fuzz_dir[0]) nftw(fuzz_dir, fuzz_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static inline const char *fuzz_dir_init(const char *target) {
    if (fuzz_dir[0]) return fuzz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/tgfuzz-%s-%ld-XXXXXX", base, target, (long)getpid());
    if (!mkdtemp(fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_remove);
    fuzz_stats_init(target);
    return fuzz_dir;
}

/* fuzz_dir/name in a static buffer (one per call site is enough here). */
static inline void fuzz_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", fuzz_dir, name);
}

static inline void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Every failure carries a message; a status is one of the enum's values. */
static inline void fuzz_check_error(tg_status s) {
    FUZZ_ASSERT(s > TG_OK && s <= TG_ERR_IO);
    FUZZ_ASSERT(tg_last_error()[0] != '\0');
}

#endif
