/* Convolutions (issue 15), NCHW as PyTorch: conv2d, conv_transpose2d,
 * conv1d (the H = 1 case) and the per-channel bias they take.
 *
 * A convolution is matmul φ (seed 001 §3.4, linalg.c) applied to a
 * rearranged input. Per image and group, im2col copies the image X (Cg
 * channels, H×W) into the matrix col(X) of K = Cg·kH·kW rows and OH·OW
 * columns: column (oh, ow) holds the window that output pixel reads, zeros
 * where it hangs over the padding. Then
 *   Y_g = W_g · col(X)          (W_g: the group's Og×K weight rows)
 * is φ with A = W_g, B = col(X), and its reverse derivatives are φ's:
 *   w.r.t. the weight: W̄_g += ζ·col(X)ᵀ   (r₁φ, the seed's ζxᵀ; beta = 1
 *                                          accumulates over images),
 *   w.r.t. the input:  X̄ += col⁻ᵀ(W_gᵀ·ζ)  (rφ = Aᵀζ, the seed's Wᵀζ, then
 *                                          col2im, the adjoint of im2col:
 *                                          it adds each column back onto the
 *                                          pixels its window read).
 * The d-map is bilinear: Ẏ = Ẇ·col(X) + W·col(Ẋ).
 *
 * The transposed convolution is the adjoint of conv2d w.r.t. its input:
 * y = convT(x, W) = X̄-map of conv2d at ζ = x. So its forward is conv2d's
 * input r-map (conv_bwd), its input r-map is conv2d's forward (conv_fwd
 * with beta = 1), and its weight r-map is conv2d's with the roles of image
 * and adjoint exchanged (W̄ += x·col(ζ)ᵀ). test_ops' adjoint check on both
 * ops therefore checks this identity.
 *
 * A 1×1 kernel with stride 1 and no padding has col(X) = X: no copy.
 * Otherwise each part (thread) has a work slot for the col matrix of a
 * block of images, in the call's saved scratch in the tape's arena, sized
 * in check: no heap allocation. */
#include "ops.h"

#include <limits.h>

enum { KIND_CONV2D, KIND_CONVT2D, KIND_CONV1D };

/* attr layout (public opts copied by the wrappers):
 *   i[0] groups, i[1] 1 = padding "same",
 *   v[0..1] stride (h, w), v[2..5] padding top, bottom, left, right,
 *   v[6..7] dilation (h, w), v[8..9] output_padding (h, w) (transposed).
 * conv1d reads the width entries only. */
enum { A_STRIDE = 0, A_PAD = 2, A_DIL = 6, A_OPAD = 8 };

/* The geometry in conv2d's direction: the image side (X, Ci channels,
 * H×W) and the col side (Y, Co channels, OH×OW). conv2d: x is the image,
 * y the col side; conv_transpose2d: x is the col side, y the image. */
typedef struct conv_geom {
    size_t N, Ci, H, W, Co, OH, OW, kH, kW, G;
    size_t Cg, Og, K, OHW, HW;
    long sH, sW, pT, pB, pL, pR, dH, dW;
    int direct;   /* 1×1, stride 1, no padding: col(X) = X */
    size_t nb;    /* images per product (see conv_batch) */
    size_t parts; /* work slots in c->saved: the thread count at check */
} conv_geom;

/* Attribute values above this are refused: every product below stays far
 * inside 64 bits. */
#define CONV_LIM (1L << 24)

static int kind_of(const tg_call *c) {
    return c->op == &tg_op_conv_transpose2d ? KIND_CONVT2D
           : c->op == &tg_op_conv1d         ? KIND_CONV1D
                                            : KIND_CONV2D;
}

/* Reads the attributes into G (stride, padding, dilation, groups); 0 or
 * an error. Padding "same" is resolved once the kernel is known. */
static tg_status read_attr(const tg_call *c, int kind, conv_geom *G, long *oph, long *opw,
                           char *msg, size_t len) {
    const long *v = c->attr.v;
    int d1 = kind == KIND_CONV1D;
    G->sH = d1 ? 1 : v[A_STRIDE], G->sW = v[A_STRIDE + 1];
    G->pT = d1 ? 0 : v[A_PAD], G->pB = d1 ? 0 : v[A_PAD + 1];
    G->pL = v[A_PAD + 2], G->pR = v[A_PAD + 3];
    G->dH = d1 ? 1 : v[A_DIL], G->dW = v[A_DIL + 1];
    *oph = kind == KIND_CONVT2D ? v[A_OPAD] : 0, *opw = kind == KIND_CONVT2D ? v[A_OPAD + 1] : 0;
    long g = c->attr.i[0];
    if (g < 1 || g > CONV_LIM) {
        snprintf(msg, len, "groups must be >= 1, got %ld", g);
        return TG_ERR_VALUE;
    }
    G->G = (size_t)g;
    if (G->sH < 1 || G->sW < 1 || G->sH > CONV_LIM || G->sW > CONV_LIM) {
        snprintf(msg, len, "stride must be >= 1, got (%ld, %ld)", G->sH, G->sW);
        return TG_ERR_VALUE;
    }
    if (G->dH < 1 || G->dW < 1 || G->dH > CONV_LIM || G->dW > CONV_LIM) {
        snprintf(msg, len, "dilation must be >= 1, got (%ld, %ld)", G->dH, G->dW);
        return TG_ERR_VALUE;
    }
    long pads[4] = {G->pT, G->pB, G->pL, G->pR};
    for (int i = 0; i < 4; i++)
        if (pads[i] < 0 || pads[i] > CONV_LIM) {
            snprintf(msg, len, "padding must be >= 0, got (%ld, %ld, %ld, %ld)", G->pT, G->pB,
                     G->pL, G->pR);
            return TG_ERR_VALUE;
        }
    if (*oph < 0 || *opw < 0 || (*oph >= G->sH && *oph >= G->dH) ||
        (*opw >= G->sW && *opw >= G->dW)) {
        snprintf(msg, len,
                 "output_padding (%ld, %ld) must be >= 0 and smaller than stride (%ld, %ld) or "
                 "dilation (%ld, %ld)",
                 *oph, *opw, G->sH, G->sW, G->dH, G->dW);
        return TG_ERR_VALUE;
    }
    if (c->attr.i[1]) {
        if (kind == KIND_CONVT2D) {
            snprintf(msg, len, "padding \"same\" is not supported for transposed convolutions");
            return TG_ERR_VALUE;
        }
        if (G->sH != 1 || G->sW != 1) {
            snprintf(msg, len, "padding \"same\" needs stride 1, got (%ld, %ld)", G->sH, G->sW);
            return TG_ERR_VALUE;
        }
    }
    return TG_OK;
}

