/* bind_policy.c — sluice.policy: the state of the loaded policies. */
#include "bind.h"
#include "policy.h"
#include "luajson.h"
#include "script.h"

#include <lauxlib.h>

/* sluice.policy.status() -> {loaded_at, files, sha256, last_error, queues, alerts, validate} */
static int policy_l_status(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.policy.status");
    json_t **box = luajson_box(L);
    *box = policy_status(script_app(L)->pol);
    luajson_push_boxed(L, box);
    return 1;
}

void bind_policy_open(lua_State *L) {
    static const luaL_Reg fns[] = {{"status", policy_l_status}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
