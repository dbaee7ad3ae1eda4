/* luajson.c — jansson <-> Lua conversion used by the HTTP handlers and the
 * bindings. */
#include "luajson.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LUAJSON_ARRAY_MT "sluice.array"
#define LUAJSON_BOX_MT "sluice.jsonbox"
#define LUAJSON_BODY_MT "sluice.body"

static int luajson_box_gc(lua_State *L) {
    json_t **box = luaL_checkudata(L, 1, LUAJSON_BOX_MT);
    json_decref(*box);
    *box = NULL;
    return 0;
}

static int luajson_body_gc(lua_State *L) {
    struct body **slot = luaL_checkudata(L, 1, LUAJSON_BODY_MT);
    body_release(*slot);
    *slot = NULL;
    return 0;
}

static int luajson_body_tostring(lua_State *L) {
    struct body **slot = luaL_checkudata(L, 1, LUAJSON_BODY_MT);
    lua_pushfstring(L, "sluice.body (%d bytes)", *slot ? (int)(*slot)->len : 0);
    return 1;
}

void luajson_init(lua_State *L) {
    luaL_newmetatable(L, LUAJSON_ARRAY_MT);     /* array mt */
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newmetatable(L, LUAJSON_BOX_MT);       /* box mt */
    lua_pushcfunction(L, luajson_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, LUAJSON_BODY_MT);      /* body mt */
    lua_pushcfunction(L, luajson_body_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, luajson_body_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "sluice.body");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);                      /* opaque: getmetatable gives false */
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

struct body **luajson_body_box(lua_State *L) {
    struct body **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    luaL_setmetatable(L, LUAJSON_BODY_MT);
    return slot;
}

struct body *luajson_to_body(lua_State *L, int idx) {
    struct body **slot = luaL_testudata(L, idx, LUAJSON_BODY_MT);
    return slot ? *slot : NULL;
}

void luajson_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

int luajson_is_null(lua_State *L, int idx) {
    return lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL;
}

void luajson_mark_array(lua_State *L, int idx) {
    lua_pushvalue(L, idx);                      /* t */
    luaL_setmetatable(L, LUAJSON_ARRAY_MT);
    lua_pop(L, 1);
}

static void luajson_push_depth(lua_State *L, json_t *v, int depth) {
    size_t i;
    const char *key;
    json_t *item;

    luaL_checkstack(L, 3, "JSON too deep");
    if (depth > LUAJSON_MAX_DEPTH) luaL_error(L, "JSON nested deeper than %d", LUAJSON_MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach(v, key, item) {
            luajson_push_depth(L, item, depth + 1);
            lua_setfield(L, -2, key);
        }
        break;
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        json_array_foreach(v, i, item) {
            luajson_push_depth(L, item, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        luaL_setmetatable(L, LUAJSON_ARRAY_MT);
        break;
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_NULL:
        luajson_push_null(L);
        break;
    }
}

static int luajson_depth_below(const json_t *v, int depth) {
    size_t i;
    const char *k;
    json_t *item;
    if (depth > LUAJSON_MAX_DEPTH) return 0;
    if (json_is_array(v)) {
        json_array_foreach(v, i, item) if (!luajson_depth_below(item, depth + 1)) return 0;
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, item) if (!luajson_depth_below(item, depth + 1)) return 0;
    }
    return 1;
}

int luajson_depth_ok(const json_t *v) { return v == NULL || luajson_depth_below(v, 0); }

void luajson_push(lua_State *L, json_t *v) {
    if (v == NULL) luajson_push_null(L);
    else luajson_push_depth(L, v, 0);
}

json_t **luajson_box(lua_State *L) {
    json_t **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, LUAJSON_BOX_MT);
    return box;
}

void luajson_push_boxed(lua_State *L, json_t **box) {
    luajson_push(L, *box);                      /* box, value */
    json_decref(*box);
    *box = NULL;
    lua_remove(L, -2);                          /* value */
}

/* 1 when the table at idx has the array metatable. Does not raise. */
static int luajson_has_array_mt(lua_State *L, int idx) {
    int is = 0;
    if (!lua_getmetatable(L, idx)) return 0;    /* mt */
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUAJSON_ARRAY_MT) == LUA_TTABLE)
        is = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return is;
}

static json_t *luajson_table(lua_State *L, int idx, int depth, char *err, size_t errlen);

static json_t *luajson_value(lua_State *L, int idx, int depth, char *err, size_t errlen) {
    size_t len;
    const char *s;
    json_t *v;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            snprintf(err, errlen, "number is not finite");
            return NULL;
        }
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);        /* a string: no conversion, no allocation */
        v = json_stringn(s, len);
        if (v == NULL) snprintf(err, errlen, "string is not valid UTF-8");
        return v;
    case LUA_TLIGHTUSERDATA:
        if (luajson_is_null(L, idx)) return json_null();
        break;
    case LUA_TTABLE:
        return luajson_table(L, idx, depth, err, errlen);
    default:
        break;
    }
    snprintf(err, errlen, "a %s cannot be encoded as JSON", lua_typename(L, lua_type(L, idx)));
    return NULL;
}

static json_t *luajson_table(lua_State *L, int idx, int depth, char *err, size_t errlen) {
    json_t *out = NULL;
    lua_Integer n = 0, count = 0;
    int all_int = 1;

    idx = lua_absindex(L, idx);
    if (depth > LUAJSON_MAX_DEPTH || !lua_checkstack(L, 4)) {
        snprintf(err, errlen, "table nested deeper than %d", LUAJSON_MAX_DEPTH);
        return NULL;
    }
    /* Classify: a sequence 1..n is an array, string keys an object. */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {             /* key, value */
        if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            if (lua_tointeger(L, -2) > n) n = lua_tointeger(L, -2);
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            all_int = 0;
        } else {
            lua_pop(L, 2);
            snprintf(err, errlen, "table keys must be strings or 1..n");
            return NULL;
        }
        count++;
        lua_pop(L, 1);                          /* key */
    }
    if (all_int && (count > 0 || luajson_has_array_mt(L, idx))) {
        if (n != count) {
            snprintf(err, errlen, "array has holes");
            return NULL;
        }
        out = json_array();
        for (lua_Integer i = 1; out && i <= n; i++) {
            lua_rawgeti(L, idx, i);             /* item */
            json_t *item = luajson_value(L, -1, depth + 1, err, errlen);
            lua_pop(L, 1);
            if (item == NULL || json_array_append_new(out, item) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (!all_int && n > 0) {
        snprintf(err, errlen, "table mixes string and integer keys");
        return NULL;
    }
    out = json_object();
    lua_pushnil(L);
    while (out && lua_next(L, idx) != 0) {      /* key, value */
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen);   /* a string: no conversion */
        if (strlen(key) != klen) {
            snprintf(err, errlen, "object key contains a NUL byte");
            lua_pop(L, 2);
            json_decref(out);
            return NULL;
        }
        json_t *item = luajson_value(L, -1, depth + 1, err, errlen);
        if (item == NULL || json_object_set_new(out, key, item) != 0) {
            if (item != NULL) snprintf(err, errlen, "object key is not valid UTF-8");
            lua_pop(L, 2);
            json_decref(out);
            return NULL;
        }
        lua_pop(L, 1);
    }
    return out;
}

json_t *luajson_from_lua(lua_State *L, int idx, char *err, size_t errlen) {
    return luajson_value(L, idx, 0, err, errlen);
}
