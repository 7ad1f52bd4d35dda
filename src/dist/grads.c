/* Parameters across ranks: the shape check, the broadcast from rank 0, the
 * bucketed gradient allreduce, metric sums and batch sharding. */
#include "../tape/internal.h"
#include "dist_internal.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- shapes */

/* Each rank's parameters in a fixed-size record, gathered by every rank:
 * all ranks then see the same table and fail, or not, together. The first
 * DESC_SHAPES shapes are sent whole, to name the differing tensor. */
#define DESC_SHAPES 32
typedef struct desc {
    int64_t n, elems;
    uint64_t hash;                               /* of every tensor's dtype and shape */
    int64_t shape[DESC_SHAPES][TG_MAX_RANK + 2]; /* dtype, rank, dims */
} desc;

static uint64_t mix(uint64_t h, uint64_t v) {
    return (h ^ v) * 1099511628211ull;
}

static void describe(desc *ds, int n, tg_tensor *const *p) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->hash = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        ds->elems += (int64_t)p[i]->size;
        ds->hash = mix(mix(ds->hash, (uint64_t)p[i]->dtype), (uint64_t)p[i]->rank);
        for (int k = 0; k < p[i]->rank; k++)
            ds->hash = mix(ds->hash, p[i]->shape[k]);
        if (i >= DESC_SHAPES) continue;
        ds->shape[i][0] = p[i]->dtype;
        ds->shape[i][1] = p[i]->rank;
        for (int k = 0; k < p[i]->rank; k++)
            ds->shape[i][2 + k] = (int64_t)p[i]->shape[k];
    }
}

static const char *row_str(const int64_t *row, char *buf, size_t len) {
    size_t at = (size_t)snprintf(buf, len, "(");
    for (int k = 0; k < row[1] && k < TG_MAX_RANK && at < len; k++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", k ? "x" : "", (long long)row[2 + k]);
    if (at < len) snprintf(buf + at, len - at, ") %s", row[0] == TG_F64 ? "float64" : "float32");
    return buf;
}

static tg_status compare(const desc *all, int size) {
    const desc *a = &all[0];
    for (int r = 1; r < size; r++) {
        const desc *b = &all[r];
        if (b->n == a->n && b->hash == a->hash && b->elems == a->elems) continue;
        if (b->n != a->n)
            return tg_fail(TG_ERR_SHAPE,
                           "dist: parameters differ across ranks: rank 0 has %lld tensors, rank "
                           "%d has %lld",
                           (long long)a->n, r, (long long)b->n);
        for (int i = 0; i < DESC_SHAPES && i < a->n; i++)
            if (memcmp(a->shape[i], b->shape[i], sizeof a->shape[i])) {
                char s0[128], s1[128];
                return tg_fail(TG_ERR_SHAPE,
                               "dist: parameters differ across ranks: tensor %d is %s on rank 0, "
                               "%s on rank %d",
                               i, row_str(a->shape[i], s0, sizeof s0),
                               row_str(b->shape[i], s1, sizeof s1), r);
            }
        return tg_fail(TG_ERR_SHAPE,
                       "dist: parameters differ across ranks: rank 0 has %lld values, rank %d "
                       "has %lld (in a tensor after the %dth)",
                       (long long)a->elems, r, (long long)b->elems, DESC_SHAPES);
    }
    return TG_OK;
}

static tg_status check_shapes(tg_dist *d, int n, tg_tensor *const *p) {
    desc mine, *all = tg_malloc((size_t)d->size * sizeof *all);
    if (!all) return tg_fail(TG_ERR_NOMEM, "dist: attach: out of memory");
    describe(&mine, n, p);
    MPI_Request req;
    int rc = MPI_Iallgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE,
                            d->comm, &req);
    tg_status s = rc == MPI_SUCCESS ? dist_wait(d, &req, "attach: shape check")
                                    : dist_mpi_fail(d, rc, "attach: shape check");
    if (!s) s = compare(all, d->size);
    tg_free(all);
    return s;
}

/* ---------------------------------------------------------------- broadcast */

tg_status tg_dist_broadcast(tg_dist *d, int n, tg_tensor *const *t) {
    if (!d || n < 0 || (n && !t)) return tg_fail(TG_ERR_ARG, "dist: broadcast: bad arguments");
    if (d->broken) return tg_fail(TG_ERR_STATE, "dist: broadcast: an earlier collective failed");
    for (int i = 0; i < n; i++) {
        if (!t[i] || t[i]->size > (size_t)INT32_MAX)
            return tg_fail(TG_ERR_ARG, "dist: broadcast: tensor %d is NULL or too large", i);
        MPI_Request req;
        int rc =
            MPI_Ibcast(t[i]->data, (int)t[i]->size, dist_mpi_type(t[i]->dtype), 0, d->comm, &req);
        tg_status s =
            rc == MPI_SUCCESS ? dist_wait(d, &req, "broadcast") : dist_mpi_fail(d, rc, "broadcast");
        if (s) return s;
    }
    return TG_OK;
}

