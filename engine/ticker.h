/* ticker.h — the periodic work of a serving sluiced, driven from the main
 * thread between signals: policy reload checks, the deadlines of wait_ms,
 * forgetting silent workers, ending temporary overrides, reading queue
 * depth, building the queue-health model and evaluating alerts over it,
 * sampling it into the history every 10 s,
 * live-event snapshots and deleting expired sessions. Each task has its own
 * interval; ticker_run does what is due. */
#ifndef SLUICE_TICKER_H
#define SLUICE_TICKER_H

#include <stdint.h>

#include "app.h"

#define TICKER_STEP_MS 50            /* how often ticker_run should be called */

/* Live streams get the events of changes this often, and a snapshot at
 * most this often after changes. */
#define TICKER_EVENTS_MS 100
#define TICKER_CHANGE_SNAPSHOT_MS 1000

struct ticker {
    int64_t next_reload, next_second, next_snapshot, next_ping, next_session_sweep;
    int64_t last_snapshot;       /* when streams last got one */
    int64_t next_events;         /* the next events_flush */
    int64_t last_sample_slot;    /* history: the 10 s slot last sampled */
    int snapshot_owed;           /* a change was announced since */
};

/* Do whatever is due at now_mono (util_mono_ms). */
void ticker_run(struct ticker *t, struct app *app, int64_t now_mono);

#endif
