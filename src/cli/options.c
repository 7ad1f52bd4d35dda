/* Command-line options: every value is checked; a bad one is one line of
 * error, the usage, and exit status 2 (the caller's). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every option: the commands that read it (a mask of CMD_*), its value,
 * its default as the parser sets it (defaults() below), what it does. */
enum { FIT = 1, EVAL = 2, PREDICT = 4, GRADCHECK = 8, SUMMARY = 16, EXPORT = 32, IMPORT = 64 };

typedef struct opt_help {
    const char *name, *value, *def, *what;
    int cmds;
} opt_help;

static const opt_help options_help[] = {
    {"--test-data", "DATA", "none: split DATA", "a separate test set", FIT},
    {"--label", "last|first|N", "last", "the target column of a CSV", FIT | EVAL | PREDICT},
    {"--header", "auto|yes|no", "auto", "is a CSV's first line a header", FIT | EVAL | PREDICT},
    {"--layers", "\"ITEM; ITEM; ...\"", "none: an MLP from --hidden",
     "the model's layers (the grammar below)", FIT | SUMMARY | IMPORT},
    {"--input-shape", "C,H,W|D", "IDX images: 1,H,W; CSV: the features",
     "one example's shape, for --layers", FIT | SUMMARY | IMPORT},
    {"--hidden", "W1,W2,...|none", "64", "hidden layer widths (an MLP; without --layers)", FIT},
    {"--act", "relu|tanh|sigmoid|leaky_relu", "relu", "hidden activation of --hidden", FIT},
    {"--loss", "auto|bce|ce|mse", "auto",
     "bce: 2 classes (1 output), ce: more (or several outputs), mse: non-integer target",
     FIT | IMPORT},
    {"--opt", "sgd|momentum|nesterov|rmsprop|adam|adamw", "adam", "optimizer", FIT},
    {"--lr", "X", "1e-3 for rmsprop/adam/adamw, 1e-2 for the others", "learning rate", FIT},
    {"--epochs", "N", "10", "passes over the training set", FIT},
    {"--batch", "N", "64", "mini-batch size", FIT | EVAL | PREDICT},
    {"--val", "FRACTION", "0.1", "validation split of DATA", FIT},
    {"--test", "FRACTION", "0.2, 0 with --test-data", "test split of DATA", FIT},
    {"--standardize", NULL, "off", "standardise features (and a regression target)", FIT},
    {"--seed", "N", "1", "seed of initialisation, splits and shuffling", FIT | GRADCHECK},
    {"--dtype", "f32|f64", "f32", "element type", FIT | SUMMARY | IMPORT},
    {"--threads", "N", "one per online CPU, at most 64", "tapegrad's threads (1..64)", FIT | EVAL},
    {"--save", "MODEL", "none (import: required)", "model file, version 2 (import: -o MODEL too)",
     FIT | IMPORT},
    {"--plot", "FILE.svg", "none", "loss plot", FIT},
    {"--log", "FILE.csv", "none", "per-epoch log", FIT},
    {"--detect-anomaly", NULL, "off", "stop at the first op producing NaN or Inf", FIT},
    {"--help", NULL, NULL, "print this help and exit",
     FIT | EVAL | PREDICT | GRADCHECK | SUMMARY | EXPORT | IMPORT},
};

static int cmd_mask(const char *cmd) {
    return !strcmp(cmd, "fit")         ? FIT
           : !strcmp(cmd, "eval")      ? EVAL
           : !strcmp(cmd, "predict")   ? PREDICT
           : !strcmp(cmd, "gradcheck") ? GRADCHECK
           : !strcmp(cmd, "summary")   ? SUMMARY
           : !strcmp(cmd, "export")    ? EXPORT
           : !strcmp(cmd, "import")    ? IMPORT
                                       : 0;
}

static void options_list(FILE *f, int mask) {
    for (size_t i = 0; i < sizeof options_help / sizeof *options_help; i++) {
        const opt_help *h = &options_help[i];
        if (!(h->cmds & mask)) continue;
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", h->name, h->value ? " " : "",
                 h->value ? h->value : "");
        if (strlen(head) > 26) /* a long value list: the text on the next line */
            fprintf(f, "  %s\n  %-26s %s", head, "", h->what);
        else
            fprintf(f, "  %-26s %s", head, h->what);
        if (h->def) fprintf(f, " (default: %s)", h->def);
        fputc('\n', f);
    }
}

