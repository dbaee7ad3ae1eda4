/* leader.c — leader election over a PostgreSQL advisory lock. */
#include "leader.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEADER_CHECK_MS 1000

struct leader {
    char url[1024];
    int always;                  /* SQLite: no election */
    atomic_int is;
    atomic_uint term;
    atomic_int stopping;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static int leader_query_bool(PGconn *c, const char *sql, int *value) {
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) *value = strcmp(PQgetvalue(r, 0, 0), "t") == 0 || strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    PQclear(r);
    return ok ? 0 : -1;
}

static void leader_set(leader *l, int is) {
    if (atomic_exchange(&l->is, is) == is) return;
    if (is) atomic_fetch_add(&l->term, 1);
    log_json(is ? LOG_INFO : LOG_WARN, is ? "became the leader" : "no longer the leader",
             json_pack("{s:i}", "term", (int)atomic_load(&l->term)));
}

static void *leader_main(void *arg) {
    leader *l = arg;
    PGconn *c = NULL;
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {l->url, "3", "sluiced-leader", NULL};
    while (!atomic_load(&l->stopping)) {
        int held = 0;
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            if (c) PQfinish(c);
            c = PQconnectdbParams(keys, vals, 1);
            leader_set(l, 0);                 /* a new session holds nothing */
        }
        if (c && PQstatus(c) == CONNECTION_OK) {
            /* Re-taking a lock we hold just nests it; "held" means we have it. */
            if (!atomic_load(&l->is)) {
                if (leader_query_bool(c, "SELECT pg_try_advisory_lock(4711001)", &held) != 0) held = 0;
            } else {
                held = leader_query_bool(c, "SELECT 1", &held) == 0;   /* still connected */
            }
        }
        leader_set(l, held);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += LEADER_CHECK_MS / 1000;
        pthread_mutex_lock(&l->lock);
        while (!atomic_load(&l->stopping))
            if (pthread_cond_timedwait(&l->wake, &l->lock, &ts) == ETIMEDOUT) break;
        pthread_mutex_unlock(&l->lock);
    }
    if (c) PQfinish(c);                       /* releases the lock at once */
    leader_set(l, 0);
    return NULL;
}

leader *leader_start(const char *db_url, char *err, size_t errlen) {
    leader *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    util_copy(l->url, sizeof l->url, db_url);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    if (strncmp(db_url, "postgres", 8) != 0) {
        l->always = 1;
        atomic_store(&l->is, 1);
        atomic_store(&l->term, 1);
        return l;
    }
    if (pthread_create(&l->thread, NULL, leader_main, l) != 0) {
        snprintf(err, errlen, "cannot start the leader election thread");
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->wake);
        free(l);
        return NULL;
    }
    return l;
}

void leader_stop(leader *l) {
    if (l == NULL) return;
    if (!l->always) {
        atomic_store(&l->stopping, 1);
        pthread_mutex_lock(&l->lock);
        pthread_cond_broadcast(&l->wake);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
    }
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->wake);
    free(l);
}

int leader_is(leader *l) { return l == NULL || atomic_load(&l->is); }

unsigned leader_term(leader *l) { return l ? atomic_load(&l->term) : 1; }
