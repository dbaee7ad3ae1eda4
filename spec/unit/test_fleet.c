/* test_fleet.c — the worker registry with a controlled clock: staleness,
 * forgetting, bye, malformed reports, acknowledgements, rates and waiters. */
#include "unit.h"
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>

static int report(fleet *fl, const char *json, int64_t now) {
    return fleet_report(fl, json, strlen(json), now);
}

static void beat(fleet *fl, const char *id, const char *queue, int conc, int version,
                 long completed, long failed, int64_t now) {
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"event\":\"heartbeat\",\"worker\":\"%s\",\"queue\":\"%s\",\"concurrency\":%d,"
             "\"version\":%d,\"completed\":%ld,\"failed\":%ld,\"interval_ms\":1000}",
             id, queue, conc, version, completed, failed);
    report(fl, buf, now);
}

TEST(a_worker_is_stale_after_three_missed_intervals_and_forgotten_after_60s) {
    fleet *fl = fleet_new();
    struct fleet_worker *ws = NULL;
    beat(fl, "w1", "q", 4, 1, 0, 0, 1000);
    EXPECT_INT(fleet_workers(fl, "q", 3900, &ws), 1);
    EXPECT_INT(ws[0].stale, 0);
    free(ws);
    EXPECT_INT(fleet_workers(fl, "q", 4100, &ws), 1);
    EXPECT_INT(ws[0].stale, 1);
    free(ws);
    fleet_sweep(fl, 60900);
    EXPECT_INT(fleet_workers(fl, "q", 60900, &ws), 1);
    free(ws);
    fleet_sweep(fl, 61100);
    EXPECT_INT(fleet_workers(fl, "q", 61100, &ws), 0);
    free(ws);
    fleet_free(fl);
}

TEST(bye_removes_a_worker_at_once) {
    fleet *fl = fleet_new();
    struct fleet_worker *ws = NULL;
    beat(fl, "w1", "q", 4, 1, 0, 0, 1000);
    EXPECT_INT(report(fl, "{\"event\":\"bye\",\"worker\":\"w1\",\"queue\":\"q\"}", 1100), 0);
    EXPECT_INT(fleet_workers(fl, NULL, 1100, &ws), 0);
    free(ws);
    fleet_free(fl);
}

TEST(malformed_reports_are_counted_and_change_nothing) {
    static const char *const bad[] = {
        "", "nope", "[]", "{}", "{\"event\":\"ack\"}",
        "{\"event\":\"ack\",\"worker\":\"a b\",\"queue\":\"q\",\"concurrency\":1,\"version\":1}",
        "{\"event\":\"ack\",\"worker\":\"w\",\"queue\":\"q\",\"concurrency\":-1,\"version\":1}",
        "{\"event\":\"ack\",\"worker\":\"w\",\"queue\":\"q\",\"concurrency\":1,\"version\":1.5}",
        "{\"event\":\"ack\",\"worker\":\"w\",\"queue\":\"q/x\",\"concurrency\":1,\"version\":1}",
        "{\"event\":\"ack\",\"event\":\"bye\",\"worker\":\"w\",\"queue\":\"q\",\"concurrency\":1,\"version\":1}",
        "{\"event\":\"ack\",\"worker\":\"w\",\"queue\":\"q\",\"concurrency\":1,\"version\":1,\"interval_ms\":1}",
    };
    fleet *fl = fleet_new();
    struct fleet_worker *ws = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) EXPECT_INT(report(fl, bad[i], 1000), -1);
    char big[FLEET_REPORT_MAX + 100];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "{\"event\":\"ack\",\"worker\":\"w\",\"queue\":\"q\",\"concurrency\":1,\"version\":1}", 68);
    EXPECT_INT(fleet_report(fl, big, strlen(big), 1000), -1);
    EXPECT_INT(fleet_malformed(fl), sizeof bad / sizeof bad[0] + 1);
    EXPECT_INT(fleet_workers(fl, NULL, 1000, &ws), 0);
    free(ws);
    fleet_free(fl);
}

TEST(acks_count_live_workers_at_or_past_the_version_and_never_go_back) {
    fleet *fl = fleet_new();
    struct fleet_acks a;
    beat(fl, "w1", "q", 4, 3, 0, 0, 1000);
    beat(fl, "w2", "q", 4, 2, 0, 0, 1000);
    beat(fl, "w3", "other", 4, 1, 0, 0, 1000);
    fleet_acks(fl, "q", 3, 1500, &a);
    EXPECT_INT(a.expected, 2);
    EXPECT_INT(a.acknowledged, 1);
    beat(fl, "w1", "q", 4, 2, 0, 0, 1600);          /* a late, reordered report */
    fleet_acks(fl, "q", 3, 1700, &a);
    EXPECT_INT(a.acknowledged, 1);
    fleet_acks(fl, "q", 3, 9000, &a);               /* all stale now */
    EXPECT_INT(a.expected, 0);
    fleet_free(fl);
}

TEST(rates_survive_a_counter_reset_without_going_negative) {
    fleet *fl = fleet_new();
    struct fleet_rates r;
    beat(fl, "w1", "q", 4, 1, 100, 10, 1000);
    beat(fl, "w1", "q", 4, 1, 140, 20, 2000);       /* +40 completed, +10 failed in 1 s */
    fleet_rates(fl, "q", 2000, &r);
    EXPECT(r.completed_per_s > 39.9 && r.completed_per_s < 40.1);
    EXPECT(r.failed_per_s > 9.9 && r.failed_per_s < 10.1);
    beat(fl, "w1", "q", 4, 1, 5, 0, 3000);          /* restarted: counts from zero */
    fleet_rates(fl, "q", 3000, &r);
    EXPECT(r.completed_per_s >= 0 && r.completed_per_s < 30);
    EXPECT(r.failed_per_s >= 0);
    EXPECT_INT(r.completed_total, 145);             /* 100 + 40 + 5 */
    EXPECT_INT(r.failed_total, 20);
    fleet_free(fl);
}

