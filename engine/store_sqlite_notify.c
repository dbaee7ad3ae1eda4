/* store_sqlite_notify.c — the SQLite backend's notification queue
 * (store.h's store_notify_*): the outbox of webhook deliveries and the
 * cursor over the audit log. Shares the pool and statement helpers of
 * store_sqlite.c through store_sqlite_int.h. */
#include "store_sqlite_int.h"

#include <string.h>

int sq_notify_cursor(void *h, int64_t *last_audit_id) {
    int rc = sq_run(h, NULL, "INSERT OR IGNORE INTO notify_cursor (one, last_audit_id)"
                             " SELECT 1, COALESCE(MAX(id), 0) FROM scaling_audit", "notify_cursor",
                    SQ_NO_ARGS);
    if (rc != STORE_OK) return rc;
    return sq_int(h, NULL, "SELECT last_audit_id FROM notify_cursor WHERE one = 1", "notify_cursor",
                  last_audit_id, SQ_NO_ARGS);
}

int sq_notify_enqueue(void *h, const struct store_notify_new *rows, size_t n,
                      int64_t expected_cursor, int64_t new_cursor) {
    struct sq_conn *c = sq_acquire(h);
    int64_t cur = 0;
    int rc;
    if (c == NULL) return STORE_UNAVAILABLE;
    if ((rc = sq_exec(c->db, "BEGIN IMMEDIATE")) != STORE_OK) goto done;
    if (new_cursor > 0) {
        rc = sq_int(NULL, c, "SELECT last_audit_id FROM notify_cursor WHERE one = 1", "notify_enqueue",
                    &cur, SQ_NO_ARGS);
        if (rc == STORE_OK && cur != expected_cursor) rc = STORE_NOT_FOUND;
        if (rc != STORE_OK) goto done;
    }
    for (size_t i = 0; i < n && rc == STORE_OK; i++) {
        const struct store_notify_new *r = &rows[i];
        rc = sq_run(NULL, c, "INSERT INTO notify_outbox (sink, event, event_id, queue, payload,"
                             " created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
                             " ON CONFLICT (sink, event_id) DO NOTHING", "notify_enqueue",
                    SQ_ARGS(SQ_TEXT(r->sink), SQ_TEXT(r->event), SQ_TEXT(r->event_id),
                            SQ_TEXT(r->queue), SQ_TEXT(r->payload), SQ_INT(r->created_ms)));
    }
    if (rc == STORE_OK && new_cursor > 0)
        rc = sq_run(NULL, c, "UPDATE notify_cursor SET last_audit_id = ? WHERE one = 1",
                    "notify_enqueue", SQ_ARGS(SQ_INT(new_cursor)));
    if (rc == STORE_OK) rc = sq_exec(c->db, "COMMIT");
done:
    return sq_write_done(c, rc);              /* rolls back what did not commit */
}

#define SQ_NOTIFY_COLS "id, sink, event, event_id, queue, status, created_at, next_attempt_at," \
                       " COALESCE(last_attempt_at, 0), COALESCE(delivered_at, 0), attempts," \
                       " COALESCE(last_status, 0), COALESCE(last_error, '')"

static void sq_read_notification(sqlite3_stmt *st, void *elem) {
    struct store_notification *x = elem;
    x->id = sqlite3_column_int64(st, 0);
    util_copy(x->sink, sizeof x->sink, sq_text(st, 1));
    util_copy(x->event, sizeof x->event, sq_text(st, 2));
    util_copy(x->event_id, sizeof x->event_id, sq_text(st, 3));
    util_copy(x->queue, sizeof x->queue, sq_text(st, 4));
    util_copy(x->status, sizeof x->status, sq_text(st, 5));
    x->created_ms = sqlite3_column_int64(st, 6);
    x->next_attempt_ms = sqlite3_column_int64(st, 7);
    x->last_attempt_ms = sqlite3_column_int64(st, 8);
    x->delivered_ms = sqlite3_column_int64(st, 9);
    x->attempts = sqlite3_column_int(st, 10);
    x->last_status = sqlite3_column_int(st, 11);
    util_copy(x->last_error, sizeof x->last_error, sq_text(st, 12));
}

