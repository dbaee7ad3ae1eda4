/* health.c — building, publishing and rendering the queue-health model. */
#include "health.h"
#include "bus.h"
#include "leader.h"
#include "config.h"
#include "app.h"
#include "flags.h"
#include "auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct health {
    pthread_mutex_t lock;            /* guards current only: held for a pointer swap */
    struct health_model *current;
    atomic_uint_fast64_t next_seq;
    atomic_int changed;              /* health_changed since the ticker last looked */
    atomic_uint_fast64_t changes;    /* health_changed calls ever: what reads compare */
    /* One reader builds a stale model at a time; the others wait for it
     * rather than each building its own (health_current). */
    pthread_mutex_t build_lock;
    /* The audit figures of each queue, and the row they were read for:
     * read again when the row moved (a change, here or on a replica) or
     * when the oldest change of the hour leaves it. */
    pthread_mutex_t recent_lock;
    struct health_recent {
        char queue[UTIL_NAME_MAX + 1];
        int64_t version, updated_at_ms, until_ms;
        struct policy_recent recent;
    } recent[POLICY_MAX_QUEUES];
    size_t nrecent;
};

health *health_new(void) {
    health *h = calloc(1, sizeof *h);
    if (h == NULL) return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->build_lock, NULL);
    pthread_mutex_init(&h->recent_lock, NULL);
    atomic_init(&h->next_seq, 1);
    atomic_init(&h->changes, 0);
    return h;
}

void health_free(health *h) {
    if (h == NULL) return;
    health_release(h->current);
    pthread_mutex_destroy(&h->build_lock);
    pthread_mutex_destroy(&h->recent_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static void health_model_free(struct health_model *m) {
    for (size_t i = 0; i < HEALTH_BODY_KINDS; i++) body_release(atomic_load(&m->bodies[i]));
    for (size_t i = 0; m->targets && i < m->nqueues; i++) body_release(atomic_load(&m->targets[i]));
    for (size_t i = 0; i < m->nscoped; i++) {
        free(m->scoped[i].patterns);
        body_release(m->scoped[i].body);
    }
    free(m->targets);
    for (size_t i = 0; i < m->nqueues; i++) {
        free(m->queues[i].workers);
        free(m->queues[i].strings);
    }
    free(m->queues);
    free(m->alerts);
    json_decref(m->policy);
    pthread_mutex_destroy(&m->render_lock);
    free(m);
}

void health_release(struct health_model *m) {
    if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1) health_model_free(m);
}

struct health_model *health_acquire(health *h) {
    struct health_model *m;
    if (h == NULL) return NULL;
    pthread_mutex_lock(&h->lock);
    if ((m = h->current) != NULL) atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&h->lock);
    return m;
}

void health_publish(health *h, struct health_model *m) {
    struct health_model *old = NULL;
    if (h == NULL || m == NULL) return;
    pthread_mutex_lock(&h->lock);
    /* Two builds may finish out of order; the later start wins. */
    if (h->current == NULL || h->current->seq < m->seq) {
        old = h->current;
        atomic_fetch_add(&m->refs, 1);
        h->current = m;
    }
    pthread_mutex_unlock(&h->lock);
    health_release(old);            /* outside the lock: it may free a large model */
}

/* ---- building ----------------------------------------------------------------- */

/* The stored row of queue among rows, or its policy default at version 0. */
static void health_target_of(struct queue_health *q, const struct store_target *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].queue, q->name) != 0) continue;
        q->target = rows[i];
        return;
    }
    memset(&q->target, 0, sizeof q->target);
    util_copy(q->target.queue, sizeof q->target.queue, q->name);
    q->target.desired = q->bounds.def;
}

static enum health_worker_state health_state_of(const struct fleet_worker *w,
                                                const struct queue_health *q) {
    if (w->stale) return HEALTH_WORKER_STALE;
    if (w->invalid) return HEALTH_WORKER_INVALID;
    if (q->has_target && w->concurrency != q->target.desired) return HEALTH_WORKER_MISMATCH;
    return HEALTH_WORKER_OK;
}

/* s copied to *at, which moves past it; "" costs nothing. */
static const char *health_keep(char **at, const char *s) {
    size_t n = strlen(s) + 1;
    if (n == 1) return "";
    char *kept = memcpy(*at, s, n);
    *at += n;
    return kept;
}

/* Copy the workers of q out of all (every worker, by id) and sum the live
 * ones. Their strings go into one block, q->strings. Returns 0, or -1 when
 * out of memory. */
