/* store_sqlite.c — the SQLite backend of store.h (laptops, minikube).
 *
 * A small pool of connections (one per concurrent caller) in WAL mode with
 * synchronous=FULL, so readers never block the writer and an acknowledged
 * change survives a power cut. Writes take BEGIN IMMEDIATE: the write lock is
 * held from the first read of a judged change to its commit, which is what
 * makes versions strictly increasing and cooldowns exact. Busy beyond
 * busy_timeout, I/O errors and an unopenable file map to STORE_UNAVAILABLE;
 * a full volume maps to STORE_FULL, and service resumes by itself when space
 * returns. The write-ahead log is checkpointed early and truncated now and
 * then, so that it never takes the room the changes need. Every statement is
 * prepared once per connection and reset after each use (the sq_run family).
 * Flags, tokens and sessions live in store_sqlite_admin.c. */
#include "store_sqlite_int.h"
#include "log.h"
#include "migrations.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* The write-ahead log: checkpointed into the database every SQ_WAL_PAGES
 * pages (SQLite's default of 1000 pages let it reach 4 MB), cut back to
 * SQ_WAL_KEEP bytes when it restarts, and truncated to nothing after every
 * SQ_TRUNCATE_EVERY writes. */
#define SQ_WAL_PAGES 64
#define SQ_WAL_KEEP (256 * 1024)
#define SQ_TRUNCATE_EVERY 256

/* Free bytes the volume must have again before a full store says it is up. */
#define SQ_FULL_ROOM (256 * 1024)

/* ---- connections -------------------------------------------------------- */

static int sq_rc(int rc) {
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return STORE_OK;
    case SQLITE_FULL: return STORE_FULL;
    case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_IOERR: case SQLITE_CANTOPEN:
    case SQLITE_READONLY: case SQLITE_NOTADB: case SQLITE_CORRUPT:
    case SQLITE_PROTOCOL: case SQLITE_NOMEM: case SQLITE_PERM:
        return STORE_UNAVAILABLE;
    default: return STORE_FAILED;
    }
}

/* sq_rc, and an I/O error that is really ENOSPC (SQLite reports a failed
 * fallocate during a checkpoint that way) is a full volume too. */
static int sq_map(sqlite3 *db, int rc) {
    if (db && (rc & 0xff) == SQLITE_IOERR && sqlite3_system_errno(db) == ENOSPC) return STORE_FULL;
    return sq_rc(rc);
}

/* Log a failed statement and map its code (a full volume is not logged
 * here: sq_write_done says so once). */
static int sq_fail(sqlite3 *db, int rc, const char *what) {
    int mapped = sq_map(db, rc);
    if (mapped != STORE_FULL)
        log_json(LOG_ERROR, "sqlite error",
                 json_pack("{s:s, s:i, s:s}", "op", what, "code", rc,
                           "error", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    return mapped;
}

int sq_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int mapped = sq_map(db, rc);
        if (mapped != STORE_FULL)
            log_json(LOG_ERROR, "sqlite exec failed",
                     json_pack("{s:i, s:s}", "code", rc, "error", msg ? msg : sqlite3_errstr(rc)));
        sqlite3_free(msg);
        return mapped;
    }
    return STORE_OK;
}

void sq_rollback(sqlite3 *db) {
    if (!sqlite3_get_autocommit(db)) sq_exec(db, "ROLLBACK");
}

static sqlite3 *sq_connect(struct sq_store *s, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s->path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: cannot open %s: %s", s->path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(db, s->busy_timeout_ms);
    sqlite3_extended_result_codes(db, 1);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
             " PRAGMA wal_autocheckpoint=%d; PRAGMA journal_size_limit=%d;",
             SQ_WAL_PAGES, SQ_WAL_KEEP);
    if (sq_exec(db, pragmas) != STORE_OK) {
        snprintf(err, errlen, "sqlite: cannot configure %s: %s", s->path, sqlite3_errmsg(db));
        goto fail;
    }
    return db;
fail:
    sqlite3_close(db);
    return NULL;
}

/* Close c's database, finalizing its kept statements first (sqlite3_close
 * refuses a connection that still has some). */
