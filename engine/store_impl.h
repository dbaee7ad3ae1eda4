/* store_impl.h — the contract between store.c and a backend (private).
 *
 * A backend fills one struct store_backend; store.c picks it from the URL
 * scheme and forwards plain reads and writes with the backend's own handle.
 * The judged writes (a scaling change, a flag) are one flow in store.c over
 * the backend's transaction primitives (begin, the tx_* statements, commit,
 * end), so that what a change reads, asks and writes is decided in exactly
 * one place and a backend only speaks its dialect.
 * Nothing outside store*.c includes this header. */
#ifndef SLUICE_STORE_IMPL_H
#define SLUICE_STORE_IMPL_H

#include "store.h"

enum store_tx_mode { STORE_TX_READ, STORE_TX_WRITE };

/* A transaction's own hour: what store_stats counts back from now. */
#define STORE_HOUR_MS 3600000LL

struct store_backend {
    const char *scheme;          /* URL prefix, "sqlite:" */
    void *(*open)(const char *url, const struct store_options *opt, char *err, size_t errlen);
    void (*close)(void *h);
    void (*set_limits)(void *h, const struct store_limits *lim);   /* NULL: none of its own */
    int (*claim)(void *h, char *err, size_t errlen);   /* NULL: nothing to claim */
    int (*migrate)(void *h, int *applied);
    int (*schema_current)(void *h);
    int (*ping)(void *h);
    int (*identity)(void *h, char out[STORE_IDENTITY_MAX + 1]);
    int (*get_target)(void *h, const char *queue, struct store_target *out);
    int (*list_targets)(void *h, struct store_target **out, size_t *n);
    /* A transaction on a connection of its own. STORE_TX_WRITE holds the
     * write lock of lock_key (SQLite: the database's, PostgreSQL: an advisory
     * lock on the key, so writers of one queue on any replica take turns)
     * from here to commit; STORE_TX_READ is one consistent read-only
     * snapshot. NULL with *rc on failure. end() gives the connection back
     * after commit or on any failure, rolling back what is still open;
     * rc is how the transaction ended (a full volume is noted). */
    void *(*begin)(void *h, int mode, const char *lock_key, int *rc);
    int (*commit)(void *tx);
    void (*end)(void *tx, int rc);
    /* Statements inside a transaction; STORE_NOT_FOUND for a missing row. */
    int (*tx_get_target)(void *tx, const char *queue, struct store_target *out);
    int (*tx_stats)(void *tx, const char *queue, int64_t now_ms, struct store_stats *out);
    int (*tx_write_target)(void *tx, const struct store_target *t);
    int (*tx_write_outbox)(void *tx, const struct store_target *t);
    int (*tx_insert_audit)(void *tx, struct store_audit *e);   /* writes e->id */
    int (*tx_get_flag)(void *tx, const char *env, const char *name, struct store_flag *out);
    int (*tx_write_flag)(void *tx, const char *env, const struct store_flag *f);
    /* Approvals: by id, the queue's pending one (STORE_NOT_FOUND: none),
     * insert, and update of the decision and result columns. */
    int (*tx_get_approval)(void *tx, const char *id, struct store_approval *out);
    int (*tx_pending_approval)(void *tx, const char *queue, struct store_approval *out);
    int (*tx_insert_approval)(void *tx, const struct store_approval *a);
    int (*tx_update_approval)(void *tx, const struct store_approval *a);
    int (*list_approvals)(void *h, const char *status, const char *queue, int limit,
                          struct store_approval **out, size_t *n);
    int (*append_audit)(void *h, struct store_audit *e);
    int (*list_audit)(void *h, const struct store_audit_filter *f, int limit,
                      struct store_audit **out, size_t *n);
    int (*list_audit_oldest)(void *h, int64_t after_id, int64_t before_id, int limit,
                             struct store_audit **out, size_t *n);
    int (*audit_bound_at)(void *h, int64_t at_ms, int64_t *before_id);
    int (*prune_audit)(void *h, const struct store_prune *p, struct store_prune_result *out);
    int (*outbox_pending)(void *h, int limit, struct store_outbox **out, size_t *n);
    int (*outbox_mark_published)(void *h, int64_t id, int64_t now_ms);
    int (*desired_snapshot)(void *h, struct store_target **targets, size_t *nt,
                            char (**pending)[UTIL_NAME_MAX + 1], size_t *np);
    int (*list_expired)(void *h, int64_t now_ms, struct store_target **out, size_t *n);
    int (*get_flag)(void *h, const char *env, const char *name, struct store_flag *out);
    int (*put_token)(void *h, const struct store_token *tok);
    int (*get_token)(void *h, const char *id, struct store_token *out);
    int (*list_tokens)(void *h, struct store_token **out, size_t *n);
    int (*revoke_token)(void *h, const char *id, int64_t now_ms);
    /* max_per_token: the sessions of s->token_id kept, s included; 0: all */
    int (*put_session)(void *h, const struct store_session *s, int max_per_token);
    int (*get_session)(void *h, const char *id_hash, struct store_session *out);
    int (*delete_session)(void *h, const char *id_hash);
    int (*sweep_sessions)(void *h, int64_t now_ms, int64_t *deleted);
    /* notifications (store_<name>_notify.c) */
    int (*notify_cursor)(void *h, int64_t *last_audit_id);
    int (*notify_enqueue)(void *h, const struct store_notify_new *rows, size_t n,
                          int64_t expected_cursor, int64_t new_cursor);
    int (*notify_pending)(void *h, const char *sink, int limit, struct store_notify_due **out,
                          size_t *n);
    int (*notify_mark)(void *h, const struct store_notify_attempt *a);
    int (*notify_list)(void *h, const char *sink, const char *status, int limit,
                       struct store_notification **out, size_t *n);
    int (*notify_summarize)(void *h, struct store_notify_summary **out, size_t *n);
    int (*notify_prune)(void *h, int64_t before_ms, int64_t keep, int64_t *deleted);
    /* the autoscaler (store_<name>_autoscale.c) */
    int (*autoscale_hold)(void *h, const struct store_autoscale_hold *x);
    int (*autoscale_holds)(void *h, struct store_autoscale_hold **out, size_t *n);
    int (*autoscale_put_state)(void *h, const char *queue, const char *state, int64_t now_ms);
    int (*autoscale_states)(void *h, struct store_autoscale_state **out, size_t *n);
};

/* The audit entry of a prune that deleted `deleted` entries below before_id. */
void store_prune_audit_entry(struct store_audit *e, const struct store_prune *p, int64_t deleted,
                             int64_t before_id);

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

#endif
