/* flags.c — the flag registry and its defaults per environment. */
#include "flags.h"
#include "store.h"
#include "config.h"

#include <string.h>

static const char *const known_flags[] = {FLAG_WRITES, NULL};

int flags_known(const char *name) {
    for (const char *const *f = known_flags; *f; f++)
        if (strcmp(*f, name) == 0) return 1;
    return 0;
}

static int flags_default(const struct app *app, const char *name) {
    if (strcmp(name, FLAG_WRITES) == 0) return strcmp(app->cfg->env, "local") == 0;
    return 0;
}

int flags_get(struct app *app, const char *name, int *enabled) {
    struct store_flag f;
    int rc = store_get_flag(app->st, app->cfg->env, name, &f);
    if (rc == STORE_NOT_FOUND) {
        *enabled = flags_default(app, name);
        return STORE_OK;
    }
    if (rc == STORE_OK) *enabled = f.enabled;
    return rc;
}

json_t *flags_get_json(struct app *app, const char *name, int *rc) {
    struct store_flag f;
    char ts[UTIL_TIME_MAX];
    int dflt = flags_default(app, name);
    *rc = store_get_flag(app->st, app->cfg->env, name, &f);
    if (*rc == STORE_NOT_FOUND) {
        *rc = STORE_OK;
        return json_pack("{s:s, s:b, s:b, s:n, s:n, s:n}", "name", name, "enabled", dflt,
                         "default", dflt, "updated_by", "updated_at", "reason");
    }
    if (*rc != STORE_OK) return NULL;
    return json_pack("{s:s, s:b, s:b, s:s, s:s, s:s}", "name", name, "enabled", f.enabled,
                     "default", dflt, "updated_by", f.updated_by, "updated_at",
                     util_format_time(f.updated_at_ms, ts), "reason", f.reason);
}

json_t *flags_list(struct app *app, int *rc) {
    json_t *items = json_array();
    *rc = STORE_OK;
    for (const char *const *f = known_flags; *f; f++) {
        json_t *one = flags_get_json(app, *f, rc);
        if (one == NULL) {
            json_decref(items);
            return NULL;
        }
        json_array_append_new(items, one);
    }
    return json_pack("{s:s, s:o}", "environment", app->cfg->env, "items", items);
}

int flags_set(struct app *app, const char *name, int enabled, const char *actor,
              const char *source, const char *reason, const char *request_id) {
    return store_set_flag(app->st, app->cfg->env, name, enabled, flags_default(app, name), actor,
                          source, reason,
                          request_id, util_now_ms());
}
