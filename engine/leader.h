/* leader.h — which replica runs the work that must happen once.
 *
 * Every sluiced serves reads and writes, but only the leader runs the outbox
 * relay, override expiry and alert notifications. With PostgreSQL,
 * leadership is a lease in the table leader_lease: the leader renews it
 * every lease/5 on a connection of its own (with a short statement
 * timeout); a replica takes it only once it has expired by the database's
 * clock, and each new term gets the next epoch. A leader that stops
 * renewing (frozen, partitioned, its session killed) is replaced within the
 * lease; it stops leading by its own clock a second before the database
 * would let another in, so a frozen leader that wakes up does nothing.
 * The epoch is the fencing token the relay sends with every write to Redis.
 * With SQLite (one replica by design) this process always leads, with an
 * epoch that grows at every start. Thread-safe. */
#ifndef SLUICE_LEADER_H
#define SLUICE_LEADER_H

#include <stddef.h>

typedef struct leader leader;

/* Start electing on db_url with a lease of lease_ms (at least 2000).
 * Returns NULL with err when out of memory, the thread cannot start, or a
 * SQLite database cannot record a new epoch; a PostgreSQL that is down is
 * retried. */
leader *leader_start(const char *db_url, int lease_ms, char *err, size_t errlen);
void leader_stop(leader *l);

/* 1 while this process holds a lease that has not run out. NULL: always. */
int leader_is(leader *l);

/* The epoch of the current (or last) term: the fencing token. */
long long leader_epoch(leader *l);

/* Increases every time this process becomes leader (so callers notice a
 * fresh term and resynchronise). */
unsigned leader_term(leader *l);

#endif
