/* Data loading and handling: CSV and IDX files (good ones with their
 * values, and every malformed case with its exact message), splits,
 * shuffling, standardisation, mini-batches and the metrics. Files are
 * written into a fresh directory under /tmp, removed at the end. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "check.h"
#include "tapegrad_io.h"
#include "tapegrad_testing.h"

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- temp files */

static char dir[64];
static char made[128][128]; /* files written, removed by cleanup() */
static int nmade;

/* DIR/name, in one of a few rotating buffers so that two can be alive. */
static const char *in_dir(const char *name) {
    static char bufs[4][160];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static void remember(const char *path) {
    for (int i = 0; i < nmade; i++)
        if (strcmp(made[i], path) == 0) return;
    CHECK(nmade < 128, "too many temp files");
    if (nmade < 128) snprintf(made[nmade++], sizeof made[0], "%s", path);
}

static const char *write_file(const char *name, const void *bytes, size_t len) {
    const char *p = in_dir(name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL, "cannot create %s", p);
    if (!f) return p;
    CHECK(fwrite(bytes, 1, len, f) == len, "short write to %s", p);
    fclose(f);
    remember(p);
    return p;
}

static const char *write_text(const char *name, const char *text) {
    return write_file(name, text, strlen(text));
}

static void cleanup(void) {
    for (int i = 0; i < nmade; i++)
        unlink(made[i]);
    CHECK(rmdir(dir) == 0, "temp dir %s not empty", dir);
}

/* ---------------------------------------------------------------- CSV: good files */

static void check_values(const double *got, const double *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        CHECK(got[i] == want[i], "%s[%zu] = %g, want %g", what, i, got[i], want[i]);
}

/* Loads text with the options and checks shape and every value exactly:
 * strtod is correctly rounded, so the doubles equal the literals. */
static void expect_csv_opt(const char *name, const char *text, tg_csv_options *opt, size_t n,
                           size_t d, const double *x, const double *y) {
    tg_dataset ds;
    CHECK_OK(tg_csv_load_opts(write_text(name, text), opt, &ds));
    CHECK(ds.n == n && ds.d == d, "%s: %zux%zu, want %zux%zu", name, ds.n, ds.d, n, d);
    if (ds.n == n && ds.d == d) {
        check_values(ds.x, x, n * d, name);
        check_values(ds.y, y, n, name);
    }
    tg_dataset_free(&ds);
    CHECK(ds.x == NULL && ds.y == NULL && ds.n == 0, "free does not zero the data set");
}

/* The same with the default options and label_col. */
static void expect_csv(const char *name, const char *text, int label_col, size_t n, size_t d,
                       const double *x, const double *y) {
    tg_csv_options opt = tg_csv_defaults();
    opt.label_col = label_col;
    expect_csv_opt(name, text, &opt, n, d, x, y);
    CHECK(opt.note[0] == '\0', "%s: a note where nothing was guessed: %s", name, opt.note);
}

static void test_csv_good(void) {
    expect_csv("header.csv", "a,b,label\n1,2,0\n3.5,-4e2,1\n", -1, 2, 2,
               (double[]){1, 2, 3.5, -400}, (double[]){0, 1});
    expect_csv("first.csv", "7,1,2\n8,3,4\n", 0, 2, 2, (double[]){1, 2, 3, 4}, (double[]){7, 8});
    /* No newline after the last row. */
    expect_csv("middle.csv", "f1,y,f2\n1,9,2\n3,8,4", 1, 2, 2, (double[]){1, 2, 3, 4},
               (double[]){9, 8});
    expect_csv("crlf.csv", "x,y\r\n\r\n1,2\r\n\r\n  \n3,4\r\n\n", -1, 2, 1, (double[]){1, 3},
               (double[]){2, 4});
    /* Blanks around numbers are not garbage; hex and tiny values are numbers. */
    expect_csv("spaces.csv", " 1 ,\t2\n0x10,1e-310\n", 1, 2, 1, (double[]){1, 16},
               (double[]){2, 1e-310});
    /* A numeric first line is data, not a header. */
    expect_csv("noheader.csv", "\n\n5,6\n", -1, 1, 1, (double[]){5}, (double[]){6});
}

/* ---------------------------------------------------------------- CSV: errors */

static void expect_csv_err_opt(const char *name, const char *text, tg_csv_options *opt,
                               tg_status want, const char *msg_after_path) {
    const char *p = write_text(name, text);
    char msg[512];
    snprintf(msg, sizeof msg, "%s%s", p, msg_after_path);
    tg_dataset ds = {.n = 99};
    EXPECT_ERR(tg_csv_load_opts(p, opt, &ds), want, msg);
    CHECK(ds.n == 0 && ds.x == NULL && ds.y == NULL, "%s: output not cleared on error", name);
    /* One line: nothing from the input may break it. */
    CHECK(strpbrk(tg_last_error(), "\r\n") == NULL, "%s: control character in message", name);
}

static void expect_csv_err(const char *name, const char *text, int label_col, tg_status want,
                           const char *msg_after_path) {
    tg_csv_options opt = tg_csv_defaults();
    opt.label_col = label_col;
    expect_csv_err_opt(name, text, &opt, want, msg_after_path);
}

static void test_csv_errors(void) {
    expect_csv_err("bad.csv", "1,2,3\n4,abc,6\n", -1, TG_ERR_IO, ":2:2: 'abc' is not a number");
    /* Line numbers count the header and blank lines: they are the file's lines. */
    expect_csv_err("bad2.csv", "h1,h2\n\n1,2\n3,x\n", -1, TG_ERR_IO, ":4:2: 'x' is not a number");
    expect_csv_err("garbage.csv", "1,2\n1.5x,2\n", -1, TG_ERR_IO, ":2:1: '1.5x' is not a number");
    expect_csv_err("emptycell.csv", "1,2,3\n4,,6\n", -1, TG_ERR_IO, ":2:2: empty cell");
    expect_csv_err("blankcell.csv", "1,2,3\n4, \t,6\n", -1, TG_ERR_IO, ":2:2: empty cell");
    expect_csv_err("trailcomma.csv", "1,2\n3,4,\n", -1, TG_ERR_IO,
                   ":2:3: row has 3 cells, expected 2");
    expect_csv_err("nan.csv", "1,2\nnan,2\n", -1, TG_ERR_IO, ":2:1: 'nan' is not a finite number");
    expect_csv_err("inf.csv", "1,2\n3,-inf\n", -1, TG_ERR_IO,
                   ":2:2: '-inf' is not a finite number");
    expect_csv_err("overflow.csv", "1,2\n3,1e999\n", -1, TG_ERR_IO,
                   ":2:2: '1e999' is too large for float64");
    expect_csv_err("ragged.csv", "1,2,3,4\n1,2,3,4,5\n", -1, TG_ERR_IO,
                   ":2:5: row has 5 cells, expected 4");
    expect_csv_err("short.csv", "a,b,c,d\n1,2,3,4\n\n1,2,3\n", -1, TG_ERR_IO,
                   ":4:4: row has 3 cells, expected 4");
    expect_csv_err("empty.csv", "", -1, TG_ERR_IO, ": no data rows");
    expect_csv_err("blank.csv", "\n\r\n  \n", -1, TG_ERR_IO, ": no data rows");
    expect_csv_err("headeronly.csv", "a,b,c\n", -1, TG_ERR_IO, ": no data rows after the header");
    expect_csv_err("range.csv", "1,2,3,4\n", 4, TG_ERR_ARG,
                   ": label column 4 out of range: the file has 4 columns");
    expect_csv_err("range2.csv", "1,2\n", -2, TG_ERR_ARG, ": label column -2: must be >= 0");
    expect_csv_err("onecol.csv", "y\n1\n2\n", -1, TG_ERR_IO,
                   ":2:1: only 1 column: needs a label and at least one feature");
    /* A NUL byte inside a cell must not end it early; the message shows it
     * escaped. */
    static const char nul[] = "1,2\n3,4\0"
                              "5\n";
    const char *np = write_file("nul.csv", nul, sizeof nul - 1);
    char nmsg[256];
    snprintf(nmsg, sizeof nmsg, "%s:2:2: '4\\x005' is not a number", np);
    EXPECT_ERR(tg_csv_load(np, -1, &(tg_dataset){0}), TG_ERR_IO, nmsg);
    /* A long bad cell is shortened in the message. */
    char cell[200];
    memset(cell, 'z', 120);
    strcpy(cell + 120, ",1\n");
    char text[256];
    snprintf(text, sizeof text, "1,2\n%s", cell);
    char want[80] = ":2:1: '";
    memset(want + 7, 'z', 40);
    strcpy(want + 47, "...' is not a number");
    expect_csv_err("longcell.csv", text, -1, TG_ERR_IO, want);

    const char *missing = in_dir("missing.csv");
    char msg[256];
    snprintf(msg, sizeof msg, "%s: No such file or directory", missing);
    tg_dataset ds;
    EXPECT_ERR(tg_csv_load(missing, -1, &ds), TG_ERR_IO, msg);
    EXPECT_ERR(tg_csv_load(NULL, -1, &ds), TG_ERR_ARG, "csv: path, options or out is NULL");
}

/* A file, and the message after its path that loading it must give. */
typedef struct csv_case {
    const char *name, *text, *msg;
} csv_case;

static void expect_csv_errs(const csv_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++)
        expect_csv_err(cases[i].name, cases[i].text, -1, TG_ERR_IO, cases[i].msg);
}

