/* Convolutions (conv.c): values and both r-maps of conv2d, conv_transpose2d
 * and conv1d against a naive direct implementation (loops, double) over a
 * grid of shapes, strides, paddings (per side and "same"), dilations and
 * groups (depthwise included), kernels larger than the input, strides
 * larger than the kernel, 1×1 kernels (the no-copy path), a batch of 1 and
 * one channel, float32 and float64; torch 1.13 values for two cases; the
 * channel bias; the errors of every impossible configuration. */
#include "extremes.h"

#include <float.h>

enum { K_CONV2D, K_CONVT2D, K_CONV1D };

/* One case: x N×C×H×W (conv1d: H = 1, rank 3), weight dims, options. For
 * conv2d C is C_in and O is C_out; for the transposed one C is C_in, O is
 * C_out (weight C×O/groups×kH×kW). */
typedef struct conv_case {
    int kind;
    size_t N, C, H, W, O, kH, kW;
    long sh, sw, pad[4]; /* top, bottom, left, right */
    int same;
    long dh, dw, groups, oph, opw;
} conv_case;

/* The geometry, from the documented formulas (PyTorch's), independent of conv.c. */
typedef struct ref_geom {
    size_t Ci, Co, H, W, OH, OW; /* image side (Ci, H, W), window side (Co, OH, OW) */
    long pt, pl;
} ref_geom;

static ref_geom ref_geometry(const conv_case *k) {
    ref_geom g;
    long pt = k->pad[0], pb = k->pad[1], pl = k->pad[2], pr = k->pad[3];
    if (k->same) {
        long th = k->dh * (long)(k->kH - 1), tw = k->dw * (long)(k->kW - 1);
        pt = th / 2, pb = th - pt, pl = tw / 2, pr = tw - pl;
    }
    g.pt = pt, g.pl = pl;
    if (k->kind == K_CONVT2D) {
        g.Co = k->C, g.Ci = k->O, g.OH = k->H, g.OW = k->W;
        g.H = (size_t)(((long)k->H - 1) * k->sh - pt - pb + k->dh * (long)(k->kH - 1) + k->oph + 1);
        g.W = (size_t)(((long)k->W - 1) * k->sw - pl - pr + k->dw * (long)(k->kW - 1) + k->opw + 1);
    } else {
        g.Ci = k->C, g.Co = k->O, g.H = k->H, g.W = k->W;
        g.OH = (size_t)(((long)k->H + pt + pb - k->dh * (long)(k->kH - 1) - 1) / k->sh + 1);
        g.OW = (size_t)(((long)k->W + pl + pr - k->dw * (long)(k->kW - 1) - 1) / k->sw + 1);
    }
    return g;
}

/* Visit every (window-side index, image-side index, weight index) triple
 * the convolution multiplies: y[n,o,oh,ow] reads x[n,c,ih,iw]·w[o,c',i,j]
 * in conv2d's direction. */
#define FOR_TRIPLES(k, g, ...)                                                                     \
    do {                                                                                           \
        size_t cg_ = (g).Ci / (size_t)(k)->groups, og_ = (g).Co / (size_t)(k)->groups;             \
        for (size_t n = 0; n < (k)->N; n++)                                                        \
            for (size_t o = 0; o < (g).Co; o++)                                                    \
                for (size_t oh = 0; oh < (g).OH; oh++)                                             \
                    for (size_t ow = 0; ow < (g).OW; ow++)                                         \
                        for (size_t cl = 0; cl < cg_; cl++)                                        \
                            for (size_t i = 0; i < (k)->kH; i++)                                   \
                                for (size_t j = 0; j < (k)->kW; j++) {                             \
                                    long ih = (long)oh * (k)->sh - (g).pt + (long)i * (k)->dh;     \
                                    long iw = (long)ow * (k)->sw - (g).pl + (long)j * (k)->dw;     \
                                    if (ih < 0 || iw < 0 || ih >= (long)(g).H ||                   \
                                        iw >= (long)(g).W)                                         \
                                        continue;                                                  \
                                    size_t c = o / og_ * cg_ + cl;                                 \
                                    size_t Y = ((n * (g).Co + o) * (g).OH + oh) * (g).OW + ow;     \
                                    size_t X = ((n * (g).Ci + c) * (g).H + (size_t)ih) * (g).W +   \
                                               (size_t)iw;                                         \
                                    size_t Wt = ((o * cg_ + cl) * (k)->kH + i) * (k)->kW + j;      \
                                    __VA_ARGS__                                                    \
                                }                                                                  \
    } while (0)

