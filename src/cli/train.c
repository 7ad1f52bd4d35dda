/* fit, eval, predict, graph: the seed's keras/sklearn workflow (001 §1.4,
 * §3.3) from the command line: read a table, standardise, split, fit,
 * evaluate; any model of layers (--layers, or an MLP from --hidden). */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what) {
    fprintf(stderr, "tapegrad: %s%s\n", what ? what : "", what ? "" : tg_last_error());
    return EXIT_DATA;
}

int cli_load(const char *spec, const cli_opts *o, tg_dtype dt, tg_dataset *ds) {
    memset(ds, 0, sizeof *ds);
    tg_csv_options opt = tg_csv_defaults();
    opt.label_col = o->label;
    opt.header = (tg_csv_header)o->header;
    opt.dtype = dt; /* a cell the model's dtype cannot hold is bad data, not NaN losses */
    tg_status s = strncmp(spec, "idx:", 4) == 0 ? tg_idx_load(spec + 4, ds)
                                                : tg_csv_load_opts(spec, &opt, ds);
    if (s) fprintf(stderr, "tapegrad: %s\n", tg_last_error());
    if (!s && opt.note[0]) fprintf(stderr, "tapegrad: %s\n", opt.note);
    return s == TG_OK;
}

/* --save, --plot, --log: a folder that cannot take the file fails now,
 * not after the whole run (issue 12 §5). */
static int outputs_writable(const cli_opts *o) {
    const char *outs[] = {o->save, o->plot, o->log};
    for (int i = 0; i < 3; i++)
        if (outs[i] && tg_write_check(outs[i])) return fail(NULL), 0;
    return 1;
}

/* ---------------------------------------------------------------- batches */

/* Input and target tensors for `rows` examples, made once and refilled. */
typedef struct batch {
    tg_tensor *x, *y;
    double *labels; /* the batch's targets, for the metrics */
    size_t rows;
} batch;

