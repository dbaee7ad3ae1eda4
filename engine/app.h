/* app.h — the long-lived parts of one sluiced process, handed to the
 * services that compose them (scaling, health, announce, deferred, the
 * bindings, the ticker). main.c creates and owns them; nobody else frees
 * them. Only handles here: this header includes no module, so that no
 * module it names can import it back; a user includes what it calls. */
#ifndef SLUICE_APP_H
#define SLUICE_APP_H

#include <stdint.h>

struct config;
typedef struct store store;
typedef struct policy policy;
typedef struct fleet fleet;
typedef struct bus bus;
typedef struct alerts alerts;
typedef struct telemetry telemetry;
typedef struct health health;
typedef struct metrics metrics;
typedef struct events events;
typedef struct leader leader;
typedef struct history history;
struct notify;
struct autoscale;

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
    history *history;            /* 24 h of samples per queue */
    struct notify *notify;              /* webhook notifications (leader delivers); may be NULL */
    struct autoscale *autoscale;        /* the autoscaling rules (leader evaluates); may be NULL */
    int64_t started_ms;
};

#endif