static const char *const synopsis[] = {
    "fit DATA [options]             train a model (--layers, or an MLP: --hidden)",
    "eval MODEL DATA [options]      loss and metrics of a saved model",
    "predict MODEL DATA [options]   one class (or value) per line",
    "graph MODEL                    the op graph as Graphviz DOT on stdout",
    "gradcheck [--seed N]           every op: gradcheck and adjoint check",
    "ops                            the op table",
    "summary MODEL | summary --layers \"...\" --input-shape C,H,W\n"
    "                                 each layer's output shape, parameters, FLOPs",
    "export MODEL OUT.safetensors   the model's tensors (PyTorch's state_dict names)",
    "import IN.safetensors --layers \"...\" --input-shape C,H,W -o MODEL\n"
    "                                 a model file from tensors and the layers",
};

static const char layers_notes[] =
    "--layers: items separated by ';', each [NAME:] KIND VALUE... [KEY=VALUE...] [KIND...]:\n"
    "  dense N | conv2d C K | conv_transpose2d C K | max_pool2d K [S] | avg_pool2d K [S] |\n"
    "  global_avg_pool2d | flatten | reshape D1 D2... | batch_norm | layer_norm | dropout P |\n"
    "  relu | tanh | sigmoid | silu | gelu | elu | leaky_relu [SLOPE] | softmax | log_softmax\n"
    "  (aliases maxpool, avgpool, linear, conv, deconv, bn, batchnorm, layernorm, gap), or a\n"
    "  kind a program registered (integer values fill its i0.., others f0..). Keywords as\n"
    "  PyTorch's: stride=2 padding=1|same dilation= groups= bias=0 eps= momentum= p= ...,\n"
    "  or a raw option slot i0..i9, f0..f3 (tapegrad_nn.h). Last words naming layer kinds\n"
    "  add those layers: \"conv2d 32 3 bn relu\" = conv2d, batch_norm, relu. Named 0, 1, ...\n"
    "  as nn.Sequential (NAME: gives a name). The last layer gives the outputs (logits).\n"
    "  --layers initialises as PyTorch; --hidden keeps the MLP's He/Xavier initialisation.\n";

static const char notes[] =
    "DATA is a CSV file or idx:PREFIX (PREFIX-images-idx3-ubyte[.gz] and\n"
    "PREFIX-labels-idx1-ubyte[.gz]). For eval and predict, a CSV's label column\n"
    "must be given as in fit (predict ignores its values).\n"
    "--header: a CSV's first line is a header if some cell is text (auto, the\n"
    "default; a guess is said on stderr), always (yes) or never (no).\n"
    "Every cell must be a number the dtype holds (f32: |x| < 3.4e38); an empty,\n"
    "nan, inf or NA cell is an error naming file, line and column.\n"
    "--save, --plot, --log: checked writable before training; written atomically.\n"
    "--threads N (1..64): tapegrad's own N threads, OpenBLAS on one.\n";

void cli_usage(FILE *f) {
    fputs("usage:\n", f);
    for (size_t i = 0; i < sizeof synopsis / sizeof *synopsis; i++)
        fprintf(f, "  tapegrad %s\n", synopsis[i]);
    fputs("  tapegrad --version | --help | COMMAND --help\n", f);
    fputs("options (commands: fit; eval/predict take --label --header --batch, eval also\n"
          "--threads; gradcheck --seed; summary and import --layers --input-shape --dtype;\n"
          "import --loss -o):\n",
          f);
    options_list(f, FIT | EVAL | PREDICT | GRADCHECK | SUMMARY | EXPORT | IMPORT);
    fputs(notes, f);
    fputs(layers_notes, f);
}

void cli_command_usage(FILE *f, const char *cmd) {
    size_t len = strlen(cmd);
    fputs("usage:\n", f);
    for (size_t i = 0; i < sizeof synopsis / sizeof *synopsis; i++)
        if (!strncmp(synopsis[i], cmd, len) && synopsis[i][len] == ' ')
            fprintf(f, "  tapegrad %s\n", synopsis[i]);
    int mask = cmd_mask(cmd);
    if (mask) {
        fputs("options:\n", f);
        options_list(f, mask);
    }
    if (mask & (FIT | EVAL | PREDICT)) fputs(notes, f);
    if (mask & (FIT | SUMMARY | IMPORT)) fputs(layers_notes, f);
    if (mask & SUMMARY)
        fputs("FLOPs: forward, per example: a multiply-add counts 2, a bias add 1 per output,\n"
              "an activation 1 per element, pooling the window per output, batch norm 2 and\n"
              "layer norm 7 per element, dropout (eval) and reshapes 0; '-' for a kind of\n"
              "unknown cost (a program's own).\n",
              f);
}

