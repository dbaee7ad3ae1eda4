/* alerts.h — the alert evaluator: on every tick it asks the policy which
 * rules hold over the queues it is given, and moves each (alert, queue,
 * worker) through pending → firing (after the rule's for_s) → resolved.
 * Transitions are logged and published on <prefix>:alerts; the current set
 * is kept for the queue-health model (the API, live events and /metrics).
 *
 * What the rules see comes from the caller, the queue-health model
 * (health.c renders it as policy_alert_queue); this unit never reads the
 * store, the fleet or the depth itself. Thread-safe: alerts_tick runs on
 * the ticker; readers take a copy. Uses policy.h, events.h, leader.h and
 * bus.h through app.h. */
#ifndef SLUICE_ALERTS_H
#define SLUICE_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct app;
typedef struct alerts alerts;

/* One alert that holds now: pending, or firing once it held for for_s. */
struct alerts_state {
    struct policy_alert_hit hit;       /* worker is "" for queue rules */
    int firing;
    int64_t since_ms;                  /* wall clock; when the condition started to hold */
};

alerts *alerts_new(void);
void alerts_free(alerts *al);

/* Evaluate every rule over qs (borrowed) at now_ms, wall-clock time: the
 * clock of for_s and "since", so tests can drive it. Announces every
 * transition through app (events, log and Redis when leader). */
void alerts_tick(alerts *al, struct app *app, const struct policy_alert_queue *qs, size_t nq,
                 int64_t now_ms);

/* Copy the alerts pending and firing now, in the evaluator's order,
 * into *out (malloc'd, the caller frees; NULL when none or out of memory).
 * Returns the count. */
size_t alerts_current(alerts *al, struct alerts_state **out);

#endif
