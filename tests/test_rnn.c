/* Sequence layers (issue 17): embedding, LSTM and GRU. Their shapes and
 * PyTorch names; the recurrences against loops written here in double;
 * gradcheck and the adjoint check through 3 unrolled steps with a batch
 * of 2 (parameters, input and initial states); truncated BPTT (a state
 * carried across a reset, a detach that stops the gradient); PyTorch's
 * outputs and final states from weights PyTorch wrote
 * (tests/fixtures/rnn_torch.py); errors naming the shapes.
 * Usage: test_rnn FIXTURE_DIR. */
#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <cJSON.h>
#include <stdlib.h>

static const char *fixtures = "tests/fixtures";

static tg_tensor *rand_tensor(tg_dtype dt, int param, int rank, const size_t *shape, double scale,
                              tg_rng *rng) {
    tg_tensor *x = NULL;
    CHECK_OK(param ? tg_param_new(&x, dt, rank, shape) : tg_tensor_new(&x, dt, rank, shape));
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, scale * tg_rng_normal(rng));
    return x;
}

/* ---------------------------------------------------------------- references in double */

static double sig(double v) {
    return 1.0 / (1.0 + exp(-v));
}

/* a·Wᵀ row: y[j] = Σ_k a[k]·W[j, k] (+ b[j]) */
static void affine(const tg_tensor *w, const tg_tensor *b, const double *a, size_t k, double *y) {
    for (size_t j = 0; j < w->shape[0]; j++) {
        double s = b ? tg_get(b, j) : 0.0;
        for (size_t q = 0; q < k; q++)
            s += a[q] * tg_get(w, j * k + q);
        y[j] = s;
    }
}

/* torch.nn.LSTM / GRU as written in PyTorch's documentation, one example
 * at a time; h, c hold the initial states (N×H) and receive the final ones;
 * out N×T×H. */
static void ref_rnn(int lstm, const tg_tensor *x, tg_tensor *const *p, double *h, double *c,
                    double *out) {
    size_t n = x->shape[0], T = x->shape[1], D = x->shape[2], H = p[1]->shape[1];
    double xt[16], gi[64], gh[64];
    for (size_t e = 0; e < n; e++)
        for (size_t t = 0; t < T; t++) {
            double *he = h + e * H, *ce = c + e * H;
            for (size_t k = 0; k < D; k++)
                xt[k] = tg_get(x, (e * T + t) * D + k);
            affine(p[0], p[2], xt, D, gi);
            affine(p[1], p[3], he, H, gh);
            for (size_t j = 0; j < H; j++) {
                if (lstm) {
                    double i = sig(gi[j] + gh[j]), f = sig(gi[H + j] + gh[H + j]);
                    double g = tanh(gi[2 * H + j] + gh[2 * H + j]);
                    double o = sig(gi[3 * H + j] + gh[3 * H + j]);
                    ce[j] = f * ce[j] + i * g;
                    gh[j] = o * tanh(ce[j]); /* h', stored after the loop */
                } else {
                    double r = sig(gi[j] + gh[j]), z = sig(gi[H + j] + gh[H + j]);
                    double nn = tanh(gi[2 * H + j] + r * gh[2 * H + j]);
                    gh[j] = (1 - z) * nn + z * he[j];
                }
            }
            for (size_t j = 0; j < H; j++)
                he[j] = out[(e * T + t) * H + j] = gh[j];
        }
}

/* ---------------------------------------------------------------- shapes, names, init */

