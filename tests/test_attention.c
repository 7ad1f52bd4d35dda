/* Attention, the transformer block and positional embeddings (issue 17):
 *  - dense on the last axis of N×T×F equals nn.Linear row by row (naive loops);
 *  - tg_attention equals softmax(QKᵀ/√E, masked)·V computed by loops in double;
 *  - with PyTorch's weights (tests/fixtures, written by make_attention.py with
 *    torch 1.13) the multihead_attention kind (no mask, causal), the function
 *    with a key padding mask, and the transformer_block kind (causal, none)
 *    give torch's outputs: float32 to 1e-5, float64 to 1e-12; a query with
 *    every key masked gives NaN on its row, as torch;
 *  - gradcheck and the adjoint check (float64, batch 2) on the attention
 *    layer, the function with both masks, the block and pos_embedding;
 *  - causality by forward mode: for the causal block, the tangent of output
 *    position t for an input tangent at position t' is exactly 0 when t' > t
 *    and nonzero when t' <= t (and the block without the mask leaks);
 *  - shapes, names, PyTorch's init bounds, and errors naming the layer.
 * Usage: test_attention FIXTURE_DIR */
#define _POSIX_C_SOURCE 200809L /* mkstemp */

#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fixdir = "tests/fixtures";

static tg_tensor *randn(tg_dtype dt, int rank, const size_t *shape, uint64_t seed, int param) {
    tg_tensor *x = NULL;
    CHECK_OK(param ? tg_param_new(&x, dt, rank, shape) : tg_tensor_new(&x, dt, rank, shape));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (size_t i = 0; x && i < x->size; i++)
        tg_set(x, i, tg_rng_normal(&rng));
    return x;
}

/* A model of the n specs on examples T×D, PyTorch's init from seed. */
static tg_model *make_n(tg_dtype dt, int n, const tg_layer_spec *spec, size_t T, size_t D,
                        uint64_t seed) {
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, dt, 2, (size_t[]){T, D}, n, spec));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    if (m) CHECK_OK(tg_model_init(m, &rng));
    return m;
}

static tg_model *make(tg_dtype dt, const tg_layer_spec *spec, size_t T, size_t D, uint64_t seed) {
    return make_n(dt, 1, spec, T, D, seed);
}

/* ---------------------------------------------------------------- fixture file */

/* One tensor of a safetensors file (F32 or F64) as doubles; NULL if absent.
 * The files are ours (tests/fixtures): a short reader, not a hardened one. */
static double *fixture_tensor(const char *file, const char *name, size_t *n) {
    FILE *f = fopen(check_path(fixdir, file), "rb");
    double *out = NULL;
    uint64_t hl = 0;
    if (!f || fread(&hl, 8, 1, f) != 1 || hl > 1 << 20) {
        if (f) fclose(f);
        return NULL;
    }
    char *h = calloc(1, hl + 1);
    cJSON *j = h && fread(h, 1, hl, f) == hl ? cJSON_Parse(h) : NULL;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, name);
    cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (cJSON_GetArraySize(off) == 2 && cJSON_IsString(dt)) {
        long b = (long)cJSON_GetArrayItem(off, 0)->valuedouble;
        long end = (long)cJSON_GetArrayItem(off, 1)->valuedouble;
        int f64 = strcmp(dt->valuestring, "F64") == 0;
        size_t es = f64 ? 8 : 4, cnt = (size_t)(end - b) / es;
        unsigned char *raw = malloc(cnt * es + 1);
        out = malloc(cnt * sizeof *out + 1);
        if (raw && out && fseek(f, 8 + (long)hl + b, SEEK_SET) == 0 &&
            fread(raw, es, cnt, f) == cnt) {
            for (size_t i = 0; i < cnt; i++) {
                float v32;
                if (f64)
                    memcpy(&out[i], raw + 8 * i, 8);
                else
                    memcpy(&v32, raw + 4 * i, 4), out[i] = v32;
            }
            *n = cnt;
        } else {
            free(out);
            out = NULL;
        }
        free(raw);
    }
    cJSON_Delete(j);
    free(h);
    fclose(f);
    CHECK(out != NULL, "fixture %s: tensor %s", file, name);
    return out;
}

