/* The seed's closed-form gradients (notes 001), reproduced with the tape.
 *
 *  - §1.2 logistic regression: a = σ(Xw + b), 𝕁 = mean log-loss,
 *        ∂𝕁/∂w = (1/n)·Xᵀ(a − y),  ∂𝕁/∂b = (1/n)·Σ(a − y),
 *    with the cost built as tg_bce(σ(z), y) and as tg_bce_logits(z, y);
 *  - §2.1/§2.3 two-layer network (tanh hidden layer, sigmoid output, log-loss):
 *        δ[2] = a[2] − y,            ∂𝕁/∂W[2] = (1/n)·a[1]ᵀδ[2],  ∂𝕁/∂b[2] = (1/n)·Σδ[2],
 *        δ[1] = (δ[2]·W[2]ᵀ) ⊙ g′(z[1]),  ∂𝕁/∂W[1] = (1/n)·Xᵀδ[1],   ∂𝕁/∂b[1] = (1/n)·Σδ[1];
 *  - §3.1 L-layer recursion (L = 4, widths 5-4-3-2-1, relu hidden, sigmoid output):
 *        dZ[L] = A[L] − Y,  dW[l] = (1/n)·A[l−1]ᵀdZ[l],  db[l] = (1/n)·Σ_rows dZ[l],
 *        dA[l−1] = dZ[l]·W[l]ᵀ,  dZ[l] = dA[l] ⊙ g′(Z[l]);
 *  - the seed's regularised cost 𝕁 + λ/(2n)·Σ‖W[l]‖² (cost_function with lp_reg = 2),
 *    whose gradient gains (λ/n)·W[l] on every weight matrix (not on the biases).
 *
 * The seed writes examples in columns; here they are rows (n×d), so its
 * Z = W·X + b reads Z = X·W + b with W stored d_in×d_out, and its
 * (1/n)·δ·xᵀ reads (1/n)·Xᵀ·δ. The closed forms are evaluated by hand with
 * plain loops, independently of the tape, and compared in float64.
 *
 * Tolerance 1e-12 relative to max(1, |value|): both sides are the same
 * arithmetic (the same products and sums, σ, tanh, log) in a different
 * rounding order — BLAS vs. loops, the loss's r-map (−y/a + (1−y)/(1−a))·a(1−a)
 * vs. the simplified a − y — in float64 with at most a few hundred terms per
 * value, all of size O(1). Their differences are ~1e-14 at most; a wrong
 * map (a missing term, a transposed index, a lost 1/n) errs by O(0.01..1). */
#include "check.h"
#include "tapegrad.h"

#include <stdlib.h>

#define TOL  1e-12
#define MAXW 8  /* widest layer */
#define MAXN 16 /* most examples */

static double sigm(double z) {
    return 1.0 / (1.0 + exp(-z));
}

static tg_tensor *new_leaf(int param, int rank, size_t r, size_t c) {
    tg_tensor *t = NULL;
    size_t shape[2] = {r, c};
    if (rank == 1) shape[0] = r * c;
    CHECK_OK(param ? tg_param_new(&t, TG_F64, rank, shape)
                   : tg_tensor_new(&t, TG_F64, rank, shape));
    return t;
}

static void fill_normal(tg_tensor *t, tg_rng *g, double mean, double scale) {
    for (size_t i = 0; i < t->size; i++)
        tg_set(t, i, mean + scale * tg_rng_normal(g));
}

static void fill_labels(tg_tensor *t, tg_rng *g) {
    for (size_t i = 0; i < t->size; i++)
        tg_set(t, i, tg_rng_uniform(g) < 0.5 ? 0.0 : 1.0);
}

static const double *val(const tg_tensor *t) {
    return (const double *)t->data;
}
static const double *grd(const tg_tensor *t) {
    return (const double *)t->grad;
}