static int health_workers_of(struct queue_health *q, const struct fleet_worker *all, size_t nall) {
    size_t n = 0, bytes = 0;
    int64_t min_version = -1;
    char *at;
    for (size_t i = 0; i < nall; i++) {
        if (strcmp(all[i].queue, q->name) != 0) continue;
        n++;
        bytes += strlen(all[i].id) + strlen(all[i].agent) + strlen(all[i].error) +
                 strlen(all[i].host) + 4;
    }
    if (n > 0 && ((q->workers = calloc(n, sizeof *q->workers)) == NULL ||
                  (q->strings = malloc(bytes)) == NULL))
        return -1;
    at = q->strings;
    for (size_t i = 0; i < nall && q->nworkers < n; i++) {
        const struct fleet_worker *w = &all[i];
        if (strcmp(w->queue, q->name) != 0) continue;
        struct health_worker *hw = &q->workers[q->nworkers++];
        hw->id = health_keep(&at, w->id);
        hw->agent = health_keep(&at, w->agent);
        hw->error = health_keep(&at, w->error);
        hw->host = health_keep(&at, w->host);
        hw->pid = w->pid;
        hw->first_seen_ms = w->first_seen_ms;
        hw->completed_per_s = w->completed_per_s;
        hw->failed_per_s = w->failed_per_s;
        hw->concurrency = w->concurrency;
        hw->paused = w->paused;
        hw->version = w->version;
        hw->active = w->active;
        hw->last_seen_ms = w->last_seen_ms;
        hw->state = health_state_of(w, q);
        if (w->stale) continue;
        q->live_workers++;
        q->active_concurrency += w->concurrency;
        if (min_version < 0 || w->version < min_version) min_version = w->version;
    }
    /* Pending: rows not relayed yet, plus versions relayed that the
     * slowest live worker has not applied (known only with the target shown). */
    q->pending_updates = q->unpublished;
    if (q->target_shown && min_version >= 0) {
        int64_t published = q->target.version - q->unpublished;
        if (published > min_version) q->pending_updates += published - min_version;
    }
    return 0;
}

/* Group the current alerts by declared queue into m (alerts of queues no
 * longer declared are not part of the picture). */
static void health_attach_alerts(struct health_model *m, alerts *al) {
    struct alerts_state *all = NULL;
    size_t n = al ? alerts_current(al, &all) : 0;
    if (n > 0 && (m->alerts = malloc(n * sizeof *m->alerts)) != NULL) {
        for (size_t i = 0; i < m->nqueues; i++) {
            struct queue_health *q = &m->queues[i];
            q->alerts = m->alerts + m->nalerts;
            for (size_t k = 0; k < n; k++)
                if (strcmp(all[k].hit.queue, q->name) == 0) m->alerts[m->nalerts++] = all[k];
            q->nalerts = (size_t)(m->alerts + m->nalerts - q->alerts);
        }
    }
    free(all);
}

/* The audit figures of q's stored row at now_ms into q->recent, from the
 * publisher's cache when they still hold, else read (store_read_change)
 * and kept. Leaves has_recent 0 when the store cannot say. */
static void health_recent_of(struct app *app, struct queue_health *q, int64_t now_ms) {
    health *h = app->health;
    struct store_target cur;
    struct store_stats st;
    struct health_recent *e = NULL;
    if (h == NULL) return;
    pthread_mutex_lock(&h->recent_lock);
    for (size_t i = 0; i < h->nrecent && e == NULL; i++)
        if (strcmp(h->recent[i].queue, q->name) == 0) e = &h->recent[i];
    if (e && e->version == q->target.version && e->updated_at_ms == q->target.updated_at_ms &&
        (e->until_ms == 0 || now_ms < e->until_ms)) {
        q->recent = e->recent;
        q->has_recent = 1;
    }
    pthread_mutex_unlock(&h->recent_lock);
    if (q->has_recent) return;
    if (store_read_change(app->st, q->name, q->bounds.def, now_ms, &cur, &st) != STORE_OK) return;
    q->recent.applied_last_hour = st.applied_last_hour;
    q->recent.oldest_in_hour_ms = st.oldest_in_hour_ms;
    q->recent.last_applied_ms = st.last_applied_ms;
    q->has_recent = 1;
    /* Kept only when read for the very row the model shows. */
    if (cur.version != q->target.version || cur.updated_at_ms != q->target.updated_at_ms) return;
    pthread_mutex_lock(&h->recent_lock);
    for (size_t i = 0; i < h->nrecent && e == NULL; i++)
        if (strcmp(h->recent[i].queue, q->name) == 0) e = &h->recent[i];
    if (e == NULL && h->nrecent < POLICY_MAX_QUEUES) e = &h->recent[h->nrecent++];
    if (e == NULL) e = &h->recent[0];            /* full: names came and went; reuse */
    util_copy(e->queue, sizeof e->queue, q->name);
    e->version = cur.version;
    e->updated_at_ms = cur.updated_at_ms;
    e->until_ms = st.oldest_in_hour_ms ? st.oldest_in_hour_ms + 3600000 : 0;
    e->recent = q->recent;
    pthread_mutex_unlock(&h->recent_lock);
}