static tg_tensor *fixture_leaf(const char *name, tg_dtype dt, int rank, const size_t *shape) {
    size_t n = 0;
    double *v = fixture_tensor("attn_io.safetensors", name, &n);
    tg_tensor *x = NULL;
    CHECK_OK(tg_tensor_new(&x, dt, rank, shape));
    if (x && v && n == x->size) CHECK_OK(tg_fill(x, v, n));
    free(v);
    return x;
}

/* y against torch's NAME_f32 / NAME_f64: equal NaN positions, else within
 * tol·max(1, |want|). */
static void against_torch(const tg_tensor *y, const char *name, double tol) {
    char full[64];
    snprintf(full, sizeof full, "%s_%s", name, y && y->dtype == TG_F32 ? "f32" : "f64");
    size_t n = 0;
    double *want = fixture_tensor("attn_io.safetensors", full, &n), worst = 0;
    if (!y || !want || n != y->size) {
        CHECK(0, "%s: missing or wrong size", full);
        free(want);
        return;
    }
    int nan_ok = 1;
    for (size_t i = 0; i < n; i++) {
        double a = tg_get(y, i);
        if (isnan(want[i]) || isnan(a)) {
            nan_ok &= isnan(want[i]) && isnan(a);
            continue;
        }
        worst = fmax(worst, fabs(a - want[i]) / fmax(1.0, fabs(want[i])));
    }
    CHECK(nan_ok, "%s: NaN where torch has none, or the reverse", full);
    CHECK(worst <= tol, "%s: max error %.3g > %g", full, worst, tol);
    free(want);
}

/* ---------------------------------------------------------------- dense on the last axis */

static void test_dense_last_axis(void) {
    static const tg_layer_spec d[] = {{.kind = "dense", .i = {3}}};
    tg_model *m = make(TG_F64, d, 4, 5, 1);
    tg_tensor *x = randn(TG_F64, 3, (size_t[]){2, 4, 5}, 2, 0), *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!m || !x || !t) return;
    CHECK(m->layers[0].out_rank == 2 && m->layers[0].out_shape[1] == 3, "out 4x3");
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y));
    const tg_tensor *w = m->layers[0].tensors[0].t, *b = m->layers[0].tensors[1].t;
    CHECK(y && y->rank == 3 && y->shape[0] == 2 && y->shape[1] == 4 && y->shape[2] == 3, "y 2x4x3");
    double err = 0;
    for (size_t r = 0; y && r < 8; r++)
        for (size_t o = 0; o < 3; o++) {
            double s = tg_get(b, o);
            for (size_t f = 0; f < 5; f++)
                s += tg_get(x, r * 5 + f) * tg_get(w, o * 5 + f);
            err = fmax(err, fabs(s - tg_get(y, r * 3 + o)));
        }
    /* one dot of 5 terms in double, summed in another order by BLAS */
    CHECK(err < 1e-14, "dense rows differ from x·Wᵀ + b by %g", err);
    /* the product sees one (N·T)×F matrix: reshape views, no copy */
    int views = 0;
    for (int i = 0; i < tg_tape_size(t); i++)
        views += strcmp(tg_tape_call(t, i)->op->name, "reshape") == 0 &&
                 tg_tape_call(t, i)->out->data == tg_tape_call(t, i)->in[0]->data;
    CHECK(views == 2 && tg_tape_size(t) == 4, "%d ops, %d reshape views", tg_tape_size(t), views);
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- tg_attention by loops */

