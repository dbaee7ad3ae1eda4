/* policy_int.h — what policy.c and policy_alerts.c share (private: only
 * policy*.c include it): the generation and host structs and the registry
 * names of declarations. */
#ifndef SLUICE_POLICY_INT_H
#define SLUICE_POLICY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "policy.h"

#define POLICY_FILE_MAX (1 << 20)
#define POLICY_REG_DEFAULTS "sluice.policy.defaults"
#define POLICY_REG_QUEUES "sluice.policy.queues"
#define POLICY_REG_ALERTS "sluice.policy.alerts"
#define POLICY_REG_SINKS "sluice.policy.notify"
#define POLICY_REG_AUTOSCALE "sluice.policy.autoscale"

struct policy_queue {
    char name[UTIL_NAME_MAX + 1];
    struct policy_bounds b;
};

struct policy_alert {
    char name[UTIL_NAME_MAX + 1];
    char severity[16];
    int64_t for_s;
    int per_worker;              /* 1: worker rule, 0: queue rule */
};

/* One loaded generation. Immutable once published, except for its two Lua
 * states, each used only under its own lock: L (request context: validate)
 * and L_tick (tick context: alert rules), so that a slow alert rule never
 * delays a change and neither delays a plain bounds look-up, which takes no
 * lock of the generation at all. Freed when the last reference goes:
 * policy.c holds one while it is current, policy_acquire hands out more. */
struct policy_gen {
    atomic_int refs;
    pthread_mutex_t eval_lock;   /* L */
    pthread_mutex_t tick_lock;   /* L_tick and rule_error_logged_ms */
    lua_State *L, *L_tick;
    struct policy_queue queues[POLICY_MAX_QUEUES];
    size_t nqueues;
    struct policy_alert alerts[POLICY_MAX_QUEUES];
    size_t nalerts;
    int has_validate;
    struct policy_sink sinks[POLICY_MAX_SINKS];
    size_t nsinks;
    /* autoscale "queue" { ... }: their settings here, their rule functions
     * in L_auto (the declarations' order in POLICY_REG_AUTOSCALE), a third
     * state made only when there are rules, used by the autoscaler's thread
     * under auto_lock. */
    struct policy_autoscale autoscale[POLICY_MAX_QUEUES];
    size_t nautoscale;
    pthread_mutex_t auto_lock;
    lua_State *L_auto;
    char sha256[65];
    int64_t loaded_at_ms;
    char files[POLICY_MAX_FILES][128];
    size_t nfiles;
    int64_t rule_error_logged_ms;   /* rate limit of alert rule errors */
    /* The last failure of each alert rule (by index in alerts), cleared when
     * a pass of the rule over every queue raises nothing; under fail_lock,
     * a leaf held for a copy, so readers never wait for Lua. */
    pthread_mutex_t fail_lock;
    struct policy_rule_failure {
        int failing;
        char queue[UTIL_NAME_MAX + 1];
        char error[256];
        int64_t at_ms;
    } failures[POLICY_MAX_QUEUES];
};

/* The host. lock guards cur (the pointer and taking a reference), the last
 * attempt's digest and error: held for a few instructions, never around Lua. */
struct policy {
    pthread_mutex_t lock;
    char dir[1024];
    struct sandbox_limits limits;
    struct policy_gen *cur;
    char last_digest[65];        /* of the last attempt, good or bad */
    int has_error;
    struct policy_error error;
    int64_t error_at_ms;
    /* notify.c's failing notifications per queue (policy_set_notify_failures) */
    struct policy_notify_failing {
        char queue[UTIL_NAME_MAX + 1];
        int64_t count;
    } notify_failing[POLICY_MAX_QUEUES];
    size_t nnotify_failing;
};

/* policy_alerts.c: the failing notifications of queue in p (0 when none). */
int64_t policy_notify_failures_of(const struct policy_notify_failing *f, size_t n,
                                  const char *queue);

/* policy.c's helpers of the DSL, for policy_autoscale.c. policy_decl_error
 * raises "file:line: message" of the declaration at decl_idx;
 * policy_check_fields rejects fields of the spec not in allowed;
 * policy_int_field reads an integer field in lo..hi into *out (1 when
 * present). All raise, in protected mode. */
int policy_decl_error(lua_State *L, int decl_idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void policy_check_fields(lua_State *L, int decl_idx, int spec_idx, const char *const *allowed,
                         const char *what);
int policy_int_field(lua_State *L, int decl_idx, int spec_idx, const char *key, int64_t lo,
                     int64_t hi, const char *what, int64_t *out);

/* policy_notify.c: read the notify declarations into g (in protected mode;
 * errors name file:line). */
void policy_resolve_sinks(lua_State *L, struct policy_gen *g);

/* policy_autoscale.c: read the autoscale declarations into g (after the
 * queues). Raises on an invalid one. */
void policy_resolve_autoscale(lua_State *L, struct policy_gen *g);

/* Set field k of the table on top of the stack (the tables scripts see). */
void policy_set_int(lua_State *L, const char *k, lua_Integer v);
void policy_set_str(lua_State *L, const char *k, const char *v);
void policy_set_bool(lua_State *L, const char *k, int v);

#endif
