/* Derivative checks on any recorded graph:
 *  - tg_gradcheck: the full Jacobian from the r-maps against central finite
 *    differences (PyTorch's gradcheck and its defaults);
 *  - tg_adjoint_check: ⟨rF(ζ), ξ⟩ = ⟨ζ, dF(ξ)⟩, the definition of r in the
 *    seed notes (Proposition 3.1), with no finite difference involved. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

tg_check_opts tg_check_defaults(void) {
    tg_check_opts o = {1e-6, 1e-5, 1e-3, 1e-12, 42};
    return o;
}

static tg_status check_args(const tg_tape *t, const tg_tensor *out, int np,
                            tg_tensor *const *params, const char *who) {
    if (!t || !out || (np > 0 && !params) || np < 0)
        return tg_fail(TG_ERR_ARG, "%s: NULL tape, output or params", who);
    if (out->kind != TG_NODE || out->tape != t)
        return tg_fail(TG_ERR_STATE, "%s: the output is not a result on this tape", who);
    if (out->dtype != TG_F64)
        return tg_fail(TG_ERR_DTYPE, "%s: needs a float64 graph (f32 rounding swamps the check)",
                       who);
    for (int i = 0; i < np; i++) {
        if (!params[i] || params[i]->kind != TG_PARAM || params[i]->dtype != TG_F64)
            return tg_fail(TG_ERR_ARG, "%s: params[%d] is not a float64 parameter", who, i);
    }
    return TG_OK;
}

/* Saved copies of the parameters' gradients, so that a check leaves the
 * user's accumulated gradients as they were. */
static double **save_grads(int np, tg_tensor *const *params) {
    double **saved = tg_calloc((size_t)np + 1, sizeof *saved);
    for (int i = 0; saved && i < np; i++) {
        saved[i] = tg_malloc(params[i]->size * sizeof(double));
        if (!saved[i]) {
            for (int j = 0; j < i; j++)
                tg_free(saved[j]);
            tg_free(saved);
            return NULL;
        }
        memcpy(saved[i], params[i]->grad, params[i]->size * sizeof(double));
    }
    return saved;
}

static void restore_grads(int np, tg_tensor *const *params, double **saved) {
    for (int i = 0; i < np; i++) {
        memcpy(params[i]->grad, saved[i], params[i]->size * sizeof(double));
        tg_free(saved[i]);
    }
    tg_free(saved);
}

static size_t total_size(int np, tg_tensor *const *params) {
    size_t n = 0;
    for (int i = 0; i < np; i++)
        n += params[i]->size;
    return n;
}

/* Row k of the analytic Jacobian: r(e_k) by one backward pass. */
static tg_status analytic_rows(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                               double *jac, double *seed) {
    size_t cols = total_size(np, params);
    for (size_t k = 0; k < out->size; k++) {
        for (int i = 0; i < np; i++)
            tg_zero_grad(params[i]);
        memset(seed, 0, out->size * sizeof *seed);
        seed[k] = 1.0;
        tg_status s = tg_backward_seed(t, out, seed);
        if (s) return s;
        double *row = jac + k * cols;
        for (int i = 0; i < np; i++) {
            memcpy(row, params[i]->grad, params[i]->size * sizeof(double));
            row += params[i]->size;
        }
    }
    return TG_OK;
}

/* Column j of the numeric Jacobian: (F(p + εe_j) − F(p − εe_j)) / 2ε. */
static void numeric_cols(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                         double eps, double *jac, double *fplus) {
    size_t cols = total_size(np, params), col = 0;
    const double *y = out->data;
    for (int i = 0; i < np; i++) {
        double *x = params[i]->data;
        for (size_t e = 0; e < params[i]->size; e++, col++) {
            double x0 = x[e];
            x[e] = x0 + eps;
            tg_replay(t);
            memcpy(fplus, y, out->size * sizeof(double));
            x[e] = x0 - eps;
            tg_replay(t);
            for (size_t k = 0; k < out->size; k++)
                jac[k * cols + col] = (fplus[k] - y[k]) / (2.0 * eps);
            x[e] = x0;
        }
    }
    tg_replay(t); /* leave every value as recorded */
}

/* Locate flat column col in the parameter list. */
static void locate(int np, tg_tensor *const *params, size_t col, int *param, size_t *index) {
    int i = 0;
    while (i < np - 1 && col >= params[i]->size)
        col -= params[i++]->size;
    *param = i;
    *index = col;
}

