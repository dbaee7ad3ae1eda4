/* bus.c — the outbox relay and the report subscriber over hiredis. */
#include "bus.h"
#include "log.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 5000
#define BUS_IDLE_MS 250
#define BUS_BATCH 64
#define BUS_ALERTS_MAX 1024

struct bus_alert {
    json_t *msg;
    struct bus_alert *next;
};

struct bus {
    struct bus_options opt;
    char host[256];
    int port, db;
    char key_desired[UTIL_NAME_MAX + 16], chan_scaling[UTIL_NAME_MAX + 16],
        chan_reports[UTIL_NAME_MAX + 16], chan_alerts[UTIL_NAME_MAX + 16];
    pthread_t relay, sub;
    int relay_started, sub_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int stopping;
    atomic_int resync;
    int kicked;
    struct bus_alert *alerts, **alerts_tail;
    size_t nalerts;
    atomic_int relay_up, sub_up;
};

int bus_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                  size_t errlen) {
    const char *p, *colon, *slash;
    char *end;
    if (strncmp(url, "redis://", 8) != 0) goto bad;
    p = url + 8;
    slash = strchr(p, '/');
    colon = strchr(p, ':');
    if (colon == NULL || (slash && colon > slash) || colon == p || (size_t)(colon - p) >= hostlen) goto bad;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    errno = 0;
    long v = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || v < 1 || v > 65535 || (*end && *end != '/')) goto bad;
    *port = (int)v;
    *db = 0;
    if (*end == '/') {
        const char *d = end + 1;
        v = strtol(d, &end, 10);
        if (end == d || *end || v < 0 || v > 15) goto bad;
        *db = (int)v;
    }
    return 0;
bad:
    snprintf(err, errlen, "--redis: expected redis://HOST:PORT[/DB], got '%s'", url);
    return -1;
}

/* ---- connections --------------------------------------------------------- */

static void bus_complain(const char *who, const char *what, int *logged_down) {
    if (*logged_down) return;        /* one line per outage, not one per retry */
    log_json(LOG_WARN, "redis unavailable; retrying with back-off",
             json_pack("{s:s, s:s}", "thread", who, "error", what));
    *logged_down = 1;
}

static redisContext *bus_connect(bus *b, const char *who, int *logged_down) {
    struct timeval connect_tv = {1, 0}, io_tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(b->host, b->port, connect_tv);
    redisReply *r = NULL;
    if (c == NULL || c->err) {
        bus_complain(who, c ? c->errstr : "out of memory", logged_down);
        goto fail;
    }
    redisSetTimeout(c, io_tv);
    redisEnableKeepAlive(c);
    if (b->db) {
        r = redisCommand(c, "SELECT %d", b->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            bus_complain(who, r ? r->str : c->errstr, logged_down);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (*logged_down)
        log_json(LOG_INFO, "redis reachable again", json_pack("{s:s}", "thread", who));
    *logged_down = 0;
    return c;
fail:
    freeReplyObject(r);
    if (c) redisFree(c);
    return NULL;
}

/* Sleep up to ms or until kicked/stopping. Returns 1 when stopping. */
static int bus_sleep(bus *b, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&b->lock);
    while (!b->stopping && !b->kicked)
        if (pthread_cond_timedwait(&b->wake, &b->lock, &ts) == ETIMEDOUT) break;
    b->kicked = 0;
    int stop = atomic_load(&b->stopping);
    pthread_mutex_unlock(&b->lock);
    return stop;
}

/* ---- the relay ------------------------------------------------------------- */

static char *bus_payload(const char *queue, int64_t desired, int64_t version, int64_t at_ms) {
    char ts[UTIL_TIME_MAX];
    json_t *j = json_pack("{s:s, s:I, s:I, s:s}", "queue", queue, "concurrency", (json_int_t)desired,
                          "version", (json_int_t)version, "at", util_format_time(at_ms, ts));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* Read n pipelined replies; 0 when all arrived without an error. */
static int bus_replies(redisContext *c, int n, redisReply **last) {
    int rc = 0;
    *last = NULL;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) return -1;
        redisReply *rep = r;
        if (rep->type == REDIS_REPLY_ERROR) {
            log_json(LOG_ERROR, "redis refused a command", json_pack("{s:s}", "error", rep->str));
            rc = -1;
        }
        if (i == n - 1) *last = rep;
        else freeReplyObject(rep);
    }
    return rc;
}

