/* The commands' model: any tg_model (model file version 2), or a version-1
 * MLP file converted to layers on load; what its outputs mean (loss,
 * classes, a regression target's units) lives in the model's metadata. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void cli_model_free(cli_model *cm) {
    tg_model_free(cm->m);
    memset(cm, 0, sizeof *cm);
}

static size_t product(int rank, const size_t *shape) {
    size_t n = 1;
    for (int a = 0; a < rank; a++)
        n *= shape[a];
    return n;
}

/* "layer NAME (kind): ..." from the library: the --layers item of NAME. */
static int failing_item(const cli_layers *L, const char *msg) {
    if (strncmp(msg, "layer ", 6) != 0) return 0;
    const char *name = msg + 6;
    size_t len = strcspn(name, " ");
    for (int i = 0; i < L->n; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        const char *n = L->specs[i].name ? L->specs[i].name : idx;
        if (strlen(n) == len && !strncmp(n, name, len)) return L->item[i];
    }
    return 0;
}

int cli_model_build(cli_model *cm, const cli_layers *L, tg_dtype dt, int rank, const size_t *shape,
                    int flat) {
    memset(cm, 0, sizeof *cm);
    cm->y_std = 1;
    if (tg_model_new(&cm->m, dt, rank, shape, L->n, L->specs)) {
        int k = failing_item(L, tg_last_error());
        char text[96];
        if (k && L->text) {
            cli_layers_item(L->text, k, text, sizeof text);
            fprintf(stderr, "tapegrad: --layers item %d '%s': %s\n", k, text, tg_last_error());
        } else {
            fprintf(stderr, "tapegrad: %s\n", tg_last_error());
        }
        return 0;
    }
    const tg_layer *last = &cm->m->layers[cm->m->n_layers - 1];
    if (flat && last->out_rank != 1) {
        fprintf(stderr,
                "tapegrad: the last layer (%s, %s) gives %d axes per example; the loss needs one "
                "vector per example: end with flatten and dense\n",
                last->name, last->kind->name, last->out_rank);
        cli_model_free(cm);
        return 0;
    }
    cm->n_in = product(rank, shape);
    cm->n_out = last->out_shape[0];
    return 1;
}

/* ---------------------------------------------------------------- metadata */

int cli_model_set_task(cli_model *cm) {
    char v[64];
    tg_status s = tg_model_meta_set(cm->m, "loss", tg_loss_name(cm->loss));
    snprintf(v, sizeof v, "%d", cm->n_classes);
    if (!s) s = tg_model_meta_set(cm->m, "classes", v);
    if (!s && (cm->y_std != 1 || cm->y_mean != 0)) {
        snprintf(v, sizeof v, "%.17g", cm->y_mean); /* round-trips a double */
        s = tg_model_meta_set(cm->m, "target_mean", v);
        snprintf(v, sizeof v, "%.17g", cm->y_std);
        if (!s) s = tg_model_meta_set(cm->m, "target_std", v);
    }
    if (s) fprintf(stderr, "tapegrad: %s\n", tg_last_error());
    return s == TG_OK;
}

static int meta_number(const tg_model *m, const char *key, double def, double *out) {
    const char *v = tg_model_meta_get(m, key);
    char *end;
    *out = v ? strtod(v, &end) : def;
    return !v || (*end == 0 && end != v);
}

/* What the outputs are: the metadata's, or for a model without it (saved by
 * a program), ce for several outputs and mse for one. */
