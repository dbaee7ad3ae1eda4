/* test_fleet.c — the worker registry with a controlled clock: staleness,
 * forgetting, bye, malformed reports, acknowledgements, rates and waiters;
 * acknowledgement counting under every transition, and against a count
 * over the registry in a long random sequence (fixed seed). */
#include "unit.h"
#include "fleet.h"

#include <stdint.h>
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
    EXPECT_INT(fleet_wait(fl, "q", 2, now, now + 100000, on_wait, NULL), 0);
    EXPECT_INT(waits_done, 0);
    beat(fl, "w1", "q", 8, 2, 0, 0, now);
    fleet_check_waiters(fl, now, 0);
    EXPECT_INT(waits_done, 1);
    EXPECT_INT(waits_complete, 1);
    EXPECT_INT(fleet_wait(fl, "q", 3, now, now + 10, on_wait, NULL), 0);
    fleet_check_waiters(fl, now + 20, 0);
    EXPECT_INT(waits_done, 2);
    EXPECT_INT(waits_complete, 1);
    fleet_free(fl);
}

/* ---- acknowledgement counting ------------------------------------------------ */

/* The last wait that ended, as its callback saw it. */
struct ended {
    int n, complete;
    struct fleet_acks acks;
};

static void on_end(void *ud, const struct fleet_acks *acks, int complete) {
    struct ended *e = ud;
    e->n++;
    e->complete = complete;
    e->acks = *acks;
}

static void ack(fleet *fl, const char *id, const char *queue, int version, int64_t now) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"event\":\"ack\",\"worker\":\"%s\",\"queue\":\"%s\",\"concurrency\":2,"
             "\"version\":%d,\"interval_ms\":1000}",
             id, queue, version);
    EXPECT_INT(report(fl, buf, now), 0);
}

TEST(a_wait_ends_on_the_report_that_brings_the_last_worker_up) {
    fleet *fl = fleet_new();
    struct ended e = {0};
    fleet_issued(fl, "q", 3);
    ack(fl, "a", "q", 2, 1000);
    ack(fl, "b", "q", 2, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 3, 1000, 9000, on_end, &e), 0);
    ack(fl, "a", "q", 3, 1100);
    EXPECT_INT(e.n, 0);
    ack(fl, "b", "q", 3, 1200);
    EXPECT_INT(e.n, 1);
    EXPECT_INT(e.complete, 1);
    EXPECT_INT(e.acks.expected, 2);
    EXPECT_INT(e.acks.acknowledged, 2);
    fleet_free(fl);
}

TEST(a_new_worker_joining_below_the_version_holds_a_pending_wait) {
    fleet *fl = fleet_new();
    struct ended e = {0};
    fleet_issued(fl, "q", 3);
    ack(fl, "a", "q", 2, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 3, 1000, 9000, on_end, &e), 0);
    ack(fl, "late", "q", 1, 1100);                  /* joins, behind */
    ack(fl, "a", "q", 3, 1200);
    EXPECT_INT(e.n, 0);
    ack(fl, "early", "q", 3, 1250);                 /* joins, already there */
    EXPECT_INT(e.n, 0);
    ack(fl, "late", "q", 3, 1300);
    EXPECT_INT(e.n, 1);
    EXPECT_INT(e.acks.expected, 3);
    EXPECT_INT(e.complete, 1);
    fleet_free(fl);
}

TEST(a_lagging_worker_gone_stale_releases_the_wait_at_the_next_tick) {
    fleet *fl = fleet_new();
    struct ended e = {0};
    fleet_issued(fl, "q", 2);
    ack(fl, "lag", "q", 1, 1000);
    ack(fl, "up", "q", 1, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 2, 1000, 60000, on_end, &e), 0);
    ack(fl, "up", "q", 2, 3500);
    fleet_check_waiters(fl, 3900, 0);               /* lag seen 2.9 s ago: still expected */
    EXPECT_INT(e.n, 0);
    ack(fl, "up", "q", 2, 4000);
    fleet_check_waiters(fl, 4001, 0);               /* 3 intervals and a bit: stale */
    EXPECT_INT(e.n, 1);
    EXPECT_INT(e.complete, 1);
    EXPECT_INT(e.acks.expected, 1);
    /* Back from the dead, it counts again, and holds back the next wait. */
    ack(fl, "lag", "q", 1, 4100);
    EXPECT_INT(fleet_wait(fl, "q", 2, 4100, 60000, on_end, &e), 0);
    EXPECT_INT(e.n, 1);
    ack(fl, "lag", "q", 2, 4200);
    EXPECT_INT(e.n, 2);
    EXPECT_INT(e.acks.expected, 2);
    fleet_free(fl);
}

