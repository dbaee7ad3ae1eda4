/* bench.h — what the C benchmark programs of spec/bench share: a monotonic
 * clock, latency samples and their percentiles, and one HTTP request to
 * sluiced on a libevent loop.
 *
 * The programs (fleet_sim.c, writes.c) each run one libevent event_base on
 * one thread; nothing here locks. Results go to stdout as one JSON line that
 * spec/bench/bench.mjs reads, so the line's fields are its contract. */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <event2/event.h>
#include <event2/http.h>
#include <stddef.h>
#include <stdio.h>

/* Microseconds on the monotonic clock. */
long long bench_now_us(void);

/* Latency samples in microseconds, grown as needed. */
struct bench_samples {
    long long *us;
    size_t n, cap;
};

/* Add one sample. Returns 0, or -1 when out of memory (the sample is lost). */
int bench_samples_add(struct bench_samples *s, long long us);

/* Print the samples as "samples":n,"p50_ms":..,"p90_ms":..,"p99_ms":..,
 * "max_ms":.. (nearest rank; members of a JSON object). Sorts s. */
void bench_samples_print(struct bench_samples *s, FILE *out);

void bench_samples_free(struct bench_samples *s);

/* Raise the open-file limit to its hard limit: a fleet of 1,000 workers
 * holds more than 1,024 sockets. */
void bench_raise_fd_limit(void);

/* Send one request on conn: method, path, a bearer token (or NULL) and a
 * JSON body (or NULL). done(req, arg) runs on the loop when the answer is
 * complete or the request failed (req NULL or its response code 0). The
 * connection is kept alive for the next request. Returns 0, or -1 when the
 * request could not be made (done will not run). */
int bench_http_send(struct evhttp_connection *conn, enum evhttp_cmd_type method, const char *path,
                    const char *token, const char *json, void (*done)(struct evhttp_request *, void *),
                    void *arg);

/* The body of an answered request as a NUL-terminated string in buf (cut
 * at len - 1 bytes). Returns buf. */
char *bench_http_body(struct evhttp_request *req, char *buf, size_t len);

#endif
