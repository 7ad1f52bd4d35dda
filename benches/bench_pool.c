/* bench_pool: what one job of tapegrad's thread pool costs (tg_parallel
 * with empty parts: publish, wake, run, join), for a pool of 1 to 4
 * threads, including more threads than this machine's cores.
 *
 *   bench_pool [--seconds S]
 *
 * One line per pool size:
 *   pool threads=N us_per_job=<mean µs over --seconds (default 0.5) of jobs>
 * The library is linked statically, so the bench calls the internal
 * tg_parallel (src/tape/internal.h) directly. */
#include "../src/tape/internal.h"
#include "bench_util.h"

static void empty_part(void *ctx, int part, int parts) {
    (void)ctx, (void)part, (void)parts;
}

int main(int argc, char **argv) {
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = bench_parse_seconds("bench_pool", argv[i], i + 1 < argc ? argv[i + 1] : NULL),
            i++;
        else {
            fprintf(stderr, "usage: bench_pool [--seconds S]\n");
            return 1;
        }
    }
    bench_check_build("bench_pool");
    for (int n = 1; n <= 4; n++) {
        BENCH_OK(tg_set_threads(n));
        for (int i = 0; i < 1000; i++) /* warm-up: the workers are running */
            tg_parallel(empty_part, NULL, n);
        long jobs = 0;
        double t0 = bench_now(), t = t0;
        while (t - t0 < seconds) {
            for (int i = 0; i < 100; i++)
                tg_parallel(empty_part, NULL, n);
            jobs += 100;
            t = bench_now();
        }
        printf("pool threads=%d us_per_job=%.3f\n", n, 1e6 * (t - t0) / (double)jobs);
        fflush(stdout);
    }
    BENCH_OK(tg_set_threads(1));
    return 0;
}
