/* fleet.h — the live registry of workers, built from their reports on the
 * <prefix>:reports channel (protocol.md): actual concurrency, applied
 * version, active jobs, running totals, last seen.
 *
 * A worker is stale after 3 missed heartbeat intervals (it stops counting as
 * expected in acknowledgements), forgotten after 60 s, and removed at once
 * on "bye". Malformed or oversized reports are counted and logged at most
 * once a second, and never change the registry. Also keeps the waiters of
 * PUT ... wait_ms: callbacks run when every live worker of a queue has
 * applied a version, or when their deadline passes.
 *
 * Only versions sluiced issued count: a worker that reports a version above
 * the newest one issued for its queue (a forged message, or another control
 * plane's) is "invalid": it is expected but never acknowledges, until it
 * reports an issued version again. What was issued comes from
 * fleet_issued and, for versions this process has not seen (another
 * replica's), from the issuer callback, asked at most every
 * FLEET_ISSUER_EVERY_MS per queue.
 *
 * Cost: a report is a parse, two hash look-ups and a constant number of
 * updates, whatever the size of the fleet and the number of waiters; it
 * ends the waits it completes itself. Going stale is noticed by the ticker
 * (fleet_check_waiters), which looks at the fleet only when a worker's
 * deadline has passed. Readers (fleet_workers, fleet_rates, fleet_acks)
 * are one pass over the queue asked for.
 *
 * All functions are thread-safe (one mutex owned here, a leaf); wait
 * callbacks run with it released. Times are CLOCK_MONOTONIC milliseconds
 * (util_mono_ms). */
#ifndef SLUICE_FLEET_H
#define SLUICE_FLEET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "util.h"

#define FLEET_REPORT_MAX PROTOCOL_REPORT_MAX   /* bytes; larger reports are refused */
#define FLEET_MAX_WORKERS 16384
#define FLEET_ID_MAX PROTOCOL_WORKER_ID_MAX
#define FLEET_FORGET_MS 60000
#define FLEET_STALE_INTERVALS 3
#define FLEET_SAMPLES 12                 /* counter samples kept per worker, */
#define FLEET_SAMPLE_EVERY_MS 12000      /* at least this far apart but the newest */
#define FLEET_RATE_WINDOW_MS 60000
#define FLEET_ISSUER_EVERY_MS 250
#define FLEET_TOTAL_MAX 9007199254740991ULL   /* 2^53 - 1: exact in JSON and in Prometheus */

struct fleet_worker {
    char id[FLEET_ID_MAX + 1];
    char queue[UTIL_NAME_MAX + 1];
    int64_t concurrency, version, active, completed, failed;
    int paused;                      /* "paused" of its last report (0 when absent) */
    int64_t pid;
    char host[65], agent[65];
    char last_event[16];
    char error[257];                 /* last error report, "" when none */
    int64_t interval_ms;             /* heartbeat interval the worker declared */
    int64_t last_seen_ms, first_seen_ms;
    double completed_per_s, failed_per_s;   /* this worker's, as fleet_rates counts them */
    int stale;                       /* filled by fleet_workers */
    int invalid;                     /* reports a version never issued for its queue */
    int nsamples;                    /* counter samples kept, 1..FLEET_SAMPLES */
};

/* Job throughput of a queue over the last FLEET_RATE_WINDOW_MS, or the time
 * observed so far when shorter. */
struct fleet_rates {
    double completed_per_s, failed_per_s;
    double window_s;                 /* the span the rates cover */
    uint64_t completed_total, failed_total;   /* since sluiced started; never go back,
                                                 saturate at FLEET_TOTAL_MAX */
};

struct fleet_acks {
    int expected;                    /* live (not stale) workers of the queue */
    int acknowledged;                /* of those, at or past the version */
};

typedef struct fleet fleet;

fleet *fleet_new(void);
void fleet_free(fleet *fl);

/* The newest version of queue that the store holds: >= 0, or -1 when it
 * cannot be known now (then no worker is called invalid). Called without
 * the fleet lock held, from the thread that reads reports. */
typedef int64_t (*fleet_issuer_fn)(void *ud, const char *queue);
void fleet_set_issuer(fleet *fl, fleet_issuer_fn fn, void *ud);

/* Whether queue is declared by the policies: totals are kept only for
 * declared queues, so made-up names cannot fill the table. Called without
 * the fleet lock held. Without it every queue counts. */
typedef int (*fleet_declared_fn)(void *ud, const char *queue);
void fleet_set_declared(fleet *fl, fleet_declared_fn fn, void *ud);

/* version of queue was issued (committed or published): reports of it and
 * below are acknowledgements. */
void fleet_issued(fleet *fl, const char *queue, int64_t version);

/* Apply one report (raw payload), and end the waits it completes (their
 * callbacks run on the calling thread before this returns). Returns 0, or
 * -1 when it was malformed (counted, logged at a limited rate, nothing
 * changed), the fleet is full (FLEET_MAX_WORKERS; counted as malformed) or
 * out of memory. */
int fleet_report(fleet *fl, const char *payload, size_t len, int64_t now_ms);

/* Forget workers silent for FLEET_FORGET_MS (ending the waits only they
 * held back). */
void fleet_sweep(fleet *fl, int64_t now_ms);

/* Copy the workers of queue (NULL: all) into a malloc'd array the caller
 * frees; returns the count, with stale computed at now_ms. */
size_t fleet_workers(fleet *fl, const char *queue, int64_t now_ms, struct fleet_worker **out);

/* Rates of queue from its workers' heartbeat counters. A worker whose
 * counters go down (it restarted under the same id) counts from zero again,
 * never negatively. */
void fleet_rates(fleet *fl, const char *queue, int64_t now_ms, struct fleet_rates *out);

/* Who has applied version of queue, among live workers. */
void fleet_acks(fleet *fl, const char *queue, int64_t version, int64_t now_ms,
                struct fleet_acks *out);

/* Reports refused so far. */
uint64_t fleet_malformed(fleet *fl);

/* Called once, outside the fleet lock, when a wait ends. complete is 1 when
 * every live worker acknowledged (vacuously so with no live workers). */
typedef void (*fleet_wait_fn)(void *ud, const struct fleet_acks *acks, int complete);

/* Wait, from now_ms, for version of queue until deadline_ms. fn may run
 * before this returns (already complete, deadline passed, or shutdown
 * begun). Returns 0, or -1 when out of memory (fn not called). */
int fleet_wait(fleet *fl, const char *queue, int64_t version, int64_t now_ms, int64_t deadline_ms,
               fleet_wait_fn fn, void *ud);

/* The ticker's step at now_ms: notice the workers gone stale, and end the
 * waits that completes and those past their deadline; with finish_all
 * (shutdown), end every wait, and from then on every new one at once.
 * now_ms INT64_MAX: the counts are taken at util_mono_ms(). */
void fleet_check_waiters(fleet *fl, int64_t now_ms, int finish_all);

#endif
