/* scaling.c — judging and applying changes of desired concurrency. */
#include "scaling.h"
#include "metrics.h"
#include "fleet.h"
#include "config.h"
#include "bus.h"
#include "announce.h"
#include "flags.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed store call as the error; a busy store here is a change to this
 * queue that holds its lock. */
static void scaling_store_fail(struct api_error *err, int rc) {
    api_error_store(err, rc);
    if (rc == STORE_BUSY)
        api_error_set(err, "store_busy", NULL,
                      "the database is busy with another change to this queue; nothing was changed");
}

static void scaling_unknown(struct api_error *err, const char *queue) {
    api_error_set(err, "unknown_queue", NULL, "queue '%s' is not declared by the policies", queue);
}

/* The stored state of a declared queue, or its policy default. */
static int scaling_load(struct app *app, const char *queue, const struct policy_bounds *b,
                        struct store_target *t) {
    int rc = store_get_target(app->st, queue, t);
    if (rc == STORE_NOT_FOUND) {
        memset(t, 0, sizeof *t);
        util_copy(t->queue, sizeof t->queue, queue);
        t->desired = b->def;
        rc = STORE_OK;
    }
    return rc;
}

int scaling_get(struct app *app, const char *queue, struct scaling_target *out,
                struct api_error *err) {
    struct store_stats st;
    int rc;
    memset(out, 0, sizeof *out);
    if (policy_bounds(app->pol, queue, &out->b) != 0) {
        scaling_unknown(err, queue);
        return -1;
    }
    out->window_at_ms = util_now_ms();
    rc = store_read_change(app->st, queue, out->b.def, out->window_at_ms, &out->t, &st);
    if (rc != STORE_OK) {
        scaling_store_fail(err, rc);
        return -1;
    }
    struct policy_recent recent = {st.applied_last_hour, st.oldest_in_hour_ms, st.last_applied_ms};
    policy_bounds_window(&out->b, out->t.desired, &recent, out->window_at_ms, &out->window);
    out->has_window = 1;
    return 0;
}

/* The row of queue in rows (sorted by queue, as store_list_targets gives
 * them), or NULL. */
