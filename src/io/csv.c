/* CSV loading: one example per line, comma-separated numbers, one column of
 * which is the target. The reader is meant to survive any input (it is
 * fuzzed): lines of any length, NUL bytes, LF, CRLF and lone-CR line ends,
 * ragged rows; every failure is a status and a message naming file, line
 * and column, never a crash, and no line is ever dropped without one
 * (issue 12): a row either loads or is an error. Memory follows what is
 * read: the line buffer grows with the longest line, the table with the
 * rows stored, never with a count or a width taken on trust. */
#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- line reader */

/* Reads the file in blocks and hands out one line at a time. getline would
 * allocate with malloc, which tg_alloc_count and the failure hook cannot
 * see; this reader grows its line buffer with tg_realloc instead. A line
 * ends at LF, CRLF or a lone CR: Python's csv module and numpy accept all
 * three, and a file from an old Mac has nothing but CRs. */
typedef struct reader {
    FILE *f;
    char block[1 << 16];
    size_t pos, len; /* unread bytes are block[pos..len) */
    char *line;      /* current line, NUL-terminated, without its end */
    size_t cap, n;   /* capacity and length of line */
    int after_cr;    /* the last line ended in CR: an LF next is part of that end */
} reader;

/* Appends bytes to the line, growing it geometrically. */
static int line_append(reader *r, const char *p, size_t k) {
    if (r->n + k + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->n + k + 1) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        char *grown = tg_realloc(r->line, cap);
        if (!grown) return -1;
        r->line = grown;
        r->cap = cap;
    }
    memcpy(r->line + r->n, p, k);
    r->n += k;
    r->line[r->n] = '\0';
    return 0;
}

/* The first byte of block[pos..len) that ends a line, or len. A byte loop:
 * memchr cannot look for two bytes, and two memchr calls per line would
 * rescan the block for a CR that a Unix file never has. */
static size_t line_end(const reader *r) {
    size_t i = r->pos;
    while (i < r->len && r->block[i] != '\n' && r->block[i] != '\r')
        i++;
    return i;
}

/* 1: a line is in r->line; 0: end of file; -1: out of memory; -2: read error. */
static int read_line(reader *r) {
    r->n = 0;
    if (line_append(r, "", 0)) return -1; /* so that an empty line is "" */
    int got = 0;
    for (;;) {
        if (r->pos == r->len) {
            r->len = fread(r->block, 1, sizeof r->block, r->f);
            r->pos = 0;
            if (r->len == 0) return ferror(r->f) ? -2 : got;
        }
        if (r->after_cr) { /* the LF of a CRLF: no line of its own */
            r->after_cr = 0;
            if (r->block[r->pos] == '\n' && ++r->pos == r->len) continue;
        }
        got = 1;
        size_t end = line_end(r);
        if (line_append(r, r->block + r->pos, end - r->pos)) return -1;
        r->pos = end;
        if (end < r->len) {
            r->after_cr = r->block[end] == '\r';
            r->pos++;
            return 1;
        }
    }
}

/* Fills the first block and steps over a UTF-8 byte-order mark (Excel's
 * "CSV UTF-8" writes one): left in, it makes the first cell unreadable and
 * a first data row look like a header. UTF-16 is refused by name rather
 * than reported as a NUL byte in a cell. */
static tg_status skip_bom(reader *r, const char *path) {
    r->len = fread(r->block, 1, sizeof r->block, r->f);
    if (ferror(r->f)) return tg_fail(TG_ERR_IO, "%s: read error: %s", path, strerror(errno));
    const unsigned char *b = (const unsigned char *)r->block;
    if (r->len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) r->pos = 3;
    if (r->len >= 2 && ((b[0] == 0xFF && b[1] == 0xFE) || (b[0] == 0xFE && b[1] == 0xFF)))
        return tg_fail(TG_ERR_IO,
                       "%s:1:1: UTF-16 text (byte-order mark \\x%02X\\x%02X): save it as UTF-8",
                       path, b[0], b[1]);
    return TG_OK;
}

