/* bind_scaling.c — sluice.scaling: list, get, set, revert, history and
 * the approvals (list, get, approve, reject) over scaling.c, and the api.md
 * JSON of what the domain answers (Target, the answer to a change, an
 * Approval, a page of the audit log). Approvals of queues outside the
 * caller's queue patterns are left out of lists and refused (403) by id. The caller's identity,
 * scopes, source and request id come from the request being served, never
 * from the script's arguments.
 *
 * Reads (list, get and their *_body forms) answer from the queue-health
 * model (health_current), which holds every declared queue's stored row
 * and bounds from one listing query, and is rebuilt for a read after any
 * change this replica announced: a PUT then a GET shows the new version.
 * The Target JSON of each queue and the list are rendered once per model
 * and kept with it (health_body). When the model's listing failed, or the
 * queue is not in it, the read goes to the store, as before, so errors
 * (store_unavailable, unknown_queue) are the store's and the domain's. */
#include "audit.h"
#include "auth.h"
#include "body.h"
#include "health.h"
#include "protocol.h"
#include "bind.h"
#include "luajson.h"
#include "scaling.h"
#include "script.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* ---- rendering: the api.md shapes of the domain's answers ---------------------- */

static json_t *scaling_time_or_null(int64_t ms) {
    char ts[UTIL_TIME_MAX];
    return ms ? json_string(util_format_time(ms, ts)) : json_null();
}

/* A Target's pause: "paused", "paused_until" (a timed pause's end), and
 * who paused it, when and why (null when running). */
static void scaling_pause_fields(const struct store_target *t, json_t *out) {
    int p = t->paused != 0;
    json_object_set_new(out, "paused", json_boolean(p));
    json_object_set_new(out, "paused_until", scaling_time_or_null(p ? t->paused_until_ms : 0));
    json_object_set_new(out, "paused_by", p ? json_string(t->paused_by) : json_null());
    json_object_set_new(out, "paused_at", scaling_time_or_null(p ? t->paused_at_ms : 0));
    json_object_set_new(out, "paused_reason", p ? json_string(t->paused_reason) : json_null());
}

/* A Target. New ref. */
static json_t *scaling_target_json(const struct scaling_target *st) {
    const struct store_target *t = &st->t;
    int changed = t->version > 0;
    json_t *out = json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "queue", t->queue,
                     "desired_concurrency", (json_int_t)t->desired, "version",
                     (json_int_t)t->version, "updated_by",
                     changed ? json_string(t->updated_by) : json_null(), "updated_at",
                     scaling_time_or_null(changed ? t->updated_at_ms : 0), "reason",
                     changed ? json_string(t->reason) : json_null(), "expires_at",
                     scaling_time_or_null(t->expires_at_ms), "revert_to",
                     t->expires_at_ms ? json_integer(t->revert_to) : json_null(), "bounds",
                     policy_bounds_json(&st->b));
    if (out == NULL) return NULL;
    /* A stored value a policy reload left outside the bounds says so. */
    json_object_set_new(out, "out_of_bounds", json_boolean(t->desired < st->b.min || t->desired > st->b.max));
    scaling_pause_fields(t, out);
    json_object_set_new(out, "change_window",
                        st->has_window ? policy_window_json(&st->b, &st->window, st->window_at_ms)
                                       : json_null());
    return out;
}

/* The answer to an accepted change: the Target, "previous", "changed" and
 * "audit_id" (null when nothing was stored). New ref. */
static json_t *scaling_outcome_json(const struct scaling_outcome *o) {
    json_t *out = scaling_target_json(&o->after);
    json_object_set_new(out, "previous", json_integer(o->previous));
    json_object_set_new(out, "changed", json_boolean(o->changed));
    json_object_set_new(out, "audit_id", o->audit_id ? json_integer(o->audit_id) : json_null());
    return out;
}

