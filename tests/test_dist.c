/* libtapegrad_dist under `mpirun -np 2` (tests/meson.build): every rank runs
 * this file and reports its own checks.
 *  - Equivalence: 50 Adam steps (and 50 SGD steps in float32) of a small MLP on 2 ranks, each with
 * half of every global batch, against the same 50 steps in one process with the whole batch
 * (computed on every rank, without MPI): parameters equal to 1e-5 relative in float32, 1e-12 in
 * float64. Rank 1 starts from other weights, so the broadcast from rank 0 is checked too. Every
 * fifth step has an odd global batch (7 rows: 4 + 3), the unequal-shard weighting.
 *  - Bad use: mismatched parameter shapes, mismatched versions, a batch the
 *    rank count does not divide, batches that differ across ranks: a clear
 *    error on EVERY rank (each rank checks its own), no deadlock.
 *  - Sharding covers a batch disjointly; tg_dist_sum sums; a program's own
 *    communicator works. */
#include "../src/dist/dist_internal.h"
#include "check.h"
#include "tapegrad_nn.h"

#include <math.h>

#define N_DATA 400
#define D_IN   8
#define STEPS  50

static void make_data(double *x, double *y) {
    tg_rng g;
    tg_rng_seed(&g, 7);
    for (size_t i = 0; i < N_DATA; i++) {
        size_t c = i % 3;
        y[i] = (double)c;
        for (size_t j = 0; j < D_IN; j++)
            x[i * D_IN + j] = (j == c ? 1.5 : 0.0) + tg_rng_normal(&g);
    }
}

/* Rows [first, first + rows) of the data, in the batch tensors (rows × D_IN). */
static void fill(tg_tensor *xb, tg_tensor *yb, const double *x, const double *y, size_t first,
                 size_t rows) {
    for (size_t r = 0; r < rows; r++) {
        tg_set(yb, r, y[first + r]);
        for (size_t j = 0; j < D_IN; j++)
            tg_set(xb, r * D_IN + j, x[(first + r) * D_IN + j]);
    }
}

/* One run of STEPS Adam steps; dist NULL: one process, whole batches. The
 * global batch at step k: 32 rows, or 7 every fifth step; the data is read
 * in order, wrapping. Returns the last step's (global) loss. */
static double run(tg_dist *dist, tg_mlp *m, const double *x, const double *y, tg_opt_kind kind) {
    tg_tensor *params[8];
    int np = tg_mlp_params(m, params, 8);
    tg_opt_config cfg = tg_opt_defaults(kind);
    tg_optimizer *opt = NULL;
    tg_tape *t = NULL;
    tg_tensor *xb[33] = {0}, *yb[33] = {0}; /* by row count, made on first use */
    CHECK_OK(tg_optimizer_new(&opt, &cfg, np, params));
    CHECK_OK(tg_tape_new(&t));
    if (dist) CHECK_OK(tg_dist_attach(dist, np, params, 256)); /* small buckets: several */
    double loss = NAN;
    size_t at = 0;
    for (int k = 0; k < STEPS && opt && t; k++) {
        size_t global = k % 5 == 4 ? 7 : 32, first = 0, rows = global;
        if (at + global > N_DATA) at = 0;
        if (dist) tg_dist_shard(dist, global, &first, &rows);
        if (!xb[rows]) {
            CHECK_OK(tg_tensor_new(&xb[rows], m->dtype, 2, (size_t[]){rows, D_IN}));
            CHECK_OK(tg_tensor_new(&yb[rows], m->dtype, 1, &rows));
        }
        fill(xb[rows], yb[rows], x, y, at + first, rows);
        tg_tensor *logits, *cost;
        CHECK_OK(tg_mlp_forward(t, m, xb[rows], &logits));
        CHECK_OK(tg_mlp_cost(t, m, logits, yb[rows], &cost));
        CHECK_OK(tg_backward(t, cost));
        loss = tg_get(cost, 0);
        if (dist) CHECK_OK(tg_dist_allreduce_grads(dist, rows, global, &loss));
        CHECK_OK(tg_optimizer_step(opt));
        tg_tape_reset(t);
        at += global;
    }
    for (int i = 0; i < 33; i++) {
        tg_tensor_free(xb[i]);
        tg_tensor_free(yb[i]);
    }
    tg_tape_free(t);
    tg_optimizer_free(opt);
    return loss;
}

