/* autoscale_run.c — the autoscaler's thread: on the leader, evaluates each
 * due rule (inputs from the store, the queue-health model and the history;
 * the rule in the policy's autoscale Lua state), plans with autoscale.c,
 * applies through scaling_set, and keeps what each rule did, in memory and
 * in the store for followers. */
#include "autoscale.h"
#include "audit.h"
#include "auth.h"
#include "health.h"
#include "history.h"
#include "leader.h"
#include "log.h"
#include "scaling.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One decision as api.md shows it. */
struct autoscale_decision {
    int64_t at_ms;
    int has_proposal;
    int64_t proposal, from;
    int has_to;
    int64_t to;
    enum autoscale_outcome outcome;
    char reason[POLICY_AUTOSCALE_REASON_MAX];
    char error_code[STORE_CODE_MAX];
    char message[POLICY_AUTOSCALE_ERROR_MAX];
};

/* What the thread keeps of one rule; under autoscale.lock (only the thread
 * writes it, readers copy). */
struct autoscale_rule {
    char queue[UTIL_NAME_MAX + 1];
    int64_t every_s;
    int64_t next_ms;                 /* next evaluation, wall clock */
    struct autoscale_decision decisions[AUTOSCALE_DECISIONS];   /* oldest first */
    size_t ndecisions;
    char error[POLICY_AUTOSCALE_ERROR_MAX];   /* "" when the last run did not fail */
    int64_t error_at_ms, error_logged_ms;
    struct autoscale_window window;
    struct autoscale_refusal refusal;
    int64_t persisted_ms;
    int dirty;                       /* changed since written to the store */
};

struct autoscale {
    struct app *app;
    pthread_t thread;
    pthread_mutex_t lock;            /* rules, stop, kicked; a leaf */
    pthread_cond_t wake;
    int stop, kicked;
    struct autoscale_rule *rules[POLICY_MAX_QUEUES];
    size_t nrules;
    unsigned term;                   /* leader_term when last evaluated */
};

/* ---- rendering ------------------------------------------------------------------ */

static json_t *autoscale_time_json(int64_t ms) {
    char ts[UTIL_TIME_MAX];
    return ms > 0 ? json_string(util_format_time(ms, ts)) : json_null();
}

static json_t *autoscale_decision_json(const struct autoscale_decision *d) {
    return json_pack("{s:o, s:o, s:I, s:o, s:s, s:s, s:o, s:o}", "at", autoscale_time_json(d->at_ms),
                     "proposal", d->has_proposal ? json_integer(d->proposal) : json_null(), "from",
                     (json_int_t)d->from, "to", d->has_to ? json_integer(d->to) : json_null(),
                     "outcome", autoscale_outcome_name(d->outcome), "reason", d->reason,
                     "error_code", d->error_code[0] ? json_string(d->error_code) : json_null(),
                     "message", d->message[0] ? json_string(d->message) : json_null());
}

/* Called with the lock held. */
static json_t *autoscale_rule_json(const struct autoscale_rule *r) {
    json_t *list = json_array();
    for (size_t i = r->ndecisions; i-- > 0;)
        json_array_append_new(list, autoscale_decision_json(&r->decisions[i]));
    return json_pack("{s:o, s:o, s:o, s:o}", "decisions", list, "last_decision",
                     r->ndecisions ? autoscale_decision_json(&r->decisions[r->ndecisions - 1])
                                   : json_null(),
                     "error",
                     r->error[0] ? json_pack("{s:s, s:o}", "message", r->error, "at",
                                             autoscale_time_json(r->error_at_ms))
                                 : json_null(),
                     "next_evaluation_at", autoscale_time_json(r->next_ms));
}

static struct autoscale_rule *autoscale_find(struct autoscale *as, const char *queue) {
    for (size_t i = 0; i < as->nrules; i++)
        if (strcmp(as->rules[i]->queue, queue) == 0) return as->rules[i];
    return NULL;
}

