/* test_alerts.c — pending → firing after for_s → resolved, driven by an
 * explicit clock, with real rules loaded from policy files in a temporary
 * directory and inputs given as the queue-health model renders them. */
#include "unit.h"
#include "alerts.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static char path[160];
static policy *pol;
static alerts *al;

/* The transitions told to notify, as "alert:state@time" lines. */
static char told[1024];

static void record(void *ud, const struct alerts_state *a, const char *state, int64_t now_ms) {
    size_t n = strlen(told);
    (void)ud;
    snprintf(told + n, sizeof told - n, "%s:%s@%lld ", a->hit.alert, state, (long long)now_ms);
}

static const char *const policy_text =
    "defaults { default = 4, min = 1, max = 32 }\n"
    "queue \"alpha\" { }\n"
    "alert \"drift\" { severity = \"warning\", for_s = 30,\n"
    "  worker = function(w, q) return w.concurrency ~= q.desired end,\n"
    "  message = function(w, q) return w.id .. ' runs ' .. w.concurrency end }\n"
    "alert \"deep\" { severity = \"critical\", for_s = 0,\n"
    "  queue = function(q) return q.depth.waiting > 100 end }\n";

static int setup(void) {
    struct sandbox_limits lim = {16 << 20, 200000};
    strcpy(dir, "/tmp/sluice-alerts-XXXXXX");
    if (mkdtemp(dir) == NULL) return 0;
    snprintf(path, sizeof path, "%s/rules.lua", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return 0;
    fputs(policy_text, f);
    fclose(f);
    told[0] = '\0';
    pol = policy_new(dir, &lim);
    al = alerts_new();
    return pol && al && policy_reload(pol, 1) == 1;
}

static void teardown(void) {
    alerts_free(al);
    policy_free(pol);
    unlink(path);
    rmdir(dir);
}

/* alpha at desired 4 with one live worker running conc, and waiting jobs. */
static void tick(int64_t conc, int64_t waiting, int64_t now_ms) {
    struct policy_alert_worker w = {"w1", conc, 1, 0, conc == 4 ? "ok" : "mismatch", 0};
    struct policy_alert_queue q = {"alpha", 4, 1, waiting, 0, 0, 0, &w, 1, 0};
    alerts_tick(al, pol, &q, 1, now_ms, record, NULL);
}

/* The one current alert named name, copied into *out; 0 when absent. */
static int current(const char *name, struct alerts_state *out) {
    struct alerts_state *all = NULL;
    size_t n = alerts_current(al, &all);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].hit.alert, name) == 0) *out = all[i], found++;
    free(all);
    return found;
}

TEST(a_rule_is_pending_until_it_held_for_for_s_then_fires) {
    struct alerts_state a;
    ASSERT(setup());
    tick(6, 0, 1000000);
    ASSERT(current("drift", &a) == 1);
    EXPECT_INT(a.firing, 0);
    EXPECT_INT(a.since_ms, 1000000);
    EXPECT_STR(a.hit.worker, "w1");
    EXPECT_STR(a.hit.message, "w1 runs 6");
    tick(6, 0, 1029999);
    ASSERT(current("drift", &a) == 1);
    EXPECT_INT(a.firing, 0);
    tick(7, 0, 1030000);                       /* still drifting: "since" stays */
    ASSERT(current("drift", &a) == 1);
    EXPECT_INT(a.firing, 1);
    EXPECT_INT(a.since_ms, 1000000);
    EXPECT_STR(a.hit.message, "w1 runs 7");    /* the message is the latest */
    EXPECT_STR(told, "drift:firing@1030000 ");   /* told once, when it fired */
    teardown();
}

TEST(a_rule_that_stops_holding_resolves_and_starts_over) {
    struct alerts_state a;
    ASSERT(setup());
    tick(6, 0, 1000000);
    tick(6, 0, 1040000);
    ASSERT(current("drift", &a) == 1 && a.firing);
    tick(4, 0, 1041000);                       /* back to desired: resolved */
    EXPECT_INT(current("drift", &a), 0);
    tick(6, 0, 1042000);                       /* drifts again: pending anew */
    ASSERT(current("drift", &a) == 1);
    EXPECT_INT(a.firing, 0);
    EXPECT_INT(a.since_ms, 1042000);
    EXPECT_STR(told, "drift:firing@1040000 drift:resolved@1041000 ");
    teardown();
}

TEST(a_rule_with_for_s_0_fires_at_once_and_queue_rules_have_no_worker) {
    struct alerts_state a;
    ASSERT(setup());
    tick(4, 500, 5000);
    ASSERT(current("deep", &a) == 1);
    EXPECT_INT(a.firing, 1);
    EXPECT_STR(a.hit.worker, "");
    EXPECT_STR(a.hit.severity, "critical");
    EXPECT_INT(current("drift", &a), 0);
    teardown();
}

TEST(without_inputs_no_rule_holds_and_everything_resolves) {
    struct alerts_state a, *all = NULL;
    ASSERT(setup());
    tick(6, 500, 5000);
    EXPECT_INT(current("deep", &a), 1);
    alerts_tick(al, pol, NULL, 0, 6000, record, NULL);   /* e.g. the store is down */
    EXPECT_INT(alerts_current(al, &all), 0);
    EXPECT(all == NULL);
    teardown();
}

int main(void) {
    RUN(a_rule_is_pending_until_it_held_for_for_s_then_fires);
    RUN(a_rule_that_stops_holding_resolves_and_starts_over);
    RUN(a_rule_with_for_s_0_fires_at_once_and_queue_rules_have_no_worker);
    RUN(without_inputs_no_rule_holds_and_everything_resolves);
    return UNIT_DONE();
}
