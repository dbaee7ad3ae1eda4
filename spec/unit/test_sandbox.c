/* test_sandbox.c — library whitelist, text-only load, the budget (and every
 * way out of it we know: xpcall handlers, __gc, pattern matching, table
 * functions, long strings), memory cap, phases and sandbox_dofile; and that
 * the metered string and table functions answer exactly as stock Lua. */
#include "unit.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static lua_State *new_state(size_t mem, long budget) {
    struct sandbox_limits lim = {mem, budget};
    return sandbox_new(&lim, NULL);
}

/* Run code under sandbox_pcall keeping one result (or the error message) on
 * the stack. Returns the pcall status. */
static int run(lua_State *L, const char *code) {
    lua_settop(L, 0);
    if (luaL_loadbufferx(L, code, strlen(code), "=test", "t") != LUA_OK) return -1;
    return sandbox_pcall(L, 0, 1);
}

/* Run code that returns a string; compare it with `want`. */
static int returns_string(lua_State *L, const char *code, const char *want) {
    if (run(L, code) != LUA_OK) {
        printf("#   %s failed: %s\n", code, lua_tostring(L, -1));
        return 0;
    }
    const char *got = lua_tostring(L, -1);
    if (got == NULL || strcmp(got, want) != 0) {
        printf("#   %s returned \"%s\", expected \"%s\"\n", code, got ? got : "(nil)", want);
        return 0;
    }
    return 1;
}

TEST(unsafe_globals_are_absent) {
    static const char *const absent[] = {"io", "os.execute", "os.getenv", "os.exit", "os.remove",
                                         "package", "debug", "require", "dofile", "loadfile",
                                         "collectgarbage", "coroutine", "print", NULL};
    char code[128];
    lua_State *L = new_state(16 * MIB, 1000000);
    ASSERT(L != NULL);
    for (const char *const *n = absent; *n; n++) {
        snprintf(code, sizeof code, "return type(%s)", *n);
        EXPECT(returns_string(L, code, "nil"));
    }
    sandbox_close(L);
}

TEST(safe_libraries_and_os_clock_are_present) {
    lua_State *L = new_state(16 * MIB, 1000000);
    ASSERT(L != NULL);
    EXPECT(returns_string(L, "return type(os.clock)", "function"));
    EXPECT(returns_string(L, "return type(os.clock())", "number"));
    EXPECT(returns_string(L, "return type(string.format)", "function"));
    EXPECT(returns_string(L, "return type(table.concat)", "function"));
    EXPECT(returns_string(L, "return type(math.floor)", "function"));
    EXPECT(returns_string(L, "return type(utf8.char)", "function"));
    EXPECT(returns_string(L, "return load('return 6 * 7')() .. ''", "42"));
    EXPECT(returns_string(L, "return load('return x', 'c', 't', {x = 'env'})()", "env"));
    sandbox_close(L);
}

TEST(load_refuses_binary_chunks) {
    lua_State *L = new_state(16 * MIB, 1000000);
    ASSERT(L != NULL);
    /* string.dump is part of the string library: use a real binary chunk. */
    EXPECT(returns_string(L,
        "local bin = string.dump(function() return 1 end)\n"
        "local fn, err = load(bin)\n"
        "return tostring(fn) .. '|' .. tostring(err)",
        "nil|attempt to load a binary chunk (mode is 't')"));
    EXPECT(returns_string(L, "local fn, err = load('\\27Lua junk') return type(fn) .. type(err)",
                          "nilstring"));
    sandbox_close(L);
}

TEST(runaway_loop_ends_with_budget_error) {
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    EXPECT_INT(run(L, "while true do end"), LUA_ERRRUN);
    EXPECT_CONTAINS(lua_tostring(L, -1), "instruction budget");
    sandbox_close(L);
}

TEST(pcall_cannot_swallow_the_budget_error) {
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    EXPECT_INT(run(L, "while true do pcall(function() while true do end end) end"), LUA_ERRRUN);
    EXPECT_CONTAINS(lua_tostring(L, -1), "instruction budget");
    EXPECT_INT(run(L, "while true do xpcall(function() while true do end end,"
                      " function(m) return m end) end"), LUA_ERRRUN);
    EXPECT_CONTAINS(lua_tostring(L, -1), "instruction budget");
    EXPECT_INT(run(L, "local ok, e = pcall(function() while true do end end) return 'caught'"),
               LUA_ERRRUN);
    sandbox_close(L);
}

