/* sluice.c — libsluice: the agent thread, desired-state handling and
 * reports. See sluice.h for the contract. */
#include "sluice.h"
#include "protocol.h"
#include "rconn.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define AGENT_TIMEOUT_MS 1000
#define AGENT_INSANE_LOG_MS 60000

struct sluice_agent {
    char host[256], prefix[PROTOCOL_NAME_MAX + 1], queue[PROTOCOL_NAME_MAX + 1];
    char id[PROTOCOL_WORKER_ID_MAX + 1];
    char key_desired[PROTOCOL_KEY_MAX], chan_scaling[PROTOCOL_KEY_MAX], chan_reports[PROTOCOL_KEY_MAX];
    struct rconn_target redis;
    int max, ceiling, heartbeat_ms, poll_ms;
    long long insane_logged_ms, insane_suppressed;    /* agent thread only */
    sluice_apply_fn apply;
    sluice_pause_fn pause;
    void *ud;
    pthread_t thread;
    atomic_int stopping;
    atomic_int concurrency;
    atomic_llong version;
    atomic_int paused;
    atomic_llong active, completed, failed;
    char last_error[256];
};

static long long agent_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long agent_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reports ---------------------------------------------------------------- */

static void agent_report(sluice_agent *a, rconn *c, const char *event, const char *error) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:i, s:s, s:s, s:I, s:i, s:o, s:b}",
                          "event", event, "worker", a->id, "queue", a->queue, "concurrency",
                          atomic_load(&a->concurrency), "version", (json_int_t)atomic_load(&a->version),
                          "active", (json_int_t)atomic_load(&a->active), "completed",
                          (json_int_t)atomic_load(&a->completed), "failed",
                          (json_int_t)atomic_load(&a->failed), "pid", (int)getpid(), "host", a->host,
                          "agent", SLUICE_AGENT_NAME, "ts", (json_int_t)agent_wall_ms(),
                          "interval_ms", a->heartbeat_ms, "error",
                          error ? json_string(error) : json_null(), "paused",
                          atomic_load(&a->paused));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text) {
        redisReply *r = rconn_command(c, "PUBLISH %s %s", a->chan_reports, text);
        freeReplyObject(r);
    }
    free(text);
    json_decref(j);
}

/* A message no sluiced would send (forged, or corrupted): logged at most
 * once a minute, with how many were ignored in between. */
static void agent_insane(sluice_agent *a, const char *why, long long value) {
    long long now = agent_now_ms();
    if (a->insane_logged_ms && now - a->insane_logged_ms < AGENT_INSANE_LOG_MS) {
        a->insane_suppressed++;
        return;
    }
    fprintf(stderr, "libsluice: %s: ignored a scaling message with %s %lld (%lld more ignored since the last line)\n",
            a->queue, why, value, a->insane_suppressed);
    a->insane_logged_ms = now;
    a->insane_suppressed = 0;
}

/* Apply concurrency `want` (clamped) and the pause state of a newer
 * version; returns the concurrency the worker runs when not paused. */
static int agent_apply(sluice_agent *a, int clamped, int paused) {
    int was = atomic_load(&a->paused), actual;
    if (paused && a->pause) {
        if (!was) a->pause(a->ud, 1);          /* no new job from here on */
        actual = a->apply(a->ud, clamped);
    } else if (paused) {
        if (!was) a->apply(a->ud, 0);
        actual = clamped;                      /* what it returns to */
    } else {
        actual = a->apply(a->ud, clamped);
        if (was && a->pause) a->pause(a->ud, 0);
    }
    atomic_store(&a->paused, paused);
    return actual;
}

/* Apply a desired-state payload if it is for us, sane and newer. Anything
 * else is ignored: it comes from outside. */
static void agent_consider(sluice_agent *a, rconn *c, const char *payload, size_t len) {
    struct protocol_desired d;
    const char *why;
    char msg[200];
    if (payload == NULL || len > PROTOCOL_DESIRED_MAX) return;
    int rc = protocol_desired_parse(payload, len, &d, &why);
    if (strcmp(d.queue, a->queue) != 0) return;      /* another queue's, or no queue */
    if (rc != 0) {
        agent_insane(a, why, 0);
        return;
    }
    if (d.concurrency < 0 || d.concurrency > a->ceiling) {
        agent_insane(a, "concurrency", d.concurrency);
        return;
    }
    if (d.version < 0 || d.version > SLUICE_VERSION_MAX) {
        agent_insane(a, "version", d.version);
        return;
    }
    if (d.version <= atomic_load(&a->version) && atomic_load(&a->version) > 0) return;
    if (d.version == 0 && atomic_load(&a->version) == 0 &&
        atomic_load(&a->concurrency) == d.concurrency && atomic_load(&a->paused) == d.paused)
        return;
    int want = (int)d.concurrency, clamped = want;
    if (a->max > 0 && want > a->max) clamped = a->max;
    int actual = agent_apply(a, clamped, d.paused);
    atomic_store(&a->concurrency, actual);
    atomic_store(&a->version, d.version);
    if (clamped != want) {
        snprintf(msg, sizeof msg, "desired %d is above this worker's hard limit %d; running %d", want,
                 a->max, actual);
        agent_report(a, c, "error", msg);
    } else {
        agent_report(a, c, "ack", NULL);
    }
}

