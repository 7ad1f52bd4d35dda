/* Curvature with exact Hessian-vector products (issue 18, docs/hessian.md).
 *
 * 1. Sharpness: the top eigenvalue of the Hessian of the training loss of
 *    the Fashion-MNIST MLP 784-256-128-10 (ReLU, softmax cross-entropy, as
 *    `tapegrad train` builds it; He init; SGD lr 0.1, batch 128, float32),
 *    on a fixed batch of the first 1000 training images, by power iteration
 *    on tg_hvp (v ← Hv/‖Hv‖ until the Rayleigh quotient ⟨v, Hv⟩ moves less
 *    than 1e-4 relative), at initialisation and after 1 and 5 epochs.
 * 2. Newton-CG on logistic regression (breast-cancer-sized generated data:
 *    569 examples, 30 features with scales from 0.1 to 3 so that the problem
 *    is ill-conditioned, labels drawn from a logistic model; float64):
 *    each Newton step solves H p = −∇f by conjugate gradients on tg_hvp,
 *    then backtracks (Armijo). The optimum f* is Newton's limit (‖∇f‖ <
 *    1e-13); the example counts the iterations Newton-CG and gradient
 *    descent (step 1/L, L = λ_max(X̃ᵀX̃)/4n ≥ ‖H‖) take to reach f* + 1e-10.
 *
 *   curvature [--epochs N] [--limit N] [--data DIR] [--seed S]
 * --limit: train on the first N images only (a quick run); --data: the
 * directory of Fashion-MNIST's *-idx?-ubyte.gz (Debian's
 * dataset-fashion-mnist). Without the data part 1 is skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapegrad.h>
#include <tapegrad_io.h>
#include <tapegrad_nn.h>

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((s = (call)) != TG_OK) goto done;                                                      \
    } while (0)

/* ------------------------------------------------ parameter-space vectors */

/* A vector over the parameters: one float or double array per parameter. */
typedef struct pvec {
    int np;
    tg_tensor *const *params;
    void *part[16];
} pvec;

static int pvec_new(pvec *v, int np, tg_tensor *const *params) {
    v->np = np, v->params = params;
    for (int i = 0; i < np; i++) {
        size_t es = params[i]->dtype == TG_F32 ? sizeof(float) : sizeof(double);
        if (!(v->part[i] = calloc(params[i]->size, es))) return 0;
    }
    return 1;
}

static void pvec_free(pvec *v) {
    for (int i = 0; i < v->np; i++)
        free(v->part[i]);
}

static double get(const pvec *v, int i, size_t e) {
    return v->params[i]->dtype == TG_F32 ? ((float *)v->part[i])[e] : ((double *)v->part[i])[e];
}

static void set(pvec *v, int i, size_t e, double x) {
    if (v->params[i]->dtype == TG_F32)
        ((float *)v->part[i])[e] = (float)x;
    else
        ((double *)v->part[i])[e] = x;
}

static double dot(const pvec *a, const pvec *b) {
    double s = 0;
    for (int i = 0; i < a->np; i++)
        for (size_t e = 0; e < a->params[i]->size; e++)
            s += get(a, i, e) * get(b, i, e);
    return s;
}

/* y = α·x + β·y */
static void axpby(double alpha, const pvec *x, double beta, pvec *y) {
    for (int i = 0; i < y->np; i++)
        for (size_t e = 0; e < y->params[i]->size; e++)
            set(y, i, e, alpha * get(x, i, e) + beta * get(y, i, e));
}

static tg_status hvp(tg_tape *t, const tg_tensor *loss, const pvec *v, pvec *hv) {
    return tg_hvp(t, loss, v->np, (tg_tensor *const *)v->params, (const void *const *)v->part,
                  hv->part);
}

/* ------------------------------------------------ 1. sharpness of the MLP */

