/* fuzz_csv: tg_csv_load_opts on arbitrary bytes.
 * Input: byte 0 picks the label column (byte % 6 − 1: −1 = last, 0..4), the
 * header mode (byte / 6 % 3: auto, yes, no) and the dtype (byte / 18 % 2:
 * f32, f64); the rest is the file. Properties: an error is a status with a
 * one-line message free of control characters and an empty dataset; a
 * success is n >= 1 rows of d >= 1 features and targets finite in the
 * dtype; a note only comes with auto; the dataset helpers (classes,
 * standardise, split) accept whatever the loader accepted. ASan/UBSan/LSan
 * watch memory throughout. */
#include "fuzz_common.h"
#include "tapegrad_io.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_dir_init("csv");
    return 0;
}

/* Finite, and within float's range when loading for f32. */
static int holds(double v, tg_dtype dt) {
    return isfinite(v) && (dt == TG_F64 || fabs(v) < 0x1.ffffffp+127);
}

/* No byte below 0x20 or DEL: a message is one line that cannot drive a terminal. */
static int clean_text(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return 0;
    return 1;
}

static void check_dataset(tg_dataset *ds, tg_dtype dt) {
    FUZZ_ASSERT(ds->n >= 1 && ds->d >= 1 && ds->x && ds->y);
    for (size_t i = 0; i < ds->n * ds->d; i++)
        FUZZ_ASSERT(holds(ds->x[i], dt));
    for (size_t i = 0; i < ds->n; i++)
        FUZZ_ASSERT(holds(ds->y[i], dt));
    int classes = tg_dataset_classes(ds);
    FUZZ_ASSERT(classes >= 0 && classes <= 1000);
    if (ds->d > 4096) return; /* keep the helpers cheap on very wide rows */
    double *mean = malloc(ds->d * sizeof(double)), *std = malloc(ds->d * sizeof(double));
    FUZZ_ASSERT(mean && std);
    tg_status s = tg_standardize_fit(ds, mean, std);
    if (s == TG_OK) {
        for (size_t j = 0; j < ds->d; j++)
            FUZZ_ASSERT(isfinite(mean[j]) && isfinite(std[j]) && std[j] > 0);
        tg_standardize_apply(ds, mean, std);
    } else {
        fuzz_check_error(s);
    }
    free(mean), free(std);
    tg_dataset tr, va, te;
    s = tg_dataset_split(ds, 0.25, 0.25, 7, &tr, &va, &te);
    if (s == TG_OK) {
        FUZZ_ASSERT(tr.n + va.n + te.n == ds->n && tr.n >= 1);
        tg_dataset_free(&tr), tg_dataset_free(&va), tg_dataset_free(&te);
    } else {
        fuzz_check_error(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    tg_csv_options opt = tg_csv_defaults();
    opt.label_col = data[0] % 6 - 1;
    opt.header = (tg_csv_header)(data[0] / 6 % 3);
    opt.dtype = data[0] / 18 % 2 ? TG_F64 : TG_F32;
    char path[512];
    fuzz_path(path, sizeof path, "in.csv");
    fuzz_write(path, data + 1, size - 1);
    tg_dataset ds;
    memset(&ds, 0xA5, sizeof ds); /* the loader must set every field */
    tg_status s = tg_csv_load_opts(path, &opt, &ds);
    FUZZ_ASSERT(clean_text(opt.note) && (opt.header == TG_CSV_HEADER_AUTO || !opt.note[0]));
    if (s != TG_OK) {
        fuzz_check_error(s);
        FUZZ_ASSERT(s == TG_ERR_IO || s == TG_ERR_ARG);
        FUZZ_ASSERT(clean_text(tg_last_error()));
        FUZZ_ASSERT(ds.x == NULL && ds.y == NULL && ds.n == 0);
        /* the message names the file */
        FUZZ_ASSERT(strstr(tg_last_error(), path) != NULL);
        fuzz_stats_note(1, data, size);
        return 0;
    }
    fuzz_stats_note(0, data, size);
    check_dataset(&ds, opt.dtype);
    tg_dataset_free(&ds);
    return 0;
}