/* PyTorch's "same": total d·(k − 1) zeros, the smaller half first. */
static void resolve_same(const tg_call *c, conv_geom *G) {
    if (!c->attr.i[1]) return;
    long th = G->dH * (long)(G->kH - 1), tw = G->dW * (long)(G->kW - 1);
    G->pT = th / 2, G->pB = th - th / 2, G->pL = tw / 2, G->pR = tw - tw / 2;
}

/* Output extent of a conv2d along one axis, <= 0 if the window does not fit. */
static long conv_out(size_t in, long p0, long p1, long d, size_t k, long s) {
    long span = (long)in + p0 + p1 - d * ((long)k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

/* Output extent of a transposed convolution along one axis. */
static long convt_out(size_t in, long p0, long p1, long d, size_t k, long s, long op) {
    return ((long)in - 1) * s - p0 - p1 + d * ((long)k - 1) + op + 1;
}

static tg_status shape_error(const tg_call *c, const char *what, char *msg, size_t len) {
    char sx[64], sw[64];
    snprintf(msg, len, "%s: input %s, weight %s", what, SHP(sx, c->in[0]), SHP(sw, c->in[1]));
    return TG_ERR_SHAPE;
}

/* The weight's and input's channel counts, per kind. */
static tg_status channels(const tg_call *c, int kind, conv_geom *G, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *w = c->in[1];
    size_t cx = x->shape[1];
    if (kind == KIND_CONVT2D) { /* w: C_in × C_out/groups × kH × kW */
        if (w->shape[0] != cx)
            return shape_error(c, "weight dim 0 must equal input channels", msg, len);
        if (cx % G->G) return shape_error(c, "input channels not divisible by groups", msg, len);
        G->Co = cx, G->Ci = w->shape[1] * G->G;
    } else { /* w: C_out × C_in/groups × kH × kW */
        if (cx % G->G) return shape_error(c, "input channels not divisible by groups", msg, len);
        if (w->shape[0] % G->G)
            return shape_error(c, "output channels (weight dim 0) not divisible by groups", msg,
                               len);
        if (w->shape[1] * G->G != cx)
            return shape_error(c, "weight dim 1 times groups must equal input channels", msg, len);
        G->Ci = cx, G->Co = w->shape[0];
    }
    return TG_OK;
}

/* Images per product. One image of a small layer makes a thin product
 * (c2 of bench_conv: 64×121 by 288 per image) on which OpenBLAS runs at a
 * third of its rate; the windows of nb images side by side in one col
 * matrix (K × nb·OH·OW) make one product of about COL_TARGET columns. The
 * outputs (and, backward, the adjoints) then pass through a buffer
 * Og × nb·OH·OW in that order: a copy of the output, small beside the
 * product. A direct (1×1) convolution keeps one image and no copy. */
#define COL_TARGET 1024
static size_t conv_batch(const conv_geom *G) {
    if (G->direct || G->OHW >= COL_TARGET / 2) return 1;
    size_t nb = (COL_TARGET + G->OHW - 1) / G->OHW;
    /* as many blocks in each part (thread): c2 on 2 threads takes 16
     * blocks of 8 images, not 15 of 9 (8 against 7 blocks) */
    size_t blocks = (G->N + nb - 1) / nb;
    blocks = (blocks + G->parts - 1) / G->parts * G->parts;
    return (G->N + blocks - 1) / blocks;
}

/* The full geometry from inputs and attributes, or an error naming both shapes. */
static tg_status geometry(const tg_call *c, size_t parts, conv_geom *G, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *w = c->in[1];
    int kind = kind_of(c), r = kind == KIND_CONV1D ? 3 : 4;
    memset(G, 0, sizeof *G);
    if (x->rank != r || w->rank != r)
        return shape_error(c,
                           r == 3 ? "needs 3-D input (N×C×L) and weight (O×C/groups×k)"
                                  : "needs 4-D input (N×C×H×W) and weight",
                           msg, len);
    for (int a = 0; a < r; a++)
        if (!x->shape[a] || !w->shape[a]) return shape_error(c, "empty dimension", msg, len);
    long oph, opw;
    tg_status s = read_attr(c, kind, G, &oph, &opw, msg, len);
    if (s) return s;
    if ((s = channels(c, kind, G, msg, len))) return s;
    G->N = x->shape[0];
    G->kH = r == 3 ? 1 : w->shape[2], G->kW = w->shape[r - 1];
    size_t xh = r == 3 ? 1 : x->shape[2], xw = x->shape[r - 1];
    if (G->kH > CONV_LIM || G->kW > CONV_LIM || xh > CONV_LIM || xw > CONV_LIM)
        return shape_error(c, "dimension too large", msg, len);
    resolve_same(c, G);
    long oh, ow;
    if (kind == KIND_CONVT2D) {
        G->OH = xh, G->OW = xw;
        oh = convt_out(xh, G->pT, G->pB, G->dH, G->kH, G->sH, oph);
        ow = convt_out(xw, G->pL, G->pR, G->dW, G->kW, G->sW, opw);
        G->H = oh > 0 ? (size_t)oh : 0, G->W = ow > 0 ? (size_t)ow : 0;
    } else {
        G->H = xh, G->W = xw;
        oh = conv_out(xh, G->pT, G->pB, G->dH, G->kH, G->sH);
        ow = conv_out(xw, G->pL, G->pR, G->dW, G->kW, G->sW);
        G->OH = oh > 0 ? (size_t)oh : 0, G->OW = ow > 0 ? (size_t)ow : 0;
    }
    if ((oh <= 0 || ow <= 0) && kind == KIND_CONV1D) {
        char sx[64], sw[64];
        snprintf(msg, len,
                 "output length %ld <= 0: input %s, weight %s, stride %ld, padding (%ld, %ld), "
                 "dilation %ld",
                 ow, SHP(sx, x), SHP(sw, w), G->sW, G->pL, G->pR, G->dW);
        return TG_ERR_SHAPE;
    }
    if (oh <= 0 || ow <= 0) {
        char sx[64], sw[64];
        snprintf(msg, len,
                 "output size (%ld, %ld) <= 0: input %s, weight %s, stride (%ld, %ld), padding "
                 "(%ld, %ld, %ld, %ld), dilation (%ld, %ld)",
                 oh, ow, SHP(sx, x), SHP(sw, w), G->sH, G->sW, G->pT, G->pB, G->pL, G->pR, G->dH,
                 G->dW);
        return TG_ERR_SHAPE;
    }
    G->Cg = G->Ci / G->G, G->Og = G->Co / G->G;
    double hw = (double)G->H * (double)G->W, ohw = (double)G->OH * (double)G->OW;
    double k = (double)G->Cg * (double)G->kH * (double)G->kW;
    if (k > INT32_MAX || ohw > INT32_MAX || hw > INT32_MAX || G->Og > INT32_MAX ||
        k * ohw > (double)(SIZE_MAX / 16) ||
        (double)G->N * (double)(G->Ci > G->Co ? G->Ci : G->Co) * (hw > ohw ? hw : ohw) >
            (double)(SIZE_MAX / 16))
        return shape_error(c, "dimension too large for BLAS", msg, len);
    G->K = G->Cg * G->kH * G->kW, G->OHW = G->OH * G->OW, G->HW = G->H * G->W;
    /* (a transposed 1×1 with output_padding has a larger image than col side) */
    G->direct = G->kH == 1 && G->kW == 1 && G->sH == 1 && G->sW == 1 && !G->pT && !G->pB &&
                !G->pL && !G->pR && G->HW == G->OHW;
    G->parts = parts < G->N ? parts : G->N;
    G->nb = conv_batch(G);
    return TG_OK;
}

/* Geometry of a call that passed check: the parts (work slots) are
 * those check sized c->saved for. */
static size_t conv_bytes(const conv_geom *G, size_t es);
static conv_geom geom_of(const tg_call *c) {
    conv_geom G;
    char msg[8];
    size_t es = tg_dtype_size(c->out->dtype);
    for (size_t p = 1; p <= TG_MAX_THREADS; p++) {
        geometry(c, p, &G, msg, sizeof msg);
        if (conv_bytes(&G, es) == c->saved_bytes) break;
    }
    return G;
}

static tg_status conv_check(tg_call *c, char *msg, size_t len) {
    conv_geom G;
    tg_status s = geometry(c, (size_t)tg_get_threads(), &G, msg, len);
    if (s) return s;
    int kind = kind_of(c);
    c->out->rank = c->in[0]->rank;
    c->out->shape[0] = G.N;
    c->out->shape[1] = kind == KIND_CONVT2D ? G.Ci : G.Co;
    size_t h = kind == KIND_CONVT2D ? G.H : G.OH, w = kind == KIND_CONVT2D ? G.W : G.OW;
    if (kind == KIND_CONV1D)
        c->out->shape[2] = w;
    else
        c->out->shape[2] = h, c->out->shape[3] = w;
    c->saved_bytes = conv_bytes(&G, tg_dtype_size(c->in[0]->dtype));
    return TG_OK;
}

/* ---------------------------------------------------------------- im2col, col2im */

/* The range [lo, hi) of output columns o whose input index o·s + off lies
 * in [0, n). */
static void valid_range(size_t OW, long s, long off, size_t n, size_t *lo, size_t *hi) {
    long l = off >= 0 ? 0 : (-off + s - 1) / s;
    long h = (long)n - off <= 0 ? 0 : ((long)n - off + s - 1) / s;
    if (h > (long)OW) h = (long)OW;
    if (l > h) l = h;
    *lo = (size_t)l, *hi = (size_t)h;
}

/* d[0..n) = s[0..n). The rows of small layers are short (c2 of bench_conv:
 * 11 elements) and a memcpy call of a variable size costs more than its
 * copy; a constant size per case is inlined as a few moves (an im2col of
 * 9 images of c2 alone: 110 → 97 µs). */
#define COPY_CASE(k)                                                                               \
    case k:                                                                                        \
        memcpy(d_, s_, k * sizeof(real));                                                          \
        break;
/* (inside TG_DISPATCH: real is the element type) */
#define COPY_ROW(d, s, n)                                                                          \
    do {                                                                                           \
        real *d_ = (d);                                                                            \
        const real *s_ = (s);                                                                      \
        switch (n) {                                                                               \
            COPY_CASE(1)                                                                           \
            COPY_CASE(2)                                                                           \
            COPY_CASE(3)                                                                           \
            COPY_CASE(4)                                                                           \
            COPY_CASE(5)                                                                           \
            COPY_CASE(6) COPY_CASE(7) COPY_CASE(8) COPY_CASE(9) COPY_CASE(10) COPY_CASE(11)        \
                COPY_CASE(12) COPY_CASE(13) COPY_CASE(14) COPY_CASE(15) COPY_CASE(16) default      \
                : memcpy(d_, s_, (n) * sizeof(real));                                              \
        }                                                                                          \
    } while (0)

/* col (K × OHW, rows ld apart) = the windows of one group's image img (Cg × H × W). */
static void im2col(const conv_geom *G, tg_dtype dt, const void *img, void *col, size_t ld) {
    TG_DISPATCH(
        dt, const real *X = img; real *C = col;
        for (size_t ch = 0; ch < G->Cg; ch++) for (size_t i = 0; i < G->kH;
                                                   i++) for (size_t j = 0; j < G->kW; j++) {
            real *row = C + ((ch * G->kH + i) * G->kW + j) * ld;
            long offw = (long)j * G->dW - G->pL;
            size_t lo, hi;
            valid_range(G->OW, G->sW, offw, G->W, &lo, &hi);
            for (size_t oh = 0; oh < G->OH; oh++) {
                real *r = row + oh * G->OW;
                long ih = (long)oh * G->sH - G->pT + (long)i * G->dH;
                if (ih < 0 || ih >= (long)G->H) {
                    memset(r, 0, G->OW * sizeof(real));
                    continue;
                }
                const real *src = X + (ch * G->H + (size_t)ih) * G->W;
                for (size_t ow = 0; ow < lo; ow++)
                    r[ow] = 0;
                if (G->sW == 1)
                    COPY_ROW(r + lo, src + (long)lo + offw, hi - lo);
                else
                    for (size_t ow = lo; ow < hi; ow++)
                        r[ow] = src[(long)ow * G->sW + offw];
                for (size_t ow = hi; ow < G->OW; ow++)
                    r[ow] = 0;
            }
        });
}

/* img (Cg × H × W) += col2im(col): im2col's adjoint, each window's column
 * added back onto the pixels it read (padding positions dropped). */
static void col2im_add(const conv_geom *G, tg_dtype dt, const void *col, size_t ld, void *img) {
    TG_DISPATCH(
        dt, real *X = img; const real *C = col;
        for (size_t ch = 0; ch < G->Cg; ch++) for (size_t i = 0; i < G->kH;
                                                   i++) for (size_t j = 0; j < G->kW; j++) {
            const real *row = C + ((ch * G->kH + i) * G->kW + j) * ld;
            long offw = (long)j * G->dW - G->pL;
            size_t lo, hi;
            valid_range(G->OW, G->sW, offw, G->W, &lo, &hi);
            for (size_t oh = 0; oh < G->OH; oh++) {
                long ih = (long)oh * G->sH - G->pT + (long)i * G->dH;
                if (ih < 0 || ih >= (long)G->H) continue;
                const real *r = row + oh * G->OW;
                real *dst = X + (ch * G->H + (size_t)ih) * G->W + offw;
                if (G->sW == 1)
                    for (size_t ow = lo; ow < hi; ow++)
                        dst[ow] += r[ow];
                else
                    for (size_t ow = lo; ow < hi; ow++)
                        dst[(long)ow * G->sW] += r[ow];
            }
        });
}

/* ---------------------------------------------------------------- the three products */

/* Offsets (elements) of image n, group g on the image and col sides, and of
 * the group's weight rows. */
static size_t img_at(const conv_geom *G, size_t n, size_t g) {
    return (n * G->Ci + g * G->Cg) * G->HW;
}
static size_t col_at(const conv_geom *G, size_t n, size_t g) {
    return (n * G->Co + g * G->Og) * G->OHW;
}

/* The col matrix of images n0..n0+nb−1, group g (K × nb·OHW) written to
 * buf, or the image itself if direct. */
static const void *cols_of(const conv_geom *G, tg_dtype dt, const void *img, size_t n0, size_t nb,
                           size_t g, void *buf) {
    size_t es = tg_dtype_size(dt);
    if (G->direct) return (const char *)img + img_at(G, n0, g) * es;
    for (size_t i = 0; i < nb; i++)
        im2col(G, dt, (const char *)img + img_at(G, n0 + i, g) * es, (char *)buf + i * G->OHW * es,
               nb * G->OHW);
    return buf;
}

/* The window side's NCHW blocks of nb images (group g: Og × OHW each) and
 * the buffer t (Og × nb·OHW): gather copies the blocks into t; scatter
 * copies t out to them (beta 0) or adds it (beta 1). */
static char *win_block(const conv_geom *G, size_t es, const void *win, size_t n, size_t g,
                       size_t o) {
    return (char *)(uintptr_t)win + (col_at(G, n, g) + o * G->OHW) * es;
}

static void win_gather(const conv_geom *G, tg_dtype dt, const void *win, size_t n0, size_t nb,
                       size_t g, void *t) {
    size_t es = tg_dtype_size(dt), run = G->OHW;
    for (size_t i = 0; i < nb; i++)
        for (size_t o = 0; o < G->Og; o++)
            memcpy((char *)t + (o * nb + i) * run * es, win_block(G, es, win, n0 + i, g, o),
                   run * es);
}

static void win_scatter(const conv_geom *G, tg_dtype dt, void *win, size_t n0, size_t nb, size_t g,
                        const void *t, double beta) {
    size_t es = tg_dtype_size(dt), run = G->OHW;
    for (size_t i = 0; i < nb; i++)
        for (size_t o = 0; o < G->Og; o++) {
            char *w = win_block(G, es, win, n0 + i, g, o);
            const char *b = (const char *)t + (o * nb + i) * run * es;
            if (beta == 0.0)
                memcpy(w, b, run * es);
            else
                TG_DISPATCH(dt, real *y = (real *)w; const real *v = (const real *)b;
                            for (size_t e = 0; e < run; e++) y[e] += v[e];);
        }
}

/* ---------------------------------------------------------------- the scratch */

/* c->saved, in elements: one work slot per part (thread): a block's col
 * matrix and its window-side buffer; then one partial weight adjoint W̄ᵀ
 * (K × Co) per part.
 * Not kept: the forward's col matrices of every image, for the weight
 * r-map (one im2col fewer per step, N·K·OH·OW elements). Tried: at load
 * 5 on this 2-core host, alternated, the backward's second im2col into a
 * slot that stays in cache was faster than streaming the kept matrices
 * out to memory and back (c2 17.8 MB, c3 75 MB): 11 pairs of 12 in its
 * favour, median 5 %; on a quiet host the kept cols had won c2 by 6 %
 * before im2col's short rows were made cheaper. */
static size_t slot_col(const conv_geom *G) {
    return G->direct ? 0 : G->K * G->nb * G->OHW;
}
static size_t slot_elems(const conv_geom *G) {
    return slot_col(G) + (G->nb > 1 ? G->Og * G->nb * G->OHW : 0);
}
static size_t conv_bytes(const conv_geom *G, size_t es) {
    return G->parts * (slot_elems(G) + G->Co * G->K) * es;
}

/* ---------------------------------------------------------------- the three products */

/* One pass over the blocks of images: the forward (φ), or the backward
 * (either r-map or both), blocks shared out among the pool's threads. */
typedef struct conv_job {
    const conv_geom *G;
    tg_dtype dt;
    int bwd;
    const void *img, *w, *z; /* image side, weight, window side (the backward's ζ) */
    void *out;               /* forward: the window side, written with beta */
    double beta;
    void *gimg, *gw; /* backward: X̄ (+= col⁻ᵀ(Wᵀζ)), W̄ (+= ζ·colᵀ), either NULL */
    char *saved;
    int parts;
} conv_job;

/* C = op(A)·op(B) + beta·C: on the pool when one part runs, else on this
 * part's thread (the parts are the threads' work). */
static void conv_gemm(const conv_job *j, int ta, int tb, size_t m, size_t n, size_t k,
                      const void *a, size_t lda, const void *b, size_t ldb, double beta, void *c,
                      size_t ldc) {
    (j->parts > 1 ? tg_gemm1 : tg_gemm)(j->dt, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* φ: out_g = W_g·col(img_g) + beta·out_g for images n0..n0+nb−1, group g. */
static void fwd_block(const conv_job *j, size_t n0, size_t nb, size_t g, char *slot) {
    const conv_geom *G = j->G;
    size_t es = tg_dtype_size(j->dt), cols = nb * G->OHW;
    const char *wg = (const char *)j->w + g * G->Og * G->K * es;
    const void *col = cols_of(G, j->dt, j->img, n0, nb, g, slot);
    if (G->nb == 1) {
        conv_gemm(j, 0, 0, G->Og, cols, G->K, wg, G->K, col, cols, j->beta,
                  (char *)j->out + col_at(G, n0, g) * es, cols);
        return;
    }
    void *t = slot + slot_col(G) * es;
    conv_gemm(j, 0, 0, G->Og, cols, G->K, wg, G->K, col, cols, 0.0, t, cols);
    win_scatter(G, j->dt, j->out, n0, nb, g, t, j->beta);
}

/* The r-maps of one block, with ζ_g gathered once for both:
 *   r₁φ: W̄_gᵀ += col(img_g)·ζ_gᵀ (the seed's ζxᵀ, transposed: into the
 *        part's K × Og partial, summed over blocks by beta = 1). OpenBLAS
 *        runs this shape (K × Og, inner nb·OHW) at its square rate and the
 *        untransposed Og × K one at 0.75 of it (c3 of bench_conv: 97 against
 *        72 GFLOP/s).
 *   rφ:  img_g += col⁻ᵀ(W_gᵀ·ζ_g) (the seed's Aᵀζ); a direct (1×1)
 *        convolution accumulates the product into img itself (beta = 1). */
static void bwd_block(const conv_job *j, size_t n0, size_t nb, size_t g, char *slot, char *wt) {
    const conv_geom *G = j->G;
    tg_dtype dt = j->dt;
    size_t es = tg_dtype_size(dt), cols = nb * G->OHW;
    const void *zg = (const char *)j->z + col_at(G, n0, g) * es;
    if (G->nb > 1) {
        win_gather(G, dt, j->z, n0, nb, g, slot + slot_col(G) * es);
        zg = slot + slot_col(G) * es;
    }
    if (j->gw) {
        const void *col = cols_of(G, dt, j->img, n0, nb, g, slot);
        conv_gemm(j, 0, 1, G->K, G->Og, cols, col, cols, zg, cols, 1.0, wt + g * G->Og * G->K * es,
                  G->Og);
    }
    if (!j->gimg) return;
    const char *wg = (const char *)j->w + g * G->Og * G->K * es;
    char *x = (char *)j->gimg + img_at(G, n0, g) * es;
    conv_gemm(j, 1, 0, G->K, cols, G->Og, wg, G->K, zg, cols, G->direct ? 1.0 : 0.0,
              G->direct ? x : slot, cols);
    for (size_t i = 0; !G->direct && i < nb; i++)
        col2im_add(G, dt, slot + i * G->OHW * es, cols,
                   (char *)j->gimg + img_at(G, n0 + i, g) * es);
}

/* Part `part` of the blocks: whole blocks of images per thread, so that
 * each product keeps the shape that OpenBLAS runs fast on one thread
 * (splitting a 64-row product in two halves its efficiency). */
static void conv_part(void *ctx, int part, int parts) {
    const conv_job *j = ctx;
    const conv_geom *G = j->G;
    size_t es = tg_dtype_size(j->dt), lo, hi, blocks = (G->N + G->nb - 1) / G->nb;
    char *slot = j->saved + (size_t)part * slot_elems(G) * es;
    char *wt = j->saved + (G->parts * slot_elems(G) + (size_t)part * G->Co * G->K) * es;
    if (j->bwd && j->gw) memset(wt, 0, G->Co * G->K * es);
    tg_part_range(blocks, part, parts, 1, &lo, &hi);
    for (size_t b = lo; b < hi; b++) {
        size_t n0 = b * G->nb, nb = G->N - n0 < G->nb ? G->N - n0 : G->nb;
        for (size_t g = 0; g < G->G; g++)
            if (j->bwd)
                bwd_block(j, n0, nb, g, slot, wt);
            else
                fwd_block(j, n0, nb, g, slot);
    }
}

/* W̄_g += Σ_parts (W̄_gᵀ partial)ᵀ, parts in order: the bits depend on the
 * thread count only. */
static void rw_reduce(const conv_job *j) {
    const conv_geom *G = j->G;
    size_t K = G->K, Og = G->Og;
    TG_DISPATCH(
        j->dt, real *W = j->gw;
        const real *T = (const real *)(const void *)j->saved + G->parts * slot_elems(G);
        for (int p = 0; p < j->parts; p++) for (size_t g = 0; g < G->G; g++) {
            const real *t = T + (size_t)p * G->Co * K + g * K * Og;
            real *w = W + g * Og * K;
            for (size_t o = 0; o < Og; o++)
                for (size_t k = 0; k < K; k++)
                    w[o * K + k] += t[k * Og + o];
        });
}

static void conv_run(conv_job *j) {
    size_t blocks = (j->G->N + j->G->nb - 1) / j->G->nb;
    int parts = tg_get_threads() < (int)j->G->parts ? tg_get_threads() : (int)j->G->parts;
    j->parts = (size_t)parts < blocks ? parts : (int)blocks;
    tg_parallel(conv_part, j, j->parts);
    if (j->bwd && j->gw) rw_reduce(j);
}

static conv_job job_of(const conv_geom *G, tg_dtype dt, void *saved) {
    conv_job j = {.G = G, .dt = dt, .saved = saved};
    return j;
}

/* φ: out = W·col(img) + beta·out. */
static void conv_fwd(const conv_geom *G, tg_dtype dt, const void *img, const void *w, double beta,
                     void *out, void *saved) {
    conv_job j = job_of(G, dt, saved);
    j.img = img, j.w = w, j.out = out, j.beta = beta;
    conv_run(&j);
}

/* The r-maps: gimg += col⁻ᵀ(Wᵀz), gw += z·col(img)ᵀ (either NULL). */
static void conv_bwd(const conv_geom *G, tg_dtype dt, const void *z, const void *w, const void *img,
                     void *gimg, void *gw, void *saved) {
    conv_job j = job_of(G, dt, saved);
    j.bwd = 1, j.img = img, j.w = w, j.z = z, j.gimg = gimg, j.gw = gw;
    conv_run(&j);
}

/* ---------------------------------------------------------------- conv2d, conv1d */

static void conv_forward(tg_call *c) {
    conv_geom G = geom_of(c);
    conv_fwd(&G, c->out->dtype, c->in[0]->data, c->in[1]->data, 0.0, c->out->data, c->saved);
}

/* Ẏ = W·col(Ẋ) + Ẇ·col(X). */
static void conv_jvp(const tg_call *c, const void *const *tin, void *tout) {
    conv_geom G = geom_of(c);
    tg_dtype dt = c->out->dtype;
    double beta = 0.0;
    if (tin[0]) conv_fwd(&G, dt, tin[0], c->in[1]->data, 0.0, tout, c->saved), beta = 1.0;
    if (tin[1]) conv_fwd(&G, dt, c->in[0]->data, tin[1], beta, tout, c->saved), beta = 1.0;
    if (beta == 0.0) memset(tout, 0, c->out->size * tg_dtype_size(dt));
}

/* X̄ += col⁻ᵀ(Wᵀζ), W̄ += ζ·col(X)ᵀ, in one pass over the blocks. */
static void conv_vjp(const tg_call *c, const void *gout, void *const *gin) {
    conv_geom G = geom_of(c);
    conv_bwd(&G, c->out->dtype, gout, c->in[1]->data, c->in[0]->data, gin[0], gin[1], c->saved);
}

/* Second order (issue 18): the r-map (X̄ += col⁻ᵀ(Wᵀζ), W̄ += ζ·col(X)ᵀ)
 * is linear in each operand, so its derivative along (Ẋ, Ẇ) is the r-map
 * with the tangent operands substituted (as matmul's, linalg.c):
 *   vjp_dot: Ẋ̄ += col⁻ᵀ(Ẇᵀζ),  Ẇ̄ += ζ·col(Ẋ)ᵀ   (a zero tangent: no term),
 * through conv_bwd itself (it reads w only for X̄ and img only for W̄). */
static void conv_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                         const void *gout, void *const *gin) {
    (void)tout;
    conv_geom G = geom_of(c);
    void *gx = tin[1] ? gin[0] : NULL, *gw = tin[0] ? gin[1] : NULL;
    if (gx || gw) conv_bwd(&G, c->out->dtype, gout, tin[1], tin[0], gx, gw, c->saved);
}

/* ---------------------------------------------------------------- conv_transpose2d */

/* y = col⁻ᵀ(Wᵀx): conv2d's input r-map at ζ = x, into a cleared output. */
static void convt_forward(tg_call *c) {
    conv_geom G = geom_of(c);
    memset(c->out->data, 0, c->out->size * tg_dtype_size(c->out->dtype));
    conv_bwd(&G, c->out->dtype, c->in[0]->data, c->in[1]->data, NULL, c->out->data, NULL, c->saved);
}

/* ẏ = col⁻ᵀ(Wᵀẋ) + col⁻ᵀ(Ẇᵀx). */
static void convt_jvp(const tg_call *c, const void *const *tin, void *tout) {
    conv_geom G = geom_of(c);
    tg_dtype dt = c->out->dtype;
    memset(tout, 0, c->out->size * tg_dtype_size(dt));
    if (tin[0]) conv_bwd(&G, dt, tin[0], c->in[1]->data, NULL, tout, NULL, c->saved);
    if (tin[1]) conv_bwd(&G, dt, c->in[0]->data, tin[1], NULL, tout, NULL, c->saved);
}

/* x̄ += W·col(ζ) (conv2d's forward, beta = 1); W̄ += x·col(ζ)ᵀ (conv2d's
 * weight r-map with image ζ and adjoint x). */
static void convt_vjp(const tg_call *c, const void *gout, void *const *gin) {
    conv_geom G = geom_of(c);
    tg_dtype dt = c->out->dtype;
    if (gin[0]) conv_fwd(&G, dt, gout, c->in[1]->data, 1.0, gin[0], c->saved);
    if (gin[1]) conv_bwd(&G, dt, c->in[0]->data, NULL, gout, NULL, gin[1], c->saved);
}

/* Second order: convt_vjp is linear in each of x and W, so along (ẋ, Ẇ)
 *   vjp_dot: ẋ̄ += Ẇ·col(ζ),  Ẇ̄ += ẋ·col(ζ)ᵀ   (convt_vjp with the tangent
 * operands substituted, through the same calls). */
static void convt_vjp_dot(const tg_call *c, const void *const *tin, const void *tout,
                          const void *gout, void *const *gin) {
    (void)tout;
    conv_geom G = geom_of(c);
    tg_dtype dt = c->out->dtype;
    if (gin[0] && tin[1]) conv_fwd(&G, dt, gout, tin[1], 1.0, gin[0], c->saved);
    if (gin[1] && tin[0]) conv_bwd(&G, dt, tin[0], NULL, gout, NULL, gin[1], c->saved);
}

/* ---------------------------------------------------------------- samples */

/* Small shapes from m, k, n (test_ops runs 6 triples): a batch of 1 or 2,
 * groups 1 or 2 (2 with 2 channels: depthwise), uneven padding, stride 2
 * and dilation 2 on one axis each; every input pixel read (the NaN test). */
static void conv_shape(tg_sample *s, int i, size_t a, size_t b, size_t c, size_t d) {
    s->rank[i] = 4;
    s->shape[i][0] = a, s->shape[i][1] = b, s->shape[i][2] = c, s->shape[i][3] = d;
    s->domain[i] = TG_DOM_REAL;
}

static void conv_attr(tg_attr *a, long groups, long sh, long sw, long dh, long dw) {
    a->i[0] = groups;
    a->v[A_STRIDE] = sh, a->v[A_STRIDE + 1] = sw;
    a->v[A_DIL] = dh, a->v[A_DIL + 1] = dw;
}

static void conv2d_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    size_t g = k % 2 == 0 ? 2 : 1;
    conv_shape(s, 0, 1 + m % 2, 2, 2 + n, 3 + m % 2);
    conv_shape(s, 1, 2, 2 / g, 1 + n % 2, 2);
    conv_attr(&s->attr, (long)g, 1, 1 + (long)(m % 2), k > 3 ? 2 : 1, 1);
    s->attr.v[A_PAD] = 1, s->attr.v[A_PAD + 3] = 1; /* top and right */
}

static void convt_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    size_t g = k % 2 == 0 ? 2 : 1;
    conv_shape(s, 0, 1 + m % 2, 2, 2, 2 + k % 2);
    conv_shape(s, 1, 2, 2 / g, 1 + n % 2, 2);
    conv_attr(&s->attr, (long)g, 1 + (long)(m % 2), 2, 1, n > 2 ? 2 : 1);
    s->attr.v[A_PAD + 1] = 1, s->attr.v[A_PAD + 2] = 1; /* bottom and left */
    s->attr.v[A_OPAD] = (long)(m % 2), s->attr.v[A_OPAD + 1] = 1;
}

/* Padding "same" (an even kernel: uneven sides) at even n, else stride 2. */
static void conv1d_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    size_t g = k % 2 == 0 ? 2 : 1;
    s->rank[0] = s->rank[1] = 3;
    s->shape[0][0] = 1 + m % 2, s->shape[0][1] = 2, s->shape[0][2] = 3 + n;
    s->shape[1][0] = 2, s->shape[1][1] = 2 / g, s->shape[1][2] = 2 + m % 2;
    s->domain[0] = s->domain[1] = TG_DOM_REAL;
    int same = n % 2 == 0;
    conv_attr(&s->attr, (long)g, 1, same ? 1 : 2, 1, k % 2 == 0 ? 2 : 1);
    s->attr.i[1] = same;
    s->attr.v[A_PAD + 2] = same ? 0 : 1;
}