/* 1 when <prefix>:desired says now that our queue is paused; anything
 * else (no entry, Redis failing, an insane entry) is 0, and the thread
 * reads the hash again at once anyway. */
static int agent_paused_now(sluice_agent *a, rconn *c) {
    struct protocol_desired d;
    const char *why;
    int paused = 0;
    redisReply *r = rconn_command(c, "HGET %s %s", a->key_desired, a->queue);
    if (r && r->type == REDIS_REPLY_STRING && r->len <= PROTOCOL_DESIRED_MAX &&
        protocol_desired_parse(r->str, r->len, &d, &why) == 0 && strcmp(d.queue, a->queue) == 0)
        paused = d.paused;
    freeReplyObject(r);
    return paused;
}

static void agent_read_desired(sluice_agent *a, rconn *c) {
    redisReply *r = rconn_command(c, "HGET %s %s", a->key_desired, a->queue);
    if (r && r->type == REDIS_REPLY_STRING) agent_consider(a, c, r->str, r->len);
    freeReplyObject(r);
}

/* ---- the thread -------------------------------------------------------------- */

static rconn *agent_connect(sluice_agent *a) {
    char err[256];
    enum rconn_failure why;
    return rconn_open(&a->redis, AGENT_TIMEOUT_MS, &why, err, sizeof err);
}

static void agent_drop(rconn **c) {
    rconn_free(*c);
    *c = NULL;
}

static void *agent_main(void *arg) {
    sluice_agent *a = arg;
    rconn *cmd = NULL, *sub = NULL;
    long long next_beat = 0, next_poll = 0, backoff = 100;

    while (!atomic_load(&a->stopping)) {
        if (cmd == NULL || sub == NULL) {
            agent_drop(&cmd);
            agent_drop(&sub);
            cmd = agent_connect(a);
            sub = cmd ? agent_connect(a) : NULL;
            redisReply *r = sub ? rconn_command(sub, "SUBSCRIBE %s", a->chan_scaling) : NULL;
            if (r == NULL || r->type == REDIS_REPLY_ERROR) {
                freeReplyObject(r);
                agent_drop(&cmd);
                agent_drop(&sub);
                for (long long t = 0; t < backoff && !atomic_load(&a->stopping); t += 50) usleep(50000);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            freeReplyObject(r);
            backoff = 100;
            /* After every (re)connect: the hash, not pub/sub, is the truth. */
            agent_read_desired(a, cmd);
            next_poll = agent_now_ms() + a->poll_ms;
            next_beat = 0;
        }
        long long now = agent_now_ms();
        if (now >= next_beat) {
            agent_report(a, cmd, "heartbeat", NULL);
            next_beat = now + a->heartbeat_ms;
        }
        if (now >= next_poll) {
            agent_read_desired(a, cmd);
            next_poll = now + a->poll_ms;
        }
        if (rconn_failed(cmd)) {
            agent_drop(&cmd);
            continue;
        }
        long long wait = (next_beat < next_poll ? next_beat : next_poll) - agent_now_ms();
        if (wait > 100) wait = 100;              /* notice stop requests quickly */
        if (wait < 0) wait = 0;
        redisReply *m = NULL;
        int got;
        while ((got = rconn_poll_reply(sub, (int)wait, &m)) == 1) {
            if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
                m->element[2]->type == REDIS_REPLY_STRING)
                agent_consider(a, cmd, m->element[2]->str, m->element[2]->len);
            freeReplyObject(m);
            m = NULL;
            wait = 0;                            /* drain what is there, then beat */
        }
        if (got < 0) agent_drop(&sub);
    }
    /* Leave the fleet at once instead of going stale. */
    if (cmd == NULL) cmd = agent_connect(a);
    if (cmd) agent_report(a, cmd, "bye", NULL);
    agent_drop(&cmd);
    agent_drop(&sub);
    return NULL;
}

