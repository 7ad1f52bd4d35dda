/* Classification metrics on a batch of logits. These return values, not a
 * status, so a malformed call yields NaN (accuracy) or adds nothing
 * (confusion) rather than crashing. */
#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <math.h>

/* Classes per row of logits: the last dimension; a vector is rows × 1. */
static size_t logit_cols(const tg_tensor *logits, size_t rows) {
    if (!logits || !logits->data || rows == 0) return 0;
    size_t c = logits->rank >= 2 ? logits->shape[logits->rank - 1] : 1;
    return c && logits->size / c >= rows ? c : 0;
}

/* No prediction: a row whose logits hold a NaN. */
#define NO_CLASS ((size_t)-1)

/* The predicted class of row i: argmax over the row (the first on ties),
 * or for a single logit, class 1 when it is positive (probability > 1/2);
 * NO_CLASS if the row holds a NaN, which a comparison would skip (argmax of
 * [NaN, 1] would be 1, and a model gone NaN would score like a live one). */
static size_t predict(const tg_tensor *logits, size_t cols, size_t i) {
    size_t best = 0;
    double top = tg_get(logits, i * cols);
    for (size_t j = 0; j < cols; j++) {
        double v = tg_get(logits, i * cols + j);
        if (isnan(v)) return NO_CLASS;
        if (v > top) top = v, best = j;
    }
    return cols == 1 ? top > 0 : best;
}

double tg_accuracy(const tg_tensor *logits, const double *labels, size_t rows) {
    size_t cols = logit_cols(logits, rows);
    if (!cols || !labels) return NAN;
    size_t hits = 0;
    for (size_t i = 0; i < rows; i++) {
        size_t p = predict(logits, cols, i);
        if (p == NO_CLASS) return NAN;
        hits += (double)p == labels[i];
    }
    return (double)hits / (double)rows;
}

void tg_confusion_add(const tg_tensor *logits, const double *labels, size_t rows, int classes,
                      uint64_t *confusion) {
    size_t cols = logit_cols(logits, rows);
    if (!cols || !labels || !confusion || classes <= 0) return;
    size_t c = (size_t)classes;
    for (size_t i = 0; i < rows; i++) {
        double t = labels[i];
        size_t p = predict(logits, cols, i);
        /* A label that is no class index, or a prediction past the matrix
         * (NO_CLASS included), has no cell to count in. */
        if (!(t >= 0 && t < (double)c) || t != floor(t) || p >= c) continue;
        confusion[(size_t)t * c + p]++;
    }
}