static void test_attention_loops(void) {
    size_t B = 2, L = 3, S = 4, E = 5, Ev = 2;
    tg_tensor *q = randn(TG_F64, 3, (size_t[]){B, L, E}, 3, 1);
    tg_tensor *k = randn(TG_F64, 3, (size_t[]){B, S, E}, 4, 1);
    tg_tensor *v = randn(TG_F64, 3, (size_t[]){B, S, Ev}, 5, 1), *mask = NULL, *y = NULL;
    CHECK_OK(tg_tensor_new(&mask, TG_F64, 2, (size_t[]){L, S}));
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!q || !k || !v || !mask || !t) return;
    tg_set(mask, 0 * S + 3, 1), tg_set(mask, 1 * S + 0, 1), tg_set(mask, 2 * S + 2, 1);
    CHECK_OK(tg_attention(t, q, k, v, mask, 0, 0, NULL, &y));
    double err = 0;
    for (size_t b = 0; y && b < B; b++)
        for (size_t i = 0; i < L; i++) {
            double s[4], m = -INFINITY, z = 0;
            for (size_t j = 0; j < S; j++) {
                s[j] = 0;
                for (size_t e = 0; e < E; e++)
                    s[j] += tg_get(q, (b * L + i) * E + e) * tg_get(k, (b * S + j) * E + e);
                s[j] = tg_get(mask, i * S + j) ? -INFINITY : s[j] / sqrt((double)E);
                m = fmax(m, s[j]);
            }
            for (size_t j = 0; j < S; j++)
                z += exp(s[j] - m);
            for (size_t c = 0; c < Ev; c++) {
                double o = 0;
                for (size_t j = 0; j < S; j++)
                    o += exp(s[j] - m) / z * tg_get(v, (b * S + j) * Ev + c);
                err = fmax(err, fabs(o - tg_get(y, (b * L + i) * Ev + c)));
            }
        }
    CHECK(err < 1e-14, "attention differs from the loops by %g", err);
    /* the masked weights are exactly 0: v's gradient at a key masked for
     * every query but one comes from that query only (checked by gradcheck) */
    tg_tensor *p[3] = {q, k, v};
    tg_check_report rep;
    CHECK(tg_gradcheck(t, y, 3, p, NULL, &rep) == TG_OK, "gradcheck: %s", tg_last_error());
    CHECK(tg_adjoint_check(t, y, 3, p, NULL, &rep) == TG_OK, "adjoint: %s", tg_last_error());
    EXPECT_ERR(tg_attention(t, q, v, v, NULL, 0, 0, NULL, &y), TG_ERR_SHAPE,
               "attention: q (2x3x5), k (2x4x2), v (2x4x2) do not fit");
    EXPECT_ERR(tg_attention(t, q, k, v, NULL, 1.0, 1, NULL, &y), TG_ERR_VALUE, "dropout 1");
    tg_tape_free(t);
    tg_tensor_free(q), tg_tensor_free(k), tg_tensor_free(v), tg_tensor_free(mask);
}

/* ---------------------------------------------------------------- PyTorch parity */

static const tg_layer_spec mha_spec[] = {
    {.kind = "multihead_attention", .name = "mha", .i = {8, 2}}};
static const tg_layer_spec mha_causal_spec[] = {
    {.kind = "multihead_attention", .name = "mha", .i = {8, 2, 1}}};
static const tg_layer_spec block_spec[] = {
    {.kind = "transformer_block", .name = "block", .i = {8, 2, 1}}};
static const tg_layer_spec block_none_spec[] = {
    {.kind = "transformer_block", .name = "block", .i = {8, 2}}};

static tg_model *torch_model(tg_dtype dt, const tg_layer_spec *spec, const char *file) {
    tg_model *m = NULL;
    CHECK_OK(tg_model_new(&m, dt, 2, (size_t[]){5, 8}, 1, spec));
    if (m) CHECK_OK(tg_safetensors_load(m, check_path(fixdir, file)));
    return m;
}

static tg_tensor *forward(tg_tape *t, const tg_model *m, const tg_tensor *x) {
    tg_tensor *y = NULL;
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y));
    return y;
}

/* Float32: the outputs are O(1) sums of at most 32 products through two
 * layer norms; torch and we round in different orders (BLAS blocking, q
 * scaled before vs W_q scaled), each step ~1e-7 relative: a few 1e-7 in
 * the end, so 1e-5 has a margin of 10–100 while a wrong formula (scale,
 * mask off by one, tanh gelu: ≥ 1e-4 here) is far outside it. Float64
 * against torch's float64: the same at 1e-16 per step, 1e-12. */
