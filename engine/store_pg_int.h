/* store_pg_int.h — what the two files of the PostgreSQL backend share
 * (private: only store_pg*.c include it).
 *
 * store_pg.c owns the connection pool, migrations, targets, the audit log,
 * the judged change and the outbox; store_pg_admin.c owns flags, tokens,
 * sessions, approvals and the audit log's export and prune. The pg_ prefix marks the
 * backend's own names. */
#ifndef SLUICE_STORE_PG_INT_H
#define SLUICE_STORE_PG_INT_H

#include <libpq-fe.h>

#include "store_impl.h"
#include "store_pool.h"

#define PG_PREPARED_MAX 64
#define PG_MIGRATION_LOCK 4711000

struct pg_store;

/* One pooled connection; also the handle of a transaction on it. */
struct pg_slot {
    struct pg_store *owner;
    PGconn *c;
    const char *prepared[PG_PREPARED_MAX];   /* SQL texts prepared on c */
    int nprepared;
    int configured;              /* the session settings are in force on c */
};

struct pg_store {
    char url[1024];
    int size;
    int lock_timeout_ms, statement_timeout_ms, idle_tx_timeout_ms;   /* 0: the server's */
    struct store_pool pool;      /* its lock also guards the three timeouts */
    struct pg_slot slots[STORE_POOL_MAX];
};

/* A parameter as text: the number v written into buf, which is returned. */
#define I64(buf, v) (snprintf((buf), sizeof(buf), "%lld", (long long)(v)), (buf))

/* Borrow a pooled connection, connected and configured (NULL: the database
 * cannot be reached), and give it back; pg_release rolls back a transaction
 * left open, so an abandoned change writes nothing. */
struct pg_slot *pg_acquire(struct pg_store *s);
void pg_release(struct pg_store *s, struct pg_slot *p);

/* Execute sql (prepared on first use on this connection) with n text
 * parameters (NULL means SQL NULL). Returns the result or NULL; *rc set. */
PGresult *pg_run(struct pg_slot *p, const char *sql, int n, const char *const *params,
                 const char *what, int *rc);

/* Plain SQL without parameters (transactions, migrations); a store_rc. */
int pg_exec(struct pg_slot *p, const char *sql, const char *what);

/* A column as an integer (NULL: 0) and as text (never NULL). */
int64_t pg_int(PGresult *r, int row, int col);
const char *pg_text(PGresult *r, int row, int col);

/* Run a read on given (or a pooled connection when NULL) and hand each row
 * to read(), into a malloc'd array of elements of size bytes; the caller
 * owns *out. */
int pg_collect(struct pg_store *s, struct pg_slot *given, const char *sql, int n,
               const char *const *params, size_t size,
               void (*read)(PGresult *r, int row, void *elem), void **out, size_t *count);

/* Run a read on given (or a pooled connection when NULL) and hand its first
 * row to read(), into out; STORE_NOT_FOUND when there is none. */
int pg_row(struct pg_store *s, struct pg_slot *given, const char *sql, const char *what, int n,
           const char *const *params, void (*read)(PGresult *r, int row, void *elem), void *out);

/* Append an audit entry on p (inside the caller's transaction); its id is
 * written back into e->id. */
int pg_insert_audit(struct pg_slot *p, struct store_audit *e);

/* The columns every audit read selects, and the reader of one row. */
#define PG_AUDIT_COLS "id, kind, subject, from_value, to_value, version, actor, source, reason," \
                      " outcome, COALESCE(error_code, ''), at, request_id, from_version," \
                      " COALESCE(approval_id, '')"
void pg_read_audit(PGresult *r, int row, void *elem);

/* store_pg_admin.c */
int pg_identity(void *h, char out[STORE_IDENTITY_MAX + 1]);
int pg_get_flag(void *h, const char *env, const char *name, struct store_flag *out);
int pg_tx_get_flag(void *tx, const char *env, const char *name, struct store_flag *out);
int pg_tx_write_flag(void *tx, const char *env, const struct store_flag *f);
int pg_put_token(void *h, const struct store_token *t);
int pg_get_token(void *h, const char *id, struct store_token *out);
int pg_list_tokens(void *h, struct store_token **out, size_t *n);
int pg_revoke_token(void *h, const char *id, int64_t now_ms);
int pg_put_session(void *h, const struct store_session *x, int max_per_token);
int pg_get_session(void *h, const char *id_hash, struct store_session *out);
int pg_delete_session(void *h, const char *id_hash);
int pg_sweep_sessions(void *h, int64_t now_ms, int64_t *deleted);
int pg_list_audit_oldest(void *h, int64_t after_id, int64_t before_id, int limit,
                         struct store_audit **out, size_t *n);
int pg_audit_bound_at(void *h, int64_t at_ms, int64_t *before_id);
int pg_prune_audit(void *h, const struct store_prune *pr, struct store_prune_result *out);
int pg_tx_get_approval(void *tx, const char *id, struct store_approval *out);
int pg_tx_pending_approval(void *tx, const char *queue, struct store_approval *out);
int pg_tx_insert_approval(void *tx, const struct store_approval *a);
int pg_tx_update_approval(void *tx, const struct store_approval *a);
int pg_list_approvals(void *h, const char *status, const char *queue, int limit,
                      struct store_approval **out, size_t *n);

/* store_pg_notify.c */
int pg_notify_cursor(void *h, int64_t *last_audit_id);
int pg_notify_enqueue(void *h, const struct store_notify_new *rows, size_t n,
                      int64_t expected_cursor, int64_t new_cursor);
int pg_notify_pending(void *h, const char *sink, int limit, struct store_notify_due **out,
                      size_t *n);
int pg_notify_mark(void *h, const struct store_notify_attempt *a);
int pg_notify_list(void *h, const char *sink, const char *status, int limit,
                   struct store_notification **out, size_t *n);
int pg_notify_summarize(void *h, struct store_notify_summary **out, size_t *n);
int pg_notify_prune(void *h, int64_t before_ms, int64_t keep, int64_t *deleted);

/* store_pg_autoscale.c */
int pg_autoscale_hold(void *h, const struct store_autoscale_hold *x);
int pg_autoscale_holds(void *h, struct store_autoscale_hold **out, size_t *n);
int pg_autoscale_put_state(void *h, const char *queue, const char *state, int64_t now_ms);
int pg_autoscale_states(void *h, struct store_autoscale_state **out, size_t *n);

#endif