static int bad(const char *cmd, const char *what, const char *value) {
    fprintf(stderr, "tapegrad %s: %s '%s'\n", cmd, what, value ? value : "");
    cli_usage(stderr);
    return 0;
}

/* Strict numbers: the whole text, in range. */
static int to_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int to_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

/* "256,128": widths in 1..2^20, no empty item; "none": no hidden layer. */
static int parse_hidden(const char *s, cli_opts *o) {
    o->n_hidden = 0;
    if (strcmp(s, "none") == 0) return 1; /* a linear model */
    for (const char *p = s;; p++) {
        char item[16];
        size_t len = strcspn(p, ",");
        long w;
        if (len == 0 || len >= sizeof item || o->n_hidden == 16) return 0;
        memcpy(item, p, len);
        item[len] = 0;
        if (!to_long(item, 1, 1 << 20, &w)) return 0;
        o->hidden[o->n_hidden++] = (size_t)w;
        p += len;
        if (!*p) return 1;
    }
}

static int parse_label(const char *s, int *label) {
    long v;
    if (strcmp(s, "last") == 0)
        *label = -1;
    else if (strcmp(s, "first") == 0)
        *label = 0;
    else if (to_long(s, 0, 1 << 20, &v))
        *label = (int)v;
    else
        return 0;
    return 1;
}

static void defaults(cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->label = -1;
    o->header = TG_CSV_HEADER_AUTO;
    o->hidden[0] = 64;
    o->n_hidden = 1;
    o->act = TG_ACT_RELU;
    o->loss = -1;
    o->opt = TG_OPT_ADAM;
    o->epochs = 10;
    o->batch = 64;
    o->val = 0.1;
    o->test = -1;
    o->seed = 1;
    o->dtype = TG_F32;
    o->threads = 0;
}

/* One option with a value; returns 0 on a bad value. */
static int option(const char *cmd, const char *name, const char *v, cli_opts *o) {
    long n;
    if (!strcmp(name, "--test-data"))
        o->test_data = v;
    else if (!strcmp(name, "--save") || !strcmp(name, "-o"))
        o->save = v;
    else if (!strcmp(name, "--layers")) {
        static cli_layers parsed; /* one --layers per run; lives as long as o */
        char err[512];
        if (!cli_layers_parse(v, &parsed, err, sizeof err)) {
            fprintf(stderr, "tapegrad %s: %s\n", cmd, err); /* one line, no usage */
            return -1;
        }
        o->layers = &parsed;
    } else if (!strcmp(name, "--input-shape")) {
        if (!cli_shape_parse(v, &o->in_rank, o->in_shape)) return bad(cmd, "bad --input-shape", v);
    } else if (!strcmp(name, "--plot"))
        o->plot = v;
    else if (!strcmp(name, "--log"))
        o->log = v;
    else if (!strcmp(name, "--label"))
        return parse_label(v, &o->label) || bad(cmd, "bad --label", v);
    else if (!strcmp(name, "--header")) {
        o->header = !strcmp(v, "auto")  ? TG_CSV_HEADER_AUTO
                    : !strcmp(v, "yes") ? TG_CSV_HEADER_YES
                    : !strcmp(v, "no")  ? TG_CSV_HEADER_NO
                                        : -1;
        if (o->header < 0) return bad(cmd, "bad --header", v);
    } else if (!strcmp(name, "--hidden")) {
        o->mlp_set = 1;
        return parse_hidden(v, o) || bad(cmd, "bad --hidden", v);
    } else if (!strcmp(name, "--act")) {
        o->mlp_set = 1;
        if ((o->act = tg_act_parse(v)) <= 0) return bad(cmd, "unknown activation", v);
    } else if (!strcmp(name, "--loss")) {
        o->loss = !strcmp(v, "auto")  ? -1
                  : !strcmp(v, "bce") ? 0
                  : !strcmp(v, "ce")  ? 1
                  : !strcmp(v, "mse") ? 2
                                      : -2;
        if (o->loss == -2) return bad(cmd, "unknown loss", v);
    } else if (!strcmp(name, "--opt")) {
        if ((o->opt = tg_opt_parse(v)) < 0) return bad(cmd, "unknown optimizer", v);
    } else if (!strcmp(name, "--lr"))
        return to_double(v, 1e-12, 1e3, &o->lr) || bad(cmd, "bad --lr", v);
    else if (!strcmp(name, "--epochs")) {
        if (!to_long(v, 1, 1000000, &n)) return bad(cmd, "bad --epochs", v);
        o->epochs = (int)n;
    } else if (!strcmp(name, "--batch")) {
        if (!to_long(v, 1, 1 << 20, &n)) return bad(cmd, "bad --batch", v);
        o->batch = (size_t)n;
    } else if (!strcmp(name, "--val"))
        return to_double(v, 0, 0.9, &o->val) || bad(cmd, "bad --val", v);
    else if (!strcmp(name, "--test"))
        return to_double(v, 0, 0.9, &o->test) || bad(cmd, "bad --test", v);
    else if (!strcmp(name, "--seed")) {
        if (!to_long(v, 0, 2147483647L, &n)) return bad(cmd, "bad --seed", v);
        o->seed = (unsigned long long)n;
    } else if (!strcmp(name, "--dtype")) {
        if (strcmp(v, "f32") && strcmp(v, "f64")) return bad(cmd, "bad --dtype", v);
        o->dtype = strcmp(v, "f32") ? TG_F64 : TG_F32;
    } else if (!strcmp(name, "--threads")) {
        if (!to_long(v, 1, TG_MAX_THREADS, &n)) return bad(cmd, "bad --threads", v);
        o->threads = (int)n;
    } else
        return bad(cmd, "unknown option", name);
    return 1;
}

