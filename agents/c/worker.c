/* worker.c — sluice-worker, the reference worker built on libsluice.
 *
 * Consumes the Sluice queue layout (protocol.md): jobs are JSON objects in
 * <p>:q:<queue>:wait; a pool thread moves one to :active with BLMOVE, runs
 * it ({"id","sleep_ms","fail"}), removes it from :active, and records a
 * failure in :failed (capped). The pool follows the desired concurrency:
 * it grows at once, and shrinks by letting threads above the new size finish
 * their job and leave, so a job is never interrupted or lost. A paused
 * queue (libsluice's pause callback) takes no new job: the running ones
 * finish, the pool keeps its size, and a job a thread took from a blocking
 * wait at the moment of the pause goes back to the head of the queue
 * unstarted. SIGTERM drains the running jobs and says bye. --produce N
 * enqueues demo jobs instead. */
#include "sluice.h"
#include "protocol.h"
#include "rconn.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 1024
#define FAILED_CAP 1000
/* Move one job from :active back to the consuming end of :wait, at once. */
#define PUT_BACK "redis.call('LREM', KEYS[1], 1, ARGV[1]) redis.call('RPUSH', KEYS[2], ARGV[1])"

enum slot_state { SLOT_EMPTY, SLOT_RUNNING, SLOT_EXITED };

struct worker {
    const char *redis_url, *jobs_url, *prefix, *queue;
    struct rconn_target jobs;            /* where the job lists are */
    char key_wait[PROTOCOL_KEY_MAX], key_active[PROTOCOL_KEY_MAX], key_failed[PROTOCOL_KEY_MAX];
    pthread_mutex_t lock;
    int target;                          /* desired pool size */
    enum slot_state state[POOL_MAX];
    pthread_t threads[POOL_MAX];
    int index[POOL_MAX];
    atomic_int stopping;
    atomic_int paused;                   /* take no new job */
    /* Set once sluice_agent_start returned; the initial apply starts pool
     * threads before that, and they must not count jobs on NULL. */
    _Atomic(sluice_agent *) agent;
};

static struct worker W;
static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static void usage(void) {
    fprintf(stderr,
            "usage: sluice-worker --queue NAME [--redis URL] [--prefix P] [--id ID]\n"
            "                     [--concurrency N] [--max N] [--heartbeat-ms MS] [--poll-ms MS]\n"
            "                     [--jobs-redis URL] [--redis-ca F] [--redis-cert F --redis-key F]\n"
            "       sluice-worker --produce N --queue NAME [--redis URL] [--prefix P]\n"
            "                     [--sleep-ms MS] [--fail-ratio R]\n"
            "URLs: redis[s]://[USER[:PASSWORD]@]HOST:PORT[/DB]; a password may come from\n"
            "SLUICE_REDIS_PASSWORD or SLUICE_REDIS_PASSWORD_FILE instead.\n");
}

