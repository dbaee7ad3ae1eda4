/* store_pg.c — the PostgreSQL backend of store.h (production, replicas).
 *
 * A pool of libpq connections; every statement is prepared once per
 * connection and then executed with bound parameters. A judged change runs
 * in one transaction that first takes pg_advisory_xact_lock on the queue, so
 * writers on different replicas queue up per queue: no lost update and no
 * duplicate version. A connection that broke (PostgreSQL restarted) is
 * reset on its next use; while the database cannot be reached, calls answer
 * STORE_UNAVAILABLE and nothing is half-written (the transaction is gone
 * with the connection). Every session carries lock_timeout, statement_timeout
 * and idle_in_transaction_session_timeout: a replica frozen inside a change
 * delays the others' changes to that queue by the lock timeout at most
 * (STORE_BUSY), and the server ends its session, and so its lock, after the
 * idle timeout. Same behaviour as store_sqlite.c, different dialect.
 * Flags, tokens, sessions and the audit log's export and prune live in
 * store_pg_admin.c. */
#include "store_pg_int.h"
#include "log.h"
#include "migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- connections ------------------------------------------------------------- */

/* Server notices ("relation already exists, skipping") go to our log, not
 * raw onto stderr between the JSON lines. */
static void pg_notice(void *arg, const char *message) {
    (void)arg;
    char line[512];
    util_copy(line, sizeof line, message);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    log_json(LOG_DEBUG, "postgres notice", json_pack("{s:s}", "notice", line));
}

static PGconn *pg_connect(const char *url) {
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, "3", "sluiced", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c) PQsetNoticeProcessor(c, pg_notice, NULL);
    return c;
}

/* What a session loses when its connection is reset or dropped. */
static void pg_forget_session(struct pg_slot *p) {
    p->nprepared = 0;
    p->configured = 0;
}

/* Put the session settings in force on a new (or reset) connection. SET,
 * not the startup "options", so that poolers that refuse those still work;
 * RESET for 0, which also undoes what a migration lifted. */
static int pg_configure(struct pg_store *s, struct pg_slot *p) {
    const char *names[3] = {"lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout"};
    int values[3] = {s->lock_timeout_ms, s->statement_timeout_ms, s->idle_tx_timeout_ms};
    char sql[256];
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        n += (size_t)(values[i] > 0 ? snprintf(sql + n, sizeof sql - n, "SET %s = %d;", names[i], values[i])
                                    : snprintf(sql + n, sizeof sql - n, "RESET %s;", names[i]));
    int rc = pg_exec(p, sql, "configure");
    p->configured = rc == STORE_OK;
    return rc;
}

struct pg_slot *pg_acquire(struct pg_store *s) {
    struct pg_slot *p = &s->slots[store_pool_acquire(&s->pool)];
    if (p->c == NULL) {
        pg_forget_session(p);
        p->c = pg_connect(s->url);
    } else if (PQstatus(p->c) != CONNECTION_OK) {
        pg_forget_session(p);
        PQreset(p->c);
    }
    if (p->c && PQstatus(p->c) == CONNECTION_OK && PQtransactionStatus(p->c) == PQTRANS_IDLE &&
        (p->configured || pg_configure(s, p) == STORE_OK)) {
        return p;
    }
    if (p->c && PQstatus(p->c) != CONNECTION_OK) pg_forget_session(p);
    log_json(LOG_ERROR, "postgres unavailable",
             json_pack("{s:s}", "error", p->c ? PQerrorMessage(p->c) : "out of memory"));
    store_pool_release(&s->pool, (int)(p - s->slots));
    return NULL;
}

/* Never leave a transaction open: a change that failed (a lock or statement
 * timeout aborts it) is rolled back here, and a connection that cannot get
 * back to idle is dropped rather than handed to the next caller. */
void pg_release(struct pg_store *s, struct pg_slot *p) {
    if (p->c && PQstatus(p->c) == CONNECTION_OK && PQtransactionStatus(p->c) != PQTRANS_IDLE) {
        PQclear(PQexec(p->c, "ROLLBACK"));
        if (PQtransactionStatus(p->c) != PQTRANS_IDLE) {
            log_json(LOG_WARN, "postgres connection dropped: it could not roll back",
                     json_pack("{s:s}", "error", PQerrorMessage(p->c)));
            PQfinish(p->c);
            p->c = NULL;
            pg_forget_session(p);
        }
    }
    store_pool_release(&s->pool, (int)(p - s->slots));
}

