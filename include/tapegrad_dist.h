/*
 * tapegrad_dist.h — data-parallel training over MPI (issue 19).
 *
 * Built as its own library, libtapegrad_dist, when meson finds Open MPI
 * (-Dmpi=auto|enabled|disabled); libtapegrad itself never touches MPI.
 * Programs using it are MPI programs: compile with mpicc (or the `mpi`
 * dependency) and start with mpirun.
 *
 * The scheme is PyTorch's DistributedDataParallel on one process per rank:
 *   1. tg_dist_init: join a communicator (MPI_COMM_WORLD or the caller's;
 *      tapegrad works on its own duplicate, with MPI_ERRORS_RETURN), and
 *      check that every rank runs the same tapegrad version.
 *   2. tg_dist_attach: check that every rank has the same parameters
 *      (count, dtypes, shapes — as DDP's _verify_param_shape_across_processes)
 *      and broadcast their values from rank 0, so every replica starts equal.
 *   3. Each step, each rank runs forward + backward on its shard of the
 *      global batch (tg_dist_shard), then tg_dist_allreduce_grads turns the
 *      local gradients into the global batch's gradient on every rank, and
 *      every rank runs the same optimizer step. N ranks with B/N examples
 *      each then follow the trajectory of one process with batch B (up to
 *      the order of one sum).
 *
 * Faults never hang: every collective is nonblocking, waited for with a
 * timeout (tg_dist_set_timeout, 20 s by default, or TAPEGRAD_DIST_TIMEOUT);
 * on timeout the call fails with TG_ERR_IO naming the ranks on this host
 * whose process is gone, and the communicator is unusable afterwards (the
 * program should exit non-zero without further MPI calls). Under mpirun's
 * default policy a rank that dies makes mpirun stop the others with SIGTERM
 * first; tg_dist_watch_signals names the lost rank then too.
 *
 * Errors: a tg_status, the message in tg_last_error() starting "dist:".
 * Threads: call from one thread (MPI_THREAD_FUNNELED).
 */
#ifndef TAPEGRAD_DIST_H
#define TAPEGRAD_DIST_H

#include "tapegrad.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_dist tg_dist;

/* Join comm (MPI_COMM_NULL: MPI_COMM_WORLD). Calls MPI_Init_thread first
 * if MPI is not initialised (and tg_dist_free then finalises it). A
 * collective over comm: exchanges versions, process ids and host names.
 * Errors: TG_ERR_STATE on every rank if the ranks' tapegrad versions
 * differ ("rank 0 has 0.1.0, rank 1 has 0.2.0"); TG_ERR_IO if MPI fails. */
tg_status tg_dist_init(tg_dist **out, MPI_Comm comm);
/* Frees d; finalises MPI if tg_dist_init initialised it and no collective
 * failed (after a failure MPI_Finalize could wait for the lost rank).
 * NULL is fine. */
void tg_dist_free(tg_dist *d);
int tg_dist_rank(const tg_dist *d);
int tg_dist_size(const tg_dist *d);
/* Ranks on this host (Open MPI's local size), for choosing thread counts. */
int tg_dist_local_size(const tg_dist *d);
/* Seconds a rank waits in one collective for the others (> 0). */
void tg_dist_set_timeout(tg_dist *d, double seconds);

/* Check the n parameters agree across ranks (count, dtype, shape), then
 * copy rank 0's values to every rank, and set up the gradient buckets
 * (flat float32/float64 buffers of at most bucket_bytes each, 0: 4 MiB;
 * a larger tensor gets a bucket of its own). The parameters are kept by
 * pointer until the next attach or tg_dist_free. Collective.
 * Errors: TG_ERR_SHAPE on every rank naming the first differing rank and
 * tensor; TG_ERR_ARG for bad arguments; TG_ERR_NOMEM; TG_ERR_IO. */
tg_status tg_dist_attach(tg_dist *d, int n, tg_tensor *const *params, size_t bucket_bytes);

/* After tg_backward of a MEAN loss over this rank's local_rows examples
 * (of global_rows in the global batch, the sum of local_rows over ranks):
 * every attached parameter's gradient becomes the mean over the global
 * batch, Σ_k local_rows_k·g_k / global_rows, on every rank. Equal shards
 * (local_rows·size == global_rows): the gradients are summed, then scaled
 * by 1/size, as DDP does. A rank with local_rows == 0 contributes zero
 * (its gradient buffers are ignored). loss (NULL: none) is this rank's
 * mean loss in, the global batch's mean loss out, reduced in the same
 * MPI_Allreduce (in the gradients' dtype); a NaN anywhere gives NaN on
 * every rank, so every rank stops at the same step. For a SUM loss pass
 * local_rows = global_rows = 0: gradients and loss are summed. Collective;
 * allocates nothing. */
tg_status tg_dist_allreduce_grads(tg_dist *d, size_t local_rows, size_t global_rows, double *loss);

/* Rank 0's values of n tensors (any kind, e.g. batch norm's running
 * statistics) copied to every rank, one message per tensor. Sizes are not
 * checked first: a tensor larger on rank 0 is MPI's truncation error
 * (TG_ERR_IO); use tg_dist_attach for parameters. Collective. */
tg_status tg_dist_broadcast(tg_dist *d, int n, tg_tensor *const *tensors);
/* Sum n doubles across ranks in place (metrics: loss·rows, right answers). */
tg_status tg_dist_sum(tg_dist *d, double *values, int n);

/* This rank's slice [*first, *first + *count) of a global batch of rows
 * examples: contiguous, disjoint, covering it in rank order; sizes differ
 * by at most one (rows % size ranks get one more). Local, no communication. */
void tg_dist_shard(const tg_dist *d, size_t rows, size_t *first, size_t *count);
/* A global batch size every rank can split evenly: TG_ERR_ARG on every rank
 * if batch % size != 0 or the ranks' values differ. Collective. */
tg_status tg_dist_check_batch(tg_dist *d, size_t batch);

/* on = 1: a SIGTERM (mpirun stopping this rank because another died) prints
 * "tapegrad: rank R stopped: rank K (pid P) is gone" naming the ranks on
 * this host whose process is gone, then dies of the signal as before.
 * on = 0: the default action again (do so before writing files, so that
 * tapegrad's atomic writes clean up after themselves). */
void tg_dist_watch_signals(const tg_dist *d, int on);

#ifdef __cplusplus
}
#endif

#endif