static tg_status compare(int np, tg_tensor *const *params, size_t rows, const double *ja,
                         const double *jn, const tg_check_opts *o, tg_check_report *r,
                         const char *who) {
    size_t cols = total_size(np, params), worst = 0;
    double worst_excess = -INFINITY;
    for (size_t q = 0; q < rows * cols; q++) {
        double err = fabs(ja[q] - jn[q]);
        double rel = err / fmax(fabs(jn[q]), DBL_MIN);
        double excess = err - (o->atol + o->rtol * fabs(jn[q]));
        if (err > r->abs_err) r->abs_err = err;
        if (jn[q] != 0 && rel > r->rel_err) r->rel_err = rel;
        if (excess > worst_excess || q == 0) worst_excess = excess, worst = q;
        if (!(excess <= 0)) r->ok = 0; /* NaN fails too */
    }
    if (rows * cols == 0) return TG_OK;
    r->out_index = worst / cols;
    locate(np, params, worst % cols, &r->param, &r->index);
    r->analytic = ja[worst];
    r->numeric = jn[worst];
    if (r->ok) return TG_OK;
    return tg_fail(TG_ERR_CHECK,
                   "%s: param %d element %zu (output element %zu): analytic %.10g, "
                   "numeric %.10g, abs err %.3g, rel err %.3g (atol %g, rtol %g)",
                   who, r->param, r->index, r->out_index, r->analytic, r->numeric,
                   fabs(r->analytic - r->numeric),
                   fabs(r->analytic - r->numeric) / fmax(fabs(r->numeric), DBL_MIN), o->atol,
                   o->rtol);
}

tg_status tg_gradcheck(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                       const tg_check_opts *opts, tg_check_report *report) {
    tg_status s = check_args(t, out, np, params, "gradcheck");
    if (s) return s;
    tg_check_opts o = opts ? *opts : tg_check_defaults();
    tg_check_report r;
    memset(&r, 0, sizeof r);
    r.ok = 1;
    size_t cols = total_size(np, params), rows = out->size;
    if (cols && rows > SIZE_MAX / sizeof(double) / cols / 2)
        return tg_fail(TG_ERR_SHAPE, "gradcheck: Jacobian too large");
    double *ja = tg_malloc(rows * cols * sizeof *ja), *jn = tg_malloc(rows * cols * sizeof *jn);
    double *tmp = tg_malloc(rows * sizeof *tmp);
    double **saved = save_grads(np, params);
    if (!ja || !jn || !tmp || !saved) {
        s = tg_fail(TG_ERR_NOMEM, "gradcheck: out of memory for a %zux%zu Jacobian", rows, cols);
    } else {
        s = analytic_rows(t, out, np, params, ja, tmp);
        if (!s) {
            numeric_cols(t, out, np, params, o.eps, jn, tmp);
            s = compare(np, params, rows, ja, jn, &o, &r, "gradcheck");
        }
    }
    if (saved) restore_grads(np, params, saved);
    tg_free(ja);
    tg_free(jn);
    tg_free(tmp);
    if (report) *report = r;
    return s;
}

/* ---------------------------------------------------------------- adjoint */

static void fill_normal(tg_rng *g, double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        v[i] = tg_rng_normal(g);
}

/* Both sides of ⟨rF(ζ), ξ⟩ = ⟨ζ, dF(ξ)⟩, and the scale of the relative
 * error: the sum of |terms| (so cancellation cannot hide an error), but at
 * least ‖ζ‖·‖ξ‖. The floor matters where dF is zero in exact arithmetic
 * (sum of a softmax is constant): both sides are then rounding noise and
 * Σ|terms| is noise too; against ‖ζ‖·‖ξ‖ the noise is ~1e-16, while a
 * wrong map with an O(1) Jacobian still errs by O(1). */
static tg_status adjoint_sides(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                               double **xi, const double *zeta, double side[2], double *scale) {
    tg_status s = tg_jvp(t, np, (const tg_tensor *const *)params, (const void *const *)xi);
    if (s) return s;
    const double *dF = tg_tangent(t, out); /* NULL: out does not depend on params */
    side[0] = side[1] = *scale = 0;
    double zz = 0, xx = 0;
    for (size_t k = 0; k < out->size; k++) {
        zz += zeta[k] * zeta[k];
        if (!dF) continue;
        side[1] += zeta[k] * dF[k];
        *scale += fabs(zeta[k] * dF[k]);
    }
    for (int i = 0; i < np; i++)
        tg_zero_grad(params[i]);
    if ((s = tg_backward_seed(t, out, zeta))) return s;
    for (int i = 0; i < np; i++) {
        const double *g = params[i]->grad;
        for (size_t e = 0; e < params[i]->size; e++) {
            side[0] += g[e] * xi[i][e];
            *scale += fabs(g[e] * xi[i][e]);
            xx += xi[i][e] * xi[i][e];
        }
    }
    *scale = fmax(*scale, sqrt(zz * xx));
    return TG_OK;
}

