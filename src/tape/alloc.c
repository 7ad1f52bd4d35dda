/* Counting allocator. The count is what tests and bench_alloc read to show
 * that a training step allocates nothing after the first. */
#include "internal.h"
#include "tapegrad_testing.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_uint_fast64_t n_allocs;
/* Allocation number at which to fail (test hook); 0 = never. */
static atomic_uint_fast64_t fail_at;

uint64_t tg_alloc_count(void) {
    return (uint64_t)atomic_load(&n_allocs);
}

void tg_testing_fail_alloc_at(uint64_t n) {
    atomic_store(&fail_at, n ? tg_alloc_count() + n : 0);
}

static int should_fail(void) {
    uint64_t k = (uint64_t)atomic_fetch_add(&n_allocs, 1) + 1;
    uint64_t f = (uint64_t)atomic_load(&fail_at);
    return f != 0 && k == f;
}

void *tg_malloc(size_t bytes) {
    return should_fail() ? NULL : malloc(bytes ? bytes : 1);
}

void *tg_calloc(size_t n, size_t bytes) {
    return should_fail() ? NULL : calloc(n ? n : 1, bytes ? bytes : 1);
}

void *tg_realloc(void *p, size_t bytes) {
    return should_fail() ? NULL : realloc(p, bytes ? bytes : 1);
}

void tg_free(void *p) {
    free(p);
}