static void test_torch_parity(void) {
    for (int f64 = 0; f64 < 2; f64++) {
        tg_dtype dt = f64 ? TG_F64 : TG_F32;
        double tol = f64 ? 1e-12 : 1e-5;
        tg_tensor *x = fixture_leaf("x", dt, 3, (size_t[]){2, 5, 8});
        tg_tensor *kpm = fixture_leaf("kpm", dt, 2, (size_t[]){2, 5});
        tg_tensor *kpm_nan = fixture_leaf("kpm_nan", dt, 2, (size_t[]){2, 5}), *causal = NULL;
        CHECK_OK(tg_causal_mask(&causal, dt, 5));
        tg_tape *t = NULL;
        CHECK_OK(tg_tape_new(&t));
        tg_model *m = torch_model(dt, mha_spec, "attn_mha.safetensors");
        tg_model *mc = torch_model(dt, mha_causal_spec, "attn_mha.safetensors");
        tg_model *b = torch_model(dt, block_spec, "attn_block.safetensors");
        tg_model *bn = torch_model(dt, block_none_spec, "attn_block.safetensors");
        if (!x || !kpm || !kpm_nan || !causal || !t || !m || !mc || !b || !bn) return;
        against_torch(forward(t, m, x), "mha_none", tol);
        against_torch(forward(t, mc, x), "mha_causal", tol);
        against_torch(forward(t, b, x), "block_causal", tol);
        against_torch(forward(t, bn, x), "block_none", tol);
        tg_tensor *w[4];
        for (int i = 0; i < 4; i++)
            w[i] = m->layers[0].tensors[i].t;
        tg_mha_opts o = {.heads = 2, .attn_mask = causal, .key_padding_mask = kpm};
        tg_tensor *y = NULL;
        CHECK_OK(tg_multihead_attention(t, x, w[0], w[1], w[2], w[3], &o, &y));
        against_torch(y, "mha_both", tol);
        /* query 0 of example 1 sees no key: NaN on that row, as torch */
        o.key_padding_mask = kpm_nan;
        CHECK_OK(tg_multihead_attention(t, x, w[0], w[1], w[2], w[3], &o, &y));
        against_torch(y, "mha_nan", tol);
        CHECK(y && isnan(tg_get(y, 40)) && !isnan(tg_get(y, 48)) && !isnan(tg_get(y, 39)),
              "the fully masked row alone is NaN");
        tg_tape_free(t);
        tg_model_free(m), tg_model_free(mc), tg_model_free(b), tg_model_free(bn);
        tg_tensor_free(x), tg_tensor_free(kpm), tg_tensor_free(kpm_nan), tg_tensor_free(causal);
    }
}

/* ---------------------------------------------------------------- derivatives */

/* Parameters moved off PyTorch's zeros and ones (biases, γ, β), so that
 * every derivative is exercised. */
static int jiggled_params(tg_model *m, tg_tensor **p, int max) {
    int n = tg_model_params(m, p, NULL, max);
    CHECK(n <= max, "%d parameters, room for %d", n, max);
    n = n < max ? n : max;
    tg_rng rng;
    tg_rng_seed(&rng, 99);
    for (int i = 0; i < n; i++)
        for (size_t e = 0; e < p[i]->size; e++)
            tg_set(p[i], e, tg_get(p[i], e) + 0.3 * tg_rng_normal(&rng));
    return n;
}

/* gradcheck (every element of the parameters and of x against every output)
 * and the adjoint identity, float64, batch 2, T 4, D 8, 2 heads. */
static void check_layer(const tg_layer_spec *spec, const char *what) {
    tg_model *m = make(TG_F64, spec, 4, 8, 7);
    tg_tensor *x = randn(TG_F64, 3, (size_t[]){2, 4, 8}, 8, 1), *p[17], *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!m || !x || !t) return;
    int n = jiggled_params(m, p, 16);
    p[n++] = x;
    CHECK_OK(tg_model_forward(t, m, x, 1, NULL, &y));
    tg_check_report rep;
    CHECK(tg_gradcheck(t, y, n, p, NULL, &rep) == TG_OK, "%s: gradcheck: %s", what,
          tg_last_error());
    CHECK(tg_adjoint_check(t, y, n, p, NULL, &rep) == TG_OK, "%s: adjoint: %s", what,
          tg_last_error());
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
}

