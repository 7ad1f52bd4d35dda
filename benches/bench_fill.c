/* bench_fill: tg_batch_fill of 128 random rows of Fashion-MNIST (60,000 ×
 * 784 float64, 376 MB) into a float32 batch, as each training step of the
 * CLI does, from two copies of the same data set in one process:
 *
 *   source=library  the copy tg_dataset_split makes (tapegrad's allocator:
 *                   2 MiB-aligned and marked for transparent huge pages)
 *   source=malloc   the same bytes in a plain malloc block (4 KiB pages)
 *
 * so that the cost of the TLB misses of a random-row gather shows beside
 * its cure. Without the data set installed (dataset-fashion-mnist) it
 * gathers from random data of the same shape.
 *
 *   bench_fill [--threads N] [--reps R]
 *
 * One line per thread count (1 and 2, or --threads) and source:
 *   fill threads=2 source=library us=<median µs> p10_us=.. p90_us=..
 * Between two fills 8 MiB are written, as a training step's other work
 * would evict the last batch's rows from the caches. */
#include "bench_util.h"

#include <tapegrad_io.h>

#define ROWS 128

static void load(tg_dataset *all) {
    if (tg_idx_load("/usr/share/datasets/fashion-mnist/train", all) == TG_OK) return;
    fprintf(stderr, "bench_fill: no Fashion-MNIST (%s); random data of its shape\n",
            tg_last_error());
    all->n = 60000, all->d = 784;
    all->x = bench_malloc("bench_fill", all->n * all->d * sizeof(double));
    all->y = bench_malloc("bench_fill", all->n * sizeof(double));
    tg_rng g;
    tg_rng_seed(&g, 1);
    for (size_t i = 0; i < all->n * all->d; i++)
        all->x[i] = tg_rng_uniform(&g);
    for (size_t i = 0; i < all->n; i++)
        all->y[i] = (double)(i % 10);
}

static void run(const tg_dataset *ds, const char *source, int threads, int reps) {
    BENCH_OK(tg_set_threads(threads));
    size_t rows = ROWS;
    tg_tensor *x, *y;
    BENCH_OK(tg_tensor_new(&x, TG_F32, 2, (size_t[]){rows, ds->d}));
    BENCH_OK(tg_tensor_new(&y, TG_F32, 1, &rows));
    size_t *idx = bench_malloc("bench_fill", ds->n * sizeof *idx);
    size_t junk_bytes = (size_t)8 << 20;
    char *junk = bench_malloc("bench_fill", junk_bytes);
    double *us = bench_malloc("bench_fill", (size_t)reps * sizeof *us);
    for (size_t i = 0; i < ds->n; i++)
        idx[i] = i;
    tg_rng g;
    tg_rng_seed(&g, 7);
    tg_shuffle(idx, ds->n, &g);
    memset(junk, 0, junk_bytes);
    for (int r = 0; r < reps; r++) {
        for (size_t i = 0; i < junk_bytes; i += 64)
            junk[i]++;
        size_t start = (size_t)r * rows % (ds->n - rows);
        double t0 = bench_now();
        BENCH_OK(tg_batch_fill(ds, idx, start, rows, x, y));
        us[r] = (bench_now() - t0) * 1e6;
    }
    qsort(us, (size_t)reps, sizeof *us, bench_cmp_double);
    printf("fill threads=%d source=%s us=%.1f p10_us=%.1f p90_us=%.1f rows=%d\n", threads, source,
           us[reps / 2], us[reps / 10], us[reps * 9 / 10], ROWS);
    free(us), free(junk), free(idx);
    tg_tensor_free(x), tg_tensor_free(y);
}

int main(int argc, char **argv) {
    int threads = 0, reps = 600;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_fill [--threads N] [--reps R]\n");
            return 2;
        }
    }
    if (threads < 0 || threads > TG_MAX_THREADS || reps < 10) {
        fprintf(stderr, "bench_fill: --threads 1..%d, --reps >= 10\n", TG_MAX_THREADS);
        return 2;
    }
    bench_check_build("bench_fill");
    tg_dataset all, lib;
    load(&all);
    BENCH_OK(tg_dataset_split(&all, 0, 0, 1, &lib, NULL, NULL));
    tg_dataset plain = lib;
    size_t bytes = lib.n * lib.d * sizeof(double);
    plain.x = bench_malloc("bench_fill", bytes);
    memcpy(plain.x, lib.x, bytes);
    for (int t = threads ? threads : 1; t <= (threads ? threads : 2); t++) {
        run(&lib, "library", t, reps);
        run(&plain, "malloc", t, reps);
    }
    free(plain.x);
    tg_dataset_free(&lib);
    if (all.x) tg_dataset_free(&all);
    return 0;
}
