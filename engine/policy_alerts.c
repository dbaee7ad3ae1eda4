/* policy_alerts.c — evaluating the alert rules of a policy generation, in
 * its tick state (L_tick, under tick_lock: never the state or lock a change
 * uses), for alerts.c. */
#include "policy_int.h"
#include "log.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct policy_eval {
    const struct policy_alert *alert;
    lua_Integer decl_index;                  /* in POLICY_REG_ALERTS */
    const struct policy_alert_queue *q;
    struct policy_alert_hit *hits;
    size_t n, cap;
    const struct policy_notify_failing *failing;   /* notify.c's, copied; may be NULL */
    size_t nfailing;
};

int64_t policy_notify_failures_of(const struct policy_notify_failing *f, size_t n,
                                  const char *queue) {
    for (size_t i = 0; f && i < n; i++)
        if (strcmp(f[i].queue, queue) == 0) return f[i].count;
    return 0;
}

static void policy_push_q(lua_State *L, const struct policy_eval *e) {
    const struct policy_alert_queue *q = e->q;
    lua_createtable(L, 0, 8);
    policy_set_int(L, "notify_failures", policy_notify_failures_of(e->failing, e->nfailing, q->queue));
    policy_set_str(L, "queue", q->queue);
    policy_set_int(L, "desired", q->desired);
    lua_pushboolean(L, q->paused);                        /* q, paused */
    lua_setfield(L, -2, "paused");
    policy_set_int(L, "version", q->version);
    policy_set_int(L, "worker_count", (lua_Integer)q->nworkers);
    lua_createtable(L, 0, 4);
    policy_set_int(L, "waiting", q->waiting);
    policy_set_int(L, "active", q->active);
    policy_set_int(L, "delayed", q->delayed);
    policy_set_int(L, "failed", q->failed);
    lua_setfield(L, -2, "depth");
}

static void policy_push_w(lua_State *L, const struct policy_alert_worker *w) {
    lua_createtable(L, 0, 6);
    policy_set_str(L, "id", w->id);
    lua_pushboolean(L, w->paused);                        /* w, paused */
    lua_setfield(L, -2, "paused");
    policy_set_int(L, "concurrency", w->concurrency);
    policy_set_int(L, "version", w->version);
    policy_set_int(L, "active", w->active);
    policy_set_str(L, "state", w->state);
}

static void policy_add_hit(lua_State *L, struct policy_eval *e, const char *worker, int nargs) {
    struct policy_alert_hit *h;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        struct policy_alert_hit *grown = realloc(e->hits, cap * sizeof *grown);
        if (grown == NULL) luaL_error(L, "out of memory");
        e->hits = grown;
        e->cap = cap;
    }
    h = &e->hits[e->n];
    memset(h, 0, sizeof *h);
    util_copy(h->alert, sizeof h->alert, e->alert->name);
    util_copy(h->queue, sizeof h->queue, e->q->queue);
    util_copy(h->worker, sizeof h->worker, worker);
    util_copy(h->severity, sizeof h->severity, e->alert->severity);
    h->for_s = e->alert->for_s;
    /* message(w, q) or message(q), with the arguments already on the stack */
    if (lua_getfield(L, 1, "message") == LUA_TFUNCTION) {   /* spec, args..., fn */
        lua_insert(L, -1 - nargs);                          /* spec, fn, args... */
        lua_call(L, nargs, 1);
        util_copy_utf8(h->message, sizeof h->message,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1 + nargs);
    }
    if (h->message[0] == '\0')
        snprintf(h->message, sizeof h->message, "%s on %s%s%s", e->alert->name, e->q->queue,
                 worker[0] ? " worker " : "", worker);
    e->n++;
}

