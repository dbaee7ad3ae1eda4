/* test_autoscale_lib.c — the rule helpers of policy states (sluice.localtime,
 * sluice.cron, sluice.schedule, sluice.backlog_target) in a sandboxed state,
 * called as rules with a clock the test sets (ctx.now) in fixed zones (TZ),
 * and a bad cron caught by `sluiced policy check` with file:line. */
#include "unit.h"
#include "autoscale_lib.h"
#include "policy.h"
#include "sandbox.h"

#include <dirent.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <time.h>

/* sluiced's defaults (engine/config.c: --lua-mem, --lua-budget). */
#define DEFAULT_MEM (32L << 20)
#define DEFAULT_BUDGET 5000000L

static const char *const weekdays =
    "sluice.schedule{ { cron = \"0 9 * * 1-5\", desired = 16 },"
    "                 { cron = \"0 19 * * 1-5\", desired = 4 } }";

static void zone(const char *tz) {
    setenv("TZ", tz, 1);
    tzset();
}

/* Milliseconds of a UTC date and time. */
static long long utc_ms(int y, int mo, int d, int h, int mi) {
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (long long)timegm(&tm) * 1000;
}

/* A sandboxed state with the library, as policy states have it; NULL when
 * loading fails (said unless quiet). */
static lua_State *lib_state_quiet(long budget, int quiet) {
    struct sandbox_limits lim = {DEFAULT_MEM, budget};
    lua_State *L = sandbox_new(&lim, NULL);
    if (L == NULL) return NULL;
    lua_pushcfunction(L, autoscale_lib_open);
    if (sandbox_pcall(L, 0, 0) != LUA_OK) {
        if (!quiet) printf("#   autoscale_lib_open: %s\n", lua_tostring(L, -1));
        sandbox_close(L);
        return NULL;
    }
    return L;
}

static lua_State *lib_state(long budget) { return lib_state_quiet(budget, 0); }

/* The answer of one rule call, or of one chunk. */
struct answer {
    int ok;                 /* the call returned */
    int has;                /* first result is an integer */
    long long value;
    char text[400];         /* second result (reason), or the error */
};

/* Run Lua source `src` (a chunk returning up to two values) under the budget. */
static struct answer run(lua_State *L, const char *src) {
    struct answer a = {0};
    if (luaL_loadbufferx(L, src, strlen(src), "=test", "t") != LUA_OK) {
        snprintf(a.text, sizeof a.text, "%s", lua_tostring(L, -1));
        lua_settop(L, 0);
        return a;
    }
    if (sandbox_pcall(L, 0, 2) != LUA_OK) {
        snprintf(a.text, sizeof a.text, "%s", lua_tostring(L, -1));
        lua_settop(L, 0);
        return a;
    }
    a.ok = 1;
    a.has = lua_isinteger(L, 1);
    a.value = a.has ? (long long)lua_tointeger(L, 1) : 0;
    if (lua_type(L, 2) == LUA_TSTRING) snprintf(a.text, sizeof a.text, "%s", lua_tostring(L, 2));
    lua_settop(L, 0);
    return a;
}

/* Call rule `rule_src` with q at now. */
static struct answer call_rule(lua_State *L, const char *rule_src, const char *q, long long now) {
    char src[2048];
    snprintf(src, sizeof src, "local rule = %s\nreturn rule(%s, { now = %lld, every_s = 15 })",
             rule_src, q, now);
    return run(L, src);
}

/* sluice.cron(expr):last(now) in ms, or -1 when it did not fire. */
static long long last_firing(lua_State *L, const char *expr, long long now) {
    char src[400];
    snprintf(src, sizeof src, "return sluice.cron(%s):last(%lld)", expr, now);
    struct answer a = run(L, src);
    if (!a.ok) printf("#   %s: %s\n", expr, a.text);
    return a.ok && a.has ? a.value : -1;
}

static int cron_matches(lua_State *L, const char *expr, long long ms) {
    char src[400];
    snprintf(src, sizeof src, "return sluice.cron(%s):matches(%lld) and 1 or 0", expr, ms);
    struct answer a = run(L, src);
    return a.ok && a.value == 1;
}

