/* test_history.c — the rings of samples per queue and the history answer,
 * on an explicit clock: steps per range, the last sample of a step, gaps,
 * wrap-around after a day, desired filled from the audit log, markers. */
#include "unit.h"
#include "history.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1764421200000LL               /* 2025-11-29T13:00:00Z, a 2-minute boundary */

static struct history_sample sample(int64_t waiting, int64_t desired) {
    struct history_sample s = {waiting, waiting / 2, desired, desired, 3, 1.5, 0.25};
    return s;
}

/* The answer for queue over range at now, parsed. */
static json_t *render(history *h, const char *queue, const char *range, int64_t now,
                      const struct history_audit *a) {
    struct body *b = history_render(h, queue, history_range_named(range), now, a);
    json_t *v = b ? json_loadb(b->bytes, b->len, 0, NULL) : NULL;
    body_release(b);
    return v;
}

static json_t *series(json_t *v, const char *name) {
    return json_object_get(json_object_get(v, "series"), name);
}

/* The value of series name at the point whose t is at_ms; -2: no such point. */
static json_int_t at(json_t *v, const char *name, int64_t at_ms) {
    json_t *t = series(v, "t");
    for (size_t i = 0; i < json_array_size(t); i++)
        if (json_integer_value(json_array_get(t, i)) == at_ms) {
            json_t *x = json_array_get(series(v, name), i);
            return json_is_null(x) ? -1 : json_integer_value(x);
        }
    return -2;
}

TEST(ranges_have_their_steps_and_at_most_720_points) {
    history *h = history_new();
    ASSERT(h != NULL);
    const char *names[] = {"15m", "1h", "6h", "24h"};
    int steps[] = {10, 10, 30, 120}, points[] = {90, 360, 720, 720};
    for (int i = 0; i < 4; i++) {
        json_t *v = render(h, "q", names[i], T0 + 5000, NULL);
        ASSERT(v != NULL);
        EXPECT_INT(json_integer_value(json_object_get(v, "step_s")), steps[i]);
        EXPECT_INT(json_array_size(series(v, "t")), points[i]);
        EXPECT_INT(json_array_size(series(v, "failed_per_s")), points[i]);
        /* The newest point is the step that holds now. */
        json_t *t = series(v, "t");
        EXPECT_INT(json_integer_value(json_array_get(t, json_array_size(t) - 1)), T0);
        json_decref(v);
    }
    EXPECT(history_range_named("2h") == NULL);
    history_free(h);
}

TEST(samples_show_in_their_step_and_missing_ones_are_gaps) {
    history *h = history_new();
    struct history_sample s = sample(12, 4);
    ASSERT(history_record(h, "q", &s, T0 - 30000) == 0);
    s = sample(15, 4);
    ASSERT(history_record(h, "q", &s, T0 - 10000) == 0);     /* T0 - 20000 skipped: a gap */
    json_t *v = render(h, "q", "15m", T0 + 1000, NULL);
    ASSERT(v != NULL);
    EXPECT_INT(at(v, "waiting", T0 - 30000), 12);
    EXPECT_INT(at(v, "waiting", T0 - 20000), -1);
    EXPECT_INT(at(v, "desired", T0 - 20000), -1);
    EXPECT_INT(at(v, "waiting", T0 - 10000), 15);
    EXPECT_INT(at(v, "active", T0 - 10000), 7);
    EXPECT_INT(at(v, "workers", T0 - 10000), 3);
    EXPECT_INT(at(v, "waiting", T0), -1);                     /* not sampled yet */
    EXPECT(json_real_value(json_array_get(series(v, "done_per_s"), 88)) == 1.5);
    EXPECT(json_is_null(json_array_get(series(v, "done_per_s"), 87)));
    EXPECT(json_is_null(json_array_get(series(v, "waiting"), 0)));
    json_decref(v);
    v = render(h, "other", "1h", T0, NULL);                 /* never sampled: all gaps */
    EXPECT(v != NULL && json_is_null(json_array_get(series(v, "running"), 359)));
    json_decref(v);
    history_free(h);
}

TEST(a_field_not_known_is_null_on_its_own) {
    history *h = history_new();
    struct history_sample s = sample(12, 4);
    s.waiting = HISTORY_UNKNOWN;                              /* Redis down */
    s.done_per_s = NAN;
    ASSERT(history_record(h, "q", &s, T0) == 0);
    json_t *v = render(h, "q", "15m", T0, NULL);
    EXPECT_INT(at(v, "waiting", T0), -1);
    EXPECT_INT(at(v, "desired", T0), 4);
    EXPECT(json_is_null(json_array_get(series(v, "done_per_s"), 89)));
    json_decref(v);
    history_free(h);
}

TEST(a_long_step_shows_the_last_sample_in_it) {
    history *h = history_new();
    for (int i = 0; i < 12; i++) {                            /* two minutes from T0 - 120 s */
        struct history_sample s = sample(100 + i, 4);
        ASSERT(history_record(h, "q", &s, T0 - 120000 + i * 10000) == 0);
    }
    json_t *v = render(h, "q", "24h", T0 + 1000, NULL);
    EXPECT_INT(at(v, "waiting", T0 - 120000), 111);
    EXPECT_INT(at(v, "waiting", T0), -1);
    json_decref(v);
    v = render(h, "q", "6h", T0 + 1000, NULL);              /* 30 s steps */
    EXPECT_INT(at(v, "waiting", T0 - 120000), 102);
    EXPECT_INT(at(v, "waiting", T0 - 30000), 111);
    json_decref(v);
    history_free(h);
}

