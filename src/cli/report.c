/* What fit shows and writes: a progress bar on a terminal (one line per
 * epoch otherwise), the loss plot as SVG drawn here, the per-epoch CSV.
 * Files are written atomically: a temporary file, fsync, rename. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- progress */

void progress_update(int epoch, int epochs, size_t done, size_t total, double loss,
                     const char *metric, double value, double ex_per_s) {
    if (!isatty(STDOUT_FILENO)) return;
    enum { WIDTH = 30 };
    int filled = total ? (int)(WIDTH * done / total) : WIDTH;
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = 0;
    printf("\repoch %d/%d [%s] %zu/%zu loss=%.4f %s=%.4f %.0f ex/s ", epoch, epochs, bar, done,
           total, loss, metric, value, ex_per_s);
    fflush(stdout);
}

/* " loss=… acc=…" or, for a regression, " loss=… rmse=… mae=… r2=…",
 * each name after the prefix ("", "val_", "test_"). */
static void print_metrics(const char *prefix, const char *sep, const scores *s) {
    printf(" %s%sloss=%.4f", prefix, sep, s->loss);
    if (isnan(s->acc))
        printf(" %s%srmse=%.4g %s%smae=%.4g %s%sr2=%.4f", prefix, sep, s->rmse, prefix, sep, s->mae,
               prefix, sep, s->r2);
    else
        printf(" %s%sacc=%.4f", prefix, sep, s->acc);
}

void progress_epoch_end(int epoch, int epochs, const epoch_row *r, const char *held) {
    if (isatty(STDOUT_FILENO)) printf("\r\033[K");
    printf("epoch %d/%d", epoch, epochs);
    print_metrics("", "", &r->train);
    if (held) print_metrics(held, "_", &r->held);
    printf(" time=%.2fs\n", r->seconds);
    fflush(stdout);
}

/* ---------------------------------------------------------------- files */

/* A growing text buffer for building a file in memory. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    va_list ap;
    for (int pass = 0; pass < 2 && !t->failed; pass++) {
        va_start(ap, fmt);
        int k = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            t->failed = 1;
        else if (t->s && t->len + (size_t)k < t->cap) {
            t->len += (size_t)k;
            return;
        } else {
            size_t cap = (t->cap + (size_t)k + 1) * 2;
            char *s = realloc(t->s, cap);
            if (!s)
                t->failed = 1;
            else
                t->s = s, t->cap = cap;
        }
    }
}

static int finish(text *t, const char *path) {
    int ok = !t->failed && tg_write_file_atomic(path, t->s, t->len) == TG_OK;
    if (t->failed)
        fprintf(stderr, "tapegrad: out of memory writing %s\n", path);
    else if (!ok)
        fprintf(stderr, "tapegrad: %s\n", tg_last_error());
    free(t->s);
    return ok;
}

int report_csv(const char *path, const epoch_row *r, int n, const char *held) {
    text t = {0};
    const char *h = held ? held : "val";
    int reg = n > 0 && isnan(r[0].train.acc);
    if (reg)
        put(&t, "epoch,loss,rmse,mae,r2,%s_loss,%s_rmse,%s_mae,%s_r2,seconds\n", h, h, h, h);
    else
        put(&t, "epoch,loss,accuracy,%s_loss,%s_accuracy,seconds\n", h, h);
    for (int i = 0; i < n; i++) {
        const scores *a = &r[i].train, *b = &r[i].held;
        if (reg)
            put(&t, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6g\n", i + 1, a->loss, a->rmse,
                a->mae, a->r2, b->loss, b->rmse, b->mae, b->r2, r[i].seconds);
        else
            put(&t, "%d,%.9g,%.9g,%.9g,%.9g,%.6g\n", i + 1, a->loss, a->acc, b->loss, b->acc,
                r[i].seconds);
    }
    return finish(&t, path);
}

/* ---------------------------------------------------------------- SVG plot */

enum { W = 640, H = 400, L = 70, R = 20, T = 40, B = 50 };

static double px(int i, int n) {
    return L + (n > 1 ? (double)i / (n - 1) : 0.5) * (W - L - R);
}
static double py(double v, double lo, double hi) {
    return T + (hi - v) / (hi - lo) * (H - T - B);
}

static void polyline(text *t, const epoch_row *r, int n, int val, double lo, double hi,
                     const char *color) {
    put(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < n; i++)
        put(t, "%.1f,%.1f ", px(i, n), py(val ? r[i].held.loss : r[i].train.loss, lo, hi));
    put(t, "\"/>\n");
    for (int i = 0; i < n; i++)
        put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(i, n),
            py(val ? r[i].held.loss : r[i].train.loss, lo, hi), color);
}

static void axes(text *t, int n, double lo, double hi) {
    put(t, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, H - B, W - R,
        H - B);
    put(t, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, H - B);
    for (int k = 0; k <= 4; k++) { /* five loss ticks */
        double v = lo + (hi - lo) * k / 4;
        put(t, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%.3g</text>\n",
            L - 6, py(v, lo, hi) + 4, v);
    }
    int step = n > 10 ? (n + 9) / 10 : 1;
    for (int i = 0; i < n; i += step)
        put(t, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%d</text>\n",
            px(i, n), H - B + 18, i + 1);
    put(t, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">epoch</text>\n",
        (L + W - R) / 2, H - 10);
}

int report_svg(const char *path, const epoch_row *r, int n, const char *held) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v[2] = {r[i].train.loss, held ? r[i].held.loss : r[i].train.loss};
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k])) lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
    }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) hi = lo + 1e-3;
    text t = {0};
    put(&t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    put(&t,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
        W, H, W, H);
    put(&t, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    put(&t,
        "<text x=\"%d\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">loss per epoch</text>\n",
        W / 2);
    axes(&t, n, lo, hi);
    polyline(&t, r, n, 0, lo, hi, "#1f77b4");
    put(&t, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#1f77b4\">training</text>\n", W - 160,
        T + 12);
    if (held) {
        polyline(&t, r, n, 1, lo, hi, "#d62728");
        put(&t, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#d62728\">%s</text>\n", W - 160,
            T + 28, strcmp(held, "val") ? "test" : "validation");
    }
    put(&t, "</svg>\n");
    return finish(&t, path);
}
