/* A variational auto-encoder (Kingma & Welling 2014) on Fashion-MNIST,
 * built only from public ops: the proof that the op vocabulary composes.
 *
 *   encoder  x (784) → 400 relu → μ (20), log σ² (20)   (two heads)
 *   sample   z = μ + exp(½·log σ²) ⊙ ε,  ε ~ N(0, 1) from tg_rng
 *   decoder  z (20) → 400 relu → 784 logits
 *   loss     per example Σ_pixels BCE-with-logits(logits, x)
 *            + KL = −½·Σ(1 + log σ² − μ² − exp(log σ²)); mean over the batch
 *
 * Adam 1e-3, batch 128, pixels in [0, 1]; weights and biases drawn as
 * PyTorch's nn.Linear does, U(−1/√fan_in, 1/√fan_in). benches/torch_vae.py
 * is the same model in PyTorch, for the side-by-side test loss.
 *
 *   vae [--epochs N] [--seed S] [--limit N] [--data PREFIX_DIR] [--png FILE]
 *
 * Prints the mean training loss per epoch and then `test: loss=<x>` (the
 * negative ELBO per test image, ε from a fixed seed), and writes a PNG grid
 * of 64 images decoded from z ~ N(0, 1). --limit trains on the first N
 * images (a quick run). */
#include "tapegrad.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

enum { D = 784, H = 400, Z = 20, BATCH = 128, GRID = 8 };

/* A dense layer's parameters: W (in × out), b (out). */
typedef struct dense {
    tg_tensor *w, *b;
} dense;

typedef struct vae {
    dense enc, mu, logvar, dec, out;
} vae;

/* PyTorch's default initialisation of nn.Linear: U(−k, k), k = 1/√fan_in. */
static tg_status dense_new(dense *l, size_t in, size_t out, tg_rng *rng) {
    size_t ws[2] = {in, out};
    tg_status s = tg_param_new(&l->w, TG_F32, 2, ws);
    if (!s) s = tg_param_new(&l->b, TG_F32, 1, &out);
    double k = 1.0 / sqrt((double)in);
    for (size_t i = 0; !s && i < in * out; i++)
        tg_set(l->w, i, k * (2 * tg_rng_uniform(rng) - 1));
    for (size_t i = 0; !s && i < out; i++)
        tg_set(l->b, i, k * (2 * tg_rng_uniform(rng) - 1));
    return s;
}

static void dense_free(dense *l) {
    tg_tensor_free(l->w), tg_tensor_free(l->b);
}

/* y = x·W + b, with relu when asked (fused). */
static tg_status dense_apply(tg_tape *t, const dense *l, const tg_tensor *x, int relu,
                             tg_tensor **y) {
    tg_tensor *h;
    tg_status s = tg_matmul(t, x, l->w, &h);
    if (s) return s;
    return relu ? tg_bias_relu(t, h, l->b, y) : tg_bias_add(t, h, l->b, y);
}

/* The decoder: z (n × 20) → logits (n × 784). */
static tg_status decode(tg_tape *t, const vae *m, const tg_tensor *z, tg_tensor **logits) {
    tg_tensor *h;
    tg_status s = dense_apply(t, &m->dec, z, 1, &h);
    return s ? s : dense_apply(t, &m->out, h, 0, logits);
}

/* The loss of a batch x (n × 784) with noise eps (n × 20): the mean over
 * the batch of Σ_pixels BCE + KL. half is a scalar ½ and one a scalar 1
 * (rank 0: they broadcast). */
