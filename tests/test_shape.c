/* Shape, indexing and randomness ops (issue 14) against naive references
 * written here with explicit index arithmetic (unravel the output's flat
 * index, map the coordinates, ravel into the input), on shapes up to rank
 * 6 and beyond; both maps: gradcheck and the adjoint identity on rank-6
 * cases (test_ops covers every op's sample too), and r-maps by hand where
 * they scatter (gather and embedding with duplicate indices, broadcast
 * sums); concat and stack of 1, 2, 3 and 100 inputs; the error messages;
 * dropout's mask statistics and reproducibility; argmax, one_hot and
 * detach giving no gradient. Values are exact copies: compared with ==. */
#include "check.h"
#include "tapegrad.h"

#include <limits.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- helpers */

/* A leaf of the given shape holding 1, 2, 3, … (distinct and exact in f32). */
static tg_tensor *seq(tg_dtype dt, int rank, const size_t *shape, int param) {
    tg_tensor *x = NULL;
    CHECK_OK(param ? tg_param_new(&x, dt, rank, shape) : tg_tensor_new(&x, dt, rank, shape));
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, (double)i + 1);
    return x;
}

/* A leaf holding the given values. */
static tg_tensor *leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, int param) {
    tg_tensor *x = NULL;
    CHECK_OK(param ? tg_param_new(&x, dt, rank, shape) : tg_tensor_new(&x, dt, rank, shape));
    if (x) CHECK_OK(tg_fill(x, v, x->size));
    return x;
}

static void unravel(size_t i, int rank, const size_t *shape, size_t *idx) {
    for (int a = rank - 1; a >= 0; a--)
        idx[a] = i % shape[a], i /= shape[a];
}

static size_t ravel(const size_t *idx, int rank, const size_t *shape) {
    size_t i = 0;
    for (int a = 0; a < rank; a++)
        i = i * shape[a] + idx[a];
    return i;
}

static double grad_at(const tg_tensor *p, size_t i) {
    return p->dtype == TG_F32 ? ((const float *)p->grad)[i] : ((const double *)p->grad)[i];
}

/* Backward with seed ζ_k = k + 1 (in y's dtype). */
static void backward_ramp(tg_tape *t, const tg_tensor *y) {
    void *seed = malloc(y->size * (y->dtype == TG_F32 ? 4 : 8));
    for (size_t k = 0; k < y->size; k++) {
        if (y->dtype == TG_F32)
            ((float *)seed)[k] = (float)k + 1;
        else
            ((double *)seed)[k] = (double)k + 1;
    }
    CHECK_OK(tg_backward_seed(t, y, seed));
    free(seed);
}

/* gradcheck and the adjoint identity of y w.r.t. the float64 params. */
static void check_maps(tg_tape *t, const tg_tensor *y, int np, tg_tensor **p, const char *what) {
    tg_check_report r;
    tg_status s = tg_gradcheck(t, y, np, p, NULL, &r);
    CHECK(s == TG_OK, "%s: gradcheck: %s", what, tg_last_error());
    s = tg_adjoint_check(t, y, np, p, NULL, &r);
    CHECK(s == TG_OK, "%s: adjoint: %s", what, tg_last_error());
}

static int same_shape(const tg_tensor *y, int rank, const size_t *shape) {
    if (!y || y->rank != rank) return 0;
    for (int a = 0; a < rank; a++)
        if (y->shape[a] != shape[a]) return 0;
    return 1;
}

/* ---------------------------------------------------------------- views */

static void test_views(void) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y, *z;
        size_t s6[6] = {2, 1, 3, 1, 2, 2};
        tg_tensor *x = seq((tg_dtype)dt, 6, s6, 1);
        CHECK_OK(tg_tape_new(&t));
        long sh[3] = {4, -1, 2};
        CHECK_OK(tg_reshape(t, x, 3, sh, &y));
        CHECK(same_shape(y, 3, (size_t[]){4, 3, 2}), "reshape (4x-1x2)");
        for (size_t i = 0; y && i < y->size; i++)
            CHECK(tg_get(y, i) == (double)i + 1, "reshape element %zu", i);
        CHECK_OK(tg_flatten(t, x, 1, -3, &z)); /* 2x(1·3·1)x2x2 */
        CHECK(same_shape(z, 4, (size_t[]){2, 3, 2, 2}), "flatten(1, -3)");
        CHECK_OK(tg_squeeze(t, x, 1, &z));
        CHECK(same_shape(z, 5, (size_t[]){2, 3, 1, 2, 2}), "squeeze(1)");
        CHECK_OK(tg_squeeze(t, x, 0, &z)); /* size 2: unchanged, as torch */
        CHECK(same_shape(z, 6, s6), "squeeze of a size-2 axis");
        CHECK_OK(tg_unsqueeze(t, x, -1, &z));
        CHECK(same_shape(z, 7, (size_t[]){2, 1, 3, 1, 2, 2, 1}), "unsqueeze(-1)");
        CHECK_OK(tg_unsqueeze(t, z, 0, &z));
        CHECK(z && z->rank == 8, "unsqueeze to rank 8");
        EXPECT_ERR(tg_unsqueeze(t, z, 0, &y), TG_ERR_SHAPE, "unsqueeze: dim 0 out of range");
        long two[3] = {2, -1, -1}, bad[2] = {5, 5}, zero[2] = {0, 24};
        EXPECT_ERR(tg_reshape(t, x, 3, two, &y), TG_ERR_SHAPE,
                   "reshape: shape (2x-1x-1) is invalid for input of size 24 (2x1x3x1x2x2)");
        EXPECT_ERR(tg_reshape(t, x, 2, bad, &y), TG_ERR_SHAPE, "shape (5x5) is invalid");
        EXPECT_ERR(tg_reshape(t, x, 2, zero, &y), TG_ERR_SHAPE, "shape (0x24) is invalid");
        EXPECT_ERR(tg_reshape(t, x, 9, sh, &y), TG_ERR_ARG, "reshape: 9 values");
        EXPECT_ERR(tg_flatten(t, x, 3, 1, &y), TG_ERR_ARG,
                   "flatten: start_dim 3 and end_dim 1 are not axes in order");
        EXPECT_ERR(tg_squeeze(t, x, 6, &y), TG_ERR_ARG, "squeeze: dim 6 out of range");
        /* a scalar flattens to (1) */
        tg_tensor *s0 = seq((tg_dtype)dt, 0, NULL, 1);
        CHECK_OK(tg_flatten(t, s0, 0, -1, &y));
        CHECK(same_shape(y, 1, (size_t[]){1}), "flatten of a scalar");
        /* both maps through reshape → flatten → squeeze (rank 6) */
        if (dt == TG_F64) {
            CHECK_OK(tg_reshape(t, x, 3, sh, &y));
            CHECK_OK(tg_flatten(t, y, 0, 1, &z));
            CHECK_OK(tg_unsqueeze(t, z, 1, &z));
            CHECK_OK(tg_squeeze(t, z, 1, &z));
            check_maps(t, z, 1, &x, "views");
        }
        tg_tensor_free(x), tg_tensor_free(s0);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- permute */