json_t *autoscale_state_json(struct autoscale *as, const char *queue) {
    json_t *out = NULL;
    /* A follower (or a leader that lost its lease) has nothing newer than
     * what the leader stored. */
    if (as == NULL || !leader_is(as->app->leader)) return NULL;
    pthread_mutex_lock(&as->lock);
    struct autoscale_rule *r = autoscale_find(as, queue);
    if (r && r->next_ms > 0) out = autoscale_rule_json(r);
    pthread_mutex_unlock(&as->lock);
    return out;
}

/* ---- recording what a rule did ------------------------------------------------------ */

/* Append d to r's decisions; the same decision as the newest (outcome,
 * values, reason, code) only renews the newest's time and message, so that
 * a steady rule does not push its history out. Lock held. */
static void autoscale_record(struct autoscale_rule *r, const struct autoscale_decision *d) {
    struct autoscale_decision *last = r->ndecisions ? &r->decisions[r->ndecisions - 1] : NULL;
    if (last && last->outcome == d->outcome && last->has_proposal == d->has_proposal &&
        last->proposal == d->proposal && last->from == d->from && last->has_to == d->has_to &&
        last->to == d->to && strcmp(last->reason, d->reason) == 0 &&
        strcmp(last->error_code, d->error_code) == 0) {
        last->at_ms = d->at_ms;
        util_copy(last->message, sizeof last->message, d->message);
        return;
    }
    if (r->ndecisions == AUTOSCALE_DECISIONS) {
        memmove(&r->decisions[0], &r->decisions[1], (AUTOSCALE_DECISIONS - 1) * sizeof r->decisions[0]);
        r->ndecisions--;
    }
    r->decisions[r->ndecisions++] = *d;
    r->dirty = 1;
}

/* Write r to the store when it changed (or now and then, so that a
 * follower's next_evaluation_at stays near). Lock not held: r is only
 * written by this thread. */
static void autoscale_persist(struct autoscale *as, struct autoscale_rule *r, int64_t now_ms) {
    if (!r->dirty && now_ms - r->persisted_ms < AUTOSCALE_PERSIST_MS) return;
    pthread_mutex_lock(&as->lock);
    json_t *state = autoscale_rule_json(r);
    pthread_mutex_unlock(&as->lock);
    char *text = json_dumps(state, JSON_COMPACT);
    json_decref(state);
    if (text && store_autoscale_put_state(as->app->st, r->queue, text, now_ms) == STORE_OK) {
        r->dirty = 0;
        r->persisted_ms = now_ms;
    }
    free(text);
}

/* ---- one evaluation ------------------------------------------------------------------ */

/* q as the rule sees it, from the stored row and the health model. */
static void autoscale_inputs(struct app *app, const char *queue, const struct scaling_target *t,
                             struct policy_autoscale_q *q) {
    q->queue = queue;
    q->waiting = q->active = q->delayed = q->failed = POLICY_UNKNOWN;
    q->running = q->workers = POLICY_UNKNOWN;
    q->done_per_s = q->failed_per_s = NAN;
    q->desired = t->t.desired;
    q->paused = t->t.paused;
    q->b = &t->b;
    struct health_model *m = health_current(app);
    const struct queue_health *h = m ? health_queue(m, queue) : NULL;
    if (h) {
        if (m->redis_up && h->has_depth) {
            q->waiting = h->depth.waiting;
            q->active = h->depth.active;
            q->delayed = h->depth.delayed;
            q->failed = h->depth.failed;
        }
        q->running = h->active_concurrency;
        q->workers = h->live_workers;
        if (m->redis_up) {
            q->done_per_s = h->rates.completed_per_s;
            q->failed_per_s = h->rates.failed_per_s;
        }
    }
    health_release(m);
}