/* The weight index above is the same for both kinds: conv2d's weight is
 * Co×Cg×kH×kW; the transposed one's C_in×(C_out/g)×kH×kW is the same
 * array with C_in = Co (window side) and C_out/g = Cg. */

static tg_status run(const conv_case *k, tg_tape *t, const tg_tensor *x, const tg_tensor *w,
                     tg_tensor **y) {
    if (k->kind == K_CONV1D) {
        tg_conv1d_opts o = tg_conv1d_defaults();
        o.stride = k->sw, o.padding[0] = k->pad[2], o.padding[1] = k->pad[3];
        o.padding_same = k->same, o.dilation = k->dw, o.groups = k->groups;
        return tg_conv1d(t, x, w, NULL, &o, y);
    }
    tg_conv2d_opts o = tg_conv2d_defaults();
    o.stride[0] = k->sh, o.stride[1] = k->sw;
    for (int i = 0; i < 4; i++)
        o.padding[i] = k->pad[i];
    o.padding_same = k->same, o.dilation[0] = k->dh, o.dilation[1] = k->dw;
    o.groups = k->groups, o.output_padding[0] = k->oph, o.output_padding[1] = k->opw;
    return k->kind == K_CONVT2D ? tg_conv_transpose2d(t, x, w, NULL, &o, y)
                                : tg_conv2d(t, x, w, NULL, &o, y);
}

/* got against want, within tol × (the sum of |terms| that made want) + a
 * tiny absolute floor. */
static int off(double got, double want, double mag, double tol) {
    return !(fabs(got - want) <= tol * (mag + 1e-300));
}

/* The thread count the backward of check_case runs on (0: as recorded). */
static int threads_backward;