TEST(pcall_and_xpcall_still_catch_ordinary_errors) {
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    EXPECT(returns_string(L, "local ok, e = pcall(error, 'x', 0) return tostring(ok) .. e",
                          "falsex"));
    EXPECT(returns_string(L, "local ok, a, b = pcall(function(p) return p, 2 end, 1)"
                             " return tostring(ok) .. a .. b", "true12"));
    EXPECT(returns_string(L, "local ok, m = xpcall(function() error('boom', 0) end,"
                             " function(m) return 'h:' .. m end) return tostring(ok) .. m",
                          "falseh:boom"));
    EXPECT(returns_string(L, "local ok, a = xpcall(function(x) return x end, tostring, 'v')"
                             " return tostring(ok) .. a", "truev"));
    sandbox_close(L);
}

TEST(budget_is_fresh_for_every_call) {
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    EXPECT_INT(run(L, "while true do end"), LUA_ERRRUN);
    /* Each call may use most of the budget, many times over. */
    for (int i = 0; i < 5; i++)
        EXPECT_INT(run(L, "local n = 0 for i = 1, 20000 do n = n + i end return n"), LUA_OK);
    EXPECT_INT(lua_tointeger(L, -1), 200010000);
    sandbox_close(L);
}

TEST(memory_cap_fails_the_chunk_and_keeps_the_state_usable) {
    lua_State *L = new_state(4 * MIB, 50000000);
    ASSERT(L != NULL);
    EXPECT_INT(run(L, "local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end"),
               LUA_ERRMEM);
    EXPECT_CONTAINS(lua_tostring(L, -1), "not enough memory");
    EXPECT(sandbox_mem_used(L) <= 4 * MIB);
    EXPECT(returns_string(L, "local t = {} for i = 1, 100 do t[i] = i end return #t .. ''",
                          "100"));
    EXPECT(returns_string(L, "local ok, e = pcall(string.rep, 'x', 1e9) return e",
                          "not enough memory"));
    sandbox_close(L);
}

TEST(non_string_errors_become_a_message) {
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    EXPECT_INT(run(L, "error({code = 1})"), LUA_ERRRUN);
    EXPECT_STR(lua_tostring(L, -1), "error object is not a string");
    sandbox_close(L);
}

TEST(phase_and_host_are_kept) {
    int marker = 0;
    struct sandbox_limits lim = {16 * MIB, 100000};
    lua_State *L = sandbox_new(&lim, &marker);
    ASSERT(L != NULL);
    EXPECT(sandbox_host(L) == &marker);
    EXPECT_INT(sandbox_phase(L), SANDBOX_LOAD);
    sandbox_set_phase(L, SANDBOX_REQUEST);
    EXPECT_INT(sandbox_phase(L), SANDBOX_REQUEST);
    sandbox_set_phase(L, SANDBOX_TICK);
    EXPECT_INT(sandbox_phase(L), SANDBOX_TICK);
    sandbox_set_phase(L, SANDBOX_IDLE);
    EXPECT_INT(sandbox_phase(L), SANDBOX_IDLE);
    EXPECT(sandbox_mem_used(L) > 0);
    sandbox_close(L);
    sandbox_close(NULL);
}

TEST(too_small_memory_cap_fails_cleanly) {
    /* Not even the libraries fit: NULL, and nothing leaks (ASan checks). */
    EXPECT(new_state(4096, 100000) == NULL);
}

