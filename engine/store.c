/* store.c — picks the backend for a database URL and forwards to it; runs
 * the judged writes (a scaling change, a flag) as one flow over the
 * backend's transaction primitives; builds every audit entry; caps how many
 * judged writes run at once and how often one token may write. All of it is
 * the same for every backend. Backends live in store_<name>.c and never see
 * each other. */
#include "store.h"
#include "log.h"
#include "ratelimit.h"
#include "redact.h"
#include "store_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A writer that found every slot taken waits while the writers inside keep
 * finishing (ordinary contention lasts milliseconds). When none has entered
 * or left for this long they are stuck behind a lock, and it is refused at
 * once instead of holding one more HTTP thread. */
#define STORE_STALL_MS 500

struct store_gate {
    int max;                     /* 0: no cap */
    int inside;
    int64_t moved_ms;            /* monotonic: the last entry or exit */
    pthread_mutex_t lock;
    pthread_cond_t left;         /* on CLOCK_MONOTONIC */
};

struct store {
    const struct store_backend *be;
    void *h;
    struct store_gate gate;
    ratelimit *writes;           /* per token; NULL: no limit */
    int sessions_per_token;      /* 0: no cap */
};

static const struct store_backend *const backends[] = {&store_sqlite_backend, &store_pg_backend, NULL};

void store_audit_init(struct store_audit *e, const char *kind, const char *subject,
                      int64_t from, int64_t to, int64_t version, const char *outcome,
                      const char *error_code, const struct store_origin *o) {
    memset(e, 0, sizeof *e);
    util_copy(e->kind, sizeof e->kind, kind);
    util_copy(e->subject, sizeof e->subject, subject);
    e->from = from;
    e->to = to;
    e->version = version;
    util_copy(e->actor, sizeof e->actor, o->actor);
    util_copy(e->source, sizeof e->source, o->source);
    util_copy(e->reason, sizeof e->reason, o->reason);
    util_copy(e->outcome, sizeof e->outcome, outcome);
    util_copy(e->error_code, sizeof e->error_code, error_code ? error_code : "");
    e->at_ms = o->now_ms;
    util_copy(e->request_id, sizeof e->request_id, o->request_id);
}

void store_prune_audit_entry(struct store_audit *e, const struct store_prune *p, int64_t deleted,
                             int64_t before_id) {
    struct store_origin o = {p->actor, p->source, p->reason, p->request_id, p->now_ms};
    store_audit_init(e, "audit", "prune", deleted, before_id, 0, "applied", "", &o);
}

/* ---- the write gate ---------------------------------------------------------- */

static void store_gate_init(struct store_gate *g) {
    pthread_condattr_t attr;
    g->max = 0;
    g->inside = 0;
    g->moved_ms = 0;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->left, &attr);
    pthread_condattr_destroy(&attr);
}

static void store_gate_destroy(struct store_gate *g) {
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->left);
}

/* STORE_OK with a slot taken, or STORE_BUSY when the writers inside are
 * stuck (see STORE_STALL_MS). */
static int store_gate_enter(struct store_gate *g) {
    int rc = STORE_OK;
    if (g->max == 0) return STORE_OK;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        int64_t now = util_mono_ms(), deadline = g->moved_ms + STORE_STALL_MS;
        if (g->inside < g->max) {
            g->inside++;
            g->moved_ms = now;
            break;
        }
        if (now >= deadline) {
            rc = STORE_BUSY;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (deadline - now) * 1000000LL;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&g->left, &g->lock, &ts);
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static void store_gate_leave(struct store_gate *g) {
    if (g->max == 0) return;
    pthread_mutex_lock(&g->lock);
    g->inside--;
    g->moved_ms = util_mono_ms();
    pthread_cond_signal(&g->left);
    pthread_mutex_unlock(&g->lock);
}

/* ---- opening and forwarding --------------------------------------------------- */

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
        store_gate_init(&st->gate);
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
    store_gate_destroy(&st->gate);
    ratelimit_free(st->writes);
    free(st);
}