TEST(a_lagging_worker_saying_bye_or_forgotten_releases_the_wait_at_once) {
    fleet *fl = fleet_new();
    struct ended e = {0};
    fleet_issued(fl, "q", 2);
    ack(fl, "lag", "q", 1, 1000);
    ack(fl, "up", "q", 2, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 2, 1000, 90000, on_end, &e), 0);
    EXPECT_INT(report(fl, "{\"event\":\"bye\",\"worker\":\"lag\",\"queue\":\"q\"}", 1100), 0);
    EXPECT_INT(e.n, 1);
    EXPECT_INT(e.complete, 1);
    EXPECT_INT(e.acks.expected, 1);
    /* A worker with a 60 s interval is forgotten before it goes stale. */
    report(fl, "{\"event\":\"ack\",\"worker\":\"slow\",\"queue\":\"q\",\"concurrency\":1,"
               "\"version\":1,\"interval_ms\":60000}", 2000);
    EXPECT_INT(fleet_wait(fl, "q", 2, 2000, 90000, on_end, &e), 0);
    ack(fl, "up", "q", 2, 61000);
    fleet_check_waiters(fl, 62001, 0);
    EXPECT_INT(e.n, 1);
    fleet_sweep(fl, 62001);
    EXPECT_INT(e.n, 2);
    EXPECT_INT(e.complete, 1);
    fleet_free(fl);
}

TEST(an_invalid_worker_is_expected_but_never_acknowledges_until_it_reports_an_issued_version) {
    fleet *fl = fleet_new();
    struct ended e = {0};
    fleet_set_issuer(fl, issued_q_is_5, NULL);
    fleet_issued(fl, "q", 5);
    ack(fl, "forged", "q", 1000, 1000);
    ack(fl, "honest", "q", 4, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 5, 1000, 9000, on_end, &e), 0);
    ack(fl, "honest", "q", 5, 1100);
    EXPECT_INT(e.n, 0);                             /* 1000 >= 5, but never issued */
    ack(fl, "forged", "q", 5, 1200);                /* a version down, to an issued one */
    EXPECT_INT(e.n, 1);
    EXPECT_INT(e.acks.acknowledged, 2);
    /* A valid worker turning invalid holds back a wait it had reached. */
    EXPECT_INT(fleet_wait(fl, "q", 5, 1300, 9000, on_end, &e), 0);
    EXPECT_INT(e.n, 2);                             /* everyone is there already */
    ack(fl, "honest", "q", 7, 1400);
    EXPECT_INT(fleet_wait(fl, "q", 5, 1400, 1500, on_end, &e), 0);
    EXPECT_INT(e.n, 2);
    fleet_check_waiters(fl, 1500, 0);
    EXPECT_INT(e.n, 3);
    EXPECT_INT(e.complete, 0);
    EXPECT_INT(e.acks.expected, 2);
    EXPECT_INT(e.acks.acknowledged, 1);
    fleet_free(fl);
}

