/* MPI_Allreduce on this machine (issue 19's cost model, docs/distributed.md):
 * the time of one in-place float32 sum of n values across the ranks, for the
 * gradient sizes of the models in the model (the Fashion-MNIST MLP 235,146;
 * the CNN 225,034; the char transformer ~0.45M; 1M), and of small messages
 * for the latency term. Also tapegrad's own path, tg_dist_allreduce_grads on
 * the MLP's six tensors (one 4 MiB bucket, nonblocking + polling), to show
 * what it adds. Each size: 7 rounds of `iters` calls after a warm-up; the
 * median round's time per call, as seen by rank 0.
 * Usage: mpirun -np 2 bench_allreduce */
#include "tapegrad_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 7

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

static int iters_for(size_t n) {
    return n < 10000 ? 2000 : n < 300000 ? 100 : 40;
}

static double time_mpi(float *buf, size_t n) {
    int iters = iters_for(n);
    double rounds[ROUNDS];
    for (int w = 0; w < 5; w++)
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r < ROUNDS; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int i = 0; i < iters; i++)
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        rounds[r] = (MPI_Wtime() - t0) / iters;
    }
    return median(rounds, ROUNDS);
}

/* tg_dist_allreduce_grads on the MLP's parameters (784-256-128-10). */
static double time_tapegrad(tg_dist *d) {
    size_t shapes[6][2] = {{784, 256}, {256, 1}, {256, 128}, {128, 1}, {128, 10}, {10, 1}};
    tg_tensor *p[6] = {0};
    for (int i = 0; i < 6; i++)
        if (tg_param_new(&p[i], TG_F32, shapes[i][1] == 1 ? 1 : 2, shapes[i])) return -1;
    double rounds[ROUNDS], loss = 1;
    int iters = 100;
    if (tg_dist_attach(d, 6, p, 0)) return -1;
    for (int w = 0; w < 5; w++)
        tg_dist_allreduce_grads(d, 64, 128, &loss);
    for (int r = 0; r < ROUNDS; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int i = 0; i < iters; i++)
            if (tg_dist_allreduce_grads(d, 64, 128, &loss)) return -1;
        rounds[r] = (MPI_Wtime() - t0) / iters;
    }
    tg_dist_attach(d, 0, NULL, 0);
    for (int i = 0; i < 6; i++)
        tg_tensor_free(p[i]);
    return median(rounds, ROUNDS);
}

int main(void) {
    tg_dist *d = NULL;
    if (tg_dist_init(&d, MPI_COMM_NULL)) {
        fprintf(stderr, "bench_allreduce: %s\n", tg_last_error());
        return 1;
    }
    int rank = tg_dist_rank(d), size = tg_dist_size(d);
    static const struct {
        size_t n;
        const char *what;
    } sizes[] = {{2, "latency"},          {256, "1 KiB"},         {16384, "64 KiB"},
                 {65536, "256 KiB"},      {225034, "CNN"},        {235146, "MLP"},
                 {450000, "transformer"}, {1000000, "1M params"}, {4000000, "4M params"}};
    float *buf = calloc(4000000, sizeof *buf);
    if (!buf) return 1;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        double t = time_mpi(buf, sizes[i].n);
        double bytes = 4.0 * (double)sizes[i].n;
        /* The ring's bus bandwidth: 2(p−1)/p·bytes moved per rank per call. */
        if (!rank)
            printf("allreduce ranks=%d n=%zu bytes=%.0f (%s): %.1f us, ring bus bandwidth %.2f "
                   "GB/s\n",
                   size, sizes[i].n, bytes, sizes[i].what, 1e6 * t,
                   2.0 * (size - 1) / size * bytes / t / 1e9);
    }
    double tt = time_tapegrad(d);
    if (!rank)
        printf("tg_dist_allreduce_grads ranks=%d MLP (6 tensors, 235146 floats + loss): %.1f us\n",
               size, 1e6 * tt);
    free(buf);
    tg_dist_free(d);
    return 0;
}