static void sq_disconnect(struct sq_conn *c) {
    for (int k = 0; k < c->nstmt; k++) sqlite3_finalize(c->stmt[k]);
    c->nstmt = 0;
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Blocks while all connections are in use. Connections are opened lazily,
 * so a database that went away fails here as STORE_UNAVAILABLE. */
struct sq_conn *sq_acquire(struct sq_store *s) {
    char err[256];
    struct sq_conn *c = &s->conns[store_pool_acquire(&s->pool)];
    if (c->db == NULL && (c->db = sq_connect(s, err, sizeof err)) == NULL) {
        log_json(LOG_ERROR, "sqlite connect failed", json_pack("{s:s}", "error", err));
        store_pool_release(&s->pool, c->slot);
        return NULL;
    }
    return c;
}

void sq_release(struct sq_conn *c) {
    if (c->db) sq_rollback(c->db);
    store_pool_release(&c->owner->pool, c->slot);
}

/* Copy the whole log into the database and cut it to nothing, if no reader
 * or writer is in the way right now; otherwise the next turn does it. */
static void sq_truncate_wal(struct sq_store *s, sqlite3 *db) {
    sqlite3_busy_timeout(db, 0);
    int rc = sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_busy_timeout(db, s->busy_timeout_ms);
    if (rc != SQLITE_OK)
        log_json(LOG_DEBUG, "wal truncation skipped", json_pack("{s:s}", "error", sqlite3_errstr(rc)));
}

/* While the store is full: has the volume room again? */
static int sq_has_room(const struct sq_store *s) {
    char dir[sizeof s->path];
    struct statvfs v;
    util_copy(dir, sizeof dir, s->path);
    if (statvfs(dirname(dir), &v) != 0) return 0;
    return (unsigned long long)v.f_bavail * v.f_frsize >= SQ_FULL_ROOM;
}

int sq_write_done(struct sq_conn *c, int rc) {
    struct sq_store *s = c->owner;
    if (rc == STORE_FULL && !atomic_exchange(&s->full, 1))
        log_json(LOG_WARN, "database volume full: changes are refused (507 store_full) until "
                           "there is space again", json_pack("{s:s}", "path", s->path));
    if (rc == STORE_OK) {
        /* Hysteresis: a small write that fit into room the log already
         * owned (the notify or autoscale threads write a few bytes) is not
         * space again; only SQ_FULL_ROOM free is, as for ping. */
        if (atomic_load(&s->full) && sq_has_room(s) && atomic_exchange(&s->full, 0))
            log_json(LOG_INFO, "database volume has space again: changes are accepted",
                     json_pack("{s:s}", "path", s->path));
        if (atomic_fetch_add(&s->writes, 1) % SQ_TRUNCATE_EVERY == SQ_TRUNCATE_EVERY - 1)
            sq_truncate_wal(s, c->db);
    }
    sq_release(c);
    return rc;
}

/* The database holds the audit log, token hashes and CSRF tokens: owner
 * only. A new file is made 0600 before SQLite opens it (SQLite gives its
 * -wal and -shm files the database file's mode); an existing one that
 * others could read is tightened, and that is logged. */
static void sq_private_files(const char *path) {
    static const char *const suffix[] = {"", "-wal", "-shm"};
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        char p[1100];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        if (stat(p, &st) != 0 || (st.st_mode & 077) == 0) continue;
        if (chmod(p, st.st_mode & 0700) == 0)
            log_json(LOG_WARN, "database file was readable by others; made it owner-only",
                     json_pack("{s:s, s:s}", "file", p, "was", (st.st_mode & 044) ? "readable" : "accessible"));
    }
}

static void *sq_open(const char *url, const struct store_options *opt, char *err, size_t errlen) {
    struct sq_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    util_copy(s->path, sizeof s->path, url + strlen("sqlite:"));
    if (s->path[0] == '\0') {
        snprintf(err, errlen, "sqlite: empty path in '%s'", url);
        free(s);
        return NULL;
    }
    s->busy_timeout_ms = opt->busy_timeout_ms;
    for (int i = 0; i < STORE_POOL_MAX; i++) s->conns[i] = (struct sq_conn){.owner = s, .slot = i};
    sq_private_files(s->path);
    s->claim_fd = -1;
    store_pool_init(&s->pool, opt->pool_size);
    /* Open one connection now so a wrong path fails at start, loudly. */
    s->conns[0].db = sq_connect(s, err, errlen);
    if (s->conns[0].db == NULL) {
        store_pool_destroy(&s->pool);
        free(s);
        return NULL;
    }
    return s;
}

