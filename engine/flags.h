/* flags.h — feature flags of this environment, kept in the store.
 *
 * Only known flags exist. "writes" gates every scaling write; without a
 * stored value it is on only in environment "local", so every other
 * environment starts read-only until an admin turns writes on. Changes are
 * audited (kind "flag") in the same transaction. Uses store.h and app.h. */
#ifndef SLUICE_FLAGS_H
#define SLUICE_FLAGS_H

#include <jansson.h>

#include "app.h"

#define FLAG_WRITES "writes"

/* 1 when name is a known flag. */
int flags_known(const char *name);

/* The effective value of a known flag. Returns a store_rc. */
int flags_get(struct app *app, const char *name, int *enabled);

/* {"environment","items":[{"name","enabled","default","updated_by","updated_at","reason"}]}
 * or NULL with *rc set. New ref. */
json_t *flags_list(struct app *app, int *rc);

/* One flag as flags_list shows it, or NULL with *rc set. New ref. */
json_t *flags_get_json(struct app *app, const char *name, int *rc);

/* Set a known flag and audit it. Returns a store_rc. */
int flags_set(struct app *app, const char *name, int enabled, const char *actor,
              const char *source, const char *reason, const char *request_id);

#endif
