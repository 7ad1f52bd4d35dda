/* Forward values of the ops against independent naive computations, in
 * float64. (gradcheck only shows that d and r match the forward; this shows
 * the forward is the function it claims to be.) Tolerance 1e-13 relative:
 * the naive code and the op do the same operations in maybe another order,
 * so they differ by a few ulps of the largest partial sum. */
#include "check.h"

#define TOL 1e-13

static tg_tensor *leaf(int param, int rank, size_t d0, size_t d1, tg_rng *g) {
    size_t shape[2] = {d0, d1};
    tg_tensor *t = NULL;
    CHECK_OK(param ? tg_param_new(&t, TG_F64, rank, shape)
                   : tg_tensor_new(&t, TG_F64, rank, shape));
    for (size_t i = 0; t && i < t->size; i++)
        tg_set(t, i, tg_rng_normal(g));
    return t;
}

static double at(const tg_tensor *t, size_t i) {
    return tg_get(t, i);
}

static void test_matmul_bias(tg_tape *t, tg_rng *g) {
    tg_tensor *a = leaf(0, 2, 3, 4, g), *b = leaf(1, 2, 4, 5, g), *bias = leaf(1, 1, 5, 1, g);
    tg_tensor *c, *z;
    CHECK_OK(tg_matmul(t, a, b, &c));
    CHECK_OK(tg_bias_add(t, c, bias, &z));
    CHECK(c->rank == 2 && c->shape[0] == 3 && c->shape[1] == 5, "matmul shape");
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 5; j++) {
            double s = 0;
            for (size_t k = 0; k < 4; k++)
                s += at(a, i * 4 + k) * at(b, k * 5 + j);
            CHECK_CLOSE(at(c, i * 5 + j), s, TOL);
            CHECK_CLOSE(at(z, i * 5 + j), s + at(bias, j), TOL);
        }
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(bias);
}

static void test_activations(tg_tape *t, tg_rng *g) {
    tg_tensor *x = leaf(0, 2, 4, 6, g), *y[5];
    CHECK_OK(tg_sigmoid(t, x, &y[0]));
    CHECK_OK(tg_tanh(t, x, &y[1]));
    CHECK_OK(tg_relu(t, x, &y[2]));
    CHECK_OK(tg_leaky_relu(t, x, 0.1, &y[3]));
    CHECK_OK(tg_softmax(t, x, &y[4]));
    for (size_t i = 0; i < x->size; i++) {
        double v = at(x, i);
        CHECK_CLOSE(at(y[0], i), 1 / (1 + exp(-v)), TOL);
        CHECK_CLOSE(at(y[1], i), tanh(v), TOL);
        CHECK_CLOSE(at(y[2], i), v > 0 ? v : 0, TOL);
        CHECK_CLOSE(at(y[3], i), v > 0 ? v : 0.1 * v, TOL);
    }
    for (size_t r = 0; r < 4; r++) {
        double s = 0, tot = 0;
        for (size_t j = 0; j < 6; j++)
            s += exp(at(x, r * 6 + j));
        for (size_t j = 0; j < 6; j++) {
            CHECK_CLOSE(at(y[4], r * 6 + j), exp(at(x, r * 6 + j)) / s, TOL);
            tot += at(y[4], r * 6 + j);
        }
        CHECK_CLOSE(tot, 1.0, TOL);
    }
    tg_tensor_free(x);
}

/* Softmax of huge logits must not overflow (max subtracted). */
static void test_softmax_stable(tg_tape *t) {
    size_t shape[2] = {1, 3};
    tg_tensor *x, *y;
    CHECK_OK(tg_tensor_new(&x, TG_F32, 2, shape));
    double v[3] = {1000, 1001, 999};
    CHECK_OK(tg_fill(x, v, 3));
    CHECK_OK(tg_softmax(t, x, &y));
    double s = exp(-1) + 1 + exp(-2);
    CHECK_CLOSE(at(y, 1), 1 / s, 1e-6); /* float32: unit roundoff 6e-8, a few ops */
    tg_tensor_free(x);
}