TEST(localtime_gives_the_fields_of_the_servers_zone) {
    lua_State *L;
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    char src[300];
    long long t = utc_ms(2026, 11, 30, 8, 59) + 30500;  /* Mon 08:59:30.5 UTC */
    snprintf(src, sizeof src,
             "local t = sluice.localtime(%lld)\n"
             "return t.year * 100000000 + t.month * 1000000 + t.day * 10000 + t.hour * 100 + t.min,"
             " string.format('%%d %%d %%d %%d %%s', t.sec, t.wday, t.yday, t.utcoff, t.isdst)", t);
    struct answer a = run(L, src);
    EXPECT_INT(a.value, 202611300859LL);
    EXPECT_STR(a.text, "30 1 334 0 false");
    sandbox_close(L);

    zone("Europe/Berlin");                      /* read again at open: a reload sees TZ */
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    a = run(L, src);
    EXPECT_INT(a.value, 202611300959LL);
    EXPECT_STR(a.text, "30 1 334 3600 false");
    snprintf(src, sizeof src, "local t = sluice.localtime(%lld)\nreturn t.hour, t.utcoff .. ' ' .. tostring(t.isdst)",
             utc_ms(2026, 7, 1, 12, 0));
    a = run(L, src);
    EXPECT_INT(a.value, 14);
    EXPECT_STR(a.text, "7200 true");
    a = run(L, "return sluice.localtime('noon')");
    EXPECT(!a.ok);
    EXPECT_CONTAINS(a.text, "number (ms) expected");
    a = run(L, "return sluice.localtime(1e300)");
    EXPECT(!a.ok);
    EXPECT_CONTAINS(a.text, "ms out of range");
    sandbox_close(L);
}

TEST(schedule_applies_exactly_at_its_minute) {
    lua_State *L;
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    long long nine = utc_ms(2026, 11, 30, 9, 0);        /* Monday */
    struct answer a = call_rule(L, weekdays, "{}", nine - 1);
    EXPECT(a.ok && a.has);
    EXPECT_INT(a.value, 4);                             /* Friday 19:00 still holds */
    EXPECT_STR(a.text, "schedule \"0 19 * * 1-5\" (since 19:00 Fri)");
    a = call_rule(L, weekdays, "{}", nine);
    EXPECT_INT(a.value, 16);
    EXPECT_STR(a.text, "schedule \"0 9 * * 1-5\" (since 09:00 Mon)");
    a = call_rule(L, weekdays, "{}", utc_ms(2026, 11, 30, 18, 59) + 59999);
    EXPECT_INT(a.value, 16);
    a = call_rule(L, weekdays, "{}", utc_ms(2026, 11, 30, 19, 0));
    EXPECT_INT(a.value, 4);
    sandbox_close(L);
}

TEST(schedule_tells_weekends_from_weekdays) {
    lua_State *L;
    const char *week =
        "sluice.schedule{ { cron = \"0 9 * * mon-fri\", desired = 16 },"
        "                 { cron = \"0 19 * * 1-5\", desired = 4 },"
        "                 { cron = \"0 0 * * SAT,sun\", desired = 1 } }";
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    EXPECT_INT(call_rule(L, week, "{}", utc_ms(2026, 11, 27, 20, 0)).value, 4);  /* Fri evening */
    EXPECT_INT(call_rule(L, week, "{}", utc_ms(2026, 11, 28, 12, 0)).value, 1);  /* Sat */
    struct answer a = call_rule(L, week, "{}", utc_ms(2026, 11, 30, 8, 0));     /* Mon early */
    EXPECT_INT(a.value, 1);
    EXPECT_STR(a.text, "schedule \"0 0 * * SAT,sun\" (since 00:00 Sun)");
    EXPECT_INT(call_rule(L, week, "{}", utc_ms(2026, 11, 30, 9, 0)).value, 16);
    /* "0-7" and "7" name Sunday too. */
    EXPECT(cron_matches(L, "'0 0 * * 7'", utc_ms(2026, 11, 29, 0, 0)));
    EXPECT(!cron_matches(L, "'0 0 * * 7'", utc_ms(2026, 11, 28, 0, 0)));
    EXPECT(cron_matches(L, "'0 0 * * 5-7'", utc_ms(2026, 11, 29, 0, 0)));
    sandbox_close(L);
}