/* Line ends: LF, CRLF and a lone CR all end a line, each counted once;
 * a UTF-8 byte-order mark is not part of the first cell (issue 12 §3). */
static void test_csv_line_ends(void) {
    /* The case: the BOM made line 1 a header, 3 of 4 rows loaded. */
    expect_csv("bom.csv",
               "\xEF\xBB\xBF"
               "0.5,1.5,0\n1,2,1\n3,4,0\n5,6,1\n",
               -1, 4, 2, (double[]){0.5, 1.5, 1, 2, 3, 4, 5, 6}, (double[]){0, 1, 0, 1});
    expect_csv("bomhdr.csv",
               "\xEF\xBB\xBF"
               "a,y\r\n7,1\r\n",
               -1, 1, 1, (double[]){7}, (double[]){1});
    /* Old Mac files: "no data rows after the header" before. */
    expect_csv("cr.csv", "a,b,y\r1,2,0\r3,4,1\r", -1, 2, 2, (double[]){1, 2, 3, 4},
               (double[]){0, 1});
    expect_csv("cr-noend.csv", "1,2\r\r3,4", -1, 2, 1, (double[]){1, 3}, (double[]){2, 4});
    expect_csv("mixed.csv", "1,2\n3,4\r5,6\r\n7,8\n\r\n9,10", -1, 5, 1, (double[]){1, 3, 5, 7, 9},
               (double[]){2, 4, 6, 8, 10});
    /* Line numbers: a CRLF is one end, a CR then a CRLF two. */
    expect_csv_err("crlf-line.csv", "1,2\r\n3,4\r\r\n5,x\r\n", -1, TG_ERR_IO,
                   ":4:2: 'x' is not a number");
    /* A CR inside an unquoted cell ends the line: the rest is a short row. */
    expect_csv_err("cr-cell.csv", "1,2,3\n4,5\r6\n", -1, TG_ERR_IO,
                   ":2:3: row has 2 cells, expected 3");
    expect_csv_err("utf16.csv",
                   "\xFF\xFE"
                   "1\0,\0"
                   "2\0",
                   -1, TG_ERR_IO,
                   ":1:1: UTF-16 text (byte-order mark \\xFF\\xFE): save it as UTF-8");
    /* A CRLF split across the reader's 64 KiB blocks: the CR is the last
     * byte of the first block, the LF the first of the next. */
    enum { BLOCK = 1 << 16 };
    char *text = malloc(BLOCK + 64);
    CHECK(text != NULL, "malloc");
    if (!text) return;
    memset(text, ' ', BLOCK);
    memcpy(text + BLOCK - 4, "1,2\r", 4);
    strcpy(text + BLOCK, "\n3,4\r\n5,y\n");
    expect_csv_err("split-crlf.csv", text, -1, TG_ERR_IO, ":3:2: 'y' is not a number");
    free(text);
}