const tg_op tg_op_conv2d = {.name = "conv2d",
                            .arity = 2,
                            .check = conv_check,
                            .forward = conv_forward,
                            .jvp = conv_jvp,
                            .vjp = conv_vjp,
                            .sample = conv2d_sample,
                            .vjp_dot = conv_vjp_dot};

const tg_op tg_op_conv1d = {.name = "conv1d",
                            .arity = 2,
                            .check = conv_check,
                            .forward = conv_forward,
                            .jvp = conv_jvp,
                            .vjp = conv_vjp,
                            .sample = conv1d_sample,
                            .vjp_dot = conv_vjp_dot};

const tg_op tg_op_conv_transpose2d = {.name = "conv_transpose2d",
                                      .arity = 2,
                                      .check = conv_check,
                                      .forward = convt_forward,
                                      .jvp = convt_jvp,
                                      .vjp = convt_vjp,
                                      .sample = convt_sample,
                                      .vjp_dot = convt_vjp_dot};

/* ---------------------------------------------------------------- channel bias */

/* y[n, c, …] = x[n, c, …] + b[c]: the bias of a convolution, on axis 1 of
 * x (rank >= 2). d: ẏ = ẋ + ḃ[c]; r: x̄ += ζ (identity_r), b̄[c] += Σ ζ[n, c, …]. */