/* Positional arguments: fit DATA; eval/predict MODEL DATA; graph MODEL;
 * summary [MODEL]; export MODEL OUT; import IN. */
static int positional(const char *cmd, const char *arg, int *k, cli_opts *o) {
    int want_model = !strcmp(cmd, "eval") || !strcmp(cmd, "predict") || !strcmp(cmd, "graph") ||
                     !strcmp(cmd, "summary");
    if (!strcmp(cmd, "export") || !strcmp(cmd, "import")) {
        if (*k >= (cmd[0] == 'e' ? 2 : 1)) return bad(cmd, "unexpected argument", arg);
        o->inputs[(*k)++] = arg;
        return 1;
    }
    if (want_model && *k == 0)
        o->model = arg;
    else if (strcmp(cmd, "graph") && strcmp(cmd, "gradcheck") && strcmp(cmd, "summary") && !o->data)
        o->data = arg;
    else
        return bad(cmd, "unexpected argument", arg);
    (*k)++;
    return 1;
}

int cli_parse(int argc, char **argv, int first, const char *cmd, cli_opts *o) {
    defaults(o);
    int k = 0;
    /* --help anywhere wins over the rest of the line, as in most tools. */
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return o->help = 1;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 && strcmp(a, "-o") != 0) {
            if (!positional(cmd, a, &k, o)) return 0;
        } else if (!strcmp(a, "--standardize")) {
            o->standardize = 1;
        } else if (!strcmp(a, "--detect-anomaly")) {
            o->detect_anomaly = 1;
        } else if (i + 1 >= argc) {
            return bad(cmd, "missing value for", a);
        } else {
            if (option(cmd, a, argv[++i], o) <= 0) return 0;
        }
    }
    int need_model = !strcmp(cmd, "eval") || !strcmp(cmd, "predict") || !strcmp(cmd, "graph");
    int need_data = !strcmp(cmd, "fit") || !strcmp(cmd, "eval") || !strcmp(cmd, "predict");
    if (need_model && !o->model) return bad(cmd, "missing", "MODEL");
    if (need_data && !o->data) return bad(cmd, "missing", "DATA");
    if (o->layers && o->mlp_set)
        return bad(cmd, "--hidden and --act (an MLP) do not go with", "--layers");
    if (!strcmp(cmd, "fit") && o->in_rank && !o->layers)
        return bad(cmd, "--input-shape is for", "--layers");
    if (!strcmp(cmd, "summary") && !o->model == !o->layers)
        return bad(cmd, "give a MODEL or --layers, not both or neither", "");
    if (!strcmp(cmd, "summary") && o->layers && !o->in_rank)
        return bad(cmd, "--layers needs", "--input-shape");
    if (!strcmp(cmd, "export") && !o->inputs[1]) return bad(cmd, "missing", "MODEL OUT");
    if (!strcmp(cmd, "import") && (!o->inputs[0] || !o->layers || !o->in_rank || !o->save))
        return bad(cmd, "needs", "IN --layers --input-shape -o MODEL");
    if (o->test < 0) o->test = o->test_data ? 0 : 0.2;
    if (o->val + o->test >= 0.95) return bad(cmd, "--val + --test must be < 0.95", "");
    return 1;
}