TEST(a_worker_moving_to_another_queue_counts_there_with_its_new_version) {
    fleet *fl = fleet_new();
    struct ended a = {0}, b = {0};
    fleet_issued(fl, "qa", 3);
    fleet_issued(fl, "qb", 3);
    ack(fl, "w", "qa", 1, 1000);
    ack(fl, "x", "qb", 3, 1000);
    EXPECT_INT(fleet_wait(fl, "qa", 3, 1000, 9000, on_end, &a), 0);
    EXPECT_INT(fleet_wait(fl, "qb", 3, 1000, 9000, on_end, &b), 0);
    EXPECT_INT(b.n, 1);                             /* x alone, already there */
    EXPECT_INT(fleet_wait(fl, "qb", 2, 1000, 9000, on_end, &b), 0);
    EXPECT_INT(b.n, 2);
    EXPECT_INT(fleet_wait(fl, "qb", 3, 1000, 9000, on_end, &b), 0);
    EXPECT_INT(b.n, 3);
    ack(fl, "w", "qb", 0, 1100);                    /* leaves qa (nobody left: a ends) */
    EXPECT_INT(a.n, 1);
    EXPECT_INT(a.acks.expected, 0);
    EXPECT_INT(fleet_wait(fl, "qb", 3, 1100, 9000, on_end, &b), 0);
    EXPECT_INT(b.n, 3);                             /* w at 0 in qb now */
    ack(fl, "w", "qb", 3, 1200);
    EXPECT_INT(b.n, 4);
    EXPECT_INT(b.acks.expected, 2);
    fleet_free(fl);
}

TEST(waits_end_lowest_version_first_and_a_lower_one_added_later_is_counted) {
    fleet *fl = fleet_new();
    struct ended v2 = {0}, v3 = {0}, v4 = {0};
    fleet_issued(fl, "q", 4);
    ack(fl, "a", "q", 1, 1000);
    ack(fl, "b", "q", 1, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 4, 1000, 9000, on_end, &v4), 0);
    EXPECT_INT(fleet_wait(fl, "q", 3, 1000, 9000, on_end, &v3), 0);
    ack(fl, "a", "q", 4, 1100);
    EXPECT_INT(fleet_wait(fl, "q", 2, 1100, 9000, on_end, &v2), 0);
    ack(fl, "b", "q", 2, 1200);
    EXPECT_INT(v2.n, 1);
    EXPECT_INT(v3.n + v4.n, 0);
    ack(fl, "b", "q", 4, 1300);                     /* jumps past both */
    EXPECT_INT(v3.n, 1);
    EXPECT_INT(v4.n, 1);
    EXPECT_INT(v4.complete, 1);
    fleet_free(fl);
}

TEST(a_wait_past_its_deadline_ends_incomplete_with_the_count_of_then) {
    fleet *fl = fleet_new();
    struct ended e = {0};
    fleet_issued(fl, "q", 2);
    ack(fl, "a", "q", 2, 1000);
    ack(fl, "b", "q", 1, 1000);
    EXPECT_INT(fleet_wait(fl, "q", 2, 1000, 1500, on_end, &e), 0);
    fleet_check_waiters(fl, 1499, 0);
    EXPECT_INT(e.n, 0);
    fleet_check_waiters(fl, 1500, 0);
    EXPECT_INT(e.n, 1);
    EXPECT_INT(e.complete, 0);
    EXPECT_INT(e.acks.expected, 2);
    EXPECT_INT(e.acks.acknowledged, 1);
    /* wait_ms 0 answers at once; so does a wait after shutdown began. */
    EXPECT_INT(fleet_wait(fl, "q", 2, 2000, 2000, on_end, &e), 0);
    EXPECT_INT(e.n, 2);
    EXPECT_INT(fleet_wait(fl, "nobody-here", 2, 2000, 9000, on_end, &e), 0);
    EXPECT_INT(e.n, 3);
    EXPECT_INT(e.complete, 1);                      /* vacuously */
    fleet_check_waiters(fl, 2000, 1);
    EXPECT_INT(fleet_wait(fl, "q", 2, 2000, 9000, on_end, &e), 0);
    EXPECT_INT(e.n, 4);
    EXPECT_INT(e.complete, 0);
    fleet_free(fl);
}

/* ---- the same, at random, against a count over the registry ------------------ */

#define PROP_OPS 10000
#define PROP_QUEUES 3
#define PROP_IDS 16
#define PROP_WAITS 64

static uint64_t prop_rng = 0x9e3779b97f4a7c15ULL;    /* fixed seed: the same run every time */

static unsigned prop_rand(unsigned n) {
    prop_rng ^= prop_rng << 13;
    prop_rng ^= prop_rng >> 7;
    prop_rng ^= prop_rng << 17;
    return (unsigned)(prop_rng % n);
}

