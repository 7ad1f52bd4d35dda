/* summary (Keras's model.summary: each layer's output shape, parameters
 * and forward FLOPs), export and import (safetensors, PyTorch's names). */
#include "cli.h"

#include <string.h>

static size_t elems(int rank, const size_t *shape) {
    size_t n = 1;
    for (int a = 0; a < rank; a++)
        n *= shape[a];
    return n;
}

static const tg_tensor *tensor_of(const tg_layer *l, const char *name) {
    for (int i = 0; i < l->n_tensors; i++)
        if (!strcmp(l->tensors[i].name, name)) return l->tensors[i].t;
    return NULL;
}

/* Forward FLOPs of one example through l: a multiply-add counts 2 (as the
 * usual "FLOPs = 2 × MACs"), a bias add 1 per output, an elementwise
 * function 1 per element, pooling the window per output, batch norm 2 per
 * element (eval: one multiply-add with the statistics folded), layer norm 7
 * (mean, variance: 3, normalise: 2, affine: 2); -1 for a kind whose cost
 * is not known here (a program's own). */
static double layer_flops(const tg_layer *l) {
    const char *k = l->kind->name;
    double in = (double)elems(l->in_rank, l->in_shape),
           out = (double)elems(l->out_rank, l->out_shape);
    const tg_tensor *w = tensor_of(l, "weight"), *b = tensor_of(l, "bias");
    double bias = b ? out : 0;
    if (!strcmp(k, "dense")) return 2.0 * (double)w->size + bias;
    /* conv2d: every output position takes the weight's C_in/groups·kH·kW
     * values of its channel: 2·|W|·H_out·W_out in all */
    if (!strcmp(k, "conv2d"))
        return 2.0 * (double)w->size * (double)(l->out_shape[1] * l->out_shape[2]) + bias;
    /* the transposed one scatters every input value through C_out/groups·kH·kW */
    if (!strcmp(k, "conv_transpose2d"))
        return 2.0 * (double)w->size * (double)(l->in_shape[1] * l->in_shape[2]) + bias;
    if (!strcmp(k, "max_pool2d") || !strcmp(k, "avg_pool2d"))
        return out * (double)(l->spec.i[0] * l->spec.i[0]);
    if (!strcmp(k, "global_avg_pool2d")) return in;
    if (!strcmp(k, "flatten") || !strcmp(k, "reshape") || !strcmp(k, "dropout")) return 0;
    if (!strcmp(k, "batch_norm")) return 2 * in;
    if (!strcmp(k, "layer_norm")) return 7 * in;
    static const char *const unary[] = {"relu", "tanh", "sigmoid", "silu",       "leaky_relu",
                                        "gelu", "elu",  "softmax", "log_softmax"};
    for (size_t i = 0; i < sizeof unary / sizeof *unary; i++)
        if (!strcmp(k, unary[i])) return in;
    return -1;
}

static void shape_str(int rank, const size_t *shape, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len, "(N");
    for (int a = 0; a < rank && n < len; a++)
        n += (size_t)snprintf(buf + n, len - n, ", %zu", shape[a]);
    if (n < len) snprintf(buf + n, len - n, ")");
}

