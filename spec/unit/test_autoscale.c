/* test_autoscale.c — the autoscaler's decisions with a clock the tests
 * move (the scale-down window, clamping below confirm_above/approve_above,
 * stepping by max_step, holds after a manual change and explicit ones, the
 * de-duplication of refusals), and the autoscale DSL: its load errors at
 * file:line and its rules run in the sandbox (errors and runaways caught,
 * results checked). */
#include "unit.h"
#include "autoscale.h"
#include "log.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static const struct policy_bounds bounds = {.def = 4, .min = 1, .max = 40, .max_step = 4,
                                            .confirm_above = 20, .approve_above = -1};

static struct policy_autoscale rule(void) {
    struct policy_autoscale a = {.queue = "build", .every_s = 15, .hold_after_manual_s = 900,
                                 .scale_down_window_s = 300};
    return a;
}

/* Plan a proposal at now (seconds) from current; proposal < 0: nil. */
static struct autoscale_plan plan(const struct policy_autoscale *a, const struct policy_bounds *b,
                                  struct autoscale_window *w, int64_t now_s, int64_t current,
                                  int64_t proposal, int held) {
    struct autoscale_plan p;
    struct autoscale_plan_in in = {now_s * 1000, current, proposal >= 0, proposal, b, a, held};
    autoscale_plan(&in, w, &p);
    return p;
}

TEST(scale_up_applies_at_once_in_steps_within_max_step) {
    struct policy_autoscale a = rule();
    struct autoscale_window w = {0};
    struct autoscale_plan p = plan(&a, &bounds, &w, 0, 4, 14, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_APPLY);
    EXPECT_INT(p.to, 8);                         /* 4 + max_step */
    EXPECT_CONTAINS(p.note, "stepped to 8");
    p = plan(&a, &bounds, &w, 15, 8, 14, 0);
    EXPECT_INT(p.to, 12);
    p = plan(&a, &bounds, &w, 30, 12, 14, 0);
    EXPECT_INT(p.to, 14);
    EXPECT_STR(p.note, "");
    p = plan(&a, &bounds, &w, 45, 14, 14, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_UNCHANGED);
}

TEST(no_opinion_keeps_the_value) {
    struct policy_autoscale a = rule();
    struct autoscale_window w = {0};
    struct autoscale_plan p = plan(&a, &bounds, &w, 0, 7, -1, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_NO_OPINION);
    EXPECT_INT(p.to, 7);
    EXPECT_INT(w.n, 0);                          /* nil is no proposal for the window */
}

TEST(scale_down_waits_for_the_window_then_applies_its_largest_proposal) {
    struct policy_autoscale a = rule();
    struct autoscale_window w = {0};
    a.scale_down_window_s = 60;
    plan(&a, &bounds, &w, 0, 12, 12, 0);         /* at 12, proposed 12 */
    struct autoscale_plan p = plan(&a, &bounds, &w, 15, 12, 6, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_STABILIZING);
    EXPECT_INT(p.to, 12);
    EXPECT_CONTAINS(p.note, "12 was proposed in the last 60s");
    p = plan(&a, &bounds, &w, 30, 12, 10, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_STABILIZING);
    /* 12 left the window at 60 s: the largest since is 10. */
    p = plan(&a, &bounds, &w, 61, 12, 2, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_APPLY);
    EXPECT_INT(p.to, 10);
    /* 10 (at 30 s) left at 90 s; 2 (61 s) and 3 (now) remain: 3, stepped. */
    p = plan(&a, &bounds, &w, 91, 10, 3, 0);
    EXPECT_INT(p.to, 6);
    EXPECT_CONTAINS(p.note, "stepped to 6");
}

TEST(a_zero_window_scales_down_at_once) {
    struct policy_autoscale a = rule();
    struct autoscale_window w = {0};
    a.scale_down_window_s = 0;
    plan(&a, &bounds, &w, 0, 12, 12, 0);
    struct autoscale_plan p = plan(&a, &bounds, &w, 1, 12, 9, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_APPLY);
    EXPECT_INT(p.to, 9);
}