/* HSET + PUBLISH one outbox row atomically. 0, or -1 (connection unusable). */
static int bus_publish_row(bus *b, redisContext *c, const struct store_outbox *row) {
    redisReply *exec = NULL;
    char *payload = bus_payload(row->queue, row->desired, row->version, row->created_ms);
    int rc = -1;
    if (payload == NULL) return -1;
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "HSET %s %s %s", b->key_desired, row->queue, payload);
    redisAppendCommand(c, "PUBLISH %s %s", b->chan_scaling, payload);
    redisAppendCommand(c, "EXEC");
    if (bus_replies(c, 4, &exec) == 0 && exec && exec->type == REDIS_REPLY_ARRAY && exec->elements == 2)
        rc = 0;
    freeReplyObject(exec);
    free(payload);
    return rc;
}

/* Publish every pending outbox row in order. 0 when drained (or the store
 * is down: rows stay queued), -1 when Redis failed. */
static int bus_drain_outbox(bus *b, redisContext *c) {
    for (;;) {
        struct store_outbox *rows = NULL;
        size_t n = 0;
        if (store_outbox_pending(b->opt.st, BUS_BATCH, &rows, &n) != STORE_OK || n == 0) {
            free(rows);
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (bus_publish_row(b, c, &rows[i]) != 0) {
                free(rows);
                return -1;
            }
            /* If this fails the row is published again later: harmless,
             * workers ignore versions they already applied. */
            if (store_outbox_mark_published(b->opt.st, rows[i].id, util_now_ms()) != STORE_OK) {
                free(rows);
                return 0;
            }
            log_json(LOG_DEBUG, "change published",
                     json_pack("{s:s, s:I, s:I}", "queue", rows[i].queue, "version",
                               (json_int_t)rows[i].version, "concurrency", (json_int_t)rows[i].desired));
        }
        free(rows);
        if (n < BUS_BATCH) return 0;
    }
}

/* Rewrite <p>:desired for every declared queue from the database. 0, -1
 * when Redis failed, 1 when the store could not be read (retry later). */
static int bus_rewrite_desired(bus *b, redisContext *c) {
    char (*names)[UTIL_NAME_MAX + 1] = malloc(POLICY_MAX_QUEUES * sizeof *names);
    char (*pending)[UTIL_NAME_MAX + 1] = NULL;
    struct store_target *targets = NULL;
    size_t nt = 0, np = 0, nq, sent = 0;
    int rc = 1;
    redisReply *last = NULL;

    if (names == NULL) goto done;
    nq = policy_queue_names(b->opt.pol, names, POLICY_MAX_QUEUES);
    if (store_desired_snapshot(b->opt.st, &targets, &nt, &pending, &np) != STORE_OK) goto done;
    for (size_t i = 0; i < nq && i < POLICY_MAX_QUEUES; i++) {
        struct policy_bounds bounds;
        const struct store_target *t = NULL;
        int skip = 0;
        for (size_t k = 0; k < np; k++) skip |= strcmp(pending[k], names[i]) == 0;
        if (skip || policy_bounds(b->opt.pol, names[i], &bounds) != 0) continue;
        for (size_t k = 0; k < nt; k++)
            if (strcmp(targets[k].queue, names[i]) == 0) t = &targets[k];
        char *payload = t ? bus_payload(t->queue, t->desired, t->version, t->updated_at_ms)
                          : bus_payload(names[i], bounds.def, 0, util_now_ms());
        if (payload == NULL) continue;
        redisAppendCommand(c, "HSET %s %s %s", b->key_desired, names[i], payload);
        free(payload);
        sent++;
    }
    rc = sent == 0 ? 0 : bus_replies(c, (int)sent, &last);
    freeReplyObject(last);
    if (rc == 0)
        log_json(LOG_INFO, "desired state rewritten from the database",
                 json_pack("{s:i, s:i}", "queues", (int)sent, "skipped_pending", (int)np));
done:
    free(names);
    free(pending);
    free(targets);
    return rc;
}

