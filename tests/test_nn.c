/* Layers and the MLP: shapes, parameters, seeded initialisation, the
 * dense layer equals φ, ψ, G by hand, the MLP's gradients pass gradcheck,
 * and bad configurations are errors. */
#include "check.h"
#include "tapegrad_nn.h"

static void test_config_errors(void) {
    tg_mlp *m = (tg_mlp *)1;
    size_t w[2] = {4, 0};
    CHECK(tg_mlp_new(&m, TG_F32, 3, 2, w, TG_ACT_RELU, 2, TG_LOSS_CE) == TG_ERR_SHAPE,
          "zero width");
    CHECK(m == NULL && strstr(tg_last_error(), "hidden layer 2 has width 0"), "%s",
          tg_last_error());
    CHECK(tg_mlp_new(&m, TG_F32, 3, 1, w, TG_ACT_RELU, 3, TG_LOSS_BCE) == TG_ERR_SHAPE,
          "bce with 3 outputs");
    CHECK(tg_mlp_new(&m, TG_F32, 0, 1, w, TG_ACT_RELU, 3, TG_LOSS_CE) == TG_ERR_SHAPE,
          "zero inputs");
    CHECK(tg_act_parse("tanh") == TG_ACT_TANH && tg_act_parse("gelu") == -1, "act names");
    CHECK(strcmp(tg_loss_name(TG_LOSS_CE), "ce") == 0, "loss names");
}

/* Same seed → same bits; the MLP has 2 parameters per layer, right shapes. */
static void test_shapes_and_init(void) {
    size_t w[2] = {5, 4};
    tg_mlp *a, *b;
    tg_rng ra, rb;
    CHECK_OK(tg_mlp_new(&a, TG_F32, 3, 2, w, TG_ACT_TANH, 2, TG_LOSS_CE));
    CHECK_OK(tg_mlp_new(&b, TG_F32, 3, 2, w, TG_ACT_TANH, 2, TG_LOSS_CE));
    tg_rng_seed(&ra, 9), tg_rng_seed(&rb, 9);
    CHECK_OK(tg_mlp_init(a, &ra));
    CHECK_OK(tg_mlp_init(b, &rb));
    tg_tensor *pa[8], *pb[8];
    int n = tg_mlp_params(a, pa, 8);
    CHECK(n == 6 && tg_mlp_params(b, pb, 8) == 6, "6 parameters, got %d", n);
    CHECK(pa[0]->shape[0] == 3 && pa[0]->shape[1] == 5 && pa[5]->shape[0] == 2, "shapes");
    int same = 1, nonzero = 0;
    for (int i = 0; i < n; i++) {
        same &= memcmp(pa[i]->data, pb[i]->data, pa[i]->size * sizeof(float)) == 0;
        for (size_t e = 0; e < pa[i]->size; e++)
            nonzero += tg_get(pa[i], e) != 0;
    }
    CHECK(same, "same seed gave different parameters");
    CHECK(nonzero == 15 + 20 + 8, "weights random, biases zero: %d nonzero", nonzero);
    tg_mlp_free(a), tg_mlp_free(b);
}

/* The dense layer is G(X·W + b): compare with the primitive ops. */
static void test_dense_matches_ops(void) {
    tg_tape *t;
    tg_tensor *x, *w, *b, *y, *u, *v, *z;
    tg_rng g;
    tg_rng_seed(&g, 3);
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, TG_F64, 2, (size_t[]){4, 3}));
    CHECK_OK(tg_param_new(&w, TG_F64, 2, (size_t[]){3, 2}));
    CHECK_OK(tg_param_new(&b, TG_F64, 1, (size_t[]){2}));
    tg_tensor *all[] = {x, w, b};
    for (int i = 0; i < 3; i++)
        for (size_t e = 0; e < all[i]->size; e++)
            tg_set(all[i], e, tg_rng_normal(&g));
    tg_dense l = {w, b, TG_ACT_SIGMOID};
    CHECK_OK(tg_dense_forward(t, &l, x, &y));
    CHECK_OK(tg_matmul(t, x, w, &u));
    CHECK_OK(tg_bias_add(t, u, b, &v));
    CHECK_OK(tg_sigmoid(t, v, &z));
    CHECK(memcmp(y->data, z->data, 8 * sizeof(double)) == 0, "dense differs from φ, ψ, G");
    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
    tg_tape_free(t);
}

/* Every parameter of a small MLP, each loss: gradcheck and adjoint check. */
static void test_mlp_gradients(tg_loss_kind loss, size_t n_out) {
    size_t w[1] = {4};
    tg_mlp *m;
    tg_rng g;
    tg_rng_seed(&g, 5);
    CHECK_OK(tg_mlp_new(&m, TG_F64, 3, 1, w, TG_ACT_TANH, n_out, loss));
    CHECK_OK(tg_mlp_init(m, &g));
    tg_tensor *x, *y, *logits, *cost, *params[4];
    CHECK_OK(tg_tensor_new(&x, TG_F64, 2, (size_t[]){5, 3}));
    if (loss == TG_LOSS_CE)
        CHECK_OK(tg_tensor_new(&y, TG_F64, 1, (size_t[]){5}));
    else
        CHECK_OK(tg_tensor_new(&y, TG_F64, 2, (size_t[]){5, 1}));
    for (size_t e = 0; e < x->size; e++)
        tg_set(x, e, tg_rng_normal(&g));
    for (size_t e = 0; e < y->size; e++)
        tg_set(y, e, (double)(e % (n_out > 1 ? n_out : 2)));
    int np = tg_mlp_params(m, params, 4);
    for (int i = 0; i < np; i++) /* biases off zero so their gradients are generic */
        for (size_t e = 0; e < params[i]->size; e++)
            tg_set(params[i], e, tg_get(params[i], e) + 0.1 * tg_rng_normal(&g));
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_mlp_forward(t, m, x, &logits));
    CHECK_OK(tg_mlp_cost(t, m, logits, y, &cost));
    CHECK(logits->shape[0] == 5 && logits->shape[1] == n_out, "logits shape");
    tg_check_report r;
    CHECK_OK(tg_gradcheck(t, cost, np, params, NULL, &r));
    CHECK_OK(tg_adjoint_check(t, cost, np, params, NULL, &r));
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
    tg_mlp_free(m);
}

int main(void) {
    test_config_errors();
    test_shapes_and_init();
    test_dense_matches_ops();
    test_mlp_gradients(TG_LOSS_CE, 3);
    test_mlp_gradients(TG_LOSS_BCE, 1);
    test_mlp_gradients(TG_LOSS_MSE, 1);
    return check_summary();
}