tg_status tg_adjoint_check(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                           const tg_check_opts *opts, tg_check_report *report) {
    tg_status s = check_args(t, out, np, params, "adjoint check");
    if (s) return s;
    tg_check_opts o = opts ? *opts : tg_check_defaults();
    tg_check_report r;
    memset(&r, 0, sizeof r);
    tg_rng g;
    tg_rng_seed(&g, o.seed);
    double **xi = tg_calloc((size_t)np + 1, sizeof *xi);
    double *zeta = tg_malloc(out->size * sizeof *zeta);
    double **saved = save_grads(np, params);
    int ok = xi && zeta && saved;
    for (int i = 0; ok && i < np; i++) {
        ok = (xi[i] = tg_malloc(params[i]->size * sizeof(double))) != NULL;
        if (ok) fill_normal(&g, xi[i], params[i]->size);
    }
    double side[2] = {0, 0}, scale = 0;
    if (!ok) {
        s = tg_fail(TG_ERR_NOMEM, "adjoint check: out of memory");
    } else {
        fill_normal(&g, zeta, out->size);
        s = adjoint_sides(t, out, np, params, xi, zeta, side, &scale);
    }
    if (saved) restore_grads(np, params, saved);
    for (int i = 0; xi && i < np; i++)
        tg_free(xi[i]);
    tg_free(xi);
    tg_free(zeta);
    if (s) return s;
    r.analytic = side[0];
    r.numeric = side[1];
    r.adjoint_err = fabs(side[0] - side[1]) / fmax(scale, DBL_MIN);
    r.ok = r.adjoint_err <= o.adjoint_tol;
    if (report) *report = r;
    if (r.ok) return TG_OK;
    return tg_fail(TG_ERR_CHECK,
                   "adjoint check: <rF(zeta), xi> = %.17g but <zeta, dF(xi)> = %.17g "
                   "(relative error %.3g > %g)",
                   side[0], side[1], r.adjoint_err, o.adjoint_tol);
}

/* ---------------------------------------------------------------- second order */

/* Pointers into a flat array of total_size(params) doubles, one per param. */
static void split(double *flat, int np, tg_tensor *const *params, double **parts) {
    for (int i = 0; i < np; i++) {
        parts[i] = flat;
        flat += params[i]->size;
    }
}

static tg_status hvp_flat(tg_tape *t, const tg_tensor *out, const double *zeta, int np,
                          tg_tensor *const *params, double *v, double *hv, double **pv,
                          double **phv) {
    split(v, np, params, pv);
    split(hv, np, params, phv);
    return tg_hvp_seed(t, out, zeta, np, params, (const void *const *)pv, (void *const *)phv);
}

/* ⟨u, Hv⟩ against ⟨Hu, v⟩: the Hessian of f = ⟨ζ, F⟩ is symmetric. The
 * scale: the sum of |terms| of both sides (cancellation cannot hide an
 * error), at least ‖ζ‖‖u‖‖v‖ where H is zero in exact arithmetic and both
 * sides are rounding noise (a softmax's sum, as tg_adjoint_check's floor). */
static tg_status symmetry(tg_tape *t, const tg_tensor *out, const double *zeta, int np,
                          tg_tensor *const *params, size_t n, double *w, double **pa, double **pb,
                          tg_rng *g, double side[2], double *scale) {
    double *u = w, *v = w + n, *hu = w + 2 * n, *hv = w + 3 * n;
    fill_normal(g, u, n);
    fill_normal(g, v, n);
    tg_status s = hvp_flat(t, out, zeta, np, params, u, hu, pa, pb);
    if (!s) s = hvp_flat(t, out, zeta, np, params, v, hv, pa, pb);
    if (s) return s;
    double abs_sum = 0, uu = 0, vv = 0, zz = 0;
    side[0] = side[1] = 0;
    for (size_t i = 0; i < n; i++) {
        side[0] += u[i] * hv[i], side[1] += hu[i] * v[i];
        abs_sum += fabs(u[i] * hv[i]) + fabs(hu[i] * v[i]);
        uu += u[i] * u[i], vv += v[i] * v[i];
    }
    for (size_t k = 0; k < out->size; k++)
        zz += zeta[k] * zeta[k];
    *scale = fmax(abs_sum, sqrt(zz * uu * vv));
    return TG_OK;
}

/* ∇f = r(ζ) into g (flat), from zeroed gradients. */
static tg_status gradient(tg_tape *t, const tg_tensor *out, const double *zeta, int np,
                          tg_tensor *const *params, double *g) {
    for (int i = 0; i < np; i++)
        tg_zero_grad(params[i]);
    tg_status s = tg_backward_seed(t, out, zeta);
    for (int i = 0; !s && i < np; i++) {
        memcpy(g, params[i]->grad, params[i]->size * sizeof(double));
        g += params[i]->size;
    }
    return s;
}

