/* policy_notify.c — the notify "name" { ... } declarations of a policy
 * generation: webhook sinks resolved into struct policy_sink (with
 * file:line errors), and what notify.c asks of them (which events and
 * queues a sink wants). The secret itself never passes through here: a
 * sink names the environment variable that holds it. */
#include "policy_int.h"
#include "protocol.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- notify "name" { ... }: webhook sinks (notify.c delivers) ------------------------ */

static const char *const sink_events[] = {"alert", "change", "refusal", "approval", NULL};

unsigned policy_event_bit(const char *event) {
    for (size_t i = 0; sink_events[i]; i++)
        if (strcmp(sink_events[i], event) == 0) return 1u << i;
    return 0;
}

/* A string field of the spec that must be present. */
static const char *policy_sink_string(lua_State *L, int decl, int spec, const char *key,
                                      const char *what) {
    lua_getfield(L, spec, key);
    if (lua_type(L, -1) != LUA_TSTRING)
        policy_decl_error(L, decl, "%s: %s must be a string", what, key);
    const char *v = lua_tostring(L, -1);
    lua_pop(L, 1);                              /* still referenced by the spec */
    return v;
}

/* A list of strings at spec[key] (absent: none), each checked by ok. */
static void policy_sink_list(lua_State *L, int decl, int spec, const char *key, const char *what,
                             void (*take)(lua_State *L, int decl, const char *what, const char *v,
                                          struct policy_sink *s),
                             struct policy_sink *s) {
    if (lua_getfield(L, spec, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) == 0)
        policy_decl_error(L, decl, "%s: %s must be a non-empty list of strings", what, key);
    lua_Unsigned n = lua_rawlen(L, -1);
    for (lua_Unsigned i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
            policy_decl_error(L, decl, "%s: %s must be a list of strings", what, key);
        take(L, decl, what, lua_tostring(L, -1), s);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void policy_sink_event(lua_State *L, int decl, const char *what, const char *v,
                              struct policy_sink *s) {
    unsigned bit = policy_event_bit(v);
    if (bit == 0)
        policy_decl_error(L, decl, "%s: unknown event '%.40s' (alert, change, refusal, approval)",
                          what, v);
    s->events |= bit;
}

static void policy_sink_queue(lua_State *L, int decl, const char *what, const char *v,
                              struct policy_sink *s) {
    char name[UTIL_NAME_MAX + 2];
    size_t len = strlen(v);
    util_copy(name, sizeof name, v);
    if (len > 0 && len <= UTIL_NAME_MAX + 1 && name[len - 1] == '*') name[len - 1] = '\0';
    if (len > UTIL_NAME_MAX + 1 || (name[0] && !protocol_valid_name(name)) ||
        (name[0] == '\0' && strcmp(v, "*") != 0))
        policy_decl_error(L, decl, "%s: queues: '%.70s' is not a queue name or a name ending in *",
                          what, v);
    if (s->nqueues == POLICY_SINK_QUEUES)
        policy_decl_error(L, decl, "%s: queues: at most %d patterns", what, POLICY_SINK_QUEUES);
    util_copy(s->queues[s->nqueues++], sizeof s->queues[0], v);
}

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 127. */
static int policy_valid_env_name(const char *v) {
    size_t n = strlen(v);
    if (n == 0 || n >= POLICY_SINK_ENV_MAX || (v[0] >= '0' && v[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
              (v[i] >= '0' && v[i] <= '9') || v[i] == '_'))
            return 0;
    return 1;
}

/* An http(s) URL with a host and no whitespace or control characters. */
static int policy_valid_url(const char *v) {
    size_t n = strlen(v), scheme = strncmp(v, "https://", 8) == 0 ? 8
                                 : strncmp(v, "http://", 7) == 0  ? 7 : 0;
    if (scheme == 0 || n >= POLICY_SINK_URL_MAX || n == scheme || v[scheme] == '/') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f) return 0;
    return 1;
}

void policy_resolve_sinks(lua_State *L, struct policy_gen *g) {
    static const char *const fields[] = {"url", "events", "format", "secret_env", "queues", NULL};
    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_SINKS);       /* list */
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
        struct policy_sink *s = &g->sinks[g->nsinks];
        char what[96];
        lua_rawgeti(L, list, i);                                 /* list, decl */
        int decl = lua_gettop(L);
        lua_getfield(L, decl, "name");                           /* list, decl, name */
        const char *name = lua_tostring(L, -1);
        snprintf(what, sizeof what, "notify '%s'", name);
        if (g->nsinks == POLICY_MAX_SINKS)
            policy_decl_error(L, decl, "more than %d notify sinks", POLICY_MAX_SINKS);
        for (size_t k = 0; k < g->nsinks; k++)
            if (strcmp(g->sinks[k].name, name) == 0) policy_decl_error(L, decl, "%s declared twice", what);
        memset(s, 0, sizeof *s);
        util_copy(s->name, sizeof s->name, name);
        if (lua_getfield(L, decl, "spec") != LUA_TTABLE)         /* list, decl, name, spec */
            policy_decl_error(L, decl, "%s has no { ... } after its name", what);
        int spec = lua_gettop(L);
        policy_check_fields(L, decl, spec, fields, what);
        const char *url = policy_sink_string(L, decl, spec, "url", what);
        if (!policy_valid_url(url))
            policy_decl_error(L, decl, "%s: url must be an http:// or https:// URL with a host,"
                              " shorter than %d characters", what, POLICY_SINK_URL_MAX);
        util_copy(s->url, sizeof s->url, url);
        const char *format = policy_sink_string(L, decl, spec, "format", what);
        if (strcmp(format, "json") && strcmp(format, "alertmanager") && strcmp(format, "slack"))
            policy_decl_error(L, decl, "%s: format must be \"json\", \"alertmanager\" or \"slack\"", what);
        util_copy(s->format, sizeof s->format, format);
        if (lua_getfield(L, spec, "events") == LUA_TNIL)
            policy_decl_error(L, decl, "%s: events must list some of alert, change, refusal, approval", what);
        lua_pop(L, 1);
        policy_sink_list(L, decl, spec, "events", what, policy_sink_event, s);
        policy_sink_list(L, decl, spec, "queues", what, policy_sink_queue, s);
        if (lua_getfield(L, spec, "secret_env") != LUA_TNIL) {
            const char *env = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (!policy_valid_env_name(env))
                policy_decl_error(L, decl, "%s: secret_env must name an environment variable"
                                  " (A-Z a-z 0-9 _, not starting with a digit)", what);
            util_copy(s->secret_env, sizeof s->secret_env, env);
        }
        lua_pop(L, 1);
        g->nsinks++;
        lua_pop(L, 3);                                           /* list */
    }
    lua_pop(L, 1);
}

