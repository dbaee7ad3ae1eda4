/* test_sandbox.c — library whitelist, text-only load, instruction budget,
 * memory cap, phases and sandbox_dofile. */
#include "unit.h"
#include "sandbox.h"

#include <lauxlib.h>
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
                                         "collectgarbage", "coroutine", NULL};
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
    EXPECT(returns_string(L, "local ok, a = xpcall(function(x) return x end, print, 'v')"
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
    return UNIT_DONE();
}
