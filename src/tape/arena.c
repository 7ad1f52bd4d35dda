/* Bump arena owned by a tape. Op outputs, saved scratch and adjoints come
 * from here, so a step costs no malloc once the arena has grown to fit it. */
#include "internal.h"

#include <stdalign.h>
#include <string.h>

#define TG_MIN_BLOCK ((size_t)1 << 16)

struct tg_block {
    tg_block *next;
    size_t cap, used;
    alignas(TG_ALIGN) unsigned char mem[];
};

void tg_arena_init(tg_arena *a) {
    memset(a, 0, sizeof *a);
}

static tg_block *block_new(size_t cap) {
    if (cap > SIZE_MAX - sizeof(tg_block)) return NULL;
    /* tg_malloc's block is TG_ALIGN-aligned, and so is the flexible member's
     * offset: every op output starts on a cache line */
    tg_block *b = tg_malloc(sizeof(tg_block) + cap);
    if (!b) return NULL;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

static size_t round_up(size_t n) {
    return (n + TG_ALIGN - 1) & ~(size_t)(TG_ALIGN - 1);
}

void *tg_arena_alloc(tg_arena *a, size_t bytes) {
    if (bytes > SIZE_MAX / 2) return NULL;
    size_t need = round_up(bytes ? bytes : 1);
    while (a->cur && a->cur->cap - a->cur->used < need) {
        if (!a->cur->next) break;
        a->cur = a->cur->next;
        a->cur->used = 0;
    }
    if (!a->cur || a->cur->cap - a->cur->used < need) {
        size_t cap = need > TG_MIN_BLOCK ? need : TG_MIN_BLOCK;
        if (a->cur && a->cur->cap * 2 > cap) cap = a->cur->cap * 2;
        tg_block *b = block_new(cap);
        if (!b) return NULL;
        if (a->cur)
            a->cur->next = b;
        else
            a->head = b;
        a->cur = b;
    }
    void *p = a->cur->mem + a->cur->used;
    a->cur->used += need;
    a->in_use += need;
    return p;
}

/* Keep the memory; if the last step spread over several blocks, replace
 * them by one that holds it all, so the next identical step needs one. */
void tg_arena_reset(tg_arena *a) {
    if (a->head && a->head->next) {
        size_t total = 0;
        for (tg_block *b = a->head; b; b = b->next)
            total += b->cap;
        if (total < a->in_use) total = a->in_use;
        tg_block *one = block_new(total);
        if (one) { /* on failure keep the chain: still correct, just not merged */
            tg_arena_free(a);
            a->head = one;
        }
    }
    for (tg_block *b = a->head; b; b = b->next)
        b->used = 0;
    a->cur = a->head;
    a->in_use = 0;
}

void tg_arena_free(tg_arena *a) {
    tg_block *b = a->head;
    while (b) {
        tg_block *n = b->next;
        tg_free(b);
        b = n;
    }
    tg_arena_init(a);
}