/* An Approval (api.md). New ref. */
static json_t *scaling_approval_json(const struct store_approval *a) {
    char ts[UTIL_TIME_MAX];
    json_t *out = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "id", a->id, "status",
                            a->status, "queue", a->queue, "from", (json_int_t)a->from, "to",
                            (json_int_t)a->desired, "requested_by", a->requested_by, "reason",
                            a->reason, "source", a->source, "request_id", a->request_id);
    if (out == NULL) return NULL;
    json_object_set_new(out, "requested_at", json_string(util_format_time(a->created_at_ms, ts)));
    json_object_set_new(out, "expires_at", json_string(util_format_time(a->expires_at_ms, ts)));
    json_object_set_new(out, "duration_s", a->duration_s ? json_integer(a->duration_s) : json_null());
    json_object_set_new(out, "from_version",
                        a->from_version ? json_integer(a->from_version) : json_null());
    json_object_set_new(out, "decided_by", a->decided_at_ms ? json_string(a->decided_by) : json_null());
    json_object_set_new(out, "decided_at", scaling_time_or_null(a->decided_at_ms));
    json_object_set_new(out, "decision_reason",
                        a->decided_at_ms ? json_string(a->decision_reason) : json_null());
    json_object_set_new(out, "result", a->result[0] ? json_string(a->result) : json_null());
    json_object_set_new(out, "result_code",
                        a->result_code[0] ? json_string(a->result_code) : json_null());
    return out;
}

/* The answer to a change: the outcome, or {"approval": Approval} when it
 * waits for one. New ref. */
static json_t *scaling_answer_json(const struct scaling_outcome *o) {
    if (o->pending) return json_pack("{s:o}", "approval", scaling_approval_json(&o->approval));
    return scaling_outcome_json(o);
}

/* Push the rendered *box (owned), or the failure: nil, message, info. */
static int scaling_push_result(lua_State *L, json_t **box, int rc, struct api_error *err) {
    if (rc != 0) return bind_push_failure(L, err);
    if (*box == NULL) {
        api_error_set(err, "internal", NULL, "internal error");
        return bind_push_failure(L, err);
    }
    luajson_push_boxed(L, box);
    return 1;
}

/* ---- reads ------------------------------------------------------------------ */

/* The Target of queue q of model m. */
static struct scaling_target scaling_of_model(const struct health_model *m,
                                              const struct queue_health *q) {
    struct scaling_target st;
    memset(&st, 0, sizeof st);
    st.t = q->target;
    st.b = q->bounds;
    st.has_window = health_change_window(m, q, &st.window) == 0;
    st.window_at_ms = m->built_at_ms;
    return st;
}

/* health_render_fn: the list of every queue of m. */
static struct body *scaling_render_list(const struct health_model *m, size_t index, void *ud) {
    json_t *arr = json_array(), *list;
    struct body *b;
    (void)index;
    (void)ud;
    for (size_t i = 0; i < m->nqueues; i++) {
        struct scaling_target st = scaling_of_model(m, &m->queues[i]);
        json_array_append_new(arr, scaling_target_json(&st));
    }
    list = json_pack("{s:o}", "items", arr);
    b = list ? body_from_json(list) : NULL;
    json_decref(list);
    return b;
}

/* health_render_fn: the Target of m's queue at index. */
static struct body *scaling_render_target(const struct health_model *m, size_t index, void *ud) {
    struct scaling_target st = scaling_of_model(m, &m->queues[index]);
    json_t *t = scaling_target_json(&st);
    struct body *b = t ? body_from_json(t) : NULL;
    (void)ud;
    json_decref(t);
    return b;
}

/* The list from the store, for when the model cannot answer. New ref, or
 * NULL with err. */
static json_t *scaling_list_from_store(struct app *app, struct api_error *err) {
    struct scaling_target *items = NULL;
    size_t n = 0;
    json_t *out = NULL;
    if (scaling_list(app, &items, &n, err) != 0) return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, scaling_target_json(&items[i]));
    out = json_pack("{s:o}", "items", arr);
    free(items);
    if (out == NULL) api_error_set(err, "internal", NULL, "internal error");
    return out;
}

/* The Target of queue from the store. New ref, or NULL with err. */
static json_t *scaling_get_from_store(struct app *app, const char *queue, struct api_error *err) {
    struct scaling_target t;
    json_t *out;
    if (scaling_get(app, queue, &t, err) != 0) return NULL;
    if ((out = scaling_target_json(&t)) == NULL) api_error_set(err, "internal", NULL, "internal error");
    return out;
}

/* The body of a read from a model that can answer it: the list (queue
 * NULL) or queue's Target. NULL when the model cannot (its listing failed,
 * the queue is not in it) or out of memory: then the store answers. */
