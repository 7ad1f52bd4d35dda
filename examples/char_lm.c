/* A character-level language model on the fortunes corpus (issue 17).
 *
 *   corpus  every file of /usr/share/games/fortunes (Debian's `fortunes`)
 *           that is neither a .dat file nor a symbolic link, concatenated
 *           in sorted name order; bytes are the tokens (vocabulary 256);
 *           the first 90 % trains, the last 10 % validates.
 *   lstm    embedding 64 → one LSTM layer of 256 → linear head to 256
 *   gpt     token embedding + learned positions (d = 128) → 2 pre-LN
 *           transformer blocks with 4 heads → layer norm → linear head to
 *           256 (the kinds pos_embedding and transformer_block)
 *   recipe  Adam lr 1e-3, batches of 32 windows of 64 bytes drawn uniformly
 *           from the training split, next-byte cross-entropy at every
 *           position, 2000 steps.
 *
 *   char_lm [--model lstm|gpt] [--steps N] [--threads N] [--seed S]
 *           [--temperature T] [--prompt TEXT] [--corpus DIR] [--sample N]
 *
 * Prints the training loss every 100 steps, then one line
 *   valid: bpc=<bits per char> tokens/s=<training tokens per second> ...
 * (bits per character: the mean cross-entropy over 64 fixed validation
 * batches, / ln 2; the windows start at evenly spaced offsets of the
 * validation split, the same ones as benches/torch_charlm.py), and a
 * sample of 300 characters continuing the prompt.
 *
 * The head runs on the N·T positions as one (N·T)×H batch (a reshape around
 * a dense model), so it works whether or not dense takes N×T×H. */
#define _DEFAULT_SOURCE /* dirent's d_type is not needed, but lstat is */

#include "tapegrad.h"
#include "tapegrad_nn.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { BATCH = 32, SEQ = 64, VOCAB = 256, VAL_BATCHES = 64, PRINT_EVERY = 100 };

typedef struct opts {
    const char *model, *prompt, *corpus;
    int steps, threads, sample;
    unsigned long long seed;
    double temperature;
} opts;

/* ---------------------------------------------------------------- the corpus */

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int wanted(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    size_t n = strlen(name);
    if (name[0] == '.' || (n >= 4 && strcmp(name + n - 4, ".dat") == 0)) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode); /* not a symlink, not a folder */
}

/* The files' bytes, concatenated in sorted name order; *len their count. */
static unsigned char *load_corpus(const char *dir, size_t *len) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "char_lm: cannot open %s (install Debian's fortunes package)\n", dir);
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0, total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!wanted(dir, e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    unsigned char *buf = NULL;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        struct stat st;
        if (f && fstat(fileno(f), &st) == 0) {
            unsigned char *nb = realloc(buf, total + (size_t)st.st_size + 1);
            if (nb) buf = nb, total += fread(buf + total, 1, (size_t)st.st_size, f);
        }
        if (f) fclose(f);
        free(names[i]);
    }
    free(names);
    if (total < 10 * (SEQ + 1)) {
        fprintf(stderr, "char_lm: %s holds %zu bytes, too few\n", dir, total);
        free(buf);
        return NULL;
    }
    *len = total;
    return buf;
}

/* ---------------------------------------------------------------- the model */

typedef struct lm {
    tg_model *body; /* ids N×T → N×T×H */
    tg_model *head; /* (N·T)×H → (N·T)×256 */
    size_t width;   /* H */
} lm;

static tg_status lm_new(lm *m, const char *kind, tg_rng *rng) {
    static const tg_layer_spec lstm[] = {{.kind = "embedding", .i = {VOCAB, 64}},
                                         {.kind = "lstm", .i = {256}}};
    static const tg_layer_spec gpt[] = {{.kind = "embedding", .i = {VOCAB, 128}},
                                        {.kind = "pos_embedding", .i = {SEQ, 128}},
                                        /* d_model 128, 4 heads, i2 = 1: the causal mask */
                                        {.kind = "transformer_block", .i = {128, 4, 1}},
                                        {.kind = "transformer_block", .i = {128, 4, 1}},
                                        {.kind = "layer_norm"}};
    int is_gpt = strcmp(kind, "gpt") == 0;
    m->width = is_gpt ? 128 : 256;
    static const tg_layer_spec head = {.kind = "dense", .i = {VOCAB}};
    tg_status s =
        tg_model_new(&m->body, TG_F32, 1, (size_t[]){SEQ}, is_gpt ? 5 : 2, is_gpt ? gpt : lstm);
    if (!s) s = tg_model_new(&m->head, TG_F32, 1, &m->width, 1, &head);
    if (!s) s = tg_model_init(m->body, rng);
    if (!s) s = tg_model_init(m->head, rng);
    return s;
}