TEST(cron_steps_ranges_and_lists) {
    lua_State *L;
    const char *e = "'*/15 9-17/2 * * *'";
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    EXPECT(cron_matches(L, e, utc_ms(2026, 11, 30, 9, 45) + 59999));
    EXPECT(!cron_matches(L, e, utc_ms(2026, 11, 30, 9, 44)));
    EXPECT(!cron_matches(L, e, utc_ms(2026, 11, 30, 10, 0)));
    EXPECT(cron_matches(L, e, utc_ms(2026, 11, 30, 17, 30)));
    EXPECT(!cron_matches(L, e, utc_ms(2026, 11, 30, 18, 0)));
    EXPECT_INT(last_firing(L, e, utc_ms(2026, 11, 30, 10, 30)), utc_ms(2026, 11, 30, 9, 45));
    EXPECT_INT(last_firing(L, e, utc_ms(2026, 11, 30, 8, 59)), utc_ms(2026, 11, 29, 17, 45));
    EXPECT_INT(last_firing(L, "'5,20-22,50 * * * *'", utc_ms(2026, 11, 30, 10, 49)),
               utc_ms(2026, 11, 30, 10, 22));
    EXPECT_INT(last_firing(L, "'0 0 * jan-mar *'", utc_ms(2026, 11, 30, 10, 0)), -1);
    EXPECT_INT(last_firing(L, "'@daily'", utc_ms(2026, 11, 30, 10, 0)), utc_ms(2026, 11, 30, 0, 0));
    /* A lookback of its own, up to 31 days. */
    char src[200];
    snprintf(src, sizeof src, "return sluice.cron('0 6 1 * *'):last(%lld, 31 * 86400000)", utc_ms(2026, 11, 30, 0, 0));
    EXPECT_INT(run(L, src).value, utc_ms(2026, 11, 1, 6, 0));
    struct answer a = run(L, "local c = sluice.cron('0 6 1 * *') local t = c:last(0, 32 * 86400000) return t");
    EXPECT_CONTAINS(a.text, "test:1: sluice.cron: lookback_ms must be in 0..2678400000 (31 days)");
    a = run(L, "local c = sluice.cron('0 6 1 * *') local t = c:matches('now') return t");
    EXPECT_CONTAINS(a.text, "test:1: sluice.cron: ms must be a number of ms since the epoch, got string");
    sandbox_close(L);
}

TEST(cron_day_of_month_or_day_of_week_as_vixie_cron) {
    lua_State *L;
    const char *either = "'0 12 13 * 5'";           /* the 13th, or any Friday */
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    EXPECT(cron_matches(L, either, utc_ms(2026, 11, 13, 12, 0)));    /* Fri 13th */
    EXPECT(cron_matches(L, either, utc_ms(2026, 11, 20, 12, 0)));    /* a Friday */
    EXPECT(cron_matches(L, either, utc_ms(2026, 10, 13, 12, 0)));    /* a Tuesday 13th */
    EXPECT(!cron_matches(L, either, utc_ms(2026, 11, 19, 12, 0)));   /* neither */
    EXPECT_INT(last_firing(L, either, utc_ms(2026, 11, 30, 0, 0)), utc_ms(2026, 11, 27, 12, 0));
    /* A field starting with * counts as unrestricted: both must match. */
    const char *both = "'0 12 */2 * 5'";            /* odd days that are Fridays */
    EXPECT(cron_matches(L, both, utc_ms(2026, 11, 13, 12, 0)));
    EXPECT(!cron_matches(L, both, utc_ms(2026, 11, 20, 12, 0)));
    EXPECT(!cron_matches(L, both, utc_ms(2026, 11, 15, 12, 0)));
    sandbox_close(L);
}

TEST(cron_crosses_month_year_and_leap_day_boundaries) {
    lua_State *L;
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    EXPECT_INT(last_firing(L, "'0 6 1 * *'", utc_ms(2026, 12, 1, 5, 59)), -1);   /* Nov 1: too old */
    EXPECT_INT(last_firing(L, "'0 6 1 * *'", utc_ms(2026, 12, 1, 6, 0)), utc_ms(2026, 12, 1, 6, 0));
    EXPECT_INT(last_firing(L, "'0 22 30 * *'", utc_ms(2026, 12, 3, 10, 0)), utc_ms(2026, 11, 30, 22, 0));
    EXPECT_INT(last_firing(L, "'0 22 31 * *'", utc_ms(2026, 12, 3, 10, 0)), -1);  /* Nov has no 31st */
    EXPECT_INT(last_firing(L, "'0 0 1 1 *'", utc_ms(2027, 1, 3, 0, 0)), utc_ms(2027, 1, 1, 0, 0));
    EXPECT_INT(last_firing(L, "'0 0 29 2 *'", utc_ms(2028, 3, 5, 0, 0)), utc_ms(2028, 2, 29, 0, 0));
    EXPECT_INT(last_firing(L, "'0 0 29 2 *'", utc_ms(2027, 3, 5, 0, 0)), -1);
    /* Six days or more ago, the reason names the date. */
    struct answer a = call_rule(L, "sluice.schedule{ { cron = '0 6 1 * *', desired = 3 } }", "{}",
                                utc_ms(2026, 12, 8, 12, 0));
    EXPECT_INT(a.value, 3);
    EXPECT_STR(a.text, "schedule \"0 6 1 * *\" (since 06:00 Tue 1 Dec)");
    sandbox_close(L);
}

