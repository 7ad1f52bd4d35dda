/* The per-thread last error message. */
#include "internal.h"

#include <stdio.h>

static _Thread_local char last_error[512];

const char *tg_last_error(void) {
    return last_error;
}

tg_status tg_fail(tg_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *tg_status_name(tg_status s) {
    static const char *const names[] = {
        "TG_OK",        "TG_ERR_ARG",   "TG_ERR_SHAPE", "TG_ERR_DTYPE",   "TG_ERR_VALUE",
        "TG_ERR_NOMEM", "TG_ERR_STATE", "TG_ERR_CHECK", "TG_ERR_NUMERIC", "TG_ERR_IO",
    };
    if ((unsigned)s >= sizeof names / sizeof names[0]) return "TG_ERR_UNKNOWN";
    return names[s];
}