static int check_case(const conv_case *k, tg_dtype dt, tg_rng *rng) {
    ref_geom g = ref_geometry(k);
    int d1 = k->kind == K_CONV1D, r = d1 ? 3 : 4;
    size_t xs[4] = {k->N, k->C, k->H, k->W}, ws[4] = {0, 0, k->kH, k->kW};
    ws[0] = k->kind == K_CONVT2D ? k->C : k->O;
    ws[1] = k->kind == K_CONVT2D ? k->O / (size_t)k->groups : k->C / (size_t)k->groups;
    if (d1) xs[2] = k->W, ws[2] = k->kW;
    tg_tensor *x = leaf(1, dt, r, xs, NULL), *w = leaf(1, dt, r, ws, NULL), *y = NULL;
    if (!x || !w) return 1;
    tg_sample_fill(x, TG_DOM_REAL, 1, rng);
    tg_sample_fill(w, TG_DOM_REAL, 1, rng);
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_status s = run(k, t, x, w, &y);
    CHECK(s == TG_OK, "%s", tg_last_error());
    int bad = 1;
    size_t img = k->N * g.Ci * g.H * g.W, win = k->N * g.Co * g.OH * g.OW;
    size_t ysz = k->kind == K_CONVT2D ? img : win;
    if (s == TG_OK && y->size == ysz) {
        void *seed = ramp(dt, ysz, 0.01);
        if (threads_backward) CHECK_OK(tg_set_threads(threads_backward));
        CHECK_OK(tg_backward_seed(t, y, seed));
        free(seed);
        /* references and the magnitudes that bound their rounding */
        double *ry = calloc(ysz, sizeof *ry), *my = calloc(ysz, sizeof *my);
        double *gx = calloc(x->size, sizeof *gx), *mx = calloc(x->size, sizeof *mx);
        double *gw = calloc(w->size, sizeof *gw), *mw = calloc(w->size, sizeof *mw);
        int tr = k->kind == K_CONVT2D;
        FOR_TRIPLES(k, g, {
            size_t yi = tr ? X : Y, xi = tr ? Y : X; /* y's and x's element */
            double xv = tg_get(x, xi), wv = tg_get(w, Wt), z = 1 + 0.01 * (double)yi;
            ry[yi] += xv * wv, my[yi] += fabs(xv * wv);
            gx[xi] += z * wv, mx[xi] += fabs(z * wv);
            gw[Wt] += z * xv, mw[Wt] += fabs(z * xv);
        });
        /* Each value is a sum of rounded products, in another order than
         * ours: |error| <= (terms + 2)·ε·Σ|terms|; a factor 4 of margin,
         * terms bounded by the largest sum (N·OH·OW for the weight). */
        double eps = dt == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
        double terms = (double)(k->N * g.OH * g.OW + g.Ci * k->kH * k->kW + g.Co * k->kH * k->kW);
        double tol = 4 * (terms + 2) * eps;
        int by = 0, bx = 0, bw = 0;
        for (size_t e = 0; e < ysz; e++)
            by += off(tg_get(y, e), ry[e], my[e], tol);
        for (size_t e = 0; e < x->size; e++)
            bx += off(grad_at(x, e), gx[e], mx[e], tol);
        for (size_t e = 0; e < w->size; e++)
            bw += off(grad_at(w, e), gw[e], mw[e], tol);
        bad = by + bx + bw;
        CHECK(bad == 0,
              "kind %d %s N%zu C%zu %zux%zu O%zu k%zux%zu s(%ld,%ld) p(%ld,%ld,%ld,%ld)%s "
              "d(%ld,%ld) g%ld: %d values, %d x̄, %d w̄ off",
              k->kind, dt_name(dt), k->N, k->C, k->H, k->W, k->O, k->kH, k->kW, k->sh, k->sw,
              k->pad[0], k->pad[1], k->pad[2], k->pad[3], k->same ? " same" : "", k->dh, k->dw,
              k->groups, by, bx, bw);
        free(ry), free(my), free(gx), free(mx), free(gw), free(mw);
    } else if (s == TG_OK) {
        CHECK(0, "output has %zu elements, want %zu", y->size, ysz);
    }
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_tensor_free(w);
    return bad;
}