static int read_task(cli_model *cm, const char *path) {
    const char *loss = tg_model_meta_get(cm->m, "loss");
    double classes = 0, mean = 0, std = 1;
    cm->loss = !loss                  ? (cm->n_out >= 2 ? TG_LOSS_CE : TG_LOSS_MSE)
               : !strcmp(loss, "ce")  ? TG_LOSS_CE
               : !strcmp(loss, "bce") ? TG_LOSS_BCE
               : !strcmp(loss, "mse") ? TG_LOSS_MSE
                                      : (tg_loss_kind)-1;
    int ok = (int)cm->loss >= 0 && meta_number(cm->m, "classes", (double)cm->n_out, &classes) &&
             meta_number(cm->m, "target_mean", 0, &mean) &&
             meta_number(cm->m, "target_std", 1, &std);
    cm->n_classes = cm->loss == TG_LOSS_CE ? (int)classes : cm->loss == TG_LOSS_BCE ? 2 : 0;
    cm->y_mean = mean, cm->y_std = std;
    if (ok && cm->loss == TG_LOSS_CE)
        ok = cm->n_out >= 2 && classes >= 2 && classes <= (double)cm->n_out;
    else if (ok)
        ok = cm->n_out == 1;
    if (!ok)
        fprintf(stderr, "tapegrad: %s: its metadata (loss %s) does not fit its %zu outputs\n", path,
                loss ? loss : "none", cm->n_out);
    return ok;
}

/* ---------------------------------------------------------------- loading */

int cli_model_load(const char *path, cli_model *cm) {
    memset(cm, 0, sizeof *cm);
    if (tg_model_load(&cm->m, path)) {
        if (!strstr(tg_last_error(), "version-1")) {
            fprintf(stderr, "tapegrad: %s\n", tg_last_error());
            return 0;
        }
        tg_mlp *mlp = NULL;
        tg_status s = tg_mlp_load(&mlp, path);
        if (!s) s = tg_model_from_mlp(&cm->m, mlp);
        tg_mlp_free(mlp);
        if (s) return fprintf(stderr, "tapegrad: %s\n", tg_last_error()), 0;
    }
    const tg_layer *last = &cm->m->layers[cm->m->n_layers - 1];
    cm->n_in = product(cm->m->in_rank, cm->m->in_shape);
    cm->n_out = last->out_rank == 1 ? last->out_shape[0] : 0;
    if (last->out_rank != 1) {
        fprintf(stderr, "tapegrad: %s: the model's output is not one vector per example\n", path);
        return cli_model_free(cm), 0;
    }
    if (!read_task(cm, path)) return cli_model_free(cm), 0;
    return 1;
}

tg_status cli_model_cost(tg_tape *t, const cli_model *cm, const tg_tensor *out,
                         const tg_tensor *target, tg_tensor **cost) {
    switch (cm->loss) {
    case TG_LOSS_CE:
        return tg_softmax_ce(t, out, target, cost);
    case TG_LOSS_BCE:
        return tg_bce_logits(t, out, target, cost);
    case TG_LOSS_MSE:
        break;
    }
    return tg_mse(t, out, target, cost);
}

/* ---------------------------------------------------------------- input shape */

/* An IDX images file's H and W (header: magic 0x803, N, H, W, big-endian);
 * 0 if it cannot be read (tg_idx_load has then said why already). */
static int idx_image_shape(const char *prefix, size_t *h, size_t *w) {
    char path[4096];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
        gzFile f = gzopen(path, "rb");
        if (!f) continue;
        unsigned char b[16];
        int n = gzread(f, b, sizeof b);
        gzclose(f);
        if (n != 16) return 0;
        *h = (size_t)b[8] << 24 | (size_t)b[9] << 16 | (size_t)b[10] << 8 | b[11];
        *w = (size_t)b[12] << 24 | (size_t)b[13] << 16 | (size_t)b[14] << 8 | b[15];
        return 1;
    }
    return 0;
}

int cli_input_shape(const cli_opts *o, const tg_dataset *ds, int *rank, size_t *shape) {
    size_t h, w;
    if (o->in_rank) {
        *rank = o->in_rank;
        memcpy(shape, o->in_shape, sizeof(size_t) * TG_MAX_RANK);
        if (product(*rank, shape) == ds->d) return 1;
        fprintf(stderr, "tapegrad: --input-shape has %zu values per example, %s has %zu\n",
                product(*rank, shape), o->data, ds->d);
        return 0;
    }
    if (!strncmp(o->data, "idx:", 4) && idx_image_shape(o->data + 4, &h, &w) && h * w == ds->d) {
        *rank = 3;
        shape[0] = 1, shape[1] = h, shape[2] = w;
        return 1;
    }
    *rank = 1;
    shape[0] = ds->d;
    return 1;
}