static void test_permute(void) {
    size_t s6[6] = {2, 3, 1, 2, 3, 2};
    long perm[6] = {5, 3, 0, -2, 1, 2}; /* −2 is axis 4 */
    int p[6] = {5, 3, 0, 4, 1, 2};
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        tg_tensor *x = seq((tg_dtype)dt, 6, s6, 1);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_permute(t, x, 6, perm, &y));
        size_t ys[6];
        for (int a = 0; a < 6; a++)
            ys[a] = s6[p[a]];
        CHECK(same_shape(y, 6, ys), "permute shape");
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[6], in[6];
            unravel(i, 6, ys, o);
            for (int a = 0; a < 6; a++)
                in[p[a]] = o[a];
            bad += tg_get(y, i) != tg_get(x, ravel(in, 6, s6));
        }
        CHECK(bad == 0, "permute: %d elements differ from x[perm]", bad);
        /* r-map: x̄[perm idx] = ζ[idx] */
        backward_ramp(t, y);
        bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[6], in[6];
            unravel(i, 6, ys, o);
            for (int a = 0; a < 6; a++)
                in[p[a]] = o[a];
            bad += grad_at(x, ravel(in, 6, s6)) != (double)i + 1;
        }
        CHECK(bad == 0, "permute r-map: %d elements", bad);
        if (dt == TG_F64) check_maps(t, y, 1, &x, "permute rank 6");
        /* transpose of a matrix, and the errors */
        size_t s2[2] = {3, 4};
        tg_tensor *m = seq((tg_dtype)dt, 2, s2, 0);
        CHECK_OK(tg_transpose(t, m, 0, -1, &y));
        CHECK(same_shape(y, 2, (size_t[]){4, 3}) && tg_get(y, 1) == tg_get(m, 4) &&
                  tg_get(y, 11) == tg_get(m, 11),
              "transpose");
        long dup[6] = {0, 1, 2, 3, 4, 4};
        EXPECT_ERR(tg_permute(t, x, 6, dup, &y), TG_ERR_ARG,
                   "permute: (0x1x2x3x4x4) is not a permutation of the 6 axes of (2x3x1x2x3x2)");
        EXPECT_ERR(tg_permute(t, x, 5, perm, &y), TG_ERR_ARG, "is not a permutation");
        EXPECT_ERR(tg_transpose(t, m, 0, 2, &y), TG_ERR_ARG,
                   "transpose: dims 0 and 2 out of range for (3x4)");
        tg_tensor_free(x), tg_tensor_free(m);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- slice */

/* Python's normalisation of one bound, as a reference. */
static long py_bound(long v, long n) {
    if (v < 0) v += n;
    return v < 0 ? 0 : v > n ? n : v;
}

static void test_slice(void) {
    size_t s5[5] = {4, 3, 5, 2, 6};
    long lo[5] = {1, -2, -100, 0, 5}, hi[5] = {LONG_MAX, 3, 4, 1, -100 + 106},
         st[5] = {2, 1, 3, 1, 4};
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        tg_tensor *x = seq((tg_dtype)dt, 5, s5, 1);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_slice(t, x, 5, lo, hi, st, &y));
        size_t ys[5];
        long b[5];
        for (int a = 0; a < 5; a++) {
            b[a] = py_bound(lo[a], (long)s5[a]);
            long e = py_bound(hi[a], (long)s5[a]);
            ys[a] = (size_t)((e - b[a] + st[a] - 1) / st[a]);
        }
        CHECK(same_shape(y, 5, ys), "slice shape");
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[5], in[5];
            unravel(i, 5, ys, o);
            for (int a = 0; a < 5; a++)
                in[a] = (size_t)b[a] + o[a] * (size_t)st[a];
            bad += tg_get(y, i) != tg_get(x, ravel(in, 5, s5));
        }
        CHECK(bad == 0, "slice: %d elements differ", bad);
        backward_ramp(t, y);
        double total = 0, want = 0;
        for (size_t e = 0; e < x->size; e++)
            total += grad_at(x, e);
        for (size_t i = 0; y && i < y->size; i++)
            want += (double)i + 1;
        CHECK(total == want, "slice r-map: sum %g, want %g (unselected elements get 0)", total,
              want);
        if (dt == TG_F64) check_maps(t, y, 1, &x, "slice rank 5");
        CHECK_OK(tg_slice_dim(t, x, -1, -3, LONG_MAX, 1, &y));
        CHECK(same_shape(y, 5, (size_t[]){4, 3, 5, 2, 3}) && tg_get(y, 0) == 4, "slice_dim");
        EXPECT_ERR(tg_slice_dim(t, x, 2, 5, 9, 1, &y), TG_ERR_SHAPE,
                   "slice: axis 2 of (4x3x5x2x6) sliced [5:9] is empty");
        EXPECT_ERR(tg_slice_dim(t, x, 1, 2, 1, 1, &y), TG_ERR_SHAPE, "sliced [2:1] is empty");
        EXPECT_ERR(tg_slice_dim(t, x, 0, 0, 2, 0, &y), TG_ERR_ARG,
                   "slice: step 0 of axis 0 is not positive");
        EXPECT_ERR(tg_slice_dim(t, x, 5, 0, 2, 1, &y), TG_ERR_ARG, "slice: dim 5 out of range");
        tg_tensor_free(x);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- pad */

