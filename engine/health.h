/* health.h — the queue-health model: one typed, immutable picture of every
 * declared queue (desired state, bounds, depth, workers, rates, pending
 * updates, alerts) and of the process (store, Redis, leader), and its three
 * renderers: the /admin/runtime-scaling JSON (health_json), the inputs of
 * the alert rules (health_alert_queues) and, in metrics.c, /metrics.
 *
 * Built by one function (health_build) from one listing query of the store
 * (store_list_targets, not a read per queue), the policy's declared queues
 * and bounds, telemetry's cached depths, the fleet and the current alerts.
 *
 * Direction: health uses telemetry, alerts, fleet, store and policy; none of
 * them uses health. The ticker drives the cycle (health_tick): it builds a
 * model, hands its alert inputs to alerts_tick, attaches the resulting
 * alerts and publishes it, so alerts.c and telemetry.c never call each
 * other. metrics.c and bind_telemetry.c read models through app->health.
 *
 * Publication: a model is reference-counted and never changes once built;
 * health_publish swaps the current pointer under a short mutex (an older
 * build never replaces a newer one) and health_acquire hands out a
 * reference, so a reader keeps a consistent picture however long it takes,
 * without holding any lock. The ticker publishes one model a second.
 * health_rebuild builds and publishes at once (synchronously, in the
 * caller's thread; nothing is coalesced yet): it is the hook for a change
 * announced by the write path, and today's readers (the snapshot, /metrics,
 * live events) call it too, because not every source of change announces
 * itself yet (worker reports, store writes), so a published model may be up
 * to a tick old while the API has always answered with the state at the
 * request. Readers that accept a tick of age use health_acquire. */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "alerts.h"
#include "fleet.h"
#include "policy.h"
#include "store.h"
#include "telemetry.h"

struct app;
typedef struct health health;

enum health_store { HEALTH_STORE_DOWN, HEALTH_STORE_UP, HEALTH_STORE_FULL };

/* Stale first, then invalid, then whether it runs the desired concurrency. */
enum health_worker_state {
    HEALTH_WORKER_OK,
    HEALTH_WORKER_MISMATCH,
    HEALTH_WORKER_INVALID,           /* reports a version never issued */
    HEALTH_WORKER_STALE,             /* missed 3 heartbeats */
};

struct health_worker {
    char id[FLEET_ID_MAX + 1];
    int64_t concurrency, version, active;
    int64_t last_seen_ms;            /* monotonic, as util_mono_ms */
    enum health_worker_state state;
    char agent[65];
    char error[257];                 /* last error report, "" when none */
};

/* One declared queue. */
struct queue_health {
    char name[UTIL_NAME_MAX + 1];
    struct policy_bounds bounds;
    /* The stored row; a queue never changed has its policy default at
     * version 0. Unknown (has_target 0) when the listing failed. */
    int has_target;
    struct store_target target;
    /* Whether the snapshot and /metrics show it: only with the store up.
     * Alert rules judge the queue whenever has_target. */
    int target_shown;
    /* Telemetry's cache (has_depth 0: never read, or not since Redis went
     * down); shown only while Redis is up. */
    int has_depth;
    struct telemetry_depth depth;
    struct health_worker *workers;   /* by id, stale ones included */
    size_t nworkers;
    int64_t live_workers;            /* not stale */
    int64_t active_concurrency;      /* sum over live workers */
    struct fleet_rates rates;
    int64_t unpublished;             /* outbox rows not yet relayed */
    int64_t pending_updates;         /* unpublished + versions live workers lag behind */
    const struct alerts_state *alerts;   /* a slice of the model's alerts */
    size_t nalerts;
};

struct health_model {
    atomic_int refs;                 /* health_acquire / health_release only */
    uint64_t seq;                    /* build order */
    int64_t built_at_ms;             /* wall clock: the snapshot's generated_at */
    int64_t built_mono_ms;           /* the clock of worker ages and staleness */
    char environment[65];
    enum health_store store;
    int writes_enabled;              /* -1 when the store is down */
    int redis_up;                    /* the depth reader and the bus both reach Redis */
    int leader;
    struct queue_health *queues;     /* declaration order */
    size_t nqueues;
    struct alerts_state *alerts;     /* grouped by queue, in queue order */
    size_t nalerts;
};

/* The publisher. NULL when out of memory. health_free releases the current
 * model (readers holding it keep it); NULL is a no-op. */
health *health_new(void);
void health_free(health *h);

/* Build a model of now, not published, with the alerts as they stand.
 * Returns a new reference (release it), or NULL when out of memory. */
struct health_model *health_build(struct app *app);

/* Make m current unless a newer build is (m keeps the caller's reference;
 * the publisher takes its own). */
void health_publish(health *h, struct health_model *m);

/* A reference to the current model, or NULL before the first publication.
 * Release it with health_release; NULL is a no-op. */
struct health_model *health_acquire(health *h);
void health_release(struct health_model *m);

/* Build, publish and return a new reference (NULL when out of memory): the
 * hook for a change the write path announces. */
struct health_model *health_rebuild(struct app *app);

/* The ticker's cycle at now_ms (wall clock): build, evaluate the alert
 * rules over the model (alerts_tick, which tells notify of every
 * transition), attach the alerts, publish. */
void health_tick(struct app *app, int64_t now_ms, alerts_notify_fn notify, void *ud);

/* The state w of q shows in the snapshot and /metrics: without a desired
 * state in view, nobody is in mismatch. */
enum health_worker_state health_shown_state(const struct queue_health *q,
                                            const struct health_worker *w);

/* The queue named name in m, or NULL. Borrowed from m. */
const struct queue_health *health_queue(const struct health_model *m, const char *name);

/* Renderer: the /admin/runtime-scaling answer of api.md. New ref. */
json_t *health_json(const struct health_model *m);

/* Renderer: what the alert rules see, one entry per queue whose desired
 * state is known, live workers only. One malloc'd block (free it); its
 * strings are borrowed from m, so m must be held while it is used. NULL
 * when out of memory. */
struct policy_alert_queue *health_alert_queues(const struct health_model *m, size_t *n);

/* The snapshot of now: health_rebuild rendered by health_json. New ref. */
json_t *health_snapshot(struct app *app);

/* Say that something the model shows changed (announce.c, after a
 * committed change): the ticker rebuilds at its next step (50 ms at most)
 * and sends the new snapshot to live streams. Many changes in one step cost
 * one snapshot, and the writer never builds one on its own thread. */
void health_changed(health *h);

/* For the ticker: 1 once after one or more health_changed. */
int health_take_changed(health *h);

#endif