/* One serving sluiced per SQLite file: an exclusive lock on PATH.lock,
 * held until close (the kernel drops it if the process dies). */
static int sq_claim(void *h, char *err, size_t errlen) {
    struct sq_store *s = h;
    char path[1100];
    snprintf(path, sizeof path, "%s.lock", s->path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return STORE_FAILED;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "another sluiced already serves %s; SQLite serves one replica "
                 "(run replicas on PostgreSQL, see docs/configuration.md)", s->path);
        close(fd);
        return STORE_FAILED;
    }
    s->claim_fd = fd;
    return STORE_OK;
}

static void sq_close(void *h) {
    struct sq_store *s = h;
    if (s->claim_fd >= 0) close(s->claim_fd);
    for (int i = 0; i < s->pool.size; i++) sq_disconnect(&s->conns[i]);
    store_pool_destroy(&s->pool);
    free(s);
}

/* ---- statements ------------------------------------------------------------ */

const char *sq_text(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

/* The statement of sql on c: prepared on first use and kept for the life
 * of the connection; past SQ_STMT_MAX texts a fresh one that sq_finish
 * finalizes. NULL on failure, with *rc set. */
static sqlite3_stmt *sq_prepare(struct sq_conn *c, const char *sql, const char *what, int *rc) {
    sqlite3_stmt *st = NULL;
    for (int k = 0; k < c->nstmt; k++)
        if (c->sql[k] == sql) return c->stmt[k];
    int keep = c->nstmt < SQ_STMT_MAX;
    int prc = sqlite3_prepare_v3(c->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL);
    if (prc != SQLITE_OK) {
        *rc = sq_fail(c->db, prc, what);
        sqlite3_finalize(st);
        return NULL;
    }
    if (keep) {
        c->sql[c->nstmt] = sql;
        c->stmt[c->nstmt++] = st;
    }
    return st;
}

/* Reset st (which ends the read snapshot a SELECT holds) and drop its
 * parameters, ready for the next use; finalize it if it is not kept. */
static void sq_finish(struct sq_conn *c, sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (int k = 0; k < c->nstmt; k++)
        if (c->stmt[k] == st) return;
    sqlite3_finalize(st);
}

/* Bind p[0..np) to ?1..?np. Texts are bound without a copy: sq_finish
 * clears them before the caller's strings can go away. */
static int sq_bind(sqlite3_stmt *st, const struct sq_param *p, int np) {
    int rc = SQLITE_OK;
    for (int i = 0; i < np && rc == SQLITE_OK; i++) {
        int null = p[i].type == SQ_P_NULL || (p[i].type == SQ_P_TEXT && p[i].text == NULL) ||
                   (p[i].type == SQ_P_OPT && p[i].i == 0);
        if (null) rc = sqlite3_bind_null(st, i + 1);
        else if (p[i].type == SQ_P_TEXT) rc = sqlite3_bind_text(st, i + 1, p[i].text, -1, SQLITE_STATIC);
        else rc = sqlite3_bind_int64(st, i + 1, p[i].i);
    }
    return rc;
}

/* Hands a row to the caller's use of it: 1 for more rows, 0 for enough,
 * -1 for a failure of its own (out of memory). */
typedef int sq_each(sqlite3_stmt *st, void *ud);

/* The one place a statement is stepped: on `on` or a connection of s
 * borrowed for it (given back as a write when write is set), sql prepared
 * or found, p bound, rows handed to each() (NULL: none expected), and the
 * statement reset whatever happened. */
static int sq_query(struct sq_store *s, struct sq_conn *on, int write, const char *sql,
                    const char *what, const struct sq_param *p, int np, sq_each *each, void *ud) {
    int rc = STORE_OK, step, more = 1;
    sqlite3_stmt *st;
    struct sq_conn *c = on ? on : sq_acquire(s);
    if (c == NULL) return STORE_UNAVAILABLE;
    if ((st = sq_prepare(c, sql, what, &rc)) == NULL) goto done;
    if ((step = sq_bind(st, p, np)) == SQLITE_OK) {
        while (more > 0 && (step = sqlite3_step(st)) == SQLITE_ROW) more = each ? each(st, ud) : 1;
    }
    if (more < 0) rc = STORE_FAILED;
    else if (more > 0 && step != SQLITE_DONE) rc = sq_fail(c->db, step, what);
    sq_finish(c, st);
done:
    if (on) return rc;
    if (write) return sq_write_done(c, rc);
    sq_release(c);
    return rc;
}

int sq_run(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
           const struct sq_param *p, int np) {
    return sq_query(s, on, 1, sql, what, p, np, NULL, NULL);
}

struct sq_one {
    sq_reader *read;
    void *out;
    int found;
};

static int sq_take_one(sqlite3_stmt *st, void *ud) {
    struct sq_one *one = ud;
    one->read(st, one->out);
    one->found = 1;
    return 0;
}

int sq_row(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
           sq_reader *read, void *out, const struct sq_param *p, int np) {
    struct sq_one one = {read, out, 0};
    int rc = sq_query(s, on, 0, sql, what, p, np, sq_take_one, &one);
    return rc == STORE_OK && !one.found ? STORE_NOT_FOUND : rc;
}

static void sq_read_int(sqlite3_stmt *st, void *elem) { *(int64_t *)elem = sqlite3_column_int64(st, 0); }

int sq_int(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
           int64_t *out, const struct sq_param *p, int np) {
    return sq_row(s, on, sql, what, sq_read_int, out, p, np);
}

struct sq_rows {
    sq_reader *read;
    size_t size, len, cap;
    char *items;
};

static int sq_take_all(sqlite3_stmt *st, void *ud) {
    struct sq_rows *r = ud;
    if (r->len == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 8;
        char *grown = realloc(r->items, ncap * r->size);
        if (grown == NULL) return -1;
        r->items = grown;
        r->cap = ncap;
    }
    r->read(st, r->items + r->size * r->len++);
    return 1;
}

int sq_collect(struct sq_store *s, struct sq_conn *on, const char *sql, const char *what,
               size_t size, sq_reader *read, void **out, size_t *n,
               const struct sq_param *p, int np) {
    struct sq_rows rows = {read, size, 0, 0, NULL};
    int rc = sq_query(s, on, 0, sql, what, p, np, sq_take_all, &rows);
    if (rc != STORE_OK) {
        free(rows.items);
        rows.items = NULL;
        rows.len = 0;
    }
    *out = rows.items;
    *n = rows.len;
    return rc;
}

/* ---- migrations ---------------------------------------------------------- */

/* Apply m in a BEGIN IMMEDIATE of its own unless it is applied already;
 * counts it in *count. Whatever fails is rolled back here. */
static int sq_apply(struct sq_conn *c, const struct migration *m, int *count) {
    int64_t have = 0;
    int rc = sq_exec(c->db, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        rc = sq_int(NULL, c, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", "migrate",
                    &have, SQ_ARGS(SQ_INT(m->version)));
    if (rc != STORE_OK || have) goto done;
    if ((rc = sq_exec(c->db, m->sql)) != STORE_OK) {
        log_msg(LOG_ERROR, "migration %s failed", m->name);
        goto done;
    }
    rc = sq_run(NULL, c, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                "migrate", SQ_ARGS(SQ_INT(m->version), SQ_TEXT(m->name), SQ_INT(util_now_ms())));
    if (rc == STORE_OK && (rc = sq_exec(c->db, "COMMIT")) == STORE_OK) {
        log_json(LOG_INFO, "migration applied", json_pack("{s:s}", "name", m->name));
        (*count)++;
    }
done:
    sq_rollback(c->db);                       /* nothing when committed */
    return rc;
}

static int sq_migrate(void *h, int *applied) {
    int count = 0;
    struct sq_conn *c = sq_acquire(h);
    if (c == NULL) return STORE_UNAVAILABLE;
    int rc = sq_exec(c->db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                            " applied_at INTEGER NOT NULL)");
    for (const struct migration *m = migrations; rc == STORE_OK && m->backend; m++)
        if (strcmp(m->backend, "sqlite") == 0) rc = sq_apply(c, m, &count);
    if (applied) *applied = count;
    return sq_write_done(c, rc);
}

static int sq_schema_current(void *h) {
    int latest = 0;
    int64_t tables = 0, have = 0;
    struct sq_conn *c = sq_acquire(h);
    if (c == NULL) return -1;
    for (const struct migration *m = migrations; m->backend; m++)
        if (strcmp(m->backend, "sqlite") == 0 && m->version > latest) latest = m->version;
    /* No schema_migrations table: nothing applied. */
    int rc = sq_int(NULL, c, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                             " AND name = 'schema_migrations'", "schema", &tables, SQ_NO_ARGS);
    if (rc == STORE_OK && tables)
        rc = sq_int(NULL, c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", "schema",
                    &have, SQ_NO_ARGS);
    sq_release(c);
    return rc != STORE_OK ? -1 : have >= latest;
}

static int sq_ping(void *h) {
    struct sq_store *s = h;
    if (atomic_load(&s->full) && !sq_has_room(s)) return STORE_FULL;
    struct sq_conn *c = sq_acquire(s);
    if (c == NULL) return STORE_UNAVAILABLE;
    int rc = sq_exec(c->db, "SELECT 1 FROM schema_migrations LIMIT 1");
    sq_release(c);
    return rc;
}

/* ---- targets ------------------------------------------------------------- */

#define SQ_TARGET_COLS "queue, desired_concurrency, version, updated_by, updated_at, reason," \
                       " COALESCE(expires_at, 0), COALESCE(revert_to, 0), paused," \
                       " COALESCE(paused_until, 0), COALESCE(paused_by, ''), COALESCE(paused_at, 0)," \
                       " COALESCE(paused_reason, '')"

static void sq_read_target(sqlite3_stmt *st, void *elem) {
    struct store_target *t = elem;
    util_copy(t->queue, sizeof t->queue, sq_text(st, 0));
    t->desired = sqlite3_column_int64(st, 1);
    t->version = sqlite3_column_int64(st, 2);
    util_copy(t->updated_by, sizeof t->updated_by, sq_text(st, 3));
    t->updated_at_ms = sqlite3_column_int64(st, 4);
    util_copy(t->reason, sizeof t->reason, sq_text(st, 5));
    t->expires_at_ms = sqlite3_column_int64(st, 6);
    t->revert_to = sqlite3_column_int64(st, 7);
    t->paused = sqlite3_column_int64(st, 8) != 0;
    t->paused_until_ms = sqlite3_column_int64(st, 9);
    util_copy(t->paused_by, sizeof t->paused_by, sq_text(st, 10));
    t->paused_at_ms = sqlite3_column_int64(st, 11);
    util_copy(t->paused_reason, sizeof t->paused_reason, sq_text(st, 12));
}

/* On tx, or a pooled connection of s when tx is NULL. */
static int sq_get_target_on(struct sq_store *s, struct sq_conn *tx, const char *queue,
                            struct store_target *out) {
    return sq_row(s, tx, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies WHERE queue = ?",
                  "get_target", sq_read_target, out, SQ_ARGS(SQ_TEXT(queue)));
}

static int sq_get_target(void *h, const char *queue, struct store_target *out) {
    return sq_get_target_on(h, NULL, queue, out);
}

static int sq_list_targets(void *h, struct store_target **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies ORDER BY queue",
                      "list_targets", sizeof **out, sq_read_target, (void **)out, n, SQ_NO_ARGS);
}

static int sq_list_expired(void *h, int64_t now_ms, struct store_target **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies"
                               " WHERE (expires_at IS NOT NULL AND expires_at <= ?1)"
                               " OR (paused = 1 AND paused_until IS NOT NULL AND paused_until <= ?1)"
                               " ORDER BY MIN(COALESCE(expires_at, paused_until), COALESCE(paused_until, expires_at))",
                      "list_expired", sizeof **out, sq_read_target, (void **)out, n,
                      SQ_ARGS(SQ_INT(now_ms)));
}

