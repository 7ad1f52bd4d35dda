/* Second order through the recurrent layers (issue 18 × issue 17):
 * tg_hvp_seed through tg_lstm (the fused op lstm_seq and its vjp_dot) and
 * tg_gru (a composition of table ops) against PyTorch's double backward in
 * float64 (tests/fixtures/rnn_hvp_torch.py wrote rnn_hvp_torch.h), for
 * every input at once (x, weights, biases, h0, c0), with the adjoint on
 * the output sequence and on the final state; the same in float32; and
 * tg_hessian_check (symmetry and central differences of gradients) on
 * both layers, with and without the initial states. */
#include "check.h"
#include "fixtures/rnn_hvp_torch.h"
#include "tapegrad_nn.h"

#include <math.h>
#include <stdlib.h>

enum { N = 2, T = 3, D = 3, H = 2, MAXP = 7 };

/* The script's inputs: tensor s (x, w_ih, w_hh, b_ih, b_hh, h0, c0),
 * element k: scale_s·sin(1 + 0.7k + 1.9s); directions 0.5·cos(0.3 + 1.1k + 2.3s). */
typedef struct layer_case {
    tg_tensor *in[MAXP];
    double *v[MAXP], *hv[MAXP]; /* in the case's dtype */
    int np, lstm;
    int stateless; /* record without h0, c0 (zeros) */
    tg_dtype dt;
} layer_case;

static void case_new(layer_case *c, int lstm, tg_dtype dt) {
    static const double scale[MAXP] = {1.0, 0.6, 0.6, 0.6, 0.6, 0.8, 0.8};
    size_t G = lstm ? 4 * H : 3 * H;
    size_t shapes[MAXP][3] = {{N, T, D}, {G, D}, {G, H}, {G}, {G}, {1, N, H}, {1, N, H}};
    int ranks[MAXP] = {3, 2, 2, 1, 1, 3, 3};
    memset(c, 0, sizeof *c);
    c->lstm = lstm, c->dt = dt, c->np = lstm ? 7 : 6;
    for (int s = 0; s < c->np; s++) {
        CHECK_OK(tg_param_new(&c->in[s], dt, ranks[s], shapes[s]));
        if (!c->in[s]) continue;
        size_t n = c->in[s]->size, es = dt == TG_F32 ? sizeof(float) : sizeof(double);
        c->v[s] = calloc(n, es), c->hv[s] = calloc(n, es);
        for (size_t k = 0; k < n; k++) {
            tg_set(c->in[s], k, scale[s] * sin(1 + 0.7 * (double)k + 1.9 * s));
            double v = 0.5 * cos(0.3 + 1.1 * (double)k + 2.3 * s);
            if (dt == TG_F32)
                ((float *)c->v[s])[k] = (float)v;
            else
                c->v[s][k] = v;
        }
    }
}

static void case_free(layer_case *c) {
    for (int s = 0; s < c->np; s++)
        tg_tensor_free(c->in[s]), free(c->v[s]), free(c->hv[s]);
}

/* Records the layer; ys[0] the output sequence, ys[1] the final state
 * (c_n for the LSTM, h_n for the GRU). */
static tg_status record(tg_tape *t, const layer_case *c, tg_tensor **ys) {
    tg_tensor *const *p = c->in;
    tg_tensor *hn = NULL, *cn = NULL, *h0 = c->stateless ? NULL : p[5];
    tg_tensor *c0 = c->stateless || !c->lstm ? NULL : p[6];
    tg_status s = c->lstm ? tg_lstm(t, p[0], p[1], p[2], p[3], p[4], h0, c0, &ys[0], &hn, &cn)
                          : tg_gru(t, p[0], p[1], p[2], p[3], p[4], h0, &ys[0], &hn);
    ys[1] = c->lstm ? cn : hn;
    return s;
}

/* A case and its layer recorded on a new tape (NULL on failure, counted). */
static tg_tape *setup(layer_case *c, int lstm, tg_dtype dt, tg_tensor **ys) {
    case_new(c, lstm, dt);
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (t && c->in[c->np - 1]) CHECK_OK(record(t, c, ys));
    return t;
}

