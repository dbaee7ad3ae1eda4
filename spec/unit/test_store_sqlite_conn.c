/* test_store_sqlite_conn.c — the SQLite backend's connections from the
 * inside (store_sqlite_int.h): each SQL text is prepared once per
 * connection and reused, no read leaves a read transaction open (which
 * would keep the write-ahead log from being truncated), and a statement
 * that fails leaves its pooled connection idle. */
#include "unit.h"
#include "store_sqlite_int.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], db_path[128];

/* A migrated store of the backend itself, with a pool of `size`. */
static struct sq_store *open_store(int size) {
    struct store_options opt = {1000, size};
    char url[160], err[256];
    strcpy(dir, "/tmp/sluice-sqconn-XXXXXX");
    if (mkdtemp(dir) == NULL) return NULL;
    snprintf(db_path, sizeof db_path, "%s/s.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    struct sq_store *s = store_sqlite_backend.open(url, &opt, err, sizeof err);
    if (s && store_sqlite_backend.migrate(s, NULL) != STORE_OK) {
        store_sqlite_backend.close(s);
        return NULL;
    }
    return s;
}

static void remove_store(struct sq_store *s) {
    static const char *const suffixes[] = {"", "-wal", "-shm", ".lock", NULL};
    char path[160];
    store_sqlite_backend.close(s);
    for (const char *const *x = suffixes; *x; x++) {
        snprintf(path, sizeof path, "%s%s", db_path, *x);
        unlink(path);
    }
    rmdir(dir);
}

static int write_target(struct sq_store *s, const char *queue, int64_t desired, int64_t version) {
    struct store_target t = {0};
    int rc;
    util_copy(t.queue, sizeof t.queue, queue);
    util_copy(t.updated_by, sizeof t.updated_by, "alice");
    util_copy(t.reason, sizeof t.reason, "test");
    t.desired = desired;
    t.version = version;
    t.updated_at_ms = 1000 * version;
    void *tx = store_sqlite_backend.begin(s, STORE_TX_WRITE, queue, &rc);
    if (tx == NULL) return rc;
    if ((rc = store_sqlite_backend.tx_write_target(tx, &t)) == STORE_OK)
        rc = store_sqlite_backend.commit(tx);
    store_sqlite_backend.end(tx, rc);
    return rc;
}

/* One round of the reads a serving sluiced makes all the time. */
static int read_round(struct sq_store *s) {
    struct store_target t, *all = NULL;
    struct store_flag f;
    size_t n = 0;
    int64_t bound = 0;
    int ok = store_sqlite_backend.get_target(s, "orders", &t) == STORE_OK &&
             store_sqlite_backend.list_targets(s, &all, &n) == STORE_OK && n == 1 &&
             store_sqlite_backend.get_flag(s, "prod", "none", &f) == STORE_NOT_FOUND &&
             store_sqlite_backend.audit_bound_at(s, 0, &bound) == STORE_OK;
    free(all);
    return ok;
}

static int statement_count(sqlite3 *db) {
    int n = 0;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st)) n++;
    return n;
}

static sqlite3_stmt *statement_of(sqlite3 *db, const char *sql_part) {
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        if (strstr(sqlite3_sql(st), sql_part)) return st;
    return NULL;
}

/* PRAGMA wal_checkpoint(TRUNCATE) on a connection of its own: 1 when it
 * could not finish because a reader was in the way. */
