/* Every documented error: the status, the message (naming the op and the
 * shapes), and a tape left as it was (nothing recorded). */
#include "check.h"

static tg_tensor *mk(tg_dtype dt, int param, size_t d0, size_t d1) {
    size_t shape[2] = {d0, d1};
    tg_tensor *t = NULL;
    tg_status s =
        param ? tg_param_new(&t, dt, d1 ? 2 : 1, shape) : tg_tensor_new(&t, dt, d1 ? 2 : 1, shape);
    CHECK_OK(s);
    return t;
}

static void test_shapes(tg_tape *t) {
    tg_tensor *a = mk(TG_F64, 0, 3, 4), *b = mk(TG_F64, 1, 5, 2), *v = mk(TG_F64, 1, 3, 0);
    tg_tensor *out = (tg_tensor *)1;
    EXPECT_ERR(tg_matmul(t, a, b, &out), TG_ERR_SHAPE,
               "matmul: inner dimensions differ: (3x4)·(5x2)");
    CHECK(out == NULL, "out not cleared on error");
    EXPECT_ERR(tg_matmul(t, a, v, &out), TG_ERR_SHAPE, "matmul: needs 2-D inputs: (3x4)·(3)");
    EXPECT_ERR(tg_bias_add(t, a, v, &out), TG_ERR_SHAPE,
               "bias_add: bias must be a vector of the "
               "last dimension of x: (3x4)+(3)");
    EXPECT_ERR(tg_add(t, a, b, &out), TG_ERR_SHAPE,
               "add: shapes (3x4) and (5x2) do not broadcast at axis -2 (3 vs 5)");
    EXPECT_ERR(tg_mul(t, a, v, &out), TG_ERR_SHAPE,
               "mul: shapes (3x4) and (3) do not broadcast at axis -1 (4 vs 3)");
    EXPECT_ERR(tg_sum_axis(t, a, 2, &out), TG_ERR_ARG,
               "sum_axis: axis 2 out of range for shape (3x4)");
    EXPECT_ERR(tg_mean_axis(t, a, -3, &out), TG_ERR_ARG, "mean_axis: axis -3 out of range");
    EXPECT_ERR(tg_mse(t, a, b, &out), TG_ERR_SHAPE, "mse: ");
    tg_tensor *lab5 = mk(TG_F64, 0, 5, 0);
    EXPECT_ERR(tg_softmax_ce(t, a, lab5, &out), TG_ERR_SHAPE, "softmax_ce: ");
    CHECK(strstr(tg_last_error(), "(3x4)") && strstr(tg_last_error(), "(5)"), "shapes in '%s'",
          tg_last_error());
    tg_tensor_free(lab5);
    CHECK(tg_tape_size(t) == 0, "a failed op was recorded (%d ops)", tg_tape_size(t));
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(v);
}

static void test_dtypes_and_nulls(tg_tape *t) {
    tg_tensor *a = mk(TG_F64, 0, 2, 2), *b = mk(TG_F32, 0, 2, 2), *out;
    EXPECT_ERR(tg_add(t, a, b, &out), TG_ERR_DTYPE,
               "add: mixed dtypes: input 0 is f64, input 1 is f32");
    EXPECT_ERR(tg_matmul(t, a, NULL, &out), TG_ERR_ARG, "matmul: input 1 is NULL");
    EXPECT_ERR(tg_relu(NULL, a, &out), TG_ERR_ARG, "relu: tape or out is NULL");
    EXPECT_ERR(tg_relu(t, a, NULL), TG_ERR_ARG, "relu: tape or out is NULL");
    EXPECT_ERR(tg_apply(t, NULL, 1, NULL, NULL, &out), TG_ERR_ARG, "apply: op");
    const tg_tensor *one[1] = {a};
    EXPECT_ERR(tg_apply(t, tg_op_find("add"), 1, one, NULL, &out), TG_ERR_ARG,
               "add: takes 2 inputs, got 1");
    EXPECT_ERR(tg_tape_new(NULL), TG_ERR_ARG, "tape: out is NULL");
    tg_tensor_free(a), tg_tensor_free(b);
}

static void test_tensors(void) {
    tg_tensor *x = NULL;
    size_t bad[TG_MAX_RANK + 1] = {2, 2, 2, 2, 2, 2, 2, 2, 2}, zero[2] = {3, 0};
    EXPECT_ERR(tg_tensor_new(&x, TG_F32, TG_MAX_RANK + 1, bad), TG_ERR_SHAPE,
               "tensor: rank 9 outside 0..8");
    EXPECT_ERR(tg_param_new(&x, TG_F32, 2, zero), TG_ERR_SHAPE, "tensor: dimension 1 is 0");
    EXPECT_ERR(tg_tensor_new(&x, (tg_dtype)7, 1, bad), TG_ERR_ARG, "tensor: unknown dtype 7");
    EXPECT_ERR(tg_tensor_new(&x, TG_F32, 2, NULL), TG_ERR_ARG, "tensor: shape is NULL for rank 2");
    size_t huge[4] = {SIZE_MAX / 4, 8, 1, 1};
    EXPECT_ERR(tg_tensor_new(&x, TG_F32, 2, huge), TG_ERR_SHAPE, "tensor: too many elements");
    CHECK(x == NULL, "out set on failure");
    x = mk(TG_F64, 0, 2, 3);
    double v[5] = {0};
    EXPECT_ERR(tg_fill(x, v, 5), TG_ERR_SHAPE,
               "fill: 5 values for a tensor of shape (2x3) (6 elements)");
    tg_tensor_free(x);
    tg_tensor_free(NULL); /* allowed */
}