/* The process-wide part: store, writes flag, Redis, leader. Fills *pending
 * with the unrelayed outbox (malloc'd, may stay NULL) and says whether
 * the listing of targets worked into *rows. */
static void health_process_state(struct health_model *m, struct app *app,
                                 struct store_outbox **pending, size_t *npending,
                                 struct store_target **rows, size_t *nrows, int *rows_ok) {
    int enabled = 0;
    /* A full volume still answers reads: the snapshot shows it as "full". */
    int ping = store_ping(app->st);
    int store_ok = (ping == STORE_OK || ping == STORE_FULL) &&
                   store_outbox_pending(app->st, 10000, pending, npending) == STORE_OK &&
                   flags_get(app, FLAG_WRITES, &enabled) == STORE_OK;
    m->store = !store_ok ? HEALTH_STORE_DOWN : ping == STORE_FULL ? HEALTH_STORE_FULL : HEALTH_STORE_UP;
    m->writes_enabled = store_ok ? enabled != 0 : -1;
    struct store_flag f;
    if (store_ok && app->cfg && store_get_flag(app->st, app->cfg->env, FLAG_WRITES, &f) == STORE_OK) {
        m->writes_set = 1;
        util_copy(m->writes_by, sizeof m->writes_by, f.updated_by);
        m->writes_at_ms = f.updated_at_ms;
        util_copy(m->writes_reason, sizeof m->writes_reason, f.reason);
    }
    m->policy = app->pol ? policy_banner_json(app->pol) : NULL;
    /* One query for every queue. Alert rules judge queues whenever it
     * answers, as they did; the snapshot shows targets only with the store up. */
    *rows_ok = store_list_targets(app->st, rows, nrows) == STORE_OK;
    m->targets_ok = *rows_ok;
    /* Depth is unknown as soon as either Redis connection is known down. */
    m->redis_up = telemetry_redis_up(app->telemetry) && bus_redis_up(app->bus);
    m->leader = leader_is(app->leader);
    if (app->cfg) util_copy(m->environment, sizeof m->environment, app->cfg->env);
}

/* One declared queue from the inputs gathered once, and its workers read
 * from the fleet (one queue at a time: no copy of the whole fleet). Returns
 * 0, or -1 when out of memory; 1 when the queue vanished in a policy reload. */
static int health_queue_build(struct queue_health *q, struct app *app, const char *name,
                              const struct health_model *m, const struct store_target *rows,
                              size_t nrows, int rows_ok, const struct store_outbox *pending,
                              size_t npending) {
    if (policy_bounds(app->pol, name, &q->bounds) != 0) return 1;
    util_copy(q->name, sizeof q->name, name);
    q->has_target = rows_ok;
    if (rows_ok) health_target_of(q, rows, nrows);
    q->has_depth = telemetry_depth(app->telemetry, name, &q->depth) == 0;
    for (size_t i = 0; i < npending; i++) q->unpublished += strcmp(pending[i].queue, name) == 0;
    if (app->fl) fleet_rates(app->fl, name, m->built_mono_ms, &q->rates);
    q->target_shown = q->has_target && m->store != HEALTH_STORE_DOWN;
    if (q->target_shown) health_recent_of(app, q, util_now_ms());
    struct fleet_worker *ws = NULL;
    size_t nws = app->fl ? fleet_workers(app->fl, name, m->built_mono_ms, &ws) : 0;
    int rc = health_workers_of(q, ws, nws);
    free(ws);
    return rc;
}

