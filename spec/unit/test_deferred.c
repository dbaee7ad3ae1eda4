/* test_deferred.c — answers that are not ready when the handler returns,
 * through a real server on 127.0.0.1: a wait_ms answer completed from
 * another thread or at its deadline, the HTTP thread left free meanwhile,
 * stream caps answered over HTTP, and a shutdown that answers everything
 * suspended instead of hanging. */
#include "unit.h"
#include "deferred.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- plans, without a server ------------------------------------------------------ */

static json_t *first_event(void *ud) {
    (void)ud;
    return json_pack("{s:s}", "kind", "first");
}

TEST(plans_take_only_the_answers_they_fit) {
    struct deferred_plan plan;
    struct deferred_sources src = {NULL, NULL, first_event, NULL, NULL};
    struct http_request req;
    struct http_response resp;
    json_t *body = json_pack("{s:i}", "x", 1), *list = json_array();
    memset(&plan, 0, sizeof plan);
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    EXPECT_INT(deferred_answer(&plan, &src, &req, &resp, 200, &body, ""), 0);
    deferred_plan_wait(&plan, "q", 2, 100);
    EXPECT_INT(plan.kind, DEFERRED_WAIT);
    EXPECT_INT(deferred_answer(&plan, &src, &req, &resp, 201, &body, ""), 0);
    EXPECT_INT(deferred_answer(&plan, &src, &req, &resp, 200, &list, ""), 0);
    EXPECT(body != NULL && list != NULL && resp.status == 0);
    deferred_plan_stream(&plan);
    EXPECT_INT(plan.kind, DEFERRED_STREAM);
    deferred_plan_wait(&plan, "q", 3, 100);      /* a stream would take the answer first */
    EXPECT_INT(plan.kind, DEFERRED_STREAM);
    EXPECT_INT(deferred_answer(&plan, &src, &req, &resp, 404, &body, ""), 0);
    EXPECT(body != NULL && resp.status == 0);
    json_decref(body);
    json_decref(list);
}

/* ---- a live server ----------------------------------------------------------------- */

struct rig {
    http_server *srv;
    fleet *fl;
    events *ev;
    atomic_int held;             /* wait answers the handler deferred */
};

/* /wait/<version>/<wait_ms>: {"ok":true} held for version of "q" (with an
 * X-Held header); /stream: an event stream for the X-Owner header; anything
 * else: {"plain":true}. */
static void rig_handler(void *ud, struct http_request *req, struct http_response *resp) {
    struct rig *r = ud;
    struct deferred_sources src = {r->fl, r->ev, first_event, NULL, NULL};
    struct deferred_plan plan;
    long version, wait_ms;
    json_t *body = json_pack("{s:b}", "ok", 1);
    memset(&plan, 0, sizeof plan);
    if (sscanf(req->path, "/wait/%ld/%ld", &version, &wait_ms) == 2) {
        http_add_header(resp, "X-Held", "yes");
        deferred_plan_wait(&plan, "q", version, wait_ms);
    } else if (strcmp(req->path, "/stream") == 0) {
        deferred_plan_stream(&plan);
    } else {
        json_decref(body);
        body = json_pack("{s:b}", "plain", 1);
    }
    const char *owner = http_header(req, "X-Owner");
    if (deferred_answer(&plan, &src, req, resp, 200, &body, owner ? owner : "")) {
        if (plan.kind == DEFERRED_WAIT) atomic_fetch_add(&r->held, 1);
        return;
    }
    http_respond_json(resp, 200, body);
}

static int rig_start(struct rig *r, int threads, int max_streams, int per_owner) {
    char err[256];
    memset(r, 0, sizeof *r);
    r->fl = fleet_new();
    r->ev = events_new(max_streams, per_owner);
    struct http_options opt = {.host = "127.0.0.1", .port = 0, .threads = threads, .max_body = 1024,
                               .conn_limit = 16, .per_ip_limit = 16, .conn_timeout_s = 10,
                               .ui_dir = NULL, .handler = rig_handler, .handler_ud = r};
    r->srv = http_start(&opt, err, sizeof err);
    return r->srv && r->fl && r->ev ? 0 : -1;
}

/* The order sluiced stops in: nothing may be left suspended for http_stop. */
static void rig_stop(struct rig *r) {
    deferred_shutdown(r->srv, r->ev, r->fl);
    http_stop(r->srv);
    events_free(r->ev);
    fleet_free(r->fl);
}

/* Worker w1 of "q" runs version (version 2 is issued). */
static void worker_at(fleet *fl, int version) {
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"event\":\"ack\",\"worker\":\"w1\",\"queue\":\"q\",\"concurrency\":4,"
                     "\"version\":%d,\"interval_ms\":10000}", version);
    fleet_issued(fl, "q", 2);
    fleet_report(fl, buf, (size_t)n, util_mono_ms());
}