static void test_elementwise_reduce(tg_tape *t, tg_rng *g) {
    tg_tensor *a = leaf(0, 2, 3, 4, g), *b = leaf(0, 2, 3, 4, g), *y[4], *r[4];
    CHECK_OK(tg_add(t, a, b, &y[0]));
    CHECK_OK(tg_sub(t, a, b, &y[1]));
    CHECK_OK(tg_mul(t, a, b, &y[2]));
    CHECK_OK(tg_scale(t, a, -2.5, &y[3]));
    double sum = 0, col[4] = {0}, row[3] = {0};
    for (size_t i = 0; i < 12; i++) {
        CHECK_CLOSE(at(y[0], i), at(a, i) + at(b, i), TOL);
        CHECK_CLOSE(at(y[1], i), at(a, i) - at(b, i), TOL);
        CHECK_CLOSE(at(y[2], i), at(a, i) * at(b, i), TOL);
        CHECK_CLOSE(at(y[3], i), -2.5 * at(a, i), TOL);
        sum += at(a, i), col[i % 4] += at(a, i), row[i / 4] += at(a, i);
    }
    CHECK_OK(tg_sum(t, a, &r[0]));
    CHECK_OK(tg_mean(t, a, &r[1]));
    CHECK_OK(tg_sum_axis(t, a, 0, &r[2]));
    CHECK_OK(tg_mean_axis(t, a, -1, &r[3]));
    CHECK(r[0]->rank == 0 && r[2]->rank == 1 && r[2]->shape[0] == 4 && r[3]->shape[0] == 3,
          "reduction shapes");
    CHECK_CLOSE(at(r[0], 0), sum, TOL);
    CHECK_CLOSE(at(r[1], 0), sum / 12, TOL);
    for (size_t j = 0; j < 4; j++)
        CHECK_CLOSE(at(r[2], j), col[j], TOL);
    for (size_t i = 0; i < 3; i++)
        CHECK_CLOSE(at(r[3], i), row[i] / 4, TOL);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* Loss values against the textbook formulas (numbers chosen by hand). */
static void test_losses(tg_tape *t) {
    size_t s4[1] = {4}, s23[2] = {2, 3}, s2[1] = {2};
    tg_tensor *p, *y, *x, *l, *lab, *oh, *c;
    CHECK_OK(tg_tensor_new(&p, TG_F64, 1, s4));
    CHECK_OK(tg_tensor_new(&y, TG_F64, 1, s4));
    CHECK_OK(tg_tensor_new(&x, TG_F64, 1, s4));
    double pv[4] = {0.9, 0.2, 0.6, 0.0}, yv[4] = {1, 0, 0, 1}, xv[4] = {2.0, -1.0, 0.5, -800};
    tg_fill(p, pv, 4), tg_fill(y, yv, 4), tg_fill(x, xv, 4);
    CHECK_OK(tg_bce(t, p, y, &c));
    /* log(0) clamps at −100 (PyTorch) */
    CHECK_CLOSE(at(c, 0), (-log(0.9) - log(0.8) - log(0.4) + 100) / 4, TOL);
    CHECK_OK(tg_bce_logits(t, x, y, &c));
    double e = 0; /* −y log σ(x) − (1−y) log(1−σ(x)); the last term is 800 exactly */
    for (int i = 0; i < 3; i++)
        e += yv[i] ? -log(1 / (1 + exp(-xv[i]))) : -log(1 - 1 / (1 + exp(-xv[i])));
    CHECK_CLOSE(at(c, 0), (e + 800) / 4, TOL);
    CHECK_OK(tg_sse(t, p, y, &c));
    CHECK_CLOSE(at(c, 0), 0.01 + 0.04 + 0.36 + 1, TOL);
    CHECK_OK(tg_mse(t, p, y, &c));
    CHECK_CLOSE(at(c, 0), (0.01 + 0.04 + 0.36 + 1) / 4, TOL);

    CHECK_OK(tg_tensor_new(&l, TG_F64, 2, s23));
    CHECK_OK(tg_tensor_new(&lab, TG_F64, 1, s2));
    CHECK_OK(tg_tensor_new(&oh, TG_F64, 2, s23));
    double lv[6] = {1, 2, 3, 1000, -1000, 0}, labv[2] = {2, 0}, ohv[6] = {0, 0, 1, 1, 0, 0};
    tg_fill(l, lv, 6), tg_fill(lab, labv, 2), tg_fill(oh, ohv, 6);
    double want = (-(3 - log(exp(1) + exp(2) + exp(3))) + 0.0) / 2; /* row 2: −log 1 = 0 */
    CHECK_OK(tg_softmax_ce(t, l, lab, &c));
    CHECK_CLOSE(at(c, 0), want, TOL);
    CHECK_OK(tg_softmax_ce_onehot(t, l, oh, &c));
    CHECK_CLOSE(at(c, 0), want, TOL);
    tg_tensor *w;
    CHECK_OK(tg_tensor_new(&w, TG_F64, 1, s2));
    double wv[2] = {3, -4};
    tg_fill(w, wv, 2);
    CHECK_OK(tg_l2(t, w, 0.1, 5, &c));
    CHECK_CLOSE(at(c, 0), 0.1 / 10 * 25, TOL);
    CHECK_OK(tg_l1(t, w, 0.1, 5, &c));
    CHECK_CLOSE(at(c, 0), 0.1 / 10 * 7, TOL);
    tg_tensor *all[] = {p, y, x, l, lab, oh, w};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tg_tensor_free(all[i]);
}

int main(void) {
    tg_tape *t;
    tg_rng g;
    tg_rng_seed(&g, 7);
    CHECK_OK(tg_tape_new(&t));
    test_matmul_bias(t, &g);
    test_activations(t, &g);
    test_softmax_stable(t);
    test_elementwise_reduce(t, &g);
    test_losses(t);
    tg_tape_free(t);
    return check_summary();
}