/* A store_rc for a SQLSTATE (NULL: no answer from the server). */
static int pg_rc_of(const char *state, int connected) {
    if (!connected || state == NULL) return STORE_UNAVAILABLE;
    /* lock_not_available (lock_timeout), query_canceled (statement_timeout),
     * and the two a retry resolves: another change was in the way. */
    if (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return STORE_BUSY;
    if (strcmp(state, "53100") == 0) return STORE_FULL;       /* disk_full */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 || strncmp(state, "53", 2) == 0)
        return STORE_UNAVAILABLE;
    return STORE_FAILED;
}

/* A store_rc for a failed result (or NULL result). */
static int pg_fail(struct pg_slot *p, PGresult *r, const char *what) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int rc = pg_rc_of(state, PQstatus(p->c) == CONNECTION_OK);
    if (PQstatus(p->c) != CONNECTION_OK) pg_forget_session(p);
    log_json(rc == STORE_BUSY ? LOG_WARN : LOG_ERROR, rc == STORE_BUSY ? "postgres busy" : "postgres error",
             json_pack("{s:s, s:s, s:s}", "op", what, "sqlstate", state ? state : "-", "error",
                       r ? PQresultErrorMessage(r) : PQerrorMessage(p->c)));
    return rc;
}

/* Execute sql (prepared on first use on this connection) with n text
 * parameters (NULL means SQL NULL). Returns the result or NULL; *rc set. */
PGresult *pg_run(struct pg_slot *p, const char *sql, int n, const char *const *params,
                 const char *what, int *rc) {
    char name[24];
    int k;
    PGresult *r;
    for (k = 0; k < p->nprepared && p->prepared[k] != sql; k++) {}
    snprintf(name, sizeof name, "s%p", (const void *)sql);
    if (k == p->nprepared && k < PG_PREPARED_MAX) {
        PGresult *prep = PQprepare(p->c, name, sql, n, NULL);
        if (PQresultStatus(prep) != PGRES_COMMAND_OK) {
            *rc = pg_fail(p, prep, what);
            PQclear(prep);
            return NULL;
        }
        PQclear(prep);
        p->prepared[p->nprepared++] = sql;
    }
    /* Past the table's size a statement runs unprepared: preparing it again
     * under the same name would fail. */
    if (k < PG_PREPARED_MAX) r = PQexecPrepared(p->c, name, n, params, NULL, NULL, 0);
    else r = PQexecParams(p->c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        *rc = pg_fail(p, r, what);
        PQclear(r);
        return NULL;
    }
    *rc = STORE_OK;
    return r;
}

