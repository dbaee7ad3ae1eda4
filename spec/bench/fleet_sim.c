/* fleet_sim.c — a fleet of simulated workers on one event loop, for the
 * propagation, read and ingest benchmarks (spec/bench/README.md).
 *
 * Each simulated worker behaves as libsluice (agents/c/sluice.c) does on the
 * wire (shared/design/protocol.md): it holds its own Redis connection
 * subscribed to <p>:scaling, reads HGET <p>:desired <queue> once subscribed,
 * applies a newer version and answers with an "ack" report of the same JSON
 * the agent sends, and sends a "heartbeat" every --heartbeat-ms. A subscribed
 * connection cannot publish (RESP2), so reports go out through a small pool
 * of publishing connections (--pubs), shared by all workers.
 *
 * Modes (one per run):
 *   --serve S     be a fleet for S seconds (or until SIGTERM), then say bye
 *   --floor R     the floor: publish R changes straight into Redis (MULTI,
 *                 HSET <p>:desired, PUBLISH <p>:scaling, EXEC, as sluiced
 *                 does) and time each until every worker's ack came back on
 *                 <p>:reports
 *   --engine R    PUT R changes with wait_ms to sluiced (--http-port, --token)
 *                 and time each until it answers with every worker acknowledged
 *   --blast M     no per-worker connections: publish M heartbeats on behalf
 *                 of --workers ids over --queues queues, pipelined, as fast
 *                 as Redis takes them (ingest rate and resident memory)
 *
 * Queues are named --queue when --queues is 1, else <queue>0 .. <queue>K-1;
 * worker i serves queue i mod K. Results: one JSON line on stdout (bench.h).
 * Exit 0, or 1 on bad usage, 2 when a Redis connection or the run failed. */
#include "bench.h"
#include "protocol.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIM_AGENT "fleet_sim/0.2"
#define SIM_BLAST_WINDOW 2000           /* PUBLISHes in flight per connection */
#define SIM_WARM_ROUNDS 5               /* rounds run before any is timed */

enum sim_mode { SIM_NONE, SIM_SERVE, SIM_FLOOR, SIM_ENGINE, SIM_BLAST };

struct sim;

struct sim_worker {
    struct sim *sim;
    char id[PROTOCOL_WORKER_ID_MAX + 1];
    char queue[PROTOCOL_NAME_MAX + 1];
    redisAsyncContext *sub;             /* subscribed to <p>:scaling */
    struct event *beat;
    long long version;                  /* -1 until a desired state was applied */
    int concurrency;
    long long completed;
};

struct sim {
    struct event_base *base;
    enum sim_mode mode;
    const char *host, *prefix, *queue, *token;
    int port, http_port, workers, queues, pubs, rounds, seconds, heartbeat_ms, wait_ms;
    long long blast_total;
    char chan_scaling[PROTOCOL_KEY_MAX], chan_reports[PROTOCOL_KEY_MAX], key_desired[PROTOCOL_KEY_MAX];
    char hostname[65];

    struct sim_worker *w;
    redisAsyncContext **pub;            /* reports of every worker, round-robin */
    redisAsyncContext *ctl;             /* the simulator's own commands */
    redisAsyncContext *reports;         /* floor: subscribed to <p>:reports */
    struct evhttp_connection *http;     /* engine: to sluiced */
    struct event *deadline, *sigterm;
    int subscribed, pending_reads, byes_pending, failed;

    /* one change at a time */
    int round, warm_done;
    long long changes, version, t0_us, acked, incomplete;
    struct bench_samples lat;

    /* blast */
    long long blast_sent, blast_answered, blast_t0_us;
    int *in_flight;
};

static void sim_fail(struct sim *s, const char *what, const char *detail) {
    fprintf(stderr, "fleet_sim: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    s->failed = 1;
    event_base_loopbreak(s->base);
}

static long long sim_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Redis connections -------------------------------------------------------- */

static void sim_on_connect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) sim_fail(ac->data, "cannot connect to redis", ac->errstr);
}

