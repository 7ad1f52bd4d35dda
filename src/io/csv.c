/* CSV loading: one example per line, comma-separated numbers, one column of
 * which is the target. The reader is meant to survive any input (it is
 * fuzzed): lines of any length, NUL bytes, CRLF, ragged rows; every failure
 * is a status and a message naming file, line and column, never a crash. */
#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- line reader */

/* Reads the file in blocks and hands out one line at a time. getline would
 * allocate with malloc, which tg_alloc_count and the failure hook cannot
 * see; this reader grows its line buffer with tg_realloc instead. */
typedef struct reader {
    FILE *f;
    char block[1 << 16];
    size_t pos, len; /* unread bytes are block[pos..len) */
    char *line;      /* current line, NUL-terminated, without its '\n' */
    size_t cap, n;   /* capacity and length of line */
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
        got = 1;
        const char *start = r->block + r->pos;
        const char *nl = memchr(start, '\n', r->len - r->pos);
        size_t k = nl ? (size_t)(nl - start) : r->len - r->pos;
        if (line_append(r, start, k)) return -1;
        r->pos += k + (nl != NULL);
        if (nl) return 1;
    }
}

/* ---------------------------------------------------------------- cells */

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

/* A line of only blanks (this includes the '\r' of a CRLF empty line). */
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

/* Parses s[0..n) as one finite number, blanks around it allowed. strtod
 * alone would accept "", "1x" (stopping early), "nan" and "inf"; the end
 * pointer must reach the end of the cell and the value must be finite. A NUL
 * byte inside the cell stops strtod early and so is rejected too. */
static int parse_cell(char *s, size_t n, double *v) {
    while (n > 0 && is_blank(s[0]))
        s++, n--;
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    if (n == 0) return -1;
    char saved = s[n];
    s[n] = '\0';
    char *end;
    *v = strtod(s, &end);
    s[n] = saved;
    return end == s + n && isfinite(*v) ? 0 : -1;
}

/* Parses the `cells` cells of a line into row[]. Returns 0, or the 1-based
 * index of the first bad cell with its text in *bad, *bad_len. */