/* kind, N, C, H, W, O, kH, kW, sh, sw, pad{t,b,l,r}, same, dh, dw, groups, oph, opw */
static const conv_case cases[] = {
    /* conv2d */
    {K_CONV2D, 2, 3, 5, 6, 4, 3, 3, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0},
    {K_CONV2D, 1, 1, 4, 4, 1, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 1, 1, 1, 0, 0}, /* batch 1, 1 channel */
    {K_CONV2D, 2, 4, 7, 5, 6, 3, 2, 2, 3, {1, 0, 2, 1}, 0, 1, 2, 2, 0, 0}, /* groups, uneven */
    {K_CONV2D, 2, 3, 6, 6, 3, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 1, 1, 3, 0, 0}, /* depthwise */
    {K_CONV2D, 1, 2, 5, 4, 4, 2, 3, 2, 1, {0, 1, 1, 1}, 0, 2, 1, 2, 0, 0}, /* depth multiplier 2 */
    {K_CONV2D, 2, 2, 2, 3, 3, 5, 4, 1, 1, {2, 2, 1, 2}, 0, 1, 1, 1, 0, 0}, /* kernel > input */
    {K_CONV2D, 1, 2, 9, 8, 3, 2, 2, 4, 3, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0}, /* stride > kernel */
    {K_CONV2D, 2, 2, 5, 6, 3, 3, 3, 1, 1, {0, 0, 0, 0}, 1, 1, 1, 1, 0, 0}, /* same */
    {K_CONV2D, 1, 3, 6, 5, 2, 4, 2, 1, 1, {0, 0, 0, 0}, 1, 2, 1, 1, 0, 0}, /* same, even, dilated */
    {K_CONV2D, 2, 4, 3, 5, 6, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0}, /* 1×1: no copy */
    {K_CONV2D, 2, 4, 3, 3, 2, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 2, 0, 0}, /* 1×1 grouped */
    {K_CONV2D, 1, 3, 5, 5, 2, 1, 1, 2, 2, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0}, /* 1×1 stride 2 */
    {K_CONV2D, 1, 2, 3, 3, 2, 1, 1, 1, 1, {1, 0, 0, 1}, 0, 1, 1, 1, 0, 0}, /* 1×1 padded */
    {K_CONV2D, 1, 1, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0}, /* all 1 */
    {K_CONV2D, 3, 6, 8, 7, 6, 3, 3, 2, 2, {1, 1, 1, 1}, 0, 2, 2, 3, 0, 0},
    /* images per product: 3 + 1 (20×20 outputs), and 1 (24×24) */
    {K_CONV2D, 4, 2, 22, 22, 3, 3, 3, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0},
    {K_CONV2D, 2, 2, 25, 25, 2, 2, 2, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 2, 0, 0},
    /* conv_transpose2d (C = C_in, O = C_out) */
    {K_CONVT2D, 2, 3, 3, 4, 2, 3, 3, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0},
    {K_CONVT2D, 1, 1, 2, 2, 1, 3, 3, 2, 2, {1, 1, 1, 1}, 0, 1, 1, 1, 1, 1},
    {K_CONVT2D, 2, 4, 3, 3, 6, 2, 3, 2, 3, {0, 1, 1, 0}, 0, 1, 2, 2, 1, 2},
    {K_CONVT2D, 2, 3, 4, 4, 3, 3, 3, 2, 2, {1, 1, 1, 1}, 0, 1, 1, 3, 0, 0},   /* depthwise */
    {K_CONVT2D, 2, 4, 3, 3, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0},   /* 1×1: no copy */
    {K_CONVT2D, 1, 2, 3, 3, 2, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 2, 2, 1, 1, 1},   /* 1×1 + out pad */
    {K_CONVT2D, 1, 2, 3, 3, 2, 2, 2, 3, 4, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0},   /* stride > kernel */
    {K_CONVT2D, 1, 2, 2, 2, 2, 4, 5, 1, 1, {2, 1, 2, 2}, 0, 1, 1, 2, 0, 0},   /* kernel > input */
    {K_CONVT2D, 4, 2, 20, 20, 3, 3, 3, 1, 1, {1, 0, 0, 1}, 0, 1, 1, 1, 0, 0}, /* 3 + 1 images */
    /* conv1d (H = 1; W = L) */
    {K_CONV1D, 2, 3, 1, 10, 4, 1, 3, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0},
    {K_CONV1D, 1, 1, 1, 5, 1, 1, 7, 1, 1, {0, 0, 3, 3}, 0, 1, 1, 1, 0, 0}, /* kernel > input */
    {K_CONV1D, 2, 4, 1, 9, 2, 1, 2, 1, 3, {0, 0, 1, 2}, 0, 1, 2, 2, 0, 0},
    {K_CONV1D, 2, 2, 1, 7, 3, 1, 4, 1, 1, {0, 0, 0, 0}, 1, 1, 1, 1, 0, 0}, /* same, even k */
    {K_CONV1D, 2, 3, 1, 8, 3, 1, 3, 1, 1, {0, 0, 0, 0}, 1, 1, 3, 3, 0, 0}, /* depthwise same */
    {K_CONV1D, 1, 2, 1, 6, 2, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 1, 1, 1, 0, 0}, /* 1×1 */
};

