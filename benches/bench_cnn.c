/* bench_cnn: issue 16's CNN trained on Fashion-MNIST through the layer API,
 * the same model and recipe as benches/torch_cnn.py (cnn_model.h):
 *   conv 1→32 3×3 relu, maxpool 2, conv 32→64 3×3 relu, maxpool 2,
 *   flatten, dense 128 relu, dense 10   (--bn: batch norm after each conv,
 *   dropout 0.5 before the last dense)
 * softmax cross-entropy (mean over the batch), Adam lr 1e-3 (PyTorch's
 * defaults), batch 128, the last shorter batch kept, shuffled each epoch;
 * pixels in [0, 1]; PyTorch's default initialisation (other random numbers).
 *
 *   bench_cnn [--epochs 10] [--seed 1] [--threads 2] [--bn] [--limit N]
 *             [--data DIR] [--dtype f32|f64] [--load IN.safetensors]
 *             [--save OUT.safetensors] [--logits OUT.f32]
 *
 * Output as torch_cnn.py's (time = the training loop only, wall clock; cpu =
 * the process's CPU time in it, all threads):
 *   epoch 1/10 loss=0.4705 time=21.03s cpu=40.11s test_acc=0.8712
 *   test: accuracy=0.9070
 * --load starts from a safetensors file (PyTorch's state_dict names);
 * --save writes the trained model as safetensors; --logits writes the test
 * set's logits (10,000 × 10, float32 little-endian, row-major) after
 * training: with --epochs 0 --load, the logits of a model trained elsewhere
 * (benches/cnn_interop.py). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench_util.h"
#include "cnn_model.h"

#include <tapegrad_io.h>

enum { BATCH = 128, EVAL_BATCH = 1000 };

/* CPU seconds of the process (all its threads): on a loaded host, less
 * disturbed by other processes than the wall clock. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct opts {
    int epochs, threads, bn;
    unsigned long seed;
    size_t limit;
    tg_dtype dt;
    const char *data, *load, *save, *logits;
} opts;

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){10, 2, 0, 1, 0, TG_F32, "/usr/share/datasets/fashion-mnist", NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bn")) {
            o->bn = 1;
            continue;
        }
        if (!v) return 0;
        i++;
        if (!strcmp(a, "--epochs"))
            o->epochs = atoi(v);
        else if (!strcmp(a, "--seed"))
            o->seed = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(a, "--limit"))
            o->limit = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--dtype") && (!strcmp(v, "f32") || !strcmp(v, "f64")))
            o->dt = v[1] == '3' ? TG_F32 : TG_F64;
        else if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--load"))
            o->load = v;
        else if (!strcmp(a, "--save"))
            o->save = v;
        else if (!strcmp(a, "--logits"))
            o->logits = v;
        else
            return 0;
    }
    return o->epochs >= 0 && o->threads >= 1;
}

/* Test accuracy; the logits as float32 into f if f is not NULL. */
static double evaluate(const tg_model *m, const tg_dataset *ds, tg_dtype dt, FILE *f) {
    size_t xs[2] = {EVAL_BATCH, ds->d};
    tg_tape *t = NULL;
    tg_tensor *x = NULL, *y = NULL;
    double right = 0, *out = bench_malloc("bench_cnn", EVAL_BATCH * 10 * sizeof *out);
    BENCH_OK(tg_tape_new(&t));
    for (size_t start = 0; start < ds->n; start += EVAL_BATCH) {
        size_t rows = ds->n - start < EVAL_BATCH ? ds->n - start : EVAL_BATCH;
        double r = 0;
        xs[0] = rows;
        BENCH_OK(tg_tensor_new(&x, dt, 2, xs));
        BENCH_OK(tg_tensor_new(&y, dt, 1, &rows));
        BENCH_OK(cnn_eval_batch(t, m, ds, start, x, y, out, &r));
        right += r;
        for (size_t i = 0; f && i < rows * 10; i++) {
            float v = (float)out[i]; /* x86: already little-endian */
            fwrite(&v, sizeof v, 1, f);
        }
        tg_tensor_free(x), tg_tensor_free(y);
    }
    tg_tape_free(t);
    free(out);
    return right / (double)ds->n;
}

