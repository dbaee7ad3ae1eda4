/* notify.h — webhook notifications: the policies' `notify "name" { ... }`
 * sinks hear about changes, refusals, approval steps (from the audit log)
 * and alert transitions, at least once, from a durable queue in the store.
 *
 * Enqueueing: the leader's notify thread reads the audit log past a cursor
 * kept in the store and, in one transaction with moving the cursor, writes
 * one outbox row per matching sink with the exact body to POST (rendered in
 * the sink's format then). Alert transitions are enqueued by the ticker
 * (announce_alert → notify_alert) on the leader. Nothing is lost across a
 * restart or a change of leader: rows and cursor are in the database.
 *
 * Delivery: the same thread POSTs due rows with libcurl (5 s to connect and
 * answer), oldest first and in order per sink (a sink's later rows wait
 * behind its first pending one); a 2xx marks a row delivered, anything else
 * schedules a retry with capped, jittered exponential back-off until
 * NOTIFY_MAX_ATTEMPTS or NOTIFY_MAX_AGE_MS, when the row is marked failed.
 * A crash between a 2xx and the mark delivers the row again: receivers
 * dedupe by X-Sluice-Event-Id. Bodies are signed with HMAC-SHA256 when the
 * sink names a secret_env that is set (notify_sign).
 *
 * Threads and locks: one thread of its own; it holds no lock during
 * network I/O (it copies the sink out of the policy generation first) and
 * takes notify.lock (a leaf: the stop flag and the wake-up) only to sleep.
 * Uses store, policy, leader, metrics, alerts (types). */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "alerts.h"
#include "app.h"
#include "policy.h"
#include "store.h"

#define NOTIFY_TIMEOUT_MS 5000           /* connect, and the whole request */
#define NOTIFY_BACKOFF_FIRST_MS 1000     /* after the first failure */
#define NOTIFY_BACKOFF_CAP_MS 300000     /* 5 min */
#define NOTIFY_MAX_ATTEMPTS 20           /* then the row is failed */
#define NOTIFY_MAX_AGE_MS (24 * 3600 * 1000LL)   /* or when older than this */
#define NOTIFY_GAP_WAIT_MS 10000         /* a hole in audit ids older than this is skipped */
#define NOTIFY_AUDIT_BATCH 50            /* audit entries read per pass */
#define NOTIFY_DELIVERY_BATCH 32         /* attempts per pass */
#define NOTIFY_KEEP_ROWS 10000           /* delivered and failed rows kept at most */
#define NOTIFY_KEEP_MS (7 * 24 * 3600 * 1000LL)  /* and for at most this long */
#define NOTIFY_SIGNATURE_MAX 72          /* "sha256=" + 64 hex + NUL */

/* One event, as rendered into a body. Exactly one of audit and alert is
 * set. */
struct notify_event {
    const char *kind;                    /* "change" | "refusal" | "approval" | "alert" */
    const char *id;                      /* event id: "audit-<id>" or "alert-..." */
    const char *queue;
    int64_t at_ms;
    const struct store_audit *audit;
    const struct alerts_state *alert;
    const char *alert_state;             /* "firing" | "resolved" */
};

/* The event kind an audit entry makes ("change", "refusal", "approval"),
 * or NULL when it makes none (flags, prunes, reloads). */
const char *notify_event_of_audit(const struct store_audit *e);

/* The body of ev in format ("json" | "alertmanager" | "slack"), malloc'd
 * and NUL-terminated (the caller frees), or NULL when out of memory or the
 * format is unknown. */
char *notify_render(const char *format, const struct notify_event *ev);

/* "sha256=<hex>" of HMAC-SHA256(secret, timestamp "." body) into out.
 * Returns 0, or -1 when OpenSSL fails. */
int notify_sign(const char *secret, const char *timestamp, const char *body, size_t len,
                char out[NOTIFY_SIGNATURE_MAX]);

/* The wait before attempt number attempts + 1, given attempts failed so
 * far (>= 1): NOTIFY_BACKOFF_FIRST_MS doubling up to NOTIFY_BACKOFF_CAP_MS,
 * each scaled by jitter in [0.8, 1.2) (OpenSSL's RAND). */
int64_t notify_backoff_ms(int attempts);

/* One pass of the audit cursor (the leader's notify thread): the entries
 * past it, up to NOTIFY_AUDIT_BATCH, become rows for the sinks of pol that
 * want them, in one transaction with moving the cursor. Returns how far
 * the cursor moved (0: nothing new, waiting for a hole in the ids, or
 * another leader moved it first), or a negative store_rc. */
int notify_enqueue_audit(store *st, policy *pol, int64_t now_ms);

struct notify;

/* Start the notify thread for app (its store, policy, leader, metrics).
 * Returns NULL with err when out of memory or the thread cannot start. */
struct notify *notify_start(struct app *app, char *err, size_t errlen);

/* Stop the thread (an attempt in flight is abandoned within a few ms; the
 * row stays pending) and free. NULL: no-op. */
void notify_stop(struct notify *n);

/* Wake the thread now (a change was committed): the audit log is read
 * again without waiting for the next second — when the policy declares a
 * sink; without one the next regular pass will do. NULL: no-op. */
void notify_kick(struct notify *n);

/* Enqueue an alert transition for every sink that takes alerts of its
 * queue. Leader only (a follower returns at once); called on the ticker. */
void notify_alert(struct notify *n, const struct alerts_state *a, const char *state, int64_t now_ms);

#endif
