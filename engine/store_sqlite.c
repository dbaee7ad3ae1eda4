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
 * then, so that it never takes the room the changes need.
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

int sq_rc(int rc) {
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

int sq_fail(sqlite3 *db, int rc, const char *what) {
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

/* Borrow a connection; blocks while all are in use. Connections are opened
 * lazily, so a database that went away fails here as STORE_UNAVAILABLE. */
sqlite3 *sq_acquire(struct sq_store *s, int *slot_out) {
    char err[256];
    int slot = -1;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        for (int i = 0; i < s->size && slot < 0; i++)
            if (!s->in_use[i]) slot = i;
        if (slot >= 0) break;
        pthread_cond_wait(&s->freed, &s->lock);
    }
    s->in_use[slot] = 1;
    pthread_mutex_unlock(&s->lock);
    if (s->conns[slot] == NULL) {
        s->conns[slot] = sq_connect(s, err, sizeof err);
        if (s->conns[slot] == NULL) {
            log_json(LOG_ERROR, "sqlite connect failed", json_pack("{s:s}", "error", err));
            pthread_mutex_lock(&s->lock);
            s->in_use[slot] = 0;
            pthread_cond_signal(&s->freed);
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
    }
    *slot_out = slot;
    return s->conns[slot];
}

void sq_release(struct sq_store *s, int slot) {
    if (s->conns[slot]) sq_rollback(s->conns[slot]);
    pthread_mutex_lock(&s->lock);
    s->in_use[slot] = 0;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
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

int sq_write_done(struct sq_store *s, sqlite3 *db, int slot, int rc) {
    if (rc == STORE_FULL && !atomic_exchange(&s->full, 1))
        log_json(LOG_WARN, "database volume full: changes are refused (507 store_full) until "
                           "there is space again", json_pack("{s:s}", "path", s->path));
    if (rc == STORE_OK) {
        if (atomic_exchange(&s->full, 0))
            log_json(LOG_INFO, "database volume has space again: changes are accepted",
                     json_pack("{s:s}", "path", s->path));
        if (atomic_fetch_add(&s->writes, 1) % SQ_TRUNCATE_EVERY == SQ_TRUNCATE_EVERY - 1)
            sq_truncate_wal(s, db);
    }
    sq_release(s, slot);
    return rc;
}

/* While the store is full: has the volume room again? */
static int sq_has_room(const struct sq_store *s) {
    char dir[sizeof s->path];
    struct statvfs v;
    util_copy(dir, sizeof dir, s->path);
    if (statvfs(dirname(dir), &v) != 0) return 0;
    return (unsigned long long)v.f_bavail * v.f_frsize >= SQ_FULL_ROOM;
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
    s->size = opt->pool_size < 1 ? 1 : opt->pool_size > SQ_POOL_MAX ? SQ_POOL_MAX : opt->pool_size;
    sq_private_files(s->path);
    s->claim_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, NULL);
    /* Open one connection now so a wrong path fails at start, loudly. */
    s->conns[0] = sq_connect(s, err, errlen);
    if (s->conns[0] == NULL) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->freed);
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
    for (int i = 0; i < s->size; i++) sqlite3_close(s->conns[i]);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->freed);
    free(s);
}

/* ---- statement helpers --------------------------------------------------- */

const char *sq_text(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

void sq_bind_text(sqlite3_stmt *st, int idx, const char *v) {
    if (v) sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, idx);
}

void sq_bind_opt_int(sqlite3_stmt *st, int idx, int64_t v) {
    if (v) sqlite3_bind_int64(st, idx, v);
    else sqlite3_bind_null(st, idx);
}

/* Run a statement that returns no rows. Finalizes it. */
int sq_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sq_fail(db, rc, what);
    return STORE_OK;
}

/* ---- migrations ---------------------------------------------------------- */