/* ctx.history from the 10 s samples of the last AUTOSCALE_HISTORY_MS. */
static size_t autoscale_history(struct app *app, const char *queue, int64_t now_ms,
                                struct policy_autoscale_point *out) {
    struct history_sample_at pts[AUTOSCALE_HISTORY_MAX];
    size_t n = app->history ? history_recent(app->history, queue, now_ms - AUTOSCALE_HISTORY_MS,
                                             pts, AUTOSCALE_HISTORY_MAX)
                            : 0;
    for (size_t i = 0; i < n; i++) {
        const struct history_sample *s = &pts[i].s;
        out[i] = (struct policy_autoscale_point){pts[i].at_ms, s->waiting, s->active, s->desired,
                                                 s->running, s->workers, s->done_per_s,
                                                 s->failed_per_s};
    }
    return n;
}

/* The explicit hold of queue (0 when none or the store cannot say). */
static int autoscale_hold_of(struct app *app, const char *queue, struct store_autoscale_hold *out) {
    struct store_autoscale_hold *holds = NULL;
    size_t n = 0;
    int found = 0;
    if (store_autoscale_holds(app->st, &holds, &n) == STORE_OK) {
        for (size_t i = 0; i < n && !found; i++) {
            if (strcmp(holds[i].queue, queue) == 0) {
                *out = holds[i];
                found = 1;
            }
        }
    }
    free(holds);
    return found;
}

/* Send plan p of rule a through scaling_set; fills d. */
static void autoscale_apply(struct autoscale *as, struct autoscale_rule *r,
                            const struct policy_autoscale *a, const struct autoscale_plan *p,
                            const char *reason, struct autoscale_decision *d) {
    char actor[STORE_ACTOR_MAX], rid[40] = "autoscale-";
    struct api_error err = {0};
    struct scaling_outcome out;
    snprintf(actor, sizeof actor, "autoscaler:%s", a->queue);
    if (util_random_hex(rid + 10, 8) != 0) util_copy(rid, sizeof rid, "autoscale");
    struct scaling_change c = {
        .queue = a->queue, .to = p->to, .reason = reason[0] ? reason : "autoscale rule",
        .confirm = p->confirm, .actor = actor, .scopes = AUTH_SCOPE_READ | AUTH_SCOPE_WRITE,
        .source = "autoscaler", .request_id = rid, .admitted = 1,
        .quiet_refusal = autoscale_quiet_code(&r->refusal, p->to)};
    if (scaling_set(as->app, &c, &out, &err) == 0 && !out.pending) {
        d->outcome = out.changed ? AUTOSCALE_APPLIED : AUTOSCALE_UNCHANGED;
        autoscale_note_refusal(&r->refusal, p->to, NULL);
    } else if (out.pending) {
        /* allow_above_confirm above approve_above: a person decides. */
        d->outcome = AUTOSCALE_REJECTED;
        util_copy(d->error_code, sizeof d->error_code, "approval_required");
        snprintf(d->message, sizeof d->message, "waiting for approval %s", out.approval.id);
        autoscale_note_refusal(&r->refusal, p->to, NULL);
    } else {
        d->outcome = AUTOSCALE_REJECTED;
        util_copy(d->error_code, sizeof d->error_code, err.code);
        util_copy_utf8(d->message, sizeof d->message, err.message);
        autoscale_note_refusal(&r->refusal, p->to, err.code);
    }
    api_error_clear(&err);
}

/* What a dry run would meet, where the change window tells it cheaply. */
static void autoscale_dry_note(const struct scaling_target *t, const struct autoscale_plan *p,
                               struct autoscale_decision *d) {
    const char *would = "would apply";
    if (t->has_window && t->window.cooldown_wait_ms > 0) would = "would be refused now (cooldown)";
    else if (t->has_window && t->window.budget_left == 0) would = "would be refused now (hourly budget)";
    snprintf(d->message, sizeof d->message, "%s %lld%s%s", would, (long long)p->to,
             p->note[0] ? "; " : "", p->note);
}

/* Log a failing rule at most once a minute, and whenever its error changes. */
static void autoscale_log_error(struct autoscale_rule *r, const char *msg, int64_t now_ms) {
    if (strcmp(r->error, msg) == 0 && now_ms - r->error_logged_ms < AUTOSCALE_ERROR_LOG_MS) return;
    r->error_logged_ms = now_ms;
    log_json(LOG_ERROR, "autoscale rule failed; nothing applied",
             json_pack("{s:s, s:s}", "queue", r->queue, "error", msg));
}