TEST(the_window_keeps_only_proposals_that_can_still_be_largest) {
    struct autoscale_window w = {0};
    for (int i = 0; i < 2000; i++) autoscale_window_add(&w, i * 1000, 2000 - i);   /* decreasing */
    EXPECT_INT(w.n, AUTOSCALE_WINDOW_MAX);       /* bounded: the oldest went */
    EXPECT_INT(autoscale_window_max(&w, 2000 * 1000, 10 * 1000, -1), 9);   /* 1991 s .. */
    autoscale_window_add(&w, 2001 * 1000, 50);   /* larger than all kept: alone */
    EXPECT_INT(w.n, 1);
    EXPECT_INT(autoscale_window_max(&w, 2001 * 1000, 1000, -1), 50);
    EXPECT_INT(autoscale_window_max(&w, 2005 * 1000, 1000, -1), -1);
}

TEST(never_above_confirm_or_approve_above_without_allow_above_confirm) {
    struct policy_autoscale a = rule();
    struct policy_bounds b = bounds;
    struct autoscale_window w = {0};
    b.max_step = 100;
    struct autoscale_plan p = plan(&a, &b, &w, 0, 4, 35, 0);
    EXPECT_INT(p.to, 20);
    EXPECT_INT(p.confirm, 0);
    EXPECT_CONTAINS(p.note, "capped at 20");
    b.approve_above = 16;                        /* the lower of the two */
    p = plan(&a, &b, &w, 1, 4, 35, 0);
    EXPECT_INT(p.to, 16);
    /* Already above (a person put it there): automation does not push it
     * further up, and may bring it down. */
    p = plan(&a, &b, &w, 2, 25, 35, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_UNCHANGED);
    EXPECT_INT(p.to, 25);
    a.allow_above_confirm = 1;
    p = plan(&a, &b, &w, 3, 4, 35, 0);
    EXPECT_INT(p.to, 35);
    EXPECT_INT(p.confirm, 1);
    EXPECT_STR(p.note, "");
}

TEST(proposals_outside_the_bounds_are_clamped_into_them) {
    struct policy_autoscale a = rule();
    struct autoscale_window w = {0};
    struct autoscale_plan p = plan(&a, &bounds, &w, 0, 3, -5, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_NO_OPINION);     /* negative here means nil */
    struct autoscale_plan_in in = {0, 3, 1, -5, &bounds, &a, 0};
    a.scale_down_window_s = 0;
    autoscale_plan(&in, &w, &p);
    EXPECT_INT(p.to, 1);
    EXPECT_CONTAINS(p.note, "outside the bounds");
}

TEST(held_and_dry_run_plans_apply_nothing_but_show_the_value) {
    struct policy_autoscale a = rule();
    struct autoscale_window w = {0};
    struct autoscale_plan p = plan(&a, &bounds, &w, 0, 4, 6, 1);
    EXPECT_INT(p.outcome, AUTOSCALE_HELD);
    EXPECT_INT(p.to, 6);
    a.dry_run = 1;
    p = plan(&a, &bounds, &w, 1, 4, 6, 0);
    EXPECT_INT(p.outcome, AUTOSCALE_DRY_RUN);
    EXPECT_INT(p.to, 6);
}

TEST(a_manual_change_holds_the_rule_for_hold_after_manual_s) {
    struct policy_autoscale a = rule();
    struct store_target t = {.queue = "build", .desired = 9, .version = 3,
                             .updated_by = "alice", .updated_at_ms = 100000};
    struct autoscale_hold_view v;
    a.hold_after_manual_s = 60;
    EXPECT_INT(autoscale_held(&a, &t, NULL, 100000 + 59999, &v), 1);
    EXPECT_STR(v.kind, "manual_change");
    EXPECT_STR(v.by, "alice");
    EXPECT_INT(v.until_ms, 160000);
    EXPECT_INT(autoscale_held(&a, &t, NULL, 160000, &v), 0);
    util_copy(t.updated_by, sizeof t.updated_by, "autoscaler:build");
    EXPECT_INT(autoscale_held(&a, &t, NULL, 100001, &v), 0);   /* its own change holds nothing */
    util_copy(t.updated_by, sizeof t.updated_by, "alice");
    t.version = 0;
    EXPECT_INT(autoscale_held(&a, &t, NULL, 100001, &v), 0);   /* never changed */
}

