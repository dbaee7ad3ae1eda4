/* alerts.h — the alert evaluator: on every tick it asks the policy which
 * rules hold for each queue and live worker, and moves each (alert, queue,
 * worker) through pending → firing (after the rule's for_s) → resolved.
 * Transitions are logged and published on <prefix>:alerts; the current set
 * is kept for the API, the telemetry snapshot and /metrics.
 *
 * Thread-safe: alerts_tick runs on the ticker; readers take a snapshot.
 * Uses policy.h, fleet.h, store.h and bus.h through app.h. */
#ifndef SLUICE_ALERTS_H
#define SLUICE_ALERTS_H

#include <jansson.h>
#include <stdint.h>

struct app;
typedef struct alerts alerts;

alerts *alerts_new(void);
void alerts_free(alerts *al);

/* Evaluate every rule now. now_ms is wall-clock time (for "since"). */
void alerts_tick(alerts *al, struct app *app, int64_t now_ms);

/* Alerts of queue (NULL: all), pending and firing:
 * [{"name","queue","worker","state","since","severity","message"}]. New ref. */
json_t *alerts_list(alerts *al, const char *queue);

#endif