/* ---------------------------------------------------------------- cells */

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* A line of only blanks. */
static int line_is_empty(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_blank(s[i])) return 0;
    return 1;
}

/* Cells are separated by commas; counting them first lets a ragged row be
 * reported with its real count before any cell is parsed. */
static size_t count_cells(const char *s, size_t n) {
    size_t cells = 1;
    for (const char *p = s; (p = memchr(p, ',', n - (size_t)(p - s))) != NULL; p++)
        cells++;
    return cells;
}

/* What a cell holds. A number too large for the dtype is still a number
 * (it decides nothing about a header), but it cannot be loaded. */
typedef enum cell_kind {
    CELL_NUMBER, /* finite in the dtype */
    CELL_EMPTY,
    CELL_NAN,   /* nan, inf, or a missing-value word */
    CELL_TEXT,  /* anything else */
    CELL_BIG64, /* a finite decimal beyond double (1e999) */
    CELL_BIG32  /* a double beyond float (1e39) */
} cell_kind;

/* Missing-value words that spreadsheets and pandas write (pandas' default
 * na_values, less those strtod already reads as nan): a line of them and
 * numbers is a data row with gaps, not a header. */
static int is_na_word(const char *s, size_t n) {
    static const char *const words[] = {"NA",     "N/A",     "n/a",     "NULL",     "null",
                                        "None",   "<NA>",    "#N/A",    "#N/A N/A", "#NA",
                                        "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0) return 1;
    return 0;
}

/* Round to nearest takes every double below FLT_MAX + half an ulp
 * (2^128 − 2^103) to at most FLT_MAX; from there on a float is inf. */
#define F32_LIMIT 0x1.ffffffp+127

/* Classifies s[0..n), trimmed, and parses it into *v.
 * strtod alone would accept "", "1x" (stopping early), "nan" and "inf";
 * the end pointer must reach the end of the cell. A NUL byte inside the
 * cell stops strtod early and so makes it text. s[n] must be writable. */
static cell_kind parse_cell(char *s, size_t n, tg_dtype dt, double *v) {
    if (n == 0) return CELL_EMPTY;
    char saved = s[n];
    s[n] = '\0';
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    int overflow = errno == ERANGE && isinf(*v); /* underflow to 0 or a denormal is fine */
    s[n] = saved;
    if (end != s + n) return is_na_word(s, n) ? CELL_NAN : CELL_TEXT;
    if (overflow) return CELL_BIG64;
    if (!isfinite(*v)) return CELL_NAN;
    return dt == TG_F32 && !(fabs(*v) < F32_LIMIT) ? CELL_BIG32 : CELL_NUMBER;
}

/* A cell that is not CELL_NUMBER: where it is and what it holds. */
typedef struct bad_cell {
    size_t col; /* 1-based; 0: none */
    cell_kind kind;
    const char *text;
    size_t len;
} bad_cell;

/* Calls each(ctx, j, kind, value, text, len) for the `cells` cells of a
 * line, until it returns nonzero. */
typedef int (*cell_fn)(void *ctx, size_t j, cell_kind kind, double v, const char *text, size_t len);

static void for_cells(char *s, size_t n, size_t cells, tg_dtype dt, cell_fn each, void *ctx) {
    char *end = s + n;
    for (size_t j = 0; j < cells; j++) {
        char *comma = memchr(s, ',', (size_t)(end - s));
        size_t len = comma ? (size_t)(comma - s) : (size_t)(end - s);
        char *t = s; /* the cell without the blanks around it */
        size_t tn = len;
        while (tn > 0 && is_blank(t[0]))
            t++, tn--;
        while (tn > 0 && is_blank(t[tn - 1]))
            tn--;
        double v = 0;
        cell_kind kind = parse_cell(t, tn, dt, &v);
        if (each(ctx, j, kind, v, t, tn)) return;
        s += len + 1;
    }
}

/* ---------------------------------------------------------------- messages */

/* The length of the printable UTF-8 character at s (at most n bytes), or
 * 0: a control character (C0, DEL, C1) or a byte that starts no valid
 * sequence. Over-long forms and surrogates are let through: they print as
 * a replacement character, they do not drive the terminal. */
static size_t utf8_length(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return c < 0x20 || c == 0x7F ? 0 : 1;
    size_t k = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (k == 0 || k > n) return 0;
    for (size_t t = 1; t < k; t++)
        if ((s[t] & 0xC0) != 0x80) return 0;
    return c == 0xC2 && s[1] < 0xA0 ? 0 : k; /* U+0080..U+009F: the C1 controls */
}

/* Copies UTF-8 text to out as is, except bytes that could drive a
 * terminal: C0 and C1 controls, DEL and bytes that are not valid UTF-8
 * become \r, \n, \t or \xNN. At most `max` input bytes, then "...". */
static void escape(const char *text, size_t len, size_t max, char *out, size_t cap) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = len < max ? len : max, o = 0, i = 0;
    while (i < n && o + 8 < cap) {
        unsigned char c = s[i];
        size_t k = utf8_length(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k, i += k;
            continue;
        }
        const char *named = c == '\r' ? "\\r" : c == '\n' ? "\\n" : c == '\t' ? "\\t" : NULL;
        o += (size_t)(named ? snprintf(out + o, cap - o, "%s", named)
                            : snprintf(out + o, cap - o, "\\x%02X", c));
        i++;
    }
    snprintf(out + o, cap - o, "%s", len > i ? "..." : "");
}