static void sim_on_disconnect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) sim_fail(ac->data, "redis connection lost", ac->errstr);
}

/* A connection on the loop whose callbacks report to s. NULL (and s failed)
 * when it cannot be made. */
static redisAsyncContext *sim_connect(struct sim *s) {
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (ac == NULL || ac->err) {
        sim_fail(s, "cannot connect to redis", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, sim_on_connect);
    redisAsyncSetDisconnectCallback(ac, sim_on_disconnect);
    return ac;
}

/* ---- one worker, as libsluice ------------------------------------------------- */

static redisAsyncContext *sim_pub_of(struct sim_worker *w) {
    struct sim *s = w->sim;
    return s->pub[(size_t)(w - s->w) % (size_t)s->pubs];
}

/* Publish a report of w with the fields and spelling of agent_report. */
static void sim_report(struct sim_worker *w, const char *event, redisCallbackFn *done) {
    struct sim *s = w->sim;
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:i, s:s, s:s, s:I, s:i, s:o}", "event",
                          event, "worker", w->id, "queue", w->queue, "concurrency", w->concurrency, "version",
                          (json_int_t)(w->version < 0 ? 0 : w->version), "active", (json_int_t)0,
                          "completed", (json_int_t)w->completed, "failed", (json_int_t)0, "pid",
                          (int)getpid(), "host", s->hostname, "agent", SIM_AGENT, "ts",
                          (json_int_t)sim_wall_ms(), "interval_ms", s->heartbeat_ms, "error", json_null());
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text) redisAsyncCommand(sim_pub_of(w), done, s, "PUBLISH %s %s", s->chan_reports, text);
    free(text);
    json_decref(j);
}

/* Apply a desired state if it is for w's queue and newer, then ack it. */
static void sim_consider(struct sim_worker *w, const char *payload, size_t len) {
    json_error_t jerr;
    json_t *j = json_loadb(payload, len, 0, &jerr);
    json_t *q = json_object_get(j, "queue"), *n = json_object_get(j, "concurrency"),
           *v = json_object_get(j, "version");
    if (!json_is_string(q) || strcmp(json_string_value(q), w->queue) != 0) goto done;
    if (!json_is_integer(n) || !json_is_integer(v) || json_integer_value(v) <= w->version) goto done;
    w->version = json_integer_value(v);
    w->concurrency = (int)json_integer_value(n);
    sim_report(w, "ack", NULL);
done:
    json_decref(j);
}

static void sim_on_beat(evutil_socket_t fd, short what, void *arg) {
    struct sim_worker *w = arg;
    struct timeval every = {w->sim->heartbeat_ms / 1000, (w->sim->heartbeat_ms % 1000) * 1000};
    (void)fd;
    (void)what;
    w->completed += 10;
    sim_report(w, "heartbeat", NULL);
    event_add(w->beat, &every);
}

static void sim_read_desired(struct sim *s);
static void sim_run(struct sim *s);

static void sim_on_scaling(redisAsyncContext *ac, void *reply, void *arg) {
    struct sim_worker *w = arg;
    redisReply *m = reply;
    (void)ac;
    if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(m->element[0]->str, "subscribe") == 0) {
        if (++w->sim->subscribed == w->sim->workers) sim_read_desired(w->sim);
    } else if (strcmp(m->element[0]->str, "message") == 0 && m->element[2]->type == REDIS_REPLY_STRING) {
        sim_consider(w, m->element[2]->str, m->element[2]->len);
    }
}

/* ---- the rounds: one change at a time ------------------------------------------- */

static void sim_round_start(struct sim *s);

/* A change was seen through. Time it unless warming up, then start the next
 * or end the run. */
static void sim_round_done(struct sim *s, int complete) {
    long long us = bench_now_us() - s->t0_us;
    if (s->warm_done) {
        bench_samples_add(&s->lat, us);
        if (!complete) s->incomplete++;
        if ((int)s->lat.n >= s->rounds) {
            event_base_loopbreak(s->base);
            return;
        }
    } else if (++s->round >= SIM_WARM_ROUNDS && complete) {
        s->warm_done = 1;
    }
    sim_round_start(s);
}