static void test_pad(void) {
    size_t s3[3] = {2, 3, 4};
    /* torch order: last axis (1 before, crop 2 after), middle (0, 2), first (−1, 1) */
    long pad[6] = {1, -2, 0, 2, -1, 1};
    long bef[3] = {-1, 0, 1}, aft[3] = {1, 2, -2};
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        tg_tensor *x = seq((tg_dtype)dt, 3, s3, 1);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_pad(t, x, 6, pad, -INFINITY, &y));
        size_t ys[3];
        for (int a = 0; a < 3; a++)
            ys[a] = (size_t)((long)s3[a] + bef[a] + aft[a]);
        CHECK(same_shape(y, 3, ys), "pad shape");
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[3], in[3];
            int inside = 1;
            unravel(i, 3, ys, o);
            for (int a = 0; a < 3; a++) {
                long v = (long)o[a] - bef[a];
                inside &= v >= 0 && v < (long)s3[a];
                in[a] = (size_t)(v < 0 ? 0 : v);
            }
            double want = inside ? tg_get(x, ravel(in, 3, s3)) : -INFINITY;
            bad += tg_get(y, i) != want;
        }
        CHECK(bad == 0, "pad: %d elements differ", bad);
        if (dt == TG_F64) { /* finite differences need a finite border */
            CHECK_OK(tg_pad(t, x, 6, pad, 0.5, &y));
            check_maps(t, y, 1, &x, "pad with crops");
        }
        size_t s1[1] = {3};
        tg_tensor *v = seq((tg_dtype)dt, 1, s1, 0);
        CHECK_OK(tg_pad(t, v, 2, (long[]){2, 1}, NAN, &y)); /* torch: [nan, nan, 1, 2, 3, nan] */
        CHECK(y && y->size == 6 && isnan(tg_get(y, 0)) && tg_get(y, 2) == 1 && isnan(tg_get(y, 5)),
              "pad of a vector with NaN");
        EXPECT_ERR(tg_pad(t, v, 2, (long[]){-2, -1}, 0, &y), TG_ERR_SHAPE,
                   "pad: widths (-2, -1) leave axis 0 of (3) empty");
        EXPECT_ERR(tg_pad(t, v, 2, (long[]){LONG_MAX, 0}, 0, &y), TG_ERR_SHAPE,
                   "leave axis 0 of (3) empty or too large");
        EXPECT_ERR(tg_pad(t, v, 3, (long[]){1, 1, 1}, 0, &y), TG_ERR_ARG,
                   "pad: 3 pad widths for (3)");
        EXPECT_ERR(tg_pad(t, v, 4, (long[]){1, 1, 1, 1}, 0, &y), TG_ERR_ARG, "at most 2 per axis");
        tg_tensor_free(x), tg_tensor_free(v);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- broadcast_to */

static void test_broadcast_to(void) {
    size_t s2[2] = {3, 1};
    long to[6] = {2, 1, 2, 3, 4, 2}; /* (3x1) does not go to (2x1x2x3x4x2) */
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        tg_tensor *x = seq((tg_dtype)dt, 2, s2, 1);
        CHECK_OK(tg_tape_new(&t));
        EXPECT_ERR(tg_broadcast_to(t, x, 6, to, &y), TG_ERR_SHAPE,
                   "shapes (3x1) and (2x1x2x3x4x2) do not broadcast at axis -2");
        long ok[6] = {2, 1, 2, 1, -1, 4};
        size_t os[6] = {2, 1, 2, 1, 3, 4};
        tg_tensor *x5 = seq((tg_dtype)dt, 2, s2, 1);
        CHECK_OK(tg_broadcast_to(t, x5, 6, ok, &y)); /* (3x1) → (2x1x2x1x3x4) */
        CHECK(same_shape(y, 6, os), "broadcast_to shape");
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[6];
            unravel(i, 6, os, o);
            bad += tg_get(y, i) != tg_get(x5, o[4]);
        }
        CHECK(bad == 0, "broadcast_to: %d elements", bad);
        backward_ramp(t, y); /* x̄[j] = Σ of ζ over the 16 outputs with o[4] = j */
        for (size_t j = 0; j < 3; j++) {
            double want = 0;
            for (size_t i = 0; y && i < y->size; i++) {
                size_t o[6];
                unravel(i, 6, os, o);
                if (o[4] == j) want += (double)i + 1;
            }
            CHECK(grad_at(x5, j) == want, "broadcast_to r-map [%zu]: %g, want %g", j,
                  grad_at(x5, j), want);
        }
        if (dt == TG_F64) check_maps(t, y, 1, &x5, "broadcast_to rank 6");
        long lead[3] = {-1, 3, 1}; /* −1 on an axis x lacks */
        EXPECT_ERR(tg_broadcast_to(t, x, 3, lead, &y), TG_ERR_SHAPE,
                   "broadcast_to: cannot broadcast (3x1) to (-1x3x1)");
        tg_tensor_free(x), tg_tensor_free(x5);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- concat, stack */

