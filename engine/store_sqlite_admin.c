/* store_sqlite_admin.c — the SQLite backend's administrative tables:
 * feature flags (audited in the flag's own transaction), API tokens,
 * browser sessions (capped per token, swept when expired), and the audit
 * log's export and explicit prune. Shares the pool and helpers of
 * store_sqlite.c through store_sqlite_int.h. */
#include "store_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- identity --------------------------------------------------------------- */

int sq_identity(void *h, char out[STORE_IDENTITY_MAX + 1]) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc, step;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "SELECT id FROM store_identity WHERE one = 1", st, "identity");
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        util_copy(out, STORE_IDENTITY_MAX + 1, sq_text(st, 0));
        rc = STORE_OK;
    } else {
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : sq_fail(db, step, "identity");
    }
done:
    sqlite3_finalize(st);
    sq_release(s, slot);
    return rc;
}

/* ---- flags ------------------------------------------------------------------ */

/* The flag's row on db (a transaction's, or a pooled connection's). */
static int sq_get_flag_on(sqlite3 *db, const char *env, const char *name, struct store_flag *out) {
    sqlite3_stmt *st = NULL;
    int rc, step;
    SQ_PREPARE(db, "SELECT name, enabled, updated_by, updated_at, reason FROM feature_flags"
                   " WHERE environment = ? AND name = ?", st, "get_flag");
    sq_bind_text(st, 1, env);
    sq_bind_text(st, 2, name);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        util_copy(out->name, sizeof out->name, sq_text(st, 0));
        out->enabled = sqlite3_column_int(st, 1);
        util_copy(out->updated_by, sizeof out->updated_by, sq_text(st, 2));
        out->updated_at_ms = sqlite3_column_int64(st, 3);
        util_copy(out->reason, sizeof out->reason, sq_text(st, 4));
        rc = STORE_OK;
    } else {
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : sq_fail(db, step, "get_flag");
    }
done:
    sqlite3_finalize(st);
    return rc;
}

int sq_get_flag(void *h, const char *env, const char *name, struct store_flag *out) {
    struct sq_store *s = h;
    int slot;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    int rc = sq_get_flag_on(db, env, name, out);
    sq_release(s, slot);
    return rc;
}

int sq_tx_get_flag(void *tx, const char *env, const char *name, struct store_flag *out) {
    return sq_get_flag_on(((struct sq_tx *)tx)->db, env, name, out);
}

int sq_tx_write_flag(void *tx, const char *env, const struct store_flag *f) {
    sqlite3 *db = ((struct sq_tx *)tx)->db;
    sqlite3_stmt *st = NULL;
    int rc;
    SQ_PREPARE(db, "INSERT INTO feature_flags (environment, name, enabled, updated_by,"
                   " updated_at, reason) VALUES (?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT (environment, name) DO UPDATE SET enabled = excluded.enabled,"
                   " updated_by = excluded.updated_by, updated_at = excluded.updated_at,"
                   " reason = excluded.reason", st, "set_flag");
    sq_bind_text(st, 1, env);
    sq_bind_text(st, 2, f->name);
    sqlite3_bind_int(st, 3, f->enabled != 0);
    sq_bind_text(st, 4, f->updated_by);
    sqlite3_bind_int64(st, 5, f->updated_at_ms);
    sq_bind_text(st, 6, f->reason);
    rc = sq_step_done(db, st, "set_flag");
done:
    return rc;
}

/* ---- tokens and sessions ------------------------------------------------------ */

int sq_put_token(void *h, const struct store_token *t) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "INSERT INTO api_tokens (id, name, secret_hash, scopes, created_at,"
                   " expires_at) VALUES (?, ?, ?, ?, ?, ?)", st, "put_token");
    sq_bind_text(st, 1, t->id);
    sq_bind_text(st, 2, t->name);
    sq_bind_text(st, 3, t->secret_hash);
    sq_bind_text(st, 4, t->scopes);
    sqlite3_bind_int64(st, 5, t->created_ms);
    sq_bind_opt_int(st, 6, t->expires_ms);
    rc = sq_step_done(db, st, "put_token");
