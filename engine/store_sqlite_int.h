/* store_sqlite_int.h — what the two files of the SQLite backend share
 * (private: only store_sqlite*.c include it).
 *
 * store_sqlite.c owns the connections, the statement helpers, migrations,
 * targets, the audit log, the judged change and the outbox;
 * store_sqlite_admin.c owns flags, tokens, sessions, approvals and the
 * audit log's export and prune. The sq_ prefix marks the backend's own names.
 *
 * Statements go through four helpers (sq_run, sq_row, sq_int, sq_collect)
 * that prepare each SQL text once per connection and always reset the
 * statement before they return: a SELECT left un-reset would hold its WAL
 * read snapshot open and keep the log from ever being truncated. */
#ifndef SLUICE_STORE_SQLITE_INT_H
#define SLUICE_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stdatomic.h>

#include "store_impl.h"
#include "store_pool.h"

/* Distinct SQL texts a connection keeps prepared; more run unprepared. */
#define SQ_STMT_MAX 64

struct sq_store;

/* One pooled connection; also the handle of a transaction on it. */
struct sq_conn {
    struct sq_store *owner;
    sqlite3 *db;                 /* NULL until first used */
    int slot;
    int write;                   /* a STORE_TX_WRITE transaction: counts as a write when it ends */
    const char *sql[SQ_STMT_MAX];   /* the SQL texts prepared on db, by address */
    sqlite3_stmt *stmt[SQ_STMT_MAX];
    int nstmt;
};

struct sq_store {
    char path[1024];
    int busy_timeout_ms;
    struct store_pool pool;
    struct sq_conn conns[STORE_POOL_MAX];
    int claim_fd;                /* lock held by a serving sluiced, -1 */
    atomic_int full;             /* a write found the volume full, none succeeded since */
    atomic_uint writes;          /* successful writes, for the periodic WAL truncation */
};

/* Run SQL without parameters or results (transactions, migrations), never
 * cached; logs and maps errors. */
int sq_exec(sqlite3 *db, const char *sql);

/* Roll back the transaction of db if it is still open: SQLite ends some
 * on its own (a full volume, an I/O error), and a ROLLBACK then fails. */
void sq_rollback(sqlite3 *db);

/* Borrow a pooled connection (NULL: the database cannot be opened) and
 * give it back. sq_release rolls back a transaction left open, so that no
 * caller ever borrows a connection in the middle of someone else's. */
struct sq_conn *sq_acquire(struct sq_store *s);
void sq_release(struct sq_conn *c);

/* Give back the connection of a write that ended with rc: notes whether
 * the volume is full (logged once per episode) and now and then truncates
 * the write-ahead log. Returns rc. */
int sq_write_done(struct sq_conn *c, int rc);

/* A statement parameter: SQ_INT(v), SQ_TEXT(v) (NULL binds NULL),
 * SQ_OPT(v) (0 binds NULL), SQ_NULL. Parameters are numbered in order. */
enum sq_param_type { SQ_P_INT, SQ_P_TEXT, SQ_P_OPT, SQ_P_NULL };
struct sq_param {
    enum sq_param_type type;
    int64_t i;
    const char *text;
};
#define SQ_INT(v) ((struct sq_param){SQ_P_INT, (int64_t)(v), NULL})
#define SQ_TEXT(v) ((struct sq_param){SQ_P_TEXT, 0, (v)})
#define SQ_OPT(v) ((struct sq_param){SQ_P_OPT, (int64_t)(v), NULL})
#define SQ_NULL ((struct sq_param){SQ_P_NULL, 0, NULL})

/* The last two arguments of every helper: the parameters and their count. */
#define SQ_ARGS(...) ((const struct sq_param[]){__VA_ARGS__}), \
    (int)(sizeof((const struct sq_param[]){__VA_ARGS__}) / sizeof(struct sq_param))
#define SQ_NO_ARGS NULL, 0

/* Reads the current row of a statement into elem. */
typedef void sq_reader(sqlite3_stmt *st, void *elem);

