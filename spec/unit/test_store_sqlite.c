/* test_store_sqlite.c — the SQLite backend of store.h on real database files:
 * migrations, the judged change, audit log (its export and prune), outbox,
 * flags, sessions (cap and sweep) and locking; the write gate of store.c; a
 * full volume (a real tmpfs, as root). */
#include "unit.h"
#include "migrations.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIN_MS 60000LL

static char dir[64], db_path[128];

static store *open_at(int busy_timeout_ms, int migrate) {
    struct store_options opt = {busy_timeout_ms, 2};
    char url[160], err[256];
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    store *st = store_open(url, &opt, err, sizeof err);
    if (st && migrate && store_migrate(st, NULL) != STORE_OK) {
        store_close(st);
        return NULL;
    }
    return st;
}

static store *fresh_store(int migrate) {
    strcpy(dir, "/tmp/sluice-store-XXXXXX");
    if (mkdtemp(dir) == NULL) return NULL;
    snprintf(db_path, sizeof db_path, "%s/s.db", dir);
    return open_at(1000, migrate);
}

static void remove_store(store *st) {
    static const char *const suffixes[] = {"", "-wal", "-shm", NULL};
    char path[160];
    store_close(st);
    for (const char *const *s = suffixes; *s; s++) {
        snprintf(path, sizeof path, "%s%s", db_path, *s);
        unlink(path);
    }
    rmdir(dir);
}

/* Judges: record what they were shown; accept, or refuse with a code. */
struct seen { int calls; struct store_target cur; struct store_stats stats; };

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

static int abandon_judge(void *ud, const struct store_target *cur,
                         const struct store_stats *stats, char code[STORE_CODE_MAX]) {
    accept_judge(ud, cur, stats, code);
    return -1;
}

static struct store_change change(const char *queue, int64_t to, int64_t now) {
    struct store_change c = {queue, to, 4, "alice", "api", "load test", "rid-1", now, 0};
    return c;
}

static int apply(store *st, const char *queue, int64_t to, int64_t now, store_judge_fn judge,
                 struct store_change_result *res) {
    struct store_change c = change(queue, to, now);
    return store_apply_change(st, &c, judge, NULL, res);
}

/* Rows of a query as "a:b,c:d," (columns joined by ':'), via a raw connection. */
static int collect_row(void *ud, int ncols, char **vals, char **names) {
    char *buf = ud;
    (void)names;
    for (int i = 0; i < ncols; i++) {
        strncat(buf, vals[i] ? vals[i] : "NULL", 1000 - strlen(buf));
        strncat(buf, i + 1 < ncols ? ":" : ",", 1000 - strlen(buf));
    }
    return 0;
}

static int raw_query(const char *sql, char out[1024]) {
    sqlite3 *db = NULL;
    out[0] = '\0';
    int rc = sqlite3_open(db_path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, collect_row, out, NULL);
    sqlite3_close(db);
    return rc;
}

TEST(migrate_is_idempotent_and_schema_current) {
    int applied = -1, expected = 0;
    for (const struct migration *m = migrations; m->backend; m++)
        expected += strcmp(m->backend, "sqlite") == 0;
    store *st = fresh_store(0);
    ASSERT(st != NULL);
    EXPECT_INT(store_schema_current(st), 0);
    EXPECT_INT(store_migrate(st, &applied), STORE_OK);
    EXPECT_INT(applied, expected);
    EXPECT(applied >= 1);
    EXPECT_INT(store_schema_current(st), 1);
    EXPECT_INT(store_migrate(st, &applied), STORE_OK);
    EXPECT_INT(applied, 0);
    EXPECT_INT(store_ping(st), STORE_OK);
    remove_store(st);
}

TEST(open_refuses_bad_urls_with_a_message) {
    struct store_options opt = {100, 1};
    static const char *const bad[] = {"mysql://localhost/x", "sqlite:", "postgres://h/db",
                                      "sqlite:/nonexistent-dir/sub/x.db", NULL};
    for (const char *const *u = bad; *u; u++) {
        char err[256] = "";
        EXPECT(store_open(*u, &opt, err, sizeof err) == NULL);
        EXPECT(err[0] != '\0');
    }
}