TEST(an_explicit_hold_holds_until_its_end_and_a_release_ends_the_manual_hold) {
    struct policy_autoscale a = rule();
    struct store_target t = {.queue = "build", .desired = 9, .version = 3,
                             .updated_by = "alice", .updated_at_ms = 100000};
    struct store_autoscale_hold h = {.queue = "build", .until_ms = 500000, .by = "bob",
                                     .reason = "incident", .created_ms = 90000};
    struct autoscale_hold_view v;
    EXPECT_INT(autoscale_held(&a, &t, &h, 200000, &v), 1);
    EXPECT_STR(v.kind, "manual_change");          /* ends last: 100 s + 900 s */
    EXPECT_INT(v.until_ms, 1000000);
    h.until_ms = 2000000;
    EXPECT_INT(autoscale_held(&a, &t, &h, 200000, &v), 1);
    EXPECT_STR(v.kind, "hold");
    EXPECT_STR(v.reason, "incident");
    /* Released after the change: a hold that ended when it was made. */
    h.created_ms = h.until_ms = 150000;
    EXPECT_INT(autoscale_held(&a, &t, &h, 200000, &v), 0);
}

TEST(a_refusal_repeated_unchanged_is_quiet_and_any_difference_is_not) {
    struct autoscale_refusal r = {0};
    EXPECT(autoscale_quiet_code(&r, 8) == NULL);
    autoscale_note_refusal(&r, 8, "rate_limited");
    EXPECT_STR(autoscale_quiet_code(&r, 8), "rate_limited");
    EXPECT(autoscale_quiet_code(&r, 9) == NULL);  /* another value: audited */
    autoscale_note_refusal(&r, 8, NULL);          /* applied: the next refusal is news */
    EXPECT(autoscale_quiet_code(&r, 8) == NULL);
    EXPECT_STR(autoscale_outcome_name(AUTOSCALE_STABILIZING), "stabilizing");
    EXPECT_STR(autoscale_outcome_name(AUTOSCALE_DRY_RUN), "dry_run");
}

/* ---- the DSL and running rules ------------------------------------------------------ */

static char dir[64];
static const struct sandbox_limits limits = {16 << 20, 200000};