static void batch_free(batch *b) {
    tg_tensor_free(b->x);
    tg_tensor_free(b->y);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

/* x is rows × the model's example shape (N×C×H×W for a CNN). */
static tg_status batch_new(batch *b, const cli_model *cm, size_t rows) {
    const tg_model *m = cm->m;
    size_t shape[TG_MAX_RANK] = {rows};
    memcpy(shape + 1, m->in_shape, sizeof(size_t) * (size_t)m->in_rank);
    memset(b, 0, sizeof *b);
    b->rows = rows;
    if (!rows) return TG_OK; /* a rank's share of a last batch smaller than the rank count */
    tg_status s = tg_tensor_new(&b->x, m->dtype, m->in_rank + 1, shape);
    if (!s && cm->loss == TG_LOSS_CE)
        s = tg_tensor_new(&b->y, m->dtype, 1, &rows);
    else if (!s)
        s = tg_tensor_new(&b->y, m->dtype, 2, (size_t[]){rows, 1});
    b->labels = malloc(rows * sizeof *b->labels);
    if (!s && !b->labels) s = TG_ERR_NOMEM;
    if (s) batch_free(b);
    return s;
}

static tg_status batch_load(batch *b, const tg_dataset *ds, const size_t *idx, size_t start) {
    for (size_t i = 0; i < b->rows; i++)
        b->labels[i] = ds->y[idx[start + i]];
    return tg_batch_fill(ds, idx, start, b->rows, b->x, b->y);
}

/* Full-size batches plus one for the remainder (PyTorch keeps the last,
 * smaller batch): both allocated before the loop. */
typedef struct batches {
    batch full, last;
    size_t size;
} batches;

/* shard: training under mpirun, this rank's share of each global batch. */
static tg_status batches_new(batches *bs, const cli_model *m, size_t n, size_t size, int shard) {
    memset(bs, 0, sizeof *bs);
    bs->size = size < n ? size : n;
    tg_status s = batch_new(&bs->full, m, shard ? cli_dist_rows(bs->size) : bs->size);
    if (!s && n % bs->size)
        s = batch_new(&bs->last, m, shard ? cli_dist_rows(n % bs->size) : n % bs->size);
    return s;
}

static void batches_free(batches *bs) {
    batch_free(&bs->full);
    batch_free(&bs->last);
}

static batch *batch_at(batches *bs, size_t start, size_t n) {
    return n - start >= bs->size ? &bs->full : &bs->last;
}

/* ---------------------------------------------------------------- evaluation */

/* A regression target standardised by --standardize: y' = (y − mean)/std
 * during training; errors are scaled back by std so that RMSE and MAE are
 * in the target's units (R² does not change under the affine map). Set in
 * cmd_fit while training, 1 otherwise (after training, and in eval and
 * predict, the model's y_mean/y_std map its outputs to the target's
 * units). */
static double target_std = 1.0;

/* Sums over the examples seen so far: the objective, right classes, and
 * for a regression the squared and absolute errors. */
typedef struct sums {
    double loss, right, sse, sae;
} sums;

/* A regression's value for output r: in the target's units. */
static double value_of(const cli_model *m, const tg_tensor *out, size_t r) {
    return tg_get(out, r) * m->y_std + m->y_mean;
}

/* The loss of a regression is the mean squared error of the values (in
 * the target's units, as the targets), the same as mse's cost when
 * y_mean/y_std are the identity. */
static void sums_add(sums *a, const cli_model *m, const tg_tensor *logits, const tg_tensor *cost,
                     const batch *b) {
    if (m->loss != TG_LOSS_MSE) {
        a->loss += tg_get(cost, 0) * (double)b->rows;
        a->right += tg_accuracy(logits, b->labels, b->rows) * (double)b->rows;
        return;
    }
    for (size_t r = 0; r < b->rows; r++) { /* mse models have one output */
        double e = value_of(m, logits, r) - b->labels[r];
        a->sse += e * e;
        a->sae += fabs(e);
    }
    a->loss = a->sse;
}

/* The targets' mean and their sum of squares about it (two passes). */
static double target_ss(const tg_dataset *ds, double *mean) {
    double mu = 0, ss = 0;
    for (size_t i = 0; i < ds->n; i++)
        mu += ds->y[i];
    mu /= (double)ds->n;
    for (size_t i = 0; i < ds->n; i++)
        ss += (ds->y[i] - mu) * (ds->y[i] - mu);
    *mean = mu;
    return ss;
}

/* R² as sklearn's r2_score: 1 − SSE/SST, SST about the set's own mean;
 * NaN for a constant target. */
static double r2_of(double sse, const tg_dataset *ds) {
    double mean, sst = target_ss(ds, &mean);
    return sst > 0 ? 1 - sse / sst : NAN;
}

static scores sums_scores(const sums *a, const cli_model *m, const tg_dataset *ds) {
    double n = (double)ds->n;
    scores s = {a->loss / n, NAN, NAN, NAN, NAN};
    if (m->loss != TG_LOSS_MSE) {
        s.acc = a->right / n;
    } else {
        s.rmse = sqrt(a->sse / n) * target_std;
        s.mae = a->sae / n * target_std;
        s.r2 = r2_of(a->sse, ds);
    }
    return s;
}

static size_t *identity(size_t n) {
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    for (size_t i = 0; idx && i < n; i++)
        idx[i] = i;
    return idx;
}

/* Mean cost and accuracy over a whole dataset, in batches, in eval mode
 * (batch norm's running statistics, no dropout). */
static tg_status evaluate(const cli_model *m, const tg_dataset *ds, size_t size, scores *out) {
    tg_tape *t = NULL;
    batches bs;
    size_t *idx = identity(ds->n);
    tg_status s = idx ? tg_tape_new(&t) : TG_ERR_NOMEM;
    if (!s) s = batches_new(&bs, m, ds->n, size, 0);
    sums acc = {0};
    for (size_t start = 0; !s && start < ds->n; start += bs.size) {
        batch *b = batch_at(&bs, start, ds->n);
        tg_tensor *logits, *cost;
        s = batch_load(b, ds, idx, start);
        if (!s) s = tg_model_forward(t, m->m, b->x, 0, NULL, &logits);
        if (!s) s = cli_model_cost(t, m, logits, b->y, &cost);
        if (s) break;
        sums_add(&acc, m, logits, cost, b);
        tg_tape_reset(t);
    }
    if (!s) *out = sums_scores(&acc, m, ds);
    batches_free(&bs);
    tg_tape_free(t);
    free(idx);
    return s;
}

static void print_scores(const char *name, const scores *s) {
    if (isnan(s->acc))
        printf("%s: loss=%.6f rmse=%.6g mae=%.6g r2=%.6f\n", name, s->loss, s->rmse, s->mae, s->r2);
    else
        printf("%s: loss=%.6f accuracy=%.4f\n", name, s->loss, s->acc);
}

/* ---------------------------------------------------------------- fit */

typedef struct fit_data {
    tg_dataset all, extra_test, train, val, test;
} fit_data;

static void fit_data_free(fit_data *d) {
    tg_dataset_free(&d->all);
    tg_dataset_free(&d->extra_test);
    tg_dataset_free(&d->train);
    tg_dataset_free(&d->val);
    tg_dataset_free(&d->test);
}

/* --loss auto: bce for two classes, ce for more, mse for non-integer labels;
 * with --layers (n_out > 0: the last layer's width), bce or mse for one
 * output and ce for several. */
static int choose_loss(const cli_opts *o, const fit_data *d, size_t *n_out) {
    int classes = tg_dataset_classes(&d->all);
    int test_classes = d->extra_test.n ? tg_dataset_classes(&d->extra_test) : classes;
    if (test_classes > classes) classes = test_classes;
    int loss = o->loss >= 0   ? o->loss
               : classes == 0 ? TG_LOSS_MSE
               : *n_out       ? (*n_out == 1 ? TG_LOSS_BCE : TG_LOSS_CE)
               : classes <= 2 ? TG_LOSS_BCE
                              : TG_LOSS_CE;
    if (loss != TG_LOSS_MSE && classes == 0) {
        fprintf(stderr, "tapegrad: --loss %s needs integer class labels; %s has other values\n",
                tg_loss_name((tg_loss_kind)loss), o->data);
        return -1;
    }
    if (loss == TG_LOSS_BCE && classes > 2) {
        fprintf(stderr, "tapegrad: --loss bce needs labels 0/1; %s has %d classes\n", o->data,
                classes);
        return -1;
    }
    size_t want = loss == TG_LOSS_CE ? (size_t)(classes < 2 ? 2 : classes) : 1;
    if (*n_out && (loss == TG_LOSS_CE ? *n_out < want : *n_out != 1)) {
        fprintf(stderr,
                "tapegrad: the last layer gives %zu outputs; loss %s on %s needs %s%zu (%d "
                "classes)\n",
                *n_out, tg_loss_name((tg_loss_kind)loss), o->data,
                loss == TG_LOSS_CE ? "at least " : "", want, classes);
        return -1;
    }
    if (!*n_out) *n_out = want;
    return loss;
}

/* Load, choose the loss from all labels, split (a --test-data file replaces
 * the test split). */
static int prepare(const cli_opts *o, fit_data *d) {
    memset(d, 0, sizeof *d);
    if (!cli_load(o->data, o, o->dtype, &d->all)) return 0;
    if (o->test_data && !cli_load(o->test_data, o, o->dtype, &d->extra_test)) return 0;
    if (o->test_data && d->extra_test.d != d->all.d) {
        fprintf(stderr, "tapegrad: %s has %zu features, %s has %zu\n", o->test_data,
                d->extra_test.d, o->data, d->all.d);
        return 0;
    }
    tg_status s = tg_dataset_split(&d->all, o->val, o->test, o->seed, &d->train,
                                   o->val > 0 ? &d->val : NULL, o->test > 0 ? &d->test : NULL);
    if (s) return fail(NULL), 0;
    if (o->test_data) {
        tg_dataset_free(&d->test);
        d->test = d->extra_test;
        memset(&d->extra_test, 0, sizeof d->extra_test);
    }
    return 1;
}

/* y := (y − mean)/std, or back (sign −1), on every split. */
static void target_apply(fit_data *d, double mean, double std, int sign) {
    tg_dataset *sets[] = {&d->train, &d->val, &d->test};
    for (int i = 0; i < 3; i++)
        for (size_t k = 0; k < sets[i]->n; k++)
            sets[i]->y[k] = sign > 0 ? (sets[i]->y[k] - mean) / std : sets[i]->y[k] * std + mean;
}

/* A regression target's mean and population std (1 if constant, as
 * sklearn's StandardScaler) over the training split. */
static void target_fit(const tg_dataset *ds, double *mean, double *std) {
    double sd = sqrt(target_ss(ds, mean) / (double)ds->n);
    *std = sd > 0 && isfinite(sd) ? sd : 1;
}

static int standardize(cli_model *cm, fit_data *d, double *y_mean) {
    tg_model *m = cm->m;
    m->n_stats = cm->n_in;
    m->mean = malloc(m->n_stats * sizeof(double));
    m->std = malloc(m->n_stats * sizeof(double));
    if (!m->mean || !m->std || tg_standardize_fit(&d->train, m->mean, m->std)) return 0;
    tg_dataset *sets[] = {&d->train, &d->val, &d->test};
    for (int i = 0; i < 3; i++)
        if (sets[i]->n) tg_standardize_apply(sets[i], m->mean, m->std);
    if (cm->loss == TG_LOSS_MSE) {
        target_fit(&d->train, y_mean, &target_std);
        target_apply(d, *y_mean, target_std, 1);
    }
    return 1;
}

/* The target's statistics go into the model's metadata (target_mean,
 * target_std; eval and predict give output·std + mean), and the splits are
 * put back in the original units. */
static void unstandardize_target(cli_model *m, fit_data *d, int standardized, double mean) {
    if (m->loss != TG_LOSS_MSE || !standardized) return;
    m->y_mean = mean, m->y_std = target_std;
    target_apply(d, mean, target_std, -1);
    target_std = 1.0;
}

/* A training loss that is NaN or infinite stops the run (as Keras's
 * TerminateOnNaN): every step after it would only spread the NaN through
 * the weights, and the model must not be saved over the user's last good
 * file. Before the update, so the weights are those of the last good step.
 * The message goes to stop_msg (the library's error is not ours to set). */
static char stop_msg[256];
static tg_status finite_loss(double loss, int e, size_t start, size_t rows) {
    if (isfinite(loss)) return TG_OK;
    snprintf(stop_msg, sizeof stop_msg,
             "fit: the training loss is %s at epoch %d, examples %zu..%zu of the shuffled order; "
             "lower --lr, try --standardize, or find the op with --detect-anomaly",
             isnan(loss) ? "nan" : "inf", e, start + 1, start + rows);
    return TG_ERR_NUMERIC;
}

/* One epoch of shuffled mini-batches; fills the training loss and accuracy. */
/* drop: dropout's generator, apart from the shuffling's so that a model
 * without dropout shuffles as before. */
static tg_status epoch(const cli_opts *o, int e, cli_model *m, tg_optimizer *opt, tg_tape *t,
                       batches *bs, const tg_dataset *ds, size_t *idx, tg_rng *rng, tg_rng *drop,
                       epoch_row *row) {
    tg_shuffle(idx, ds->n, rng);
    double t0 = now(), shown = 0;
    sums acc = {0};
    tg_status s = TG_OK;
    size_t mine = 0; /* examples seen by this rank (all of them in one process) */
    for (size_t start = 0; !s && start < ds->n; start += bs->size) {
        batch *b = batch_at(bs, start, ds->n);
        size_t rows = ds->n - start < bs->size ? ds->n - start : bs->size; /* global batch */
        tg_tensor *logits = NULL, *cost = NULL;
        double loss = 0;
        if (b->rows) {
            s = batch_load(b, ds, idx, start + cli_dist_first(rows));
            if (!s) s = tg_model_forward(t, m->m, b->x, 1, drop, &logits);
            if (!s) s = cli_model_cost(t, m, logits, b->y, &cost);
            if (!s) loss = tg_get(cost, 0);
            if (!s) s = tg_backward(t, cost);
        }
        if (!s) s = cli_dist_grads(b->rows, rows, &loss); /* mpirun: the global batch's */
        if (!s) s = finite_loss(loss, e, start, rows);
        if (!s) s = tg_optimizer_step(opt);
        if (s) break;
        if (b->rows) sums_add(&acc, m, logits, cost, b);
        tg_tape_reset(t);
        size_t done = start + rows;
        mine += b->rows;
        if (now() - shown > 0.1 || done == ds->n) {
            shown = now();
            int reg = m->loss == TG_LOSS_MSE;
            double metric =
                reg ? sqrt(acc.sse / (double)mine) * target_std : acc.right / (double)mine;
            progress_update(e, o->epochs, done, ds->n, acc.loss / (double)mine,
                            reg ? "rmse" : "acc", metric, (double)done / (shown - t0));
        }
    }
    if (!s) s = cli_dist_sum(&acc.loss, &acc.right, &acc.sse, &acc.sae); /* over ranks */
    row->train = sums_scores(&acc, m, ds);
    row->seconds = now() - t0;
    return s;
}

/* fit's evaluation batch: 1024 as before for narrow models, but no layer's
 * output for the batch above 4M values (16 MB in float32): at 1024 examples
 * the Fashion CNN's first convolution gives 22M values, and `eval` peaked
 * at 0.5 GB (134 MB at batch 128; /usr/bin/time's maximum RSS). */
static size_t eval_batch(const cli_model *m) {
    size_t widest = 1;
    for (int i = 0; i < m->m->n_layers; i++) {
        const tg_layer *l = &m->m->layers[i];
        size_t n = 1;
        for (int a = 0; a < l->out_rank; a++)
            n *= l->out_shape[a];
        widest = n > widest ? n : widest;
    }
    size_t b = ((size_t)1 << 22) / widest;
    return b < 64 ? 64 : b > 1024 ? 1024 : b;
}

static const char *held_name(const fit_data *d) {
    return d->val.n ? "val" : d->test.n ? "test" : NULL;
}

static int train(const cli_opts *o, cli_model *m, fit_data *d, epoch_row *rows) {
    int np = tg_model_params(m->m, NULL, NULL, 0);
    tg_tensor **params = malloc((size_t)(np ? np : 1) * sizeof *params);
    if (params) tg_model_params(m->m, params, NULL, np);
    tg_opt_config cfg = tg_opt_defaults((tg_opt_kind)o->opt);
    if (o->lr > 0) cfg.lr = o->lr;
    tg_optimizer *opt = NULL;
    tg_tape *t = NULL;
    batches bs;
    memset(&bs, 0, sizeof bs);
    size_t *idx = identity(d->train.n);
    tg_rng rng, drop;
    tg_rng_seed(&rng, o->seed ^ 0x5eed);
    /* Under mpirun each rank draws its own dropout masks (rank 0: as one process). */
    tg_rng_seed(&drop, o->seed ^ 0xd209 ^ (unsigned long long)cli_dist_rank() << 32);
    tg_status s = idx && params ? tg_optimizer_new(&opt, &cfg, np, params) : TG_ERR_NOMEM;
    if (!s) s = tg_tape_new(&t);
    if (!s) s = cli_dist_attach(np, params); /* mpirun: equal shapes, rank 0's values */
    if (!s) tg_tape_detect_anomaly(t, o->detect_anomaly);
    if (!s) s = batches_new(&bs, m, d->train.n, o->batch, 1);
    /* The held-out curve: validation, or the test set when there is none
     * (shown, never used to choose anything). */
    const tg_dataset *held = d->val.n ? &d->val : d->test.n ? &d->test : NULL;
    for (int e = 0; !s && e < o->epochs; e++) {
        s = epoch(o, e + 1, m, opt, t, &bs, &d->train, idx, &rng, &drop, &rows[e]);
        scores v = {NAN, NAN, NAN, NAN, NAN};
        if (!s && held) s = evaluate(m, held, eval_batch(m), &v);
        rows[e].held = v;
        if (!s) progress_epoch_end(e + 1, o->epochs, &rows[e], held_name(d));
    }
    if (s) fail(stop_msg[0] ? stop_msg : NULL);
    batches_free(&bs);
    tg_tape_free(t);
    tg_optimizer_free(opt);
    free(idx);
    free(params);
    return s == TG_OK;
}

/* --threads N: tapegrad's pool of N threads (OpenBLAS then on one); by
 * default one per online CPU, as PyTorch does. */
static int set_threads(int n) {
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus < 1 ? 1 : cpus > TG_MAX_THREADS ? TG_MAX_THREADS : (int)cpus;
    }
    return tg_set_threads(n) ? fail(NULL) : 0;
}

