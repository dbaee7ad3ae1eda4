/* alerts.c — pending/firing/resolved bookkeeping over policy_eval_alerts. */
#include "alerts.h"
#include "app.h"
#include "bus.h"
#include "fleet.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ALERTS_MAX 10000

struct alert_entry {
    struct policy_alert_hit hit;
    int firing;
    int64_t since_ms;            /* when the condition started to hold */
    int seen;                    /* held in the current tick */
};

struct alerts {
    pthread_mutex_t lock;
    struct alert_entry *items;
    size_t n, cap;
};

alerts *alerts_new(void) {
    alerts *al = calloc(1, sizeof *al);
    if (al) pthread_mutex_init(&al->lock, NULL);
    return al;
}

void alerts_free(alerts *al) {
    if (al == NULL) return;
    free(al->items);
    pthread_mutex_destroy(&al->lock);
    free(al);
}

static int alerts_same(const struct policy_alert_hit *a, const struct policy_alert_hit *b) {
    return strcmp(a->alert, b->alert) == 0 && strcmp(a->queue, b->queue) == 0 &&
           strcmp(a->worker, b->worker) == 0;
}

static void alerts_announce(struct app *app, const struct alert_entry *e, const char *state,
                            int64_t now_ms) {
    char ts[UTIL_TIME_MAX];
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "alert", e->hit.alert, "queue",
                            e->hit.queue, "state", state, "severity", e->hit.severity, "message",
                            e->hit.message, "at", util_format_time(now_ms, ts));
    if (msg && e->hit.worker[0]) json_object_set_new(msg, "worker", json_string(e->hit.worker));
    /* Every replica evaluates (its API shows the alerts); only the leader
     * logs and notifies, so one transition is announced once. */
    events_broadcast(app->events, "alert", msg);
    if (!leader_is(app->leader)) {
        json_decref(msg);
        return;
    }
    log_json(strcmp(state, "firing") == 0 ? LOG_WARN : LOG_INFO, "alert", json_deep_copy(msg));
    bus_publish_alert(app->bus, msg);
}

/* Gather what the rules see: every declared queue with its desired state
 * and its live workers. Returns the count; arrays are malloc'd. */
static size_t alerts_inputs(struct app *app, int64_t mono, struct policy_alert_queue **qs_out,
                            struct fleet_worker ***workers_out,
                            struct policy_alert_worker ***views_out, char **names_out) {
    char (*names)[UTIL_NAME_MAX + 1] = malloc(POLICY_MAX_QUEUES * sizeof *names);
    size_t nq = names ? policy_queue_names(app->pol, names, POLICY_MAX_QUEUES) : 0;
    if (nq > POLICY_MAX_QUEUES) nq = POLICY_MAX_QUEUES;
    struct policy_alert_queue *qs = calloc(nq ? nq : 1, sizeof *qs);
    struct fleet_worker **workers = calloc(nq ? nq : 1, sizeof *workers);
    struct policy_alert_worker **views = calloc(nq ? nq : 1, sizeof *views);
    char *qnames = malloc((nq ? nq : 1) * (UTIL_NAME_MAX + 1));
    size_t used = 0;
    for (size_t i = 0; qs && workers && views && qnames && i < nq; i++) {
        struct policy_bounds b;
        struct store_target t;
        if (policy_bounds(app->pol, names[i], &b) != 0) continue;
        int rc = store_get_target(app->st, names[i], &t);
        if (rc == STORE_NOT_FOUND) t.desired = b.def, t.version = 0;
        else if (rc != STORE_OK) continue;     /* store down: judge nothing */
        struct policy_alert_queue *q = &qs[used];
        char *qname = qnames + used * (UTIL_NAME_MAX + 1);
        util_copy(qname, UTIL_NAME_MAX + 1, names[i]);
        q->queue = qname;
        q->desired = t.desired;
        q->version = t.version;
        int64_t depth[4];
        if (telemetry_depth(app->telemetry, names[i], depth) == 0) {
            q->waiting = depth[0];
            q->active = depth[1];
            q->delayed = depth[2];
            q->failed = depth[3];
        }
        struct fleet_worker *ws = NULL;
        size_t nw = fleet_workers(app->fl, names[i], mono, &ws);
        struct policy_alert_worker *vs = calloc(nw ? nw : 1, sizeof *vs);
        size_t live = 0;
        for (size_t k = 0; vs && k < nw; k++) {
            if (ws[k].stale) continue;      /* rules see live workers only */
            vs[live].id = ws[k].id;
            vs[live].concurrency = ws[k].concurrency;
            vs[live].version = ws[k].version;
            vs[live].active = ws[k].active;
            vs[live].state = ws[k].invalid                  ? "invalid"
                             : ws[k].concurrency == t.desired ? "ok"
                                                              : "mismatch";
            live++;
        }
        q->workers = vs;
        q->nworkers = vs ? live : 0;
        workers[used] = ws;
        views[used] = vs;
        used++;
    }
    free(names);
    if (!qs || !workers || !views || !qnames) {
        free(qs), free(workers), free(views), free(qnames);
        qs = NULL, workers = NULL, views = NULL, qnames = NULL, used = 0;
    }
    *qs_out = qs;
    *workers_out = workers;
    *views_out = views;
    *names_out = qnames;
    return used;
}

