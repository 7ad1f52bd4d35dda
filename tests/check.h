/* A minimal test harness: CHECK counts, reports failures with file:line,
 * and check_summary() prints "N passed, N failed" and gives the exit code. */
#ifndef TG_TEST_CHECK_H
#define TG_TEST_CHECK_H

#include "tapegrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* A call that must succeed; prints tapegrad's message if it does not. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        tg_status check_s_ = (expr);                                                               \
        CHECK(check_s_ == TG_OK, "%s -> %s: %s", #expr, tg_status_name(check_s_),                  \
              tg_last_error());                                                                    \
    } while (0)

/* |a - b| <= tol * max(1, |a|, |b|): relative for large values, absolute near 0. */
#define CHECK_CLOSE(a, b, tol)                                                                     \
    do {                                                                                           \
        double check_a_ = (a), check_b_ = (b);                                                     \
        double check_s_ = fmax(1.0, fmax(fabs(check_a_), fabs(check_b_)));                         \
        CHECK(fabs(check_a_ - check_b_) <= (tol)*check_s_, "%.17g vs %.17g (tol %g)", check_a_,    \
              check_b_, (double)(tol));                                                            \
    } while (0)

/* Call must fail with status `want` and a message containing `text`. */
#define EXPECT_ERR(call, want, text)                                                               \
    do {                                                                                           \
        tg_status s_ = (call);                                                                     \
        CHECK(s_ == (want), "%s returned %s, want %s (%s)", #call, tg_status_name(s_),             \
              tg_status_name(want), tg_last_error());                                              \
        CHECK(strstr(tg_last_error(), (text)) != NULL, "message '%s' lacks '%s'", tg_last_error(), \
              (text));                                                                             \
    } while (0)

/* dir/name, in one of two rotating buffers (two paths may be live at once). */
static inline const char *check_path(const char *dir, const char *name) {
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
