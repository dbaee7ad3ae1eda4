/* bind_core.c — sluice.route, sluice.error, sluice.null, sluice.array,
 * sluice.log and sluice.now_ms: what every handler needs. */
#include "bind.h"
#include "log.h"
#include "luajson.h"
#include "script.h"

#include <lauxlib.h>
#include <string.h>

/* sluice.route(method, pattern, {scope = "..."}, handler)  -- load time */
static int core_route(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 4, 4, "expected method, pattern, options, handler");
    if (sandbox_phase(L) != SANDBOX_LOAD) return luaL_error(L, "sluice.route: only at load time");
    const char *method = luaL_checkstring(L, 1);
    const char *pattern = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_getfield(L, 3, "scope");                /* ..., scope */
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 3, "options.scope must be a string");
    script_add_route(L, method, pattern, lua_tostring(L, -1), 4);
    return 0;
}

/* sluice.error(status, code, message [, details [, headers]])
 * -> status, {error = {code, message, details}}, headers */
static int core_error(lua_State *L) {
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 3 && n <= 5, n, "expected status, code, message [, details [, headers]]");
    lua_Integer status = luaL_checkinteger(L, 1);
    luaL_argcheck(L, status >= 400 && status <= 599, 1, "status must be 400..599");
    luaL_checkstring(L, 2);
    luaL_checkstring(L, 3);
    if (n >= 4 && !lua_isnil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
    if (n >= 5 && !lua_isnil(L, 5)) luaL_checktype(L, 5, LUA_TTABLE);
    lua_settop(L, 5);
    lua_pushinteger(L, status);                 /* ..., status */
    lua_createtable(L, 0, 1);                   /* ..., status, body */
    lua_createtable(L, 0, 3);                   /* ..., status, body, error */
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "code");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "message");
    if (!lua_isnil(L, 4)) {
        lua_pushvalue(L, 4);
        lua_setfield(L, -2, "details");
    }
    lua_setfield(L, -2, "error");
    lua_pushvalue(L, 5);                        /* ..., status, body, headers */
    return 3;
}

/* sluice.array(t) -> t, marked to encode as a JSON array even when empty */
static int core_array(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected one table");
    luaL_checktype(L, 1, LUA_TTABLE);
    luajson_mark_array(L, 1);
    return 1;
}

/* sluice.log(level, message [, fields]) */
static int core_log(lua_State *L) {
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    char err[128];
    int n = lua_gettop(L);
    luaL_argcheck(L, n == 2 || n == 3, n, "expected level, message [, fields]");
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *msg = luaL_checkstring(L, 2);
    json_t *fields = json_object();
    if (n == 3) {
        luaL_checktype(L, 3, LUA_TTABLE);
        json_decref(fields);
        fields = luajson_from_lua(L, 3, err, sizeof err);
        if (!json_is_object(fields)) {
            json_decref(fields);
            return luaL_argerror(L, 3, "fields must be a table of JSON values with string keys");
        }
    }
    if (sandbox_phase(L) == SANDBOX_REQUEST) {
        struct script_request *sr = script_current(L, "sluice.log");
        json_object_set_new(fields, "request_id", json_string(sr->http->request_id));
    }
    json_object_set_new(fields, "source", json_string("script"));
    log_json((enum log_level)level, msg, fields);
    return 0;
}

/* sluice.now_ms() -> integer milliseconds since the epoch */
static int core_now_ms(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    lua_pushinteger(L, util_now_ms());
    return 1;
}

void bind_core_open(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"route", core_route}, {"error", core_error}, {"array", core_array},
        {"log", core_log},     {"now_ms", core_now_ms}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
    luajson_push_null(L);
    lua_setfield(L, -2, "null");
}