TEST(applied_changes_bump_versions_and_audit) {
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    struct seen seen = {0};
    size_t n = 0;
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    EXPECT_INT(store_get_target(st, "ingestion", &t), STORE_NOT_FOUND);
    struct store_change c = change("ingestion", 8, now);
    ASSERT(store_apply_change(st, &c, accept_judge, &seen, &r) == STORE_OK);
    EXPECT_INT(seen.calls, 1);
    EXPECT(seen.cur.desired == 4 && seen.cur.version == 0);   /* the default, never changed */
    EXPECT_INT(r.applied, 1);
    EXPECT_INT(r.previous, 4);
    EXPECT(r.target.desired == 8 && r.target.version == 1 && r.audit_id > 0);
    ASSERT(store_get_target(st, "ingestion", &t) == STORE_OK);
    EXPECT(t.desired == 8 && t.version == 1 && t.updated_at_ms == now);
    EXPECT_STR(t.updated_by, "alice");
    EXPECT_STR(t.reason, "load test");
    ASSERT(store_list_audit(st, "scaling", "ingestion", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 1);
    EXPECT_INT(rows[0].id, r.audit_id);
    EXPECT_STR(rows[0].outcome, "applied");
    EXPECT_STR(rows[0].error_code, "");
    EXPECT(rows[0].from == 4 && rows[0].to == 8 && rows[0].version == 1 && rows[0].at_ms == now);
    EXPECT(!strcmp(rows[0].source, "api") && !strcmp(rows[0].request_id, "rid-1"));
    free(rows);

    ASSERT(apply(st, "ingestion", 12, now + 1, accept_judge, &r) == STORE_OK);
    EXPECT_INT(r.previous, 8);
    EXPECT_INT(r.target.version, 2);
    remove_store(st);
}

TEST(change_to_current_value_writes_nothing) {
    struct store_change_result r;
    struct store_target t;
    char rows[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "build", 6, now, accept_judge, &r) == STORE_OK);
    EXPECT(r.applied == 1 && r.changed == 1 && r.audit_id > 0);
    for (int i = 1; i <= 50; i++) {
        ASSERT(apply(st, "build", 6, now + i, accept_judge, &r) == STORE_OK);
        EXPECT(r.applied == 1 && r.changed == 0 && r.audit_id == 0);
    }
    EXPECT(r.previous == 6 && r.target.desired == 6 && r.target.version == 1);
    ASSERT(store_get_target(st, "build", &t) == STORE_OK);
    EXPECT_INT(t.version, 1);
    EXPECT_INT(t.updated_at_ms, now);          /* the row was not rewritten */
    EXPECT_INT(raw_query("SELECT (SELECT COUNT(*) FROM scaling_audit),"
                         " (SELECT COUNT(*) FROM scaling_outbox)", rows), SQLITE_OK);
    EXPECT_STR(rows, "1:1,");
    remove_store(st);
}

TEST(permanent_change_at_the_override_value_is_written_and_audited) {
    struct store_change_result r;
    char rows[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    struct store_change c = change("q", 9, now);
    c.expires_at_ms = now + 3600000;
    ASSERT(store_apply_change(st, &c, accept_judge, NULL, &r) == STORE_OK);
    ASSERT(apply(st, "q", 9, now + 1, accept_judge, &r) == STORE_OK);   /* ends the override */
    EXPECT(r.applied == 1 && r.changed == 1 && r.audit_id > 0);
    EXPECT(r.target.version == 1 && r.target.expires_at_ms == 0);
    EXPECT_INT(raw_query("SELECT (SELECT COUNT(*) FROM scaling_audit),"
                         " (SELECT COUNT(*) FROM scaling_outbox)", rows), SQLITE_OK);
    EXPECT_STR(rows, "2:1,");
    remove_store(st);
}

TEST(refused_change_is_audited_and_changes_nothing) {
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);
    EXPECT_INT(apply(st, "q", 99, now + 1, refuse_judge, &r), STORE_OK);
    EXPECT(r.applied == 0 && r.previous == 5 && r.target.desired == 5);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT(t.desired == 5 && t.version == 1);
    ASSERT(store_list_audit(st, NULL, "q", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_STR(rows[0].outcome, "rejected");
    EXPECT_STR(rows[0].error_code, "out_of_bounds");
    EXPECT(rows[0].from == 5 && rows[0].to == 99 && rows[0].version == 1);
    free(rows);
    remove_store(st);
}

TEST(abandoned_change_writes_nothing) {
    struct store_change_result r;
    char rows[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);
    EXPECT_INT(apply(st, "q", 6, now + 1, abandon_judge, &r), STORE_OK);
    EXPECT_INT(r.applied, -1);
    EXPECT_INT(r.target.desired, 5);
    EXPECT_INT(raw_query("SELECT (SELECT COUNT(*) FROM scaling_audit),"
                         " (SELECT COUNT(*) FROM scaling_outbox),"
                         " (SELECT version FROM runtime_scaling_policies)", rows), SQLITE_OK);
    EXPECT_STR(rows, "1:1:1,");
    remove_store(st);
}

TEST(judge_stats_count_only_applied_moves) {
    struct store_change_result r;
    struct seen seen = {0};
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 5, now - 120 * MIN_MS, accept_judge, &r) == STORE_OK);  /* too old */
    ASSERT(apply(st, "q", 6, now - 10 * MIN_MS, accept_judge, &r) == STORE_OK);
    ASSERT(apply(st, "q", 7, now - 5 * MIN_MS, accept_judge, &r) == STORE_OK);
    ASSERT(apply(st, "q", 7, now - 1 * MIN_MS, accept_judge, &r) == STORE_OK);    /* no move */
    ASSERT(apply(st, "q", 9, now - 30000, refuse_judge, &r) == STORE_OK);         /* refused */
    ASSERT(apply(st, "other", 9, now - 20000, accept_judge, &r) == STORE_OK);     /* other queue */
    struct store_change c = change("q", 8, now);
    ASSERT(store_apply_change(st, &c, refuse_judge, &seen, &r) == STORE_OK);
    EXPECT_INT(seen.stats.applied_last_hour, 2);
    EXPECT_INT(seen.stats.oldest_in_hour_ms, now - 10 * MIN_MS);
    EXPECT_INT(seen.stats.last_applied_ms, now - 5 * MIN_MS);
    EXPECT(seen.cur.desired == 7 && seen.cur.version == 3);
    remove_store(st);
}

