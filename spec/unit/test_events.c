/* test_events.c — the SSE stream registry: caps in all and per owner, the
 * slow-reader rule on a stream read directly, and over a real server on
 * 127.0.0.1 a stream that sleeps, wakes on broadcasts from another thread,
 * ends on events_close_all, and is cut off when its client stops reading. */
#include "unit.h"
#include "events.h"
#include "health.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- the registry, read directly ---------------------------------------------------- */

/* Open a stream into resp for owner; the snapshot is {"n":0}. */
static int open_for(events *ev, struct http_response *resp, const char *owner) {
    json_t *first = json_pack("{s:i}", "n", 0);
    memset(resp, 0, sizeof *resp);
    int rc = events_open(ev, resp, first, owner);
    json_decref(first);
    return rc;
}

/* What http.c does when the connection is gone. */
static void close_stream(struct http_response *resp) {
    resp->stream.done(resp->stream.cls);
    http_response_clear(resp);
}

/* Everything a stream has buffered, as its connection would read it, until
 * it says idle or end; returns the end marker and the text in out. */
static long drain(struct http_response *resp, char *out, size_t size, size_t *total) {
    char buf[4096];
    long n;
    *total = 0;
    while ((n = resp->stream.read(resp->stream.cls, NULL, buf, sizeof buf)) > 0) {
        if (out && *total + (size_t)n < size) memcpy(out + *total, buf, (size_t)n);
        *total += (size_t)n;
    }
    if (out) out[*total < size ? *total : size - 1] = '\0';
    return n;
}

TEST(streams_are_capped_per_owner_and_in_all) {
    events *ev = events_new(3, 2);
    struct http_response r[5];
    EXPECT_INT(open_for(ev, &r[0], "a"), 0);
    EXPECT_INT(open_for(ev, &r[1], "a"), 0);
    EXPECT_INT(open_for(ev, &r[2], "a"), -2);
    EXPECT(r[2].stream.read == NULL && r[2].status == 0);   /* untouched */
    EXPECT_INT(open_for(ev, &r[3], "b"), 0);
    EXPECT_INT(open_for(ev, &r[4], "c"), -1);
    EXPECT_INT(events_count(ev), 3);
    EXPECT_INT(r[0].status, 200);
    EXPECT_CONTAINS(r[0].content_type, "text/event-stream");
    close_stream(&r[0]);
    EXPECT_INT(events_count(ev), 2);
    EXPECT_INT(open_for(ev, &r[4], "c"), 0);
    events_close_all(ev);
    EXPECT_INT(open_for(ev, &r[2], "d"), -1);             /* shutdown began: none opens */
    close_stream(&r[1]);
    close_stream(&r[3]);
    close_stream(&r[4]);
    EXPECT_INT(events_count(ev), 0);
    events_free(ev);
}

/* A string event of about n bytes. */
static json_t *big(size_t n) {
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = '\0';
    json_t *v = json_pack("{s:s}", "pad", s);
    free(s);
    return v;
}

TEST(a_reader_that_falls_behind_is_cut_off_after_what_it_holds) {
    events *ev = events_new(4, 4);
    struct http_response slow, fast;
    char text[512];
    size_t total = 0;
    json_t *half = big(EVENTS_BUFFER_MAX / 2 + 1000), *huge = big(EVENTS_BUFFER_MAX * 2);
    ASSERT(open_for(ev, &slow, "a") == 0 && open_for(ev, &fast, "a") == 0);
    EXPECT_INT(drain(&fast, text, sizeof text, &total), HTTP_STREAM_IDLE);
    EXPECT_CONTAINS(text, "event: snapshot\ndata: {\"n\":0}\n\n");
    events_broadcast(ev, "change", half);        /* slow holds it with the snapshot */
    EXPECT_INT(drain(&fast, NULL, 0, &total), HTTP_STREAM_IDLE);
    events_broadcast(ev, "change", half);        /* more than the cap: slow is cut off */
    EXPECT_INT(drain(&fast, NULL, 0, &total), HTTP_STREAM_IDLE);
    events_broadcast(ev, "change", huge);        /* an empty buffer takes any one event */
    EXPECT_INT(drain(&fast, NULL, 0, &total), HTTP_STREAM_IDLE);
    EXPECT(total > (size_t)EVENTS_BUFFER_MAX * 2);
    /* The slow one sends what it held when cut off, then ends. */
    EXPECT_INT(drain(&slow, NULL, 0, &total), HTTP_STREAM_END);
    EXPECT(total > (size_t)EVENTS_BUFFER_MAX / 2 && total < (size_t)EVENTS_BUFFER_MAX);
    events_ping(ev);
    EXPECT_INT(drain(&fast, text, sizeof text, &total), HTTP_STREAM_IDLE);
    EXPECT_STR(text, ": ping\n\n");
    close_stream(&slow);
    close_stream(&fast);
    json_decref(half);
    json_decref(huge);
    events_free(ev);
}