/* Evaluate rule i of g (r is its state) at now_ms. */
static void autoscale_evaluate(struct autoscale *as, struct policy_gen *g, size_t i,
                               struct autoscale_rule *r, int64_t now_ms) {
    const struct policy_autoscale *a = policy_gen_autoscale(g, i);
    struct app *app = as->app;
    struct scaling_target t;
    struct api_error err = {0};
    struct autoscale_decision d;
    struct policy_autoscale_result res;
    struct policy_autoscale_point hist[AUTOSCALE_HISTORY_MAX];
    struct policy_autoscale_past past[AUTOSCALE_DECISIONS];
    struct policy_autoscale_q q;

    memset(&d, 0, sizeof d);
    d.at_ms = now_ms;
    if (scaling_get(app, a->queue, &t, &err) != 0) {
        d.outcome = AUTOSCALE_ERROR;
        snprintf(d.message, sizeof d.message, "could not read the queue: %.200s", err.message);
        api_error_clear(&err);
        goto record;
    }
    d.from = t.t.desired;
    autoscale_inputs(app, a->queue, &t, &q);
    struct policy_autoscale_ctx ctx = {now_ms, hist, autoscale_history(app, a->queue, now_ms, hist),
                                       past, r->ndecisions};
    for (size_t k = 0; k < r->ndecisions; k++) {     /* only this thread writes r */
        const struct autoscale_decision *x = &r->decisions[k];
        past[k] = (struct policy_autoscale_past){x->at_ms, x->has_proposal, x->proposal,
                                                 autoscale_outcome_name(x->outcome), x->reason};
    }
    if (policy_gen_autoscale_run(g, i, &q, &ctx, &res) != 0) {
        d.outcome = AUTOSCALE_ERROR;
        util_copy(d.message, sizeof d.message, res.error);
        autoscale_log_error(r, res.error, now_ms);
        goto record;
    }
    util_copy(d.reason, sizeof d.reason, res.reason);
    d.has_proposal = res.has_desired;
    d.proposal = res.desired;

    struct store_autoscale_hold hold;
    struct autoscale_hold_view held;
    int has_hold = autoscale_hold_of(app, a->queue, &hold);
    autoscale_held(a, &t.t, has_hold ? &hold : NULL, now_ms, &held);
    struct autoscale_plan_in in = {now_ms, t.t.desired, res.has_desired, res.desired, &t.b, a,
                                   held.held};
    struct autoscale_plan p;
    autoscale_plan(&in, &r->window, &p);
    d.outcome = p.outcome;
    d.has_to = p.outcome != AUTOSCALE_NO_OPINION;
    d.to = p.to;
    util_copy(d.message, sizeof d.message, p.note);
    if (p.outcome == AUTOSCALE_HELD) {
        char ts[UTIL_TIME_MAX];
        snprintf(d.message, sizeof d.message, "held until %s (%s by %s)",
                 util_format_time(held.until_ms, ts), held.kind, held.by);
    } else if (p.outcome == AUTOSCALE_DRY_RUN) {
        autoscale_dry_note(&t, &p, &d);
    } else if (p.outcome == AUTOSCALE_APPLY) {
        autoscale_apply(as, r, a, &p, res.reason, &d);
    }
record:
    pthread_mutex_lock(&as->lock);
    if (d.outcome == AUTOSCALE_ERROR) {
        if (strcmp(r->error, d.message) != 0) r->dirty = 1;
        util_copy(r->error, sizeof r->error, d.message);
        r->error_at_ms = now_ms;
    } else if (r->error[0]) {
        r->error[0] = '\0';
        r->dirty = 1;
    }
    autoscale_record(r, &d);
    r->next_ms = now_ms + r->every_s * 1000;
    pthread_mutex_unlock(&as->lock);
    autoscale_persist(as, r, now_ms);
}

/* ---- taking over ----------------------------------------------------------------------- */