static tg_status elbo(tg_tape *t, const vae *m, const tg_tensor *x, const tg_tensor *eps,
                      const tg_tensor *half, const tg_tensor *one, tg_tensor **loss) {
    size_t n = x->shape[0];
    tg_tensor *h, *mu, *lv, *sd, *z, *noise, *logits, *bce, *mu2, *var, *kl1, *kl2, *kl3, *kl;
    tg_tensor *bce_sum;
    tg_status s = dense_apply(t, &m->enc, x, 1, &h);
    if (!s) s = dense_apply(t, &m->mu, h, 0, &mu);
    if (!s) s = dense_apply(t, &m->logvar, h, 0, &lv);
    /* z = μ + exp(½·log σ²) ⊙ ε: the reparameterisation */
    if (!s) s = tg_mul(t, lv, half, &sd);
    if (!s) s = tg_exp(t, sd, &sd);
    if (!s) s = tg_mul(t, sd, eps, &noise);
    if (!s) s = tg_add(t, mu, noise, &z);
    if (!s) s = decode(t, m, z, &logits);
    /* bce_logits is the mean over n × 784 elements: × 784 is the batch mean
     * of the per-image sums. */
    if (!s) s = tg_bce_logits(t, logits, x, &bce);
    if (!s) s = tg_scale(t, bce, (double)D, &bce_sum);
    /* KL = −½·Σ(1 + log σ² − μ² − σ²), summed over z and the batch, / n */
    if (!s) s = tg_square(t, mu, &mu2);
    if (!s) s = tg_exp(t, lv, &var);
    if (!s) s = tg_add(t, lv, one, &kl1);
    if (!s) s = tg_sub(t, kl1, mu2, &kl2);
    if (!s) s = tg_sub(t, kl2, var, &kl3);
    if (!s) s = tg_sum(t, kl3, &kl);
    if (!s) s = tg_scale(t, kl, -0.5 / (double)n, &kl);
    if (!s) s = tg_add(t, bce_sum, kl, loss);
    return s;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ε ~ N(0, 1) into a float tensor. */
static void draw_normal(tg_tensor *e, tg_rng *rng) {
    for (size_t i = 0; i < e->size; i++)
        ((float *)e->data)[i] = (float)tg_rng_normal(rng);
}

/* One PNG chunk: length, type, data, CRC-32 of type and data (zlib's). */
static void png_chunk(FILE *f, const char *type, const unsigned char *data, unsigned len) {
    unsigned char be[4] = {len >> 24, len >> 16 & 255, len >> 8 & 255, len & 255};
    fwrite(be, 1, 4, f);
    fwrite(type, 1, 4, f);
    if (len) fwrite(data, 1, len, f);
    uLong crc = crc32(crc32(0, (const Bytef *)type, 4), data, len);
    unsigned char c[4] = {crc >> 24 & 255, crc >> 16 & 255, crc >> 8 & 255, crc & 255};
    fwrite(c, 1, 4, f);
}

/* An 8-bit grey PNG of w × h pixels (values in [0, 1]), zlib-compressed. */
static int write_png(const char *path, const float *px, unsigned w, unsigned h) {
    size_t raw_len = (size_t)h * (w + 1);
    unsigned char *raw = malloc(raw_len);
    uLongf z_len = compressBound(raw_len);
    unsigned char *zbuf = malloc(z_len);
    FILE *f = raw && zbuf ? fopen(path, "wb") : NULL;
    int ok = f != NULL;
    for (unsigned y = 0; ok && y < h; y++) {
        raw[y * (w + 1)] = 0; /* filter: none */
        for (unsigned x = 0; x < w; x++) {
            float v = px[y * w + x];
            raw[y * (w + 1) + 1 + x] = (unsigned char)(255.0f * (v < 0 ? 0 : v > 1 ? 1 : v) + 0.5f);
        }
    }
    if (ok) ok = compress2(zbuf, &z_len, raw, raw_len, 9) == Z_OK;
    if (ok) {
        static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
        unsigned char ihdr[13] = {w >> 24,
                                  w >> 16 & 255,
                                  w >> 8 & 255,
                                  w & 255,
                                  h >> 24,
                                  h >> 16 & 255,
                                  h >> 8 & 255,
                                  h & 255,
                                  8,
                                  0,
                                  0,
                                  0,
                                  0}; /* 8 bits, greyscale */
        fwrite(sig, 1, 8, f);
        png_chunk(f, "IHDR", ihdr, 13);
        png_chunk(f, "IDAT", zbuf, (unsigned)z_len);
        png_chunk(f, "IEND", NULL, 0);
    }
    if (f && fclose(f) != 0) ok = 0;
    free(raw), free(zbuf);
    return ok;
}

/* 64 images decoded from z ~ N(0, 1), as an 8 × 8 grid (σ(logits)). */
static tg_status sample_grid(const vae *m, tg_rng *rng, const char *path) {
    size_t zs[2] = {GRID * GRID, Z};
    tg_tensor *z, *logits, *p;
    tg_tape *t;
    tg_status s = tg_tensor_new(&z, TG_F32, 2, zs);
    if (s) return s;
    draw_normal(z, rng);
    if (!(s = tg_tape_new(&t))) {
        s = decode(t, m, z, &logits);
        if (!s) s = tg_sigmoid(t, logits, &p);
        float *img = s ? NULL : malloc(sizeof(float) * GRID * 28 * GRID * 28);
        for (size_t k = 0; img && k < GRID * GRID; k++)
            for (size_t r = 0; r < 28; r++)
                for (size_t c = 0; c < 28; c++)
                    img[((k / GRID) * 28 + r) * GRID * 28 + (k % GRID) * 28 + c] =
                        ((const float *)p->data)[k * D + r * 28 + c];
        if (!s && (!img || !write_png(path, img, GRID * 28, GRID * 28))) {
            fprintf(stderr, "vae: cannot write %s\n", path);
            s = TG_ERR_IO; /* said here: tg_last_error() is not ours to set */
        }
        free(img);
        tg_tape_free(t);
    }
    tg_tensor_free(z);
    return s;
}

typedef struct opts {
    int epochs;
    unsigned long seed;
    size_t limit;
    const char *data, *png;
} opts;

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){10, 1, 0, "/usr/share/datasets/fashion-mnist", "vae-samples.png"};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--epochs"))
            o->epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            o->seed = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--limit"))
            o->limit = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--data"))
            o->data = argv[i + 1];
        else if (!strcmp(argv[i], "--png"))
            o->png = argv[i + 1];
        else
            return 0;
    }
    return argc % 2 == 1 && o->epochs >= 0;
}

