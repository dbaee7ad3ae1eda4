/* bus.c — the outbox relay and the report subscriber over rconn. */
#include "bus.h"
#include "log.h"
#include "protocol.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 1000         /* Redis back is noticed within a second */
#define BUS_IDLE_MS 250
#define BUS_BATCH 64
#define BUS_ALERTS_MAX 1024
#define BUS_TIMEOUT_MS 2000
#define BUS_OWNER_MAX 128
#define BUS_PROBE_MS 1000               /* Redis proves it is there this often */
#define BUS_FOREIGN_RETRY_MS 5000       /* a prefix that is not ours, or a fence */
#define BUS_STORE_BACKOFF_MIN_MS 1000   /* the store cannot mark rows published */
#define BUS_STORE_BACKOFF_MAX_MS 16000

struct bus_alert {
    json_t *msg;
    struct bus_alert *next;
};

struct bus {
    struct bus_options opt;
    struct rconn_target target;
    char owner[BUS_OWNER_MAX];
    char key_desired[PROTOCOL_KEY_MAX], key_owner[PROTOCOL_KEY_MAX], key_fence[PROTOCOL_KEY_MAX],
        chan_scaling[PROTOCOL_KEY_MAX], chan_reports[PROTOCOL_KEY_MAX], chan_alerts[PROTOCOL_KEY_MAX];
    pthread_t relay, sub;
    int relay_started, sub_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int stopping;
    atomic_int resync;
    int kicked;
    int open;                        /* bus_open was called: the relay may write */
    char sha[48];                    /* the write script on the relay's connection */
    struct bus_alert *alerts, **alerts_tail;
    size_t nalerts;
    atomic_int relay_up, sub_up;
};

/* ---- connections --------------------------------------------------------- */

static void bus_complain(const char *who, const char *what, int *logged_down) {
    if (*logged_down) return;        /* one line per outage, not one per retry */
    log_json(LOG_WARN, "redis unavailable; retrying with back-off",
             json_pack("{s:s, s:s}", "thread", who, "error", what));
    *logged_down = 1;
}

static rconn *bus_connect(bus *b, const char *who, int *logged_down) {
    char err[256];
    enum rconn_failure why;
    rconn *c = rconn_open(&b->target, BUS_TIMEOUT_MS, &why, err, sizeof err);
    if (c == NULL) {
        bus_complain(who, err, logged_down);
        return NULL;
    }
    if (*logged_down)
        log_json(LOG_INFO, "redis reachable again", json_pack("{s:s}", "thread", who));
    *logged_down = 0;
    return c;
}

/* Read <p>:owner into out ("" when nobody claimed the prefix). Returns 0, or
 * -1 when the connection failed or Redis refused. */
static int bus_read_owner(rconn *c, const char *key, char *out, size_t outlen, char *err, size_t errlen) {
    redisReply *r = rconn_command(c, "GET %s", key);
    int rc = -1;
    out[0] = '\0';
    if (r == NULL) snprintf(err, errlen, "%s", rconn_error(c));
    else if (r->type == REDIS_REPLY_ERROR) snprintf(err, errlen, "GET %s refused: %s", key, r->str);
    else if (r->type == REDIS_REPLY_STRING) rc = snprintf(out, outlen, "%s", r->str) < (int)outlen ? 0 : -1;
    else rc = 0;
    if (rc != 0 && r && r->type == REDIS_REPLY_STRING) snprintf(err, errlen, "%s holds an oversized value", key);
    freeReplyObject(r);
    return rc;
}

/* Make <p>:owner ours before a write. Returns 0 when it was ours already, 2
 * when we just claimed it (Redis was new or emptied: rewrite the hash), 1
 * when another store owns it and we may not take it, -1 when Redis failed. */
