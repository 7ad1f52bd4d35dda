/* A model's metadata: a few key/value strings kept in its file (what a
 * program needs besides the layers to use the model: the CLI's loss and
 * class count, a regression target's statistics). Fixed arrays inside
 * tg_model, so nothing here allocates. */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "../tape/internal.h"
#include "model_internal.h"

#include <string.h>

int tg_meta_str_ok(const char *s) {
    size_t n = s ? strnlen(s, TG_MODEL_META_LEN) : 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 127) return 0;
    return n > 0 && n < TG_MODEL_META_LEN;
}

tg_status tg_model_meta_set(tg_model *m, const char *key, const char *value) {
    if (!m) return tg_fail(TG_ERR_ARG, "model metadata: model is NULL");
    if (!tg_meta_str_ok(key) || !tg_meta_str_ok(value))
        return tg_fail(TG_ERR_ARG,
                       "model metadata: key and value must be 1..%d printable characters "
                       "without spaces",
                       TG_MODEL_META_LEN - 1);
    int i = 0;
    while (i < m->n_meta && strcmp(m->meta[i].key, key) != 0)
        i++;
    if (i == TG_MODEL_META_MAX)
        return tg_fail(TG_ERR_ARG, "model metadata: more than %d keys", TG_MODEL_META_MAX);
    strcpy(m->meta[i].key, key);
    strcpy(m->meta[i].value, value);
    if (i == m->n_meta) m->n_meta++;
    return TG_OK;
}

const char *tg_model_meta_get(const tg_model *m, const char *key) {
    for (int i = 0; m && key && i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) return m->meta[i].value;
    return NULL;
}
