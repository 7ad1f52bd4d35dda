/* --layers: a model as one line of text (docs/cli.md, "Layers"):
 *
 *   items    := item { ';' item }            (empty items are skipped)
 *   item     := [NAME ':'] KIND { VALUE | KEY '=' VALUE } { KIND }
 *
 * KIND is any layer kind the library knows (tg_layer_kind_find: built-in
 * or registered), or an alias (maxpool, avgpool, linear, ...). Positional
 * VALUEs fill the kind's options in the order of tg_layer_spec's list
 * (tapegrad_nn.h); KEY=VALUE names one (PyTorch's keyword: stride=2,
 * padding=same) or a raw slot (i3=2, f0=0.1) for any kind. A kind this
 * file has no table for takes its positional values generically:
 * integers fill i0, i1, ..., other numbers f0, f1, .... A last word that
 * names a kind (relu, tanh, ...) adds that layer after the item's, with
 * its default options, so "dense 128 relu" is two layers as PyTorch's
 * nn.Linear + nn.ReLU (and the layer indices, hence the parameter names,
 * are nn.Sequential's); several such words add several layers in order
 * ("conv2d 32 3 bn relu"). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The options of the built-in kinds: the positional slots in order, and the
 * keywords (KEY=SLOT, '!' before the slot: a boolean stored inverted, as
 * bias=0 → "no bias" = 1). A kind added to the library works without a
 * row (generic values, iN=/fN=); a row here gives it PyTorch's keywords. */
static const struct kind_opts {
    const char *kind, *positional, *keywords;
} kinds[] = {
    {"dense", "i0", "out_features=i0 bias=!i1"},
    {"conv2d", "i0 i1",
     "out_channels=i0 kernel_size=i1 kernel_width=i2 stride=i3 padding=i4 dilation=i5 groups=i6 "
     "bias=!i7"},
    {"conv_transpose2d", "i0 i1",
     "out_channels=i0 kernel_size=i1 kernel_width=i2 stride=i3 padding=i4 dilation=i5 groups=i6 "
     "bias=!i7 output_padding=i8"},
    {"max_pool2d", "i0 i1", "kernel_size=i0 stride=i1 padding=i2 ceil_mode=i3"},
    {"avg_pool2d", "i0 i1",
     "kernel_size=i0 stride=i1 padding=i2 ceil_mode=i3 count_include_pad=!i4"},
    {"global_avg_pool2d", "", ""},
    {"flatten", "i0", "start_dim=i0"},
    {"reshape", "*", ""}, /* its sizes: i0 = their count, i1.. the sizes */
    {"batch_norm", "", "eps=f0 momentum=f1 affine=!i0"},
    {"layer_norm", "i0", "dims=i0 eps=f0 elementwise_affine=!i1"},
    {"dropout", "f0", "p=f0"},
    {"relu", "", ""},
    {"tanh", "", ""},
    {"sigmoid", "", ""},
    {"silu", "", ""},
    {"leaky_relu", "f0", "negative_slope=f0"},
    {"gelu", "", "approximate=i0"},
    {"elu", "f0", "alpha=f0"},
    {"softmax", "i0", "dim=i0"},
    {"log_softmax", "i0", "dim=i0"},
};

static const char *const aliases[][2] = {
    {"maxpool", "max_pool2d"},
    {"avgpool", "avg_pool2d"},
    {"linear", "dense"},
    {"conv", "conv2d"},
    {"deconv", "conv_transpose2d"},
    {"batchnorm", "batch_norm"},
    {"bn", "batch_norm"},
    {"layernorm", "layer_norm"},
    {"gap", "global_avg_pool2d"},
    {"global_avgpool", "global_avg_pool2d"},
};

/* Words an integer option takes: padding=same, gelu's approximate=tanh,
 * booleans. */
static const struct {
    const char *word;
    long value;
} words[] = {{"same", -1}, {"tanh", 1}, {"none", 0}, {"true", 1}, {"false", 0}};

static const char *canonical(const char *name) {
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (!strcmp(name, aliases[i][0])) return aliases[i][1];
    return name;
}

static const struct kind_opts *opts_of(const char *kind) {
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(kind, kinds[i].kind)) return &kinds[i];
    return NULL;
}

/* The error of one item: "--layers item 2 'conv2d 32 x': ..." */
typedef struct item_ctx {
    int number;
    char text[96];
    char *err;
    size_t errlen;
} item_ctx;

static int item_fail(const item_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int item_fail(const item_ctx *c, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "--layers item %d '%s': %s", c->number, c->text, msg);
    return 0;
}

