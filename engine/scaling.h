/* scaling.h — the domain service: list, read and change the desired
 * concurrency of the queues the policies declare, and read the audit log.
 *
 * A change runs the checks of lua.md in their fixed order: writes flag →
 * known queue → expected_version → bounds → step → confirmation →
 * cooldown/budget → validate(). The first failing check decides the answer.
 * Everything from expected_version to the hourly budget is judged inside
 * the store's write transaction, from the audit log, so limits hold across
 * restarts and replicas. validate() is Lua and may be slow, so it never runs
 * there: it judges a snapshot read just before, and the transaction applies
 * its verdict only when the queue is still in the state it judged (else the
 * change is judged again, up to three times, then 503 store_busy). One
 * policy generation, held for the whole call, decides every check. Refused attempts (writes_disabled onwards) are audited with their
 * error code. Before all of them, the caller's token must have writes left
 * (store_admit_write); that refusal is not audited, so that it cannot grow
 * the database. An accepted change to the current value stores, audits and
 * announces nothing.
 *
 * Change control (issue 18): a change that passes every check but moves
 * above the queue's approve_above (or that validate() answers "approval"
 * for) is stored as a pending approval in the same transaction instead of
 * being applied; approving it runs scaling_set again, as of that moment,
 * with the approval's id (which skips that last check). A revert is a
 * scaling_set with the value an older version set. The leader's ticker
 * expires pending approvals (scaling_expire_approvals).
 *
 * The domain answers in domain terms: targets, outcomes and audit rows, and
 * an api_error with an api.md code when a call fails. It picks no HTTP
 * status and renders no JSON: bind_scaling.c does both. What follows a
 * committed change (relay, live events, metrics, log) is announce.c's.
 * Uses store.h, policy.h, flags.h and announce.h. */
#ifndef SLUICE_SCALING_H
#define SLUICE_SCALING_H

#include <stdint.h>

#include "apierr.h"
#include "app.h"
#include "store.h"
#include "policy.h"

#define SCALING_HISTORY_MAX 500

/* A queue as the API shows it: its stored state (or its policy default at
 * version 0), its bounds and, when known (has_window), what a change can
 * do at window_at_ms. */
struct scaling_target {
    struct store_target t;
    struct policy_bounds b;
    int has_window;
    struct policy_window window;
    int64_t window_at_ms;
};

struct scaling_change {
    const char *queue;
    int64_t to;
    const char *reason;
    int confirm;
    int has_expected_version;
    int64_t expected_version;
    int64_t duration_s;          /* 0: permanent */
    const char *actor;
    unsigned scopes;
    const char *source;          /* ui | api | cli | expiry | policy */
    const char *request_id;
    const char *token_id;        /* the caller's API token (sessions: theirs); NULL: sluiced */
    int64_t from_version;        /* a revert: the version whose value this is; 0: none */
    const char *approval_id;     /* applying an approved change: it needs no approval again */
    int admitted;                /* 1: the caller already passed scaling_admit_write */
    /* A refusal with this error code is not audited (store_change's
     * quiet_refusal: the autoscaler's unchanged repeat); NULL: audited. */
    const char *quiet_refusal;
};

/* An accepted change: the queue after it, the value before it, whether
 * anything was stored (0 for a change to the current value) and the audit
 * entry's id (0 when not changed). */
struct scaling_outcome {
    struct scaling_target after;
    int64_t previous;
    int changed;
    int64_t audit_id;
    int pending;                 /* 1: nothing changed, the change waits for approval */
    struct store_approval approval;   /* pending: the approval stored */
};

/* One declared queue, with its change window (read in one snapshot with
 * the row). Returns 0, or -1 with err (unknown_queue, store_*). */
int scaling_get(struct app *app, const char *queue, struct scaling_target *out,
                struct api_error *err);

/* Every declared queue, in declaration order, from one policy generation
 * and one listing query. Returns 0 with *out malloc'd (the caller frees
 * it), or -1 with err. */
int scaling_list(struct app *app, struct scaling_target **out, size_t *n, struct api_error *err);

/* Judge and apply a change. Returns 0 with *out filled, or -1 with err
 * (and the refusal audited when it reached the checks). A change that
 * passes every check but goes above the queue's approve_above (or that
 * validate() asks approval for) is stored as a pending approval instead:
 * 0 with out->pending 1 and out->approval; when the queue has a pending
 * approval already, -1 with approval_pending (409). */
int scaling_set(struct app *app, const struct scaling_change *c, struct scaling_outcome *out,
                struct api_error *err);

/* Admit one write made with token_id (NULL: sluiced's own) under the
 * per-token write rate. Returns 1, or 0 with err filled: rate_limited,
 * details.limit "token", and retry_after_s. Not audited. queue (may be NULL)
 * names a declared queue to count the refusal for in the metrics. Scaling
 * changes call it themselves; other writes (flags) call it before writing. */