/* The mean loss over ds (batches of up to 1000; ε from rng). */
static tg_status evaluate(const vae *m, const tg_dataset *ds, tg_rng *rng, const tg_tensor *half,
                          const tg_tensor *one, double *mean) {
    size_t *idx = malloc(ds->n * sizeof *idx);
    tg_tape *t = NULL;
    tg_status s = idx ? tg_tape_new(&t) : TG_ERR_NOMEM;
    double total = 0;
    for (size_t i = 0; idx && i < ds->n; i++)
        idx[i] = i;
    for (size_t start = 0; !s && start < ds->n; start += 1000) {
        size_t rows = ds->n - start < 1000 ? ds->n - start : 1000;
        size_t xs[2] = {rows, D}, es[2] = {rows, Z};
        tg_tensor *x = NULL, *e = NULL, *y = NULL, *loss; /* y: the labels, unused */
        s = tg_tensor_new(&x, TG_F32, 2, xs);
        if (!s) s = tg_tensor_new(&e, TG_F32, 2, es);
        if (!s) s = tg_tensor_new(&y, TG_F32, 1, &rows);
        if (!s) s = tg_batch_fill(ds, idx, start, rows, x, y);
        if (!s) draw_normal(e, rng);
        if (!s) s = elbo(t, m, x, e, half, one, &loss);
        if (!s) total += tg_get(loss, 0) * (double)rows;
        tg_tape_reset(t);
        tg_tensor_free(x), tg_tensor_free(e), tg_tensor_free(y);
    }
    *mean = total / (double)ds->n;
    tg_tape_free(t);
    free(idx);
    return s;
}