/* The model without alerts. NULL when out of memory. */
static struct health_model *health_collect(struct app *app) {
    char (*names)[UTIL_NAME_MAX + 1] = malloc(POLICY_MAX_QUEUES * sizeof *names);
    struct health_model *m = calloc(1, sizeof *m);
    struct store_outbox *pending = NULL;
    struct store_target *rows = NULL;
    size_t npending = 0, nrows = 0, nq = 0;
    int rows_ok = 0, ok = 0;
    if (names == NULL || m == NULL) {
        free(m);                     /* its mutex was never made */
        m = NULL;
        goto done;
    }
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->render_lock, NULL);
    m->seq = app->health ? atomic_fetch_add(&app->health->next_seq, 1) : 0;
    /* Read before anything is collected: a change announced from here on
     * may be missing from this model, so it counts as newer than it. */
    m->changes = app->health ? atomic_load(&app->health->changes) : 0;
    m->built_mono_ms = util_mono_ms();
    health_process_state(m, app, &pending, &npending, &rows, &nrows, &rows_ok);
    nq = policy_queue_names(app->pol, names, POLICY_MAX_QUEUES);
    if (nq > POLICY_MAX_QUEUES) nq = POLICY_MAX_QUEUES;
    if ((m->queues = calloc(nq ? nq : 1, sizeof *m->queues)) == NULL) goto done;
    for (size_t i = 0; i < nq; i++) {
        int rc = health_queue_build(&m->queues[m->nqueues], app, names[i], m, rows, nrows,
                                    rows_ok, pending, npending);
        if (rc < 0) {
            m->nqueues++;           /* so that its workers are freed */
            goto done;
        }
        if (rc == 0) m->nqueues++;
    }
    if ((m->targets = calloc(m->nqueues ? m->nqueues : 1, sizeof *m->targets)) == NULL) goto done;
    m->built_at_ms = util_now_ms();
    ok = 1;
done:
    if (!ok && m) {
        health_model_free(m);
        m = NULL;
    }
    free(rows);
    free(pending);
    free(names);
    return m;
}

struct health_model *health_build(struct app *app) {
    struct health_model *m = health_collect(app);
    if (m) health_attach_alerts(m, app->alerts);
    return m;
}

struct health_model *health_rebuild(struct app *app) {
    struct health_model *m = health_build(app);
    health_publish(app->health, m);
    return m;
}

/* Whether m may answer a read that began at mono_ms after changes
 * announced changes. What can be known for the price of an atomic load
 * (Redis up, this replica leading) must also be what m shows: a read never
 * disagrees with /readyz a moment before it. */
static int health_fresh(struct app *app, const struct health_model *m, int64_t mono_ms,
                        uint64_t changes) {
    return m != NULL && m->changes >= changes && m->built_mono_ms >= mono_ms - HEALTH_FRESH_MS &&
           m->redis_up == (telemetry_redis_up(app->telemetry) && bus_redis_up(app->bus)) &&
           m->leader == leader_is(app->leader);
}

struct health_model *health_current(struct app *app) {
    health *h = app->health;
    int64_t mono = util_mono_ms();
    uint64_t changes = h ? atomic_load(&h->changes) : 0;
    struct health_model *m = health_acquire(h);
    if (h == NULL || health_fresh(app, m, mono, changes)) return m ? m : health_build(app);
    health_release(m);
    pthread_mutex_lock(&h->build_lock);
    /* Whoever held the lock may have built what this read needs. */
    m = health_acquire(h);
    if (!health_fresh(app, m, mono, changes)) {
        health_release(m);
        m = health_rebuild(app);
    }
    pthread_mutex_unlock(&h->build_lock);
    return m;
}

struct body *health_body(struct health_model *m, enum health_body_kind kind, size_t index,
                         health_render_fn render, void *ud) {
    _Atomic(struct body *) *slot;
    struct body *b;
    if (m == NULL || kind >= HEALTH_BODY_KINDS) return NULL;
    if (kind == HEALTH_BODY_TARGET) {
        if (index >= m->nqueues || m->targets == NULL) return NULL;
        slot = &m->targets[index];
    } else {
        slot = &m->bodies[kind];
    }
    if ((b = atomic_load_explicit(slot, memory_order_acquire)) != NULL) return body_ref(b);
    pthread_mutex_lock(&m->render_lock);
    /* Rendered once per model, however many reads arrive together. */
    if ((b = atomic_load_explicit(slot, memory_order_acquire)) == NULL &&
        (b = render(m, index, ud)) != NULL)
        atomic_store_explicit(slot, b, memory_order_release);
    body_ref(b);
    pthread_mutex_unlock(&m->render_lock);
    return b;
}

