/* test_store_sqlite.c — what only the SQLite backend does, on real database
 * files: URLs it refuses, a database locked by another process, the prune
 * permit behind its append-only trigger, migration 004 on an old file, a
 * write-ahead log that stays small, and a full volume (a real tmpfs, as
 * root). What every backend promises is in test_store.c. */
#include "unit.h"
#include "migrations.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

static int accept_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                        char code[STORE_CODE_MAX]) {
    (void)ud;
    (void)cur;
    (void)stats;
    (void)code;
    return 1;
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

/* ---- the audit log's prune permit ------------------------------------------------ */

#define DAY_MS (24 * 60 * MIN_MS)

/* SQLite lets a prune's deletes through the append-only trigger by a row in
 * audit_prune_permit, written and removed inside the prune's transaction.
 * (What a prune deletes and keeps is in test_store.c, for every backend.) */
TEST(prune_permit_lets_only_the_prune_delete_and_is_gone_after_it) {
    struct store_prune_result res;
    struct store_change_result r;
    char out[1024];
    int64_t now = util_now_ms();
    store *st = fresh_store(1);
    ASSERT(st != NULL);
    for (int i = 0; i < 4; i++)
        ASSERT(apply(st, "q", 5 + i, now - 3 * DAY_MS + i * MIN_MS, accept_judge, &r) == STORE_OK);
    struct store_prune p = {r.audit_id + 1, 0, now - DAY_MS, "ops", "cli", "keep a year", "prune-1", now};
    ASSERT(store_prune_audit(st, &p, &res) == STORE_OK);
    EXPECT(!res.refused && res.deleted == 4);
    EXPECT_INT(raw_query("SELECT kind, from_value FROM scaling_audit ORDER BY id", out), SQLITE_OK);
    EXPECT_STR(out, "audit:4,");
    /* Nothing else deletes, the permit is gone, and a prune record cannot go
     * even with a forged permit. */
    EXPECT_INT(raw_query("DELETE FROM scaling_audit", out), SQLITE_CONSTRAINT);
    EXPECT_INT(raw_query("SELECT COUNT(*) FROM audit_prune_permit", out), SQLITE_OK);
    EXPECT_STR(out, "0,");
    EXPECT_INT(raw_query("INSERT INTO audit_prune_permit VALUES (1, 1000000);"
                         " DELETE FROM scaling_audit WHERE kind = 'audit'", out), SQLITE_CONSTRAINT);
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
    if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) {
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
    RUN(open_refuses_bad_urls_with_a_message);
    RUN(busy_database_answers_unavailable_and_writes_nothing);
    RUN(prune_permit_lets_only_the_prune_delete_and_is_gone_after_it);
    RUN(migration_4_keeps_every_audit_id_and_the_counter);
    RUN(write_ahead_log_stays_small_across_many_changes);
    RUN(full_volume_refuses_writes_quietly_and_recovers_when_space_returns);
    return UNIT_DONE();
}
