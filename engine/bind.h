/* bind.h — the Lua API areas. Each bind_<area>.c fills one sub-table (or
 * the core functions) of the `sluice` table on top of the stack; bind.c
 * assembles them in one place, so the whole script surface reads in one file.
 * Every function checks, in order: argument count, context, arguments.
 * Wrong arguments raise; run-time failures return nil, err. */
#ifndef SLUICE_BIND_H
#define SLUICE_BIND_H

#include <lua.h>

void bind_core_open(lua_State *L);       /* sluice.route, error, null, array, log, now_ms */
void bind_scaling_open(lua_State *L);    /* sluice.scaling.* */
void bind_auth_open(lua_State *L);       /* sluice.auth.* */
void bind_flags_open(lua_State *L);      /* sluice.flags.* */
void bind_policy_open(lua_State *L);     /* sluice.policy.* */
void bind_telemetry_open(lua_State *L);  /* sluice.telemetry.* */

#include "scaling.h"

/* Shared by the areas, for run-time failures: push nil, the message, and a
 * table {status, code, message, details, retry_after} with what an answer
 * needs, built from a scaling_error (which is cleared). Returns 3. */
struct scaling_error;
int bind_push_failure(lua_State *L, struct scaling_error *err);

#endif