static int write_text(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) return -1;
    size_t n = fwrite(text, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

TEST(dofile_runs_text_files_and_names_errors) {
    char dir[] = "/tmp/sluice-sandbox-XXXXXX", good[64], bad[64], bin[64], big[64], missing[64];
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(good, sizeof good, "%s/good.lua", dir);
    snprintf(bad, sizeof bad, "%s/bad.lua", dir);
    snprintf(bin, sizeof bin, "%s/bin.lua", dir);
    snprintf(big, sizeof big, "%s/big.lua", dir);
    snprintf(missing, sizeof missing, "%s/missing.lua", dir);
    lua_State *L = new_state(16 * MIB, 1000000);
    ASSERT(L != NULL);
    EXPECT(write_text(good, "answer = 40 + 2\n", 16) == 0);
    EXPECT(write_text(bad, "x = 1\nthis is not lua\n", 22) == 0);
    EXPECT(write_text(bin, "\033Lua\x54\x00", 6) == 0);
    char *text = malloc((1 << 20) + 2);
    ASSERT(text != NULL);
    memset(text, ' ', (1 << 20) + 1);
    EXPECT(write_text(big, text, (1 << 20) + 1) == 0);
    free(text);

    EXPECT_INT(sandbox_dofile(L, good, "@good.lua"), 0);
    EXPECT(returns_string(L, "return answer .. ''", "42"));
    lua_settop(L, 0);
    EXPECT_INT(sandbox_dofile(L, bad, "@bad.lua"), -1);
    EXPECT_CONTAINS(lua_tostring(L, -1), "bad.lua:2:");
    lua_settop(L, 0);
    EXPECT_INT(sandbox_dofile(L, bin, "@bin.lua"), -1);
    EXPECT_CONTAINS(lua_tostring(L, -1), "binary chunk");
    lua_settop(L, 0);
    EXPECT_INT(sandbox_dofile(L, big, "@big.lua"), -1);
    EXPECT_STR(lua_tostring(L, -1), "big.lua: file larger than 1 MiB");
    lua_settop(L, 0);
    EXPECT_INT(sandbox_dofile(L, missing, "@missing.lua"), -1);
    EXPECT_CONTAINS(lua_tostring(L, -1), "missing.lua: No such file");
    sandbox_close(L);
    unlink(good);
    unlink(bad);
    unlink(bin);
    unlink(big);
    EXPECT(rmdir(dir) == 0);
}

/* ---- runaways that must end within the budget ---------------------------------- */

#define BUDGET (5 * 1000 * 1000)    /* the default --lua-budget */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wall-time bounds stretch under valgrind (tools/test.sh sets VALGRIND). */
static double time_scale(void) {
    const char *v = getenv("VALGRIND");
    return v && *v ? 30 : 1;
}

/* Run code that must end with the budget's error, containing `want`, within
 * max_ms of wall time; with the default budget and memory cap. */
static int stopped(const char *code, const char *want, double max_ms) {
    lua_State *L = new_state(32 * MIB, BUDGET);
    int ok = 0;
    if (L == NULL) return 0;
    max_ms *= time_scale();
    double t0 = now_ms();
    int status = run(L, code);
    double took = now_ms() - t0;
    const char *msg = lua_tostring(L, -1);
    /* Under valgrind, C-heavy loops may reach the CPU ceiling first. */
    int as_wanted = msg && (strstr(msg, want) || (time_scale() > 1 && strstr(msg, "ms of CPU time")));
    if (status != LUA_ERRRUN || !as_wanted)
        printf("#   %s: status %d, \"%s\", expected an error with \"%s\"\n", code, status,
               msg ? msg : "(nil)", want);
    else if (took > max_ms)
        printf("#   %s: stopped after %.0f ms, expected within %.0f ms\n", code, took, max_ms);
    else
        ok = 1;
    /* The state stays usable, with a fresh budget. */
    if (ok && run(L, "local n = 0 for i = 1, 1000 do n = n + i end return n") != LUA_OK) {
        printf("#   %s: the state is unusable after the runaway: %s\n", code, lua_tostring(L, -1));
        ok = 0;
    }
    sandbox_close(L);
    return ok;
}

#define BUDGET_ERR "instruction budget exceeded (5000000 instructions)"
#define PATTERN_ERR "pattern matching took too many steps: " BUDGET_ERR

TEST(xpcall_handler_cannot_escape_the_budget) {
    /* The cases: a heavy handler, and one that never ends. */
    EXPECT(stopped("xpcall(function() while true do end end,"
                   " function(e) for i = 1, 3e8 do end return e end)", BUDGET_ERR, 2000));
    EXPECT(stopped("xpcall(function() while true do end end, function(e) while true do end end)",
                   BUDGET_ERR, 2000));
    /* A handler of an ordinary error runs under the same budget. */
    EXPECT(stopped("xpcall(error, function(e) while true do end end, 'x')", BUDGET_ERR, 2000));
    EXPECT(stopped("while true do xpcall(error, function(e) for i = 1, 1e4 do end return e end) end",
                   BUDGET_ERR, 2000));
    /* A handler that fails, on its own errors too, is called once. */
    EXPECT(stopped("local ok, e = xpcall(error, function(e) error(e) end, 'x')\n"
                   "assert(not ok and e == 'error in error handling', e)\n"
                   "while true do xpcall(error, error) end", BUDGET_ERR, 2000));
}

TEST(nested_pcall_and_xpcall_cannot_swallow_the_budget) {
    EXPECT(stopped("local function f(n)\n"
                   "  if n == 0 then while true do end end\n"
                   "  pcall(f, n - 1)\n"
                   "  xpcall(f, function(e) while true do end end, n - 1)\n"
                   "  return pcall(xpcall, f, pcall, n - 1)\n"
                   "end\n"
                   "while true do f(30) end", BUDGET_ERR, 2000));
    EXPECT(stopped("while true do pcall(pcall, pcall, xpcall, function() while true do end end,"
                   " function() return pcall(function() while true do end end) end) end",
                   BUDGET_ERR, 2000));
}

TEST(error_objects_with_looping_metamethods_stay_metered) {
    static const char mt[] = "local e = setmetatable({}, {__tostring = function() while true do end end,"
                             " __index = function() while true do end end,"
                             " __concat = function() while true do end end})\n";
    char code[512];
    snprintf(code, sizeof code, "%slocal ok, err = pcall(error, e) return tostring(err)", mt);
    EXPECT(stopped(code, BUDGET_ERR, 2000));
    snprintf(code, sizeof code, "%sxpcall(error, function(x) return x.message end, e)", mt);
    EXPECT(stopped(code, BUDGET_ERR, 2000));
    snprintf(code, sizeof code, "%sxpcall(error, function(x) return 'at ' .. x end, e)", mt);
    EXPECT(stopped(code, BUDGET_ERR, 2000));
    /* Thrown out of the call, it is not turned into a string by running it. */
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    snprintf(code, sizeof code, "%serror(e)", mt);
    EXPECT_INT(run(L, code), LUA_ERRRUN);
    EXPECT_STR(lua_tostring(L, -1), "error object is not a string");
    sandbox_close(L);
}

TEST(close_handlers_stay_metered) {
    EXPECT(stopped("local c <close> = setmetatable({}, {__close = function() while true do end end})\n"
                   "while true do end", BUDGET_ERR, 2000));
    EXPECT(stopped("while true do pcall(function()\n"
                   "  local c <close> = setmetatable({}, {__close = function() for i = 1, 1e9 do end end})\n"
                   "  error('x')\n"
                   "end) end", BUDGET_ERR, 2000));
}

TEST(gc_finalizers_are_refused) {
    /* Finalizers run with hooks off, and again when the state closes. */
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    EXPECT_INT(run(L, "setmetatable({}, {__gc = function() while true do end end})"), LUA_ERRRUN);
    EXPECT_CONTAINS(lua_tostring(L, -1), "__gc metamethods are not allowed in the sandbox");
    EXPECT_INT(run(L, "setmetatable({}, {__gc = false})"), LUA_ERRRUN);
    /* __gc added after setmetatable never makes Lua finalize the object. */
    EXPECT(returns_string(L, "local mt = {} keep = setmetatable({}, mt)"
                             " mt.__gc = function() while true do end end keep = nil return 'ok'", "ok"));
    EXPECT(returns_string(L, "local t = {} for i = 1, 1e4 do t[i] = {} end return 'ok'", "ok"));
    sandbox_close(L);                           /* ends: no finalizer loops */
}

TEST(shared_host_metatables_are_hidden) {
    /* A metatable sluiced shares (luaL_newmetatable, like the JSON array
     * mark) must not reach scripts: __gc added to it would reach every value
     * marked later. The string metatable stays visible. */
    lua_State *L = new_state(16 * MIB, 100000);
    ASSERT(L != NULL);
    luaL_newmetatable(L, "test.shared");        /* mt */
    lua_pop(L, 1);
    lua_newtable(L);                            /* t */
    luaL_setmetatable(L, "test.shared");
    lua_setglobal(L, "marked");
    EXPECT(returns_string(L, "return tostring(getmetatable(marked))", "nil"));
    EXPECT(returns_string(L, "return tostring(getmetatable('').__index == string)", "true"));
    EXPECT(returns_string(L, "local mt = {} return tostring(getmetatable(setmetatable({}, mt)) == mt)",
                          "true"));
    EXPECT(returns_string(L, "return getmetatable(setmetatable({}, {__metatable = 'locked'}))",
                          "locked"));
    sandbox_close(L);
}

TEST(pattern_matching_is_metered) {
    /* The case: minutes of backtracking in one C call. */
    EXPECT(stopped("return ('a'):rep(300):find('.-.-.-.-b')", PATTERN_ERR, 2000));
    EXPECT(stopped("return ('a'):rep(300):match('.-.-.-.-b')", PATTERN_ERR, 2000));
    EXPECT(stopped("return ('a'):rep(40):match(('a?'):rep(40) .. ('a'):rep(40))", PATTERN_ERR, 2000));
    EXPECT(stopped("for w in ('a'):rep(1e5):gmatch('.-b') do end", PATTERN_ERR, 2000));
    EXPECT(stopped("return ('a'):rep(1e5):gsub('.-b', 'x')", PATTERN_ERR, 2000));
    EXPECT(stopped("return ('('):rep(1e4):gsub('%b()', '')", PATTERN_ERR, 2000));
    EXPECT(stopped("return ('a'):rep(2e4):find('[' .. ('b'):rep(1e4) .. 'a]*c')", PATTERN_ERR, 2000));
    /* Plain search is l1 * l2 in the worst case. */
    EXPECT(stopped("return ('a'):rep(1e6):find(('a'):rep(5e5) .. 'b', 1, true)", PATTERN_ERR, 2000));
    EXPECT(stopped("return ('a'):rep(1e6):find(('a'):rep(5e5) .. 'b')", PATTERN_ERR, 2000));
    /* A replacement string that copies a long capture at every match. */
    EXPECT(stopped("local s = ('a'):rep(1e4) return s:gsub('()', ('%0'):rep(1e4))", "instruction budget",
                   2000));
    /* Caught or not, it stays spent. */
    EXPECT(stopped("while true do pcall(string.find, ('a'):rep(300), '.-.-.-.-b') end", PATTERN_ERR, 2000));
}

TEST(loops_in_match_callbacks_are_metered) {
    EXPECT(stopped("return ('abc'):gsub('.', function() while true do end end)", BUDGET_ERR, 2000));
    EXPECT(stopped("return ('abc'):gsub('.', setmetatable({}, {__index = function() while true do end end}))",
                   BUDGET_ERR, 2000));
    EXPECT(stopped("while true do for c in ('abc'):gmatch('.') do end end", "instruction budget", 2000));
    EXPECT(stopped("while true do ('abc'):gsub('.', string.upper) end", "instruction budget", 2000));
}

TEST(table_functions_are_metered) {
    EXPECT(stopped("table.move({}, 1, 1e15, 2)", BUDGET_ERR, 2000));
    EXPECT(stopped("table.move({}, 1, math.maxinteger - 1, 1, {})", BUDGET_ERR, 2000));
    EXPECT(stopped("table.insert(setmetatable({}, {__len = function() return 1 << 62 end}), 1, 'x')",
                   BUDGET_ERR, 2000));
    EXPECT(stopped("table.remove(setmetatable({}, {__len = function() return 1 << 62 end}), 1)",
                   BUDGET_ERR, 2000));
    EXPECT(stopped("table.remove(setmetatable({}, {__len = function() return math.maxinteger end}),"
                   " math.mininteger)", BUDGET_ERR, 2000));
    /* A C order function runs no instruction; each comparison is charged. */
    EXPECT(stopped("table.sort(setmetatable({}, {__len = function() return 2^31 - 2 end}), rawequal)",
                   BUDGET_ERR, 5000));
    EXPECT(stopped("local t = {} for i = 1, 1e4 do t[i] = i end while true do table.unpack(t) end",
                   "instruction budget", 2000));
    /* Default comparisons of long strings are charged by length. */
    EXPECT(stopped("local a = ('x'):rep(4e6) local b = a:sub(1, -2) .. 'y' local t = {}\n"
                   "for i = 1, 1e4 do t[i] = i % 2 == 0 and a or b end table.sort(t)", BUDGET_ERR, 2000));
}

TEST(big_strings_are_charged_and_capped) {
    EXPECT(stopped("local s = ('x'):rep(1e6) while true do local t = s .. 'y' end", BUDGET_ERR, 2000));
    EXPECT(stopped("local s = ('x'):rep(1e6) while true do local t = s:upper() end", BUDGET_ERR, 2000));
    EXPECT(stopped("while true do local t = string.format('%s%s', ('x'):rep(1e6), 'y') end", BUDGET_ERR,
                   2000));
    EXPECT(stopped("local s = '--' .. ('x'):rep(4e6) while true do load(s) end", BUDGET_ERR, 2000));
    /* A refused allocation costs the collection Lua runs before refusing. */
    EXPECT(stopped("local keep = {} for i = 1, 2e5 do keep[i] = {} end\n"
                   "while true do pcall(string.rep, 'x', 1e9) end", BUDGET_ERR, 3000));
    lua_State *L = new_state(32 * MIB, BUDGET);
    ASSERT(L != NULL);
    EXPECT(returns_string(L, "local ok, e = pcall(string.rep, 'x', 1e9) return e", "not enough memory"));
    EXPECT_INT(run(L, "return ('x'):rep(1e9)"), LUA_ERRMEM);
    EXPECT_CONTAINS(lua_tostring(L, -1), "not enough memory");
    EXPECT(sandbox_mem_used(L) <= 32 * MIB);
    sandbox_close(L);
}

TEST(work_no_counter_sees_ends_at_the_cpu_ceiling) {
    /* Comparing two equal 4 MB strings is one instruction; the budget's CPU
     * ceiling (400 ms for this budget) ends the loop. */
    lua_State *L = new_state(32 * MIB, 2000000);
    ASSERT(L != NULL);
    double t0 = now_ms();
    EXPECT_INT(run(L, "local a, b = ('x'):rep(4e6), ('x'):rep(4e6) while a == b do end"), LUA_ERRRUN);
    double took = now_ms() - t0;
    EXPECT_CONTAINS(lua_tostring(L, -1), "instruction budget exceeded: 400 ms of CPU time");
    EXPECT(took >= 350 && took < 3000 * time_scale());
    EXPECT_INT(run(L, "return 1"), LUA_OK);
    sandbox_close(L);
}

/* ---- the metered functions answer as stock Lua ----------------------------------- */

/* Serializes every value pcall returns, errors included. */
static const char serialize[] =
    "local function S(...)\n"
    "  local t, out = table.pack(...), {}\n"
    "  for i = 1, t.n do\n"
    "    out[i] = type(t[i]) .. (type(t[i]) == 'table' and '' or ':' .. tostring(t[i]))\n"
    "  end\n"
    "  return table.concat(out, ',')\n"
    "end\n";

/* The answer of `expr` (any expression, errors caught) in L, malloc'd. */
static char *answer(lua_State *L, const char *expr, int sandboxed) {
    size_t len = sizeof serialize + strlen(expr) + 64;
    char *code = malloc(len), *out = NULL;
    if (code == NULL) return NULL;
    snprintf(code, len, "%sreturn S(pcall(function() return %s end))", serialize, expr);
    lua_settop(L, 0);
    int status = luaL_loadbufferx(L, code, strlen(code), "=test", "t");
    if (status == LUA_OK) status = sandboxed ? sandbox_pcall(L, 0, 1) : lua_pcall(L, 0, 1, 0);
    const char *s = lua_tostring(L, -1);
    size_t n = strlen(s ? s : "(nil)") + 16;
    out = malloc(n);
    if (out) snprintf(out, n, "%s%s", status == LUA_OK ? "" : "ERROR ", s ? s : "(nil)");
    free(code);
    return out;
}

static const char *const same_as_stock[] = {
    /* find, match: anchors, captures, positions, classes, %b, %f, back references */
    "('hello world'):find('o w')", "('hello world'):find('o', 6)", "('hello world'):find('l+')",
    "('hello world'):find('(l+)(o)')", "('hello'):find('()ll()')", "('hello'):find('l', -2)",
    "('hello'):find('xyz')", "('hello'):find('', 10)", "('hello'):find('', 6)", "('hello'):find('', -10)",
    "('a.b'):find('.', 1, true)", "('a+b'):find('+', 1, true)", "('a+b'):find('a+', 1, false)",
    "('hello'):match('^(h)(.-)(o)$')", "('  trim  '):match('^%s*(.-)%s*$')",
    "('THE (quick) fox'):find('%((%a+)%)')", "('f(a(b)c)d'):match('%b()')", "('f(a(b c)d'):match('%b()')",
    "('THE (quick) fox'):gsub('%f[%a]%a+', 'W')", "('hello.world'):find('%f[%w]%w+', 2)",
    "('aaa'):match('(a)%1')", "('abcabc'):find('(abc)%1')", "('2024-01-15'):match('(%d+)-(%d+)-(%d+)')",
    "('[test]'):find('[%[%]]')", "('a-b'):find('[a-]', 2)", "('x]'):find('[]]')", "('^x'):find('^^')",
    "('x$'):find('$')", "('x$y'):find('x$y')", "('abc'):find('b', 0)", "('abc'):match('.', -1)",
    "('abc'):find('b', 10)", "('a\\0b'):find('%z')", "('a\\0b'):find('\\0', 1, true)",
    "('a\\0b'):find('[\\0]')", "('h\\195\\169llo'):match(utf8.charpattern, 2)", "string.find(12345, 34)",
    "('x'):find(('(x?)'):rep(40))", "('abc'):match('^(a)(b)()')", "('  x'):match('^%s*()')",
    "('ABC abc 123 !?'):gsub('%u', '.')", "('ABC abc 123 !?'):gsub('[%l%d]', '.')",
    "('ABC abc 123 !?'):gsub('[^%w%s]', '.')", "('ABC abc 123 !?'):gsub('%W', '')",
    "('ABC abc 123 !?'):gsub('[%a-z]', '_')", "('x1y22z333'):gsub('%d+', '#')", "('x'):match('x?x?x')",
    "('aXb'):match('a(%u?)b')", "('ab'):match('a-b')", "('aaab'):match('a-ab')", "('aaa'):match('a+$')",
    /* gsub: string, %0, %n, %%, table, function, limits, empty matches */
    "('hello world from lua'):gsub('(%w+)', '<%1>')", "('hello world'):gsub('o', {o = '0'})",
    "('hello world'):gsub('%w+', function(w) return w:upper() end, 1)", "('abc'):gsub('', '-')",
    "('hello'):gsub('l', '%%')", "('abc'):gsub('(b)', '%0%1')", "('one two'):gsub('(%w+) (%w+)', '%2 %1')",
    "('abc'):gsub('.', 'x', 0)", "('abc'):gsub('.', 'x', -1)", "string.gsub('abc', 'b', 5)",
    "('abc'):gsub('.', {a = 1, b = false})", "('abc'):gsub('()', '%1')", "('a,b,,c'):gsub(',', ';', 2)",
    "('abc'):gsub('%w', function() end)", "('abc'):gsub('^.', 'X')", "('abc'):gsub('.$', 'X')",
    /* gmatch */
    "(function() local o = {} for a, b in ('key=val, k2=v2'):gmatch('(%w+)=(%w+)') do"
    " o[#o + 1] = a .. '/' .. b end return table.concat(o, ';') end)()",
    "(function() local o = {} for p in ('hello'):gmatch('()') do o[#o + 1] = p end"
    " return table.concat(o, ',') end)()",
    "(function() local o = {} for c in ('abcd'):gmatch('.', 3) do o[#o + 1] = c end"
    " return table.concat(o) end)()",
    "(function() local o = {} for w in ('one two  three'):gmatch('%a*') do o[#o + 1] = '[' .. w .. ']' end"
    " return table.concat(o) end)()",
    /* errors */
    "('x'):find('[a')", "('x'):find('%')", "('x'):find('(')", "('x'):find(')')", "('x'):match('%b')",
    "('x'):match('%f')", "('x'):match('%fa')", "('abc'):gsub('%w', '%2')", "('abc'):gsub('%w', '%z')",
    "('abc'):gsub('.', {a = true})", "('abc'):gsub('.', function() return {} end)", "('x'):gsub('x')",
    "string.find()", "string.match('x')", "string.gmatch()", "('x'):find('x', 'y')",
    "('x'):rep(3, ',')", "('x'):match('(()')", "('x'):match('%1')",
    /* table functions */
    "(function() local t = {1, 2, 3} table.insert(t, 4) table.insert(t, 1, 0)"
    " return table.concat(t, ',') end)()",
    "table.insert({1, 2}, 10, 1)", "table.insert({1, 2}, 1, 2, 3)", "table.insert({1, 2})",
    "table.insert(nil, 1)", "table.insert({}, 'x', 1)",
    "(function() local t = {1, 2, 3, 4} return table.remove(t), table.remove(t, 1), table.concat(t, ',') end)()",
    "(function() local t = setmetatable({}, {__len = function() return math.maxinteger end})"
    " table.insert(t, 2, 'x') return rawget(t, 2) end)()",
    "table.remove({})", "table.remove({1}, 3)", "table.remove({1, 2}, 3)", "table.remove({}, 0)",
    "table.concat(table.move({1, 2, 3}, 1, 3, 2), ',')", "table.concat(table.move({1, 2, 3}, 1, 3, 1, {}), ',')",
    "table.concat(table.move({1, 2, 3}, 2, 3, 1), ',')", "table.move({}, 1, math.maxinteger, 2)",
    "table.move({}, -1, math.maxinteger)", "table.move({}, 1, 0, 5)", "table.move(1, 1, 2, 3)",
    "table.unpack({1, 2, 3})", "table.unpack({1, 2, 3}, 2)", "table.unpack({1, 2, 3}, 2, 5)",
    "table.unpack({}, 1, 1e8)", "table.unpack({1, 2}, 3, 2)", "table.unpack({}, math.mininteger, math.maxinteger)",
    "(function() local t = {3, 1, 2, 5, 4} table.sort(t) return table.concat(t, ',') end)()",
    "(function() local t = {3, 1, 2, 5, 4} table.sort(t, function(a, b) return a > b end)"
    " return table.concat(t, ',') end)()",
    "(function() local t = {'b', 'a', 'c', 'ab'} table.sort(t) return table.concat(t, ',') end)()",
    "(function() local t = {} for i = 1, 300 do t[i] = (i * 7919) % 301 end table.sort(t)"
    " for i = 2, 300 do assert(t[i - 1] <= t[i]) end return t[1], t[300] end)()",
    "table.sort({1, 2, 3, 4, 5}, function(a, b) return true end)", "table.sort({1, 'x'})",
    "table.sort({1, 2}, 3)", "table.sort(1)",
    "(function() local mt = {__lt = function(a, b) return a.v < b.v end} local t = {}"
    " for i = 1, 5 do t[i] = setmetatable({v = 6 - i}, mt) end table.sort(t) return t[1].v, t[5].v end)()",
    /* base replacements */
    "setmetatable({}, {__index = function(t, k) return k end}).x",
    "getmetatable(setmetatable({}, {__metatable = 'locked'}))",
    "setmetatable(setmetatable({}, {__metatable = 1}), {})", "setmetatable(1, {})", "setmetatable({}, 1)",
    "setmetatable({})", "getmetatable()", "getmetatable(1)",
    "xpcall(error, function(m) return 'h:' .. m end, 'x')", "xpcall(function(a, b) return a + b end, tostring, 1, 2)",
    "xpcall(error, function(e) error('again') end, 'x')", "xpcall(error, function() end)", "xpcall(error)",
    "xpcall(function() local t = nil return t.x end, function(m) return m end)",
    "xpcall(function() return ('x'):rep(1e10) end, function(m) return 'h:' .. m end)",
    "pcall(error)", "pcall()", "pcall(error, {})", "select('#', pcall(function() return 1, nil, 3 end))",
    "load('x = 1; return x', '=chunk', 't', {})()",
};

TEST(string_and_table_functions_answer_as_stock_lua) {
    lua_State *L = new_state(32 * MIB, BUDGET);
    lua_State *stock = luaL_newstate();
    ASSERT(L != NULL && stock != NULL);
    luaL_openlibs(stock);
    for (size_t i = 0; i < sizeof same_as_stock / sizeof same_as_stock[0]; i++) {
        char *got = answer(L, same_as_stock[i], 1), *want = answer(stock, same_as_stock[i], 0);
        EXPECT(got != NULL && want != NULL);
        if (got && want && strcmp(got, want) != 0)
            UNIT_FAIL("%s\n#     sandbox: %s\n#     stock:   %s", same_as_stock[i], got, want);
        free(got);
        free(want);
    }
    lua_close(stock);
    sandbox_close(L);
}


int main(void) {
    RUN(unsafe_globals_are_absent);
    RUN(safe_libraries_and_os_clock_are_present);
    RUN(load_refuses_binary_chunks);
    RUN(runaway_loop_ends_with_budget_error);
    RUN(pcall_cannot_swallow_the_budget_error);
    RUN(pcall_and_xpcall_still_catch_ordinary_errors);
    RUN(budget_is_fresh_for_every_call);
    RUN(memory_cap_fails_the_chunk_and_keeps_the_state_usable);
    RUN(non_string_errors_become_a_message);
    RUN(phase_and_host_are_kept);
    RUN(too_small_memory_cap_fails_cleanly);
    RUN(dofile_runs_text_files_and_names_errors);
    RUN(xpcall_handler_cannot_escape_the_budget);
    RUN(nested_pcall_and_xpcall_cannot_swallow_the_budget);
    RUN(error_objects_with_looping_metamethods_stay_metered);
    RUN(close_handlers_stay_metered);
    RUN(gc_finalizers_are_refused);
    RUN(shared_host_metatables_are_hidden);
    RUN(pattern_matching_is_metered);
    RUN(loops_in_match_callbacks_are_metered);
    RUN(table_functions_are_metered);
    RUN(big_strings_are_charged_and_capped);
    RUN(work_no_counter_sees_ends_at_the_cpu_ceiling);
    RUN(string_and_table_functions_answer_as_stock_lua);
    return UNIT_DONE();
}