void health_tick(struct app *app, int64_t now_ms, alerts_notify_fn notify, void *ud) {
    struct health_model *m = health_collect(app);
    size_t nq = 0;
    struct policy_alert_queue *qs = m ? health_alert_queues(m, &nq) : NULL;
    /* Without inputs (out of memory) every alert resolves, as no rule holds. */
    if (app->alerts) alerts_tick(app->alerts, app->pol, qs, nq, now_ms, notify, ud);
    free(qs);
    if (m == NULL) return;
    health_attach_alerts(m, app->alerts);
    health_publish(app->health, m);
    health_release(m);
}

enum health_worker_state health_shown_state(const struct queue_health *q,
                                            const struct health_worker *w) {
    return w->state == HEALTH_WORKER_MISMATCH && !q->target_shown ? HEALTH_WORKER_OK : w->state;
}

int health_change_window(const struct health_model *m, const struct queue_health *q,
                         struct policy_window *out) {
    if (!q->target_shown || !q->has_recent) return -1;
    policy_bounds_window(&q->bounds, q->target.desired, &q->recent, m->built_at_ms, out);
    return 0;
}

const struct queue_health *health_queue(const struct health_model *m, const char *name) {
    for (size_t i = 0; m && i < m->nqueues; i++)
        if (strcmp(m->queues[i].name, name) == 0) return &m->queues[i];
    return NULL;
}

/* ---- renderers ---------------------------------------------------------------- */

static const char *const health_state_names[] = {"ok", "mismatch", "invalid", "stale"};

struct policy_alert_queue *health_alert_queues(const struct health_model *m, size_t *n) {
    size_t nw = 0, used = 0, wused = 0;
    for (size_t i = 0; i < m->nqueues; i++) nw += m->queues[i].nworkers;
    /* One block: the queues, then every queue's worker views. */
    struct policy_alert_queue *qs =
        malloc((m->nqueues ? m->nqueues : 1) * sizeof *qs + (nw ? nw : 1) * sizeof(struct policy_alert_worker));
    if (qs == NULL) return NULL;
    struct policy_alert_worker *views = (struct policy_alert_worker *)(qs + (m->nqueues ? m->nqueues : 1));
    for (size_t i = 0; i < m->nqueues; i++) {
        const struct queue_health *q = &m->queues[i];
        if (!q->has_target) continue;        /* store down: judge nothing */
        struct policy_alert_queue *a = &qs[used++];
        memset(a, 0, sizeof *a);
        a->queue = q->name;
        a->desired = q->target.desired;
        a->version = q->target.version;
        a->paused = q->target.paused;
        if (q->has_depth) {
            a->waiting = q->depth.waiting;
            a->active = q->depth.active;
            a->delayed = q->depth.delayed;
            a->failed = q->depth.failed;
        }
        a->workers = views + wused;
        for (size_t k = 0; k < q->nworkers; k++) {
            const struct health_worker *w = &q->workers[k];
            if (w->state == HEALTH_WORKER_STALE) continue;   /* rules see live workers only */
            struct policy_alert_worker *v = &views[wused++];
            v->id = w->id;
            v->concurrency = w->concurrency;
            v->version = w->version;
            v->active = w->active;
            v->state = health_state_names[w->state];
            v->paused = w->paused;
        }
        a->nworkers = (size_t)(views + wused - a->workers);
    }
    *n = used;
    return qs;
}

static json_t *health_depth_json(const struct health_model *m, const struct queue_health *q) {
    if (!m->redis_up || !q->has_depth) return json_null();
    json_t *out = json_object();
    for (int k = 0; k < q->depth.nstates; k++)
        json_object_set_new(out, q->depth.state[k],
                            q->depth.count[k] >= 0 ? json_integer(q->depth.count[k]) : json_null());
    return out;
}

static json_t *health_worker_json(const struct queue_health *q, const struct health_worker *w,
                                  int64_t mono) {
    enum health_worker_state state = health_shown_state(q, w);
    json_t *row = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:o, s:o, s:I, s:f, s:f}", "id",
                            w->id, "concurrency", (json_int_t)w->concurrency, "version",
                            (json_int_t)w->version, "active", (json_int_t)w->active,
                            "last_seen_ms", (json_int_t)(mono - w->last_seen_ms), "state",
                            health_state_names[state], "agent", w->agent, "host",
                            w->host[0] ? json_string(w->host) : json_null(), "pid",
                            w->pid > 0 ? json_integer(w->pid) : json_null(), "first_seen_ms",
                            (json_int_t)(mono - w->first_seen_ms), "completed_per_s",
                            w->completed_per_s, "failed_per_s", w->failed_per_s);
    /* A worker that clamps to its hard limit says why: show it (last_error
     * is the name the UI reads; error stays for existing readers). */
    if (row) {
        json_object_set_new(row, "error", w->error[0] ? json_string(w->error) : json_null());
        json_object_set_new(row, "last_error", w->error[0] ? json_string(w->error) : json_null());
        json_object_set_new(row, "paused", json_boolean(w->paused));
    }
    return row;
}