/* ---- outbox and the desired-state snapshot -------------------------------- */

static void sq_read_outbox(sqlite3_stmt *st, void *elem) {
    struct store_outbox *o = elem;
    o->id = sqlite3_column_int64(st, 0);
    util_copy(o->queue, sizeof o->queue, sq_text(st, 1));
    o->version = sqlite3_column_int64(st, 2);
    o->desired = sqlite3_column_int64(st, 3);
    o->created_ms = sqlite3_column_int64(st, 4);
    o->paused = sqlite3_column_int64(st, 5) != 0;
}

static int sq_outbox_pending(void *h, int limit, struct store_outbox **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT id, queue, version, desired_concurrency, created_at,"
                               " paused FROM scaling_outbox WHERE published_at IS NULL ORDER BY id LIMIT ?1",
                      "outbox_pending", sizeof **out, sq_read_outbox, (void **)out, n,
                      SQ_ARGS(SQ_INT(limit)));
}

static int sq_outbox_mark_published(void *h, int64_t id, int64_t now_ms) {
    return sq_run(h, NULL, "UPDATE scaling_outbox SET published_at = ? WHERE id = ?", "mark_published",
                  SQ_ARGS(SQ_INT(now_ms), SQ_INT(id)));
}

static void sq_read_name(sqlite3_stmt *st, void *elem) {
    util_copy(elem, UTIL_NAME_MAX + 1, sq_text(st, 0));
}

