/* leader.c — leadership as a lease in the database, with a fencing epoch. */
#include "leader.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a leader keeps of its lease for itself: it stops leading this long
 * before the database would let another replica in, so that two leaders
 * never overlap even if this process's clock runs a little slow. */
#define LEADER_MARGIN_MS 1000

struct leader {
    char url[1024];
    char holder[40];             /* this process, as written in the lease */
    int always;                  /* SQLite: no election */
    int lease_ms, renew_ms;
    atomic_llong valid_until;    /* monotonic ms; 0: not the leader */
    atomic_llong epoch;          /* of the current or last term */
    atomic_uint term;
    atomic_int stopping;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* The lease row's epoch after one statement: 1 when a row came back (we hold
 * the lease), 0 when none did, -1 when the statement failed. */
static int leader_lease_exec(PGconn *c, const char *sql, const char *holder, const char *lease_ms,
                             const char *epoch, long long *out) {
    const char *params[3] = {holder, lease_ms, epoch};
    PGresult *r = PQexecParams(c, sql, epoch ? 3 : 2, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        rc = PQntuples(r) == 1;
        if (rc) *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return rc;
}

static void leader_lost(leader *l, const char *why) {
    if (atomic_exchange(&l->valid_until, 0) == 0) return;
    log_json(LOG_WARN, "no longer the leader",
             json_pack("{s:i, s:I, s:s}", "term", (int)atomic_load(&l->term), "epoch",
                       (json_int_t)atomic_load(&l->epoch), "reason", why));
}

/* One round: renew our lease, or try to take an expired one. */
static void leader_round(leader *l, PGconn *c) {
    char lease[16], epoch[24];
    long long got = 0;
    int64_t sent = util_mono_ms();
    snprintf(lease, sizeof lease, "%d", l->lease_ms);
    if (atomic_load(&l->valid_until) != 0) {
        snprintf(epoch, sizeof epoch, "%lld", (long long)atomic_load(&l->epoch));
        int rc = leader_lease_exec(c,
                                   "UPDATE leader_lease SET expires_at = clock_timestamp() + $2::int * interval '1 ms'"
                                   " WHERE one = 1 AND holder = $1 AND epoch = $3::bigint RETURNING epoch",
                                   l->holder, lease, epoch, &got);
        if (rc == 1) atomic_store(&l->valid_until, sent + l->lease_ms - LEADER_MARGIN_MS);
        else if (rc == 0) leader_lost(l, "another replica holds the lease");
        /* rc -1: the database did not answer; the lease runs out by itself. */
        return;
    }
    /* Take the lease when it has expired, or when we held it last (our
     * session was cut: no other replica can have it before it expires). */
    int rc = leader_lease_exec(c,
                               "UPDATE leader_lease SET holder = $1, epoch = epoch + 1,"
                               " expires_at = clock_timestamp() + $2::int * interval '1 ms'"
                               " WHERE one = 1 AND (expires_at < clock_timestamp() OR holder = $1)"
                               " RETURNING epoch",
                               l->holder, lease, NULL, &got);
    if (rc != 1) return;
    atomic_store(&l->epoch, got);
    atomic_fetch_add(&l->term, 1);
    atomic_store(&l->valid_until, sent + l->lease_ms - LEADER_MARGIN_MS);
    log_json(LOG_INFO, "became the leader",
             json_pack("{s:i, s:I, s:i}", "term", (int)atomic_load(&l->term), "epoch", (json_int_t)got,
                       "lease_ms", l->lease_ms));
}

static void *leader_main(void *arg) {
    leader *l = arg;
    PGconn *c = NULL;
    /* A short statement timeout: a hung database must not hold this thread
     * past the lease it is meant to renew. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    char options[64];
    snprintf(options, sizeof options, "-c statement_timeout=%d", l->renew_ms);
    const char *vals[] = {l->url, "2", "sluiced-leader", options, NULL};
    while (!atomic_load(&l->stopping)) {
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            if (c) PQfinish(c);
            c = PQconnectdbParams(keys, vals, 1);
        }
        if (c && PQstatus(c) == CONNECTION_OK) leader_round(l, c);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += l->renew_ms / 1000;
        ts.tv_nsec += (long)(l->renew_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_mutex_lock(&l->lock);
        while (!atomic_load(&l->stopping))
            if (pthread_cond_timedwait(&l->wake, &l->lock, &ts) == ETIMEDOUT) break;
        pthread_mutex_unlock(&l->lock);
    }
    /* Hand the lease back at once instead of letting it run out. */
    if (c && PQstatus(c) == CONNECTION_OK && atomic_load(&l->valid_until) != 0) {
        const char *params[1] = {l->holder};
        PQclear(PQexecParams(c, "UPDATE leader_lease SET expires_at = 'epoch' WHERE one = 1 AND holder = $1",
                             1, NULL, params, NULL, NULL, 0));
    }
    if (c) PQfinish(c);
    leader_lost(l, "stopping");
    return NULL;
}

/* SQLite: one replica, always the leader, with an epoch that still grows
 * with every start. Returns the new epoch, or -1 with err. */
static long long leader_sqlite_epoch(const char *url, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long epoch = -1;
    if (sqlite3_open_v2(url + strlen("sqlite:"), &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE leader_lease SET epoch = epoch + 1 WHERE one = 1 RETURNING epoch", -1,
                           &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot start a leadership epoch: %s", db ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    if (sqlite3_step(st) == SQLITE_ROW) epoch = sqlite3_column_int64(st, 0);
    else snprintf(err, errlen, "cannot start a leadership epoch: %s", sqlite3_errmsg(db));
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return epoch;
}

leader *leader_start(const char *db_url, int lease_ms, char *err, size_t errlen) {
    leader *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    util_copy(l->url, sizeof l->url, db_url);
    l->lease_ms = lease_ms < 2 * LEADER_MARGIN_MS ? 2 * LEADER_MARGIN_MS : lease_ms;
    l->renew_ms = l->lease_ms / 5 < 200 ? 200 : l->lease_ms / 5;
    util_random_hex(l->holder, 16);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    if (strncmp(db_url, "postgres", 8) != 0) {
        long long epoch = leader_sqlite_epoch(db_url, err, errlen);
        if (epoch < 0) goto fail;
        l->always = 1;
        atomic_store(&l->epoch, epoch);
        atomic_store(&l->term, 1);
        return l;
    }
    if (pthread_create(&l->thread, NULL, leader_main, l) != 0) {
        snprintf(err, errlen, "cannot start the leader election thread");
        goto fail;
    }
    return l;
fail:
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->wake);
    free(l);
    return NULL;
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

int leader_is(leader *l) {
    if (l == NULL || l->always) return 1;
    /* The lease as this process knows it, checked against its own clock: a
     * leader frozen past its lease stops leading the moment it runs again,
     * before its thread had a chance to notice. */
    long long until = atomic_load(&l->valid_until);
    return until != 0 && util_mono_ms() < until;
}

unsigned leader_term(leader *l) { return l ? atomic_load(&l->term) : 1; }

long long leader_epoch(leader *l) { return l ? atomic_load(&l->epoch) : 0; }
