/* policy_autoscale.c — the autoscale "queue" { ... } declarations of a
 * policy generation: resolving them into struct policy_autoscale (with
 * file:line errors), and running a rule in the generation's own autoscale
 * state (L_auto, under auto_lock: never the state or lock of a change or
 * of the alert rules) for autoscale.c. */
#include "policy_int.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- resolving ------------------------------------------------------------------- */

/* A boolean field of the spec (absent: 0). */
static int policy_bool_field(lua_State *L, int decl, int spec, const char *key, const char *what) {
    int t = lua_getfield(L, spec, key), v = 0;
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        policy_decl_error(L, decl, "%s: %s must be true or false", what, key);
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void policy_resolve_autoscale(lua_State *L, struct policy_gen *g) {
    static const char *const fields[] = {"every_s", "rule", "dry_run", "hold_after_manual_s",
                                         "scale_down_window_s", "allow_above_confirm", NULL};
    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_AUTOSCALE);   /* list */
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
        struct policy_autoscale a = {.every_s = 15, .hold_after_manual_s = 900,
                                     .scale_down_window_s = 300};
        struct policy_bounds b;
        char what[96];
        lua_rawgeti(L, list, i);                                 /* list, decl */
        int decl = lua_gettop(L);
        lua_getfield(L, decl, "name");                           /* list, decl, name */
        util_copy(a.queue, sizeof a.queue, lua_tostring(L, -1));
        snprintf(what, sizeof what, "autoscale '%s'", a.queue);
        if (lua_getfield(L, decl, "spec") != LUA_TTABLE)         /* list, decl, name, spec */
            policy_decl_error(L, decl, "%s has no { ... } after its name", what);
        int spec = lua_gettop(L);
        if (policy_gen_bounds(g, a.queue, &b) != 0)
            policy_decl_error(L, decl, "%s: queue '%s' is not declared (add queue \"%s\" { ... })",
                              what, a.queue, a.queue);
        for (size_t k = 0; k < g->nautoscale; k++)
            if (strcmp(g->autoscale[k].queue, a.queue) == 0)
                policy_decl_error(L, decl, "%s declared twice (one autoscale per queue)", what);
        policy_check_fields(L, decl, spec, fields, what);
        if (lua_getfield(L, spec, "rule") != LUA_TFUNCTION)
            policy_decl_error(L, decl, "%s: rule = function(q, ctx) ... end is required", what);
        lua_pop(L, 1);
        policy_int_field(L, decl, spec, "every_s", 1, 3600, what, &a.every_s);
        policy_int_field(L, decl, spec, "hold_after_manual_s", 0, 86400, what,
                         &a.hold_after_manual_s);
        policy_int_field(L, decl, spec, "scale_down_window_s", 0, 86400, what,
                         &a.scale_down_window_s);
        a.dry_run = policy_bool_field(L, decl, spec, "dry_run", what);
        a.allow_above_confirm = policy_bool_field(L, decl, spec, "allow_above_confirm", what);
        g->autoscale[g->nautoscale++] = a;       /* one per declared queue: never past the array */
        lua_pop(L, 3);                                           /* list */
    }
    lua_pop(L, 1);
}

size_t policy_gen_autoscale_count(const struct policy_gen *g) { return g ? g->nautoscale : 0; }

const struct policy_autoscale *policy_gen_autoscale(const struct policy_gen *g, size_t i) {
    return g && i < g->nautoscale ? &g->autoscale[i] : NULL;
}

const struct policy_autoscale *policy_gen_autoscale_of(const struct policy_gen *g,
                                                       const char *queue, size_t *index) {
    for (size_t i = 0; g && i < g->nautoscale; i++) {
        if (strcmp(g->autoscale[i].queue, queue) == 0) {
            if (index) *index = i;
            return &g->autoscale[i];
        }
    }
    return NULL;
}

/* ---- running a rule ---------------------------------------------------------------- */

struct policy_autoscale_call {
    lua_Integer decl_index;                  /* in POLICY_REG_AUTOSCALE */
    const struct policy_autoscale_q *q;
    const struct policy_autoscale_ctx *ctx;
    const struct policy_autoscale *a;
};

/* Field k: v, or nothing (nil) when not known. */
static void policy_set_known(lua_State *L, const char *k, int64_t v) {
    if (v != POLICY_UNKNOWN) policy_set_int(L, k, v);
}

