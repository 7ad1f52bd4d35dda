/* The tape's limits: a variadic op (any number of inputs: concat, stack)
 * and tensors of rank up to TG_MAX_RANK (8). A test op defined here, a
 * weighted sum y = Σᵢ (i + 1)·xᵢ of n same-shape tensors, takes 1..65536
 * inputs: the tape must record them all, hand each its own adjoint
 * (x̄ᵢ = (i + 1)·ζ) and its tangent, and refuse 0 or 65537 inputs. */
#include "check.h"
#include "tapegrad_op.h"

#include <stdlib.h>

static tg_status wsum_check(tg_call *c, char *msg, size_t len) {
    for (int i = 1; i < c->n_in; i++)
        if (c->in[i]->size != c->in[0]->size) {
            snprintf(msg, len, "input %d has %zu elements, input 0 %zu", i, c->in[i]->size,
                     c->in[0]->size);
            return TG_ERR_SHAPE;
        }
    c->out->rank = c->in[0]->rank;
    for (int a = 0; a < TG_MAX_RANK; a++)
        c->out->shape[a] = c->in[0]->shape[a];
    return TG_OK;
}

static void wsum_forward(tg_call *c) {
    double *y = c->out->data;
    for (size_t e = 0; e < c->out->size; e++) {
        y[e] = 0;
        for (int i = 0; i < c->n_in; i++)
            y[e] += (i + 1) * ((const double *)c->in[i]->data)[e];
    }
}

static void wsum_jvp(const tg_call *c, const void *const *tin, void *tout) {
    double *t = tout;
    for (size_t e = 0; e < c->out->size; e++) {
        t[e] = 0;
        for (int i = 0; i < c->n_in; i++)
            if (tin[i]) t[e] += (i + 1) * ((const double *)tin[i])[e];
    }
}

static void wsum_vjp(const tg_call *c, const void *gout, void *const *gin) {
    for (int i = 0; i < c->n_in; i++)
        for (size_t e = 0; gin[i] && e < c->out->size; e++)
            ((double *)gin[i])[e] += (i + 1) * ((const double *)gout)[e];
}

static const tg_op wsum = {.name = "wsum",
                           .arity = 2,
                           .variadic = 1,
                           .check = wsum_check,
                           .forward = wsum_forward,
                           .jvp = wsum_jvp,
                           .vjp = wsum_vjp};

/* n inputs of rank 8 (2 elements each): every adjoint and the tangent. */
static void test_many_inputs(int n) {
    size_t shape[TG_MAX_RANK] = {1, 1, 1, 2, 1, 1, 1, 1};
    tg_tensor **x = calloc((size_t)n, sizeof *x), *y = NULL;
    const void **tan = calloc((size_t)n, sizeof *tan);
    double one[2] = {1, 1};
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    for (int i = 0; i < n; i++) {
        CHECK_OK(tg_param_new(&x[i], TG_F64, TG_MAX_RANK, shape));
        double v[2] = {i, -i};
        CHECK_OK(tg_fill(x[i], v, 2));
        tan[i] = one;
    }
    CHECK_OK(tg_apply(t, &wsum, n, (const tg_tensor *const *)x, NULL, &y));
    if (y) {
        double want = 0; /* Σ (i+1)·i */
        for (int i = 0; i < n; i++)
            want += (double)(i + 1) * i;
        CHECK(y->rank == TG_MAX_RANK && y->size == 2, "rank %d size %zu", y->rank, y->size);
        CHECK(tg_get(y, 0) == want && tg_get(y, 1) == -want, "n=%d: y = %g, want %g", n,
              tg_get(y, 0), want);
        double seed[2] = {1, 2};
        CHECK_OK(tg_backward_seed(t, y, seed));
        int bad = 0;
        for (int i = 0; i < n; i++)
            bad += ((double *)x[i]->grad)[0] != i + 1 || ((double *)x[i]->grad)[1] != 2 * (i + 1);
        CHECK(bad == 0, "n=%d: %d inputs got the wrong adjoint", n, bad);
        CHECK_OK(tg_jvp(t, n, (const tg_tensor *const *)x, tan));
        const double *ty = tg_tangent(t, y);
        double tw = (double)n * (n + 1) / 2;
        CHECK(ty && ty[0] == tw && ty[1] == tw, "n=%d: tangent %g, want %g", n, ty ? ty[0] : 0, tw);
    }
    for (int i = 0; i < n; i++)
        tg_tensor_free(x[i]);
    free(x), free(tan);
    tg_tape_free(t);
}

/* The counts outside 1..TG_MAX_INPUTS are refused by name; a fixed-arity
 * op still takes exactly its arity. */
static void test_counts(void) {
    tg_tensor *a = NULL, *y = NULL;
    size_t two = 2;
    CHECK_OK(tg_param_new(&a, TG_F64, 1, &two));
    const tg_tensor *in[2] = {a, a};
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_apply(t, &wsum, 0, in, NULL, &y), TG_ERR_ARG,
               "wsum: takes 1..65536 inputs, got 0");
    EXPECT_ERR(tg_apply(t, &wsum, TG_MAX_INPUTS + 1, in, NULL, &y), TG_ERR_ARG,
               "wsum: takes 1..65536 inputs, got 65537");
    CHECK_OK(tg_apply(t, &wsum, 1, in, NULL, &y));
    EXPECT_ERR(tg_apply(t, tg_op_find("add"), 1, in, NULL, &y), TG_ERR_ARG,
               "add: takes 2 inputs, got 1");
    /* One input twice: both uses add into its adjoint (3·ζ). */
    CHECK_OK(tg_apply(t, &wsum, 2, in, NULL, &y));
    double seed[2] = {1, 1};
    if (y) CHECK_OK(tg_backward_seed(t, y, seed));
    CHECK(((double *)a->grad)[0] == 3, "repeated input: adjoint %g, want 3",
          ((double *)a->grad)[0]);
    tg_tensor_free(a);
    tg_tape_free(t);
}

/* An op (a user's, say) whose check claims a result too large for memory
 * addresses: the tape refuses it by name instead of allocating a wrapped,
 * small block. Forward must never run. */
static tg_status huge_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    c->out->rank = 2;
    c->out->shape[0] = c->out->shape[1] = (size_t)1 << 40;
    return TG_OK;
}
static void huge_forward(tg_call *c) {
    (void)c;
    CHECK(0, "forward of a refused op ran");
}
static const tg_op huge = {
    .name = "huge", .arity = 1, .check = huge_check, .forward = huge_forward};

static void test_huge_result(void) {
    tg_tensor *a = NULL, *y = NULL;
    size_t two = 2;
    CHECK_OK(tg_tensor_new(&a, TG_F64, 1, &two));
    const tg_tensor *in[1] = {a};
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    EXPECT_ERR(tg_apply(t, &huge, 1, in, NULL, &y), TG_ERR_SHAPE, "huge: result");
    CHECK(y == NULL && tg_tape_size(t) == 0, "nothing recorded");
    tg_tensor_free(a);
    tg_tape_free(t);
}

int main(void) {
    test_huge_result();
    test_many_inputs(1);
    test_many_inputs(5);
    test_many_inputs(1000);
    test_many_inputs(TG_MAX_INPUTS);
    test_counts();
    return check_summary();
}