/* n inputs of shape (2, lenᵢ, 3) (lenᵢ = 1 + i % 3) joined along axis 1
 * (cat) or n of (2, 3) along a new axis 1 (stack): values and r-maps
 * against the index arithmetic. */
static void check_join(int n, int stack, tg_dtype dt) {
    tg_tensor **xs = calloc((size_t)n, sizeof *xs), *y = NULL;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    size_t along = 0;
    for (int i = 0; i < n; i++) {
        size_t len = stack ? 1 : 1 + (size_t)i % 3;
        size_t sh[3] = {2, len, 3};
        xs[i] = stack ? seq(dt, 2, (size_t[]){2, 3}, 1) : seq(dt, 3, sh, 1);
        for (size_t e = 0; e < xs[i]->size; e++)
            tg_set(xs[i], e, 1000.0 * i + (double)e);
        along += len;
    }
    tg_status s = stack ? tg_stack(t, n, (const tg_tensor *const *)xs, -2, &y)
                        : tg_concat(t, n, (const tg_tensor *const *)xs, 1, &y);
    CHECK_OK(s);
    size_t ys[3] = {2, along, 3};
    CHECK(same_shape(y, 3, ys), "%s of %d: shape", stack ? "stack" : "concat", n);
    if (!y) goto done;
    backward_ramp(t, y);
    int bad = 0, gbad = 0;
    for (size_t i = 0; i < y->size; i++) { /* which input and where */
        size_t o[3];
        unravel(i, 3, ys, o);
        int k = 0;
        size_t at = o[1];
        while (at >= (stack ? 1 : 1 + (size_t)k % 3))
            at -= stack ? 1 : 1 + (size_t)k % 3, k++;
        size_t len = stack ? 1 : 1 + (size_t)k % 3;
        size_t e = (o[0] * len + at) * 3 + o[2];
        bad += tg_get(y, i) != tg_get(xs[k], e);
        gbad += grad_at(xs[k], e) != (double)i + 1;
    }
    CHECK(bad == 0 && gbad == 0, "%s of %d: %d values, %d adjoints differ",
          stack ? "stack" : "concat", n, bad, gbad);
    if (dt == TG_F64 && n <= 3) check_maps(t, y, n, xs, stack ? "stack" : "concat");
done:
    for (int i = 0; i < n; i++)
        tg_tensor_free(xs[i]);
    free(xs);
    tg_tape_free(t);
}

