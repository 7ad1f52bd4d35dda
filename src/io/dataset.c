/* Data sets in memory: classes, standardisation, shuffling, splitting, and
 * copying mini-batches into tensors. */
#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <math.h>
#include <string.h>

void tg_dataset_free(tg_dataset *ds) {
    if (!ds) return;
    tg_free(ds->x);
    tg_free(ds->y);
    memset(ds, 0, sizeof *ds);
}

int tg_dataset_classes(const tg_dataset *ds) {
    if (!ds || !ds->y || ds->n == 0) return 0;
    double top = 0;
    for (size_t i = 0; i < ds->n; i++) {
        double v = ds->y[i];
        /* The negated test also catches NaN. */
        if (!(v >= 0 && v < 1000) || v != floor(v)) return 0;
        top = v > top ? v : top;
    }
    return (int)top + 1;
}

/* ---------------------------------------------------------------- standardisation */

tg_status tg_standardize_fit(const tg_dataset *ds, double *mean, double *std) {
    if (!ds || !mean || !std) return tg_fail(TG_ERR_ARG, "standardize: NULL argument");
    if (ds->n == 0 || ds->d == 0 || !ds->x)
        return tg_fail(TG_ERR_VALUE, "standardize: the data set is empty");
    size_t n = ds->n, d = ds->d;
    const double *x = ds->x;
    /* Shifted two-pass: sums of x − x[0] make a constant feature's mean
     * exactly its value and its variance exactly 0 (so std 1), where the
     * plain Σx/n can round to a value that leaves a tiny false variance. */
    for (size_t j = 0; j < d; j++)
        mean[j] = 0, std[j] = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += x[i * d + j] - x[j];
    for (size_t j = 0; j < d; j++)
        mean[j] = x[j] + mean[j] / (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double e = x[i * d + j] - mean[j];
            std[j] += e * e;
        }
    for (size_t j = 0; j < d; j++) {
        std[j] = sqrt(std[j] / (double)n); /* population formula */
        if (std[j] == 0) std[j] = 1;
        if (!isfinite(mean[j]) || !isfinite(std[j]))
            return tg_fail(TG_ERR_NUMERIC, "standardize: feature %zu has mean %g and std %g", j,
                           mean[j], std[j]);
    }
    return TG_OK;
}

void tg_standardize_apply(tg_dataset *ds, const double *mean, const double *std) {
    if (!ds || !ds->x || !mean || !std) return;
    for (size_t i = 0; i < ds->n; i++)
        for (size_t j = 0; j < ds->d; j++)
            ds->x[i * ds->d + j] = (ds->x[i * ds->d + j] - mean[j]) / std[j];
}

/* ---------------------------------------------------------------- shuffle and split */

/* A uniform integer in [0, bound): rejecting the lowest 2^64 mod bound
 * draws leaves a range that is a multiple of bound, so the modulo is
 * unbiased. The expected number of draws is below 2. */
static uint64_t below(tg_rng *rng, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = tg_rng_next(rng);
        if (r >= threshold) return r % bound;
    }
}