TEST(cron_in_a_dst_change_fires_once_and_when_the_clock_jumps) {
    lua_State *L;
    zone("Europe/Berlin");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    /* 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 never
     * shows on the clock, so it fires at the jump. */
    long long jump = utc_ms(2026, 3, 29, 1, 0);
    EXPECT_INT(last_firing(L, "'30 2 * * *'", jump - 1), utc_ms(2026, 3, 28, 1, 30));
    EXPECT_INT(last_firing(L, "'30 2 * * *'", jump), jump);
    EXPECT_INT(last_firing(L, "'30 2 * * *'", jump + 3600000), jump);
    /* Wall-clock times keep their local meaning across the change. */
    EXPECT_INT(last_firing(L, "'0 9 * * *'", utc_ms(2026, 3, 30, 6, 59)), utc_ms(2026, 3, 29, 7, 0));
    EXPECT_INT(last_firing(L, "'0 9 * * *'", utc_ms(2026, 3, 30, 7, 0)), utc_ms(2026, 3, 30, 7, 0));
    EXPECT_INT(last_firing(L, "'0 9 * * *'", utc_ms(2026, 3, 27, 8, 0)), utc_ms(2026, 3, 27, 8, 0));
    /* 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 shows
     * twice and fires once, at its first pass (00:30 UTC). */
    long long first = utc_ms(2026, 10, 25, 0, 30);
    EXPECT_INT(last_firing(L, "'30 2 * * *'", first), first);
    EXPECT_INT(last_firing(L, "'30 2 * * *'", utc_ms(2026, 10, 25, 1, 10)), first);  /* 02:10 CET */
    EXPECT_INT(last_firing(L, "'30 2 * * *'", utc_ms(2026, 10, 25, 1, 45)), first);  /* 02:45 CET */
    EXPECT_INT(last_firing(L, "'45 2 * * *'", utc_ms(2026, 10, 25, 1, 10)), utc_ms(2026, 10, 25, 0, 45));
    EXPECT_INT(last_firing(L, "'0 3 * * *'", utc_ms(2026, 10, 25, 1, 59)), utc_ms(2026, 10, 24, 1, 0));
    EXPECT_INT(last_firing(L, "'0 3 * * *'", utc_ms(2026, 10, 25, 2, 0)), utc_ms(2026, 10, 25, 2, 0));
    struct answer a = call_rule(L, weekdays, "{}", utc_ms(2026, 3, 30, 7, 0));   /* Mon 09:00 CEST */
    EXPECT_INT(a.value, 16);
    EXPECT_STR(a.text, "schedule \"0 9 * * 1-5\" (since 09:00 Mon)");
    sandbox_close(L);
}