/* Plain SQL without parameters (transactions, migrations). */
int pg_exec(struct pg_slot *p, const char *sql, const char *what) {
    PGresult *r = PQexec(p->c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? STORE_OK : pg_fail(p, r, what);
    PQclear(r);
    return rc;
}

static void *pg_open(const char *url, const struct store_options *opt, char *err, size_t errlen) {
    struct pg_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    util_copy(s->url, sizeof s->url, url);
    store_pool_init(&s->pool, opt->pool_size);
    for (int i = 0; i < STORE_POOL_MAX; i++) s->slots[i].owner = s;
    s->slots[0].c = pg_connect(url);
    if (s->slots[0].c == NULL || PQstatus(s->slots[0].c) != CONNECTION_OK) {
        snprintf(err, errlen, "postgres: cannot connect: %s",
                 s->slots[0].c ? PQerrorMessage(s->slots[0].c) : "out of memory");
        size_t n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
        PQfinish(s->slots[0].c);
        store_pool_destroy(&s->pool);
        free(s);
        return NULL;
    }
    return s;
}

/* New settings reach every connection at its next use. */
static void pg_set_limits(void *h, const struct store_limits *lim) {
    struct pg_store *s = h;
    pthread_mutex_lock(&s->pool.lock);
    s->lock_timeout_ms = lim->pg_lock_timeout_ms;
    s->statement_timeout_ms = lim->pg_statement_timeout_ms;
    s->idle_tx_timeout_ms = lim->pg_idle_tx_timeout_ms;
    for (int i = 0; i < s->pool.size; i++) s->slots[i].configured = 0;
    pthread_mutex_unlock(&s->pool.lock);
}

static void pg_close(void *h) {
    struct pg_store *s = h;
    for (int i = 0; i < s->pool.size; i++) PQfinish(s->slots[i].c);
    store_pool_destroy(&s->pool);
    free(s);
}

/* ---- helpers -------------------------------------------------------------------- */

int64_t pg_int(PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *pg_text(PGresult *r, int row, int col) { return PQgetvalue(r, row, col); }

/* Run a read and hand each row to read(); collects into a malloc'd array. */
int pg_collect(struct pg_store *s, struct pg_slot *given, const char *sql, int n,
               const char *const *params, size_t size,
               void (*read)(PGresult *r, int row, void *elem), void **out, size_t *count) {
    int rc;
    struct pg_slot *p = given ? given : pg_acquire(s);
    *out = NULL;
    *count = 0;
    if (p == NULL) return STORE_UNAVAILABLE;
    PGresult *r = pg_run(p, sql, n, params, "collect", &rc);
    if (r) {
        int rows = PQntuples(r);
        char *items = calloc(rows ? (size_t)rows : 1, size);
        if (items == NULL) rc = STORE_FAILED;
        for (int i = 0; items && i < rows; i++) read(r, i, items + size * (size_t)i);
        if (items) {
            *out = items;
            *count = (size_t)rows;
        }
        PQclear(r);
    }
    if (!given) pg_release(s, p);
    return rc;
}

int pg_row(struct pg_store *s, struct pg_slot *given, const char *sql, const char *what, int n,
           const char *const *params, void (*read)(PGresult *r, int row, void *elem), void *out) {
    int rc;
    struct pg_slot *p = given ? given : pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PGresult *r = pg_run(p, sql, n, params, what, &rc);
    if (r && PQntuples(r) == 0) rc = STORE_NOT_FOUND;
    else if (r) read(r, 0, out);
    PQclear(r);
    if (!given) pg_release(s, p);
    return rc;
}

/* ---- migrations ------------------------------------------------------------------ */

static int pg_migrate(void *h, int *applied) {
    struct pg_store *s = h;
    int rc, count = 0;
    char v[24];
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    /* Replicas starting together migrate one at a time, however long that
     * takes: the timeouts meant for changes do not apply here. */
    rc = pg_exec(p, "SET lock_timeout = 0; SET statement_timeout = 0", "migrate");
    p->configured = 0;                        /* set again on the next use */
    if (rc == STORE_OK) rc = pg_exec(p, "SELECT pg_advisory_lock(4711000)", "migrate");
    if (rc == STORE_OK)
        rc = pg_exec(p, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at BIGINT NOT NULL)", "migrate");
    for (const struct migration *m = migrations; rc == STORE_OK && m->backend; m++) {
        if (strcmp(m->backend, "postgres") != 0) continue;
        const char *pv[3] = {I64(v, m->version), m->name, NULL};
        PGresult *r = pg_run(p, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1, pv,
                             "migrate", &rc);
        int have = r && PQntuples(r) > 0;
        PQclear(r);
        if (rc != STORE_OK || have) continue;
        if ((rc = pg_exec(p, "BEGIN", "migrate")) != STORE_OK) break;
        if ((rc = pg_exec(p, m->sql, m->name)) == STORE_OK) {
            char now[24];
            const char *iv[3] = {v, m->name, I64(now, util_now_ms())};
            PQclear(pg_run(p, "INSERT INTO schema_migrations (version, name, applied_at)"
                              " VALUES ($1::int, $2, $3::bigint)", 3, iv, "migrate", &rc));
        }
        if (rc == STORE_OK) rc = pg_exec(p, "COMMIT", "migrate");
        if (rc != STORE_OK) {
            pg_exec(p, "ROLLBACK", "migrate");
            break;
        }
        log_json(LOG_INFO, "migration applied", json_pack("{s:s}", "name", m->name));
        count++;
    }
    pg_exec(p, "SELECT pg_advisory_unlock(4711000)", "migrate");
    pg_release(s, p);
    if (applied) *applied = count;
    return rc;
}

static int pg_schema_current(void *h) {
    struct pg_store *s = h;
    int latest = 0, have = -1, rc;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return -1;
    for (const struct migration *m = migrations; m->backend; m++)
        if (strcmp(m->backend, "postgres") == 0 && m->version > latest) latest = m->version;
    PGresult *r = pg_run(p, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", 0, NULL,
                         "schema", &rc);
    have = r ? pg_int(r, 0, 0) >= latest : 0;
    PQclear(r);
    pg_release(s, p);
    return have;
}

static int pg_ping(void *h) {
    struct pg_store *s = h;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    int rc = pg_exec(p, "SELECT 1", "ping");
    pg_release(s, p);
    return rc;
}

/* ---- targets ---------------------------------------------------------------------- */

#define PG_TARGET_COLS "queue, desired_concurrency, version, updated_by, updated_at, reason," \
                       " COALESCE(expires_at, 0), COALESCE(revert_to, 0), paused::int," \
                       " COALESCE(paused_until, 0), COALESCE(paused_by, ''), COALESCE(paused_at, 0)," \
                       " COALESCE(paused_reason, '')"

static void pg_read_target(PGresult *r, int row, void *elem) {
    struct store_target *t = elem;
    util_copy(t->queue, sizeof t->queue, pg_text(r, row, 0));
    t->desired = pg_int(r, row, 1);
    t->version = pg_int(r, row, 2);
    util_copy(t->updated_by, sizeof t->updated_by, pg_text(r, row, 3));
    t->updated_at_ms = pg_int(r, row, 4);
    util_copy(t->reason, sizeof t->reason, pg_text(r, row, 5));
    t->expires_at_ms = pg_int(r, row, 6);
    t->revert_to = pg_int(r, row, 7);
    t->paused = pg_int(r, row, 8) != 0;
    t->paused_until_ms = pg_int(r, row, 9);
    util_copy(t->paused_by, sizeof t->paused_by, pg_text(r, row, 10));
    t->paused_at_ms = pg_int(r, row, 11);
    util_copy(t->paused_reason, sizeof t->paused_reason, pg_text(r, row, 12));
}

/* On tx, or a pooled connection of s when tx is NULL. */
static int pg_get_target_on(struct pg_store *s, struct pg_slot *tx, const char *queue,
                            struct store_target *out) {
    const char *pv[1] = {queue};
    return pg_row(s, tx, "SELECT " PG_TARGET_COLS " FROM runtime_scaling_policies WHERE queue = $1",
                  "get_target", 1, pv, pg_read_target, out);
}

static int pg_get_target(void *h, const char *queue, struct store_target *out) {
    return pg_get_target_on(h, NULL, queue, out);
}

static int pg_list_targets(void *h, struct store_target **out, size_t *n) {
    return pg_collect(h, NULL, "SELECT " PG_TARGET_COLS " FROM runtime_scaling_policies ORDER BY queue",
                      0, NULL, sizeof **out, pg_read_target, (void **)out, n);
}

/* ---- outbox and the desired-state snapshot ------------------------------------------- */

static void pg_read_outbox(PGresult *r, int row, void *elem) {
    struct store_outbox *o = elem;
    o->id = pg_int(r, row, 0);
    util_copy(o->queue, sizeof o->queue, pg_text(r, row, 1));
    o->version = pg_int(r, row, 2);
    o->desired = pg_int(r, row, 3);
    o->created_ms = pg_int(r, row, 4);
    o->paused = pg_int(r, row, 5) != 0;
}

static int pg_outbox_pending(void *h, int limit, struct store_outbox **out, size_t *n) {
    char l[24];
    const char *pv[1] = {I64(l, limit)};
    return pg_collect(h, NULL, "SELECT id, queue, version, desired_concurrency, created_at, paused::int"
                               " FROM scaling_outbox"
                               " WHERE published_at IS NULL ORDER BY id LIMIT $1::int",
                      1, pv, sizeof **out, pg_read_outbox, (void **)out, n);
}

static int pg_outbox_mark_published(void *h, int64_t id, int64_t now_ms) {
    struct pg_store *s = h;
    char a[24], b[24];
    const char *pv[2] = {I64(a, now_ms), I64(b, id)};
    int rc;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PQclear(pg_run(p, "UPDATE scaling_outbox SET published_at = $1::bigint WHERE id = $2::bigint", 2,
                   pv, "mark_published", &rc));
    pg_release(s, p);
    return rc;
}

static void pg_read_name(PGresult *r, int row, void *elem) {
    util_copy(elem, UTIL_NAME_MAX + 1, pg_text(r, row, 0));
}

static int pg_desired_snapshot(void *h, struct store_target **targets, size_t *nt,
                               char (**pending)[UTIL_NAME_MAX + 1], size_t *np) {
    struct pg_store *s = h;
    int rc;
    struct pg_slot *p = pg_acquire(s);
    *targets = NULL;
    *pending = NULL;
    *nt = *np = 0;
    if (p == NULL) return STORE_UNAVAILABLE;
    /* One snapshot for both reads. */
    rc = pg_exec(p, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "snapshot");
    if (rc == STORE_OK)
        rc = pg_collect(s, p, "SELECT " PG_TARGET_COLS " FROM runtime_scaling_policies WHERE queue NOT IN"
                              " (SELECT queue FROM scaling_outbox WHERE published_at IS NULL) ORDER BY queue",
                        0, NULL, sizeof **targets, pg_read_target, (void **)targets, nt);
    if (rc == STORE_OK)
        rc = pg_collect(s, p, "SELECT DISTINCT queue FROM scaling_outbox WHERE published_at IS NULL",
                        0, NULL, sizeof **pending, pg_read_name, (void **)pending, np);
    if (rc == STORE_OK) rc = pg_exec(p, "COMMIT", "snapshot");
    if (rc != STORE_OK) {
        free(*targets);
        free(*pending);
        *targets = NULL;
        *pending = NULL;
        *nt = *np = 0;
    }
    pg_release(s, p);
    return rc;
}

static int pg_list_expired(void *h, int64_t now_ms, struct store_target **out, size_t *n) {
    char a[24];
    const char *pv[1] = {I64(a, now_ms)};
    return pg_collect(h, NULL, "SELECT " PG_TARGET_COLS " FROM runtime_scaling_policies"
                               " WHERE (expires_at IS NOT NULL AND expires_at <= $1::bigint)"
                               " OR (paused AND paused_until IS NOT NULL AND paused_until <= $1::bigint)"
                               " ORDER BY LEAST(expires_at, paused_until)",
                      1, pv, sizeof **out, pg_read_target, (void **)out, n);
}

/* ---- audit ---------------------------------------------------------------------------- */

int pg_insert_audit(struct pg_slot *p, struct store_audit *e) {
    char from[24], to[24], ver[24], at[24], fv[24];
    int rc;
    const char *pv[14] = {e->kind, e->subject, I64(from, e->from), I64(to, e->to), I64(ver, e->version),
                          e->actor, e->source, e->reason, e->outcome,
                          e->error_code[0] ? e->error_code : NULL, I64(at, e->at_ms), e->request_id,
                          e->from_version ? I64(fv, e->from_version) : NULL,
                          e->approval_id[0] ? e->approval_id : NULL};
    PGresult *r = pg_run(p, "INSERT INTO scaling_audit (kind, subject, from_value, to_value, version, actor,"
                            " source, reason, outcome, error_code, at, request_id, from_version, approval_id)"
                            " VALUES ($1, $2, $3::bigint, $4::bigint, $5::bigint, $6, $7, $8, $9, $10,"
                            " $11::bigint, $12, $13::bigint, $14) RETURNING id", 14, pv, "append_audit", &rc);
    if (r) e->id = pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static int pg_append_audit(void *h, struct store_audit *e) {
    struct pg_store *s = h;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    int rc = pg_insert_audit(p, e);
    pg_release(s, p);
    return rc;
}

void pg_read_audit(PGresult *r, int row, void *elem) {
    struct store_audit *e = elem;
    e->id = pg_int(r, row, 0);
    util_copy(e->kind, sizeof e->kind, pg_text(r, row, 1));
    util_copy(e->subject, sizeof e->subject, pg_text(r, row, 2));
    e->from = pg_int(r, row, 3);
    e->to = pg_int(r, row, 4);
    e->version = pg_int(r, row, 5);
    util_copy(e->actor, sizeof e->actor, pg_text(r, row, 6));
    util_copy(e->source, sizeof e->source, pg_text(r, row, 7));
    util_copy(e->reason, sizeof e->reason, pg_text(r, row, 8));
    util_copy(e->outcome, sizeof e->outcome, pg_text(r, row, 9));
    util_copy(e->error_code, sizeof e->error_code, pg_text(r, row, 10));
    e->at_ms = pg_int(r, row, 11);
    util_copy(e->request_id, sizeof e->request_id, pg_text(r, row, 12));
    e->from_version = pg_int(r, row, 13);
    util_copy(e->approval_id, sizeof e->approval_id, pg_text(r, row, 14));
}

static int pg_list_audit(void *h, const struct store_audit_filter *f, int limit,
                         struct store_audit **out, size_t *n) {
    char b[24], l[24], since[24], until[24], v[24], qk[24];
    const char *pv[11] = {f->kind, f->subject, f->actor, f->outcome, f->source,
                          I64(since, f->since_ms), I64(until, f->until_ms), I64(b, f->before_id),
                          I64(l, limit), I64(v, f->version), I64(qk, f->queue_kinds)};
    return pg_collect(h, NULL, "SELECT " PG_AUDIT_COLS " FROM scaling_audit"
                               " WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR subject = $2)"
                               " AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR outcome = $4)"
                               " AND ($5::text IS NULL OR source = $5)"
                               " AND ($6::bigint = 0 OR at >= $6::bigint)"
                               " AND ($7::bigint = 0 OR at <= $7::bigint)"
                               " AND ($8::bigint = 0 OR id < $8::bigint)"
                               " AND ($10::bigint = 0 OR version = $10::bigint)"
                               " AND ($11::bigint = 0 OR kind IN ('scaling', 'pause'))"
                               " ORDER BY id DESC LIMIT $9::int",
                      11, pv, sizeof **out, pg_read_audit, (void **)out, n);
}

/* ---- the judged change ----------------------------------------------------------------- */

static int pg_stats(struct pg_slot *p, const char *queue, int64_t now_ms, struct store_stats *out) {
    char since[24];
    int rc;
    const char *pv[2] = {queue, I64(since, now_ms - STORE_HOUR_MS)};
    memset(out, 0, sizeof *out);
    PGresult *r = pg_run(p, "SELECT COUNT(*) FILTER (WHERE at > $2::bigint),"
                            " COALESCE(MIN(at) FILTER (WHERE at > $2::bigint), 0), COALESCE(MAX(at), 0)"
                            " FROM scaling_audit WHERE kind = 'scaling' AND subject = $1"
                            " AND outcome = 'applied' AND from_value <> to_value", 2, pv, "stats", &rc);
    if (r) {
        out->applied_last_hour = pg_int(r, 0, 0);
        out->oldest_in_hour_ms = pg_int(r, 0, 1);
        out->last_applied_ms = pg_int(r, 0, 2);
    }
    PQclear(r);
    return rc;
}

static int pg_write_target(struct pg_slot *p, const struct store_target *t) {
    char d[24], v[24], at[24], ex[24], rv[24], pu[24], pa[24];
    int rc, paused = t->paused != 0;
    const char *pv[13] = {t->queue, I64(d, t->desired), I64(v, t->version), t->updated_by,
                          I64(at, t->updated_at_ms), t->reason,
                          t->expires_at_ms ? I64(ex, t->expires_at_ms) : NULL,
                          t->expires_at_ms ? I64(rv, t->revert_to) : NULL,
                          paused ? "true" : "false",
                          paused && t->paused_until_ms ? I64(pu, t->paused_until_ms) : NULL,
                          paused ? t->paused_by : NULL, paused ? I64(pa, t->paused_at_ms) : NULL,
                          paused ? t->paused_reason : NULL};
    PQclear(pg_run(p, "INSERT INTO runtime_scaling_policies (queue, desired_concurrency, version, updated_by,"
                      " updated_at, reason, expires_at, revert_to, paused, paused_until, paused_by,"
                      " paused_at, paused_reason) VALUES ($1, $2::bigint, $3::bigint, $4,"
                      " $5::bigint, $6, $7::bigint, $8::bigint, $9::boolean, $10::bigint, $11,"
                      " $12::bigint, $13) ON CONFLICT (queue) DO UPDATE SET"
                      " desired_concurrency = excluded.desired_concurrency, version = excluded.version,"
                      " updated_by = excluded.updated_by, updated_at = excluded.updated_at,"
                      " reason = excluded.reason, expires_at = excluded.expires_at,"
                      " revert_to = excluded.revert_to, paused = excluded.paused,"
                      " paused_until = excluded.paused_until, paused_by = excluded.paused_by,"
                      " paused_at = excluded.paused_at, paused_reason = excluded.paused_reason",
                   13, pv, "write_target", &rc));
    return rc;
}

static int pg_write_outbox(struct pg_slot *p, const struct store_target *t) {
    char v[24], d[24], at[24];
    int rc;
    const char *pv[5] = {t->queue, I64(v, t->version), I64(d, t->desired), I64(at, t->updated_at_ms),
                         t->paused ? "true" : "false"};
    PQclear(pg_run(p, "INSERT INTO scaling_outbox (queue, version, desired_concurrency, created_at, paused)"
                      " VALUES ($1, $2::bigint, $3::bigint, $4::bigint, $5::boolean)", 5, pv,
                   "write_outbox", &rc));
    return rc;
}

/* ---- transactions (store.c runs the judged writes over these) ------------------------ */

static void *pg_begin(void *h, int mode, const char *lock_key, int *rc) {
    struct pg_store *s = h;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) {
        *rc = STORE_UNAVAILABLE;
        return NULL;
    }
    *rc = pg_exec(p, mode == STORE_TX_WRITE ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                  "begin");
    /* Writers of one key, on any replica, take turns from here to COMMIT. */
    if (*rc == STORE_OK && mode == STORE_TX_WRITE && lock_key) {
        const char *pv[1] = {lock_key};
        PQclear(pg_run(p, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, pv, "begin", rc));
    }
    if (*rc != STORE_OK) {
        pg_release(s, p);
        return NULL;
    }
    return p;
}

static int pg_commit(void *tx) { return pg_exec(tx, "COMMIT", "commit"); }

/* pg_release rolls back what is still open. */
static void pg_end(void *tx, int rc) {
    struct pg_slot *p = tx;
    (void)rc;
    pg_release(p->owner, p);
}

static int pg_tx_get_target(void *tx, const char *queue, struct store_target *out) {
    return pg_get_target_on(NULL, tx, queue, out);
}

static int pg_tx_stats(void *tx, const char *queue, int64_t now_ms, struct store_stats *out) {
    return pg_stats(tx, queue, now_ms, out);
}

static int pg_tx_write_target(void *tx, const struct store_target *t) { return pg_write_target(tx, t); }
static int pg_tx_write_outbox(void *tx, const struct store_target *t) { return pg_write_outbox(tx, t); }
static int pg_tx_insert_audit(void *tx, struct store_audit *e) { return pg_insert_audit(tx, e); }

const struct store_backend store_pg_backend = {
    .scheme = "postgres",
    .open = pg_open,
    .close = pg_close,
    .set_limits = pg_set_limits,
    .migrate = pg_migrate,
    .schema_current = pg_schema_current,
    .ping = pg_ping,
    .get_target = pg_get_target,
    .list_targets = pg_list_targets,
    .begin = pg_begin,
    .commit = pg_commit,
    .end = pg_end,
    .tx_get_target = pg_tx_get_target,
    .tx_stats = pg_tx_stats,
    .tx_write_target = pg_tx_write_target,
    .tx_write_outbox = pg_tx_write_outbox,
    .tx_insert_audit = pg_tx_insert_audit,
    .tx_get_flag = pg_tx_get_flag,
    .tx_write_flag = pg_tx_write_flag,
    .tx_get_approval = pg_tx_get_approval,
    .tx_pending_approval = pg_tx_pending_approval,
    .tx_insert_approval = pg_tx_insert_approval,
    .tx_update_approval = pg_tx_update_approval,
    .list_approvals = pg_list_approvals,
    .append_audit = pg_append_audit,
    .list_audit = pg_list_audit,
    .list_audit_oldest = pg_list_audit_oldest,
    .audit_bound_at = pg_audit_bound_at,
    .prune_audit = pg_prune_audit,
    .outbox_pending = pg_outbox_pending,
    .outbox_mark_published = pg_outbox_mark_published,
    .desired_snapshot = pg_desired_snapshot,
    .list_expired = pg_list_expired,
    .get_flag = pg_get_flag,
    .identity = pg_identity,
    .put_token = pg_put_token,
    .get_token = pg_get_token,
    .list_tokens = pg_list_tokens,
    .revoke_token = pg_revoke_token,
    .put_session = pg_put_session,
    .get_session = pg_get_session,
    .delete_session = pg_delete_session,
    .sweep_sessions = pg_sweep_sessions,
    .notify_cursor = pg_notify_cursor,
    .notify_enqueue = pg_notify_enqueue,
    .notify_pending = pg_notify_pending,
    .notify_mark = pg_notify_mark,
    .notify_list = pg_notify_list,
    .notify_summarize = pg_notify_summarize,
    .notify_prune = pg_notify_prune,
    .autoscale_hold = pg_autoscale_hold,
    .autoscale_holds = pg_autoscale_holds,
    .autoscale_put_state = pg_autoscale_put_state,
    .autoscale_states = pg_autoscale_states,
};