/* Column j of the Hessian: analytic H·e_j into ha, and the central
 * difference of gradients (∇f(p + εe_j) − ∇f(p − εe_j)) / 2ε into hn
 * (row-major n×n, column j). */
static tg_status hessian_column(tg_tape *t, const tg_tensor *out, const double *zeta, int np,
                                tg_tensor *const *params, size_t n, size_t j, double eps, double *w,
                                double **pa, double **pb, double *ha, double *hn) {
    double *e = w, *he = w + n, *gp = w + 2 * n, *gm = w + 3 * n;
    memset(e, 0, n * sizeof *e);
    e[j] = 1;
    tg_status s = hvp_flat(t, out, zeta, np, params, e, he, pa, pb);
    if (s) return s;
    int pi;
    size_t idx;
    locate(np, params, j, &pi, &idx);
    double *x = params[pi]->data, x0 = x[idx];
    x[idx] = x0 + eps;
    tg_replay(t);
    s = gradient(t, out, zeta, np, params, gp);
    x[idx] = x0 - eps;
    tg_replay(t);
    if (!s) s = gradient(t, out, zeta, np, params, gm);
    x[idx] = x0;
    tg_replay(t);
    for (size_t k = 0; !s && k < n; k++) {
        ha[k * n + j] = he[k];
        hn[k * n + j] = (gp[k] - gm[k]) / (2.0 * eps);
    }
    return s;
}

static tg_status hessian_run(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                             const tg_check_opts *o, tg_check_report *r, double *w, double **pa,
                             double **pb) {
    size_t n = total_size(np, params);
    double *zeta = w + 4 * n, *ha = zeta + out->size, *hn = ha + n * n;
    tg_rng g;
    tg_rng_seed(&g, o->seed);
    if (out->size == 1)
        zeta[0] = 1;
    else
        fill_normal(&g, zeta, out->size);
    double side[2], scale;
    tg_status s = symmetry(t, out, zeta, np, params, n, w, pa, pb, &g, side, &scale);
    if (s) return s;
    r->analytic = side[0], r->numeric = side[1];
    r->symmetry_err = fabs(side[0] - side[1]) / fmax(scale, DBL_MIN);
    if (!(r->symmetry_err <= o->adjoint_tol))
        return tg_fail(TG_ERR_CHECK,
                       "hessian check: <u, Hv> = %.17g but <Hu, v> = %.17g (relative error "
                       "%.3g > %g)",
                       side[0], side[1], r->symmetry_err, o->adjoint_tol);
    r->ok = 1;
    if (o->eps == 0) return TG_OK; /* the symmetry half only */
    for (size_t j = 0; j < n; j++)
        if ((s = hessian_column(t, out, zeta, np, params, n, j, o->eps, w, pa, pb, ha, hn)))
            return s;
    return compare(np, params, n, ha, hn, o, r, "hessian check");
}

tg_status tg_hessian_check(tg_tape *t, const tg_tensor *out, int np, tg_tensor *const *params,
                           const tg_check_opts *opts, tg_check_report *report) {
    tg_status s = check_args(t, out, np, params, "hessian check");
    if (s) return s;
    tg_check_opts o = opts ? *opts : tg_check_defaults();
    tg_check_report r;
    memset(&r, 0, sizeof r);
    size_t n = total_size(np, params), cols = o.eps != 0 ? n : 0;
    if (cols > 2048 || n > SIZE_MAX / 64 || out->size > SIZE_MAX / 64)
        return tg_fail(TG_ERR_SHAPE, "hessian check: %zu parameters: the Hessian is too large", n);
    /* u, v, Hu, Hv (reused as e_j, He_j, ∇f(p ± εe_j)), ζ, two n×n Hessians
     * (none for the symmetry alone) */
    double *w = tg_malloc((4 * n + out->size + 2 * cols * n + 1) * sizeof *w);
    double **pa = tg_calloc((size_t)np + 1, sizeof *pa),
           **pb = tg_calloc((size_t)np + 1, sizeof *pb);
    double **saved = save_grads(np, params);
    if (!w || !pa || !pb || !saved)
        s = tg_fail(TG_ERR_NOMEM, "hessian check: out of memory for %zu parameters", n);
    else
        s = hessian_run(t, out, np, params, &o, &r, w, pa, pb);
    if (saved) restore_grads(np, params, saved);
    tg_free(w);
    tg_free(pa);
    tg_free(pb);
    if (report) *report = r;
    return s;
}
