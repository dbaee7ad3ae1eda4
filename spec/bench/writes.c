/* writes.c — write latency of sluiced without and with K open event streams.
 *
 * Times PUTs of /api/v1/scaling/<queue> (write token, no wait_ms) one after
 * another on one kept-alive connection, in 2 x --blocks alternating blocks:
 * one with no event stream open, one with --streams connections open on
 * /admin/runtime-scaling/events (read token) whose bytes are read and
 * dropped, and so on. Alternating keeps what drifts during a run (the audit
 * log grows with every write; other load comes and goes) out of the
 * comparison. Each PUT changes the value, so each is a real write and an
 * announced change every stream hears about. A block starts 300 ms after its
 * streams opened or closed, so the first snapshots are not what is timed.
 * The streams are held and drained by a child process, as browsers would
 * be: the loop that times the PUTs never also reads the streams, whose
 * events would otherwise sit in front of each answer.
 * --streams 0 times two alike halves: the noise of the comparison itself.
 *
 *   writes --http-port P --read-token R --write-token W --queue q0 \
 *          --streams 50 --rounds 400 --blocks 4
 *
 * Result: one JSON line on stdout (bench.h) with "without" and "with", each
 * --rounds samples. Exit 0; 1 on bad usage; 2 when a stream or a PUT failed,
 * a stream closed early, or --seconds ran out. */
#include "bench.h"

#include <event2/buffer.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define WRITES_WARM 5                   /* PUTs before any is timed */

struct writes {
    struct event_base *base;
    const char *read_token, *write_token, *queue;
    int port, streams, rounds, blocks, seconds;
    struct evhttp_connection **sse;     /* the child's open streams */
    int opened, failed, block, in_block;
    pid_t child;                        /* holds the streams of a "with" block; 0: none */
    int ready_fd;                       /* its end of the pipe: 'R' all open, 'F' failed */
    struct event *ready;
    long long stream_bytes, changes, t0_us;
    struct evhttp_connection *put;
    struct event *deadline, *settle;
    struct bench_samples lat[2];        /* [0] without streams, [1] with */
};

static void writes_fail(struct writes *w, const char *what, int code) {
    fprintf(stderr, "writes: %s (HTTP %d)\n", what, code);
    w->failed = 1;
    event_base_loopbreak(w->base);
}

static int writes_with_streams(const struct writes *w) { return w->block % 2 == 1; }

static void writes_on_put(struct evhttp_request *req, void *arg);

static void writes_put(struct writes *w) {
    char path[128], body[160];
    snprintf(path, sizeof path, "/api/v1/scaling/%s", w->queue);
    snprintf(body, sizeof body, "{\"desired_concurrency\":%lld,\"reason\":\"bench write %lld\"}",
             8 + w->changes % 2, w->changes);
    w->changes++;
    w->t0_us = bench_now_us();
    if (bench_http_send(w->put, EVHTTP_REQ_PUT, path, w->write_token, body, writes_on_put, w) != 0)
        writes_fail(w, "cannot send a PUT", 0);
}

static void writes_block_start(struct writes *w);

/* End of a block: close its streams (their requests go with the
 * connections, without callbacks) and start the next after a pause. */
static void writes_block_end(struct writes *w) {
    struct timeval settle = {0, 300000};
    if (w->child > 0) {
        event_free(w->ready);
        w->ready = NULL;
        kill(w->child, SIGTERM);
        waitpid(w->child, NULL, 0);
        close(w->ready_fd);
        w->child = 0;
    }
    w->opened = 0;
    w->in_block = 0;
    if (++w->block == 2 * w->blocks) {
        event_base_loopbreak(w->base);
        return;
    }
    if (writes_with_streams(w) && w->streams > 0) writes_block_start(w);
    else evtimer_add(w->settle, &settle);
}

static void writes_on_put(struct evhttp_request *req, void *arg) {
    struct writes *w = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    long long us = bench_now_us() - w->t0_us;
    if (code != 200) {
        writes_fail(w, "PUT failed", code);
        return;
    }
    if (w->changes <= WRITES_WARM) {
        writes_put(w);
        return;
    }
    bench_samples_add(&w->lat[writes_with_streams(w)], us);
    if (++w->in_block >= w->rounds / w->blocks) writes_block_end(w);
    else writes_put(w);
}

static void writes_on_settled(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    writes_put(arg);
}

/* In the child: tell the parent, on the pipe, and stop on failure. */
static void writes_child_says(struct writes *w, char c) {
    if (write(w->ready_fd, &c, 1) != 1 || c == 'F') _exit(c == 'F' ? 2 : 3);
}

static int writes_on_stream_head(struct evhttp_request *req, void *arg) {
    struct writes *w = arg;
    int code = evhttp_request_get_response_code(req);
    if (code != 200) {
        fprintf(stderr, "writes: an event stream was refused (HTTP %d)\n", code);
        writes_child_says(w, 'F');
    }
    if (++w->opened == w->streams) writes_child_says(w, 'R');
    return 0;
}

static void writes_on_stream_data(struct evhttp_request *req, void *arg) {
    struct writes *w = arg;                 /* in the child */
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    w->stream_bytes += (long long)n;
    evbuffer_drain(in, n);
}

/* A stream ended while its block ran: sluiced dropped it. */
static void writes_on_stream_end(struct evhttp_request *req, void *arg) {
    (void)req;
    fprintf(stderr, "writes: an event stream closed\n");
    writes_child_says(arg, 'F');
}

/* In the child: open the streams on a loop of its own and drain them until
 * the parent ends the block (SIGTERM). */