/* ---------------------------------------------------------------- buckets */

void dist_buckets_free(tg_dist *d) {
    for (int b = 0; b < d->n_buckets; b++)
        tg_free(d->buckets[b].buf);
    tg_free(d->buckets);
    tg_free(d->params);
    d->buckets = NULL;
    d->params = NULL;
    d->n_buckets = d->n_params = 0;
}

/* Consecutive tensors of one dtype share a bucket until it holds cap bytes;
 * one MPI_Allreduce per bucket amortises MPI's per-call latency (a few µs
 * on shared memory, tens over a network) over many small tensors (biases). */
static tg_status buckets_make(tg_dist *d, int n, tg_tensor *const *p, size_t cap) {
    d->params = tg_malloc((size_t)(n ? n : 1) * sizeof *d->params);
    d->buckets = tg_calloc((size_t)(n ? n : 1), sizeof *d->buckets); /* at most one each */
    if (!d->params || !d->buckets) return tg_fail(TG_ERR_NOMEM, "dist: attach: out of memory");
    memcpy(d->params, p, (size_t)n * sizeof *p);
    d->n_params = n;
    for (int i = 0; i < n; i++) {
        size_t es = p[i]->dtype == TG_F64 ? 8 : 4;
        dist_bucket *cur = d->n_buckets ? &d->buckets[d->n_buckets - 1] : NULL;
        if (!cur || cur->dtype != p[i]->dtype || (cur->n + p[i]->size) * es > cap) {
            cur = &d->buckets[d->n_buckets++];
            cur->dtype = p[i]->dtype;
            cur->first = i;
        }
        cur->count++;
        cur->n += p[i]->size;
    }
    for (int b = 0; b < d->n_buckets; b++) {
        dist_bucket *k = &d->buckets[b];
        size_t es = k->dtype == TG_F64 ? 8 : 4;
        if (k->n + 1 > (size_t)INT32_MAX)
            return tg_fail(TG_ERR_ARG, "dist: attach: a tensor of %zu values is too large", k->n);
        k->buf = tg_malloc((k->n + 1) * es); /* + 1: bucket 0 carries the loss */
        if (!k->buf) return tg_fail(TG_ERR_NOMEM, "dist: attach: out of memory");
    }
    return TG_OK;
}

tg_status tg_dist_attach(tg_dist *d, int n, tg_tensor *const *p, size_t bucket_bytes) {
    if (!d || n < 0 || (n && !p)) return tg_fail(TG_ERR_ARG, "dist: attach: bad arguments");
    if (d->broken) return tg_fail(TG_ERR_STATE, "dist: attach: an earlier collective failed");
    for (int i = 0; i < n; i++)
        if (!p[i] || p[i]->kind != TG_PARAM || !p[i]->grad)
            return tg_fail(TG_ERR_ARG, "dist: attach: tensor %d is not a parameter", i);
    dist_buckets_free(d);
    tg_status s = check_shapes(d, n, p);
    if (!s) s = tg_dist_broadcast(d, n, p);
    if (!s) s = buckets_make(d, n, p, bucket_bytes ? bucket_bytes : (size_t)4 << 20);
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tg_last_error());
        dist_buckets_free(d);
        tg_fail(s, "%s", msg);
    }
    return s;
}

/* ---------------------------------------------------------------- allreduce */

/* Copy the bucket's gradients in (times pre; zeros when skip), or out
 * (times post). */
static void pack(dist_bucket *k, tg_tensor *const *p, double pre, int skip) {
    size_t at = 0, es = k->dtype == TG_F64 ? 8 : 4;
    for (int i = k->first; i < k->first + k->count; i++) {
        char *dst = (char *)k->buf + at * es;
        if (skip)
            memset(dst, 0, p[i]->size * es);
        else if (pre == 1.0)
            memcpy(dst, p[i]->grad, p[i]->size * es);
        else if (k->dtype == TG_F64)
            for (size_t j = 0; j < p[i]->size; j++)
                ((double *)dst)[j] = ((const double *)p[i]->grad)[j] * pre;
        else
            for (size_t j = 0; j < p[i]->size; j++)
                ((float *)dst)[j] = (float)(((const float *)p[i]->grad)[j] * pre);
        at += p[i]->size;
    }
}

static void unpack(const dist_bucket *k, tg_tensor *const *p, double post) {
    size_t at = 0;
    for (int i = k->first; i < k->first + k->count; i++) {
        if (k->dtype == TG_F64) {
            const double *src = (const double *)k->buf + at;
            for (size_t j = 0; j < p[i]->size; j++)
                ((double *)p[i]->grad)[j] = src[j] * post;
        } else {
            const float *src = (const float *)k->buf + at;
            float f = (float)post; /* 1/size: exact for a power of two */
            for (size_t j = 0; j < p[i]->size; j++)
                ((float *)p[i]->grad)[j] = src[j] * f;
        }
        at += p[i]->size;
    }
}