done:
    return sq_write_done(s, db, slot, rc);
}

#define SQ_TOKEN_COLS "id, name, secret_hash, scopes, created_at, COALESCE(expires_at, 0)," \
                      " COALESCE(revoked_at, 0)"

static void sq_read_token(sqlite3_stmt *st, struct store_token *t) {
    util_copy(t->id, sizeof t->id, sq_text(st, 0));
    util_copy(t->name, sizeof t->name, sq_text(st, 1));
    util_copy(t->secret_hash, sizeof t->secret_hash, sq_text(st, 2));
    util_copy(t->scopes, sizeof t->scopes, sq_text(st, 3));
    t->created_ms = sqlite3_column_int64(st, 4);
    t->expires_ms = sqlite3_column_int64(st, 5);
    t->revoked_ms = sqlite3_column_int64(st, 6);
}

int sq_get_token(void *h, const char *id, struct store_token *out) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc, step;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "SELECT " SQ_TOKEN_COLS " FROM api_tokens WHERE id = ?", st, "get_token");
    sq_bind_text(st, 1, id);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        sq_read_token(st, out);
        rc = STORE_OK;
    } else {
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : sq_fail(db, step, "get_token");
    }
done:
    sqlite3_finalize(st);
    sq_release(s, slot);
    return rc;
}

static void sq_read_token_elem(sqlite3_stmt *st, void *elem) { sq_read_token(st, elem); }

int sq_list_tokens(void *h, struct store_token **out, size_t *n) {
    return sq_collect(h, "SELECT " SQ_TOKEN_COLS " FROM api_tokens ORDER BY created_at, id",
                      sizeof **out, sq_read_token_elem, (void **)out, n);
}

int sq_revoke_token(void *h, const char *id, int64_t now_ms) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
               st, "revoke_token");
    sqlite3_bind_int64(st, 1, now_ms);
    sq_bind_text(st, 2, id);
    rc = sq_step_done(db, st, "revoke_token");
    if (rc == STORE_OK && sqlite3_changes(db) == 0) rc = STORE_NOT_FOUND;
    if (rc == STORE_OK) {
        st = NULL;
        SQ_PREPARE(db, "DELETE FROM api_sessions WHERE token_id = ?", st, "revoke_token");
        sq_bind_text(st, 1, id);
        rc = sq_step_done(db, st, "revoke_token");
    }
done:
    return sq_write_done(s, db, slot, rc);
}

int sq_put_session(void *h, const struct store_session *x, int max_per_token) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc, in_tx = 0;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    if ((rc = sq_exec(db, "BEGIN IMMEDIATE")) != STORE_OK) goto done;
    in_tx = 1;
    /* Sweep expired sessions on the way in, so the table stays small. */
    SQ_PREPARE(db, "DELETE FROM api_sessions WHERE expires_at < ?", st, "put_session");
    sqlite3_bind_int64(st, 1, x->created_ms);
    if ((rc = sq_step_done(db, st, "put_session")) != STORE_OK) goto done;
    SQ_PREPARE(db, "INSERT INTO api_sessions (id_hash, token_id, csrf_token, created_at,"
                   " expires_at) VALUES (?, ?, ?, ?, ?)", st, "put_session");
    sq_bind_text(st, 1, x->id_hash);
    sq_bind_text(st, 2, x->token_id);
    sq_bind_text(st, 3, x->csrf);
    sqlite3_bind_int64(st, 4, x->created_ms);
    sqlite3_bind_int64(st, 5, x->expires_ms);
    if ((rc = sq_step_done(db, st, "put_session")) != STORE_OK) goto done;
    if (max_per_token > 0) {
        /* Rowids grow with each insert, so the new session is the newest
         * whatever the clock says: the oldest of the token go first. */
        SQ_PREPARE(db, "DELETE FROM api_sessions WHERE token_id = ?1 AND rowid NOT IN"
                       " (SELECT rowid FROM api_sessions WHERE token_id = ?1"
                       " ORDER BY rowid DESC LIMIT ?2)", st, "put_session");
        sq_bind_text(st, 1, x->token_id);
        sqlite3_bind_int(st, 2, max_per_token);
        if ((rc = sq_step_done(db, st, "put_session")) != STORE_OK) goto done;
    }
    if ((rc = sq_exec(db, "COMMIT")) == STORE_OK) in_tx = 0;