static tg_status cbias_check(tg_call *c, char *msg, size_t len) {
    const tg_tensor *x = c->in[0], *b = c->in[1];
    if (x->rank < 2 || b->rank != 1 || b->shape[0] != x->shape[1]) {
        char sx[64], sb[64];
        snprintf(msg, len, "bias must be a vector of x's channels (axis 1): %s+%s", SHP(sx, x),
                 SHP(sb, b));
        return TG_ERR_SHAPE;
    }
    tg_out_like(c, x);
    return TG_OK;
}

/* Rows of x: (n, c) pairs, each `inner` contiguous elements. */
static void cbias_dims(const tg_call *c, size_t *rows, size_t *C, size_t *inner) {
    const tg_tensor *x = c->in[0];
    *C = x->shape[1], *rows = x->shape[0] * *C;
    *inner = *rows ? x->size / *rows : 0;
}

static void cbias_forward(tg_call *c) {
    size_t rows, C, in;
    cbias_dims(c, &rows, &C, &in);
    TG_DISPATCH(
        c->out->dtype, const real *x = c->in[0]->data; const real *b = c->in[1]->data;
        real *y = c->out->data; for (size_t r = 0; r < rows; r++) {
            const real br = b[r % C];
            for (size_t e = 0; e < in; e++)
                y[r * in + e] = x[r * in + e] + br;
        });
}