static json_t *health_workers_json(const struct queue_health *q, int64_t mono) {
    json_t *workers = json_array();
    for (size_t i = 0; i < q->nworkers; i++)
        json_array_append_new(workers, health_worker_json(q, &q->workers[i], mono));
    return workers;
}

static json_t *health_alerts_json(const struct queue_health *q) {
    char ts[UTIL_TIME_MAX];
    json_t *out = json_array();
    for (size_t i = 0; i < q->nalerts; i++) {
        const struct alerts_state *a = &q->alerts[i];
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", a->hit.alert, "queue",
                              a->hit.queue, "state", a->firing ? "firing" : "pending", "since",
                              util_format_time(a->since_ms, ts), "severity", a->hit.severity,
                              "message", a->hit.message);
        if (j && a->hit.worker[0]) json_object_set_new(j, "worker", json_string(a->hit.worker));
        json_array_append_new(out, j);
    }
    return out;
}

static json_t *health_time_or_null(int64_t ms) {
    char ts[UTIL_TIME_MAX];
    return ms ? json_string(util_format_time(ms, ts)) : json_null();
}

/* The override and bounds fields of q (a Target's too): out_of_bounds,
 * expires_at, revert_to, change_window; null when the row is not shown. */
static void health_target_fields(const struct health_model *m, const struct queue_health *q,
                                 json_t *out) {
    struct policy_window w;
    const struct store_target *t = &q->target;
    int shown = q->target_shown;
    if (out == NULL) return;
    json_object_set_new(out, "out_of_bounds",
                        shown ? json_boolean(t->desired < q->bounds.min || t->desired > q->bounds.max)
                              : json_null());
    json_object_set_new(out, "expires_at", health_time_or_null(shown ? t->expires_at_ms : 0));
    json_object_set_new(out, "revert_to",
                        shown && t->expires_at_ms ? json_integer(t->revert_to) : json_null());
    /* The pause: null fields when the row is not shown, else as a Target's. */
    int paused = shown && t->paused;
    json_object_set_new(out, "paused", shown ? json_boolean(paused) : json_null());
    json_object_set_new(out, "paused_until", health_time_or_null(paused ? t->paused_until_ms : 0));
    json_object_set_new(out, "paused_by", paused ? json_string(t->paused_by) : json_null());
    json_object_set_new(out, "paused_at", health_time_or_null(paused ? t->paused_at_ms : 0));
    json_object_set_new(out, "paused_reason", paused ? json_string(t->paused_reason) : json_null());
    json_object_set_new(out, "change_window", health_change_window(m, q, &w) == 0
                                                  ? policy_window_json(&q->bounds, &w, m->built_at_ms)
                                                  : json_null());
}

/* One queue's object with workers (taken) as its "workers". */
static json_t *health_queue_json(const struct health_model *m, const struct queue_health *q,
                                 json_t *workers) {
    int shown = q->target_shown;
    const struct fleet_rates *r = &q->rates;
    double jobs = r->completed_per_s + r->failed_per_s;
    json_t *out = json_pack("{s:o, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:o, s:{s:f, s:f, s:o, s:f, s:I, s:I},"
                     " s:I, s:o}",
                     "bounds", policy_bounds_json(&q->bounds), "queue", q->name, "layout",
                     q->bounds.layout, "depth", health_depth_json(m, q), "desired_concurrency",
                     shown ? json_integer(q->target.desired) : json_null(), "version",
                     shown ? json_integer(q->target.version) : json_null(), "active_concurrency",
                     (json_int_t)q->active_concurrency, "worker_count", (json_int_t)q->live_workers,
                     "workers", workers, "rates",
                     "completed_per_s", r->completed_per_s, "failed_per_s", r->failed_per_s,
                     "success_ratio", jobs > 0 ? json_real(r->completed_per_s / jobs) : json_null(),
                     "window_s", r->window_s, "completed_total", (json_int_t)r->completed_total,
                     "failed_total", (json_int_t)r->failed_total, "pending_updates",
                     (json_int_t)q->pending_updates, "alerts", health_alerts_json(q));
    health_target_fields(m, q, out);
    return out;
}