/* Logits (N·T)×256 for ids N×T. */
static tg_status lm_forward(tg_tape *t, const lm *m, const tg_tensor *ids, int train,
                            tg_tensor **logits) {
    tg_tensor *h;
    tg_status s = tg_model_forward(t, m->body, ids, train, NULL, &h);
    if (!s) s = tg_reshape(t, h, 2, (long[]){(long)(ids->size), (long)m->width}, &h);
    return s ? s : tg_model_forward(t, m->head, h, train, NULL, logits);
}

static tg_status lm_loss(tg_tape *t, const lm *m, const tg_tensor *ids, const tg_tensor *next,
                         int train, tg_tensor **loss) {
    tg_tensor *logits;
    tg_status s = lm_forward(t, m, ids, train, &logits);
    return s ? s : tg_cross_entropy(t, logits, next, -100, 0.0, TG_REDUCTION_MEAN, loss);
}

/* Window b of the batch: ids text[start .. start+T), targets one later. */
static void put_window(tg_tensor *ids, tg_tensor *next, size_t b, const unsigned char *text,
                       size_t start) {
    float *x = ids->data, *y = next->data;
    for (size_t k = 0; k < SEQ; k++)
        x[b * SEQ + k] = text[start + k], y[b * SEQ + k] = text[start + k + 1];
}

/* Validation: 64 batches of 32 windows starting at evenly spaced offsets
 * k·(len − T − 1)/(2048 − 1), k = 0..2047 (benches/torch_charlm.py uses the
 * same); bits per character = the mean cross-entropy / ln 2. */
static tg_status validate(tg_tape *t, const lm *m, const unsigned char *val, size_t len,
                          tg_tensor *ids, tg_tensor *next, double *bpc) {
    double sum = 0;
    const size_t windows = (size_t)VAL_BATCHES * BATCH, span = len - SEQ - 1;
    for (size_t b = 0; b < VAL_BATCHES; b++) {
        for (size_t r = 0; r < BATCH; r++) {
            size_t k = b * BATCH + r;
            put_window(ids, next, r, val,
                       (size_t)((double)k * (double)span / (double)(windows - 1)));
        }
        tg_tensor *loss;
        tg_tape_reset(t);
        tg_status s = lm_loss(t, m, ids, next, 0, &loss);
        if (s) return s;
        sum += tg_get(loss, 0);
    }
    *bpc = sum / VAL_BATCHES / log(2.0);
    return TG_OK;
}

/* 300 characters after the prompt: each from the softmax of the logits at
 * the last position of the context (its last ≤ 64 bytes in positions
 * 0..L−1; both models are causal, so what follows position L−1 does not
 * matter), divided by the temperature. */
static tg_status sample(const lm *m, const opts *o, tg_rng *rng) {
    tg_tape *t = NULL;
    tg_tensor *ids = NULL;
    char ctx[4096];
    size_t n = strlen(o->prompt);
    if (n > sizeof ctx - (size_t)o->sample - 1) n = sizeof ctx - (size_t)o->sample - 1;
    memcpy(ctx, o->prompt, n);
    tg_status s = tg_tape_new(&t);
    if (!s) s = tg_tensor_new(&ids, TG_F32, 2, (size_t[]){1, SEQ});
    printf("sample (temperature %g):\n%.*s", o->temperature, (int)n, ctx);
    for (int c = 0; !s && c < o->sample; c++) {
        size_t L = n < SEQ ? n : SEQ, from = n - L;
        float *x = ids->data;
        for (size_t k = 0; k < SEQ; k++)
            x[k] = k < L ? (unsigned char)ctx[from + k] : ' ';
        tg_tensor *logits;
        tg_tape_reset(t);
        s = L ? lm_forward(t, m, ids, 0, &logits) : TG_OK;
        if (s) break;
        double p[VOCAB], mx = -INFINITY, z = 0;
        for (int v = 0; v < VOCAB; v++)
            p[v] = L ? tg_get(logits, (L - 1) * VOCAB + (size_t)v) / o->temperature : 0,
            mx = fmax(mx, p[v]);
        for (int v = 0; v < VOCAB; v++)
            z += p[v] = exp(p[v] - mx);
        double u = tg_rng_uniform(rng) * z;
        int pick = VOCAB - 1;
        for (int v = 0; v < VOCAB; v++)
            if ((u -= p[v]) < 0) {
                pick = v;
                break;
            }
        ctx[n++] = (char)pick;
        putchar(pick);
    }
    putchar('\n');
    tg_tensor_free(ids);
    tg_tape_free(t);
    return s;
}

/* ---------------------------------------------------------------- main */

/* Wall-clock seconds; and the process's CPU seconds (all its threads),
 * which a loaded machine disturbs less than the wall clock. */
static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) {
    return clock_s(CLOCK_MONOTONIC);
}