static void cbias_jvp(const tg_call *c, const void *const *tin, void *tout) {
    size_t rows, C, in;
    cbias_dims(c, &rows, &C, &in);
    TG_DISPATCH(
        c->out->dtype, const real *tx = tin[0]; const real *tb = tin[1]; real *t = tout;
        for (size_t r = 0; r < rows; r++) {
            const real br = tb ? tb[r % C] : 0;
            for (size_t e = 0; e < in; e++)
                t[r * in + e] = (tx ? tx[r * in + e] : 0) + br;
        });
}

/* Σ of n contiguous elements in 8 interleaved partial sums, so that the
 * loop vectorises (one running sum cannot be reordered without
 * -ffast-math; it took 7 % of bench_conv's c1-c3 steps). */
#define CBIAS_LANES 8
static void cbias_vjp(const tg_call *c, const void *gout, void *const *gin) {
    size_t rows, C, in;
    cbias_dims(c, &rows, &C, &in);
    TG_DISPATCH(
        c->out->dtype, const real *z = gout; real *gx = gin[0]; real *gb = gin[1];
        if (gx) for (size_t i = 0; i < rows * in; i++) gx[i] += z[i];
        if (gb) for (size_t r = 0; r < rows; r++) {
            const real *zr = z + r * in;
            real part[CBIAS_LANES] = {0};
            size_t e = 0;
            for (; e + CBIAS_LANES <= in; e += CBIAS_LANES)
                for (size_t l = 0; l < CBIAS_LANES; l++)
                    part[l] += zr[e + l];
            real s = 0;
            for (size_t l = 0; l < CBIAS_LANES; l++)
                s += part[l];
            for (; e < in; e++)
                s += zr[e];
            gb[r % C] += s;
        });
}