static const char *const prop_queue_names[PROP_QUEUES] = {"qa", "qb", "qc"};
static int64_t prop_store[PROP_QUEUES];               /* what the issuer says was issued */

static int64_t prop_issuer(void *ud, const char *queue) {
    (void)ud;
    for (int i = 0; i < PROP_QUEUES; i++)
        if (strcmp(queue, prop_queue_names[i]) == 0) return prop_store[i];
    return 0;
}

struct prop_wait {
    int used, ended, complete;
    int queue;
    int64_t version, deadline_ms;
    struct fleet_acks acks, truth;                 /* what it ended with; the count over the registry */
};

static struct {
    fleet *fl;
    int64_t now;
    int64_t stale_view_ms;                         /* when the fleet last looked for stale workers */
    int64_t expired_ms;                            /* when deadlines were last checked */
    struct prop_wait waits[PROP_WAITS];
    int failures;
} prop;

/* Acknowledgements of version of queue counted over every worker the
 * registry lists, live at at_ms. */
static void prop_truth(int queue, int64_t version, int64_t at_ms, struct fleet_acks *out) {
    struct fleet_worker *ws = NULL;
    size_t n = fleet_workers(prop.fl, NULL, prop.now, &ws);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ws[i].queue, prop_queue_names[queue]) != 0) continue;
        if (at_ms - ws[i].last_seen_ms > FLEET_STALE_INTERVALS * ws[i].interval_ms) continue;
        out->expected++;
        out->acknowledged += ws[i].version >= version && !ws[i].invalid;
    }
    free(ws);
}

static void prop_on_end(void *ud, const struct fleet_acks *acks, int complete) {
    struct prop_wait *w = ud;
    if (w->ended) prop.failures++;                 /* ended twice */
    w->ended = 1;
    w->complete = complete;
    w->acks = *acks;
    prop_truth(w->queue, w->version, prop.now, &w->truth);
}

static void prop_report(void) {
    static const char *const events[] = {"ack", "heartbeat", "heartbeat", "error"};
    static const int intervals[] = {100, 250, 1000};
    char buf[512];
    int q = (int)prop_rand(PROP_QUEUES), id = (int)prop_rand(PROP_IDS);
    /* Mostly a version issued, sometimes one beyond (invalid), sometimes an old one. */
    int64_t version = prop_store[q] + 1 - (int64_t)prop_rand(4);
    if (version < 0) version = 0;
    snprintf(buf, sizeof buf,
             "{\"event\":\"%s\",\"worker\":\"w%d\",\"queue\":\"%s\",\"concurrency\":1,"
             "\"version\":%lld,\"interval_ms\":%d}",
             events[prop_rand(4)], id, prop_queue_names[q], (long long)version, intervals[prop_rand(3)]);
    report(prop.fl, buf, prop.now);
}

/* Every wait still pending must still be held back by a worker the fleet
 * counts (not stale when it last looked), and within its deadline. */
static void prop_check_pending(void) {
    for (int i = 0; i < PROP_WAITS; i++) {
        struct prop_wait *w = &prop.waits[i];
        if (!w->used || w->ended) continue;
        struct fleet_acks seen;
        prop_truth(w->queue, w->version, prop.stale_view_ms, &seen);
        if (seen.acknowledged == seen.expected || w->deadline_ms <= prop.expired_ms) {
            printf("#   pending wait %d (queue %d, version %lld) should have ended: %d of %d\n", i,
                   w->queue, (long long)w->version, seen.acknowledged, seen.expected);
            prop.failures++;
        }
    }
}

/* Every wait that ended told the count over the registry, and ended only
 * complete or at its deadline. Frees its slot. */
static void prop_check_ended(void) {
    for (int i = 0; i < PROP_WAITS; i++) {
        struct prop_wait *w = &prop.waits[i];
        if (!w->used || !w->ended) continue;
        if (w->acks.expected != w->truth.expected || w->acks.acknowledged != w->truth.acknowledged ||
            w->complete != (w->truth.acknowledged == w->truth.expected) ||
            (!w->complete && w->deadline_ms > prop.now)) {
            printf("#   wait %d ended with %d of %d (complete %d), registry says %d of %d\n", i,
                   w->acks.acknowledged, w->acks.expected, w->complete, w->truth.acknowledged,
                   w->truth.expected);
            prop.failures++;
        }
        w->used = 0;
    }
}