static tg_mlp *mlp(tg_dtype dt, size_t hidden, uint64_t seed) {
    tg_mlp *m = NULL;
    tg_rng g;
    tg_rng_seed(&g, seed);
    size_t widths[2] = {hidden, hidden};
    CHECK_OK(tg_mlp_new(&m, dt, D_IN, 2, widths, TG_ACT_TANH, 3, TG_LOSS_CE));
    if (m) CHECK_OK(tg_mlp_init(m, &g));
    return m;
}

/* max|a − b| / max|a| per tensor: relative to the tensor's scale, since
 * single elements near 0 (biases) have no meaningful relative error. */
static double max_rel(const tg_mlp *a, const tg_mlp *b) {
    tg_tensor *pa[8], *pb[8];
    int n = tg_mlp_params(a, pa, 8);
    tg_mlp_params(b, pb, 8);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double diff = 0, scale = 0;
        for (size_t j = 0; j < pa[i]->size; j++) {
            diff = fmax(diff, fabs(tg_get(pa[i], j) - tg_get(pb[i], j)));
            scale = fmax(scale, fabs(tg_get(pa[i], j)));
        }
        worst = fmax(worst, diff / (scale > 0 ? scale : 1));
    }
    return worst;
}

static void equivalence(tg_dist *d, tg_dtype dt, double tol, const double *x, const double *y,
                        tg_opt_kind kind) {
    int rank = tg_dist_rank(d);
    tg_mlp *one = mlp(dt, 16, 1), *two = mlp(dt, 16, rank == 0 ? 1 : 99);
    if (!one || !two) return;
    double l1 = run(NULL, one, x, y, kind);
    double l2 = run(d, two, x, y, kind);
    double rel = max_rel(one, two);
    /* The only difference is the order of the batch sum (two halves, each
     * scaled by 2/B, added, halved, against one BLAS sum scaled by 1/B):
     * a few ulps per step, which 50 Adam steps (lr 1e-3, updates ~lr·O(1))
     * keep far below the 1e-5 (float32, ulp 6e-8) and 1e-12
     * (float64, ulp 1.1e-16) relative. */
    CHECK(rel <= tol, "%s %s: 2 ranks vs 1 process: max relative difference %.3g > %g",
          dt == TG_F32 ? "float32" : "float64", kind == TG_OPT_SGD ? "sgd" : "adam", rel, tol);
    CHECK_CLOSE(l1, l2, tol * 10); /* the last loss: one more rounding of a mean */
    printf("rank %d: %s %s: parameters differ by %.3g relative after %d steps\n", rank,
           dt == TG_F32 ? "float32" : "float64", kind == TG_OPT_SGD ? "sgd" : "adam", rel, STEPS);
    tg_mlp_free(one);
    tg_mlp_free(two);
}