/* The store as the issuer sees it: queue "q" is at version 5. */
static int64_t issued_q_is_5(void *ud, const char *queue) {
    (void)ud;
    return strcmp(queue, "q") == 0 ? 5 : 0;
}

TEST(a_version_never_issued_makes_a_worker_invalid_until_it_reports_an_issued_one) {
    fleet *fl = fleet_new();
    struct fleet_acks a;
    struct fleet_worker *ws = NULL;
    fleet_set_issuer(fl, issued_q_is_5, NULL);
    beat(fl, "forged", "q", 3, 1000, 0, 0, 1000);   /* applied a forged version */
    beat(fl, "honest", "q", 4, 5, 0, 0, 1000);
    fleet_acks(fl, "q", 5, 1100, &a);
    EXPECT_INT(a.expected, 2);
    EXPECT_INT(a.acknowledged, 1);                  /* the forged 1000 >= 5 does not count */
    ASSERT(fleet_workers(fl, "q", 1100, &ws) == 2);
    EXPECT_INT(strcmp(ws[0].id, "forged") == 0 ? ws[0].invalid : ws[1].invalid, 1);
    free(ws);
    /* Once issued (say by another replica), the same version is fine. */
    fleet_issued(fl, "q", 1000);
    beat(fl, "forged", "q", 3, 1000, 0, 0, 1500);
    fleet_acks(fl, "q", 1000, 1600, &a);
    EXPECT_INT(a.acknowledged, 1);
    fleet_free(fl);
}

static int declared_only_q(void *ud, const char *queue) {
    (void)ud;
    return strcmp(queue, "q") == 0;
}

TEST(totals_only_for_declared_queues_and_they_saturate_instead_of_wrapping) {
    fleet *fl = fleet_new();
    struct fleet_rates r;
    char name[32];
    fleet_set_declared(fl, declared_only_q, NULL);
    for (int i = 0; i < 300; i++) {                 /* made-up names fill nothing */
        snprintf(name, sizeof name, "made-up-%d", i);
        beat(fl, name, name, 1, 0, 10, 1, 1000);
    }
    beat(fl, "w1", "q", 1, 0, 7, 2, 1000);
    fleet_rates(fl, "q", 1000, &r);
    EXPECT_INT(r.completed_total, 7);
    EXPECT_INT(r.failed_total, 2);
    fleet_rates(fl, "made-up-1", 1000, &r);
    EXPECT_INT(r.completed_total, 0);
    /* Counters near INT64_MAX, twice: the total stops at 2^53 - 1. */
    report(fl, "{\"event\":\"heartbeat\",\"worker\":\"big\",\"queue\":\"q\",\"concurrency\":1,"
               "\"version\":0,\"completed\":9223372036854775807,\"interval_ms\":1000}", 2000);
    report(fl, "{\"event\":\"heartbeat\",\"worker\":\"big\",\"queue\":\"q\",\"concurrency\":1,"
               "\"version\":0,\"completed\":1,\"interval_ms\":1000}", 3000);
    report(fl, "{\"event\":\"heartbeat\",\"worker\":\"big\",\"queue\":\"q\",\"concurrency\":1,"
               "\"version\":0,\"completed\":9223372036854775807,\"interval_ms\":1000}", 4000);
    fleet_rates(fl, "q", 4000, &r);
    EXPECT(r.completed_total == FLEET_TOTAL_MAX);
    EXPECT(r.completed_per_s >= 0);
    fleet_free(fl);
}

static int waits_done, waits_complete;

static void on_wait(void *ud, const struct fleet_acks *acks, int complete) {
    (void)ud;
    (void)acks;
    waits_done++;
    waits_complete += complete;
}

TEST(waiters_end_on_the_last_ack_or_their_deadline) {
    fleet *fl = fleet_new();
    waits_done = waits_complete = 0;
    int64_t now = util_mono_ms();
    beat(fl, "w1", "q", 4, 1, 0, 0, now);
    EXPECT_INT(fleet_wait(fl, "q", 2, now + 100000, on_wait, NULL), 0);
    EXPECT_INT(waits_done, 0);
    beat(fl, "w1", "q", 8, 2, 0, 0, now);
    fleet_check_waiters(fl, now, 0);
    EXPECT_INT(waits_done, 1);
    EXPECT_INT(waits_complete, 1);
    EXPECT_INT(fleet_wait(fl, "q", 3, now + 10, on_wait, NULL), 0);
    fleet_check_waiters(fl, now + 20, 0);
    EXPECT_INT(waits_done, 2);
    EXPECT_INT(waits_complete, 1);
    fleet_free(fl);
}

int main(void) {
    RUN(a_worker_is_stale_after_three_missed_intervals_and_forgotten_after_60s);
    RUN(bye_removes_a_worker_at_once);
    RUN(malformed_reports_are_counted_and_change_nothing);
    RUN(acks_count_live_workers_at_or_past_the_version_and_never_go_back);
    RUN(rates_survive_a_counter_reset_without_going_negative);
    RUN(waiters_end_on_the_last_ack_or_their_deadline);
    RUN(a_version_never_issued_makes_a_worker_invalid_until_it_reports_an_issued_one);
    RUN(totals_only_for_declared_queues_and_they_saturate_instead_of_wrapping);
    return UNIT_DONE();
}