static int fit_report(const cli_opts *o, cli_model *m, const fit_data *d, epoch_row *rows) {
    cli_dist_unwatch();
    scores sc;
    const tg_dataset *final = d->test.n ? &d->test : d->val.n ? &d->val : &d->train;
    if (evaluate(m, final, eval_batch(m), &sc)) return fail(NULL);
    print_scores(d->test.n ? "test" : d->val.n ? "validation" : "train", &sc);
    if (o->save && (!cli_model_set_task(m) || tg_model_save(m->m, o->save))) return fail(NULL);
    if (o->plot && !report_svg(o->plot, rows, o->epochs, held_name(d))) return EXIT_DATA;
    if (o->log && !report_csv(o->log, rows, o->epochs, held_name(d))) return EXIT_DATA;
    return 0;
}

/* --hidden keeps tg_mlp's initialisation, so that MLP runs keep their
 * results: He normal before relu/leaky relu, Xavier uniform otherwise, drawn
 * in tg_mlp's in×out order and stored transposed (PyTorch's out×in); zero
 * biases. --layers gets PyTorch's defaults (tg_model_init). */
static tg_status mlp_init(tg_model *m, tg_act act, tg_rng *rng) {
    tg_status s = TG_OK;
    for (int i = 0; !s && i < m->n_layers; i++) {
        tg_layer *l = &m->layers[i];
        if (strcmp(l->kind->name, "dense")) continue;
        tg_tensor *w = l->tensors[0].t, *tmp = NULL;
        size_t out = w->shape[0], in = w->shape[1];
        int last = i == m->n_layers - 1, he = act == TG_ACT_RELU || act == TG_ACT_LEAKY_RELU;
        s = tg_tensor_new(&tmp, m->dtype, 2, (size_t[]){in, out});
        if (!s)
            s = tg_init_fill(tmp, !last && he ? TG_INIT_HE_NORMAL : TG_INIT_XAVIER_UNIFORM, in, out,
                             rng);
        for (size_t r = 0; !s && r < in; r++)
            for (size_t c = 0; c < out; c++)
                tg_set(w, c * in + r, tg_get(tmp, r * out + c));
        tg_tensor_free(tmp);
    }
    return s;
}