/* hv of ⟨ζ, y⟩ for y = ys[which] (ζ1[k] = 0.9·sin(0.5 + 1.3k), ζ2[k] =
 * 0.9·cos(0.2 + 0.9k)) against ref (all inputs' products, concatenated):
 * the largest absolute difference, and *scale the largest |ref|. */
static double hvp_vs(layer_case *c, tg_tape *t, tg_tensor *y, int which, const double *ref,
                     double *scale) {
    double seed[N * T * H];
    float seedf[N * T * H];
    for (size_t k = 0; k < y->size; k++) {
        seed[k] = 0.9 * (which ? cos(0.2 + 0.9 * (double)k) : sin(0.5 + 1.3 * (double)k));
        seedf[k] = (float)seed[k];
    }
    const void *v[MAXP];
    void *hv[MAXP];
    for (int s = 0; s < c->np; s++)
        v[s] = c->v[s], hv[s] = c->hv[s];
    CHECK_OK(tg_hvp_seed(t, y, c->dt == TG_F32 ? (const void *)seedf : (const void *)seed, c->np,
                         c->in, v, hv));
    double err = 0;
    *scale = 0;
    size_t off = 0;
    for (int s = 0; s < c->np; s++)
        for (size_t k = 0; k < c->in[s]->size; k++, off++) {
            double h = c->dt == TG_F32 ? ((float *)c->hv[s])[k] : c->hv[s][k];
            err = fmax(err, fabs(h - ref[off]));
            *scale = fmax(*scale, fabs(ref[off]));
        }
    return err;
}

static void test_pytorch(int lstm, tg_dtype dt) {
    const char *what = lstm ? "lstm" : "gru";
    const double *refs[2] = {lstm ? lstm_hv_out : gru_hv_out, lstm ? lstm_hv_cn : gru_hv_hn};
    layer_case c;
    tg_tensor *ys[2] = {NULL, NULL};
    tg_tape *t = setup(&c, lstm, dt, ys);
    for (int which = 0; which < 2 && ys[which]; which++) {
        double scale, err = hvp_vs(&c, t, ys[which], which, refs[which], &scale);
        /* float64: the same products in another order over 3 steps, a few
         * ulps of the O(0.1) values, so 1e-12 is a margin of ~1e3 while a
         * missing or wrong second-order term moves them by ≳ 1e-3 (seen:
         * 2e-16). float32: ~170 float32 ulps (6e-8) of the largest value,
         * for the recurrence and the fast float32 tanh/σ (fastmath.h, a few
         * ulps each) over 3 steps (seen: 3e-7 of it). */
        double tol = dt == TG_F64 ? 1e-12 : 1e-5 * scale;
        CHECK(err <= tol, "%s %s hvp (adjoint on the %s) vs PyTorch: max error %g (scale %g)", what,
              dt == TG_F64 ? "f64" : "f32", which ? "final state" : "output", err, scale);
    }
    tg_tape_free(t);
    case_free(&c);
}

/* The second check: tg_hessian_check's symmetry ⟨u, Hv⟩ = ⟨Hu, v⟩ and H·e_j
 * against central differences of gradients, for f = ⟨ζ, y⟩, random ζ; with
 * the initial states as inputs and without them (lstm_seq's 2-input form). */
static void test_hessian_check(int lstm) {
    layer_case c;
    tg_tensor *ys[2] = {NULL, NULL};
    tg_tape *t = setup(&c, lstm, TG_F64, ys);
    for (c.stateless = 0; t && c.stateless < 2; c.stateless++) {
        if (c.stateless) {
            tg_tape_reset(t);
            CHECK_OK(record(t, &c, ys));
        }
        for (int which = 0; which < 2 && ys[which]; which++) {
            tg_check_opts o = tg_check_defaults();
            tg_check_report r;
            CHECK(tg_hessian_check(t, ys[which], c.stateless ? 5 : c.np, c.in, &o, &r) == TG_OK &&
                      r.ok,
                  "%s hessian check (output %d, states %d): %s", lstm ? "lstm" : "gru", which,
                  !c.stateless, tg_last_error());
        }
    }
    tg_tape_free(t);
    case_free(&c);
}

int main(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        test_pytorch(lstm, TG_F64);
        test_pytorch(lstm, TG_F32);
        test_hessian_check(lstm);
    }
    return check_summary();
}
