/* bind.h — the Lua API areas. Each bind_<area>.c fills one sub-table (or
 * the core functions) of the `sluice` table on top of the stack; bind.c
 * assembles them in one place, so the whole script surface reads in one file.
 * Every function checks, in order: argument count, context, arguments.
 * Wrong arguments raise; run-time failures return nil, err. */
#ifndef SLUICE_BIND_H
#define SLUICE_BIND_H

#include <lua.h>

/* Build the whole `sluice` table and set it as a global (script_open_fn,
 * given to script_host_new by main.c). */
void bind_open_sluice(lua_State *L);

void bind_core_open(lua_State *L);       /* sluice.route, error, null, array, log, now_ms */
void bind_scaling_open(lua_State *L);    /* sluice.scaling.* */
void bind_auth_open(lua_State *L);       /* sluice.auth.* */
void bind_flags_open(lua_State *L);      /* sluice.flags.* */
void bind_policy_open(lua_State *L);     /* sluice.policy.* */
void bind_telemetry_open(lua_State *L);  /* sluice.telemetry.* */
void bind_notify_open(lua_State *L);     /* sluice.notify.* */
void bind_autoscale_open(lua_State *L);  /* sluice.autoscale.* */

#include "apierr.h"

/* Shared by the areas, for run-time failures: push nil, the message, and a
 * table {status, code, message, details, retry_after} with what an answer
 * needs, built from err (which is cleared). The HTTP status is chosen here,
 * from the code (api_error_status): the domain never picks one. Returns 3. */
int bind_push_failure(lua_State *L, struct api_error *err);

/* bind_push_failure for a failed store call (api_error_store). */
int bind_push_store_failure(lua_State *L, int store_rc);

#endif