static void test_kinds(void) {
    static const tg_layer_spec specs[] = {
        {.kind = "embedding", .i = {11, 6}},
        {.kind = "lstm", .i = {8}},
        {.kind = "gru", .name = "rnn", .i = {5}},
        {.kind = "gru", .i = {3, 1}},
    };
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, TG_F32, 1, (size_t[]){7}, 4, specs));
    if (!m) return;
    /* torch: nn.Embedding(11, 6) → weight (11, 6); nn.LSTM(6, 8) → weight_ih_l0 (32, 6),
     * weight_hh_l0 (32, 8), bias_ih_l0 (32,), bias_hh_l0 (32,); nn.GRU(8, 5) → (15, 8),
     * (15, 5), (15,), (15,); nn.GRU(5, 3, bias=False) → (9, 5), (9, 3). */
    static const char *want[] = {"0.weight",         "1.weight_ih_l0", "1.weight_hh_l0",
                                 "1.bias_ih_l0",     "1.bias_hh_l0",   "rnn.weight_ih_l0",
                                 "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                                 "3.weight_ih_l0",   "3.weight_hh_l0"};
    static const size_t rows[] = {11, 32, 32, 32, 32, 15, 15, 15, 15, 9, 9};
    static const size_t cols[] = {6, 6, 8, 1, 1, 8, 5, 1, 1, 5, 3};
    tg_tensor *p[16];
    const char *names[16];
    CHECK(tg_model_params(m, p, names, 16) == 11, "11 parameters");
    for (int i = 0; i < 11; i++) {
        CHECK(strcmp(names[i], want[i]) == 0, "name %d: %s, want %s", i, names[i], want[i]);
        CHECK(p[i]->shape[0] == rows[i] && p[i]->size == rows[i] * cols[i], "%s: %zu elements",
              names[i], p[i]->size);
    }
    const tg_layer *l = m->layers;
    CHECK(l[0].out_rank == 2 && l[0].out_shape[0] == 7 && l[0].out_shape[1] == 6, "emb 7x6");
    CHECK(l[1].out_rank == 2 && l[1].out_shape[1] == 8 && l[2].out_shape[1] == 5 &&
              l[3].out_shape[1] == 3 && l[3].out_shape[0] == 7,
          "lstm 7x8, gru 7x5, 7x3");
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    CHECK_OK(tg_model_init(m, &rng));
    /* Embedding: N(0, 1) (init.normal_): 66 draws have a spread near 1 and exceed 1 somewhere.
     * RNNs: U(±1/√H) (reset_parameters): 1/√8, 1/√5, 1/√3, each bound nearly reached. */
    double mx = 0, ss = 0;
    for (size_t e = 0; e < p[0]->size; e++)
        mx = fmax(mx, fabs(tg_get(p[0], e))), ss += tg_get(p[0], e) * tg_get(p[0], e);
    CHECK(mx > 1.5 && ss / 66 > 0.5 && ss / 66 < 1.6, "embedding N(0,1): max %g, var %g", mx,
          ss / 66);
    static const double bound[] = {0,
                                   0.35355339059327373,
                                   0.35355339059327373,
                                   0.35355339059327373,
                                   0.35355339059327373,
                                   0.44721359549995793,
                                   0.44721359549995793,
                                   0.44721359549995793,
                                   0.44721359549995793,
                                   0.57735026918962573,
                                   0.57735026918962573};
    for (int i = 1; i < 11; i++) {
        double top = 0;
        for (size_t e = 0; e < p[i]->size; e++)
            top = fmax(top, fabs(tg_get(p[i], e)));
        CHECK(top <= bound[i] && top > 0.8 * bound[i], "%s: max |w| %g, bound %g", names[i], top,
              bound[i]);
    }
    /* The embedding's forward: rows of the weight, by index. */
    tg_tape *t = NULL;
    tg_tensor *ids = NULL, *y = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&ids, TG_F32, 2, (size_t[]){2, 7}));
    for (size_t e = 0; ids && e < 14; e++)
        tg_set(ids, e, (double)((e * 5) % 11));
    if (t && ids) CHECK_OK(tg_model_forward(t, m, ids, 1, NULL, &y));
    CHECK(y && y->rank == 3 && y->shape[0] == 2 && y->shape[1] == 7 && y->shape[2] == 3,
          "model out 2x7x3");
    tg_tensor *emb = NULL;
    tg_tape_reset(t);
    tg_layer_ctx ctx = {1, NULL};
    if (t && ids) CHECK_OK(m->layers[0].kind->forward(&m->layers[0], t, ids, &ctx, &emb));
    for (size_t e = 0; emb && e < 14; e++)
        for (size_t j = 0; j < 6; j++)
            CHECK(tg_get(emb, e * 6 + j) == tg_get(p[0], ((e * 5) % 11) * 6 + j), "row %zu", e);
    /* An id out of range is refused, naming it. */
    if (ids) tg_set(ids, 3, 11);
    tg_tape_reset(t);
    if (t && ids) EXPECT_ERR(tg_model_forward(t, m, ids, 1, NULL, &y), TG_ERR_VALUE, "11");
    tg_tape_free(t);
    tg_tensor_free(ids);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- against the loops */

