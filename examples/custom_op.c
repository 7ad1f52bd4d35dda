/* Defining an op of your own: softplus(x) = log(1 + eˣ), with its d-map
 * and r-map, recorded like any built-in op and checked with tg_gradcheck
 * and tg_adjoint_check. Only the public headers are used. */
#include <math.h>
#include <stdio.h>
#include <tapegrad.h>

/* Shape check: elementwise, so the output is shaped like the input. */
static tg_status softplus_check(tg_call *c, char *msg, size_t len) {
    (void)msg, (void)len;
    c->out->rank = c->in[0]->rank;
    for (int i = 0; i < TG_MAX_RANK; i++)
        c->out->shape[i] = c->in[0]->shape[i];
    return TG_OK;
}

/* This example supports float64 only; a float32 version would loop on float. */
static void softplus_forward(tg_call *c) {
    const double *x = c->in[0]->data;
    double *y = c->out->data;
    for (size_t i = 0; i < c->out->size; i++) /* stable: max(x,0) + log1p(e^{−|x|}) */
        y[i] = fmax(x[i], 0) + log1p(exp(-fabs(x[i])));
}

/* softplus' = σ. d-map: σ(x) ⊙ ξ. */
static void softplus_jvp(const tg_call *c, const void *const *tin, void *tout) {
    const double *x = c->in[0]->data, *t = tin[0];
    double *o = tout;
    for (size_t i = 0; i < c->out->size; i++)
        o[i] = t[i] / (1 + exp(-x[i]));
}

/* r-map: the same diagonal map, accumulated into the input's adjoint. */
static void softplus_vjp(const tg_call *c, const void *gout, void *const *gin) {
    const double *x = c->in[0]->data, *g = gout;
    double *gi = gin[0];
    for (size_t i = 0; i < c->out->size; i++)
        gi[i] += g[i] / (1 + exp(-x[i]));
}

static const tg_op softplus_op = {
    .name = "softplus",
    .arity = 1,
    .check = softplus_check,
    .forward = softplus_forward,
    .jvp = softplus_jvp,
    .vjp = softplus_vjp,
};

int main(void) {
    tg_tape *t;
    tg_tensor *w, *y, *loss;
    if (tg_tape_new(&t) || tg_param_new(&w, TG_F64, 2, (size_t[]){3, 4})) {
        fprintf(stderr, "custom_op: %s\n", tg_last_error());
        return 1;
    }
    for (size_t i = 0; i < w->size; i++)
        tg_set(w, i, 0.5 * (double)i - 2.5);

    const tg_tensor *in[1] = {w};
    tg_check_report r;
    tg_status s = tg_apply(t, &softplus_op, 1, in, NULL, &y);
    if (!s) s = tg_sum(t, y, &loss);
    if (!s) s = tg_gradcheck(t, y, 1, &w, NULL, &r);
    if (!s) printf("gradcheck: max abs err %.2e, max rel err %.2e\n", r.abs_err, r.rel_err);
    if (!s) s = tg_adjoint_check(t, y, 1, &w, NULL, &r);
    if (!s) printf("adjoint check: relative error %.2e\n", r.adjoint_err);
    if (!s) s = tg_backward(t, loss);
    if (!s)
        printf("d(sum softplus)/dw[0] = %.6f (sigma(-2.5) = %.6f)\n", ((double *)w->grad)[0],
               1 / (1 + exp(2.5)));
    if (s) fprintf(stderr, "custom_op: %s\n", tg_last_error());
    tg_tensor_free(w);
    tg_tape_free(t);
    return s ? 1 : 0;
}
