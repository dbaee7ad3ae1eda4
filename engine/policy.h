/* policy.h — the operators' policies: loading the *.lua files of the policy
 * directory, hot reload with last-good fallback, the bounds of each queue, the
 * custom validate() hook, the alert rule definitions (evaluated by
 * alerts.c later), notify sinks and autoscaling rules (run by autoscale.c).
 *
 * A policy generation is the declarations resolved into C structs plus two
 * sandboxed Lua states running the same files: one for validate() (request
 * context), one for the alert rules (tick context), and a third for the
 * autoscaling rules when it declares any, each behind its own lock. A generation never changes once published. A reload builds a
 * complete new generation first and swaps it in only when every file loaded
 * and every declaration was valid; readers hold a reference
 * (policy_acquire/policy_release), so a reload never pulls a generation from
 * under a change that is being judged, and the old one is freed by its last
 * reader.
 *
 * Locks: the host's lock is held only to swap or take a reference, never
 * around Lua; bounds look-ups take no lock at all once a reference is held.
 * validate() runs under its generation's eval lock, alert rules under its
 * tick lock and autoscaling rules under its auto lock; none is ever held
 * together with another or with a database lock (scaling.c
 * runs validate before its write transaction). Uses sandbox.h. */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"
#include "util.h"

#define POLICY_MAX_FILES 64
#define POLICY_MAX_QUEUES 256
#define POLICY_MAX_CONCURRENCY 100000

struct policy_bounds {
    int64_t def, min, max;
    int64_t max_step;            /* largest change in one update */
    int64_t cooldown_s;          /* 0: none */
    int64_t changes_per_hour;    /* 0: unlimited */
    int64_t confirm_above;       /* -1: no confirmation threshold */
    int64_t approve_above;       /* -1: no change waits for approval by its value */
    int64_t approval_ttl_s;      /* how long an approval may stay pending (3600) */
    char layout[8];              /* "sluice" | "bullmq" */
    char bullmq_prefix[33];      /* BullMQ key prefix, "bull" unless set */
};

struct policy_change {
    const char *queue;
    int64_t from, to;
    const char *actor;
    unsigned scopes;
    const char *source, *reason;
    int confirm;
    int approved;                /* 1: a second person approved it (validate sees change.approved) */
};

struct policy_ctx {
    const char *environment;
    int64_t now_ms;
    int64_t recent_changes;      /* applied changes of the queue in the last hour */
};

struct policy_error {
    char file[128];
    int line;                    /* 0 when unknown */
    char message[512];
};

typedef struct policy policy;
struct policy_gen;

/* A policy host for dir (nothing loaded yet). NULL when out of memory. */
policy *policy_new(const char *dir, const struct sandbox_limits *limits);
void policy_free(policy *p);

/* Load the directory if its content changed since the last attempt (force:
 * always). Returns 1 when a new generation is in force, 0 when nothing
 * changed, -1 when loading failed (the previous generation stays, the error
 * is kept for policy_status and logged). */
int policy_reload(policy *p, int force);

/* What a reload attempt did, for the caller to audit (policy.c uses no
 * store). attempted is 0 when nothing new was tried (the same content, or
 * the same unreadable directory): nothing to audit. */
struct policy_reload_event {
    int attempted;
    int loaded;                  /* 1: in force now; 0: refused, error says why */
    char sha256[65];             /* of the files tried; "" when unreadable */
    char files[512];             /* their names, comma-separated (cut when long) */
    struct policy_error error;
};

/* policy_reload, telling *ev (may be NULL) what was tried. */
int policy_reload_with(policy *p, int force, struct policy_reload_event *ev);

/* 1 once some generation has loaded. */
int policy_loaded(policy *p);

/* ---- generations --------------------------------------------------------- */

/* The generation in force with a reference taken, or NULL before any loaded.
 * The caller gives it back with policy_release (NULL is a no-op); until then
 * every policy_gen_* answer about it stays the same, reloads or not. */
struct policy_gen *policy_acquire(policy *p);
void policy_release(struct policy_gen *g);

/* Declared queues of g, in declaration order (0 for NULL), and the name (and
 * bounds into out, may be NULL) of the i-th; NULL past the end. */
size_t policy_gen_count(const struct policy_gen *g);
const char *policy_gen_queue(const struct policy_gen *g, size_t i, struct policy_bounds *out);

/* Bounds of a declared queue in g. Returns 0, or -1 when it is unknown. */
int policy_gen_bounds(const struct policy_gen *g, const char *queue, struct policy_bounds *out);

/* 1 when g has a validate() hook. */
int policy_gen_has_validate(const struct policy_gen *g);

/* ---- the generation in force (each call takes and gives back a reference) -- */