typedef struct rnn_case {
    tg_tensor *x, *p[4], *h0, *c0;
    size_t n, T, D, H;
} rnn_case;

static void case_new(rnn_case *c, int lstm, int param_inputs, size_t n, size_t T, size_t D,
                     size_t H, uint64_t seed) {
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    size_t G = lstm ? 4 : 3;
    memset(c, 0, sizeof *c);
    c->n = n, c->T = T, c->D = D, c->H = H;
    c->x = rand_tensor(TG_F64, param_inputs, 3, (size_t[]){n, T, D}, 1.0, &rng);
    c->p[0] = rand_tensor(TG_F64, 1, 2, (size_t[]){G * H, D}, 0.6, &rng);
    c->p[1] = rand_tensor(TG_F64, 1, 2, (size_t[]){G * H, H}, 0.6, &rng);
    c->p[2] = rand_tensor(TG_F64, 1, 1, (size_t[]){G * H}, 0.6, &rng);
    c->p[3] = rand_tensor(TG_F64, 1, 1, (size_t[]){G * H}, 0.6, &rng);
    c->h0 = rand_tensor(TG_F64, param_inputs, 3, (size_t[]){1, n, H}, 0.8, &rng);
    if (lstm) c->c0 = rand_tensor(TG_F64, param_inputs, 2, (size_t[]){n, H}, 0.8, &rng);
}

static void case_free(rnn_case *c) {
    tg_tensor_free(c->x);
    for (int i = 0; i < 4; i++)
        tg_tensor_free(c->p[i]);
    tg_tensor_free(c->h0);
    tg_tensor_free(c->c0);
}

static tg_status run(tg_tape *t, int lstm, const rnn_case *c, int with_state, tg_tensor **out,
                     tg_tensor **hn, tg_tensor **cn) {
    const tg_tensor *h0 = with_state ? c->h0 : NULL, *c0 = with_state ? c->c0 : NULL;
    if (lstm) return tg_lstm(t, c->x, c->p[0], c->p[1], c->p[2], c->p[3], h0, c0, out, hn, cn);
    return tg_gru(t, c->x, c->p[0], c->p[1], c->p[2], c->p[3], h0, out, hn);
}

