/* fastmath.h's float32 log and log1p against long-double references over a
 * dense sweep: every 2^12-th float32 bit pattern of the positive range (2^19
 * inputs, subnormals included) for log, the same for log1p over x > 0 and
 * over (−1, 0), plus the edges (±0, −1, negatives, ±inf, NaN, the subnormal
 * boundary, FLT_MAX, 1 ± ulp). The error is counted in ulps of float32 at
 * the reference (logl/log1pl, 64-bit significand, so the reference itself
 * is exact to 2^−40 ulp). glibc's logf/log1pf are measured the same way and
 * printed for comparison. */
#include "check.h"
#include "../src/ops/fastmath.h"

#include <float.h>
#include <stdint.h>

/* Tolerances. log: Cephes logf's polynomial and the split k·ln2 give under
 * 1 ulp (the sweep measures 0.81, as glibc's logf): 1. log1p:
 * log(u)'s error plus δ/u's, a fraction of an ulp (the sweep measures ≈ 1.3): 2, the
 * bound test_extremes_math.c takes for libm's log1pf. */
#define ULPS_LOG   1.0
#define ULPS_LOG1P 2.0

/* erf: x·P(x²) (P's fit within 2 ulps, then a product) and 1 − erfc (no
 * cancellation past 1): 3. erfc: G's fit (2.5) times e^{−a²} from two exps
 * with exact arguments (1 each, both tiny where a is large) over a: 5.
 * expm1: the polynomial (1.2) or e^x − 1, whose subtraction multiplies the
 * exp's ~1 ulp by e^x/|e^x − 1| ≤ 2.6 at |x| = ½: 3. (Measured: 2.2, 3.7,
 * 1.6; a wrong range or coefficient errs by thousands of ulps.) */
#define ULPS_ERF   3
#define ULPS_ERFC  5
#define ULPS_EXPM1 3

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* |y − r| in ulps of float32 at r (the ulp of the binade of r, 2^−149 at
 * the bottom). */
static double ulps(float y, long double r) {
    if (isnan(r) || isinf(r)) return (isnan(r) && isnan(y)) || y == r ? 0 : INFINITY;
    int e;
    frexpl(r, &e);
    long double u = ldexpl(1.0L, (e - 24) < -149 ? -149 : e - 24);
    if (r == 0) u = ldexpl(1.0L, -149);
    return (double)(fabsl((long double)y - r) / u);
}

typedef struct {
    double worst, worst_libm;
    float at;
} sweep;

static void see(sweep *s, float x, float y, float ylibm, long double r) {
    double e = ulps(y, r), el = ulps(ylibm, r);
    if (isinf((float)r) && y == (float)r) e = 0; /* overflow, as libm */
    if (isinf((float)r) && ylibm == (float)r) el = 0;
    if (e > s->worst || isnan(e)) s->worst = e, s->at = x;
    if (el > s->worst_libm) s->worst_libm = el;
}

static void test_log_sweep(void) {
    sweep s = {0, 0, 0};
    for (uint32_t b = 1; b < 0x7f800000u; b += 1u << 12) {
        float x = from_bits(b);
        see(&s, x, tg_logf(x), logf(x), logl(x));
    }
    /* every float in [0.5, 2], where log is near 0 and f is at its ends */
    for (uint32_t b = 0x3f000000u; b <= 0x40000000u; b += 7) {
        float x = from_bits(b);
        see(&s, x, tg_logf(x), logf(x), logl(x));
    }
    printf("tg_logf: max %.3f ulp (at %a), glibc logf %.3f ulp\n", s.worst, s.at, s.worst_libm);
    CHECK(s.worst <= ULPS_LOG, "tg_logf %.3f ulp at %a", s.worst, s.at);
}

static void test_log1p_sweep(void) {
    sweep s = {0, 0, 0};
    for (uint32_t b = 1; b < 0x7f800000u; b += 1u << 12) {
        float x = from_bits(b);
        see(&s, x, tg_log1pf(x), log1pf(x), log1pl(x));
    }
    for (uint32_t b = 0x80000001u; b < 0xbf800000u; b += 1u << 12) { /* (−1, 0) */
        float x = from_bits(b);
        see(&s, x, tg_log1pf(x), log1pf(x), log1pl(x));
    }
    printf("tg_log1pf: max %.3f ulp (at %a), glibc log1pf %.3f ulp\n", s.worst, s.at, s.worst_libm);
    CHECK(s.worst <= ULPS_LOG1P, "tg_log1pf %.3f ulp at %a", s.worst, s.at);
}

