/* `mpirun -np N tapegrad fit ...`: the hooks train.c calls for data-parallel
 * training (issue 19). Each rank loads the whole data set, shuffles it with
 * the same seed, and takes its slice of every global batch (--batch is the
 * global batch); the gradients are averaged across ranks before every
 * optimizer step, so the ranks stay equal and follow the trajectory of one
 * process with the same --batch. Rank 0 alone prints and writes files.
 * Built without MPI, or started without mpirun, every hook does nothing. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdlib.h>
#include <unistd.h>

#ifdef TG_HAVE_MPI
#include "tapegrad_dist.h"

static tg_dist *dist;
/* The last error was found by a collective check, so every rank has it and
 * MPI can be finalised; any other error leaves the others waiting, and
 * finalising would wait for them: the rank exits without, and mpirun stops
 * the job. */
static int agreed;

/* Started by mpirun (Open MPI) or another PMI launcher. */
static int launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int dist_fail(void) {
    fprintf(stderr, "tapegrad: rank %d: %s\n", tg_dist_rank(dist), tg_last_error());
    return 0;
}

const cli_opts *cli_dist_start(const cli_opts *o, cli_opts *local) {
    if (!launched()) return o;
    agreed = 1; /* init and the batch check fail on every rank together */
    if (tg_dist_init(&dist, MPI_COMM_NULL)) {
        fprintf(stderr, "tapegrad: %s\n", tg_last_error());
        return NULL;
    }
    if (tg_dist_check_batch(dist, o->batch)) return dist_fail(), NULL;
    agreed = 0;
    *local = *o;
    if (tg_dist_rank(dist)) {
        local->save = local->plot = local->log = NULL;
        if (!freopen("/dev/null", "w", stdout)) return dist_fail(), NULL;
    }
    if (local->threads <= 0) { /* the host's CPUs shared among its ranks */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN) / tg_dist_local_size(dist);
        local->threads = cpus < 1 ? 1 : cpus > TG_MAX_THREADS ? TG_MAX_THREADS : (int)cpus;
    }
    tg_dist_watch_signals(dist, 1);
    if (!tg_dist_rank(dist))
        printf("fit: %d ranks, global batch %zu (%zu per rank), %d threads each\n",
               tg_dist_size(dist), o->batch, o->batch / (size_t)tg_dist_size(dist), local->threads);
    return local;
}

int cli_dist_rank(void) {
    return dist ? tg_dist_rank(dist) : 0;
}

tg_status cli_dist_attach(int n, tg_tensor *const *params) {
    if (!dist) return TG_OK;
    tg_status s = tg_dist_attach(dist, n, params, 0);
    agreed = s == TG_ERR_SHAPE; /* the shape check fails everywhere at once */
    return s;
}

size_t cli_dist_rows(size_t rows) {
    size_t first, count = rows;
    if (dist) tg_dist_shard(dist, rows, &first, &count);
    return count;
}

size_t cli_dist_first(size_t rows) {
    size_t first = 0, count;
    if (dist) tg_dist_shard(dist, rows, &first, &count);
    return first;
}

tg_status cli_dist_grads(size_t local_rows, size_t global_rows, double *loss) {
    return dist ? tg_dist_allreduce_grads(dist, local_rows, global_rows, loss) : TG_OK;
}

tg_status cli_dist_sum(double *a, double *b, double *c, double *d) {
    if (!dist) return TG_OK;
    double v[4] = {*a, *b, *c, *d};
    tg_status s = tg_dist_sum(dist, v, 4);
    *a = v[0], *b = v[1], *c = v[2], *d = v[3];
    return s;
}

void cli_dist_unwatch(void) {
    if (dist) tg_dist_watch_signals(dist, 0);
}

int cli_dist_end(int rc) {
    if (!dist) return rc;
    tg_dist_watch_signals(dist, 0);
    if (rc && !agreed) {
        fflush(NULL);
        _exit(rc); /* MPI_Finalize would wait for ranks that wait for us */
    }
    tg_dist_free(dist);
    dist = NULL;
    return rc;
}

#else /* one process */

const cli_opts *cli_dist_start(const cli_opts *o, cli_opts *local) {
    (void)local;
    return o;
}
int cli_dist_rank(void) {
    return 0;
}
tg_status cli_dist_attach(int n, tg_tensor *const *params) {
    (void)n, (void)params;
    return TG_OK;
}
size_t cli_dist_rows(size_t rows) {
    return rows;
}
size_t cli_dist_first(size_t rows) {
    (void)rows;
    return 0;
}
tg_status cli_dist_grads(size_t local_rows, size_t global_rows, double *loss) {
    (void)local_rows, (void)global_rows, (void)loss;
    return TG_OK;
}
tg_status cli_dist_sum(double *a, double *b, double *c, double *d) {
    (void)a, (void)b, (void)c, (void)d;
    return TG_OK;
}
void cli_dist_unwatch(void) {}
int cli_dist_end(int rc) {
    return rc;
}

#endif
