/* test_store.c — the store conformance suite: every promise of store.h,
 * checked through store.h alone, once per backend. SQLite runs on a fresh
 * file per test; PostgreSQL on a fresh database per test of the server named
 * by SLUICE_TEST_PG (a postgres:// URL whose user may create databases;
 * tools/test.sh starts one), or is reported skipped when it is not set.
 *
 * The one look past store.h is the append-only guard: a raw UPDATE or
 * DELETE on scaling_audit over a connection of the test's own must fail.
 * What only SQLite does (locks, its log file, a full volume, migration 4)
 * is in test_store_sqlite.c. */
#include "unit.h"
#include "log.h"
#include "migrations.h"
#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)

/* ---- backends ------------------------------------------------------------------ */

/* One backend: how to make and remove an empty database for one test, and
 * how to run raw SQL on it (the append-only guard). */
struct backend {
    const char *name;            /* as migrations.h names it */
    int one_replica;             /* store_claim refuses a second store */
    const char *(*skip)(void);   /* why it cannot run here; NULL: it runs */
    int (*create)(char *url, size_t len);
    void (*destroy)(void);
    int (*raw)(const char *url, const char *sql, char *msg, size_t len);   /* 0 or -1 with msg */
};

static char sq_dir[64], sq_path[128];

static const char *sq_skip(void) { return NULL; }

static int sq_create(char *url, size_t len) {
    strcpy(sq_dir, "/tmp/sluice-store-XXXXXX");
    if (mkdtemp(sq_dir) == NULL) return -1;
    snprintf(sq_path, sizeof sq_path, "%s/s.db", sq_dir);
    snprintf(url, len, "sqlite:%s", sq_path);
    return 0;
}

static void sq_destroy(void) {
    static const char *const suffixes[] = {"", "-wal", "-shm", ".lock", NULL};
    char path[160];
    for (const char *const *s = suffixes; *s; s++) {
        snprintf(path, sizeof path, "%s%s", sq_path, *s);
        unlink(path);
    }
    rmdir(sq_dir);
}