/* The top eigenvalue of the loss's Hessian on (x, y) by power iteration. */
static tg_status top_eigenvalue(tg_mlp *m, const tg_tensor *x, const tg_tensor *y, tg_rng *rng,
                                double *lambda, int *iters) {
    tg_tensor *params[16], *logits, *cost;
    int np = tg_mlp_params(m, params, 16);
    tg_tape *t = NULL;
    pvec v = {0}, hv = {0};
    tg_status s = TG_ERR_NOMEM;
    if (!pvec_new(&v, np, params) || !pvec_new(&hv, np, params)) goto done;
    TRY(tg_tape_new(&t));
    TRY(tg_mlp_forward(t, m, x, &logits));
    TRY(tg_mlp_cost(t, m, logits, y, &cost));
    for (int i = 0; i < np; i++)
        for (size_t e = 0; e < params[i]->size; e++)
            set(&v, i, e, tg_rng_normal(rng));
    axpby(0, &v, 1 / sqrt(dot(&v, &v)), &v);
    double prev = 0;
    for (*iters = 1; *iters <= 200; (*iters)++) {
        TRY(hvp(t, cost, &v, &hv));
        *lambda = dot(&v, &hv); /* Rayleigh quotient, ‖v‖ = 1 */
        axpby(1 / sqrt(dot(&hv, &hv)), &hv, 0, &v);
        if (*iters > 1 && fabs(*lambda - prev) <= 1e-4 * fabs(*lambda)) break;
        prev = *lambda;
    }
done:
    pvec_free(&v), pvec_free(&hv);
    tg_tape_free(t);
    return s;
}

static tg_status train_epoch(tg_mlp *m, tg_optimizer *opt, const tg_dataset *ds, size_t limit,
                             size_t *idx, tg_rng *rng, tg_tensor *x, tg_tensor *y, tg_tape *t) {
    size_t n = limit < ds->n ? limit : ds->n, batch = x->shape[0];
    tg_status s = TG_OK;
    tg_shuffle(idx, n, rng);
    for (size_t start = 0; !s && start + batch <= n; start += batch) {
        tg_tensor *logits, *cost;
        s = tg_batch_fill(ds, idx, start, batch, x, y);
        if (!s) s = tg_mlp_forward(t, m, x, &logits);
        if (!s) s = tg_mlp_cost(t, m, logits, y, &cost);
        if (!s) s = tg_backward(t, cost);
        if (!s) s = tg_optimizer_step(opt);
        tg_tape_reset(t);
    }
    return s;
}

static tg_status sharpness(const char *dir, int epochs, size_t limit, uint64_t seed) {
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s/train", dir);
    tg_dataset ds = {0};
    tg_mlp *m = NULL;
    tg_optimizer *opt = NULL;
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *y = NULL, *ex = NULL, *ey = NULL, *params[16];
    size_t *idx = NULL, widths[2] = {256, 128}, ne = 1000;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_status s = tg_idx_load(prefix, &ds);
    if (s) {
        printf("sharpness: skipped (%s)\n", tg_last_error());
        return TG_OK;
    }
    TRY(tg_mlp_new(&m, TG_F32, ds.d, 2, widths, TG_ACT_RELU, 10, TG_LOSS_CE));
    TRY(tg_mlp_init(m, &rng));
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_SGD);
    cfg.lr = 0.1;
    int np = tg_mlp_params(m, params, 16);
    TRY(tg_optimizer_new(&opt, &cfg, np, params));
    TRY(tg_tape_new(&t));
    TRY(tg_tensor_new(&x, TG_F32, 2, (size_t[]){128, ds.d}));
    TRY(tg_tensor_new(&y, TG_F32, 1, (size_t[]){128}));
    TRY(tg_tensor_new(&ex, TG_F32, 2, (size_t[]){ne, ds.d}));
    TRY(tg_tensor_new(&ey, TG_F32, 1, &ne));
    s = TG_ERR_NOMEM;
    if (!(idx = malloc(ds.n * sizeof *idx))) goto done;
    for (size_t i = 0; i < ds.n; i++)
        idx[i] = i;
    TRY(tg_batch_fill(&ds, idx, 0, ne, ex, ey)); /* the first 1000 images, fixed */
    for (int epoch = 0; epoch <= epochs; epoch++) {
        if (epoch > 0) TRY(train_epoch(m, opt, &ds, limit, idx, &rng, x, y, t));
        if (epoch != 0 && epoch != 1 && epoch != epochs) continue;
        double lambda = 0;
        int iters = 0;
        TRY(top_eigenvalue(m, ex, ey, &rng, &lambda, &iters));
        printf("sharpness: epoch %d: top Hessian eigenvalue %.4f (%d power iterations)\n", epoch,
               lambda, iters);
        fflush(stdout);
    }
done:
    free(idx);
    tg_tensor_free(x), tg_tensor_free(y), tg_tensor_free(ex), tg_tensor_free(ey);
    tg_tape_free(t);
    tg_optimizer_free(opt);
    tg_mlp_free(m);
    tg_dataset_free(&ds);
    return s;
}

/* ------------------------------------------------ 2. Newton-CG vs gradient descent */

enum { LN = 569, LD = 30 };

