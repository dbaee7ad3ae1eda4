/* telemetry.h — queue health for the API, the live events and /metrics.
 *
 * Queue depth is read from Redis by the ticker only, for every declared
 * queue in one pipelined round trip, in the layout each queue's policy
 * names (protocol.md): the Sluice layout (LLEN of :wait, :active, :failed)
 * or BullMQ's (LLEN wait/paused/active, ZCARD delayed/prioritized/
 * waiting-children/failed/completed; read-only, never a write). Requests
 * read the cached result; they never go to Redis per queue.
 *
 * telemetry_snapshot() builds the /admin/runtime-scaling answer from that
 * cache, the store (desired state, pending outbox), the fleet (workers,
 * rates) and the alerts. Owns one hiredis context, used by the ticker
 * thread only; the cache is behind a mutex. */
#ifndef SLUICE_TELEMETRY_H
#define SLUICE_TELEMETRY_H

#include <jansson.h>

#include "rconn.h"

struct app;
typedef struct telemetry telemetry;

/* NULL with err on a bad URL or no memory (Redis down is fine). */
telemetry *telemetry_new(const struct rconn_target *redis, const char *prefix, char *err, size_t errlen);
void telemetry_free(telemetry *t);

/* Read the depth of every declared queue (ticker thread only). */
void telemetry_refresh(telemetry *t, struct app *app);

/* The cached depth of queue (waiting, active, delayed, failed; BullMQ's
 * paused and prioritized count as waiting). Returns 0, or -1 when unknown. */
int telemetry_depth(telemetry *t, const char *queue, int64_t out[4]);

/* 1 when the last refresh reached Redis. */
int telemetry_redis_up(telemetry *t);

/* The snapshot of api.md. New ref. */
json_t *telemetry_snapshot(telemetry *t, struct app *app);

#endif