/* The model: from --layers for the data's example shape, or the MLP of
 * --hidden for flat examples; then its loss from the data and its outputs. */
static int make_model(const cli_opts *o, fit_data *d, cli_model *cm, tg_rng *rng) {
    int rank;
    size_t shape[TG_MAX_RANK], n_out = 0;
    if (o->layers) {
        if (!cli_input_shape(o, &d->all, &rank, shape)) return 0;
        if (!cli_model_build(cm, o->layers, o->dtype, rank, shape, 1)) return EXIT_USAGE;
        n_out = cm->n_out;
    }
    int loss = choose_loss(o, d, &n_out);
    if (loss < 0) return 0;
    if (!o->layers) {
        cli_layers *L = malloc(sizeof *L);
        if (!L) return fail("out of memory"), 0;
        cli_layers_mlp(L, o->n_hidden, o->hidden, (tg_act)o->act, n_out);
        int ok = cli_model_build(cm, L, o->dtype, 1, &d->all.d, 1);
        free(L);
        if (!ok) return 0;
    }
    const char *last = cm->m->layers[cm->m->n_layers - 1].kind->name;
    if (o->layers && (!strcmp(last, "softmax") || !strcmp(last, "log_softmax") ||
                      (!strcmp(last, "sigmoid") && loss != TG_LOSS_MSE)))
        fprintf(stderr,
                "tapegrad: note: the loss takes logits (as PyTorch's CrossEntropyLoss and "
                "BCEWithLogitsLoss); the last layer, %s, is usually left out\n",
                last);
    cm->loss = (tg_loss_kind)loss;
    cm->n_classes = loss == TG_LOSS_CE ? (int)n_out : loss == TG_LOSS_BCE ? 2 : 0;
    tg_status s = o->layers ? tg_model_init(cm->m, rng) : mlp_init(cm->m, (tg_act)o->act, rng);
    return s ? fail(NULL), 0 : 1;
}

