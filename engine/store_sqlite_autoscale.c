/* store_sqlite_autoscale.c — the SQLite backend's autoscaler tables
 * (store.h's store_autoscale_*): explicit holds of rules and the leader's
 * last view of each rule. Shares the pool and statement helpers of
 * store_sqlite.c through store_sqlite_int.h. */
#include "store_sqlite_int.h"

#include <string.h>

int sq_autoscale_hold(void *h, const struct store_autoscale_hold *x) {
    return sq_run(h, NULL, "INSERT INTO autoscale_holds (queue, until_ms, held_by, reason, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (queue) DO UPDATE SET"
                           " until_ms = ?2, held_by = ?3, reason = ?4, created_at = ?5",
                  "autoscale_hold",
                  SQ_ARGS(SQ_TEXT(x->queue), SQ_INT(x->until_ms), SQ_TEXT(x->by),
                          SQ_TEXT(x->reason), SQ_INT(x->created_ms)));
}

static void sq_read_hold(sqlite3_stmt *st, void *elem) {
    struct store_autoscale_hold *x = elem;
    util_copy(x->queue, sizeof x->queue, sq_text(st, 0));
    x->until_ms = sqlite3_column_int64(st, 1);
    util_copy(x->by, sizeof x->by, sq_text(st, 2));
    util_copy(x->reason, sizeof x->reason, sq_text(st, 3));
    x->created_ms = sqlite3_column_int64(st, 4);
}

int sq_autoscale_holds(void *h, struct store_autoscale_hold **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT queue, until_ms, held_by, reason, created_at"
                               " FROM autoscale_holds ORDER BY queue",
                      "autoscale_holds", sizeof **out, sq_read_hold, (void **)out, n, SQ_NO_ARGS);
}

int sq_autoscale_put_state(void *h, const char *queue, const char *state, int64_t now_ms) {
    return sq_run(h, NULL, "INSERT INTO autoscale_state (queue, state, updated_at) VALUES (?1, ?2, ?3)"
                           " ON CONFLICT (queue) DO UPDATE SET state = ?2, updated_at = ?3",
                  "autoscale_put_state", SQ_ARGS(SQ_TEXT(queue), SQ_TEXT(state), SQ_INT(now_ms)));
}

static void sq_read_state(sqlite3_stmt *st, void *elem) {
    struct store_autoscale_state *x = elem;
    util_copy(x->queue, sizeof x->queue, sq_text(st, 0));
    util_copy(x->state, sizeof x->state, sq_text(st, 1));
    x->updated_ms = sqlite3_column_int64(st, 2);
}

int sq_autoscale_states(void *h, struct store_autoscale_state **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT queue, state, updated_at FROM autoscale_state ORDER BY queue",
                      "autoscale_states", sizeof **out, sq_read_state, (void **)out, n, SQ_NO_ARGS);
}
