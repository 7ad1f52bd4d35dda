/*
 * tapegrad_io.h — data, metrics, model files and graph export.
 *
 * Errors name the file, the line and the column where there is one:
 *   "data.csv:14:3: 'abc' is not a number".
 */
#ifndef TAPEGRAD_IO_H
#define TAPEGRAD_IO_H

#include <stdio.h>

#include "tapegrad.h"
#include "tapegrad_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- datasets */

/* n examples (rows) of d features, row-major, and one target per example. */
typedef struct tg_dataset {
    size_t n, d;
    double *x; /* n × d */
    double *y; /* n */
} tg_dataset;

void tg_dataset_free(tg_dataset *ds); /* frees x and y, zeroes *ds */

/* CSV: comma-separated numbers, one example per line; lines end in LF, CRLF
 * or a lone CR (old Mac files), the last one may have no end. A leading
 * UTF-8 byte-order mark is skipped. label_col: the target's column, 0-based;
 * −1 is the last column. Empty lines are skipped. Nothing is dropped
 * silently: a malformed cell, a ragged row, or a cell the dtype cannot hold
 * as a finite number (empty, nan, inf, NA, 1e39 for float32, 1e999) is
 * TG_ERR_IO naming file, line and column, with the cell's text in quotes and
 * its control characters escaped ('\r', \x01).
 *
 * The header: with TG_CSV_HEADER_AUTO the first non-empty line is a header
 * only if it could not be data: at least one of its cells is text (not a
 * number, not empty, not NaN-like: nan, inf, NA, N/A, null, None, ...). A
 * first line with both text and number cells is a guess (taken as a
 * header), and the guess is explained in `note`. A header must have as many
 * cells as the rows under it. TG_CSV_HEADER_YES skips the first non-empty
 * line whatever it holds; TG_CSV_HEADER_NO reads it as data. */
typedef enum tg_csv_header {
    TG_CSV_HEADER_AUTO,
    TG_CSV_HEADER_YES,
    TG_CSV_HEADER_NO
} tg_csv_header;

typedef struct tg_csv_options {
    int label_col;        /* the target's column; −1 the last */
    tg_csv_header header; /* how the first line is read */
    tg_dtype dtype;       /* every cell must be finite in this dtype */
    char note[256];       /* out: one line when AUTO guessed, else "" */
} tg_csv_options;

/* label_col −1, TG_CSV_HEADER_AUTO, TG_F64, no note. */
tg_csv_options tg_csv_defaults(void);

/* Loads path with the options; opt->note is written (see above). */
tg_status tg_csv_load_opts(const char *path, tg_csv_options *opt, tg_dataset *out);

/* tg_csv_load_opts with the defaults and label_col. */
tg_status tg_csv_load(const char *path, int label_col, tg_dataset *out);

/* IDX (the MNIST format): PREFIX-images-idx3-ubyte[.gz] and
 * PREFIX-labels-idx1-ubyte[.gz]; pixels scaled to [0, 1]. Each file is read
 * to its end. A truncated or foreign file, data past what the header
 * promised, or a gzip stream that fails zlib's CRC and length check ("gzip
 * data check failed") or lacks them is TG_ERR_IO naming the file. Memory
 * grows with the bytes read, not with the sizes the header claims. */
tg_status tg_idx_load(const char *prefix, tg_dataset *out);

/* The number of classes if every target is an integer in [0, 1000): the
 * largest + 1; 0 if some target is not (a regression target). */
int tg_dataset_classes(const tg_dataset *ds);

/* Per-feature mean and standard deviation (std 1 where a feature is
 * constant), and x := (x − mean) / std. */
tg_status tg_standardize_fit(const tg_dataset *ds, double *mean, double *std);
void tg_standardize_apply(tg_dataset *ds, const double *mean, const double *std);

/* Seeded shuffle, then split into train / validation / test by fractions
 * (val + test < 1). Outputs are copies; any of val/test may be NULL when
 * its fraction is 0. */
tg_status tg_dataset_split(const tg_dataset *all, double val_frac, double test_frac, uint64_t seed,
                           tg_dataset *train, tg_dataset *val, tg_dataset *test);

/* Fisher–Yates shuffle of idx[0..n) with the seeded generator. */
void tg_shuffle(size_t *idx, size_t n, tg_rng *rng);

/* Copy examples idx[start .. start+rows) into x (rows × d, or rows × an
 * example shape of d elements, as N×1×28×28 for images) and y: y has
 * `rows` elements (labels) or rows × 1. Converts to the tensors' dtype;
 * allocates nothing. */
tg_status tg_batch_fill(const tg_dataset *ds, const size_t *idx, size_t start, size_t rows,
                        tg_tensor *x, tg_tensor *y);

/* ---------------------------------------------------------------- metrics */