/* The snapshot's object with queues (taken) as its "queues". */
static json_t *health_top_json(const struct health_model *m, json_t *queues) {
    char ts[UTIL_TIME_MAX];
    static const char *const stores[] = {"down", "up", "full"};
    json_t *out = json_pack("{s:s, s:o, s:s, s:s, s:s, s:o}", "environment", m->environment,
                            "writes_enabled",
                            m->writes_enabled >= 0 ? json_boolean(m->writes_enabled) : json_null(),
                            "generated_at", util_format_time(m->built_at_ms, ts), "redis",
                            m->redis_up ? "up" : "down", "store", stores[m->store], "queues", queues);
    if (out) {
        json_object_set_new(out, "leader", json_boolean(m->leader));
        /* Who set the writes flag and why: null fields when never set. */
        json_object_set_new(out, "writes",
                            json_pack("{s:o, s:o, s:o, s:o}", "enabled",
                                      m->writes_enabled >= 0 ? json_boolean(m->writes_enabled) : json_null(),
                                      "updated_by", m->writes_set ? json_string(m->writes_by) : json_null(),
                                      "updated_at", health_time_or_null(m->writes_set ? m->writes_at_ms : 0),
                                      "reason", m->writes_set ? json_string(m->writes_reason) : json_null()));
        /* A copy: the model's tree is read by any number of renders at once. */
        json_object_set_new(out, "policy", m->policy ? json_deep_copy(m->policy) : json_null());
    }
    return out;
}

/* health_json of the queues patterns allow (NULL or "": all). */
static json_t *health_json_for(const struct health_model *m, const char *patterns) {
    json_t *queues = json_array();
    for (size_t i = 0; i < m->nqueues; i++) {
        if (!auth_queues_match(patterns, m->queues[i].name)) continue;
        json_array_append_new(queues, health_queue_json(m, &m->queues[i],
                                                        health_workers_json(&m->queues[i], m->built_mono_ms)));
    }
    json_t *out = health_top_json(m, queues);
    if (patterns && patterns[0]) health_scope_json(out, patterns);   /* the policy banner */
    return out;
}

json_t *health_json(const struct health_model *m) { return health_json_for(m, NULL); }

json_t *health_snapshot_for(struct app *app, const char *patterns) {
    struct health_model *m = health_current(app);
    json_t *out = m ? health_json_for(m, patterns) : NULL;
    health_release(m);
    return out;
}

json_t *health_snapshot(struct app *app) { return health_snapshot_for(app, NULL); }

/* Remove from the array arr the objects whose member key names a queue
 * patterns do not allow. */
static void health_drop_others(json_t *arr, const char *key, const char *patterns) {
    for (size_t i = json_array_size(arr); i-- > 0;) {
        const char *q = json_string_value(json_object_get(json_array_get(arr, i), key));
        if (!auth_queues_match(patterns, q)) json_array_remove(arr, i);
    }
}

void health_scope_json(json_t *snapshot, const char *patterns) {
    if (snapshot == NULL || patterns == NULL || patterns[0] == '\0') return;
    health_drop_others(json_object_get(snapshot, "queues"), "queue", patterns);
    health_drop_others(json_object_get(json_object_get(snapshot, "policy"), "failing_rules"), "queue",
                       patterns);
}

char *health_scope_text(const char *json, size_t len, const char *patterns, size_t *n) {
    json_t *v = json_loadb(json, len, 0, NULL);
    if (v == NULL) return NULL;
    health_scope_json(v, patterns);
    /* As the cached bytes are dumped (body_from_json): compact, sorted keys. */
    char *out = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    if (out) *n = strlen(out);
    return out;
}

/* ---- the snapshot written in place ---------------------------------------------- */

/* Writes the elements of an array of the snapshot (q: NULL for the queues). */
typedef void (*health_fill_fn)(struct body_writer *w, const struct health_model *m,
                               const struct queue_health *q);

/* Write v (taken) as body_write_json would, with fill() writing the
 * elements of its member key, an empty array in v. The member is found
 * by its bytes, "key":[], searching back from the end: a JSON string
 * cannot hold them (its quotes are escaped), and no member sorted after
 * key holds an array of that name. So the bytes are those of v with the
 * elements in it, and only one element at a time exists as JSON. */