static void policy_set_rate(lua_State *L, const char *k, double v) {
    if (isnan(v)) return;
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void policy_push_autoscale_q(lua_State *L, const struct policy_autoscale_q *q) {
    const struct policy_bounds *b = q->b;
    lua_createtable(L, 0, 16);                                  /* q */
    policy_set_str(L, "queue", q->queue);
    policy_set_known(L, "waiting", q->waiting);
    policy_set_known(L, "active", q->active);
    policy_set_known(L, "delayed", q->delayed);
    policy_set_known(L, "failed", q->failed);
    policy_set_known(L, "desired", q->desired);
    policy_set_known(L, "running", q->running);
    policy_set_known(L, "workers", q->workers);
    policy_set_rate(L, "done_per_s", q->done_per_s);
    policy_set_rate(L, "failed_per_s", q->failed_per_s);
    policy_set_bool(L, "paused", q->paused);
    policy_set_int(L, "min", b->min);
    policy_set_int(L, "max", b->max);
    policy_set_int(L, "max_step", b->max_step);
    if (b->confirm_above >= 0) policy_set_int(L, "confirm_above", b->confirm_above);
    if (b->approve_above >= 0) policy_set_int(L, "approve_above", b->approve_above);
}

static void policy_push_autoscale_ctx(lua_State *L, const struct policy_autoscale_call *c) {
    const struct policy_autoscale_ctx *ctx = c->ctx;
    lua_createtable(L, 0, 5);                                   /* ctx */
    policy_set_int(L, "now", ctx->now_ms);
    policy_set_int(L, "every_s", c->a->every_s);
    policy_set_bool(L, "dry_run", c->a->dry_run);
    lua_createtable(L, (int)ctx->nhistory, 0);                  /* ctx, history */
    for (size_t i = 0; i < ctx->nhistory; i++) {
        const struct policy_autoscale_point *p = &ctx->history[i];
        lua_createtable(L, 0, 8);                               /* ctx, history, sample */
        policy_set_int(L, "t", p->at_ms);
        policy_set_known(L, "waiting", p->waiting);
        policy_set_known(L, "active", p->active);
        policy_set_known(L, "desired", p->desired);
        policy_set_known(L, "running", p->running);
        policy_set_known(L, "workers", p->workers);
        policy_set_rate(L, "done_per_s", p->done_per_s);
        policy_set_rate(L, "failed_per_s", p->failed_per_s);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "history");
    lua_createtable(L, (int)ctx->ndecisions, 0);                /* ctx, decisions */
    for (size_t i = 0; i < ctx->ndecisions; i++) {
        const struct policy_autoscale_past *d = &ctx->decisions[i];
        lua_createtable(L, 0, 4);                               /* ctx, decisions, decision */
        policy_set_int(L, "at", d->at_ms);
        if (d->has_proposal) policy_set_int(L, "proposal", d->proposal);
        policy_set_str(L, "outcome", d->outcome);
        policy_set_str(L, "reason", d->reason ? d->reason : "");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "decisions");
}

/* Protected: builds q and ctx and calls the rule; leaves its two results. */
static int policy_call_autoscale(lua_State *L) {
    const struct policy_autoscale_call *c = lua_touserdata(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_AUTOSCALE);  /* list */
    lua_rawgeti(L, -1, c->decl_index);                          /* list, decl */
    lua_getfield(L, -1, "spec");                                /* list, decl, spec */
    lua_getfield(L, -1, "rule");                                /* list, decl, spec, rule */
    policy_push_autoscale_q(L, c->q);                           /* ..., rule, q */
    policy_push_autoscale_ctx(L, c);                            /* ..., rule, q, ctx */
    lua_call(L, 2, 2);                                          /* ..., desired, reason */
    return 2;
}

/* Read what the rule returned (desired at -2, reason at -1) into out.
 * Returns 0, or -1 with out->error. */
static int policy_autoscale_results(lua_State *L, struct policy_autoscale_result *out) {
    int isint = 0;
    if (!lua_isnil(L, -2)) {
        lua_Integer v = lua_type(L, -2) == LUA_TNUMBER ? lua_tointegerx(L, -2, &isint) : 0;
        if (!isint) {
            snprintf(out->error, sizeof out->error,
                     "rule returned %s as desired; expected an integer or nil",
                     lua_type(L, -2) == LUA_TNUMBER ? "a number with a fraction"
                                                    : luaL_typename(L, -2));
            return -1;
        }
        out->has_desired = 1;
        out->desired = v;
    }
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            snprintf(out->error, sizeof out->error, "rule returned %s as reason; expected a string",
                     luaL_typename(L, -1));
            return -1;
        }
        util_copy_utf8(out->reason, sizeof out->reason, lua_tostring(L, -1));
    }
    return 0;
}

int policy_gen_autoscale_run(struct policy_gen *g, size_t i, const struct policy_autoscale_q *q,
                             const struct policy_autoscale_ctx *ctx,
                             struct policy_autoscale_result *out) {
    struct policy_autoscale_call call = {(lua_Integer)i + 1, q, ctx, policy_gen_autoscale(g, i)};
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (call.a == NULL || g->L_auto == NULL) {
        snprintf(out->error, sizeof out->error, "no such rule");
        return -1;
    }
    pthread_mutex_lock(&g->auto_lock);
    lua_State *L = g->L_auto;
    lua_settop(L, 0);
    sandbox_set_phase(L, SANDBOX_TICK);
    lua_pushcfunction(L, policy_call_autoscale);
    lua_pushlightuserdata(L, &call);
    if (sandbox_pcall(L, 1, 2) != LUA_OK) {
        util_copy_utf8(out->error, sizeof out->error,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "rule failed");
    } else {
        rc = policy_autoscale_results(L, out);
    }
    lua_settop(L, 0);
    sandbox_set_phase(L, SANDBOX_IDLE);
    pthread_mutex_unlock(&g->auto_lock);
    return rc;
}
