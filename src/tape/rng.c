/* splitmix64: small, fast, and the same stream on every platform, so that
 * a seed gives bitwise-identical initialisations everywhere. */
#include "tapegrad.h"

#include <math.h>

void tg_rng_seed(tg_rng *r, uint64_t seed) {
    r->state = seed;
}

uint64_t tg_rng_next(tg_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 53 random bits → a double in [0, 1). */
double tg_rng_uniform(tg_rng *r) {
    return (double)(tg_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Box–Muller; one value per call keeps the stream stateless beyond r. */
double tg_rng_normal(tg_rng *r) {
    double u = 1.0 - tg_rng_uniform(r); /* (0, 1]: log(u) is finite */
    double v = tg_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