static int bus_flush_alerts(bus *b, redisContext *c) {
    for (;;) {
        pthread_mutex_lock(&b->lock);
        struct bus_alert *a = b->alerts;
        if (a) {
            b->alerts = a->next;
            if (b->alerts == NULL) b->alerts_tail = &b->alerts;
            b->nalerts--;
        }
        pthread_mutex_unlock(&b->lock);
        if (a == NULL) return 0;
        char *text = json_dumps(a->msg, JSON_COMPACT);
        redisReply *r = text ? redisCommand(c, "PUBLISH %s %s", b->chan_alerts, text) : NULL;
        int ok = r != NULL;
        freeReplyObject(r);
        free(text);
        json_decref(a->msg);
        free(a);
        if (!ok) return -1;
    }
}

static void *bus_relay_main(void *arg) {
    bus *b = arg;
    redisContext *c = NULL;
    int64_t backoff = BUS_BACKOFF_MIN_MS;
    int logged_down = 0, resync = 1;
    unsigned term = 0;

    while (!atomic_load(&b->stopping)) {
        if (c == NULL) {
            c = bus_connect(b, "relay", &logged_down);
            if (c == NULL) {
                atomic_store(&b->relay_up, 0);
                if (bus_sleep(b, backoff)) break;
                backoff = backoff * 2 > BUS_BACKOFF_MAX_MS ? BUS_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BUS_BACKOFF_MIN_MS;
            resync = 1;
        }
        /* Only the leader relays. A new term starts with a full resync, as
         * after a reconnect: the previous leader may have stopped anywhere. */
        if (!leader_is(b->opt.ld)) {
            atomic_store(&b->relay_up, 1);
            if (bus_sleep(b, BUS_IDLE_MS)) break;
            continue;
        }
        if (leader_term(b->opt.ld) != term) {
            term = leader_term(b->opt.ld);
            resync = 1;
        }
        /* Drain first, then rewrite: the snapshot then only skips queues
         * with rows committed after the drain, which the relay brings. */
        if (atomic_exchange(&b->resync, 0)) resync = 1;
        int rc = bus_drain_outbox(b, c);
        if (rc == 0 && resync) {
            int r = bus_rewrite_desired(b, c);
            if (r < 0) rc = -1;
            else if (r == 0) resync = 0;
        }
        if (rc == 0) rc = bus_flush_alerts(b, c);
        if (rc != 0) {
            bus_complain("relay", c->err ? c->errstr : "command failed", &logged_down);
            redisFree(c);
            c = NULL;
            continue;
        }
        atomic_store(&b->relay_up, 1);
        if (bus_sleep(b, BUS_IDLE_MS)) break;
    }
    if (c && leader_is(b->opt.ld)) {
        bus_drain_outbox(b, c);          /* last chance for what was just committed */
        bus_flush_alerts(b, c);
    }
    if (c) redisFree(c);
    atomic_store(&b->relay_up, 0);
    return NULL;
}

/* ---- the subscriber ------------------------------------------------------------ */

static void bus_on_message(bus *b, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;                         /* subscribe confirmations and the like */
    int64_t now = util_mono_ms();
    fleet_report(b->opt.fl, r->element[2]->str, r->element[2]->len, now);
    fleet_check_waiters(b->opt.fl, now, 0);
}

static void *bus_sub_main(void *arg) {
    bus *b = arg;
    redisContext *c = NULL;
    int64_t backoff = BUS_BACKOFF_MIN_MS;
    int logged_down = 0;

    while (!atomic_load(&b->stopping)) {
        if (c == NULL) {
            redisReply *r;
            c = bus_connect(b, "subscriber", &logged_down);
            if (c == NULL || (r = redisCommand(c, "SUBSCRIBE %s", b->chan_reports)) == NULL) {
                if (c) redisFree(c);
                c = NULL;
                atomic_store(&b->sub_up, 0);
                if (bus_sleep(b, backoff)) break;
                backoff = backoff * 2 > BUS_BACKOFF_MAX_MS ? BUS_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            freeReplyObject(r);
            backoff = BUS_BACKOFF_MIN_MS;
            atomic_store(&b->sub_up, 1);
        }
        /* Poll, so the thread notices stop requests without a read timeout
         * breaking the hiredis context. */
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int ready = poll(&pfd, 1, BUS_IDLE_MS);
        if (ready < 0 && errno != EINTR) ready = -1;
        if (ready > 0 && redisBufferRead(c) != REDIS_OK) ready = -1;
        void *reply = NULL;
        while (ready >= 0 && redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
            bus_on_message(b, reply);
            freeReplyObject(reply);
            reply = NULL;
        }
        if (ready < 0 || c->err) {
            bus_complain("subscriber", c->err ? c->errstr : "poll failed", &logged_down);
            redisFree(c);
            c = NULL;
            atomic_store(&b->sub_up, 0);
        }
    }
    if (c) redisFree(c);
    atomic_store(&b->sub_up, 0);
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------------- */

bus *bus_start(const struct bus_options *opt, char *err, size_t errlen) {
    bus *b = calloc(1, sizeof *b);
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->opt = *opt;
    if (bus_parse_url(opt->redis_url, b->host, sizeof b->host, &b->port, &b->db, err, errlen) != 0) {
        free(b);
        return NULL;
    }
    snprintf(b->key_desired, sizeof b->key_desired, "%s:desired", opt->prefix);
    snprintf(b->chan_scaling, sizeof b->chan_scaling, "%s:scaling", opt->prefix);
    snprintf(b->chan_reports, sizeof b->chan_reports, "%s:reports", opt->prefix);
    snprintf(b->chan_alerts, sizeof b->chan_alerts, "%s:alerts", opt->prefix);
    b->alerts_tail = &b->alerts;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    b->relay_started = pthread_create(&b->relay, NULL, bus_relay_main, b) == 0;
    b->sub_started = pthread_create(&b->sub, NULL, bus_sub_main, b) == 0;
    if (!b->relay_started || !b->sub_started) {
        snprintf(err, errlen, "cannot start the Redis threads");
        bus_stop(b);
        return NULL;
    }
    return b;
}

void bus_stop(bus *b) {
    if (b == NULL) return;
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->stopping, 1);
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    if (b->relay_started) pthread_join(b->relay, NULL);
    if (b->sub_started) pthread_join(b->sub, NULL);
    while (b->alerts) {
        struct bus_alert *a = b->alerts;
        b->alerts = a->next;
        json_decref(a->msg);
        free(a);
    }
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void bus_kick(bus *b) {
    if (b == NULL) return;
    pthread_mutex_lock(&b->lock);
    b->kicked = 1;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
}

void bus_resync(bus *b) {
    if (b == NULL) return;
    atomic_store(&b->resync, 1);
    bus_kick(b);
}

void bus_publish_alert(bus *b, json_t *msg) {
    struct bus_alert *a = b ? calloc(1, sizeof *a) : NULL;
    if (a == NULL) {
        json_decref(msg);
        return;
    }
    a->msg = msg;
    pthread_mutex_lock(&b->lock);
    if (b->nalerts < BUS_ALERTS_MAX) {
        *b->alerts_tail = a;
        b->alerts_tail = &a->next;
        b->nalerts++;
        a = NULL;
    }
    b->kicked = 1;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    if (a) {                                /* queue full during a long outage */
        json_decref(a->msg);
        free(a);
    }
}

int bus_redis_up(bus *b) {
    return b && atomic_load(&b->relay_up) && atomic_load(&b->sub_up);
}
