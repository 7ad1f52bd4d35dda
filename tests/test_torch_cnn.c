/* A CNN trained in PyTorch gives PyTorch's logits in tapegrad (issue 16).
 *
 *   test_torch_cnn FIXTURE_DIR [--export OUT_DIR]
 *
 * FIXTURE_DIR is tests/data/torch_cnn, written by tests/gen_torch_cnn.py
 * (torch 1.13): the state_dict of benches/torch_cnn.py's --bn model as
 * safetensors, 256 Fashion-MNIST test images (IDX) and PyTorch's eval-mode
 * logits on them in float32 and float64. The model is built with the layer
 * API (benches/cnn_model.h), the file loaded with tg_safetensors_load, and
 * the logits compared:
 *   - float32 model: |Δ| <= 1e-5 for every logit (the bound). Both
 *     sides round differently (other summation orders in the 288-term
 *     convolutions and the 1600-term dense layer): torch's own float32
 *     logits are 2.4e-6 from its float64 ones on this fixture
 *     (gen_torch_cnn.py prints it), so 1e-5 is 4× the rounding one side
 *     already has, and far below what a wrong weight, layout or batch-norm
 *     formula gives (≥ 1e-3 on logits of size ~10). Same predicted class for
 *     every image, so the same accuracy.
 *   - float64 model (the F32 weights converted exactly): |Δ| <= 1e-9 against
 *     torch's float64 logits (model.double()), where only float64 rounding
 *     differs (~1e-14 relative on logits ≤ 30: 1e-9 leaves a wide margin
 *     while still catching any float32 step inside tapegrad's path).
 * With --export (the reverse direction; tests/torch_cnn_reverse.py drives
 * it where torch is installed): the imported float32 model is trained 5
 * Adam steps here (training mode: batch statistics, dropout from tg_rng) so
 * that its weights and running statistics are tapegrad's own, then written
 * to OUT_DIR/tg.safetensors, and its eval logits on the 256 images to
 * OUT_DIR/tg_logits_f32.bin (float32 little-endian, 256 × 10). */
#include "../benches/cnn_model.h"
#include "check.h"

#include <stdlib.h>

enum { N = 256, C = 10 };

/* n doubles from a little-endian file of float32 (width 4) or float64 (8). */
static int read_values(const char *path, int width, double *out, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t got = 0;
    for (; f && got < n; got++) {
        float v32;
        double v64;
        if (fread(width == 4 ? (void *)&v32 : (void *)&v64, (size_t)width, 1, f) != 1) break;
        out[got] = width == 4 ? v32 : v64;
    }
    int ok = f && got == n && fgetc(f) == EOF;
    if (f) fclose(f);
    CHECK(ok, "%s: cannot read %zu values of %d bytes (got %zu)", path, n, width, got);
    return ok;
}

/* The eval-mode logits of m on the fixture's images, and the correct count. */
static void logits_of(const tg_model *m, const tg_dataset *ds, double *out, double *right) {
    size_t xs[2] = {N, 784}, n = N;
    tg_tensor *x = NULL, *y = NULL;
    tg_tape *t = NULL;
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, m->dtype, 2, xs));
    CHECK_OK(tg_tensor_new(&y, m->dtype, 1, &n));
    if (t && x && y) CHECK_OK(cnn_eval_batch(t, m, ds, 0, x, y, out, right));
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
}

/* max |a − b|; a NaN on either side counts as infinitely far. */
static double max_abs_diff(const double *a, const double *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        d = e != e ? INFINITY : fmax(d, e);
    }
    return d;
}

static tg_model *imported(const char *dir, tg_dtype dt) {
    tg_model *m = NULL;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    CHECK_OK(cnn_model_new(&m, dt, 1));
    if (!m) return NULL;
    CHECK_OK(tg_model_init(m, &rng)); /* overwritten by the file, every tensor */
    CHECK_OK(tg_safetensors_load(m, check_path(dir, "model.safetensors")));
    return m;
}

