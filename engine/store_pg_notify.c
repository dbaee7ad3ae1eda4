/* store_pg_notify.c — the PostgreSQL backend's notification queue
 * (store.h's store_notify_*): the outbox of webhook deliveries and the
 * cursor over the audit log. Replicas share both; only the leader writes
 * them, and the cursor is moved under a row lock with the expected value
 * checked, so a leader that lost its lease mid-pass enqueues nothing.
 * Shares the pool and statement helpers of store_pg.c. */
#include "store_pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pg_notify_cursor(void *h, int64_t *last_audit_id) {
    struct pg_store *s = h;
    int rc;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PQclear(pg_run(p, "INSERT INTO notify_cursor (one, last_audit_id)"
                      " SELECT 1, COALESCE(MAX(id), 0) FROM scaling_audit"
                      " ON CONFLICT (one) DO NOTHING", 0, NULL, "notify_cursor", &rc));
    if (rc == STORE_OK) {
        PGresult *r = pg_run(p, "SELECT last_audit_id FROM notify_cursor WHERE one = 1", 0, NULL,
                             "notify_cursor", &rc);
        if (r && PQntuples(r) == 1) *last_audit_id = pg_int(r, 0, 0);
        else if (r) rc = STORE_FAILED;
        PQclear(r);
    }
    pg_release(s, p);
    return rc;
}

int pg_notify_enqueue(void *h, const struct store_notify_new *rows, size_t n,
                      int64_t expected_cursor, int64_t new_cursor) {
    struct pg_store *s = h;
    int rc;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    if ((rc = pg_exec(p, "BEGIN", "notify_enqueue")) != STORE_OK) goto done;
    if (new_cursor > 0) {
        PGresult *r = pg_run(p, "SELECT last_audit_id FROM notify_cursor WHERE one = 1 FOR UPDATE",
                             0, NULL, "notify_enqueue", &rc);
        if (rc == STORE_OK && (PQntuples(r) != 1 || pg_int(r, 0, 0) != expected_cursor))
            rc = STORE_NOT_FOUND;
        PQclear(r);
        if (rc != STORE_OK) goto done;
    }
    for (size_t i = 0; i < n && rc == STORE_OK; i++) {
        char at[24];
        const struct store_notify_new *x = &rows[i];
        const char *pv[6] = {x->sink, x->event, x->event_id, x->queue, x->payload,
                             I64(at, x->created_ms)};
        PQclear(pg_run(p, "INSERT INTO notify_outbox (sink, event, event_id, queue, payload,"
                          " created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6::bigint,"
                          " $6::bigint) ON CONFLICT (sink, event_id) DO NOTHING",
                       6, pv, "notify_enqueue", &rc));
    }
    if (rc == STORE_OK && new_cursor > 0) {
        char c[24];
        const char *pv[1] = {I64(c, new_cursor)};
        PQclear(pg_run(p, "UPDATE notify_cursor SET last_audit_id = $1::bigint WHERE one = 1", 1, pv,
                       "notify_enqueue", &rc));
    }
    if (rc == STORE_OK) rc = pg_exec(p, "COMMIT", "notify_enqueue");
done:
    pg_release(s, p);                         /* rolls back what did not commit */
    return rc;
}

#define PG_NOTIFY_COLS "id, sink, event, event_id, queue, status, created_at, next_attempt_at," \
                       " COALESCE(last_attempt_at, 0), COALESCE(delivered_at, 0), attempts," \
                       " COALESCE(last_status, 0), COALESCE(last_error, '')"

static void pg_read_notification(PGresult *r, int row, void *elem) {
    struct store_notification *x = elem;
    x->id = pg_int(r, row, 0);
    util_copy(x->sink, sizeof x->sink, pg_text(r, row, 1));
    util_copy(x->event, sizeof x->event, pg_text(r, row, 2));
    util_copy(x->event_id, sizeof x->event_id, pg_text(r, row, 3));
    util_copy(x->queue, sizeof x->queue, pg_text(r, row, 4));
    util_copy(x->status, sizeof x->status, pg_text(r, row, 5));
    x->created_ms = pg_int(r, row, 6);
    x->next_attempt_ms = pg_int(r, row, 7);
    x->last_attempt_ms = pg_int(r, row, 8);
    x->delivered_ms = pg_int(r, row, 9);
    x->attempts = (int)pg_int(r, row, 10);
    x->last_status = (int)pg_int(r, row, 11);
    util_copy(x->last_error, sizeof x->last_error, pg_text(r, row, 12));
}

