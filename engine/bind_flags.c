/* bind_flags.c — sluice.flags: list, get and set feature flags of this
 * environment, over flags.c. */
#include "bind.h"
#include "health.h"
#include "flags.h"
#include "luajson.h"
#include "scaling.h"
#include "script.h"

#include <lauxlib.h>
#include <stdio.h>

static int flags_fail(lua_State *L, int rc, const char *name) {
    struct api_error err = {0};
    if (rc != STORE_NOT_FOUND) return bind_push_store_failure(L, rc);
    api_error_set(&err, "not_found", NULL, "no flag named '%.64s' (known: writes)", name);
    return bind_push_failure(L, &err);
}

/* sluice.flags.list() -> {environment, items} | nil, err */
static int flags_l_list(lua_State *L) {
    int rc;
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.flags.list");
    json_t **box = luajson_box(L);
    *box = flags_list(script_app(L), &rc);
    if (*box == NULL) return flags_fail(L, rc, "");
    luajson_push_boxed(L, box);
    return 1;
}

/* sluice.flags.get(name) -> flag | nil, err */
static int flags_l_get(lua_State *L) {
    int rc;
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a flag name");
    script_current(L, "sluice.flags.get");
    const char *name = luaL_checkstring(L, 1);
    if (!flags_known(name)) return flags_fail(L, STORE_NOT_FOUND, name);
    json_t **box = luajson_box(L);
    *box = flags_get_json(script_app(L), name, &rc);
    if (*box == NULL) return flags_fail(L, rc, name);
    luajson_push_boxed(L, box);
    return 1;
}

/* sluice.flags.set(name, enabled, reason) -> flag | nil, err  (audited) */
static int flags_l_set(lua_State *L) {
    int rc;
    luaL_argcheck(L, lua_gettop(L) == 3, 3, "expected name, enabled, reason");
    struct script_request *sr = script_current(L, "sluice.flags.set");
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    const char *reason = luaL_checkstring(L, 3);
    if (!flags_known(name)) return flags_fail(L, STORE_NOT_FOUND, name);
    struct api_error limited = {0};              /* flag writes count against the token too */
    if (!scaling_admit_write(script_app(L), sr->principal.token_id, NULL, &limited))
        return bind_push_failure(L, &limited);
    rc = flags_set(script_app(L), name, lua_toboolean(L, 2), sr->principal.name, sr->source, reason,
                   sr->http->request_id);
    if (rc != STORE_OK) return flags_fail(L, rc, name);
    health_changed(script_app(L)->health);       /* the snapshot's writes_enabled, at once */
    json_t **box = luajson_box(L);
    *box = flags_get_json(script_app(L), name, &rc);
    if (*box == NULL) return flags_fail(L, rc, name);
    luajson_push_boxed(L, box);
    return 1;
}

void bind_flags_open(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"list", flags_l_list}, {"get", flags_l_get}, {"set", flags_l_set}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
