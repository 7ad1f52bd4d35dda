/* Optimizers, initialisers and schedules.
 *
 * Optimizers: the first steps of every rule against (a) numbers derived by
 * hand, written as literals, and (b) a reference written here in double from
 * the textbook formulas (m̂ = m/(1−β1ᵗ), ...), in float32 and float64, with
 * and without weight decay and clipping; gradients zeroed after a step; no
 * allocation in a step; invalid configurations rejected with a message.
 * Initialisers: reproducible bits per seed, sample moments of 100k draws,
 * uniform bounds. Schedules: values at chosen epochs. */
#include "check.h"
#include "tapegrad_nn.h"
#include "tapegrad_testing.h"

#include <float.h>

/* float32 steps round each operation to 24 bits (ulp(1) ≈ 1.2e-7); a few
 * roundings per step over 3 steps stay below 1e-6 on values of order 1. */
static double tol_of(tg_dtype dt) {
    return dt == TG_F32 ? 1e-6 : 1e-13;
}

static const char *dt_name(tg_dtype dt) {
    return dt == TG_F32 ? "f32" : "f64";
}

/* A rank-1 parameter holding vals. */
static tg_tensor *param_of(tg_dtype dt, size_t n, const double *vals) {
    tg_tensor *p = NULL;
    CHECK_OK(tg_param_new(&p, dt, 1, (size_t[]){n}));
    if (p) CHECK_OK(tg_fill(p, vals, n));
    return p;
}

/* A view of p's gradient as a tensor, for tg_get/tg_set. */
static tg_tensor grad_view(const tg_tensor *p) {
    tg_tensor g = *p;
    g.data = p->grad;
    return g;
}

static void set_grads(tg_tensor *p, const double *g) {
    tg_tensor v = grad_view(p);
    for (size_t i = 0; i < p->size; i++)
        tg_set(&v, i, g[i]);
}

static int grads_are_zero(const tg_tensor *p) {
    tg_tensor v = grad_view(p);
    for (size_t i = 0; i < p->size; i++)
        if (tg_get(&v, i) != 0.0) return 0;
    return 1;
}

/* The value a dtype stores for x. */
static double stored(tg_dtype dt, double x) {
    return dt == TG_F32 ? (double)(float)x : x;
}

static tg_optimizer *opt_of(const tg_opt_config *c, int n, tg_tensor *const *ps) {
    tg_optimizer *o = NULL;
    CHECK_OK(tg_optimizer_new(&o, c, n, ps));
    return o;
}

/* One step on a single parameter with gradient g; returns the new values. */
static void step_with(tg_optimizer *o, tg_tensor *p, const double *g) {
    set_grads(p, g);
    CHECK_OK(tg_optimizer_step(o));
}

/* ---------------------------------------------------------------- literals */

/* SGD, lr 0.1, p = (1, −2, 0.5), g = (0.1, −0.3, 2) twice:
 *   p₁ = p − 0.1·g = (0.99, −1.97, 0.3);  p₂ = (0.98, −1.94, 0.1). */