static void pg_read_due(PGresult *r, int row, void *elem) {
    struct store_notify_due *d = elem;
    pg_read_notification(r, row, &d->n);
    util_copy(d->payload, sizeof d->payload, pg_text(r, row, 13));
}

int pg_notify_pending(void *h, const char *sink, int limit, struct store_notify_due **out,
                      size_t *n) {
    char l[24];
    const char *pv[2] = {sink, I64(l, limit)};
    return pg_collect(h, NULL, "SELECT " PG_NOTIFY_COLS ", payload FROM notify_outbox"
                               " WHERE status = 'pending' AND ($1::text IS NULL OR sink = $1)"
                               " ORDER BY id LIMIT $2::int",
                      2, pv, sizeof **out, pg_read_due, (void **)out, n);
}

int pg_notify_mark(void *h, const struct store_notify_attempt *a) {
    struct pg_store *s = h;
    char now[24], next[24], st[24], id[24];
    int delivered = strcmp(a->status, "delivered") == 0, rc;
    const char *pv[7] = {a->status, I64(now, a->now_ms), I64(next, a->next_attempt_ms),
                         delivered ? now : NULL, a->http_status ? I64(st, a->http_status) : NULL,
                         a->error[0] ? a->error : NULL, I64(id, a->id)};
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PQclear(pg_run(p, "UPDATE notify_outbox SET status = $1, attempts = attempts + 1,"
                      " last_attempt_at = $2::bigint, next_attempt_at = $3::bigint,"
                      " delivered_at = $4::bigint, last_status = $5::int, last_error = $6"
                      " WHERE id = $7::bigint", 7, pv, "notify_mark", &rc));
    pg_release(s, p);
    return rc;
}

int pg_notify_list(void *h, const char *sink, const char *status, int limit,
                   struct store_notification **out, size_t *n) {
    char l[24];
    const char *pv[3] = {sink, status, I64(l, limit)};
    return pg_collect(h, NULL, "SELECT " PG_NOTIFY_COLS " FROM notify_outbox"
                               " WHERE ($1::text IS NULL OR sink = $1) AND ($2::text IS NULL OR status = $2)"
                               " ORDER BY id DESC LIMIT $3::int",
                      3, pv, sizeof **out, pg_read_notification, (void **)out, n);
}

static void pg_read_summary(PGresult *r, int row, void *elem) {
    struct store_notify_summary *x = elem;
    util_copy(x->sink, sizeof x->sink, pg_text(r, row, 0));
    x->pending = pg_int(r, row, 1);
    x->delivered = pg_int(r, row, 2);
    x->failed = pg_int(r, row, 3);
    x->last_delivered_ms = pg_int(r, row, 4);
    x->failing = pg_int(r, row, 5);
}

int pg_notify_summarize(void *h, struct store_notify_summary **out, size_t *n) {
    return pg_collect(h, NULL, "SELECT sink, COUNT(*) FILTER (WHERE status = 'pending'),"
                               " COUNT(*) FILTER (WHERE status = 'delivered'),"
                               " COUNT(*) FILTER (WHERE status = 'failed'),"
                               " COALESCE(MAX(delivered_at), 0),"
                               " COUNT(*) FILTER (WHERE status = 'pending' AND attempts > 0)"
                               " FROM notify_outbox GROUP BY sink ORDER BY sink",
                      0, NULL, sizeof **out, pg_read_summary, (void **)out, n);
}

int pg_notify_prune(void *h, int64_t before_ms, int64_t keep, int64_t *deleted) {
    struct pg_store *s = h;
    char b[24], k[24];
    const char *pv[2] = {I64(b, before_ms), I64(k, keep)};
    int rc;
    *deleted = 0;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PGresult *r = pg_run(p, "DELETE FROM notify_outbox WHERE status <> 'pending' AND"
                            " (created_at < $1::bigint OR id <= (SELECT id FROM notify_outbox"
                            " WHERE status <> 'pending' ORDER BY id DESC LIMIT 1 OFFSET $2::bigint))",
                         2, pv, "notify_prune", &rc);
    if (r) *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    pg_release(s, p);
    return rc;
}
