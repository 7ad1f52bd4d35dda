/* Broadcasting binary ops (issue 14), exhaustively: every pair of shapes
 * of rank 0..4 with each dimension 1 or 3 (31 shapes, 961 pairs, all
 * compatible), for add, sub, mul, div, pow, maximum, minimum, float32 and
 * float64: the values, both adjoints and the tangent against a naive
 * reference computed here by explicit index arithmetic (the output's
 * multi-index, each operand's index with its size-1 and missing axes at 0).
 * The inputs are op results (scale by 1), so the tape's hand-over of the
 * output's adjoint to an identity input (add, sub) is exercised where the
 * input has the output's size and must not happen where it is stretched.
 * Also op(x, x) (one tensor as both inputs), and incompatible pairs: every
 * compatible pair with a 3 made 2 where both operands have 3 on that axis
 * gives TG_ERR_SHAPE naming both shapes. */
#include "check.h"
#include "tapegrad.h"

#include <stdlib.h>

#define NSHAPES 31 /* 1 + 2 + 4 + 8 + 16 */
#define MAXN    81 /* 3^4 elements at most */

typedef struct shape {
    int rank;
    size_t d[4];
} shape;

static shape shapes[NSHAPES];

static void make_shapes(void) {
    int k = 0;
    for (int r = 0; r <= 4; r++)
        for (int bits = 0; bits < 1 << r; bits++, k++) {
            shapes[k].rank = r;
            for (int a = 0; a < r; a++)
                shapes[k].d[a] = bits >> a & 1 ? 3 : 1;
        }
}

/* The ops with their value and partials in double (the reference). */
typedef struct binop {
    const char *name;
    tg_status (*fn)(tg_tape *, const tg_tensor *, const tg_tensor *, tg_tensor **);
    int pos_a; /* pow: a positive base */
} binop;

static double ref_f(int op, double a, double b) {
    switch (op) {
    case 0:
        return a + b;
    case 1:
        return a - b;
    case 2:
        return a * b;
    case 3:
        return a / b;
    case 4:
        return pow(a, b);
    case 5:
        return a > b ? a : b;
    default:
        return a < b ? a : b;
    }
}
/* ∂F/∂a (w = 0) or ∂F/∂b (w = 1); max/min split ½ each at a tie (torch). */
static double ref_d(int op, int w, double a, double b) {
    switch (op) {
    case 0:
        return 1;
    case 1:
        return w ? -1 : 1;
    case 2:
        return w ? a : b;
    case 3:
        return w ? -a / (b * b) : 1 / b;
    case 4:
        return w ? pow(a, b) * log(a) : b == 0 ? 0 : b * pow(a, b - 1);
    case 5:
        return a == b ? 0.5 : (w ? b > a : a > b);
    default:
        return a == b ? 0.5 : (w ? b < a : a < b);
    }
}

static const binop ops[] = {
    {"add", tg_add, 0}, {"sub", tg_sub, 0},         {"mul", tg_mul, 0},        {"div", tg_div, 0},
    {"pow", tg_pow, 1}, {"maximum", tg_maximum, 0}, {"minimum", tg_minimum, 0}};
#define NOPS (sizeof ops / sizeof ops[0])

/* Values: few distinct ones, so that maximum and minimum meet ties; b
 * never 0 (div); a pow base positive, exponents including 0. */
static double value(int op, int which, size_t i) {
    static const double va[] = {-1.5, 0.5, 2, -0.25, 1, 0.5, 3}, vb[] = {0.5, -1, 2, 0.5, 1.5, -2};
    static const double pa[] = {0.5, 1.5, 2, 1, 3}, pb[] = {0, 2, -1, 0.5, 3};
    if (ops[op].pos_a) return which ? pb[i % 5] : pa[(i * 3 + 1) % 5];
    return which ? vb[(i * 5 + 2) % 6] : va[i % 7];
}

/* Element index of an operand of shape s at output multi-index idx (rank R). */
static size_t operand_index(const shape *s, const size_t *idx, int R) {
    size_t k = 0;
    for (int a = 0; a < s->rank; a++) {
        size_t i = idx[R - s->rank + a];
        k = k * s->d[a] + (s->d[a] == 1 ? 0 : i);
    }
    return k;
}

static size_t size_of(const shape *s) {
    size_t n = 1;
    for (int a = 0; a < s->rank; a++)
        n *= s->d[a];
    return n;
}

/* |got − want| within tol relative to the scale of the terms summed. */
static int close_to(double got, double want, double scale, double tol) {
    return fabs(got - want) <= tol * (scale + 1e-300) || (isnan(got) && isnan(want));
}

/* One op on one pair in one dtype. Tolerances: float64 values and terms
 * are within 1 ulp (pow: libm's ≤ 1 ulp) and the adjoints are sums of at
 * most 81 terms, so 1e-13 relative to Σ|terms| is loose; float32 runs in
 * float (unit roundoff 6e-8): 81 terms give at most ~5e-6, so 2e-5. */