static int dial(const struct rig *r) { return unit_dial(http_port(r->srv), 5); }

static void send_get(int fd, const char *path, const char *extra, int keep_alive) {
    char raw[512];
    int n = snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n%s\r\n", path,
                     keep_alive ? "keep-alive" : "close", extra ? extra : "");
    if (send(fd, raw, (size_t)n, 0) != n) UNIT_FAIL("send failed");
}

/* Read until the server closes (or 5 s pass); malloc'd text. */
static char *read_to_end(int fd) {
    size_t used = 0, cap = 65536;
    char *buf = malloc(cap);
    for (ssize_t n; used + 1 < cap && (n = recv(fd, buf + used, cap - used - 1, 0)) > 0;)
        used += (size_t)n;
    buf[used] = '\0';
    close(fd);
    return buf;
}

/* Read one answer with a Content-Length from a connection that stays open. */
static char *read_answer(int fd) {
    size_t used = 0, cap = 65536;
    char *buf = malloc(cap);
    buf[0] = '\0';
    for (ssize_t n; used + 1 < cap && (n = recv(fd, buf + used, cap - used - 1, 0)) > 0;) {
        used += (size_t)n;
        buf[used] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
        if (end && cl && used >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10)) break;
    }
    return buf;
}

static char *get(const struct rig *r, const char *path, const char *extra) {
    int fd = dial(r);
    if (fd < 0) return NULL;
    send_get(fd, path, extra, 0);
    return read_to_end(fd);
}