static int sq_migrate(void *h, int *applied) {
    struct sq_store *s = h;
    int slot, rc = STORE_OK, count = 0;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;

    rc = sq_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " applied_at INTEGER NOT NULL)");
    if (rc != STORE_OK) goto done;
    for (const struct migration *m = migrations; m->backend; m++) {
        if (strcmp(m->backend, "sqlite") != 0) continue;
        if ((rc = sq_exec(db, "BEGIN IMMEDIATE")) != STORE_OK) goto done;
        SQ_PREPARE(db, "SELECT 1 FROM schema_migrations WHERE version = ?", st, "migrate");
        sqlite3_bind_int(st, 1, m->version);
        int have = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        st = NULL;
        if (have) {
            sq_rollback(db);
            continue;
        }
        if ((rc = sq_exec(db, m->sql)) != STORE_OK) {
            log_msg(LOG_ERROR, "migration %s failed", m->name);
            sq_rollback(db);
            goto done;
        }
        SQ_PREPARE(db, "INSERT INTO schema_migrations (version, name, applied_at)"
                       " VALUES (?, ?, ?)", st, "migrate");
        sqlite3_bind_int(st, 1, m->version);
        sq_bind_text(st, 2, m->name);
        sqlite3_bind_int64(st, 3, util_now_ms());
        rc = sq_step_done(db, st, "migrate");
        st = NULL;
        if (rc != STORE_OK || (rc = sq_exec(db, "COMMIT")) != STORE_OK) {
            sq_rollback(db);
            goto done;
        }
        log_json(LOG_INFO, "migration applied", json_pack("{s:s}", "name", m->name));
        count++;
    }
done:
    if (rc != STORE_OK && st) sqlite3_finalize(st);
    if (applied) *applied = count;
    return sq_write_done(s, db, slot, rc);
}

static int sq_schema_current(void *h) {
    struct sq_store *s = h;
    int slot, latest = 0, have = -1;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return -1;
    for (const struct migration *m = migrations; m->backend; m++)
        if (strcmp(m->backend, "sqlite") == 0 && m->version > latest) latest = m->version;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1,
                           &st, NULL) != SQLITE_OK) {
        have = 0;    /* no schema_migrations table: nothing applied */
        goto done;
    }
    if (sqlite3_step(st) == SQLITE_ROW) have = sqlite3_column_int(st, 0) >= latest;
done:
    sqlite3_finalize(st);
    sq_release(s, slot);
    return have;
}

static int sq_ping(void *h) {
    struct sq_store *s = h;
    int slot;
    if (atomic_load(&s->full) && !sq_has_room(s)) return STORE_FULL;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    int rc = sq_exec(db, "SELECT 1 FROM schema_migrations LIMIT 1");
    sq_release(s, slot);
    return rc;
}

/* ---- targets ------------------------------------------------------------- */

#define SQ_TARGET_COLS "queue, desired_concurrency, version, updated_by, updated_at, reason," \
                       " COALESCE(expires_at, 0), COALESCE(revert_to, 0)"

static void sq_read_target(sqlite3_stmt *st, struct store_target *t) {
    util_copy(t->queue, sizeof t->queue, sq_text(st, 0));
    t->desired = sqlite3_column_int64(st, 1);
    t->version = sqlite3_column_int64(st, 2);
    util_copy(t->updated_by, sizeof t->updated_by, sq_text(st, 3));
    t->updated_at_ms = sqlite3_column_int64(st, 4);
    util_copy(t->reason, sizeof t->reason, sq_text(st, 5));
    t->expires_at_ms = sqlite3_column_int64(st, 6);
    t->revert_to = sqlite3_column_int64(st, 7);
}

static int sq_get_target_on(sqlite3 *db, const char *queue, struct store_target *out) {
    sqlite3_stmt *st = NULL;
    int rc;
    SQ_PREPARE(db, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies WHERE queue = ?",
               st, "get_target");
    sq_bind_text(st, 1, queue);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        sq_read_target(st, out);
        rc = STORE_OK;
    } else if (step == SQLITE_DONE) {
        rc = STORE_NOT_FOUND;
    } else {
        rc = sq_fail(db, step, "get_target");
    }
done:
    sqlite3_finalize(st);
    return rc;
}

static int sq_get_target(void *h, const char *queue, struct store_target *out) {
    struct sq_store *s = h;
    int slot;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    int rc = sq_get_target_on(db, queue, out);
    sq_release(s, slot);
    return rc;
}

/* Run a query (with ?1 bound to arg when it has one) and collect every row
 * into a malloc'd array of elements of `size` bytes, filled by read(). Uses
 * db when given (inside a transaction), else a pooled connection. The caller
 * owns *out. */