TEST(schedule_default_and_nil_when_nothing_fired) {
    lua_State *L;
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    long long now = utc_ms(2026, 11, 30, 12, 0);
    struct answer a = call_rule(L, "sluice.schedule{ { cron = '0 0 29 2 *', desired = 3 }, default = 2 }",
                                "{}", now);
    EXPECT(a.ok && a.has);
    EXPECT_INT(a.value, 2);
    EXPECT_STR(a.text, "schedule default 2 (no entry fired in the last 8 days)");
    a = call_rule(L, "sluice.schedule{ { cron = '0 0 29 2 *', desired = 3 } }", "{}", now);
    EXPECT(a.ok && !a.has);
    EXPECT_STR(a.text, "schedule: no entry fired in the last 8 days");
    /* Eight days back is the edge of what counts. */
    const char *monthly = "sluice.schedule{ { cron = '0 12 22 * *', desired = 5 } }";
    EXPECT_INT(call_rule(L, monthly, "{}", utc_ms(2026, 11, 30, 12, 0)).value, 5);
    EXPECT(!call_rule(L, monthly, "{}", utc_ms(2026, 11, 30, 12, 0) + 1).has);
    /* Two entries at the same minute: the later one wins. */
    a = call_rule(L, "sluice.schedule{ { cron = '0 9 * * *', desired = 3 }, { cron = '0 9 * * 1', desired = 7 } }",
                  "{}", utc_ms(2026, 11, 30, 9, 0));
    EXPECT_INT(a.value, 7);
    a = call_rule(L, weekdays, "{}", 0);
    EXPECT(a.ok);
    a = run(L, "local r = sluice.schedule{ { cron = '0 9 * * *', desired = 3 } }\nreturn r({}, {})");
    EXPECT(!a.ok);
    EXPECT_CONTAINS(a.text, "ctx.now must be an integer");
    sandbox_close(L);
}

TEST(bad_cron_expressions_are_refused_naming_the_field) {
    static const char *const cases[][2] = {
        {"0 9 * * 1-8", "cron \"0 9 * * 1-8\": day-of-week: 8 is out of range 0-7"},
        {"60 * * * *", "cron \"60 * * * *\": minute: 60 is out of range 0-59"},
        {"0 24 * * *", "hour: 24 is out of range 0-23"},
        {"0 0 0 * *", "day-of-month: 0 is out of range 1-31"},
        {"0 0 * 13 *", "month: 13 is out of range 1-12"},
        {"0 0 * foo *", "month: 'foo' is not a number or a name"},
        {"0 x * * *", "hour: 'x' is not a number"},
        {"0 9 * *", "cron \"0 9 * *\": expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
        {"0 9 * * * *", "got 6"},
        {"*/0 * * * *", "minute: step '0' is not a positive number"},
        {"5-1 * * * *", "minute: range '5-1' runs backwards"},
        {"5/10 * * * *", "minute: '5/10': a step needs * or a range"},
        {"1,,2 * * * *", "minute: empty element in '1,,2'"},
        {"0 0 * * fri-mon", "day-of-week: range 'fri-mon' runs backwards"},
        {"@reboot", "expected 5 fields"},
    };
    lua_State *L;
    char src[300];
    zone("UTC");
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(src, sizeof src, "local c = sluice.cron('%s') return c", cases[i][0]);
        struct answer a = run(L, src);
        EXPECT(!a.ok);
        EXPECT_CONTAINS(a.text, cases[i][1]);
        EXPECT_CONTAINS(a.text, "test:1: ");    /* raised at the caller's line */
        snprintf(src, sizeof src, "local r = sluice.schedule{ { cron = '%s', desired = 1 } } return r", cases[i][0]);
        a = run(L, src);
        EXPECT(!a.ok);
        EXPECT_CONTAINS(a.text, "test:1: sluice.schedule: entry 1: cron");
        EXPECT_CONTAINS(a.text, cases[i][1]);
    }
    struct answer a = run(L, "return sluice.cron(42)");
    EXPECT_CONTAINS(a.text, "cron expression must be a string, got number");
    sandbox_close(L);
}

TEST(bad_schedule_and_backlog_specs_are_refused) {
    static const char *const cases[][2] = {
        {"sluice.schedule{}", "sluice.schedule: needs at least one"},
        {"sluice.schedule('0 9 * * *')", "sluice.schedule: expected a table"},
        {"sluice.schedule{ { cron = '0 9 * * *', desire = 3 } }", "entry 1: unknown field 'desire'"},
        {"sluice.schedule{ { cron = '0 9 * * *', desired = -1 } }", "entry 1: desired must be a non-negative integer"},
        {"sluice.schedule{ { cron = '0 9 * * *', desired = 1.5 } }", "entry 1: desired must be"},
        {"sluice.schedule{ { cron = '0 9 * * *', desired = 1 }, 'x' }", "entry 2: expected {cron = ..., desired = N}"},
        {"sluice.schedule{ { cron = '0 9 * * *', desired = 1 }, default = 'x' }", "default must be a non-negative integer"},
        {"sluice.schedule{ { cron = '0 9 * * *', desired = 1 }, fallback = 2 }", "unknown field 'fallback'"},
        {"sluice.backlog_target{}", "per_slot must be a number above 0"},
        {"sluice.backlog_target{ per_slot = 0 }", "per_slot must be a number above 0"},
        {"sluice.backlog_target{ per_slot = 0/0 }", "per_slot must be a number above 0"},
        {"sluice.backlog_target{ per_slot = 10, min = 5, max = 2 }", "min 5 is above max 2"},
        {"sluice.backlog_target{ per_slot = 10, max = -1 }", "max must be a non-negative integer"},
        {"sluice.backlog_target{ per_slot = 10, ceiling = 3 }", "unknown field 'ceiling'"},
    };
    lua_State *L;
    char src[300];
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(src, sizeof src, "local r = %s return r", cases[i][0]);
        struct answer a = run(L, src);
        EXPECT(!a.ok);
        EXPECT_CONTAINS(a.text, "test:1: ");
        EXPECT_CONTAINS(a.text, cases[i][1]);
    }
    sandbox_close(L);
}