static size_t parse_row(char *s, size_t n, size_t cells, double *row, const char **bad,
                        size_t *bad_len) {
    char *end = s + n;
    for (size_t j = 0; j < cells; j++) {
        char *comma = memchr(s, ',', (size_t)(end - s));
        size_t len = comma ? (size_t)(comma - s) : (size_t)(end - s);
        if (parse_cell(s, len, &row[j])) {
            *bad = s;
            *bad_len = len;
            return j + 1;
        }
        s += len + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- loader */

typedef struct loader {
    const char *path;
    int label_arg; /* label_col as given */
    size_t label;  /* resolved label column */
    size_t cols;   /* cells per row; 0 until the first data row */
    size_t n, cap; /* rows stored and room for rows in x, y */
    double *x, *y;
    double *row; /* the cells of the current line */
    size_t row_cap;
} loader;

static tg_status nomem(const loader *L) {
    return tg_fail(TG_ERR_NOMEM, "%s: out of memory", L->path);
}

static tg_status ensure_row_buf(loader *L, size_t cells) {
    if (cells <= L->row_cap) return TG_OK;
    if (cells > SIZE_MAX / sizeof(double)) return nomem(L);
    double *r = tg_realloc(L->row, cells * sizeof(double));
    if (!r) return nomem(L);
    L->row = r;
    L->row_cap = cells;
    return TG_OK;
}

/* The first data row fixes the column count and resolves label_col. */
static tg_status set_columns(loader *L, size_t cells, long line) {
    if (cells < 2)
        return tg_fail(TG_ERR_IO, "%s:%ld: only 1 column: needs a label and at least one feature",
                       L->path, line);
    if (L->label_arg >= 0 && (size_t)L->label_arg >= cells)
        return tg_fail(TG_ERR_ARG, "%s: label column %d out of range: the file has %zu columns",
                       L->path, L->label_arg, cells);
    L->cols = cells;
    L->label = L->label_arg < 0 ? cells - 1 : (size_t)L->label_arg;
    return TG_OK;
}

/* Room for one more row in x and y, doubling. */
static tg_status grow(loader *L) {
    if (L->n < L->cap) return TG_OK;
    size_t d = L->cols - 1;
    size_t cap = L->cap ? L->cap : 64;
    while (cap <= L->n)
        cap *= 2;
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

/* Scatters the parsed row into x (features in file order) and y. */
static void store_row(loader *L) {
    double *xr = L->x + L->n * (L->cols - 1);
    for (size_t j = 0, k = 0; j < L->cols; j++) {
        if (j == L->label)
            L->y[L->n] = L->row[j];
        else
            xr[k++] = L->row[j];
    }
    L->n++;
}

/* The text of a bad cell, shortened so that the message stays one line. */
static tg_status bad_cell(const loader *L, long line, size_t col, const char *text, size_t len) {
    const int max = 40;
    int shown = len > (size_t)max ? max : (int)len;
    return tg_fail(TG_ERR_IO, "%s:%ld:%zu: '%.*s%s' is not a number", L->path, line, col, shown,
                   text, len > (size_t)max ? "..." : "");
}

/* One non-empty line. *first is set while no non-empty line has been seen:
 * that line may be a header. */
static tg_status take_line(loader *L, char *s, size_t n, long line, int *first) {
    size_t cells = count_cells(s, n);
    if (L->cols && cells != L->cols)
        return tg_fail(TG_ERR_IO, "%s:%ld: row has %zu cells, expected %zu", L->path, line, cells,
                       L->cols);
    tg_status st = ensure_row_buf(L, cells);
    if (st) return st;
    const char *bad = NULL;
    size_t bad_len = 0;
    size_t col = parse_row(s, n, cells, L->row, &bad, &bad_len);
    int was_first = *first;
    *first = 0;
    if (col && was_first) return TG_OK; /* a header: skipped */
    if (col) return bad_cell(L, line, col, bad, bad_len);
    if (!L->cols && (st = set_columns(L, cells, line))) return st;
    if ((st = grow(L))) return st;
    store_row(L);
    return TG_OK;
}

static tg_status read_all(loader *L, reader *r, int *header) {
    long line = 0;
    int first = 1, got;
    while ((got = read_line(r)) == 1) { /* a last line without '\n' counts too */
        line++;
        if (line_is_empty(r->line, r->n)) continue;
        int was_first = first;
        tg_status st = take_line(L, r->line, r->n, line, &first);
        if (st) return st;
        if (was_first && L->n == 0) *header = 1;
    }
    if (got == -1) return nomem(L);
    if (got == -2) return tg_fail(TG_ERR_IO, "%s: read error: %s", L->path, strerror(errno));
    return TG_OK;
}

static void loader_free(loader *L) {
    tg_free(L->x);
    tg_free(L->y);
    tg_free(L->row);
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

tg_status tg_csv_load(const char *path, int label_col, tg_dataset *out) {
    if (!path || !out) return tg_fail(TG_ERR_ARG, "csv: path or out is NULL");
    memset(out, 0, sizeof *out);
    if (label_col < -1)
        return tg_fail(TG_ERR_ARG, "%s: label column %d: must be >= 0, or -1 for the last", path,
                       label_col);
    reader *r = tg_calloc(1, sizeof *r); /* 64 KiB block: too big for the stack */
    if (!r) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    r->f = fopen(path, "rb");
    if (!r->f) {
        tg_status st = tg_fail(TG_ERR_IO, "%s: %s", path, strerror(errno));
        tg_free(r);
        return st;
    }
    loader L = {.path = path, .label_arg = label_col};
    int header = 0;
    tg_status st = read_all(&L, r, &header);
    if (!st && L.n == 0)
        st = tg_fail(TG_ERR_IO, "%s: no data rows%s", path, header ? " after the header" : "");
    if (!st) finish(&L, out);
    fclose(r->f);
    tg_free(r->line);
    tg_free(r);
    loader_free(&L);
    return st;
}