static int status_of(const char *resp) {
    int status = 0;
    return resp && sscanf(resp, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* The "acks" of an answer's JSON body, as "expected/acknowledged/complete". */
static const char *acks_of(const char *resp, char out[64]) {
    const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;
    json_t *body = b ? json_loads(b + 4, 0, NULL) : NULL;
    json_t *acks = json_object_get(body, "acks");
    snprintf(out, 64, "%lld/%lld/%s", (long long)json_integer_value(json_object_get(acks, "expected")),
             (long long)json_integer_value(json_object_get(acks, "acknowledged")),
             json_is_true(json_object_get(acks, "complete")) ? "true" : "false");
    if (!json_is_true(json_object_get(body, "ok"))) out[0] = '\0';
    json_decref(body);
    return out;
}

static void wait_for(atomic_int *n, int value) {
    for (int i = 0; i < 500 && atomic_load(n) < value; i++) usleep(10 * 1000);
}

/* What bus.c's subscriber does with a report: apply it, end the waits it completes. */
static void *report_ack(void *arg) {
    fleet *fl = arg;
    worker_at(fl, 2);
    fleet_check_waiters(fl, util_mono_ms(), 0);
    return NULL;
}

TEST(a_held_answer_is_completed_from_another_thread_and_frees_the_http_thread) {
    struct rig r;
    char acks[64];
    pthread_t reporter;
    ASSERT(rig_start(&r, 1, 4, 4) == 0);
    worker_at(r.fl, 1);
    int fd = dial(&r);
    ASSERT(fd >= 0);
    send_get(fd, "/wait/2/10000", NULL, 0);
    wait_for(&r.held, 1);
    EXPECT_INT(atomic_load(&r.held), 1);
    /* One pool thread, and it serves others while the answer is held. */
    char *plain = get(&r, "/plain", NULL);
    EXPECT_INT(status_of(plain), 200);
    EXPECT_CONTAINS(plain, "\"plain\":true");
    free(plain);
    int64_t t0 = util_mono_ms();
    pthread_create(&reporter, NULL, report_ack, r.fl);
    char *answer = read_to_end(fd);
    pthread_join(reporter, NULL);
    EXPECT(util_mono_ms() - t0 < 3000);
    EXPECT_INT(status_of(answer), 200);
    EXPECT_CONTAINS(answer, "X-Held: yes");
    EXPECT_STR(acks_of(answer, acks), "1/1/true");
    free(answer);
    rig_stop(&r);
}

struct ticker {
    fleet *fl;
    atomic_int stop;
};

/* What sluiced's ticker does every step. */
static void *tick(void *arg) {
    struct ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        fleet_check_waiters(t->fl, util_mono_ms(), 0);
        usleep(20 * 1000);
    }
    return NULL;
}

TEST(a_held_answer_goes_out_at_its_deadline_without_the_ack) {
    struct rig r;
    struct ticker t;
    char acks[64];
    pthread_t th;
    ASSERT(rig_start(&r, 2, 4, 4) == 0);
    worker_at(r.fl, 1);
    t.fl = r.fl;
    atomic_store(&t.stop, 0);
    pthread_create(&th, NULL, tick, &t);
    int64_t t0 = util_mono_ms();
    char *answer = get(&r, "/wait/2/300", NULL);
    int64_t took = util_mono_ms() - t0;
    atomic_store(&t.stop, 1);
    pthread_join(th, NULL);
    EXPECT(took >= 300 && took < 3000);
    EXPECT_INT(status_of(answer), 200);
    EXPECT_STR(acks_of(answer, acks), "1/0/false");
    free(answer);
    rig_stop(&r);
}

TEST(with_no_live_worker_the_answer_goes_out_at_once) {
    struct rig r;
    char acks[64];
    ASSERT(rig_start(&r, 2, 4, 4) == 0);
    int64_t t0 = util_mono_ms();
    char *answer = get(&r, "/wait/2/10000", NULL);
    EXPECT(util_mono_ms() - t0 < 2000);
    EXPECT_STR(acks_of(answer, acks), "0/0/true");
    free(answer);
    rig_stop(&r);
}

TEST(streams_are_capped_per_owner_and_in_all_over_http) {
    static const char *const owners[] = {"X-Owner: a\r\n", "X-Owner: b\r\n", "X-Owner: c\r\n"};
    struct rig r;
    int fds[3];
    ASSERT(rig_start(&r, 2, 3, 1) == 0);
    for (int i = 0; i < 2; i++) {
        ASSERT((fds[i] = dial(&r)) >= 0);
        send_get(fds[i], "/stream", owners[i], 0);
    }
    for (int i = 0; i < 500 && events_count(r.ev) < 2; i++) usleep(10 * 1000);
    EXPECT_INT(events_count(r.ev), 2);
    char *again = get(&r, "/stream", owners[0]);
    EXPECT_INT(status_of(again), 429);
    EXPECT_CONTAINS(again, "too_many_streams");
    free(again);
    ASSERT((fds[2] = dial(&r)) >= 0);
    send_get(fds[2], "/stream", owners[2], 0);
    for (int i = 0; i < 500 && events_count(r.ev) < 3; i++) usleep(10 * 1000);
    char *full = get(&r, "/stream", "X-Owner: d\r\n");
    EXPECT_INT(status_of(full), 503);
    EXPECT_CONTAINS(full, "too_many_streams");
    free(full);
    events_close_all(r.ev);
    for (int i = 0; i < 3; i++) {
        char *s = read_to_end(fds[i]);
        EXPECT_INT(status_of(s), 200);
        EXPECT_CONTAINS(s, "text/event-stream");
        EXPECT_CONTAINS(s, "event: snapshot\ndata: {\"kind\":\"first\"}\n\n");
        free(s);
    }
    rig_stop(&r);
}

TEST(shutdown_answers_what_is_suspended_and_what_comes_after) {
    struct rig r;
    char acks[64];
    ASSERT(rig_start(&r, 2, 4, 4) == 0);
    worker_at(r.fl, 1);
    int held = dial(&r), stream = dial(&r), open = dial(&r);
    ASSERT(held >= 0 && stream >= 0 && open >= 0);
    send_get(held, "/wait/2/30000", NULL, 0);
    send_get(stream, "/stream", NULL, 0);
    send_get(open, "/plain", NULL, 1);           /* a keep-alive connection, still open */
    char *first = read_answer(open);
    EXPECT_INT(status_of(first), 200);
    free(first);
    wait_for(&r.held, 1);
    for (int i = 0; i < 500 && events_count(r.ev) < 1; i++) usleep(10 * 1000);

    int64_t t0 = util_mono_ms();
    deferred_shutdown(r.srv, r.ev, r.fl);
    EXPECT(util_mono_ms() - t0 < DEFERRED_DRAIN_MS);
    EXPECT_INT(events_count(r.ev), 0);
    char *answer = read_to_end(held);
    EXPECT_INT(status_of(answer), 200);
    EXPECT_STR(acks_of(answer, acks), "1/0/false");
    free(answer);
    char *ended = read_to_end(stream);
    EXPECT_CONTAINS(ended, "event: snapshot");
    free(ended);

    /* Later requests on the open connection are answered, never held. */
    send_get(open, "/wait/2/30000", NULL, 1);
    char *late = read_answer(open);
    EXPECT_STR(acks_of(late, acks), "1/0/false");
    free(late);
    send_get(open, "/stream", NULL, 0);
    char *refused = read_to_end(open);
    EXPECT_INT(status_of(refused), 503);
    EXPECT_CONTAINS(refused, "too_many_streams");
    free(refused);
    rig_stop(&r);                                /* would abort with a connection suspended */
}

int main(void) {
    log_set_level(LOG_ERROR);
    RUN(plans_take_only_the_answers_they_fit);
    RUN(a_held_answer_is_completed_from_another_thread_and_frees_the_http_thread);
    RUN(a_held_answer_goes_out_at_its_deadline_without_the_ack);
    RUN(with_no_live_worker_the_answer_goes_out_at_once);
    RUN(streams_are_capped_per_owner_and_in_all_over_http);
    RUN(shutdown_answers_what_is_suspended_and_what_comes_after);
    return UNIT_DONE();
}
