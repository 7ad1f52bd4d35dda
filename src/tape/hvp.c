/* Second order: Hessian-vector products by forward-over-reverse
 * (Pearlmutter's R-operator) and Gauss-Newton-vector products
 * (docs/hessian.md). With f = ⟨ζ, F(p)⟩, the gradient is the backward
 * pass ∇f = r_p(ζ) (Proposition 3.1) and Hv its derivative along the
 * direction v: every quantity x of the backward pass gets its tangent
 * ẋ = ∂/∂ε x(p + εv) at ε = 0. Forward, the tangents of the values are
 * the d-maps' (tg_jvp from v). Backward, for an op y = F(x) whose adjoint
 * ζ_x += r_x(ζ_y), the product rule gives
 *   ζ̇_x += r_x(ζ̇_y) + ∂/∂ε r_{x+εẋ}(ζ_y)     (r is linear in ζ)
 * the first term the op's r-map on the adjoint-tangent, the second its
 * vjp_dot. Hv is the parameters' adjoint-tangents. The Gauss-Newton
 * product keeps the second term at the loss only: Jᵀ·H_L·J·v. */
#include "tape_impl.h"

#include <string.h>

/* The node's adjoint-tangent buffer, zeroed on first use in this pass. */
static void *adot_of(tg_tape *t, tg_node *nd) {
    if (nd->adot_gen == t->gen) return nd->adot;
    if (!tg_tape_zeroed(t, nd, &nd->adot)) return NULL;
    nd->adot_gen = t->gen;
    return nd->adot;
}

static int param_index(const tg_tensor *x, int np, tg_tensor *const *params) {
    for (int j = 0; j < np; j++)
        if (params[j] == x) return j;
    return -1;
}

static tg_status check_args(tg_tape *t, const tg_tensor *out, const void *seed, int np,
                            tg_tensor *const *params, const void *const *v, void *const *hv,
                            const char *who) {
    tg_status s = tg_tape_check_output(t, out, who);
    if (s) return s;
    if (!seed) return tg_fail(TG_ERR_ARG, "%s: seed is NULL", who);
    if (np < 0 || (np > 0 && (!params || !v || !hv)))
        return tg_fail(TG_ERR_ARG, "%s: bad params/v/hv (nparams = %d)", who, np);
    for (int i = 0; i < np; i++) {
        if (!params[i] || params[i]->kind != TG_PARAM)
            return tg_fail(TG_ERR_ARG, "%s: params[%d] is not a parameter", who, i);
        if (params[i]->dtype != out->dtype)
            return tg_fail(TG_ERR_DTYPE, "%s: params[%d] is %s but the output is %s", who, i,
                           params[i]->dtype == TG_F32 ? "f32" : "f64",
                           out->dtype == TG_F32 ? "f32" : "f64");
        if (!v[i] || !hv[i]) return tg_fail(TG_ERR_ARG, "%s: v[%d] or hv[%d] is NULL", who, i, i);
    }
    return TG_OK;
}

/* Where input i of a call sends ζ (*gin, if want_gin), ζ̇ (*gdot), and its
 * tangent (*tin). */
static tg_status input_maps(tg_tape *t, const tg_call *c, int i, int np, tg_tensor *const *params,
                            const void *const *v, void *const *hv, int want_gin, void **gin,
                            void **gdot, const void **tin) {
    const tg_tensor *x = c->in[i];
    if (tg_op_nondiff(c->op, i) || !x->requires_grad) return TG_OK;
    if (x->kind == TG_PARAM) { /* ζ of a parameter is not needed: only its ζ̇ = (Hv)ᵢ */
        int j = param_index(x, np, params);
        if (j >= 0) *gdot = hv[j], *tin = v[j];
        return TG_OK;
    }
    if (x->kind != TG_NODE) return TG_OK;
    tg_node *src = &t->nodes[x->node];
    if (want_gin && !(*gin = tg_tape_adjoint(t, src)))
        return tg_fail(TG_ERR_NOMEM, "hvp: out of memory for adjoints");
    if (!(*gdot = adot_of(t, src)))
        return tg_fail(TG_ERR_NOMEM, "hvp: out of memory for adjoint-tangents");
    *tin = src->tan_gen == t->gen ? src->tan : NULL;
    return TG_OK;
}

/* The backward pass carrying ζ and ζ̇ from `out` (seed ζ, ζ̇ = 0). gn: the
 * Gauss-Newton product (no ζ below the loss, vjp_dot at the loss only). */