int cmd_fit(const cli_opts *o) {
    cli_opts dist_o; /* under mpirun, each rank's copy */
    if (!(o = cli_dist_start(o, &dist_o))) return cli_dist_end(EXIT_DATA);
    if (!outputs_writable(o) || set_threads(o->threads)) return cli_dist_end(EXIT_DATA);
    fit_data d;
    cli_model m;
    epoch_row *rows = calloc((size_t)o->epochs, sizeof *rows);
    int rc = EXIT_DATA, made = 0;
    memset(&d, 0, sizeof d);
    memset(&m, 0, sizeof m);
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    if (rows && prepare(o, &d) && (made = make_model(o, &d, &m, &rng)) == 1) {
        char in[96];
        size_t n = 0;
        for (int a = 0; a < m.m->in_rank && n < sizeof in; a++)
            n += (size_t)snprintf(in + n, sizeof in - n, a ? "x%zu" : "%zu", m.m->in_shape[a]);
        printf("fit: %zu train, %zu validation, %zu test examples; %zu features (input %s); "
               "loss %s; %zu outputs; %d layers, %zu parameters\n",
               d.train.n, d.val.n, d.test.n, d.all.d, in, tg_loss_name(m.loss), m.n_out,
               m.m->n_layers, tg_model_param_count(m.m));
        double y_mean = 0;
        target_std = 1.0;
        if (o->standardize && !standardize(&m, &d, &y_mean))
            fail(NULL);
        else if (train(o, &m, &d, rows)) {
            unstandardize_target(&m, &d, o->standardize, y_mean);
            rc = fit_report(o, &m, &d, rows);
        }
    }
    if (made == EXIT_USAGE) rc = EXIT_USAGE;
    cli_model_free(&m);
    fit_data_free(&d);
    free(rows);
    return cli_dist_end(rc);
}