static int sq_desired_snapshot(void *h, struct store_target **targets, size_t *nt,
                               char (**pending)[UTIL_NAME_MAX + 1], size_t *np) {
    int rc;
    struct sq_conn *c = sq_acquire(h);
    *targets = NULL;
    *pending = NULL;
    *nt = *np = 0;
    if (c == NULL) return STORE_UNAVAILABLE;
    /* A deferred transaction: both reads see the same WAL snapshot. */
    if ((rc = sq_exec(c->db, "BEGIN")) != STORE_OK) goto done;
    rc = sq_collect(NULL, c, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies"
                             " WHERE queue NOT IN (SELECT queue FROM scaling_outbox"
                             " WHERE published_at IS NULL) ORDER BY queue",
                    "snapshot", sizeof **targets, sq_read_target, (void **)targets, nt, SQ_NO_ARGS);
    if (rc == STORE_OK)
        rc = sq_collect(NULL, c, "SELECT DISTINCT queue FROM scaling_outbox WHERE published_at IS NULL",
                        "snapshot", sizeof **pending, sq_read_name, (void **)pending, np, SQ_NO_ARGS);
    sq_exec(c->db, "COMMIT");
    if (rc != STORE_OK) {
        free(*targets);
        *targets = NULL;
        *nt = 0;
    }
done:
    sq_release(c);
    return rc;
}

