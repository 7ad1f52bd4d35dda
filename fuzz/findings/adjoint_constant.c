/* Finding (fuzz_api): tg_adjoint_check fails on graphs that are constant
 * along the path, although every d- and r-map is right.
 *
 * sum(softmax(x)) is 1 for every x, so dF(ξ) = 0 and rF(ζ) = 0 exactly;
 * computed, both are rounding noise (~1e-17), and the relative error that
 * src/tape/check.c computes, |side0 − side1| / Σ|terms|, divides noise by
 * noise: about 0.1..1, far over 1e-12. fuzz_api met it as l1(softmax(x))
 * on a 1x2 input (adjoint check: <rF(zeta), xi> = 6.13e-17 but
 * <zeta, dF(xi)> = 4.77e-17, relative error 0.125). Not loosened: the
 * harness no longer chains softmax results into later ops.
 *
 * Build (any tapegrad build):
 *   cc adjoint_constant.c -Iinclude build/libtapegrad.a -lopenblas -lz -lm
 * Prints how many of 200 random x fail the check (186 of 200 here). */
#include <stdio.h>

#include "tapegrad.h"

int main(void) {
    int fails = 0, runs = 0;
    for (int trial = 0; trial < 200; trial++) {
        tg_tape *t;
        tg_tensor *x, *s, *y;
        tg_tape_new(&t);
        tg_param_new(&x, TG_F64, 2, (size_t[]){2, 3});
        tg_rng g;
        tg_rng_seed(&g, (uint64_t)trial);
        for (int i = 0; i < 6; i++)
            tg_set(x, (size_t)i, tg_rng_normal(&g));
        tg_softmax(t, x, &s);
        tg_sum(t, s, &y);
        tg_check_report r;
        tg_status st = tg_adjoint_check(t, y, 1, &x, NULL, &r);
        runs++;
        if (st && ++fails < 3) printf("%s\n", tg_last_error());
        tg_tape_free(t);
        tg_tensor_free(x);
    }
    printf("sum(softmax(x)): %d of %d adjoint checks fail\n", fails, runs);
    return 0;
}