size_t policy_gen_sink_count(const struct policy_gen *g) { return g ? g->nsinks : 0; }

const struct policy_sink *policy_gen_sink(const struct policy_gen *g, size_t i) {
    return g && i < g->nsinks ? &g->sinks[i] : NULL;
}

int policy_sink_wants(const struct policy_sink *s, const char *event, const char *queue) {
    if (!(s->events & policy_event_bit(event))) return 0;
    if (s->nqueues == 0) return 1;
    for (size_t i = 0; i < s->nqueues; i++) {
        const char *p = s->queues[i];
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '*' ? strncmp(p, queue, len - 1) == 0 : strcmp(p, queue) == 0)
            return 1;
    }
    return 0;
}

void policy_set_notify_failures(policy *p, const char (*queues)[UTIL_NAME_MAX + 1],
                                const int64_t *counts, size_t n) {
    pthread_mutex_lock(&p->lock);
    p->nnotify_failing = 0;
    for (size_t i = 0; i < n && i < POLICY_MAX_QUEUES; i++) {
        util_copy(p->notify_failing[i].queue, sizeof p->notify_failing[i].queue, queues[i]);
        p->notify_failing[i].count = counts[i];
        p->nnotify_failing++;
    }
    pthread_mutex_unlock(&p->lock);
}