static int bus_claim_prefix(bus *b, rconn *c) {
    char current[BUS_OWNER_MAX], err[256];
    if (bus_read_owner(c, b->key_owner, current, sizeof current, err, sizeof err) != 0) return -1;
    if (strcmp(current, b->owner) == 0) return 0;
    if (current[0] && !b->opt.take_over) return 1;
    /* Free (SET NX: two stores starting together cannot both win), or taken
     * over on purpose (SET: the operator said so). */
    redisReply *r = current[0] ? rconn_command(c, "SET %s %s", b->key_owner, b->owner)
                               : rconn_command(c, "SET %s %s NX", b->key_owner, b->owner);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    int lost = r && r->type == REDIS_REPLY_NIL;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_json(LOG_ERROR, "redis refused a command", json_pack("{s:s}", "error", r->str));
    freeReplyObject(r);
    if (lost) return bus_claim_prefix(b, c);       /* someone claimed it just now: look again */
    if (!ok) return -1;
    if (current[0]) {
        /* The other store's epochs mean nothing to ours: start fencing anew. */
        freeReplyObject(rconn_command(c, "DEL %s", b->key_fence));
        log_json(LOG_WARN, "took over the redis prefix from another store",
                 json_pack("{s:s, s:s, s:s}", "prefix", b->opt.prefix, "previous_owner", current, "owner",
                           b->owner));
    } else {
        log_json(LOG_INFO, "claimed the redis prefix",
                 json_pack("{s:s, s:s}", "prefix", b->opt.prefix, "owner", b->owner));
    }
    return 2;
}