static void test_join(void) {
    const int counts[] = {1, 2, 3, 100};
    for (int dt = 0; dt < 2; dt++)
        for (int k = 0; k < 4; k++) {
            check_join(counts[k], 0, (tg_dtype)dt);
            check_join(counts[k], 1, (tg_dtype)dt);
        }
    /* one tensor twice: both blocks' adjoints add into it; rank 6 */
    tg_tape *t;
    tg_tensor *y;
    size_t s6[6] = {2, 1, 2, 1, 2, 3};
    tg_tensor *x = seq(TG_F64, 6, s6, 1), *r0 = seq(TG_F64, 0, NULL, 0);
    CHECK_OK(tg_tape_new(&t));
    const tg_tensor *twice[2] = {x, x};
    CHECK_OK(tg_concat(t, 2, twice, -1, &y));
    CHECK(y && y->shape[5] == 6, "concat of x with itself");
    check_maps(t, y, 1, &x, "concat of x with itself, rank 6");
    CHECK_OK(tg_stack(t, 2, twice, 6, &y));
    CHECK(y && y->rank == 7 && y->shape[6] == 2, "stack at the end");
    check_maps(t, y, 1, &x, "stack of x with itself, rank 7");
    size_t s2[2] = {2, 4};
    tg_tensor *m = seq(TG_F64, 2, s2, 0);
    const tg_tensor *mixed[2] = {x, m};
    EXPECT_ERR(tg_concat(t, 2, mixed, 0, &y), TG_ERR_SHAPE,
               "concat: input 1 has shape (2x4), input 0 (2x1x2x1x2x3): they differ");
    EXPECT_ERR(tg_stack(t, 2, mixed, 0, &y), TG_ERR_SHAPE, "stack: input 1 has shape (2x4)");
    EXPECT_ERR(tg_concat(t, 1, (const tg_tensor *const *)&m, 2, &y), TG_ERR_ARG,
               "concat: dim 2 out of range for (2x4)");
    EXPECT_ERR(tg_stack(t, 1, (const tg_tensor *const *)&m, -4, &y), TG_ERR_ARG,
               "stack: dim -4 out of range for (2x4) (the result has one axis more)");
    EXPECT_ERR(tg_concat(t, 1, (const tg_tensor *const *)&r0, 0, &y), TG_ERR_SHAPE,
               "concat: dim 0 out of range for ()");
    EXPECT_ERR(tg_concat(t, 0, twice, 0, &y), TG_ERR_ARG, "concat: takes 1..65536 inputs, got 0");
    tg_tensor_free(x), tg_tensor_free(m), tg_tensor_free(r0);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- gather, embedding */

static void test_gather(void) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        size_t xs[3] = {2, 4, 3}, is[3] = {2, 5, 2};
        tg_tensor *x = seq((tg_dtype)dt, 3, xs, 1);
        /* along dim 1, with repeats (index 3 four times in the first block) */
        double iv[20] = {3, 0, 3, 1, 3, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3};
        tg_tensor *idx = leaf((tg_dtype)dt, 3, is, iv, 0);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_gather(t, x, 1, idx, &y));
        CHECK(same_shape(y, 3, is), "gather shape");
        double gx[24] = {0};
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[3];
            unravel(i, 3, is, o);
            o[1] = (size_t)iv[i];
            size_t e = ravel(o, 3, xs);
            bad += tg_get(y, i) != tg_get(x, e);
            gx[e] += (double)i + 1; /* the scatter-add, by hand */
        }
        CHECK(bad == 0, "gather: %d values", bad);
        if (y) backward_ramp(t, y);
        bad = 0;
        for (size_t e = 0; e < 24; e++)
            bad += grad_at(x, e) != gx[e];
        CHECK(bad == 0, "gather r-map: %d of 24 adjoints differ from the scatter-add", bad);
        CHECK(gx[3 * 3 + 0] == 1 + 3 + 5 + 7, "the reference sums repeats");
        if (dt == TG_F64) check_maps(t, y, 1, &x, "gather with repeats");
        /* an index changed after recording: replay gives NaN there, no access */
        tg_set(idx, 7, 99);
        CHECK_OK(tg_replay(t));
        CHECK(y && isnan(tg_get(y, 7)) && tg_get(y, 6) == tg_get(x, 3 * 3 + 0),
              "gather replay with a bad index");
        tg_set(idx, 7, iv[7]);
        iv[7] = 4;
        tg_tensor *b1 = leaf((tg_dtype)dt, 3, is, iv, 0);
        EXPECT_ERR(tg_gather(t, x, 1, b1, &y), TG_ERR_VALUE,
                   "gather: index 4 at position 7 is out of range for dim 1 of (2x4x3)");
        iv[7] = 1.5;
        tg_tensor *b2 = leaf((tg_dtype)dt, 3, is, iv, 0);
        EXPECT_ERR(tg_gather(t, x, 1, b2, &y), TG_ERR_VALUE,
                   "gather: index 1.5 at position 7 is not an integer");
        iv[7] = -1;
        tg_tensor *b3 = leaf((tg_dtype)dt, 3, is, iv, 0);
        EXPECT_ERR(tg_gather(t, x, 1, b3, &y), TG_ERR_VALUE, "index -1 at position 7");
        EXPECT_ERR(tg_gather(t, x, 3, idx, &y), TG_ERR_ARG, "gather: dim 3 out of range");
        EXPECT_ERR(tg_gather(t, x, 0, idx, &y), TG_ERR_SHAPE,
                   "gather: index (2x5x2) must have the rank of input (2x4x3) and no larger size "
                   "except along dim 0");
        tg_tensor *pidx = seq((tg_dtype)dt, 3, is, 1);
        EXPECT_ERR(tg_gather(t, x, 1, pidx, &y), TG_ERR_ARG, "input 1 carries no derivative");
        tg_tensor_free(x), tg_tensor_free(idx), tg_tensor_free(b1), tg_tensor_free(b2);
        tg_tensor_free(b3), tg_tensor_free(pidx);
        tg_tape_free(t);
    }
}

static void test_embedding(void) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        size_t ws[2] = {5, 3};
        tg_tensor *w = seq((tg_dtype)dt, 2, ws, 1);
        /* indices of rank 6 (1x2x1x3x1x1): row 1 three times, row 3 twice */
        size_t is[6] = {1, 2, 1, 3, 1, 1};
        double iv[6] = {1, 3, 1, 0, 1, 3};
        tg_tensor *idx = leaf((tg_dtype)dt, 6, is, iv, 0);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_embedding(t, w, idx, &y));
        CHECK(same_shape(y, 7, (size_t[]){1, 2, 1, 3, 1, 1, 3}), "embedding shape");
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++)
            bad += tg_get(y, i) != tg_get(w, (size_t)iv[i / 3] * 3 + i % 3);
        CHECK(bad == 0, "embedding: %d values", bad);
        if (y) backward_ramp(t, y);
        /* row r's adjoint: Σ over positions e with iv[e] = r of ζ[e, :] */
        for (size_t r = 0; r < 5; r++)
            for (size_t j = 0; j < 3; j++) {
                double want = 0;
                for (size_t e = 0; e < 6; e++)
                    if ((size_t)iv[e] == r) want += (double)(e * 3 + j) + 1;
                CHECK(grad_at(w, r * 3 + j) == want, "embedding r-map [%zu,%zu]: %g, want %g", r, j,
                      grad_at(w, r * 3 + j), want);
            }
        CHECK(grad_at(w, 1 * 3 + 0) == 1 + 7 + 13, "row 1 accumulates its three uses");
        if (dt == TG_F64) check_maps(t, y, 1, &w, "embedding with repeats");
        iv[4] = 5;
        tg_tensor *b = leaf((tg_dtype)dt, 6, is, iv, 0);
        EXPECT_ERR(tg_embedding(t, w, b, &y), TG_ERR_VALUE,
                   "embedding: index 5 at position 4 is out of range for the 5 rows of weight "
                   "(5x3)");
        EXPECT_ERR(tg_embedding(t, idx, idx, &y), TG_ERR_SHAPE, "embedding: weight must be 2-D");
        tg_tensor_free(w), tg_tensor_free(idx), tg_tensor_free(b);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- where, masked_fill */

