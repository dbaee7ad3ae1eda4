/* app.h — the long-lived parts of one sluiced process, handed to the
 * modules that serve requests (scaling, flags, bindings). main.c creates and
 * owns them; nobody else frees them. */
#ifndef SLUICE_APP_H
#define SLUICE_APP_H

#include <stdint.h>

#include "alerts.h"
#include "bus.h"
#include "config.h"
#include "events.h"
#include "fleet.h"
#include "health.h"
#include "leader.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"
#include "telemetry.h"

struct app {
    const struct config *cfg;
    store *st;
    policy *pol;
    fleet *fl;                   /* live workers, from reports */
    bus *bus;                    /* NULL in commands that need no Redis */
    alerts *alerts;
    telemetry *telemetry;        /* queue depth from Redis */
    health *health;              /* the published queue-health model */
    metrics *metrics;
    events *events;              /* live SSE streams */
    leader *leader;              /* runs the relay, expiry, alert notices */
    int64_t started_ms;
};

#endif
