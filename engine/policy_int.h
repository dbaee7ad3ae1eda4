/* policy_int.h — what policy.c and policy_alerts.c share (private: only
 * policy*.c include it): the generation and host structs and the registry
 * names of declarations. */
#ifndef SLUICE_POLICY_INT_H
#define SLUICE_POLICY_INT_H

#include <pthread.h>

#include "policy.h"

#define POLICY_FILE_MAX (1 << 20)
#define POLICY_REG_DEFAULTS "sluice.policy.defaults"
#define POLICY_REG_QUEUES "sluice.policy.queues"
#define POLICY_REG_ALERTS "sluice.policy.alerts"

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

/* One loaded generation; immutable once in force except for its Lua state,
 * which is only used under policy.lock. */
struct policy_gen {
    lua_State *L;
    struct policy_queue queues[POLICY_MAX_QUEUES];
    size_t nqueues;
    struct policy_alert alerts[POLICY_MAX_QUEUES];
    size_t nalerts;
    int has_validate;
    char sha256[65];
    int64_t loaded_at_ms;
    char files[POLICY_MAX_FILES][128];
    size_t nfiles;
};

struct policy {
    pthread_mutex_t lock;
    char dir[1024];
    struct sandbox_limits limits;
    struct policy_gen *cur;
    char last_digest[65];        /* of the last attempt, good or bad */
    int has_error;
    struct policy_error error;
    int64_t error_at_ms;
    int64_t rule_error_logged_ms;   /* rate limit of alert rule errors */
};


#endif