/* Every element of the tape's gradient against the hand-computed one. */
static void check_grad(const char *what, const tg_tensor *p, const double *hand) {
    double worst = 0;
    for (size_t i = 0; i < p->size; i++) {
        double a = grd(p)[i], b = hand[i];
        double s = fmax(1.0, fmax(fabs(a), fabs(b)));
        worst = fmax(worst, fabs(a - b) / s);
        CHECK_CLOSE(a, b, TOL);
    }
    if (worst > TOL) fprintf(stderr, "  (%s: worst relative difference %.3g)\n", what, worst);
}

/* Hand: the mean log-loss 𝕁 = −(1/n)·Σ[y·log a + (1−y)·log(1−a)]. */
static double hand_logloss(size_t n, const double *a, const double *y) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += y[i] * log(a[i]) + (1 - y[i]) * log(1 - a[i]);
    return -s / (double)n;
}

/* Hand: Z = A·W + b, A n×din, W din×dout, b of size dout (rows layout). */
static void hand_affine(size_t n, size_t din, size_t dout, const double *A, const double *W,
                        const double *b, double *Z) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dout; j++) {
            double s = b[j];
            for (size_t k = 0; k < din; k++)
                s += A[i * din + k] * W[k * dout + j];
            Z[i * dout + j] = s;
        }
}

/* Hand, one layer backwards (§2.1 / §3.1 in rows layout), from the unscaled
 * error δ = dZ (n×dout):
 *   dW = (1/n)·Aprevᵀ·δ + (λ/n)·W,  db = (1/n)·Σ_rows δ,  dAprev = δ·Wᵀ (if wanted). */
static void hand_layer_back(size_t n, size_t din, size_t dout, const double *Aprev,
                            const double *dZ, const double *W, double lambda, double *dW,
                            double *db, double *dAprev) {
    double inv = 1.0 / (double)n;
    for (size_t k = 0; k < din; k++)
        for (size_t j = 0; j < dout; j++) {
            double s = 0;
            for (size_t i = 0; i < n; i++)
                s += Aprev[i * din + k] * dZ[i * dout + j];
            dW[k * dout + j] = inv * s + lambda * inv * W[k * dout + j];
        }
    for (size_t j = 0; j < dout; j++) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += dZ[i * dout + j];
        db[j] = inv * s;
    }
    if (dAprev)
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < din; k++) {
                double s = 0;
                for (size_t j = 0; j < dout; j++)
                    s += dZ[i * dout + j] * W[k * dout + j];
                dAprev[i * din + k] = s;
            }
}

/* The seed's R = λ/(2n)·‖W‖² by hand. */
static double hand_l2(const tg_tensor *w, double lambda, double n) {
    double s = 0;
    for (size_t i = 0; i < w->size; i++)
        s += val(w)[i] * val(w)[i];
    return lambda / (2 * n) * s;
}

/* cost += λ/(2n)·‖W‖² on the tape (nothing when λ = 0). */
static void tape_add_l2(tg_tape *t, tg_tensor **cost, const tg_tensor *w, double lambda, double n) {
    if (lambda == 0) return;
    tg_tensor *r = NULL;
    CHECK_OK(tg_l2(t, w, lambda, n, &r));
    CHECK_OK(tg_add(t, *cost, r, cost));
}

/* ------------------------------------------------ §1.2 logistic regression */

enum { VIA_BCE = 0, VIA_LOGITS = 1 };

