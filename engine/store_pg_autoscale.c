/* store_pg_autoscale.c — the PostgreSQL backend's autoscaler tables
 * (store.h's store_autoscale_*): explicit holds of rules, written by any
 * replica, and the leader's last view of each rule, which followers read.
 * Shares the pool and statement helpers of store_pg.c. */
#include "store_pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pg_autoscale_hold(void *h, const struct store_autoscale_hold *x) {
    struct pg_store *s = h;
    char until[24], at[24];
    int rc;
    const char *pv[5] = {x->queue, I64(until, x->until_ms), x->by, x->reason,
                         I64(at, x->created_ms)};
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PQclear(pg_run(p, "INSERT INTO autoscale_holds (queue, until_ms, held_by, reason, created_at)"
                      " VALUES ($1, $2::bigint, $3, $4, $5::bigint) ON CONFLICT (queue) DO UPDATE"
                      " SET until_ms = EXCLUDED.until_ms, held_by = EXCLUDED.held_by,"
                      " reason = EXCLUDED.reason, created_at = EXCLUDED.created_at",
                   5, pv, "autoscale_hold", &rc));
    pg_release(s, p);
    return rc;
}

static void pg_read_hold(PGresult *r, int row, void *elem) {
    struct store_autoscale_hold *x = elem;
    util_copy(x->queue, sizeof x->queue, pg_text(r, row, 0));
    x->until_ms = pg_int(r, row, 1);
    util_copy(x->by, sizeof x->by, pg_text(r, row, 2));
    util_copy(x->reason, sizeof x->reason, pg_text(r, row, 3));
    x->created_ms = pg_int(r, row, 4);
}

int pg_autoscale_holds(void *h, struct store_autoscale_hold **out, size_t *n) {
    return pg_collect(h, NULL, "SELECT queue, until_ms, held_by, reason, created_at"
                               " FROM autoscale_holds ORDER BY queue",
                      0, NULL, sizeof **out, pg_read_hold, (void **)out, n);
}

int pg_autoscale_put_state(void *h, const char *queue, const char *state, int64_t now_ms) {
    struct pg_store *s = h;
    char at[24];
    int rc;
    const char *pv[3] = {queue, state, I64(at, now_ms)};
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PQclear(pg_run(p, "INSERT INTO autoscale_state (queue, state, updated_at)"
                      " VALUES ($1, $2, $3::bigint) ON CONFLICT (queue) DO UPDATE"
                      " SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
                   3, pv, "autoscale_put_state", &rc));
    pg_release(s, p);
    return rc;
}

static void pg_read_state(PGresult *r, int row, void *elem) {
    struct store_autoscale_state *x = elem;
    util_copy(x->queue, sizeof x->queue, pg_text(r, row, 0));
    util_copy(x->state, sizeof x->state, pg_text(r, row, 1));
    x->updated_ms = pg_int(r, row, 2);
}

int pg_autoscale_states(void *h, struct store_autoscale_state **out, size_t *n) {
    return pg_collect(h, NULL, "SELECT queue, state, updated_at FROM autoscale_state ORDER BY queue",
                      0, NULL, sizeof **out, pg_read_state, (void **)out, n);
}