static void slot_set(dist_bucket *k, double v) {
    if (k->dtype == TG_F64)
        ((double *)k->buf)[k->n] = v;
    else
        ((float *)k->buf)[k->n] = (float)v;
}

static double slot_get(const dist_bucket *k) {
    return k->dtype == TG_F64 ? ((const double *)k->buf)[k->n] : ((const float *)k->buf)[k->n];
}

#define MAX_INFLIGHT 64

tg_status tg_dist_allreduce_grads(tg_dist *d, size_t local_rows, size_t global_rows, double *loss) {
    if (!d) return tg_fail(TG_ERR_ARG, "dist: allreduce: NULL");
    if (d->broken) return tg_fail(TG_ERR_STATE, "dist: allreduce: an earlier collective failed");
    if (local_rows > global_rows)
        return tg_fail(TG_ERR_ARG, "dist: allreduce: local rows %zu > global rows %zu", local_rows,
                       global_rows);
    int sum_mode = global_rows == 0;
    int skip = !sum_mode && local_rows == 0;
    /* Σ_k r_k·g_k / R = (1/p)·Σ_k (r_k·p/R)·g_k: pre-scale unequal shards so
     * that the reduction itself stays DDP's sum-then-1/p (pre = 1 when equal). */
    double pre = sum_mode || local_rows * (size_t)d->size == global_rows
                     ? 1.0
                     : (double)local_rows * d->size / (double)global_rows;
    double post = sum_mode ? 1.0 : 1.0 / d->size;
    MPI_Request reqs[MAX_INFLIGHT];
    int inflight = 0;
    tg_status s = TG_OK;
    /* Bucket 0 always exists to carry the loss, even with no parameters. */
    dist_bucket none = {TG_F64, 0, 0, 0, NULL};
    double none_buf[1];
    dist_bucket *buckets = d->n_buckets ? d->buckets : &none;
    int nb = d->n_buckets ? d->n_buckets : 1;
    if (!d->n_buckets) none.buf = none_buf;
    for (int b = 0; !s && b < nb; b++) {
        dist_bucket *k = &buckets[b];
        pack(k, d->params, pre, skip);
        int extra = b == 0;
        if (extra) slot_set(k, skip || !loss ? 0.0 : *loss * pre);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, k->buf, (int)(k->n + (size_t)extra),
                                dist_mpi_type(k->dtype), MPI_SUM, d->comm, &reqs[inflight++]);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(d, rc, "allreduce of gradients");
        /* Packing the next bucket overlaps this one's transfer. */
        if (inflight == MAX_INFLIGHT || b == nb - 1) {
            s = dist_wait_all(d, inflight, reqs, "allreduce of gradients");
            inflight = 0;
        }
    }
    if (s) return s;
    for (int b = 0; b < d->n_buckets; b++)
        unpack(&d->buckets[b], d->params, post);
    if (loss) *loss = slot_get(&buckets[0]) * post;
    return TG_OK;
}

/* ---------------------------------------------------------------- metrics, batches */

tg_status tg_dist_sum(tg_dist *d, double *v, int n) {
    if (!d || n < 0 || (n && !v)) return tg_fail(TG_ERR_ARG, "dist: sum: bad arguments");
    if (d->broken) return tg_fail(TG_ERR_STATE, "dist: sum: an earlier collective failed");
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm, &req);
    return rc == MPI_SUCCESS ? dist_wait(d, &req, "sum of metrics")
                             : dist_mpi_fail(d, rc, "sum of metrics");
}

void tg_dist_shard(const tg_dist *d, size_t rows, size_t *first, size_t *count) {
    size_t p = (size_t)tg_dist_size(d), r = (size_t)tg_dist_rank(d);
    size_t base = rows / p, extra = rows % p;
    *first = r * base + (r < extra ? r : extra);
    *count = base + (r < extra);
}

tg_status tg_dist_check_batch(tg_dist *d, size_t batch) {
    if (!d) return tg_fail(TG_ERR_ARG, "dist: batch check: NULL");
    if (d->broken) return tg_fail(TG_ERR_STATE, "dist: batch check: an earlier collective failed");
    long long mm[2] = {(long long)batch, -(long long)batch}; /* max, −min in one call */
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, mm, 2, MPI_LONG_LONG, MPI_MAX, d->comm, &req);
    tg_status s =
        rc == MPI_SUCCESS ? dist_wait(d, &req, "batch check") : dist_mpi_fail(d, rc, "batch check");
    if (s) return s;
    if (mm[0] != -mm[1])
        return tg_fail(TG_ERR_ARG, "dist: the batch size differs across ranks (%lld to %lld)",
                       -mm[1], mm[0]);
    if (batch == 0 || batch % (size_t)d->size)
        return tg_fail(TG_ERR_ARG,
                       "dist: the global batch %zu is not divisible by the %d ranks; use a "
                       "multiple of %d",
                       batch, d->size, d->size);
    return TG_OK;
}
