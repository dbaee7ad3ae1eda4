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
 * without holding any lock. The ticker publishes one model a second, and
 * one at its next step (50 ms) after health_changed.
 *
 * Reads (the snapshot, /metrics, the scaling list and each Target) take
 * health_current: the published model when it is fresh for them, else one
 * built now by one reader while the others wait and take it. Fresh means:
 * its build began after every health_changed made before the read
 * (announced changes of this replica show at once: read-your-writes) and
 * at most HEALTH_FRESH_MS before the read (worker reports, depth, Redis,
 * the store, the leader and other replicas' changes show within that).
 *
 * Rendered bodies: each model keeps the bytes of what reads send (struct
 * body: the snapshot, the scaling list, each Target, the model's part of
 * /metrics), rendered once, on first use, by the renderer the reader
 * passes (health_body), so rendering stays with bind_*.c and metrics.c and
 * a read that finds them costs a reference count. The cache is the only
 * part of a published model that changes, under the model's render_lock. */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "alerts.h"
#include "body.h"
#include "fleet.h"
#include "policy.h"
#include "store.h"
#include "telemetry.h"

struct app;
typedef struct health health;

/* How old a model a read accepts, when nothing was announced since it was
 * built: the bound on how late a worker report (or any change not
 * announced through health_changed) shows in a read. */
#define HEALTH_FRESH_MS 50

/* How many snapshots limited to queues (distinct pattern strings) a model
 * keeps rendered. */
#define HEALTH_SCOPED_MAX 8

/* The bodies a model caches (health_body). */
enum health_body_kind {
    HEALTH_BODY_SNAPSHOT,            /* /admin/runtime-scaling */
    HEALTH_BODY_METRICS,             /* the model's families of /metrics */
    HEALTH_BODY_SCALING_LIST,        /* GET /api/v1/scaling */
    HEALTH_BODY_TARGET,              /* GET /api/v1/scaling/{queue}: one per queue */
    HEALTH_BODY_KINDS
};

enum health_store { HEALTH_STORE_DOWN, HEALTH_STORE_UP, HEALTH_STORE_FULL };

/* Stale first, then invalid, then whether it runs the desired concurrency. */
enum health_worker_state {
    HEALTH_WORKER_OK,
    HEALTH_WORKER_MISMATCH,
    HEALTH_WORKER_INVALID,           /* reports a version never issued */
    HEALTH_WORKER_STALE,             /* missed 3 heartbeats */
};

/* A worker as the model shows it. Its strings are never NULL; in a built
 * model they point into the queue's strings block (a worker costs its
 * lengths, not the longest id, agent and error a report may carry). */
struct health_worker {
    const char *id;
    const char *agent;
    const char *error;               /* last error report, "" when none */
    const char *host;                /* "" when not reported */
    int64_t concurrency, version, active;
    int paused;                      /* the worker reports it takes no new jobs */
    int64_t pid;                     /* 0 when not reported */
    int64_t last_seen_ms, first_seen_ms;   /* monotonic, as util_mono_ms */
    double completed_per_s, failed_per_s;
    enum health_worker_state state;
};

/* One declared queue. */
struct queue_health {
    char name[UTIL_NAME_MAX + 1];
    struct policy_bounds bounds;
    /* The stored row; a queue never changed has its policy default at
     * version 0. Unknown (has_target 0) when the listing failed. */
    int has_target;
    struct store_target target;
    /* The audit log's figures behind change_window (has_recent 0: not
     * known, the store down), kept by the publisher between builds and
     * read again only when the row changed or the hour moved on. */
    int has_recent;
    struct policy_recent recent;
    /* Whether the snapshot and /metrics show it: only with the store up.
     * Alert rules judge the queue whenever has_target. */
    int target_shown;
    /* Telemetry's cache (has_depth 0: never read, or not since Redis went
     * down); shown only while Redis is up. */
    int has_depth;
    struct telemetry_depth depth;
    struct health_worker *workers;   /* by id, stale ones included */
    size_t nworkers;
    char *strings;                   /* the workers' strings, one block (NULL: none) */
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
    uint64_t changes;                /* health_changed count when the build began */
    int64_t built_at_ms;             /* wall clock: the snapshot's generated_at */
    int64_t built_mono_ms;           /* the clock of worker ages and staleness */
    char environment[65];
    enum health_store store;
    int writes_enabled;              /* -1 when the store is down */
    int writes_set;                  /* the flag was ever set: who, when, why below */
    char writes_by[STORE_ACTOR_MAX];
    int64_t writes_at_ms;
    char writes_reason[STORE_REASON_MAX];
    json_t *policy;                  /* the policy in force and its failures (read only) */
    int redis_up;                    /* the depth reader and the bus both reach Redis */
    int leader;
    int targets_ok;                  /* the listing of stored rows answered */
    struct queue_health *queues;     /* declaration order */
    size_t nqueues;
    struct alerts_state *alerts;     /* grouped by queue, in queue order */
    size_t nalerts;
    /* Rendered bodies, NULL until first asked for (health_body); the model
     * holds one reference of each. Targets: one slot per queue. */
    pthread_mutex_t render_lock;
    _Atomic(struct body *) bodies[HEALTH_BODY_KINDS];
    _Atomic(struct body *) *targets;
    /* Snapshots limited to a token's queues (health_snapshot_body_for),
     * by pattern string: the first HEALTH_SCOPED_MAX asked for are kept
     * with the model, under render_lock; others are rendered per read. */
    struct health_scoped {
        char *patterns;
        struct body *body;
    } scoped[HEALTH_SCOPED_MAX];
    size_t nscoped;
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

/* Build, publish and return a new reference (NULL when out of memory). */
struct health_model *health_rebuild(struct app *app);

/* The model a read answers from (see Reads above): the current one when
 * fresh, else one built now. New reference, or NULL when out of memory. */
struct health_model *health_current(struct app *app);

/* Renders one body of m (index: the queue's position for
 * HEALTH_BODY_TARGET, else 0). Returns a new body, or NULL. */
typedef struct body *(*health_render_fn)(const struct health_model *m, size_t index, void *ud);

/* The body of kind for m, rendered by render(m, index, ud) on first use and
 * kept with m for every later read. Returns a new reference (release it
 * with body_release), or NULL when rendering failed (nothing is kept then,
 * so the next read tries again) or index is out of range. */
struct body *health_body(struct health_model *m, enum health_body_kind kind, size_t index,
                         health_render_fn render, void *ud);

/* The ticker's cycle at now_ms (wall clock): build, evaluate the alert
 * rules over the model (alerts_tick, which tells notify of every
 * transition), attach the alerts, publish. */
void health_tick(struct app *app, int64_t now_ms, alerts_notify_fn notify, void *ud);

/* What a change of q can do at m's time: 0 with *out filled, or -1 when
 * not known (the store down). */
int health_change_window(const struct health_model *m, const struct queue_health *q,
                         struct policy_window *out);

/* The state w of q shows in the snapshot and /metrics: without a desired
 * state in view, nobody is in mismatch. */
enum health_worker_state health_shown_state(const struct queue_health *q,
                                            const struct health_worker *w);

/* The queue named name in m, or NULL. Borrowed from m. */
const struct queue_health *health_queue(const struct health_model *m, const char *name);

/* Renderer: the /admin/runtime-scaling answer of api.md as one JSON tree
 * (for event streams, which take JSON). A model of 10,000 workers makes a
 * tree of megabytes: reads send health_snapshot_body instead. New ref. */
json_t *health_json(const struct health_model *m);

/* Renderer: what the alert rules see, one entry per queue whose desired
 * state is known, live workers only. One malloc'd block (free it); its
 * strings are borrowed from m, so m must be held while it is used. NULL
 * when out of memory. */
struct policy_alert_queue *health_alert_queues(const struct health_model *m, size_t *n);

/* The snapshot a read shows: health_current rendered by health_json. New
 * ref. */
json_t *health_snapshot(struct app *app);

/* The snapshot body of m, cached with it (health_body): the bytes
 * health_json's tree dumps to, written a worker at a time into the body
 * (body_writer), so no tree of the whole snapshot is ever built. */
struct body *health_snapshot_body(struct health_model *m);

/* ---- what a token limited to queues sees (auth.h's patterns) ----
 * Its snapshot holds only the queues its patterns allow (their alerts and
 * workers with them), and the policy banner's failing rules of those
 * queues only; everything else (environment, writes, store, Redis, leader)
 * is the same. patterns NULL or "": the whole snapshot. */

/* health_snapshot limited to patterns. New ref. */
json_t *health_snapshot_for(struct app *app, const char *patterns);

/* health_snapshot_body limited to patterns: the cached body itself when
 * patterns allow every queue, else one rendered for them, kept with the
 * model for the next read with the same patterns (up to HEALTH_SCOPED_MAX
 * pattern strings). A new reference; NULL when out of memory. */
struct body *health_snapshot_body_for(struct health_model *m, const char *patterns);

/* Limit a snapshot tree (as health_json makes it) to patterns, in place. */
void health_scope_json(json_t *snapshot, const char *patterns);

/* events_scope_fn (events.h) for snapshots: json[0..len) limited to
 * patterns, malloc'd compact JSON with its length in *n; NULL when it does
 * not parse or memory runs out (the stream then gets nothing). */
char *health_scope_text(const char *json, size_t len, const char *patterns, size_t *n);

/* Say that something the model shows changed (announce.c after a committed
 * change, the ticker after a policy reload): the next read builds a new
 * model, and the ticker rebuilds at its next step (50 ms at most) and sends
 * the new snapshot to live streams. Many changes in one step cost one
 * snapshot, and the writer never builds one on its own thread. Lock-free;
 * callable from any thread. */
void health_changed(health *h);

/* For the ticker: 1 once after one or more health_changed. */
int health_take_changed(health *h);

#endif
