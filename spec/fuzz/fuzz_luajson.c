/* fuzz_luajson.c — JSON -> Lua -> JSON through engine/luajson.c, in a
 * sandboxed state with a small memory cap, as request bodies and handler
 * answers take that road.
 *
 * The input is parsed as a request body is (json_loadb with
 * JSON_REJECT_DUPLICATES, plus JSON_DECODE_ANY to reach scalars too). It
 * goes into Lua exactly when luajson_depth_ok says so (script.c answers 400
 * before that) and memory allows; then converting back must give an equal
 * value: arrays stay arrays (even empty), null stays null, integers stay
 * integers, reals stay reals.
 *
 * Then Lua values no JSON text makes are built around the result and the
 * raw input bytes, and must be refused with a message and nothing leaked:
 * arrays with holes, mixed keys, functions, NaN and infinities, nesting
 * past the limit, strings and keys that are not UTF-8 or hold a NUL. Raw
 * bytes must convert exactly when they are valid UTF-8 (checked here by a
 * validator of our own, RFC 3629). */
#include "fuzz.h"
#include "luajson.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#define FUZZ_MEM_CAP (2u << 20)

struct fuzz_case {
    const uint8_t *data;
    size_t size;
    json_t *parsed;          /* borrowed */
    int pushed;              /* parsed made it into Lua */
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

/* 1 when s[0..n) is UTF-8 as RFC 3629 has it: shortest forms only, no
 * surrogates, nothing above U+10FFFF. NUL is a valid character. */
static int fuzz_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Convert the value on top back, expecting a refusal with a message. */
static void fuzz_expect_refused(lua_State *L) {
    char err[256] = "";
    json_t *v = luajson_from_lua(L, -1, err, sizeof err);
    FUZZ_CHECK(v == NULL);
    FUZZ_CHECK(err[0] != '\0');
    lua_pop(L, 1);
}

/* The value on top must convert, with the given outcome; popped. */
static void fuzz_expect(lua_State *L, int ok) {
    char err[256] = "";
    json_t *v = luajson_from_lua(L, -1, err, sizeof err);
    FUZZ_CHECK((v != NULL) == ok);
    if (v == NULL) FUZZ_CHECK(err[0] != '\0');
    json_decref(v);
    lua_pop(L, 1);
}

static int fuzz_run(lua_State *L);

/* Values around `value` (at index vi) that JSON cannot carry. */
static void fuzz_hostile_tables(lua_State *L, int vi) {
    lua_createtable(L, 3, 0);                   /* {v, nil, v}: a hole */
    lua_pushvalue(L, vi);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, vi);
    lua_rawseti(L, -2, 3);
    fuzz_expect_refused(L);

    lua_createtable(L, 1, 1);                   /* {v, k = v}: mixed keys */
    lua_pushvalue(L, vi);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, vi);
    lua_setfield(L, -2, "k");
    fuzz_expect_refused(L);

    lua_createtable(L, 2, 0);                   /* {v, f}: a function */
    lua_pushvalue(L, vi);
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, fuzz_run);
    lua_rawseti(L, -2, 2);
    fuzz_expect_refused(L);

    lua_createtable(L, 0, 2);                   /* {a = v, [true] = 1}: a bad key */
    lua_pushvalue(L, vi);
    lua_setfield(L, -2, "a");
    lua_pushboolean(L, 1);
    lua_pushinteger(L, 1);
    lua_rawset(L, -3);
    fuzz_expect_refused(L);

    static const double not_finite[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof not_finite / sizeof not_finite[0]; i++) {
        lua_createtable(L, 0, 2);               /* {a = v, n = NaN} */
        lua_pushvalue(L, vi);
        lua_setfield(L, -2, "a");
        lua_pushnumber(L, not_finite[i]);
        lua_setfield(L, -2, "n");
        fuzz_expect_refused(L);
    }

    lua_pushvalue(L, vi);                       /* v nested 70 deep */
    for (int d = 0; d < LUAJSON_MAX_DEPTH + 6; d++) {
        lua_createtable(L, 1, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
    }
    fuzz_expect_refused(L);
}

/* The raw input as a string, and as a key. */
static void fuzz_raw_bytes(lua_State *L, const struct fuzz_case *c) {
    int utf8 = fuzz_utf8_valid(c->data, c->size);
    int has_nul = memchr(c->data, '\0', c->size) != NULL;

    lua_pushlstring(L, (const char *)c->data, c->size);
    fuzz_expect(L, utf8);

    lua_createtable(L, 0, 1);                   /* {[input] = true} */
    lua_pushlstring(L, (const char *)c->data, c->size);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    fuzz_expect(L, utf8 && !has_nul);
}

/* Protected: everything that may raise (memory) runs in here. */
static int fuzz_run(lua_State *L) {
    struct fuzz_case *c = lua_touserdata(L, 1);
    char err[256] = "";

    lua_settop(L, 0);
    luajson_init(L);
    if (c->parsed) {
        json_t **box = luajson_box(L);          /* box */
        *box = json_incref(c->parsed);
        luajson_push_boxed(L, box);             /* value; raises past the depth limit */
        c->pushed = 1;
        json_t *back = luajson_from_lua(L, 1, err, sizeof err);
        if (back == NULL) fprintf(stderr, "fuzz: refused on the way back: %s\n", err);
        FUZZ_CHECK(back != NULL);
        FUZZ_CHECK(json_equal(c->parsed, back));
        /* Not json_equal's business: 24 and 24.0 must keep their types. */
        FUZZ_CHECK(json_typeof(c->parsed) == json_typeof(back));
        json_decref(back);
    } else {
        luajson_push_null(L);                   /* sluice.null stands in */
        FUZZ_CHECK(luajson_is_null(L, 1));
    }
    fuzz_hostile_tables(L, 1);
    fuzz_raw_bytes(L, c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The budget is charged for allocations too; this one only ends runaways. */
    static const struct sandbox_limits limits = {FUZZ_MEM_CAP, 100000000};
    struct fuzz_case c = {data, size, NULL, 0};
    json_error_t jerr;

    lua_State *L = sandbox_new(&limits, NULL);
    FUZZ_CHECK(L != NULL);
    c.parsed = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    lua_pushcfunction(L, fuzz_run);
    lua_pushlightuserdata(L, &c);
    int status = sandbox_pcall(L, 1, 0);
    /* What script.c refuses up front (400) is exactly what Lua cannot take. */
    if (c.parsed && status == LUA_OK) FUZZ_CHECK(c.pushed && luajson_depth_ok(c.parsed));
    if (c.parsed && status != LUA_OK && strstr(lua_tostring(L, -1), "nested deeper"))
        FUZZ_CHECK(!c.pushed && !luajson_depth_ok(c.parsed));
    if (status != LUA_OK) {
        /* Allowed: out of memory under the cap, or nesting past the limit. */
        const char *msg = lua_tostring(L, -1);
        FUZZ_CHECK(msg != NULL);
        if (!(strstr(msg, "not enough memory") || strstr(msg, "nested deeper") ||
              strstr(msg, "JSON too deep") || strstr(msg, "stack overflow") ||
              strstr(msg, "budget exceeded")))
            fprintf(stderr, "fuzz: unexpected error: %s\n", msg);
        FUZZ_CHECK(strstr(msg, "not enough memory") || strstr(msg, "nested deeper") ||
                   strstr(msg, "JSON too deep") || strstr(msg, "stack overflow") ||
                   strstr(msg, "budget exceeded"));
    }
    sandbox_close(L);
    json_decref(c.parsed);
    return 0;
}