TEST(backlog_target_divides_and_clamps) {
    lua_State *L;
    const char *per50 = "sluice.backlog_target{ per_slot = 50 }";
    ASSERT((L = lib_state(DEFAULT_BUDGET)) != NULL);
    struct answer a = call_rule(L, per50, "{ waiting = 1150, active = 50, min = 1, max = 32 }", 0);
    EXPECT(a.ok && a.has);
    EXPECT_INT(a.value, 24);
    EXPECT_STR(a.text, "1200 waiting+active, 50 per slot -> 24");
    a = call_rule(L, per50, "{ waiting = 1151, active = 50, min = 1, max = 32 }", 0);
    EXPECT_INT(a.value, 25);                                    /* rounds up */
    a = call_rule(L, per50, "{ waiting = 3000, active = 0, min = 1, max = 32 }", 0);
    EXPECT_INT(a.value, 32);
    EXPECT_STR(a.text, "3000 waiting+active, 50 per slot -> 60, clamped to max 32");
    a = call_rule(L, per50, "{ waiting = 0, active = 0, min = 2, max = 32 }", 0);
    EXPECT_INT(a.value, 2);
    EXPECT_STR(a.text, "0 waiting+active, 50 per slot -> 0, clamped to min 2");
    a = call_rule(L, per50, "{ waiting = 10, active = 0 }", 0);  /* no bounds: 0.. */
    EXPECT_INT(a.value, 1);
    /* The helper's own min and max win over the queue's bounds. */
    const char *own = "sluice.backlog_target{ per_slot = 10, min = 3, max = 5 }";
    EXPECT_INT(call_rule(L, own, "{ waiting = 0, active = 0, min = 1, max = 32 }", 0).value, 3);
    EXPECT_INT(call_rule(L, own, "{ waiting = 900, active = 0, min = 1, max = 32 }", 0).value, 5);
    a = call_rule(L, "sluice.backlog_target{ per_slot = 2.5 }", "{ waiting = 10, active = 1 }", 0);
    EXPECT_INT(a.value, 5);
    EXPECT_STR(a.text, "11 waiting+active, 2.5 per slot -> 5");
    sandbox_close(L);
}

/* The worst case: expressions that do not fire in the 8 days, so every
 * day of the lookback is searched, plus one that fires each minute (the most
 * instants to convert) and one a DST change makes search the repeated hour. */
static const char *const worst =
    "sluice.schedule{ { cron = '0 0 29 2 *', desired = 1 }, { cron = '59 23 31 12 *', desired = 2 },"
    "                 { cron = '0 0 31 4 *', desired = 3 }, default = 9 }";

static long long worst_now;

static int worst_case_fits(long budget, struct answer *out) {
    lua_State *L = lib_state_quiet(budget, 1);
    if (L == NULL) return 0;
    *out = call_rule(L, worst, "{}", worst_now);
    sandbox_close(L);
    return out->ok;
}

static int library_loads(long budget, struct answer *out) {
    lua_State *L = lib_state_quiet(budget, 1);
    (void)out;
    sandbox_close(L);
    return L != NULL;
}

/* The smallest budget with which fits() succeeds, to the hook's 250. */
static long smallest_budget(int (*fits)(long, struct answer *)) {
    struct answer a;
    long lo = 250, hi = DEFAULT_BUDGET;
    while (hi - lo > 250) {
        long mid = lo + (hi - lo) / 2;
        if (fits(mid, &a)) hi = mid; else lo = mid;
    }
    return hi;
}