TEST(lists_audit_newest_first_with_paging_and_filters) {
    struct store_change_result r;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms(), ids[6];
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    for (int i = 0; i < 6; i++) {
        ASSERT(apply(st, i % 2 ? "odd" : "even", 5 + i, now + i, accept_judge, &r) == STORE_OK);
        ids[i] = r.audit_id;
    }
    ASSERT(store_list_audit(st, NULL, NULL, 0, 4, &rows, &n) == STORE_OK);
    ASSERT(n == 4);
    for (int i = 0; i < 4; i++) EXPECT_INT(rows[i].id, ids[5 - i]);
    int64_t before = rows[3].id;
    free(rows);
    ASSERT(store_list_audit(st, NULL, NULL, before, 4, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_INT(rows[0].id, ids[1]);
    EXPECT_INT(rows[1].id, ids[0]);
    free(rows);
    ASSERT(store_list_audit(st, "scaling", "odd", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    for (size_t i = 0; i < n; i++) EXPECT_STR(rows[i].subject, "odd");
    EXPECT_INT(rows[0].id, ids[5]);
    free(rows);
    ASSERT(store_list_audit(st, "flag", NULL, 0, 10, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 0);
    free(rows);
    ASSERT(store_list_audit(st, NULL, NULL, 0, 0, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 0);
    free(rows);
    remove_store(st);
}

TEST(audit_log_is_append_only) {
    struct store_change_result r;
    struct store_audit *rows = NULL;
    size_t n = 0;
    sqlite3 *db = NULL;
    char *msg = NULL;
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 5, util_now_ms(), accept_judge, &r) == STORE_OK);
    ASSERT(sqlite3_open(db_path, &db) == SQLITE_OK);
    EXPECT(sqlite3_exec(db, "UPDATE scaling_audit SET reason = 'x'", NULL, NULL, &msg) != SQLITE_OK);
    EXPECT_CONTAINS(msg, "append-only");
    sqlite3_free(msg);
    msg = NULL;
    EXPECT(sqlite3_exec(db, "DELETE FROM scaling_audit", NULL, NULL, &msg) != SQLITE_OK);
    EXPECT_CONTAINS(msg, "append-only");
    sqlite3_free(msg);
    sqlite3_close(db);
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 1);
    if (n == 1) EXPECT_STR(rows[0].reason, "load test");
    free(rows);
    remove_store(st);
}

TEST(outbox_gets_one_row_per_version_bump) {
    struct store_change_result r;
    char rows[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);         /* v1 */
    ASSERT(apply(st, "q", 5, now + 1, accept_judge, &r) == STORE_OK);     /* same value */
    ASSERT(apply(st, "q", 9, now + 2, refuse_judge, &r) == STORE_OK);     /* refused */
    ASSERT(apply(st, "q", 6, now + 3, accept_judge, &r) == STORE_OK);     /* v2 */
    ASSERT(apply(st, "z", 3, now + 4, accept_judge, &r) == STORE_OK);     /* z v1 */
    EXPECT_INT(raw_query("SELECT queue, version, desired_concurrency FROM scaling_outbox"
                         " ORDER BY id", rows), SQLITE_OK);
    EXPECT_STR(rows, "q:1:5,q:2:6,z:1:3,");
    remove_store(st);
}

TEST(flags_are_set_per_environment_and_audited) {
    struct store_flag f;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    EXPECT_INT(store_get_flag(st, "staging", "writes", &f), STORE_NOT_FOUND);
    EXPECT_INT(store_set_flag(st, "staging", "writes", 1, 0, "root", "cli", "go live", "rid-f",
                              now), STORE_OK);
    ASSERT(store_get_flag(st, "staging", "writes", &f) == STORE_OK);
    EXPECT(f.enabled == 1 && f.updated_at_ms == now);
    EXPECT_STR(f.name, "writes");
    EXPECT_STR(f.updated_by, "root");
    EXPECT_STR(f.reason, "go live");
    EXPECT_INT(store_get_flag(st, "production", "writes", &f), STORE_NOT_FOUND);
    EXPECT_INT(store_set_flag(st, "staging", "writes", 0, 1, "root", "cli", "freeze", "rid-g",
                              now + 1), STORE_OK);
    ASSERT(store_get_flag(st, "staging", "writes", &f) == STORE_OK);
    EXPECT_INT(f.enabled, 0);
    ASSERT(store_list_audit(st, "flag", "writes", 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_STR(rows[0].kind, "flag");
    EXPECT_STR(rows[0].reason, "freeze");
    EXPECT(rows[0].from == 1 && rows[0].to == 0);
    EXPECT_STR(rows[1].outcome, "applied");
    EXPECT(rows[1].from == 0 && rows[1].to == 1);
    free(rows);
    remove_store(st);
}

TEST(busy_database_answers_unavailable_and_writes_nothing) {
    struct store_change_result r;
    struct store_target t;
    sqlite3 *locker = NULL;
    char rows[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 5, now, accept_judge, &r) == STORE_OK);
    ASSERT(sqlite3_open(db_path, &locker) == SQLITE_OK);
    ASSERT(sqlite3_exec(locker, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
    store *second = open_at(100, 0);
    EXPECT(second != NULL);
    int64_t started = util_mono_ms();
    if (second) EXPECT_INT(apply(second, "q", 6, now + 1, accept_judge, &r), STORE_UNAVAILABLE);
    EXPECT(util_mono_ms() - started < 2000);
    sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(locker);
    ASSERT(store_get_target(st, "q", &t) == STORE_OK);
    EXPECT_INT(t.desired, 5);
    EXPECT_INT(t.version, 1);
    EXPECT_INT(raw_query("SELECT (SELECT COUNT(*) FROM scaling_audit),"
                         " (SELECT COUNT(*) FROM scaling_outbox)", rows), SQLITE_OK);
    EXPECT_STR(rows, "1:1,");                     /* one audit entry, one outbox row */
    /* Once the lock is gone the same store writes again. */
    if (second) EXPECT_INT(apply(second, "q", 6, now + 2, accept_judge, &r), STORE_OK);
    store_close(second);
    remove_store(st);
}

TEST(sql_looking_and_long_utf8_text_is_stored_verbatim) {
    static const char *const reason = "'); DROP TABLE scaling_audit; --";
    static const char *const actor = "x' OR '1'='1";
    char long_reason[1001];
    struct store_change_result r;
    struct store_target t;
    struct store_audit *rows = NULL;
    size_t n = 0;
    for (int i = 0; i < 500; i++) memcpy(long_reason + 2 * i, "\xc3\xa9", 2);   /* 500 x 'é' */
    long_reason[1000] = '\0';
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    struct store_change c = {"q", 7, 4, actor, "api", reason, "rid-x", util_now_ms(), 0};
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
    remove_store(st);
}

TEST(temporary_override_remembers_the_value_to_revert_to) {
    struct store_change_result r;
    struct store_target *list = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(apply(st, "q", 6, now, accept_judge, &r) == STORE_OK);
    struct store_change c = change("q", 10, now + 1);
    c.expires_at_ms = now + 3600000;
    ASSERT(store_apply_change(st, &c, accept_judge, NULL, &r) == STORE_OK);
    EXPECT(r.target.expires_at_ms == now + 3600000 && r.target.revert_to == 6);
    c = change("q", 12, now + 2);                  /* override on an override */
    c.expires_at_ms = now + 7200000;
    ASSERT(store_apply_change(st, &c, accept_judge, NULL, &r) == STORE_OK);
    EXPECT(r.target.revert_to == 6 && r.target.version == 3);
    ASSERT(apply(st, "a", 1, now, accept_judge, &r) == STORE_OK);
    ASSERT(store_list_targets(st, &list, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_STR(list[0].queue, "a");
    EXPECT_STR(list[1].queue, "q");
    EXPECT(list[1].desired == 12 && list[1].revert_to == 6 &&
           list[1].expires_at_ms == now + 7200000);
    free(list);
    remove_store(st);
}

/* ---- sessions --------------------------------------------------------------------- */

static int put_session(store *st, const char *token_id, int n, int64_t created, int64_t expires) {
    struct store_session x;
    memset(&x, 0, sizeof x);
    snprintf(x.id_hash, sizeof x.id_hash, "%s-%02d", token_id, n);
    util_copy(x.token_id, sizeof x.token_id, token_id);
    strcpy(x.csrf, "c");
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

static int add_token(store *st, const char *id) {
    struct store_token t;
    memset(&t, 0, sizeof t);
    util_copy(t.id, sizeof t.id, id);
    util_copy(t.name, sizeof t.name, id);
    strcpy(t.secret_hash, "h");
    strcpy(t.scopes, "scaling:read");
    t.created_ms = util_now_ms();
    return store_put_token(st, &t);
}

TEST(one_session_too_many_ends_the_oldest_of_that_token_only) {
    struct store_limits lim = {.sessions_per_token = 3};
    int64_t now = util_now_ms(), later = now + 3600000;
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    store_set_limits(st, &lim);
    ASSERT(add_token(st, "aaaa") == STORE_OK && add_token(st, "bbbb") == STORE_OK);
    ASSERT(put_session(st, "bbbb", 1, now, later) == STORE_OK);
    /* Made in the same millisecond: the order of making decides, not the clock. */
    for (int i = 1; i <= 5; i++) ASSERT(put_session(st, "aaaa", i, now, later) == STORE_OK);
    EXPECT(!has_session(st, "aaaa", 1) && !has_session(st, "aaaa", 2));
    EXPECT(has_session(st, "aaaa", 3) && has_session(st, "aaaa", 4) && has_session(st, "aaaa", 5));
    EXPECT(has_session(st, "bbbb", 1));
    /* Even with a clock that went back, the newest session is kept. */
    ASSERT(put_session(st, "aaaa", 6, now - 60000, later) == STORE_OK);
    EXPECT(has_session(st, "aaaa", 6) && !has_session(st, "aaaa", 3));
    remove_store(st);
}

TEST(sweep_deletes_expired_sessions_only) {
    int64_t now = util_now_ms(), deleted = -1;
    char rows[1024];
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    ASSERT(add_token(st, "aaaa") == STORE_OK);
    ASSERT(put_session(st, "aaaa", 3, now, now + 3600000) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 1, now - 7200000, now - 3600000) == STORE_OK);
    ASSERT(put_session(st, "aaaa", 2, now - 7200000, now - 1) == STORE_OK);
    EXPECT_INT(raw_query("SELECT COUNT(*) FROM api_sessions", rows), SQLITE_OK);
    EXPECT_STR(rows, "3,");                    /* none had expired when the next was made */
    EXPECT_INT(store_sweep_sessions(st, now, &deleted), STORE_OK);
    EXPECT_INT(deleted, 2);
    EXPECT(!has_session(st, "aaaa", 1) && !has_session(st, "aaaa", 2) && has_session(st, "aaaa", 3));
    EXPECT_INT(store_sweep_sessions(st, now, &deleted), STORE_OK);
    EXPECT_INT(deleted, 0);
    remove_store(st);
}

/* ---- the audit log's export and prune ------------------------------------------------ */

#define DAY_MS (24 * 60 * MIN_MS)

/* count changes of queue q, one a minute from `from` on, each to a new
 * value; returns the first audit id. */
static int64_t audit_changes(store *st, int count, int64_t from) {
    static int64_t value = 1;
    struct store_change_result r;
    int64_t first = 0;
    for (int i = 0; i < count; i++) {
        value = value % 50 + 1;
        if (apply(st, "q", value, from + i * MIN_MS, accept_judge, &r) != STORE_OK) return -1;
        if (i == 0) first = r.audit_id;
    }
    return first;
}

static struct store_prune prune_spec(int64_t before_id, int64_t before_at_ms, int64_t now) {
    struct store_prune p = {before_id, before_at_ms, now - DAY_MS, "ops", "cli", "keep a year",
                            "prune-1", now};
    return p;
}

TEST(export_reads_oldest_first_in_pages) {
    struct store_audit *rows = NULL;
    size_t n = 0;
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    int64_t first = audit_changes(st, 5, now - 10 * MIN_MS);
    ASSERT(first > 0);
    ASSERT(store_list_audit_oldest(st, 0, 0, 3, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT(rows[0].id == first && rows[1].id == first + 1 && rows[2].id == first + 2);
    free(rows);
    ASSERT(store_list_audit_oldest(st, first + 2, 0, 3, &rows, &n) == STORE_OK);
    ASSERT(n == 2);
    EXPECT_INT(rows[1].id, first + 4);
    free(rows);
    ASSERT(store_list_audit_oldest(st, 0, first + 2, 10, &rows, &n) == STORE_OK);
    EXPECT_INT(n, 2);
    free(rows);
    remove_store(st);
}

TEST(prune_deletes_older_entries_and_audits_itself) {
    struct store_prune_result res;
    struct store_audit *rows = NULL;
    size_t n = 0;
    char out[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    int64_t first = audit_changes(st, 6, now - 3 * DAY_MS);
    ASSERT(first > 0);
    struct store_prune p = prune_spec(first + 4, 0, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 4 && res.before_id == first + 4);
    EXPECT(res.entry.id == first + 6);         /* ids go on: nothing is reused */
    ASSERT(store_list_audit(st, NULL, NULL, 0, 10, &rows, &n) == STORE_OK);
    ASSERT(n == 3);
    EXPECT_STR(rows[0].kind, "audit");
    EXPECT_STR(rows[0].subject, "prune");
    EXPECT(rows[0].from == 4 && rows[0].to == first + 4 && rows[0].version == 0);
    EXPECT(!strcmp(rows[0].actor, "ops") && !strcmp(rows[0].source, "cli") &&
           !strcmp(rows[0].reason, "keep a year") && !strcmp(rows[0].outcome, "applied"));
    EXPECT(rows[1].id == first + 5 && rows[2].id == first + 4);
    free(rows);
    /* A later prune never deletes the record of an earlier one. */
    p = prune_spec(first + 6, 0, now + 1);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT_INT(res.deleted, 2);
    EXPECT_INT(raw_query("SELECT kind, from_value FROM scaling_audit ORDER BY id", out), SQLITE_OK);
    EXPECT_STR(out, "audit:4,audit:2,");
    /* Nothing else deletes, the permit is gone, and a prune record cannot go either. */
    EXPECT_INT(raw_query("DELETE FROM scaling_audit", out), SQLITE_CONSTRAINT);
    EXPECT_INT(raw_query("SELECT COUNT(*) FROM audit_prune_permit", out), SQLITE_OK);
    EXPECT_STR(out, "0,");
    EXPECT_INT(raw_query("INSERT INTO audit_prune_permit VALUES (1, 1000000);"
                         " DELETE FROM scaling_audit WHERE kind = 'audit'", out), SQLITE_CONSTRAINT);
    remove_store(st);
}

TEST(prune_refuses_entries_of_the_last_day_and_writes_nothing) {
    struct store_prune_result res;
    char out[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    int64_t first = audit_changes(st, 3, now - 2 * DAY_MS);
    ASSERT(first > 0 && audit_changes(st, 2, now - 60 * MIN_MS) > 0);
    struct store_prune p = prune_spec(first + 5, 0, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(res.refused && res.deleted == 0 && res.youngest_ms == now - 59 * MIN_MS);
    EXPECT_INT(raw_query("SELECT COUNT(*) FROM scaling_audit", out), SQLITE_OK);
    EXPECT_STR(out, "5,");
    p = prune_spec(first + 3, 0, now);        /* the old ones only */
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 3);
    remove_store(st);
}

TEST(prune_by_time_deletes_the_entries_before_the_first_at_that_time) {
    struct store_prune_result res;
    int64_t now = util_now_ms(), bound = 0;
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    EXPECT_INT(store_audit_bound_at(st, now, &bound), STORE_OK);
    EXPECT_INT(bound, 1);                      /* empty log */
    int64_t first = audit_changes(st, 4, now - 4 * DAY_MS);   /* a minute apart */
    ASSERT(first > 0);
    EXPECT_INT(store_audit_bound_at(st, now - 4 * DAY_MS + 2 * MIN_MS, &bound), STORE_OK);
    EXPECT_INT(bound, first + 2);
    EXPECT_INT(store_audit_bound_at(st, now - 4 * DAY_MS + 90000, &bound), STORE_OK);
    EXPECT_INT(bound, first + 2);
    EXPECT_INT(store_audit_bound_at(st, now, &bound), STORE_OK);
    EXPECT_INT(bound, first + 4);              /* all older: one past the newest */
    struct store_prune p = prune_spec(0, now - 4 * DAY_MS + 90000, now);
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 2 && res.before_id == first + 2);
    remove_store(st);
}

TEST(migration_4_keeps_every_audit_id_and_the_counter) {
    sqlite3 *db = NULL;
    char out[1024];
    struct store_change_result r;
    strcpy(dir, "/tmp/sluice-store-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(db_path, sizeof db_path, "%s/s.db", dir);
    /* A database of before 004, with entries in its log. */
    ASSERT(sqlite3_open(db_path, &db) == SQLITE_OK);
    EXPECT_INT(sqlite3_exec(db, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                                " name TEXT NOT NULL, applied_at INTEGER NOT NULL)", NULL, NULL, NULL), SQLITE_OK);
    for (const struct migration *m = migrations; m->backend; m++) {
        if (strcmp(m->backend, "sqlite") != 0 || m->version >= 4) continue;
        char ins[160];
        EXPECT_INT(sqlite3_exec(db, m->sql, NULL, NULL, NULL), SQLITE_OK);
        snprintf(ins, sizeof ins, "INSERT INTO schema_migrations VALUES (%d, '%s', 0)", m->version, m->name);
        EXPECT_INT(sqlite3_exec(db, ins, NULL, NULL, NULL), SQLITE_OK);
    }
    for (int i = 0; i < 3; i++)
        EXPECT_INT(sqlite3_exec(db, "INSERT INTO scaling_audit (kind, subject, from_value, to_value, version,"
                                    " actor, source, reason, outcome, at, request_id)"
                                    " VALUES ('scaling', 'q', 1, 2, 1, 'a', 'api', 'r', 'applied', 1, 'x')",
                                NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store *st = open_at(1000, 1);
    ASSERT(st != NULL);
    EXPECT_INT(store_schema_current(st), 1);
    EXPECT_INT(raw_query("SELECT group_concat(id) FROM scaling_audit", out), SQLITE_OK);
    EXPECT_STR(out, "1,2,3,");
    ASSERT(apply(st, "q", 5, util_now_ms(), accept_judge, &r) == STORE_OK);
    EXPECT_INT(r.audit_id, 4);
    EXPECT_INT(raw_query("UPDATE scaling_audit SET reason = 'x'", out), SQLITE_CONSTRAINT);
    remove_store(st);
}

/* ---- the write gate ------------------------------------------------------------ */

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

TEST(write_gate_refuses_at_once_when_the_writers_inside_are_stuck) {
    struct store_limits lim = {.max_writers = 1};
    struct store_change_result r;
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    store_set_limits(st, &lim);
    struct slow_writer w;
    ASSERT(start_slow_writer(&w, st, 2500) == 0);
    int64_t t0 = util_mono_ms();
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_BUSY);
    int64_t waited = util_mono_ms() - t0;
    EXPECT(waited >= 250 && waited < 1500);      /* until nothing moved for 500 ms */
    t0 = util_mono_ms();
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_BUSY);
    EXPECT(util_mono_ms() - t0 < 250);           /* stuck: refused at once */
    pthread_join(w.thread, NULL);
    EXPECT_INT(w.rc, STORE_OK);
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_OK);
    remove_store(st);
}

TEST(write_gate_lets_ordinary_contention_wait_its_turn) {
    struct store_limits lim = {.max_writers = 1};
    struct store_change_result r;
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    store_set_limits(st, &lim);
    struct slow_writer w;
    ASSERT(start_slow_writer(&w, st, 200) == 0);
    int64_t t0 = util_mono_ms();
    EXPECT_INT(apply(st, "other", 5, util_now_ms(), accept_judge, &r), STORE_OK);
    EXPECT(util_mono_ms() - t0 >= 100);          /* it did wait for the slot */
    pthread_join(w.thread, NULL);
    EXPECT_INT(w.rc, STORE_OK);
    remove_store(st);
}

/* ---- the write-ahead log and a full volume ----------------------------------------- */

static long file_size(const char *suffix) {
    char path[160];
    struct stat sb;
    snprintf(path, sizeof path, "%s%s", db_path, suffix);
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

TEST(write_ahead_log_stays_small_across_many_changes) {
    struct store_change_result r;
    long biggest = 0;
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    for (int i = 0; i < 600; i++) {
        ASSERT(apply(st, "q", 2 + i % 2, now + i, accept_judge, &r) == STORE_OK);
        long wal = file_size("-wal");
        if (wal > biggest) biggest = wal;
    }
    EXPECT(biggest > 0);
    EXPECT(biggest <= 512 * 1024);               /* SQLite's defaults let it reach 4 MB */
    remove_store(st);
}

/* Send stderr (the log) to a file while f runs; returns what was written. */
static char *capture_log(void (*f)(store *st), store *st) {
    static char text[65536];
    char path[] = "/tmp/sluice-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    text[0] = '\0';
    if (fd < 0 || saved < 0) return text;
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    f(st);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return text;
}

static int full_rc, full_ping, full_read, full_after_rc, full_after_ping;
static struct store_target full_before, full_seen;

static void fill_then_free(store *st) {
    struct store_change_result r;
    char filler[160];
    int64_t now = util_now_ms();
    snprintf(filler, sizeof filler, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    static const char block[4096];
    while (fd >= 0 && write(fd, block, sizeof block) == (ssize_t)sizeof block) {}
    if (fd >= 0) close(fd);
    store_get_target(st, "q", &full_before);
    /* The log may reuse room it already has for a few more. */
    for (int i = 0; i < 200 && (full_rc = apply(st, "q", 2 + i % 2, now + i, accept_judge, &r)) == STORE_OK; i++)
        store_get_target(st, "q", &full_before);
    full_ping = store_ping(st);
    full_read = store_get_target(st, "q", &full_seen);
    unlink(filler);
    full_after_ping = store_ping(st);
    full_after_rc = apply(st, "q", 9, now + 1000, accept_judge, &r);
}

TEST(full_volume_refuses_writes_quietly_and_recovers_when_space_returns) {
    struct store_change_result r;
    strcpy(dir, "/tmp/sluice-full-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=512k") != 0) {
        printf("# skipped: cannot mount a tmpfs (%s); needs root\n", strerror(errno));
        rmdir(dir);
        return;
    }
    snprintf(db_path, sizeof db_path, "%s/s.db", dir);
    store *st = open_at(1000, 1);
    EXPECT(st != NULL);
    if (st) {
        EXPECT_INT(apply(st, "q", 5, util_now_ms(), accept_judge, &r), STORE_OK);
        const char *log = capture_log(fill_then_free, st);
        EXPECT_INT(full_rc, STORE_FULL);
        EXPECT_INT(full_ping, STORE_FULL);
        EXPECT_INT(full_read, STORE_OK);              /* reads still answer */
        EXPECT_INT(full_seen.version, full_before.version);
        EXPECT_INT(full_after_ping, STORE_OK);
        EXPECT_INT(full_after_rc, STORE_OK);          /* no transaction was left open */
        EXPECT(strstr(log, "cannot rollback") == NULL);
        EXPECT(strstr(log, "sqlite error") == NULL && strstr(log, "sqlite exec failed") == NULL);
        EXPECT_CONTAINS(log, "database volume full");
        EXPECT_CONTAINS(log, "database volume has space again");
        store_close(st);
    }
    static const char *const suffixes[] = {"", "-wal", "-shm", NULL};
    char path[160];
    for (const char *const *x = suffixes; *x; x++) {
        snprintf(path, sizeof path, "%s%s", db_path, *x);
        unlink(path);
    }
    umount(dir);
    rmdir(dir);
}

int main(void) {
    RUN(migrate_is_idempotent_and_schema_current);
    RUN(open_refuses_bad_urls_with_a_message);
    RUN(applied_changes_bump_versions_and_audit);
    RUN(change_to_current_value_writes_nothing);
    RUN(permanent_change_at_the_override_value_is_written_and_audited);
    RUN(refused_change_is_audited_and_changes_nothing);
    RUN(abandoned_change_writes_nothing);
    RUN(judge_stats_count_only_applied_moves);
    RUN(lists_audit_newest_first_with_paging_and_filters);
    RUN(audit_log_is_append_only);
    RUN(outbox_gets_one_row_per_version_bump);
    RUN(flags_are_set_per_environment_and_audited);
    RUN(busy_database_answers_unavailable_and_writes_nothing);
    RUN(sql_looking_and_long_utf8_text_is_stored_verbatim);
    RUN(temporary_override_remembers_the_value_to_revert_to);
    RUN(one_session_too_many_ends_the_oldest_of_that_token_only);
    RUN(sweep_deletes_expired_sessions_only);
    RUN(export_reads_oldest_first_in_pages);
    RUN(prune_deletes_older_entries_and_audits_itself);
    RUN(prune_refuses_entries_of_the_last_day_and_writes_nothing);
    RUN(prune_by_time_deletes_the_entries_before_the_first_at_that_time);
    RUN(migration_4_keeps_every_audit_id_and_the_counter);
    RUN(write_gate_refuses_at_once_when_the_writers_inside_are_stuck);
    RUN(write_gate_lets_ordinary_contention_wait_its_turn);
    RUN(write_ahead_log_stays_small_across_many_changes);
    RUN(full_volume_refuses_writes_quietly_and_recovers_when_space_returns);
    return UNIT_DONE();
}