static int is_integer(const char *s, long *v) {
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    if (end != s && !*end && !errno) return 1;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (!strcmp(s, words[i].word)) return *v = words[i].value, 1;
    return 0;
}

static int is_real(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*v);
}

/* Store value text v into slot "i3" / "!i1" / "f0" of sp. */
static int set_slot(const item_ctx *c, tg_layer_spec *sp, const char *slot, const char *key,
                    const char *v) {
    int invert = slot[0] == '!';
    char type = slot[invert];
    int k = atoi(slot + invert + 1);
    if (type == 'i') {
        long x;
        if (!is_integer(v, &x))
            return item_fail(c, "%s%s'%s' is not an integer", key ? key : "", key ? "=" : "", v);
        if (invert && x != 0 && x != 1) return item_fail(c, "%s=%s: must be 0 or 1", key, v);
        sp->i[k] = invert ? !x : x;
    } else {
        double x;
        if (!is_real(v, &x))
            return item_fail(c, "%s%s'%s' is not a number", key ? key : "", key ? "=" : "", v);
        sp->f[k] = x;
    }
    return 1;
}

/* The slot a keyword names for this kind ("!i1"), or a raw "iN"/"fN". */
static int keyword_slot(const struct kind_opts *ko, const char *key, char *slot) {
    if (ko) {
        size_t n = strlen(key);
        for (const char *p = ko->keywords; *p;) {
            size_t len = strcspn(p, " ");
            if (len > n && !strncmp(p, key, n) && p[n] == '=') {
                snprintf(slot, 16, "%.*s", (int)(len - n - 1), p + n + 1);
                return 1;
            }
            p += len + (p[len] == ' ');
        }
    }
    char *end;
    long k = (key[0] == 'i' || key[0] == 'f') ? strtol(key + 1, &end, 10) : -1;
    if (k < 0 || end == key + 1 || *end || k >= (key[0] == 'i' ? TG_LAYER_NI : TG_LAYER_NF))
        return 0;
    snprintf(slot, 16, "%c%ld", key[0], k);
    return 1;
}

/* The next positional slot ("i0"), or NULL when the kind takes no more. */
static const char *positional_slot(const struct kind_opts *ko, int k, const char *v, int *ni,
                                   int *nf, char *buf) {
    if (!ko) { /* a kind without a table: integers to i[], other numbers to f[] */
        long x;
        int integer = is_integer(v, &x);
        if (integer ? *ni >= TG_LAYER_NI : *nf >= TG_LAYER_NF) return NULL;
        snprintf(buf, 16, "%c%d", integer ? 'i' : 'f', integer ? (*ni)++ : (*nf)++);
        return buf;
    }
    const char *p = ko->positional;
    for (int i = 0; i < k && *p; i++)
        p += strcspn(p, " "), p += *p == ' ';
    if (!*p) return NULL;
    snprintf(buf, 16, "%.*s", (int)strcspn(p, " "), p);
    return buf;
}

static int add_layer(cli_layers *L, const item_ctx *c, const char *kind, const char *name) {
    if (L->n == CLI_MAX_LAYERS) return item_fail(c, "more than %d layers", CLI_MAX_LAYERS);
    tg_layer_spec *sp = &L->specs[L->n];
    memset(sp, 0, sizeof *sp);
    sp->kind = tg_layer_kind_find(kind)->name; /* static storage, the kind's own */
    if (name) {
        snprintf(L->names[L->n], sizeof L->names[L->n], "%s", name);
        sp->name = L->names[L->n];
    }
    L->item[L->n++] = c->number;
    return 1;
}