typedef struct logreg {
    tg_tensor *x, *y, *w, *b, *cost, *params[2];
    tg_tape *t;
    double L; /* λ_max(X̃ᵀX̃)/(4n): a bound on the Hessian's norm */
} logreg;

static tg_status logreg_new(logreg *p, tg_rng *rng) {
    tg_status s;
    tg_tensor *z;
    memset(p, 0, sizeof *p);
    TRY(tg_tensor_new(&p->x, TG_F64, 2, (size_t[]){LN, LD}));
    TRY(tg_tensor_new(&p->y, TG_F64, 2, (size_t[]){LN, 1}));
    TRY(tg_param_new(&p->w, TG_F64, 2, (size_t[]){LD, 1}));
    TRY(tg_param_new(&p->b, TG_F64, 1, (size_t[]){1}));
    double wt[LD];
    for (int k = 0; k < LD; k++)
        wt[k] = tg_rng_normal(rng);
    for (int i = 0; i < LN; i++) {
        double zt = 0.3;
        for (int k = 0; k < LD; k++) {
            double v = tg_rng_normal(rng) * (0.1 + 2.9 * k / (LD - 1)); /* scales 0.1 .. 3 */
            tg_set(p->x, (size_t)(i * LD + k), v);
            zt += v * wt[k] / LD * 2;
        }
        tg_set(p->y, (size_t)i, tg_rng_uniform(rng) < 1 / (1 + exp(-zt)) ? 1 : 0);
    }
    TRY(tg_tape_new(&p->t));
    TRY(tg_matmul(p->t, p->x, p->w, &z));
    TRY(tg_bias_add(p->t, z, p->b, &z));
    TRY(tg_bce_logits(p->t, z, p->y, &p->cost));
    p->params[0] = p->w, p->params[1] = p->b;
    /* L by power iteration on X̃ᵀX̃/(4n), X̃ = [X, 1], in plain loops */
    double v[LD + 1], u[LD + 1], xv[LN];
    for (int k = 0; k <= LD; k++)
        v[k] = 1 / sqrt(LD + 1.0);
    for (int it = 0; it < 500; it++) {
        double norm = 0;
        for (int i = 0; i < LN; i++) {
            xv[i] = v[LD];
            for (int k = 0; k < LD; k++)
                xv[i] += tg_get(p->x, (size_t)(i * LD + k)) * v[k];
        }
        for (int k = 0; k <= LD; k++) {
            u[k] = 0;
            for (int i = 0; i < LN; i++)
                u[k] += (k < LD ? tg_get(p->x, (size_t)(i * LD + k)) : 1) * xv[i];
            u[k] /= 4.0 * LN;
            norm += u[k] * u[k];
        }
        p->L = sqrt(norm); /* ‖X̃ᵀX̃v‖/(4n), ‖v‖ = 1 from the second iteration on */
        for (int k = 0; k <= LD; k++)
            v[k] = u[k] / sqrt(norm);
    }
done:
    return s;
}

static void logreg_free(logreg *p) {
    tg_tensor_free(p->x), tg_tensor_free(p->y), tg_tensor_free(p->w), tg_tensor_free(p->b);
    tg_tape_free(p->t);
}

/* f(θ) and ∇f into g (recomputed from the current parameters). */
static tg_status value_grad(logreg *p, pvec *g, double *f) {
    tg_status s = tg_replay(p->t);
    tg_zero_grad(p->w), tg_zero_grad(p->b);
    if (!s) s = tg_backward(p->t, p->cost);
    for (int i = 0; !s && i < 2; i++)
        memcpy(g->part[i], p->params[i]->grad, p->params[i]->size * sizeof(double));
    *f = tg_get(p->cost, 0);
    return s;
}

static double value_at(logreg *p, const pvec *theta) {
    for (int i = 0; i < 2; i++)
        memcpy(p->params[i]->data, theta->part[i], p->params[i]->size * sizeof(double));
    tg_replay(p->t);
    return tg_get(p->cost, 0);
}

static void theta_of(logreg *p, pvec *theta) {
    for (int i = 0; i < 2; i++)
        memcpy(theta->part[i], p->params[i]->data, p->params[i]->size * sizeof(double));
}

/* Newton-CG from θ = 0 until f ≤ target (or ‖∇f‖ < 1e-13 when target is
 * −inf); the iterations and Hessian-vector products it took. */