sluice_agent *sluice_agent_start(const struct sluice_config *cfg, char *err, size_t errlen) {
    sluice_agent *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg->apply == NULL || cfg->queue == NULL || !protocol_valid_id(cfg->queue, PROTOCOL_NAME_MAX)) {
        snprintf(err, errlen, "queue (1..64 of A-Z a-z 0-9 _ . : -) and apply are required");
        goto fail;
    }
    char why[256];
    struct rconn_secrets secrets = {cfg->redis_password, cfg->redis_ca, cfg->redis_cert, cfg->redis_key};
    if (rconn_target_parse(cfg->redis_url ? cfg->redis_url : PROTOCOL_DEFAULT_REDIS_URL, &secrets,
                           &a->redis, why, sizeof why) != 0) {
        snprintf(err, errlen, "redis url: %s", why);
        goto fail;
    }
    const char *prefix = cfg->prefix ? cfg->prefix : PROTOCOL_DEFAULT_PREFIX;
    if (!protocol_valid_id(prefix, PROTOCOL_NAME_MAX)) {
        snprintf(err, errlen, "prefix: 1..64 of A-Z a-z 0-9 _ . : -");
        goto fail;
    }
    snprintf(a->prefix, sizeof a->prefix, "%s", prefix);
    snprintf(a->queue, sizeof a->queue, "%s", cfg->queue);
    if (gethostname(a->host, sizeof a->host - 1) != 0) strcpy(a->host, "unknown");
    a->host[64] = '\0';
    for (char *h = a->host; *h; h++)
        if (!protocol_name_char(*h)) *h = '-';
    if (cfg->worker_id) {
        if (!protocol_valid_id(cfg->worker_id, PROTOCOL_WORKER_ID_MAX)) {
            snprintf(err, errlen, "worker id: 1..128 of A-Z a-z 0-9 _ . : -");
            goto fail;
        }
        snprintf(a->id, sizeof a->id, "%s", cfg->worker_id);
    } else {
        snprintf(a->id, sizeof a->id, "%.64s-%.50s-%d", a->queue, a->host, (int)getpid());
    }
    protocol_key(a->key_desired, a->prefix, PROTOCOL_DESIRED);
    protocol_key(a->chan_scaling, a->prefix, PROTOCOL_SCALING);
    protocol_key(a->chan_reports, a->prefix, PROTOCOL_REPORTS);
    a->max = cfg->max_concurrency > 0 ? cfg->max_concurrency : 0;
    a->ceiling = cfg->ceiling > 0 ? cfg->ceiling : SLUICE_AGENT_CEILING;
    a->heartbeat_ms = cfg->heartbeat_ms >= 50 ? cfg->heartbeat_ms : 1000;
    a->poll_ms = cfg->poll_ms >= 50 ? cfg->poll_ms : 5000;
    a->apply = cfg->apply;
    a->pause = cfg->pause;
    a->ud = cfg->ud;
    /* One connection now: a Redis that refuses us will never accept us, so
     * say it here, once, instead of retrying forever in the thread. */
    enum rconn_failure failure;
    rconn *probe = rconn_open(&a->redis, AGENT_TIMEOUT_MS, &failure, why, sizeof why);
    int refused = probe == NULL && failure == RCONN_REFUSED;
    /* A worker started while its queue is paused must not take a job before
     * the thread reads the desired state: learn the pause now. */
    int paused = probe && agent_paused_now(a, probe);
    rconn_free(probe);
    if (refused) {
        snprintf(err, errlen, "redis: %s", why);
        goto fail;
    }
    int initial = cfg->initial_concurrency > 0 ? cfg->initial_concurrency : 1;
    if (a->max && initial > a->max) initial = a->max;
    if (paused) {
        atomic_store(&a->paused, 1);
        if (a->pause) a->pause(a->ud, 1);
    }
    if (paused && !a->pause) {
        a->apply(a->ud, 0);
        atomic_store(&a->concurrency, initial);
    } else {
        atomic_store(&a->concurrency, a->apply(a->ud, initial));
    }
    if (pthread_create(&a->thread, NULL, agent_main, a) != 0) {
        snprintf(err, errlen, "cannot start the agent thread");
        goto fail;
    }
    return a;
fail:
    memset(&a->redis, 0, sizeof a->redis);     /* no password left in freed memory */
    free(a);
    return NULL;
}

void sluice_agent_stop(sluice_agent *a) {
    if (a == NULL) return;
    atomic_store(&a->stopping, 1);
    pthread_join(a->thread, NULL);
    memset(&a->redis, 0, sizeof a->redis);     /* no password left in freed memory */
    free(a);
}

int sluice_agent_concurrency(sluice_agent *a) { return atomic_load(&a->concurrency); }
long long sluice_agent_version(sluice_agent *a) { return atomic_load(&a->version); }
int sluice_agent_paused(sluice_agent *a) { return atomic_load(&a->paused); }
void sluice_agent_job_started(sluice_agent *a) { atomic_fetch_add(&a->active, 1); }

void sluice_agent_job_finished(sluice_agent *a, int ok) {
    atomic_fetch_sub(&a->active, 1);
    atomic_fetch_add(ok ? &a->completed : &a->failed, 1);
}