static void bad_use(tg_dist *d) {
    int rank = tg_dist_rank(d);
    /* Rank 1 builds a narrower model: both ranks fail, naming both shapes. */
    tg_mlp *m = mlp(TG_F32, rank == 0 ? 16 : 12, 1);
    tg_tensor *params[8];
    int np = tg_mlp_params(m, params, 8);
    EXPECT_ERR(tg_dist_attach(d, np, params, 0), TG_ERR_SHAPE,
               "tensor 0 is (8x16) float32 on rank 0, (8x12) float32 on rank 1");
    /* A different number of tensors. */
    EXPECT_ERR(tg_dist_attach(d, rank == 0 ? np : np - 2, params, 0), TG_ERR_SHAPE,
               "rank 0 has 6 tensors, rank 1 has 4");
    tg_mlp_free(m);
    /* The communicator still works after a shape error (every rank agreed). */
    double v[2] = {1.0, (double)rank};
    CHECK_OK(tg_dist_sum(d, v, 2));
    CHECK(v[0] == 2.0 && v[1] == 1.0, "sum: %g %g", v[0], v[1]);
    EXPECT_ERR(tg_dist_check_batch(d, 33), TG_ERR_ARG, "33 is not divisible by the 2 ranks");
    EXPECT_ERR(tg_dist_check_batch(d, rank == 0 ? 32 : 64), TG_ERR_ARG,
               "the batch size differs across ranks (32 to 64)");
    CHECK_OK(tg_dist_check_batch(d, 64));
    /* Another tapegrad version on rank 1: init fails everywhere. */
    tg_dist *other = NULL;
    EXPECT_ERR(tg_dist_init_as(&other, MPI_COMM_WORLD, rank == 1 ? "0.0.9" : "0.1.0"), TG_ERR_STATE,
               "versions differ across ranks: rank 0 has 0.1.0, rank 1 has 0.0.9");
    CHECK(other == NULL, "a failed init returns no handle");
}

static void shards(tg_dist *d) {
    for (size_t rows = 0; rows < 40; rows++) {
        size_t first, count;
        tg_dist_shard(d, rows, &first, &count);
        /* Every rank's (first, count): contiguous, disjoint, covering. */
        double v[2] = {(double)count, (double)(first * 1000 + count)};
        CHECK_OK(tg_dist_sum(d, v, 2));
        CHECK(v[0] == (double)rows, "rows %zu: shard sizes add to %g", rows, v[0]);
        size_t p = (size_t)tg_dist_size(d), r = (size_t)tg_dist_rank(d);
        CHECK(first == r * (rows / p) + (r < rows % p ? r : rows % p), "rows %zu: first %zu", rows,
              first);
    }
}

/* A program's own communicator (ranks in reverse order): tapegrad uses its
 * ranks, and freeing the handle leaves MPI (initialised by the first
 * handle) and the program's communicator usable. */
static void own_comm(tg_dist *world) {
    int wr = tg_dist_rank(world), ws = tg_dist_size(world);
    MPI_Comm mine;
    CHECK(MPI_Comm_split(MPI_COMM_WORLD, 0, ws - 1 - wr, &mine) == MPI_SUCCESS, "split");
    tg_dist *d = NULL;
    CHECK_OK(tg_dist_init(&d, mine));
    if (!d) return;
    CHECK(tg_dist_rank(d) == ws - 1 - wr, "rank %d in the reversed communicator", tg_dist_rank(d));
    double v[1] = {(double)tg_dist_rank(d)};
    CHECK_OK(tg_dist_sum(d, v, 1));
    CHECK(v[0] == ws * (ws - 1) / 2.0, "sum of ranks %g", v[0]);
    tg_dist_free(d);
    int n = 0;
    CHECK(MPI_Comm_size(mine, &n) == MPI_SUCCESS && n == ws, "the program's communicator");
    MPI_Comm_free(&mine);
}

int main(void) {
    tg_dist *d = NULL;
    CHECK_OK(tg_dist_init(&d, MPI_COMM_NULL));
    if (!d) return check_summary();
    CHECK(tg_dist_size(d) == 2, "run with mpirun -np 2, not %d", tg_dist_size(d));
    tg_dist_set_timeout(d, 60); /* a loaded machine: generous, but finite */
    static double x[N_DATA * D_IN], y[N_DATA];
    make_data(x, y);
    if (tg_dist_size(d) == 2) {
        equivalence(d, TG_F32, 1e-5, x, y, TG_OPT_ADAM);
        equivalence(d, TG_F64, 1e-12, x, y, TG_OPT_ADAM);
        /* Adam's update barely depends on the gradient's scale (m/√v): a
         * wrong 1/size would pass in float32. SGD's is proportional to it. */
        equivalence(d, TG_F32, 1e-5, x, y, TG_OPT_SGD);
        bad_use(d);
        shards(d);
        own_comm(d);
    }
    tg_dist_free(d);
    return check_summary();
}