/* ---------------------------------------------------------------- eval, predict */

/* Load MODEL and DATA; check they fit; standardise with the model's stats. */
static int load_pair(const cli_opts *o, cli_model *m, tg_dataset *ds) {
    memset(ds, 0, sizeof *ds);
    if (!cli_model_load(o->model, m)) return 0;
    if (!cli_load(o->data, o, m->m->dtype, ds)) return 0;
    if (ds->d != m->n_in) {
        fprintf(stderr, "tapegrad: %s has %zu features, the model %s expects %zu\n", o->data, ds->d,
                o->model, m->n_in);
        return 0;
    }
    if (m->m->mean && m->m->std) tg_standardize_apply(ds, m->m->mean, m->m->std);
    return 1;
}

/* Labels the model cannot score (a class it does not have) are a data error. */
static int labels_fit(const cli_model *m, const tg_dataset *ds, const char *path) {
    if (m->loss == TG_LOSS_MSE) return 1;
    for (size_t i = 0; i < ds->n; i++) {
        double y = ds->y[i];
        if (!(y >= 0 && y < m->n_classes && y == floor(y))) {
            fprintf(stderr,
                    "tapegrad: %s: example %zu has label %g, not a class of the model "
                    "(0..%d)\n",
                    path, i + 1, y, m->n_classes - 1);
            return 0;
        }
    }
    return 1;
}