static tg_status second_pass(tg_tape *t, const tg_tensor *out, const void *seed, int np,
                             tg_tensor *const *params, const void *const *v, void *const *hv,
                             int gn, const char *who) {
    tg_status s;
    for (int i = 0; i < np; i++)
        memset(hv[i], 0, bytes_of(params[i]));
    if (!out->requires_grad) return TG_OK; /* depends on no parameter: H = 0 */
    if ((s = tg_tape_jvp_pass(t, np, (const tg_tensor *const *)params, v, out->node))) return s;
    /* Adjoints share the tangents' generation: the tangent pass made none. */
    void *g = tg_tape_adjoint(t, &t->nodes[out->node]);
    if (!g) return tg_fail(TG_ERR_NOMEM, "%s: out of memory for adjoints", who);
    memcpy(g, seed, bytes_of(out));
    for (int k = out->node; k >= 0; k--) {
        tg_node *nd = &t->nodes[k];
        const tg_call *c = &nd->call;
        int has_adj = nd->adj_gen == t->gen, has_adot = nd->adot_gen == t->gen;
        if (!c->out->requires_grad || (!has_adj && !has_adot)) continue;
        void *l0[TG_MAX_ARITY], *l1[TG_MAX_ARITY], *l2[TG_MAX_ARITY];
        void **gin = tg_tape_slots(t, l0, c->n_in, 0), **gdot = tg_tape_slots(t, l1, c->n_in, 1);
        const void **tin = (const void **)tg_tape_slots(t, l2, c->n_in, 2);
        if (!gin || !gdot || !tin)
            return tg_fail(TG_ERR_NOMEM, "%s: out of memory for %d inputs", who, c->n_in);
        int any_g = 0, any_d = 0, any_t = 0, top = k == out->node;
        for (int i = 0; i < c->n_in; i++) {
            /* the GN product needs no ζ below the loss */
            if ((s = input_maps(t, c, i, np, params, v, hv, !gn, &gin[i], &gdot[i], &tin[i])))
                return s;
            any_g |= gin[i] != NULL, any_d |= gdot[i] != NULL, any_t |= tin[i] != NULL;
        }
        if (!any_g && !any_d) continue;
        if (!c->op->vjp) return tg_fail(TG_ERR_STATE, "%s: op %s has no r-map", who, c->op->name);
        /* Checked whatever the direction, so that whether a graph has a
         * Hessian-vector product does not depend on v's zeros. */
        int second = any_d && has_adj && (!gn || top);
        if (second && !c->op->vjp_dot && !c->op->r_const)
            return tg_fail(TG_ERR_STATE,
                           "%s: op %s (tape position %d) has no second-order map (vjp_dot), so "
                           "the Hessian-vector product through it is not available",
                           who, c->op->name, k);
        if (any_g && has_adj) c->op->vjp(c, nd->adj, gin);
        if (any_d && has_adot) c->op->vjp(c, nd->adot, gdot);
        if (second && any_t && c->op->vjp_dot)
            c->op->vjp_dot(c, (const void *const *)tin, nd->tan, nd->adj, gdot);
        if (t->anomaly &&
            ((s = tg_anomaly_backward(c, k, gin)) || (s = tg_anomaly_backward(c, k, gdot))))
            return s;
    }
    return TG_OK;
}

tg_status tg_hvp_seed(tg_tape *t, const tg_tensor *out, const void *seed, int np,
                      tg_tensor *const *params, const void *const *v, void *const *hv) {
    tg_status s = check_args(t, out, seed, np, params, v, hv, "hvp");
    return s ? s : second_pass(t, out, seed, np, params, v, hv, 0, "hvp");
}

/* The seed 1 of a scalar loss, in its dtype. */
static const void *unit_seed(const tg_tensor *loss) {
    static const float one_f = 1.0f;
    static const double one_d = 1.0;
    return loss->dtype == TG_F32 ? (const void *)&one_f : (const void *)&one_d;
}

static tg_status check_scalar(const tg_tape *t, const tg_tensor *loss, const char *who) {
    tg_status s = tg_tape_check_output(t, loss, who);
    if (s) return s;
    if (loss->size == 1) return TG_OK;
    char b[64];
    return tg_fail(TG_ERR_SHAPE, "%s: the loss must be a scalar, got shape %s", who,
                   tg_shape_str(loss, b, sizeof b));
}

tg_status tg_hvp(tg_tape *t, const tg_tensor *loss, int np, tg_tensor *const *params,
                 const void *const *v, void *const *hv) {
    tg_status s = check_scalar(t, loss, "hvp");
    return s ? s : tg_hvp_seed(t, loss, unit_seed(loss), np, params, v, hv);
}

tg_status tg_ggn(tg_tape *t, const tg_tensor *loss, int np, tg_tensor *const *params,
                 const void *const *v, void *const *gv) {
    tg_status s = check_scalar(t, loss, "ggn");
    if (s) return s;
    const tg_op *op = t->nodes[loss->node].call.op;
    if (!op->convex)
        return tg_fail(TG_ERR_ARG,
                       "ggn: the loss must be the result of a built-in loss op (convex in its "
                       "predictions), got %s",
                       op->name);
    const void *seed = unit_seed(loss);
    if ((s = check_args(t, loss, seed, np, params, v, gv, "ggn"))) return s;
    return second_pass(t, loss, seed, np, params, v, gv, 1, "ggn");
}
