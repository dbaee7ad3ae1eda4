/* test_luajson.c — jansson <-> Lua conversion: round trips, types kept,
 * values refused with a message, and nesting limits. */
#include "unit.h"
#include "luajson.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>

static lua_State *new_state(void) {
    struct sandbox_limits lim = {16 << 20, 1000000};
    lua_State *L = sandbox_new(&lim, NULL);
    if (L == NULL) return NULL;
    luajson_init(L);                         /* raises only when out of memory */
    luajson_push_null(L);
    lua_setglobal(L, "null");
    return L;
}

/* Push the value returned by Lua code; 0 on success. */
static int eval(lua_State *L, const char *code) {
    if (luaL_loadbufferx(L, code, strlen(code), "=test", "t") != LUA_OK) return -1;
    if (sandbox_pcall(L, 0, 1) != LUA_OK) {
        printf("#   %s: %s\n", code, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

/* JSON text -> Lua -> JSON; 1 when the result equals the input. */
static int round_trips(lua_State *L, const char *text) {
    char err[128] = "";
    json_t *in = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (in == NULL) return 0;
    int top = lua_gettop(L);
    luajson_push(L, in);
    json_t *out = luajson_from_lua(L, -1, err, sizeof err);
    lua_settop(L, top);
    int same = out != NULL && json_equal(in, out);
    if (!same) {
        char *dump = out ? json_dumps(out, JSON_ENCODE_ANY) : NULL;
        printf("#   %s came back as %s %s\n", text, dump ? dump : "NULL", err);
        free(dump);
    }
    json_decref(in);
    json_decref(out);
    return same;
}

/* Lua value from code must be refused with a message containing needle, and
 * the stack must be left as it was. */
static int refuses(lua_State *L, const char *code, const char *needle) {
    char err[128] = "";
    if (eval(L, code) != 0) return 0;
    int top = lua_gettop(L);
    json_t *out = luajson_from_lua(L, -1, err, sizeof err);
    int ok = out == NULL && strstr(err, needle) != NULL && lua_gettop(L) == top;
    if (!ok) printf("#   %s: out=%p err=\"%s\" top %d->%d\n", code, (void *)out, err, top,
                    lua_gettop(L));
    json_decref(out);
    lua_pop(L, 1);
    return ok;
}

TEST(round_trips_objects_arrays_and_nesting) {
    lua_State *L = new_state();
    ASSERT(L != NULL);
    EXPECT(round_trips(L, "{\"a\":1,\"b\":\"two\",\"c\":true,\"d\":false,\"e\":1.5}"));
    EXPECT(round_trips(L, "[1,\"x\",[2,[3,{}]],{\"k\":[true,null]}]"));
    EXPECT(round_trips(L, "{\"outer\":{\"inner\":{\"list\":[{\"x\":-7}]}}}"));
    EXPECT(round_trips(L, "\"caf\\u00e9 \\u0000 nul\""));
    EXPECT(round_trips(L, "9007199254740993"));
    EXPECT(round_trips(L, "null"));
    sandbox_close(L);
}

TEST(empty_array_stays_an_array_and_empty_object_an_object) {
    char err[128];
    lua_State *L = new_state();
    ASSERT(L != NULL);
    EXPECT(round_trips(L, "[]"));
    EXPECT(round_trips(L, "{}"));
    EXPECT(round_trips(L, "{\"items\":[],\"meta\":{}}"));
    lua_newtable(L);                         /* t */
    luajson_mark_array(L, -1);
    json_t *marked = luajson_from_lua(L, -1, err, sizeof err);
    EXPECT(json_is_array(marked) && json_array_size(marked) == 0);
    json_decref(marked);
    lua_newtable(L);                         /* t, plain */
    json_t *plain = luajson_from_lua(L, -1, err, sizeof err);
    EXPECT(json_is_object(plain) && json_object_size(plain) == 0);
    json_decref(plain);
    lua_pop(L, 2);
    sandbox_close(L);
}

TEST(null_sentinel_is_one_value_both_ways) {
    char err[128];
    lua_State *L = new_state();
    ASSERT(L != NULL);
    json_t *n = json_null();
    luajson_push(L, n);
    EXPECT(luajson_is_null(L, -1));
    luajson_push(L, NULL);
    EXPECT(luajson_is_null(L, -1));
    lua_pushboolean(L, 0);
    EXPECT(!luajson_is_null(L, -1));
    lua_pop(L, 3);
    ASSERT(eval(L, "return {a = null, list = {1, null, 3}}") == 0);
    json_t *out = luajson_from_lua(L, -1, err, sizeof err);
    json_t *want = json_loads("{\"a\":null,\"list\":[1,null,3]}", 0, NULL);
    EXPECT(json_equal(out, want));
    json_decref(out);
    json_decref(want);
    lua_pop(L, 1);
    sandbox_close(L);
}

TEST(integers_and_reals_keep_their_type) {
    char err[128];
    lua_State *L = new_state();
    ASSERT(L != NULL);
    json_t *doc = json_loads("{\"i\":24,\"r\":24.0}", 0, NULL);
    luajson_push(L, doc);
    lua_setglobal(L, "doc");
    json_decref(doc);
    ASSERT(eval(L, "return math.type(doc.i) .. ',' .. math.type(doc.r)") == 0);
    EXPECT_STR(lua_tostring(L, -1), "integer,float");
    lua_pop(L, 1);
    ASSERT(eval(L, "return {i = 24, r = 24.0}") == 0);
    json_t *out = luajson_from_lua(L, -1, err, sizeof err);
    EXPECT(json_is_integer(json_object_get(out, "i")));
    EXPECT_INT(json_integer_value(json_object_get(out, "i")), 24);
    EXPECT(json_is_real(json_object_get(out, "r")));
    EXPECT(json_real_value(json_object_get(out, "r")) == 24.0);
    json_decref(out);
    lua_pop(L, 1);
    sandbox_close(L);
}

TEST(refuses_non_finite_numbers) {
    char err[128] = "";
    lua_State *L = new_state();
    ASSERT(L != NULL);
    lua_pushnumber(L, NAN);
    EXPECT(luajson_from_lua(L, -1, err, sizeof err) == NULL);
    EXPECT_CONTAINS(err, "not finite");
    lua_pop(L, 1);
    EXPECT(refuses(L, "return {x = math.huge}", "not finite"));
    EXPECT(refuses(L, "return {1, -math.huge}", "not finite"));
    EXPECT(refuses(L, "return {nested = {0/0}}", "not finite"));
    sandbox_close(L);
}

TEST(refuses_functions_and_userdata) {
    lua_State *L = new_state();
    ASSERT(L != NULL);
    EXPECT(refuses(L, "return function() end", "function"));
    EXPECT(refuses(L, "return {cb = function() end}", "function"));
    lua_pushlightuserdata(L, &L);            /* not the null sentinel */
    lua_setglobal(L, "ptr");
    EXPECT(refuses(L, "return {ptr}", "userdata"));
    sandbox_close(L);
}

TEST(refuses_mixed_keys_holes_and_odd_keys) {
    lua_State *L = new_state();
    ASSERT(L != NULL);
    EXPECT(refuses(L, "return {1, 2, x = 3}", "mixes"));
    EXPECT(refuses(L, "return {1, nil, 3}", "holes"));
    EXPECT(refuses(L, "return {[1] = 'a', [3] = 'c'}", "holes"));
    EXPECT(refuses(L, "return {[0] = 'zero'}", "keys"));
    EXPECT(refuses(L, "return {[1.5] = 'x'}", "keys"));
    EXPECT(refuses(L, "return {[true] = 'x'}", "keys"));
    EXPECT(refuses(L, "return {a = {b = {[-1] = 1}}}", "keys"));
    sandbox_close(L);
}

TEST(refuses_invalid_utf8_in_strings_and_keys) {
    lua_State *L = new_state();
    ASSERT(L != NULL);
    EXPECT(refuses(L, "return '\\xff\\xfe'", "UTF-8"));
    EXPECT(refuses(L, "return {'ok', 'bad \\xc3'}", "UTF-8"));
    EXPECT(refuses(L, "return {['\\xff'] = 1}", "UTF-8"));
    sandbox_close(L);
}

TEST(refuses_nesting_deeper_than_the_limit) {
    char err[128] = "";
    lua_State *L = new_state();
    ASSERT(L != NULL);
    char code[256];
    snprintf(code, sizeof code,
             "local t = {} local root = t for i = 2, %d do t.x = {} t = t.x end return root",
             LUAJSON_MAX_DEPTH);
    ASSERT(eval(L, code) == 0);              /* exactly LUAJSON_MAX_DEPTH tables: fine */
    json_t *ok = luajson_from_lua(L, -1, err, sizeof err);
    EXPECT(ok != NULL);
    json_decref(ok);
    lua_pop(L, 1);
    EXPECT(refuses(L, "local t = {} local root = t for i = 1, 100 do t[1] = {} t = t[1] end"
                      " return root", "deeper"));
    EXPECT(refuses(L, "local t = {} t.self = t return t", "deeper"));
    sandbox_close(L);
}

/* Protected: push the json_t given as light userdata. */
static int push_protected(lua_State *L) {
    luajson_push(L, lua_touserdata(L, 1));
    return 1;
}

TEST(push_raises_on_json_deeper_than_the_limit) {
    lua_State *L = new_state();
    ASSERT(L != NULL);
    json_t *root = json_array(), *cur = root;
    for (int i = 0; i < LUAJSON_MAX_DEPTH + 10; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    lua_pushcfunction(L, push_protected);
    lua_pushlightuserdata(L, root);
    EXPECT_INT(lua_pcall(L, 1, 1, 0), LUA_ERRRUN);
    EXPECT_CONTAINS(lua_tostring(L, -1), "deeper");
    lua_pop(L, 1);
    json_decref(root);
    sandbox_close(L);
}

TEST(box_owns_its_value_until_pushed) {
    char err[128];
    lua_State *L = new_state();
    ASSERT(L != NULL);
    int top = lua_gettop(L);
    json_t **box = luajson_box(L);           /* box */
    *box = json_pack("{s:[i,i]}", "k", 1, 2);
    luajson_push_boxed(L, box);              /* value */
    EXPECT_INT(lua_gettop(L), top + 1);
    json_t *back = luajson_from_lua(L, -1, err, sizeof err);
    json_t *want = json_pack("{s:[i,i]}", "k", 1, 2);
    EXPECT(json_equal(back, want));
    json_decref(back);
    json_decref(want);
    lua_pop(L, 1);
    /* A box never pushed releases its value when collected (LSan checks). */
    box = luajson_box(L);
    *box = json_string("dropped");
    lua_pop(L, 1);
    sandbox_close(L);
}

/* Keys go to jansson as C strings, which stop at a NUL: two different Lua
 * keys "a\0b" and "a\0c" must be refused, not merged into "a". */
TEST(object_keys_with_nul_are_refused_not_merged) {
    char err[128] = "";
    lua_State *L = new_state();
    ASSERT(L != NULL);
    ASSERT(eval(L, "return {['a\\0b'] = 1, ['a\\0c'] = 2}") == 0);
    json_t *out = luajson_from_lua(L, -1, err, sizeof err);
    /* Either refused with a message, or both keys kept. */
    EXPECT((out == NULL && err[0] != '\0') || json_object_size(out) == 2);
    json_decref(out);
    sandbox_close(L);
}

int main(void) {
    RUN(round_trips_objects_arrays_and_nesting);
    RUN(empty_array_stays_an_array_and_empty_object_an_object);
    RUN(null_sentinel_is_one_value_both_ways);
    RUN(integers_and_reals_keep_their_type);
    RUN(refuses_non_finite_numbers);
    RUN(refuses_functions_and_userdata);
    RUN(refuses_mixed_keys_holes_and_odd_keys);
    RUN(refuses_invalid_utf8_in_strings_and_keys);
    RUN(refuses_nesting_deeper_than_the_limit);
    RUN(push_raises_on_json_deeper_than_the_limit);
    RUN(box_owns_its_value_until_pushed);
    RUN(object_keys_with_nul_are_refused_not_merged);
    return UNIT_DONE();
}
