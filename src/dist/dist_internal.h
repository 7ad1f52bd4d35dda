/* libtapegrad_dist's shared state (not installed). */
#ifndef TG_DIST_INTERNAL_H
#define TG_DIST_INTERNAL_H

#include "tapegrad_dist.h"

#include <stdint.h>

/* What each rank tells the others at tg_dist_init. */
typedef struct dist_peer {
    char version[24];
    int32_t pid;
    int32_t pad;
    uint64_t host; /* a hash of the host name: pids compare only on one host */
} dist_peer;

/* A flat buffer holding the gradients of params[first .. first+count−1],
 * all of one dtype, reduced by one MPI_Allreduce. */
typedef struct dist_bucket {
    tg_dtype dtype;
    int first, count;
    size_t n; /* elements of the gradients (bucket 0 holds one more: the loss) */
    void *buf;
} dist_bucket;

struct tg_dist {
    MPI_Comm comm; /* our duplicate, MPI_ERRORS_RETURN */
    int rank, size, local_size;
    int owns_mpi; /* we called MPI_Init_thread */
    int broken;   /* a collective failed or timed out: no more MPI calls */
    double timeout;
    dist_peer *peers; /* size of them */
    int n_params;
    tg_tensor **params;
    dist_bucket *buckets;
    int n_buckets;
};

/* tg_dist_init with a given version string (tests: a mismatch). */
tg_status tg_dist_init_as(tg_dist **out, MPI_Comm comm, const char *version);
/* Wait for req within d->timeout; what names the collective in errors. */
tg_status dist_wait(tg_dist *d, MPI_Request *req, const char *what);
/* Waits for n requests (the first failure or timeout wins). */
tg_status dist_wait_all(tg_dist *d, int n, MPI_Request *reqs, const char *what);
/* An MPI error code as a tapegrad error; marks d broken. */
tg_status dist_mpi_fail(tg_dist *d, int rc, const char *what);
MPI_Datatype dist_mpi_type(tg_dtype dt);
/* Frees the attached parameters' list and buckets. */
void dist_buckets_free(tg_dist *d);

#endif