static void test_sgd_literal(tg_dtype dt) {
    tg_opt_config c = tg_opt_defaults(TG_OPT_SGD);
    c.lr = 0.1;
    const double g[] = {0.1, -0.3, 2.0};
    const double p1[] = {0.99, -1.97, 0.3}, p2[] = {0.98, -1.94, 0.1};
    tg_tensor *p = param_of(dt, 3, (double[]){1.0, -2.0, 0.5});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    step_with(o, p, g);
    for (size_t i = 0; i < 3; i++)
        CHECK_CLOSE(tg_get(p, i), p1[i], tol_of(dt));
    step_with(o, p, g);
    for (size_t i = 0; i < 3; i++)
        CHECK_CLOSE(tg_get(p, i), p2[i], tol_of(dt));
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* lr 0.1, μ 0.9, p₀ = 1, g = 1 at every step.
 * momentum: v = 1, 1.9, 2.71;  p = 0.9, 0.71, 0.439.
 * nesterov: v = 1, 1.9, 2.71;  p moves by 0.1·(1 + 0.9·v) = 0.19, 0.271,
 *           0.3439: p = 0.81, 0.539, 0.1951. */
static void test_momentum_literal(tg_dtype dt, tg_opt_kind kind) {
    const double mom[] = {0.9, 0.71, 0.439}, nes[] = {0.81, 0.539, 0.1951};
    const double *want = kind == TG_OPT_MOMENTUM ? mom : nes;
    tg_opt_config c = tg_opt_defaults(kind);
    c.lr = 0.1;
    tg_tensor *p = param_of(dt, 1, (double[]){1.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    for (int s = 0; s < 3; s++) {
        step_with(o, p, (double[]){1.0});
        CHECK_CLOSE(tg_get(p, 0), want[s], tol_of(dt));
    }
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* RMSprop lr 1e-2, ρ 0.99, ε 1e-8, p₀ = 1, g = 0.1 then −0.2:
 *   s₁ = 0.01·0.01 = 1e-4, sqrt 0.01: p₁ = 1 − 1e-2·0.1/(0.01 + 1e-8) = 0.9000000999999
 *   s₂ = 0.99e-4 + 0.01·0.04 = 4.99e-4, sqrt 0.02233831: p₂ = p₁ + 0.0895322562 = 0.98953235613 */
static void test_rmsprop_literal(tg_dtype dt) {
    tg_opt_config c = tg_opt_defaults(TG_OPT_RMSPROP);
    c.lr = 1e-2;
    tg_tensor *p = param_of(dt, 1, (double[]){1.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    step_with(o, p, (double[]){0.1});
    CHECK_CLOSE(tg_get(p, 0), 0.9000000999999, tol_of(dt));
    step_with(o, p, (double[]){-0.2});
    CHECK_CLOSE(tg_get(p, 0), 0.9895323561269267, tol_of(dt));
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* Adam with PyTorch's defaults (lr 1e-3, β 0.9/0.999, ε 1e-8), p₀ = 1,
 * g = 0.1, −0.2, 0.3.
 * Step 1: m = 0.01, v = 1e-5, m̂ = 0.1, v̂ = 0.01, so the move is
 *   lr·g/(|g| + ε) = 1e-3·0.1/(0.1 + 1e-8) = 0.0009999999: p₁ = 0.9990000001.
 * Step 2: m = 0.9·0.01 + 0.1·(−0.2) = −0.011, v = 0.999·1e-5 + 0.001·0.04
 *   = 4.999e-5; m̂ = −0.011/0.19 = −0.05789474, v̂ = 4.999e-5/0.001999
 *   = 0.02500750, sqrt 0.15813761: move −3.6610360e-4, p₂ = 0.99936610360.
 * Step 3: m = 0.0201, v = 1.3994001e-4; m̂ = 0.0201/0.271 = 0.07416974,
 *   v̂ = 1.3994001e-4/0.002997001 = 0.04669335, sqrt 0.21608644:
 *   move 3.4324107e-4, p₃ = 0.99902286254. */
static void test_adam_literal(tg_dtype dt) {
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    const double g[] = {0.1, -0.2, 0.3};
    const double want[] = {0.9990000001, 0.9993661036038849, 0.9990228625394775};
    tg_tensor *p = param_of(dt, 1, (double[]){1.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    for (int s = 0; s < 3; s++) {
        step_with(o, p, &g[s]);
        CHECK_CLOSE(tg_get(p, 0), want[s], tol_of(dt));
    }
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* Adam's first step moves every parameter by lr·g/(|g| + ε) ≈ lr·sign(g),
 * whatever the gradient's scale (m̂ = g, v̂ = g² after one step). */
static void test_adam_first_step_is_sign(tg_dtype dt) {
    const double g[] = {1e-3, 5.0, -7.0, 0.0};
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    tg_tensor *p = param_of(dt, 4, (double[]){0.0, 0.0, 0.0, 0.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    step_with(o, p, g);
    for (size_t i = 0; i < 4; i++) {
        double gi = stored(dt, g[i]);
        /* relative: the moves are ~1e-3, far below the absolute tolerance */
        CHECK(fabs(tg_get(p, i) + 1e-3 * gi / (fabs(gi) + 1e-8)) <= 1e-6 * 1e-3,
              "%s: g %g moved to %.10g", dt_name(dt), gi, tg_get(p, i));
    }
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* ---------------------------------------------------------------- reference */

#define NP    5
#define NSTEP 3

/* Gradients per step: signs change, magnitudes span two decades, one is 0. */
static const double grads[NSTEP][NP] = {
    {0.3, -1.2, 0.0, 0.05, 2.0},
    {-0.4, -0.9, 0.7, 0.05, -1.5},
    {0.1, 0.6, -0.2, -0.01, 3.0},
};
static const double start[NP] = {0.5, -1.5, 2.0, -0.25, 1.0};

/* One step of the textbook rule in double: p, m, v updated in place. */
static void ref_step(const tg_opt_config *c, int t, double *p, const double *g0, double *m,
                     double *v) {
    double nrm = 0.0, g[NP];
    for (int i = 0; i < NP; i++)
        nrm += g0[i] * g0[i];
    nrm = sqrt(nrm);
    double f =
        c->clip_norm > 0 && c->clip_norm / (nrm + 1e-6) < 1 ? c->clip_norm / (nrm + 1e-6) : 1.0;
    double wd = c->kind == TG_OPT_ADAMW ? 0.0 : c->weight_decay;
    for (int i = 0; i < NP; i++) {
        g[i] = f * g0[i] + wd * p[i];
        switch (c->kind) {
        case TG_OPT_SGD:
            p[i] -= c->lr * g[i];
            break;
        case TG_OPT_MOMENTUM:
            m[i] = c->momentum * m[i] + g[i];
            p[i] -= c->lr * m[i];
            break;
        case TG_OPT_NESTEROV:
            m[i] = c->momentum * m[i] + g[i];
            p[i] -= c->lr * (g[i] + c->momentum * m[i]);
            break;
        case TG_OPT_RMSPROP:
            m[i] = c->rho * m[i] + (1 - c->rho) * g[i] * g[i];
            p[i] -= c->lr * g[i] / (sqrt(m[i]) + c->eps);
            break;
        case TG_OPT_ADAM:
        case TG_OPT_ADAMW: {
            if (c->kind == TG_OPT_ADAMW) p[i] -= c->lr * c->weight_decay * p[i];
            m[i] = c->beta1 * m[i] + (1 - c->beta1) * g[i];
            v[i] = c->beta2 * v[i] + (1 - c->beta2) * g[i] * g[i];
            double mh = m[i] / (1 - pow(c->beta1, t)), vh = v[i] / (1 - pow(c->beta2, t));
            p[i] -= c->lr * mh / (sqrt(vh) + c->eps);
            break;
        }
        }
    }
}

/* Three steps of `kind` against the reference, every element, and the
 * gradients zero after each step. */
static void test_rule(tg_opt_kind kind, tg_dtype dt, double wd, double clip) {
    tg_opt_config c = tg_opt_defaults(kind);
    c.weight_decay = wd, c.clip_norm = clip;
    /* lr large enough that the moves dominate float rounding */
    c.lr = kind == TG_OPT_SGD || kind == TG_OPT_MOMENTUM || kind == TG_OPT_NESTEROV ? 0.1 : 0.01;
    double p[NP], m[NP] = {0}, v[NP] = {0}, g[NP];
    tg_tensor *t = param_of(dt, NP, start);
    tg_optimizer *o = opt_of(&c, 1, &t);
    if (!o) return;
    for (int i = 0; i < NP; i++)
        p[i] = tg_get(t, i);
    for (int s = 0; s < NSTEP; s++) {
        for (int i = 0; i < NP; i++)
            g[i] = stored(dt, grads[s][i]);
        step_with(o, t, g);
        ref_step(&c, s + 1, p, g, m, v);
        for (int i = 0; i < NP; i++)
            CHECK(fabs(tg_get(t, i) - p[i]) <= tol_of(dt) * fmax(1.0, fabs(p[i])),
                  "%s %s wd %g clip %g step %d [%d]: %.17g vs reference %.17g", tg_opt_name(kind),
                  dt_name(dt), wd, clip, s + 1, i, tg_get(t, i), p[i]);
        CHECK(grads_are_zero(t), "%s %s: gradient not zeroed", tg_opt_name(kind), dt_name(dt));
    }
    tg_optimizer_free(o);
    tg_tensor_free(t);
}

static void test_all_rules(void) {
    for (int k = TG_OPT_SGD; k <= TG_OPT_ADAMW; k++)
        for (int d = TG_F32; d <= TG_F64; d++) {
            test_rule((tg_opt_kind)k, (tg_dtype)d, 0.0, 0.0);
            test_rule((tg_opt_kind)k, (tg_dtype)d, 0.1, 0.0);
            /* the gradients' norms are ~2.4 to 3.4: clip 1.0 always acts */
            test_rule((tg_opt_kind)k, (tg_dtype)d, 0.1, 1.0);
        }
}

/* ---------------------------------------------------------------- decay */

/* Coupled vs decoupled decay, p₀ = 2, g = 0, lr 1e-3, wd 0.1:
 *   adam (coupled): g ← 0 + 0.1·2 = 0.2, and the first step moves by
 *     lr·0.2/(0.2 + ε): p₁ = 2 − 0.00099999995 = 1.99900000005;
 *   adamw: p₁ = 2·(1 − 1e-3·0.1) = 1.9998, then m = v = 0 move nothing.
 * SGD coupled, lr 0.1, wd 0.1, g = 0.5: p₁ = 2 − 0.1·(0.5 + 0.2) = 1.93. */
static void test_weight_decay(tg_dtype dt) {
    const tg_opt_kind kinds[] = {TG_OPT_ADAM, TG_OPT_ADAMW, TG_OPT_SGD};
    const double lr[] = {1e-3, 1e-3, 0.1}, g[] = {0.0, 0.0, 0.5};
    const double want[] = {1.99900000005, 1.9998, 1.93};
    for (int k = 0; k < 3; k++) {
        tg_opt_config c = tg_opt_defaults(kinds[k]);
        c.lr = lr[k], c.weight_decay = 0.1;
        tg_tensor *p = param_of(dt, 1, (double[]){2.0});
        tg_optimizer *o = opt_of(&c, 1, &p);
        if (!o) continue;
        step_with(o, p, &g[k]);
        CHECK(fabs(tg_get(p, 0) - want[k]) <= tol_of(dt) * 2.0, "%s %s: %.12g, want %.12g",
              tg_opt_name(kinds[k]), dt_name(dt), tg_get(p, 0), want[k]);
        tg_optimizer_free(o);
        tg_tensor_free(p);
    }
}

/* ---------------------------------------------------------------- subnormal state */

/* The update treats subnormals as 0 (optim.c: subnormal arithmetic is
 * slow), so state never decays into them. One gradient g₀, then zeros:
 * momentum's v and Adam's m shrink by 0.9 per step, and the weight keeps
 * moving by them (Adam: by lr·m̂/ε, v having underflowed to 0). lr and ε
 * keep every product of the update normal while the state is (momentum:
 * the move is v itself; Adam: α/bc1·sqrt(bc2) ≥ 4), and the moves far
 * above p's ulp. p must move at every step while the state is normal, and
 * stop for good within two steps of the state reaching the subnormal
 * range; without the flush it moves for about 100 steps more (a float32
 * subnormal halves 23 times before 0). */
static void test_flush_moving(tg_opt_kind kind, tg_dtype dt) {
    const double tiny = dt == TG_F32 ? FLT_MIN : DBL_MIN, g0 = 85 * tiny;
    tg_opt_config c = tg_opt_defaults(kind);
    int adam = kind == TG_OPT_ADAM;
    c.eps = 1e8 * tiny, c.lr = adam ? 100.0 : 1.0;
    double s1 = adam ? (1 - c.beta1) * g0 : g0, decay = adam ? c.beta1 : c.momentum;
    /* first step t whose exact state s1·decay^(t−1) is below tiny */
    int t_sub = 1 + (int)ceil(log(s1 / tiny) / log(1 / decay));
    tg_tensor *p = param_of(dt, 1, (double[]){0.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    double g = g0, prev = 0.0;
    for (int t = 1; t <= t_sub + 30; t++, g = 0.0) {
        step_with(o, p, &g);
        double now = tg_get(p, 0);
        if (t <= t_sub - 2)
            CHECK(now != prev, "%s %s step %d (state normal): p did not move", tg_opt_name(kind),
                  dt_name(dt), t);
        if (t > t_sub + 1)
            CHECK(now == prev, "%s %s step %d (state subnormal): p moved %g -> %g",
                  tg_opt_name(kind), dt_name(dt), t, prev, now);
        prev = now;
    }
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* RMSprop's s moves p only with the next gradient. g₁ makes s = 0.01·g₁²
 * (1e6·tiny); after zeros until s is subnormal (ρ = 0.99: ~1400 steps) a
 * gradient g₂ = tiny, whose square underflows to 0, moves p by
 * lr·g₂/(sqrt(s) + ε): exactly lr·g₂/ε when s was flushed to 0, and some
 * 1e13 times less when it was not (sqrt of a subnormal ≫ ε). */
static void test_flush_rmsprop(tg_dtype dt) {
    const double tiny = dt == TG_F32 ? FLT_MIN : DBL_MIN;
    tg_opt_config c = tg_opt_defaults(TG_OPT_RMSPROP);
    c.eps = 1e3 * tiny;
    const double g1 = 1e4 * sqrt(tiny), s1 = (1 - c.rho) * g1 * g1;
    int zeros = (int)ceil(log(s1 / tiny) / log(1 / c.rho)) + 5;
    tg_tensor *p = param_of(dt, 1, (double[]){0.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    double g = g1;
    step_with(o, p, &g);
    g = 0.0;
    for (int t = 0; t < zeros; t++)
        step_with(o, p, &g);
    double before = tg_get(p, 0), want = c.lr * tiny / stored(dt, c.eps);
    g = tiny;
    step_with(o, p, &g);
    double moved = before - tg_get(p, 0);
    /* g₁'s step moved p to ≈ −lr·g₁/(0.1·g₁) = −0.01, whose float32 ulp
     * (9e-10) is 1e-3 of the move: 1 % holds it, and an unflushed s moves
     * p by ~1e-13 of want */
    CHECK(fabs(moved - want) <= 1e-2 * want, "rmsprop %s: moved %g, want %g (s flushed)",
          dt_name(dt), moved, want);
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* ---------------------------------------------------------------- clipping */

/* Two parameters with gradients (3, 4, 0) and (12, 0, 0, 0): global norm
 * 13. SGD with lr 1 from p = 0 leaves p = −(clipped g). */
static void test_clipping(tg_dtype dt, double clip) {
    const double g1[] = {3, 4, 0}, g2[] = {12, 0, 0, 0};
    tg_tensor *ps[2] = {param_of(dt, 3, (double[]){0, 0, 0}),
                        param_of(dt, 4, (double[]){0, 0, 0, 0})};
    tg_opt_config c = tg_opt_defaults(TG_OPT_SGD);
    c.lr = 1.0, c.clip_norm = clip;
    tg_optimizer *o = opt_of(&c, 2, ps);
    if (!o) return;
    set_grads(ps[0], g1), set_grads(ps[1], g2);
    CHECK_CLOSE(tg_grad_norm(2, ps), 13.0, 1e-15);
    CHECK_OK(tg_optimizer_step(o));
    double sq = 0.0, f = clip < 13.0 ? clip / (13.0 + 1e-6) : 1.0;
    for (size_t i = 0; i < 3; i++)
        sq += tg_get(ps[0], i) * tg_get(ps[0], i);
    for (size_t i = 0; i < 4; i++)
        sq += tg_get(ps[1], i) * tg_get(ps[1], i);
    double after = sqrt(sq);
    if (clip < 13.0)
        CHECK(fabs(after - clip) <= 1e-6 * clip, "%s: norm after clipping %.12g, clip %g",
              dt_name(dt), after, clip);
    else
        CHECK(after == 13.0, "%s: norm %.17g changed though under clip %g", dt_name(dt), after,
              clip);
    /* the direction is kept: each element scaled by the same factor */
    CHECK_CLOSE(tg_get(ps[0], 1), -4.0 * f, tol_of(dt));
    CHECK_CLOSE(tg_get(ps[1], 0), -12.0 * f, tol_of(dt));
    CHECK(grads_are_zero(ps[0]) && grads_are_zero(ps[1]), "gradients not zeroed");
    tg_optimizer_free(o);
    tg_tensor_free(ps[0]), tg_tensor_free(ps[1]);
}

/* A NaN or Inf gradient with clipping on: TG_ERR_NUMERIC, parameters
 * untouched, and the step count not advanced (the next good step is a
 * first step, as a fresh optimizer's). */
static void test_nonfinite(tg_dtype dt, double bad) {
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    c.clip_norm = 1.0;
    const double init[] = {0.5, -0.5}, good[] = {0.2, 0.1};
    tg_tensor *a = param_of(dt, 2, init), *b = param_of(dt, 2, init);
    tg_optimizer *oa = opt_of(&c, 1, &a), *ob = opt_of(&c, 1, &b);
    if (!oa || !ob) return;
    set_grads(a, (double[]){0.2, bad});
    tg_status s = tg_optimizer_step(oa);
    CHECK(s == TG_ERR_NUMERIC, "%s: %s for gradient %g", dt_name(dt), tg_status_name(s), bad);
    CHECK(strstr(tg_last_error(), "optimizer: gradient norm is NaN/Inf") != NULL, "message: %s",
          tg_last_error());
    CHECK(memcmp(a->data, b->data, 2 * (dt == TG_F32 ? 4 : 8)) == 0, "parameters changed");
    step_with(oa, a, good);
    step_with(ob, b, good);
    CHECK(memcmp(a->data, b->data, 2 * (dt == TG_F32 ? 4 : 8)) == 0,
          "%s: step after a refused step differs from a first step", dt_name(dt));
    tg_optimizer_free(oa), tg_optimizer_free(ob);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* ---------------------------------------------------------------- allocation */

/* Where a failing constructor must write NULL over whatever *out held. */
static int sentinel;
#define NOT_NULL ((tg_optimizer *)(void *)&sentinel)

/* 10 steps of every kind, with decay and clipping on, allocate nothing. */
static void test_no_alloc(tg_dtype dt) {
    for (int k = TG_OPT_SGD; k <= TG_OPT_ADAMW; k++) {
        tg_tensor *ps[2] = {param_of(dt, NP, start), param_of(dt, 3, start)};
        tg_opt_config c = tg_opt_defaults((tg_opt_kind)k);
        c.weight_decay = 0.01, c.clip_norm = 1.0;
        tg_optimizer *o = opt_of(&c, 2, ps);
        if (!o) continue;
        uint64_t before = tg_alloc_count();
        for (int s = 0; s < 10; s++) {
            set_grads(ps[0], grads[s % NSTEP]), set_grads(ps[1], grads[(s + 1) % NSTEP]);
            CHECK_OK(tg_optimizer_step(o));
        }
        uint64_t n = tg_alloc_count() - before;
        CHECK(n == 0, "%s %s: %llu allocations in 10 steps", tg_opt_name((tg_opt_kind)k),
              dt_name(dt), (unsigned long long)n);
        tg_optimizer_free(o);
        tg_tensor_free(ps[0]), tg_tensor_free(ps[1]);
    }
}

/* Each allocation of tg_optimizer_new failing in turn: TG_ERR_NOMEM,
 * *out NULL, nothing leaked (the sanitizer build checks the leak). */
static void test_alloc_failure(void) {
    tg_tensor *p = param_of(TG_F64, 3, start);
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    for (uint64_t k = 1; k <= 5; k++) {
        tg_optimizer *o = NOT_NULL;
        tg_testing_fail_alloc_at(k);
        tg_status s = tg_optimizer_new(&o, &c, 1, &p);
        tg_testing_fail_alloc_at(0);
        CHECK(s == TG_ERR_NOMEM && o == NULL, "allocation %llu failing: %s", (unsigned long long)k,
              tg_status_name(s));
        if (s == TG_OK) tg_optimizer_free(o);
    }
    tg_tensor_free(p);
}

/* ---------------------------------------------------------------- errors */

static void expect_bad(tg_status want, const tg_opt_config *c, int n, tg_tensor *const *ps,
                       const char *what) {
    tg_optimizer *o = NOT_NULL;
    tg_status s = tg_optimizer_new(&o, c, n, ps);
    CHECK(s == want, "%s: got %s, want %s", what, tg_status_name(s), tg_status_name(want));
    CHECK(o == NULL, "%s: *out not NULL", what);
    CHECK(strncmp(tg_last_error(), "optimizer: ", 11) == 0, "%s: message '%s'", what,
          tg_last_error());
    if (s == TG_OK) tg_optimizer_free(o);
}

/* A config of `kind` with one field changed by the caller. */
#define BAD(kind, field, value, status)                                                            \
    do {                                                                                           \
        tg_opt_config c_ = tg_opt_defaults(kind);                                                  \
        c_.field = (value);                                                                        \
        expect_bad(status, &c_, 1, &p, #kind " " #field " = " #value);                             \
    } while (0)

static void test_invalid(void) {
    tg_tensor *p = param_of(TG_F32, 2, start), *q = param_of(TG_F64, 2, start), *k = NULL;
    CHECK_OK(tg_tensor_new(&k, TG_F32, 1, (size_t[]){2}));
    tg_opt_config c = tg_opt_defaults(TG_OPT_ADAM);
    CHECK(tg_optimizer_new(NULL, &c, 1, &p) == TG_ERR_ARG, "NULL out accepted");
    expect_bad(TG_ERR_ARG, NULL, 1, &p, "NULL config");
    expect_bad(TG_ERR_ARG, &c, 0, &p, "n = 0");
    expect_bad(TG_ERR_ARG, &c, -1, &p, "n = -1");
    expect_bad(TG_ERR_ARG, &c, 1, NULL, "params NULL");
    expect_bad(TG_ERR_ARG, &c, 2, (tg_tensor *[]){p, NULL}, "params[1] NULL");
    expect_bad(TG_ERR_ARG, &c, 1, &k, "a constant, not a parameter");
    expect_bad(TG_ERR_ARG, &c, 2, (tg_tensor *[]){p, p}, "a parameter twice");
    expect_bad(TG_ERR_DTYPE, &c, 2, (tg_tensor *[]){p, q}, "mixed dtypes");
    BAD(TG_OPT_ADAM, kind, (tg_opt_kind)42, TG_ERR_ARG);
    BAD(TG_OPT_SGD, lr, 0.0, TG_ERR_VALUE);
    BAD(TG_OPT_SGD, lr, -0.1, TG_ERR_VALUE);
    BAD(TG_OPT_ADAM, lr, NAN, TG_ERR_VALUE);
    BAD(TG_OPT_ADAM, lr, INFINITY, TG_ERR_VALUE);
    BAD(TG_OPT_MOMENTUM, momentum, -0.1, TG_ERR_VALUE);
    BAD(TG_OPT_NESTEROV, momentum, 1.0, TG_ERR_VALUE);
    BAD(TG_OPT_RMSPROP, rho, 1.0, TG_ERR_VALUE);
    BAD(TG_OPT_RMSPROP, eps, 0.0, TG_ERR_VALUE);
    BAD(TG_OPT_ADAM, beta1, 1.0, TG_ERR_VALUE);
    BAD(TG_OPT_ADAMW, beta2, -0.5, TG_ERR_VALUE);
    BAD(TG_OPT_ADAM, beta2, NAN, TG_ERR_VALUE);
    BAD(TG_OPT_ADAM, eps, -1e-8, TG_ERR_VALUE);
    BAD(TG_OPT_SGD, weight_decay, -1e-4, TG_ERR_VALUE);
    BAD(TG_OPT_ADAMW, weight_decay, NAN, TG_ERR_VALUE);
    BAD(TG_OPT_SGD, clip_norm, -1.0, TG_ERR_VALUE);
    BAD(TG_OPT_SGD, clip_norm, INFINITY, TG_ERR_VALUE);
    /* fields a kind does not use are not checked: sgd ignores momentum */
    tg_opt_config sgd = tg_opt_defaults(TG_OPT_SGD);
    sgd.momentum = 5.0;
    tg_optimizer *o = opt_of(&sgd, 1, &p);
    tg_optimizer_free(o);
    CHECK(tg_optimizer_step(NULL) == TG_ERR_ARG, "step on NULL accepted");
    tg_optimizer_free(NULL);
    tg_tensor_free(p), tg_tensor_free(q), tg_tensor_free(k);
}

/* ---------------------------------------------------------------- misc */

static void test_names_defaults(void) {
    for (int k = TG_OPT_SGD; k <= TG_OPT_ADAMW; k++)
        CHECK(tg_opt_parse(tg_opt_name((tg_opt_kind)k)) == k, "name of %d does not parse", k);
    CHECK(tg_opt_parse("adam") == TG_OPT_ADAM, "adam");
    CHECK(tg_opt_parse("nesterov") == TG_OPT_NESTEROV, "nesterov");
    CHECK(tg_opt_parse("adagrad") == -1 && tg_opt_parse(NULL) == -1, "unknown names parse");
    CHECK(strcmp(tg_opt_name((tg_opt_kind)99), "unknown") == 0, "name of 99");
    tg_opt_config s = tg_opt_defaults(TG_OPT_SGD), a = tg_opt_defaults(TG_OPT_ADAM);
    tg_opt_config w = tg_opt_defaults(TG_OPT_ADAMW), r = tg_opt_defaults(TG_OPT_RMSPROP);
    tg_opt_config m = tg_opt_defaults(TG_OPT_MOMENTUM);
    CHECK(s.kind == TG_OPT_SGD && s.lr == 1e-2 && s.weight_decay == 0 && s.clip_norm == 0, "sgd");
    CHECK(m.lr == 1e-2 && m.momentum == 0.9, "momentum defaults");
    CHECK(a.lr == 1e-3 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 &&
              a.weight_decay == 0,
          "adam defaults");
    CHECK(w.kind == TG_OPT_ADAMW && w.lr == 1e-3 && w.weight_decay == 1e-2, "adamw defaults");
    CHECK(r.lr == 1e-3 && r.rho == 0.99 && r.eps == 1e-8, "rmsprop defaults");
}

/* set_lr takes effect on the next step; 0 is allowed (a schedule's floor),
 * NaN and negative values are ignored. */
static void test_set_lr(void) {
    tg_tensor *p = param_of(TG_F64, 1, (double[]){1.0});
    tg_opt_config c = tg_opt_defaults(TG_OPT_SGD);
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    CHECK(tg_optimizer_lr(o) == 1e-2, "initial lr %g", tg_optimizer_lr(o));
    tg_optimizer_set_lr(o, 0.0);
    step_with(o, p, (double[]){3.0});
    CHECK(tg_get(p, 0) == 1.0 && grads_are_zero(p), "lr 0 moved p to %g", tg_get(p, 0));
    tg_optimizer_set_lr(o, 0.5);
    tg_optimizer_set_lr(o, NAN);
    tg_optimizer_set_lr(o, -1.0);
    CHECK(tg_optimizer_lr(o) == 0.5, "lr %g after NaN and -1", tg_optimizer_lr(o));
    step_with(o, p, (double[]){0.5});
    CHECK(tg_get(p, 0) == 0.75, "p %g, want 1 - 0.5*0.5", tg_get(p, 0));
    CHECK(tg_optimizer_lr(NULL) == 0.0 && tg_grad_norm(0, NULL) == 0.0, "NULL handling");
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* Every rule descends f(p) = ½Σ aᵢ(pᵢ − cᵢ)² (∇ = a ⊙ (p − c)), an
 * ill-conditioned quadratic (curvatures 0.25..4), from f ≈ 9 to f < 1e-4:
 * a sign error or a wrong bias correction would not get there. */
static void test_descent(tg_opt_kind kind, tg_dtype dt) {
    const double a[] = {1.0, 4.0, 0.25}, cen[] = {1.0, -2.0, 3.0};
    tg_opt_config c = tg_opt_defaults(kind);
    c.weight_decay = 0.0; /* decay would move the minimum */
    c.lr = kind == TG_OPT_RMSPROP ? 1e-3 : 0.05;
    tg_tensor *p = param_of(dt, 3, (double[]){0.0, 0.0, 0.0});
    tg_optimizer *o = opt_of(&c, 1, &p);
    if (!o) return;
    double f = 0.0;
    for (int s = 0; s < 4000; s++) {
        double g[3];
        f = 0.0;
        for (int i = 0; i < 3; i++) {
            double d = tg_get(p, i) - cen[i];
            g[i] = a[i] * d, f += 0.5 * a[i] * d * d;
        }
        step_with(o, p, g);
    }
    CHECK(f < 1e-4, "%s %s: f = %g after 4000 steps", tg_opt_name(kind), dt_name(dt), f);
    tg_optimizer_free(o);
    tg_tensor_free(p);
}

/* ---------------------------------------------------------------- initialisers */

#define ROWS    250
#define COLS    400 /* 100 000 draws */
#define FAN_IN  300
#define FAN_OUT 100 /* fan_in + fan_out ≠ 2·fan_in: Xavier and He differ */

static tg_tensor *filled(tg_dtype dt, tg_init kind, uint64_t seed) {
    tg_tensor *w = NULL;
    tg_rng r;
    tg_rng_seed(&r, seed);
    CHECK_OK(tg_tensor_new(&w, dt, 2, (size_t[]){ROWS, COLS}));
    if (w) CHECK_OK(tg_init_fill(w, kind, FAN_IN, FAN_OUT, &r));
    return w;
}

/* Target standard deviation, and bound for the uniform kinds (0 if normal). */
static void target(tg_init kind, double *sd, double *bound) {
    double xav = 2.0 / (FAN_IN + FAN_OUT), he = 2.0 / FAN_IN;
    *bound = 0.0;
    switch (kind) {
    case TG_INIT_NORMAL_SMALL:
        *sd = 0.01;
        break;
    case TG_INIT_XAVIER_NORMAL:
        *sd = sqrt(xav);
        break;
    case TG_INIT_HE_NORMAL:
        *sd = sqrt(he);
        break;
    case TG_INIT_XAVIER_UNIFORM:
        *bound = sqrt(6.0 / (FAN_IN + FAN_OUT));
        break;
    case TG_INIT_HE_UNIFORM:
        *bound = sqrt(6.0 / FAN_IN);
        break;
    default:
        *sd = 0.0;
    }
    if (*bound > 0) *sd = *bound / sqrt(3.0); /* Var U(−a, a) = a²/3 */
}

/* Sample mean and second moment against the target within 4 standard errors.
 * With the mean known (0), m₂ = Σx²/n estimates σ², with standard error
 * sqrt(Var(x²)/n): Var(x²) = E x⁴ − σ⁴ = 2σ⁴ for a normal, (9/5 − 1)σ⁴ = 0.8σ⁴
 * for a uniform (E x⁴ = a⁴/5 = 9σ⁴/5). The mean's standard error is σ/sqrt(n).
 * Why 4: by the CLT (n = 100 000) a correct sampler lands outside ±4 SE with
 * probability ~6e-5 per check for an arbitrary seed (and the seed is fixed, so
 * the test is deterministic), while the mistakes that matter move far more:
 * the relative SE of σ² is sqrt(2/n) ≈ 0.45%, so ±4 SE is ±1.8%, and using
 * fan_out for fan_in, 2 for 6, or a missing sqrt changes σ² by 33% or more. */
static void test_init_moments(tg_dtype dt, tg_init kind) {
    double sd, bound;
    target(kind, &sd, &bound);
    tg_tensor *w = filled(dt, kind, 2024);
    if (!w) return;
    double n = (double)w->size, s1 = 0.0, s2 = 0.0, amax = 0.0;
    for (size_t i = 0; i < w->size; i++) {
        double x = tg_get(w, i);
        s1 += x, s2 += x * x, amax = fmax(amax, fabs(x));
    }
    double mean = s1 / n, m2 = s2 / n, var = sd * sd;
    double se_mean = sd / sqrt(n), se_m2 = sqrt((bound > 0 ? 0.8 : 2.0) * var * var / n);
    CHECK(fabs(mean) <= 4 * se_mean, "init %d %s: mean %g, 4 SE = %g", kind, dt_name(dt), mean,
          4 * se_mean);
    CHECK(fabs(m2 - var) <= 4 * se_m2, "init %d %s: variance %g, want %g ± %g", kind, dt_name(dt),
          m2, var, 4 * se_m2);
    if (bound > 0) {
        /* float32 rounds to nearest, so a draw may land on the rounded bound */
        double lim = dt == TG_F32 ? (double)(float)bound : bound;
        CHECK(amax <= lim, "init %d %s: |x| %.17g beyond the bound %.17g", kind, dt_name(dt), amax,
              bound);
        CHECK(amax > 0.999 * bound, "init %d %s: max |x| %g does not reach the bound %g", kind,
              dt_name(dt), amax, bound);
    }
    tg_tensor_free(w);
}

/* Same seed → the same bits; float32 is the float64 fill rounded; another
 * seed → a different stream (hardly any element equal). */
static void test_init_reproducible(tg_init kind) {
    tg_tensor *a = filled(TG_F64, kind, 7), *b = filled(TG_F64, kind, 7);
    tg_tensor *f = filled(TG_F32, kind, 7), *c = filled(TG_F64, kind, 8);
    if (!a || !b || !f || !c) return;
    CHECK(memcmp(a->data, b->data, a->size * sizeof(double)) == 0, "init %d: same seed differs",
          kind);
    size_t same = 0, rounded = 0;
    for (size_t i = 0; i < a->size; i++) {
        same += tg_get(a, i) == tg_get(c, i);
        rounded += tg_get(f, i) == (double)(float)tg_get(a, i);
    }
    CHECK(rounded == a->size, "init %d: f32 fill is not the f64 fill rounded", kind);
    CHECK(same < 10, "init %d: seeds 7 and 8 agree on %zu elements", kind, same);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(f), tg_tensor_free(c);
}

/* Zeros overwrites whatever was there with +0, needs no generator, and
 * draws nothing from one it is given. */
static void test_init_zeros(tg_dtype dt) {
    tg_tensor *w = NULL;
    CHECK_OK(tg_tensor_new(&w, dt, 2, (size_t[]){3, 4}));
    if (!w) return;
    for (size_t i = 0; i < w->size; i++)
        tg_set(w, i, 7.0);
    tg_rng r;
    tg_rng_seed(&r, 5);
    CHECK_OK(tg_init_fill(w, TG_INIT_ZEROS, 3, 4, &r));
    CHECK(r.state == 5, "zeros drew from the generator");
    int zero = 1;
    for (size_t i = 0; i < w->size; i++)
        zero &= tg_get(w, i) == 0.0 && !signbit(tg_get(w, i));
    CHECK(zero, "%s: zeros left a nonzero", dt_name(dt));
    tg_set(w, 0, 1.0);
    CHECK_OK(tg_init_fill(w, TG_INIT_ZEROS, 3, 4, NULL));
    CHECK(tg_get(w, 0) == 0.0, "zeros without a generator");
    tg_tensor_free(w);
}

static void expect_init_bad(tg_status want, tg_tensor *w, tg_init kind, size_t fi, size_t fo,
                            tg_rng *r, const char *what) {
    tg_status s = tg_init_fill(w, kind, fi, fo, r);
    CHECK(s == want, "%s: got %s, want %s", what, tg_status_name(s), tg_status_name(want));
    CHECK(strncmp(tg_last_error(), "init: ", 6) == 0, "%s: message '%s'", what, tg_last_error());
}

static void test_init_errors(void) {
    tg_tensor *w = NULL;
    tg_rng r;
    tg_rng_seed(&r, 1);
    CHECK_OK(tg_tensor_new(&w, TG_F32, 2, (size_t[]){2, 2}));
    expect_init_bad(TG_ERR_ARG, NULL, TG_INIT_HE_NORMAL, 2, 2, &r, "NULL tensor");
    expect_init_bad(TG_ERR_ARG, w, TG_INIT_HE_NORMAL, 2, 2, NULL, "NULL generator");
    expect_init_bad(TG_ERR_ARG, w, (tg_init)99, 2, 2, &r, "unknown kind");
    expect_init_bad(TG_ERR_VALUE, w, TG_INIT_HE_UNIFORM, 0, 2, &r, "he fan_in 0");
    expect_init_bad(TG_ERR_VALUE, w, TG_INIT_XAVIER_NORMAL, 2, 0, &r, "xavier fan_out 0");
    expect_init_bad(TG_ERR_VALUE, w, TG_INIT_XAVIER_UNIFORM, 0, 2, &r, "xavier fan_in 0");
    tg_tensor_free(w);
}

/* ---------------------------------------------------------------- schedules */

static void test_schedules(void) {
    tg_schedule st = {TG_SCHED_STEP, 0.1, 10, 0.5, 0, 0.0};
    /* ⌊e/10⌋ = 0, 0, 1, 2 */
    CHECK_CLOSE(tg_schedule_lr(&st, 0), 0.1, 1e-15);
    CHECK_CLOSE(tg_schedule_lr(&st, 9), 0.1, 1e-15);
    CHECK_CLOSE(tg_schedule_lr(&st, 10), 0.05, 1e-15);
    CHECK_CLOSE(tg_schedule_lr(&st, 25), 0.025, 1e-15);
    CHECK_CLOSE(tg_schedule_lr(&st, -3), 0.1, 1e-15);
    st.step_size = 0;
    CHECK(tg_schedule_lr(&st, 25) == 0.1, "step_size 0 gives base_lr");

    tg_schedule co = {TG_SCHED_COSINE, 0.1, 0, 0.0, 100, 0.001};
    CHECK_CLOSE(tg_schedule_lr(&co, 0), 0.1, 1e-15);
    /* cos(π/2) = 0: halfway between base and min, 0.0505 */
    CHECK_CLOSE(tg_schedule_lr(&co, 50), 0.0505, 1e-15);
    /* cos(π/4) = √2/2: 0.001 + 0.099·(1 + 0.70710678)/2 = 0.08550178 */
    CHECK_CLOSE(tg_schedule_lr(&co, 25), 0.001 + 0.099 * (1 + sqrt(0.5)) / 2, 1e-15);
    CHECK_CLOSE(tg_schedule_lr(&co, 25), 0.0855017857, 1e-10);
    CHECK_CLOSE(tg_schedule_lr(&co, 100), 0.001, 1e-15);
    CHECK_CLOSE(tg_schedule_lr(&co, 250), 0.001, 1e-15);
    co.total = 0;
    CHECK(tg_schedule_lr(&co, 5) == 0.1, "total 0 gives base_lr");

    tg_schedule k = {TG_SCHED_CONSTANT, 0.3, 0, 0.0, 0, 0.0};
    CHECK(tg_schedule_lr(&k, 0) == 0.3 && tg_schedule_lr(&k, 1000) == 0.3, "constant");
}

int main(void) {
    for (int d = TG_F32; d <= TG_F64; d++) {
        tg_dtype dt = (tg_dtype)d;
        test_sgd_literal(dt);
        test_momentum_literal(dt, TG_OPT_MOMENTUM);
        test_momentum_literal(dt, TG_OPT_NESTEROV);
        test_rmsprop_literal(dt);
        test_adam_literal(dt);
        test_adam_first_step_is_sign(dt);
        test_weight_decay(dt);
        test_flush_moving(TG_OPT_MOMENTUM, dt);
        test_flush_moving(TG_OPT_NESTEROV, dt);
        test_flush_moving(TG_OPT_ADAM, dt);
        test_flush_rmsprop(dt);
        test_clipping(dt, 1.3);
        test_clipping(dt, 20.0);
        test_nonfinite(dt, NAN);
        test_nonfinite(dt, INFINITY);
        test_no_alloc(dt);
        test_init_zeros(dt);
        for (int k = TG_OPT_SGD; k <= TG_OPT_ADAMW; k++)
            test_descent((tg_opt_kind)k, dt);
        for (int k = TG_INIT_NORMAL_SMALL; k <= TG_INIT_HE_UNIFORM; k++)
            test_init_moments(dt, (tg_init)k);
    }
    test_all_rules();
    test_alloc_failure();
    test_invalid();
    test_names_defaults();
    test_set_lr();
    for (int k = TG_INIT_NORMAL_SMALL; k <= TG_INIT_HE_UNIFORM; k++)
        test_init_reproducible((tg_init)k);
    test_init_errors();
    test_schedules();
    return check_summary();
}
