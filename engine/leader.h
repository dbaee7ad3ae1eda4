/* leader.h — which replica runs the work that must happen once.
 *
 * Every sluiced serves reads and writes, but only the leader runs the outbox
 * relay, override expiry and alert notifications. With PostgreSQL the
 * leader holds pg_try_advisory_lock on a connection of its own; a thread
 * checks it every second, so when the leader dies or loses its connection
 * the lock is released and another replica takes over within a few
 * seconds. With SQLite (one replica by design) this process is always the
 * leader. Thread-safe. */
#ifndef SLUICE_LEADER_H
#define SLUICE_LEADER_H

#include <stddef.h>

typedef struct leader leader;

/* Start electing on db_url. Returns NULL with err only when out of memory
 * or the thread cannot start; a database that is down is retried. */
leader *leader_start(const char *db_url, char *err, size_t errlen);
void leader_stop(leader *l);

/* 1 while this process is the leader. NULL: always (no election). */
int leader_is(leader *l);

/* Increases every time this process becomes leader (so callers notice a
 * fresh term and resynchronise). */
unsigned leader_term(leader *l);

#endif