/* ---- over a real server --------------------------------------------------------------- */

static events *live;

static void stream_handler(void *ud, struct http_request *req, struct http_response *resp) {
    (void)ud;
    json_t *first = json_pack("{s:i}", "n", 0);
    if (events_open(live, resp, first, "") != 0)
        http_respond_error(resp, req, 503, "too_many_streams", "full", NULL);
    json_decref(first);
}

static http_server *start(void) {
    char err[256];
    struct http_options opt = {.host = "127.0.0.1", .port = 0, .threads = 2, .max_body = 1024,
                               .conn_limit = 16, .per_ip_limit = 16, .conn_timeout_s = 10,
                               .handler = stream_handler};
    return http_start(&opt, err, sizeof err);
}

/* Connect with a small receive buffer, ask for the stream. */
static int open_stream(const http_server *srv, int rcvbuf) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(srv))};
    struct timeval tv = {5, 0};
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, sizeof req - 1, 0) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read until needle shows up in what was read (1), or the stream ends or
 * 5 s pass (0). */
static int read_until(int fd, char *buf, size_t cap, size_t *used, const char *needle) {
    ssize_t n;
    while (!strstr(buf, needle)) {
        if (*used + 1 >= cap || (n = recv(fd, buf + *used, cap - *used - 1, 0)) <= 0) return 0;
        *used += (size_t)n;
        buf[*used] = '\0';
    }
    return 1;
}

/* Bytes read until the server ends the answer; -1 when it did not within 5 s. */
static long read_to_end(int fd) {
    char buf[65536];
    long total = 0;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) total += n;
    return n == 0 ? total : -1;
}

static void wait_count(events *ev, int n) {
    for (int i = 0; i < 500 && events_count(ev) != n; i++) usleep(10 * 1000);
}

/* A stream limited to queues hears their events only: posted changes,
 * broadcast alerts, and snapshots through the scope function. */