static const struct store_target *scaling_find(const struct store_target *rows, size_t n,
                                               const char *queue) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(rows[mid].queue, queue);
        if (cmp == 0) return &rows[mid];
        if (cmp < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int scaling_list(struct app *app, struct scaling_target **out, size_t *n, struct api_error *err) {
    struct store_target *rows = NULL;
    size_t nrows = 0;
    struct policy_gen *g = policy_acquire(app->pol);
    size_t count = policy_gen_count(g);
    struct scaling_target *items = calloc(count ? count : 1, sizeof *items);
    int rc = -1, src;

    *out = NULL;
    *n = 0;
    if (items == NULL) {
        api_error_set(err, "internal", NULL, "internal error");
        goto done;
    }
    if ((src = store_list_targets(app->st, &rows, &nrows)) != STORE_OK) {
        scaling_store_fail(err, src);
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        const char *name = policy_gen_queue(g, i, &items[i].b);
        const struct store_target *row = scaling_find(rows, nrows, name);
        if (row) {
            items[i].t = *row;
        } else {
            util_copy(items[i].t.queue, sizeof items[i].t.queue, name);
            items[i].t.desired = items[i].b.def;
        }
    }
    *out = items;
    *n = count;
    items = NULL;
    rc = 0;
done:
    free(items);
    free(rows);
    policy_release(g);
    return rc;
}

/* ---- judging a change ------------------------------------------------------ */

struct scaling_judge {
    struct app *app;
    const struct scaling_change *c;
    struct policy_gen *gen;      /* held for the whole change: one policy decides it */
    struct policy_bounds b;
    struct api_error *err;
    /* validate()'s verdict, reached before the transaction on the state in
     * seen: 1 accepted, 0 refused, -1 failed; has_verdict 0 when not run. */
    int has_verdict, verdict;
    struct store_target seen;
    char msg[512];
};

static int64_t scaling_ceil_s(int64_t ms) { return ms <= 0 ? 1 : (ms + 999) / 1000; }

/* The checks after the writes flag and before validate(), in lua.md's order:
 * expected_version, bounds, step, confirmation, cooldown, budget. Plain
 * comparisons, cheap enough to run under the write lock. Returns 1 when all
 * pass, else 0 with err filled. */
static int scaling_check_limits(struct scaling_judge *j, const struct store_target *cur,
                                const struct store_stats *stats) {
    const struct scaling_change *c = j->c;
    const struct policy_bounds *b = &j->b;
    struct api_error *err = j->err;
    int64_t now = util_now_ms(), from = cur->desired, step = c->to > from ? c->to - from : from - c->to;
    int moves = c->to != from;
    struct policy_recent recent = {stats->applied_last_hour, stats->oldest_in_hour_ms,
                                   stats->last_applied_ms};
    struct policy_window w;
    policy_bounds_window(b, from, &recent, now, &w);

    if (c->has_expected_version && c->expected_version != cur->version) {
        api_error_set(err, "version_conflict",
                     json_pack("{s:I}", "current_version", (json_int_t)cur->version),
                     "%s: expected version %lld, current version is %lld", c->queue,
                     (long long)c->expected_version, (long long)cur->version);
    } else if (c->to < b->min || c->to > b->max) {
        api_error_set(err, "out_of_bounds",
                     json_pack("{s:I, s:I}", "min", (json_int_t)b->min, "max", (json_int_t)b->max),
                     "%s: %lld is %s %s %lld", c->queue, (long long)c->to,
                     c->to < b->min ? "below" : "above", c->to < b->min ? "min" : "max",
                     (long long)(c->to < b->min ? b->min : b->max));
    } else if (step > b->max_step) {
        api_error_set(err, "step_too_large",
                     json_pack("{s:I, s:I, s:I}", "max_step", (json_int_t)b->max_step, "from",
                               (json_int_t)from, "to", (json_int_t)c->to),
                     "%s: a change of %lld (from %lld to %lld) is larger than max_step %lld",
                     c->queue, (long long)step, (long long)from, (long long)c->to,
                     (long long)b->max_step);
    } else if (moves && b->confirm_above >= 0 && c->to > b->confirm_above && !c->confirm) {
        api_error_set(err, "confirmation_required",
                     json_pack("{s:I}", "confirm_above", (json_int_t)b->confirm_above),
                     "%s: %lld is above %lld; send \"confirm\": true to apply it", c->queue,
                     (long long)c->to, (long long)b->confirm_above);
    } else if (moves && w.cooldown_wait_ms > 0) {
        err->retry_after_s = scaling_ceil_s(w.cooldown_wait_ms);
        api_error_set(err, "rate_limited",
                     json_pack("{s:s, s:I, s:I}", "limit", "cooldown", "cooldown_s",
                               (json_int_t)b->cooldown_s, "retry_after_s",
                               (json_int_t)err->retry_after_s),
                     "%s: changed less than %llds ago (cooldown); retry in %llds", c->queue,
                     (long long)b->cooldown_s, (long long)err->retry_after_s);
    } else if (moves && w.budget_left == 0) {
        err->retry_after_s = scaling_ceil_s(w.budget_wait_ms);
        api_error_set(err, "rate_limited",
                     json_pack("{s:s, s:I, s:I}", "limit", "changes_per_hour", "changes_per_hour",
                               (json_int_t)b->changes_per_hour, "retry_after_s",
                               (json_int_t)err->retry_after_s),
                     "%s: %lld changes in the last hour reached the budget of %lld; retry in %llds",
                     c->queue, (long long)stats->applied_last_hour,
                     (long long)b->changes_per_hour, (long long)err->retry_after_s);
    } else {
        return 1;
    }
    return 0;
}

/* Run validate() on a snapshot read without any write lock, so that a slow
 * (or runaway, until its budget ends it) validate never holds the database
 * or anything a request needs. Skipped when the cheaper checks already
 * refuse the snapshot: the transaction refuses it again, authoritatively.
 * Returns a store_rc. */
static int scaling_prevalidate(struct scaling_judge *j) {
    const struct scaling_change *c = j->c;
    struct store_stats stats;
    int64_t now = util_now_ms();
    int rc = store_read_change(j->app->st, c->queue, j->b.def, now, &j->seen, &stats);
    j->has_verdict = 0;
    if (rc != STORE_OK) return rc;
    if (!scaling_check_limits(j, &j->seen, &stats)) {
        api_error_clear(j->err);
        return STORE_OK;
    }
    struct policy_change pc = {c->queue, j->seen.desired, c->to, c->actor, c->scopes, c->source,
                               c->reason, c->confirm, c->approval_id != NULL};
    struct policy_ctx ctx = {j->app->cfg->env, now, stats.applied_last_hour};
    j->verdict = policy_gen_validate(j->gen, &pc, &ctx, j->msg, sizeof j->msg);
    j->has_verdict = 1;
    if (j->verdict < 0)
        log_json(LOG_ERROR, "policy validate() failed",
                 json_pack("{s:s, s:s, s:s}", "queue", c->queue, "request_id", c->request_id,
                           "error", j->msg));
    return STORE_OK;
}

/* The state validate() judged is still the one in force. */
static int scaling_same_state(const struct store_target *a, const struct store_target *b) {
    return a->version == b->version && a->desired == b->desired &&
           a->expires_at_ms == b->expires_at_ms;
}

/* store_judge_fn, under the write lock: the limits again on the state in
 * force, then validate()'s verdict when it judged this very state; -1 (try
 * again) when a change landed since validate() ran. A change that passes
 * and moves above approve_above (or that validate() asks approval for)
 * waits for a second person, unless it is the approved change itself. */
static int scaling_judge_change(void *ud, const struct store_target *cur,
                                const struct store_stats *stats, char code[STORE_CODE_MAX]) {
    struct scaling_judge *j = ud;
    const struct scaling_change *c = j->c;
    if (scaling_check_limits(j, cur, stats)) {
        int ask = 0;
        if (policy_gen_has_validate(j->gen)) {
            if (!j->has_verdict || !scaling_same_state(cur, &j->seen)) return -1;
            ask = j->verdict == POLICY_NEEDS_APPROVAL;
            if (j->verdict == 1 || ask) goto passed;
            api_error_set(j->err, "policy_rejected",
                         json_pack("{s:s}", "check", j->verdict < 0 ? "validate_error" : "validate"),
                         "%s: %s", c->queue, j->msg);
            util_copy(code, STORE_CODE_MAX, j->err->code);
            return 0;
        }
    passed:
        if (c->approval_id) return 1;
        if (c->to != cur->desired && j->b.approve_above >= 0 && c->to > j->b.approve_above) ask = 1;
        return ask ? STORE_JUDGE_APPROVAL : 1;
    }
    util_copy(code, STORE_CODE_MAX, j->err->code);
    return 0;
}

/* Audit a refusal decided before the write transaction. */
static void scaling_audit_refusal(struct app *app, const struct scaling_change *c, int64_t from,
                                  int64_t version, const char *code) {
    struct store_origin o = {c->actor, c->source, c->reason, c->request_id, util_now_ms()};
    struct store_audit e;
    store_audit_init(&e, "scaling", c->queue, from, c->to, version, "rejected", code, &o);
    e.from_version = c->from_version;
    util_copy(e.approval_id, sizeof e.approval_id, c->approval_id ? c->approval_id : "");
    if (store_append_audit(app->st, &e) != STORE_OK)
        log_json(LOG_ERROR, "could not audit a refused change",
                 json_pack("{s:s, s:s}", "queue", c->queue, "request_id", c->request_id));
}

int scaling_admit_write(struct app *app, const char *token_id, const char *queue,
                        struct api_error *err) {
    struct policy_bounds b;
    int64_t wait_ms = 0;
    if (store_admit_write(app->st, token_id, &wait_ms)) return 1;
    err->retry_after_s = scaling_ceil_s(wait_ms);
    api_error_set(err, "rate_limited",
                 json_pack("{s:s, s:i, s:i, s:I}", "limit", "token", "writes_per_minute",
                           app->cfg->write_rate, "burst", app->cfg->write_burst, "retry_after_s",
                           (json_int_t)err->retry_after_s),
                 "too many writes with this token: at most %d a minute, %d at once; retry in %llds",
                 app->cfg->write_rate, app->cfg->write_burst, (long long)err->retry_after_s);
    /* Counted only for declared queues: names anyone can make up must not
     * grow the metrics either. */
    if (queue && policy_bounds(app->pol, queue, &b) == 0)
        metrics_count_change(app->metrics, queue, "throttled");
    return 0;
}

/* The writes flag, the gate of every write: 0 when it is on; 1 when it is
 * off (err is writes_disabled, its message ending in also); -1 with err
 * when the store could not say. */
static int scaling_writes_gate(struct app *app, const char *also, struct api_error *err) {
    int enabled, rc = flags_get(app, FLAG_WRITES, &enabled);
    if (rc != STORE_OK) {
        scaling_store_fail(err, rc);
        return -1;
    }
    if (enabled) return 0;
    api_error_set(err, "writes_disabled", json_pack("{s:s}", "environment", app->cfg->env),
                  "environment '%s' is read-only: an admin must turn the 'writes' flag on%s",
                  app->cfg->env, also);
    return 1;
}

/* How often a change is judged again when another one landed while its
 * validate() ran, before it gives up with 503 store_busy. */
#define SCALING_VALIDATE_TRIES 3

int scaling_set(struct app *app, const struct scaling_change *c, struct scaling_outcome *out,
                struct api_error *err) {
    struct scaling_judge j;
    struct store_change sc;
    struct store_change_result res;
    struct store_target cur;
    int rc, ok = -1;

    memset(&j, 0, sizeof j);
    memset(out, 0, sizeof *out);
    j.app = app;
    j.c = c;
    j.err = err;
    /* Before anything that may write: a refusal from here on is audited. */
    if (!c->admitted && !scaling_admit_write(app, c->token_id, c->queue, err)) return -1;
    j.gen = policy_acquire(app->pol);
    /* lua.md's order: the writes flag comes before the queue is known. */
    int declared = policy_gen_bounds(j.gen, c->queue, &j.b) == 0;
    int gate = scaling_writes_gate(app, "", err);
    if (gate < 0) goto done;
    if (gate > 0) {
        /* Only declared queues are audited: the log must not fill with
         * names anyone can make up. */
        int quiet = c->quiet_refusal && strcmp(c->quiet_refusal, err->code) == 0;
        if (declared && !quiet && scaling_load(app, c->queue, &j.b, &cur) == STORE_OK) {
            scaling_audit_refusal(app, c, cur.desired, cur.version, err->code);
            metrics_count_change(app->metrics, c->queue, "rejected");
        }
        goto done;
    }
    if (!declared) {
        scaling_unknown(err, c->queue);
        goto done;
    }

    memset(&sc, 0, sizeof sc);
    sc.queue = c->queue;
    sc.to = c->to;
    sc.default_value = j.b.def;
    sc.actor = c->actor;
    sc.source = c->source;
    sc.reason = c->reason;
    sc.request_id = c->request_id;
    sc.from_version = c->from_version;
    sc.approval_id = c->approval_id;
    sc.token_id = c->token_id;
    sc.duration_s = c->duration_s;
    sc.approval_ttl_ms = j.b.approval_ttl_s * 1000;
    sc.quiet_refusal = c->quiet_refusal;
    for (int tries = 0;; tries++) {
        if (policy_gen_has_validate(j.gen) && (rc = scaling_prevalidate(&j)) != STORE_OK) break;
        sc.now_ms = util_now_ms();
        sc.expires_at_ms = c->duration_s > 0 ? sc.now_ms + c->duration_s * 1000 : 0;
        rc = store_apply_change(app->st, &sc, scaling_judge_change, &j, &res);
        if (rc != STORE_OK || res.applied >= 0 || tries + 1 == SCALING_VALIDATE_TRIES) break;
        log_json(LOG_INFO, "another change landed while validate() ran; judging again",
                 json_pack("{s:s, s:s, s:i}", "queue", c->queue, "request_id", c->request_id,
                           "attempt", tries + 2));
    }
    if (rc == STORE_OK && res.applied < 0) rc = STORE_BUSY;   /* the queue kept moving */
    if (rc != STORE_OK) {
        scaling_store_fail(err, rc);
        goto done;
    }
    if (res.applied == STORE_JUDGE_APPROVAL) {    /* stored as pending: nothing changed */
        out->after.t = res.target;
        out->after.b = j.b;
        out->previous = res.previous;
        out->audit_id = res.audit_id;
        out->pending = 1;
        out->approval = res.approval;
        ok = 0;
        goto done;
    }
    if (!res.applied) {                   /* err filled by the judge, or one is pending */
        if (res.approval.id[0]) {
            char ts[UTIL_TIME_MAX];
            api_error_set(err, "approval_pending",
                          json_pack("{s:s, s:I, s:s, s:s}", "approval_id", res.approval.id, "to",
                                    (json_int_t)res.approval.desired, "requested_by",
                                    res.approval.requested_by, "expires_at",
                                    util_format_time(res.approval.expires_at_ms, ts)),
                          "%s: approval %s (to %lld, asked by %s) is pending for this queue; it must "
                          "be approved, rejected or expire before another change waits for approval",
                          c->queue, res.approval.id, (long long)res.approval.desired,
                          res.approval.requested_by);
        }
        metrics_count_change(app->metrics, c->queue, "rejected");
        goto done;
    }
    out->after.t = res.target;
    out->after.b = j.b;
    out->previous = res.previous;
    out->changed = res.changed;
    out->audit_id = res.audit_id;
    ok = 0;
    /* Nothing was stored: nothing to publish, announce or log, however
     * often it is repeated. */
    if (!res.changed) {
        metrics_count_change(app->metrics, c->queue, "unchanged");
        goto done;
    }
    struct store_origin o = {c->actor, c->source, c->reason, c->request_id, sc.now_ms};
    announce_change(app, &res, &o);
done:
    policy_release(j.gen);
    return ok;
}

/* Judge of an expiry: only the very override that was due may be put back;
 * anything newer (a change made meanwhile) wins and nothing is written. */
static int scaling_judge_expiry(void *ud, const struct store_target *cur,
                                const struct store_stats *stats, char code[STORE_CODE_MAX]) {
    const struct store_target *due = ud;
    (void)stats;
    (void)code;
    return cur->version == due->version && cur->expires_at_ms == due->expires_at_ms ? 1 : -1;
}

/* A request id for what sluiced does by itself when something is due:
 * "expiry-" and 16 random hex digits ("expiry" without randomness). */
static void scaling_expiry_rid(char rid[STORE_RID_MAX]) {
    memcpy(rid, "expiry-", 8);
    if (util_random_hex(rid + 7, 8) != 0) strcpy(rid, "expiry");
}

/* Apply sc (queue, kind, to, default_value and reason set by the caller)
 * as sluiced's own doing when something was due: actor "sluice", source
 * "expiry", judged by judge on due, announced when it changed something.
 * 1 when applied, 0 when the judge or the store said no. */
static int scaling_apply_due(struct app *app, struct store_change *sc, store_judge_fn judge,
                             const struct store_target *due) {
    struct store_change_result res;
    char rid[STORE_RID_MAX];
    scaling_expiry_rid(rid);
    sc->actor = "sluice";
    sc->source = "expiry";
    sc->request_id = rid;
    sc->now_ms = util_now_ms();
    if (store_apply_change(app->st, sc, judge, (void *)due, &res) != STORE_OK || res.applied != 1)
        return 0;
    struct store_origin o = {sc->actor, sc->source, sc->reason, sc->request_id, sc->now_ms};
    if (res.changed) announce_change(app, &res, &o);
    return 1;
}

/* Put back the override of due (a row store_list_expired gave). 1 when it
 * was put back. */
static int scaling_expire_override(struct app *app, const struct store_target *due) {
    struct policy_bounds b;
    struct store_change sc;
    char reason[STORE_REASON_MAX];
    int64_t to = due->revert_to;
    if (policy_bounds(app->pol, due->queue, &b) == 0) {
        if (to < b.min) to = b.min;
        if (to > b.max) to = b.max;
    }
    snprintf(reason, sizeof reason, "temporary override to %lld by %s ended; back to %lld",
             (long long)due->desired, due->updated_by, (long long)to);
    memset(&sc, 0, sizeof sc);
    sc.queue = due->queue;
    sc.to = to;
    sc.default_value = due->desired;
    sc.reason = reason;
    return scaling_apply_due(app, &sc, scaling_judge_expiry, due);
}

static int scaling_end_pause(struct app *app, const struct store_target *due);

int scaling_expire_due(struct app *app) {
    struct store_target *due = NULL;
    size_t n = 0;
    int reverted = 0;
    int64_t now = util_now_ms();
    if (store_list_expired(app->st, now, &due, &n) != STORE_OK) return -1;
    for (size_t i = 0; i < n; i++) {
        /* The override first: its judge wants the version it saw, which
         * ending the pause would move (it is then put back next tick). */
        if (due[i].expires_at_ms && due[i].expires_at_ms <= now)
            reverted += scaling_expire_override(app, &due[i]);
        if (due[i].paused && due[i].paused_until_ms && due[i].paused_until_ms <= now)
            reverted += scaling_end_pause(app, &due[i]);
    }
    free(due);
    return reverted;
}

int scaling_history(struct app *app, const char *queue, const struct store_audit_filter *f,
                    int limit, struct store_audit **rows, size_t *n, int64_t *next_before,
                    struct api_error *err) {
    struct policy_bounds b;
    struct store_audit_filter by = {0};
    int rc;

    *rows = NULL;
    *n = 0;
    *next_before = 0;
    if (queue && policy_bounds(app->pol, queue, &b) != 0) {
        scaling_unknown(err, queue);
        return -1;
    }
    if (f) by = *f;
    if (queue) by.subject = queue;
    /* A queue's history is what acted on it: its changes of value, its
     * pauses and resumes (a flag may share its name). */
    if (by.subject && !by.kind) by.queue_kinds = 1;
    if (limit < 1 || limit > SCALING_HISTORY_MAX) limit = 50;
    /* One row more than asked tells whether there is a next page. */
    rc = store_find_audit(app->st, &by, limit + 1, rows, n);
    if (rc != STORE_OK) {
        scaling_store_fail(err, rc);
        return -1;
    }
    if (*n > (size_t)limit) {
        *n = (size_t)limit;
        *next_before = (*rows)[limit - 1].id;
    }
    return 0;
}

/* ---- approvals and revert ---------------------------------------------------------- */

static void scaling_unknown_approval(struct api_error *err, const char *id) {
    api_error_set(err, "unknown_approval", json_pack("{s:s}", "approval_id", id),
                  "there is no approval '%s'", id);
}

int scaling_approval_get(struct app *app, const char *id, struct store_approval *out,
                         struct api_error *err) {
    int rc = store_get_approval(app->st, id, out);
    if (rc == STORE_NOT_FOUND) scaling_unknown_approval(err, id);
    else if (rc != STORE_OK) scaling_store_fail(err, rc);
    return rc == STORE_OK ? 0 : -1;
}

int scaling_approvals(struct app *app, const char *status, int limit,
                      struct store_approval **out, size_t *n, struct api_error *err) {
    if (limit < 1 || limit > SCALING_HISTORY_MAX) limit = 50;
    int rc = store_list_approvals(app->st, status, NULL, limit, out, n);
    if (rc != STORE_OK) scaling_store_fail(err, rc);
    return rc == STORE_OK ? 0 : -1;
}

/* The 409 of an approval that is no longer pending. */
static void scaling_not_pending(struct api_error *err, const struct store_approval *a) {
    if (strcmp(a->status, "expired") == 0)
        api_error_set(err, "approval_expired",
                      json_pack("{s:s, s:s}", "approval_id", a->id, "status", a->status),
                      "approval %s expired: it was not decided within its time; ask again", a->id);
    else
        api_error_set(err, "approval_decided",
                      json_pack("{s:s, s:s, s:s}", "approval_id", a->id, "status", a->status,
                                "decided_by", a->decided_by),
                      "approval %s was already %s by %s", a->id, a->status, a->decided_by);
}

/* Decide approval id as d, to status (after the checks common to approve
 * and reject). Returns 0 with *a decided, or -1 with err. */
static int scaling_decide(struct app *app, const char *id, const struct scaling_decider *d,
                          const char *status, const char *code, struct store_approval *a,
                          struct api_error *err) {
    int decided = 0, rc;
    if (scaling_approval_get(app, id, a, err) != 0) return -1;
    if (strcmp(a->status, "pending") != 0) {
        scaling_not_pending(err, a);
        return -1;
    }
    if (strcmp(status, "approved") == 0 &&
        ((d->token_id && d->token_id[0] && strcmp(d->token_id, a->requester_token) == 0) ||
         strcmp(d->actor, a->requested_by) == 0)) {
        api_error_set(err, "forbidden", json_pack("{s:s}", "approval_id", a->id),
                      "approval %s was asked for by %s: another person must approve it", a->id,
                      a->requested_by);
        return -1;
    }
    char also[STORE_ID_MAX + 32];
    snprintf(also, sizeof also, "; approval %s stays pending", a->id);
    if (scaling_writes_gate(app, also, err) != 0) return -1;
    if (!scaling_admit_write(app, d->token_id, a->queue, err)) return -1;
    struct store_decision dec = {id, status, code, d->actor, d->source, d->reason, d->request_id,
                                 util_now_ms()};
    if ((rc = store_decide_approval(app->st, &dec, a, &decided)) != STORE_OK) {
        if (rc == STORE_NOT_FOUND) scaling_unknown_approval(err, id);
        else scaling_store_fail(err, rc);
        return -1;
    }
    if (!decided) {
        scaling_not_pending(err, a);
        return -1;
    }
    return 0;
}

int scaling_approve(struct app *app, const char *id, const struct scaling_decider *d,
                    struct store_approval *approval, struct scaling_outcome *out,
                    struct api_error *err) {
    memset(out, 0, sizeof *out);
    if (scaling_decide(app, id, d, "approved", NULL, approval, err) != 0) return -1;
    struct scaling_change c;
    memset(&c, 0, sizeof c);
    c.queue = approval->queue;
    c.to = approval->desired;
    c.reason = approval->reason;
    c.confirm = 1;               /* confirmed when asked for; approving confirms it again */
    c.duration_s = approval->duration_s;
    c.actor = approval->requested_by;   /* the change is the requester's */
    c.scopes = d->scopes;
    c.source = d->source;
    c.request_id = d->request_id;
    c.token_id = d->token_id;
    c.from_version = approval->from_version;
    c.approval_id = approval->id;
    c.admitted = 1;
    int rc = scaling_set(app, &c, out, err);
    const char *code = rc == 0 ? NULL : err->code;
    util_copy(approval->result, sizeof approval->result, rc == 0 ? "applied" : "rejected");
    util_copy(approval->result_code, sizeof approval->result_code, code ? code : "");
    if (store_approval_result(app->st, approval->id, approval->result, code) != STORE_OK)
        log_json(LOG_ERROR, "could not record what an approved change did",
                 json_pack("{s:s, s:s}", "approval_id", approval->id, "result", approval->result));
    if (rc != 0) {
        if (err->details == NULL) err->details = json_object();
        if (json_is_object(err->details))
            json_object_set_new(err->details, "approval_id", json_string(approval->id));
    }
    return rc;
}

int scaling_reject(struct app *app, const char *id, const struct scaling_decider *d,
                   struct store_approval *approval, struct api_error *err) {
    return scaling_decide(app, id, d, "rejected", "approval_rejected", approval, err);
}

int scaling_expire_approvals(struct app *app) {
    struct store_approval *rows = NULL;
    size_t n = 0;
    int expired = 0;
    int64_t now = util_now_ms();
    if (store_list_approvals(app->st, "pending", NULL, 1000, &rows, &n) != STORE_OK) return -1;
    for (size_t i = 0; i < n; i++) {
        struct store_approval a;
        char reason[STORE_REASON_MAX], rid[STORE_RID_MAX];
        int decided = 0;
        if (rows[i].expires_at_ms > now) continue;
        snprintf(reason, sizeof reason, "not approved within %llds",
                 (long long)((rows[i].expires_at_ms - rows[i].created_at_ms) / 1000));
        scaling_expiry_rid(rid);
        struct store_decision d = {rows[i].id, "expired", NULL, "sluiced", "sluiced", reason, rid, now};
        if (store_decide_approval(app->st, &d, &a, &decided) == STORE_OK && decided) expired++;
    }
    free(rows);
    return expired;
}

int scaling_revert(struct app *app, const struct scaling_change *c, int64_t to_version,
                   struct scaling_outcome *out, struct api_error *err) {
    struct policy_bounds b;
    struct store_audit_filter f = {0};
    struct store_audit *rows = NULL;
    size_t n = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if (policy_bounds(app->pol, c->queue, &b) != 0) {
        scaling_unknown(err, c->queue);
        return -1;
    }
    f.kind = "scaling";
    f.subject = c->queue;
    f.outcome = "applied";
    f.version = to_version;
    if ((rc = store_find_audit(app->st, &f, 1, &rows, &n)) != STORE_OK) {
        scaling_store_fail(err, rc);
        return -1;
    }
    if (n == 0 || to_version < 1) {
        free(rows);
        api_error_set(err, "unknown_version",
                      json_pack("{s:s, s:I}", "queue", c->queue, "version", (json_int_t)to_version),
                      "%s: no applied change set version %lld (see its history)", c->queue,
                      (long long)to_version);
        return -1;
    }
    struct scaling_change r = *c;
    r.to = rows[0].to;
    r.from_version = to_version;
    free(rows);
    return scaling_set(app, &r, out, err);
}

/* ---- pause and resume ------------------------------------------------------ */

/* store_judge_fn of a pause or resume: nothing limits it (no bounds, step,
 * cooldown or budget: it does not move the value), so it is accepted. */
static int scaling_judge_pause(void *ud, const struct store_target *cur,
                               const struct store_stats *stats, char code[STORE_CODE_MAX]) {
    (void)ud;
    (void)cur;
    (void)stats;
    (void)code;
    return 1;
}

/* store_judge_fn of a timed pause's end: only the very pause that was due
 * ends; a resume or a new pause meanwhile wins and nothing is written. */
static int scaling_judge_pause_end(void *ud, const struct store_target *cur,
                                   const struct store_stats *stats, char code[STORE_CODE_MAX]) {
    const struct store_target *due = ud;
    (void)stats;
    (void)code;
    return cur->paused && cur->paused_until_ms == due->paused_until_ms &&
                   cur->paused_at_ms == due->paused_at_ms
               ? 1
               : -1;
}

/* Audit a pause or resume refused before the write transaction. */
static void scaling_audit_pause_refusal(struct app *app, const struct scaling_pause *p,
                                        const struct store_target *cur, const char *code) {
    struct store_origin o = {p->actor, p->source, p->reason, p->request_id, util_now_ms()};
    struct store_audit e;
    store_audit_init(&e, "pause", p->queue, cur->paused, p->pause != 0, cur->version, "rejected",
                     code, &o);
    if (store_append_audit(app->st, &e) != STORE_OK)
        log_json(LOG_ERROR, "could not audit a refused pause",
                 json_pack("{s:s, s:s}", "queue", p->queue, "request_id", p->request_id));
}

int scaling_pause(struct app *app, const struct scaling_pause *p, struct scaling_outcome *out,
                  struct api_error *err) {
    struct policy_bounds b;
    struct store_change sc;
    struct store_change_result res;
    struct store_target cur;
    int rc, ok = -1;

    memset(out, 0, sizeof *out);
    if (!scaling_admit_write(app, p->token_id, p->queue, err)) return -1;
    struct policy_gen *gen = policy_acquire(app->pol);
    int declared = policy_gen_bounds(gen, p->queue, &b) == 0;
    int gate = scaling_writes_gate(app, "", err);
    if (gate < 0) goto done;
    if (gate > 0) {
        if (declared && scaling_load(app, p->queue, &b, &cur) == STORE_OK) {
            scaling_audit_pause_refusal(app, p, &cur, err->code);
            metrics_count_change(app->metrics, p->queue, "rejected");
        }
        goto done;
    }
    if (!declared) {
        scaling_unknown(err, p->queue);
        goto done;
    }
    memset(&sc, 0, sizeof sc);
    sc.queue = p->queue;
    sc.kind = p->pause ? STORE_CHANGE_PAUSE : STORE_CHANGE_RESUME;
    sc.default_value = b.def;
    sc.actor = p->actor;
    sc.source = p->source;
    sc.reason = p->reason;
    sc.request_id = p->request_id;
    sc.now_ms = util_now_ms();
    sc.paused_until_ms = p->pause && p->duration_s > 0 ? sc.now_ms + p->duration_s * 1000 : 0;
    if ((rc = store_apply_change(app->st, &sc, scaling_judge_pause, NULL, &res)) != STORE_OK) {
        scaling_store_fail(err, rc);
        goto done;
    }
    out->after.t = res.target;
    out->after.b = b;
    out->previous = res.previous;
    out->changed = res.changed;
    out->audit_id = res.audit_id;
    ok = 0;
    if (!res.changed) {               /* already so: nothing stored or announced */
        metrics_count_change(app->metrics, p->queue, "unchanged");
        goto done;
    }
    struct store_origin o = {p->actor, p->source, p->reason, p->request_id, sc.now_ms};
    announce_change(app, &res, &o);
done:
    policy_release(gen);
    return ok;
}

/* End the timed pause of due, as a resume of its own (actor "sluice",
 * source "expiry"). 1 when it ended. */
static int scaling_end_pause(struct app *app, const struct store_target *due) {
    struct policy_bounds b;
    struct store_change sc;
    char reason[STORE_REASON_MAX];
    snprintf(reason, sizeof reason, "timed pause by %s ended", due->paused_by);
    memset(&sc, 0, sizeof sc);
    sc.queue = due->queue;
    sc.kind = STORE_CHANGE_RESUME;
    sc.default_value = policy_bounds(app->pol, due->queue, &b) == 0 ? b.def : due->desired;
    sc.reason = reason;
    return scaling_apply_due(app, &sc, scaling_judge_pause_end, due);
}
