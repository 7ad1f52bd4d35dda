/* The tapegrad command-line tool: shared declarations. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include "tapegrad.h"
#include "tapegrad_io.h"
#include "tapegrad_nn.h"

#include <stdio.h>

/* Exit statuses: 1 bad data or a failed check, 2 bad arguments. */
enum { EXIT_DATA = 1, EXIT_USAGE = 2 };

typedef struct cli_opts {
    const char *data, *test_data, *model, *save, *plot, *log;
    int label;  /* column, −1 = last */
    int header; /* tg_csv_header: how a CSV's first line is read */
    size_t hidden[16];
    int n_hidden;
    int act;   /* tg_act */
    int loss;  /* tg_loss_kind, or −1 for auto */
    int opt;   /* tg_opt_kind */
    double lr; /* 0: the optimizer's default */
    int epochs;
    size_t batch;
    double val, test; /* fractions; test < 0: default */
    int standardize;
    int detect_anomaly; /* stop at the first op producing NaN/Inf */
    unsigned long long seed;
    tg_dtype dtype;
    int threads;
    int help; /* --help or -h: print the command's usage, exit 0 */
    /* issue 16: any model */
    const struct cli_layers *layers; /* --layers, parsed; NULL: an MLP from --hidden */
    int in_rank;                     /* --input-shape; 0: from the data */
    size_t in_shape[TG_MAX_RANK];
    const char *inputs[2]; /* export MODEL OUT; import IN */
    int mlp_set;           /* --hidden or --act given: not with --layers */
} cli_opts;

/* --layers text as layer specs (spec.c). item[i]: the --layers item layer i
 * came from (1-based; 0 for layers made from --hidden). */
#define CLI_MAX_LAYERS 256
typedef struct cli_layers {
    int n;
    tg_layer_spec specs[CLI_MAX_LAYERS];
    char names[CLI_MAX_LAYERS][TG_LAYER_NAME_MAX];
    int item[CLI_MAX_LAYERS];
    const char *text; /* the --layers text, or NULL */
} cli_layers;

/* Parse; on error write one line to err and return 0. */
int cli_layers_parse(const char *text, cli_layers *L, char *err, size_t errlen);
/* The text of --layers item k (1-based), trimmed, at most 80 characters. */
void cli_layers_item(const char *text, int k, char *out, size_t len);
/* Dense layers of the widths, each followed by act, then dense n_out. */
void cli_layers_mlp(cli_layers *L, int n_hidden, const size_t *widths, tg_act act, size_t n_out);
/* "1,28,28" (or 1x28x28): 1..7 sizes of 1..1e8. */
int cli_shape_parse(const char *s, int *rank, size_t *shape);

/* A model as the commands use it: the layers, and what its metadata says
 * about its outputs (model.c). */
typedef struct cli_model {
    tg_model *m;
    tg_loss_kind loss;
    int n_classes;        /* ce: C; bce: 2; mse: 0 */
    size_t n_in, n_out;   /* values per example in and out */
    double y_mean, y_std; /* mse: output·y_std + y_mean is in the target's units */
} cli_model;

/* Read a model file, version 2 or 1 (an MLP, converted to layers); prints
 * the error. */
int cli_model_load(const char *path, cli_model *cm);
/* Build from layers for examples of the shape; an error is one line naming
 * the --layers item. flat: the output must be one vector per example (what
 * the losses take). Tensors zeroed. */
int cli_model_build(cli_model *cm, const cli_layers *L, tg_dtype dt, int rank, const size_t *shape,
                    int flat);
/* Record loss, classes and the target's statistics in the metadata. */
int cli_model_set_task(cli_model *cm);
void cli_model_free(cli_model *cm);
/* The cost of outputs against the batch's targets, by cm->loss. */
tg_status cli_model_cost(tg_tape *t, const cli_model *cm, const tg_tensor *out,
                         const tg_tensor *target, tg_tensor **cost);
/* The example shape of DATA: --input-shape, or an IDX file's images
 * (1×H×W), or flat (d). */
int cli_input_shape(const cli_opts *o, const tg_dataset *ds, int *rank, size_t *shape);

/* Parse argv[first..] into o; on error print one line + usage, return 0. */
int cli_parse(int argc, char **argv, int first, const char *cmd, cli_opts *o);
void cli_usage(FILE *f);
/* One command's usage with each option's default (COMMAND --help). */
void cli_command_usage(FILE *f, const char *cmd);

/* Load DATA (a CSV path or idx:PREFIX) for a model of dtype dt, with o's
 * --label and --header; prints the error line on failure, and the CSV
 * loader's note when it guessed the header. */
int cli_load(const char *spec, const cli_opts *o, tg_dtype dt, tg_dataset *ds);

int cmd_fit(const cli_opts *o);
int cmd_eval(const cli_opts *o);
int cmd_predict(const cli_opts *o);
int cmd_graph(const cli_opts *o);
int cmd_gradcheck(const cli_opts *o);
int cmd_ops(void);
int cmd_summary(const cli_opts *o);
int cmd_export(const cli_opts *o);
int cmd_import(const cli_opts *o);

/* Progress and reports (report.c). */
/* Classification: acc; regression (mse): rmse, mae, r2 in the target's
 * original units (acc NaN). The loss is the training objective. */
typedef struct scores {
    double loss, acc, rmse, mae, r2;
} scores;

typedef struct epoch_row {
    scores train, held;
    double seconds;
} epoch_row;

/* metric: the running metric's name ("acc", "rmse") and value. */
void progress_update(int epoch, int epochs, size_t done, size_t total, double loss,
                     const char *metric, double value, double ex_per_s);
/* held: "val" or "test", the held-out set whose loss is shown; NULL: none. */
void progress_epoch_end(int epoch, int epochs, const epoch_row *r, const char *held);
/* Write the loss plot / the per-epoch CSV atomically (regression: rmse, mae,
 * r2 columns instead of accuracy); 0 on failure (printed). */
int report_svg(const char *path, const epoch_row *rows, int n, const char *held);
int report_csv(const char *path, const epoch_row *rows, int n, const char *held);

/* Data-parallel fit under mpirun (dist.c, issue 19); without MPI, or not
 * started by mpirun, each hook does nothing. start: join the job; returns
 * the options to use (a copy in *local: rank 0 alone keeps --save, --plot,
 * --log and stdout; the default --threads shares the host's CPUs among its
 * ranks), or NULL after printing an error (--batch not divisible). */
const cli_opts *cli_dist_start(const cli_opts *o, cli_opts *local);
/* This rank (0 in one process). */
int cli_dist_rank(void);
/* Check the parameters agree across ranks; copy rank 0's to all. */
tg_status cli_dist_attach(int n, tg_tensor *const *params);
/* This rank's share of a global batch of rows examples: count, first row. */
size_t cli_dist_rows(size_t rows);
size_t cli_dist_first(size_t rows);
/* After backward: the gradients (of a mean loss over local rows) and *loss
 * become the global batch's, on every rank. */
tg_status cli_dist_grads(size_t local_rows, size_t global_rows, double *loss);
/* Sum four metric accumulators across ranks. */
tg_status cli_dist_sum(double *a, double *b, double *c, double *d);
/* Before rank 0 writes files: SIGTERM back to its default action. */
void cli_dist_unwatch(void);
/* Leave the job (MPI_Finalize, or exit at once after an error only this
 * rank saw); returns rc. */
int cli_dist_end(int rc);

#endif