static int sq_raw(const char *url, const char *sql, char *msg, size_t len) {
    sqlite3 *db = NULL;
    char *err = NULL;
    int rc = sqlite3_open(url + strlen("sqlite:"), &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    snprintf(msg, len, "%s", err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static char pg_db[64];

static const char *pg_skip(void) {
    const char *url = getenv("SLUICE_TEST_PG");
    return url && *url ? NULL : "SLUICE_TEST_PG is not set";
}

static int pg_raw(const char *url, const char *sql, char *msg, size_t len) {
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    snprintf(msg, len, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* The server's URL with its database replaced by pg_db. */
static int pg_url_of(const char *server, char *url, size_t len) {
    const char *host = strstr(server, "://");
    if (host == NULL) return -1;
    const char *path = strchr(host + 3, '/'), *query = strchr(host + 3, '?');
    int end = (int)(path ? path - server : query ? query - server : (long)strlen(server));
    int n = snprintf(url, len, "%.*s/%s%s", end, server, pg_db, query ? query : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int pg_create(char *url, size_t len) {
    static int serial;
    char sql[128], msg[512];
    snprintf(pg_db, sizeof pg_db, "sluice_unit_%d_%d", (int)getpid(), ++serial);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_db);
    if (pg_raw(getenv("SLUICE_TEST_PG"), sql, msg, sizeof msg) != 0) {
        printf("#   %s\n", msg);
        return -1;
    }
    return pg_url_of(getenv("SLUICE_TEST_PG"), url, len);
}

static void pg_destroy(void) {
    char sql[128], msg[512];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_db);
    if (pg_raw(getenv("SLUICE_TEST_PG"), sql, msg, sizeof msg) != 0) printf("#   %s\n", msg);
}

static const struct backend backends[] = {
    {"sqlite", 1, sq_skip, sq_create, sq_destroy, sq_raw},
    {"postgres", 0, pg_skip, pg_create, pg_destroy, pg_raw},
};

/* The backend and database of the test running now. */
static const struct backend *be;
static char db_url[512];

static store *open_store(void) {
    struct store_options opt = {5000, 4};
    char err[256];
    store *st = store_open(db_url, &opt, err, sizeof err);
    if (st == NULL) printf("#   store_open: %s\n", err);
    return st;
}

/* ---- judges and helpers ------------------------------------------------------------ */

/* Judges: record what they were shown; accept, refuse with a code, or abandon. */
struct seen {
    int calls;
    struct store_target cur;
    struct store_stats stats;
};

static int accept_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                        char code[STORE_CODE_MAX]) {
    struct seen *s = ud;
    (void)code;
    if (s) *s = (struct seen){s->calls + 1, *cur, *stats};
    return 1;
}

static int refuse_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                        char code[STORE_CODE_MAX]) {
    accept_judge(ud, cur, stats, code);
    strcpy(code, "out_of_bounds");
    return 0;
}

static int abandon_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                         char code[STORE_CODE_MAX]) {
    accept_judge(ud, cur, stats, code);
    return -1;
}

static struct store_change change(const char *queue, int64_t to, int64_t now) {
    struct store_change c = {.queue = queue, .to = to, .default_value = 4, .actor = "alice", .source = "api",
                              .reason = "load test", .request_id = "rid-1", .now_ms = now};
    return c;
}

static int apply(store *st, const char *queue, int64_t to, int64_t now, store_judge_fn judge,
                 struct store_change_result *res) {
    struct store_change c = change(queue, to, now);
    return store_apply_change(st, &c, judge, NULL, res);
}

static int apply_override(store *st, const char *queue, int64_t to, int64_t now, int64_t expires,
                          struct store_change_result *res) {
    struct store_change c = change(queue, to, now);
    c.expires_at_ms = expires;
    return store_apply_change(st, &c, accept_judge, NULL, res);
}

/* Audit entries of kind/subject (NULL: any), -1 when the store failed. */
static long audit_count(store *st, const char *kind, const char *subject) {
    struct store_audit *rows = NULL;
    size_t n = 0;
    int rc = store_list_audit(st, kind, subject, 0, 1000, &rows, &n);
    free(rows);
    return rc == STORE_OK ? (long)n : -1;
}

/* Unpublished outbox rows, -1 when the store failed. */
static long pending_count(store *st) {
    struct store_outbox *rows = NULL;
    size_t n = 0;
    int rc = store_outbox_pending(st, 1000, &rows, &n);
    free(rows);
    return rc == STORE_OK ? (long)n : -1;
}

/* ---- pause and resume ------------------------------------------------------------------- */

static int pause_apply(store *st, const char *queue, int kind, int64_t now, int64_t until,
                       struct store_change_result *res) {
    struct store_change c = change(queue, 0, now);
    c.kind = kind;
    c.paused_until_ms = until;
    c.reason = kind == STORE_CHANGE_PAUSE ? "hold" : "go";
    return store_apply_change(st, &c, accept_judge, NULL, res);
}

static void pause_is_a_version_that_keeps_desired_and_reaches_the_outbox(store *st) {
    struct store_change_result r;
    struct store_target t;
    struct store_outbox *ob = NULL;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 6, now, accept_judge, &r) == STORE_OK);          /* v1, desired 6 */
    ASSERT(pause_apply(st, "q", STORE_CHANGE_PAUSE, now + 1, now + 60000, &r) == STORE_OK);
    EXPECT_INT(r.applied, 1);
    EXPECT_INT(r.changed, 1);
    EXPECT_INT(r.kind, STORE_CHANGE_PAUSE);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT_INT(t.paused, 1);
    EXPECT_INT(t.desired, 6);
    EXPECT_INT(t.version, 2);
    EXPECT_INT(t.paused_until_ms, now + 60000);
    EXPECT_INT(t.paused_at_ms, now + 1);
    EXPECT_STR(t.paused_by, "alice");
    EXPECT_STR(t.paused_reason, "hold");
    /* Pausing again writes nothing. */
    ASSERT(pause_apply(st, "q", STORE_CHANGE_PAUSE, now + 2, 0, &r) == STORE_OK);
    EXPECT_INT(r.applied, 1);
    EXPECT_INT(r.changed, 0);
    EXPECT_INT(r.audit_id, 0);
    /* A change of the value keeps the pause. */
    ASSERT(apply(st, "q", 7, now + 3, accept_judge, &r) == STORE_OK);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT_INT(t.paused, 1);
    EXPECT_INT(t.version, 3);
    EXPECT_STR(t.paused_reason, "hold");
    ASSERT(pause_apply(st, "q", STORE_CHANGE_RESUME, now + 4, 0, &r) == STORE_OK);
    EXPECT_INT(r.changed, 1);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT_INT(t.paused, 0);
    EXPECT_INT(t.desired, 7);
    EXPECT_INT(t.version, 4);
    EXPECT_INT(t.paused_until_ms, 0);
    EXPECT_STR(t.paused_by, "");
    ASSERT(store_outbox_pending(st, 10, &ob, &n) == STORE_OK);
    ASSERT(n == 4);
    EXPECT(ob[0].paused == 0 && ob[1].paused == 1 && ob[2].paused == 1 && ob[3].paused == 0);
    EXPECT(ob[1].version == 2 && ob[1].desired == 6 && ob[2].desired == 7 && ob[3].version == 4);
    free(ob);
    ASSERT(store_list_audit(st, "pause", "q", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT(rows[0].from == 1 && rows[0].to == 0 && rows[0].version == 4);
    EXPECT(rows[1].from == 0 && rows[1].to == 1 && rows[1].version == 2);
    EXPECT_STR(rows[1].outcome, "applied");
    free(rows);
    /* Pauses are not changes of the value: cooldown and budget ignore them. */
    EXPECT_INT(audit_count(st, "scaling", "q"), 2);
}

static void list_expired_returns_timed_pauses_ended_by_now(store *st) {
    struct store_change_result r;
    struct store_target *list = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(pause_apply(st, "timed", STORE_CHANGE_PAUSE, now, now + 1000, &r) == STORE_OK);
    ASSERT(pause_apply(st, "forever", STORE_CHANGE_PAUSE, now, 0, &r) == STORE_OK);
    ASSERT(store_list_expired(st, now + 999, &list, &n) == STORE_OK);
    EXPECT(n == 0);
    free(list);
    ASSERT(store_list_expired(st, now + 1000, &list, &n) == STORE_OK);
    ASSERT(n == 1);
    EXPECT_STR(list[0].queue, "timed");
    EXPECT_INT(list[0].paused, 1);
    EXPECT_INT(list[0].expires_at_ms, 0);
    free(list);
    ASSERT(pause_apply(st, "timed", STORE_CHANGE_RESUME, now + 1, 0, &r) == STORE_OK);
    ASSERT(store_list_expired(st, now + 5000, &list, &n) == STORE_OK);
    EXPECT(n == 0);
    free(list);
}

/* ---- migrations and identity ---------------------------------------------------------- */

static void migrate_is_idempotent_and_schema_current(store *st) {
    int applied = -1, expected = 0;
    char id[STORE_IDENTITY_MAX + 1];
    for (const struct migration *m = migrations; m->backend; m++)
        expected += strcmp(m->backend, be->name) == 0;
    EXPECT_INT(store_schema_current(st), 0);
    /* store.h promises STORE_NOT_FOUND; both backends fail instead (no table
     * yet), which sluiced treats alike. Either way it is not an identity. */
    EXPECT(store_identity(st, id) != STORE_OK);
    EXPECT_INT(store_migrate(st, &applied), STORE_OK);
    EXPECT_INT(applied, expected);
    EXPECT(applied >= 1);
    EXPECT_INT(store_schema_current(st), 1);
    EXPECT_INT(store_migrate(st, &applied), STORE_OK);
    EXPECT_INT(applied, 0);
    EXPECT_INT(store_migrate(st, NULL), STORE_OK);
    EXPECT_INT(store_schema_current(st), 1);
    EXPECT_INT(store_ping(st), STORE_OK);
}

static void identity_is_made_once_and_shared_by_replicas(store *st) {
    char id[STORE_IDENTITY_MAX + 1] = "", again[STORE_IDENTITY_MAX + 1] = "";
    ASSERT(store_identity(st, id) == STORE_OK);
    EXPECT(strlen(id) >= 16 && strspn(id, "0123456789abcdef") == strlen(id));
    EXPECT_INT(store_migrate(st, NULL), STORE_OK);
    EXPECT_INT(store_identity(st, again), STORE_OK);
    EXPECT_STR(again, id);                        /* migrating again keeps it */
    store *replica = open_store();
    ASSERT(replica != NULL);
    EXPECT_INT(store_identity(replica, again), STORE_OK);
    EXPECT_STR(again, id);
    store_close(replica);
}

static void claim_admits_one_sqlite_store_and_any_number_on_postgres(store *st) {
    char err[256] = "";
    EXPECT_INT(store_claim(st, err, sizeof err), STORE_OK);
    store *second = open_store();
    ASSERT(second != NULL);
    err[0] = '\0';
    if (be->one_replica) {
        EXPECT(store_claim(second, err, sizeof err) != STORE_OK);
        EXPECT(err[0] != '\0');
    } else {
        EXPECT_INT(store_claim(second, err, sizeof err), STORE_OK);
    }
    store_close(second);
}

/* ---- the judged change ------------------------------------------------------------------ */

static void applied_change_writes_row_audit_and_outbox(store *st) {
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    struct store_outbox *ob = NULL;
    struct seen seen = {0};
    size_t n = 0;
    int64_t now = util_now_ms();
    EXPECT_INT(store_get_target(st, "ingestion", &t), STORE_NOT_FOUND);
    struct store_change c = change("ingestion", 8, now);
    ASSERT(store_apply_change(st, &c, accept_judge, &seen, &r) == STORE_OK);
    EXPECT_INT(seen.calls, 1);
    EXPECT(seen.cur.desired == 4 && seen.cur.version == 0);   /* the default, never changed */
    EXPECT_STR(seen.cur.queue, "ingestion");
    EXPECT(r.applied == 1 && r.changed == 1 && r.previous == 4);
    EXPECT(r.target.desired == 8 && r.target.version == 1 && r.audit_id > 0);
    ASSERT(store_get_target(st, "ingestion", &t) == STORE_OK);
    EXPECT(t.desired == 8 && t.version == 1 && t.updated_at_ms == now);
    EXPECT(t.expires_at_ms == 0 && t.revert_to == 0);
    EXPECT_STR(t.queue, "ingestion");
    EXPECT_STR(t.updated_by, "alice");
    EXPECT_STR(t.reason, "load test");
    ASSERT(store_list_audit(st, "scaling", "ingestion", 0, 10, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 1);
    if (n == 1) {
        EXPECT_INT(rows[0].id, r.audit_id);
        EXPECT_STR(rows[0].kind, "scaling");
        EXPECT_STR(rows[0].subject, "ingestion");
        EXPECT_STR(rows[0].outcome, "applied");
        EXPECT_STR(rows[0].error_code, "");
        EXPECT(rows[0].from == 4 && rows[0].to == 8 && rows[0].version == 1 && rows[0].at_ms == now);
        EXPECT_STR(rows[0].actor, "alice");
        EXPECT_STR(rows[0].source, "api");
        EXPECT_STR(rows[0].reason, "load test");
        EXPECT_STR(rows[0].request_id, "rid-1");
    }
    free(rows);
    ASSERT(store_outbox_pending(st, 10, &ob, &n) == STORE_OK);
    EXPECT_INT(n, 1);
    if (n == 1) {
        EXPECT_STR(ob[0].queue, "ingestion");
        EXPECT(ob[0].version == 1 && ob[0].desired == 8 && ob[0].created_ms == now && ob[0].id > 0);
    }
    free(ob);
}

static void versions_strictly_increase_per_queue(store *st) {
    struct store_change_result r;
    int64_t now = util_now_ms();
    for (int i = 0; i < 4; i++) {
        ASSERT(apply(st, "a", 10 + i, now + i, accept_judge, &r) == STORE_OK);
        EXPECT_INT(r.target.version, i + 1);
        EXPECT_INT(r.previous, i == 0 ? 4 : 9 + i);
        ASSERT(apply(st, "b", 20 + i, now + i, accept_judge, &r) == STORE_OK);
        EXPECT_INT(r.target.version, i + 1);      /* each queue counts for itself */
    }
}

static void refused_change_writes_one_rejected_entry_and_nothing_else(store *st) {
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    struct seen seen = {0};
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);
    struct store_change c = change("q", 99, now + 1);
    EXPECT_INT(store_apply_change(st, &c, refuse_judge, &seen, &r), STORE_OK);
    EXPECT(seen.cur.desired == 5 && seen.cur.version == 1);
    EXPECT(r.applied == 0 && r.changed == 0 && r.previous == 5);
    EXPECT(r.target.desired == 5 && r.target.version == 1);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT(t.desired == 5 && t.version == 1 && t.updated_at_ms == now);
    EXPECT_INT(pending_count(st), 1);             /* the first change's row only */
    ASSERT(store_list_audit(st, NULL, "q", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_INT(rows[0].id, r.audit_id);
    EXPECT_STR(rows[0].outcome, "rejected");
    EXPECT_STR(rows[0].error_code, "out_of_bounds");
    EXPECT(rows[0].from == 5 && rows[0].to == 99 && rows[0].version == 1 && rows[0].at_ms == now + 1);
    free(rows);
    /* A refusal on a queue never changed: audited, and still no row. */
    EXPECT_INT(apply(st, "fresh", 7, now + 2, refuse_judge, &r), STORE_OK);
    EXPECT(r.applied == 0 && r.previous == 4 && r.audit_id > 0);
    EXPECT_INT(store_get_target(st, "fresh", &t), STORE_NOT_FOUND);
    EXPECT_INT(audit_count(st, "scaling", "fresh"), 1);
}

static void a_quiet_refusal_writes_no_audit_entry_but_another_code_does(store *st) {
    struct store_change_result r;
    int64_t now = util_now_ms();
    struct store_change c = change("q", 99, now);
    c.quiet_refusal = "out_of_bounds";
    EXPECT_INT(store_apply_change(st, &c, refuse_judge, NULL, &r), STORE_OK);
    EXPECT(r.applied == 0 && r.audit_id == 0);
    EXPECT_INT(audit_count(st, "scaling", "q"), 0);
    c.quiet_refusal = "rate_limited";            /* another code: audited */
    EXPECT_INT(store_apply_change(st, &c, refuse_judge, NULL, &r), STORE_OK);
    EXPECT(r.applied == 0 && r.audit_id > 0);
    EXPECT_INT(audit_count(st, "scaling", "q"), 1);
}

static void autoscale_holds_and_states_are_kept_per_queue(store *st) {
    struct store_autoscale_hold h = {.queue = "build", .until_ms = 2000, .by = "alice",
                                     .reason = "incident", .created_ms = 1000}, *holds = NULL;
    struct store_autoscale_state *states = NULL;
    size_t n = 0;
    EXPECT_INT(store_autoscale_hold(st, &h), STORE_OK);
    h.until_ms = 5000;                           /* a second hold replaces the first */
    util_copy(h.reason, sizeof h.reason, "longer");
    EXPECT_INT(store_autoscale_hold(st, &h), STORE_OK);
    util_copy(h.queue, sizeof h.queue, "another");
    EXPECT_INT(store_autoscale_hold(st, &h), STORE_OK);
    ASSERT(store_autoscale_holds(st, &holds, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_STR(holds[0].queue, "another");
    EXPECT_STR(holds[1].queue, "build");
    EXPECT(holds[1].until_ms == 5000 && holds[1].created_ms == 1000);
    EXPECT_STR(holds[1].reason, "longer");
    EXPECT_STR(holds[1].by, "alice");
    free(holds);
    EXPECT_INT(store_autoscale_put_state(st, "build", "{\"decisions\":[]}", 10), STORE_OK);
    EXPECT_INT(store_autoscale_put_state(st, "build", "{\"decisions\":[1]}", 20), STORE_OK);
    ASSERT(store_autoscale_states(st, &states, &n) == STORE_OK);
    ASSERT(n == 1);
    EXPECT_STR(states[0].state, "{\"decisions\":[1]}");
    EXPECT_INT(states[0].updated_ms, 20);
    free(states);
}

static void abandoned_change_writes_nothing(store *st) {
    struct store_change_result r;
    struct store_target t;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);
    EXPECT_INT(apply(st, "q", 6, now + 1, abandon_judge, &r), STORE_OK);
    EXPECT(r.applied == -1 && r.changed == 0 && r.audit_id == 0);
    EXPECT_INT(r.target.desired, 5);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT(t.desired == 5 && t.version == 1);
    EXPECT_INT(audit_count(st, NULL, NULL), 1);
    EXPECT_INT(pending_count(st), 1);
    EXPECT_INT(apply(st, "never", 6, now + 2, abandon_judge, &r), STORE_OK);
    EXPECT_INT(store_get_target(st, "never", &t), STORE_NOT_FOUND);
    EXPECT_INT(audit_count(st, NULL, NULL), 1);
}

static void change_to_the_current_value_writes_nothing(store *st) {
    struct store_change_result r;
    struct store_target t;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "build", 6, now, accept_judge, &r) == STORE_OK);
    EXPECT(r.applied == 1 && r.changed == 1 && r.audit_id > 0);
    for (int i = 1; i <= 20; i++) {
        ASSERT(apply(st, "build", 6, now + i, accept_judge, &r) == STORE_OK);
        EXPECT(r.applied == 1 && r.changed == 0 && r.audit_id == 0);
    }
    EXPECT(r.previous == 6 && r.target.desired == 6 && r.target.version == 1);
    /* Nor does a temporary override at the current value start one. */
    ASSERT(apply_override(st, "build", 6, now + 30, now + HOUR_MS, &r) == STORE_OK);
    EXPECT(r.applied == 1 && r.changed == 0 && r.audit_id == 0 && r.target.expires_at_ms == 0);
    ASSERT(store_get_target(st, "build", &t) == STORE_OK);
    EXPECT(t.version == 1 && t.expires_at_ms == 0);
    EXPECT_INT(t.updated_at_ms, now);             /* the row was not rewritten */
    EXPECT_INT(audit_count(st, NULL, NULL), 1);
    EXPECT_INT(pending_count(st), 1);
    /* The default of a queue never changed is its current value too. */
    ASSERT(apply(st, "untouched", 4, now, accept_judge, &r) == STORE_OK);
    EXPECT(r.applied == 1 && r.changed == 0 && r.audit_id == 0 && r.target.version == 0);
    EXPECT_INT(store_get_target(st, "untouched", &t), STORE_NOT_FOUND);
}

/* ---- temporary overrides ------------------------------------------------------------------- */

static void temporary_override_remembers_the_value_to_revert_to(store *st) {
    struct store_change_result r;
    struct store_target *list = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 6, now, accept_judge, &r) == STORE_OK);
    ASSERT(apply_override(st, "q", 10, now + 1, now + HOUR_MS, &r) == STORE_OK);
    EXPECT(r.changed == 1 && r.target.version == 2);
    EXPECT(r.target.expires_at_ms == now + HOUR_MS && r.target.revert_to == 6);
    /* An override on an override still reverts to the value before both;
     * the judge is shown the override in force. */
    struct seen seen = {0};
    struct store_change c = change("q", 12, now + 2);
    c.expires_at_ms = now + 2 * HOUR_MS;
    ASSERT(store_apply_change(st, &c, accept_judge, &seen, &r) == STORE_OK);
    EXPECT(seen.cur.desired == 10 && seen.cur.expires_at_ms == now + HOUR_MS && seen.cur.revert_to == 6);
    EXPECT(r.target.revert_to == 6 && r.target.version == 3 && r.target.expires_at_ms == now + 2 * HOUR_MS);
    /* On a queue never changed it reverts to the default. */
    ASSERT(apply_override(st, "a", 1, now, now + HOUR_MS, &r) == STORE_OK);
    EXPECT(r.target.revert_to == 4 && r.target.version == 1);
    ASSERT(store_list_targets(st, &list, &n) == STORE_OK);
    ASSERT(n == 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].queue, "q") == 0)
            EXPECT(list[i].desired == 12 && list[i].revert_to == 6 && list[i].expires_at_ms == now + 2 * HOUR_MS);
        else
            EXPECT(strcmp(list[i].queue, "a") == 0 && list[i].desired == 1 && list[i].revert_to == 4);
    }
    free(list);
    /* A permanent change to another value ends the override: a new version. */
    ASSERT(apply(st, "q", 7, now + 3, accept_judge, &r) == STORE_OK);
    EXPECT(r.changed == 1 && r.target.version == 4 && r.target.expires_at_ms == 0 && r.target.revert_to == 0);
}