static void test_where(void) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y;
        /* mask (2x1), a (1x3), b (2x1x1x3) → (2x2x3) with a leading 2 */
        double mv[2] = {0, NAN}; /* NaN ≠ 0: true */
        tg_tensor *m = leaf((tg_dtype)dt, 2, (size_t[]){2, 1}, mv, 0);
        tg_tensor *a = seq((tg_dtype)dt, 2, (size_t[]){1, 3}, 1);
        tg_tensor *b = seq((tg_dtype)dt, 4, (size_t[]){2, 1, 1, 3}, 1);
        for (size_t i = 0; i < 6; i++)
            tg_set(b, i, -1.0 - (double)i);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_where(t, m, a, b, &y));
        size_t ys[4] = {2, 1, 2, 3};
        CHECK(same_shape(y, 4, ys), "where shape");
        double ga[3] = {0}, gb[6] = {0};
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[4];
            unravel(i, 4, ys, o);
            int on = o[2] == 1;
            double want = on ? tg_get(a, o[3]) : tg_get(b, o[0] * 3 + o[3]);
            bad += tg_get(y, i) != want;
            if (on)
                ga[o[3]] += (double)i + 1;
            else
                gb[o[0] * 3 + o[3]] += (double)i + 1;
        }
        CHECK(bad == 0, "where: %d values", bad);
        if (y) backward_ramp(t, y);
        for (size_t j = 0; j < 3; j++)
            CHECK(grad_at(a, j) == ga[j], "where: a's adjoint [%zu] %g, want %g", j, grad_at(a, j),
                  ga[j]);
        for (size_t j = 0; j < 6; j++)
            CHECK(grad_at(b, j) == gb[j], "where: b's adjoint [%zu] %g, want %g", j, grad_at(b, j),
                  gb[j]);
        if (dt == TG_F64) {
            tg_tensor *ps[2] = {a, b};
            check_maps(t, y, 2, ps, "where, broadcast");
        }
        tg_tensor *m3 = seq((tg_dtype)dt, 1, (size_t[]){4}, 0);
        EXPECT_ERR(tg_where(t, m3, a, b, &y), TG_ERR_SHAPE,
                   "where: shapes (4) and (1x3) do not broadcast at axis -1");
        /* masked_fill: mask (1x3) over x (2x3), −inf */
        tg_tensor *x = seq((tg_dtype)dt, 2, (size_t[]){2, 3}, 1);
        tg_tensor *mk = leaf((tg_dtype)dt, 2, (size_t[]){1, 3}, (double[]){1, 0, 2}, 0);
        CHECK_OK(tg_masked_fill(t, x, mk, -INFINITY, &y));
        CHECK(same_shape(y, 2, (size_t[]){2, 3}), "masked_fill shape");
        for (size_t i = 0; y && i < 6; i++)
            CHECK(tg_get(y, i) == (i % 3 == 1 ? tg_get(x, i) : -INFINITY), "masked_fill [%zu]", i);
        if (y) backward_ramp(t, y);
        for (size_t i = 0; i < 6; i++)
            CHECK(grad_at(x, i) == (i % 3 == 1 ? (double)i + 1 : 0), "masked_fill r-map [%zu]", i);
        if (dt == TG_F64) { /* finite differences need a finite fill */
            CHECK_OK(tg_masked_fill(t, x, mk, -1e9, &y));
            check_maps(t, y, 1, &x, "masked_fill");
        }
        tg_tensor *big = seq((tg_dtype)dt, 2, (size_t[]){2, 3}, 0);
        EXPECT_ERR(tg_masked_fill(t, a, big, 0, &y), TG_ERR_SHAPE,
                   "masked_fill: mask (2x3) does not broadcast to the shape of x (1x3)");
        tg_tensor *all[] = {m, a, b, m3, x, mk, big};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            tg_tensor_free(all[i]);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- constants */

/* argmax, one_hot and detach: values, and no derivative through them even
 * when their input depends on a parameter. */