void tg_shuffle(size_t *idx, size_t n, tg_rng *rng) {
    if (!idx || !rng) return;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)below(rng, (uint64_t)i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* Copies the examples idx[0..n) of src into dst. */
static tg_status gather(const tg_dataset *src, const size_t *idx, size_t n, tg_dataset *dst) {
    memset(dst, 0, sizeof *dst);
    dst->d = src->d;
    if (n == 0) return TG_OK;
    size_t d = src->d;
    dst->x = tg_malloc(n * d * sizeof(double));
    dst->y = tg_malloc(n * sizeof(double));
    if (!dst->x || !dst->y) {
        tg_dataset_free(dst);
        return tg_fail(TG_ERR_NOMEM, "split: out of memory for %zu examples", n);
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(dst->x + i * d, src->x + idx[i] * d, d * sizeof(double));
        dst->y[i] = src->y[idx[i]];
    }
    dst->n = n;
    return TG_OK;
}

static tg_status check_frac(const char *name, double f) {
    if (!(f >= 0 && f < 1)) /* negated so that NaN fails */
        return tg_fail(TG_ERR_VALUE, "split: %s fraction %g outside [0, 1)", name, f);
    return TG_OK;
}

/* Rounded split sizes; a split asked for (fraction > 0) must not be empty,
 * and neither may the training set. */
static tg_status split_sizes(size_t n, double vf, double tf, size_t *nv, size_t *nt) {
    tg_status st;
    if ((st = check_frac("validation", vf)) || (st = check_frac("test", tf))) return st;
    if (!(vf + tf < 1))
        return tg_fail(TG_ERR_VALUE, "split: validation + test fractions %g + %g must be < 1", vf,
                       tf);
    *nv = (size_t)llround(vf * (double)n);
    *nt = (size_t)llround(tf * (double)n);
    if ((vf > 0 && *nv == 0) || (tf > 0 && *nt == 0))
        return tg_fail(TG_ERR_VALUE, "split: %g of %zu examples is an empty %s set",
                       *nv == 0 && vf > 0 ? vf : tf, n, *nv == 0 && vf > 0 ? "validation" : "test");
    if (*nv + *nt >= n)
        return tg_fail(TG_ERR_VALUE, "split: %zu examples leave an empty training set", n);
    return TG_OK;
}

tg_status tg_dataset_split(const tg_dataset *all, double val_frac, double test_frac, uint64_t seed,
                           tg_dataset *train, tg_dataset *val, tg_dataset *test) {
    if (!all || !train) return tg_fail(TG_ERR_ARG, "split: data set or train is NULL");
    if ((val_frac != 0 && !val) || (test_frac != 0 && !test))
        return tg_fail(TG_ERR_ARG, "split: a nonzero fraction needs its output");
    memset(train, 0, sizeof *train); /* outputs are empty unless the split succeeds */
    if (val) memset(val, 0, sizeof *val);
    if (test) memset(test, 0, sizeof *test);
    if (all->n && (!all->x || !all->y)) return tg_fail(TG_ERR_ARG, "split: data set has no data");
    size_t n = all->n, nv = 0, nt = 0;
    tg_status st = split_sizes(n, val_frac, test_frac, &nv, &nt);
    if (st) return st;
    size_t *idx = tg_malloc(n * sizeof *idx);
    if (!idx) return tg_fail(TG_ERR_NOMEM, "split: out of memory for %zu indices", n);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_shuffle(idx, n, &rng);
    tg_dataset tr = {0}, va = {0}, te = {0};
    size_t ntr = n - nv - nt;
    st = gather(all, idx, ntr, &tr);
    if (!st) st = gather(all, idx + ntr, nv, &va);
    if (!st) st = gather(all, idx + ntr + nv, nt, &te);
    tg_free(idx);
    if (st) { /* a failed gather leaves its output empty */
        tg_dataset_free(&tr);
        tg_dataset_free(&va);
        tg_dataset_free(&te);
        return st;
    }
    *train = tr;
    if (val) *val = va;
    if (test) *test = te;
    return TG_OK;
}

/* ---------------------------------------------------------------- batches */

static tg_status check_batch(const tg_dataset *ds, const size_t *idx, size_t start, size_t rows,
                             const tg_tensor *x, const tg_tensor *y) {
    if (!ds || !ds->x || !ds->y || !x || !y || !x->data || !y->data)
        return tg_fail(TG_ERR_ARG, "batch_fill: NULL argument");
    if (x->dtype != y->dtype)
        return tg_fail(TG_ERR_DTYPE, "batch_fill: mixed dtypes: x is %s, y is %s",
                       x->dtype == TG_F32 ? "f32" : "f64", y->dtype == TG_F32 ? "f32" : "f64");
    char b[64];
    /* x may be rows × any example shape of d elements (N×C×H×W for a CNN):
     * row-major, each example's d values are contiguous either way. */
    if (x->rank < 2 || x->shape[0] != rows || x->size / (rows ? rows : 1) != ds->d)
        return tg_fail(TG_ERR_SHAPE, "batch_fill: x is %s, expected (%zux%zu) or (%zux...) of %zu",
                       tg_shape_str(x, b, sizeof b), rows, ds->d, rows, ds->d);
    if (y->size != rows)
        return tg_fail(TG_ERR_SHAPE, "batch_fill: y is %s, expected %zu elements",
                       tg_shape_str(y, b, sizeof b), rows);
    if (start > SIZE_MAX - rows) return tg_fail(TG_ERR_VALUE, "batch_fill: start + rows overflows");
    if (!idx && start + rows > ds->n)
        return tg_fail(TG_ERR_VALUE, "batch_fill: rows %zu..%zu out of range for %zu examples",
                       start, start + rows, ds->n);
    for (size_t i = 0; idx && i < rows; i++)
        if (idx[start + i] >= ds->n)
            return tg_fail(TG_ERR_VALUE, "batch_fill: index %zu out of range for %zu examples",
                           idx[start + i], ds->n);
    return TG_OK;
}

/* Rows [lo, hi) of a batch. */
typedef struct fill_job {
    const tg_dataset *ds;
    const size_t *idx;
    size_t start, rows;
    tg_tensor *x, *y;
} fill_job;

/* Gathering random rows is bound by memory latency, not bandwidth: each
 * row (6 KiB for Fashion-MNIST) starts in a page whose translation and
 * first lines miss, and the hardware prefetcher follows a stream only
 * within a 4 KiB page. So before copying row i, one line per 2 KiB of row
 * i + FILL_AHEAD is requested: the next rows' misses overlap this row's
 * copy. bench_fill, 128 rows, alternated runs: 2 threads 70–72 → 47–53
 * µs, 1 thread 129–138 → 84–90 µs (benches/RESULTS.md, stop 10). Every
 * line of the next row requested instead was slower than none (stop 9):
 * it fills the miss queue; requests spread over the copy of row i (one
 * per 2 KiB copied) came too late: 1 thread 112 µs. */
#define FILL_AHEAD   3
#define FILL_PF_STEP 256 /* elements: 2 KiB of doubles */

/* The data set's example behind row i of the batch. */
static size_t example_of(const fill_job *j, size_t i) {
    return j->idx ? j->idx[j->start + i] : j->start + i;
}

static void fill_part(void *ctx, int part, int parts) {
    const fill_job *j = ctx;
    size_t d = j->ds->d, lo, hi;
    /* cut as the matrix products cut their rows (align 16), so that the
     * thread that fills rows of X is the one that multiplies them */
    tg_part_range(j->rows, part, parts, 16, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        /* row i + FILL_AHEAD; at the first row, the rows up to it as well */
        for (size_t a = i == lo ? i : i + FILL_AHEAD; a <= i + FILL_AHEAD && a < hi; a++) {
            const double *ahead = j->ds->x + example_of(j, a) * d;
            for (size_t c = 0; c < d; c += FILL_PF_STEP)
                __builtin_prefetch(ahead + c);
        }
        size_t k = example_of(j, i);
        const double *src = j->ds->x + k * d;
        if (j->x->dtype == TG_F64) {
            memcpy((double *)j->x->data + i * d, src, d * sizeof(double));
            ((double *)j->y->data)[i] = j->ds->y[k];
        } else {
            float *dst = (float *)j->x->data + i * d;
            for (size_t c = 0; c < d; c++)
                dst[c] = (float)src[c];
            ((float *)j->y->data)[i] = (float)j->ds->y[k];
        }
    }
}

/* idx NULL means the examples start .. start+rows in order. Gathering rows
 * from a large data set is bound by memory latency: the pool's threads
 * (tg_set_threads) gather their parts at once. */
tg_status tg_batch_fill(const tg_dataset *ds, const size_t *idx, size_t start, size_t rows,
                        tg_tensor *x, tg_tensor *y) {
    tg_status st = check_batch(ds, idx, start, rows, x, y);
    if (st) return st;
    fill_job j = {ds, idx, start, rows, x, y};
    tg_parallel(fill_part, &j, rows >= 32 ? tg_get_threads() : 1);
    return TG_OK;
}