static void permanent_change_at_the_override_value_keeps_the_version(store *st) {
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(apply_override(st, "q", 9, now, now + HOUR_MS, &r) == STORE_OK);
    EXPECT_INT(pending_count(st), 1);
    ASSERT(apply(st, "q", 9, now + 1, accept_judge, &r) == STORE_OK);    /* ends the override */
    EXPECT(r.applied == 1 && r.changed == 1 && r.audit_id > 0 && r.previous == 9);
    EXPECT(r.target.version == 1 && r.target.expires_at_ms == 0 && r.target.revert_to == 0);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT(t.desired == 9 && t.version == 1 && t.expires_at_ms == 0 && t.updated_at_ms == now + 1);
    EXPECT_INT(pending_count(st), 1);             /* workers have nothing new to apply */
    ASSERT(store_list_audit(st, "scaling", "q", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT(rows[0].id == r.audit_id && rows[0].from == 9 && rows[0].to == 9 && rows[0].version == 1);
    EXPECT_STR(rows[0].outcome, "applied");
    free(rows);
    /* Once permanent, the same value again is a no-op. */
    ASSERT(apply(st, "q", 9, now + 2, accept_judge, &r) == STORE_OK);
    EXPECT(r.changed == 0 && r.audit_id == 0);
}

static void list_expired_returns_overrides_ended_by_now(store *st) {
    struct store_change_result r;
    struct store_target *list = NULL;
    size_t n = 9;
    int64_t now = util_now_ms();
    ASSERT(apply_override(st, "soon", 8, now, now + 1000, &r) == STORE_OK);
    ASSERT(apply_override(st, "later", 8, now, now + 5000, &r) == STORE_OK);
    ASSERT(apply(st, "permanent", 8, now, accept_judge, &r) == STORE_OK);
    ASSERT(store_list_expired(st, now + 999, &list, &n) == STORE_OK);
    EXPECT_INT(n, 0);
    free(list);
    list = NULL;
    ASSERT(store_list_expired(st, now + 1000, &list, &n) == STORE_OK);     /* at: ended */
    EXPECT_INT(n, 1);
    if (n == 1) EXPECT(!strcmp(list[0].queue, "soon") && list[0].revert_to == 4 && list[0].desired == 8);
    free(list);
    list = NULL;
    ASSERT(store_list_expired(st, now + 10000, &list, &n) == STORE_OK);
    EXPECT_INT(n, 2);
    free(list);
}

/* ---- what the judge is shown ------------------------------------------------------------------- */

static void judge_stats_count_only_changes_that_moved_the_value(store *st) {
    struct store_change_result r;
    struct seen seen = {0};
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 5, now - 120 * MIN_MS, accept_judge, &r) == STORE_OK);  /* too old */
    ASSERT(apply(st, "q", 6, now - 10 * MIN_MS, accept_judge, &r) == STORE_OK);
    ASSERT(apply(st, "q", 7, now - 5 * MIN_MS, accept_judge, &r) == STORE_OK);
    ASSERT(apply_override(st, "q", 9, now - 4 * MIN_MS, now + HOUR_MS, &r) == STORE_OK);
    ASSERT(apply(st, "q", 9, now - 3 * MIN_MS, accept_judge, &r) == STORE_OK);    /* audited, no move */
    ASSERT(apply(st, "q", 9, now - 1 * MIN_MS, accept_judge, &r) == STORE_OK);    /* no-op */
    ASSERT(apply(st, "q", 3, now - 30000, refuse_judge, &r) == STORE_OK);         /* refused */
    ASSERT(apply(st, "other", 9, now - 20000, accept_judge, &r) == STORE_OK);     /* other queue */
    ASSERT(store_set_flag(st, "local", "q", 1, 0, "root", "api", "same name", "rid-f",
                          now - 10000) == STORE_OK);                              /* a flag named q */
    struct store_change c = change("q", 8, now);
    ASSERT(store_apply_change(st, &c, refuse_judge, &seen, &r) == STORE_OK);
    EXPECT_INT(seen.stats.applied_last_hour, 3);
    EXPECT_INT(seen.stats.oldest_in_hour_ms, now - 10 * MIN_MS);
    EXPECT_INT(seen.stats.last_applied_ms, now - 4 * MIN_MS);
    EXPECT(seen.cur.desired == 9 && seen.cur.version == 4);
    /* Changed long ago only: nothing in the hour, but the last time is known. */
    ASSERT(apply(st, "old", 5, now - 3 * HOUR_MS, accept_judge, &r) == STORE_OK);
    c = change("old", 6, now);
    ASSERT(store_apply_change(st, &c, refuse_judge, &seen, &r) == STORE_OK);
    EXPECT(seen.stats.applied_last_hour == 0 && seen.stats.oldest_in_hour_ms == 0);
    EXPECT_INT(seen.stats.last_applied_ms, now - 3 * HOUR_MS);
    /* Never changed: all zero. */
    c = change("new", 6, now);
    ASSERT(store_apply_change(st, &c, refuse_judge, &seen, &r) == STORE_OK);
    EXPECT(seen.stats.applied_last_hour == 0 && seen.stats.oldest_in_hour_ms == 0 &&
           seen.stats.last_applied_ms == 0);
}

