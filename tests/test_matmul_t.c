/* tg_matmul_t (batched_matmul): values and both adjoints against a naive
 * triple loop in double, for every pair of transpose flags, over batch
 * shapes that broadcast each way (none, A's, B's, both, rank 2 against
 * rank 4), float32 and float64, on one thread and on two; attention's Q·Kᵀ
 * shape; the errors; many items on two threads as on one. */
#include "extremes.h"

#include <float.h>

/* Element (r, c) of op(X) for batch item given by the offset of its matrix. */
static double opx(const tg_tensor *x, size_t mat, int t, size_t r, size_t c) {
    size_t cols = x->shape[x->rank - 1];
    return t ? tg_get(x, mat + c * cols + r) : tg_get(x, mat + r * cols + c);
}

/* Index of batch item `i` of the output in operand x (broadcast: a size-1
 * or missing axis stays at 0). ob is the output's batch shape of rank rb. */
static size_t batch_offset(const tg_tensor *x, const size_t *ob, int rb, size_t i) {
    int rx = x->rank - 2;
    size_t off = 0, stride = 1;
    for (int a = rb - 1; a >= 0; a--) {
        size_t d = i % ob[a];
        i /= ob[a];
        int ax = a - (rb - rx);
        if (ax < 0) continue;
        size_t n = x->shape[ax];
        off += (n == 1 ? 0 : d) * stride;
        stride *= n;
    }
    return off * x->shape[x->rank - 2] * x->shape[x->rank - 1];
}

typedef struct mm_case {
    int ra;
    size_t a[5];
    int rb;
    size_t b[5];
} mm_case;

/* One case: shapes as stored; m, k, n from the flags. */
static void check_case(const mm_case *mc, int ta, int tb, tg_dtype dt, tg_rng *rng) {
    tg_tensor *a = leaf(1, dt, mc->ra, mc->a, NULL), *b = leaf(1, dt, mc->rb, mc->b, NULL),
              *y = NULL;
    if (!a || !b) return;
    tg_sample_fill(a, TG_DOM_REAL, 1, rng);
    tg_sample_fill(b, TG_DOM_REAL, 1, rng);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_matmul_t(t, a, b, ta, tb, &y));
    size_t ar = a->shape[a->rank - 2], ac = a->shape[a->rank - 1];
    size_t br = b->shape[b->rank - 2], bc = b->shape[b->rank - 1];
    size_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc;
    int rb = y ? y->rank - 2 : 0;
    size_t batch = 1, *ob = y ? y->shape : NULL;
    for (int i = 0; i < rb; i++)
        batch *= ob[i];
    /* ζ: a ramp; the references in double, the tolerance k·ε of the dtype
     * times the terms' size (every product is a sum of k rounded terms). */
    double tol = (double)(k + 2) * (dt == TG_F32 ? FLT_EPSILON : DBL_EPSILON) * 8;
    void *seed = y ? ramp(dt, y->size, 0.01) : NULL;
    if (y) CHECK_OK(tg_backward_seed(t, y, seed));
    double *ga = calloc(a->size, sizeof *ga), *gb = calloc(b->size, sizeof *gb);
    int bad = 0;
    for (size_t i = 0; y && i < batch; i++) {
        size_t ma = batch_offset(a, ob, rb, i), mb = batch_offset(b, ob, rb, i);
        for (size_t r = 0; r < m; r++)
            for (size_t c = 0; c < n; c++) {
                double s = 0, z = 1 + 0.01 * (double)(i * m * n + r * n + c);
                for (size_t q = 0; q < k; q++) {
                    s += opx(a, ma, ta, r, q) * opx(b, mb, tb, q, c);
                    /* Ā at op(A)(r, q) += ζ·op(B)(q, c); B̄ at op(B)(q, c) += op(A)(r, q)·ζ */
                    ga[ma + (ta ? q * ac + r : r * ac + q)] += z * opx(b, mb, tb, q, c);
                    gb[mb + (tb ? c * bc + q : q * bc + c)] += z * opx(a, ma, ta, r, q);
                }
                bad += fabs(tg_get(y, i * m * n + r * n + c) - s) > tol * (1 + fabs(s));
            }
    }
    CHECK(bad == 0, "matmul_t %s ta=%d tb=%d: %d values off", dt_name(dt), ta, tb, bad);
    int bad_a = 0, bad_b = 0;
    for (size_t e = 0; e < a->size; e++)
        bad_a += fabs(grad_at(a, e) - ga[e]) > tol * 4 * (1 + fabs(ga[e]));
    for (size_t e = 0; e < b->size; e++)
        bad_b += fabs(grad_at(b, e) - gb[e]) > tol * 4 * (1 + fabs(gb[e]));
    CHECK(bad_a == 0 && bad_b == 0, "matmul_t %s ta=%d tb=%d: adjoints off (A %d, B %d)",
          dt_name(dt), ta, tb, bad_a, bad_b);
    free(ga), free(gb), free(seed);
    tg_tensor_free(a), tg_tensor_free(b);
    tg_tape_free(t);
}