void store_set_limits(store *st, const struct store_limits *lim) {
    pthread_mutex_lock(&st->gate.lock);
    st->gate.max = lim->max_writers > 0 ? lim->max_writers : 0;
    pthread_mutex_unlock(&st->gate.lock);
    /* Once, before serving: nothing reads these concurrently yet. */
    ratelimit_free(st->writes);
    st->writes = NULL;
    if (lim->writes_per_min > 0 &&
        (st->writes = ratelimit_new(lim->writes_per_min,
                                    lim->write_burst > 0 ? lim->write_burst : lim->writes_per_min,
                                    STORE_WRITE_TOKENS)) == NULL)
        log_msg(LOG_ERROR, "out of memory: writes are not limited per token");
    st->sessions_per_token = lim->sessions_per_token > 0 ? lim->sessions_per_token : 0;
    if (st->be->set_limits) st->be->set_limits(st->h, lim);
}

int store_admit_write(store *st, const char *token_id, int64_t *retry_after_ms) {
    if (st->writes == NULL || token_id == NULL || token_id[0] == '\0') return 1;
    return ratelimit_take(st->writes, token_id, util_mono_ms(), retry_after_ms);
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

int store_append_audit(store *st, struct store_audit *e) { return st->be->append_audit(st->h, e); }

int store_find_audit(store *st, const struct store_audit_filter *f, int limit,
                     struct store_audit **out, size_t *n) {
    static const struct store_audit_filter all;
    return st->be->list_audit(st->h, f ? f : &all, limit, out, n);
}

int store_list_audit(store *st, const char *kind, const char *subject, int64_t before_id,
                     int limit, struct store_audit **out, size_t *n) {
    struct store_audit_filter f = {0};
    f.kind = kind;
    f.subject = subject;
    f.before_id = before_id;
    return store_find_audit(st, &f, limit, out, n);
}

int store_list_audit_oldest(store *st, int64_t after_id, int64_t before_id, int limit,
                            struct store_audit **out, size_t *n) {
    return st->be->list_audit_oldest(st->h, after_id, before_id, limit, out, n);
}

int store_audit_bound_at(store *st, int64_t at_ms, int64_t *before_id) {
    return st->be->audit_bound_at(st->h, at_ms, before_id);
}

int store_prune_audit(store *st, const struct store_prune *p, struct store_prune_result *out) {
    return st->be->prune_audit(st->h, p, out);
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
    return st->be->put_session(st->h, s, st->sessions_per_token);
}
int store_get_session(store *st, const char *id_hash, struct store_session *out) {
    return st->be->get_session(st->h, id_hash, out);
}
int store_delete_session(store *st, const char *id_hash) {
    return st->be->delete_session(st->h, id_hash);
}
int store_sweep_sessions(store *st, int64_t now_ms, int64_t *deleted) {
    int64_t ignored;
    return st->be->sweep_sessions(st->h, now_ms, deleted ? deleted : &ignored);
}

/* ---- the judged writes ------------------------------------------------------- */

/* A pause or resume: the pause fields and a new version; the desired value
 * and a temporary override stay. Pausing a paused queue (or resuming a
 * running one) writes nothing. */
static int store_plan_pause(const struct store_change *c, const struct store_target *cur,
                            struct store_target *next, int *bumped) {
    int pause = c->kind == STORE_CHANGE_PAUSE;
    if (cur->paused == pause) return 0;
    next->paused = pause;
    next->paused_until_ms = pause ? c->paused_until_ms : 0;
    util_copy(next->paused_by, sizeof next->paused_by, pause ? c->actor : "");
    next->paused_at_ms = pause ? c->now_ms : 0;
    util_copy(next->paused_reason, sizeof next->paused_reason, pause ? c->reason : "");
    next->version = cur->version + 1;
    util_copy(next->updated_by, sizeof next->updated_by, c->actor);
    next->updated_at_ms = c->now_ms;
    util_copy(next->reason, sizeof next->reason, c->reason);
    *bumped = 1;
    return 1;
}

/* What a judged change writes. Given the current state and an accepted
 * change, fill *next and say whether the policy row must be written and
 * whether the version moved (an outbox row is due). Returns 1 when the row
 * is written. A change of the value keeps the pause fields as they are. */
static int store_plan_change(const struct store_change *c, const struct store_target *cur,
                             struct store_target *next, int *bumped) {
    *next = *cur;
    *bumped = 0;
    if (c->kind != STORE_CHANGE_SCALING) return store_plan_pause(c, cur, next, bumped);
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

/* The queue's row inside tx, or its default at version 0 when it has none. */
static int store_tx_current(store *st, void *tx, const char *queue, int64_t default_value,
                            struct store_target *cur) {
    memset(cur, 0, sizeof *cur);
    int rc = st->be->tx_get_target(tx, queue, cur);
    if (rc == STORE_NOT_FOUND) {
        memset(cur, 0, sizeof *cur);
        util_copy(cur->queue, sizeof cur->queue, queue);
        cur->desired = default_value;
        rc = STORE_OK;
    }
    return rc;
}

int store_read_change(store *st, const char *queue, int64_t default_value, int64_t now_ms,
                      struct store_target *cur, struct store_stats *stats) {
    int rc;
    void *tx = st->be->begin(st->h, STORE_TX_READ, NULL, &rc);
    if (tx == NULL) return rc;
    if ((rc = store_tx_current(st, tx, queue, default_value, cur)) == STORE_OK &&
        (rc = st->be->tx_stats(tx, queue, now_ms, stats)) == STORE_OK)
        rc = st->be->commit(tx);
    st->be->end(tx, rc);
    return rc;
}

/* The audit entry of a change, carrying its revert and approval ids. */
static void store_change_entry(struct store_audit *e, const struct store_change *c,
                               const struct store_origin *o, const struct store_target *cur,
                               int64_t version, const char *outcome, const char *code) {
    if (c->kind == STORE_CHANGE_SCALING)
        store_audit_init(e, "scaling", c->queue, cur->desired, c->to, version, outcome, code, o);
    else                         /* a pause or resume: from/to 0 running, 1 paused */
        store_audit_init(e, "pause", c->queue, cur->paused, c->kind == STORE_CHANGE_PAUSE, version,
                         outcome, code, o);
    e->from_version = c->from_version;
    util_copy(e->approval_id, sizeof e->approval_id, c->approval_id ? c->approval_id : "");
}

/* A refusal of c with code that the caller asked not to audit again. */
static int store_quiet_refusal(const struct store_change *c, const char *code) {
    return c->quiet_refusal && strcmp(c->quiet_refusal, code) == 0;
}

/* Inside the transaction: mark a (pending) approval expired and audit it
 * as sluiced's doing. */
static int store_tx_expire(store *st, void *tx, struct store_approval *a, int64_t version,
                           int64_t now_ms) {
    char reason[STORE_REASON_MAX], rid[STORE_RID_MAX];
    struct store_audit e;
    int rc;
    snprintf(reason, sizeof reason, "not approved within %llds",
             (long long)((a->expires_at_ms - a->created_at_ms) / 1000));
    memcpy(rid, "expiry-", 8);
    if (util_random_hex(rid + 7, 8) != 0) strcpy(rid, "expiry");
    util_copy(a->status, sizeof a->status, "expired");
    util_copy(a->decided_by, sizeof a->decided_by, "sluiced");
    util_copy(a->decision_reason, sizeof a->decision_reason, reason);
    a->decided_at_ms = now_ms;
    if ((rc = st->be->tx_update_approval(tx, a)) != STORE_OK) return rc;
    struct store_origin o = {"sluiced", "sluiced", reason, rid, now_ms};
    store_audit_init(&e, "scaling", a->queue, a->from, a->desired, version, "expired", NULL, &o);
    e.from_version = a->from_version;
    util_copy(e.approval_id, sizeof e.approval_id, a->id);
    return st->be->tx_insert_audit(tx, &e);
}

/* Inside the transaction: store c as a pending approval, unless the queue
 * has one already (refused: "approval_pending", out->approval is that one). */
static int store_tx_request(store *st, void *tx, const struct store_change *c,
                            const struct store_target *cur, struct store_change_result *out) {
    struct store_origin o = {c->actor, c->source, c->reason, c->request_id, c->now_ms};
    struct store_approval *a = &out->approval;
    struct store_audit entry;
    int rc = st->be->tx_pending_approval(tx, c->queue, a);
    if (rc == STORE_OK && a->expires_at_ms <= c->now_ms) {
        /* Its time is up but the sweep has not come by yet: it no longer
         * holds the queue. */
        if ((rc = store_tx_expire(st, tx, a, cur->version, c->now_ms)) != STORE_OK) return rc;
        rc = STORE_NOT_FOUND;
    }
    if (rc == STORE_OK && store_quiet_refusal(c, "approval_pending")) return STORE_OK;
    if (rc == STORE_OK) {
        store_change_entry(&entry, c, &o, cur, cur->version, "rejected", "approval_pending");
        util_copy(entry.approval_id, sizeof entry.approval_id, a->id);
        if ((rc = st->be->tx_insert_audit(tx, &entry)) != STORE_OK) return rc;
        out->audit_id = entry.id;
        return STORE_OK;
    }
    if (rc != STORE_NOT_FOUND) return rc;
    memset(a, 0, sizeof *a);
    if (util_random_hex(a->id, 8) != 0) return STORE_FAILED;
    util_copy(a->queue, sizeof a->queue, c->queue);
    a->from = cur->desired;
    a->desired = c->to;
    a->duration_s = c->duration_s;
    a->from_version = c->from_version;
    util_copy(a->reason, sizeof a->reason, c->reason);
    util_copy(a->requested_by, sizeof a->requested_by, c->actor);
    util_copy(a->requester_token, sizeof a->requester_token, c->token_id ? c->token_id : "");
    util_copy(a->source, sizeof a->source, c->source);
    util_copy(a->request_id, sizeof a->request_id, c->request_id);
    util_copy(a->status, sizeof a->status, "pending");
    a->created_at_ms = c->now_ms;
    a->expires_at_ms = c->now_ms + c->approval_ttl_ms;
    if ((rc = st->be->tx_insert_approval(tx, a)) != STORE_OK) return rc;
    store_change_entry(&entry, c, &o, cur, cur->version, "pending_approval", NULL);
    util_copy(entry.approval_id, sizeof entry.approval_id, a->id);
    if ((rc = st->be->tx_insert_audit(tx, &entry)) != STORE_OK) return rc;
    out->applied = STORE_JUDGE_APPROVAL;
    out->audit_id = entry.id;
    return STORE_OK;
}

/* Inside the transaction: write what the verdict says into out. */
static int store_tx_decide(store *st, void *tx, const struct store_change *c, int verdict,
                           const char *code, const struct store_target *cur,
                           struct store_change_result *out) {
    struct store_origin o = {c->actor, c->source, c->reason, c->request_id, c->now_ms};
    struct store_audit entry;
    struct store_target next;
    int bumped, rc;
    out->target = *cur;
    if (verdict == STORE_JUDGE_APPROVAL) return store_tx_request(st, tx, c, cur, out);
    if (verdict == 0) {
        if (store_quiet_refusal(c, code)) return STORE_OK;
        store_change_entry(&entry, c, &o, cur, cur->version, "rejected", code);
        if ((rc = st->be->tx_insert_audit(tx, &entry)) != STORE_OK) return rc;
        out->audit_id = entry.id;
        return STORE_OK;
    }
    out->applied = 1;
    /* A change to the current value writes nothing: repeating it must not
     * grow the database. */
    if (!store_plan_change(c, cur, &next, &bumped)) return STORE_OK;
    if ((rc = st->be->tx_write_target(tx, &next)) != STORE_OK) return rc;
    if (bumped && (rc = st->be->tx_write_outbox(tx, &next)) != STORE_OK) return rc;
    store_change_entry(&entry, c, &o, cur, next.version, "applied", "");
    if ((rc = st->be->tx_insert_audit(tx, &entry)) != STORE_OK) return rc;
    out->target = next;
    out->changed = 1;
    out->audit_id = entry.id;
    return STORE_OK;
}

int store_apply_change(store *st, const struct store_change *c, store_judge_fn judge, void *ud,
                       struct store_change_result *out) {
    struct store_target cur;
    struct store_stats stats;
    char code[STORE_CODE_MAX] = "", key[UTIL_NAME_MAX + 32];
    void *tx = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = store_gate_enter(&st->gate)) != STORE_OK) return rc;
    snprintf(key, sizeof key, "sluice.queue:%s", c->queue);
    if ((tx = st->be->begin(st->h, STORE_TX_WRITE, key, &rc)) == NULL) goto done;
    if ((rc = store_tx_current(st, tx, c->queue, c->default_value, &cur)) != STORE_OK) goto done;
    if ((rc = st->be->tx_stats(tx, c->queue, c->now_ms, &stats)) != STORE_OK) goto done;
    out->previous = cur.desired;
    int verdict = judge(ud, &cur, &stats, code);
    if (verdict < 0) {                        /* abandoned: nothing written */
        out->target = cur;
        out->applied = -1;
        goto done;
    }
    if ((rc = store_tx_decide(st, tx, c, verdict, code, &cur, out)) == STORE_OK)
        rc = st->be->commit(tx);
done:
    if (tx) st->be->end(tx, rc);
    store_gate_leave(&st->gate);
    if (rc != STORE_OK) {
        int64_t previous = out->previous;
        memset(out, 0, sizeof *out);
        out->previous = previous;
    }
    out->kind = c->kind;
    return rc;
}