static void train(tg_model *m, const opts *o, const tg_dataset *tr, const tg_dataset *te,
                  tg_rng *rng) {
    enum { MAXP = 16 };
    tg_tensor *params[MAXP];
    int np = tg_model_params(m, params, NULL, MAXP);
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_ADAM); /* lr 1e-3, betas (0.9, 0.999), eps 1e-8 */
    tg_optimizer *opt = NULL;
    tg_tape *t = NULL;
    size_t n = o->limit && o->limit < tr->n ? o->limit : tr->n;
    size_t *idx = bench_malloc("bench_cnn", n * sizeof *idx);
    tg_tensor *x = NULL, *y = NULL;
    if (np > MAXP) {
        fprintf(stderr, "bench_cnn: %d parameters\n", np);
        exit(2);
    }
    BENCH_OK(tg_optimizer_new(&opt, &cfg, np, params));
    BENCH_OK(tg_tape_new(&t));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (int ep = 1; ep <= o->epochs; ep++) {
        double total = 0, t0 = bench_now(), c0 = cpu_now();
        tg_shuffle(idx, n, rng);
        for (size_t start = 0; start < n; start += BATCH) {
            size_t rows = n - start < BATCH ? n - start : BATCH;
            if (!x || x->shape[0] != rows) { /* the first, or the last shorter batch */
                size_t xs[2] = {rows, tr->d};
                tg_tensor_free(x), tg_tensor_free(y);
                BENCH_OK(tg_tensor_new(&x, o->dt, 2, xs));
                BENCH_OK(tg_tensor_new(&y, o->dt, 1, &rows));
            }
            long shape4[4] = {(long)rows, 1, 28, 28};
            tg_tensor *x4, *logits, *loss;
            BENCH_OK(tg_batch_fill(tr, idx, start, rows, x, y));
            BENCH_OK(tg_reshape(t, x, 4, shape4, &x4));
            BENCH_OK(tg_model_forward(t, m, x4, 1, rng, &logits));
            BENCH_OK(tg_softmax_ce(t, logits, y, &loss));
            BENCH_OK(tg_backward(t, loss));
            BENCH_OK(tg_optimizer_step(opt)); /* also zeroes the gradients */
            total += tg_get(loss, 0) * (double)rows;
            tg_tape_reset(t);
        }
        double dt = bench_now() - t0, dc = cpu_now() - c0;
        printf("epoch %d/%d loss=%.4f time=%.2fs cpu=%.2fs test_acc=%.4f\n", ep, o->epochs,
               total / (double)n, dt, dc, evaluate(m, te, o->dt, NULL));
        fflush(stdout);
    }
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(t);
    tg_optimizer_free(opt);
    free(idx);
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_cnn [--epochs N] [--seed S] [--threads T] [--bn] "
                        "[--limit N] [--data DIR] [--dtype f32|f64] [--load F] [--save F] "
                        "[--logits F]\n");
        return 2;
    }
    bench_check_build("bench_cnn");
    BENCH_OK(tg_set_threads(o.threads));
    char prefix[1024];
    tg_dataset tr = {0}, te = {0};
    snprintf(prefix, sizeof prefix, "%s/train", o.data);
    BENCH_OK(tg_idx_load(prefix, &tr));
    snprintf(prefix, sizeof prefix, "%s/t10k", o.data);
    BENCH_OK(tg_idx_load(prefix, &te));
    tg_rng rng;
    tg_rng_seed(&rng, o.seed);
    tg_model *m = NULL;
    BENCH_OK(cnn_model_new(&m, o.dt, o.bn));
    BENCH_OK(tg_model_init(m, &rng));
    if (o.load) BENCH_OK(tg_safetensors_load(m, o.load));
    train(m, &o, &tr, &te, &rng);
    FILE *f = o.logits ? fopen(o.logits, "wb") : NULL;
    if (o.logits && !f) {
        fprintf(stderr, "bench_cnn: cannot write %s\n", o.logits);
        return 2;
    }
    printf("test: accuracy=%.4f\n", evaluate(m, &te, o.dt, f));
    if (f && fclose(f) != 0) {
        fprintf(stderr, "bench_cnn: cannot write %s\n", o.logits);
        return 2;
    }
    if (o.save) BENCH_OK(tg_safetensors_save(m, o.save));
    tg_model_free(m);
    tg_dataset_free(&tr), tg_dataset_free(&te);
    return 0;
}