int cmd_eval(const cli_opts *o) {
    if (set_threads(o->threads)) return EXIT_DATA;
    cli_model m;
    tg_dataset ds;
    scores sc;
    int rc = EXIT_DATA;
    if (load_pair(o, &m, &ds) && labels_fit(&m, &ds, o->data)) {
        if (evaluate(&m, &ds, o->batch, &sc))
            fail(NULL);
        else
            print_scores("test", &sc), rc = 0;
    }
    cli_model_free(&m);
    tg_dataset_free(&ds);
    return rc;
}

/* One line per example: the class (and for bce its probability) or the value. */
static void print_predictions(const cli_model *m, const tg_tensor *logits) {
    size_t rows = logits->shape[0], c = logits->shape[1];
    for (size_t r = 0; r < rows; r++) {
        if (m->loss == TG_LOSS_MSE) {
            printf("%.9g\n", value_of(m, logits, r));
        } else if (m->loss == TG_LOSS_BCE) {
            double z = tg_get(logits, r);
            printf("%d %.6f\n", z > 0, 1 / (1 + exp(-z)));
        } else {
            size_t best = 0;
            for (size_t j = 1; j < c; j++)
                if (tg_get(logits, r * c + j) > tg_get(logits, r * c + best)) best = j;
            printf("%zu\n", best);
        }
    }
}