TEST(the_rings_wrap_and_forget_what_is_older_than_their_range) {
    history *h = history_new();
    int64_t day = 24 * 3600000LL;
    struct history_sample s = sample(1, 4);
    ASSERT(history_record(h, "q", &s, T0 - day) == 0);        /* slot shared with T0 */
    s = sample(2, 4);
    ASSERT(history_record(h, "q", &s, T0 - day + 10000) == 0);
    s = sample(3, 4);
    ASSERT(history_record(h, "q", &s, T0) == 0);              /* a day later: the same index */
    json_t *v = render(h, "q", "24h", T0 + 1000, NULL);
    EXPECT_INT(at(v, "waiting", T0), 3);
    /* T0 - day + 10 s is still in the ring, but before the 24h range's first step. */
    for (size_t i = 0; i + 1 < json_array_size(series(v, "waiting")); i++)
        EXPECT(json_is_null(json_array_get(series(v, "waiting"), i)));
    json_decref(v);
    s = sample(9, 4);                                          /* older than a day: ignored */
    EXPECT(history_record(h, "q", &s, T0 - day - 10000) == 0);
    v = render(h, "q", "15m", T0 + 1000, NULL);
    EXPECT_INT(at(v, "waiting", T0), 3);
    json_decref(v);
    history_free(h);
}

TEST(desired_before_the_first_sample_comes_from_the_audit_log) {
    history *h = history_new();
    struct store_audit changes[2];
    memset(changes, 0, sizeof changes);
    /* Newest first: 6 -> 8 at T0 - 60 s, 4 -> 6 at T0 - 300 s. */
    changes[0].from = 6, changes[0].to = 8, changes[0].version = 2, changes[0].at_ms = T0 - 60000;
    changes[1].from = 4, changes[1].to = 6, changes[1].version = 1, changes[1].at_ms = T0 - 300000;
    strcpy(changes[0].actor, "alice");
    strcpy(changes[0].source, "ui");
    strcpy(changes[0].reason, "more \"builds\"");
    struct history_sample s = sample(5, 8);
    ASSERT(history_record(h, "q", &s, T0) == 0);             /* restarted just now */
    struct history_audit a = {changes, 2, 8, 1};
    json_t *v = render(h, "q", "15m", T0 + 1000, &a);
    EXPECT_INT(at(v, "desired", T0), 8);
    EXPECT_INT(at(v, "desired", T0 - 50000), 8);
    EXPECT_INT(at(v, "desired", T0 - 70000), 6);
    EXPECT_INT(at(v, "desired", T0 - 300000), 6);             /* the step of the change ends at 6 */
    EXPECT_INT(at(v, "desired", T0 - 310000), 4);
    EXPECT_INT(at(v, "waiting", T0 - 70000), -1);             /* other series stay gaps */
    json_t *m = json_object_get(v, "markers");
    ASSERT(json_array_size(m) == 2);                          /* oldest first */
    EXPECT_INT(json_integer_value(json_object_get(json_array_get(m, 0), "to")), 6);
    EXPECT_INT(json_integer_value(json_object_get(json_array_get(m, 1), "at_ms")), T0 - 60000);
    EXPECT_STR(json_string_value(json_object_get(json_array_get(m, 1), "reason")), "more \"builds\"");
    EXPECT_STR(json_string_value(json_object_get(json_array_get(m, 1), "actor")), "alice");
    json_decref(v);
    a.complete = 0;                                           /* older changes cut off */
    v = render(h, "q", "15m", T0 + 1000, &a);
    EXPECT_INT(at(v, "desired", T0 - 70000), 6);
    EXPECT_INT(at(v, "desired", T0 - 310000), -1);
    json_decref(v);
    history_free(h);
}

TEST(a_ring_costs_26_bytes_a_slot_in_1800_slots) {
    history *h = history_new();
    struct history_sample s = sample(1, 1);
    char name[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "q%d", i);
        ASSERT(history_record(h, name, &s, T0) == 0);
    }
    /* 360 + 720 + 720 slots a queue: 10 s for 1 h, 30 s for 6 h, 120 s for 24 h. */
    EXPECT(history_memory(h) < 100 * 26 * 1800 + 131072);   /* + the table of rings */
    EXPECT(history_memory(h) >= 100 * 26 * 1800);
    history_free(h);
}

int main(void) {
    RUN(ranges_have_their_steps_and_at_most_720_points);
    RUN(samples_show_in_their_step_and_missing_ones_are_gaps);
    RUN(a_field_not_known_is_null_on_its_own);
    RUN(a_long_step_shows_the_last_sample_in_it);
    RUN(the_rings_wrap_and_forget_what_is_older_than_their_range);
    RUN(desired_before_the_first_sample_comes_from_the_audit_log);
    RUN(a_ring_costs_26_bytes_a_slot_in_1800_slots);
    return UNIT_DONE();
}