static void test_against_loops(int lstm) {
    const char *what = lstm ? "lstm" : "gru";
    rnn_case c;
    case_new(&c, lstm, 0, 3, 6, 4, 5, lstm ? 21 : 22);
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    for (int with_state = 0; t && c.x && with_state < 2; with_state++) {
        double h[15] = {0}, cc[15] = {0}, out[90];
        for (size_t e = 0; with_state && e < 15; e++)
            h[e] = tg_get(c.h0, e), cc[e] = lstm ? tg_get(c.c0, e) : 0;
        ref_rnn(lstm, c.x, c.p, h, cc, out);
        tg_tensor *y = NULL, *hn = NULL, *cn = NULL;
        tg_tape_reset(t);
        CHECK_OK(run(t, lstm, &c, with_state, &y, &hn, &cn));
        if (!y || !hn) continue;
        CHECK(y->rank == 3 && y->shape[0] == 3 && y->shape[1] == 6 && y->shape[2] == 5, "%s out",
              what);
        CHECK(hn->rank == 3 && hn->shape[0] == 1 && hn->shape[1] == 3 && hn->shape[2] == 5,
              "%s h_n 1x3x5", what);
        CHECK(lstm ? cn != NULL : cn == NULL, "%s c_n", what);
        /* float64 through the same operations in another order: a few ulps */
        double err = 0;
        for (size_t e = 0; e < 90; e++)
            err = fmax(err, fabs(tg_get(y, e) - out[e]));
        for (size_t e = 0; e < 15; e++) {
            err = fmax(err, fabs(tg_get(hn, e) - h[e]));
            if (cn) err = fmax(err, fabs(tg_get(cn, e) - cc[e]));
        }
        CHECK(err < 1e-13, "%s (state %d) vs loops: max error %g", what, with_state, err);
    }
    tg_tape_free(t);
    case_free(&c);
}

/* ---------------------------------------------------------------- gradcheck */

/* 3 steps, batch 2, D 3, H 2: every parameter, the input and the initial
 * states against finite differences and the adjoint identity, for the
 * output sequence and for each final state. */
static void test_gradcheck(int lstm) {
    const char *what = lstm ? "lstm" : "gru";
    rnn_case c;
    case_new(&c, lstm, 1, 2, 3, 3, 2, lstm ? 31 : 32);
    tg_tensor *all[7] = {c.p[0], c.p[1], c.p[2], c.p[3], c.x, c.h0, c.c0};
    int np = lstm ? 7 : 6;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    for (int which = 0; t && c.x && which < (lstm ? 3 : 2); which++)
        for (int with_state = 0; with_state < 2; with_state++) {
            tg_tensor *y[3] = {NULL, NULL, NULL};
            tg_tape_reset(t);
            CHECK_OK(run(t, lstm, &c, with_state, &y[0], &y[1], &y[2]));
            if (!y[which]) continue;
            tg_check_report rep;
            int n = with_state ? np : 5;
            CHECK(tg_gradcheck(t, y[which], n, all, NULL, &rep) == TG_OK,
                  "%s output %d state %d: %s", what, which, with_state, tg_last_error());
            CHECK(tg_adjoint_check(t, y[which], n, all, NULL, &rep) == TG_OK,
                  "%s output %d state %d adjoint: %s", what, which, with_state, tg_last_error());
        }
    tg_tape_free(t);
    case_free(&c);
}

/* Through the model (embedding → lstm → gru → dense on the last step's
 * flattening), zero initial states: a float64 gradcheck of the kinds. */
static void test_gradcheck_model(void) {
    static const tg_layer_spec specs[] = {
        {.kind = "embedding", .i = {5, 3}}, {.kind = "lstm", .i = {2}},
        {.kind = "gru", .i = {2}},          {.kind = "flatten"},
        {.kind = "dense", .i = {2}},
    };
    tg_model *m = NULL;
    tg_rng rng;
    tg_rng_seed(&rng, 41);
    CHECK_OK(tg_model_new(&m, TG_F64, 1, (size_t[]){3}, 5, specs));
    tg_tensor *ids = NULL, *p[16], *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&ids, TG_F64, 2, (size_t[]){2, 3}));
    if (!m || !t || !ids) return;
    CHECK_OK(tg_model_init(m, &rng));
    for (size_t e = 0; e < 6; e++)
        tg_set(ids, e, (double)((e * 3 + 1) % 5)); /* ids 1 4 2 0 3 1: row 1 used twice */
    int np = tg_model_params(m, p, NULL, 16);
    CHECK_OK(tg_model_forward(t, m, ids, 1, NULL, &y));
    tg_check_report rep;
    CHECK(tg_gradcheck(t, y, np, p, NULL, &rep) == TG_OK, "model: %s", tg_last_error());
    CHECK(tg_adjoint_check(t, y, np, p, NULL, &rep) == TG_OK, "model adjoint: %s", tg_last_error());
    tg_tape_free(t);
    tg_tensor_free(ids);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- truncated BPTT */