/* ---------------------------------------------------------------- loader */

typedef struct loader {
    const char *path;
    tg_csv_options *opt;
    size_t label;  /* resolved label column */
    size_t cols;   /* cells per row; 0 until the first data row */
    size_t n, cap; /* rows stored and room for rows in x, y */
    double *x, *y;
    int seen_first;      /* a non-empty line has been read */
    long header_line;    /* the header's line; 0: no header */
    size_t header_cells; /* and its cell count */
} loader;

/* The column a ragged row is reported at: its first cell too many, or
 * the first one missing. */
static size_t extra_col(size_t cells, size_t want) {
    return (cells < want ? cells : want) + 1;
}

static tg_status nomem(const loader *L) {
    return tg_fail(TG_ERR_NOMEM, "%s: out of memory", L->path);
}

/* The first data row fixes the column count and resolves label_col; a
 * header above it must have as many cells, or it was no header of this
 * table (a title line, a note). */
static tg_status set_columns(loader *L, size_t cells, long line) {
    if (L->header_line && cells != L->header_cells)
        return tg_fail(TG_ERR_IO, "%s:%ld:%zu: row has %zu cells, the header (line %ld) has %zu",
                       L->path, line, extra_col(cells, L->header_cells), cells, L->header_line,
                       L->header_cells);
    if (cells < 2)
        return tg_fail(TG_ERR_IO, "%s:%ld:1: only 1 column: needs a label and at least one feature",
                       L->path, line);
    int label = L->opt->label_col;
    if (label >= 0 && (size_t)label >= cells)
        return tg_fail(TG_ERR_ARG, "%s: label column %d out of range: the file has %zu columns",
                       L->path, label, cells);
    L->cols = cells;
    L->label = label < 0 ? cells - 1 : (size_t)label;
    return TG_OK;
}

/* Room for one more row in x and y, doubling. The first block holds
 * 64 KiB of features (1 to 64 rows): a reservation of 64 rows of any
 * width asked 25.6 GB for a one-line 100 MB file of 5e7 columns. */
static tg_status grow(loader *L) {
    if (L->n < L->cap) return TG_OK;
    size_t d = L->cols - 1, first = (size_t)8192 / L->cols;
    size_t cap = L->cap ? 2 * L->cap : first < 1 ? 1 : first > 64 ? 64 : first;
    if (cap > SIZE_MAX / sizeof(double) / L->cols) return nomem(L);
    double *x = tg_realloc(L->x, cap * d * sizeof(double));
    if (!x) return nomem(L);
    L->x = x;
    double *y = tg_realloc(L->y, cap * sizeof(double));
    if (!y) return nomem(L);
    L->y = y;
    L->cap = cap;
    return TG_OK;
}

