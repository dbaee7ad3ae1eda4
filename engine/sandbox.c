/* sandbox.c — capped allocator, instruction budget and library whitelist for
 * every Lua state sluiced creates. */
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define SANDBOX_HOOK_EVERY 1000     /* instructions between budget checks */
#define SANDBOX_FILE_MAX (1 << 20)

/* Lives in the state's extra space; owned by the state. */
struct sandbox {
    size_t mem_used, mem_cap;
    long budget, remaining;
    int exhausted;           /* budget spent: no pcall may swallow that */
    enum sandbox_phase phase;
    void *host;
};

static struct sandbox *sandbox_of(lua_State *L) {
    return *(struct sandbox **)lua_getextraspace(L);
}

/* The allocator refuses growth past the cap; Lua turns that into a "not
 * enough memory" error in the script, not a crash. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct sandbox *sb = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        sb->mem_used -= old;
        return NULL;
    }
    if (nsize > old && sb->mem_used - old + nsize > sb->mem_cap) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) sb->mem_used = sb->mem_used - old + nsize;
    return p;
}

static void sandbox_hook(lua_State *L, lua_Debug *ar) {
    struct sandbox *sb = sandbox_of(L);
    (void)ar;
    sb->remaining -= SANDBOX_HOOK_EVERY;
    if (sb->remaining <= 0) {
        sb->exhausted = 1;
        luaL_error(L, "instruction budget exceeded (%I instructions)", (lua_Integer)sb->budget);
    }
}

/* load() restricted to text chunks; a given env table is honoured. */
static int sandbox_load(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);                      /* nil, msg */
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);                    /* chunk, env */
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return 1;
}

/* pcall and xpcall that cannot swallow an exhausted budget: once the budget
 * is spent the error keeps propagating to sandbox_pcall, whatever the script
 * wraps around its loop. */
static int sandbox_lua_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (sandbox_of(L)->exhausted) return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);                           /* ok, results... */
    return lua_gettop(L);
}

static int sandbox_lua_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);                        /* f, msgh, args..., f */
    lua_pushvalue(L, 2);                        /* ..., f, msgh */
    lua_replace(L, 1);                          /* msgh, msgh, args..., f */
    lua_replace(L, 2);                          /* msgh, f, args... */
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    if (sandbox_of(L)->exhausted) return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1);                          /* ok, results... */
    return lua_gettop(L);
}

static void sandbox_open_libs(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},      {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL},
    };
    static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", NULL};

    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    for (const char *const *name = removed; *name; name++) {
        lua_pushnil(L);
        lua_setglobal(L, *name);
    }
    lua_pushcfunction(L, sandbox_load);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, sandbox_lua_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, sandbox_lua_xpcall);
    lua_setglobal(L, "xpcall");

    /* os.clock only: CPU time is harmless and useful for scripts. */
    luaL_requiref(L, "__os", luaopen_os, 0);    /* full os */
    lua_newtable(L);                            /* full os, safe os */
    lua_getfield(L, -2, "clock");
    lua_setfield(L, -2, "clock");
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    lua_pushnil(L);                             /* drop it from package.loaded */
    lua_setfield(L, LUA_REGISTRYINDEX, "__os");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, "__os");
    lua_pop(L, 1);
}

static int sandbox_open_libs_cf(lua_State *L) {
    sandbox_open_libs(L);
    return 0;
}

lua_State *sandbox_new(const struct sandbox_limits *limits, void *host) {
    struct sandbox *sb = calloc(1, sizeof *sb);
    lua_State *L = NULL;
    if (sb == NULL) goto fail;
    sb->mem_cap = limits->mem_bytes;
    sb->budget = limits->instr_budget;
    sb->remaining = sb->budget;
    sb->phase = SANDBOX_LOAD;
    sb->host = host;
    L = lua_newstate(sandbox_alloc, sb);
    if (L == NULL) goto fail;
    *(struct sandbox **)lua_getextraspace(L) = sb;
    lua_pushcfunction(L, sandbox_open_libs_cf);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) goto fail;
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, SANDBOX_HOOK_EVERY);
    return L;
fail:
    if (L) lua_close(L);
    free(sb);
    return NULL;
}

void sandbox_close(lua_State *L) {
    if (L == NULL) return;
    struct sandbox *sb = sandbox_of(L);
    lua_close(L);
    free(sb);
}

void *sandbox_host(lua_State *L) { return sandbox_of(L)->host; }

enum sandbox_phase sandbox_phase(lua_State *L) { return sandbox_of(L)->phase; }

void sandbox_set_phase(lua_State *L, enum sandbox_phase phase) { sandbox_of(L)->phase = phase; }

size_t sandbox_mem_used(lua_State *L) { return sandbox_of(L)->mem_used; }

int sandbox_pcall(lua_State *L, int nargs, int nresults) {
    struct sandbox *sb = sandbox_of(L);
    sb->remaining = sb->budget;
    sb->exhausted = 0;
    int status = lua_pcall(L, nargs, nresults, 0);
    sb->exhausted = 0;
    if (status != LUA_OK && !lua_isstring(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "error object is not a string");
    }
    return status;
}

int sandbox_dofile(lua_State *L, const char *path, const char *chunkname) {
    size_t len;
    char *text = util_read_file(path, SANDBOX_FILE_MAX, &len);
    if (text == NULL) {
        lua_pushfstring(L, "%s: %s", chunkname + (chunkname[0] == '@'),
                        errno == EFBIG ? "file larger than 1 MiB" : strerror(errno));
        return -1;
    }
    int status = luaL_loadbufferx(L, text, len, chunkname, "t");
    free(text);
    if (status != LUA_OK) return -1;
    return sandbox_pcall(L, 0, 0) == LUA_OK ? 0 : -1;
}
