/* bind_autoscale.c — sluice.autoscale: the autoscaling rules as the API
 * shows them (GET /api/v1/autoscalers and /{queue}) and the operators'
 * holds (POST .../hold and .../release). An item is the rule's settings
 * from the policy in force, its hold (autoscale_held over the queue's row
 * and its stored hold) and what the leader last did: from this process's
 * autoscaler when it evaluated the rule, else from the state the leader
 * stored (a follower). */
#include "bind.h"
#include "autoscale.h"
#include "auth.h"
#include "leader.h"
#include "luajson.h"
#include "scaling.h"
#include "script.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* What every item of one answer is built from, read once. */
struct autoscale_view {
    struct app *app;
    struct policy_gen *g;
    struct scaling_target *targets;
    size_t ntargets;
    struct store_autoscale_hold *holds;
    size_t nholds;
    struct store_autoscale_state *states;
    size_t nstates;
    int64_t now_ms;
};

static void autoscale_view_free(struct autoscale_view *v) {
    policy_release(v->g);
    free(v->targets);
    free(v->holds);
    free(v->states);
}

/* Read the targets, holds and stored states. 0, or -1 with err. */
static int autoscale_view_load(struct app *app, struct autoscale_view *v, struct api_error *err) {
    int rc;
    memset(v, 0, sizeof *v);
    v->app = app;
    v->now_ms = util_now_ms();
    v->g = policy_acquire(app->pol);
    if (scaling_list(app, &v->targets, &v->ntargets, err) != 0) return -1;
    if ((rc = store_autoscale_holds(app->st, &v->holds, &v->nholds)) != STORE_OK ||
        (rc = store_autoscale_states(app->st, &v->states, &v->nstates)) != STORE_OK) {
        api_error_store(err, rc);
        return -1;
    }
    return 0;
}

/* The dynamic part of an item: this process's, else the stored one, else
 * nothing yet. New ref. */
static json_t *autoscale_dynamic(const struct autoscale_view *v, const char *queue) {
    json_t *state = autoscale_state_json(v->app->autoscale, queue);
    for (size_t i = 0; state == NULL && i < v->nstates; i++)
        if (strcmp(v->states[i].queue, queue) == 0)
            state = json_loads(v->states[i].state, 0, NULL);
    if (state == NULL)
        state = json_pack("{s:[], s:n, s:n, s:n}", "decisions", "last_decision", "error",
                          "next_evaluation_at");
    return state;
}

static json_t *autoscale_item_json(const struct autoscale_view *v, const struct policy_autoscale *a) {
    char ts[UTIL_TIME_MAX];
    const struct store_target *t = NULL;
    const struct store_autoscale_hold *h = NULL;
    struct autoscale_hold_view held;
    for (size_t i = 0; i < v->ntargets && t == NULL; i++)
        if (strcmp(v->targets[i].t.queue, a->queue) == 0) t = &v->targets[i].t;
    for (size_t i = 0; i < v->nholds && h == NULL; i++)
        if (strcmp(v->holds[i].queue, a->queue) == 0) h = &v->holds[i];
    autoscale_held(a, t, h, v->now_ms, &held);
    json_t *item = json_pack(
        "{s:s, s:b, s:b, s:I, s:I, s:I, s:b, s:o, s:o}", "queue", a->queue, "enabled", 1,
        "dry_run", a->dry_run, "every_s", (json_int_t)a->every_s, "hold_after_manual_s",
        (json_int_t)a->hold_after_manual_s, "scale_down_window_s",
        (json_int_t)a->scale_down_window_s, "allow_above_confirm", a->allow_above_confirm,
        "held_until", held.held ? json_string(util_format_time(held.until_ms, ts)) : json_null(),
        "hold",
        held.held ? json_pack("{s:s, s:s, s:s, s:s}", "kind", held.kind, "by", held.by, "reason",
                              held.reason, "until", util_format_time(held.until_ms, ts))
                  : json_null());
    json_t *dynamic = autoscale_dynamic(v, a->queue);
    json_object_update(item, dynamic);
    json_decref(dynamic);
    return item;
}

