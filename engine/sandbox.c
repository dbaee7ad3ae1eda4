/* sandbox.c — capped allocator, budget and library whitelist for every Lua
 * state sluiced creates. Uses sandbox_match.c for metered pattern matching and
 * sandbox_table.c for the metered table functions.
 *
 * Why the budget is "sticky": Lua 5.4 clears L->allowhook while a hook runs
 * and only restores it when the hook returns. The budget error is raised from
 * the hook, so it leaves with hooks still off; the message handler of an
 * enclosing lua_pcall (xpcall's) then runs before anything turns them back
 * on, unmetered: a handler could loop for ever. GC finalizers (__gc) also run
 * with hooks off. So: xpcall here never gives Lua a message handler (it calls
 * the handler itself, after the unwinding, as an ordinary metered call);
 * setmetatable refuses __gc; and once the budget is spent the hook fires on
 * every instruction and every sandbox C function raises again, so nothing
 * can catch the error and go on. */
#include "sandbox.h"
#include "sandbox_match.h"
#include "sandbox_table.h"
#include "util.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SANDBOX_HOOK_EVERY 250      /* instructions between budget checks */
#define SANDBOX_FILE_MAX (1 << 20)
#define SANDBOX_HOST_SLACK (64 << 10) /* over the cap, for sluiced's own messages */
#define SANDBOX_CPU_RECHECK_NS 1000000LL

/* Lives in the state's extra space; owned by the state. */
struct sandbox {
    lua_State *L;
    size_t mem_used, mem_cap;
    int host_slack;          /* sluiced, not the script, allocates: allow the slack */
    int running;             /* inside sandbox_pcall */
    long budget, remaining;
    long long cpu_limit_ns, cpu_start_ns, next_cpu_check_ns;
    int exhausted;           /* budget spent: every hook tick and C entry raises */
    int raised;              /* `why` already carries the position of the first raise */
    char why[256];
    enum sandbox_phase phase;
    void *host;
};

static struct sandbox *sandbox_of(lua_State *L) {
    return *(struct sandbox **)lua_getextraspace(L);
}

static long long sandbox_clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sandbox_hook(lua_State *L, lua_Debug *ar);

/* Mark the budget spent. Safe where raising is not (in the allocator, with
 * hooks off): the hook, now on every instruction, raises `why` next. */
static void sandbox_mark_spent(struct sandbox *sb, const char *why) {
    if (sb->exhausted) return;
    sb->exhausted = 1;
    sb->raised = 0;
    util_copy(sb->why, sizeof sb->why, why);
    lua_sethook(sb->L, sandbox_hook, LUA_MASKCOUNT, 1);
}

static void sandbox_spend(struct sandbox *sb, long cost, const char *what) {
    char why[sizeof sb->why];
    if (sb->exhausted) return;
    if (cost < sb->remaining) {
        sb->remaining -= cost;
        return;
    }
    sb->remaining = 0;
    snprintf(why, sizeof why, "%s%sinstruction budget exceeded (%ld instructions)",
             what ? what : "", what ? ": " : "", sb->budget);
    sandbox_mark_spent(sb, why);
}

/* Raise the spent budget's error. The first raise prefixes the position
 * (as luaL_error would) and keeps it, so every later raise reads the same. */
static int sandbox_raise_spent(lua_State *L) {
    struct sandbox *sb = sandbox_of(L);
    if (!sb->raised) {
        sb->raised = 1;
        luaL_where(L, 1);                       /* where */
        lua_pushstring(L, sb->why);             /* where, why */
        lua_concat(L, 2);                       /* msg */
        util_copy(sb->why, sizeof sb->why, lua_tostring(L, -1));
    } else {
        lua_pushstring(L, sb->why);             /* msg */
    }
    return lua_error(L);
}

/* The allocator refuses growth past the cap; Lua turns that into a "not
 * enough memory" error in the script, not a crash. Growth is charged to the
 * budget, so copying and building big strings is not free; a refusal is
 * charged as the full collection Lua runs before giving up. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct sandbox *sb = ud;
    size_t old = ptr ? osize : 0;
    size_t cap = sb->mem_cap + (sb->host_slack ? SANDBOX_HOST_SLACK : 0);
    if (nsize == 0) {
        free(ptr);
        sb->mem_used -= old;
        return NULL;
    }
    if (nsize > old && sb->mem_used - old + nsize > cap) {
        if (sb->running)
            sandbox_spend(sb, (long)(sb->mem_used / SANDBOX_BYTES_PER_INSTR), NULL);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) return NULL;
    sb->mem_used = sb->mem_used - old + nsize;
    if (nsize > old && sb->running)
        sandbox_spend(sb, (long)((nsize - old + SANDBOX_BYTES_PER_INSTR - 1) / SANDBOX_BYTES_PER_INSTR),
                      NULL);
    return p;
}

/* 1 when the call has used its CPU time. Reads the thread's CPU clock (a
 * system call) only when the wall clock says the limit could be reached. */