int store_set_flag(store *st, const char *env, const char *name, int enabled, int default_enabled,
                   const char *actor, const char *source, const char *reason,
                   const char *request_id, int64_t now_ms) {
    struct store_origin o = {actor, source, reason, request_id, now_ms};
    struct store_flag f;
    struct store_audit entry;
    char key[2 * UTIL_NAME_MAX + 32];
    void *tx = NULL;
    int rc, was;

    if ((rc = store_gate_enter(&st->gate)) != STORE_OK) return rc;
    snprintf(key, sizeof key, "sluice.flag:%s:%s", env, name);
    if ((tx = st->be->begin(st->h, STORE_TX_WRITE, key, &rc)) == NULL) goto done;
    rc = st->be->tx_get_flag(tx, env, name, &f);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) goto done;
    was = rc == STORE_OK ? f.enabled != 0 : default_enabled != 0;
    memset(&f, 0, sizeof f);
    util_copy(f.name, sizeof f.name, name);
    f.enabled = enabled != 0;
    util_copy(f.updated_by, sizeof f.updated_by, actor);
    f.updated_at_ms = now_ms;
    util_copy(f.reason, sizeof f.reason, reason);
    if ((rc = st->be->tx_write_flag(tx, env, &f)) != STORE_OK) goto done;
    store_audit_init(&entry, "flag", name, was, f.enabled, 0, "applied", "", &o);
    if ((rc = st->be->tx_insert_audit(tx, &entry)) == STORE_OK) rc = st->be->commit(tx);
