/* Branch-free float32 exp, tanh and sigmoid that the compiler vectorises
 * (glibc's expf/tanhf are scalar calls: on a 16-float tanh they cost more
 * than the whole tape). float64 keeps libm, which checks use.
 *
 * exp: x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact
 * n·ln2, Cody–Waite), e^r by a degree-7 polynomial (Cephes expf's
 * coefficients), 2^n put into the exponent bits. Max error about 1 ulp over
 * the whole float range: subnormal results below −87.3, 0 below −103.98,
 * +inf above 88.72 (as libm's expf; test_extremes checks it against exp in
 * double); NaN in, NaN out, so anomaly mode still sees it.
 * tanh: an odd polynomial below 0.625 (Cephes tanhf), 1 − 2/(e^{2|x|} + 1)
 * above, where no cancellation occurs; both computed, one selected, so the
 * loop has no branch. */
#ifndef TG_FASTMATH_H
#define TG_FASTMATH_H

#include <math.h> /* INFINITY */
#include <stdint.h>
#include <string.h>

/* p(x) = c[0] + c[1]·x + … + c[n−1]·x^{n−1} by Horner's rule; inlined
 * with a constant n, the loop unrolls into the fused chain. */
static inline float tg_polyf(float x, const float *c, int n) {
    float p = c[n - 1];
    for (int i = n - 2; i >= 0; i--)
        p = p * x + c[i];
    return p;
}

static inline float tg_expf(float x) {
    /* Clamp with comparisons that send NaN to −104 (the integer conversion
     * below must never see NaN), then select the exact ends and give NaN
     * back at the end. */
    float xc = x > 89.0f ? 89.0f : x >= -104.0f ? x : -104.0f;
    const float magic = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
    static const float c[] = {5.0000001201e-1f, 1.6666665459e-1f, 4.1665795894e-2f,
                              8.3334519073e-3f, 1.3981999507e-3f, 1.9875691500e-4f};
    float p = tg_polyf(r, c, 6);
    p = p * r * r + r + 1.0f;
    /* 2^n as 2^h · 2^(n−h), h = n/2: each factor is a normal float for n in
     * [−150, 128], so results in the subnormal range (x < −87.3) and the
     * overflow to inf (x > 88.72) come out of one final rounding, as libm's
     * expf gives them, instead of a clamp at the normal range. */
    int32_t ni = (int32_t)n, h = ni / 2;
    int32_t b1 = (h + 127) << 23, b2 = (ni - h + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = p * s1 * s2;
    y = x < -103.98f ? 0.0f : y;        /* below half the least subnormal */
    y = x > 88.7228394f ? INFINITY : y; /* above log(FLT_MAX) */
    return x == x ? y : x;
}

static inline float tg_tanhf(float x) {
    float a = x < 0 ? -x : x;
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) *
                       z -
                   3.33332819422e-1f) *
                      z * x +
                  x;
    float big = 1.0f - 2.0f / (tg_expf(2.0f * a) + 1.0f);
    big = x < 0 ? -big : big;
    return a < 0.625f ? small : big;
}

/* log: x = 2^k·m with m in [√½, √2) taken from the bits (musl's shift of
 * the exponent boundary to √½: adding bits(1) − bits(√½) carries into the
 * exponent field exactly for mantissas ≥ √2), f = m − 1 in [−0.293, 0.414],
 * log(1 + f) = f − f²/2 + f³·P(f) with Cephes logf's degree-8 P, k·ln2
 * added in two parts (Cody–Waite). Subnormals are scaled by 2^23 first.
 * Edges selected at the end, as libm: log 0 = −inf, log(x < 0) = NaN,
 * log inf = inf, NaN → NaN. Within 0.81 ulp of log (tests/test_fastmath.c
 * sweeps every 2^12-th float against logl; glibc's logf: 0.82). */
static inline float tg_logf(float x) {
    const int sub = x < 0x1p-126f; /* also x ≤ 0: replaced at the end */
    const float xs = sub ? x * 0x1p23f : x;
    uint32_t ix;
    memcpy(&ix, &xs, sizeof ix);
    ix += 0x3f800000u - 0x3f3504f3u; /* m ≥ √2 now carries into the exponent */
    const int32_t k = (int32_t)(ix >> 23) - 127 - (sub ? 23 : 0);
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &ix, sizeof m);
    const float f = m - 1.0f, z = f * f, kf = (float)k;
    static const float c[] = {3.3333331174e-1f,  -2.4999993993e-1f, 2.0000714765e-1f,
                              -1.6668057665e-1f, 1.4249322787e-1f,  -1.2420140846e-1f,
                              1.1676998740e-1f,  -1.1514610310e-1f, 7.0376836292e-2f};
    float p = tg_polyf(f, c, 9);
    float y = p * f * z + kf * -2.12194440e-4f - 0.5f * z;
    y = (f + y) + kf * 0.693359375f;
    y = x == INFINITY ? x : y;
    y = x == 0 ? -INFINITY : y;
    return x >= 0 ? y : x - x + NAN; /* NaN for x < 0 and for NaN */
}