static int sandbox_cpu_spent(struct sandbox *sb) {
    long long now = sandbox_clock_ns(CLOCK_MONOTONIC);
    if (now < sb->next_cpu_check_ns) return 0;
    long long used = sandbox_clock_ns(CLOCK_THREAD_CPUTIME_ID) - sb->cpu_start_ns;
    if (used >= sb->cpu_limit_ns) return 1;
    /* CPU time cannot pass the limit sooner than wall time does. */
    long long left = sb->cpu_limit_ns - used;
    sb->next_cpu_check_ns = now + (left > SANDBOX_CPU_RECHECK_NS ? left : SANDBOX_CPU_RECHECK_NS);
    return 0;
}

static void sandbox_hook(lua_State *L, lua_Debug *ar) {
    struct sandbox *sb = sandbox_of(L);
    (void)ar;
    if (!sb->exhausted) {
        sandbox_spend(sb, SANDBOX_HOOK_EVERY, NULL);
        if (!sb->exhausted && sandbox_cpu_spent(sb)) {
            char why[sizeof sb->why];
            snprintf(why, sizeof why,
                     "instruction budget exceeded: %lld ms of CPU time (the limit for %ld instructions)",
                     sb->cpu_limit_ns / 1000000, sb->budget);
            sandbox_mark_spent(sb, why);
        }
    }
    if (sb->exhausted) sandbox_raise_spent(L);
}

void sandbox_charge(lua_State *L, long cost, const char *what) {
    struct sandbox *sb = sandbox_of(L);
    sandbox_spend(sb, cost, what);
    if (sb->exhausted) sandbox_raise_spent(L);
}

/* load() restricted to text chunks; a given env table is honoured. Compiling
 * reads the whole text, so it is charged by size. */
static int sandbox_load(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    sandbox_charge(L, 1 + (long)(len / SANDBOX_BYTES_PER_INSTR), NULL);
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

/* pcall that cannot swallow a spent budget: the error keeps propagating to
 * sandbox_pcall, whatever the script wraps around its loop. */
static int sandbox_lua_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    sandbox_charge(L, 1, NULL);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (sandbox_of(L)->exhausted) return sandbox_raise_spent(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);                           /* ok, results... */
    return lua_gettop(L);
}

/* xpcall(f, msgh, ...) as stock Lua answers it, except that msgh runs after
 * the stack is unwound, as an ordinary call under the budget, instead of as
 * Lua's message handler (which may run with hooks off, see the top of the
 * file). Like stock Lua, msgh sees run-time errors only, its first result
 * replaces the error, and an error inside msgh gives "error in error
 * handling"; it is called once, so it cannot loop on its own errors. */
static int sandbox_lua_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    sandbox_charge(L, 1, NULL);
    lua_pushvalue(L, 1);                        /* f, msgh, args..., f */
    lua_rotate(L, 3, 1);                        /* f, msgh, f, args... */
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 0); /* f, msgh, results... | err */
    if (sandbox_of(L)->exhausted) return sandbox_raise_spent(L);
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_replace(L, 1);                      /* true, msgh, results... */
        lua_remove(L, 2);                       /* true, results... */
        return lua_gettop(L);
    }
    if (status == LUA_ERRRUN) {
        lua_pushvalue(L, 2);                    /* f, msgh, err, msgh */
        lua_insert(L, -2);                      /* f, msgh, msgh, err */
        status = lua_pcall(L, 1, 1, 0);         /* f, msgh, result | err2 */
        if (sandbox_of(L)->exhausted) return sandbox_raise_spent(L);
        if (status != LUA_OK && status != LUA_ERRMEM) {
            lua_pop(L, 1);
            lua_pushliteral(L, "error in error handling");
        }
    }
    lua_pushboolean(L, 0);
    lua_replace(L, 1);                          /* false, msgh, msg */
    lua_remove(L, 2);                           /* false, msg */
    return 2;
}

/* setmetatable() refusing __gc: finalizers run with hooks off, outside any
 * budget, and also when the state closes. Without __gc in the metatable at
 * this point, Lua never finalizes the object, whatever is added later. */
