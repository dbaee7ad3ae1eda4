/* alerts.h — the alert evaluator: on every tick it asks the policy which
 * rules hold over the queues it is given, and moves each (alert, queue,
 * worker) through pending → firing (after the rule's for_s) → resolved.
 * Transitions go to the caller's notify function (announce.c's
 * announce_alert: live events, the log and <prefix>:alerts); the current
 * set is kept for the queue-health model (the API and /metrics).
 *
 * What the rules see comes from the caller, the queue-health model
 * (health.c renders it as policy_alert_queue); this unit never reads the
 * store, the fleet or the depth itself. Thread-safe: alerts_tick runs on
 * the ticker; readers take a copy. Uses policy.h only. */
#ifndef SLUICE_ALERTS_H
#define SLUICE_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

typedef struct alerts alerts;

/* One alert that holds now: pending, or firing once it held for for_s. */
struct alerts_state {
    struct policy_alert_hit hit;       /* worker is "" for queue rules */
    int firing;
    int64_t since_ms;                  /* wall clock; when the condition started to hold */
};

alerts *alerts_new(void);
void alerts_free(alerts *al);

/* A transition of a: state "firing" or "resolved", at now_ms. */
typedef void (*alerts_notify_fn)(void *ud, const struct alerts_state *a, const char *state,
                                 int64_t now_ms);

/* Evaluate every rule of the policy in force over qs (borrowed) at now_ms,
 * wall-clock time: the clock of for_s and "since", so tests can drive it.
 * Every transition is handed to notify (may be NULL) after the evaluator's
 * lock is released, in the order they happened. */
void alerts_tick(alerts *al, policy *pol, const struct policy_alert_queue *qs, size_t nq,
                 int64_t now_ms, alerts_notify_fn notify, void *ud);

/* Copy the alerts pending and firing now, in the evaluator's order,
 * into *out (malloc'd, the caller frees; NULL when none or out of memory).
 * Returns the count. */
size_t alerts_current(alerts *al, struct alerts_state **out);

#endif