int cmd_predict(const cli_opts *o) {
    cli_model m;
    tg_dataset ds;
    int rc = EXIT_DATA;
    if (load_pair(o, &m, &ds)) {
        tg_tape *t = NULL;
        batches bs;
        memset(&bs, 0, sizeof bs);
        size_t *idx = identity(ds.n);
        tg_status s = idx ? tg_tape_new(&t) : TG_ERR_NOMEM;
        if (!s) s = batches_new(&bs, &m, ds.n, o->batch, 0);
        for (size_t start = 0; !s && start < ds.n; start += bs.size) {
            batch *b = batch_at(&bs, start, ds.n);
            tg_tensor *logits;
            s = batch_load(b, &ds, idx, start);
            if (!s) s = tg_model_forward(t, m.m, b->x, 0, NULL, &logits);
            if (!s) print_predictions(&m, logits);
            tg_tape_reset(t);
        }
        rc = s ? fail(NULL) : 0;
        batches_free(&bs);
        tg_tape_free(t);
        free(idx);
    }
    cli_model_free(&m);
    tg_dataset_free(&ds);
    return rc;
}

/* ---------------------------------------------------------------- graph */

int cmd_graph(const cli_opts *o) {
    cli_model m;
    if (!cli_model_load(o->model, &m)) return EXIT_DATA;
    tg_tape *t = NULL;
    batch b;
    memset(&b, 0, sizeof b);
    tg_tensor *logits, *cost;
    tg_status s = tg_tape_new(&t);
    if (!s) s = batch_new(&b, &m, 1); /* one zero example: the graph, not the numbers */
    if (!s) s = tg_model_forward(t, m.m, b.x, 0, NULL, &logits);
    if (!s) s = cli_model_cost(t, &m, logits, b.y, &cost);
    if (!s) s = tg_tape_dot(t, stdout);
    int rc = s ? fail(NULL) : 0;
    batch_free(&b);
    tg_tape_free(t);
    cli_model_free(&m);
    return rc;
}