/* The header is decided from all the first line's cells (issue 12 §3). */
static void test_csv_header(void) {
    /* The cases: these lines were taken as headers and dropped. */
    static const csv_case dropped[] = {
        {"nan1.csv", "0.5,nan,0\n1,2,1\n3,4,0\n", ":1:2: 'nan' is not a finite number"},
        {"empty1.csv", "0.5,,0\n1,2,1\n", ":1:2: empty cell"},
        {"na1.csv", "0.5, NA ,0\n1,2,1\n", ":1:2: 'NA' is not a finite number"},
        {"inf1.csv", "-Infinity,1,0\n1,2,1\n", ":1:1: '-Infinity' is not a finite number"},
    };
    expect_csv_errs(dropped, sizeof dropped / sizeof *dropped);
    /* Forced: yes skips the line whatever it holds, no reads it as data. */
    tg_csv_options opt = tg_csv_defaults();
    opt.header = TG_CSV_HEADER_YES;
    expect_csv_opt("yes.csv", "0.5,nan,0\n1,2,1\n3,4,0\n", &opt, 2, 2, (double[]){1, 2, 3, 4},
                   (double[]){1, 0});
    expect_csv_opt("yes-num.csv", "\n9,9\n1,2\n", &opt, 1, 1, (double[]){1}, (double[]){2});
    expect_csv_err_opt("yes-only.csv", "1,2\n", &opt, TG_ERR_IO, ": no data rows after the header");
    opt.header = TG_CSV_HEADER_NO;
    expect_csv_opt("no.csv", "0.5,1.5,0\n1,2,1\n", &opt, 2, 2, (double[]){0.5, 1.5, 1, 2},
                   (double[]){0, 1});
    expect_csv_err_opt("no-text.csv", "x,y\n1,2\n", &opt, TG_ERR_IO, ":1:1: 'x' is not a number");
    CHECK(opt.note[0] == '\0', "forced: no note: %s", opt.note);
    /* Text and numbers together: taken as a header, and said so. */
    opt.header = TG_CSV_HEADER_AUTO;
    expect_csv_opt("guess.csv", "id,0.5,y\n1,2,0\n", &opt, 1, 2, (double[]){1, 2}, (double[]){0});
    char want[256];
    snprintf(want, sizeof want,
             "%s:1: taken as a header (cell 1 'id' is text) though cell 2 '0.5' is a number; "
             "--header no reads it as data",
             in_dir("guess.csv"));
    CHECK(strcmp(opt.note, want) == 0, "note '%s', want '%s'", opt.note, want);
    /* pandas' index column has an empty name: still a header. */
    expect_csv(",a,y\n", ",a,y\n0,1.5,1\n", -1, 1, 2, (double[]){0, 1.5}, (double[]){1});
    /* A title line over a table is not its header. */
    expect_csv_err("title.csv", "My data\n1,2,0\n", -1, TG_ERR_IO,
                   ":2:2: row has 3 cells, the header (line 1) has 1");
    opt.header = (tg_csv_header)3;
    expect_csv_err_opt("mode.csv", "1,2\n", &opt, TG_ERR_ARG, ": header mode 3");
}

/* A cell the dtype cannot hold as a finite number is an error with what
 * would hold it; the float32 limit is exact (issue 12 §3). */
static void test_csv_dtype(void) {
    tg_csv_options opt = tg_csv_defaults();
    opt.dtype = TG_F32;
    expect_csv_err_opt("f32.csv", "1,2\n1e39,1\n", &opt, TG_ERR_IO,
                       ":2:1: '1e39' is too large for float32: load as float64 (--dtype f64)");
    expect_csv_err_opt("f32-label.csv", "1,2\n1,-4e38\n", &opt, TG_ERR_IO,
                       ":2:2: '-4e38' is too large for float32");
    /* 2^128 − 2^103 rounds to inf in float32; the double just below it
     * rounds to FLT_MAX = 0x1.fffffep+127. */
    expect_csv_err_opt("f32-edge.csv", "0x1.ffffffp+127,1\n", &opt, TG_ERR_IO,
                       ":1:1: '0x1.ffffffp+127' is too large for float32");
    expect_csv_opt("f32-max.csv", "0x1.fffffefffffffp+127,-0x1.fffffep+127\n", &opt, 1, 1,
                   (double[]){0x1.fffffefffffffp+127}, (double[]){-0x1.fffffep+127});
    opt.dtype = TG_F64;
    expect_csv_opt("f64.csv", "1,2\n1e39,1\n", &opt, 2, 1, (double[]){1, 1e39}, (double[]){2, 1});
    /* Underflow is no error: 1e-400 is 0 in float64, as strtod gives. */
    expect_csv("tiny.csv", "1e-400,1\n", -1, 1, 1, (double[]){0}, (double[]){1});
    /* Integer labels past int: loaded exactly, not wrapped into a class. */
    tg_dataset ds;
    CHECK_OK(
        tg_csv_load(write_text("bigint.csv", "1,4294967296\n2,18446744073709551617\n"), -1, &ds));
    CHECK(ds.n == 2 && ds.y[0] == 4294967296.0 && ds.y[1] == 18446744073709551616.0,
          "big integer labels");
    CHECK(tg_dataset_classes(&ds) == 0, "labels of 2^32 are no class: %d", tg_dataset_classes(&ds));
    tg_dataset_free(&ds);
}

/* Error text never carries the input's control characters (issue 12 §3). */
static void test_csv_escapes(void) {
    /* UTF-8 stays readable; a C1 control (U+009B, CSI) and a stray byte do not. */
    static const csv_case cases[] = {
        {"ctl.csv", "1,2\n3,a\x01\x7f\x1b[31m\n", ":2:2: 'a\\x01\\x7F\\x1B[31m' is not a number"},
        {"tab.csv", "1,2\n3,a\tb\n", ":2:2: 'a\\tb' is not a number"},
        {"utf8.csv", "1,2\n3,\xC3\xA9t\xC3\xA9\n", ":2:2: '\xC3\xA9t\xC3\xA9' is not a number"},
        {"c1.csv",
         "1,2\n3,\xC2\x9B"
         "2J\xFF\n",
         ":2:2: '\\xC2\\x9B2J\\xFF' is not a number"},
    };
    expect_csv_errs(cases, sizeof cases / sizeof *cases);
    /* The guess's note too. */
    tg_csv_options opt = tg_csv_defaults();
    expect_csv_opt("ctl-note.csv", "\x1b]0;x\x07,1\n2,3\n", &opt, 1, 1, (double[]){2},
                   (double[]){3});
    CHECK(strstr(opt.note, "'\\x1B]0;x\\x07'") != NULL, "note not escaped: %s", opt.note);
}

/* Memory follows the data (issue 12 §5): one line of 10^6 columns (2 MB)
 * needs 8 MB of doubles; the loader once asked 64 rows' worth (512 MB)
 * before storing the first. Under a 32 MiB per-block limit it loads. */
static void test_csv_memory(void) {
    enum { COLS = 1000000 };
    char *text = malloc(2 * (size_t)COLS + 1);
    CHECK(text != NULL, "malloc");
    if (!text) return;
    for (size_t j = 0; j < COLS; j++)
        memcpy(text + 2 * j, j + 1 < COLS ? "1," : "0\n", 2);
    const char *p = write_file("wide1.csv", text, 2 * (size_t)COLS);
    free(text);
    tg_dataset ds;
    tg_testing_alloc_limit((size_t)32 << 20);
    tg_status s = tg_csv_load(p, -1, &ds);
    tg_testing_alloc_limit(0);
    CHECK(s == TG_OK && ds.n == 1 && ds.d == COLS - 1 && ds.y[0] == 0 && ds.x[COLS - 2] == 1,
          "10^6 columns under 32 MiB blocks: %s %s", tg_status_name(s), tg_last_error());
    tg_dataset_free(&ds);
}

