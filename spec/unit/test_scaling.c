/* test_scaling.c — the domain service over a real store and policy: targets,
 * the checks of a change in lua.md's order, audit of refusals, history, the
 * writes flag, changes that change nothing, and the per-token write rate. */
#include "unit.h"
#include "app.h"
#include "config.h"
#include "fleet.h"
#include "metrics.h"
#include "auth.h"
#include "flags.h"
#include "ratelimit.h"
#include "scaling.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static struct config cfg;
static struct app app;

static const char *const policy_text =
    "defaults { default = 4, min = 1, max = 32, max_step = 8, confirm_above = 24 }\n"
    "queue \"ingestion\" { max = 64, max_step = 16, confirm_above = 48 }\n"
    "queue \"build\" { max = 16, cooldown_s = 3600 }\n"
    "queue \"budget\" { changes_per_hour = 2 }\n"
    "function validate(change, ctx)\n"
    "  if change.to == 13 then return false, '13 is unlucky in ' .. ctx.environment end\n"
    "  return true\n"
    "end\n";

static void path_of(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

/* A store and a loaded policy in a fresh directory, for environment env. */
static int setup(const char *env) {
    struct sandbox_limits lim = {16 << 20, 200000};
    struct store_options opt = {1000, 2};
    char path[160], url[180], err[256];
    strcpy(dir, "/tmp/sluice-scaling-XXXXXX");
    if (mkdtemp(dir) == NULL) return 0;
    path_of(path, sizeof path, "queues.lua");
    FILE *f = fopen(path, "w");
    if (f == NULL) return 0;
    fputs(policy_text, f);
    fclose(f);
    memset(&cfg, 0, sizeof cfg);
    util_copy(cfg.env, sizeof cfg.env, env);
    path_of(path, sizeof path, "s.db");
    snprintf(url, sizeof url, "sqlite:%s", path);
    /* No fleet, bus or alerts: scaling works without Redis. */
    app = (struct app){.cfg = &cfg, .st = store_open(url, &opt, err, sizeof err),
                       .pol = policy_new(dir, &lim)};
    return app.st && app.pol && store_migrate(app.st, NULL) == STORE_OK &&
           policy_reload(app.pol, 1) == 1;
}

static void teardown(void) {
    static const char *const files[] = {"queues.lua", "s.db", "s.db-wal", "s.db-shm", NULL};
    char path[160];
    store_close(app.st);
    policy_free(app.pol);
    for (const char *const *n = files; *n; n++) {
        path_of(path, sizeof path, *n);
        unlink(path);
    }
    rmdir(dir);
}

static struct scaling_change change(const char *queue, int64_t to) {
    struct scaling_change c = {queue, to, "test", 0, 0, 0, 0, "alice",
                               AUTH_SCOPE_WRITE, "api", "rid-s", "tok-alice", 0, NULL, 0, NULL};
    return c;
}

/* scaling_set; on refusal the error code (else "ok") lands in code. */
static int64_t set(struct scaling_change c, char code[32], struct api_error *err) {
    struct scaling_outcome o;
    int rc = scaling_set(&app, &c, &o, err);
    util_copy(code, 32, rc == 0 ? "ok" : err->code);
    return rc == 0 ? o.after.t.version : -1;
}

/* How many audit entries scaling_history gives for queue, and the next page. */
static size_t audit_page(const char *queue, int64_t before, int limit, int64_t *next, struct api_error *err,
                      struct store_audit **rows_out) {
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t ignored;
    struct store_audit_filter f = {.before_id = before};
    if (scaling_history(&app, queue, &f, limit, &rows, &n, next ? next : &ignored, err) != 0)
        n = (size_t)-1;
    if (rows_out) *rows_out = rows;
    else free(rows);
    return n;
}

/* Code of the newest audit entry of queue. */
static const char *last_audit_code(const char *queue, char out[STORE_CODE_MAX]) {
    struct store_audit *rows = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (store_list_audit(app.st, NULL, queue, 0, 1, &rows, &n) == STORE_OK && n == 1)
        util_copy(out, STORE_CODE_MAX, rows[0].outcome[0] == 'r' ? rows[0].error_code : "applied");
    free(rows);
    return out;
}

TEST(unchanged_queue_reports_its_default_at_version_0) {
    struct api_error err = {0};
    ASSERT(setup("local"));
    struct scaling_target t;
    ASSERT(scaling_get(&app, "ingestion", &t, &err) == 0);
    EXPECT_INT(t.t.desired, 4);
    EXPECT_INT(t.t.version, 0);
    EXPECT_STR(t.t.updated_by, "");
    EXPECT_INT(t.b.max, 64);
    EXPECT(scaling_get(&app, "nope", &t, &err) == -1);
    EXPECT_INT(api_error_status(err.code), 404);
    EXPECT_STR(err.code, "unknown_queue");
    api_error_clear(&err);
    struct scaling_target *items = NULL;
    size_t n = 0;
    ASSERT(scaling_list(&app, &items, &n, &err) == 0);
    EXPECT_INT(n, 3);
    EXPECT_STR(items[2].t.queue, "budget");
    EXPECT_INT(items[2].t.desired, items[2].b.def);
    free(items);
    teardown();
}

TEST(applies_a_change_and_audits_it) {
    struct api_error err = {0};
    char audit[STORE_CODE_MAX];
    ASSERT(setup("local"));
    struct scaling_change c = change("ingestion", 12);
    struct scaling_outcome o;
    ASSERT(scaling_set(&app, &c, &o, &err) == 0);
    EXPECT_INT(o.after.t.version, 1);
    EXPECT_INT(o.previous, 4);
    EXPECT_STR(o.after.t.updated_by, "alice");
    EXPECT(o.changed);
    EXPECT(o.audit_id > 0);
    EXPECT_STR(last_audit_code("ingestion", audit), "applied");
    api_error_clear(&err);
    teardown();
}

TEST(a_change_to_the_current_value_answers_unchanged_and_audits_nothing) {
    struct api_error err = {0};
    char code[32];
    ASSERT(setup("local"));
    EXPECT_INT(set(change("ingestion", 12), code, &err), 1);
    for (int i = 0; i < 20; i++) {
        struct scaling_change c = change("ingestion", 12);
        struct scaling_outcome o;
        ASSERT(scaling_set(&app, &c, &o, &err) == 0);
        EXPECT(!o.changed);
        EXPECT_INT(o.audit_id, 0);
        EXPECT_INT(o.after.t.version, 1);
        EXPECT_INT(o.previous, 12);
    }
    EXPECT_INT(audit_page("ingestion", 0, 50, NULL, &err, NULL), 1);
    api_error_clear(&err);
    teardown();
}

TEST(a_token_over_its_write_rate_gets_429_unaudited_and_other_tokens_write_on) {
    struct api_error err = {0};
    struct store_limits lim = {.writes_per_min = 60, .write_burst = 3};
    char code[32];
    ASSERT(setup("local"));
    cfg.write_rate = 60;
    cfg.write_burst = 3;
    store_set_limits(app.st, &lim);
    for (int to = 5; to <= 7; to++) EXPECT_INT(set(change("ingestion", to), code, &err), to - 4);
    set(change("ingestion", 8), code, &err);
    EXPECT_STR(code, "rate_limited");
    EXPECT_INT(api_error_status(err.code), 429);
    EXPECT_STR(json_string_value(json_object_get(err.details, "limit")), "token");
    EXPECT_INT(json_integer_value(json_object_get(err.details, "writes_per_minute")), 60);
    EXPECT_INT(json_integer_value(json_object_get(err.details, "burst")), 3);
    EXPECT_INT(err.retry_after_s, 1);
    EXPECT_INT(json_integer_value(json_object_get(err.details, "retry_after_s")), err.retry_after_s);
    /* Refusals of every kind count: no-ops and invalid changes too, not audited. */
    set(change("ingestion", 100), code, &err);
    EXPECT_STR(code, "rate_limited");
    EXPECT_INT(audit_page("ingestion", 0, 50, NULL, &err, NULL), 3);
    struct scaling_change other = change("ingestion", 9);
    other.token_id = "tok-bob";
    EXPECT_INT(set(other, code, &err), 4);
    struct scaling_change own = change("ingestion", 10);
    own.token_id = NULL;                              /* sluiced itself: never limited */
    EXPECT_INT(set(own, code, &err), 5);
    api_error_clear(&err);
    teardown();
}

TEST(checks_run_in_the_documented_order) {
    struct api_error err = {0};
    char code[32], audit[STORE_CODE_MAX];
    ASSERT(setup("local"));
    struct scaling_change c = change("ingestion", 100);
    c.has_expected_version = 1;
    c.expected_version = 3;                           /* stale and out of bounds */
    set(c, code, &err);
    EXPECT_STR(code, "version_conflict");
    EXPECT_INT(api_error_status(err.code), 409);
    EXPECT_INT(json_integer_value(json_object_get(err.details, "current_version")), 0);
    EXPECT_STR(last_audit_code("ingestion", audit), "version_conflict");
    set(change("ingestion", 100), code, &err);        /* out of bounds and too big a step */
    EXPECT_STR(code, "out_of_bounds");
    EXPECT_INT(api_error_status(err.code), 422);
    set(change("ingestion", 30), code, &err);         /* step 26 > 16 */
    EXPECT_STR(code, "step_too_large");
    EXPECT_STR(last_audit_code("ingestion", audit), "step_too_large");
    set(change("ingestion", 13), code, &err);         /* validate() says no */
    EXPECT_STR(code, "policy_rejected");
    EXPECT_INT(api_error_status(err.code), 422);
    EXPECT_CONTAINS(err.message, "13 is unlucky in local");
    EXPECT_STR(last_audit_code("ingestion", audit), "policy_rejected");
    EXPECT_INT(set(change("ingestion", 20), code, &err), 1);
    EXPECT_INT(set(change("ingestion", 36), code, &err), 2);
    set(change("ingestion", 50), code, &err);         /* above confirm_above 48 */
    EXPECT_STR(code, "confirmation_required");
    EXPECT_INT(api_error_status(err.code), 428);
    struct scaling_change confirmed = change("ingestion", 50);
    confirmed.confirm = 1;
    EXPECT_INT(set(confirmed, code, &err), 3);
    api_error_clear(&err);
    teardown();
}

TEST(cooldown_and_hourly_budget_answer_429) {
    struct api_error err = {0};
    char code[32];
    ASSERT(setup("local"));
    EXPECT_INT(set(change("build", 5), code, &err), 1);
    set(change("build", 6), code, &err);
    EXPECT_STR(code, "rate_limited");
    EXPECT_INT(api_error_status(err.code), 429);
    EXPECT(err.retry_after_s > 3590 && err.retry_after_s <= 3600);
    EXPECT_INT(set(change("build", 5), code, &err), 1);  /* no move: no cooldown */
    EXPECT_INT(set(change("budget", 5), code, &err), 1);
    EXPECT_INT(set(change("budget", 6), code, &err), 2);
    set(change("budget", 7), code, &err);
    EXPECT_STR(code, "rate_limited");
    EXPECT_STR(json_string_value(json_object_get(err.details, "limit")), "changes_per_hour");
    api_error_clear(&err);
    teardown();
}

TEST(writes_flag_gates_changes_outside_local) {
    struct api_error err = {0};
    char code[32], audit[STORE_CODE_MAX];
    int enabled = -1, rc = -1;
    ASSERT(setup("production"));
    EXPECT_INT(flags_get(&app, FLAG_WRITES, &enabled), STORE_OK);
    EXPECT_INT(enabled, 0);
    set(change("ingestion", 5), code, &err);
    EXPECT_STR(code, "writes_disabled");
    EXPECT_INT(api_error_status(err.code), 403);
    EXPECT_STR(last_audit_code("ingestion", audit), "writes_disabled");
    EXPECT_INT(flags_set(&app, FLAG_WRITES, 1, "root", "api", "go", "rid-f"), STORE_OK);
    EXPECT_INT(set(change("ingestion", 5), code, &err), 1);
    json_t *list = flags_list(&app, &rc);
    json_t *item = json_array_get(json_object_get(list, "items"), 0);
    EXPECT(json_is_true(json_object_get(item, "enabled")));
    EXPECT(json_is_false(json_object_get(item, "default")));
    EXPECT_STR(json_string_value(json_object_get(list, "environment")), "production");
    json_decref(list);
    EXPECT(flags_known("writes") && !flags_known("reads"));
    api_error_clear(&err);
    teardown();
}

TEST(history_pages_newest_first) {
    struct api_error err = {0};
    char code[32];
    ASSERT(setup("local"));
    for (int to = 5; to <= 9; to++) set(change("ingestion", to), code, &err);
    set(change("build", 5), code, &err);
    struct store_audit *rows = NULL;
    int64_t next = 0, last = -1;
    EXPECT_INT(audit_page("ingestion", 0, 2, &next, &err, &rows), 2);
    ASSERT(rows != NULL);
    EXPECT_INT(rows[0].to, 9);
    EXPECT_INT(next, rows[1].id);
    free(rows);
    EXPECT_INT(audit_page("ingestion", next, 10, &last, &err, NULL), 3);
    EXPECT_INT(last, 0);
    EXPECT_INT(audit_page(NULL, 0, 50, NULL, &err, NULL), 6);
    EXPECT_INT(audit_page("nope", 0, 10, NULL, &err, NULL), (size_t)-1);
    EXPECT_STR(err.code, "unknown_queue");
    api_error_clear(&err);
    teardown();
}

TEST(writes_flag_is_checked_before_known_queue) {
    struct api_error err = {0};
    char code[32];
    ASSERT(setup("production"));                     /* read-only: the flag decides */
    set(change("nope", 5), code, &err);
    EXPECT_STR(code, "writes_disabled");
    EXPECT_INT(api_error_status(err.code), 403);
    api_error_clear(&err);
    teardown();
    ASSERT(setup("local"));
    set(change("nope", 5), code, &err);
    EXPECT_STR(code, "unknown_queue");
    EXPECT_INT(api_error_status(err.code), 404);
    api_error_clear(&err);
    teardown();
}

TEST(token_buckets_refill_at_the_rate_and_stay_bounded) {
    int64_t wait = 0, t = 1000000;
    ratelimit *rl = ratelimit_new(60, 3, 2);          /* one a second, three at once, two keys */
    ASSERT(rl != NULL);
    for (int i = 0; i < 3; i++) EXPECT_INT(ratelimit_take(rl, "a", t, &wait), 1);
    EXPECT_INT(ratelimit_take(rl, "a", t, &wait), 0);
    EXPECT_INT(wait, 1000);
    EXPECT_INT(ratelimit_take(rl, "a", t + 400, &wait), 0);
    EXPECT_INT(wait, 600);
    EXPECT_INT(ratelimit_take(rl, "a", t + 1000, &wait), 1);   /* one came back */
    EXPECT_INT(ratelimit_take(rl, "a", t + 1000, &wait), 0);
    EXPECT_INT(ratelimit_take(rl, "b", t + 1000, &wait), 1);   /* another key: its own bucket */
    /* A third key takes the slot of the one used least recently ("b"), and a
     * key kept busy with refusals is never the one forgotten. */
    EXPECT_INT(ratelimit_take(rl, "a", t + 1001, &wait), 0);
    EXPECT_INT(ratelimit_take(rl, "c", t + 1002, &wait), 1);
    EXPECT_INT(ratelimit_take(rl, "a", t + 1003, &wait), 0);
    /* Idle long enough, a bucket is full again: three at once. */
    for (int i = 0; i < 3; i++) EXPECT_INT(ratelimit_take(rl, "a", t + 10000, &wait), 1);
    EXPECT_INT(ratelimit_take(rl, "a", t + 10000, &wait), 0);
    ratelimit_free(rl);
    ratelimit_free(NULL);
    EXPECT(ratelimit_new(0, 1, 1) == NULL);
}

/* The window of queue now (scaling_get), or a zeroed one. */
static struct scaling_target window_of(const char *queue) {
    struct api_error err = {0};
    struct scaling_target t;
    if (scaling_get(&app, queue, &t, &err) != 0) memset(&t, 0, sizeof t);
    return t;
}

TEST(change_window_agrees_with_the_refusals_at_its_edges) {
    struct api_error err = {0};
    char code[32];
    ASSERT(setup("local"));
    /* Reachable: the bounds clipped by max_step around 4 (1..64, step 16). */
    struct scaling_target t = window_of("ingestion");
    ASSERT(t.has_window);
    EXPECT_INT(t.window.reachable_min, 1);
    EXPECT_INT(t.window.reachable_max, 20);
    EXPECT_INT(t.window.budget_left, -1);
    set(change("ingestion", t.window.reachable_max + 1), code, &err);
    EXPECT_STR(code, "step_too_large");
    set(change("ingestion", t.window.reachable_min - 1), code, &err);
    EXPECT_STR(code, "out_of_bounds");
    EXPECT_INT(set(change("ingestion", t.window.reachable_max), code, &err), 1);

    /* Cooldown: none before the first change, then the whole hour; a
     * moving change inside it is refused with the same wait. */
    t = window_of("build");
    EXPECT_INT(t.window.cooldown_wait_ms, 0);
    EXPECT_INT(set(change("build", 5), code, &err), 1);
    t = window_of("build");
    EXPECT(t.window.cooldown_wait_ms > 3590000 && t.window.cooldown_wait_ms <= 3600000);
    EXPECT_INT(t.window.reachable_max, 13);
    api_error_clear(&err);
    set(change("build", 6), code, &err);
    EXPECT_STR(code, "rate_limited");
    EXPECT(llabs(err.retry_after_s - (t.window.cooldown_wait_ms + 999) / 1000) <= 1);
    api_error_clear(&err);
    EXPECT_INT(set(change("build", 5), code, &err), 1);          /* not moving: allowed */

    /* Budget: two a hour; the window counts them down, and at 0 the
     * change is refused until the oldest leaves the hour. */
    EXPECT_INT(window_of("budget").window.budget_left, 2);
    EXPECT_INT(set(change("budget", 5), code, &err), 1);
    EXPECT_INT(window_of("budget").window.budget_left, 1);
    EXPECT_INT(set(change("budget", 6), code, &err), 2);
    t = window_of("budget");
    EXPECT_INT(t.window.budget_left, 0);
    EXPECT(t.window.budget_wait_ms > 3590000 && t.window.budget_wait_ms <= 3600000);
    api_error_clear(&err);
    set(change("budget", 7), code, &err);
    EXPECT_STR(code, "rate_limited");
    EXPECT(llabs(err.retry_after_s - (t.window.budget_wait_ms + 999) / 1000) <= 1);
    api_error_clear(&err);
    teardown();
}

int main(void) {
    RUN(unchanged_queue_reports_its_default_at_version_0);
    RUN(applies_a_change_and_audits_it);
    RUN(a_change_to_the_current_value_answers_unchanged_and_audits_nothing);
    RUN(a_token_over_its_write_rate_gets_429_unaudited_and_other_tokens_write_on);
    RUN(checks_run_in_the_documented_order);
    RUN(cooldown_and_hourly_budget_answer_429);
    RUN(writes_flag_gates_changes_outside_local);
    RUN(history_pages_newest_first);
    RUN(writes_flag_is_checked_before_known_queue);
    RUN(token_buckets_refill_at_the_rate_and_stay_bounded);
    RUN(change_window_agrees_with_the_refusals_at_its_edges);
    return UNIT_DONE();
}