static void check_pair(int op, const shape *sa, const shape *sb, tg_dtype dt) {
    const double tol = dt == TG_F32 ? 2e-5 : 1e-13;
    const int R = sa->rank > sb->rank ? sa->rank : sb->rank;
    size_t od[4], osize = 1;
    for (int a = 0; a < R; a++) {
        int ia = a - (R - sa->rank), ib = a - (R - sb->rank);
        size_t da = ia >= 0 ? sa->d[ia] : 1, db = ib >= 0 ? sb->d[ib] : 1;
        od[a] = da > db ? da : db;
        osize *= od[a];
    }
    size_t na = size_of(sa), nb = size_of(sb);
    tg_tensor *pa = NULL, *pb = NULL, *y = NULL, *xa = NULL, *xb = NULL;
    CHECK_OK(tg_param_new(&pa, dt, sa->rank, sa->d));
    CHECK_OK(tg_param_new(&pb, dt, sb->rank, sb->d));
    for (size_t i = 0; i < na; i++)
        tg_set(pa, i, value(op, 0, i));
    for (size_t i = 0; i < nb; i++)
        tg_set(pb, i, value(op, 1, i));
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_scale(t, pa, 1.0, &xa)); /* nodes: the tape may hand adjoints over */
    CHECK_OK(tg_scale(t, pb, 1.0, &xb));
    CHECK_OK(ops[op].fn(t, xa, xb, &y));
    if (!y) goto done;
    CHECK(y->rank == R && y->size == osize, "%s: rank %d size %zu, want %d, %zu", ops[op].name,
          y->rank, y->size, R, osize);
    /* The seed ζ and tangents ξ: small dyadic ramps. */
    double zeta[MAXN], ta[MAXN], tb[MAXN];
    float zf[MAXN], taf[MAXN], tbf[MAXN];
    for (size_t k = 0; k < MAXN; k++) {
        zeta[k] = 0.25 * (double)(k % 5) - 0.5, ta[k] = 0.5 * (double)(k % 3) - 0.25;
        tb[k] = 1 - 0.25 * (double)(k % 4);
        zf[k] = (float)zeta[k], taf[k] = (float)ta[k], tbf[k] = (float)tb[k];
    }
    CHECK_OK(tg_backward_seed(t, y, dt == TG_F32 ? (const void *)zf : (const void *)zeta));
    const tg_tensor *leaves[2] = {pa, pb};
    const void *tans[2] = {dt == TG_F32 ? (const void *)taf : (const void *)ta,
                           dt == TG_F32 ? (const void *)tbf : (const void *)tb};
    CHECK_OK(tg_jvp(t, 2, leaves, tans));
    const void *ty = tg_tangent(t, y);
    /* The reference, by the output's multi-index. */
    double ga[MAXN] = {0}, gb[MAXN] = {0}, sga[MAXN] = {0}, sgb[MAXN] = {0};
    int bad_y = 0, bad_t = 0, bad_g = 0;
    size_t idx[4] = {0};
    for (size_t o = 0; o < osize; o++) {
        size_t rem = o;
        for (int a = R - 1; a >= 0; a--)
            idx[a] = rem % od[a], rem /= od[a];
        size_t ia = operand_index(sa, idx, R), ib = operand_index(sb, idx, R);
        double a = tg_get(pa, ia), b = tg_get(pb, ib);
        double want = ref_f(op, a, b), fa = ref_d(op, 0, a, b), fb = ref_d(op, 1, a, b);
        bad_y += !close_to(tg_get(y, o), want, fabs(want), tol);
        double tw = fa * ta[ia] + fb * tb[ib], ts = fabs(fa * ta[ia]) + fabs(fb * tb[ib]);
        double tg = ty ? (dt == TG_F32 ? ((const float *)ty)[o] : ((const double *)ty)[o]) : 0;
        bad_t += !close_to(tg, tw, ts, tol);
        ga[ia] += fa * zeta[o], sga[ia] += fabs(fa * zeta[o]);
        gb[ib] += fb * zeta[o], sgb[ib] += fabs(fb * zeta[o]);
    }
    for (size_t i = 0; i < na; i++) {
        double g = dt == TG_F32 ? ((float *)pa->grad)[i] : ((double *)pa->grad)[i];
        bad_g += !close_to(g, ga[i], sga[i], tol);
    }
    for (size_t i = 0; i < nb; i++) {
        double g = dt == TG_F32 ? ((float *)pb->grad)[i] : ((double *)pb->grad)[i];
        bad_g += !close_to(g, gb[i], sgb[i], tol);
    }
    char s1[64], s2[64];
    CHECK(!bad_y && !bad_t && !bad_g, "%s %s %s %s: %d values, %d tangents, %d adjoints wrong",
          ops[op].name, dt == TG_F32 ? "f32" : "f64", tg_shape_str(pa, s1, sizeof s1),
          tg_shape_str(pb, s2, sizeof s2), bad_y, bad_t, bad_g);
done:
    tg_tensor_free(pa), tg_tensor_free(pb);
    tg_tape_free(t);
}

