/* ingest.c — heartbeat ingest on one thread: pre-built report strings
 * through fleet_report (parse, validate, registry and acknowledgement
 * index), as bus.c's subscriber thread runs it, with WORKERS workers
 * registered over QUEUES queues. Prints reports/s and ns per report, wall
 * and CPU, first without waiters, then with one pending wait per queue
 * (none of which completes, so every report is counted against them).
 *
 *   build: like a unit test, against the engine's objects (ENGINE_OBJ):
 *     $(BUILD)/bench/ingest: spec/bench/ingest.c $(ENGINE_OBJ)
 *         $(CC) $(CFLAGS) $< $(ENGINE_OBJ) $(LDFLAGS) $(LDLIBS) -o $@
 *   run:   build/bench/ingest [workers=10000] [queues=100] [rounds=20]
 */
#include "fleet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INGEST_VARIANTS 4    /* distinct reports per worker, cycled */

static double ingest_clock(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* As sluiced's: the policies declare every queue, and finding one is a
 * mutex and a walk over the declared names (policy_bounds). */
struct ingest_policy {
    pthread_mutex_t lock;
    char (*names)[32];
    int n;
};

static int ingest_declared(void *ud, const char *queue) {
    struct ingest_policy *p = ud;
    int found = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n && !found; i++) found = strcmp(p->names[i], queue) == 0;
    pthread_mutex_unlock(&p->lock);
    return found;
}

static void ingest_noop(void *ud, const struct fleet_acks *acks, int complete) {
    (void)ud;
    (void)acks;
    (void)complete;
}

/* Report k of every worker, in worker order: heartbeats with moving
 * counters, and every INGEST_VARIANTS-th an ack of the same version. */
static char **ingest_reports(int workers, int queues, size_t *lens) {
    char **r = calloc((size_t)workers * INGEST_VARIANTS, sizeof *r);
    char buf[512];
    for (int k = 0; r && k < INGEST_VARIANTS; k++)
        for (int i = 0; i < workers; i++) {
            int n = snprintf(buf, sizeof buf,
                             "{\"event\":\"%s\",\"worker\":\"bench-host-%03d-worker-%05d\","
                             "\"queue\":\"queue-%03d\",\"concurrency\":%d,\"version\":%d,"
                             "\"active\":%d,\"completed\":%d,\"failed\":%d,\"pid\":%d,"
                             "\"host\":\"pod-%05d\",\"agent\":\"libsluice/0.2.0\","
                             "\"ts\":1764190800123,\"interval_ms\":1000,\"error\":null}",
                             k == 0 ? "ack" : "heartbeat", i % 97, i, i % queues, 8, 1, k % 8,
                             1000 * k + i, k, 4000 + i, i);
            size_t at = (size_t)k * (size_t)workers + (size_t)i;
            r[at] = strdup(buf);
            lens[at] = (size_t)n;
        }
    return r;
}

/* rounds passes over every worker's next report; returns ns per report. */
static void ingest_run(const char *what, fleet *fl, char **reports, const size_t *lens, int workers,
                       int rounds, int64_t *now) {
    double w0 = ingest_clock(CLOCK_MONOTONIC), c0 = ingest_clock(CLOCK_THREAD_CPUTIME_ID);
    size_t n = 0;
    for (int round = 0; round < rounds; round++) {
        size_t base = (size_t)(round % INGEST_VARIANTS) * (size_t)workers;
        for (int i = 0; i < workers; i++, n++) {
            if (fleet_report(fl, reports[base + i], lens[base + i], *now) != 0) {
                fprintf(stderr, "ingest: report refused: %s\n", reports[base + i]);
                exit(1);
            }
        }
        *now += 1000;                           /* a heartbeat interval per round */
        fleet_sweep(fl, *now);
        fleet_check_waiters(fl, *now, 0);       /* what the ticker does */
    }
    double wall = ingest_clock(CLOCK_MONOTONIC) - w0, cpu = ingest_clock(CLOCK_THREAD_CPUTIME_ID) - c0;
    printf("  %-34s %9.0f reports/s wall  %7.0f ns/report wall  %7.0f ns/report cpu  (%zu reports)\n",
           what, (double)n / wall, wall * 1e9 / (double)n, cpu * 1e9 / (double)n, n);
}

int main(int argc, char **argv) {
    int workers = argc > 1 ? atoi(argv[1]) : 10000;
    int queues = argc > 2 ? atoi(argv[2]) : 100;
    int rounds = argc > 3 ? atoi(argv[3]) : 20;
    if (workers < 1 || queues < 1 || rounds < 1) {
        fprintf(stderr, "usage: ingest [workers] [queues] [rounds]\n");
        return 2;
    }
    size_t *lens = calloc((size_t)workers * INGEST_VARIANTS, sizeof *lens);
    char **reports = lens ? ingest_reports(workers, queues, lens) : NULL;
    fleet *fl = fleet_new();
    if (reports == NULL || fl == NULL) return 1;
    int64_t now = 1000000;
    char queue[32];
    struct ingest_policy pol = {PTHREAD_MUTEX_INITIALIZER, calloc((size_t)queues, 32), queues};
    if (pol.names == NULL) return 1;
    for (int q = 0; q < queues; q++) {
        snprintf(pol.names[q], sizeof pol.names[q], "queue-%03d", q);
        fleet_issued(fl, pol.names[q], 1);
    }
    fleet_set_declared(fl, ingest_declared, &pol);
    printf("ingest: %d workers over %d queues, %d rounds, one thread\n", workers, queues, rounds);
    ingest_run("register (first reports)", fl, reports, lens, workers, 1, &now);
    ingest_run("heartbeats", fl, reports, lens, workers, rounds, &now);
    for (int q = 0; q < queues; q++) {          /* version 2 is never reached */
        snprintf(queue, sizeof queue, "queue-%03d", q);
        fleet_issued(fl, queue, 2);
        if (fleet_wait(fl, queue, 2, now, now + 3600000, ingest_noop, NULL) != 0) return 1;
    }
    ingest_run("heartbeats, a wait on every queue", fl, reports, lens, workers, rounds, &now);
    struct fleet_worker *all = NULL;
    size_t n = fleet_workers(fl, NULL, now, &all);
    printf("  registered: %zu workers\n", n);
    printf("  repeat: make bench, or build/bench/ingest %d %d %d\n", workers, queues, rounds);
    free(all);
    fleet_free(fl);
    for (size_t i = 0; i < (size_t)workers * INGEST_VARIANTS; i++) free(reports[i]);
    free(reports);
    free(lens);
    free(pol.names);
    return n == (size_t)workers ? 0 : 1;
}
