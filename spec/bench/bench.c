/* bench.c — clock, percentiles and HTTP requests for the benchmark programs. */
#include "bench.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

long long bench_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int bench_samples_add(struct bench_samples *s, long long us) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        long long *grown = realloc(s->us, cap * sizeof *grown);
        if (grown == NULL) return -1;
        s->us = grown;
        s->cap = cap;
    }
    s->us[s->n++] = us;
    return 0;
}

static int bench_cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p of them at or below. */
static double bench_rank_ms(const struct bench_samples *s, double p) {
    if (s->n == 0) return 0;
    size_t k = (size_t)(p * (double)s->n + 0.999999);
    if (k < 1) k = 1;
    if (k > s->n) k = s->n;
    return (double)s->us[k - 1] / 1000.0;
}

void bench_samples_print(struct bench_samples *s, FILE *out) {
    if (s->n) qsort(s->us, s->n, sizeof *s->us, bench_cmp);
    fprintf(out, "\"samples\":%zu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f", s->n,
            bench_rank_ms(s, 0.50), bench_rank_ms(s, 0.90), bench_rank_ms(s, 0.99), bench_rank_ms(s, 1.0));
}

void bench_samples_free(struct bench_samples *s) {
    free(s->us);
    memset(s, 0, sizeof *s);
}

void bench_raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int bench_http_send(struct evhttp_connection *conn, enum evhttp_cmd_type method, const char *path,
                    const char *token, const char *json, void (*done)(struct evhttp_request *, void *),
                    void *arg) {
    char auth[512];
    struct evhttp_request *req = evhttp_request_new(done, arg);
    if (req == NULL) return -1;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", "127.0.0.1");
    if (token) {
        snprintf(auth, sizeof auth, "Bearer %s", token);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (json) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), json, strlen(json));
    }
    /* evhttp frees req after done() returns, or here when it fails. */
    return evhttp_make_request(conn, req, method, path) == 0 ? 0 : -1;
}

char *bench_http_body(struct evhttp_request *req, char *buf, size_t len) {
    struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
    size_t n = in ? evbuffer_get_length(in) : 0;
    if (n > len - 1) n = len - 1;
    if (n) evbuffer_copyout(in, buf, n);
    buf[n] = '\0';
    return buf;
}