/* ---- the outbox ------------------------------------------------------------------------------------ */

static void outbox_lists_pending_rows_in_commit_order_until_published(store *st) {
    struct store_change_result r;
    struct store_outbox *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);         /* q v1 */
    ASSERT(apply(st, "z", 3, now + 1, accept_judge, &r) == STORE_OK);     /* z v1 */
    ASSERT(apply(st, "q", 5, now + 2, accept_judge, &r) == STORE_OK);     /* no-op */
    ASSERT(apply(st, "q", 9, now + 3, refuse_judge, &r) == STORE_OK);     /* refused */
    ASSERT(apply(st, "q", 6, now + 4, accept_judge, &r) == STORE_OK);     /* q v2 */
    ASSERT(store_outbox_pending(st, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT(!strcmp(rows[0].queue, "q") && rows[0].version == 1 && rows[0].desired == 5);
    EXPECT(!strcmp(rows[1].queue, "z") && rows[1].version == 1 && rows[1].desired == 3);
    EXPECT(!strcmp(rows[2].queue, "q") && rows[2].version == 2 && rows[2].desired == 6);
    EXPECT(rows[0].id < rows[1].id && rows[1].id < rows[2].id);
    EXPECT_INT(rows[2].created_ms, now + 4);
    int64_t first = rows[0].id, second = rows[1].id, third = rows[2].id;
    free(rows);
    rows = NULL;
    ASSERT(store_outbox_pending(st, 2, &rows, &n) == STORE_OK);            /* at most limit */
    EXPECT(n == 2 && rows[0].id == first);
    free(rows);
    rows = NULL;
    EXPECT_INT(store_outbox_mark_published(st, second, now + 10), STORE_OK);
    ASSERT(store_outbox_pending(st, 10, &rows, &n) == STORE_OK);
    EXPECT(n == 2 && rows[0].id == first && rows[1].id == third);
    free(rows);
    EXPECT_INT(store_outbox_mark_published(st, first, now + 11), STORE_OK);
    EXPECT_INT(store_outbox_mark_published(st, third, now + 12), STORE_OK);
    EXPECT_INT(pending_count(st), 0);
}

static int has_name(char (*names)[UTIL_NAME_MAX + 1], size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return 1;
    return 0;
}

static const struct store_target *find_target(const struct store_target *t, size_t n, const char *queue) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].queue, queue) == 0) return &t[i];
    return NULL;
}

/* Publish every pending row, as the relay does. */
static void publish_all(store *st, int64_t now) {
    struct store_outbox *rows = NULL;
    size_t n = 0;
    if (store_outbox_pending(st, 1000, &rows, &n) == STORE_OK)
        for (size_t i = 0; i < n; i++) EXPECT_INT(store_outbox_mark_published(st, rows[i].id, now), STORE_OK);
    free(rows);
}

static void desired_snapshot_leaves_out_queues_with_unpublished_rows(store *st) {
    struct store_change_result r;
    struct store_target *targets = NULL;
    char (*pending)[UTIL_NAME_MAX + 1] = NULL;
    size_t nt = 9, np = 9;
    int64_t now = util_now_ms();
    ASSERT(store_desired_snapshot(st, &targets, &nt, &pending, &np) == STORE_OK);
    EXPECT(nt == 0 && np == 0);
    free(targets);
    free(pending);
    ASSERT(apply(st, "done", 5, now, accept_judge, &r) == STORE_OK);
    ASSERT(apply(st, "moving", 5, now, accept_judge, &r) == STORE_OK);
    publish_all(st, now);
    ASSERT(apply(st, "moving", 6, now + 1, accept_judge, &r) == STORE_OK);   /* v2 not yet out */
    ASSERT(apply(st, "new", 7, now + 1, accept_judge, &r) == STORE_OK);
    ASSERT(store_desired_snapshot(st, &targets, &nt, &pending, &np) == STORE_OK);
    EXPECT_INT(nt, 1);
    EXPECT(find_target(targets, nt, "done") != NULL);
    EXPECT_INT(np, 2);
    EXPECT(has_name(pending, np, "moving") && has_name(pending, np, "new"));
    free(targets);
    free(pending);
    publish_all(st, now + 2);
    ASSERT(store_desired_snapshot(st, &targets, &nt, &pending, &np) == STORE_OK);
    EXPECT(nt == 3 && np == 0);
    const struct store_target *m = find_target(targets, nt, "moving");
    EXPECT(m != NULL && m->desired == 6 && m->version == 2);
    free(targets);
    free(pending);
}

/* ---- the audit log ------------------------------------------------------------------------------------ */

static void append_audit_writes_an_entry_and_returns_its_id(store *st) {
    struct store_audit e, *rows = NULL;
    size_t n = 0;
    memset(&e, 0, sizeof e);
    strcpy(e.kind, "scaling");
    strcpy(e.subject, "q");
    e.from = 3;
    e.to = 500;
    e.version = 0;
    strcpy(e.actor, "bob");
    strcpy(e.source, "api");
    strcpy(e.reason, "too big");
    strcpy(e.outcome, "rejected");
    strcpy(e.error_code, "confirmation_required");
    e.at_ms = util_now_ms();
    strcpy(e.request_id, "rid-a");
    ASSERT(store_append_audit(st, &e) == STORE_OK);
    EXPECT(e.id > 0);
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 1);
    EXPECT_INT(rows[0].id, e.id);
    EXPECT(rows[0].from == 3 && rows[0].to == 500 && rows[0].at_ms == e.at_ms);
    EXPECT_STR(rows[0].error_code, "confirmation_required");
    EXPECT_STR(rows[0].outcome, "rejected");
    EXPECT_STR(rows[0].request_id, "rid-a");
    free(rows);
}