done:
    if (tx) st->be->end(tx, rc);
    store_gate_leave(&st->gate);
    return rc;
}

/* ---- notifications ------------------------------------------------------------ */

int store_notify_cursor(store *st, int64_t *last_audit_id) {
    return st->be->notify_cursor(st->h, last_audit_id);
}

int store_notify_enqueue(store *st, const struct store_notify_new *rows, size_t n,
                         int64_t expected_cursor, int64_t new_cursor) {
    return st->be->notify_enqueue(st->h, rows, n, expected_cursor, new_cursor);
}

int store_notify_pending(store *st, const char *sink, int limit, struct store_notify_due **out,
                         size_t *n) {
    return st->be->notify_pending(st->h, sink, limit, out, n);
}

int store_notify_mark(store *st, const struct store_notify_attempt *a) {
    return st->be->notify_mark(st->h, a);
}

int store_notify_list(store *st, const char *sink, const char *status, int limit,
                      struct store_notification **out, size_t *n) {
    return st->be->notify_list(st->h, sink, status, limit, out, n);
}

int store_notify_summarize(store *st, struct store_notify_summary **out, size_t *n) {
    return st->be->notify_summarize(st->h, out, n);
}

int store_notify_prune(store *st, int64_t before_ms, int64_t keep, int64_t *deleted) {
    return st->be->notify_prune(st->h, before_ms, keep, deleted);
}

