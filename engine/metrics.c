/* metrics.c — counters, the duration histogram, and the text format of them
 * and of the queue-health model. */
#include "metrics.h"
#include "health.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_SERIES_MAX 2048

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct series {
    char a[97], b[UTIL_NAME_MAX + 1];   /* two label values */
    int status;
    uint64_t count;
};

struct metrics {
    pthread_mutex_t lock;
    struct series requests[METRICS_SERIES_MAX];   /* route, status */
    size_t nrequests;
    struct series changes[METRICS_SERIES_MAX];    /* queue, outcome */
    size_t nchanges;
    struct series notifications[64];             /* sink, "delivered" | "failed" */
    size_t nnotifications;
    uint64_t bucket[NBUCKETS], hcount;
    double hsum;
};

metrics *metrics_new(void) {
    metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(metrics *m) {
    if (m == NULL) return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Find or add a series; NULL when the table is full (bounded memory). */
static struct series *metrics_series(struct series *tab, size_t *n, const char *a, const char *b,
                                     int status) {
    for (size_t i = 0; i < *n; i++)
        if (tab[i].status == status && strcmp(tab[i].a, a) == 0 && strcmp(tab[i].b, b) == 0)
            return &tab[i];
    if (*n == METRICS_SERIES_MAX) return NULL;
    struct series *s = &tab[(*n)++];
    memset(s, 0, sizeof *s);
    util_copy(s->a, sizeof s->a, a);
    util_copy(s->b, sizeof s->b, b);
    s->status = status;
    return s;
}

void metrics_observe_request(void *ud, const char *route, int status, double seconds) {
    metrics *m = ud;
    pthread_mutex_lock(&m->lock);
    struct series *s = metrics_series(m->requests, &m->nrequests, route, "", status);
    if (s) s->count++;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= buckets[i]) m->bucket[i]++;
    m->hcount++;
    m->hsum += seconds;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_change(metrics *m, const char *queue, const char *outcome) {
    if (m == NULL) return;
    pthread_mutex_lock(&m->lock);
    struct series *s = metrics_series(m->changes, &m->nchanges, queue, outcome, 0);
    if (s) s->count++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_notification(metrics *m, const char *sink, int delivered) {
    if (m == NULL) return;
    pthread_mutex_lock(&m->lock);
    size_t max = sizeof m->notifications / sizeof m->notifications[0];
    struct series *s = NULL;
    for (size_t i = 0; i < m->nnotifications && s == NULL; i++)
        if (strcmp(m->notifications[i].a, sink) == 0 &&
            strcmp(m->notifications[i].b, delivered ? "delivered" : "failed") == 0)
            s = &m->notifications[i];
    if (s == NULL && m->nnotifications < max) {
        s = &m->notifications[m->nnotifications++];
        memset(s, 0, sizeof *s);
        util_copy(s->a, sizeof s->a, sink);
        util_copy(s->b, sizeof s->b, delivered ? "delivered" : "failed");
    }
    if (s) s->count++;
    pthread_mutex_unlock(&m->lock);
}

/* ---- rendering ---------------------------------------------------------------- */

/* Text being rendered. buf may start as the caller's stack buffer (heap
 * 0): it moves to the heap only if the text outgrows it. */
struct out {
    char *buf;
    size_t len, cap;
    int failed;
    int heap;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *grown = o->heap ? realloc(o->buf, cap) : malloc(cap);
        if (grown == NULL) {
            o->failed = 1;
            return;
        }
        if (!o->heap) memcpy(grown, o->buf, o->len);
        o->buf = grown;
        o->heap = 1;
        o->cap = cap;
    }
}

/* A label value with \\, " and newline escaped, as the text format wants. */
static const char *esc(const char *s, char *buf, size_t size) {
    size_t j = 0;
    for (; s && *s && j + 3 < size; s++) {
        if (*s == '\\' || *s == '"') buf[j++] = '\\', buf[j++] = *s;
        else if (*s == '\n') buf[j++] = '\\', buf[j++] = 'n';
        else buf[j++] = *s;
    }
    buf[j] = '\0';
    return buf;
}

static void head(struct out *o, const char *name, const char *type, const char *help) {
    out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A per-queue sample: a family's value for one queue of the model. */
typedef int (*queue_value_fn)(const struct queue_health *q, double *v);

static int value_desired(const struct queue_health *q, double *v) {
    /* Unknown while the store is down: no sample, as the snapshot says null. */
    if (!q->target_shown) return 0;
    *v = (double)q->target.desired;
    return 1;
}

static int value_actual(const struct queue_health *q, double *v) {
    *v = (double)q->active_concurrency;
    return 1;
}

static int value_workers(const struct queue_health *q, double *v) {
    *v = (double)q->live_workers;
    return 1;
}

/* Totals go through json_int_t in the snapshot: the same value here. */
static int value_completed(const struct queue_health *q, double *v) {
    *v = (double)(int64_t)q->rates.completed_total;
    return 1;
}

static int value_failed(const struct queue_health *q, double *v) {
    *v = (double)(int64_t)q->rates.failed_total;
    return 1;
}

static int value_pending(const struct queue_health *q, double *v) {
    *v = (double)q->pending_updates;
    return 1;
}

/* One gauge or counter family over every queue of the model. */
static void per_queue(struct out *o, const struct health_model *hm, const char *name,
                      const char *type, const char *help, queue_value_fn value) {
    char q[200];
    double v;
    head(o, name, type, help);
    for (size_t i = 0; i < hm->nqueues; i++) {
        if (!value(&hm->queues[i], &v)) continue;
        out_printf(o, "%s{queue=\"%s\"} %.17g\n", name, esc(hm->queues[i].name, q, sizeof q), v);
    }
}

/* Every state a worker row can have, zeros included, so an alert on
 * state="invalid" (a version sluiced never issued) has a series. */
static void workers_by_state(struct out *o, const struct health_model *hm) {
    static const char *const states[] = {"ok", "mismatch", "invalid", "stale"};
    char a[200];
    head(o, "sluice_workers_by_state", "gauge", "Workers of the queue by state (ok, mismatch, invalid, stale).");
    for (size_t i = 0; i < hm->nqueues; i++) {
        const struct queue_health *q = &hm->queues[i];
        size_t count[4] = {0, 0, 0, 0};
        for (size_t k = 0; k < q->nworkers; k++) count[health_shown_state(q, &q->workers[k])]++;
        for (size_t s = 0; s < 4; s++)
            out_printf(o, "sluice_workers_by_state{queue=\"%s\",state=\"%s\"} %zu\n",
                       esc(q->name, a, sizeof a), states[s], count[s]);
    }
}

static void queue_depth(struct out *o, const struct health_model *hm) {
    char a[200], b[200];
    head(o, "sluice_queue_depth", "gauge", "Jobs in the queue by state.");
    for (size_t i = 0; i < hm->nqueues; i++) {
        const struct queue_health *q = &hm->queues[i];
        if (!hm->redis_up || !q->has_depth) continue;     /* unknown: no samples */
        for (int k = 0; k < q->depth.nstates; k++) {
            if (q->depth.count[k] < 0) continue;
            out_printf(o, "sluice_queue_depth{queue=\"%s\",state=\"%s\"} %lld\n",
                       esc(q->name, a, sizeof a), esc(q->depth.state[k], b, sizeof b),
                       (long long)q->depth.count[k]);
        }
    }
}

static void alert_firing(struct out *o, const struct health_model *hm) {
    char a[200], b[200];
    head(o, "sluice_alert_firing", "gauge", "1 for every firing alert.");
    for (size_t i = 0; i < hm->nqueues; i++) {
        const struct queue_health *q = &hm->queues[i];
        for (size_t k = 0; k < q->nalerts; k++) {
            const struct alerts_state *al = &q->alerts[k];
            if (!al->firing) continue;
            out_printf(o, "sluice_alert_firing{alert=\"%s\",queue=\"%s\"",
                       esc(al->hit.alert, a, sizeof a), esc(q->name, b, sizeof b));
            if (al->hit.worker[0]) out_printf(o, ",worker=\"%s\"", esc(al->hit.worker, a, sizeof a));
            out_printf(o, "} 1\n");
        }
    }
}

/* The families rendered from the model alone, before the process's own. */
static void metrics_queue_families(struct out *o, const struct health_model *hm) {
    per_queue(o, hm, "sluice_desired_concurrency", "gauge", "Desired concurrency per worker of the queue.", value_desired);
    per_queue(o, hm, "sluice_actual_concurrency", "gauge", "Sum of the concurrency live workers report.", value_actual);
    per_queue(o, hm, "sluice_workers", "gauge", "Live workers of the queue.", value_workers);
    workers_by_state(o, hm);
    queue_depth(o, hm);
    per_queue(o, hm, "sluice_jobs_completed_total", "counter", "Jobs completed, from worker heartbeats, since sluiced started.", value_completed);
    per_queue(o, hm, "sluice_jobs_failed_total", "counter", "Jobs failed, from worker heartbeats, since sluiced started.", value_failed);
    per_queue(o, hm, "sluice_pending_updates", "gauge", "Changes not yet published or not yet acknowledged by every live worker.", value_pending);
    alert_firing(o, hm);
}

/* The counters of this process, the live streams, then the model's
 * process-wide gauges: what follows the queue families. */
static void metrics_process_families(struct out *o, metrics *m, const struct health_model *hm,
                                     int event_streams) {
    char a[200], b[200];
    pthread_mutex_lock(&m->lock);
    head(o, "sluice_scaling_changes_total", "counter", "Scaling change attempts by outcome since sluiced started.");
    for (size_t k = 0; k < m->nchanges; k++)
        out_printf(o, "sluice_scaling_changes_total{queue=\"%s\",outcome=\"%s\"} %llu\n",
                   esc(m->changes[k].a, a, sizeof a), esc(m->changes[k].b, b, sizeof b),
                   (unsigned long long)m->changes[k].count);
    head(o, "sluice_http_requests_total", "counter", "HTTP requests by route pattern and status.");
    for (size_t k = 0; k < m->nrequests; k++)
        out_printf(o, "sluice_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                   esc(m->requests[k].a, a, sizeof a), m->requests[k].status,
                   (unsigned long long)m->requests[k].count);
    head(o, "sluice_http_request_duration_seconds", "histogram", "Time to answer HTTP requests.");
    for (size_t k = 0; k < NBUCKETS; k++)
        out_printf(o, "sluice_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[k],
                   (unsigned long long)m->bucket[k]);
    out_printf(o, "sluice_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
               (unsigned long long)m->hcount);
    out_printf(o, "sluice_http_request_duration_seconds_sum %.9f\n", m->hsum);
    out_printf(o, "sluice_http_request_duration_seconds_count %llu\n", (unsigned long long)m->hcount);
    static const char *const notify_families[2][2] = {
        {"sluice_notifications_delivered_total", "Notifications delivered (a 2xx) per sink since sluiced started."},
        {"sluice_notifications_failed_total", "Notification attempts that failed per sink since sluiced started."}};
    for (int f = 0; f < 2; f++) {
        head(o, notify_families[f][0], "counter", notify_families[f][1]);
        for (size_t k = 0; k < m->nnotifications; k++)
            if (strcmp(m->notifications[k].b, f == 0 ? "delivered" : "failed") == 0)
                out_printf(o, "%s{sink=\"%s\"} %llu\n", notify_families[f][0],
                           esc(m->notifications[k].a, a, sizeof a),
                           (unsigned long long)m->notifications[k].count);
    }
    pthread_mutex_unlock(&m->lock);

    head(o, "sluice_event_streams", "gauge", "Live Server-Sent Events streams.");
    out_printf(o, "sluice_event_streams %d\n", event_streams);
    head(o, "sluice_redis_up", "gauge", "1 when Redis answers.");
    out_printf(o, "sluice_redis_up %d\n", hm->redis_up);
    head(o, "sluice_store_up", "gauge", "1 when the database answers.");
    out_printf(o, "sluice_store_up %d\n", hm->store == HEALTH_STORE_UP);
}

char *metrics_render_model(metrics *m, const struct health_model *hm, int event_streams, size_t *len) {
    struct out o = {malloc(16384), 0, 16384, 0, 1};
    if (o.buf == NULL) return NULL;
    metrics_queue_families(&o, hm);
    metrics_process_families(&o, m, hm, event_streams);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}

/* health_render_fn: the queue families of hm, kept with the model with
 * their digest state, so that each request hashes only what follows. */
static struct body *metrics_render_queues(const struct health_model *hm, size_t index, void *ud) {
    struct out o = {malloc(16384), 0, 16384, 0, 1};
    struct body *b = NULL;
    (void)index;
    (void)ud;
    if (o.buf == NULL) return NULL;
    metrics_queue_families(&o, hm);
    if (!o.failed) b = body_new_head(o.buf, o.len, METRICS_CONTENT_TYPE);
    free(o.buf);
    return b;
}

struct body *metrics_body(metrics *m, struct health_model *hm, int event_streams) {
    char stack[8192];
    struct body *queues = health_body(hm, HEALTH_BODY_METRICS, 0, metrics_render_queues, NULL);
    struct body *b = NULL;
    struct out o = {stack, 0, sizeof stack, 0, 0};
    if (queues == NULL) return NULL;
    /* The counters change with every request: only the queue families
     * are worth keeping. The rest is rendered on the stack and appended. */
    metrics_process_families(&o, m, hm, event_streams);
    if (!o.failed) b = body_concat(queues, o.buf, o.len);
    if (o.heap) free(o.buf);
    body_release(queues);
    return b;
}
