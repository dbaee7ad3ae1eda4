/* telemetry.c — depth cache and the queue-health snapshot. */
#include "telemetry.h"
#include "app.h"
#include "flags.h"
#include "log.h"
#include "protocol.h"

#include "rconn.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEL_FIELDS 8

/* BullMQ's states as getJobCounts() names them, and how each is read. */
static const struct {
    const char *state, *cmd, *suffix;
} bullmq_keys[TEL_FIELDS] = {
    {"waiting", "LLEN", "wait"},         {"paused", "LLEN", "paused"},
    {"active", "LLEN", "active"},        {"delayed", "ZCARD", "delayed"},
    {"prioritized", "ZCARD", "prioritized"}, {"waiting-children", "ZCARD", "waiting-children"},
    {"failed", "ZCARD", "failed"},       {"completed", "ZCARD", "completed"},
};

static const struct {
    const char *state;
    enum protocol_list list;
} sluice_keys[3] = {
    {"waiting", PROTOCOL_LIST_WAIT}, {"active", PROTOCOL_LIST_ACTIVE}, {"failed", PROTOCOL_LIST_FAILED},
};

struct tel_depth {
    char queue[UTIL_NAME_MAX + 1];
    int bullmq;
    long long v[TEL_FIELDS];
};

struct telemetry {
    struct rconn_target target;
    char prefix[PROTOCOL_NAME_MAX + 1];
    rconn *c;                     /* ticker thread only */
    pthread_mutex_t lock;         /* guards the cache below */
    struct tel_depth *depth;
    size_t ndepth;
    atomic_int up;
};

