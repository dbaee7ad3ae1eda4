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
 * The subscriber thread reads <p>:reports into the fleet, reconnecting and
 * re-subscribing on its own. hiredis contexts are not thread-safe: each
 * thread owns its own. Uses store.h, policy.h and fleet.h. */
#ifndef SLUICE_BUS_H
#define SLUICE_BUS_H

#include <jansson.h>
#include <stddef.h>

#include "fleet.h"
#include "leader.h"
#include "policy.h"
#include "store.h"

struct bus_options {
    const char *redis_url;       /* redis://HOST:PORT[/DB] */
    const char *prefix;
    store *st;
    policy *pol;
    fleet *fl;
    leader *ld;                  /* only the leader relays; NULL: always */
};

typedef struct bus bus;

/* Parse redis://HOST:PORT[/DB]. Returns 0, or -1 with a message in err. */
int bus_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                  size_t errlen);

/* Start both threads. Redis being down is not an error (the threads keep
 * trying); a bad URL or no memory is. Returns NULL with err. */
bus *bus_start(const struct bus_options *opt, char *err, size_t errlen);

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