static void check_logistic(int via, double lambda) {
    enum { N = 9, D = 4 };
    tg_rng g;
    tg_rng_seed(&g, 101);
    tg_tensor *x = new_leaf(0, 2, N, D), *y = new_leaf(0, 2, N, 1);
    tg_tensor *w = new_leaf(1, 2, D, 1), *b = new_leaf(1, 1, 1, 1);
    fill_normal(x, &g, 0, 1), fill_labels(y, &g);
    fill_normal(w, &g, 0, 0.5), fill_normal(b, &g, 0, 0.5);

    tg_tape *t;
    tg_tensor *z, *a, *cost;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_matmul(t, x, w, &z));   /* φ: Xw */
    CHECK_OK(tg_bias_add(t, z, b, &z)); /* ψ: + b */
    if (via == VIA_BCE) {
        CHECK_OK(tg_sigmoid(t, z, &a));
        CHECK_OK(tg_bce(t, a, y, &cost));
    } else {
        CHECK_OK(tg_bce_logits(t, z, y, &cost));
    }
    tape_add_l2(t, &cost, w, lambda, N);
    CHECK(cost->size == 1, "cost has %zu elements", cost->size);
    CHECK_OK(tg_backward(t, cost));

    /* By hand: a_i = σ(x_i·w + b), then the §1.2 gradients. */
    const double *X = val(x), *Y = val(y), *W = val(w);
    double ah[N], gw[D], gb = 0;
    for (size_t i = 0; i < N; i++) {
        double s = val(b)[0];
        for (size_t k = 0; k < D; k++)
            s += X[i * D + k] * W[k];
        ah[i] = sigm(s);
    }
    for (size_t k = 0; k < D; k++) {
        double s = 0;
        for (size_t i = 0; i < N; i++)
            s += X[i * D + k] * (ah[i] - Y[i]);
        gw[k] = s / N + lambda / N * W[k]; /* (1/n)·Xᵀ(a − y) + (λ/n)·w */
    }
    for (size_t i = 0; i < N; i++)
        gb += ah[i] - Y[i];
    gb /= N; /* (1/n)·Σ(a − y) */

    if (via == VIA_BCE)
        for (size_t i = 0; i < N; i++)
            CHECK_CLOSE(tg_get(a, i), ah[i], TOL);
    CHECK_CLOSE(tg_get(cost, 0), hand_logloss(N, ah, Y) + hand_l2(w, lambda, N), TOL);
    check_grad(via == VIA_BCE ? "logistic bce dw" : "logistic logits dw", w, gw);
    check_grad(via == VIA_BCE ? "logistic bce db" : "logistic logits db", b, &gb);

    tg_tape_free(t);
    tg_tensor *all[] = {x, y, w, b};
    for (int i = 0; i < 4; i++)
        tg_tensor_free(all[i]);
}

/* ------------------------------------------------ §2.1, §2.3 two-layer net */