static tg_status train(vae *m, const opts *o, const tg_dataset *ds, tg_rng *rng,
                       const tg_tensor *half, const tg_tensor *one) {
    tg_tensor *params[10] = {m->enc.w,    m->enc.b, m->mu.w,  m->mu.b,  m->logvar.w,
                             m->logvar.b, m->dec.w, m->dec.b, m->out.w, m->out.b};
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_ADAM);
    cfg.lr = 1e-3;
    tg_optimizer *opt = NULL;
    tg_tape *t = NULL;
    size_t n = o->limit && o->limit < ds->n ? o->limit : ds->n;
    size_t *idx = malloc(n * sizeof *idx), xs[2] = {BATCH, D}, es[2] = {BATCH, Z};
    tg_tensor *x = NULL, *e = NULL, *y = NULL; /* y: the labels, unused */
    tg_status s = idx ? tg_optimizer_new(&opt, &cfg, 10, params) : TG_ERR_NOMEM;
    if (!s) s = tg_tape_new(&t);
    for (size_t i = 0; idx && i < n; i++)
        idx[i] = i;
    for (int ep = 1; !s && ep <= o->epochs; ep++) {
        double total = 0, t0 = now();
        tg_shuffle(idx, n, rng);
        for (size_t start = 0; !s && start < n; start += BATCH) {
            size_t rows = n - start < BATCH ? n - start : BATCH;
            xs[0] = es[0] = rows;
            if (!x || x->shape[0] != rows) { /* the last, shorter batch */
                tg_tensor_free(x), tg_tensor_free(e), tg_tensor_free(y);
                x = e = y = NULL;
                s = tg_tensor_new(&x, TG_F32, 2, xs);
                if (!s) s = tg_tensor_new(&e, TG_F32, 2, es);
                if (!s) s = tg_tensor_new(&y, TG_F32, 1, &rows);
            }
            tg_tensor *loss;
            if (!s) s = tg_batch_fill(ds, idx, start, rows, x, y);
            if (!s) draw_normal(e, rng);
            if (!s) s = elbo(t, m, x, e, half, one, &loss);
            for (int i = 0; !s && i < 10; i++)
                tg_zero_grad(params[i]);
            if (!s) s = tg_backward(t, loss);
            if (!s) s = tg_optimizer_step(opt);
            if (!s) total += tg_get(loss, 0) * (double)rows;
            tg_tape_reset(t);
        }
        if (!s)
            printf("epoch %d/%d loss=%.4f time=%.2fs\n", ep, o->epochs, total / (double)n,
                   now() - t0);
        fflush(stdout);
    }
    tg_tensor_free(x), tg_tensor_free(e), tg_tensor_free(y);
    tg_tape_free(t);
    tg_optimizer_free(opt);
    free(idx);
    return s;
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) {
        fprintf(stderr,
                "usage: vae [--epochs N] [--seed S] [--limit N] [--data DIR] [--png FILE]\n");
        return 2;
    }
    char prefix[1024];
    tg_dataset train_set = {0}, test_set = {0};
    tg_rng rng;
    tg_rng_seed(&rng, o.seed);
    vae m;
    memset(&m, 0, sizeof m);
    tg_tensor *half = NULL, *one = NULL;
    snprintf(prefix, sizeof prefix, "%s/train", o.data);
    tg_status s = tg_idx_load(prefix, &train_set);
    snprintf(prefix, sizeof prefix, "%s/t10k", o.data);
    if (!s) s = tg_idx_load(prefix, &test_set);
    if (!s) s = dense_new(&m.enc, D, H, &rng);
    if (!s) s = dense_new(&m.mu, H, Z, &rng);
    if (!s) s = dense_new(&m.logvar, H, Z, &rng);
    if (!s) s = dense_new(&m.dec, Z, H, &rng);
    if (!s) s = dense_new(&m.out, H, D, &rng);
    if (!s) s = tg_tensor_new(&half, TG_F32, 0, NULL);
    if (!s) s = tg_tensor_new(&one, TG_F32, 0, NULL);
    if (!s) tg_set(half, 0, 0.5), tg_set(one, 0, 1.0);
    if (!s) s = train(&m, &o, &train_set, &rng, half, one);
    double test_loss = NAN;
    tg_rng eval_rng;
    tg_rng_seed(&eval_rng, 12345);
    if (!s) s = evaluate(&m, &test_set, &eval_rng, half, one, &test_loss);
    if (!s) printf("test: loss=%.4f\n", test_loss);
    if (!s) s = sample_grid(&m, &rng, o.png);
    if (!s) printf("vae: 64 samples in %s\n", o.png);
    if (s && s != TG_ERR_IO) fprintf(stderr, "vae: %s\n", tg_last_error());
    if (s == TG_ERR_IO && test_loss != test_loss) /* a loader's error, not the PNG's */
        fprintf(stderr, "vae: %s\n", tg_last_error());
    dense *layers[5] = {&m.enc, &m.mu, &m.logvar, &m.dec, &m.out};
    for (int i = 0; i < 5; i++)
        dense_free(layers[i]);
    tg_tensor_free(half), tg_tensor_free(one);
    tg_dataset_free(&train_set), tg_dataset_free(&test_set);
    return s ? 1 : 0;
}
