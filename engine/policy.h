/* policy.h — the operators' policies: loading the *.lua files of the policy
 * directory, hot reload with last-good fallback, the bounds of each queue, the
 * custom validate() hook, and the alert rule definitions (evaluated by
 * alerts.c later).
 *
 * A policy generation is one sandboxed Lua state plus the declarations
 * resolved into C structs. The current generation sits behind a mutex owned
 * here; a reload builds a complete new generation first and swaps it in only
 * when every file loaded and every declaration was valid. Uses sandbox.h. */
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

/* A policy host for dir (nothing loaded yet). NULL when out of memory. */
policy *policy_new(const char *dir, const struct sandbox_limits *limits);
void policy_free(policy *p);

/* Load the directory if its content changed since the last attempt (force:
 * always). Returns 1 when a new generation is in force, 0 when nothing
 * changed, -1 when loading failed (the previous generation stays, the error
 * is kept for policy_status and logged). */
int policy_reload(policy *p, int force);

/* 1 once some generation has loaded. */
int policy_loaded(policy *p);

/* Bounds of a declared queue. Returns 0, or -1 when the queue is unknown. */
int policy_bounds(policy *p, const char *queue, struct policy_bounds *out);

/* Copy up to max declared queue names, in declaration order. Returns the
 * number of queues declared. */
size_t policy_queue_names(policy *p, char (*names)[UTIL_NAME_MAX + 1], size_t max);

/* Run the validate() hook. Returns 1 accepted, 0 refused (msg says why), -1
 * when validate failed (runtime error, instruction budget), msg the error.
 * Without a validate() every change is accepted. */
int policy_validate(policy *p, const struct policy_change *c, const struct policy_ctx *ctx,
                    char *msg, size_t msglen);

/* What alert rules see of one queue (q) and its live workers (w). */
struct policy_alert_worker {
    const char *id;
    int64_t concurrency, version, active;
    const char *state;           /* "ok" | "mismatch" */
};

struct policy_alert_queue {
    const char *queue;
    int64_t desired, version;
    int64_t waiting, active, delayed, failed;    /* depth */
    const struct policy_alert_worker *workers;
    size_t nworkers;
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
size_t policy_eval_alerts(policy *p, const struct policy_alert_queue *qs, size_t nq,
                          struct policy_alert_hit **out);

/* {"loaded_at","files","sha256","last_error","queues","alerts","validate"}. New ref. */
json_t *policy_status(policy *p);

/* Bounds as the API shows them (unset limits are null). New ref. */
json_t *policy_bounds_json(const struct policy_bounds *b);

/* Load dir offline (sluiced policy check). Returns 0, or -1 with the error. */
int policy_check_dir(const char *dir, const struct sandbox_limits *limits,
                     struct policy_error *err);

#endif