static tg_tensor *slice_copy(const tg_tensor *x, size_t t0, size_t t1) {
    tg_tensor *y = NULL;
    size_t n = x->shape[0], T = x->shape[1], D = x->shape[2];
    CHECK_OK(tg_tensor_new(&y, x->dtype, 3, (size_t[]){n, t1 - t0, D}));
    for (size_t e = 0; y && e < n; e++)
        for (size_t t = t0; t < t1; t++)
            for (size_t k = 0; k < D; k++)
                tg_set(y, (e * (t1 - t0) + t - t0) * D + k, tg_get(x, (e * T + t) * D + k));
    return y;
}

/* A sequence in two chunks, the state carried: (1) across a tape reset by
 * copying h_n, c_n into leaves, the outputs are those of the whole
 * sequence; (2) on one tape through tg_detach, the gradient of the second
 * chunk's loss is the one from the copied leaves: nothing flows into the
 * first chunk. */
static void test_tbptt(void) {
    rnn_case c;
    case_new(&c, 1, 0, 2, 6, 3, 4, 51);
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    tg_tensor *y = NULL, *hn = NULL, *cn = NULL, *full = NULL, *h = NULL, *cs = NULL;
    tg_tensor *a = slice_copy(c.x, 0, 4), *b = slice_copy(c.x, 4, 6), *sum = NULL;
    CHECK_OK(tg_tensor_new(&full, TG_F64, 3, (size_t[]){2, 6, 4}));
    CHECK_OK(tg_tensor_new(&h, TG_F64, 3, (size_t[]){1, 2, 4}));
    CHECK_OK(tg_tensor_new(&cs, TG_F64, 3, (size_t[]){1, 2, 4}));
    if (!t || !a || !b || !full || !h || !cs) return;
    CHECK_OK(tg_lstm(t, c.x, c.p[0], c.p[1], c.p[2], c.p[3], c.h0, c.c0, &y, NULL, NULL));
    if (y) memcpy(full->data, y->data, 48 * sizeof(double));
    tg_tape_reset(t);
    CHECK_OK(tg_lstm(t, a, c.p[0], c.p[1], c.p[2], c.p[3], c.h0, c.c0, &y, &hn, &cn));
    double err = 0;
    for (size_t e = 0; y && e < 2; e++)
        for (size_t k = 0; k < 16; k++)
            err = fmax(err, fabs(tg_get(y, e * 16 + k) - tg_get(full, e * 24 + k)));
    if (hn && cn) {
        memcpy(h->data, hn->data, 8 * sizeof(double));
        memcpy(cs->data, cn->data, 8 * sizeof(double));
    }
    tg_tape_reset(t);
    CHECK_OK(tg_lstm(t, b, c.p[0], c.p[1], c.p[2], c.p[3], h, cs, &y, NULL, NULL));
    for (size_t e = 0; y && e < 2; e++)
        for (size_t k = 0; k < 8; k++)
            err = fmax(err, fabs(tg_get(y, e * 8 + k) - tg_get(full, e * 24 + 16 + k)));
    CHECK(err == 0, "chunks vs whole: %g (the same operations in the same order)", err);
    /* gradient of sum(chunk 2) from the leaves h, cs */
    if (y) CHECK_OK(tg_sum(t, y, &sum));
    if (sum) CHECK_OK(tg_backward(t, sum));
    double g_leaf[4][64]; /* 4H×H = 64 at most */
    for (int i = 0; i < 4; i++) {
        memcpy(g_leaf[i], c.p[i]->grad, c.p[i]->size * sizeof(double));
        tg_zero_grad(c.p[i]);
    }
    /* the same on one tape, chunk 1 recorded first, the state detached */
    tg_tape_reset(t);
    tg_tensor *hd = NULL, *cd = NULL;
    CHECK_OK(tg_lstm(t, a, c.p[0], c.p[1], c.p[2], c.p[3], c.h0, c.c0, &y, &hn, &cn));
    CHECK_OK(tg_detach(t, hn, &hd));
    CHECK_OK(tg_detach(t, cn, &cd));
    CHECK_OK(tg_lstm(t, b, c.p[0], c.p[1], c.p[2], c.p[3], hd, cd, &y, NULL, NULL));
    if (y) CHECK_OK(tg_sum(t, y, &sum));
    if (sum) CHECK_OK(tg_backward(t, sum));
    double gerr = 0;
    for (int i = 0; i < 4; i++)
        for (size_t e = 0; e < c.p[i]->size; e++)
            gerr = fmax(gerr, fabs(g_leaf[i][e] - ((double *)c.p[i]->grad)[e]));
    CHECK(gerr == 0, "the detached state gives the gradient of a constant state: %g", gerr);
    tg_tensor *xs[] = {a, b, full, h, cs};
    for (int i = 0; i < 5; i++)
        tg_tensor_free(xs[i]);
    tg_tape_free(t);
    case_free(&c);
}