static void cbias_sample(size_t m, size_t k, size_t n, tg_sample *s) {
    conv_shape(s, 0, m, k, n, 2);
    s->rank[1] = 1;
    s->shape[1][0] = k;
    s->domain[1] = TG_DOM_REAL;
}

/* Second order (issue 18): y = x + b broadcast over channels is affine in
 * (x, b), its r-maps (ζ, Σ ζ per channel) independent of the values:
 * r_const, term zero. */
const tg_op tg_op_channel_bias = {.name = "channel_bias",
                                  .arity = 2,
                                  .check = cbias_check,
                                  .forward = cbias_forward,
                                  .jvp = cbias_jvp,
                                  .vjp = cbias_vjp,
                                  .sample = cbias_sample,
                                  .identity_r = 1u,
                                  .r_const = 1u};

/* ---------------------------------------------------------------- public wrappers */

tg_conv2d_opts tg_conv2d_defaults(void) {
    tg_conv2d_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = 1;
    o.dilation[0] = o.dilation[1] = 1;
    o.groups = 1;
    return o;
}

tg_conv1d_opts tg_conv1d_defaults(void) {
    tg_conv1d_opts o;
    memset(&o, 0, sizeof o);
    o.stride = o.dilation = o.groups = 1;
    return o;
}

tg_status tg_channel_bias(tg_tape *t, const tg_tensor *x, const tg_tensor *b, tg_tensor **out) {
    return tg_apply2(t, &tg_op_channel_bias, x, b, NULL, out);
}