static tg_status newton_cg(logreg *p, double target, int *iters, int *hvps, double *f_out) {
    pvec g = {0}, d = {0}, r = {0}, q = {0}, hq = {0}, th = {0}, tr = {0};
    tg_status s = TG_ERR_NOMEM;
    pvec *all[] = {&g, &d, &r, &q, &hq, &th, &tr};
    for (int i = 0; i < 7; i++)
        if (!pvec_new(all[i], 2, p->params)) goto done;
    tg_zero_grad(p->w);
    memset(p->w->data, 0, LD * sizeof(double)), memset(p->b->data, 0, sizeof(double));
    *hvps = 0;
    double f;
    for (*iters = 0; *iters < 100; (*iters)++) {
        TRY(value_grad(p, &g, &f));
        double gg = dot(&g, &g);
        if (f <= target || sqrt(gg) < 1e-13) break;
        /* CG on H d = −g from d = 0, to ‖r‖ ≤ min(0.5, √‖g‖)·‖g‖ (scipy's rule) */
        axpby(0, &g, 0, &d);
        axpby(-1, &g, 0, &r);
        axpby(1, &r, 0, &q);
        double rr = gg, tol = fmin(0.5, sqrt(sqrt(gg))) * sqrt(gg);
        for (int k = 0; k < 200 && sqrt(rr) > tol; k++) {
            TRY(hvp(p->t, p->cost, &q, &hq));
            (*hvps)++;
            double alpha = rr / dot(&q, &hq), rr_new;
            axpby(alpha, &q, 1, &d);
            axpby(-alpha, &hq, 1, &r);
            rr_new = dot(&r, &r);
            axpby(1, &r, rr_new / rr, &q);
            rr = rr_new;
        }
        /* backtracking: f(θ + τd) ≤ f + 1e-4·τ⟨g, d⟩ */
        theta_of(p, &th);
        double gd = dot(&g, &d), tau = 1;
        for (int k = 0; k < 40; k++, tau /= 2) {
            axpby(1, &th, 0, &tr);
            axpby(tau, &d, 1, &tr);
            if (value_at(p, &tr) <= f + 1e-4 * tau * gd) break;
        }
    }
    *f_out = f;
    s = TG_OK;
done:
    for (int i = 0; i < 7; i++)
        pvec_free(all[i]);
    return s;
}

/* Gradient descent with step 1/L from θ = 0 until f ≤ target. */
static tg_status gradient_descent(logreg *p, double target, int max, int *iters) {
    pvec g = {0};
    tg_status s = TG_ERR_NOMEM;
    if (!pvec_new(&g, 2, p->params)) goto done;
    memset(p->w->data, 0, LD * sizeof(double)), memset(p->b->data, 0, sizeof(double));
    double f;
    for (*iters = 0; *iters < max; (*iters)++) {
        TRY(value_grad(p, &g, &f));
        if (f <= target) break;
        for (int i = 0; i < 2; i++) {
            double *x = p->params[i]->data;
            for (size_t e = 0; e < p->params[i]->size; e++)
                x[e] -= get(&g, i, e) / p->L;
        }
    }
done:
    pvec_free(&g);
    return s;
}

static tg_status newton_vs_gd(uint64_t seed) {
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    logreg p;
    tg_status s = logreg_new(&p, &rng);
    double fstar, f;
    int it_opt, hv_opt, it_n, hv_n, it_gd = 0;
    const int max_gd = 200000;
    TRY(newton_cg(&p, -INFINITY, &it_opt, &hv_opt, &fstar));
    printf("logistic regression (%d x %d, generated): optimum f* = %.15f (Newton-CG, %d "
           "iterations to |grad| < 1e-13)\n",
           LN, LD, fstar, it_opt);
    TRY(newton_cg(&p, fstar + 1e-10, &it_n, &hv_n, &f));
    TRY(gradient_descent(&p, fstar + 1e-10, max_gd, &it_gd));
    printf("to f* + 1e-10: Newton-CG %d iterations (%d Hessian-vector products), gradient "
           "descent (step 1/L, L = %.4g) %s%d iterations\n",
           it_n, hv_n, p.L, it_gd >= max_gd ? "more than " : "", it_gd);
done:
    logreg_free(&p);
    return s;
}

int main(int argc, char **argv) {
    int epochs = 5;
    size_t limit = (size_t)-1;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc)
            limit = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = (uint64_t)atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: curvature [--epochs N] [--limit N] [--data DIR] [--seed S]\n");
            return 2;
        }
    }
    if (epochs < 1) epochs = 1;
    tg_status s = sharpness(dir, epochs, limit, seed);
    if (!s) s = newton_vs_gd(seed);
    if (s) fprintf(stderr, "curvature: %s\n", tg_last_error());
    return s ? 1 : 0;
}