int sq_collect_on(struct sq_store *s, sqlite3 *given, const char *sql, int64_t arg,
                         size_t size, void (*read)(sqlite3_stmt *st, void *elem), void **out,
                         size_t *n) {
    int slot = -1, rc = STORE_OK, step;
    size_t cap = 0, len = 0;
    char *items = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = given ? given : sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, sql, st, "collect");
    if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, arg);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char *grown = realloc(items, ncap * size);
            if (grown == NULL) { rc = STORE_FAILED; goto done; }
            items = grown;
            cap = ncap;
        }
        read(st, items + size * len++);
    }
    if (step != SQLITE_DONE) rc = sq_fail(db, step, "collect");
done:
    sqlite3_finalize(st);
    if (!given) sq_release(s, slot);
    if (rc != STORE_OK) {
        free(items);
        items = NULL;
        len = 0;
    }
    *out = items;
    *n = len;
    return rc;
}

int sq_collect(struct sq_store *s, const char *sql, size_t size,
                      void (*read)(sqlite3_stmt *st, void *elem), void **out, size_t *n) {
    return sq_collect_on(s, NULL, sql, 0, size, read, out, n);
}

static void sq_read_target_elem(sqlite3_stmt *st, void *elem) { sq_read_target(st, elem); }

static int sq_list_targets(void *h, struct store_target **out, size_t *n) {
    return sq_collect(h, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies ORDER BY queue",
                      sizeof **out, sq_read_target_elem, (void **)out, n);
}

/* ---- outbox and the desired-state snapshot -------------------------------- */

static void sq_read_outbox(sqlite3_stmt *st, void *elem) {
    struct store_outbox *o = elem;
    o->id = sqlite3_column_int64(st, 0);
    util_copy(o->queue, sizeof o->queue, sq_text(st, 1));
    o->version = sqlite3_column_int64(st, 2);
    o->desired = sqlite3_column_int64(st, 3);
    o->created_ms = sqlite3_column_int64(st, 4);
}

static int sq_outbox_pending(void *h, int limit, struct store_outbox **out, size_t *n) {
    return sq_collect_on(h, NULL, "SELECT id, queue, version, desired_concurrency, created_at"
                                  " FROM scaling_outbox WHERE published_at IS NULL"
                                  " ORDER BY id LIMIT ?1",
                         limit, sizeof **out, sq_read_outbox, (void **)out, n);
}

static int sq_outbox_mark_published(void *h, int64_t id, int64_t now_ms) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "UPDATE scaling_outbox SET published_at = ? WHERE id = ?", st, "mark_published");
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, id);
    rc = sq_step_done(db, st, "mark_published");
done:
    return sq_write_done(s, db, slot, rc);
}

static void sq_read_name(sqlite3_stmt *st, void *elem) {
    util_copy(elem, UTIL_NAME_MAX + 1, sq_text(st, 0));
}

static int sq_desired_snapshot(void *h, struct store_target **targets, size_t *nt,
                               char (**pending)[UTIL_NAME_MAX + 1], size_t *np) {
    struct sq_store *s = h;
    int slot, rc;
    sqlite3 *db = sq_acquire(s, &slot);
    *targets = NULL;
    *pending = NULL;
    *nt = *np = 0;
    if (db == NULL) return STORE_UNAVAILABLE;
    /* A deferred transaction: both reads see the same WAL snapshot. */
    if ((rc = sq_exec(db, "BEGIN")) != STORE_OK) goto done;
    rc = sq_collect_on(s, db, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies"
                              " WHERE queue NOT IN (SELECT queue FROM scaling_outbox"
                              " WHERE published_at IS NULL) ORDER BY queue",
                       0, sizeof **targets, sq_read_target_elem, (void **)targets, nt);
    if (rc == STORE_OK)
        rc = sq_collect_on(s, db, "SELECT DISTINCT queue FROM scaling_outbox"
                                  " WHERE published_at IS NULL",
                           0, sizeof **pending, sq_read_name, (void **)pending, np);
    sq_exec(db, "COMMIT");
    if (rc != STORE_OK) {
        free(*targets);
        free(*pending);
        *targets = NULL;
        *pending = NULL;
        *nt = *np = 0;
    }
done:
    sq_release(s, slot);
    return rc;
}

static int sq_list_expired(void *h, int64_t now_ms, struct store_target **out, size_t *n) {
    return sq_collect_on(h, NULL, "SELECT " SQ_TARGET_COLS " FROM runtime_scaling_policies"
                                  " WHERE expires_at IS NOT NULL AND expires_at <= ?1"
                                  " ORDER BY expires_at",
                         now_ms, sizeof **out, sq_read_target_elem, (void **)out, n);
}