static void print_summary(const tg_model *m) {
    char sh[96];
    double total = 0;
    size_t params = 0, state = 0;
    int unknown = 0;
    printf("%-16s %-18s %-22s %12s %14s\n", "Layer (name)", "Kind", "Output shape", "Params",
           "FLOPs");
    shape_str(m->in_rank, m->in_shape, sh, sizeof sh);
    printf("%-16s %-18s %-22s %12d %14d\n", "input", "", sh, 0, 0);
    for (int i = 0; i < m->n_layers; i++) {
        const tg_layer *l = &m->layers[i];
        size_t p = 0;
        for (int k = 0; k < l->n_tensors; k++)
            if (l->tensors[k].is_state)
                state += l->tensors[k].t->size;
            else
                p += l->tensors[k].t->size;
        params += p;
        double f = layer_flops(l);
        shape_str(l->out_rank, l->out_shape, sh, sizeof sh);
        printf("%-16s %-18s %-22s %12zu ", l->name, l->kind->name, sh, p);
        if (f < 0)
            printf("%14s\n", "-"), unknown++;
        else
            printf("%14.0f\n", f), total += f;
    }
    printf("Total params: %zu\n", params + state);
    printf("Trainable params: %zu\n", params);
    printf("Non-trainable params: %zu (state: batch norm's running statistics)\n", state);
    printf("Forward FLOPs per example: %.0f (a multiply-add counts 2%s)\n", total,
           unknown ? "; layers marked '-' not counted" : "");
    printf("dtype %s; inputs %s", m->dtype == TG_F32 ? "float32" : "float64",
           m->mean ? "standardised with the training statistics" : "as given");
    for (int i = 0; i < m->n_meta; i++)
        printf("; %s %s", m->meta[i].key, m->meta[i].value);
    printf("\n");
}

int cmd_summary(const cli_opts *o) {
    cli_model cm;
    if (o->model) {
        if (!cli_model_load(o->model, &cm)) return EXIT_DATA;
    } else if (!cli_model_build(&cm, o->layers, o->dtype, o->in_rank, o->in_shape, 0)) {
        return EXIT_USAGE;
    }
    print_summary(cm.m);
    cli_model_free(&cm);
    return 0;
}

int cmd_export(const cli_opts *o) {
    cli_model cm;
    if (!cli_model_load(o->inputs[0], &cm)) return EXIT_DATA;
    tg_status s = tg_safetensors_save(cm.m, o->inputs[1]);
    if (s)
        fprintf(stderr, "tapegrad: %s\n", tg_last_error());
    else
        printf("export: %d tensors of %s to %s\n", tg_model_tensors(cm.m, NULL, NULL, NULL, 0),
               o->inputs[0], o->inputs[1]);
    cli_model_free(&cm);
    return s ? EXIT_DATA : 0;
}

/* The outputs' meaning is not in a safetensors file: --loss, or ce for
 * several outputs; one output needs --loss bce or mse. */
int cmd_import(const cli_opts *o) {
    cli_model cm;
    if (tg_write_check(o->save))
        return fprintf(stderr, "tapegrad: %s\n", tg_last_error()), EXIT_DATA;
    if (!cli_model_build(&cm, o->layers, o->dtype, o->in_rank, o->in_shape, 1)) return EXIT_USAGE;
    int rc = EXIT_DATA;
    cm.loss = o->loss >= 0 ? (tg_loss_kind)o->loss : TG_LOSS_CE;
    if (o->loss < 0 && cm.n_out == 1) {
        fprintf(stderr, "tapegrad: import: the model has one output: say --loss bce or mse\n");
        rc = EXIT_USAGE;
    } else if (cm.loss == TG_LOSS_CE ? cm.n_out < 2 : cm.n_out != 1) {
        fprintf(stderr, "tapegrad: import: --loss %s does not fit %zu outputs\n",
                tg_loss_name(cm.loss), cm.n_out);
        rc = EXIT_USAGE;
    } else {
        cm.n_classes = cm.loss == TG_LOSS_CE ? (int)cm.n_out : cm.loss == TG_LOSS_BCE ? 2 : 0;
        tg_status s = tg_safetensors_load(cm.m, o->inputs[0]);
        if (!s && cli_model_set_task(&cm))
            s = tg_model_save(cm.m, o->save);
        else if (!s)
            s = TG_ERR_ARG;
        if (s)
            fprintf(stderr, "tapegrad: %s\n", tg_last_error());
        else
            printf("import: %s into %s (%zu parameters, loss %s)\n", o->inputs[0], o->save,
                   tg_model_param_count(cm.m), tg_loss_name(cm.loss)),
                rc = 0;
    }
    cli_model_free(&cm);
    return rc;
}