/* A connection for the job lists (5 s: longer than a blocking BLMOVE). */
static rconn *connect_redis(char *err, size_t errlen) {
    enum rconn_failure why;
    return rconn_open(&W.jobs, 5000, &why, err, errlen);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Run one job; returns 1 when it succeeded. Bad jobs fail, they never crash. */
static int run_job(const char *text, size_t len) {
    json_error_t jerr;
    json_t *job = json_loadb(text, len, 0, &jerr);
    json_t *sl = json_object_get(job, "sleep_ms"), *fail = json_object_get(job, "fail");
    int ok = json_is_object(job);
    if (json_is_integer(sl) && json_integer_value(sl) > 0 && json_integer_value(sl) <= 600000)
        sleep_ms((long)json_integer_value(sl));
    if (json_is_true(fail)) ok = 0;
    json_decref(job);
    return ok;
}

/* 1 when slot i should leave the pool; marks it exited under the lock so a
 * grow that comes later restarts it instead of racing it. */
static int slot_should_leave(int i) {
    int leave;
    pthread_mutex_lock(&W.lock);
    leave = atomic_load(&W.stopping) || i >= W.target;
    if (leave) W.state[i] = SLOT_EXITED;
    pthread_mutex_unlock(&W.lock);
    return leave;
}

static void *pool_thread(void *arg) {
    int i = *(int *)arg;
    rconn *c = NULL;
    while (atomic_load(&W.agent) == NULL && !atomic_load(&W.stopping)) sleep_ms(5);
    while (!slot_should_leave(i)) {
        char err[256];
        if (c == NULL && (c = connect_redis(err, sizeof err)) == NULL) {
            sleep_ms(500);
            continue;
        }
        if (atomic_load(&W.paused)) {
            sleep_ms(50);
            continue;
        }
        /* Block at most 1 s so a shrink or SIGTERM is noticed between jobs. */
        redisReply *r = rconn_command(c, "BLMOVE %s %s RIGHT LEFT 1", W.key_wait, W.key_active);
        if (r == NULL) {
            rconn_free(c);
            c = NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_STRING && atomic_load(&W.paused)) {
            /* Paused while this thread waited: the job was not started, so
             * it goes back where it was, next in line. */
            freeReplyObject(rconn_command(c, "EVAL %s 2 %s %s %b", PUT_BACK, W.key_active, W.key_wait,
                                          r->str, r->len));
        } else if (r->type == REDIS_REPLY_STRING) {
            sluice_agent_job_started(W.agent);
            int ok = run_job(r->str, r->len);
            if (!ok) {
                freeReplyObject(rconn_command(c, "LPUSH %s %b", W.key_failed, r->str, r->len));
                freeReplyObject(rconn_command(c, "LTRIM %s 0 %d", W.key_failed, FAILED_CAP - 1));
            }
            freeReplyObject(rconn_command(c, "LREM %s 1 %b", W.key_active, r->str, r->len));
            sluice_agent_job_finished(W.agent, ok);
        }
        freeReplyObject(r);
    }
    if (c) rconn_free(c);
    return NULL;
}

/* libsluice callback: resize the pool. Grows at once; shrinking threads
 * leave after their current job. Returns the size now in force. */
static int apply_concurrency(void *ud, int n) {
    (void)ud;
    if (n > POOL_MAX) n = POOL_MAX;
    pthread_mutex_lock(&W.lock);
    W.target = n;
    for (int i = 0; i < n; i++) {
        if (W.state[i] == SLOT_RUNNING) continue;
        if (W.state[i] == SLOT_EXITED) pthread_join(W.threads[i], NULL);
        W.index[i] = i;
        W.state[i] = pthread_create(&W.threads[i], NULL, pool_thread, &W.index[i]) == 0
                         ? SLOT_RUNNING : SLOT_EMPTY;
    }
    pthread_mutex_unlock(&W.lock);
    fprintf(stderr, "sluice-worker: concurrency %d\n", n);
    return n;
}

/* libsluice callback: the queue was paused (1) or resumed (0). */
static void apply_pause(void *ud, int paused) {
    (void)ud;
    atomic_store(&W.paused, paused);
    fprintf(stderr, "sluice-worker: %s\n", paused ? "paused: no new jobs; running ones finish" : "resumed");
}

static int produce(long n, long sleep, double fail_ratio) {
    char err[256];
    rconn *c = connect_redis(err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "sluice-worker: redis: %s\n", err);   /* never the URL: it may hold a password */
        return 1;
    }
    /* Failures spread evenly from a random phase: a batch of n has floor or
     * ceil of n × ratio failures (exactly that when it is whole), so small
     * batches still fail at the ratio on average instead of rounding to 0. */
    double phase = 0;
    unsigned int seed;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed) phase = seed / 4294967296.0;
    for (long i = 0; i < n; i++) {
        int fail = (long)((i + 1) * fail_ratio + phase) > (long)(i * fail_ratio + phase);
        char job[160];
        snprintf(job, sizeof job, "{\"id\":\"%d-%ld\",\"sleep_ms\":%ld,\"fail\":%s}", (int)getpid(), i,
                 sleep, fail ? "true" : "false");
        rconn_append(c, "LPUSH %s %s", W.key_wait, job);
    }
    for (long i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (rconn_get_reply(c, &r) != 0 || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "sluice-worker: redis failed after %ld jobs: %s\n", i,
                    r ? r->str : rconn_error(c));
            freeReplyObject(r);
            rconn_free(c);
            return 1;
        }
        freeReplyObject(r);
    }
    rconn_free(c);
    printf("enqueued %ld jobs on %s\n", n, W.key_wait);
    return 0;
}

