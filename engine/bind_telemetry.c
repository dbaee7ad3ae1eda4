/* bind_telemetry.c — sluice.telemetry: the queue-health snapshot, live
 * event streams, Prometheus metrics and readiness. The *_body functions
 * hand the bytes cached with the model (health_current, health_body) to
 * the handler as a sluice.body, sent without passing through Lua tables;
 * so does history_body, rendered by history.c from its rings and the audit
 * log. */
#include "bind.h"
#include "bus.h"
#include "events.h"
#include "health.h"
#include "history.h"
#include "policy.h"
#include "metrics.h"
#include "store.h"
#include "telemetry.h"
#include "luajson.h"
#include "script.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* sluice.telemetry.snapshot() -> the /admin/runtime-scaling table, of the
 * caller's queues (a token limited to some sees only those: health.h) */
static int telemetry_l_snapshot(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    struct script_request *sr = script_current(L, "sluice.telemetry.snapshot");
    struct app *app = script_app(L);
    json_t **box = luajson_box(L);
    *box = health_snapshot_for(app, sr->principal.queues);
    luajson_push_boxed(L, box);
    return 1;
}

/* sluice.telemetry.snapshot_body() -> the same snapshot as a sluice.body:
 * the bytes cached with the model, sent as they are; for a caller limited
 * to queues, a body of those rendered for it. */
static int telemetry_l_snapshot_body(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    struct script_request *sr = script_current(L, "sluice.telemetry.snapshot_body");
    struct body **slot = luajson_body_box(L);
    struct health_model *m = health_current(script_app(L));
    *slot = health_snapshot_body_for(m, sr->principal.queues);
    health_release(m);
    if (*slot == NULL) return luaL_error(L, "sluice.telemetry.snapshot_body: out of memory");
    return 1;
}

/* The audit log's part of a history read of queue: its applied changes
 * since from_ms (newest first, at most SCALING's page of 500) and the
 * desired concurrency in force now. Store down: no changes and desired
 * unknown, so the series keeps only what was sampled. */
static void telemetry_history_audit(struct app *app, const char *queue, int64_t from_ms,
                                    const struct policy_bounds *b, struct history_audit *a,
                                    struct store_audit **rows) {
    struct store_audit_filter f = {0};
    struct store_target t;
    size_t n = 0;
    int rc;
    memset(a, 0, sizeof *a);
    a->desired_now = HISTORY_UNKNOWN;
    *rows = NULL;
    f.kind = "scaling";
    f.subject = queue;
    f.outcome = "applied";
    f.since_ms = from_ms;
    if (store_find_audit(app->st, &f, 500, rows, &n) != STORE_OK) return;
    rc = store_get_target(app->st, queue, &t);
    if (rc == STORE_OK) a->desired_now = t.desired;
    else if (rc == STORE_NOT_FOUND) a->desired_now = b->def;
    /* With the oldest changes cut off, what was in force before them is
     * not known: steps that old keep their samples only. */
    a->changes = *rows;
    a->nchanges = n;
    a->complete = n < 500;
}

/* sluice.telemetry.history_body(queue, range) -> the history of queue as a
 * sluice.body | nil, err, info (unknown_queue; forbidden for a queue out
 * of the caller's; a range not known raises). */
static int telemetry_l_history_body(lua_State *L) {
    struct api_error err = {0};
    struct policy_bounds b;
    struct history_audit audit;
    struct store_audit *rows = NULL;
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected queue, range");
    struct script_request *sr = script_current(L, "sluice.telemetry.history_body");
    struct app *app = script_app(L);
    const char *queue = luaL_checkstring(L, 1);
    const struct history_range *r = history_range_named(luaL_checkstring(L, 2));
    luaL_argcheck(L, r != NULL, 2, "range must be 15m, 1h, 6h or 24h");
    if (!auth_queue_allowed(&sr->principal, queue)) {
        api_error_set(&err, "forbidden", json_pack("{s:s}", "queue", queue),
                      "queue '%s' is out of these credentials' queues", queue);
        return bind_push_failure(L, &err);
    }
    if (policy_bounds(app->pol, queue, &b) != 0) {
        api_error_set(&err, "unknown_queue", NULL, "queue '%s' is not declared by the policies", queue);
        return bind_push_failure(L, &err);
    }
    int64_t now = util_now_ms();
    struct body **slot = luajson_body_box(L);                       /* body */
    telemetry_history_audit(app, queue, history_range_start(r, now), &b, &audit, &rows);
    *slot = history_render(app->history, queue, r, now, &audit);
    free(rows);
    if (*slot == NULL) return luaL_error(L, "sluice.telemetry.history_body: out of memory");
    return 1;
}

/* sluice.telemetry.stream() -> true; the answer becomes a Server-Sent
 * Events stream (the handler's body is ignored). */
static int telemetry_l_stream(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    struct script_request *sr = script_current(L, "sluice.telemetry.stream");
    deferred_plan_stream(&sr->answer);
    lua_pushboolean(L, 1);
    return 1;
}

/* The exposition of now as a body into a new sluice.body on the stack
 * (empty when it could not be rendered). */
static struct body *telemetry_metrics_body(lua_State *L) {
    struct app *app = script_app(L);
    struct body **slot = luajson_body_box(L);
    struct health_model *hm = health_current(app);
    *slot = hm ? metrics_body(app->metrics, hm, events_count(app->events)) : NULL;
    health_release(hm);
    return *slot;
}

static int telemetry_metrics_failed(lua_State *L) {
    struct api_error err = {0};
    api_error_set(&err, "internal", NULL, "metrics could not be rendered");
    return bind_push_failure(L, &err);
}

/* sluice.telemetry.metrics() -> the Prometheus text exposition | nil, err, info */
static int telemetry_l_metrics(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.telemetry.metrics");
    struct body *b = telemetry_metrics_body(L);           /* box */
    if (b == NULL) return telemetry_metrics_failed(L);
    lua_pushlstring(L, b->bytes, b->len);                 /* box, text */
    return 1;
}

/* sluice.telemetry.metrics_body() -> the exposition as a sluice.body, with
 * its content type | nil, err, info */
static int telemetry_l_metrics_body(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.telemetry.metrics_body");
    if (telemetry_metrics_body(L) == NULL) return telemetry_metrics_failed(L);
    return 1;
}

/* sluice.telemetry.ready() -> {store = "up"|"full"|"down", redis = "up"|"down"} */
static int telemetry_l_ready(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.telemetry.ready");
    struct app *app = script_app(L);
    int store_rc = store_ping(app->st);
    int redis_up = bus_redis_up(app->bus) && telemetry_redis_up(app->telemetry);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, store_rc == STORE_OK ? "up" : store_rc == STORE_FULL ? "full" : "down");
    lua_setfield(L, -2, "store");
    lua_pushstring(L, redis_up ? "up" : "down");
    lua_setfield(L, -2, "redis");
    return 1;
}

void bind_telemetry_open(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"snapshot", telemetry_l_snapshot}, {"snapshot_body", telemetry_l_snapshot_body},
        {"stream", telemetry_l_stream},     {"metrics", telemetry_l_metrics},
        {"metrics_body", telemetry_l_metrics_body}, {"ready", telemetry_l_ready},
        {"history_body", telemetry_l_history_body},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