/* Push the item of queue, or nil, err (unknown_queue, no_autoscaler). */
static int autoscale_push_item(lua_State *L, struct app *app, const char *queue) {
    struct autoscale_view v;
    struct api_error err = {0};
    struct policy_bounds b;
    if (autoscale_view_load(app, &v, &err) != 0) {
        autoscale_view_free(&v);
        return bind_push_failure(L, &err);
    }
    const struct policy_autoscale *a = policy_gen_autoscale_of(v.g, queue, NULL);
    if (a == NULL) {
        if (policy_gen_bounds(v.g, queue, &b) != 0)
            api_error_set(&err, "unknown_queue", NULL, "queue '%s' is not declared by the policies",
                          queue);
        else
            api_error_set(&err, "no_autoscaler", NULL,
                          "queue '%s' has no autoscale rule in the policies", queue);
        autoscale_view_free(&v);
        return bind_push_failure(L, &err);
    }
    json_t **box = luajson_box(L);
    *box = autoscale_item_json(&v, a);
    autoscale_view_free(&v);
    luajson_push_boxed(L, box);
    return 1;
}

/* sluice.autoscale.list() -> {items, leader} | nil, err. Rules of queues
 * outside the caller's patterns are left out. */
static int autoscale_l_list(lua_State *L) {
    struct autoscale_view v;
    struct api_error err = {0};
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "expected no arguments");
    struct script_request *sr = script_current(L, "sluice.autoscale.list");
    struct app *app = script_app(L);
    if (autoscale_view_load(app, &v, &err) != 0) {
        autoscale_view_free(&v);
        return bind_push_failure(L, &err);
    }
    json_t **box = luajson_box(L);
    json_t *items = json_array();
    for (size_t i = 0; i < policy_gen_autoscale_count(v.g); i++) {
        const struct policy_autoscale *a = policy_gen_autoscale(v.g, i);
        if (auth_queue_allowed(&sr->principal, a->queue))
            json_array_append_new(items, autoscale_item_json(&v, a));
    }
    autoscale_view_free(&v);
    *box = json_pack("{s:o, s:b}", "items", items, "leader", leader_is(app->leader));
    luajson_push_boxed(L, box);
    return 1;
}

/* sluice.autoscale.get(queue) -> item | nil, err. */
static int autoscale_l_get(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a queue");
    script_current(L, "sluice.autoscale.get");
    return autoscale_push_item(L, script_app(L), luaL_checkstring(L, 1));
}

/* Hold (duration_s > 0) or release (0) queue's rule for the caller. */
static int autoscale_set_hold(lua_State *L, struct script_request *sr, const char *queue,
                              int64_t duration_s, const char *reason) {
    struct app *app = script_app(L);
    struct api_error err = {0};
    int rc;
    struct policy_gen *g = policy_acquire(app->pol);
    int has_rule = policy_gen_autoscale_of(g, queue, NULL) != NULL;
    policy_release(g);
    if (!has_rule) return autoscale_push_item(L, app, queue);    /* its 404 */
    if (!scaling_admit_write(app, sr->principal.token_id, queue, &err))
        return bind_push_failure(L, &err);
    struct store_autoscale_hold h;
    memset(&h, 0, sizeof h);
    util_copy(h.queue, sizeof h.queue, queue);
    h.created_ms = util_now_ms();
    h.until_ms = h.created_ms + duration_s * 1000;
    util_copy(h.by, sizeof h.by, sr->principal.name);
    util_copy(h.reason, sizeof h.reason, reason);
    if ((rc = store_autoscale_hold(app->st, &h)) != STORE_OK) return bind_push_store_failure(L, rc);
    autoscale_kick(app->autoscale);
    return autoscale_push_item(L, app, queue);
}

/* sluice.autoscale.hold(queue, {duration_s=, reason=}) -> item | nil, err. */
static int autoscale_l_hold(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected a queue and an options table");
    struct script_request *sr = script_current(L, "sluice.autoscale.hold");
    const char *queue = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "duration_s");
    lua_Integer duration = luaL_checkinteger(L, -1);
    luaL_argcheck(L, duration >= 1 && duration <= AUTOSCALE_HOLD_MAX_S, 2,
                  "duration_s must be in 1..604800");
    lua_getfield(L, 2, "reason");
    const char *reason = luaL_optstring(L, -1, "");
    return autoscale_set_hold(L, sr, queue, duration, reason);
}

/* sluice.autoscale.release(queue, {reason=}) -> item | nil, err. */
static int autoscale_l_release(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected a queue and an options table");
    struct script_request *sr = script_current(L, "sluice.autoscale.release");
    const char *queue = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "reason");
    const char *reason = luaL_optstring(L, -1, "");
    return autoscale_set_hold(L, sr, queue, 0, reason);
}

void bind_autoscale_open(lua_State *L) {
    static const luaL_Reg fns[] = {{"list", autoscale_l_list},
                                   {"get", autoscale_l_get},
                                   {"hold", autoscale_l_hold},
                                   {"release", autoscale_l_release},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