static void sim_on_report(redisAsyncContext *ac, void *reply, void *arg) {
    struct sim *s = arg;
    redisReply *m = reply;
    (void)ac;
    if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(m->element[0]->str, "subscribe") == 0) {
        sim_run(s);                     /* the floor's listener is the last thing it waits for */
        return;
    }
    json_error_t jerr;
    json_t *j = json_loadb(m->element[2]->str, m->element[2]->len, 0, &jerr);
    json_t *ev = json_object_get(j, "event"), *v = json_object_get(j, "version");
    if (json_is_string(ev) && strcmp(json_string_value(ev), "ack") == 0 &&
        json_is_integer(v) && json_integer_value(v) == s->version && ++s->acked == s->workers) {
        sim_round_done(s, 1);
    }
    json_decref(j);
}

static void sim_on_put(struct evhttp_request *req, void *arg) {
    struct sim *s = arg;
    char body[8192];
    json_error_t jerr;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code != 200) {
        char detail[300];
        snprintf(detail, sizeof detail, "HTTP %d %.200s", code, bench_http_body(req, body, sizeof body));
        sim_fail(s, "PUT failed", detail);
        return;
    }
    json_t *j = json_loads(bench_http_body(req, body, sizeof body), 0, &jerr);
    json_t *acks = json_object_get(j, "acks");
    int complete = json_is_true(json_object_get(acks, "complete")) &&
                   json_integer_value(json_object_get(acks, "expected")) == s->workers;
    json_decref(j);
    sim_round_done(s, complete);
}

static void sim_round_start(struct sim *s) {
    char body[256];
    int concurrency = 8 + (int)(s->changes++ % 2);      /* always a change: the version moves */
    s->acked = 0;
    s->t0_us = bench_now_us();
    if (s->mode == SIM_FLOOR) {
        s->version++;
        snprintf(body, sizeof body, "{\"queue\":\"%s\",\"concurrency\":%d,\"version\":%lld,\"at\":\"%lld\"}",
                 s->queue, concurrency, s->version, sim_wall_ms());
        redisAsyncCommand(s->ctl, NULL, NULL, "MULTI");
        redisAsyncCommand(s->ctl, NULL, NULL, "HSET %s %s %s", s->key_desired, s->queue, body);
        redisAsyncCommand(s->ctl, NULL, NULL, "PUBLISH %s %s", s->chan_scaling, body);
        redisAsyncCommand(s->ctl, NULL, NULL, "EXEC");
    } else {
        char path[PROTOCOL_NAME_MAX + 32];
        snprintf(path, sizeof path, "/api/v1/scaling/%s", s->queue);
        snprintf(body, sizeof body, "{\"desired_concurrency\":%d,\"reason\":\"bench round %lld\",\"wait_ms\":%d}",
                 concurrency, s->changes, s->wait_ms);
        if (bench_http_send(s->http, EVHTTP_REQ_PUT, path, s->token, body, sim_on_put, s) != 0)
            sim_fail(s, "cannot send a PUT", NULL);
    }
}

/* ---- starting: subscribe, read the desired state, then the mode ----------------- */

static void sim_on_desired(redisAsyncContext *ac, void *reply, void *arg) {
    struct sim *s = arg;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_STRING) {
        for (int i = 0; i < s->workers; i++) sim_consider(&s->w[i], r->str, r->len);
        json_error_t jerr;
        json_t *j = json_loadb(r->str, r->len, 0, &jerr);
        long long v = json_integer_value(json_object_get(j, "version"));
        if (v > s->version) s->version = v;     /* the floor goes on from there */
        json_decref(j);
    }
    if (--s->pending_reads > 0) return;
    if (s->mode != SIM_FLOOR) {
        sim_run(s);
        return;
    }
    s->reports = sim_connect(s);
    if (s->reports) redisAsyncCommand(s->reports, sim_on_report, s, "SUBSCRIBE %s", s->chan_reports);
}

