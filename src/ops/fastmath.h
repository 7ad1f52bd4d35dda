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

static inline float tg_expf(float x) {
    /* Clamp with comparisons that send NaN to −104 (the integer conversion
     * below must never see NaN), then select the exact ends and give NaN
     * back at the end. */
    float xc = x > 89.0f ? 89.0f : x >= -104.0f ? x : -104.0f;
    const float magic = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
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
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
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

/* Branch-free exp in double for float32 paths that compute in double
 * inside (gelu's Φ and φ): Cody–Waite with ln2 split in two, e^r by its
 * Taylor polynomial to r^7 (|r| <= ln2/2: remainder below 7.1e−9, a
 * sixteenth of float32's 1.2e−7 relative rounding, with six steps fewer
 * than double accuracy would need),
 * 2^n through the exponent bits (the integer taken from the rounding
 * constant's low bits, so that AVX2 needs no double→int64 conversion).
 * Results are only ever rounded to float, so below −708 the
 * value is 0 (e^−708 is far below float's least subnormal, e^−103.3), and
 * no subnormal double is made; +inf above 709.78; NaN in, NaN out. */
static inline double tg_exp_d(double x) {
    const double magic = 6755399441055744.0; /* 1.5·2^52: adding it rounds to an integer */
    double xc = x > 709.0 ? 709.0 : x >= -708.0 ? x : -708.0;
    double k = xc * 1.4426950408889634 + magic, n = k - magic;
    double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = 1.0 / 5040.0; /* 1/7! */
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    int64_t kb, magic_b, sb;
    memcpy(&kb, &k, sizeof kb);
    memcpy(&magic_b, &magic, sizeof magic_b);
    sb = (int64_t)((uint64_t)(kb - magic_b + 1023) << 52); /* n in [−1022, 1023]: normal 2^n */
    double s2;
    memcpy(&s2, &sb, sizeof s2);
    double y = p * s2;
    y = x < -708.0 ? 0.0 : y;
    y = x > 709.782712893384 ? INFINITY : y;
    return x == x ? y : x;
}

/* erfc(z) in double for float32 results (Numerical Recipes' erfcc, §6.2:
 * t = 1/(1 + |z|/2), erfc(|z|) = t·e^{−z² + P(t)}, relative error below
 * 1.2e−7 for every z >= 0, i.e. 1 to 2 float ulps, tails included, since
 * the form is a product, not 1 − erf; erfc(z) = 2 − erfc(−z) for z < 0).
 * Vectorises (no libm call, no branch); ±inf give 0 and 2, NaN gives NaN. */
static inline double tg_erfc_d(double z) {
    const double a = fabs(z), t = 1.0 / (1.0 + 0.5 * a);
    double p = 0.17087277;
    p = p * t - 0.82215223;
    p = p * t + 1.48851587;
    p = p * t - 1.13520398;
    p = p * t + 0.27886807;
    p = p * t - 0.18628806;
    p = p * t + 0.09678418;
    p = p * t + 0.37409196;
    p = p * t + 1.00002368;
    p = p * t - 1.26551223;
    const double r = t * tg_exp_d(p - a * a);
    return z >= 0 ? r : 2.0 - r;
}

/* Type-generic: the fast float version, libm for double. */
#define TG_EXP(x)   _Generic((x), float : tg_expf, default : exp)(x)
#define TG_TANH(x)  _Generic((x), float : tg_tanhf, default : tanh)(x)
#define TG_LOG(x)   _Generic((x), float : tg_logf, default : log)(x)
#define TG_LOG1P(x) _Generic((x), float : tg_log1pf, default : log1p)(x)

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