static void test_derivatives(void) {
    static const tg_layer_spec a[] = {{.kind = "multihead_attention", .i = {0, 2, 1}}};
    static const tg_layer_spec b[] = {{.kind = "transformer_block", .i = {0, 2, 1}}};
    static const tg_layer_spec bn[] = {{.kind = "transformer_block", .i = {0, 4, 0, 16}}};
    static const tg_layer_spec pe[] = {{.kind = "pos_embedding", .i = {6}}};
    check_layer(a, "causal multihead_attention");
    check_layer(b, "causal transformer_block");
    check_layer(bn, "transformer_block, no mask, 4 heads, ff 16");
    check_layer(pe, "pos_embedding");

    /* the function with both masks (keys 3 of example 0 and 2, 3 of
     * example 1 padded; no row fully masked) */
    tg_tensor *x = randn(TG_F64, 3, (size_t[]){2, 4, 8}, 9, 1), *kpm = NULL, *causal = NULL;
    tg_model *m = make(TG_F64, a, 4, 8, 10);
    CHECK_OK(tg_tensor_new(&kpm, TG_F64, 2, (size_t[]){2, 4}));
    CHECK_OK(tg_causal_mask(&causal, TG_F64, 4));
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!x || !kpm || !causal || !m || !t) return;
    tg_set(kpm, 3, 1), tg_set(kpm, 6, 1), tg_set(kpm, 7, 1);
    tg_tensor *p[5], *y = NULL;
    int n = jiggled_params(m, p, 4);
    p[n++] = x;
    tg_mha_opts o = {.heads = 2, .attn_mask = causal, .key_padding_mask = kpm};
    CHECK_OK(tg_multihead_attention(t, x, p[0], p[1], p[2], p[3], &o, &y));
    tg_check_report rep;
    CHECK(tg_gradcheck(t, y, n, p, NULL, &rep) == TG_OK, "masked mha: gradcheck: %s",
          tg_last_error());
    CHECK(tg_adjoint_check(t, y, n, p, NULL, &rep) == TG_OK, "masked mha: adjoint: %s",
          tg_last_error());
    tg_tape_free(t);
    tg_tensor_free(x), tg_tensor_free(kpm), tg_tensor_free(causal);
    tg_model_free(m);
}

/* ---------------------------------------------------------------- causality by tg_jvp */

/* For each t' the input tangent is random at position t' of example 1 (all
 * D features) and 0 elsewhere; returns how many (t, t') pairs break the
 * rule "output tangent at t is exactly 0 iff t' > t" (both examples: the
 * other example's tangent must be 0 everywhere). */
static int causality_breaks(tg_dtype dt, int n_layers, const tg_layer_spec *spec) {
    enum { N = 2, T = 6, D = 8 };
    tg_model *m = make_n(dt, n_layers, spec, T, D, 21);
    tg_tensor *x = randn(dt, 3, (size_t[]){N, T, D}, 22, 0), *y = NULL, *p[32];
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    if (!m || !x || !t) return -1;
    jiggled_params(m, p, 32);
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y));
    size_t es = dt == TG_F32 ? 4 : 8;
    unsigned char *xi = calloc(x->size, es);
    tg_rng rng;
    tg_rng_seed(&rng, 23);
    int breaks = 0;
    for (int tp = 0; y && xi && tp < T; tp++) {
        memset(xi, 0, x->size * es);
        for (int d = 0; d < D; d++) {
            size_t i = (size_t)((1 * T + tp) * D + d);
            double v = tg_rng_normal(&rng);
            if (dt == TG_F32)
                ((float *)xi)[i] = (float)v;
            else
                ((double *)xi)[i] = v;
        }
        const tg_tensor *leaves[1] = {x};
        const void *tans[1] = {xi};
        CHECK_OK(tg_jvp(t, 1, leaves, tans));
        const void *ty = tg_tangent(t, y);
        for (int n = 0; ty && n < N; n++)
            for (int tt = 0; tt < T; tt++) {
                int zero = 1;
                for (int d = 0; d < D; d++) {
                    size_t i = (size_t)((n * T + tt) * D + d);
                    double v = dt == TG_F32 ? ((const float *)ty)[i] : ((const double *)ty)[i];
                    zero &= v == 0.0;
                }
                breaks += zero != (n == 0 || tp > tt);
            }
        breaks += ty == NULL;
    }
    free(xi);
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m);
    return breaks;
}

static void test_causality(void) {
    static const tg_layer_spec b[] = {{.kind = "transformer_block", .i = {0, 2, 1}}};
    static const tg_layer_spec bidir[] = {{.kind = "transformer_block", .i = {0, 2, 0}}};
    for (int f64 = 0; f64 < 2; f64++) {
        tg_dtype dt = f64 ? TG_F64 : TG_F32;
        CHECK(causality_breaks(dt, 1, b) == 0, "causal block (%s)", f64 ? "f64" : "f32");
    }
    /* without the mask the future leaks: 15 pairs t' > t of example 1 */
    CHECK(causality_breaks(TG_F64, 1, bidir) == 15, "the test sees a leak");
}