static struct body *scaling_model_body(struct app *app, const char *queue) {
    struct health_model *m = health_current(app);
    struct body *b = NULL;
    const struct queue_health *q;
    if (m == NULL || !m->targets_ok) goto done;
    if (queue == NULL) {
        b = health_body(m, HEALTH_BODY_SCALING_LIST, 0, scaling_render_list, NULL);
    } else if ((q = health_queue(m, queue)) != NULL) {
        b = health_body(m, HEALTH_BODY_TARGET, (size_t)(q - m->queues), scaling_render_target, NULL);
    }
done:
    health_release(m);
    return b;
}

/* Push the read of the list (queue NULL) or of queue's Target: a
 * sluice.body (as_body) or a table, or nil, err, info. */
static int scaling_push_read(lua_State *L, const char *queue, int as_body) {
    struct api_error err = {0};
    struct app *app = script_app(L);
    struct body **slot = luajson_body_box(L);                      /* body */
    if ((*slot = scaling_model_body(app, queue)) == NULL) {
        json_t *v = queue ? scaling_get_from_store(app, queue, &err) : scaling_list_from_store(app, &err);
        if (v == NULL) return bind_push_failure(L, &err);
        *slot = body_from_json(v);
        json_decref(v);
        if (*slot == NULL) {
            api_error_set(&err, "internal", NULL, "internal error");
            return bind_push_failure(L, &err);
        }
    }
    if (as_body) return 1;
    /* A table for handlers that look inside: parsed from the same bytes. */
    json_t **box = luajson_box(L);                                  /* body, box */
    *box = json_loadb((*slot)->bytes, (*slot)->len, 0, NULL);
    if (*box == NULL) return luaL_error(L, "out of memory");
    luajson_push_boxed(L, box);                                     /* body, value */
    return 1;
}

/* sluice.scaling.list() -> {items = {Target...}} | nil, err */
static int scaling_l_list(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.scaling.list");
    return scaling_push_read(L, NULL, 0);
}

/* sluice.scaling.list_body() -> the same list as a sluice.body | nil, err */
static int scaling_l_list_body(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    script_current(L, "sluice.scaling.list_body");
    return scaling_push_read(L, NULL, 1);
}

/* sluice.scaling.get(queue) -> Target | nil, err */
static int scaling_l_get(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a queue name");
    script_current(L, "sluice.scaling.get");
    return scaling_push_read(L, luaL_checkstring(L, 1), 0);
}

/* sluice.scaling.get_body(queue) -> the same Target as a sluice.body | nil, err */
static int scaling_l_get_body(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a queue name");
    script_current(L, "sluice.scaling.get_body");
    return scaling_push_read(L, luaL_checkstring(L, 1), 1);
}

/* Optional integer field of the table at idx; raises on a wrong type,
 * naming fname. */
static int scaling_opt_int(lua_State *L, int idx, const char *fname, const char *key, int64_t *out) {
    int t = lua_getfield(L, idx, key);
    int present = t != LUA_TNIL && !luajson_is_null(L, -1);
    if (present) {
        if (!lua_isinteger(L, -1)) luaL_error(L, "%s: %s must be an integer", fname, key);
        *out = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return present;
}

/* sluice.scaling.set(queue, {desired_concurrency, reason, confirm?,
 *   expected_version?, duration_s?}) -> Target + previous | nil, err */
static int scaling_l_set(lua_State *L) {
    struct api_error err = {0};
    struct scaling_change c;
    struct scaling_outcome o;
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected queue, change");
    struct script_request *sr = script_current(L, "sluice.scaling.set");
    memset(&c, 0, sizeof c);
    c.queue = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!scaling_opt_int(L, 2, "sluice.scaling.set", "desired_concurrency", &c.to))
        return luaL_error(L, "sluice.scaling.set: desired_concurrency is required");
    lua_getfield(L, 2, "reason");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "reason must be a string");
    c.reason = lua_tostring(L, -1);             /* stays on the stack: kept alive */
    lua_getfield(L, 2, "confirm");
    c.confirm = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c.has_expected_version = scaling_opt_int(L, 2, "sluice.scaling.set", "expected_version", &c.expected_version);
    scaling_opt_int(L, 2, "sluice.scaling.set", "duration_s", &c.duration_s);
    c.actor = sr->principal.name;
    c.scopes = sr->principal.scopes;
    c.source = sr->source;
    c.request_id = sr->http->request_id;
    c.token_id = sr->principal.token_id;       /* a session writes as its token */
    json_t **box = luajson_box(L);
    int rc = scaling_set(script_app(L), &c, &o, &err);
    if (rc == 0) *box = scaling_answer_json(&o);
    return scaling_push_result(L, box, rc, &err);
}