/* ---- audit ---------------------------------------------------------------- */

int sq_insert_audit(sqlite3 *db, struct store_audit *e) {
    sqlite3_stmt *st = NULL;
    int rc;
    SQ_PREPARE(db, "INSERT INTO scaling_audit (kind, subject, from_value, to_value, version,"
                   " actor, source, reason, outcome, error_code, at, request_id)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", st, "append_audit");
    sq_bind_text(st, 1, e->kind);
    sq_bind_text(st, 2, e->subject);
    sqlite3_bind_int64(st, 3, e->from);
    sqlite3_bind_int64(st, 4, e->to);
    sqlite3_bind_int64(st, 5, e->version);
    sq_bind_text(st, 6, e->actor);
    sq_bind_text(st, 7, e->source);
    sq_bind_text(st, 8, e->reason);
    sq_bind_text(st, 9, e->outcome);
    sq_bind_text(st, 10, e->error_code[0] ? e->error_code : NULL);
    sqlite3_bind_int64(st, 11, e->at_ms);
    sq_bind_text(st, 12, e->request_id);
    rc = sq_step_done(db, st, "append_audit");
    st = NULL;
    if (rc == STORE_OK) e->id = sqlite3_last_insert_rowid(db);
done:
    return rc;
}

static int sq_append_audit(void *h, struct store_audit *e) {
    struct sq_store *s = h;
    int slot;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    return sq_write_done(s, db, slot, sq_insert_audit(db, e));
}

void sq_read_audit(sqlite3_stmt *st, struct store_audit *e) {
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
}

static int sq_list_audit(void *h, const char *kind, const char *subject, int64_t before_id,
                         int limit, struct store_audit **out, size_t *n) {
    struct sq_store *s = h;
    int slot, rc = STORE_OK, step;
    size_t len = 0;
    struct store_audit *items = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;

    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;
    items = calloc((size_t)limit, sizeof *items);
    if (items == NULL) return STORE_FAILED;
    if ((db = sq_acquire(s, &slot)) == NULL) {
        free(items);
        return STORE_UNAVAILABLE;
    }
    SQ_PREPARE(db, "SELECT " SQ_AUDIT_COLS " FROM scaling_audit"
                   " WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR subject = ?2)"
                   " AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4", st, "list_audit");
    sq_bind_text(st, 1, kind);
    sq_bind_text(st, 2, subject);
    sqlite3_bind_int64(st, 3, before_id);
    sqlite3_bind_int(st, 4, limit);
    while (len < (size_t)limit && (step = sqlite3_step(st)) == SQLITE_ROW)
        sq_read_audit(st, &items[len++]);
    if (len < (size_t)limit && step != SQLITE_DONE) rc = sq_fail(db, step, "list_audit");
done:
    sqlite3_finalize(st);
    sq_release(s, slot);
    if (rc != STORE_OK) {
        free(items);
        return rc;
    }
    *out = items;
    *n = len;
    return STORE_OK;
}

/* ---- the judged change ------------------------------------------------------ */

static int sq_stats(sqlite3 *db, const char *queue, int64_t now_ms, struct store_stats *out) {
    sqlite3_stmt *st = NULL;
    int rc = STORE_OK, step;
    memset(out, 0, sizeof *out);
    SQ_PREPARE(db, "SELECT COUNT(*), COALESCE(MIN(at), 0) FROM scaling_audit"
                   " WHERE kind = 'scaling' AND subject = ? AND outcome = 'applied'"
                   " AND from_value <> to_value AND at > ?", st, "stats");
    sq_bind_text(st, 1, queue);
    sqlite3_bind_int64(st, 2, now_ms - STORE_HOUR_MS);
    if ((step = sqlite3_step(st)) != SQLITE_ROW) { rc = sq_fail(db, step, "stats"); goto done; }
    out->applied_last_hour = sqlite3_column_int64(st, 0);
    out->oldest_in_hour_ms = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    SQ_PREPARE(db, "SELECT COALESCE(MAX(at), 0) FROM scaling_audit"
                   " WHERE kind = 'scaling' AND subject = ? AND outcome = 'applied'"
                   " AND from_value <> to_value", st, "stats");
    sq_bind_text(st, 1, queue);
    if ((step = sqlite3_step(st)) != SQLITE_ROW) { rc = sq_fail(db, step, "stats"); goto done; }
    out->last_applied_ms = sqlite3_column_int64(st, 0);
done:
    sqlite3_finalize(st);
    return rc;
}