static void prop_step(void) {
    unsigned op = prop_rand(100);
    if (op < 45) {
        prop_report();
    } else if (op < 49) {
        char buf[128];
        snprintf(buf, sizeof buf, "{\"event\":\"bye\",\"worker\":\"w%u\",\"queue\":\"qa\"}",
                 prop_rand(PROP_IDS));
        report(prop.fl, buf, prop.now);
    } else if (op < 54) {
        int q = (int)prop_rand(PROP_QUEUES);
        prop_store[q]++;
        if (prop_rand(2)) fleet_issued(prop.fl, prop_queue_names[q], prop_store[q]);
    } else if (op < 64) {
        for (int i = 0; i < PROP_WAITS; i++) {
            struct prop_wait *w = &prop.waits[i];
            if (w->used) continue;
            memset(w, 0, sizeof *w);
            w->used = 1;
            w->queue = (int)prop_rand(PROP_QUEUES);
            w->version = prop_store[w->queue] + 1 - (int64_t)prop_rand(3);
            w->deadline_ms = prop.now + (int64_t)prop_rand(3000);
            prop.stale_view_ms = prop.now;
            if (w->deadline_ms <= prop.now) prop.expired_ms = prop.now;
            if (fleet_wait(prop.fl, prop_queue_names[w->queue], w->version, prop.now, w->deadline_ms,
                           prop_on_end, w) != 0)
                prop.failures++;
            break;
        }
    } else if (op < 80) {
        fleet_check_waiters(prop.fl, prop.now, 0);
        prop.stale_view_ms = prop.expired_ms = prop.now;
    } else if (op < 82) {
        fleet_sweep(prop.fl, prop.now);
    } else {
        prop.now += prop_rand(op < 98 ? 300 : 70000);
    }
    struct fleet_acks a, truth;
    int q = (int)prop_rand(PROP_QUEUES);
    int64_t v = prop_store[q] + 1 - (int64_t)prop_rand(3);
    fleet_acks(prop.fl, prop_queue_names[q], v, prop.now, &a);
    prop_truth(q, v, prop.now, &truth);
    if (a.expected != truth.expected || a.acknowledged != truth.acknowledged) prop.failures++;
    prop_check_ended();
    prop_check_pending();
}

TEST(acknowledgement_counts_equal_a_count_over_the_registry_in_10000_random_steps) {
    memset(&prop, 0, sizeof prop);
    prop.fl = fleet_new();
    prop.now = 1000;
    fleet_set_issuer(prop.fl, prop_issuer, NULL);
    for (int i = 0; i < PROP_OPS && prop.failures == 0; i++) prop_step();
    EXPECT_INT(prop.failures, 0);
    fleet_check_waiters(prop.fl, prop.now, 1);      /* shutdown ends what is left */
    for (int i = 0; i < PROP_WAITS; i++) EXPECT(!prop.waits[i].used || prop.waits[i].ended);
    fleet_free(prop.fl);
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
    RUN(a_wait_ends_on_the_report_that_brings_the_last_worker_up);
    RUN(a_new_worker_joining_below_the_version_holds_a_pending_wait);
    RUN(a_lagging_worker_gone_stale_releases_the_wait_at_the_next_tick);
    RUN(a_lagging_worker_saying_bye_or_forgotten_releases_the_wait_at_once);
    RUN(an_invalid_worker_is_expected_but_never_acknowledges_until_it_reports_an_issued_version);
    RUN(a_worker_moving_to_another_queue_counts_there_with_its_new_version);
    RUN(waits_end_lowest_version_first_and_a_lower_one_added_later_is_counted);
    RUN(a_wait_past_its_deadline_ends_incomplete_with_the_count_of_then);
    RUN(acknowledgement_counts_equal_a_count_over_the_registry_in_10000_random_steps);
    return UNIT_DONE();
}
