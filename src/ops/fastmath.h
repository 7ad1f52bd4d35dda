/* Branch-free float32 exp, tanh and sigmoid that the compiler vectorises
 * (glibc's expf/tanhf are scalar calls: on a 16-float tanh they cost more
 * than the whole tape). float64 keeps libm, which checks use.
 *
 * exp: x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact
 * n·ln2, Cody–Waite), e^r by a degree-7 polynomial (Cephes expf's
 * coefficients), 2^n put into the exponent bits. Max error about 1 ulp on
 * [−87, 88]; inputs are clamped there (callers only need exp to saturate);
 * NaN in, NaN out, so anomaly mode still sees it.
 * tanh: an odd polynomial below 0.625 (Cephes tanhf), 1 − 2/(e^{2|x|} + 1)
 * above, where no cancellation occurs; both computed, one selected, so the
 * loop has no branch. */
#ifndef TG_FASTMATH_H
#define TG_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float tg_expf(float x) {
    /* Clamp with comparisons that send NaN to −87 (the integer conversion
     * below must never see NaN), then give NaN back at the end. */
    float xc = x > 88.0f ? 88.0f : x >= -87.0f ? x : -87.0f;
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
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? p * scale : x;
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

static inline float tg_sigmoidf(float x) {
    return 1.0f / (1.0f + tg_expf(-x));
}

/* Type-generic: the fast float version, libm for double. */
#define TG_EXP(x)  _Generic((x), float : tg_expf, default : exp)(x)
#define TG_TANH(x) _Generic((x), float : tg_tanhf, default : tanh)(x)

#endif