/* Every worker is subscribed: as the agent does after subscribing, read the
 * hash (once per queue, for all of its workers). */
static void sim_read_desired(struct sim *s) {
    s->pending_reads = s->queues;
    for (int q = 0; q < s->queues; q++)
        redisAsyncCommand(s->ctl, sim_on_desired, s, "HGET %s %s", s->key_desired, s->w[q].queue);
}

static void sim_run(struct sim *s) {
    srand((unsigned)getpid());
    for (int i = 0; i < s->workers; i++) {     /* heartbeats spread over one interval */
        long ms = rand() % s->heartbeat_ms;
        struct timeval first = {ms / 1000, (ms % 1000) * 1000};
        event_add(s->w[i].beat, &first);
    }
    if (s->mode == SIM_SERVE) {
        printf("{\"mode\":\"serve\",\"workers\":%d,\"queues\":%d,\"ready\":true}\n", s->workers, s->queues);
        fflush(stdout);
    } else {
        sim_round_start(s);
    }
}

/* ---- blast: reports of many worker ids through a few connections --------------- */

static void sim_queue_name(const struct sim *s, int worker, char out[PROTOCOL_NAME_MAX + 1]) {
    if (s->queues == 1) snprintf(out, PROTOCOL_NAME_MAX + 1, "%s", s->queue);
    else snprintf(out, PROTOCOL_NAME_MAX + 1, "%.50s%d", s->queue, worker % s->queues);
}

static void sim_blast_fill(struct sim *s, int conn);

static void sim_on_blasted(redisAsyncContext *ac, void *reply, void *arg) {
    struct sim *s = ac->data;
    int conn = (int)((int *)arg - s->in_flight);
    if (reply == NULL) return;
    s->in_flight[conn]--;
    if (++s->blast_answered == s->blast_total) {
        double sec = (double)(bench_now_us() - s->blast_t0_us) / 1e6;
        printf("{\"mode\":\"blast\",\"reports\":%lld,\"workers\":%d,\"queues\":%d,\"seconds\":%.3f,"
               "\"reports_per_s\":%.0f}\n",
               s->blast_total, s->workers, s->queues, sec, (double)s->blast_total / sec);
        event_base_loopbreak(s->base);
    } else if (s->in_flight[conn] < SIM_BLAST_WINDOW / 2) {
        sim_blast_fill(s, conn);
    }
}

/* Heartbeats of worker k mod N, each round with a larger "completed", in
 * the agent's field order; interval_ms is the longest allowed so that no
 * worker goes stale while the engine catches up. */
static void sim_blast_fill(struct sim *s, int conn) {
    char buf[640], queue[PROTOCOL_NAME_MAX + 1];
    while (s->in_flight[conn] < SIM_BLAST_WINDOW && s->blast_sent < s->blast_total) {
        long long k = s->blast_sent++;
        int worker = (int)(k % s->workers);
        sim_queue_name(s, worker, queue);
        int len = snprintf(buf, sizeof buf,
                           "{\"event\":\"heartbeat\",\"worker\":\"blast-%d\",\"queue\":\"%s\",\"concurrency\":4,"
                           "\"version\":0,\"active\":1,\"completed\":%lld,\"failed\":0,\"pid\":%d,\"host\":\"%s\","
                           "\"agent\":\"%s\",\"ts\":%lld,\"interval_ms\":60000,\"error\":null}",
                           worker, queue, 10 * (k / s->workers), (int)getpid(), s->hostname, SIM_AGENT,
                           sim_wall_ms());
        redisAsyncCommand(s->pub[conn], sim_on_blasted, &s->in_flight[conn], "PUBLISH %s %b",
                          s->chan_reports, buf, (size_t)len);
        s->in_flight[conn]++;
    }
}

