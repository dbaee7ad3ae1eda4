/* bus.h — Redis, in both directions (protocol.md).
 *
 * The relay thread publishes accepted changes from the store's outbox: per
 * row, HSET <p>:desired + PUBLISH <p>:scaling in one MULTI/EXEC, in commit
 * order (hence version order per queue), then marks the row published. While
 * Redis is down rows wait and the relay retries with capped back-off; none
 * is lost or reordered. At start and after every reconnect it rewrites
 * <p>:desired for every declared queue from the database (so a Redis that
 * restarted empty is repaired), skipping queues whose newer rows are still
 * queued — the hash never moves backwards. It also publishes alert
 * transitions on <p>:alerts.
 *
 * Before its first write on every connection the relay claims <p>:owner for
 * this store's identity; a prefix owned by another store is never written
 * (logged, and Redis reported down) unless take_over is set.
 *
 * The subscriber thread reads <p>:reports into the fleet, reconnecting and
 * re-subscribing on its own. Connections (rconn.h) are not thread-safe:
 * each thread owns its own. Uses store.h, policy.h and fleet.h. */
#ifndef SLUICE_BUS_H
#define SLUICE_BUS_H

#include <jansson.h>
#include <stddef.h>

#include "fleet.h"
#include "leader.h"
#include "policy.h"
#include "rconn.h"
#include "store.h"

struct bus_options {
    const struct rconn_target *redis;   /* copied by bus_start */
    const char *prefix;
    const char *owner;           /* the store's identity, claimed in <p>:owner */
    int take_over;               /* claim <p>:owner even from another store */
    store *st;
    policy *pol;
    fleet *fl;
    leader *ld;                  /* only the leader relays; NULL: always */
};

typedef struct bus bus;

/* Before anything is written to Redis: connect once and read <p>:owner.
 * Returns 0 when the prefix is free, ours, or taken over with take_over;
 * also 0 when Redis cannot be reached now (the relay claims it before its
 * first write). Returns -1 with a one-line message in err when Redis
 * refuses us (credentials, certificate, protocol) or, without take_over,
 * another store owns the prefix. Writes nothing. */
int bus_preflight(const struct bus_options *opt, char *err, size_t errlen);

/* Start both threads. Redis being down is not an error (the threads keep
 * trying). The subscriber starts reading at once; the relay writes nothing
 * until bus_open: start-up must finish (HTTP bound, every check passed)
 * before the desired hash is touched. Returns NULL with err. */
bus *bus_start(const struct bus_options *opt, char *err, size_t errlen);

/* Let the relay write: claim <p>:owner, rewrite the desired hash, relay. */
void bus_open(bus *b);

/* Stop the threads and free everything. NULL is a no-op. */
void bus_stop(bus *b);

/* Wake the relay now (a change was committed). */
void bus_kick(bus *b);

/* Rewrite the desired hash from the database soon (new queues declared). */
void bus_resync(bus *b);

/* Queue a message for <p>:alerts; takes ownership of msg. */
void bus_publish_alert(bus *b, json_t *msg);

/* 1 while both threads hold a working connection. */
int bus_redis_up(bus *b);

#endif