static int sq_write_target(sqlite3 *db, const struct store_target *t) {
    sqlite3_stmt *st = NULL;
    int rc;
    SQ_PREPARE(db, "INSERT INTO runtime_scaling_policies (queue, desired_concurrency, version,"
                   " updated_by, updated_at, reason, expires_at, revert_to)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue) DO UPDATE SET"
                   " desired_concurrency = excluded.desired_concurrency,"
                   " version = excluded.version, updated_by = excluded.updated_by,"
                   " updated_at = excluded.updated_at, reason = excluded.reason,"
                   " expires_at = excluded.expires_at, revert_to = excluded.revert_to",
               st, "write_target");
    sq_bind_text(st, 1, t->queue);
    sqlite3_bind_int64(st, 2, t->desired);
    sqlite3_bind_int64(st, 3, t->version);
    sq_bind_text(st, 4, t->updated_by);
    sqlite3_bind_int64(st, 5, t->updated_at_ms);
    sq_bind_text(st, 6, t->reason);
    sq_bind_opt_int(st, 7, t->expires_at_ms);
    if (t->expires_at_ms) sqlite3_bind_int64(st, 8, t->revert_to);
    else sqlite3_bind_null(st, 8);
    rc = sq_step_done(db, st, "write_target");
done:
    return rc;
}

static int sq_write_outbox(sqlite3 *db, const struct store_target *t) {
    sqlite3_stmt *st = NULL;
    int rc;
    SQ_PREPARE(db, "INSERT INTO scaling_outbox (queue, version, desired_concurrency, created_at)"
                   " VALUES (?, ?, ?, ?)", st, "write_outbox");
    sq_bind_text(st, 1, t->queue);
    sqlite3_bind_int64(st, 2, t->version);
    sqlite3_bind_int64(st, 3, t->desired);
    sqlite3_bind_int64(st, 4, t->updated_at_ms);
    rc = sq_step_done(db, st, "write_outbox");
done:
    return rc;
}

/* ---- transactions (store.c runs the judged writes over these) ----------------- */

static void *sq_begin(void *h, int mode, const char *lock_key, int *rc) {
    struct sq_store *s = h;
    int slot;
    (void)lock_key;                  /* BEGIN IMMEDIATE locks the whole database */
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) {
        *rc = STORE_UNAVAILABLE;
        return NULL;
    }
    /* A deferred BEGIN reads one snapshot (WAL) and never blocks the writer. */
    if ((*rc = sq_exec(db, mode == STORE_TX_WRITE ? "BEGIN IMMEDIATE" : "BEGIN")) != STORE_OK) {
        sq_write_done(s, db, slot, *rc);
        return NULL;
    }
    struct sq_tx *tx = &s->txs[slot];
    tx->s = s;
    tx->db = db;
    tx->slot = slot;
    tx->write = mode == STORE_TX_WRITE;
    return tx;
}

static int sq_commit(void *tx) { return sq_exec(((struct sq_tx *)tx)->db, "COMMIT"); }

/* sq_release rolls back what is still open. */
static void sq_end(void *tx, int rc) {
    struct sq_tx *t = tx;
    if (t->write) sq_write_done(t->s, t->db, t->slot, rc);
    else sq_release(t->s, t->slot);
}

static int sq_tx_get_target(void *tx, const char *queue, struct store_target *out) {
    return sq_get_target_on(((struct sq_tx *)tx)->db, queue, out);
}

static int sq_tx_stats(void *tx, const char *queue, int64_t now_ms, struct store_stats *out) {
    return sq_stats(((struct sq_tx *)tx)->db, queue, now_ms, out);
}

static int sq_tx_write_target(void *tx, const struct store_target *t) {
    return sq_write_target(((struct sq_tx *)tx)->db, t);
}

static int sq_tx_write_outbox(void *tx, const struct store_target *t) {
    return sq_write_outbox(((struct sq_tx *)tx)->db, t);
}

static int sq_tx_insert_audit(void *tx, struct store_audit *e) {
    return sq_insert_audit(((struct sq_tx *)tx)->db, e);
}

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
};