/* Bounds of a declared queue. Returns 0, or -1 when the queue is unknown. */
int policy_bounds(policy *p, const char *queue, struct policy_bounds *out);

/* Copy up to max declared queue names, in declaration order. Returns the
 * number of queues declared. */
size_t policy_queue_names(policy *p, char (*names)[UTIL_NAME_MAX + 1], size_t max);

/* Run the validate() hook of g under its eval lock (other validations of g
 * wait; nothing else does). Returns 1 accepted, 0 refused (msg says why),
 * POLICY_NEEDS_APPROVAL when validate returned "approval" (msg: its second
 * value, or a default), -1 when validate failed (runtime error,
 * instruction budget), msg the error.
 * Without a validate() (or a generation) every change is accepted. Must not
 * be called with a database transaction open. */
#define POLICY_NEEDS_APPROVAL 2
int policy_gen_validate(struct policy_gen *g, const struct policy_change *c,
                        const struct policy_ctx *ctx, char *msg, size_t msglen);
int policy_validate(policy *p, const struct policy_change *c, const struct policy_ctx *ctx,
                    char *msg, size_t msglen);

/* What alert rules see of one queue (q) and its live workers (w). */
struct policy_alert_worker {
    const char *id;
    int64_t concurrency, version, active;
    const char *state;           /* "ok" | "mismatch" */
    int paused;                  /* its last report said "paused": true */
};

struct policy_alert_queue {
    const char *queue;
    int64_t desired, version;
    int64_t waiting, active, delayed, failed;    /* depth */
    const struct policy_alert_worker *workers;
    size_t nworkers;
    int paused;                  /* the queue is paused: its workers take no new jobs */
};

/* A rule whose condition holds now. worker is "" for queue rules. */
struct policy_alert_hit {
    char alert[UTIL_NAME_MAX + 1];
    char queue[UTIL_NAME_MAX + 1];
    char worker[129];
    char severity[16];
    int64_t for_s;
    char message[256];
};

/* Evaluate every alert rule over the queues (tick context): queue rules
 * once per queue, worker rules once per live worker. A rule that raises or
 * runs out of budget is logged and counts as not holding. Returns the number
 * of hits; *out is malloc'd (may be NULL when 0), owned by the caller. */
size_t policy_gen_eval_alerts(struct policy_gen *g, const struct policy_alert_queue *qs, size_t nq,
                              struct policy_alert_hit **out);
size_t policy_eval_alerts(policy *p, const struct policy_alert_queue *qs, size_t nq,
                          struct policy_alert_hit **out);

/* {"loaded_at","files","sha256","last_error","queues","alerts","validate",
 * "failing_rules"}. New ref. */
json_t *policy_status(policy *p);

/* What the snapshot shows of the policy: {"sha256","loaded_at","files",
 * "last_error","failing_rules"}; failing_rules lists the alert rules whose
 * last evaluation raised: [{"alert","queue","error","at"}]. New ref. */
json_t *policy_banner_json(policy *p);

/* Bounds as the API shows them (unset limits are null). New ref. */
json_t *policy_bounds_json(const struct policy_bounds *b);

/* What one change can do now, from the bounds, the value in force and the
 * applied changes that moved it (the audit log's figures): the one
 * statement of the limits, which scaling.c's checks and the API's
 * change_window both read. reachable_min > reachable_max when no value is
 * (the value in force lies more than max_step outside the bounds). */
struct policy_window {
    int64_t reachable_min, reachable_max;
    int64_t cooldown_wait_ms;    /* until the cooldown allows a moving change; 0: now */
    int64_t budget_left;         /* moving changes left this hour; -1: unlimited */
    int64_t budget_wait_ms;      /* until the budget allows one; 0: now */
};

struct policy_recent {
    int64_t applied_last_hour;
    int64_t oldest_in_hour_ms;   /* 0 when none */
    int64_t last_applied_ms;     /* 0 when never */
};

void policy_bounds_window(const struct policy_bounds *b, int64_t current,
                          const struct policy_recent *recent, int64_t now_ms,
                          struct policy_window *out);

/* The change_window object of api.md for w at now_ms. New ref. */
json_t *policy_window_json(const struct policy_bounds *b, const struct policy_window *w,
                           int64_t now_ms);

/* Load dir offline (sluiced policy check). Returns 0, or -1 with the error. */
int policy_check_dir(const char *dir, const struct sandbox_limits *limits,
                     struct policy_error *err);

/* ---- notification sinks (notify "name" { ... }; notify.c delivers) --------- */

#define POLICY_MAX_SINKS 16
#define POLICY_SINK_URL_MAX 1024
#define POLICY_SINK_QUEUES 16
#define POLICY_SINK_ENV_MAX 128

