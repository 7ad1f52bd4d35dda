/* tapegrad_testing.h — hooks for testing programs that use tapegrad.
 * Not for production use. */
#ifndef TAPEGRAD_TESTING_H
#define TAPEGRAD_TESTING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Make the n-th tapegrad heap allocation from now fail (n >= 1); 0 turns
 * the hook off. Every path must then return TG_ERR_NOMEM and leak nothing. */
void tg_testing_fail_alloc_at(uint64_t n);

#ifdef __cplusplus
}
#endif

#endif