static void sq_read_due(sqlite3_stmt *st, void *elem) {
    struct store_notify_due *d = elem;
    sq_read_notification(st, &d->n);
    util_copy(d->payload, sizeof d->payload, sq_text(st, 13));
}

int sq_notify_pending(void *h, const char *sink, int limit, struct store_notify_due **out,
                      size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;
    return sq_collect(h, NULL, "SELECT " SQ_NOTIFY_COLS ", payload FROM notify_outbox"
                               " WHERE status = 'pending' AND (?1 IS NULL OR sink = ?1)"
                               " ORDER BY id LIMIT ?2",
                      "notify_pending", sizeof **out, sq_read_due, (void **)out, n,
                      SQ_ARGS(SQ_TEXT(sink), SQ_INT(limit)));
}

int sq_notify_mark(void *h, const struct store_notify_attempt *a) {
    int delivered = strcmp(a->status, "delivered") == 0;
    return sq_run(h, NULL, "UPDATE notify_outbox SET status = ?1, attempts = attempts + 1,"
                           " last_attempt_at = ?2, next_attempt_at = ?3, delivered_at = ?4,"
                           " last_status = ?5, last_error = ?6 WHERE id = ?7", "notify_mark",
                  SQ_ARGS(SQ_TEXT(a->status), SQ_INT(a->now_ms), SQ_INT(a->next_attempt_ms),
                          SQ_OPT(delivered ? a->now_ms : 0), SQ_OPT(a->http_status),
                          SQ_TEXT(a->error[0] ? a->error : NULL), SQ_INT(a->id)));
}

int sq_notify_list(void *h, const char *sink, const char *status, int limit,
                   struct store_notification **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;
    return sq_collect(h, NULL, "SELECT " SQ_NOTIFY_COLS " FROM notify_outbox"
                               " WHERE (?1 IS NULL OR sink = ?1) AND (?2 IS NULL OR status = ?2)"
                               " ORDER BY id DESC LIMIT ?3",
                      "notify_list", sizeof **out, sq_read_notification, (void **)out, n,
                      SQ_ARGS(SQ_TEXT(sink), SQ_TEXT(status), SQ_INT(limit)));
}

static void sq_read_summary(sqlite3_stmt *st, void *elem) {
    struct store_notify_summary *x = elem;
    util_copy(x->sink, sizeof x->sink, sq_text(st, 0));
    x->pending = sqlite3_column_int64(st, 1);
    x->delivered = sqlite3_column_int64(st, 2);
    x->failed = sqlite3_column_int64(st, 3);
    x->last_delivered_ms = sqlite3_column_int64(st, 4);
    x->failing = sqlite3_column_int64(st, 5);
}

int sq_notify_summarize(void *h, struct store_notify_summary **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT sink, SUM(status = 'pending'), SUM(status = 'delivered'),"
                               " SUM(status = 'failed'), COALESCE(MAX(delivered_at), 0),"
                               " SUM(status = 'pending' AND attempts > 0)"
                               " FROM notify_outbox GROUP BY sink ORDER BY sink",
                      "notify_summarize", sizeof **out, sq_read_summary, (void **)out, n, SQ_NO_ARGS);
}

int sq_notify_prune(void *h, int64_t before_ms, int64_t keep, int64_t *deleted) {
    struct sq_conn *c = sq_acquire(h);
    int rc;
    *deleted = 0;
    if (c == NULL) return STORE_UNAVAILABLE;
    rc = sq_run(NULL, c, "DELETE FROM notify_outbox WHERE status <> 'pending' AND (created_at < ?1"
                         " OR id <= (SELECT id FROM notify_outbox WHERE status <> 'pending'"
                         " ORDER BY id DESC LIMIT 1 OFFSET ?2))", "notify_prune",
                SQ_ARGS(SQ_INT(before_ms), SQ_INT(keep)));
    if (rc == STORE_OK) *deleted = sqlite3_changes(c->db);
    return sq_write_done(c, rc);
}
