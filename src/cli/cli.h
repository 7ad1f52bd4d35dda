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
} cli_opts;

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