/* 2 rows of 100 000 columns: far past any fixed line buffer. */
static void test_csv_long_lines(void) {
    enum { COLS = 100000 };
    size_t cap = (size_t)COLS * 16 * 2 + 64, len = 0;
    char *text = malloc(cap);
    CHECK(text != NULL, "malloc");
    if (!text) return;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < COLS; j++)
            len += (size_t)snprintf(text + len, cap - len, "%d%c", r * COLS + j,
                                    j == COLS - 1 ? '\n' : ',');
    tg_dataset ds;
    CHECK_OK(tg_csv_load(write_file("wide.csv", text, len), 0, &ds));
    CHECK(ds.n == 2 && ds.d == COLS - 1, "wide: %zux%zu", ds.n, ds.d);
    if (ds.n == 2 && ds.d == COLS - 1) {
        CHECK(ds.y[0] == 0 && ds.y[1] == COLS, "wide labels %g %g", ds.y[0], ds.y[1]);
        int bad = 0;
        for (size_t i = 0; i < 2 * ds.d; i++) {
            size_t r = i / ds.d, j = i % ds.d + 1;
            bad += ds.x[i] != (double)(r * COLS + j);
        }
        CHECK(bad == 0, "wide: %d wrong values", bad);
    }
    tg_dataset_free(&ds);
    /* The same with the very last cell broken: the column is counted right. */
    memcpy(text + len - 7, "oops!!", 6);
    const char *p = write_file("wide-bad.csv", text, len);
    char msg[256];
    snprintf(msg, sizeof msg, "%s:2:%d: 'oops!!' is not a number", p, COLS);
    EXPECT_ERR(tg_csv_load(p, 0, &ds), TG_ERR_IO, msg);
    free(text);
}

/* Every allocation failure on the way must give TG_ERR_NOMEM and, as the
 * sanitizer build checks, leak nothing. */
static void test_csv_nomem(void) {
    const char *p = write_text("nomem.csv", "a,b\n1,2\n3,4\n5,6\n");
    tg_status s = TG_ERR_NOMEM;
    int k, wrong = 0;
    tg_dataset ds;
    for (k = 1; k < 50 && s == TG_ERR_NOMEM; k++) {
        tg_testing_fail_alloc_at((uint64_t)k);
        s = tg_csv_load(p, -1, &ds);
        wrong += s != TG_OK && s != TG_ERR_NOMEM;
        if (s == TG_OK) tg_dataset_free(&ds);
    }
    tg_testing_fail_alloc_at(0);
    CHECK(s == TG_OK && k > 2 && wrong == 0, "csv under failing allocations: %s after %d tries",
          tg_status_name(s), k);
}

/* Random byte edits of a good file: every result is OK or an error with a
 * message, never a crash (the sanitizer build checks memory safety). */
static void test_csv_mutations(void) {
    const char base[] = "x1,x2,y\n1.5,2,0\r\n-3,4e1,1\n\n5,6,2\n";
    const char alphabet[] = ",\n\r 0123456789.-+eExabn\0";
    tg_rng g;
    tg_rng_seed(&g, 7);
    int bad = 0;
    for (int t = 0; t < 300; t++) {
        char buf[sizeof base];
        memcpy(buf, base, sizeof base);
        size_t len = sizeof base - 1 - tg_rng_next(&g) % 8; /* sometimes cut short */
        for (int e = 0; e < 3; e++)
            buf[tg_rng_next(&g) % len] = alphabet[tg_rng_next(&g) % (sizeof alphabet - 1)];
        tg_dataset ds;
        tg_status s = tg_csv_load(write_file("mut.csv", buf, len), -1, &ds);
        if (s == TG_OK) {
            bad += ds.n == 0 || ds.d == 0;
            tg_dataset_free(&ds);
        } else {
            bad += (s != TG_ERR_IO && s != TG_ERR_ARG) || tg_last_error()[0] == '\0';
        }
    }
    CHECK(bad == 0, "%d mutated files gave a bad result", bad);
}

/* ---------------------------------------------------------------- IDX */

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static unsigned char pixel(size_t i) {
    return (unsigned char)(i * 37 % 256);
}

/* Writes name (plain, or gzip when gz), a header of 1 or 3 sizes and then
 * `bytes` bytes of data (pixel(i) or, for labels, i % 10). */
static void write_idx(const char *name, int gz, uint32_t magic, int ndims, const uint32_t *dims,
                      size_t bytes) {
    size_t len = 4 + 4 * (size_t)ndims + bytes;
    unsigned char *b = malloc(len);
    CHECK(b != NULL, "malloc");
    if (!b) return;
    put32(b, magic);
    for (int i = 0; i < ndims; i++)
        put32(b + 4 + 4 * i, dims[i]);
    for (size_t i = 0; i < bytes; i++)
        b[4 + 4 * ndims + i] = ndims == 3 ? pixel(i) : (unsigned char)(i % 10);
    if (!gz) {
        write_file(name, b, len);
    } else {
        const char *p = in_dir(name);
        gzFile f = gzopen(p, "wb");
        CHECK(f != NULL, "gzopen %s", p);
        if (f) {
            CHECK(gzwrite(f, b, (unsigned)len) == (int)len, "gzwrite %s", p);
            gzclose(f);
            remember(p);
        }
    }
    free(b);
}

/* A set PREFIX-images-idx3-ubyte[.gz] + PREFIX-labels-idx1-ubyte[.gz] with n
 * images of r×c pixels; the image file holds `pix` pixel bytes. */
static void write_set(const char *prefix, int gz_img, int gz_lab, uint32_t n_img, uint32_t n_lab,
                      uint32_t r, uint32_t c, size_t pix) {
    char name[128];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz_img ? ".gz" : "");
    write_idx(name, gz_img, 0x803, 3, (uint32_t[]){n_img, r, c}, pix);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz_lab ? ".gz" : "");
    write_idx(name, gz_lab, 0x801, 1, (uint32_t[]){n_lab}, n_lab);
}

static void expect_idx(const char *prefix, size_t n, size_t d) {
    tg_dataset ds;
    CHECK_OK(tg_idx_load(in_dir(prefix), &ds));
    CHECK(ds.n == n && ds.d == d, "%s: %zux%zu, want %zux%zu", prefix, ds.n, ds.d, n, d);
    int bad = 0;
    for (size_t i = 0; ds.n == n && ds.d == d && i < n * d; i++)
        bad += ds.x[i] != pixel(i) / 255.0; /* the same expression: exact */
    for (size_t i = 0; ds.n == n && i < n; i++)
        bad += ds.y[i] != (double)(i % 10);
    CHECK(bad == 0, "%s: %d wrong values", prefix, bad);
    tg_dataset_free(&ds);
}

static void expect_idx_err(const char *prefix, tg_status want, const char *msg) {
    tg_dataset ds = {.n = 5};
    EXPECT_ERR(tg_idx_load(in_dir(prefix), &ds), want, msg);
    CHECK(ds.n == 0 && ds.x == NULL && ds.y == NULL, "%s: output not cleared on error", prefix);
}