/* ---------------------------------------------------------------- PyTorch */

/* A tiny safetensors reader for the fixture (the io file holds tensors no
 * model has): the named tensor's values as doubles, or NULL. */
typedef struct stfile {
    unsigned char *buf;
    size_t len, hlen;
    cJSON *head;
} stfile;

static int st_open(stfile *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    fseek(fp, 0, SEEK_END);
    f->len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc(f->len + 1);
    int ok = f->buf && fread(f->buf, 1, f->len, fp) == f->len && f->len >= 8;
    fclose(fp);
    for (int i = 7; ok && i >= 0; i--)
        f->hlen = f->hlen * 256 + f->buf[i];
    ok = ok && f->hlen <= f->len - 8;
    if (ok) f->head = cJSON_ParseWithLength((const char *)f->buf + 8, f->hlen);
    return ok && f->head;
}

static void st_close(stfile *f) {
    cJSON_Delete(f->head);
    free(f->buf);
}

/* Values of tensor `name` into v (at most max), its element count or 0. */
static size_t st_get(const stfile *f, const char *name, double *v, size_t max) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->head, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || cJSON_GetArraySize(off) != 2) return 0;
    size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
    size_t end = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    int f64 = strcmp(dt->valuestring, "F64") == 0;
    size_t w = f64 ? 8 : 4, n = (end - b) / w;
    if (n > max || 8 + f->hlen + end > f->len) return 0;
    const unsigned char *p = f->buf + 8 + f->hlen + b;
    for (size_t i = 0; i < n; i++) { /* little-endian on the x86/arm hosts we run on */
        if (f64)
            memcpy(&v[i], p + 8 * i, 8);
        else {
            float x;
            memcpy(&x, p + 4 * i, 4);
            v[i] = x;
        }
    }
    return n;
}

static tg_tensor *st_tensor(const stfile *f, const char *name, tg_dtype dt, int rank,
                            const size_t *shape) {
    double v[256];
    tg_tensor *x = NULL;
    CHECK_OK(tg_tensor_new(&x, dt, rank, shape));
    size_t n = st_get(f, name, v, 256);
    CHECK(x && n == x->size, "fixture tensor %s: %zu values", name, n);
    if (x && n == x->size) tg_fill(x, v, n);
    return x;
}

static double max_diff(const stfile *f, const char *name, const tg_tensor *y) {
    double v[256];
    size_t n = st_get(f, name, v, 256);
    if (!y || n != y->size) return INFINITY;
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs(tg_get(y, i) - v[i]));
    return e;
}