TEST(a_stream_limited_to_queues_never_hears_of_another) {
    char all[4096], mine[4096];
    size_t n;
    struct http_response ra, rm;
    events *ev = events_new(4, 4);
    json_t *first = json_pack("{s:[]}", "queues");
    memset(&ra, 0, sizeof ra);
    memset(&rm, 0, sizeof rm);
    EXPECT_INT(events_open_scoped(ev, &ra, first, "a", ""), 0);
    EXPECT_INT(events_open_scoped(ev, &rm, first, "b", "build*"), 0);
    json_decref(first);
    drain(&ra, NULL, 0, &n);
    drain(&rm, NULL, 0, &n);
    json_t *c1 = json_pack("{s:s, s:i}", "queue", "ingest-a", "to", 5);
    json_t *c2 = json_pack("{s:s, s:i}", "queue", "build-a", "to", 6);
    json_t *al = json_pack("{s:s, s:s}", "alert", "drift", "queue", "ingest-a");
    events_post(ev, "change", c1);
    events_post(ev, "change", c2);
    events_post(ev, "change", c1);
    events_flush(ev);
    events_broadcast(ev, "alert", al);
    static const char snap[] = "{\"policy\":{\"failing_rules\":[{\"queue\":\"ingest-a\"},{\"queue\":\"build-b\"}]},"
                               "\"queues\":[{\"queue\":\"build-a\"},{\"queue\":\"ingest-a\"}]}";
    events_broadcast_text(ev, "snapshot", snap, strlen(snap));   /* no scope function yet */
    events_set_scope(ev, health_scope_text);
    events_broadcast_text(ev, "snapshot", snap, strlen(snap));
    drain(&ra, all, sizeof all, &n);
    drain(&rm, mine, sizeof mine, &n);
    /* Everything for the stream of every queue, twice the snapshot. */
    EXPECT_CONTAINS(all, "\"to\":5");
    EXPECT_CONTAINS(all, "event: alert");
    EXPECT(strstr(strstr(all, "event: snapshot") + 1, "event: snapshot") != NULL);
    /* Its own change, whole, and one snapshot limited to build*. */
    EXPECT_CONTAINS(mine, "event: change\ndata: {\"queue\":\"build-a\",\"to\":6}\n\n");
    EXPECT(strstr(mine, "ingest") == NULL);
    EXPECT(strstr(mine, "event: alert") == NULL);
    EXPECT_CONTAINS(mine, "event: snapshot\ndata: {\"policy\":{\"failing_rules\":[{\"queue\":\"build-b\"}]},"
                          "\"queues\":[{\"queue\":\"build-a\"}]}\n\n");
    EXPECT(strstr(strstr(mine, "event: snapshot") + 1, "event: snapshot") == NULL);
    json_decref(c1);
    json_decref(c2);
    json_decref(al);
    close_stream(&ra);
    close_stream(&rm);
    events_free(ev);
}

TEST(a_stream_sleeps_wakes_on_broadcasts_and_ends_on_close_all) {
    char buf[8192] = "";
    size_t used = 0;
    live = events_new(4, 4);
    http_server *srv = start();
    ASSERT(srv != NULL);
    int fd = open_stream(srv, 0);
    ASSERT(fd >= 0);
    EXPECT(read_until(fd, buf, sizeof buf, &used, "data: {\"n\":0}\n\n"));
    EXPECT_CONTAINS(buf, "Content-Type: text/event-stream");
    /* The connection is asleep now: each broadcast wakes it. */
    for (int i = 1; i <= 3; i++) {
        char want[64];
        json_t *ev = json_pack("{s:i}", "n", i);
        usleep(50 * 1000);
        events_broadcast(live, "change", ev);
        json_decref(ev);
        snprintf(want, sizeof want, "event: change\ndata: {\"n\":%d}\n\n", i);
        EXPECT(read_until(fd, buf, sizeof buf, &used, want));
    }
    events_close_all(live);
    EXPECT(read_to_end(fd) >= 0);
    close(fd);
    wait_count(live, 0);
    EXPECT_INT(events_count(live), 0);
    http_stop(srv);
    events_free(live);
}

TEST(a_client_that_stops_reading_is_cut_off_over_http) {
    live = events_new(4, 4);
    http_server *srv = start();
    ASSERT(srv != NULL);
    int fd = open_stream(srv, 4096);
    ASSERT(fd >= 0);
    wait_count(live, 1);
    ASSERT(events_count(live) == 1);
    /* Far more than the socket buffers hold: the stream's own buffer fills. */
    json_t *ev = big(64 * 1024);
    for (int i = 0; i < 400; i++) events_broadcast(live, "change", ev);
    json_decref(ev);
    long got = read_to_end(fd);
    EXPECT(got > 0 && got < 400L * 64 * 1024);    /* ended by the server, short of it all */
    close(fd);
    wait_count(live, 0);
    EXPECT_INT(events_count(live), 0);
    http_stop(srv);
    events_free(live);
}

int main(void) {
    log_set_level(LOG_ERROR);
    RUN(streams_are_capped_per_owner_and_in_all);
    RUN(a_reader_that_falls_behind_is_cut_off_after_what_it_holds);
    RUN(a_stream_limited_to_queues_never_hears_of_another);
    RUN(a_stream_sleeps_wakes_on_broadcasts_and_ends_on_close_all);
    RUN(a_client_that_stops_reading_is_cut_off_over_http);
    return UNIT_DONE();
}