static void audit_lists_newest_first_by_page_kind_and_subject(store *st) {
    struct store_change_result r;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms(), ids[6];
    for (int i = 0; i < 6; i++) {
        ASSERT(apply(st, i % 2 ? "odd" : "even", 5 + i, now + i, accept_judge, &r) == STORE_OK);
        ids[i] = r.audit_id;
    }
    ASSERT(store_set_flag(st, "local", "odd", 1, 0, "root", "api", "a flag", "rid-f", now + 9) == STORE_OK);
    ASSERT(store_list_audit(st, "scaling", NULL, 0, 4, &rows, &n) == STORE_OK);
    ASSERT(n == 4);
    for (int i = 0; i < 4; i++) EXPECT_INT(rows[i].id, ids[5 - i]);
    int64_t before = rows[3].id;
    free(rows);
    ASSERT(store_list_audit(st, "scaling", NULL, before, 4, &rows, &n) == STORE_OK);   /* the next page */
    ASSERT(n == 2);
    EXPECT(rows[0].id == ids[1] && rows[1].id == ids[0]);
    free(rows);
    ASSERT(store_list_audit(st, "scaling", "odd", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    for (size_t i = 0; i < n; i++) EXPECT_STR(rows[i].subject, "odd");
    EXPECT_INT(rows[0].id, ids[5]);
    free(rows);
    ASSERT(store_list_audit(st, "flag", NULL, 0, 10, &rows, &n) == STORE_OK);
    EXPECT(n == 1 && !strcmp(rows[0].subject, "odd") && !strcmp(rows[0].kind, "flag"));
    free(rows);
    ASSERT(store_list_audit(st, NULL, "odd", 0, 10, &rows, &n) == STORE_OK);    /* every kind */
    EXPECT_INT(n, 4);
    free(rows);
    ASSERT(store_list_audit(st, NULL, NULL, 0, 0, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 0);
    free(rows);
}

/* Appends one audit entry with these fields, at at_ms; returns its id. */
static int64_t audit_entry(store *st, const char *kind, const char *subject, const char *actor,
                           const char *source, const char *outcome, int64_t at_ms) {
    struct store_audit e;
    struct store_origin o = {actor, source, "filtered", "rid-filter", at_ms};
    store_audit_init(&e, kind, subject, 1, 2, 1, outcome,
                     strcmp(outcome, "rejected") == 0 ? "rate_limited" : NULL, &o);
    return store_append_audit(st, &e) == STORE_OK ? e.id : -1;
}

/* The ids of what f lets through, newest first, into ids; returns how many
 * (-1 when the store failed). */
static long audit_found(store *st, const struct store_audit_filter *f, int limit, int64_t *ids) {
    struct store_audit *rows = NULL;
    size_t n = 0;
    if (store_find_audit(st, f, limit, &rows, &n) != STORE_OK) return -1;
    for (size_t i = 0; i < n; i++) ids[i] = rows[i].id;
    free(rows);
    return (long)n;
}

static void audit_filters_by_actor_outcome_source_kind_and_time(store *st) {
    int64_t t0 = 1764421200000, ids[8], got[16];
    ids[0] = audit_entry(st, "scaling", "build", "alice", "ui", "applied", t0);
    ids[1] = audit_entry(st, "scaling", "build", "bob", "api", "rejected", t0 + 1000);
    ids[2] = audit_entry(st, "flag", "writes", "alice", "api", "applied", t0 + 2000);
    ids[3] = audit_entry(st, "policy", "reload", "sluiced", "sluiced", "applied", t0 + 3000);
    ids[4] = audit_entry(st, "scaling", "mail", "alice", "cli", "applied", t0 + 4000);
    for (int i = 0; i < 5; i++) ASSERT(ids[i] > 0);
    struct store_audit_filter f = {0};
    f.actor = "alice";
    ASSERT(audit_found(st, &f, 10, got) == 3);
    EXPECT(got[0] == ids[4] && got[1] == ids[2] && got[2] == ids[0]);
    memset(&f, 0, sizeof f);
    f.outcome = "rejected";
    EXPECT(audit_found(st, &f, 10, got) == 1 && got[0] == ids[1]);
    memset(&f, 0, sizeof f);
    f.source = "api";
    f.kind = "scaling";
    EXPECT(audit_found(st, &f, 10, got) == 1 && got[0] == ids[1]);
    memset(&f, 0, sizeof f);
    f.kind = "policy";
    EXPECT(audit_found(st, &f, 10, got) == 1 && got[0] == ids[3]);
    memset(&f, 0, sizeof f);                     /* both ends of the range included */
    f.since_ms = t0 + 1000;
    f.until_ms = t0 + 3000;
    ASSERT(audit_found(st, &f, 10, got) == 3);
    EXPECT(got[0] == ids[3] && got[2] == ids[1]);
    f.before_id = ids[3];                        /* paging within a filter */
    f.actor = "alice";
    EXPECT(audit_found(st, &f, 10, got) == 1 && got[0] == ids[2]);
    memset(&f, 0, sizeof f);
    f.actor = "nobody";
    EXPECT(audit_found(st, &f, 10, got) == 0);
    EXPECT(audit_found(st, NULL, 2, got) == 2 && got[0] == ids[4]);
}

/* count changes of queue q, one a minute from `from` on, each to a new
 * value; returns the first audit id, or -1. */
static int64_t audit_changes(store *st, int count, int64_t from) {
    struct store_change_result r;
    struct store_target t;
    int64_t first = 0, value = store_get_target(st, "q", &t) == STORE_OK ? t.desired : 4;
    for (int i = 0; i < count; i++) {
        value = value % 50 + 1;
        if (apply(st, "q", value, from + i * MIN_MS, accept_judge, &r) != STORE_OK || !r.changed) return -1;
        if (i == 0) first = r.audit_id;
    }
    return first;
}

static void audit_export_reads_oldest_first_in_pages(store *st) {
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t first = audit_changes(st, 5, util_now_ms() - 10 * MIN_MS);
    ASSERT(first > 0);
    ASSERT(store_list_audit_oldest(st, 0, 0, 3, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT(rows[0].id == first && rows[1].id == first + 1 && rows[2].id == first + 2);
    free(rows);
    ASSERT(store_list_audit_oldest(st, first + 2, 0, 3, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT(rows[0].id == first + 3 && rows[1].id == first + 4);
    free(rows);
    ASSERT(store_list_audit_oldest(st, 0, first + 2, 10, &rows, &n) == STORE_OK);
    EXPECT(n == 2 && rows[1].id == first + 1);
    free(rows);
    ASSERT(store_list_audit_oldest(st, first + 4, 0, 10, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 0);
    free(rows);
}

static void audit_bound_at_is_the_first_id_at_or_after_a_time(store *st) {
    int64_t now = util_now_ms(), bound = 0;
    EXPECT_INT(store_audit_bound_at(st, now, &bound), STORE_OK);
    EXPECT_INT(bound, 1);                         /* an empty log */
    int64_t t0 = now - 4 * DAY_MS, first = audit_changes(st, 4, t0);   /* a minute apart */
    ASSERT(first > 0);
    EXPECT_INT(store_audit_bound_at(st, t0 - 1, &bound), STORE_OK);
    EXPECT_INT(bound, first);
    EXPECT_INT(store_audit_bound_at(st, t0 + 2 * MIN_MS, &bound), STORE_OK);
    EXPECT_INT(bound, first + 2);
    EXPECT_INT(store_audit_bound_at(st, t0 + 90000, &bound), STORE_OK);
    EXPECT_INT(bound, first + 2);
    EXPECT_INT(store_audit_bound_at(st, now, &bound), STORE_OK);
    EXPECT_INT(bound, first + 4);                 /* all older: one past the newest */
}

static struct store_prune prune_spec(int64_t before_id, int64_t before_at_ms, int64_t now) {
    struct store_prune p = {before_id, before_at_ms, now - DAY_MS, "ops", "cli", "keep a year", "prune-1", now};
    return p;
}

static void prune_deletes_a_prefix_audits_itself_and_keeps_earlier_prunes(store *st) {
    struct store_prune_result res;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    int64_t first = audit_changes(st, 6, now - 3 * DAY_MS);
    ASSERT(first > 0);
    struct store_prune p = prune_spec(first + 4, 0, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 4 && res.before_id == first + 4);
    EXPECT_INT(res.youngest_ms, now - 3 * DAY_MS + 3 * MIN_MS);
    EXPECT_INT(res.entry.id, first + 6);          /* ids go on: nothing is reused */
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT_INT(rows[0].id, res.entry.id);
    EXPECT_STR(rows[0].kind, "audit");
    EXPECT_STR(rows[0].subject, "prune");
    EXPECT(rows[0].from == 4 && rows[0].to == first + 4 && rows[0].version == 0 && rows[0].at_ms == now);
    EXPECT(!strcmp(rows[0].actor, "ops") && !strcmp(rows[0].source, "cli") &&
           !strcmp(rows[0].reason, "keep a year") && !strcmp(rows[0].outcome, "applied") &&
           !strcmp(rows[0].request_id, "prune-1"));
    EXPECT(rows[1].id == first + 5 && rows[2].id == first + 4);
    free(rows);
    /* A later prune past the first one's entry never deletes that entry. */
    p = prune_spec(first + 7, 0, now + 1);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT_INT(res.deleted, 2);
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT(!strcmp(rows[0].kind, "audit") && rows[0].from == 2);
    EXPECT(!strcmp(rows[1].kind, "audit") && rows[1].from == 4);
    free(rows);
}

static void prune_refuses_entries_too_new_and_writes_nothing(store *st) {
    struct store_prune_result res;
    int64_t now = util_now_ms();
    int64_t first = audit_changes(st, 3, now - 2 * DAY_MS);
    ASSERT(first > 0 && audit_changes(st, 2, now - 60 * MIN_MS) > 0);
    struct store_prune p = prune_spec(first + 5, 0, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(res.refused && res.deleted == 0);
    EXPECT_INT(res.youngest_ms, now - 59 * MIN_MS);
    EXPECT_INT(audit_count(st, NULL, NULL), 5);
    p = prune_spec(first + 3, 0, now);            /* exactly as new as keep_after_ms: refused */
    p.keep_after_ms = now - 2 * DAY_MS + 2 * MIN_MS;
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(res.refused && res.youngest_ms == p.keep_after_ms);
    EXPECT_INT(audit_count(st, NULL, NULL), 5);
    p = prune_spec(first + 3, 0, now);            /* the old ones only */
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 3);
    EXPECT_INT(audit_count(st, NULL, NULL), 3);
}

static void prune_of_an_empty_prefix_still_audits_itself(store *st) {
    struct store_prune_result res;
    int64_t now = util_now_ms();
    struct store_prune p = prune_spec(0, now - DAY_MS, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 0 && res.youngest_ms == 0 && res.before_id == 1);
    EXPECT(res.entry.id > 0 && res.entry.from == 0);
    EXPECT_INT(audit_count(st, "audit", "prune"), 1);
}

static void prune_by_time_deletes_the_entries_before_the_first_at_that_time(store *st) {
    struct store_prune_result res;
    int64_t now = util_now_ms();
    int64_t first = audit_changes(st, 4, now - 4 * DAY_MS);
    ASSERT(first > 0);
    struct store_prune p = prune_spec(0, now - 4 * DAY_MS + 90000, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 2 && res.before_id == first + 2);
    EXPECT_INT(audit_count(st, "scaling", NULL), 2);
}

static void audit_log_refuses_raw_updates_and_deletes(store *st) {
    struct store_change_result r;
    struct store_audit *rows = NULL;
    size_t n = 0;
    char msg[512];
    ASSERT(apply(st, "q", 5, util_now_ms(), accept_judge, &r) == STORE_OK);
    EXPECT(be->raw(db_url, "UPDATE scaling_audit SET reason = 'x'", msg, sizeof msg) != 0);
    EXPECT_CONTAINS(msg, "append-only");
    EXPECT(be->raw(db_url, "DELETE FROM scaling_audit", msg, sizeof msg) != 0);
    EXPECT_CONTAINS(msg, "append-only");
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 1);
    if (n == 1) EXPECT_STR(rows[0].reason, "load test");
    free(rows);
}

static void text_that_looks_like_sql_and_long_utf8_is_stored_verbatim(store *st) {
    static const char *const reason = "'); DROP TABLE scaling_audit; --";
    static const char *const actor = "x' OR '1'='1";
    char long_reason[1001];
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    size_t n = 0;
    for (int i = 0; i < 500; i++) memcpy(long_reason + 2 * i, "\xc3\xa9", 2);   /* 500 x 'é' */
    long_reason[1000] = '\0';
    struct store_change c = {.queue = "q", .to = 7, .default_value = 4, .actor = actor, .source = "api",
                              .reason = reason, .request_id = "rid-x", .now_ms = util_now_ms()};
    ASSERT(store_apply_change(st, &c, accept_judge, NULL, &r) == STORE_OK);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT_STR(t.reason, reason);
    EXPECT_STR(t.updated_by, actor);
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 1);
    EXPECT_STR(rows[0].reason, reason);
    EXPECT_STR(rows[0].actor, actor);
    free(rows);
    c.to = 8;
    c.reason = long_reason;
    ASSERT(store_apply_change(st, &c, accept_judge, NULL, &r) == STORE_OK);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT_STR(t.reason, long_reason);
}

/* ---- flags, tokens, sessions ------------------------------------------------------------------ */

static void flags_are_set_per_environment_and_audited_with_their_from(store *st) {
    struct store_flag f;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    EXPECT_INT(store_get_flag(st, "staging", "writes", &f), STORE_NOT_FOUND);
    /* Never set: the audit's "from" is the default given. */
    EXPECT_INT(store_set_flag(st, "staging", "writes", 1, 0, "root", "cli", "go live", "rid-f", now), STORE_OK);
    ASSERT(store_get_flag(st, "staging", "writes", &f) == STORE_OK);
    EXPECT(f.enabled == 1 && f.updated_at_ms == now);
    EXPECT_STR(f.name, "writes");
    EXPECT_STR(f.updated_by, "root");
    EXPECT_STR(f.reason, "go live");
    EXPECT_INT(store_get_flag(st, "production", "writes", &f), STORE_NOT_FOUND);
    /* Set: "from" is the stored value, whatever default is passed. */
    EXPECT_INT(store_set_flag(st, "staging", "writes", 0, 0, "root", "cli", "freeze", "rid-g", now + 1), STORE_OK);
    ASSERT(store_get_flag(st, "staging", "writes", &f) == STORE_OK);
    EXPECT_INT(f.enabled, 0);
    EXPECT_INT(store_set_flag(st, "production", "writes", 0, 1, "root", "cli", "off", "rid-h", now + 2), STORE_OK);
    ASSERT(store_list_audit(st, "flag", "writes", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT(rows[0].from == 1 && rows[0].to == 0);         /* production, from its default */
    EXPECT(rows[1].from == 1 && rows[1].to == 0);         /* staging, from the stored value */
    EXPECT_STR(rows[1].reason, "freeze");
    EXPECT_STR(rows[1].request_id, "rid-g");
    EXPECT(rows[2].from == 0 && rows[2].to == 1 && rows[2].at_ms == now);
    EXPECT_STR(rows[2].kind, "flag");
    EXPECT_STR(rows[2].outcome, "applied");
    EXPECT_STR(rows[2].actor, "root");
    free(rows);
}

static int add_token(store *st, const char *id, int64_t created) {
    struct store_token t;
    memset(&t, 0, sizeof t);
    util_copy(t.id, sizeof t.id, id);
    snprintf(t.name, sizeof t.name, "name-%s", id);
    strcpy(t.secret_hash, "0123abcd");
    strcpy(t.scopes, "scaling:read,scaling:write");
    t.created_ms = created;
    return store_put_token(st, &t);
}

static void tokens_are_stored_listed_and_revoked_once(store *st) {
    struct store_token t, *list = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    EXPECT_INT(store_get_token(st, "nope", &t), STORE_NOT_FOUND);
    ASSERT(add_token(st, "aaaa", now) == STORE_OK);
    memset(&t, 0, sizeof t);
    strcpy(t.id, "bbbb");
    strcpy(t.name, "expiring");
    strcpy(t.secret_hash, "ffff");
    strcpy(t.scopes, "admin");
    t.created_ms = now + 1;
    t.expires_ms = now + DAY_MS;
    ASSERT(store_put_token(st, &t) == STORE_OK);
    ASSERT(store_get_token(st, "aaaa", &t) == STORE_OK);
    EXPECT_STR(t.name, "name-aaaa");
    EXPECT_STR(t.secret_hash, "0123abcd");
    EXPECT_STR(t.scopes, "scaling:read,scaling:write");
    EXPECT(t.created_ms == now && t.expires_ms == 0 && t.revoked_ms == 0);
    ASSERT(store_get_token(st, "bbbb", &t) == STORE_OK);
    EXPECT_INT(t.expires_ms, now + DAY_MS);
    ASSERT(store_list_tokens(st, &list, &n) == STORE_OK);
    EXPECT_INT(n, 2);
    free(list);
    EXPECT_INT(store_revoke_token(st, "aaaa", now + 5), STORE_OK);
    EXPECT_INT(store_revoke_token(st, "aaaa", now + 9), STORE_OK);
    ASSERT(store_get_token(st, "aaaa", &t) == STORE_OK);
    EXPECT_INT(t.revoked_ms, now + 5);           /* the first revocation stands */
    ASSERT(store_get_token(st, "bbbb", &t) == STORE_OK);
    EXPECT_INT(t.revoked_ms, 0);
    EXPECT_INT(store_revoke_token(st, "nope", now), STORE_NOT_FOUND);
}

static int put_session(store *st, const char *token_id, int n, int64_t created, int64_t expires) {
    struct store_session x;
    memset(&x, 0, sizeof x);
    snprintf(x.id_hash, sizeof x.id_hash, "%s-%02d", token_id, n);
    util_copy(x.token_id, sizeof x.token_id, token_id);
    snprintf(x.csrf, sizeof x.csrf, "csrf-%02d", n);
    x.created_ms = created;
    x.expires_ms = expires;
    return store_put_session(st, &x);
}

static int has_session(store *st, const char *token_id, int n) {
    struct store_session x;
    char id[STORE_HASH_MAX];
    snprintf(id, sizeof id, "%s-%02d", token_id, n);
    return store_get_session(st, id, &x) == STORE_OK;
}

static void sessions_are_stored_read_and_deleted(store *st) {
    struct store_session x;
    int64_t now = util_now_ms();
    EXPECT_INT(store_get_session(st, "aaaa-01", &x), STORE_NOT_FOUND);
    ASSERT(add_token(st, "aaaa", now) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 1, now, now + HOUR_MS) == STORE_OK);
    ASSERT(store_get_session(st, "aaaa-01", &x) == STORE_OK);
    EXPECT_STR(x.id_hash, "aaaa-01");
    EXPECT_STR(x.token_id, "aaaa");
    EXPECT_STR(x.csrf, "csrf-01");
    EXPECT(x.created_ms == now && x.expires_ms == now + HOUR_MS);
    EXPECT_INT(store_delete_session(st, "aaaa-01"), STORE_OK);
    EXPECT_INT(store_get_session(st, "aaaa-01", &x), STORE_NOT_FOUND);
}

static void one_session_too_many_ends_the_oldest_of_that_token_only(store *st) {
    struct store_limits lim = {.sessions_per_token = 3};
    int64_t now = util_now_ms(), later = now + HOUR_MS;
    store_set_limits(st, &lim);
    ASSERT(add_token(st, "aaaa", now) == STORE_OK && add_token(st, "bbbb", now) == STORE_OK);
    ASSERT(put_session(st, "bbbb", 1, now, later) == STORE_OK);
    /* Made in the same millisecond: the order of making decides, not the clock. */
    for (int i = 1; i <= 5; i++) ASSERT(put_session(st, "aaaa", i, now, later) == STORE_OK);
    EXPECT(!has_session(st, "aaaa", 1) && !has_session(st, "aaaa", 2));
    EXPECT(has_session(st, "aaaa", 3) && has_session(st, "aaaa", 4) && has_session(st, "aaaa", 5));
    EXPECT(has_session(st, "bbbb", 1));
    /* Even with a clock that went back, the newest session is kept. */
    ASSERT(put_session(st, "aaaa", 6, now - MIN_MS, later) == STORE_OK);
    EXPECT(has_session(st, "aaaa", 6) && !has_session(st, "aaaa", 3));
}

static void sweep_deletes_expired_sessions_only(store *st) {
    int64_t now = util_now_ms(), deleted = -1;
    ASSERT(add_token(st, "aaaa", now) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 3, now, now + HOUR_MS) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 1, now - 2 * HOUR_MS, now - HOUR_MS) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 2, now - 2 * HOUR_MS, now - 1) == STORE_OK);
    /* Each was live when the next was made (at its own created time). */
    EXPECT(has_session(st, "aaaa", 1) && has_session(st, "aaaa", 2) && has_session(st, "aaaa", 3));
    EXPECT_INT(store_sweep_sessions(st, now, &deleted), STORE_OK);
    EXPECT_INT(deleted, 2);
    EXPECT(!has_session(st, "aaaa", 1) && !has_session(st, "aaaa", 2) && has_session(st, "aaaa", 3));
    EXPECT_INT(store_sweep_sessions(st, now, &deleted), STORE_OK);
    EXPECT_INT(deleted, 0);
    EXPECT_INT(store_sweep_sessions(st, now + 2 * HOUR_MS, NULL), STORE_OK);
    EXPECT(!has_session(st, "aaaa", 3));
}

static void a_new_session_sweeps_the_expired_ones_of_every_token(store *st) {
    int64_t now = util_now_ms();
    ASSERT(add_token(st, "aaaa", now) == STORE_OK && add_token(st, "bbbb", now) == STORE_OK);
    ASSERT(put_session(st, "bbbb", 1, now - 2 * HOUR_MS, now - 1) == STORE_OK);
    ASSERT(put_session(st, "bbbb", 2, now - 2 * HOUR_MS, now + HOUR_MS) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 1, now, now + HOUR_MS) == STORE_OK);
    EXPECT(!has_session(st, "bbbb", 1) && has_session(st, "bbbb", 2) && has_session(st, "aaaa", 1));
}

static void sessions_are_not_capped_without_a_limit(store *st) {
    int64_t now = util_now_ms();
    ASSERT(add_token(st, "aaaa", now) == STORE_OK);
    for (int i = 1; i <= 12; i++) ASSERT(put_session(st, "aaaa", i, now, now + HOUR_MS) == STORE_OK);
    for (int i = 1; i <= 12; i++) EXPECT(has_session(st, "aaaa", i));
}

/* ---- limits of store.c ------------------------------------------------------------------------------ */

static void admit_write_limits_each_token_at_its_rate(store *st) {
    int64_t retry = 0;
    EXPECT_INT(store_admit_write(st, "aaaa", &retry), 1);       /* no limits set: no limit */
    struct store_limits lim = {.writes_per_min = 60, .write_burst = 2};
    store_set_limits(st, &lim);
    EXPECT_INT(store_admit_write(st, "aaaa", &retry), 1);
    EXPECT_INT(store_admit_write(st, "aaaa", &retry), 1);
    retry = 0;
    EXPECT_INT(store_admit_write(st, "aaaa", &retry), 0);
    EXPECT(retry >= 1 && retry <= 1000);          /* one write a second comes back */
    EXPECT_INT(store_admit_write(st, "bbbb", &retry), 1);       /* each token its own */
    for (int i = 0; i < 10; i++) {                /* sluiced itself is never limited */
        EXPECT_INT(store_admit_write(st, NULL, &retry), 1);
        EXPECT_INT(store_admit_write(st, "", &retry), 1);
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct slow_writer {
    store *st;
    long judge_ms;
    int rc;
    atomic_int judging;          /* inside the write, holding the slot */
    pthread_t thread;
};

/* A judge that takes its time, as one stuck behind a lock would. */
static int slow_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                      char code[STORE_CODE_MAX]) {
    struct slow_writer *w = ud;
    (void)cur;
    (void)stats;
    (void)code;
    atomic_store(&w->judging, 1);
    sleep_ms(w->judge_ms);
    return 1;
}

static void *slow_writer_main(void *arg) {
    struct slow_writer *w = arg;
    struct store_change c = change("slow", 7, util_now_ms());
    struct store_change_result r;
    w->rc = store_apply_change(w->st, &c, slow_judge, w, &r);
    return NULL;
}

/* Start a writer that holds the only write slot for judge_ms. */
static int start_slow_writer(struct slow_writer *w, store *st, long judge_ms) {
    w->st = st;
    w->judge_ms = judge_ms;
    w->rc = -99;
    atomic_init(&w->judging, 0);
    if (pthread_create(&w->thread, NULL, slow_writer_main, w) != 0) return -1;
    while (!atomic_load(&w->judging)) sleep_ms(5);
    return 0;
}

static void write_gate_refuses_at_once_when_the_writers_inside_are_stuck(store *st) {
    struct store_limits lim = {.max_writers = 1};
    struct store_change_result r;
    struct slow_writer w;
    store_set_limits(st, &lim);
    ASSERT(start_slow_writer(&w, st, 2500) == 0);
    int64_t t0 = util_mono_ms();
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_BUSY);
    int64_t waited = util_mono_ms() - t0;
    EXPECT(waited >= 250 && waited < 1500);      /* until nothing moved for 500 ms */
    t0 = util_mono_ms();
    EXPECT_INT(store_set_flag(st, "local", "f", 1, 0, "a", "api", "r", "rid", util_now_ms()), STORE_BUSY);
    EXPECT(util_mono_ms() - t0 < 250);           /* stuck: refused at once */
    pthread_join(w.thread, NULL);
    EXPECT_INT(w.rc, STORE_OK);
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_OK);
    EXPECT_INT(audit_count(st, "flag", NULL), 0);
}

static void write_gate_lets_ordinary_contention_wait_its_turn(store *st) {
    struct store_limits lim = {.max_writers = 1};
    struct store_change_result r;
    struct slow_writer w;
    store_set_limits(st, &lim);
    ASSERT(start_slow_writer(&w, st, 200) == 0);
    int64_t t0 = util_mono_ms();
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_OK);
    EXPECT(util_mono_ms() - t0 >= 100);          /* it did wait for the slot */
    pthread_join(w.thread, NULL);
    EXPECT_INT(w.rc, STORE_OK);
}

/* ---- concurrency ---------------------------------------------------------------------------------- */

#define RACERS 8
#define RACES 5              /* changes per racer */

struct racer {
    store *st;                   /* half of them on a second store, as a replica */
    int index;
    int64_t versions[RACES];
    int rc;
    pthread_t thread;
};

static void *racer_main(void *arg) {
    struct racer *x = arg;
    x->rc = STORE_OK;
    for (int i = 0; i < RACES && x->rc == STORE_OK; i++) {
        struct store_change_result r;
        /* Every value distinct, so every change moves the queue. */
        struct store_change c = change("contended", 100 + x->index * RACES + i, util_now_ms());
        x->rc = store_apply_change(x->st, &c, accept_judge, NULL, &r);
        x->versions[i] = x->rc == STORE_OK && r.changed ? r.target.version : -1;
    }
    return NULL;
}

static void concurrent_changes_to_one_queue_get_versions_one_to_n(store *st) {
    struct racer racers[RACERS];
    store *replica = open_store();
    int seen[RACERS * RACES + 1] = {0};
    struct store_outbox *rows = NULL;
    struct store_target t;
    size_t n = 0;
    for (int k = 0; k < RACERS; k++) {
        racers[k] = (struct racer){.st = k % 2 && replica ? replica : st, .index = k, .rc = -99};
        ASSERT(pthread_create(&racers[k].thread, NULL, racer_main, &racers[k]) == 0);
    }
    for (int k = 0; k < RACERS; k++) pthread_join(racers[k].thread, NULL);
    EXPECT(replica != NULL);
    store_close(replica);
    for (int k = 0; k < RACERS; k++) {
        EXPECT_INT(racers[k].rc, STORE_OK);
        for (int i = 0; i < RACES; i++) {
            int64_t v = racers[k].versions[i];
            if (v >= 1 && v <= RACERS * RACES) seen[v]++;
            else UNIT_FAIL("racer %d change %d got version %lld", k, i, (long long)v);
        }
    }
    for (int v = 1; v <= RACERS * RACES; v++)
        if (seen[v] != 1) UNIT_FAIL("version %d was given %d times", v, seen[v]);
    ASSERT(store_get_target(st, "contended", &t) == STORE_OK);
    EXPECT_INT(t.version, RACERS * RACES);
    /* The outbox holds them in commit order, which is version order. */
    ASSERT(store_outbox_pending(st, 1000, &rows, &n) == STORE_OK);
    EXPECT_INT(n, RACERS * RACES);
    for (size_t i = 0; i < n; i++) EXPECT_INT(rows[i].version, (int64_t)i + 1);
    free(rows);
    EXPECT_INT(audit_count(st, "scaling", "contended"), RACERS * RACES);
}


/* ---- approvals (issue 18) --------------------------------------------------------------- */

static int approval_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                          char code[STORE_CODE_MAX]) {
    accept_judge(ud, cur, stats, code);
    return STORE_JUDGE_APPROVAL;
}