static void test_idx(void) {
    write_set("plain", 0, 0, 12, 12, 3, 5, 12 * 15);
    expect_idx("plain", 12, 15);
    write_set("gz", 1, 1, 12, 12, 3, 5, 12 * 15);
    expect_idx("gz", 12, 15);
    write_set("mixed", 0, 1, 4, 4, 28, 28, 4 * 784);
    expect_idx("mixed", 4, 784);

    char msg[512];
    write_idx("magic-images-idx3-ubyte", 0, 0x804, 3, (uint32_t[]){2, 2, 2}, 8);
    write_idx("magic-labels-idx1-ubyte", 0, 0x801, 1, (uint32_t[]){2}, 2);
    snprintf(msg, sizeof msg, "%s: bad magic 0x00000804, expected 0x00000803",
             in_dir("magic-images-idx3-ubyte"));
    expect_idx_err("magic", TG_ERR_IO, msg);
    /* Labels given where images belong. */
    write_idx("swap-images-idx3-ubyte", 0, 0x801, 1, (uint32_t[]){2}, 2);
    write_idx("swap-labels-idx1-ubyte", 0, 0x801, 1, (uint32_t[]){2}, 2);
    expect_idx_err("swap", TG_ERR_IO, "bad magic 0x00000801, expected 0x00000803");

    write_set("trunc", 0, 0, 3, 3, 2, 2, 10);
    snprintf(msg, sizeof msg, "%s: truncated: expected 12 bytes of pixels, got 10",
             in_dir("trunc-images-idx3-ubyte"));
    expect_idx_err("trunc", TG_ERR_IO, msg);
    write_set("truncgz", 1, 0, 3, 3, 2, 2, 11);
    snprintf(msg, sizeof msg, "%s: truncated: expected 12 bytes of pixels, got 11",
             in_dir("truncgz-images-idx3-ubyte.gz"));
    expect_idx_err("truncgz", TG_ERR_IO, msg);
    /* A header that claims 1e8 images must not make the loader ask for
     * 627 GB: memory follows the data, and the file is reported truncated. */
    write_idx("claims-images-idx3-ubyte", 0, 0x803, 3, (uint32_t[]){100000000, 28, 28}, 100);
    write_idx("claims-labels-idx1-ubyte", 0, 0x801, 1, (uint32_t[]){100000000}, 100);
    expect_idx_err("claims", TG_ERR_IO, "truncated: expected 100000000 bytes of labels, got 100");
    write_set("toomany", 0, 0, 100000001, 1, 28, 28, 0);
    expect_idx_err("toomany", TG_ERR_IO, "100000001 items: expected 1 to 100000000");
    write_set("zero", 0, 0, 2, 2, 0, 28, 0);
    expect_idx_err("zero", TG_ERR_IO, "images of 0x28 pixels");
    write_idx("hdr-images-idx3-ubyte", 0, 0x803, 1, (uint32_t[]){1}, 0);
    write_idx("hdr-labels-idx1-ubyte", 0, 0x801, 1, (uint32_t[]){1}, 1);
    expect_idx_err("hdr", TG_ERR_IO, "truncated: expected a 16-byte header, got 8");

    write_set("count", 0, 0, 3, 2, 2, 2, 12);
    snprintf(msg, sizeof msg, "%s has 3 images but %s has 2 labels",
             in_dir("count-images-idx3-ubyte"), in_dir("count-labels-idx1-ubyte"));
    expect_idx_err("count", TG_ERR_IO, msg);

    snprintf(msg, sizeof msg, "%s-images-idx3-ubyte[.gz]: No such file or directory",
             in_dir("nothing"));
    expect_idx_err("nothing", TG_ERR_IO, msg);
    /* Images present, labels missing. */
    write_idx("nolab-images-idx3-ubyte", 0, 0x803, 3, (uint32_t[]){1, 1, 1}, 1);
    expect_idx_err("nolab", TG_ERR_IO, "-labels-idx1-ubyte[.gz]: No such file or directory");
}

/* Rewrites DIR/name with its byte at `at` (from the end if negative) xored
 * with `flip`, or, with flip 0, its last `-at` bytes cut off. */
static void damage(const char *name, long at, unsigned char flip) {
    const char *p = in_dir(name);
    unsigned char buf[4096];
    FILE *f = fopen(p, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 20 && n < sizeof buf, "%s: %zu bytes", p, n);
    if (n <= 20 || n >= sizeof buf) return;
    if (flip)
        buf[at < 0 ? n - (size_t)-at : (size_t)at] ^= flip;
    else
        n -= (size_t)-at;
    write_file(name, buf, n);
}

/* Issue 12 §4: every gzip byte is checked, nothing past the promised data
 * is ignored, and a header's claim reserves no memory (§5). */
static void test_idx_integrity(void) {
    static const char *const gz = "-images-idx3-ubyte.gz";
    const struct {
        const char *prefix;
        long at;
        unsigned char flip;
        const char *msg;
    } cases[] = {
        /* 4 images of 28×28: deflate's data, past the 10-byte gzip header */
        {"flip", 40, 0x10, "gzip data check failed"},
        {"crc", -6, 0x01, "gzip data check failed (incorrect data check)"},
        {"isize", -2, 0x01, "gzip data check failed (incorrect length check)"},
        {"cut", -3, 0, "truncated gzip stream: its CRC and length are missing"},
    };
    char name[64], msg[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_set(cases[i].prefix, 1, 0, 4, 4, 28, 28, 4 * 784);
        snprintf(name, sizeof name, "%s%s", cases[i].prefix, gz);
        damage(name, cases[i].at, cases[i].flip);
        snprintf(msg, sizeof msg, "%s: %s", in_dir(name), cases[i].msg);
        expect_idx_err(cases[i].prefix, TG_ERR_IO, msg);
    }
    write_set("more", 0, 0, 2, 2, 2, 2, 9);
    snprintf(msg, sizeof msg, "%s: trailing data after the 8 bytes of pixels the header promised",
             in_dir("more-images-idx3-ubyte"));
    expect_idx_err("more", TG_ERR_IO, msg);
    write_set("moregz", 0, 1, 2, 2, 2, 2, 8);
    write_idx("moregz-labels-idx1-ubyte.gz", 1, 0x801, 1, (uint32_t[]){1}, 2);
    write_idx("moregz-images-idx3-ubyte", 0, 0x803, 3, (uint32_t[]){1, 2, 2}, 4);
    expect_idx_err("moregz", TG_ERR_IO, "trailing data after the 1 bytes of labels");
    /* 1e8 labels claimed, 100 present: "truncated" under a 1 MiB limit on
     * any one block (the loader first asked 8 MB). */
    tg_testing_alloc_limit((size_t)1 << 20);
    expect_idx_err("claims", TG_ERR_IO, "truncated: expected 100000000 bytes of labels, got 100");
    tg_testing_alloc_limit(0);
}