static tg_status bad_cell_error(const loader *L, long line, const bad_cell *b) {
    char shown[200];
    escape(b->text, b->len, 40, shown, sizeof shown);
    const char *p = L->path;
    switch (b->kind) {
    case CELL_EMPTY:
        return tg_fail(TG_ERR_IO, "%s:%ld:%zu: empty cell: a data row needs a number in each", p,
                       line, b->col);
    case CELL_NAN:
        return tg_fail(TG_ERR_IO, "%s:%ld:%zu: '%s' is not a finite number", p, line, b->col,
                       shown);
    case CELL_BIG64:
        return tg_fail(TG_ERR_IO, "%s:%ld:%zu: '%s' is too large for float64", p, line, b->col,
                       shown);
    case CELL_BIG32:
        return tg_fail(TG_ERR_IO,
                       "%s:%ld:%zu: '%s' is too large for float32: load as float64 (--dtype f64)",
                       p, line, b->col, shown);
    default:
        return tg_fail(TG_ERR_IO, "%s:%ld:%zu: '%s' is not a number", p, line, b->col, shown);
    }
}

/* Storing a row: features in file order into x's row, the label into y;
 * the first cell that is not a number stops it. */
typedef struct store_ctx {
    loader *L;
    double *xr;
    bad_cell bad;
} store_ctx;

static int store_cell(void *ctx, size_t j, cell_kind kind, double v, const char *text, size_t len) {
    store_ctx *c = ctx;
    if (kind != CELL_NUMBER) {
        c->bad = (bad_cell){j + 1, kind, text, len};
        return 1;
    }
    if (j == c->L->label)
        c->L->y[c->L->n] = v;
    else
        c->xr[j - (j > c->L->label)] = v;
    return 0;
}

/* The header decision reads every cell of the first line. */
typedef struct census {
    bad_cell text, number; /* the first of each; col 0: none */
} census;

static int census_cell(void *ctx, size_t j, cell_kind kind, double v, const char *t, size_t len) {
    census *c = ctx;
    (void)v;
    bad_cell *slot = kind == CELL_TEXT                        ? &c->text
                     : kind == CELL_EMPTY || kind == CELL_NAN ? NULL
                                                              : &c->number;
    if (slot && !slot->col) *slot = (bad_cell){j + 1, kind, t, len};
    return 0;
}

/* Whether the first non-empty line is a header. AUTO: only a line that
 * could not be data (a text cell) is one; empty and NaN-like cells are
 * gaps in data, not names. Text and numbers together is a guess, said in
 * opt->note. */
static int is_header(loader *L, char *s, size_t n, size_t cells, long line) {
    if (L->opt->header != TG_CSV_HEADER_AUTO) return L->opt->header == TG_CSV_HEADER_YES;
    census c = {{0}, {0}};
    for_cells(s, n, cells, L->opt->dtype, census_cell, &c);
    if (c.text.col && c.number.col) {
        char t[72], num[72]; /* 16 bytes of each: the note stays one short line */
        escape(c.text.text, c.text.len, 16, t, sizeof t);
        escape(c.number.text, c.number.len, 16, num, sizeof num);
        int k = snprintf(L->opt->note, sizeof L->opt->note,
                         "%s:%ld: taken as a header (cell %zu '%s' is text) though cell %zu '%s' "
                         "is a number; --header no reads it as data",
                         L->path, line, c.text.col, t, c.number.col, num);
        if (k >= (int)sizeof L->opt->note) /* a very long path: the note is cut, marked */
            memcpy(L->opt->note + sizeof L->opt->note - 4, "...", 4);
    }
    return c.text.col != 0;
}

