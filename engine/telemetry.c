/* telemetry.c — queue depth from Redis and its cache. */
#include "telemetry.h"
#include "policy.h"
#include "log.h"
#include "protocol.h"

#include "rconn.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEL_FIELDS 8

/* BullMQ's states as getJobCounts() names them, and how each is read. */
static const struct {
    const char *state, *cmd, *suffix;
} bullmq_keys[TEL_FIELDS] = {
    {"waiting", "LLEN", "wait"},         {"paused", "LLEN", "paused"},
    {"active", "LLEN", "active"},        {"delayed", "ZCARD", "delayed"},
    {"prioritized", "ZCARD", "prioritized"}, {"waiting-children", "ZCARD", "waiting-children"},
    {"failed", "ZCARD", "failed"},       {"completed", "ZCARD", "completed"},
};

static const struct {
    const char *state;
    enum protocol_list list;
} sluice_keys[3] = {
    {"waiting", PROTOCOL_LIST_WAIT}, {"active", PROTOCOL_LIST_ACTIVE}, {"failed", PROTOCOL_LIST_FAILED},
};

struct tel_depth {
    char queue[UTIL_NAME_MAX + 1];
    int bullmq;
    long long v[TEL_FIELDS];
};

struct telemetry {
    struct rconn_target target;
    char prefix[PROTOCOL_NAME_MAX + 1];
    rconn *c;                     /* ticker thread only */
    pthread_mutex_t lock;         /* guards the cache below */
    struct tel_depth *depth;
    size_t ndepth;
    atomic_int up;
};

telemetry *telemetry_new(const struct rconn_target *redis, const char *prefix, char *err, size_t errlen) {
    telemetry *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->target = *redis;
    util_copy(t->prefix, sizeof t->prefix, prefix);
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void telemetry_free(telemetry *t) {
    if (t == NULL) return;
    rconn_free(t->c);
    free(t->depth);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int telemetry_redis_up(telemetry *t) { return t && atomic_load(&t->up); }

static void telemetry_drop(telemetry *t) {
    rconn_free(t->c);
    t->c = NULL;
    atomic_store(&t->up, 0);
    pthread_mutex_lock(&t->lock);
    free(t->depth);
    t->depth = NULL;            /* unknown, not stale numbers */
    t->ndepth = 0;
    pthread_mutex_unlock(&t->lock);
}

void telemetry_refresh(telemetry *t, policy *pol) {
    struct policy_gen *g = policy_acquire(pol);
    struct tel_depth *fresh = NULL;
    char key[PROTOCOL_KEY_MAX];
    size_t nq = policy_gen_count(g);
    if (t->c == NULL) {
        char err[256];
        enum rconn_failure why;
        if ((t->c = rconn_open(&t->target, 500, &why, err, sizeof err)) == NULL) goto fail;
    }
    fresh = calloc(nq ? nq : 1, sizeof *fresh);
    if (fresh == NULL) goto done;
    /* One pipeline for every queue: one round trip however many there are. */
    for (size_t i = 0; i < nq; i++) {
        struct policy_bounds b;
        const char *name = policy_gen_queue(g, i, &b);
        util_copy(fresh[i].queue, sizeof fresh[i].queue, name);
        fresh[i].bullmq = strcmp(b.layout, "bullmq") == 0;
        if (fresh[i].bullmq) {
            for (int k = 0; k < TEL_FIELDS; k++)
                rconn_append(t->c, "%s %s", bullmq_keys[k].cmd,
                             protocol_bullmq_key(key, b.bullmq_prefix, name, bullmq_keys[k].suffix));
        } else {
            for (int k = 0; k < 3; k++)
                rconn_append(t->c, "LLEN %s", protocol_queue_key(key, t->prefix, name, sluice_keys[k].list));
        }
    }
    for (size_t i = 0; i < nq; i++) {
        int fields = fresh[i].queue[0] == '\0' ? 0 : fresh[i].bullmq ? TEL_FIELDS : 3;
        for (int k = 0; k < fields; k++) {
            redisReply *rep = NULL;
            if (rconn_get_reply(t->c, &rep) != 0) goto fail;
            /* A key of the wrong type (someone else's data) reads as unknown. */
            fresh[i].v[k] = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
            freeReplyObject(rep);
        }
    }
    pthread_mutex_lock(&t->lock);
    free(t->depth);
    t->depth = fresh;
    t->ndepth = nq;
    fresh = NULL;
    pthread_mutex_unlock(&t->lock);
    atomic_store(&t->up, 1);
    goto done;
fail:
    telemetry_drop(t);
done:
    free(fresh);
    policy_release(g);
}

/* Fill out from one cached row (lock held). */
static void telemetry_fill(const struct tel_depth *d, struct telemetry_depth *out) {
    const long long *v = d->v;
    memset(out, 0, sizeof *out);
    out->bullmq = d->bullmq;
    if (d->bullmq) {
        out->nstates = TEL_FIELDS;
        for (int k = 0; k < TEL_FIELDS; k++) {
            out->state[k] = bullmq_keys[k].state;
            out->count[k] = v[k] >= 0 ? v[k] : -1;
        }
    } else {
        out->nstates = 4;
        for (int k = 0; k < 3; k++) {
            out->state[k] = sluice_keys[k].state;
            out->count[k] = v[k] >= 0 ? v[k] : -1;
        }
        out->state[3] = "delayed";          /* the Sluice layout has none */
        out->count[3] = 0;
    }
#define NN(x) ((x) > 0 ? (x) : 0)
    if (d->bullmq) {        /* waiting, paused, active, delayed, prioritized, w-children, failed */
        out->waiting = NN(v[0]) + NN(v[1]) + NN(v[4]);
        out->active = NN(v[2]);
        out->delayed = NN(v[3]);
        out->failed = NN(v[6]);
    } else {                /* waiting, active, failed */
        out->waiting = NN(v[0]);
        out->active = NN(v[1]);
        out->delayed = 0;
        out->failed = NN(v[2]);
    }
#undef NN
}

int telemetry_depth(telemetry *t, const char *queue, struct telemetry_depth *out) {
    int rc = -1;
    if (t == NULL) return -1;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->ndepth && rc != 0; i++) {
        if (strcmp(t->depth[i].queue, queue) != 0) continue;
        telemetry_fill(&t->depth[i], out);
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}