/* Optional string field key of the table at idx into *out (kept alive by
 * the table); raises on a wrong type, naming fname. */
static void scaling_opt_str(lua_State *L, int idx, const char *fname, const char *key,
                            const char **out) {
    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL && !luajson_is_null(L, -1)) {
        if (t != LUA_TSTRING) luaL_error(L, "%s: %s must be a string", fname, key);
        *out = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
}

/* Optional RFC 3339 time field key into *ms. Returns 0, or -1 with err
 * (invalid_field naming key) when it is not such a time. */
static int scaling_opt_time(lua_State *L, int idx, const char *key, int64_t *ms,
                            struct api_error *err) {
    const char *text = NULL;
    scaling_opt_str(L, idx, "sluice.scaling.history", key, &text);
    if (text == NULL || audit_parse_time(text, ms) == 0) return 0;
    api_error_set(err, "invalid_field", json_pack("{s:s}", "field", key),
                  "'%s' must be an RFC 3339 time such as 2026-11-29T13:00:00Z", key);
    return -1;
}

/* sluice.scaling.history(queue | nil [, {limit =, before =, queue =, actor =,
 *   outcome =, source =, kind =, since =, until =}])
 *   -> {items, next_before} | nil, err
 * since and until are RFC 3339 times (a bad one: invalid_field). */
static int scaling_l_history(lua_State *L) {
    static const char *const fname = "sluice.scaling.history";
    struct api_error err = {0};
    struct store_audit_filter f = {0};
    struct store_audit *rows = NULL;
    size_t count = 0;
    int64_t next = 0;
    int64_t limit = 50;
    int rc = -1, n = lua_gettop(L);
    luaL_argcheck(L, n == 1 || n == 2, n, "expected queue or nil [, options]");
    script_current(L, fname);
    const char *queue = lua_isnil(L, 1) ? NULL : luaL_checkstring(L, 1);
    if (n == 2) {
        luaL_checktype(L, 2, LUA_TTABLE);
        scaling_opt_int(L, 2, fname, "limit", &limit);
        scaling_opt_int(L, 2, fname, "before", &f.before_id);
        luaL_argcheck(L, limit >= 1 && limit <= SCALING_HISTORY_MAX, 2, "limit must be 1..500");
        luaL_argcheck(L, f.before_id >= 0, 2, "before must be >= 0");
        scaling_opt_str(L, 2, fname, "queue", &f.subject);
        scaling_opt_str(L, 2, fname, "actor", &f.actor);
        scaling_opt_str(L, 2, fname, "outcome", &f.outcome);
        scaling_opt_str(L, 2, fname, "source", &f.source);
        scaling_opt_str(L, 2, fname, "kind", &f.kind);
    }
    json_t **box = luajson_box(L);
    if (n == 2 && (scaling_opt_time(L, 2, "since", &f.since_ms, &err) != 0 ||
                   scaling_opt_time(L, 2, "until", &f.until_ms, &err) != 0))
        return bind_push_failure(L, &err);
    rc = scaling_history(script_app(L), queue, &f, (int)limit, &rows, &count, &next, &err);
    if (rc == 0) {
        json_t *items = json_array();
        for (size_t i = 0; i < count; i++) json_array_append_new(items, audit_entry_json(&rows[i]));
        *box = json_pack("{s:o, s:o}", "items", items, "next_before",
                         next ? json_integer(next) : json_null());
    }
    free(rows);
    return scaling_push_result(L, box, rc, &err);
}

/* sluice.scaling.await(queue, version, wait_ms)
 * Hold this request's 200 answer until every live worker of queue has
 * applied version, or wait_ms passed; the answer then gains
 * "acks": {expected, acknowledged, complete}. The HTTP thread is released
 * meanwhile. Plans the wait on the request (deferred.h); the host applies
 * it to what the handler returns. -> true */