static void writes_child(struct writes *w) {
    char auth[512];
    signal(SIGTERM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);      /* never outlives the run */
    if (getppid() == 1) _exit(2);
    w->base = event_base_new();
    if (w->base == NULL) _exit(2);
    snprintf(auth, sizeof auth, "Bearer %s", w->read_token);
    for (int i = 0; i < w->streams; i++) {
        w->sse[i] = evhttp_connection_base_new(w->base, NULL, "127.0.0.1", (unsigned short)w->port);
        struct evhttp_request *req = evhttp_request_new(writes_on_stream_end, w);
        if (w->sse[i] == NULL || req == NULL) writes_child_says(w, 'F');
        evhttp_connection_set_timeout(w->sse[i], 3600);
        evhttp_request_set_header_cb(req, writes_on_stream_head);
        evhttp_request_set_chunked_cb(req, writes_on_stream_data);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Host", "127.0.0.1");
        evhttp_add_header(h, "Accept", "text/event-stream");
        evhttp_add_header(h, "Authorization", auth);
        if (evhttp_make_request(w->sse[i], req, EVHTTP_REQ_GET, "/admin/runtime-scaling/events") != 0)
            writes_child_says(w, 'F');
    }
    event_base_dispatch(w->base);
    _exit(0);
}

/* In the parent: the child said 'R' (all streams open: settle, then time
 * the block) or failed. */
static void writes_on_ready(evutil_socket_t fd, short what, void *arg) {
    struct writes *w = arg;
    struct timeval settle = {0, 300000};
    char c = 0;
    (void)what;
    if (read(fd, &c, 1) == 1 && c == 'R') {
        evtimer_add(w->settle, &settle);
        return;
    }
    writes_fail(w, "the stream holder failed", 0);
}

/* Start the block's stream holder; its PUTs start once all answered 200. */
static void writes_block_start(struct writes *w) {
    int fds[2];
    if (pipe(fds) != 0) {
        writes_fail(w, "no pipe", 0);
        return;
    }
    fflush(stdout);
    w->child = fork();
    if (w->child < 0) {
        writes_fail(w, "cannot fork", 0);
        return;
    }
    if (w->child == 0) {
        close(fds[0]);
        w->ready_fd = fds[1];
        writes_child(w);
    }
    close(fds[1]);
    w->ready_fd = fds[0];
    w->ready = event_new(w->base, fds[0], EV_READ | EV_PERSIST, writes_on_ready, w);
    if (w->ready == NULL || event_add(w->ready, NULL) != 0) writes_fail(w, "out of memory", 0);
}

static void writes_on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    writes_fail(arg, "timed out", 0);
}

static void writes_print(struct writes *w) {
    printf("{\"mode\":\"writes\",\"streams\":%d,\"blocks\":%d,\"queue\":\"%s\",\"without\":{", w->streams,
           w->blocks, w->queue);
    bench_samples_print(&w->lat[0], stdout);
    printf("},\"with\":{");
    bench_samples_print(&w->lat[1], stdout);
    printf("},\"stream_bytes\":%lld}\n", w->stream_bytes);
}

int main(int argc, char **argv) {
    struct writes w = {.queue = "q0", .rounds = 400, .blocks = 4, .seconds = 120};
    struct timeval limit, now = {0, 0};
    int rc = 2;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) goto usage;
        if (strcmp(a, "--http-port") == 0) w.port = atoi(v);
        else if (strcmp(a, "--read-token") == 0) w.read_token = v;
        else if (strcmp(a, "--write-token") == 0) w.write_token = v;
        else if (strcmp(a, "--queue") == 0) w.queue = v;
        else if (strcmp(a, "--streams") == 0) w.streams = atoi(v);
        else if (strcmp(a, "--rounds") == 0) w.rounds = atoi(v);
        else if (strcmp(a, "--blocks") == 0) w.blocks = atoi(v);
        else if (strcmp(a, "--seconds") == 0) w.seconds = atoi(v);
        else goto usage;
    }
    if (w.port <= 0 || w.write_token == NULL || (w.streams > 0 && w.read_token == NULL) || w.streams < 0 ||
        w.blocks < 1 ||
        w.rounds < w.blocks || w.seconds < 1 || strlen(w.queue) > 64)
        goto usage;

    bench_raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    limit = (struct timeval){w.seconds, 0};
    w.base = event_base_new();
    if (w.base == NULL) goto done;
    w.deadline = evtimer_new(w.base, writes_on_deadline, &w);
    w.settle = evtimer_new(w.base, writes_on_settled, &w);
    w.put = evhttp_connection_base_new(w.base, NULL, "127.0.0.1", (unsigned short)w.port);
    w.sse = calloc((size_t)w.streams, sizeof *w.sse);
    if (w.deadline == NULL || w.settle == NULL || w.put == NULL || w.sse == NULL ||
        evtimer_add(w.deadline, &limit) != 0) {
        fprintf(stderr, "writes: out of memory\n");
        goto done;
    }
    evhttp_connection_set_timeout(w.put, 60);
    evtimer_add(w.settle, &now);        /* block 0 has no streams: start at once */
    event_base_dispatch(w.base);
    if (w.failed) goto done;
    writes_print(&w);
    rc = 0;
    goto done;
usage:
    fprintf(stderr, "usage: writes --http-port P --write-token W [--read-token R] --streams K [--queue q0]\n"
                    "              [--rounds 400] [--blocks 4] [--seconds 120]\n");
    rc = 1;
done:
    fflush(stdout);
    /* Connections and memory go with the process. */
    return rc;
}