/* The fixture: nn.LSTM(3, 4) and nn.GRU(4, 5), batch 2, 5 steps, weights
 * U(±0.9) and random initial states (tests/fixtures/rnn_torch.py).
 * Tolerances. float32: torch and we round differently (other summation
 * orders in the products and sums of ≤ 8 terms, sigmoid/tanh within an
 * ulp or two): each step adds a few float32 ulps (6e-8) of values below
 * ~3 in magnitude, and the recurrence's Jacobian has norm below ~1 for
 * these weights, so five steps stay within ~1e-6; 1e-5 (the issue's
 * figure) leaves a margin of 10 and still catches any wrong term (those
 * move outputs by 1e-2 or more). float64 against torch's float64 run:
 * 1e-12, the same argument with ulps of 1e-16. */
static void test_pytorch(void) {
    static const tg_layer_spec specs[] = {{.kind = "lstm", .name = "lstm", .i = {4}},
                                          {.kind = "gru", .name = "gru", .i = {5}}};
    stfile io;
    char wpath[512], iopath[512];
    snprintf(wpath, sizeof wpath, "%s/rnn_weights.safetensors", fixtures);
    snprintf(iopath, sizeof iopath, "%s/rnn_io.safetensors", fixtures);
    if (!st_open(&io, iopath)) {
        CHECK(0, "cannot read %s", iopath);
        return;
    }
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-12 : 1e-5;
        const char *sfx = d ? "64" : "32";
        char name[64];
        tg_model *m = NULL;
        tg_tape *t = NULL;
        CHECK_OK(tg_model_new(&m, dt, 2, (size_t[]){5, 3}, 2, specs));
        CHECK_OK(tg_tape_new(&t));
        if (!m || !t) return;
        CHECK_OK(tg_safetensors_load(m, wpath));
        tg_tensor *x1 = st_tensor(&io, "lstm.x", dt, 3, (size_t[]){2, 5, 3});
        tg_tensor *h1 = st_tensor(&io, "lstm.h0", dt, 3, (size_t[]){1, 2, 4});
        tg_tensor *c1 = st_tensor(&io, "lstm.c0", dt, 3, (size_t[]){1, 2, 4});
        tg_tensor *x2 = st_tensor(&io, "gru.x", dt, 3, (size_t[]){2, 5, 4});
        tg_tensor *h2 = st_tensor(&io, "gru.h0", dt, 3, (size_t[]){1, 2, 5});
        tg_tensor *y = NULL, *hn = NULL, *cn = NULL;
        CHECK_OK(tg_rnn_layer_state(t, &m->layers[0], x1, h1, c1, &y, &hn, &cn));
        snprintf(name, sizeof name, "lstm.out%s", sfx);
        double e = max_diff(&io, name, y);
        snprintf(name, sizeof name, "lstm.h_n%s", sfx);
        e = fmax(e, max_diff(&io, name, hn));
        snprintf(name, sizeof name, "lstm.c_n%s", sfx);
        e = fmax(e, max_diff(&io, name, cn));
        CHECK(e <= tol, "lstm vs torch (%s): %g", sfx, e);
        CHECK_OK(tg_rnn_layer_state(t, &m->layers[1], x2, h2, NULL, &y, &hn, &cn));
        snprintf(name, sizeof name, "gru.out%s", sfx);
        e = max_diff(&io, name, y);
        snprintf(name, sizeof name, "gru.h_n%s", sfx);
        e = fmax(e, max_diff(&io, name, hn));
        CHECK(e <= tol, "gru vs torch (%s): %g", sfx, e);
        /* zero initial states: the layer kinds' own forward */
        tg_layer_ctx ctx = {1, NULL};
        CHECK_OK(m->layers[0].kind->forward(&m->layers[0], t, x1, &ctx, &y));
        snprintf(name, sizeof name, "lstm.out0_%s", sfx);
        e = max_diff(&io, name, y);
        CHECK_OK(m->layers[1].kind->forward(&m->layers[1], t, x2, &ctx, &y));
        snprintf(name, sizeof name, "gru.out0_%s", sfx);
        e = fmax(e, max_diff(&io, name, y));
        CHECK(e <= tol, "lstm and gru from zero states vs torch (%s): %g", sfx, e);
        tg_tensor *xs[] = {x1, h1, c1, x2, h2};
        tg_tape_free(t);
        for (int i = 0; i < 5; i++)
            tg_tensor_free(xs[i]);
        tg_model_free(m);
    }
    st_close(&io);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void) {
    rnn_case c;
    case_new(&c, 1, 0, 2, 3, 3, 2, 61);
    tg_tape *t = NULL;
    tg_tensor *y = NULL, *bad = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&bad, TG_F64, 2, (size_t[]){3, 2}));
    if (!t || !bad || !c.x) return;
    EXPECT_ERR(tg_lstm(t, c.x, c.p[1], c.p[1], c.p[2], c.p[3], NULL, NULL, &y, NULL, NULL),
               TG_ERR_SHAPE, "lstm: weight_ih must be (gates·H)×D for x: (8x2) and (2x3x3)");
    EXPECT_ERR(tg_lstm(t, c.x, c.p[0], c.p[1], c.p[2], c.p[3], bad, c.c0, &y, NULL, NULL),
               TG_ERR_SHAPE, "h0 and c0 must be N×H or 1×N×H: (3x2)");
    /* PyTorch takes hx = (h0, c0) or nothing */
    EXPECT_ERR(tg_lstm(t, c.x, c.p[0], c.p[1], c.p[2], c.p[3], c.h0, NULL, &y, NULL, NULL),
               TG_ERR_ARG, "lstm: h0 and c0 go together");
    EXPECT_ERR(tg_lstm_seq(t, c.x, c.p[1], NULL, NULL, &y), TG_ERR_SHAPE,
               "lstm_seq: needs P N×T×4H and W_hh 4H×H: (2x3x3) and (8x2)");
    EXPECT_ERR(tg_lstm(t, c.x, c.p[0], c.p[1], c.p[2], NULL, NULL, NULL, &y, NULL, NULL),
               TG_ERR_ARG, "only one bias");
    EXPECT_ERR(tg_gru(t, c.x, c.p[0], c.p[1], c.p[2], c.p[3], NULL, &y, NULL), TG_ERR_SHAPE,
               "gru: weight_ih");
    EXPECT_ERR(tg_lstm(t, bad, c.p[0], c.p[1], c.p[2], c.p[3], NULL, NULL, &y, NULL, NULL),
               TG_ERR_SHAPE, "x must be N×T×D");
    CHECK(y == NULL, "out cleared on error");
    tg_model *m = NULL;
    EXPECT_ERR(
        tg_model_new(&m, TG_F32, 1, (size_t[]){4}, 1, &(tg_layer_spec){.kind = "lstm", .i = {3}}),
        TG_ERR_SHAPE, "layer 0 (lstm): input (4): needs examples of shape T×D");
    EXPECT_ERR(tg_model_new(&m, TG_F32, 2, (size_t[]){4, 2}, 1, &(tg_layer_spec){.kind = "gru"}),
               TG_ERR_VALUE, "hidden_size 0");
    EXPECT_ERR(tg_model_new(&m, TG_F32, 1, (size_t[]){4}, 1,
                            &(tg_layer_spec){.kind = "embedding", .i = {10}}),
               TG_ERR_VALUE, "embedding_dim 0");
    tg_tensor_free(bad);
    tg_tape_free(t);
    case_free(&c);
}

int main(int argc, char **argv) {
    if (argc > 1) fixtures = argv[1];
    test_kinds();
    test_against_loops(1);
    test_against_loops(0);
    test_gradcheck(1);
    test_gradcheck(0);
    test_gradcheck_model();
    test_tbptt();
    test_pytorch();
    test_errors();
    return check_summary();
}
