/* autoscale_lib.h — the rule helpers every policy state carries:
 * sluice.localtime (here, in C: localtime_r, so TZ is honoured) and
 * sluice.cron, sluice.schedule and sluice.backlog_target, written in Lua in
 * engine/autoscale_lib.lua and compiled into sluiced by tools/embed-lua.sh.
 * The helpers are rules themselves, function(q, ctx) -> desired, reason;
 * docs/lua-api.md ("Rule helpers") describes them. Uses sandbox.c for the
 * budget the prelude runs under. */
#ifndef SLUICE_AUTOSCALE_LIB_H
#define SLUICE_AUTOSCALE_LIB_H

#include <lua.h>

/* Add the helpers to the global table `sluice` of L, creating it when it is
 * absent, and re-read the time zone (tzset) so a policy reload sees a changed
 * TZ. A lua_CFunction: it raises on failure (out of memory, a broken
 * prelude), so it must run in protected mode (policy_dsl_open runs under
 * sandbox_pcall). Leaves the stack as it found it; returns 0. */
int autoscale_lib_open(lua_State *L);

#endif