static enum autoscale_outcome autoscale_outcome_named(const char *name) {
    for (int o = AUTOSCALE_NO_OPINION; o <= AUTOSCALE_ERROR; o++)
        if (name && strcmp(autoscale_outcome_name((enum autoscale_outcome)o), name) == 0)
            return (enum autoscale_outcome)o;
    return AUTOSCALE_ERROR;
}

/* One decision of a stored state (api.md's shape) into d; 0, or -1. */
static int autoscale_decision_of(json_t *j, struct autoscale_decision *d) {
    json_t *proposal = json_object_get(j, "proposal"), *to = json_object_get(j, "to");
    const char *at = json_string_value(json_object_get(j, "at"));
    memset(d, 0, sizeof *d);
    if (at == NULL || audit_parse_time(at, &d->at_ms) != 0) return -1;
    d->has_proposal = json_is_integer(proposal);
    d->proposal = json_integer_value(proposal);
    d->from = json_integer_value(json_object_get(j, "from"));
    d->has_to = json_is_integer(to);
    d->to = json_integer_value(to);
    d->outcome = autoscale_outcome_named(json_string_value(json_object_get(j, "outcome")));
    const char *reason = json_string_value(json_object_get(j, "reason")),
               *code = json_string_value(json_object_get(j, "error_code")),
               *msg = json_string_value(json_object_get(j, "message"));
    util_copy(d->reason, sizeof d->reason, reason ? reason : "");
    util_copy(d->error_code, sizeof d->error_code, code ? code : "");
    util_copy(d->message, sizeof d->message, msg ? msg : "");
    return 0;
}

/* A rule new to this process takes the decisions the last leader stored,
 * so that the history shown and given to ctx.decisions goes on across a
 * change of leader. Called before the rule is first evaluated (no reader
 * sees r's decisions until then: next_ms is 0). */
static void autoscale_restore(struct autoscale *as, struct autoscale_rule **fresh, size_t n) {
    struct store_autoscale_state *states = NULL;
    size_t ns = 0;
    if (n == 0 || store_autoscale_states(as->app->st, &states, &ns) != STORE_OK) return;
    for (size_t k = 0; k < n; k++) {
        struct autoscale_rule *r = fresh[k];
        for (size_t i = 0; i < ns; i++) {
            if (strcmp(states[i].queue, r->queue) != 0) continue;
            json_t *state = json_loads(states[i].state, 0, NULL), *d;
            size_t idx = json_array_size(json_object_get(state, "decisions"));
            pthread_mutex_lock(&as->lock);
            while (idx-- > 0 && r->ndecisions < AUTOSCALE_DECISIONS) {   /* stored newest first */
                d = json_array_get(json_object_get(state, "decisions"), idx);
                if (autoscale_decision_of(d, &r->decisions[r->ndecisions]) == 0) r->ndecisions++;
            }
            pthread_mutex_unlock(&as->lock);
            json_decref(state);
        }
    }
    free(states);
}

/* ---- the thread ----------------------------------------------------------------------- */

/* Match the rule states to the rules of g (a reload may add, drop or
 * change them): new rules are due now; a shorter every_s applies at once. */
static void autoscale_sync(struct autoscale *as, struct policy_gen *g, int64_t now_ms) {
    struct autoscale_rule *fresh[POLICY_MAX_QUEUES];
    size_t nfresh = 0;
    pthread_mutex_lock(&as->lock);
    for (size_t k = 0; k < as->nrules;) {
        if (policy_gen_autoscale_of(g, as->rules[k]->queue, NULL) == NULL) {
            free(as->rules[k]);
            as->rules[k] = as->rules[--as->nrules];
        } else {
            k++;
        }
    }
    for (size_t i = 0; i < policy_gen_autoscale_count(g); i++) {
        const struct policy_autoscale *a = policy_gen_autoscale(g, i);
        struct autoscale_rule *r = autoscale_find(as, a->queue);
        if (r == NULL) {
            if ((r = calloc(1, sizeof *r)) == NULL) continue;
            util_copy(r->queue, sizeof r->queue, a->queue);
            as->rules[as->nrules++] = r;
            fresh[nfresh++] = r;
        }
        if (r->every_s != a->every_s && r->next_ms > now_ms + a->every_s * 1000)   /* shorter now */
            r->next_ms = now_ms + a->every_s * 1000;
        r->every_s = a->every_s;
    }
    pthread_mutex_unlock(&as->lock);
    autoscale_restore(as, fresh, nfresh);
}