static void test_idx_nomem(void) {
    write_set("oom", 1, 0, 5, 5, 4, 4, 5 * 16);
    tg_status s = TG_ERR_NOMEM;
    int k, wrong = 0;
    tg_dataset ds;
    for (k = 1; k < 20 && s == TG_ERR_NOMEM; k++) {
        tg_testing_fail_alloc_at((uint64_t)k);
        s = tg_idx_load(in_dir("oom"), &ds);
        wrong += s != TG_OK && s != TG_ERR_NOMEM;
    }
    tg_testing_fail_alloc_at(0);
    CHECK(s == TG_OK && wrong == 0, "idx under failing allocations: %s after %d tries",
          tg_status_name(s), k);
    tg_dataset_free(&ds);
}

/* The real Fashion-MNIST test set, when the machine has it. */
static void test_fashion_mnist(void) {
    const char *file = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    if (access(file, R_OK) != 0) {
        printf("note: %s absent, Fashion-MNIST check skipped\n", file);
        return;
    }
    tg_dataset ds;
    CHECK_OK(tg_idx_load("/usr/share/datasets/fashion-mnist/t10k", &ds));
    CHECK(ds.n == 10000 && ds.d == 784, "t10k: %zux%zu", ds.n, ds.d);
    if (ds.n != 10000 || ds.d != 784) {
        tg_dataset_free(&ds);
        return;
    }
    size_t per_class[10] = {0}, out_of_range = 0;
    double lo = 1, hi = 0;
    for (size_t i = 0; i < ds.n * ds.d; i++)
        lo = fmin(lo, ds.x[i]), hi = fmax(hi, ds.x[i]);
    for (size_t i = 0; i < ds.n; i++) {
        if (ds.y[i] >= 0 && ds.y[i] <= 9 && ds.y[i] == floor(ds.y[i]))
            per_class[(int)ds.y[i]]++;
        else
            out_of_range++;
    }
    CHECK(out_of_range == 0, "%zu labels outside 0..9", out_of_range);
    CHECK(lo == 0 && hi == 1, "pixel range [%g, %g], want [0, 1]", lo, hi);
    for (int c = 0; c < 10; c++) /* the test set is balanced: 1000 per class */
        CHECK(per_class[c] == 1000, "class %d has %zu examples", c, per_class[c]);
    CHECK(ds.y[0] == 9 && ds.y[1] == 2, "first labels %g %g, want 9 (ankle boot) 2", ds.y[0],
          ds.y[1]);
    CHECK(tg_dataset_classes(&ds) == 10, "classes %d", tg_dataset_classes(&ds));
    tg_dataset_free(&ds);
}

/* ---------------------------------------------------------------- datasets */

/* n examples with x = (i, −i) and y = i, so a row can be traced. */
static tg_dataset numbered(size_t n) {
    tg_dataset ds = {.n = n, .d = 2};
    ds.x = malloc(2 * n * sizeof(double));
    ds.y = malloc(n * sizeof(double));
    for (size_t i = 0; ds.x && ds.y && i < n; i++)
        ds.x[2 * i] = (double)i, ds.x[2 * i + 1] = -(double)i, ds.y[i] = (double)i;
    return ds;
}

static void free_numbered(tg_dataset *ds) {
    free(ds->x), free(ds->y);
}

/* The splits hold every example once, rows intact. */
static void check_partition(const tg_dataset *all, const tg_dataset *const *parts, int k) {
    int *seen = calloc(all->n, sizeof *seen);
    int bad = 0;
    for (int p = 0; p < k && seen; p++)
        for (size_t i = 0; i < parts[p]->n; i++) {
            double y = parts[p]->y[i];
            bad += parts[p]->x[2 * i] != y || parts[p]->x[2 * i + 1] != -y;
            if (y >= 0 && y < (double)all->n) seen[(size_t)y]++;
        }
    for (size_t i = 0; seen && i < all->n; i++)
        bad += seen[i] != 1;
    CHECK(seen && bad == 0, "split is not a partition of the rows (%d problems)", bad);
    free(seen);
}

static int same_order(const tg_dataset *a, const tg_dataset *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->y[i] != b->y[i]) return 0;
    return 1;
}

static void test_split(void) {
    tg_dataset all = numbered(100), tr, va, te, tr2, va2, te2;
    CHECK_OK(tg_dataset_split(&all, 0.2, 0.1, 42, &tr, &va, &te));
    CHECK(tr.n == 70 && va.n == 20 && te.n == 10, "sizes %zu %zu %zu", tr.n, va.n, te.n);
    CHECK(tr.d == 2 && va.d == 2 && te.d == 2, "d");
    check_partition(&all, (const tg_dataset *[]){&tr, &va, &te}, 3);
    CHECK(!same_order(&tr, &(tg_dataset){.n = 70, .y = all.y}), "train is not shuffled");

    CHECK_OK(tg_dataset_split(&all, 0.2, 0.1, 42, &tr2, &va2, &te2));
    CHECK(same_order(&tr, &tr2) && same_order(&va, &va2) && same_order(&te, &te2),
          "same seed, different split");
    tg_dataset_free(&tr2), tg_dataset_free(&va2), tg_dataset_free(&te2);
    /* Another seed: the same order would have probability 1/100!. */
    CHECK_OK(tg_dataset_split(&all, 0.2, 0.1, 43, &tr2, &va2, &te2));
    CHECK(!same_order(&tr, &tr2), "seeds 42 and 43 give the same split");
    tg_dataset_free(&tr2), tg_dataset_free(&va2), tg_dataset_free(&te2);

    /* No validation or test set: NULL outputs allowed, train is everything. */
    CHECK_OK(tg_dataset_split(&all, 0, 0, 1, &tr2, NULL, NULL));
    CHECK(tr2.n == 100, "train %zu", tr2.n);
    check_partition(&all, (const tg_dataset *[]){&tr2}, 1);
    tg_dataset_free(&tr2);

    EXPECT_ERR(tg_dataset_split(&all, 1.0, 0, 1, &tr2, &va2, &te2), TG_ERR_VALUE,
               "split: validation fraction 1 outside [0, 1)");
    EXPECT_ERR(tg_dataset_split(&all, 0.1, -0.1, 1, &tr2, &va2, &te2), TG_ERR_VALUE,
               "split: test fraction -0.1 outside [0, 1)");
    EXPECT_ERR(tg_dataset_split(&all, NAN, 0, 1, &tr2, &va2, &te2), TG_ERR_VALUE,
               "split: validation fraction nan");
    EXPECT_ERR(tg_dataset_split(&all, 0.5, 0.5, 1, &tr2, &va2, &te2), TG_ERR_VALUE,
               "split: validation + test fractions 0.5 + 0.5 must be < 1");
    EXPECT_ERR(tg_dataset_split(&all, 0.004, 0, 1, &tr2, &va2, &te2), TG_ERR_VALUE,
               "split: 0.004 of 100 examples is an empty validation set");
    EXPECT_ERR(tg_dataset_split(&all, 0.1, 0, 1, &tr2, NULL, &te2), TG_ERR_ARG,
               "split: a nonzero fraction needs its output");
    tg_dataset three = numbered(3);
    /* 0.5·3 and 0.4·3 round to 2 and 1, leaving no training example. */
    EXPECT_ERR(tg_dataset_split(&three, 0.5, 0.4, 1, &tr2, &va2, &te2), TG_ERR_VALUE,
               "split: 3 examples leave an empty training set");
    free_numbered(&three);

    /* Out of memory at each allocation in turn: NOMEM, nothing leaked. */
    tg_status s = TG_ERR_NOMEM;
    int k, wrong = 0;
    for (k = 1; k < 20 && s == TG_ERR_NOMEM; k++) {
        tg_testing_fail_alloc_at((uint64_t)k);
        s = tg_dataset_split(&all, 0.2, 0.1, 42, &tr2, &va2, &te2);
        wrong += s != TG_OK && s != TG_ERR_NOMEM;
    }
    tg_testing_fail_alloc_at(0);
    CHECK(s == TG_OK && k > 5 && wrong == 0, "split under failing allocations: %s after %d",
          tg_status_name(s), k);
    if (s == TG_OK) tg_dataset_free(&tr2), tg_dataset_free(&va2), tg_dataset_free(&te2);

    tg_dataset_free(&tr), tg_dataset_free(&va), tg_dataset_free(&te);
    free_numbered(&all);
}