static void check_two_layer(int via, double lambda) {
    enum { N = 8, D0 = 3, D1 = 5 };
    tg_rng g;
    tg_rng_seed(&g, 202);
    tg_tensor *x = new_leaf(0, 2, N, D0), *y = new_leaf(0, 2, N, 1);
    tg_tensor *w1 = new_leaf(1, 2, D0, D1), *b1 = new_leaf(1, 1, 1, D1);
    tg_tensor *w2 = new_leaf(1, 2, D1, 1), *b2 = new_leaf(1, 1, 1, 1);
    fill_normal(x, &g, 0, 1), fill_labels(y, &g);
    fill_normal(w1, &g, 0, 0.7), fill_normal(b1, &g, 0, 0.3);
    fill_normal(w2, &g, 0, 0.7), fill_normal(b2, &g, 0, 0.3);

    tg_tape *t;
    tg_tensor *z1, *a1, *z2, *a2, *cost;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_matmul(t, x, w1, &z1));
    CHECK_OK(tg_bias_add(t, z1, b1, &z1));
    CHECK_OK(tg_tanh(t, z1, &a1)); /* g[1] = tanh */
    CHECK_OK(tg_matmul(t, a1, w2, &z2));
    CHECK_OK(tg_bias_add(t, z2, b2, &z2));
    if (via == VIA_BCE) {
        CHECK_OK(tg_sigmoid(t, z2, &a2)); /* g[2] = σ */
        CHECK_OK(tg_bce(t, a2, y, &cost));
    } else {
        CHECK_OK(tg_bce_logits(t, z2, y, &cost));
    }
    tape_add_l2(t, &cost, w1, lambda, N);
    tape_add_l2(t, &cost, w2, lambda, N);
    CHECK_OK(tg_backward(t, cost));

    /* By hand: forward, then δ[2], δ[1] and the four gradients of §2.1. */
    const double *X = val(x), *Y = val(y), *W1 = val(w1), *W2 = val(w2);
    double Z1[N * D1], A1[N * D1], Z2[N], A2[N];
    hand_affine(N, D0, D1, X, W1, val(b1), Z1);
    for (size_t i = 0; i < N * D1; i++)
        A1[i] = tanh(Z1[i]);
    hand_affine(N, D1, 1, A1, W2, val(b2), Z2);
    for (size_t i = 0; i < N; i++)
        A2[i] = sigm(Z2[i]);

    double d2[N], d1[N * D1], gW2[D1], gb2[1], gW1[D0 * D1], gb1[D1];
    for (size_t i = 0; i < N; i++)
        d2[i] = A2[i] - Y[i]; /* δ[2] = a[2] − y */
    /* δ[1] = (δ[2]·W[2]ᵀ) ⊙ g[1]′(z[1]), tanh′ = 1 − a[1]² */
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < D1; k++) {
            double a = A1[i * D1 + k];
            d1[i * D1 + k] = d2[i] * W2[k] * (1 - a * a);
        }
    /* (1/n)·a[1]ᵀδ[2], (1/n)·Σδ[2]; (1/n)·Xᵀδ[1], (1/n)·Σδ[1] (+ (λ/n)·W) */
    hand_layer_back(N, D1, 1, A1, d2, W2, lambda, gW2, gb2, NULL);
    hand_layer_back(N, D0, D1, X, d1, W1, lambda, gW1, gb1, NULL);

    for (size_t i = 0; i < N * D1; i++)
        CHECK_CLOSE(tg_get(a1, i), A1[i], TOL);
    double J = hand_logloss(N, A2, Y) + hand_l2(w1, lambda, N) + hand_l2(w2, lambda, N);
    CHECK_CLOSE(tg_get(cost, 0), J, TOL);
    check_grad("two-layer dW2", w2, gW2);
    check_grad("two-layer db2", b2, gb2);
    check_grad("two-layer dW1", w1, gW1);
    check_grad("two-layer db1", b1, gb1);

    tg_tape_free(t);
    tg_tensor *all[] = {x, y, w1, b1, w2, b2};
    for (int i = 0; i < 6; i++)
        tg_tensor_free(all[i]);
}

/* ------------------------------------------------ §3.1 L-layer recursion */