/* log(1 + x): u = 1 + x rounded, log(1 + x) = log(u) + log(1 + δ/u) with
 * δ = x − (u − 1) exact (the rounding error of u), ≈ log(u) + δ/u; x itself
 * where u = 1 (|x| ≲ 2^−24, where log1p(x) rounds to x). This additive
 * correction measured 1.3 ulp worst over the sweep of tests/test_fastmath.c;
 * Kahan's log(u)·x/(u − 1) gave 2.4 (two more roundings on the whole value).
 * Edges: δ/u is 0/0 at x = −1 and inf/inf at +inf, so a NaN correction is
 * dropped (log(u) is then −inf, +inf); below −1 and NaN, log(u) is NaN. */
static inline float tg_log1pf(float x) {
    const float u = 1.0f + x, c = (x - (u - 1.0f)) / u;
    const float y = tg_logf(u) + (c == c ? c : 0.0f);
    return u == 1.0f ? x : y;
}

/* erf and erfc, float32, branch-free (both forms computed, one selected):
 *   |x| < 1:  erf x = x·P(x²), P of degree 5;
 *   a = |x| ≥ 1 for erf, ≥ ½ for erfc (1 − erf would cancel there):
 *   erfc a = e^{−a²}·G(a)/a with G(a) = a·e^{a²}·erfc a, a polynomial of
 *   degree 9 in a − 1.25 on [½, 2) and of degree 7 in u − 0.125, u = 1/a²,
 *   on [2, ∞);  erfc(−a) = 2 − erfc a, erf = 1 − erfc.
 * Coefficients: least-squares relative fits on Chebyshev nodes against
 * mpmath (40 digits), rounded to float; each part within 2.5 ulps of its
 * function over its range. tests/test_fastmath.c sweeps the results: erf
 * within 2.2 ulps, erfc 3.7 (glibc's erff 0.8, erfcf 2.9).
 * e^{−a²} as e^{−h²}·e^{−l(a+h)}, h = a with its low 12 bits cleared (so h²
 * is exact) and l = a − h (the second factor near 1, by its Taylor series): a rounded a² would err
 * by a²/2 ulps. a is capped at 11 there (erfc 11 underflows): inf − inf gives no NaN. glibc's
 * erff/erfcf are scalar calls, the cost of gelu in float32. */
static inline float tg_erf_smallf(float x) {
    const float z = x * x;
    static const float c[] = {1.128379107f,     -3.761231899e-1f, 1.128013059e-1f,
                              -2.670994960e-2f, 4.916023463e-3f,  -5.625396152e-4f};
    float p = tg_polyf(z, c, 6);
    return x * p;
}
static inline float tg_erfc_tailf(float a) { /* a ≥ ½, or NaN */
    const float s = a - 1.25f;
    static const float cg[] = {4.597786367e-01f,  1.067956313e-01f,  -7.532627136e-02f,
                               4.402103648e-02f,  -2.271989919e-02f, 1.067302749e-02f,
                               -4.563414492e-03f, 1.850181958e-03f,  -8.832097519e-04f,
                               3.364773293e-04f};
    float g = tg_polyf(s, cg, 10);
    const float r = 1.0f / a, v = r * r - 0.125f;
    static const float cf[] = {5.340672135e-1f, -2.084386200e-1f, 2.093841732e-1f, -3.085802197e-1f,
                               5.605936646e-1f, -1.191867828f,    3.863417864f,    -10.93681049f};
    float f = tg_polyf(v, cf, 8);
    const float ac = a < 11.0f ? a : 11.0f;
    uint32_t bits;
    memcpy(&bits, &ac, sizeof bits);
    bits &= 0xfffff000u;
    float h;
    memcpy(&h, &bits, sizeof h);
    /* e^{−t}, t = l(a + h) ≤ 2^−11·a² ≤ 0.06: five Taylor terms (the next,
     * t^5/120 < 7e−9, is below float's half ulp) */
    static const float ct[] = {1.0f, -1.0f, 0.5f, -1.0f / 6, 1.0f / 24};
    const float e = tg_expf(-h * h) * tg_polyf((ac - h) * (ac + h), ct, 5);
    return e * (a < 2.0f ? g : f) * r;
}
static inline float tg_erfcf(float x) {
    const float a = fabsf(x), t = tg_erfc_tailf(a);
    const float y = a < 0.5f ? 1.0f - tg_erf_smallf(x) : x < 0 ? 2.0f - t : t;
    return x == x ? y : x;
}
static inline float tg_erff(float x) {
    const float a = fabsf(x), t = 1.0f - tg_erfc_tailf(a);
    const float y = a < 1.0f ? tg_erf_smallf(x) : x < 0 ? -t : t;
    return x == x ? y : x;
}

