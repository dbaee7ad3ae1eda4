/* bind_notify.c — sluice.notify: the notification outbox as the API shows
 * it (GET /api/v1/notifications), over store.h's store_notify_* and the
 * sinks of the policy in force. */
#include "bind.h"
#include "auth.h"
#include "luajson.h"
#include "policy.h"
#include "script.h"
#include "store.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* A time, or null when never (0). New ref. */
static json_t *notify_time_json(int64_t ms) {
    char ts[UTIL_TIME_MAX];
    return ms > 0 ? json_string(util_format_time(ms, ts)) : json_null();
}

static json_t *notify_row_json(const struct store_notification *x) {
    int pending = strcmp(x->status, "pending") == 0;
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                     (json_int_t)x->id, "sink", x->sink, "event", x->event, "event_id", x->event_id,
                     "queue", x->queue, "status", x->status, "attempts", x->attempts, "last_status",
                     x->last_status ? json_integer(x->last_status) : json_null(), "last_error",
                     x->last_error[0] ? json_string(x->last_error) : json_null(), "created_at",
                     notify_time_json(x->created_ms), "last_attempt_at",
                     notify_time_json(x->last_attempt_ms), "next_attempt_at",
                     notify_time_json(pending ? x->next_attempt_ms : 0), "delivered_at",
                     notify_time_json(x->delivered_ms));
}

/* The declared sinks with their counts (and sinks no longer declared that
 * still have rows, "declared": false). New ref, NULL on failure with *rc. */
static json_t *notify_sinks_json(policy *pol, store *st, int *rc) {
    struct store_notify_summary *sum = NULL;
    size_t ns = 0;
    json_t *out = json_array();
    static const char *const event_names[] = {"alert", "change", "refusal", "approval"};
    if ((*rc = store_notify_summarize(st, &sum, &ns)) != STORE_OK) {
        json_decref(out);
        return NULL;
    }
    char *used = calloc(ns ? ns : 1, 1);
    struct policy_gen *g = policy_acquire(pol);
    for (size_t i = 0; i < policy_gen_sink_count(g); i++) {
        const struct policy_sink *s = policy_gen_sink(g, i);
        const struct store_notify_summary *c = NULL;
        for (size_t k = 0; k < ns && c == NULL; k++)
            if (strcmp(sum[k].sink, s->name) == 0) {
                c = &sum[k];
                if (used) used[k] = 1;
            }
        json_t *ev = json_array(), *qs = json_array();
        for (size_t k = 0; k < 4; k++)
            if (s->events & policy_event_bit(event_names[k])) json_array_append_new(ev, json_string(event_names[k]));
        for (size_t k = 0; k < s->nqueues; k++) json_array_append_new(qs, json_string(s->queues[k]));
        const char *secret = s->secret_env[0] ? getenv(s->secret_env) : NULL;
        json_array_append_new(out, json_pack(
            "{s:s, s:b, s:s, s:o, s:o, s:o, s:b, s:I, s:I, s:I, s:I, s:o}", "name", s->name,
            "declared", 1, "format", s->format, "events", ev, "queues", qs, "secret_env",
            s->secret_env[0] ? json_string(s->secret_env) : json_null(), "signed",
            secret && secret[0], "pending", (json_int_t)(c ? c->pending : 0), "delivered",
            (json_int_t)(c ? c->delivered : 0), "failed", (json_int_t)(c ? c->failed : 0),
            "failing", (json_int_t)(c ? c->failing : 0), "last_delivered_at",
            notify_time_json(c ? c->last_delivered_ms : 0)));
    }
    policy_release(g);
    for (size_t k = 0; k < ns; k++) {
        if (used && used[k]) continue;
        json_array_append_new(out, json_pack(
            "{s:s, s:b, s:I, s:I, s:I, s:I, s:o}", "name", sum[k].sink, "declared", 0, "pending",
            (json_int_t)sum[k].pending, "delivered", (json_int_t)sum[k].delivered, "failed",
            (json_int_t)sum[k].failed, "failing", (json_int_t)sum[k].failing, "last_delivered_at",
            notify_time_json(sum[k].last_delivered_ms)));
    }
    free(used);
    free(sum);
    return out;
}

/* sluice.notify.list{limit=, sink=, status=} -> {items, sinks} | nil, err.
 * Rows about queues outside the caller's patterns are left out. */
static int notify_l_list(lua_State *L) {
    struct store_notification *rows = NULL;
    size_t n = 0;
    int rc;
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected an options table");
    struct script_request *sr = script_current(L, "sluice.notify.list");
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "limit");
    int limit = (int)luaL_optinteger(L, -1, 50);
    lua_getfield(L, 1, "sink");
    const char *sink = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "status");
    const char *status = luaL_optstring(L, -1, NULL);
    luaL_argcheck(L, limit >= 1 && limit <= 500, 1, "limit must be in 1..500");
    struct app *app = script_app(L);
    if ((rc = store_notify_list(app->st, sink, status, limit, &rows, &n)) != STORE_OK)
        return bind_push_store_failure(L, rc);
    json_t **box = luajson_box(L);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        if (auth_queue_allowed(&sr->principal, rows[i].queue))
            json_array_append_new(items, notify_row_json(&rows[i]));
    free(rows);
    json_t *sinks = notify_sinks_json(app->pol, app->st, &rc);
    if (sinks == NULL) {
        json_decref(items);
        return bind_push_store_failure(L, rc);
    }
    *box = json_pack("{s:o, s:o}", "items", items, "sinks", sinks);
    luajson_push_boxed(L, box);
    return 1;
}

void bind_notify_open(lua_State *L) {
    static const luaL_Reg fns[] = {{"list", notify_l_list}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