static void test_values(tg_tape *t) {
    tg_tensor *l = mk(TG_F64, 0, 3, 4), *lab = mk(TG_F64, 0, 3, 0), *w = mk(TG_F64, 1, 3, 0), *out;
    tg_set(lab, 1, 7);
    EXPECT_ERR(tg_softmax_ce(t, l, lab, &out), TG_ERR_VALUE, "softmax_ce: ");
    CHECK(strstr(tg_last_error(), "7") != NULL, "label value missing in '%s'", tg_last_error());
    tg_set(lab, 1, 1.5);
    EXPECT_ERR(tg_softmax_ce(t, l, lab, &out), TG_ERR_VALUE, "softmax_ce: ");
    tg_set(lab, 1, 1);
    EXPECT_ERR(tg_softmax_ce(t, l, w, &out), TG_ERR_ARG,
               "softmax_ce: input 1 carries no derivative");
    EXPECT_ERR(tg_l2(t, w, 0.1, 0, &out), TG_ERR_VALUE, "l2: ");
    EXPECT_ERR(tg_l1(t, w, -1, 3, &out), TG_ERR_VALUE, "l1: ");
    EXPECT_ERR(tg_leaky_relu(t, w, NAN, &out), TG_ERR_VALUE, "leaky_relu: beta must be finite");
    EXPECT_ERR(tg_scale(t, w, INFINITY, &out), TG_ERR_VALUE, "scale: the constant must be finite");
    /* bce: a probability outside [0, 1], and NaN, which fails no comparison */
    tg_tensor *p = mk(TG_F64, 1, 2, 2), *y = mk(TG_F64, 0, 2, 2);
    tg_set(p, 3, 1.5);
    EXPECT_ERR(tg_bce(t, p, y, &out), TG_ERR_VALUE,
               "bce: p[3] = 1.5 is not a probability in [0, 1]");
    tg_set(p, 3, NAN);
    EXPECT_ERR(tg_bce(t, p, y, &out), TG_ERR_VALUE, "bce: p[3] = nan is not a probability");
    tg_set(p, 3, 0.25);
    CHECK_OK(tg_bce(t, p, y, &out));
    tg_tensor_free(p), tg_tensor_free(y);
    tg_tensor_free(l), tg_tensor_free(lab), tg_tensor_free(w);
}

static void test_backward_misuse(void) {
    tg_tape *t, *u;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tape_new(&u));
    tg_tensor *w = mk(TG_F64, 1, 2, 3), *y, *s, *z;
    CHECK_OK(tg_tanh(t, w, &y));
    EXPECT_ERR(tg_backward(t, y), TG_ERR_SHAPE,
               "backward: the loss must be a scalar, got shape (2x3)");
    EXPECT_ERR(tg_backward(t, w), TG_ERR_STATE,
               "backward: the output is not the result of an op on this tape");
    EXPECT_ERR(tg_backward(u, y), TG_ERR_STATE, "backward: the output is not the result");
    EXPECT_ERR(tg_backward(t, NULL), TG_ERR_ARG, "backward: tape or output is NULL");
    EXPECT_ERR(tg_sum(u, y, &z), TG_ERR_STATE,
               "sum: input 0 is the result of an op on another tape");
    CHECK_OK(tg_sum(t, y, &s));
    tg_tensor *f32 = mk(TG_F32, 1, 2, 0), *s32;
    CHECK_OK(tg_sum(t, f32, &s32));
    EXPECT_ERR(tg_gradcheck(t, s32, 1, &f32, NULL, NULL), TG_ERR_DTYPE,
               "gradcheck: needs a float64 graph");
    EXPECT_ERR(tg_adjoint_check(t, s, 1, &f32, NULL, NULL), TG_ERR_ARG,
               "adjoint check: params[0] is not a float64 parameter");
    EXPECT_ERR(tg_jvp(t, 1, NULL, NULL), TG_ERR_ARG, "jvp: bad leaves");
    tg_tape_reset(t);
    EXPECT_ERR(tg_backward(t, s), TG_ERR_STATE, "backward: the output is not the result");
    /* caught while the tape is shorter than when y was made (tapegrad.h) */
    EXPECT_ERR(tg_sum(t, y, &z), TG_ERR_STATE,
               "sum: input 0 is a result from before the tape was reset");
    tg_tensor_free(w), tg_tensor_free(f32);
    tg_tape_free(t), tg_tape_free(u);
}

int main(void) {
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    test_shapes(t);
    test_dtypes_and_nulls(t);
    test_tensors();
    test_values(t);
    test_backward_misuse();
    CHECK(strcmp(tg_status_name(TG_ERR_SHAPE), "TG_ERR_SHAPE") == 0, "status name");
    tg_tape_free(t);
    return check_summary();
}
