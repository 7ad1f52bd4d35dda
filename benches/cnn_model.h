/* Issue 16's CNN as tg_layer specs, shared by benches/bench_cnn.c and
 * tests/test_torch_cnn.c (header-only). The layers are in the order of
 * benches/torch_cnn.py's nn.Sequential and named by their index, so the
 * state_dict names agree ("0.weight", "3.bias", ...):
 *   conv2d 32 3, relu, max_pool2d 2, conv2d 64 3, relu, max_pool2d 2,
 *   flatten, dense 128, relu, dense 10
 * with_bn: batch_norm after each conv2d (before its relu) and dropout 0.5
 * before the last dense. Input 1×28×28, logits N×10. */
#ifndef TAPEGRAD_BENCH_CNN_MODEL_H
#define TAPEGRAD_BENCH_CNN_MODEL_H

#include <tapegrad_io.h>
#include <tapegrad_nn.h>

static inline tg_status cnn_model_new(tg_model **m, tg_dtype dt, int with_bn) {
    tg_layer_spec all[13];
    int n = 0;
    all[n++] = (tg_layer_spec){.kind = "conv2d", .i = {32, 3}};
    if (with_bn) all[n++] = (tg_layer_spec){.kind = "batch_norm"};
    all[n++] = (tg_layer_spec){.kind = "relu"};
    all[n++] = (tg_layer_spec){.kind = "max_pool2d", .i = {2}};
    all[n++] = (tg_layer_spec){.kind = "conv2d", .i = {64, 3}};
    if (with_bn) all[n++] = (tg_layer_spec){.kind = "batch_norm"};
    all[n++] = (tg_layer_spec){.kind = "relu"};
    all[n++] = (tg_layer_spec){.kind = "max_pool2d", .i = {2}};
    all[n++] = (tg_layer_spec){.kind = "flatten"};
    all[n++] = (tg_layer_spec){.kind = "dense", .i = {128}};
    all[n++] = (tg_layer_spec){.kind = "relu"};
    if (with_bn) all[n++] = (tg_layer_spec){.kind = "dropout", .f = {0.5}};
    all[n++] = (tg_layer_spec){.kind = "dense", .i = {10}};
    const size_t in[3] = {1, 28, 28};
    return tg_model_new(m, dt, 3, in, n, all);
}

/* The logits of rows examples of ds (from `start`, in order) for a model
 * in eval mode, on tape t (reset before returning). x2: a rows × 784
 * tensor, y: rows labels (both of the model's dtype); *logits is on t
 * until the reset, so it is copied into out (rows × 10 doubles) if out is
 * not NULL; *right gets the number of correct argmaxes if not NULL. */
static inline tg_status cnn_eval_batch(tg_tape *t, const tg_model *m, const tg_dataset *ds,
                                       size_t start, tg_tensor *x2, tg_tensor *y, double *out,
                                       double *right) {
    size_t rows = x2->shape[0];
    long shape4[4] = {(long)rows, 1, 28, 28};
    tg_tensor *x4, *logits;
    tg_status s = tg_batch_fill(ds, NULL, start, rows, x2, y);
    if (!s) s = tg_reshape(t, x2, 4, shape4, &x4);
    if (!s) s = tg_model_forward(t, m, x4, 0, NULL, &logits);
    for (size_t i = 0; !s && out && i < rows * 10; i++)
        out[i] = tg_get(logits, i);
    if (!s && right) *right = tg_accuracy(logits, ds->y + start, rows) * (double)rows;
    tg_tape_reset(t);
    return s;
}

#endif