static void check_deep(double lambda) {
    enum { L = 4, N = 7 };
    static const size_t m[L + 1] = {5, 4, 3, 2, 1}; /* widths m_0..m_L */
    tg_rng g;
    tg_rng_seed(&g, 303);
    tg_tensor *x = new_leaf(0, 2, N, m[0]), *y = new_leaf(0, 2, N, 1);
    tg_tensor *w[L + 1] = {0}, *b[L + 1] = {0};
    fill_normal(x, &g, 0, 1), fill_labels(y, &g);
    for (int l = 1; l <= L; l++) {
        w[l] = new_leaf(1, 2, m[l - 1], m[l]);
        b[l] = new_leaf(1, 1, 1, m[l]);
        /* He-like scale and a positive mean bias keep most relu units alive. */
        fill_normal(w[l], &g, 0, 1.2 / sqrt((double)m[l - 1]));
        fill_normal(b[l], &g, 0.2, 0.3);
    }

    tg_tape *t;
    tg_tensor *zt[L + 1], *a = x, *cost;
    CHECK_OK(tg_tape_new(&t));
    for (int l = 1; l <= L; l++) {
        CHECK_OK(tg_matmul(t, a, w[l], &zt[l]));
        CHECK_OK(tg_bias_add(t, zt[l], b[l], &zt[l]));
        if (l < L)
            CHECK_OK(tg_relu(t, zt[l], &a));
        else
            CHECK_OK(tg_sigmoid(t, zt[l], &a));
    }
    CHECK_OK(tg_bce(t, a, y, &cost));
    for (int l = 1; l <= L; l++)
        tape_add_l2(t, &cost, w[l], lambda, N);
    CHECK_OK(tg_backward(t, cost));

    /* By hand, forward: A[0] = X, Z[l] = A[l−1]·W[l] + b[l], A[l] = g[l](Z[l]). */
    double Z[L + 1][MAXN * MAXW], A[L + 1][MAXN * MAXW];
    memcpy(A[0], val(x), N * m[0] * sizeof(double));
    double margin = INFINITY; /* smallest |Z| entering a relu */
    for (int l = 1; l <= L; l++) {
        hand_affine(N, m[l - 1], m[l], A[l - 1], val(w[l]), val(b[l]), Z[l]);
        for (size_t i = 0; i < N * m[l]; i++) {
            if (l < L) margin = fmin(margin, fabs(Z[l][i]));
            A[l][i] = l < L ? (Z[l][i] > 0 ? Z[l][i] : 0.0) : sigm(Z[l][i]);
        }
    }
    /* relu′(z) = [z > 0] on both sides. The tape's Z and ours differ by
     * rounding (~1e-15), so their signs agree when every |Z| exceeds 1e-9. */
    CHECK(margin > 1e-9, "a relu pre-activation is %g from the kink", margin);
    for (int l = 1; l <= L; l++)
        for (size_t i = 0; i < N * m[l]; i++)
            CHECK_CLOSE(tg_get(zt[l], i), Z[l][i], TOL);

    /* By hand, backward (§3.1): dZ[L] = A[L] − Y, then for l = L..1
     * dW[l], db[l] from dZ[l]; dA[l−1] = dZ[l]·W[l]ᵀ; dZ[l−1] = dA[l−1] ⊙ [Z[l−1] > 0]. */
    double dZ[MAXN * MAXW], dA[MAXN * MAXW], dW[MAXW * MAXW], db[MAXW];
    for (size_t i = 0; i < N; i++)
        dZ[i] = A[L][i] - val(y)[i];
    double J = hand_logloss(N, A[L], val(y));
    for (int l = L; l >= 1; l--) {
        hand_layer_back(N, m[l - 1], m[l], A[l - 1], dZ, val(w[l]), lambda, dW, db,
                        l > 1 ? dA : NULL);
        char what[32];
        snprintf(what, sizeof what, "deep dW[%d]", l);
        check_grad(what, w[l], dW);
        snprintf(what, sizeof what, "deep db[%d]", l);
        check_grad(what, b[l], db);
        /* Not vacuous: some gradient in every layer is well away from zero. */
        double big = 0;
        for (size_t i = 0; i < w[l]->size; i++)
            big = fmax(big, fabs(dW[i]));
        CHECK(big > 1e-3, "layer %d has (nearly) no gradient: max |dW| = %g", l, big);
        J += hand_l2(w[l], lambda, N);
        if (l > 1)
            for (size_t i = 0; i < N * m[l - 1]; i++)
                dZ[i] = Z[l - 1][i] > 0 ? dA[i] : 0.0; /* relu′(Z[l−1]) */
    }
    CHECK_CLOSE(tg_get(cost, 0), J, TOL);

    tg_tape_free(t);
    tg_tensor_free(x), tg_tensor_free(y);
    for (int l = 1; l <= L; l++)
        tg_tensor_free(w[l]), tg_tensor_free(b[l]);
}

int main(void) {
    /* λ = 0: the plain cost; λ = 0.7: the seed's L2-regularised cost. */
    static const double lambdas[] = {0.0, 0.7};
    for (int k = 0; k < 2; k++) {
        check_logistic(VIA_BCE, lambdas[k]);
        check_logistic(VIA_LOGITS, lambdas[k]);
        check_two_layer(VIA_BCE, lambdas[k]);
        check_two_layer(VIA_LOGITS, lambdas[k]);
        check_deep(lambdas[k]);
    }
    return check_summary();
}