static void test_edges(void) {
    const float xs[] = {0x1p-149f,      0x1p-127f,      0x1.fffffcp-127f,
                        0x1p-126f,      FLT_MIN * 1.5f, FLT_MAX,
                        1.0f,           0x1.000002p0f,  0x1.fffffep-1f,
                        0x1.6a09e6p-1f, 0x1.6a09e8p-1f, 0x1.6a09e6p0f,
                        0x1.6a09e8p0f,  2.0f,           0.5f,
                        3.0f,           1e-30f,         1e30f};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        CHECK(ulps(tg_logf(xs[i]), logl(xs[i])) <= ULPS_LOG, "log(%a) = %a", xs[i], tg_logf(xs[i]));
        CHECK(ulps(tg_log1pf(xs[i]), log1pl(xs[i])) <= ULPS_LOG1P, "log1p(%a) = %a", xs[i],
              tg_log1pf(xs[i]));
        CHECK(ulps(tg_log1pf(-xs[i] * 0x1p-1f), log1pl(-xs[i] * 0x1p-1f)) <= ULPS_LOG1P ||
                  -xs[i] * 0x1p-1f <= -1,
              "log1p(%a)", -xs[i] * 0x1p-1f);
    }
    CHECK(tg_logf(1.0f) == 0 && !signbit(tg_logf(1.0f)), "log 1 = %a", tg_logf(1.0f));
    CHECK(tg_logf(0.0f) == -INFINITY, "log 0 = %a", tg_logf(0.0f));
    CHECK(tg_logf(-0.0f) == -INFINITY, "log -0 = %a", tg_logf(-0.0f));
    CHECK(isnan(tg_logf(-1.0f)), "log -1 = %a", tg_logf(-1.0f));
    CHECK(isnan(tg_logf(-0x1p-149f)), "log -tiny = %a", tg_logf(-0x1p-149f));
    CHECK(isnan(tg_logf(-INFINITY)), "log -inf = %a", tg_logf(-INFINITY));
    CHECK(tg_logf(INFINITY) == INFINITY, "log inf = %a", tg_logf(INFINITY));
    CHECK(isnan(tg_logf(NAN)), "log NaN = %a", tg_logf(NAN));
    CHECK(tg_log1pf(0.0f) == 0 && !signbit(tg_log1pf(0.0f)), "log1p 0");
    CHECK(tg_log1pf(-0.0f) == 0 && signbit(tg_log1pf(-0.0f)), "log1p -0 = -0");
    CHECK(tg_log1pf(-1.0f) == -INFINITY, "log1p -1 = %a", tg_log1pf(-1.0f));
    CHECK(isnan(tg_log1pf(-2.0f)), "log1p -2 = %a", tg_log1pf(-2.0f));
    CHECK(isnan(tg_log1pf(-INFINITY)), "log1p -inf = %a", tg_log1pf(-INFINITY));
    CHECK(tg_log1pf(INFINITY) == INFINITY, "log1p inf = %a", tg_log1pf(INFINITY));
    CHECK(isnan(tg_log1pf(NAN)), "log1p NaN = %a", tg_log1pf(NAN));
    CHECK(tg_log1pf(FLT_MAX) == tg_logf(FLT_MAX), "log1p max = %a", tg_log1pf(FLT_MAX));
    /* the generic macros pick float and double */
    CHECK(TG_LOG(2.0) == log(2.0), "TG_LOG double");
    CHECK(TG_LOG1P(1e-20) == log1p(1e-20), "TG_LOG1P double");
    CHECK(TG_LOG(2.0f) == tg_logf(2.0f), "TG_LOG float");
}

/* erf, erfc and expm1 over every 2^12-th float of both signs, from the
 * smallest subnormal to the float range's end. */
typedef float (*f32_fn)(float);
typedef long double (*ld_fn)(long double);
static sweep sweep_both(f32_fn fast, f32_fn libm, ld_fn ref) {
    sweep s = {0, 0, 0};
    for (uint32_t b = 1; b < 0x7f800000u; b += 1u << 12) {
        const float x = from_bits(b);
        see(&s, x, fast(x), libm(x), ref(x));
        see(&s, -x, fast(-x), libm(-x), ref(-x));
    }
    return s;
}
static void test_erf_expm1_sweeps(void) {
    const struct {
        const char *name;
        f32_fn fast, libm;
        ld_fn ref;
        double tol;
    } fns[] = {{"erf", tg_erff, erff, erfl, ULPS_ERF},
               {"erfc", tg_erfcf, erfcf, erfcl, ULPS_ERFC},
               {"expm1", tg_expm1f, expm1f, expm1l, ULPS_EXPM1}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        sweep s = sweep_both(fns[i].fast, fns[i].libm, fns[i].ref);
        printf("tg_%sf: max %.3f ulp (at %a), glibc %sf %.3f ulp\n", fns[i].name, s.worst, s.at,
               fns[i].name, s.worst_libm);
        CHECK(s.worst <= fns[i].tol, "tg_%sf %.3f ulp at %a", fns[i].name, s.worst, s.at);
    }
    /* edges: signs of zero, the limits at ±inf, NaN */
    CHECK(tg_erff(-0.0f) == 0 && signbit(tg_erff(-0.0f)), "erf -0 = -0");
    CHECK(tg_erff(INFINITY) == 1 && tg_erff(-INFINITY) == -1, "erf ±inf");
    CHECK(tg_erfcf(INFINITY) == 0 && tg_erfcf(-INFINITY) == 2, "erfc ±inf");
    CHECK(tg_expm1f(-INFINITY) == -1 && tg_expm1f(INFINITY) == INFINITY, "expm1 ±inf");
    CHECK(tg_expm1f(-0.0f) == 0 && signbit(tg_expm1f(-0.0f)), "expm1 -0 = -0");
    CHECK(isnan(tg_erff(NAN)) && isnan(tg_erfcf(NAN)) && isnan(tg_expm1f(NAN)), "NaN → NaN");
    CHECK(TG_ERFC(0.5) == erfc(0.5) && TG_EXPM1(0.5) == expm1(0.5), "TG_ERFC/TG_EXPM1 double");
}

int main(void) {
    test_log_sweep();
    test_log1p_sweep();
    test_edges();
    test_erf_expm1_sweeps();
    return check_summary();
}