/* A GPT-like stack (positions, two causal blocks, final norm, head) is causal
 * end to end, by the same forward-mode test on the last axis of its logits. */
static void test_gpt_stack_causal(void) {
    static const tg_layer_spec gpt[] = {{.kind = "pos_embedding", .i = {8}},
                                        {.kind = "transformer_block", .i = {0, 2, 1}},
                                        {.kind = "transformer_block", .i = {0, 4, 1}},
                                        {.kind = "layer_norm"},
                                        {.kind = "dense", .i = {8}}};
    int br = causality_breaks(TG_F64, 5, gpt);
    CHECK(br == 0, "gpt stack: %d", br);
}

/* ---------------------------------------------------------------- shapes, names, init, errors */

static void test_names_init(void) {
    static const tg_layer_spec b[] = {{.kind = "transformer_block", .i = {0, 4, 1}}};
    tg_model *m = make(TG_F32, b, 64, 128, 5);
    if (!m) return;
    /* torch: nn.TransformerEncoderLayer(128, 4, 512, ..., batch_first=True,
     * norm_first=True).state_dict() keys and shapes */
    static const char *want[12] = {"0.self_attn.in_proj_weight",
                                   "0.self_attn.in_proj_bias",
                                   "0.self_attn.out_proj.weight",
                                   "0.self_attn.out_proj.bias",
                                   "0.linear1.weight",
                                   "0.linear1.bias",
                                   "0.linear2.weight",
                                   "0.linear2.bias",
                                   "0.norm1.weight",
                                   "0.norm1.bias",
                                   "0.norm2.weight",
                                   "0.norm2.bias"};
    static const size_t sizes[12] = {384 * 128, 384, 128 * 128, 128, 512 * 128, 512,
                                     128 * 512, 128, 128,       128, 128,       128};
    tg_tensor *p[16];
    const char *names[16];
    CHECK(tg_model_params(m, p, names, 16) == 12, "12 parameters");
    for (int i = 0; i < 12; i++)
        CHECK(strcmp(names[i], want[i]) == 0 && p[i]->size == sizes[i], "%d: %s (%zu)", i, names[i],
              p[i]->size);
    /* sum(p.numel()) of torch's layer: 198272 */
    CHECK(tg_model_param_count(m) == 198272, "%zu", tg_model_param_count(m));
    /* bounds: xavier √(6/512), out_proj and linear1 1/√128, linear2 1/√512;
     * biases of the attention 0, norms 1 and 0 */
    double bound[12] = {sqrt(6.0 / 512),
                        0,
                        1 / sqrt(128.0),
                        0,
                        1 / sqrt(128.0),
                        1 / sqrt(128.0),
                        1 / sqrt(512.0),
                        1 / sqrt(512.0),
                        1,
                        0,
                        1,
                        0};
    for (int i = 0; i < 12; i++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t e = 0; e < p[i]->size; e++)
            lo = fmin(lo, tg_get(p[i], e)), hi = fmax(hi, tg_get(p[i], e));
        int norm = i >= 8;
        CHECK(norm || bound[i] == 0 ? lo == bound[i] && hi == bound[i]
                                    : -lo <= bound[i] && hi <= bound[i] && hi > 0.9 * bound[i],
              "%s in [%g, %g], bound %g", names[i], lo, hi, bound[i]);
    }
    CHECK(m->layers[0].out_rank == 2 && m->layers[0].out_shape[0] == 64, "same shape");
    tg_model_free(m);
}