static void test_all_pairs(void) {
    for (int dt = 0; dt < 2; dt++)
        for (size_t op = 0; op < NOPS; op++)
            for (int i = 0; i < NSHAPES; i++)
                for (int j = 0; j < NSHAPES; j++)
                    check_pair((int)op, &shapes[i], &shapes[j], (tg_dtype)dt);
}

/* op(x, x): one tensor as both inputs (no hand-over; gin[0] == gin[1]):
 * the adjoint is (F_a + F_b)·ζ at each element. */
static void test_same_input(void) {
    for (size_t op = 0; op < NOPS; op++)
        for (int i = 0; i < NSHAPES; i++) {
            const shape *s = &shapes[i];
            size_t n = size_of(s);
            tg_tensor *p = NULL, *x = NULL, *y = NULL;
            CHECK_OK(tg_param_new(&p, TG_F64, s->rank, s->d));
            for (size_t e = 0; e < n; e++)
                tg_set(p, e, value((int)op, 0, e));
            tg_tape *t;
            CHECK_OK(tg_tape_new(&t));
            CHECK_OK(tg_scale(t, p, 1.0, &x));
            CHECK_OK(ops[op].fn(t, x, x, &y));
            double zeta[MAXN];
            for (size_t e = 0; e < n; e++)
                zeta[e] = 0.5 + 0.25 * (double)e;
            CHECK_OK(tg_backward_seed(t, y, zeta));
            int bad = 0;
            for (size_t e = 0; e < n; e++) {
                double v = tg_get(p, e), da = ref_d((int)op, 0, v, v), db = ref_d((int)op, 1, v, v);
                /* scale: the terms, not their sum (div: 1/x − 1/x = 0, up to rounding) */
                bad += !close_to(((double *)p->grad)[e], (da + db) * zeta[e],
                                 (fabs(da) + fabs(db)) * fabs(zeta[e]), 1e-13);
                bad += !close_to(tg_get(y, e), ref_f((int)op, v, v), fabs(ref_f((int)op, v, v)),
                                 1e-13);
            }
            CHECK(!bad, "%s(x, x) rank %d: %d elements wrong", ops[op].name, s->rank, bad);
            tg_tensor_free(p);
            tg_tape_free(t);
        }
}

/* Incompatible: every pair whose aligned axis holds 3 in both, with a's 3
 * made 2 there. The status is TG_ERR_SHAPE, *out NULL, nothing recorded,
 * and the message names the op and both shapes. */
static void test_incompatible(void) {
    int tested = 0;
    for (size_t op = 0; op < NOPS; op++)
        for (int i = 0; i < NSHAPES; i++)
            for (int j = 0; j < NSHAPES; j++) {
                const shape *sa = &shapes[i], *sb = &shapes[j];
                for (int a = 0; a < sa->rank; a++) {
                    int b = a - sa->rank + sb->rank;
                    if (b < 0 || sa->d[a] != 3 || sb->d[b] != 3) continue;
                    shape bad = *sa;
                    bad.d[a] = 2;
                    tg_tensor *x = NULL, *z = NULL, *y = (tg_tensor *)1;
                    CHECK_OK(tg_tensor_new(&x, TG_F32, bad.rank, bad.d));
                    CHECK_OK(tg_tensor_new(&z, TG_F32, sb->rank, sb->d));
                    tg_tape *t;
                    CHECK_OK(tg_tape_new(&t));
                    tg_status s = ops[op].fn(t, x, z, &y);
                    char s1[64], s2[64], want[200];
                    snprintf(want, sizeof want, "%s: shapes %s and %s do not broadcast",
                             ops[op].name, tg_shape_str(x, s1, sizeof s1),
                             tg_shape_str(z, s2, sizeof s2));
                    CHECK(s == TG_ERR_SHAPE && y == NULL && tg_tape_size(t) == 0 &&
                              strstr(tg_last_error(), want) != NULL,
                          "%s: %s, message '%s', want '%s'", ops[op].name, tg_status_name(s),
                          tg_last_error(), want);
                    tested++;
                    tg_tensor_free(x), tg_tensor_free(z);
                    tg_tape_free(t);
                }
            }
    CHECK(tested > 1000, "only %d incompatible pairs", tested);
}

/* The message of the example, spelt out. */
static void test_message(void) {
    size_t s34[2] = {3, 4}, s54[2] = {5, 4};
    tg_tensor *a = NULL, *b = NULL, *y = NULL;
    CHECK_OK(tg_tensor_new(&a, TG_F64, 2, s34));
    CHECK_OK(tg_tensor_new(&b, TG_F64, 2, s54));
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_mul(t, a, b, &y), TG_ERR_SHAPE,
               "mul: shapes (3x4) and (5x4) do not broadcast at axis -2 (3 vs 5)");
    tg_tensor_free(a), tg_tensor_free(b);
    tg_tape_free(t);
}

int main(void) {
    make_shapes();
    test_all_pairs();
    test_same_input();
    test_incompatible();
    test_message();
    return check_summary();
}