int main(int argc, char **argv) {
    struct sluice_config cfg = {0};
    long produce_n = -1, sleep = 20;
    double fail_ratio = 0;
    char err[256];

    /* First thing: a SIGTERM during start-up must drain, not kill. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    W.redis_url = PROTOCOL_DEFAULT_REDIS_URL;
    /* As sluiced: flags, else SLUICE_REDIS_CA/_CERT/_KEY. */
    const char *ca = getenv("SLUICE_REDIS_CA"), *cert = getenv("SLUICE_REDIS_CERT"),
               *key = getenv("SLUICE_REDIS_KEY");
    W.prefix = PROTOCOL_DEFAULT_PREFIX;
    cfg.initial_concurrency = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) { usage(); return 2; }
        if (!strcmp(a, "--queue")) W.queue = v;
        else if (!strcmp(a, "--redis")) W.redis_url = v;
        else if (!strcmp(a, "--jobs-redis")) W.jobs_url = v;
        else if (!strcmp(a, "--redis-ca")) ca = v;
        else if (!strcmp(a, "--redis-cert")) cert = v;
        else if (!strcmp(a, "--redis-key")) key = v;
        else if (!strcmp(a, "--prefix")) W.prefix = v;
        else if (!strcmp(a, "--id")) cfg.worker_id = v;
        else if (!strcmp(a, "--concurrency")) cfg.initial_concurrency = atoi(v);
        else if (!strcmp(a, "--max")) cfg.max_concurrency = atoi(v);
        else if (!strcmp(a, "--heartbeat-ms")) cfg.heartbeat_ms = atoi(v);
        else if (!strcmp(a, "--poll-ms")) cfg.poll_ms = atoi(v);
        else if (!strcmp(a, "--produce")) produce_n = atol(v);
        else if (!strcmp(a, "--sleep-ms")) sleep = atol(v);
        else if (!strcmp(a, "--fail-ratio")) fail_ratio = atof(v);
        else { usage(); return 2; }
        i++;
    }
    char password[RCONN_SECRET_MAX];
    if (rconn_password_from_env(password, sizeof password, err, sizeof err) != 0) {
        fprintf(stderr, "sluice-worker: %s\n", err);
        return 2;
    }
    /* The job lists may live behind another Redis user (or server) than the
     * control channel: --jobs-redis, by default the same URL. */
    struct rconn_secrets secrets = {password, ca, cert, key};
    const char *jobs_url = W.jobs_url ? W.jobs_url : W.redis_url;
    if (rconn_target_parse(jobs_url, &secrets, &W.jobs, err, sizeof err) != 0) {
        fprintf(stderr, "sluice-worker: %s: %s\n", W.jobs_url ? "--jobs-redis" : "--redis", err);
        return 2;
    }
    if (W.queue == NULL || fail_ratio < 0 || fail_ratio > 1 ||
        sleep < 0 || cfg.initial_concurrency < 0 || cfg.max_concurrency < 0 ||
        cfg.initial_concurrency > POOL_MAX) {
        usage();
        return 2;
    }
    protocol_queue_key(W.key_wait, W.prefix, W.queue, PROTOCOL_LIST_WAIT);
    protocol_queue_key(W.key_active, W.prefix, W.queue, PROTOCOL_LIST_ACTIVE);
    protocol_queue_key(W.key_failed, W.prefix, W.queue, PROTOCOL_LIST_FAILED);
    if (produce_n >= 0) return produce(produce_n, sleep, fail_ratio);

    pthread_mutex_init(&W.lock, NULL);
    cfg.redis_url = W.redis_url;
    cfg.redis_password = password;
    cfg.redis_ca = ca;
    cfg.redis_cert = cert;
    cfg.redis_key = key;
    cfg.ceiling = POOL_MAX;           /* the most threads this worker can ever run */
    cfg.prefix = W.prefix;
    cfg.queue = W.queue;
    cfg.apply = apply_concurrency;
    cfg.pause = apply_pause;
    sluice_agent *agent = sluice_agent_start(&cfg, err, sizeof err);
    if (agent == NULL) {
        fprintf(stderr, "sluice-worker: %s\n", err);
        atomic_store(&W.stopping, 1);
        for (int i = 0; i < POOL_MAX; i++)
            if (W.state[i] != SLOT_EMPTY) pthread_join(W.threads[i], NULL);
        return 2;
    }
    atomic_store(&W.agent, agent);
    while (!got_signal) sleep_ms(100);
    fprintf(stderr, "sluice-worker: draining\n");
    atomic_store(&W.stopping, 1);
    for (int i = 0; i < POOL_MAX; i++)
        if (W.state[i] != SLOT_EMPTY) pthread_join(W.threads[i], NULL);
    sluice_agent_stop(agent);         /* says bye after the last job ended */
    pthread_mutex_destroy(&W.lock);
    return 0;
}