/* ---- main -------------------------------------------------------------------------- */

static void sim_on_bye(redisAsyncContext *ac, void *reply, void *arg) {
    struct sim *s = arg;
    (void)ac;
    (void)reply;
    if (--s->byes_pending == 0) event_base_loopbreak(s->base);
}

static void sim_on_stop(evutil_socket_t fd, short what, void *arg) {
    struct sim *s = arg;
    (void)fd;
    (void)what;
    if (s->mode != SIM_SERVE && !s->failed && s->byes_pending == 0) sim_fail(s, "timed out", NULL);
    event_base_loopbreak(s->base);
}

static int sim_usage(void) {
    fprintf(stderr,
            "usage: fleet_sim --redis-port P [--redis-host H] [--prefix sluice] [--queue Q] [--queues K]\n"
            "                 [--workers N] [--pubs 8] [--heartbeat-ms 1000] [--seconds LIMIT]\n"
            "                 (--serve S | --floor R | --engine R --http-port H --token T [--wait-ms 5000]\n"
            "                  | --blast M)\n");
    return 1;
}

/* Make the workers (connections subscribing) or, for a blast, start it. */
static int sim_start(struct sim *s) {
    s->pub = calloc((size_t)s->pubs, sizeof *s->pub);
    s->in_flight = calloc((size_t)s->pubs, sizeof *s->in_flight);
    if (s->pub == NULL || s->in_flight == NULL) return -1;
    for (int i = 0; i < s->pubs; i++)
        if ((s->pub[i] = sim_connect(s)) == NULL) return -1;
    if (s->mode == SIM_BLAST) {
        s->blast_t0_us = bench_now_us();
        for (int i = 0; i < s->pubs; i++) sim_blast_fill(s, i);
        return 0;
    }
    if ((s->ctl = sim_connect(s)) == NULL) return -1;
    if (s->mode == SIM_ENGINE) {
        s->http = evhttp_connection_base_new(s->base, NULL, "127.0.0.1", (unsigned short)s->http_port);
        if (s->http == NULL) return -1;
        evhttp_connection_set_timeout(s->http, s->wait_ms / 1000 + 30);
    }
    s->w = calloc((size_t)s->workers, sizeof *s->w);
    if (s->w == NULL) return -1;
    for (int i = 0; i < s->workers; i++) {
        struct sim_worker *w = &s->w[i];
        w->sim = s;
        w->version = -1;
        sim_queue_name(s, i, w->queue);
        snprintf(w->id, sizeof w->id, "%s-w%d", w->queue, i);
        if ((w->beat = evtimer_new(s->base, sim_on_beat, w)) == NULL) return -1;
        if ((w->sub = sim_connect(s)) == NULL) return -1;
        redisAsyncCommand(w->sub, sim_on_scaling, w, "SUBSCRIBE %s", s->chan_scaling);
    }
    return 0;
}

static void sim_print_rounds(struct sim *s) {
    printf("{\"mode\":\"%s\",\"workers\":%d,\"queue\":\"%s\",", s->mode == SIM_FLOOR ? "floor" : "engine",
           s->workers, s->queue);
    bench_samples_print(&s->lat, stdout);
    printf(",\"incomplete\":%lld}\n", s->incomplete);
}

/* Leave the fleet at once, as the agent does on a clean stop. */
static void sim_say_bye(struct sim *s) {
    struct timeval limit = {3, 0};
    if (s->w == NULL || s->failed) return;
    s->byes_pending = s->workers;
    for (int i = 0; i < s->workers; i++) {
        evtimer_del(s->w[i].beat);
        sim_report(&s->w[i], "bye", sim_on_bye);
    }
    evtimer_add(s->deadline, &limit);
    event_base_dispatch(s->base);
}