static void put(const char *text) {
    char path[160];
    snprintf(path, sizeof path, "%s/x.lua", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return;
    fputs(text, f);
    fclose(f);
}

static void remove_dir(void) {
    char path[160];
    snprintf(path, sizeof path, "%s/x.lua", dir);
    unlink(path);
    rmdir(dir);
}

/* text must fail to load at x.lua:line with needle in the message. */
static int fails_at(const char *text, int line, const char *needle) {
    struct policy_error e;
    strcpy(dir, "/tmp/sluice-autoscale-XXXXXX");
    if (mkdtemp(dir) == NULL) return 0;
    put(text);
    int rc = policy_check_dir(dir, &limits, &e);
    remove_dir();
    if (rc == -1 && strcmp(e.file, "x.lua") == 0 && e.line == line && strstr(e.message, needle))
        return 1;
    printf("#   got %s:%d: %s (expected x.lua:%d: ...%s...)\n", e.file, e.line, e.message, line, needle);
    return 0;
}

#define QUEUES "queue \"build\" { default = 4, min = 1, max = 40 }\n"

TEST(autoscale_declarations_are_checked_at_file_and_line) {
    EXPECT(fails_at(QUEUES "\nautoscale \"nope\" { rule = function() end }\n", 3, "not declared"));
    EXPECT(fails_at(QUEUES "autoscale \"build\" { every_s = 15 }\n", 2, "rule = function"));
    EXPECT(fails_at(QUEUES "autoscale \"build\" { rule = function() end, every_s = 0 }\n", 2,
                    "every_s must be in 1..3600"));
    EXPECT(fails_at(QUEUES "autoscale \"build\" { rule = function() end, dry_run = 1 }\n", 2,
                    "dry_run must be true or false"));
    EXPECT(fails_at(QUEUES "autoscale \"build\" { rule = function() end, every = 5 }\n", 2,
                    "unknown field 'every'"));
    EXPECT(fails_at(QUEUES "autoscale \"build\" { rule = function() end }\n"
                           "autoscale \"build\" { rule = function() end }\n", 3, "declared twice"));
    EXPECT(fails_at(QUEUES "autoscale \"build\" { rule = function() end,"
                           " scale_down_window_s = 86401 }\n", 2, "scale_down_window_s"));
}

static const char *const rules_policy =
    QUEUES
    "queue \"spin\" { default = 1, min = 1, max = 4 }\n"
    "queue \"bad\" { default = 1, min = 1, max = 4 }\n"
    "queue \"frac\" { default = 1, min = 1, max = 4 }\n"
    "autoscale \"build\" { every_s = 2, dry_run = true, rule = function(q, ctx)\n"
    "  if q.waiting == nil then return nil end\n"
    "  return math.ceil((q.waiting + q.active) / 10),\n"
    "    string.rep('x', 300) .. #ctx.history .. ctx.decisions[1].outcome .. ctx.now\n"
    "end }\n"
    "autoscale \"spin\" { rule = function() while true do end end }\n"
    "autoscale \"bad\" { rule = function(q) return q.nothing.here end }\n"
    "autoscale \"frac\" { rule = function(q) return 2.5 end }\n";

TEST(rules_run_in_the_sandbox_and_their_failures_are_contained) {
    strcpy(dir, "/tmp/sluice-autoscale-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    put(rules_policy);
    policy *p = policy_new(dir, &limits);
    ASSERT(policy_reload(p, 1) == 1);
    struct policy_gen *g = policy_acquire(p);
    size_t i = 99;
    const struct policy_autoscale *a = policy_gen_autoscale_of(g, "build", &i);
    ASSERT(a != NULL);
    EXPECT_INT(i, 0);
    EXPECT_INT(a->every_s, 2);
    EXPECT_INT(a->dry_run, 1);
    EXPECT_INT(a->hold_after_manual_s, 900);     /* defaults */
    EXPECT_INT(a->scale_down_window_s, 300);
    EXPECT_INT(policy_gen_autoscale_count(g), 4);

    struct policy_bounds b;
    policy_gen_bounds(g, "build", &b);
    struct policy_autoscale_q q = {"build", 95, 10, 0, 0, 4, 4, 1, NAN, NAN, 0, &b};
    struct policy_autoscale_point hist[2] = {{1000, 1, 1, 4, 4, 1, 0.5, 0}, {2000, 2, 1, 4, 4, 1, 0.5, 0}};
    struct policy_autoscale_past past[1] = {{500, 1, 3, "applied", "r"}};
    struct policy_autoscale_ctx ctx = {123456, hist, 2, past, 1};
    struct policy_autoscale_result r;
    EXPECT_INT(policy_gen_autoscale_run(g, 0, &q, &ctx, &r), 0);
    EXPECT_INT(r.has_desired, 1);
    EXPECT_INT(r.desired, 11);
    EXPECT_INT(strlen(r.reason), POLICY_AUTOSCALE_REASON_MAX - 1);   /* cut at 200 */
    q.waiting = POLICY_UNKNOWN;                  /* nil in Lua: no opinion */
    EXPECT_INT(policy_gen_autoscale_run(g, 0, &q, &ctx, &r), 0);
    EXPECT_INT(r.has_desired, 0);

    policy_gen_autoscale_of(g, "spin", &i);
    EXPECT_INT(policy_gen_autoscale_run(g, i, &q, &ctx, &r), -1);
    EXPECT_CONTAINS(r.error, "budget");
    policy_gen_autoscale_of(g, "bad", &i);
    EXPECT_INT(policy_gen_autoscale_run(g, i, &q, &ctx, &r), -1);
    EXPECT_CONTAINS(r.error, "x.lua:11");
    policy_gen_autoscale_of(g, "frac", &i);
    EXPECT_INT(policy_gen_autoscale_run(g, i, &q, &ctx, &r), -1);
    EXPECT_CONTAINS(r.error, "fraction");
    /* The state is sound after a runaway: the first rule still runs. */
    q.waiting = 5;
    EXPECT_INT(policy_gen_autoscale_run(g, 0, &q, &ctx, &r), 0);
    EXPECT_INT(r.desired, 2);
    policy_release(g);
    policy_free(p);
    remove_dir();
}

int main(void) {
    log_set_level(LOG_ERROR);
    RUN(scale_up_applies_at_once_in_steps_within_max_step);
    RUN(no_opinion_keeps_the_value);
    RUN(scale_down_waits_for_the_window_then_applies_its_largest_proposal);
    RUN(a_zero_window_scales_down_at_once);
    RUN(the_window_keeps_only_proposals_that_can_still_be_largest);
    RUN(never_above_confirm_or_approve_above_without_allow_above_confirm);
    RUN(proposals_outside_the_bounds_are_clamped_into_them);
    RUN(held_and_dry_run_plans_apply_nothing_but_show_the_value);
    RUN(a_manual_change_holds_the_rule_for_hold_after_manual_s);
    RUN(an_explicit_hold_holds_until_its_end_and_a_release_ends_the_manual_hold);
    RUN(a_refusal_repeated_unchanged_is_quiet_and_any_difference_is_not);
    RUN(autoscale_declarations_are_checked_at_file_and_line);
    RUN(rules_run_in_the_sandbox_and_their_failures_are_contained);
    return UNIT_DONE();
}
