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
 * announces nothing. Uses store.h, policy.h, flags.h and audit.h. */
#ifndef SLUICE_SCALING_H
#define SLUICE_SCALING_H

#include <jansson.h>
#include <stdint.h>

#include "app.h"

#define SCALING_HISTORY_MAX 500

/* Why a call failed, in the terms of the API error envelope. */
struct scaling_error {
    int status;                  /* HTTP status */
    char code[32];               /* api.md error code */
    char message[512];
    json_t *details;             /* owned; NULL when none */
    int64_t retry_after_s;       /* 429 only */
};

void scaling_error_clear(struct scaling_error *err);

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
};

/* One Target (api.md), or NULL with err filled (404 unknown_queue, 503). New ref. */
json_t *scaling_get(struct app *app, const char *queue, struct scaling_error *err);

/* {"items":[Target...]} for every declared queue, in declaration order. */
json_t *scaling_list(struct app *app, struct scaling_error *err);

/* Judge and apply a change. Returns the new Target plus "previous",
 * "changed" (false when the value was already the current one: nothing was
 * stored) and "audit_id" (null when not changed), or NULL with err filled
 * (and the refusal audited when it reached the checks). */
json_t *scaling_set(struct app *app, const struct scaling_change *c, struct scaling_error *err);

/* Admit one write made with token_id (NULL: sluiced's own) under the
 * per-token write rate. Returns 1, or 0 with err filled: 429 rate_limited,
 * details.limit "token", and retry_after_s. Not audited. queue (may be NULL)
 * names a declared queue to count the refusal for in the metrics. Scaling
 * changes call it themselves; other writes (flags) call it before writing. */
int scaling_admit_write(struct app *app, const char *token_id, const char *queue,
                        struct scaling_error *err);

/* Put back every temporary override whose time is up, each as a change of
 * its own (source "expiry", actor "sluice") through the same transaction
 * and outbox as any change; rate limits and confirmation do not apply, the
 * bounds do (the value is clamped into them). Returns how many were put
 * back, or -1 when the store could not be read. */
int scaling_expire_due(struct app *app);

/* {"items":[AuditEntry...],"next_before":id|null}, newest first. queue NULL:
 * every entry (flags included). before_id 0: from the newest. */
json_t *scaling_history(struct app *app, const char *queue, int64_t before_id, int limit,
                        struct scaling_error *err);

#endif