/* One non-empty line: the header, or a row of data. */
static tg_status take_line(loader *L, char *s, size_t n, long line) {
    size_t cells = count_cells(s, n);
    if (!L->seen_first) {
        L->seen_first = 1;
        if (is_header(L, s, n, cells, line)) {
            L->header_line = line;
            L->header_cells = cells;
            return TG_OK;
        }
    }
    tg_status st;
    if (!L->cols && (st = set_columns(L, cells, line))) return st;
    if (cells != L->cols)
        return tg_fail(TG_ERR_IO, "%s:%ld:%zu: row has %zu cells, expected %zu", L->path, line,
                       extra_col(cells, L->cols), cells, L->cols);
    if ((st = grow(L))) return st;
    store_ctx c = {L, L->x + L->n * (L->cols - 1), {0, CELL_NUMBER, NULL, 0}};
    for_cells(s, n, cells, L->opt->dtype, store_cell, &c);
    if (c.bad.col) return bad_cell_error(L, line, &c.bad);
    L->n++;
    return TG_OK;
}

static tg_status read_all(loader *L, reader *r) {
    long line = 0;
    int got;
    while ((got = read_line(r)) == 1) { /* a last line without an end counts too */
        line++;
        if (line_is_empty(r->line, r->n)) continue;
        tg_status st = take_line(L, r->line, r->n, line);
        if (st) return st;
    }
    if (got == -1) return nomem(L);
    if (got == -2) return tg_fail(TG_ERR_IO, "%s: read error: %s", L->path, strerror(errno));
    return TG_OK;
}

static void loader_free(loader *L) {
    tg_free(L->x);
    tg_free(L->y);
}

/* Hands x and y over to out, trimming them to their size. */
static void finish(loader *L, tg_dataset *out) {
    size_t d = L->cols - 1;
    double *x = tg_realloc(L->x, L->n * d * sizeof(double));
    double *y = tg_realloc(L->y, L->n * sizeof(double));
    /* A failed shrink keeps the larger block, which is still valid. */
    out->x = x ? x : L->x;
    out->y = y ? y : L->y;
    out->n = L->n;
    out->d = d;
    L->x = L->y = NULL;
}

static tg_status check_options(const char *path, const tg_csv_options *opt) {
    if (opt->label_col < -1)
        return tg_fail(TG_ERR_ARG, "%s: label column %d: must be >= 0, or -1 for the last", path,
                       opt->label_col);
    if ((unsigned)opt->header > TG_CSV_HEADER_NO)
        return tg_fail(TG_ERR_ARG, "%s: header mode %d: must be auto, yes or no", path,
                       (int)opt->header);
    if ((unsigned)opt->dtype > TG_F64)
        return tg_fail(TG_ERR_ARG, "%s: unknown dtype %d", path, (int)opt->dtype);
    return TG_OK;
}

tg_csv_options tg_csv_defaults(void) {
    tg_csv_options o;
    memset(&o, 0, sizeof o);
    o.label_col = -1;
    o.header = TG_CSV_HEADER_AUTO;
    o.dtype = TG_F64;
    return o;
}

tg_status tg_csv_load_opts(const char *path, tg_csv_options *opt, tg_dataset *out) {
    if (!path || !opt || !out) return tg_fail(TG_ERR_ARG, "csv: path, options or out is NULL");
    memset(out, 0, sizeof *out);
    opt->note[0] = '\0';
    tg_status st = check_options(path, opt);
    if (st) return st;
    reader *r = tg_calloc(1, sizeof *r); /* 64 KiB block: too big for the stack */
    if (!r) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    r->f = fopen(path, "rb");
    if (!r->f) {
        st = tg_fail(TG_ERR_IO, "%s: %s", path, strerror(errno));
        tg_free(r);
        return st;
    }
    loader L = {.path = path, .opt = opt};
    st = skip_bom(r, path);
    if (!st) st = read_all(&L, r);
    if (!st && L.n == 0)
        st = tg_fail(TG_ERR_IO, "%s: no data rows%s", path,
                     L.header_line ? " after the header" : "");
    if (!st) finish(&L, out);
    fclose(r->f);
    tg_free(r->line);
    tg_free(r);
    loader_free(&L);
    return st;
}

tg_status tg_csv_load(const char *path, int label_col, tg_dataset *out) {
    tg_csv_options opt = tg_csv_defaults();
    opt.label_col = label_col;
    return tg_csv_load_opts(path, &opt, out);
}