done:
    if (in_tx) sq_rollback(db);
    return sq_write_done(s, db, slot, rc);
}

int sq_sweep_sessions(void *h, int64_t now_ms, int64_t *deleted) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc;
    sqlite3 *db = sq_acquire(s, &slot);
    *deleted = 0;
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "DELETE FROM api_sessions WHERE expires_at <= ?", st, "sweep_sessions");
    sqlite3_bind_int64(st, 1, now_ms);
    rc = sq_step_done(db, st, "sweep_sessions");
    if (rc == STORE_OK) *deleted = sqlite3_changes(db);
done:
    return sq_write_done(s, db, slot, rc);
}

int sq_get_session(void *h, const char *id_hash, struct store_session *out) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc, step;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "SELECT id_hash, token_id, csrf_token, created_at, expires_at"
                   " FROM api_sessions WHERE id_hash = ?", st, "get_session");
    sq_bind_text(st, 1, id_hash);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        util_copy(out->id_hash, sizeof out->id_hash, sq_text(st, 0));
        util_copy(out->token_id, sizeof out->token_id, sq_text(st, 1));
        util_copy(out->csrf, sizeof out->csrf, sq_text(st, 2));
        out->created_ms = sqlite3_column_int64(st, 3);
        out->expires_ms = sqlite3_column_int64(st, 4);
        rc = STORE_OK;
    } else {
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : sq_fail(db, step, "get_session");
    }
done:
    sqlite3_finalize(st);
    sq_release(s, slot);
    return rc;
}

int sq_delete_session(void *h, const char *id_hash) {
    struct sq_store *s = h;
    sqlite3_stmt *st = NULL;
    int slot, rc;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    SQ_PREPARE(db, "DELETE FROM api_sessions WHERE id_hash = ?", st, "delete_session");
    sq_bind_text(st, 1, id_hash);
    rc = sq_step_done(db, st, "delete_session");
done:
    return sq_write_done(s, db, slot, rc);
}

/* ---- the audit log's export and prune ----------------------------------------- */

int sq_list_audit_oldest(void *h, int64_t after_id, int64_t before_id, int limit,
                         struct store_audit **out, size_t *n) {
    struct sq_store *s = h;
    int slot, rc = STORE_OK, step = SQLITE_DONE;
    size_t len = 0;
    struct store_audit *items = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;

    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;
    if ((items = calloc((size_t)limit, sizeof *items)) == NULL) return STORE_FAILED;
    if ((db = sq_acquire(s, &slot)) == NULL) {
        free(items);
        return STORE_UNAVAILABLE;
    }
    SQ_PREPARE(db, "SELECT " SQ_AUDIT_COLS " FROM scaling_audit WHERE id > ?1"
                   " AND (?2 = 0 OR id < ?2) ORDER BY id LIMIT ?3", st, "list_audit_oldest");
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, before_id);
    sqlite3_bind_int(st, 3, limit);
    while (len < (size_t)limit && (step = sqlite3_step(st)) == SQLITE_ROW)
        sq_read_audit(st, &items[len++]);
    if (len < (size_t)limit && step != SQLITE_DONE) rc = sq_fail(db, step, "list_audit_oldest");
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

#define SQ_BOUND_AT "SELECT COALESCE((SELECT MIN(id) FROM scaling_audit WHERE at >= ?1)," \
                    " (SELECT COALESCE(MAX(id), 0) + 1 FROM scaling_audit))"