int main(int argc, char **argv) {
    struct sim s = {.host = "127.0.0.1", .prefix = PROTOCOL_DEFAULT_PREFIX, .queue = "bench", .queues = 1,
                    .workers = 100, .pubs = 8, .heartbeat_ms = 1000, .seconds = 120, .wait_ms = 5000,
                    .mode = SIM_NONE};
    int rc = 2;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) return sim_usage();
        if (strcmp(a, "--redis-host") == 0) s.host = v;
        else if (strcmp(a, "--redis-port") == 0) s.port = atoi(v);
        else if (strcmp(a, "--prefix") == 0) s.prefix = v;
        else if (strcmp(a, "--queue") == 0) s.queue = v;
        else if (strcmp(a, "--queues") == 0) s.queues = atoi(v);
        else if (strcmp(a, "--workers") == 0) s.workers = atoi(v);
        else if (strcmp(a, "--pubs") == 0) s.pubs = atoi(v);
        else if (strcmp(a, "--heartbeat-ms") == 0) s.heartbeat_ms = atoi(v);
        else if (strcmp(a, "--seconds") == 0) s.seconds = atoi(v);
        else if (strcmp(a, "--http-port") == 0) s.http_port = atoi(v);
        else if (strcmp(a, "--token") == 0) s.token = v;
        else if (strcmp(a, "--wait-ms") == 0) s.wait_ms = atoi(v);
        else if (strcmp(a, "--serve") == 0) s.mode = SIM_SERVE, s.seconds = atoi(v);
        else if (strcmp(a, "--floor") == 0) s.mode = SIM_FLOOR, s.rounds = atoi(v);
        else if (strcmp(a, "--engine") == 0) s.mode = SIM_ENGINE, s.rounds = atoi(v);
        else if (strcmp(a, "--blast") == 0) s.mode = SIM_BLAST, s.blast_total = atoll(v);
        else return sim_usage();
    }
    if (s.mode == SIM_NONE || s.port <= 0 || s.workers < 1 || s.queues < 1 || s.pubs < 1 || s.seconds < 1 ||
        s.heartbeat_ms < 50 || !protocol_valid_name(s.prefix) || strlen(s.queue) > 50 ||
        (s.mode != SIM_SERVE && s.mode != SIM_BLAST && (s.rounds < 1 || s.queues != 1)) ||
        (s.mode == SIM_ENGINE && (s.http_port <= 0 || s.token == NULL)) ||
        (s.mode == SIM_BLAST && s.blast_total < 1) || (s.mode != SIM_BLAST && s.queues > s.workers))
        return sim_usage();

    bench_raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    protocol_key(s.chan_scaling, s.prefix, PROTOCOL_SCALING);
    protocol_key(s.chan_reports, s.prefix, PROTOCOL_REPORTS);
    protocol_key(s.key_desired, s.prefix, PROTOCOL_DESIRED);
    if (gethostname(s.hostname, sizeof s.hostname - 1) != 0) strcpy(s.hostname, "unknown");
    for (char *h = s.hostname; *h; h++)
        if (!protocol_name_char(*h)) *h = '-';

    struct timeval limit = {s.seconds, 0};
    s.base = event_base_new();
    if (s.base == NULL) goto done;
    s.deadline = evtimer_new(s.base, sim_on_stop, &s);
    s.sigterm = evsignal_new(s.base, SIGTERM, sim_on_stop, &s);
    if (s.deadline == NULL || s.sigterm == NULL || evtimer_add(s.deadline, &limit) != 0 ||
        evsignal_add(s.sigterm, NULL) != 0)
        goto done;
    if (sim_start(&s) != 0) {
        if (!s.failed) fprintf(stderr, "fleet_sim: out of memory or sockets\n");
        goto done;
    }
    event_base_dispatch(s.base);
    if (!s.failed && (s.mode == SIM_FLOOR || s.mode == SIM_ENGINE)) sim_print_rounds(&s);
    rc = s.failed ? 2 : 0;
    sim_say_bye(&s);
done:
    fflush(stdout);
    /* Sockets and memory go with the process: freeing 1,000 contexts one by
     * one would only slow the benchmark's end. */
    return rc;
}