/* 5 Adam steps on the fixture's images (batches of 64), training mode. */
static void train_a_little(tg_model *m, const tg_dataset *ds) {
    tg_tensor *params[16], *x = NULL, *y = NULL;
    int np = tg_model_params(m, params, NULL, 16);
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_ADAM);
    tg_optimizer *opt = NULL;
    tg_tape *t = NULL;
    tg_rng rng;
    size_t xs[2] = {64, 784}, rows = 64, idx[N];
    tg_rng_seed(&rng, 16);
    for (size_t i = 0; i < N; i++)
        idx[i] = i;
    CHECK(np == 12, "%d parameters", np); /* 2 conv, 2 batch norm, 2 dense: weight, bias */
    CHECK_OK(tg_optimizer_new(&opt, &cfg, np, params));
    CHECK_OK(tg_tape_new(&t));
    CHECK_OK(tg_tensor_new(&x, TG_F32, 2, xs));
    CHECK_OK(tg_tensor_new(&y, TG_F32, 1, &rows));
    for (int step = 0; opt && t && x && y && step < 5; step++) {
        long s4[4] = {64, 1, 28, 28};
        tg_tensor *x4, *logits, *loss;
        CHECK_OK(tg_batch_fill(ds, idx, (size_t)step % 4 * 64, 64, x, y));
        CHECK_OK(tg_reshape(t, x, 4, s4, &x4));
        CHECK_OK(tg_model_forward(t, m, x4, 1, &rng, &logits));
        CHECK_OK(tg_softmax_ce(t, logits, y, &loss));
        CHECK_OK(tg_backward(t, loss));
        CHECK_OK(tg_optimizer_step(opt));
        tg_tape_reset(t);
    }
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
    tg_optimizer_free(opt);
}

static void export_to(tg_model *m, const tg_dataset *ds, const char *out) {
    static double l[N * C];
    double right = 0;
    train_a_little(m, ds);
    logits_of(m, ds, l, &right);
    CHECK_OK(tg_safetensors_save(m, check_path(out, "tg.safetensors")));
    FILE *f = fopen(check_path(out, "tg_logits_f32.bin"), "wb");
    for (size_t i = 0; f && i < N * C; i++) {
        float v = (float)l[i]; /* little-endian on the x86 and arm hosts this runs on */
        fwrite(&v, sizeof v, 1, f);
    }
    CHECK(f && fclose(f) == 0, "cannot write %s/tg_logits_f32.bin", out);
    printf("exported to %s (accuracy %.4f after 5 steps here)\n", out, right / N);
}

int main(int argc, char **argv) {
    if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--export") == 0)) {
        fprintf(stderr, "usage: test_torch_cnn FIXTURE_DIR [--export OUT_DIR]\n");
        return 2;
    }
    const char *dir = argv[1];
    static double want32[N * C], want64[N * C], got[N * C];
    tg_dataset ds = {0};
    CHECK_OK(tg_idx_load(check_path(dir, "t256"), &ds));
    CHECK(ds.n == N && ds.d == 784, "fixture: %zu images of %zu pixels", ds.n, ds.d);
    if (ds.n != N || ds.d != 784 ||
        !read_values(check_path(dir, "logits_f32.bin"), 4, want32, N * C) ||
        !read_values(check_path(dir, "logits_f64.bin"), 8, want64, N * C))
        return check_summary();

    tg_model *m32 = imported(dir, TG_F32), *m64 = imported(dir, TG_F64);
    double right32 = 0, right64 = 0, torch_right = 0;
    for (size_t r = 0; r < N; r++) {
        size_t best = 0;
        for (size_t c = 1; c < C; c++)
            if (want32[r * C + c] > want32[r * C + best]) best = c;
        torch_right += (double)best == ds.y[r];
    }
    if (m32) {
        logits_of(m32, &ds, got, &right32);
        double d = max_abs_diff(got, want32, N * C);
        CHECK(d <= 1e-5, "float32 logits: max |tapegrad - torch| = %.3g > 1e-5", d);
        CHECK(right32 == torch_right, "float32: %g right, torch %g", right32, torch_right);
        printf("float32: max |Δlogit| %.3g, accuracy %.4f (torch %.4f)\n", d, right32 / N,
               torch_right / N);
    }
    if (m64) {
        logits_of(m64, &ds, got, &right64);
        double d = max_abs_diff(got, want64, N * C);
        CHECK(d <= 1e-9, "float64 logits: max |tapegrad - torch| = %.3g > 1e-9", d);
        printf("float64: max |Δlogit| %.3g\n", d);
    }
    if (argc == 4 && m32) export_to(m32, &ds, argv[3]);
    tg_model_free(m32), tg_model_free(m64);
    tg_dataset_free(&ds);
    return check_summary();
}