/* The events a sink may ask for (bits of policy_sink.events). */
#define POLICY_EVENT_ALERT    1u
#define POLICY_EVENT_CHANGE   2u
#define POLICY_EVENT_REFUSAL  4u
#define POLICY_EVENT_APPROVAL 8u

struct policy_sink {
    char name[UTIL_NAME_MAX + 1];
    char url[POLICY_SINK_URL_MAX];     /* http:// or https:// */
    unsigned events;                   /* POLICY_EVENT_* */
    char format[16];                   /* "json" | "alertmanager" | "slack" */
    char secret_env[POLICY_SINK_ENV_MAX];   /* "" when unsigned */
    char queues[POLICY_SINK_QUEUES][UTIL_NAME_MAX + 2];   /* names or "prefix*"; none: all */
    size_t nqueues;
};

/* The bit of an event name ("alert", "change", "refusal", "approval"), 0
 * when unknown. */
unsigned policy_event_bit(const char *event);

/* Sinks of g in declaration order (0 for NULL), and the i-th (NULL past the
 * end); valid while the reference to g is held. */
size_t policy_gen_sink_count(const struct policy_gen *g);
const struct policy_sink *policy_gen_sink(const struct policy_gen *g, size_t i);

/* 1 when sink s takes events of that name about queue. */
int policy_sink_wants(const struct policy_sink *s, const char *event, const char *queue);

/* What notify.c tells the alert rules: per queue, how many notifications
 * about it are failing (q.notify_failures; 0 for queues not named). Copied;
 * replaces the previous set. */
void policy_set_notify_failures(policy *p, const char (*queues)[UTIL_NAME_MAX + 1],
                                const int64_t *counts, size_t n);

/* ---- autoscaling rules (autoscale "queue" { ... }; autoscale.c runs them) --- */

#define POLICY_AUTOSCALE_REASON_MAX 201   /* 200 bytes of the rule's reason kept */
#define POLICY_AUTOSCALE_ERROR_MAX 256
#define POLICY_UNKNOWN INT64_MIN          /* a figure not known: nil in Lua */

struct policy_autoscale {
    char queue[UTIL_NAME_MAX + 1];
    int64_t every_s;                      /* 1..3600, default 15 */
    int64_t hold_after_manual_s;          /* 0..86400, default 900 */
    int64_t scale_down_window_s;          /* 0..86400, default 300 */
    int dry_run, allow_above_confirm;     /* default false */
};

/* Rules of g in declaration order (0 for NULL), the i-th (NULL past the
 * end) and the one of queue (NULL: none); valid while g is held. */
size_t policy_gen_autoscale_count(const struct policy_gen *g);
const struct policy_autoscale *policy_gen_autoscale(const struct policy_gen *g, size_t i);
const struct policy_autoscale *policy_gen_autoscale_of(const struct policy_gen *g,
                                                       const char *queue, size_t *index);

/* What a rule sees as q; POLICY_UNKNOWN integers and NaN rates are nil. */
struct policy_autoscale_q {
    const char *queue;
    int64_t waiting, active, delayed, failed;
    int64_t desired, running, workers;
    double done_per_s, failed_per_s;
    int paused;
    const struct policy_bounds *b;
};

/* One entry of ctx.history (a sample of history.c) and of ctx.decisions. */
struct policy_autoscale_point {
    int64_t at_ms;
    int64_t waiting, active, desired, running, workers;
    double done_per_s, failed_per_s;
};

struct policy_autoscale_past {
    int64_t at_ms;
    int has_proposal;
    int64_t proposal;
    const char *outcome, *reason;
};

struct policy_autoscale_ctx {
    int64_t now_ms;
    const struct policy_autoscale_point *history;     /* oldest first */
    size_t nhistory;
    const struct policy_autoscale_past *decisions;    /* newest last */
    size_t ndecisions;
};

/* What the rule returned: desired (has_desired 0: nil, no opinion) and
 * its reason ("" when none). */
struct policy_autoscale_result {
    int has_desired;
    int64_t desired;
    char reason[POLICY_AUTOSCALE_REASON_MAX];
    char error[POLICY_AUTOSCALE_ERROR_MAX];
};

/* Run rule i of g, rule(q, ctx), in g's autoscale state under its lock and
 * the sandbox's budget. Returns 0 with *out, or -1 with out->error when the
 * rule raised, ran out of budget or returned something else than an
 * integer (or nil) and an optional string. Never call it holding a store
 * transaction or another policy lock. */
int policy_gen_autoscale_run(struct policy_gen *g, size_t i, const struct policy_autoscale_q *q,
                             const struct policy_autoscale_ctx *ctx,
                             struct policy_autoscale_result *out);

#endif