static int usage(void) {
    fprintf(stderr, "usage: char_lm [--model lstm|gpt] [--steps N] [--threads N] [--seed S]\n"
                    "               [--temperature T] [--prompt TEXT] [--corpus DIR] "
                    "[--sample N]\n"
                    "defaults: lstm, 2000 steps, 1 thread, seed 1, temperature 0.8, prompt "
                    "\"The \", /usr/share/games/fortunes, 300 characters\n");
    return 2;
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){"lstm", "The ", "/usr/share/games/fortunes", 2000, 1, 300, 1, 0.8};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return 0;
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--steps"))
            o->steps = atoi(v);
        else if (!strcmp(a, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--temperature"))
            o->temperature = atof(v);
        else if (!strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "--corpus"))
            o->corpus = v;
        else if (!strcmp(a, "--sample"))
            o->sample = atoi(v);
        else
            return 0;
    }
    return (!strcmp(o->model, "lstm") || !strcmp(o->model, "gpt")) && o->steps >= 0 &&
           o->threads >= 1 && o->threads <= TG_MAX_THREADS && o->temperature > 0 &&
           o->sample >= 0 && o->sample <= 2048;
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) return usage();
    if (!strcmp(o.model, "gpt") &&
        (!tg_layer_kind_find("pos_embedding") || !tg_layer_kind_find("transformer_block"))) {
        fprintf(stderr, "char_lm: --model gpt needs the layer kinds pos_embedding and "
                        "transformer_block, which this build of tapegrad lacks\n");
        return 2;
    }
    size_t len = 0;
    unsigned char *text = load_corpus(o.corpus, &len);
    if (!text) return 1;
    size_t n_train = len * 9 / 10, n_val = len - n_train;
    tg_rng rng;
    tg_rng_seed(&rng, o.seed);
    lm m = {0};
    tg_tape *t = NULL;
    tg_tensor *ids = NULL, *next = NULL, *loss, *params[32];
    tg_optimizer *opt = NULL;
    tg_opt_config cfg = tg_opt_defaults(TG_OPT_ADAM); /* lr 1e-3, PyTorch's betas and eps */
    tg_status s = tg_set_threads(o.threads);
    if (!s) s = lm_new(&m, o.model, &rng);
    int np = tg_model_params(m.body, params, NULL, 31);
    np += tg_model_params(m.head, params + np, NULL, 32 - np);
    if (!s) s = tg_optimizer_new(&opt, &cfg, np, params);
    if (!s) s = tg_tape_new(&t);
    if (!s) s = tg_tensor_new(&ids, TG_F32, 2, (size_t[]){BATCH, SEQ});
    if (!s) s = tg_tensor_new(&next, TG_F32, 1, (size_t[]){BATCH * SEQ});
    if (!s)
        printf("corpus: %zu bytes (%zu train, %zu valid); model %s, %zu parameters; %d "
               "thread(s)\n",
               len, n_train, n_val, o.model,
               tg_model_param_count(m.body) + tg_model_param_count(m.head), o.threads);
    double t_train = 0, cpu_train = 0, run = 0;
    for (int step = 1; !s && step <= o.steps; step++) {
        double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (size_t b = 0; b < BATCH; b++)
            put_window(ids, next, b, text,
                       (size_t)(tg_rng_uniform(&rng) * (double)(n_train - SEQ)));
        tg_tape_reset(t);
        s = lm_loss(t, &m, ids, next, 1, &loss);
        if (!s) s = tg_backward(t, loss);
        if (!s) s = tg_optimizer_step(opt);
        t_train += now() - t0, cpu_train += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (s) break;
        run += tg_get(loss, 0);
        if (step % PRINT_EVERY == 0 || step == o.steps) {
            int k = step % PRINT_EVERY ? step % PRINT_EVERY : PRINT_EVERY;
            printf("step %d: loss=%.4f (%.3f bpc) %.1f s\n", step, run / k, run / k / log(2.0),
                   t_train);
            fflush(stdout);
            run = 0;
        }
    }
    double bpc = 0, tps = o.steps ? (double)o.steps * BATCH * SEQ / t_train : 0;
    if (!s) s = validate(t, &m, text + n_train, n_val, ids, next, &bpc);
    if (!s)
        printf("valid: bpc=%.4f tokens/s=%.0f model=%s steps=%d threads=%d train_s=%.1f "
               "cpu_s=%.1f\n",
               bpc, tps, o.model, o.steps, o.threads, t_train, cpu_train);
    if (!s) s = sample(&m, &o, &rng);
    if (s) fprintf(stderr, "char_lm: %s: %s\n", tg_status_name(s), tg_last_error());
    tg_optimizer_free(opt);
    tg_tensor_free(ids);
    tg_tensor_free(next);
    tg_tape_free(t);
    tg_model_free(m.body);
    tg_model_free(m.head);
    free(text);
    return s ? 1 : 0;
}