/* Ask for queue → to as carol (token tok-c); ttl_ms from now_ms. */
static int ask(store *st, const char *queue, int64_t to, int64_t now, int64_t ttl_ms,
               struct store_change_result *res) {
    struct store_change c = change(queue, to, now);
    c.actor = "carol";
    c.token_id = "tok-c";
    c.duration_s = 600;
    c.from_version = 2;
    c.approval_ttl_ms = ttl_ms;
    return store_apply_change(st, &c, approval_judge, NULL, res);
}

static void approval_waits_once_per_queue_and_every_step_is_audited(store *st) {
    struct store_change_result res, again;
    struct store_approval a, *rows = NULL;
    struct store_audit *log = NULL;
    size_t n = 0;
    int decided = -1;
    int64_t now = util_now_ms();
    ASSERT(ask(st, "q", 40, now, HOUR_MS, &res) == STORE_OK);
    EXPECT_INT(res.applied, STORE_JUDGE_APPROVAL);
    EXPECT_INT(res.changed, 0);
    EXPECT_INT(res.approval.from, 4);
    EXPECT_INT(res.approval.desired, 40);
    EXPECT_INT(res.approval.expires_at_ms, now + HOUR_MS);
    EXPECT_INT(strlen(res.approval.id), 16);
    struct store_target t;
    EXPECT_INT(store_get_target(st, "q", &t), STORE_NOT_FOUND);      /* nothing changed */
    EXPECT_INT(pending_count(st), 0);
    /* A second request while one is pending: refused, naming the first. */
    ASSERT(ask(st, "q", 50, now + 1, HOUR_MS, &again) == STORE_OK);
    EXPECT_INT(again.applied, 0);
    EXPECT_STR(again.approval.id, res.approval.id);
    ASSERT(store_get_approval(st, res.approval.id, &a) == STORE_OK);
    EXPECT_STR(a.status, "pending");
    EXPECT_STR(a.requested_by, "carol");
    EXPECT_STR(a.requester_token, "tok-c");
    EXPECT_INT(a.duration_s, 600);
    EXPECT_INT(a.from_version, 2);
    EXPECT_INT(store_get_approval(st, "0123456789abcdef", &a), STORE_NOT_FOUND);
    ASSERT(store_list_approvals(st, "pending", NULL, 10, &rows, &n) == STORE_OK);
    EXPECT(n == 1 && strcmp(rows[0].id, res.approval.id) == 0);
    free(rows);
    /* Approved once; a second decision finds it decided. */
    struct store_decision d = {res.approval.id, "approved", NULL, "bob", "api", "ok", "rid-d", now + 2};
    ASSERT(store_decide_approval(st, &d, &a, &decided) == STORE_OK);
    EXPECT_INT(decided, 1);
    EXPECT_STR(a.status, "approved");
    EXPECT_STR(a.decided_by, "bob");
    d.status = "rejected";
    ASSERT(store_decide_approval(st, &d, &a, &decided) == STORE_OK);
    EXPECT_INT(decided, 0);
    EXPECT_STR(a.status, "approved");
    ASSERT(store_approval_result(st, res.approval.id, "rejected", "rate_limited") == STORE_OK);
    ASSERT(store_get_approval(st, res.approval.id, &a) == STORE_OK);
    EXPECT_STR(a.result, "rejected");
    EXPECT_STR(a.result_code, "rate_limited");
    EXPECT_STR(a.decision_reason, "ok");
    /* The log: pending_approval, rejected approval_pending, approved — one id. */
    ASSERT(store_list_audit(st, "scaling", "q", 0, 10, &log, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT_STR(log[2].outcome, "pending_approval");
    EXPECT_STR(log[2].actor, "carol");
    EXPECT_INT(log[2].from_version, 2);
    EXPECT_STR(log[1].error_code, "approval_pending");
    EXPECT_STR(log[0].outcome, "approved");
    EXPECT_STR(log[0].actor, "bob");
    for (size_t i = 0; i < n; i++) EXPECT_STR(log[i].approval_id, res.approval.id);
    free(log);
    /* Decided: the queue may wait for another. */
    ASSERT(ask(st, "q", 50, now + 3, HOUR_MS, &again) == STORE_OK);
    EXPECT_INT(again.applied, STORE_JUDGE_APPROVAL);
    EXPECT(strcmp(again.approval.id, res.approval.id) != 0);
}

static void a_pending_approval_past_its_time_expires_instead_of_being_decided(store *st) {
    struct store_change_result res, next;
    struct store_approval a;
    struct store_audit *log = NULL;
    size_t n = 0;
    int decided = -1;
    int64_t now = util_now_ms();
    ASSERT(ask(st, "q", 40, now - 2000, 1000, &res) == STORE_OK);
    struct store_decision d = {res.approval.id, "approved", NULL, "bob", "api", "late", "rid-d", now};
    ASSERT(store_decide_approval(st, &d, &a, &decided) == STORE_OK);
    EXPECT_INT(decided, 0);
    EXPECT_STR(a.status, "expired");
    EXPECT_STR(a.decided_by, "sluiced");
    ASSERT(store_list_audit(st, "scaling", "q", 0, 1, &log, &n) == STORE_OK && n == 1);
    EXPECT_STR(log[0].outcome, "expired");
    EXPECT_STR(log[0].actor, "sluiced");
    EXPECT_STR(log[0].source, "sluiced");
    free(log);
    /* One past its time no longer holds the queue: a new request expires
     * it (when the sweep has not) and waits itself. */
    ASSERT(ask(st, "r", 40, now - 2000, 1000, &res) == STORE_OK);
    ASSERT(ask(st, "r", 30, now, HOUR_MS, &next) == STORE_OK);
    EXPECT_INT(next.applied, STORE_JUDGE_APPROVAL);
    ASSERT(store_get_approval(st, res.approval.id, &a) == STORE_OK);
    EXPECT_STR(a.status, "expired");
}

static void changes_carry_their_revert_version_and_approval_id(store *st) {
    struct store_change_result res;
    struct store_audit *log = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    ASSERT(apply(st, "q", 8, now, accept_judge, &res) == STORE_OK);
    struct store_change c = change("q", 12, now + 1);
    c.from_version = 1;
    c.approval_id = "00112233aabbccdd";
    ASSERT(store_apply_change(st, &c, accept_judge, NULL, &res) == STORE_OK && res.changed);
    struct store_audit_filter f = {0};
    f.version = 1;
    ASSERT(store_find_audit(st, &f, 10, &log, &n) == STORE_OK);
    EXPECT(n == 1 && log[0].to == 8 && log[0].from_version == 0 && log[0].approval_id[0] == '\0');
    free(log);
    f.version = 2;
    ASSERT(store_find_audit(st, &f, 10, &log, &n) == STORE_OK);
    ASSERT(n == 1);
    EXPECT_INT(log[0].from_version, 1);
    EXPECT_STR(log[0].approval_id, "00112233aabbccdd");
    free(log);
}

/* ---- the table ------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*fn)(store *st);
    int migrated;                /* 0: the test gets an empty database */
} tests[] = {
#define T(name, migrated) {#name, name, migrated}
    T(migrate_is_idempotent_and_schema_current, 0),
    T(identity_is_made_once_and_shared_by_replicas, 1),
    T(claim_admits_one_sqlite_store_and_any_number_on_postgres, 1),
    T(applied_change_writes_row_audit_and_outbox, 1),
    T(versions_strictly_increase_per_queue, 1),
    T(refused_change_writes_one_rejected_entry_and_nothing_else, 1),
    T(abandoned_change_writes_nothing, 1),
    T(change_to_the_current_value_writes_nothing, 1),
    T(temporary_override_remembers_the_value_to_revert_to, 1),
    T(permanent_change_at_the_override_value_keeps_the_version, 1),
    T(list_expired_returns_overrides_ended_by_now, 1),
    T(pause_is_a_version_that_keeps_desired_and_reaches_the_outbox, 1),
    T(list_expired_returns_timed_pauses_ended_by_now, 1),
    T(judge_stats_count_only_changes_that_moved_the_value, 1),
    T(outbox_lists_pending_rows_in_commit_order_until_published, 1),
    T(desired_snapshot_leaves_out_queues_with_unpublished_rows, 1),
    T(append_audit_writes_an_entry_and_returns_its_id, 1),
    T(audit_lists_newest_first_by_page_kind_and_subject, 1),
    T(audit_filters_by_actor_outcome_source_kind_and_time, 1),
    T(audit_export_reads_oldest_first_in_pages, 1),
    T(audit_bound_at_is_the_first_id_at_or_after_a_time, 1),
    T(prune_deletes_a_prefix_audits_itself_and_keeps_earlier_prunes, 1),
    T(prune_refuses_entries_too_new_and_writes_nothing, 1),
    T(prune_of_an_empty_prefix_still_audits_itself, 1),
    T(prune_by_time_deletes_the_entries_before_the_first_at_that_time, 1),
    T(audit_log_refuses_raw_updates_and_deletes, 1),
    T(text_that_looks_like_sql_and_long_utf8_is_stored_verbatim, 1),
    T(flags_are_set_per_environment_and_audited_with_their_from, 1),
    T(tokens_are_stored_listed_and_revoked_once, 1),
    T(sessions_are_stored_read_and_deleted, 1),
    T(one_session_too_many_ends_the_oldest_of_that_token_only, 1),
    T(sweep_deletes_expired_sessions_only, 1),
    T(a_new_session_sweeps_the_expired_ones_of_every_token, 1),
    T(sessions_are_not_capped_without_a_limit, 1),
    T(admit_write_limits_each_token_at_its_rate, 1),
    T(write_gate_refuses_at_once_when_the_writers_inside_are_stuck, 1),
    T(write_gate_lets_ordinary_contention_wait_its_turn, 1),
    T(concurrent_changes_to_one_queue_get_versions_one_to_n, 1),
    T(approval_waits_once_per_queue_and_every_step_is_audited, 1),
    T(a_pending_approval_past_its_time_expires_instead_of_being_decided, 1),
    T(changes_carry_their_revert_version_and_approval_id, 1),
    T(a_quiet_refusal_writes_no_audit_entry_but_another_code_does, 1),
    T(autoscale_holds_and_states_are_kept_per_queue, 1),
#undef T
};

/* One test on a fresh database of the current backend, removed afterwards
 * whatever the test did. */
static void run_one(void (*fn)(store *st), int migrated) {
    store *st = NULL;
    if (be->create(db_url, sizeof db_url) != 0) {
        UNIT_FAIL("cannot make a %s database", be->name);
        return;
    }
    st = open_store();
    if (st == NULL) UNIT_FAIL("cannot open %s", db_url);
    else if (migrated && store_migrate(st, NULL) != STORE_OK) UNIT_FAIL("cannot migrate %s", db_url);
    else fn(st);
    store_close(st);
    be->destroy();
}

/* test_store [BACKEND]: every backend, or the one named (tools/test.sh runs
 * "postgres" again in its PostgreSQL pass). */
int main(int argc, char **argv) {
    char label[192];
    log_set_level(LOG_WARN);                      /* no line per migration */
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        be = &backends[b];
        if (argc > 1 && strcmp(argv[1], be->name) != 0) continue;
        const char *why = be->skip();
        if (why) {
            UNIT_SKIP(be->name, why);
            continue;
        }
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
            snprintf(label, sizeof label, "%s: %s", be->name, tests[i].name);
            RUN_LABELLED(run_one(tests[i].fn, tests[i].migrated), label);
        }
    }
    return UNIT_DONE();
}