/* One pass: every due rule (every rule when kicked, or in a new term). */
/* Forget every rule's state (this process no longer leads): when it leads
 * again, it starts from what the leader of the meantime stored. */
static void autoscale_forget(struct autoscale *as) {
    pthread_mutex_lock(&as->lock);
    for (size_t i = 0; i < as->nrules; i++) free(as->rules[i]);
    as->nrules = 0;
    pthread_mutex_unlock(&as->lock);
}

static void autoscale_pass(struct autoscale *as, int kicked) {
    struct app *app = as->app;
    if (!leader_is(app->leader)) {
        if (as->nrules > 0) autoscale_forget(as);     /* only this thread changes nrules */
        return;
    }
    int64_t now_ms = util_now_ms();
    unsigned term = leader_term(app->leader);
    struct policy_gen *g = policy_acquire(app->pol);
    autoscale_sync(as, g, now_ms);
    for (size_t i = 0; i < policy_gen_autoscale_count(g); i++) {
        const struct policy_autoscale *a = policy_gen_autoscale(g, i);
        pthread_mutex_lock(&as->lock);
        struct autoscale_rule *r = autoscale_find(as, a->queue);
        int due = r && (term != as->term || kicked || r->next_ms <= now_ms);
        pthread_mutex_unlock(&as->lock);
        /* Only this thread adds or frees rule states: r stays valid. */
        if (due) autoscale_evaluate(as, g, i, r, util_now_ms());
    }
    as->term = term;
    policy_release(g);
}

static void *autoscale_main(void *ud) {
    struct autoscale *as = ud;
    int kicked = 0;
    pthread_mutex_lock(&as->lock);
    while (!as->stop) {
        pthread_mutex_unlock(&as->lock);
        autoscale_pass(as, kicked);
        pthread_mutex_lock(&as->lock);
        if (!as->stop && !as->kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += AUTOSCALE_TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&as->wake, &as->lock, &ts);
        }
        kicked = as->kicked;
        as->kicked = 0;
    }
    pthread_mutex_unlock(&as->lock);
    return NULL;
}

void autoscale_kick(struct autoscale *as) {
    if (as == NULL) return;
    pthread_mutex_lock(&as->lock);
    as->kicked = 1;
    pthread_cond_signal(&as->wake);
    pthread_mutex_unlock(&as->lock);
}

struct autoscale *autoscale_start(struct app *app, char *err, size_t errlen) {
    pthread_condattr_t attr;
    struct autoscale *as = calloc(1, sizeof *as);
    if (as == NULL) {
        snprintf(err, errlen, "autoscale: out of memory");
        return NULL;
    }
    as->app = app;
    as->term = (unsigned)-1;
    pthread_mutex_init(&as->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&as->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&as->thread, NULL, autoscale_main, as) != 0) {
        snprintf(err, errlen, "autoscale: cannot start its thread");
        pthread_mutex_destroy(&as->lock);
        pthread_cond_destroy(&as->wake);
        free(as);
        return NULL;
    }
    return as;
}

void autoscale_stop(struct autoscale *as) {
    if (as == NULL) return;
    pthread_mutex_lock(&as->lock);
    as->stop = 1;
    pthread_cond_signal(&as->wake);
    pthread_mutex_unlock(&as->lock);
    pthread_join(as->thread, NULL);
    for (size_t i = 0; i < as->nrules; i++) free(as->rules[i]);
    pthread_mutex_destroy(&as->lock);
    pthread_cond_destroy(&as->wake);
    free(as);
}