/* Fisher–Yates with an unbiased index draw makes the 6 orders of 3 items
 * equally likely. Chi-square with 5 degrees of freedom over 60 000 shuffles:
 * a fair shuffle exceeds 36 with probability < 1e-6, while the classic bug
 * (swapping with any of the n items) gives orders with probabilities 4/27
 * to 5/27 and a statistic in the hundreds. The seed is fixed, so the test
 * is deterministic. */
static void test_shuffle(void) {
    tg_rng g;
    tg_rng_seed(&g, 2024);
    const int T = 60000;
    int count[6] = {0};
    for (int t = 0; t < T; t++) {
        size_t idx[3] = {0, 1, 2};
        tg_shuffle(idx, 3, &g);
        int code = (int)(idx[0] * 2 + (idx[1] > idx[2])); /* 0..5, one per order */
        count[code]++;
    }
    double chi2 = 0, e = T / 6.0;
    for (int c = 0; c < 6; c++)
        chi2 += (count[c] - e) * (count[c] - e) / e;
    CHECK(chi2 < 36, "shuffle chi-square %g over 6 orders", chi2);

    size_t a[50], b[50];
    for (size_t i = 0; i < 50; i++)
        a[i] = b[i] = i;
    tg_rng_seed(&g, 5);
    tg_shuffle(a, 50, &g);
    tg_rng_seed(&g, 5);
    tg_shuffle(b, 50, &g);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, different shuffle");
    tg_shuffle(NULL, 5, &g); /* ignored */
    tg_shuffle(a, 0, &g);
}

static void test_classes(void) {
    double y[4] = {0, 2, 1, 2};
    tg_dataset ds = {.n = 4, .d = 1, .y = y};
    CHECK(tg_dataset_classes(&ds) == 3, "classes %d", tg_dataset_classes(&ds));
    y[1] = 999;
    CHECK(tg_dataset_classes(&ds) == 1000, "classes %d", tg_dataset_classes(&ds));
    y[1] = 1000;
    CHECK(tg_dataset_classes(&ds) == 0, "1000 is past the class range");
    y[1] = 1.5;
    CHECK(tg_dataset_classes(&ds) == 0, "1.5 is a regression target");
    y[1] = -1;
    CHECK(tg_dataset_classes(&ds) == 0, "-1 is no class");
    y[1] = NAN;
    CHECK(tg_dataset_classes(&ds) == 0, "NaN is no class");
    CHECK(tg_dataset_classes(NULL) == 0, "NULL");
}

static void test_standardize(void) {
    /* By hand: feature 0 = 1, 2, 3, 4 has mean 2.5 and population std
     * sqrt(1.25) (the sample formula would give sqrt(5/3)); feature 1 is
     * the constant 0.1, whose plain Σx/n is not exactly 0.1. */
    double x[8] = {1, 0.1, 2, 0.1, 3, 0.1, 4, 0.1}, y[4] = {0};
    tg_dataset ds = {.n = 4, .d = 2, .x = x, .y = y};
    double mean[2], std[2];
    CHECK_OK(tg_standardize_fit(&ds, mean, std));
    CHECK_CLOSE(mean[0], 2.5, 1e-15);
    CHECK_CLOSE(std[0], sqrt(1.25), 1e-15);
    CHECK(mean[1] == 0.1 && std[1] == 1, "constant feature: mean %.17g std %.17g", mean[1], std[1]);
    tg_standardize_apply(&ds, mean, std);
    CHECK(x[1] == 0 && x[7] == 0, "constant feature standardised to %g %g", x[1], x[7]);

    /* 1000 examples of 3 features on different scales. After fit and apply
     * each feature has mean 0 and std 1 up to rounding: two passes over n
     * values in double carry a relative error of about n·ε ≈ 1000·1.1e-16
     * ≈ 1e-13, so 1e-12 leaves a margin and still catches a wrong formula
     * (a sample std would be off by 5e-4). */
    enum { N = 1000, D = 3 };
    static double big[N * D], lab[N];
    tg_rng g;
    tg_rng_seed(&g, 11);
    for (size_t i = 0; i < N; i++) {
        big[i * D] = 5 + 10 * tg_rng_uniform(&g);
        big[i * D + 1] = -1e6 + 1e3 * tg_rng_normal(&g);
        big[i * D + 2] = 1e-6 * tg_rng_normal(&g);
    }
    tg_dataset b = {.n = N, .d = D, .x = big, .y = lab};
    double m[D], s[D];
    CHECK_OK(tg_standardize_fit(&b, m, s));
    tg_standardize_apply(&b, m, s);
    for (int j = 0; j < D; j++) {
        double mu = 0, var = 0;
        for (size_t i = 0; i < N; i++)
            mu += big[i * D + j];
        mu /= N;
        for (size_t i = 0; i < N; i++)
            var += (big[i * D + j] - mu) * (big[i * D + j] - mu);
        CHECK(fabs(mu) < 1e-12, "feature %d mean %g after standardising", j, mu);
        CHECK(fabs(sqrt(var / N) - 1) < 1e-12, "feature %d std %.17g after standardising", j,
              sqrt(var / N));
    }
    tg_dataset empty = {0};
    EXPECT_ERR(tg_standardize_fit(&empty, m, s), TG_ERR_VALUE,
               "standardize: the data set is empty");
    EXPECT_ERR(tg_standardize_fit(&b, NULL, s), TG_ERR_ARG, "standardize: NULL argument");
}

/* ---------------------------------------------------------------- batches */

static tg_tensor *mk(tg_dtype dt, size_t d0, size_t d1) {
    size_t shape[2] = {d0, d1};
    tg_tensor *t = NULL;
    CHECK_OK(tg_tensor_new(&t, dt, d1 ? 2 : 1, shape));
    return t;
}