/* e^x − 1, float32: x + x²·P(x) on |x| < ½ (P of degree 6, fitted as erf's
 * above; the sweep: within 1.6 ulps, glibc's expm1f 0.8), e^x − 1 beyond, where the subtraction
 * loses at most e^x/|e^x − 1| ≤ 2.6 times the exp's error. −1 at −inf, inf at +inf, NaN → NaN, −0 →
 * −0. */
static inline float tg_expm1f(float x) {
    static const float c[] = {0.5f,
                              1.666666716e-1f,
                              4.166666418e-2f,
                              8.333182894e-3f,
                              1.388910459e-3f,
                              1.996188657e-4f,
                              2.482443051e-5f};
    float p = tg_polyf(x, c, 7);
    const float small = x == 0 ? x : x + x * x * p, /* −0 stays −0 */
        big = tg_expf(x) - 1.0f;
    return fabsf(x) < 0.5f ? small : x == x ? big : x;
}

/* Type-generic: the fast float version, libm for double. */
#define TG_EXP(x)   _Generic((x), float : tg_expf, default : exp)(x)
#define TG_TANH(x)  _Generic((x), float : tg_tanhf, default : tanh)(x)
#define TG_LOG(x)   _Generic((x), float : tg_logf, default : log)(x)
#define TG_LOG1P(x) _Generic((x), float : tg_log1pf, default : log1p)(x)
#define TG_ERF(x)   _Generic((x), float : tg_erff, default : erf)(x)
#define TG_ERFC(x)  _Generic((x), float : tg_erfcf, default : erfc)(x)
#define TG_EXPM1(x) _Generic((x), float : tg_expm1f, default : expm1)(x)

/* σ(x) and the derivatives σ'(x) = σ(x)σ(−x) and tanh'(x) = sech²(x), all
 * from e = e^{−|x|} (or e^{−2|x|}), which never overflows:
 *   σ(x) = 1/(1+e) for x ≥ 0, e/(1+e) for x < 0,
 *   σ'(x) = e/(1+e)²,   tanh'(x) = 4e/(1+e)² with e = e^{−2|x|}.
 * Each is a few ulps from the true value over the whole range, tails
 * included: σ(−100) = 3.7e−44 in float32 (1/(1+e^{100}) gives 0), and
 * σ'(30) = 9.4e−14 where y(1 − y) of a rounded y gives 0 (PyTorch's form,
 * exact only while 1 − y has no cancellation). NaN in, NaN out; ±inf give
 * σ = 1 or 0 and derivatives 0. */
static inline float tg_sigmoid_f32(float x) {
    const float e = tg_expf(-fabsf(x)), r = 1.0f / (1.0f + e);
    return x >= 0 ? r : e * r;
}
static inline double tg_sigmoid_f64(double x) {
    const double e = exp(-fabs(x)), r = 1.0 / (1.0 + e);
    return x >= 0 ? r : e * r;
}
static inline float tg_dsigmoid_f32(float x) {
    const float e = tg_expf(-fabsf(x)), q = 1.0f + e;
    return e / (q * q);
}
static inline double tg_dsigmoid_f64(double x) {
    const double e = exp(-fabs(x)), q = 1.0 + e;
    return e / (q * q);
}
static inline float tg_dtanh_f32(float x) {
    const float e = tg_expf(-2.0f * fabsf(x)), q = 1.0f + e;
    return 4.0f * e / (q * q);
}
static inline double tg_dtanh_f64(double x) {
    const double e = exp(-2.0 * fabs(x)), q = 1.0 + e;
    return 4.0 * e / (q * q);
}
#define TG_SIGMOID(x)  _Generic((x), float : tg_sigmoid_f32, default : tg_sigmoid_f64)(x)
#define TG_DSIGMOID(x) _Generic((x), float : tg_dsigmoid_f32, default : tg_dsigmoid_f64)(x)
#define TG_DTANH(x)    _Generic((x), float : tg_dtanh_f32, default : tg_dtanh_f64)(x)

#endif