/* The op, then the bias if there is one. */
static tg_status conv_apply(tg_tape *t, const tg_op *op, const tg_tensor *x, const tg_tensor *w,
                            const tg_tensor *bias, const tg_attr *a, tg_tensor **out) {
    if (!bias) return tg_apply2(t, op, x, w, a, out);
    tg_tensor *y = NULL;
    tg_status s = tg_apply2(t, op, x, w, a, &y);
    if (s) {
        if (out) *out = NULL;
        return s;
    }
    return tg_apply2(t, &tg_op_channel_bias, y, bias, NULL, out);
}

static tg_attr attr_2d(const tg_conv2d_opts *o) {
    tg_conv2d_opts d = tg_conv2d_defaults();
    if (!o) o = &d;
    tg_attr a;
    memset(&a, 0, sizeof a);
    a.i[0] = o->groups, a.i[1] = o->padding_same != 0;
    for (int i = 0; i < 2; i++) {
        a.v[A_STRIDE + i] = o->stride[i], a.v[A_DIL + i] = o->dilation[i];
        a.v[A_OPAD + i] = o->output_padding[i];
    }
    for (int i = 0; i < 4; i++)
        a.v[A_PAD + i] = o->padding[i];
    return a;
}

tg_status tg_conv2d(tg_tape *t, const tg_tensor *x, const tg_tensor *w, const tg_tensor *bias,
                    const tg_conv2d_opts *opts, tg_tensor **out) {
    tg_attr a = attr_2d(opts);
    return conv_apply(t, &tg_op_conv2d, x, w, bias, &a, out);
}

tg_status tg_conv_transpose2d(tg_tape *t, const tg_tensor *x, const tg_tensor *w,
                              const tg_tensor *bias, const tg_conv2d_opts *opts, tg_tensor **out) {
    tg_attr a = attr_2d(opts);
    return conv_apply(t, &tg_op_conv_transpose2d, x, w, bias, &a, out);
}

tg_status tg_conv1d(tg_tape *t, const tg_tensor *x, const tg_tensor *w, const tg_tensor *bias,
                    const tg_conv1d_opts *opts, tg_tensor **out) {
    tg_conv1d_opts d = tg_conv1d_defaults();
    if (!opts) opts = &d;
    tg_attr a;
    memset(&a, 0, sizeof a);
    a.i[0] = opts->groups, a.i[1] = opts->padding_same != 0;
    a.v[A_STRIDE] = a.v[A_DIL] = 1; /* the H axis: unused */
    a.v[A_STRIDE + 1] = opts->stride, a.v[A_DIL + 1] = opts->dilation;
    a.v[A_PAD + 2] = opts->padding[0], a.v[A_PAD + 3] = opts->padding[1];
    return conv_apply(t, &tg_op_conv1d, x, w, bias, &a, out);
}