static void test_batch(void) {
    /* 4 examples, 3 features: row i is (10i, 10i+1, 10i+2), label i. The
     * values 10i + 0.25 are exact in float too, so f32 compares exactly. */
    double x[12], y[4] = {0, 1, 2, 3};
    for (int i = 0; i < 12; i++)
        x[i] = 10 * (i / 3) + i % 3 + 0.25;
    tg_dataset ds = {.n = 4, .d = 3, .x = x, .y = y};
    size_t idx[4] = {3, 1, 0, 2};
    tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int k = 0; k < 2; k++) {
        tg_tensor *bx = mk(dts[k], 2, 3), *by = k ? mk(dts[k], 2, 1) : mk(dts[k], 2, 0);
        uint64_t before = tg_alloc_count();
        CHECK_OK(tg_batch_fill(&ds, idx, 1, 2, bx, by)); /* examples 1 and 0 */
        CHECK(tg_alloc_count() == before, "batch_fill allocated");
        for (int j = 0; j < 3; j++) {
            CHECK(tg_get(bx, (size_t)j) == x[3 + j], "%s row 0 col %d", k ? "f64" : "f32", j);
            CHECK(tg_get(bx, 3 + (size_t)j) == x[j], "%s row 1 col %d", k ? "f64" : "f32", j);
        }
        CHECK(tg_get(by, 0) == 1 && tg_get(by, 1) == 0, "labels %g %g", tg_get(by, 0),
              tg_get(by, 1));
        /* No index array: examples start .. start+rows in order. */
        CHECK_OK(tg_batch_fill(&ds, NULL, 2, 2, bx, by));
        CHECK(tg_get(bx, 0) == x[6] && tg_get(by, 1) == 3, "sequential batch");
        tg_tensor_free(bx), tg_tensor_free(by);
    }
    tg_tensor *bx = mk(TG_F32, 2, 3), *by = mk(TG_F32, 2, 0), *wide = mk(TG_F32, 2, 4);
    tg_tensor *y3 = mk(TG_F32, 3, 0), *y64 = mk(TG_F64, 2, 0);
    EXPECT_ERR(tg_batch_fill(&ds, idx, 0, 2, wide, by), TG_ERR_SHAPE,
               "batch_fill: x is (2x4), expected (2x3)");
    EXPECT_ERR(tg_batch_fill(&ds, idx, 0, 2, bx, y3), TG_ERR_SHAPE,
               "batch_fill: y is (3), expected 2 elements");
    EXPECT_ERR(tg_batch_fill(&ds, idx, 0, 2, bx, y64), TG_ERR_DTYPE,
               "batch_fill: mixed dtypes: x is f32, y is f64");
    size_t bad[2] = {0, 4};
    EXPECT_ERR(tg_batch_fill(&ds, bad, 0, 2, bx, by), TG_ERR_VALUE,
               "batch_fill: index 4 out of range for 4 examples");
    EXPECT_ERR(tg_batch_fill(&ds, NULL, 3, 2, bx, by), TG_ERR_VALUE,
               "batch_fill: rows 3..5 out of range for 4 examples");
    EXPECT_ERR(tg_batch_fill(NULL, idx, 0, 2, bx, by), TG_ERR_ARG, "batch_fill: NULL argument");
    tg_tensor_free(bx), tg_tensor_free(by), tg_tensor_free(wide);
    tg_tensor_free(y3), tg_tensor_free(y64);
}

/* ---------------------------------------------------------------- metrics */

static void test_metrics(void) {
    /* Rows predict 2, 0, 1 (a tie between 1 and 2 goes to the first), 1. */
    tg_tensor *l = mk(TG_F32, 4, 3);
    double v[12] = {0.1, 0.2, 0.9, 3, -1, 2, 0, 5, 5, -2, 1, -3};
    CHECK_OK(tg_fill(l, v, 12));
    double lab[4] = {2, 0, 2, 1};
    CHECK(tg_accuracy(l, lab, 4) == 0.75, "accuracy %g, want 0.75", tg_accuracy(l, lab, 4));
    uint64_t conf[9] = {0};
    tg_confusion_add(l, lab, 4, 3, conf);
    tg_confusion_add(l, lab, 2, 3, conf); /* accumulates: rows 0 and 1 again */
    uint64_t want[9] = {2, 0, 0, 0, 1, 0, 0, 1, 2};
    CHECK(memcmp(conf, want, sizeof conf) == 0,
          "confusion [%llu %llu %llu / %llu %llu %llu / %llu %llu %llu]",
          (unsigned long long)conf[0], (unsigned long long)conf[1], (unsigned long long)conf[2],
          (unsigned long long)conf[3], (unsigned long long)conf[4], (unsigned long long)conf[5],
          (unsigned long long)conf[6], (unsigned long long)conf[7], (unsigned long long)conf[8]);

    /* One logit per row: > 0 is class 1 (0 itself is class 0). */
    tg_tensor *b = mk(TG_F64, 4, 1);
    CHECK_OK(tg_fill(b, (double[]){-1, 2, 0, 0.5}, 4));
    double blab[4] = {0, 1, 1, 0};
    CHECK(tg_accuracy(b, blab, 4) == 0.5, "binary accuracy %g", tg_accuracy(b, blab, 4));
    uint64_t bc[4] = {0};
    tg_confusion_add(b, blab, 4, 2, bc);
    CHECK(bc[0] == 1 && bc[1] == 1 && bc[2] == 1 && bc[3] == 1,
          "binary confusion %llu %llu %llu %llu", (unsigned long long)bc[0],
          (unsigned long long)bc[1], (unsigned long long)bc[2], (unsigned long long)bc[3]);
    /* A label outside the classes has no cell and is skipped. */
    double odd[4] = {0, 7, 1.5, -1};
    uint64_t oc[4] = {0};
    tg_confusion_add(b, odd, 4, 2, oc);
    CHECK(oc[0] == 1 && oc[1] + oc[2] + oc[3] == 0, "invalid labels were counted");
    CHECK(isnan(tg_accuracy(b, blab, 0)), "accuracy of no rows is not NaN");
    CHECK(isnan(tg_accuracy(b, blab, 5)), "5 rows from a 4-row tensor");
    tg_tensor_free(l), tg_tensor_free(b);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tg-data-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_csv_good();
    test_csv_errors();
    test_csv_line_ends();
    test_csv_header();
    test_csv_dtype();
    test_csv_escapes();
    test_csv_memory();
    test_csv_long_lines();
    test_csv_nomem();
    test_csv_mutations();
    test_idx();
    test_idx_integrity();
    test_idx_nomem();
    test_fashion_mnist();
    test_split();
    test_shuffle();
    test_classes();
    test_standardize();
    test_batch();
    test_metrics();
    cleanup();
    return check_summary();
}