/* The grid on 1, 2 and 3 threads (conv.c gives whole blocks of images to
 * each thread, each with its own work slot and partial weight adjoint: 3
 * threads split 4 images unevenly), then with the thread count changed
 * between the forward (which sizes the slots) and the backward: more
 * threads than slots, and fewer. */
static void test_grid(void) {
    static const int th[][2] = {{1, 1}, {2, 2}, {3, 3}, {1, 2}, {3, 1}};
    tg_rng rng;
    tg_rng_seed(&rng, 15);
    for (size_t p = 0; p < sizeof th / sizeof th[0]; p++) {
        CHECK_OK(tg_set_threads(th[p][0]));
        threads_backward = th[p][1];
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int dt = 0; dt < 2; dt++)
                check_case(&cases[i], (tg_dtype)dt, &rng);
    }
    threads_backward = 0;
    CHECK_OK(tg_set_threads(1));
}

/* ---------------------------------------------------------------- PyTorch's values */

/* x[i] = sin(0.7 i + 0.1), w[i] = cos(1.3 i) over the flat arrays; the seed ζᵢ = 1 + 0.01 i. */
static tg_tensor *wave(int rank, const size_t *shape, int cosine) {
    tg_tensor *t = leaf(1, TG_F64, rank, shape, NULL);
    for (size_t i = 0; t && i < t->size; i++)
        tg_set(t, i, cosine ? cos(1.3 * (double)i) : sin(0.7 * (double)i + 0.1));
    return t;
}

static void expect_values(const char *what, const tg_tensor *t, int grad, const double *want,
                          size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = grad ? grad_at(t, i) : tg_get(t, i);
        /* float64 sums of <= 12 terms of size ~1 in two orders: 1e-13 */
        CHECK(fabs(v - want[i]) <= 1e-13 * (1 + fabs(want[i])), "%s[%zu] = %.17g, torch %.17g",
              what, i, v, want[i]);
    }
}