static void test_constants(void) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t;
        tg_tensor *y, *z, *s;
        /* torch.argmax(tensor([[1,nan,nan],[2,2,1],[-inf,-inf,-inf]]), 1) = [1, 0, 0] */
        double xv[9] = {1, NAN, NAN, 2, 2, 1, -INFINITY, -INFINITY, -INFINITY};
        tg_tensor *x = leaf((tg_dtype)dt, 2, (size_t[]){3, 3}, xv, 1);
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_argmax(t, x, -1, 0, &y));
        CHECK(same_shape(y, 1, (size_t[]){3}) && tg_get(y, 0) == 1 && tg_get(y, 1) == 0 &&
                  tg_get(y, 2) == 0,
              "argmax: NaN first, first of ties");
        CHECK(y && !y->requires_grad, "argmax of a parameter requires no grad");
        CHECK_OK(tg_argmax(t, x, 0, 1, &y)); /* columns: [1, nan→0, nan→0]: 2 at row 1 */
        CHECK(same_shape(y, 2, (size_t[]){1, 3}) && tg_get(y, 0) == 1 && tg_get(y, 1) == 0,
              "argmax dim 0 keepdim");
        EXPECT_ERR(tg_argmax(t, x, 2, 0, &y), TG_ERR_ARG, "argmax: dim 2 out of range for (3x3)");
        /* rank 6 argmax against a naive loop */
        size_t s6[6] = {2, 1, 3, 2, 1, 2};
        tg_tensor *r6 = seq((tg_dtype)dt, 6, s6, 1);
        for (size_t i = 0; i < r6->size; i++)
            tg_set(r6, i, (double)((i * 7) % 5));
        CHECK_OK(tg_argmax(t, r6, 2, 0, &y));
        int bad = 0;
        for (size_t i = 0; y && i < y->size; i++) {
            size_t o[5], in[6];
            unravel(i, 5, (size_t[]){2, 1, 2, 1, 2}, o);
            size_t best = 0;
            double bv = -INFINITY;
            for (size_t j = 0; j < 3; j++) {
                in[0] = o[0], in[1] = o[1], in[2] = j, in[3] = o[2], in[4] = o[3], in[5] = o[4];
                double v = tg_get(r6, ravel(in, 6, s6));
                if (v > bv) bv = v, best = j;
            }
            bad += tg_get(y, i) != (double)best;
        }
        CHECK(bad == 0, "argmax rank 6: %d", bad);
        /* one_hot, classes inferred; a parameter-dependent label is fine */
        tg_tensor *lab = leaf((tg_dtype)dt, 2, (size_t[]){2, 2}, (double[]){2, 0, 1, 2}, 0);
        CHECK_OK(tg_one_hot(t, lab, -1, &y));
        CHECK(same_shape(y, 3, (size_t[]){2, 2, 3}), "one_hot shape (classes 3 inferred)");
        for (size_t i = 0; y && i < 12; i++)
            CHECK(tg_get(y, i) == (tg_get(lab, i / 3) == (double)(i % 3)), "one_hot [%zu]", i);
        CHECK_OK(tg_one_hot(t, lab, 5, &y));
        CHECK(y && y->shape[2] == 5, "one_hot 5 classes");
        EXPECT_ERR(tg_one_hot(t, lab, 2, &y), TG_ERR_VALUE,
                   "one_hot: index 2 at position 0 is out of range for 2 classes");
        EXPECT_ERR(tg_one_hot(t, lab, 0, &y), TG_ERR_ARG, "one_hot: labels (2x2) with 0 classes");
        CHECK_OK(tg_argmax(t, x, 1, 0, &z));
        CHECK_OK(tg_one_hot(t, z, 3, &y));
        CHECK(y && !y->requires_grad, "one_hot(argmax(param)) requires no grad");
        /* detach: d/dx Σ detach(x)·x = detach(x) = x, not 2x */
        tg_tensor *p = seq((tg_dtype)dt, 2, (size_t[]){2, 3}, 1);
        CHECK_OK(tg_detach(t, p, &y));
        CHECK(y && !y->requires_grad && tg_get(y, 4) == 5, "detach");
        CHECK_OK(tg_mul(t, y, p, &z));
        CHECK_OK(tg_sum(t, z, &s));
        CHECK_OK(tg_backward(t, s));
        for (size_t i = 0; i < 6; i++)
            CHECK(grad_at(p, i) == (double)i + 1, "detach: grad [%zu] = %g, want %g", i,
                  grad_at(p, i), (double)i + 1);
        /* argmax feeding a product with a parameter: x gets nothing */
        tg_zero_grad(x);
        tg_tensor *w = seq((tg_dtype)dt, 1, (size_t[]){3}, 1);
        CHECK_OK(tg_argmax(t, x, 1, 0, &y));
        CHECK_OK(tg_mul(t, y, w, &z));
        CHECK_OK(tg_sum(t, z, &s));
        CHECK_OK(tg_backward(t, s));
        CHECK(grad_at(x, 0) == 0 && grad_at(w, 0) == 1 && grad_at(w, 1) == 0,
              "argmax: no gradient into x; w's gradient is the argmax");
        /* the tangent of a constant is zero (none) */
        const tg_tensor *leaves[1] = {x};
        double *xi = calloc(9, sizeof(double));
        float *xf = calloc(9, sizeof(float));
        const void *tan[1] = {dt == TG_F32 ? (const void *)xf : (const void *)xi};
        CHECK_OK(tg_jvp(t, 1, leaves, tan));
        CHECK(tg_tangent(t, y) == NULL, "argmax has no tangent");
        free(xi), free(xf);
        tg_tensor *all[] = {x, r6, lab, p, w};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            tg_tensor_free(all[i]);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- dropout */

/* The kept fraction of n = 2^17 elements is Binomial(n, 1 − p)/n: standard
 * deviation √(p(1−p)/n) <= 0.0014; 6 deviations (0.0083) are exceeded with
 * probability < 2e-9, while a mask drawn with the wrong p (or a biased
 * stream) is off by far more. */