/* Fraction of rows whose prediction matches the label. logits: rows × C
 * (argmax) or rows × 1 (logit > 0 means class 1). NaN if rows is 0, the
 * shapes disagree, or any logit is NaN (a model gone NaN has no accuracy). */
double tg_accuracy(const tg_tensor *logits, const double *labels, size_t rows);
/* confusion[true · C + predicted] += 1 for each row; C = classes. Rows
 * whose logits hold a NaN, or whose label is no class, are not counted. */
void tg_confusion_add(const tg_tensor *logits, const double *labels, size_t rows, int classes,
                      uint64_t *confusion);

/* ---------------------------------------------------------------- model files */

/* Binary, little-endian, versioned, with a CRC-32 (format in
 * docs/model-format.md). Saving writes a temporary file in the same folder,
 * fsyncs it and renames it over the target: a crash leaves the old file. */
tg_status tg_mlp_save(const tg_mlp *m, const char *path);
/* A truncated, corrupt or foreign file is TG_ERR_IO with a message naming
 * the file and what is wrong. */
tg_status tg_mlp_load(tg_mlp **out, const char *path);

/* Any tg_model (tapegrad_nn.h), format version 2: its input shape, layer
 * specs (kind, name, options), named tensors (parameters and state, in
 * tg_model_tensors order) and standardisation statistics (m->mean/std of
 * n_stats = the features per example, or none). Written atomically as
 * tg_mlp_save; TG_ERR_ARG for a model the loader would refuse. */
tg_status tg_model_save(const tg_model *m, const char *path);
/* A version-2 file. Kinds of the program's own must be registered
 * (tg_layer_kind_register) before. A truncated, corrupt or foreign file,
 * or a version-1 file (load those with tg_mlp_load), is TG_ERR_IO naming
 * the file and what is wrong. Memory is bounded by the file's size. */
tg_status tg_model_load(tg_model **out, const char *path);

/* safetensors (the layout PyTorch users exchange weights in,
 * huggingface/safetensors): a u64 little-endian header length N, N bytes
 * of JSON {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 * ..., "__metadata__": {...}}, then the raw little-endian row-major data
 * (offsets count from the byte after the header).
 *
 * tg_safetensors_save writes m's tensors (tg_model_tensors: parameters and
 * state, PyTorch's state_dict names and order, the model's dtype F32/F64),
 * metadata {"format": "pt", "producer": "tapegrad"}, the header padded with
 * spaces to a multiple of 8; atomically (tg_write_file_atomic). Its
 * tensors go into torch's model.load_state_dict(strict=True) (batch norm's
 * num_batches_tracked is not written; torch 1.13 fills it in): checked by
 * tests/safetensors_check.py where torch is installed.
 *
 * tg_safetensors_load fills an existing model of the same architecture:
 * every tensor of the model must be in the file with exactly its shape;
 * dtype F32 or F64 (converted to the model's dtype; same dtype is bit for
 * bit); a tensor the model lacks is refused, naming it (no silent
 * skipping). The file is hostile until checked: the header length must fit
 * in the file, the header must be one JSON object (cJSON), offsets
 * integers within the data, end − begin = numel × dtype size, no two
 * tensors overlapping; __metadata__ an object of strings. Every entry is
 * checked before any value is written: on error the model is unchanged.
 * Errors: TG_ERR_IO naming the file and the tensor ("w.safetensors: tensor
 * '0.weight' has shape [3, 4], the model's is [4, 3]"); memory bounded by
 * the file's size (at most 2 GiB). */
tg_status tg_safetensors_save(const tg_model *m, const char *path);
tg_status tg_safetensors_load(tg_model *m, const char *path);

/* Replace the file at path with buf, atomically: a temporary file in the
 * same folder, fsync, rename, fsync of the folder. A crash leaves the old
 * file or the new one. SIGINT, SIGTERM, SIGHUP or SIGQUIT during the write
 * (where the program left their default action) removes the temporary file
 * and then ends the process as the signal would have; SIGKILL leaves
 * PATH.tmp.XXXXXX. A folder as path, or any failing step, is TG_ERR_IO
 * naming the path and the step. */
tg_status tg_write_file_atomic(const char *path, const void *buf, size_t len);

/* Whether tg_write_file_atomic(path, ...) could start: path is not a
 * folder and a temporary file can be created (and is removed again) beside
 * it. For checking an output before a long run rather than after it.
 * TG_ERR_IO naming the path and the reason ("Permission denied",
 * "Read-only file system", "No such file or directory"). */
tg_status tg_write_check(const char *path);

/* ---------------------------------------------------------------- graph export */

/* The ops recorded on a tape as Graphviz DOT: one node per op (name, output
 * shape), leaves as boxes (parameters marked), edges input → op. */
tg_status tg_tape_dot(const tg_tape *t, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