int bus_preflight(const struct bus_options *opt, char *err, size_t errlen) {
    char key[PROTOCOL_KEY_MAX], current[BUS_OWNER_MAX], why_text[256];
    enum rconn_failure why;
    rconn *c = rconn_open(opt->redis, BUS_TIMEOUT_MS, &why, why_text, sizeof why_text);
    int rc = 0;
    if (c == NULL) {
        if (why == RCONN_UNREACHABLE) {        /* not fatal: the relay keeps trying */
            log_json(LOG_WARN, "redis unavailable at start; the prefix is claimed when it answers",
                     json_pack("{s:s}", "error", why_text));
            return 0;
        }
        snprintf(err, errlen, "redis: %s", why_text);
        return -1;
    }
    if (bus_read_owner(c, protocol_key(key, opt->prefix, PROTOCOL_OWNER), current, sizeof current, why_text, sizeof why_text) != 0) {
        snprintf(err, errlen, "redis: %s", why_text);
        rc = -1;
    } else if (current[0] && strcmp(current, opt->owner) != 0 && !opt->take_over) {
        snprintf(err, errlen,
                 "the redis prefix '%s' belongs to store %s, this database is store %s; another "
                 "control plane owns it (use another --prefix, or --take-over-prefix to claim it)",
                 opt->prefix, current, opt->owner);
        rc = -1;
    }
    rconn_free(c);
    return rc;
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

/* Every write of the desired state goes through this script, in Redis, so
 * that the check and the write are one step whatever the leaders do:
 *   KEYS: <p>:desired, <p>:fence
 *   ARGV: queue, payload, version, epoch, channel, publish (1|0)
 * A writer whose epoch is below the fence was deposed: refused (-1). A
 * version older than the stored one is never written (0), nor is the same
 * one again, except version 0 (the policy default, which a reload may
 * change). Otherwise the hash is written and, when asked, the payload
 * published (1). */
static const char bus_write_script[] =
    "local fence = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local epoch = tonumber(ARGV[4])\n"
    "if epoch < fence then return -1 end\n"
    "if epoch > fence then redis.call('SET', KEYS[2], ARGV[4]) end\n"
    "local version = tonumber(ARGV[3])\n"
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur then\n"
    "  local ok, stored = pcall(function() return cjson.decode(cur).version end)\n"
    "  if ok and type(stored) == 'number' then\n"
    "    if stored > version or (stored == version and version ~= 0) then return 0 end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "if ARGV[6] == '1' then redis.call('PUBLISH', ARGV[5], ARGV[2]) end\n"
    "return 1\n";

/* Load the script on a new connection. 0, or -1 (connection unusable). */
static int bus_load_script(bus *b, rconn *c) {
    redisReply *r = rconn_command(c, "SCRIPT LOAD %s", bus_write_script);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len < sizeof b->sha;
    if (ok) memcpy(b->sha, r->str, r->len + 1);
    else if (r && r->type == REDIS_REPLY_ERROR)
        log_json(LOG_ERROR, "redis refused a command", json_pack("{s:s}", "error", r->str));
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Queue one fenced write of queue's payload (see bus_write_script). */
static void bus_append_write(bus *b, rconn *c, const char *queue, const char *payload, int64_t version,
                             int publish) {
    rconn_append(c, "EVALSHA %s 2 %s %s %s %s %lld %lld %s %s", b->sha, b->key_desired, b->key_fence, queue,
                 payload, (long long)version, leader_epoch(b->opt.ld), b->chan_scaling, publish ? "1" : "0");
}

/* The answer of one fenced write: 1 written, 0 not newer, -1 fenced off,
 * -2 the connection failed or Redis refused. */
static int bus_write_result(rconn *c) {
    redisReply *r = NULL;
    int rc = -2;
    if (rconn_get_reply(c, &r) == 0) {
        if (r->type == REDIS_REPLY_INTEGER) rc = r->integer > 0 ? 1 : r->integer == 0 ? 0 : -1;
        else if (r->type == REDIS_REPLY_ERROR)
            log_json(LOG_ERROR, "redis refused a command", json_pack("{s:s}", "error", r->str));
    }
    freeReplyObject(r);
    return rc;
}

static void bus_fenced_off(bus *b) {
    log_json(LOG_WARN, "a newer leader fenced this one off; not writing",
             json_pack("{s:s, s:I}", "prefix", b->opt.prefix, "epoch", (json_int_t)leader_epoch(b->opt.ld)));
}

/* protocol.md's desired state, "paused" included. malloc'd, or NULL. */
static char *bus_payload(const char *queue, int64_t desired, int64_t version, int paused,
                         int64_t at_ms) {
    char ts[UTIL_TIME_MAX];
    struct protocol_desired d = {.concurrency = desired, .version = version, .paused = paused};
    snprintf(d.queue, sizeof d.queue, "%s", queue);
    return protocol_desired_format(&d, util_format_time(at_ms, ts));
}

/* Write + PUBLISH one outbox row through the fenced script. 0 when done
 * (or already there: at least once), -1 when the connection failed, -2
 * when a newer leader fenced us off. */
static int bus_publish_row(bus *b, rconn *c, const struct store_outbox *row) {
    char *payload = bus_payload(row->queue, row->desired, row->version, row->paused, row->created_ms);
    if (payload == NULL) return -1;
    fleet_issued(b->opt.fl, row->queue, row->version);   /* before any worker can ack it */
    bus_append_write(b, c, row->queue, payload, row->version, 1);
    int rc = bus_write_result(c);
    free(payload);
    return rc >= 0 ? 0 : rc == -1 ? -2 : -1;
}

/* Publish every pending outbox row in order. 0 when drained (or the store
 * is down: rows stay queued), 1 when a row went out but could not be
 * marked (back off), -1 when Redis failed, -2 when fenced off. */
static int bus_drain_outbox(bus *b, rconn *c) {
    for (;;) {
        struct store_outbox *rows = NULL;
        size_t n = 0;
        /* The lease, before each batch: a leader that was frozen past it
         * publishes nothing when it wakes. */
        if (!leader_is(b->opt.ld)) return 0;
        if (store_outbox_pending(b->opt.st, BUS_BATCH, &rows, &n) != STORE_OK || n == 0) {
            free(rows);
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            int rc = bus_publish_row(b, c, &rows[i]);
            if (rc == -2) {
                bus_fenced_off(b);
                free(rows);
                return -2;
            }
            if (rc != 0) {
                free(rows);
                return -1;
            }
            /* If this fails (a full volume, a busy or absent database) the
             * row is sent again later: harmless, the script writes and
             * publishes nothing for a version Redis already has. The relay
             * backs off meanwhile instead of retrying every 250 ms. */
            if (store_outbox_mark_published(b->opt.st, rows[i].id, util_now_ms()) != STORE_OK) {
                free(rows);
                return 1;
            }
            log_json(LOG_DEBUG, "change published",
                     json_pack("{s:s, s:I, s:I, s:b}", "queue", rows[i].queue, "version",
                               (json_int_t)rows[i].version, "concurrency", (json_int_t)rows[i].desired,
                               "paused", rows[i].paused));
        }
        free(rows);
        if (n < BUS_BATCH) return 0;
    }
}

/* Rewrite <p>:desired for every declared queue from the database. 0, -1
 * when Redis failed, -2 when fenced off, 1 when the store could not be read
 * (retry later). */
static int bus_rewrite_desired(bus *b, rconn *c) {
    char (*pending)[UTIL_NAME_MAX + 1] = NULL;
    struct store_target *targets = NULL;
    size_t nt = 0, np = 0, sent = 0;
    int rc = 1;
    /* One generation for the whole rewrite: a reload meanwhile cannot drop
     * a queue from under the loop. */
    struct policy_gen *g = policy_acquire(b->opt.pol);

    if (store_desired_snapshot(b->opt.st, &targets, &nt, &pending, &np) != STORE_OK) goto done;
    for (size_t i = 0; i < policy_gen_count(g); i++) {
        struct policy_bounds bounds;
        const char *name = policy_gen_queue(g, i, &bounds);
        const struct store_target *t = NULL;
        int skip = 0;
        for (size_t k = 0; k < np; k++) skip |= strcmp(pending[k], name) == 0;
        if (skip) continue;
        for (size_t k = 0; k < nt; k++)
            if (strcmp(targets[k].queue, name) == 0) t = &targets[k];
        if (t) fleet_issued(b->opt.fl, t->queue, t->version);
        char *payload = t ? bus_payload(t->queue, t->desired, t->version, t->paused, t->updated_at_ms)
                          : bus_payload(name, bounds.def, 0, 0, util_now_ms());
        if (payload == NULL) continue;
        /* Not published: the hash is the truth workers re-read. Fenced and
         * never older than what is there. */
        bus_append_write(b, c, name, payload, t ? t->version : 0, 0);
        free(payload);
        sent++;
    }
    rc = 0;
    for (size_t k = 0; k < sent; k++) {          /* read every reply, even after a failure */
        int w = bus_write_result(c);
        if (w == -2 && rc == 0) rc = -1;
        if (w == -1) rc = -2;
    }
    if (rc == -2) bus_fenced_off(b);
    if (rc == 0)
        log_json(LOG_INFO, "desired state rewritten from the database",
                 json_pack("{s:i, s:i}", "queues", (int)sent, "skipped_pending", (int)np));
done:
    policy_release(g);
    free(pending);
    free(targets);
    return rc;
}

static int bus_flush_alerts(bus *b, rconn *c) {
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
        redisReply *r = text ? rconn_command(c, "PUBLISH %s %s", b->chan_alerts, text) : NULL;
        int ok = r != NULL;
        freeReplyObject(r);
        free(text);
        json_decref(a->msg);
        free(a);
        if (!ok) return -1;
    }
}

/* After a connect or an owner check: 1 when the prefix is ours (claim 0 or
 * 2), 0 when it is not (logged once per episode), -1 when Redis failed. */
static int bus_owned(bus *b, rconn *c, int claim, int *logged_foreign) {
    if (claim == 1 && !*logged_foreign) {
        char current[BUS_OWNER_MAX], err[64];
        bus_read_owner(c, b->key_owner, current, sizeof current, err, sizeof err);
        log_json(LOG_ERROR, "the redis prefix belongs to another store; not writing to it",
                 json_pack("{s:s, s:s, s:s}", "prefix", b->opt.prefix, "owner", current, "store", b->owner));
        *logged_foreign = 1;
    }
    if (claim == 1) return 0;
    if (claim < 0) return -1;
    *logged_foreign = 0;
    return 1;
}

static void *bus_relay_main(void *arg) {
    bus *b = arg;
    rconn *c = NULL;
    int64_t backoff = BUS_BACKOFF_MIN_MS, checked = 0, store_backoff = 0;
    int logged_down = 0, resync = 1, logged_foreign = 0;
    unsigned term = 0;

    while (!atomic_load(&b->stopping)) {
        pthread_mutex_lock(&b->lock);
        int open = b->open;
        pthread_mutex_unlock(&b->lock);
        if (!open) {                        /* start-up is not finished: write nothing */
            if (bus_sleep(b, BUS_IDLE_MS)) break;
            continue;
        }
        int64_t now = util_mono_ms();
        if (c == NULL) {
            c = bus_connect(b, "relay", &logged_down);
            int owned = c ? bus_owned(b, c, bus_claim_prefix(b, c), &logged_foreign) : -1;
            if (owned == 1 && bus_load_script(b, c) != 0) owned = -1;
            if (owned != 1) {
                rconn_free(c);
                c = NULL;
                atomic_store(&b->relay_up, 0);
                if (bus_sleep(b, owned == 0 ? BUS_FOREIGN_RETRY_MS : backoff)) break;
                backoff = backoff * 2 > BUS_BACKOFF_MAX_MS ? BUS_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            checked = now;
            backoff = BUS_BACKOFF_MIN_MS;
            resync = 1;
        }
        /* Redis must prove it is there even when nothing is to be sent (a
         * Redis restarted empty is noticed and refilled within a second or
         * two): the leader looks at the owner (and claims it again when
         * Redis was emptied), a follower pings. */
        if (now - checked >= BUS_PROBE_MS) {
            checked = now;
            int owned = 1;
            if (leader_is(b->opt.ld)) {
                int claim = bus_claim_prefix(b, c);
                if (claim == 2) resync = 1;
                owned = bus_owned(b, c, claim, &logged_foreign);
            } else {
                redisReply *r = rconn_command(c, "PING");
                if (r == NULL) owned = -1;
                freeReplyObject(r);
            }
            if (owned != 1) {
                if (owned < 0) bus_complain("relay", rconn_error(c), &logged_down);
                rconn_free(c);
                c = NULL;
                atomic_store(&b->relay_up, 0);
                if (owned == 0 && bus_sleep(b, BUS_FOREIGN_RETRY_MS)) break;
                continue;
            }
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
        if (rc == 1) {                      /* the store cannot record what went out */
            if (!store_backoff)
                log_json(LOG_WARN, "published changes cannot be marked in the database; backing off",
                         json_pack("{s:i}", "retry_ms", BUS_STORE_BACKOFF_MIN_MS));
            store_backoff = store_backoff ? store_backoff * 2 : BUS_STORE_BACKOFF_MIN_MS;
            if (store_backoff > BUS_STORE_BACKOFF_MAX_MS) store_backoff = BUS_STORE_BACKOFF_MAX_MS;
            atomic_store(&b->relay_up, 1);
            if (bus_sleep(b, store_backoff)) break;
            continue;
        }
        if (store_backoff && rc == 0) {
            log_json(LOG_INFO, "published changes are marked in the database again", NULL);
            store_backoff = 0;
        }
        if (rc == 0 && resync) {
            int r = bus_rewrite_desired(b, c);
            if (r < 0) rc = r;
            else if (r == 0) resync = 0;
        }
        if (rc == 0) rc = bus_flush_alerts(b, c);
        if (rc == -2) {                     /* fenced off: Redis is fine, we are not the leader */
            atomic_store(&b->relay_up, 1);
            if (bus_sleep(b, BUS_FOREIGN_RETRY_MS)) break;
            continue;
        }
        if (rc != 0) {
            bus_complain("relay", rconn_failed(c) ? rconn_error(c) : "command failed", &logged_down);
            rconn_free(c);
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
    rconn_free(c);
    atomic_store(&b->relay_up, 0);
    return NULL;
}

/* ---- the subscriber ------------------------------------------------------------ */

static void bus_on_message(bus *b, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;                         /* subscribe confirmations and the like */
    /* Ends, on this thread, the waits this report completes (fleet.h). */
    fleet_report(b->opt.fl, r->element[2]->str, r->element[2]->len, util_mono_ms());
}

static void *bus_sub_main(void *arg) {
    bus *b = arg;
    rconn *c = NULL;
    int64_t backoff = BUS_BACKOFF_MIN_MS;
    int logged_down = 0;

    while (!atomic_load(&b->stopping)) {
        if (c == NULL) {
            redisReply *r = NULL;
            c = bus_connect(b, "subscriber", &logged_down);
            if (c == NULL || (r = rconn_command(c, "SUBSCRIBE %s", b->chan_reports)) == NULL ||
                r->type == REDIS_REPLY_ERROR) {
                if (r && r->type == REDIS_REPLY_ERROR)
                    bus_complain("subscriber", r->str, &logged_down);
                freeReplyObject(r);
                rconn_free(c);
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
        /* Poll, so the thread notices stop requests between messages. */
        redisReply *reply = NULL;
        int got;
        while ((got = rconn_poll_reply(c, BUS_IDLE_MS, &reply)) == 1) {
            bus_on_message(b, reply);
            freeReplyObject(reply);
            reply = NULL;
            if (atomic_load(&b->stopping)) break;
        }
        if (got < 0) {
            bus_complain("subscriber", rconn_error(c), &logged_down);
            rconn_free(c);
            c = NULL;
            atomic_store(&b->sub_up, 0);
        }
    }
    rconn_free(c);
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
    b->target = *opt->redis;
    b->opt.redis = &b->target;
    snprintf(b->owner, sizeof b->owner, "%s", opt->owner ? opt->owner : "");
    b->opt.owner = b->owner;
    protocol_key(b->key_desired, opt->prefix, PROTOCOL_DESIRED);
    protocol_key(b->key_owner, opt->prefix, PROTOCOL_OWNER);
    protocol_key(b->key_fence, opt->prefix, PROTOCOL_FENCE);
    protocol_key(b->chan_scaling, opt->prefix, PROTOCOL_SCALING);
    protocol_key(b->chan_reports, opt->prefix, PROTOCOL_REPORTS);
    protocol_key(b->chan_alerts, opt->prefix, PROTOCOL_ALERTS);
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

void bus_open(bus *b) {
    if (b == NULL) return;
    pthread_mutex_lock(&b->lock);
    b->open = 1;
    b->kicked = 1;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
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