static int checkpoint_blocked(void) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int busy = -1;
    if (sqlite3_open(db_path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        busy = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return busy;
}

static long long wal_size(void) {
    char path[160];
    struct stat st;
    snprintf(path, sizeof path, "%s-wal", db_path);
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

TEST(reads_reuse_one_prepared_statement_per_sql_text) {
    struct sq_store *s = open_store(1);
    ASSERT(s != NULL);
    ASSERT(write_target(s, "orders", 5, 1) == STORE_OK);
    ASSERT(read_round(s));
    sqlite3 *db = s->conns[0].db;
    int prepared = statement_count(db);
    EXPECT(prepared > 0);
    EXPECT_INT(prepared, s->conns[0].nstmt);
    for (int i = 0; i < 100; i++) EXPECT(read_round(s));
    EXPECT_INT(statement_count(db), prepared);
    sqlite3_stmt *get = statement_of(db, "FROM runtime_scaling_policies WHERE queue = ?");
    ASSERT(get != NULL);
    EXPECT_INT(sqlite3_stmt_status(get, SQLITE_STMTSTATUS_RUN, 0), 101);
    EXPECT_INT(sqlite3_stmt_status(get, SQLITE_STMTSTATUS_REPREPARE, 0), 0);
    remove_store(s);
}

TEST(reads_leave_no_read_transaction_open) {
    struct sq_store *s = open_store(1);
    ASSERT(s != NULL);
    for (int v = 1; v <= 20; v++) ASSERT(write_target(s, "orders", v, v) == STORE_OK);
    ASSERT(read_round(s));
    sqlite3 *db = s->conns[0].db;
    EXPECT(sqlite3_get_autocommit(db));
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        EXPECT(!sqlite3_stmt_busy(st));
    EXPECT_INT(checkpoint_blocked(), 0);
    EXPECT_INT(wal_size(), 0);

    /* The control: a SELECT stepped and not reset does hold the log. */
    ASSERT(write_target(s, "orders", 99, 99) == STORE_OK);
    sqlite3_stmt *held = NULL;
    ASSERT(sqlite3_prepare_v2(db, "SELECT queue FROM runtime_scaling_policies", -1, &held, NULL) == SQLITE_OK);
    EXPECT_INT(sqlite3_step(held), SQLITE_ROW);
    EXPECT_INT(checkpoint_blocked(), 1);
    sqlite3_finalize(held);
    EXPECT_INT(checkpoint_blocked(), 0);
    remove_store(s);
}

TEST(a_failed_statement_gives_back_an_idle_connection) {
    struct sq_store *s = open_store(1);
    ASSERT(s != NULL);
    struct sq_conn *c = sq_acquire(s);
    ASSERT(c != NULL);
    ASSERT(sq_exec(c->db, "BEGIN IMMEDIATE") == STORE_OK);
    /* A statement that cannot be prepared, and one given a parameter too many. */
    EXPECT_INT(sq_run(NULL, c, "INSERT INTO no_such_table VALUES (?)", "test", SQ_ARGS(SQ_INT(1))),
               STORE_FAILED);
    EXPECT_INT(sq_run(NULL, c, "DELETE FROM api_sessions WHERE id_hash = ?", "test",
                      SQ_ARGS(SQ_TEXT("a"), SQ_TEXT("b"))),
               STORE_FAILED);
    sq_release(c);
    c = sq_acquire(s);
    ASSERT(c != NULL);
    EXPECT(sqlite3_get_autocommit(c->db));
    for (sqlite3_stmt *st = sqlite3_next_stmt(c->db, NULL); st; st = sqlite3_next_stmt(c->db, st))
        EXPECT(!sqlite3_stmt_busy(st));
    sq_release(c);
    /* The write lock went with the transaction. */
    EXPECT_INT(write_target(s, "orders", 3, 1), STORE_OK);
    remove_store(s);
}

TEST(parameters_bind_null_for_null_text_and_zero_optionals) {
    struct sq_store *s = open_store(1);
    ASSERT(s != NULL);
    int64_t nulls = -1;
    EXPECT_INT(sq_int(s, NULL, "SELECT (?1 IS NULL) + (?2 IS NULL) + (?3 IS NULL) + (?4 IS NULL)"
                               " + (?5 IS NULL) + (?6 IS NULL)", "test", &nulls,
                      SQ_ARGS(SQ_TEXT(NULL), SQ_OPT(0), SQ_NULL, SQ_OPT(7), SQ_INT(0), SQ_TEXT(""))),
               STORE_OK);
    EXPECT_INT(nulls, 3);
    int64_t none = 0;
    EXPECT_INT(sq_int(s, NULL, "SELECT id FROM scaling_audit WHERE id < 0", "test", &none, SQ_NO_ARGS),
               STORE_NOT_FOUND);
    remove_store(s);
}

int main(void) {
    RUN(reads_reuse_one_prepared_statement_per_sql_text);
    RUN(reads_leave_no_read_transaction_open);
    RUN(a_failed_statement_gives_back_an_idle_connection);
    RUN(parameters_bind_null_for_null_text_and_zero_optionals);
    return UNIT_DONE();
}