void alerts_tick(alerts *al, struct app *app, int64_t now_ms) {
    struct policy_alert_queue *qs = NULL;
    struct fleet_worker **workers = NULL;
    struct policy_alert_worker **views = NULL;
    struct policy_alert_hit *hits = NULL;
    char *names = NULL;
    size_t nq = alerts_inputs(app, util_mono_ms(), &qs, &workers, &views, &names);
    size_t nh = qs ? policy_eval_alerts(app->pol, qs, nq, &hits) : 0;

    pthread_mutex_lock(&al->lock);
    for (size_t i = 0; i < al->n; i++) al->items[i].seen = 0;
    for (size_t h = 0; h < nh; h++) {
        struct alert_entry *e = NULL;
        for (size_t i = 0; i < al->n && !e; i++)
            if (alerts_same(&al->items[i].hit, &hits[h])) e = &al->items[i];
        if (e == NULL) {
            if (al->n == ALERTS_MAX) continue;
            if (al->n == al->cap) {
                size_t cap = al->cap ? al->cap * 2 : 16;
                struct alert_entry *grown = realloc(al->items, cap * sizeof *grown);
                if (grown == NULL) continue;
                al->items = grown;
                al->cap = cap;
            }
            e = &al->items[al->n++];
            memset(e, 0, sizeof *e);
            e->since_ms = now_ms;
        }
        e->hit = hits[h];                       /* fresh message and severity */
        e->seen = 1;
        if (!e->firing && now_ms - e->since_ms >= e->hit.for_s * 1000) {
            e->firing = 1;
            alerts_announce(app, e, "firing", now_ms);
        }
    }
    for (size_t i = 0; i < al->n;) {
        if (al->items[i].seen) {
            i++;
            continue;
        }
        if (al->items[i].firing) alerts_announce(app, &al->items[i], "resolved", now_ms);
        al->items[i] = al->items[--al->n];
    }
    pthread_mutex_unlock(&al->lock);

    for (size_t i = 0; i < nq; i++) {
        free(workers[i]);
        free(views[i]);
    }
    free(names);
    free(qs);
    free(workers);
    free(views);
    free(hits);
}

json_t *alerts_list(alerts *al, const char *queue) {
    char ts[UTIL_TIME_MAX];
    json_t *out = json_array();
    pthread_mutex_lock(&al->lock);
    for (size_t i = 0; i < al->n; i++) {
        const struct alert_entry *e = &al->items[i];
        if (queue && strcmp(queue, e->hit.queue) != 0) continue;
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", e->hit.alert, "queue",
                              e->hit.queue, "state", e->firing ? "firing" : "pending", "since",
                              util_format_time(e->since_ms, ts), "severity", e->hit.severity,
                              "message", e->hit.message);
        if (j && e->hit.worker[0]) json_object_set_new(j, "worker", json_string(e->hit.worker));
        json_array_append_new(out, j);
    }
    pthread_mutex_unlock(&al->lock);
    return out;
}
