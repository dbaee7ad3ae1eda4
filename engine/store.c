/* store.c — picks the backend for a database URL and forwards to it.
 * Backends live in store_<name>.c and never see each other. */
#include "store.h"
#include "redact.h"
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    const struct store_backend *be;
    void *h;
};

static const struct store_backend *const backends[] = {&store_sqlite_backend, &store_pg_backend, NULL};

int store_plan_change(const struct store_change *c, const struct store_target *cur,
                      struct store_target *next, int *bumped) {
    *next = *cur;
    *bumped = 0;
    /* A real change, or a permanent change that ends a temporary override at
     * the same value (version kept). An override on top of an override still
     * reverts to the value in force before the first one. A no-op never
     * starts an override. */
    if (c->to == cur->desired && !(cur->expires_at_ms && !c->expires_at_ms)) return 0;
    next->desired = c->to;
    *bumped = c->to != cur->desired;
    next->version = cur->version + *bumped;
    util_copy(next->updated_by, sizeof next->updated_by, c->actor);
    next->updated_at_ms = c->now_ms;
    util_copy(next->reason, sizeof next->reason, c->reason);
    next->expires_at_ms = c->expires_at_ms;
    next->revert_to = !c->expires_at_ms ? 0 : cur->expires_at_ms ? cur->revert_to : cur->desired;
    return 1;
}

void store_change_audit(struct store_audit *e, const struct store_change *c, int64_t from,
                        int64_t version, const char *outcome, const char *error_code) {
    memset(e, 0, sizeof *e);
    strcpy(e->kind, "scaling");
    util_copy(e->subject, sizeof e->subject, c->queue);
    e->from = from;
    e->to = c->to;
    e->version = version;
    util_copy(e->actor, sizeof e->actor, c->actor);
    util_copy(e->source, sizeof e->source, c->source);
    util_copy(e->reason, sizeof e->reason, c->reason);
    util_copy(e->outcome, sizeof e->outcome, outcome);
    util_copy(e->error_code, sizeof e->error_code, error_code);
    e->at_ms = c->now_ms;
    util_copy(e->request_id, sizeof e->request_id, c->request_id);
}

store *store_open(const char *url, const struct store_options *opt, char *err, size_t errlen) {
    for (const struct store_backend *const *be = backends; *be; be++) {
        if (strncmp(url, (*be)->scheme, strlen((*be)->scheme)) != 0) continue;
        store *st = calloc(1, sizeof *st);
        if (st == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        st->be = *be;
        st->h = (*be)->open(url, opt, err, errlen);
        if (st->h == NULL) {
            free(st);
            return NULL;
        }
        return st;
    }
    char shown[1024];
    redact_url(url, shown, sizeof shown);
    snprintf(err, errlen, "unsupported database URL '%s' (expected sqlite:PATH or postgres://...)", shown);
    return NULL;
}

void store_close(store *st) {
    if (st == NULL) return;
    st->be->close(st->h);
    free(st);
}

int store_claim(store *st, char *err, size_t errlen) {
    return st->be->claim ? st->be->claim(st->h, err, errlen) : STORE_OK;
}

int store_migrate(store *st, int *applied) { return st->be->migrate(st->h, applied); }
int store_schema_current(store *st) { return st->be->schema_current(st->h); }
int store_ping(store *st) { return st->be->ping(st->h); }
int store_identity(store *st, char out[STORE_IDENTITY_MAX + 1]) { return st->be->identity(st->h, out); }

int store_get_target(store *st, const char *queue, struct store_target *out) {
    return st->be->get_target(st->h, queue, out);
}

int store_list_targets(store *st, struct store_target **out, size_t *n) {
    return st->be->list_targets(st->h, out, n);
}

int store_apply_change(store *st, const struct store_change *c, store_judge_fn judge, void *ud,
                       struct store_change_result *out) {
    return st->be->apply_change(st->h, c, judge, ud, out);
}

int store_append_audit(store *st, struct store_audit *e) { return st->be->append_audit(st->h, e); }

int store_list_audit(store *st, const char *kind, const char *subject, int64_t before_id,
                     int limit, struct store_audit **out, size_t *n) {
    return st->be->list_audit(st->h, kind, subject, before_id, limit, out, n);
}

int store_outbox_pending(store *st, int limit, struct store_outbox **out, size_t *n) {
    return st->be->outbox_pending(st->h, limit, out, n);
}

int store_outbox_mark_published(store *st, int64_t id, int64_t now_ms) {
    return st->be->outbox_mark_published(st->h, id, now_ms);
}

int store_desired_snapshot(store *st, struct store_target **targets, size_t *nt,
                           char (**pending)[UTIL_NAME_MAX + 1], size_t *np) {
    return st->be->desired_snapshot(st->h, targets, nt, pending, np);
}

int store_list_expired(store *st, int64_t now_ms, struct store_target **out, size_t *n) {
    return st->be->list_expired(st->h, now_ms, out, n);
}

int store_get_flag(store *st, const char *env, const char *name, struct store_flag *out) {
    return st->be->get_flag(st->h, env, name, out);
}

int store_set_flag(store *st, const char *env, const char *name, int enabled, int default_enabled,
                   const char *actor, const char *source, const char *reason,
                   const char *request_id, int64_t now_ms) {
    return st->be->set_flag(st->h, env, name, enabled, default_enabled, actor, source, reason,
                            request_id, now_ms);
}

int store_put_token(store *st, const struct store_token *t) { return st->be->put_token(st->h, t); }
int store_get_token(store *st, const char *id, struct store_token *out) {
    return st->be->get_token(st->h, id, out);
}
int store_list_tokens(store *st, struct store_token **out, size_t *n) {
    return st->be->list_tokens(st->h, out, n);
}
int store_revoke_token(store *st, const char *id, int64_t now_ms) {
    return st->be->revoke_token(st->h, id, now_ms);
}
int store_put_session(store *st, const struct store_session *s) {
    return st->be->put_session(st->h, s);
}
int store_get_session(store *st, const char *id_hash, struct store_session *out) {
    return st->be->get_session(st->h, id_hash, out);
}
int store_delete_session(store *st, const char *id_hash) {
    return st->be->delete_session(st->h, id_hash);
}