/* ---- audit ---------------------------------------------------------------- */

int sq_insert_audit(struct sq_conn *c, struct store_audit *e) {
    int rc = sq_run(NULL, c, "INSERT INTO scaling_audit (kind, subject, from_value, to_value, version,"
                             " actor, source, reason, outcome, error_code, at, request_id,"
                             " from_version, approval_id)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "append_audit",
                    SQ_ARGS(SQ_TEXT(e->kind), SQ_TEXT(e->subject), SQ_INT(e->from), SQ_INT(e->to),
                            SQ_INT(e->version), SQ_TEXT(e->actor), SQ_TEXT(e->source),
                            SQ_TEXT(e->reason), SQ_TEXT(e->outcome),
                            SQ_TEXT(e->error_code[0] ? e->error_code : NULL), SQ_INT(e->at_ms),
                            SQ_TEXT(e->request_id), SQ_OPT(e->from_version),
                            SQ_TEXT(e->approval_id[0] ? e->approval_id : NULL)));
    if (rc == STORE_OK) e->id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int sq_append_audit(void *h, struct store_audit *e) {
    struct sq_conn *c = sq_acquire(h);
    if (c == NULL) return STORE_UNAVAILABLE;
    return sq_write_done(c, sq_insert_audit(c, e));
}

void sq_read_audit(sqlite3_stmt *st, void *elem) {
    struct store_audit *e = elem;
    e->id = sqlite3_column_int64(st, 0);
    util_copy(e->kind, sizeof e->kind, sq_text(st, 1));
    util_copy(e->subject, sizeof e->subject, sq_text(st, 2));
    e->from = sqlite3_column_int64(st, 3);
    e->to = sqlite3_column_int64(st, 4);
    e->version = sqlite3_column_int64(st, 5);
    util_copy(e->actor, sizeof e->actor, sq_text(st, 6));
    util_copy(e->source, sizeof e->source, sq_text(st, 7));
    util_copy(e->reason, sizeof e->reason, sq_text(st, 8));
    util_copy(e->outcome, sizeof e->outcome, sq_text(st, 9));
    util_copy(e->error_code, sizeof e->error_code, sq_text(st, 10));
    e->at_ms = sqlite3_column_int64(st, 11);
    util_copy(e->request_id, sizeof e->request_id, sq_text(st, 12));
    e->from_version = sqlite3_column_int64(st, 13);
    util_copy(e->approval_id, sizeof e->approval_id, sq_text(st, 14));
}

static int sq_list_audit(void *h, const struct store_audit_filter *f, int limit,
                         struct store_audit **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;           /* SQLite reads LIMIT -1 as no limit */
    return sq_collect(h, NULL, "SELECT " SQ_AUDIT_COLS " FROM scaling_audit"
                               " WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR subject = ?2)"
                               " AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR outcome = ?4)"
                               " AND (?5 IS NULL OR source = ?5) AND (?6 = 0 OR at >= ?6)"
                               " AND (?7 = 0 OR at <= ?7)"
                               " AND (?8 = 0 OR id < ?8) AND (?10 = 0 OR version = ?10)"
                               " AND (?11 = 0 OR kind IN ('scaling', 'pause'))"
                               " ORDER BY id DESC LIMIT ?9",
                      "list_audit", sizeof **out, sq_read_audit, (void **)out, n,
                      SQ_ARGS(SQ_TEXT(f->kind), SQ_TEXT(f->subject), SQ_TEXT(f->actor),
                              SQ_TEXT(f->outcome), SQ_TEXT(f->source), SQ_INT(f->since_ms),
                              SQ_INT(f->until_ms), SQ_INT(f->before_id), SQ_INT(limit),
                              SQ_INT(f->version), SQ_INT(f->queue_kinds)));
}

/* ---- transactions (store.c runs the judged writes over these) ----------------- */

static void *sq_begin(void *h, int mode, const char *lock_key, int *rc) {
    (void)lock_key;                  /* BEGIN IMMEDIATE locks the whole database */
    struct sq_conn *c = sq_acquire(h);
    if (c == NULL) {
        *rc = STORE_UNAVAILABLE;
        return NULL;
    }
    /* A deferred BEGIN reads one snapshot (WAL) and never blocks the writer. */
    if ((*rc = sq_exec(c->db, mode == STORE_TX_WRITE ? "BEGIN IMMEDIATE" : "BEGIN")) != STORE_OK) {
        sq_write_done(c, *rc);
        return NULL;
    }
    c->write = mode == STORE_TX_WRITE;
    return c;
}

static int sq_commit(void *tx) { return sq_exec(((struct sq_conn *)tx)->db, "COMMIT"); }

/* sq_release rolls back what is still open. */
static void sq_end(void *tx, int rc) {
    struct sq_conn *c = tx;
    if (c->write) sq_write_done(c, rc);
    else sq_release(c);
}

static int sq_tx_get_target(void *tx, const char *queue, struct store_target *out) {
    return sq_get_target_on(NULL, tx, queue, out);
}

static void sq_read_hour(sqlite3_stmt *st, void *elem) {
    struct store_stats *out = elem;
    out->applied_last_hour = sqlite3_column_int64(st, 0);
    out->oldest_in_hour_ms = sqlite3_column_int64(st, 1);
}

static int sq_tx_stats(void *tx, const char *queue, int64_t now_ms, struct store_stats *out) {
    memset(out, 0, sizeof *out);
    int rc = sq_row(NULL, tx, "SELECT COUNT(*), COALESCE(MIN(at), 0) FROM scaling_audit"
                              " WHERE kind = 'scaling' AND subject = ? AND outcome = 'applied'"
                              " AND from_value <> to_value AND at > ?", "stats", sq_read_hour, out,
                    SQ_ARGS(SQ_TEXT(queue), SQ_INT(now_ms - STORE_HOUR_MS)));
    if (rc == STORE_OK)
        rc = sq_int(NULL, tx, "SELECT COALESCE(MAX(at), 0) FROM scaling_audit"
                              " WHERE kind = 'scaling' AND subject = ? AND outcome = 'applied'"
                              " AND from_value <> to_value", "stats", &out->last_applied_ms,
                    SQ_ARGS(SQ_TEXT(queue)));
    return rc;
}

static int sq_tx_write_target(void *tx, const struct store_target *t) {
    return sq_run(NULL, tx, "INSERT INTO runtime_scaling_policies (queue, desired_concurrency, version,"
                            " updated_by, updated_at, reason, expires_at, revert_to, paused, paused_until,"
                            " paused_by, paused_at, paused_reason)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue) DO UPDATE SET"
                            " desired_concurrency = excluded.desired_concurrency,"
                            " version = excluded.version, updated_by = excluded.updated_by,"
                            " updated_at = excluded.updated_at, reason = excluded.reason,"
                            " expires_at = excluded.expires_at, revert_to = excluded.revert_to,"
                            " paused = excluded.paused, paused_until = excluded.paused_until,"
                            " paused_by = excluded.paused_by, paused_at = excluded.paused_at,"
                            " paused_reason = excluded.paused_reason",
                  "write_target",
                  SQ_ARGS(SQ_TEXT(t->queue), SQ_INT(t->desired), SQ_INT(t->version),
                          SQ_TEXT(t->updated_by), SQ_INT(t->updated_at_ms), SQ_TEXT(t->reason),
                          SQ_OPT(t->expires_at_ms), t->expires_at_ms ? SQ_INT(t->revert_to) : SQ_NULL,
                          SQ_INT(t->paused != 0), SQ_OPT(t->paused ? t->paused_until_ms : 0),
                          SQ_TEXT(t->paused ? t->paused_by : NULL), SQ_OPT(t->paused ? t->paused_at_ms : 0),
                          SQ_TEXT(t->paused ? t->paused_reason : NULL)));
}

static int sq_tx_write_outbox(void *tx, const struct store_target *t) {
    return sq_run(NULL, tx, "INSERT INTO scaling_outbox (queue, version, desired_concurrency, created_at,"
                            " paused) VALUES (?, ?, ?, ?, ?)", "write_outbox",
                  SQ_ARGS(SQ_TEXT(t->queue), SQ_INT(t->version), SQ_INT(t->desired),
                          SQ_INT(t->updated_at_ms), SQ_INT(t->paused != 0)));
}

static int sq_tx_insert_audit(void *tx, struct store_audit *e) { return sq_insert_audit(tx, e); }

const struct store_backend store_sqlite_backend = {
    .scheme = "sqlite:",
    .open = sq_open,
    .close = sq_close,
    .claim = sq_claim,
    .migrate = sq_migrate,
    .schema_current = sq_schema_current,
    .ping = sq_ping,
    .get_target = sq_get_target,
    .list_targets = sq_list_targets,
    .begin = sq_begin,
    .commit = sq_commit,
    .end = sq_end,
    .tx_get_target = sq_tx_get_target,
    .tx_stats = sq_tx_stats,
    .tx_write_target = sq_tx_write_target,
    .tx_write_outbox = sq_tx_write_outbox,
    .tx_insert_audit = sq_tx_insert_audit,
    .tx_get_flag = sq_tx_get_flag,
    .tx_write_flag = sq_tx_write_flag,
    .tx_get_approval = sq_tx_get_approval,
    .tx_pending_approval = sq_tx_pending_approval,
    .tx_insert_approval = sq_tx_insert_approval,
    .tx_update_approval = sq_tx_update_approval,
    .list_approvals = sq_list_approvals,
    .append_audit = sq_append_audit,
    .list_audit = sq_list_audit,
    .list_audit_oldest = sq_list_audit_oldest,
    .audit_bound_at = sq_audit_bound_at,
    .prune_audit = sq_prune_audit,
    .outbox_pending = sq_outbox_pending,
    .outbox_mark_published = sq_outbox_mark_published,
    .desired_snapshot = sq_desired_snapshot,
    .list_expired = sq_list_expired,
    .get_flag = sq_get_flag,
    .identity = sq_identity,
    .put_token = sq_put_token,
    .get_token = sq_get_token,
    .list_tokens = sq_list_tokens,
    .revoke_token = sq_revoke_token,
    .put_session = sq_put_session,
    .get_session = sq_get_session,
    .delete_session = sq_delete_session,
    .sweep_sessions = sq_sweep_sessions,
    .notify_cursor = sq_notify_cursor,
    .notify_enqueue = sq_notify_enqueue,
    .notify_pending = sq_notify_pending,
    .notify_mark = sq_notify_mark,
    .notify_list = sq_notify_list,
    .notify_summarize = sq_notify_summarize,
    .notify_prune = sq_notify_prune,
    .autoscale_hold = sq_autoscale_hold,
    .autoscale_holds = sq_autoscale_holds,
    .autoscale_put_state = sq_autoscale_put_state,
    .autoscale_states = sq_autoscale_states,
};