static void test_errors(void) {
    tg_model *m = NULL;
    size_t in[2] = {5, 8};
    static const tg_layer_spec noheads[] = {{.kind = "transformer_block"}};
    EXPECT_ERR(
        tg_model_new(&m, TG_F32, 2, in, 1, noheads), TG_ERR_VALUE,
        "layer 0 (transformer_block): input (5x8): heads 0 (i1, required) must divide D = 8");
    static const tg_layer_spec three[] = {{.kind = "multihead_attention", .i = {0, 3}}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 2, in, 1, three), TG_ERR_VALUE, "heads 3");
    static const tg_layer_spec dm[] = {{.kind = "transformer_block", .i = {16, 2}}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 2, in, 1, dm), TG_ERR_SHAPE,
               "d_model 16 (i0) is not the input's D = 8");
    static const tg_layer_spec pe[] = {{.kind = "pos_embedding", .i = {4}}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 2, in, 1, pe), TG_ERR_VALUE,
               "max_len 4 (i0) must be T = 5");
    EXPECT_ERR(tg_model_new(&m, TG_F32, 1, (size_t[]){8}, 1, dm), TG_ERR_SHAPE,
               "needs examples T×D");
    static const tg_layer_spec drop[] = {{.kind = "transformer_block", .i = {0, 2}, .f = {1.0}}};
    EXPECT_ERR(tg_model_new(&m, TG_F32, 2, in, 1, drop), TG_ERR_VALUE, "dropout 1 (f0)");

    tg_tensor *x = randn(TG_F32, 3, (size_t[]){2, 5, 8}, 1, 0), *w = NULL, *wo = NULL, *y;
    tg_tensor *mask = NULL;
    CHECK_OK(tg_param_new(&w, TG_F32, 2, (size_t[]){24, 8}));
    CHECK_OK(tg_param_new(&wo, TG_F32, 2, (size_t[]){8, 8}));
    CHECK_OK(tg_causal_mask(&mask, TG_F32, 4));
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    tg_mha_opts o = {.heads = 2, .attn_mask = mask};
    EXPECT_ERR(tg_multihead_attention(t, x, w, NULL, wo, NULL, &o, &y), TG_ERR_SHAPE,
               "multihead_attention: x (2x5x8): (4x4) does not fit");
    o.attn_mask = NULL, o.heads = 3;
    EXPECT_ERR(tg_multihead_attention(t, x, w, NULL, wo, NULL, &o, &y), TG_ERR_VALUE,
               "3 heads do not divide D = 8");
    o.heads = 2;
    EXPECT_ERR(tg_multihead_attention(t, x, wo, NULL, wo, NULL, &o, &y), TG_ERR_SHAPE, "(8x8)");
    tg_tensor *none = NULL;
    EXPECT_ERR(tg_causal_mask(&none, TG_F32, 0), TG_ERR_ARG, "causal_mask: T = 0");
    tg_tape_free(t);
    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(wo), tg_tensor_free(mask);
}

/* Training with dropout records dropout ops and differs between calls;
 * eval does not; a model file keeps the kinds and their options. */
static void test_dropout_and_file(void) {
    static const tg_layer_spec b[] = {{.kind = "transformer_block", .i = {0, 2, 1}, .f = {0.25}}};
    tg_model *m = make(TG_F32, b, 5, 8, 3), *back = NULL;
    tg_tensor *x = randn(TG_F32, 3, (size_t[]){2, 5, 8}, 4, 0), *y1 = NULL, *y2 = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    if (!m || !x || !t) return;
    CHECK_OK(tg_model_forward(t, m, x, 1, &rng, &y1));
    CHECK_OK(tg_model_forward(t, m, x, 1, &rng, &y2));
    CHECK(y1 && y2 && memcmp(y1->data, y2->data, 4 * y1->size) != 0, "dropout masks differ");
    tg_tape_reset(t);
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y1));
    CHECK_OK(tg_model_forward(t, m, x, 0, NULL, &y2));
    CHECK(y1 && y2 && memcmp(y1->data, y2->data, 4 * y1->size) == 0, "eval is deterministic");
    char path[] = "/tmp/tg-attn-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK_OK(tg_model_save(m, path));
    CHECK_OK(tg_model_load(&back, path));
    remove(path);
    tg_tensor *y3 = NULL;
    if (back) CHECK_OK(tg_model_forward(t, back, x, 0, NULL, &y3));
    CHECK(y1 && y3 && memcmp(y1->data, y3->data, 4 * y1->size) == 0, "reloaded model differs");
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_model_free(m), tg_model_free(back);
}

int main(int argc, char **argv) {
    if (argc > 1) fixdir = argv[1];
    test_dense_last_axis();
    test_attention_loops();
    test_torch_parity();
    test_derivatives();
    test_causality();
    test_gpt_stack_causal();
    test_names_init();
    test_errors();
    test_dropout_and_file();
    return check_summary();
}