int scaling_admit_write(struct app *app, const char *token_id, const char *queue,
                        struct api_error *err);

/* Put back every temporary override whose time is up, each as a change of
 * its own (source "expiry", actor "sluice") through the same transaction
 * and outbox as any change; rate limits and confirmation do not apply, the
 * bounds do (the value is clamped into them). Timed pauses whose time is
 * up are resumed the same way (kind "pause", source "expiry"). Returns how many were put
 * back, or -1 when the store could not be read. */
int scaling_expire_due(struct app *app);

/* A pause (pause 1) or resume (pause 0) of a queue. */
struct scaling_pause {
    const char *queue;
    int pause;
    int64_t duration_s;          /* pause: 0 until resumed, else it ends by itself */
    const char *reason, *actor, *source, *request_id;
    const char *token_id;        /* as scaling_change's */
};

/* Pause or resume a queue: the token's write rate, then the writes flag
 * (refusal audited as kind "pause"), then a known queue; no bounds, step,
 * cooldown, budget or validate() apply (the value does not move). A pause
 * is a new version of the queue that keeps desired, relayed as any change
 * ("paused" in protocol.md's desired state), audited kind "pause" from 0
 * to 1 (resume: 1 to 0). Pausing a paused queue or resuming a running one
 * stores nothing: 0 with out->changed 0. A timed pause ends by itself on
 * the leader (scaling_expire_due). Returns 0 with *out, or -1 with err. */
int scaling_pause(struct app *app, const struct scaling_pause *p, struct scaling_outcome *out,
                  struct api_error *err);

/* Audit entries, newest first: at most limit (1..SCALING_HISTORY_MAX, else
 * 50) of those f lets through into *rows (malloc'd, the caller frees), and
 * *next_before, the id to page from, or 0 on the last page. queue (NULL:
 * none) is a declared queue whose history this is (unknown_queue
 * otherwise); it and f->subject each mean that queue's scaling entries
 * unless f->kind says another kind. f NULL: no other filter. Returns 0, or
 * -1 with err. */
int scaling_history(struct app *app, const char *queue, const struct store_audit_filter *f,
                    int limit, struct store_audit **rows, size_t *n, int64_t *next_before,
                    struct api_error *err);

/* ---- approvals and revert (issue 18) ---------------------------------------- */

/* The person deciding on an approval. */
struct scaling_decider {
    const char *actor, *token_id;     /* token_id NULL: sluiced */
    unsigned scopes;
    const char *source, *request_id, *reason;
};

/* One approval. Returns 0, or -1 with err (unknown_approval, store_*). */
int scaling_approval_get(struct app *app, const char *id, struct store_approval *out,
                         struct api_error *err);

/* Approvals of status (NULL: any), newest first, at most limit (1..500).
 * Returns 0 with *out malloc'd (the caller frees it), or -1 with err. */
int scaling_approvals(struct app *app, const char *status, int limit,
                      struct store_approval **out, size_t *n, struct api_error *err);

/* Approve a pending approval and apply its change through every check as
 * of now (scaling_set: actor the requester, source/request id/rate limit
 * the approver's). Refused with forbidden when d is the requester (same
 * token id or same name), approval_expired / approval_decided (409) when it
 * is no longer pending, writes_disabled while writes are off (the approval
 * stays pending). *approval is the approval after the call (when found).
 * Returns 0 with *out the applied change; -1 with err: when the change
 * itself was refused, the approval stays "approved" with result
 * "rejected" and err is the change's own error (details.approval_id). */
int scaling_approve(struct app *app, const char *id, const struct scaling_decider *d,
                    struct store_approval *approval, struct scaling_outcome *out,
                    struct api_error *err);

/* Reject a pending approval (anyone with the scope, the requester too: a
 * withdrawal); d->reason is required by the route. Returns 0, or -1 as
 * scaling_approve. */
int scaling_reject(struct app *app, const char *id, const struct scaling_decider *d,
                   struct store_approval *approval, struct api_error *err);

/* Mark every pending approval past its expires_at expired (audited, actor
 * and source "sluiced"). The leader's ticker. Returns how many, or -1. */
int scaling_expire_approvals(struct app *app);

/* Apply the value that version to_version of c->queue set (its applied
 * audit entry) as the change c (c->to is ignored), audited with
 * from_version; every check applies, approve_above included. Returns as
 * scaling_set, or -1 with unknown_version (404) when no applied change of
 * the queue has that version. */
int scaling_revert(struct app *app, const struct scaling_change *c, int64_t to_version,
                   struct scaling_outcome *out, struct api_error *err);

#endif