static void health_write_spliced(struct body_writer *w, json_t *v, const char *key,
                                 health_fill_fn fill, const struct health_model *m,
                                 const struct queue_health *q) {
    char needle[32], *tail;
    size_t start, len;
    size_t nlen = (size_t)snprintf(needle, sizeof needle, "\"%s\":[]", key);
    body_writer_bytes(w, &start);
    body_write_json(w, v);
    json_decref(v);
    const char *bytes = body_writer_bytes(w, &len);
    if (bytes == NULL) return;
    for (size_t at = len >= nlen ? len - nlen + 1 : 0; at-- > start;) {
        if (memcmp(bytes + at, needle, nlen) != 0) continue;
        size_t tlen = len - (at + nlen - 1);            /* from the ']' on */
        /* What follows holds the writes flag's reason: up to a few KiB. */
        if ((tail = malloc(tlen)) == NULL) break;
        memcpy(tail, bytes + at + nlen - 1, tlen);
        body_writer_unwrite(w, tlen);
        fill(w, m, q);
        body_write(w, tail, tlen);
        free(tail);
        return;
    }
    body_writer_discard(w);                             /* cannot happen: v was built so */
}

static void health_fill_workers(struct body_writer *w, const struct health_model *m,
                                const struct queue_health *q) {
    for (size_t i = 0; i < q->nworkers; i++) {
        json_t *row = health_worker_json(q, &q->workers[i], m->built_mono_ms);
        if (i > 0) body_write(w, ",", 1);
        body_write_json(w, row);
        json_decref(row);
    }
}

static void health_fill_queues(struct body_writer *w, const struct health_model *m,
                               const struct queue_health *q) {
    (void)q;
    for (size_t i = 0; i < m->nqueues; i++) {
        if (i > 0) body_write(w, ",", 1);
        health_write_spliced(w, health_queue_json(m, &m->queues[i], json_array()), "workers",
                             health_fill_workers, m, &m->queues[i]);
    }
}

/* health_render_fn: the snapshot, a queue and a worker at a time. */
static struct body *health_render_snapshot(const struct health_model *m, size_t index, void *ud) {
    struct body_writer w;
    size_t nworkers = 0;
    (void)index;
    (void)ud;
    for (size_t i = 0; i < m->nqueues; i++) nworkers += m->queues[i].nworkers;
    /* About what a row and a queue take, so the body rarely grows (a row
     * with host, pid, age and its own rates is about 350 bytes: growing
     * doubles the room, megabytes at 10,000 workers). */
    body_writer_init(&w, 256 + m->nqueues * 1536 + nworkers * 384);
    health_write_spliced(&w, health_top_json(m, json_array()), "queues", health_fill_queues, m, NULL);
    return body_writer_finish(&w, BODY_JSON);
}

struct body *health_snapshot_body(struct health_model *m) {
    return health_body(m, HEALTH_BODY_SNAPSHOT, 0, health_render_snapshot, NULL);
}

struct body *health_snapshot_body_for(struct health_model *m, const char *patterns) {
    if (patterns == NULL || patterns[0] == '\0') return health_snapshot_body(m);
    if (m == NULL) return NULL;
    struct body *b = NULL;
    pthread_mutex_lock(&m->render_lock);
    for (size_t i = 0; i < m->nscoped && b == NULL; i++)
        if (strcmp(m->scoped[i].patterns, patterns) == 0) b = body_ref(m->scoped[i].body);
    if (b == NULL) {
        /* Only the allowed queues are turned into JSON: a team's part of a
         * large fleet costs what that part weighs. Rendered under the lock,
         * as health_body does: once per model for readers that arrive
         * together. */
        json_t *v = health_json_for(m, patterns);
        b = v ? body_from_json(v) : NULL;
        json_decref(v);
        char *kept = b && m->nscoped < HEALTH_SCOPED_MAX ? strdup(patterns) : NULL;
        if (kept) {
            m->scoped[m->nscoped].patterns = kept;
            m->scoped[m->nscoped].body = body_ref(b);
            m->nscoped++;
        }
    }
    pthread_mutex_unlock(&m->render_lock);
    return b;
}

void health_changed(health *h) {
    if (h == NULL) return;
    atomic_fetch_add(&h->changes, 1);
    atomic_store(&h->changed, 1);
}

int health_take_changed(health *h) { return h && atomic_exchange(&h->changed, 0); }
