/* store_impl.h — the contract between store.c and a backend (private).
 *
 * A backend fills one struct store_backend; store.c picks it from the URL
 * scheme and forwards every store_* call with the backend's own handle.
 * Nothing outside store*.c includes this header. */
#ifndef SLUICE_STORE_IMPL_H
#define SLUICE_STORE_IMPL_H

#include "store.h"

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
    int (*apply_change)(void *h, const struct store_change *c, store_judge_fn judge, void *ud,
                        struct store_change_result *out);
    int (*append_audit)(void *h, struct store_audit *e);
    int (*list_audit)(void *h, const char *kind, const char *subject, int64_t before_id,
                      int limit, struct store_audit **out, size_t *n);
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
    int (*set_flag)(void *h, const char *env, const char *name, int enabled, int default_enabled,
                    const char *actor, const char *source, const char *reason,
                    const char *request_id, int64_t now_ms);
    int (*put_token)(void *h, const struct store_token *tok);
    int (*get_token)(void *h, const char *id, struct store_token *out);
    int (*list_tokens)(void *h, struct store_token **out, size_t *n);
    int (*revoke_token)(void *h, const char *id, int64_t now_ms);
    /* max_per_token: the sessions of s->token_id kept, s included; 0: all */
    int (*put_session)(void *h, const struct store_session *s, int max_per_token);
    int (*get_session)(void *h, const char *id_hash, struct store_session *out);
    int (*delete_session)(void *h, const char *id_hash);
    int (*sweep_sessions)(void *h, int64_t now_ms, int64_t *deleted);
};

/* What a judged change writes, the same for every backend. Given the
 * current state and an accepted change, fill *next and say whether the
 * policy row must be written and whether the version moved (an outbox row
 * is due). Returns 1 when the row is written. */
int store_plan_change(const struct store_change *c, const struct store_target *cur,
                      struct store_target *next, int *bumped);

/* The audit entry of a judged change: "applied" or "rejected" (with code). */
void store_change_audit(struct store_audit *e, const struct store_change *c, int64_t from,
                        int64_t version, const char *outcome, const char *error_code);

/* The audit entry of a prune that deleted `deleted` entries below before_id. */
void store_prune_audit_entry(struct store_audit *e, const struct store_prune *p, int64_t deleted,
                             int64_t before_id);

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

#endif