/* A whitespace-separated item, already copied and cut into words. */
static int parse_item(cli_layers *L, const item_ctx *c, char **w, int n) {
    const char *name = NULL;
    if (n > 0 && w[0][strlen(w[0]) - 1] == ':') {
        w[0][strlen(w[0]) - 1] = 0;
        name = w[0], w++, n--;
        if (!*name || strchr(name, '.') || strlen(name) >= TG_LAYER_NAME_MAX)
            return item_fail(c, "layer name '%s': 1..47 characters, no '.'", name);
    }
    if (n == 0) return item_fail(c, "no layer kind");
    const char *kind = canonical(w[0]);
    if (!tg_layer_kind_find(kind))
        return item_fail(c, "unknown layer kind '%s' (tapegrad fit --help lists them)", w[0]);
    /* the trailing kind names ("conv2d 32 3 bn relu"); a kind's name wins
     * over a word value: "tanh" is also gelu's approximate=tanh */
    int first_after = n;
    long x;
    double r;
    while (first_after > 1 && !strchr(w[first_after - 1], '=') &&
           tg_layer_kind_find(canonical(w[first_after - 1])))
        first_after--;
    if (first_after == n && n > 1 && !strchr(w[n - 1], '=') && !is_integer(w[n - 1], &x) &&
        !is_real(w[n - 1], &r))
        return item_fail(c, "'%s' is neither a value, a key=value option nor a layer kind",
                         w[n - 1]);
    int n_after = n - first_after;
    n = first_after;
    if (!add_layer(L, c, kind, name)) return 0;
    tg_layer_spec *sp = &L->specs[L->n - 1];
    const struct kind_opts *ko = opts_of(kind);
    int k = 0, ni = 0, nf = 0;
    for (int i = 1; i < n; i++) {
        char slot[16], *eq = strchr(w[i], '=');
        if (eq) {
            *eq = 0;
            if (!keyword_slot(ko, w[i], slot))
                return item_fail(c, "%s has no option '%s'", kind, w[i]);
            if (!set_slot(c, sp, slot, w[i], eq + 1)) return 0;
        } else if (ko && !strcmp(ko->positional, "*")) { /* reshape's sizes */
            if (k + 1 >= TG_LAYER_NI) return item_fail(c, "too many sizes");
            snprintf(slot, sizeof slot, "i%d", ++k);
            if (!set_slot(c, sp, slot, NULL, w[i])) return 0;
            sp->i[0] = k;
        } else {
            const char *s = positional_slot(ko, k++, w[i], &ni, &nf, slot);
            if (!s) return item_fail(c, "too many values for %s: '%s'", kind, w[i]);
            if (!set_slot(c, sp, s, NULL, w[i])) return 0;
        }
    }
    for (int i = 0; i < n_after; i++)
        if (!add_layer(L, c, canonical(w[n + i]), NULL)) return 0;
    return 1;
}

void cli_layers_item(const char *text, int k, char *out, size_t len) {
    const char *p = text;
    for (int i = 1; i < k && p; i++)
        p = strchr(p, ';'), p = p ? p + 1 : NULL;
    p = p ? p + strspn(p, " \t\r\n") : "";
    size_t n = strcspn(p, ";");
    while (n && strchr(" \t\r\n", p[n - 1]))
        n--;
    snprintf(out, len, "%.*s", (int)(n < 80 ? n : 80), p);
}

int cli_layers_parse(const char *text, cli_layers *L, char *err, size_t errlen) {
    memset(L, 0, sizeof *L);
    L->text = text;
    item_ctx c = {0, "", err, errlen};
    for (const char *p = text;; p++) {
        size_t len = strcspn(p, ";");
        char buf[512], *w[64];
        int n = 0;
        cli_layers_item(text, ++c.number, c.text, sizeof c.text);
        if (len >= sizeof buf) return item_fail(&c, "longer than %zu characters", sizeof buf - 1);
        memcpy(buf, p, len);
        buf[len] = 0;
        for (char *t = strtok(buf, " \t\r\n"); t; t = strtok(NULL, " \t\r\n")) {
            if (n == 64) return item_fail(&c, "more than 64 words");
            w[n++] = t;
        }
        if (n && !parse_item(L, &c, w, n)) return 0;
        p += len;
        if (!*p) break;
    }
    if (L->n == 0) {
        snprintf(err, errlen, "--layers: no layers in '%s'", text);
        return 0;
    }
    return 1;
}

/* An MLP: hidden widths with the activation after each, then a linear layer
 * of n_out. */
void cli_layers_mlp(cli_layers *L, int n_hidden, const size_t *widths, tg_act act, size_t n_out) {
    memset(L, 0, sizeof *L);
    for (int i = 0; i <= n_hidden; i++) {
        tg_layer_spec *sp = &L->specs[L->n++];
        sp->kind = "dense";
        sp->i[0] = (long)(i < n_hidden ? widths[i] : n_out);
        if (i < n_hidden && act != TG_ACT_NONE) L->specs[L->n++].kind = tg_act_name(act);
    }
    for (int i = 0; i < L->n; i++)
        L->item[i] = 0;
}

int cli_shape_parse(const char *s, int *rank, size_t *shape) {
    *rank = 0;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",x");
        char item[16], *end;
        if (len == 0 || len >= sizeof item || *rank == TG_MAX_RANK - 1) return 0;
        memcpy(item, p, len);
        item[len] = 0;
        errno = 0;
        long v = strtol(item, &end, 10);
        if (errno || *end || v < 1 || v > 100000000L) return 0;
        shape[(*rank)++] = (size_t)v;
        p += len;
        if (!*p) return 1;
    }
}
