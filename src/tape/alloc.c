/* Counting allocator. The count is what tests and bench_alloc read to show
 * that a training step allocates nothing after the first.
 *
 * Blocks are aligned to TG_ALIGN = 64 bytes. malloc's 16 is not enough for
 * numeric buffers: a 64-byte vector load at an address 16 past a line
 * reads two cache lines, and a large block from malloc is exactly that (an
 * mmap'd page plus malloc's 16-byte header), so every AVX-512 load and
 * store of a weight, an activation or a packed GEMM panel did (measured:
 * benches/RESULTS.md, "Stop 9"). */
#define _DEFAULT_SOURCE /* posix_memalign, madvise */
#include "internal.h"
#include "tapegrad_testing.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static atomic_uint_fast64_t n_allocs;
/* Allocation number at which to fail (test hook); 0 = never. */
static atomic_uint_fast64_t fail_at;

uint64_t tg_alloc_count(void) {
    return (uint64_t)atomic_load(&n_allocs);
}

void tg_testing_fail_alloc_at(uint64_t n) {
    atomic_store(&fail_at, n ? tg_alloc_count() + n : 0);
}

/* Largest block allowed (test hook); 0 = no limit. */
static atomic_size_t limit;

void tg_testing_alloc_limit(size_t bytes) {
    atomic_store(&limit, bytes);
}

static int should_fail(size_t bytes) {
    uint64_t k = (uint64_t)atomic_fetch_add(&n_allocs, 1) + 1;
    uint64_t f = (uint64_t)atomic_load(&fail_at);
    size_t most = atomic_load(&limit);
    return (f != 0 && k == f) || (most != 0 && bytes > most);
}

/* Blocks of TG_HUGE bytes or more (data sets) start on a 2 MiB boundary,
 * are rounded up to whole 2 MiB, and are marked for transparent huge pages
 * (a hint; nothing happens where THP is off): gathering random rows of a
 * data set otherwise misses the TLB once or twice per row (bench_fill,
 * benches/RESULTS.md "Stop 9"). At most 2 MiB more per block. */
#define TG_HUGE      ((size_t)4 << 20)
#define TG_HUGE_PAGE ((size_t)2 << 20)

static void *aligned(size_t bytes) {
    void *p = NULL;
    if (bytes >= TG_HUGE && bytes <= SIZE_MAX - TG_HUGE_PAGE) {
        size_t whole = (bytes + TG_HUGE_PAGE - 1) & ~(TG_HUGE_PAGE - 1);
        if (posix_memalign(&p, TG_HUGE_PAGE, whole) != 0) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, whole, MADV_HUGEPAGE);
#endif
        return p;
    }
    return posix_memalign(&p, TG_ALIGN, bytes ? bytes : 1) == 0 ? p : NULL;
}

void *tg_malloc(size_t bytes) {
    return should_fail(bytes) ? NULL : aligned(bytes);
}

void *tg_calloc(size_t n, size_t bytes) {
    int overflow = bytes && n > SIZE_MAX / bytes;
    if (should_fail(overflow ? SIZE_MAX : n * bytes) || overflow) return NULL;
    void *p = aligned(n * bytes);
    if (p) memset(p, 0, n * bytes);
    return p;
}

void *tg_realloc(void *p, size_t bytes) {
    return should_fail(bytes) ? NULL : realloc(p, bytes ? bytes : 1);
}

void tg_free(void *p) {
    free(p);
}