/* ---- approvals ----------------------------------------------------------------- */

int store_get_approval(store *st, const char *id, struct store_approval *out) {
    int rc;
    void *tx = st->be->begin(st->h, STORE_TX_READ, NULL, &rc);
    if (tx == NULL) return rc;
    if ((rc = st->be->tx_get_approval(tx, id, out)) == STORE_OK) rc = st->be->commit(tx);
    st->be->end(tx, rc);
    return rc;
}

int store_list_approvals(store *st, const char *status, const char *queue, int limit,
                         struct store_approval **out, size_t *n) {
    return st->be->list_approvals(st->h, status, queue, limit, out, n);
}

int store_decide_approval(store *st, const struct store_decision *d, struct store_approval *out,
                          int *decided) {
    struct store_target cur;
    struct store_audit entry;
    char key[UTIL_NAME_MAX + 32];
    void *tx = NULL;
    int rc;

    *decided = 0;
    /* The queue names the lock: read it first (it never changes). */
    if ((rc = store_get_approval(st, d->id, out)) != STORE_OK) return rc;
    if ((rc = store_gate_enter(&st->gate)) != STORE_OK) return rc;
    snprintf(key, sizeof key, "sluice.queue:%s", out->queue);
    if ((tx = st->be->begin(st->h, STORE_TX_WRITE, key, &rc)) == NULL) goto done;
    if ((rc = st->be->tx_get_approval(tx, d->id, out)) != STORE_OK) goto done;
    if (strcmp(out->status, "pending") != 0) goto done;          /* decided meanwhile */
    if ((rc = store_tx_current(st, tx, out->queue, out->from, &cur)) != STORE_OK) goto done;
    if (out->expires_at_ms <= d->now_ms) {
        rc = store_tx_expire(st, tx, out, cur.version, d->now_ms);
        *decided = strcmp(d->status, "expired") == 0;
    } else {
        struct store_origin o = {d->actor, d->source, d->reason, d->request_id, d->now_ms};
        util_copy(out->status, sizeof out->status, d->status);
        util_copy(out->decided_by, sizeof out->decided_by, d->actor);
        util_copy(out->decision_reason, sizeof out->decision_reason, d->reason);
        out->decided_at_ms = d->now_ms;
        if ((rc = st->be->tx_update_approval(tx, out)) == STORE_OK) {
            store_audit_init(&entry, "scaling", out->queue, out->from, out->desired, cur.version,
                             d->status, d->error_code, &o);
            entry.from_version = out->from_version;
            util_copy(entry.approval_id, sizeof entry.approval_id, out->id);
            rc = st->be->tx_insert_audit(tx, &entry);
        }
        *decided = 1;
    }
    if (rc == STORE_OK) rc = st->be->commit(tx);
done:
    if (tx) st->be->end(tx, rc);
    store_gate_leave(&st->gate);
    if (rc != STORE_OK) *decided = 0;
    return rc;
}

