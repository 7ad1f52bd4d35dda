/* An MLP as a model of layers (tg_model_from_mlp): how version-1 model
 * files reach every tool that takes a tg_model (the CLI's eval, predict,
 * summary, export; safetensors). */
#include "../tape/internal.h"
#include "tapegrad_nn.h"

#include <stdio.h>
#include <string.h>

/* The specs: dense, then the hidden activation, per hidden layer; the last
 * dense alone. At most 65 dense layers (tg_mlp's limit) and 64 activations. */
static int mlp_specs(const tg_mlp *mlp, tg_layer_spec *specs) {
    int n = 0;
    for (int i = 0; i < mlp->n_layers; i++) {
        memset(&specs[n], 0, sizeof specs[n]);
        specs[n].kind = "dense";
        specs[n++].i[0] = (long)mlp->layers[i].w->shape[1];
        if (i < mlp->n_layers - 1 && mlp->act != TG_ACT_NONE) {
            memset(&specs[n], 0, sizeof specs[n]);
            specs[n++].kind = tg_act_name(mlp->act);
        }
    }
    return n;
}

static void copy_dense(tg_layer *l, const tg_dense *d) {
    size_t in = d->w->shape[0], out = d->w->shape[1];
    for (size_t r = 0; r < in; r++) /* W in×out → weight out×in */
        for (size_t c = 0; c < out; c++)
            tg_set(l->tensors[0].t, c * in + r, tg_get(d->w, r * out + c));
    for (size_t c = 0; c < out; c++)
        tg_set(l->tensors[1].t, c, tg_get(d->b, c));
}

static tg_status copy_stats(tg_model *m, const tg_mlp *mlp) {
    if (!mlp->mean || !mlp->std) return TG_OK;
    m->mean = tg_malloc(mlp->n_in * sizeof(double));
    m->std = tg_malloc(mlp->n_in * sizeof(double));
    if (!m->mean || !m->std) return tg_fail(TG_ERR_NOMEM, "model from mlp: out of memory");
    memcpy(m->mean, mlp->mean, mlp->n_in * sizeof(double));
    memcpy(m->std, mlp->std, mlp->n_in * sizeof(double));
    m->n_stats = mlp->n_in;
    return TG_OK;
}

tg_status tg_model_from_mlp(tg_model **out, const tg_mlp *mlp) {
    if (!out || !mlp || !mlp->layers || mlp->n_layers < 1 || mlp->n_layers > 65)
        return tg_fail(TG_ERR_ARG, "model from mlp: NULL or malformed MLP");
    *out = NULL;
    tg_layer_spec specs[130];
    tg_model *m = NULL;
    char classes[16];
    tg_status s = tg_model_new(&m, mlp->dtype, 1, &mlp->n_in, mlp_specs(mlp, specs), specs);
    for (int i = 0, j = 0; !s && i < m->n_layers; i++)
        if (!strcmp(m->layers[i].kind->name, "dense")) copy_dense(&m->layers[i], &mlp->layers[j++]);
    if (!s) s = copy_stats(m, mlp);
    snprintf(classes, sizeof classes, "%d", mlp->n_classes);
    if (!s) s = tg_model_meta_set(m, "loss", tg_loss_name(mlp->loss));
    if (!s) s = tg_model_meta_set(m, "classes", classes);
    if (s) {
        tg_model_free(m);
        return s;
    }
    *out = m;
    return TG_OK;
}