TEST(lookback_stays_well_inside_the_budget) {
    struct answer a;
    zone("Europe/Berlin");
    worst_now = utc_ms(2026, 11, 30, 12, 0);
    ASSERT(worst_case_fits(DEFAULT_BUDGET, &a));
    EXPECT_INT(a.value, 9);
    EXPECT_CONTAINS(a.text, "schedule default 9");
    /* The figures docs/lua-api.md quotes. The rule call needs the larger
     * budget of the two (each sandbox_pcall starts a fresh one). */
    long load = smallest_budget(library_loads), call = smallest_budget(worst_case_fits);
    printf("# loading the library: %ld instructions; worst-case schedule (3 entries, 8 days each):"
           " %ld, %.2f%% of the default %ld\n", load, call, 100.0 * (double)call / DEFAULT_BUDGET,
           DEFAULT_BUDGET);
    EXPECT(load < call);
    EXPECT(call < DEFAULT_BUDGET / 100);
    /* Across a DST change the same holds. */
    worst_now = utc_ms(2026, 10, 25, 1, 30);
    EXPECT(worst_case_fits(DEFAULT_BUDGET / 100, &a));
    worst_now = utc_ms(2026, 3, 29, 1, 30);
    EXPECT(worst_case_fits(DEFAULT_BUDGET / 100, &a));
    lua_State *L = lib_state(DEFAULT_BUDGET / 100);
    ASSERT(L != NULL);
    a = call_rule(L, "sluice.schedule{ { cron = '* * * * *', desired = 1 } }", "{}", utc_ms(2026, 10, 25, 1, 10));
    EXPECT(a.ok);
    EXPECT_INT(a.value, 1);
    sandbox_close(L);
}

/* ---- sluiced policy check ---------------------------------------------------------------- */

static char dir[64];

static void put(const char *name, const char *text) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) return;
    fputs(text, f);
    fclose(f);
}

static void remove_dir(void) {
    char path[400];
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

TEST(policy_check_reports_a_bad_cron_with_file_and_line) {
    struct sandbox_limits lim = {DEFAULT_MEM, DEFAULT_BUDGET};
    struct policy_error e = {0};
    strcpy(dir, "/tmp/sluice-aslib-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    put("x.lua",
        "queue \"build\" { default = 2, min = 1, max = 16 }\n"
        "local weekdays = sluice.schedule{ { cron = \"0 9 * * 1-5\", desired = 8 } }\n"
        "local floor = sluice.backlog_target{ per_slot = 50 }\n"
        "local t = sluice.localtime(0)\n");
    EXPECT_INT(policy_check_dir(dir, &lim, &e), 0);
    if (e.message[0]) printf("#   %s:%d: %s\n", e.file, e.line, e.message);
    put("x.lua",
        "queue \"build\" { default = 2, min = 1, max = 16 }\n"
        "\n"
        "local weekdays = sluice.schedule{\n"
        "  { cron = \"0 9 * * 1-8\", desired = 8 },\n"
        "}\n");
    EXPECT_INT(policy_check_dir(dir, &lim, &e), -1);
    EXPECT_STR(e.file, "x.lua");
    EXPECT_INT(e.line, 3);
    EXPECT_STR(e.message, "sluice.schedule: entry 1: cron \"0 9 * * 1-8\": day-of-week: 8 is out of range 0-7");
    remove_dir();
}

int main(void) {
    RUN(localtime_gives_the_fields_of_the_servers_zone);
    RUN(schedule_applies_exactly_at_its_minute);
    RUN(schedule_tells_weekends_from_weekdays);
    RUN(cron_steps_ranges_and_lists);
    RUN(cron_day_of_month_or_day_of_week_as_vixie_cron);
    RUN(cron_crosses_month_year_and_leap_day_boundaries);
    RUN(cron_in_a_dst_change_fires_once_and_when_the_clock_jumps);
    RUN(schedule_default_and_nil_when_nothing_fired);
    RUN(bad_cron_expressions_are_refused_naming_the_field);
    RUN(bad_schedule_and_backlog_specs_are_refused);
    RUN(backlog_target_divides_and_clamps);
    RUN(lookback_stays_well_inside_the_budget);
    RUN(policy_check_reports_a_bad_cron_with_file_and_line);
    return UNIT_DONE();
}
