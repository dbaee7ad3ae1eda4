/* bind.c — assembles the `sluice` table from the bind_<area>.c files. This
 * is the one place to read the whole Lua API surface; docs/lua-api.md
 * documents each function. */
#include "bind.h"
#include "luajson.h"
#include "script.h"

#include <lauxlib.h>

void bind_open_sluice(lua_State *L) {
    lua_newtable(L);                            /* sluice */
    bind_core_open(L);                          /* route, error, null, array, log, now_ms */
    lua_newtable(L);
    bind_scaling_open(L);                       /* list, get, set, history, await */
    lua_setfield(L, -2, "scaling");
    lua_newtable(L);
    bind_auth_open(L);                          /* whoami, login, logout, tokens */
    lua_setfield(L, -2, "auth");
    lua_newtable(L);
    bind_flags_open(L);                         /* list, get, set */
    lua_setfield(L, -2, "flags");
    lua_newtable(L);
    bind_policy_open(L);                        /* status */
    lua_setfield(L, -2, "policy");
    lua_newtable(L);
    bind_telemetry_open(L);                     /* snapshot, stream, metrics, ready */
    lua_setfield(L, -2, "telemetry");
    lua_newtable(L);
    bind_notify_open(L);                        /* list */
    lua_setfield(L, -2, "notify");
    lua_newtable(L);
    bind_autoscale_open(L);                     /* list, get, hold, release */
    lua_setfield(L, -2, "autoscale");
    lua_setglobal(L, "sluice");
}

int bind_push_failure(lua_State *L, struct api_error *err) {
    json_t **box = luajson_box(L);              /* box */
    *box = err->details;
    err->details = NULL;
    lua_pushnil(L);                             /* box, nil */
    lua_pushstring(L, err->message);            /* box, nil, message */
    lua_createtable(L, 0, 5);                   /* box, nil, message, info */
    lua_pushinteger(L, api_error_status(err->code));
    lua_setfield(L, -2, "status");
    lua_pushstring(L, err->code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, err->message);
    lua_setfield(L, -2, "message");
    if (*box) {
        luajson_push(L, *box);
        lua_setfield(L, -2, "details");
    }
    if (err->retry_after_s > 0) {
        lua_pushinteger(L, err->retry_after_s);
        lua_setfield(L, -2, "retry_after");
    }
    lua_remove(L, -4);                          /* nil, message, info (box collected later) */
    api_error_clear(err);
    return 3;
}

int bind_push_store_failure(lua_State *L, int store_rc) {
    struct api_error err = {0};
    api_error_store(&err, store_rc);
    return bind_push_failure(L, &err);
}