/* One integer from a query with ?1 and ?2 bound (absent parameters stay NULL). */
static int sq_one_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t *out,
                      const char *what) {
    sqlite3_stmt *st = NULL;
    int rc = STORE_OK, step;
    SQ_PREPARE(db, sql, st, what);
    if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, b);
    if ((step = sqlite3_step(st)) != SQLITE_ROW) rc = sq_fail(db, step, what);
    else *out = sqlite3_column_int64(st, 0);
done:
    sqlite3_finalize(st);
    return rc;
}

int sq_audit_bound_at(void *h, int64_t at_ms, int64_t *before_id) {
    struct sq_store *s = h;
    int slot;
    sqlite3 *db = sq_acquire(s, &slot);
    if (db == NULL) return STORE_UNAVAILABLE;
    int rc = sq_one_int(db, SQ_BOUND_AT, at_ms, 0, before_id, "audit_bound_at");
    sq_release(s, slot);
    return rc;
}

/* The deletes of a prune, through the append-only guard: the trigger lets a
 * delete through only while audit_prune_permit holds a row that covers it,
 * and that row lives only inside this transaction. Entries of earlier
 * prunes are never deleted. */
static int sq_prune_delete(sqlite3 *db, int64_t before_id, int64_t *deleted) {
    sqlite3_stmt *st = NULL;
    int rc;
    SQ_PREPARE(db, "INSERT INTO audit_prune_permit (one, before_id) VALUES (1, ?)", st, "prune");
    sqlite3_bind_int64(st, 1, before_id);
    if ((rc = sq_step_done(db, st, "prune")) != STORE_OK) goto done;
    SQ_PREPARE(db, "DELETE FROM scaling_audit WHERE id < ? AND kind <> 'audit'", st, "prune");
    sqlite3_bind_int64(st, 1, before_id);
    if ((rc = sq_step_done(db, st, "prune")) != STORE_OK) goto done;
    *deleted = sqlite3_changes(db);
    rc = sq_exec(db, "DELETE FROM audit_prune_permit");
done:
    return rc;
}

int sq_prune_audit(void *h, const struct store_prune *p, struct store_prune_result *out) {
    struct sq_store *s = h;
    int slot, rc, in_tx = 0;
    int64_t count = 0;
    sqlite3 *db = sq_acquire(s, &slot);

    memset(out, 0, sizeof *out);
    if (db == NULL) return STORE_UNAVAILABLE;
    if ((rc = sq_exec(db, "BEGIN IMMEDIATE")) != STORE_OK) goto done;
    in_tx = 1;
    out->before_id = p->before_id;
    if (out->before_id == 0 &&
        (rc = sq_one_int(db, SQ_BOUND_AT, p->before_at_ms, 0, &out->before_id, "prune")) != STORE_OK)
        goto done;
    if ((rc = sq_one_int(db, "SELECT COUNT(*) FROM scaling_audit WHERE id < ?1 AND kind <> 'audit'",
                         out->before_id, 0, &count, "prune")) != STORE_OK ||
        (rc = sq_one_int(db, "SELECT COALESCE(MAX(at), 0) FROM scaling_audit"
                             " WHERE id < ?1 AND kind <> 'audit'",
                         out->before_id, 0, &out->youngest_ms, "prune")) != STORE_OK)
        goto done;
    if (count > 0 && p->keep_after_ms > 0 && out->youngest_ms >= p->keep_after_ms) {
        out->refused = 1;
        goto done;                            /* rolled back below: nothing written */
    }
    if ((rc = sq_prune_delete(db, out->before_id, &out->deleted)) != STORE_OK) goto done;
    store_prune_audit_entry(&out->entry, p, out->deleted, out->before_id);
    if ((rc = sq_insert_audit(db, &out->entry)) != STORE_OK) goto done;
    if ((rc = sq_exec(db, "COMMIT")) == STORE_OK) in_tx = 0;
done:
    if (in_tx) sq_rollback(db);
    return sq_write_done(s, db, slot, rc);
}