int store_approval_result(store *st, const char *id, const char *result, const char *code) {
    struct store_approval a;
    void *tx = NULL;
    int rc;
    if ((rc = store_gate_enter(&st->gate)) != STORE_OK) return rc;
    if ((tx = st->be->begin(st->h, STORE_TX_WRITE, NULL, &rc)) == NULL) goto done;
    if ((rc = st->be->tx_get_approval(tx, id, &a)) != STORE_OK) goto done;
    util_copy(a.result, sizeof a.result, result);
    util_copy(a.result_code, sizeof a.result_code, code ? code : "");
    if ((rc = st->be->tx_update_approval(tx, &a)) == STORE_OK) rc = st->be->commit(tx);
done:
    if (tx) st->be->end(tx, rc);
    store_gate_leave(&st->gate);
    return rc;
}

int store_autoscale_hold(store *st, const struct store_autoscale_hold *h) {
    return st->be->autoscale_hold(st->h, h);
}

int store_autoscale_holds(store *st, struct store_autoscale_hold **out, size_t *n) {
    return st->be->autoscale_holds(st->h, out, n);
}

int store_autoscale_put_state(store *st, const char *queue, const char *state, int64_t now_ms) {
    if (strlen(state) >= STORE_AUTOSCALE_STATE_MAX) return STORE_FAILED;
    return st->be->autoscale_put_state(st->h, queue, state, now_ms);
}

int store_autoscale_states(store *st, struct store_autoscale_state **out, size_t *n) {
    return st->be->autoscale_states(st->h, out, n);
}