/* Stored shapes are (…, rows, cols) with the flags applied by check_case:
 * every case below is valid for ta = tb = 0 when k matches; for the other
 * flags the stored shapes are transposed on the fly. */
static void test_values(void) {
    /* op(A) batch×3×4, op(B) batch×4×2 */
    const mm_case base[] = {
        {2, {3, 4}, 2, {4, 2}},                /* plain */
        {3, {5, 3, 4}, 3, {5, 4, 2}},          /* equal batches */
        {3, {5, 3, 4}, 2, {4, 2}},             /* B broadcast over A's batch */
        {2, {3, 4}, 4, {2, 3, 4, 2}},          /* A broadcast, rank 2 against 4 */
        {4, {2, 1, 3, 4}, 3, {3, 4, 2}},       /* both broadcast: (2,1) and (3) */
        {5, {1, 2, 1, 3, 4}, 4, {2, 1, 4, 2}}, /* rank 5 */
        {3, {1, 1, 1}, 3, {4, 1, 1}},          /* 1×1 matrices */
    };
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (int dt = 0; dt < 2; dt++)
        for (size_t c = 0; c < sizeof base / sizeof base[0]; c++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    mm_case mc = base[c];
                    if (ta) { /* store A transposed */
                        size_t r = mc.a[mc.ra - 2];
                        mc.a[mc.ra - 2] = mc.a[mc.ra - 1], mc.a[mc.ra - 1] = r;
                    }
                    if (tb) {
                        size_t r = mc.b[mc.rb - 2];
                        mc.b[mc.rb - 2] = mc.b[mc.rb - 1], mc.b[mc.rb - 1] = r;
                    }
                    check_case(&mc, ta, tb, (tg_dtype)dt, &rng);
                }
    /* Attention: Q (2×4×16×8) · Kᵀ with K (2×4×16×8) stored. */
    const mm_case att = {4, {2, 4, 16, 8}, 4, {2, 4, 16, 8}};
    check_case(&att, 0, 1, TG_F32, &rng);
}

static void test_errors(void) {
    size_t s2[2] = {3, 4}, s3[3] = {2, 5, 2}, s1 = 4, s4[3] = {3, 4, 2};
    tg_tensor *a = leaf(0, TG_F64, 2, s2, NULL), *b = leaf(0, TG_F64, 3, s3, NULL);
    tg_tensor *v = leaf(0, TG_F64, 1, &s1, NULL), *c = leaf(0, TG_F64, 3, s4, NULL), *y;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_matmul_t(t, a, b, 0, 0, &y), TG_ERR_SHAPE,
               "batched_matmul: inner dimensions differ: (3x4)·(2x5x2)");
    EXPECT_ERR(tg_matmul_t(t, a, v, 0, 0, &y), TG_ERR_SHAPE, "needs rank >= 2 operands");
    tg_tensor *d = leaf(0, TG_F64, 3, (size_t[]){2, 2, 5}, NULL);
    EXPECT_ERR(tg_matmul_t(t, c, d, 0, 0, &y), TG_ERR_SHAPE, "batch axes of (3x4x2) and (2x2x5)");
    CHECK_OK(tg_matmul_t(t, a, a, 0, 1, &y)); /* A·Aᵀ: 3×3 */
    CHECK(y && y->rank == 2 && y->shape[0] == 3 && y->shape[1] == 3, "A·Aᵀ shape");
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(v), tg_tensor_free(c), tg_tensor_free(d);
    tg_tape_free(t);
}

