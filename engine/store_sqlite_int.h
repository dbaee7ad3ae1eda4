/* store_sqlite_int.h — what the two files of the SQLite backend share
 * (private: only store_sqlite*.c include it).
 *
 * store_sqlite.c owns the connection pool, migrations, targets, the audit
 * log, the judged change and the outbox; store_sqlite_admin.c owns flags,
 * tokens, sessions and the audit log's export and prune. The sq_ prefix
 * marks the backend's own names. */
#ifndef SLUICE_STORE_SQLITE_INT_H
#define SLUICE_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "store_impl.h"

#define SQ_POOL_MAX 64

struct sq_store;

/* A transaction on one pooled connection (store_impl.h's begin/commit/end). */
struct sq_tx {
    struct sq_store *s;
    sqlite3 *db;
    int slot;
    int write;                   /* STORE_TX_WRITE: counts as a write when it ends */
};

struct sq_store {
    char path[1024];
    int busy_timeout_ms;
    int size;
    sqlite3 *conns[SQ_POOL_MAX];
    int in_use[SQ_POOL_MAX];
    pthread_mutex_t lock;
    pthread_cond_t freed;
    int claim_fd;                /* lock held by a serving sluiced, -1 */
    atomic_int full;             /* a write found the volume full, none succeeded since */
    atomic_uint writes;          /* successful writes, for the periodic WAL truncation */
    struct sq_tx txs[SQ_POOL_MAX];   /* one per connection, handed out by begin */
};

/* A store_rc for a SQLite result code. */
int sq_rc(int rc);

/* Log a failed statement and map its code (a full volume is not logged
 * here: sq_write_done says so once). */
int sq_fail(sqlite3 *db, int rc, const char *what);

/* Run SQL without results; logs and maps errors. */
int sq_exec(sqlite3 *db, const char *sql);

/* Roll back the transaction of db if it is still open: SQLite ends some
 * on its own (a full volume, an I/O error), and a ROLLBACK then fails. */
void sq_rollback(sqlite3 *db);

/* Borrow a pooled connection (NULL: unavailable) and give it back;
 * sq_release rolls back a transaction left open, so that no caller ever
 * borrows a connection in the middle of someone else's. */
sqlite3 *sq_acquire(struct sq_store *s, int *slot_out);
void sq_release(struct sq_store *s, int slot);

/* Give back the connection of a write that ended with rc: notes whether
 * the volume is full (logged once per episode) and now and then truncates
 * the write-ahead log. Returns rc. */
int sq_write_done(struct sq_store *s, sqlite3 *db, int slot, int rc);

/* Column text, never NULL. */
const char *sq_text(sqlite3_stmt *st, int col);

/* Bind text (NULL binds NULL) and an optional integer (0 binds NULL). */
void sq_bind_text(sqlite3_stmt *st, int idx, const char *v);
void sq_bind_opt_int(sqlite3_stmt *st, int idx, int64_t v);

/* Step a statement that returns no rows, and finalize it. */
int sq_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what);

/* Append an audit entry on db (inside the caller's transaction). */
int sq_insert_audit(sqlite3 *db, struct store_audit *e);

/* The columns every audit read selects, and the reader of one row. */
#define SQ_AUDIT_COLS "id, kind, subject, from_value, to_value, version, actor, source," \
                      " reason, outcome, error_code, at, request_id"
void sq_read_audit(sqlite3_stmt *st, struct store_audit *e);

/* Collect the rows of a query into a malloc'd array (see store_sqlite.c). */
int sq_collect_on(struct sq_store *s, sqlite3 *given, const char *sql, int64_t arg, size_t size,
                  void (*read)(sqlite3_stmt *st, void *elem), void **out, size_t *n);
int sq_collect(struct sq_store *s, const char *sql, size_t size,
               void (*read)(sqlite3_stmt *st, void *elem), void **out, size_t *n);

/* Prepare a statement or fail the enclosing function through "done". */
#define SQ_PREPARE(db, sql, st, what)                                   \
    do {                                                                \
        int prc_ = sqlite3_prepare_v2((db), (sql), -1, &(st), NULL);   \
        if (prc_ != SQLITE_OK) { rc = sq_fail((db), prc_, (what)); goto done; } \
    } while (0)

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

#endif
