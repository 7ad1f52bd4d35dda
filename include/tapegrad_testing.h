/* tapegrad_testing.h — hooks for testing programs that use tapegrad.
 * Not for production use. */
#ifndef TAPEGRAD_TESTING_H
#define TAPEGRAD_TESTING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Make the n-th tapegrad heap allocation from now fail (n >= 1); 0 turns
 * the hook off. Every path must then return TG_ERR_NOMEM and leak nothing. */
void tg_testing_fail_alloc_at(uint64_t n);

/* Make every tapegrad heap allocation (or reallocation) of more than
 * `bytes` fail, as under a memory limit; 0 turns the limit off. Lets a test
 * show that a loader asks for memory in proportion to the data it read,
 * not to what a header or a line's width claims. */
void tg_testing_alloc_limit(size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