static int sandbox_setmetatable(lua_State *L) {
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    sandbox_charge(L, 1, NULL);
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");             /* t, mt, "__gc" */
        int has_gc = lua_rawget(L, 2) != LUA_TNIL; /* t, mt, __gc */
        lua_pop(L, 1);
        if (has_gc) return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* 1 when the table at idx is a metatable sluiced made with
 * luaL_newmetatable (registry[mt.__name] == mt). Does not raise. */
static int sandbox_is_host_metatable(lua_State *L, int idx) {
    int is = 0;
    idx = lua_absindex(L, idx);
    lua_pushliteral(L, "__name");               /* "__name" */
    if (lua_rawget(L, idx) == LUA_TSTRING) {    /* name */
        lua_pushvalue(L, -1);                   /* name, name */
        is = lua_rawget(L, LUA_REGISTRYINDEX) == LUA_TTABLE && lua_rawequal(L, -1, idx);
        lua_pop(L, 1);                          /* name */
    }
    lua_pop(L, 1);
    return is;
}

/* getmetatable() hiding the metatables sluiced shares between values (the
 * JSON array mark): a script that changed one, say by adding __gc, would
 * change every value sluiced marks later. */
static int sandbox_getmetatable(lua_State *L) {
    luaL_checkany(L, 1);
    if (!lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return 1;
    if (sandbox_is_host_metatable(L, -1)) lua_pushnil(L);
    return 1;
}

static void sandbox_open_libs(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},      {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL},
    };
    /* print writes to sluiced's stdout: scripts have sluice.log instead. */
    static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", "print", NULL};
    static const luaL_Reg replaced[] = {
        {"load", sandbox_load},
        {"pcall", sandbox_lua_pcall},
        {"xpcall", sandbox_lua_xpcall},
        {"setmetatable", sandbox_setmetatable},
        {"getmetatable", sandbox_getmetatable},
        {NULL, NULL},
    };

    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    for (const char *const *name = removed; *name; name++) {
        lua_pushnil(L);
        lua_setglobal(L, *name);
    }
    lua_pushglobaltable(L);                     /* _G */
    luaL_setfuncs(L, replaced, 0);
    lua_pop(L, 1);
    sandbox_match_register(L);
    sandbox_table_register(L);

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
    sb->cpu_limit_ns = (long long)sb->budget * SANDBOX_CPU_NS_PER_INSTR;
    if (sb->cpu_limit_ns < SANDBOX_CPU_MIN_MS * 1000000LL)
        sb->cpu_limit_ns = SANDBOX_CPU_MIN_MS * 1000000LL;
    sb->phase = SANDBOX_LOAD;
    sb->host = host;
    L = lua_newstate(sandbox_alloc, sb);
    if (L == NULL) goto fail;
    sb->L = L;
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

/* Replace whatever the call left (results, or an error object that may not
 * be the budget's) with msg, as a failed lua_pcall would. */
static void sandbox_fail_with(lua_State *L, int base, const char *msg) {
    struct sandbox *sb = sandbox_of(L);
    lua_settop(L, base);
    sb->host_slack = 1;
    lua_pushstring(L, msg);
    sb->host_slack = 0;
}

int sandbox_pcall(lua_State *L, int nargs, int nresults) {
    struct sandbox *sb = sandbox_of(L);
    int base = lua_gettop(L) - nargs - 1;
    /* A nested call (a binding calling back into Lua) shares the budget of
     * the call around it; only the outermost one starts a fresh budget. */
    if (sb->running) return lua_pcall(L, nargs, nresults, 0);
    sb->remaining = sb->budget;
    sb->exhausted = 0;
    sb->cpu_start_ns = sandbox_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    sb->next_cpu_check_ns = sandbox_clock_ns(CLOCK_MONOTONIC) + sb->cpu_limit_ns;
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, SANDBOX_HOOK_EVERY);
    sb->running = 1;
    int status = lua_pcall(L, nargs, nresults, 0);
    sb->running = 0;
    if (sb->exhausted) {
        /* Spent, even if what reached here is another error (raised while
         * building the budget's message) or a success (the last allocation
         * spent it after the last instruction). */
        sandbox_fail_with(L, base, sb->why);
        status = LUA_ERRRUN;
        sb->exhausted = 0;
        lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, SANDBOX_HOOK_EVERY);
    } else if (status != LUA_OK && !lua_isstring(L, -1)) {
        sandbox_fail_with(L, base, "error object is not a string");
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