/* Protected: evaluate one rule over one queue. */
static int policy_eval_cf(lua_State *L) {
    struct policy_eval *e = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_ALERTS);
    lua_rawgeti(L, -1, e->decl_index);
    lua_getfield(L, -1, "spec");
    lua_replace(L, 1);                          /* spec */
    lua_settop(L, 1);
    if (!e->alert->per_worker) {
        lua_getfield(L, 1, "queue");            /* spec, fn */
        policy_push_q(L, e);                 /* spec, fn, q */
        lua_pushvalue(L, -1);
        lua_insert(L, 2);                       /* spec, q, fn, q */
        lua_call(L, 1, 1);                      /* spec, q, holds */
        int holds = lua_toboolean(L, -1);
        lua_pop(L, 1);                          /* spec, q */
        if (holds) policy_add_hit(L, e, "", 1);
        return 0;
    }
    for (size_t i = 0; i < e->q->nworkers; i++) {
        lua_settop(L, 1);
        lua_getfield(L, 1, "worker");           /* spec, fn */
        policy_push_w(L, &e->q->workers[i]);    /* spec, fn, w */
        policy_push_q(L, e);                 /* spec, fn, w, q */
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);                   /* spec, fn, w, q, w, q */
        lua_rotate(L, 2, 2);                    /* spec, w, q, fn, w, q */
        lua_call(L, 2, 1);                      /* spec, w, q, holds */
        int holds = lua_toboolean(L, -1);
        lua_pop(L, 1);                          /* spec, w, q */
        if (holds) policy_add_hit(L, e, e->q->workers[i].id, 2);
    }
    return 0;
}

static size_t policy_eval_with(struct policy_gen *g, const struct policy_alert_queue *qs, size_t nq,
                               const struct policy_notify_failing *failing, size_t nfailing,
                               struct policy_alert_hit **out) {
    struct policy_eval e;
    memset(&e, 0, sizeof e);
    e.failing = failing;
    e.nfailing = nfailing;
    *out = NULL;
    if (g == NULL || g->nalerts == 0) return 0;
    pthread_mutex_lock(&g->tick_lock);
    lua_State *L = g->L_tick;
    for (size_t a = 0; a < g->nalerts; a++) {
        struct policy_rule_failure failed = {0};
        for (size_t q = 0; q < nq; q++) {
            e.alert = &g->alerts[a];
            e.decl_index = (lua_Integer)a + 1;
            e.q = &qs[q];
            size_t before = e.n;
            sandbox_set_phase(L, SANDBOX_TICK);
            lua_settop(L, 0);
            lua_pushcfunction(L, policy_eval_cf);
            lua_pushlightuserdata(L, &e);
            if (sandbox_pcall(L, 1, 0) != LUA_OK) {
                e.n = before;               /* a failed rule holds nothing */
                failed.failing = 1;
                util_copy(failed.queue, sizeof failed.queue, qs[q].queue);
                util_copy_utf8(failed.error, sizeof failed.error,
                               lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
                failed.at_ms = util_now_ms();
                /* Once a minute per policy, not once a second per queue. */
                int64_t now = util_mono_ms();
                if (now - g->rule_error_logged_ms >= 60000) {
                    g->rule_error_logged_ms = now;
                    log_json(LOG_ERROR, "alert rule failed (logged at most once a minute)",
                             json_pack("{s:s, s:s, s:s}", "alert", g->alerts[a].name, "queue",
                                       qs[q].queue, "error", lua_tostring(L, -1)));
                }
            }
            lua_settop(L, 0);
            sandbox_set_phase(L, SANDBOX_IDLE);
        }
        /* The rule's last pass: its last failure, or none (cleared). */
        pthread_mutex_lock(&g->fail_lock);
        g->failures[a] = failed;
        pthread_mutex_unlock(&g->fail_lock);
    }
    pthread_mutex_unlock(&g->tick_lock);
    *out = e.hits;
    return e.n;
}

size_t policy_gen_eval_alerts(struct policy_gen *g, const struct policy_alert_queue *qs, size_t nq,
                              struct policy_alert_hit **out) {
    return policy_eval_with(g, qs, nq, NULL, 0, out);
}

size_t policy_eval_alerts(policy *p, const struct policy_alert_queue *qs, size_t nq,
                          struct policy_alert_hit **out) {
    struct policy_notify_failing *failing = NULL;
    size_t nfailing = 0;
    pthread_mutex_lock(&p->lock);
    if (p->nnotify_failing > 0 && (failing = malloc(p->nnotify_failing * sizeof *failing)) != NULL) {
        nfailing = p->nnotify_failing;
        memcpy(failing, p->notify_failing, nfailing * sizeof *failing);
    }
    pthread_mutex_unlock(&p->lock);
    struct policy_gen *g = policy_acquire(p);
    size_t n = policy_eval_with(g, qs, nq, failing, nfailing, out);
    policy_release(g);
    free(failing);
    return n;
}