static int scaling_l_await(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 3, 3, "expected queue, version, wait_ms");
    struct script_request *sr = script_current(L, "sluice.scaling.await");
    const char *queue = luaL_checkstring(L, 1);
    lua_Integer version = luaL_checkinteger(L, 2);
    lua_Integer wait_ms = luaL_checkinteger(L, 3);
    luaL_argcheck(L, protocol_valid_name(queue), 1, "not a queue name");
    luaL_argcheck(L, version >= 0, 2, "version must be >= 0");
    luaL_argcheck(L, wait_ms >= 0 && wait_ms <= DEFERRED_WAIT_MAX_MS, 3, "wait_ms must be 0..30000");
    deferred_plan_wait(&sr->answer, queue, version, wait_ms);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- approvals and revert (issue 18) ------------------------------------------ */

/* sluice.scaling.revert(queue, {to_version, reason, confirm?})
 *   -> Target + previous | {approval = Approval} | nil, err */
static int scaling_l_revert(lua_State *L) {
    static const char *const fname = "sluice.scaling.revert";
    struct api_error err = {0};
    struct scaling_change c;
    struct scaling_outcome o;
    int64_t version = 0;
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected queue, revert");
    struct script_request *sr = script_current(L, fname);
    memset(&c, 0, sizeof c);
    c.queue = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!scaling_opt_int(L, 2, fname, "to_version", &version))
        return luaL_error(L, "%s: to_version is required", fname);
    lua_getfield(L, 2, "reason");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "reason must be a string");
    c.reason = lua_tostring(L, -1);             /* stays on the stack: kept alive */
    lua_getfield(L, 2, "confirm");
    c.confirm = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c.actor = sr->principal.name;
    c.scopes = sr->principal.scopes;
    c.source = sr->source;
    c.request_id = sr->http->request_id;
    c.token_id = sr->principal.token_id;
    json_t **box = luajson_box(L);
    int rc = scaling_revert(script_app(L), &c, version, &o, &err);
    if (rc == 0) *box = scaling_answer_json(&o);
    return scaling_push_result(L, box, rc, &err);
}

/* sluice.scaling.approvals({status = "pending"|...|"all", limit = n})
 *   -> {items = {Approval...}} | nil, err
 * Approvals of queues outside the caller's patterns are left out. */
static int scaling_l_approvals(lua_State *L) {
    static const char *const fname = "sluice.scaling.approvals";
    struct api_error err = {0};
    struct store_approval *rows = NULL;
    size_t n = 0;
    const char *status = "pending";
    int64_t limit = 50;
    luaL_argcheck(L, lua_gettop(L) <= 1, 1, "expected [options]");
    struct script_request *sr = script_current(L, fname);
    if (lua_gettop(L) == 1) {
        luaL_checktype(L, 1, LUA_TTABLE);
        scaling_opt_str(L, 1, fname, "status", &status);
        scaling_opt_int(L, 1, fname, "limit", &limit);
        luaL_argcheck(L, limit >= 1 && limit <= SCALING_HISTORY_MAX, 1, "limit must be 1..500");
    }
    if (strcmp(status, "all") == 0) status = NULL;
    json_t **box = luajson_box(L);
    int rc = scaling_approvals(script_app(L), status, (int)limit, &rows, &n, &err);
    if (rc == 0) {
        json_t *items = json_array();
        for (size_t i = 0; i < n; i++)
            if (auth_queue_allowed(&sr->principal, rows[i].queue))
                json_array_append_new(items, scaling_approval_json(&rows[i]));
        *box = json_pack("{s:o}", "items", items);
    }
    free(rows);
    return scaling_push_result(L, box, rc, &err);
}

/* 0 when the caller may act on the queue of approval a, else -1 with
 * forbidden (the same answer as any route of a queue out of its scope). */
static int scaling_approval_scope(const struct script_request *sr, const struct store_approval *a,
                                  struct api_error *err) {
    if (auth_queue_allowed(&sr->principal, a->queue)) return 0;
    api_error_set(err, "forbidden", json_pack("{s:s}", "queue", a->queue),
                  "this token may not act on queue '%s'", a->queue);
    return -1;
}

/* sluice.scaling.approval(id) -> Approval | nil, err */
static int scaling_l_approval(lua_State *L) {
    struct api_error err = {0};
    struct store_approval a;
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected an approval id");
    struct script_request *sr = script_current(L, "sluice.scaling.approval");
    const char *id = luaL_checkstring(L, 1);
    json_t **box = luajson_box(L);
    int rc = scaling_approval_get(script_app(L), id, &a, &err);
    if (rc == 0) rc = scaling_approval_scope(sr, &a, &err);
    if (rc == 0) *box = scaling_approval_json(&a);
    return scaling_push_result(L, box, rc, &err);
}

