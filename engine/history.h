/* history.h — the last 24 hours of every declared queue, in memory: one
 * sample every HISTORY_STEP_MS (waiting, active, desired, running, live
 * workers, done/s, failed/s), kept in a fixed ring per queue, and the
 * /admin/runtime-scaling/history answer rendered from it.
 *
 * The ticker takes a sample of every queue of the current queue-health
 * model (history_sample_model) every HISTORY_STEP_MS. A queue's ring keeps
 * its past at the three steps the ranges read: 10 s over an hour, 30 s
 * over 6 hours, 120 s over 24 hours; a sample goes into the slot of its
 * step in each, where, per field, the last known value sampled in the step
 * stands. Slots skipped (sluiced stopped, the ticker held up) are gaps,
 * and every field is unknown on its own (Redis down: no depth; the store
 * down: no desired). Storage is compact, one array per field: 26 bytes a
 * slot, 1,800 slots a queue (about 46 KiB; 24 h of 10 s samples would be
 * 8,640 slots, 220 KiB), filled with "unknown" when the ring is made, so
 * its memory is resident from the start and a full day costs no more.
 *
 * A read (history_render) picks a range (15m, 1h, 6h, 24h) and its step,
 * so that a series has at most 720 points, one slot of that step each. The desired concurrency before the first sample (after a
 * restart) and the change markers come from the audit log, which the
 * caller reads and passes in: this module uses health.h and store.h's
 * types only, and keeps its own lock (a leaf). */
#ifndef SLUICE_HISTORY_H
#define SLUICE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "body.h"
#include "health.h"
#include "store.h"

#define HISTORY_STEP_MS 10000           /* how often the ticker samples */
#define HISTORY_MAX_QUEUES POLICY_MAX_QUEUES
#define HISTORY_MAX_POINTS 720

/* One sample; a field that is not known is HISTORY_UNKNOWN (integers) or
 * NaN (rates). */
#define HISTORY_UNKNOWN INT64_MIN
struct history_sample {
    int64_t waiting, active, desired, running, workers;
    double done_per_s, failed_per_s;
};

typedef struct history history;

/* An empty history. NULL when out of memory. history_free(NULL) is a no-op. */
history *history_new(void);
void history_free(history *h);

/* Record s as queue's sample at at_ms (wall clock). A queue seen for the
 * first time gets a ring; past HISTORY_MAX_QUEUES rings, the ring of the
 * queue sampled least recently is taken over. Returns 0, or -1 when out of
 * memory (the sample is lost). */
int history_record(history *h, const char *queue, const struct history_sample *s, int64_t at_ms);

/* Record a sample of every queue of m at at_ms: what the snapshot shows
 * (depth only with Redis up, desired only with the store up). */
void history_sample_model(history *h, const struct health_model *m, int64_t at_ms);

/* The ranges a read may ask for. */
struct history_range {
    const char *name;                /* "15m" | "1h" | "6h" | "24h" */
    int64_t span_ms, step_ms;
};

/* The range named name, or NULL when there is none of that name. */
const struct history_range *history_range_named(const char *name);

/* What the audit log gives back for a read: the applied scaling changes of
 * the queue that moved it, at or after the range's start, newest first (as
 * store_find_audit lists them), and the desired concurrency in force now
 * (HISTORY_UNKNOWN when not known); desired at a step without a sample is
 * the value in force then, walked back from now through the changes. */
struct history_audit {
    const struct store_audit *changes;
    size_t nchanges;
    int64_t desired_now;
    int complete;                    /* every change since the start is in changes */
};

/* The first time of range r read at now_ms (wall clock): what the caller
 * lists audit changes from. */
int64_t history_range_start(const struct history_range *r, int64_t now_ms);

/* The answer of GET /admin/runtime-scaling/history for queue over r at
 * now_ms (api.md), as a JSON body. NULL when out of memory. */
struct body *history_render(history *h, const char *queue, const struct history_range *r,
                            int64_t now_ms, const struct history_audit *audit);

/* One 10 s sample of a queue with the start of its step. */
struct history_sample_at {
    int64_t at_ms;
    struct history_sample s;
};

/* The 10 s samples of queue from since_ms on, oldest first, at most max
 * into out (steps without a sample are left out): what the autoscaler's
 * rules see as ctx.history. Returns how many. */
size_t history_recent(history *h, const char *queue, int64_t since_ms, struct history_sample_at *out,
                      size_t max);

/* Bytes of memory the rings hold (for the docs' figure and the tests). */
size_t history_memory(history *h);

#endif
