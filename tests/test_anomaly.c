/* Anomaly mode: the first op whose output or adjoint holds a NaN or an Inf
 * is named with its position and its inputs' range; off, the same graph
 * records and differentiates without complaint. */
#include "check.h"

static tg_tensor *vec(int param, const double *v, size_t n) {
    tg_tensor *t = NULL;
    CHECK_OK(param ? tg_param_new(&t, TG_F64, 1, &n) : tg_tensor_new(&t, TG_F64, 1, &n));
    CHECK_OK(tg_fill(t, v, n));
    return t;
}

/* inf · 0 = NaN in the forward pass of mul, at element 1. */
static void test_forward(void) {
    double xv[2] = {1, INFINITY}, zv[2] = {2, 0};
    tg_tensor *x = vec(0, xv, 2), *z = vec(0, zv, 2), *y, *w;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tanh(t, z, &w));   /* op 0: finite */
    CHECK_OK(tg_mul(t, x, z, &y)); /* off: NaN goes through silently */
    CHECK(isnan(tg_get(y, 1)), "inf*0 should be NaN");
    tg_tape_reset(t);
    tg_tape_detect_anomaly(t, 1);
    CHECK_OK(tg_tanh(t, z, &w));
    tg_status s = tg_mul(t, x, z, &y);
    CHECK(s == TG_ERR_NUMERIC, "status %s", tg_status_name(s));
    CHECK(strstr(tg_last_error(), "anomaly: op 1 (mul) produced NaN at output element 1") != NULL,
          "%s", tg_last_error());
    CHECK(strstr(tg_last_error(), "input 0 (2) min 1 max inf") != NULL, "%s", tg_last_error());
    CHECK(tg_tape_size(t) == 1, "the anomalous op was recorded (%d ops)", tg_tape_size(t));
    tg_tensor_free(x), tg_tensor_free(z);
    tg_tape_free(t);
}

/* Forward finite, backward overflows: mul(a, b) = 1 with a = 1e200,
 * b = 1e-200, scaled by 1e200: the adjoint of b is 1e200 · 1e200 = Inf. */
static void test_backward(void) {
    double av[1] = {1e200}, bv[1] = {1e-200};
    tg_tensor *a = vec(1, av, 1), *b = vec(1, bv, 1), *p, *q, *s;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_tape_detect_anomaly(t, 1);
    CHECK_OK(tg_mul(t, a, b, &p));
    CHECK_OK(tg_scale(t, p, 1e200, &q));
    CHECK_OK(tg_sum(t, q, &s));
    tg_status st = tg_backward(t, s);
    CHECK(st == TG_ERR_NUMERIC, "status %s", tg_status_name(st));
    CHECK(strstr(tg_last_error(),
                 "backward of op 0 (mul) produced Inf in the adjoint of input 1") != NULL,
          "%s", tg_last_error());
    tg_tape_detect_anomaly(t, 0);
    tg_zero_grad(a), tg_zero_grad(b);
    CHECK_OK(tg_backward(t, s)); /* off: no check */
    CHECK(isinf(((double *)b->grad)[0]), "the Inf is there when not checked");
    tg_tensor_free(a), tg_tensor_free(b);
    tg_tape_free(t);
}

/* Replay checks too: a leaf changed to NaN after recording. */
static void test_replay(void) {
    double xv[2] = {0.5, -0.5};
    tg_tensor *x = vec(0, xv, 2), *y;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_tape_detect_anomaly(t, 1);
    CHECK_OK(tg_sigmoid(t, x, &y));
    CHECK_OK(tg_replay(t));
    tg_set(x, 0, NAN);
    CHECK(tg_replay(t) == TG_ERR_NUMERIC, "replay did not see the NaN");
    CHECK(strstr(tg_last_error(), "op 0 (sigmoid) produced NaN") != NULL, "%s", tg_last_error());
    CHECK(strstr(tg_last_error(), "(has NaN)") != NULL, "%s", tg_last_error());
    tg_tensor_free(x);
    tg_tape_free(t);
}

/* float32 activations use their own exp/tanh: NaN must come out as NaN
 * (fuzz_model found the NaN reaching an integer conversion: UB), so that
 * anomaly mode names the op; ±Inf and huge inputs saturate. */
static void test_f32_activations(void) {
    float v[4] = {NAN, INFINITY, -INFINITY, 1e30f};
    tg_tensor *x, *y;
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, TG_F32, 1, (size_t[]){4}));
    memcpy(x->data, v, sizeof v);
    CHECK_OK(tg_tanh(t, x, &y));
    CHECK(isnan(tg_get(y, 0)) && tg_get(y, 1) == 1 && tg_get(y, 2) == -1 && tg_get(y, 3) == 1,
          "tanh: %g %g %g %g", tg_get(y, 0), tg_get(y, 1), tg_get(y, 2), tg_get(y, 3));
    CHECK_OK(tg_sigmoid(t, x, &y));
    CHECK(isnan(tg_get(y, 0)) && tg_get(y, 1) == 1 && tg_get(y, 2) < 1e-30 && tg_get(y, 3) == 1,
          "sigmoid: %g %g %g %g", tg_get(y, 0), tg_get(y, 1), tg_get(y, 2), tg_get(y, 3));
    tg_tape_detect_anomaly(t, 1);
    CHECK(tg_tanh(t, x, &y) == TG_ERR_NUMERIC && strstr(tg_last_error(), "(tanh) produced NaN"),
          "%s", tg_last_error());
    tg_tensor_free(x);
    tg_tape_free(t);
}

int main(void) {
    test_forward();
    test_backward();
    test_replay();
    test_f32_activations();
    return check_summary();
}