telemetry *telemetry_new(const struct rconn_target *redis, const char *prefix, char *err, size_t errlen) {
    telemetry *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->target = *redis;
    util_copy(t->prefix, sizeof t->prefix, prefix);
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void telemetry_free(telemetry *t) {
    if (t == NULL) return;
    rconn_free(t->c);
    free(t->depth);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int telemetry_redis_up(telemetry *t) { return t && atomic_load(&t->up); }

static void telemetry_drop(telemetry *t) {
    rconn_free(t->c);
    t->c = NULL;
    atomic_store(&t->up, 0);
    pthread_mutex_lock(&t->lock);
    free(t->depth);
    t->depth = NULL;            /* unknown, not stale numbers */
    t->ndepth = 0;
    pthread_mutex_unlock(&t->lock);
}

void telemetry_refresh(telemetry *t, struct app *app) {
    char (*names)[UTIL_NAME_MAX + 1] = malloc(POLICY_MAX_QUEUES * sizeof *names);
    struct tel_depth *fresh = NULL;
    char key[PROTOCOL_KEY_MAX];
    size_t nq;
    if (names == NULL) return;
    nq = policy_queue_names(app->pol, names, POLICY_MAX_QUEUES);
    if (nq > POLICY_MAX_QUEUES) nq = POLICY_MAX_QUEUES;
    if (t->c == NULL) {
        char err[256];
        enum rconn_failure why;
        if ((t->c = rconn_open(&t->target, 500, &why, err, sizeof err)) == NULL) goto fail;
    }
    fresh = calloc(nq ? nq : 1, sizeof *fresh);
    if (fresh == NULL) goto done;
    /* One pipeline for every queue: one round trip however many there are. */
    for (size_t i = 0; i < nq; i++) {
        struct policy_bounds b;
        if (policy_bounds(app->pol, names[i], &b) != 0) continue;
        util_copy(fresh[i].queue, sizeof fresh[i].queue, names[i]);
        fresh[i].bullmq = strcmp(b.layout, "bullmq") == 0;
        if (fresh[i].bullmq) {
            for (int k = 0; k < TEL_FIELDS; k++)
                rconn_append(t->c, "%s %s", bullmq_keys[k].cmd,
                             protocol_bullmq_key(key, b.bullmq_prefix, names[i], bullmq_keys[k].suffix));
        } else {
            for (int k = 0; k < 3; k++)
                rconn_append(t->c, "LLEN %s", protocol_queue_key(key, t->prefix, names[i], sluice_keys[k].list));
        }
    }
    for (size_t i = 0; i < nq; i++) {
        int fields = fresh[i].queue[0] == '\0' ? 0 : fresh[i].bullmq ? TEL_FIELDS : 3;
        for (int k = 0; k < fields; k++) {
            redisReply *rep = NULL;
            if (rconn_get_reply(t->c, &rep) != 0) goto fail;
            /* A key of the wrong type (someone else's data) reads as unknown. */
            fresh[i].v[k] = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
            freeReplyObject(rep);
        }
    }
    pthread_mutex_lock(&t->lock);
    free(t->depth);
    t->depth = fresh;
    t->ndepth = nq;
    fresh = NULL;
    pthread_mutex_unlock(&t->lock);
    atomic_store(&t->up, 1);
    goto done;
fail:
    telemetry_drop(t);
done:
    free(fresh);
    free(names);
}

int telemetry_depth(telemetry *t, const char *queue, int64_t out[4]) {
    int rc = -1;
    if (t == NULL) return -1;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->ndepth; i++) {
        const struct tel_depth *d = &t->depth[i];
        if (strcmp(d->queue, queue) != 0) continue;
        const long long *v = d->v;
#define NN(x) ((x) > 0 ? (x) : 0)
        if (d->bullmq) {        /* waiting, paused, active, delayed, prioritized, w-children, failed */
            out[0] = NN(v[0]) + NN(v[1]) + NN(v[4]);
            out[1] = NN(v[2]);
            out[2] = NN(v[3]);
            out[3] = NN(v[6]);
        } else {                /* waiting, active, failed */
            out[0] = NN(v[0]);
            out[1] = NN(v[1]);
            out[2] = 0;
            out[3] = NN(v[2]);
        }
#undef NN
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* The depth object of queue from the cache, or null when unknown. */
static json_t *telemetry_depth_json(telemetry *t, const char *queue) {
    json_t *out = json_null();
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->ndepth; i++) {
        const struct tel_depth *d = &t->depth[i];
        if (strcmp(d->queue, queue) != 0) continue;
        json_decref(out);
        out = json_object();
        if (d->bullmq) {
            for (int k = 0; k < TEL_FIELDS; k++)
                json_object_set_new(out, bullmq_keys[k].state, d->v[k] >= 0 ? json_integer(d->v[k]) : json_null());
        } else {
            for (int k = 0; k < 3; k++)
                json_object_set_new(out, sluice_keys[k].state, d->v[k] >= 0 ? json_integer(d->v[k]) : json_null());
            json_object_set_new(out, "delayed", json_integer(0));   /* the Sluice layout has none */
        }
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return out;
}

static int64_t telemetry_pending_of(const struct store_outbox *rows, size_t n, const char *queue) {
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) count += strcmp(rows[i].queue, queue) == 0;
    return count;
}

static json_t *telemetry_queue(telemetry *t, struct app *app, const char *queue,
                               const struct policy_bounds *b, const struct store_outbox *pending,
                               size_t npending, int store_ok, int redis_ok, int64_t mono) {
    struct store_target target;
    struct fleet_worker *ws = NULL;
    struct fleet_rates rates;
    int have_target = 0;
    if (store_ok) {
        int rc = store_get_target(app->st, queue, &target);
        if (rc == STORE_NOT_FOUND) {
            memset(&target, 0, sizeof target);
            target.desired = b->def;
            rc = STORE_OK;
        }
        have_target = rc == STORE_OK;
    }
    size_t nw = fleet_workers(app->fl, queue, mono, &ws);
    json_t *workers = json_array();
    int64_t active_conc = 0, live = 0, min_version = -1;
    for (size_t i = 0; i < nw; i++) {
        const struct fleet_worker *w = &ws[i];
        const char *state = w->stale     ? "stale"
                            : w->invalid ? "invalid"
                            : have_target && w->concurrency != target.desired ? "mismatch"
                                                                           : "ok";
        if (!w->stale) {
            live++;
            active_conc += w->concurrency;
            if (min_version < 0 || w->version < min_version) min_version = w->version;
        }
        json_t *row = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "id", w->id,
                                                 "concurrency", (json_int_t)w->concurrency, "version",
                                                 (json_int_t)w->version, "active", (json_int_t)w->active,
                                                 "last_seen_ms", (json_int_t)(mono - w->last_seen_ms),
                                                 "state", state, "agent", w->agent);
        /* A worker that clamps to its hard limit says why: show it. */
        if (row) json_object_set_new(row, "error", w->error[0] ? json_string(w->error) : json_null());
        json_array_append_new(workers, row);
    }
    free(ws);
    fleet_rates(app->fl, queue, mono, &rates);
    double jobs = rates.completed_per_s + rates.failed_per_s;
    int64_t unpublished = telemetry_pending_of(pending, npending, queue);
    int64_t behind = 0;
    if (have_target && min_version >= 0) {
        int64_t published = target.version - unpublished;
        if (published > min_version) behind = published - min_version;
    }
    return json_pack("{s:o, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:o, s:{s:f, s:f, s:o, s:f, s:I, s:I},"
                     " s:I, s:o}",
                     "bounds", policy_bounds_json(b),
                     "queue", queue, "layout", b->layout, "depth",
                     redis_ok ? telemetry_depth_json(t, queue) : json_null(),
                     "desired_concurrency", have_target ? json_integer(target.desired) : json_null(),
                     "version", have_target ? json_integer(target.version) : json_null(),
                     "active_concurrency", (json_int_t)active_conc, "worker_count", (json_int_t)live,
                     "workers", workers, "rates", "completed_per_s", rates.completed_per_s,
                     "failed_per_s", rates.failed_per_s, "success_ratio",
                     jobs > 0 ? json_real(rates.completed_per_s / jobs) : json_null(), "window_s",
                     rates.window_s, "completed_total", (json_int_t)rates.completed_total,
                     "failed_total", (json_int_t)rates.failed_total, "pending_updates",
                     (json_int_t)(unpublished + behind), "alerts", alerts_list(app->alerts, queue));
}

json_t *telemetry_snapshot(telemetry *t, struct app *app) {
    char ts[UTIL_TIME_MAX];
    char (*names)[UTIL_NAME_MAX + 1] = malloc(POLICY_MAX_QUEUES * sizeof *names);
    struct store_outbox *pending = NULL;
    size_t npending = 0;
    int enabled = 0;
    int64_t mono = util_mono_ms();
    /* A full volume still answers reads: the snapshot shows it as "full". */
    int ping = store_ping(app->st);
    int store_ok = (ping == STORE_OK || ping == STORE_FULL) &&
                   store_outbox_pending(app->st, 10000, &pending, &npending) == STORE_OK &&
                   flags_get(app, FLAG_WRITES, &enabled) == STORE_OK;
    /* Depth is unknown as soon as either Redis connection is known down. */
    int redis_ok = telemetry_redis_up(t) && bus_redis_up(app->bus);
    json_t *queues = json_array();
    size_t nq = names ? policy_queue_names(app->pol, names, POLICY_MAX_QUEUES) : 0;
    for (size_t i = 0; i < nq && i < POLICY_MAX_QUEUES; i++) {
        struct policy_bounds b;
        if (policy_bounds(app->pol, names[i], &b) != 0) continue;
        json_array_append_new(queues, telemetry_queue(t, app, names[i], &b, pending, npending,
                                                      store_ok, redis_ok, mono));
    }
    free(names);
    free(pending);
    json_t *out = json_pack("{s:s, s:o, s:s, s:s, s:s, s:o}", "environment", app->cfg->env,
                     "writes_enabled", store_ok ? json_boolean(enabled) : json_null(),
                     "generated_at", util_format_time(util_now_ms(), ts), "redis",
                     redis_ok ? "up" : "down", "store",
                     !store_ok ? "down" : ping == STORE_FULL ? "full" : "up", "queues", queues);
    if (out) json_object_set_new(out, "leader", json_boolean(leader_is(app->leader)));
    return out;
}