static void test_torch(void) {
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    /* x = sin-wave (1,2,4,5); w = cos-wave (4,1,3,2);
     * y = torch.nn.functional.conv2d(x, w, None, stride=(2,1), padding=(1,1),
     *                                dilation=(1,2), groups=2)      # (1,4,2,5)
     * y.backward(1 + 0.01·arange) */
    size_t xs[4] = {1, 2, 4, 5}, ws[4] = {4, 1, 3, 2};
    tg_tensor *x = wave(4, xs, 0), *w = wave(4, ws, 1), *y = NULL;
    tg_conv2d_opts o = tg_conv2d_defaults();
    o.stride[0] = 2, o.padding[0] = o.padding[1] = o.padding[2] = o.padding[3] = 1;
    o.dilation[1] = 2, o.groups = 2;
    CHECK_OK(tg_conv2d(t, x, w, NULL, &o, &y));
    if (y && y->size == 40) {
        void *z = ramp(TG_F64, y->size, 0.01);
        CHECK_OK(tg_backward_seed(t, y, z));
        free(z);
        const double vy[6] = {-1.415468276941736,  -1.9534617517097455, -2.1686397254276177,
                              -1.3638725503464377, -0.9507968329233333, -1.9016315806184414};
        expect_values("conv2d y", y, 0, vy, 6);
        CHECK(fabs(tg_get(y, 39) - -1.6736194228070926) < 1e-13, "y[39] %.17g", tg_get(y, 39));
        const double vx[4] = {-1.4881501666468608, -1.5159052284356975, -1.5308673181991215,
                              -1.545829407962546};
        expect_values("conv2d x̄", x, 1, vx, 4);
        const double vw[4] = {-3.085254680282076, -2.441794354070795, 5.647255709792256,
                              4.435139463190158};
        expect_values("conv2d w̄", w, 1, vw, 4);
    }
    tg_tensor_free(x);
    tg_tensor_free(w);
    /* x = sin-wave (1,2,3,3); w = cos-wave (2,3,3,2);
     * y = torch.nn.functional.conv_transpose2d(x, w, None, stride=2, padding=1,
     *                                          output_padding=1)      # (1,3,6,5) */
    size_t xs2[4] = {1, 2, 3, 3}, ws2[4] = {2, 3, 3, 2};
    x = wave(4, xs2, 0), w = wave(4, ws2, 1), y = NULL;
    o = tg_conv2d_defaults();
    o.stride[0] = o.stride[1] = 2, o.padding[0] = o.padding[1] = o.padding[2] = o.padding[3] = 1;
    o.output_padding[0] = o.output_padding[1] = 1;
    CHECK_OK(tg_conv_transpose2d(t, x, w, NULL, &o, &y));
    CHECK(y && y->rank == 4 && y->shape[1] == 3 && y->shape[2] == 6 && y->shape[3] == 5,
          "conv_transpose2d shape");
    if (y && y->size == 90) {
        void *z = ramp(TG_F64, y->size, 0.01);
        CHECK_OK(tg_backward_seed(t, y, z));
        free(z);
        const double vy[6] = {-0.13794023713574716, -0.1431102090157222, -0.9302279213579794,
                              -0.2087652512574102,  -1.2850148789533329, 1.0450419917648346};
        expect_values("convT y", y, 0, vy, 6);
        const double vx[4] = {0.5555748794587343, 1.3636831252079398, 1.382117530187448,
                              -0.9993060824800079};
        expect_values("convT x̄", x, 1, vx, 4);
        const double vw[4] = {-1.9864788886660734, -2.2082773012307926, -0.32017344722246155,
                              -0.43037340901181054};
        expect_values("convT w̄", w, 1, vw, 4);
    }
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- bias */

/* conv2d with a bias = conv2d without, plus b[o] on channel o; b̄ = Σ ζ per channel. */
static void test_bias(void) {
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    size_t xs[4] = {2, 2, 4, 4}, ws[4] = {3, 2, 3, 3}, bs[1] = {3};
    for (int dt = 0; dt < 2; dt++) {
        tg_tensor *x = leaf(1, (tg_dtype)dt, 4, xs, NULL), *w = leaf(1, (tg_dtype)dt, 4, ws, NULL);
        tg_tensor *b = leaf(1, (tg_dtype)dt, 1, bs, (const double[]){0.5, -1, 2}), *y0, *y1;
        tg_sample_fill(x, TG_DOM_REAL, 1, &rng);
        tg_sample_fill(w, TG_DOM_REAL, 1, &rng);
        tg_tape *t;
        CHECK_OK(tg_tape_new(&t));
        CHECK_OK(tg_conv2d(t, x, w, NULL, NULL, &y0));
        CHECK_OK(tg_conv2d(t, x, w, b, NULL, &y1));
        CHECK(tg_tape_size(t) == 3, "conv2d + bias: %d tape entries, want 3", tg_tape_size(t));
        int bad = 0;
        for (size_t e = 0; y1 && e < y1->size; e++)
            bad += tg_get(y1, e) != (double)(dt == TG_F32
                                                 ? (float)(tg_get(y0, e) + tg_get(b, e / 4 % 3))
                                                 : tg_get(y0, e) + tg_get(b, e / 4 % 3));
        CHECK(bad == 0, "bias: %d values off", bad);
        void *z = ramp((tg_dtype)dt, y1->size, 0.01);
        CHECK_OK(tg_backward_seed(t, y1, z));
        free(z);
        for (size_t o = 0; o < 3; o++) {
            double s = 0;
            for (size_t n = 0; n < 2; n++)
                for (size_t p = 0; p < 4; p++)
                    s += 1 + 0.01 * (double)((n * 3 + o) * 4 + p);
            CHECK_CLOSE(grad_at(b, o), s, dt == TG_F32 ? 1e-6 : 1e-14);
        }
        tg_tape_free(t);
        tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
    }
}

/* ---------------------------------------------------------------- errors */

static tg_tensor *t4(size_t a, size_t b, size_t c, size_t d) {
    size_t s[4] = {a, b, c, d};
    return leaf(1, TG_F64, 4, s, NULL);
}

static void test_errors(void) {
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_tensor *y = NULL;
    tg_tensor *x = t4(1, 3, 4, 4), *w = t4(2, 1, 3, 3), *big = t4(1, 1, 5, 5), *x1 = t4(1, 1, 2, 2);
    tg_tensor *w1 = t4(1, 1, 3, 3), *x4 = t4(1, 4, 4, 4), *w3 = t4(2, 3, 3, 3);
    tg_conv2d_opts o = tg_conv2d_defaults();
    EXPECT_ERR(tg_conv2d(t, x1, w1, NULL, NULL, &y), TG_ERR_SHAPE,
               "conv2d: output size (0, 0) <= 0: input (1x1x2x2), weight (1x1x3x3)");
    o.groups = 2;
    EXPECT_ERR(tg_conv2d(t, x, w, NULL, &o, &y), TG_ERR_SHAPE,
               "conv2d: input channels not divisible by groups: input (1x3x4x4), weight (2x1x3x3)");
    EXPECT_ERR(tg_conv2d(t, x4, w3, NULL, NULL, &y), TG_ERR_SHAPE,
               "weight dim 1 times groups must equal input channels: input (1x4x4x4), weight "
               "(2x3x3x3)");
    o.groups = 3;
    EXPECT_ERR(tg_conv2d(t, x, w, NULL, &o, &y), TG_ERR_SHAPE,
               "output channels (weight dim 0) not divisible by groups: input (1x3x4x4)");
    o = tg_conv2d_defaults(), o.stride[1] = 0;
    EXPECT_ERR(tg_conv2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE,
               "conv2d: stride must be >= 1, got (1, 0)");
    o = tg_conv2d_defaults(), o.dilation[0] = -1;
    EXPECT_ERR(tg_conv2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE, "dilation must be >= 1");
    o = tg_conv2d_defaults(), o.groups = 0;
    EXPECT_ERR(tg_conv2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE, "groups must be >= 1, got 0");
    o = tg_conv2d_defaults(), o.padding[2] = -1;
    EXPECT_ERR(tg_conv2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE, "padding must be >= 0");
    o = tg_conv2d_defaults(), o.padding_same = 1, o.stride[0] = 2;
    EXPECT_ERR(tg_conv2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE,
               "padding \"same\" needs stride 1, got (2, 1)");
    o = tg_conv2d_defaults(), o.dilation[0] = 3;
    EXPECT_ERR(tg_conv2d(t, big, w1, NULL, &o, &y), TG_ERR_SHAPE,
               "output size (0, 3) <= 0: input (1x1x5x5), weight (1x1x3x3), stride (1, 1), "
               "padding (0, 0, 0, 0), dilation (3, 1)");
    EXPECT_ERR(tg_conv2d(t, w1, NULL, NULL, NULL, &y), TG_ERR_ARG, "");
    size_t s3[3] = {1, 1, 5};
    tg_tensor *x3 = leaf(1, TG_F64, 3, s3, NULL);
    EXPECT_ERR(tg_conv2d(t, x3, w1, NULL, NULL, &y), TG_ERR_SHAPE,
               "conv2d: needs 4-D input (N×C×H×W) and weight: input (1x1x5), weight (1x1x3x3)");
    /* conv_transpose2d */
    o = tg_conv2d_defaults();
    EXPECT_ERR(tg_conv_transpose2d(t, x, w3, NULL, &o, &y), TG_ERR_SHAPE,
               "conv_transpose2d: weight dim 0 must equal input channels: input (1x3x4x4), "
               "weight (2x3x3x3)");
    o.output_padding[0] = 1;
    EXPECT_ERR(tg_conv_transpose2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE,
               "output_padding (1, 0) must be >= 0 and smaller than stride (1, 1) or dilation");
    o = tg_conv2d_defaults(), o.padding_same = 1;
    EXPECT_ERR(tg_conv_transpose2d(t, big, w1, NULL, &o, &y), TG_ERR_VALUE,
               "\"same\" is not supported");
    o = tg_conv2d_defaults(), o.padding[0] = o.padding[1] = 3;
    EXPECT_ERR(tg_conv_transpose2d(t, x1, w1, NULL, &o, &y), TG_ERR_SHAPE,
               "conv_transpose2d: output size (-2, 4) <= 0");
    o = tg_conv2d_defaults(), o.groups = 2;
    tg_tensor *w311 = t4(3, 1, 1, 1);
    EXPECT_ERR(tg_conv_transpose2d(t, x, w311, NULL, &o, &y), TG_ERR_SHAPE,
               "input channels not divisible by groups");
    /* conv1d */
    size_t w1s[3] = {2, 1, 7};
    tg_tensor *wk = leaf(1, TG_F64, 3, w1s, NULL);
    EXPECT_ERR(tg_conv1d(t, x3, wk, NULL, NULL, &y), TG_ERR_SHAPE,
               "conv1d: output length 0 <= 0: input (1x1x5), weight (2x1x7), stride 1, padding (0, "
               "0), dilation 1");
    EXPECT_ERR(tg_conv1d(t, big, wk, NULL, NULL, &y), TG_ERR_SHAPE, "conv1d: needs 3-D input");
    tg_conv1d_opts p = tg_conv1d_defaults();
    p.padding_same = 1, p.stride = 3;
    EXPECT_ERR(tg_conv1d(t, x3, wk, NULL, &p, &y), TG_ERR_VALUE,
               "conv1d: padding \"same\" needs stride 1");
    /* the bias */
    size_t bs[1] = {3};
    tg_tensor *b = leaf(1, TG_F64, 1, bs, NULL);
    EXPECT_ERR(tg_conv2d(t, big, w1, b, NULL, &y), TG_ERR_SHAPE,
               "channel_bias: bias must be a vector of x's channels (axis 1): (1x1x3x3)+(3)");
    CHECK(y == NULL, "failed call left a result");
    tg_tape_free(t);
    tg_tensor *all[] = {x, w, big, x1, w1, x4, w3, x3, wk, b, w311};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tg_tensor_free(all[i]);
}

/* A NaN weight shows in every output it touches (0·NaN at the padding is
 * NaN as well, as PyTorch's im2col path); ±inf pixels give ±inf or NaN. */
static void test_nan(void) {
    tg_tape *t;
    CHECK_OK(tg_tape_new(&t));
    tg_tensor *x = t4(1, 1, 3, 3), *w = t4(1, 1, 3, 3), *y = NULL;
    for (size_t i = 0; i < 9; i++)
        tg_set(x, i, 1), tg_set(w, i, 1);
    tg_set(x, 4, INFINITY);
    tg_conv2d_opts o = tg_conv2d_defaults();
    o.padding[0] = o.padding[1] = o.padding[2] = o.padding[3] = 1;
    CHECK_OK(tg_conv2d(t, x, w, NULL, &o, &y));
    for (size_t i = 0; y && i < 9; i++)
        CHECK(tg_get(y, i) == INFINITY, "y[%zu] = %g, want inf", i, tg_get(y, i));
    tg_set(w, 0, NAN);
    CHECK_OK(tg_conv2d(t, x, w, NULL, &o, &y));
    for (size_t i = 0; y && i < 9; i++)
        CHECK(isnan(tg_get(y, i)), "y[%zu] = %g, want NaN", i, tg_get(y, i));
    tg_tape_free(t);
    tg_tensor_free(x), tg_tensor_free(w);
}

int main(void) {
    test_grid();
    test_torch();
    test_bias();
    test_errors();
    test_nan();
    return check_summary();
}