/* Many items on two threads (whole items per thread, issue 17): values,
 * A's adjoint and the tangent are bitwise those of one thread. B is
 * broadcast over A's batch: its adjoint sums over items, item by item, each
 * product cut across the pool as any large one (then rounded apart: checked
 * against the loops by test_values on two threads). */
static void run_items(tg_tensor *a, tg_tensor *b, void *seed, void *tan, void **out) {
    tg_tape *t;
    tg_tensor *y = NULL;
    CHECK_OK(tg_tape_new(&t));
    tg_zero_grad(a), tg_zero_grad(b);
    CHECK_OK(tg_matmul_t(t, a, b, 0, 1, &y));
    if (y) CHECK_OK(tg_backward_seed(t, y, seed));
    const tg_tensor *leaves[2] = {a, b};
    const void *tans[2] = {tan, tan};
    if (y) CHECK_OK(tg_jvp(t, 2, leaves, tans));
    size_t ny = y ? y->size : 0;
    out[0] = malloc(4 * ny), out[1] = malloc(4 * a->size), out[2] = malloc(4 * b->size);
    out[3] = malloc(4 * ny);
    if (y && out[0] && out[1] && out[2] && out[3]) {
        memcpy(out[0], y->data, 4 * ny), memcpy(out[1], a->grad, 4 * a->size);
        memcpy(out[2], b->grad, 4 * b->size), memcpy(out[3], tg_tangent(t, y), 4 * ny);
    }
    tg_tape_free(t);
}

static void test_items_threads(void) {
    size_t as[4] = {8, 16, 64, 32}, bs[3] = {16, 64, 32};
    tg_tensor *a = leaf(1, TG_F32, 4, as, NULL), *b = leaf(1, TG_F32, 3, bs, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    if (!a || !b) return;
    tg_sample_fill(a, TG_DOM_REAL, 1, &rng);
    tg_sample_fill(b, TG_DOM_REAL, 1, &rng);
    void *seed = ramp(TG_F32, 8 * 16 * 64 * 64, 0.001), *tan = ramp(TG_F32, a->size, 0.01);
    void *one[4], *two[4];
    CHECK_OK(tg_set_threads(1));
    run_items(a, b, seed, tan, one);
    CHECK_OK(tg_set_threads(2));
    run_items(a, b, seed, tan, two);
    CHECK_OK(tg_set_threads(1));
    size_t bytes[4] = {4 * 8 * 16 * 64 * 64, 4 * a->size, 4 * b->size, 4 * 8 * 16 * 64 * 64};
    static const char *what[4] = {"values", "A's adjoint", "B's adjoint", "tangent"};
    for (int i = 0; i < 4; i++) {
        CHECK(i == 2 || (one[i] && two[i] && memcmp(one[i], two[i], bytes[i]) == 0),
              "%s differ between 1 and 2 threads", what[i]);
        free(one[i]), free(two[i]);
    }
    free(seed), free(tan);
    tg_tensor_free(a), tg_tensor_free(b);
}

int main(void) {
    test_values();
    test_errors();
    test_items_threads();
    /* the same checks against the loops with the products on two threads */
    CHECK_OK(tg_set_threads(2));
    test_values();
    return check_summary();
}
