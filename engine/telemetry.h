/* telemetry.h — queue depth read from Redis, and its cache.
 *
 * Depth is read by the ticker only, for every declared queue in one
 * pipelined round trip, in the layout each queue's policy names
 * (protocol.md): the Sluice layout (LLEN of :wait, :active, :failed) or
 * BullMQ's (LLEN wait/paused/active, ZCARD delayed/prioritized/
 * waiting-children/failed/completed; read-only, never a write). Requests
 * read the cached result; they never go to Redis per queue.
 *
 * That is all this unit does: the queue-health model (health.c) reads the
 * cache and the Redis state from here. Owns one hiredis context, used by
 * the ticker thread only; the cache is behind a mutex. Uses policy.h
 * through app.h for the declared queues and their layouts. */
#ifndef SLUICE_TELEMETRY_H
#define SLUICE_TELEMETRY_H

#include <stdint.h>

#include "policy.h"
#include "rconn.h"

#define TELEMETRY_STATES_MAX 8

struct app;
typedef struct telemetry telemetry;

/* One queue's depth as the last refresh read it. */
struct telemetry_depth {
    int bullmq;                                /* the BullMQ layout */
    int nstates;
    /* Every state of the layout, in the order the API shows them: BullMQ's
     * eight as getJobCounts() names them; waiting, active, failed and
     * delayed (always 0) for the Sluice layout. Names are static strings. */
    const char *state[TELEMETRY_STATES_MAX];
    int64_t count[TELEMETRY_STATES_MAX];       /* -1: a key of the wrong type */
    /* What alert rules see: BullMQ's paused and prioritized count as
     * waiting; unreadable counts as 0. */
    int64_t waiting, active, delayed, failed;
};

/* NULL with err on a bad URL or no memory (Redis down is fine). */
telemetry *telemetry_new(const struct rconn_target *redis, const char *prefix, char *err, size_t errlen);
void telemetry_free(telemetry *t);

/* Read the depth of every declared queue (ticker thread only). */
void telemetry_refresh(telemetry *t, policy *pol);

/* The cached depth of queue into *out. Returns 0, or -1 when unknown (not
 * read yet, Redis down, or not declared at the last refresh). */
int telemetry_depth(telemetry *t, const char *queue, struct telemetry_depth *out);

/* 1 when the last refresh reached Redis. */
int telemetry_redis_up(telemetry *t);

#endif