/* The helpers run sql (a string literal: its address keys the statement
 * cache) on `on`, a connection the caller holds; or, when on is NULL, on a
 * connection of s borrowed for this one statement (STORE_UNAVAILABLE when
 * none can be opened). what names the statement in the log.
 *
 * sq_run: a statement without rows (given back through sq_write_done when
 *   borrowed).
 * sq_row: exactly one row into out through read(); STORE_NOT_FOUND when
 *   there is none.
 * sq_int: the first column of the one row, as an integer.
 * sq_collect: every row into a malloc'd array of elements of size bytes,
 *   owned by the caller (*out NULL and *n 0 when none or on failure). */
int sq_run(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
           const struct sq_param *p, int np);
int sq_row(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
           sq_reader *read, void *out, const struct sq_param *p, int np);
int sq_int(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
           int64_t *out, const struct sq_param *p, int np);
int sq_collect(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
               size_t size, sq_reader *read, void **out, size_t *n,
               const struct sq_param *p, int np);

/* Column text, never NULL. */
const char *sq_text(sqlite3_stmt *st, int col);

/* Append an audit entry on c (inside the caller's transaction); its id is
 * written back into e->id. */
int sq_insert_audit(struct sq_conn *c, struct store_audit *e);

/* The columns every audit read selects, and the reader of one row. */
#define SQ_AUDIT_COLS "id, kind, subject, from_value, to_value, version, actor, source," \
                      " reason, outcome, error_code, at, request_id, from_version, approval_id"
void sq_read_audit(sqlite3_stmt *st, void *elem);

/* store_sqlite_admin.c */
int sq_get_flag(void *h, const char *env, const char *name, struct store_flag *out);
int sq_identity(void *h, char out[STORE_IDENTITY_MAX + 1]);
int sq_tx_get_flag(void *tx, const char *env, const char *name, struct store_flag *out);
int sq_tx_write_flag(void *tx, const char *env, const struct store_flag *f);
int sq_put_token(void *h, const struct store_token *t);
int sq_get_token(void *h, const char *id, struct store_token *out);
int sq_list_tokens(void *h, struct store_token **out, size_t *n);
int sq_revoke_token(void *h, const char *id, int64_t now_ms);
int sq_put_session(void *h, const struct store_session *x, int max_per_token);
int sq_get_session(void *h, const char *id_hash, struct store_session *out);
int sq_delete_session(void *h, const char *id_hash);
int sq_sweep_sessions(void *h, int64_t now_ms, int64_t *deleted);
int sq_list_audit_oldest(void *h, int64_t after_id, int64_t before_id, int limit,
                         struct store_audit **out, size_t *n);
int sq_audit_bound_at(void *h, int64_t at_ms, int64_t *before_id);
int sq_prune_audit(void *h, const struct store_prune *p, struct store_prune_result *out);
int sq_tx_get_approval(void *tx, const char *id, struct store_approval *out);
int sq_tx_pending_approval(void *tx, const char *queue, struct store_approval *out);
int sq_tx_insert_approval(void *tx, const struct store_approval *a);
int sq_tx_update_approval(void *tx, const struct store_approval *a);
int sq_list_approvals(void *h, const char *status, const char *queue, int limit,
                      struct store_approval **out, size_t *n);

/* store_sqlite_notify.c */
int sq_notify_cursor(void *h, int64_t *last_audit_id);
int sq_notify_enqueue(void *h, const struct store_notify_new *rows, size_t n,
                      int64_t expected_cursor, int64_t new_cursor);
int sq_notify_pending(void *h, const char *sink, int limit, struct store_notify_due **out,
                      size_t *n);
int sq_notify_mark(void *h, const struct store_notify_attempt *a);
int sq_notify_list(void *h, const char *sink, const char *status, int limit,
                   struct store_notification **out, size_t *n);
int sq_notify_summarize(void *h, struct store_notify_summary **out, size_t *n);
int sq_notify_prune(void *h, int64_t before_ms, int64_t keep, int64_t *deleted);

/* store_sqlite_autoscale.c */
int sq_autoscale_hold(void *h, const struct store_autoscale_hold *x);
int sq_autoscale_holds(void *h, struct store_autoscale_hold **out, size_t *n);
int sq_autoscale_put_state(void *h, const char *queue, const char *state, int64_t now_ms);
int sq_autoscale_states(void *h, struct store_autoscale_state **out, size_t *n);

#endif