/* sluice.scaling.approve(id, {reason?}) / reject(id, {reason})
 *   -> {approval = Approval, change = Target + previous (approve)} | nil, err
 * The approver is the caller; see scaling_approve for the rules. */
static int scaling_decide_l(lua_State *L, int approve) {
    const char *fname = approve ? "sluice.scaling.approve" : "sluice.scaling.reject";
    struct api_error err = {0};
    struct store_approval a;
    struct scaling_outcome o;
    const char *reason = "";
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected id, decision");
    struct script_request *sr = script_current(L, fname);
    const char *id = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    scaling_opt_str(L, 2, fname, "reason", &reason);
    struct scaling_decider d = {sr->principal.name, sr->principal.token_id, sr->principal.scopes,
                                sr->source, sr->http->request_id, reason};
    json_t **box = luajson_box(L);
    memset(&a, 0, sizeof a);
    int rc = scaling_approval_get(script_app(L), id, &a, &err);
    if (rc == 0) rc = scaling_approval_scope(sr, &a, &err);
    if (rc == 0)
        rc = approve ? scaling_approve(script_app(L), id, &d, &a, &o, &err)
                     : scaling_reject(script_app(L), id, &d, &a, &err);
    if (rc == 0) {
        *box = json_pack("{s:o}", "approval", scaling_approval_json(&a));
        if (*box && approve) json_object_set_new(*box, "change", scaling_outcome_json(&o));
    }
    return scaling_push_result(L, box, rc, &err);
}

static int scaling_l_approve(lua_State *L) { return scaling_decide_l(L, 1); }
static int scaling_l_reject(lua_State *L) { return scaling_decide_l(L, 0); }

/* ---- pause and resume -------------------------------------------------------- */

/* sluice.scaling.pause(queue, {reason, duration_s?}) and
 * sluice.scaling.resume(queue, {reason}) -> Target + previous, changed,
 * audit_id | nil, err. A queue outside the caller's token's queues is
 * forbidden (403) before anything else. */
static int scaling_pause_call(lua_State *L, int pause) {
    const char *fname = pause ? "sluice.scaling.pause" : "sluice.scaling.resume";
    struct api_error err = {0};
    struct scaling_pause p;
    struct scaling_outcome o;
    luaL_argcheck(L, lua_gettop(L) == 2, 2, "expected queue, options");
    struct script_request *sr = script_current(L, fname);
    memset(&p, 0, sizeof p);
    p.queue = luaL_checkstring(L, 1);
    p.pause = pause;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "reason");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "reason must be a string");
    p.reason = lua_tostring(L, -1);             /* stays on the stack: kept alive */
    if (pause) {
        scaling_opt_int(L, 2, fname, "duration_s", &p.duration_s);
        luaL_argcheck(L, p.duration_s >= 0, 2, "duration_s must be >= 0");
    }
    p.actor = sr->principal.name;
    p.source = sr->source;
    p.request_id = sr->http->request_id;
    p.token_id = sr->principal.token_id;
    json_t **box = luajson_box(L);
    if (!auth_queue_allowed(&sr->principal, p.queue)) {
        api_error_set(&err, "forbidden", json_pack("{s:s}", "queue", p.queue),
                      "this token may not act on queue '%s'", p.queue);
        return bind_push_failure(L, &err);
    }
    int rc = scaling_pause(script_app(L), &p, &o, &err);
    if (rc == 0) *box = scaling_outcome_json(&o);
    return scaling_push_result(L, box, rc, &err);
}

static int scaling_l_pause(lua_State *L) { return scaling_pause_call(L, 1); }
static int scaling_l_resume(lua_State *L) { return scaling_pause_call(L, 0); }

void bind_scaling_open(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"list", scaling_l_list}, {"list_body", scaling_l_list_body},
        {"get", scaling_l_get},   {"get_body", scaling_l_get_body},
        {"set", scaling_l_set},   {"history", scaling_l_history},
        {"await", scaling_l_await},
        {"revert", scaling_l_revert}, {"approvals", scaling_l_approvals},
        {"approval", scaling_l_approval}, {"approve", scaling_l_approve},
        {"reject", scaling_l_reject}, {"pause", scaling_l_pause},
        {"resume", scaling_l_resume}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