static void test_dropout(void) {
    const size_t n = (size_t)1 << 17;
    const double ps[] = {0.1, 0.5, 0.9};
    for (int dt = 0; dt < 2; dt++)
        for (int q = 0; q < 3; q++) {
            double p = ps[q];
            tg_tape *t;
            tg_tensor *y, *y2, *y3;
            tg_tensor *x = seq((tg_dtype)dt, 1, &n, 1);
            tg_rng g, g2;
            tg_rng_seed(&g, 7), tg_rng_seed(&g2, 7);
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_dropout(t, x, p, 1, &g, &y));
            CHECK_OK(tg_dropout(t, x, p, 1, &g2, &y2)); /* the same seed */
            CHECK_OK(tg_dropout(t, x, p, 1, &g, &y3));  /* the next seed */
            if (!y || !y2 || !y3) continue;
            size_t kept = 0, same = 0, agree = 0, wrong = 0;
            double k = dt == TG_F32 ? (double)(float)(1 / (1 - p)) : 1 / (1 - p);
            for (size_t i = 0; i < n; i++) {
                double v = tg_get(y, i), want = tg_get(x, i) * k;
                if (dt == TG_F32) want = (float)want;
                kept += v != 0;
                wrong += v != 0 && v != want;
                same += v == tg_get(y2, i);
                agree += (v != 0) == (tg_get(y3, i) != 0);
            }
            double frac = (double)kept / (double)n, sd = sqrt(p * (1 - p) / (double)n);
            CHECK(fabs(frac - (1 - p)) <= 6 * sd, "dropout p=%g: kept %.5f, want %.5f ± %.5f", p,
                  frac, 1 - p, 6 * sd);
            CHECK(wrong == 0, "dropout p=%g: %zu kept elements not x/(1-p)", p, wrong);
            CHECK(same == n, "dropout p=%g: the same seed gave a different mask", p);
            /* two independent masks agree on p² + (1−p)² of the elements */
            double ag = (double)agree / (double)n, want_ag = p * p + (1 - p) * (1 - p);
            CHECK(fabs(ag - want_ag) <= 6 * sqrt(want_ag * (1 - want_ag) / (double)n),
                  "dropout p=%g: next mask agrees on %.4f, want %.4f", p, ag, want_ag);
            /* replay repeats the mask; the r-map is the mask times 1/(1−p) */
            float *before = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++)
                before[i] = (float)tg_get(y, i);
            CHECK_OK(tg_replay(t));
            size_t moved = 0;
            for (size_t i = 0; i < n; i++)
                moved += (float)tg_get(y, i) != before[i];
            CHECK(moved == 0, "dropout p=%g: replay changed %zu elements", p, moved);
            free(before);
            backward_ramp(t, y);
            size_t gbad = 0;
            for (size_t i = 0; i < n; i++) {
                double want = tg_get(y, i) != 0 ? ((double)i + 1) * k : 0;
                if (dt == TG_F32 && want != 0) want = (float)((float)((double)i + 1) * (float)k);
                gbad += grad_at(x, i) != want;
            }
            CHECK(gbad == 0, "dropout p=%g: %zu adjoints differ from mask/(1-p)·ζ", p, gbad);
            tg_tensor_free(x);
            tg_tape_free(t);
        }
    /* identity in eval and at p = 0 (rng may be NULL); zeros at p = 1 */
    tg_tape *t;
    tg_tensor *y;
    double xv[4] = {1, -2, INFINITY, NAN};
    tg_tensor *x = leaf(TG_F64, 1, (size_t[]){4}, xv, 1);
    tg_rng g;
    tg_rng_seed(&g, 1);
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_dropout(t, x, 0.5, 0, NULL, &y));
    CHECK(y && tg_get(y, 1) == -2 && isinf(tg_get(y, 2)) && isnan(tg_get(y, 3)), "eval: identity");
    CHECK_OK(tg_dropout(t, x, 0, 1, NULL, &y));
    CHECK(y && tg_get(y, 0) == 1 && tg_get(y, 1) == -2, "p = 0: identity");
    /* torch.nn.functional.dropout(tensor([1,-2,inf,nan]), p=1) = [0, -0, nan, nan] */
    CHECK_OK(tg_dropout(t, x, 1, 1, &g, &y));
    CHECK(y && tg_get(y, 0) == 0 && tg_get(y, 1) == 0 && isnan(tg_get(y, 2)) && isnan(tg_get(y, 3)),
          "p = 1: x·0");
    EXPECT_ERR(tg_dropout(t, x, 1.5, 1, &g, &y), TG_ERR_VALUE,
               "dropout: probability p = 1.5 is not in [0, 1]");
    EXPECT_ERR(tg_dropout(t, x, -0.1, 0, &g, &y), TG_ERR_VALUE, "p = -0.1 is not in [0, 1]");
    EXPECT_ERR(tg_dropout(t, x, NAN, 1, &g, &y), TG_ERR_VALUE, "p = nan is not in [0, 1]");
    EXPECT_ERR(tg_dropout(t, x, 0.5, 1, NULL, &y), TG_ERR_ARG, "dropout: rng is NULL");
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* The view ops share their input's data (no copy) and follow it through a
 * replay; their maps stay the identity. */
static void test_view_aliasing(void) {
    size_t s[2] = {3, 4};
    long r[1] = {12};
    tg_tensor *x = NULL, *y = NULL, *d = NULL, *z = NULL;
    CHECK_OK(tg_param_new(&x, TG_F64, 2, s));
    for (size_t i = 0; i < 12; i++)
        tg_set(x, i, (double)i);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_reshape(t, x, 1, r, &y));
    CHECK_OK(tg_detach(t, x, &d));
    CHECK_OK(tg_unsqueeze(t, y, 0, &z));
    CHECK(y && d && z && y->data == x->data && d->data == x->data && z->data == x->data,
          "views share the input's data");
    tg_set(x, 5, 50);
    CHECK_OK(tg_replay(t));
    CHECK(z && tg_get(z, 5) == 50 && tg_get(d, 5) == 50, "a view follows its input");
    tg_tensor *sum = NULL;
    CHECK_OK(tg_sum(t, z, &sum));
    if (sum) CHECK_OK(tg_backward(t, sum));
    CHECK(((double *)x->grad)[7] == 1, "x̄ through the views: %g", ((double *)x->grad)[7]);
    tg_tensor_free(x);
    tg_tape_free(t);
}

int main(void) {
    test_view_aliasing();
    test_views();
    test_permute();
    test_slice();
    test_pad();
    test_broadcast_to();
    test_join();
    test_gather();
    test_embedding();
    test_where();
    test_constants();
    test_dropout();
    return check_summary();
}
