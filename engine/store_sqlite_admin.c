/* store_sqlite_admin.c — the SQLite backend's administrative tables:
 * feature flags (audited in the flag's own transaction), API tokens,
 * browser sessions (capped per token, swept when expired), approvals
 * (scaling_approvals), and the audit log's export and explicit prune. Shares the pool and statement helpers
 * of store_sqlite.c through store_sqlite_int.h. */
#include "store_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- identity --------------------------------------------------------------- */

static void sq_read_identity(sqlite3_stmt *st, void *elem) {
    util_copy(elem, STORE_IDENTITY_MAX + 1, sq_text(st, 0));
}

int sq_identity(void *h, char out[STORE_IDENTITY_MAX + 1]) {
    return sq_row(h, NULL, "SELECT id FROM store_identity WHERE one = 1", "identity",
                  sq_read_identity, out, SQ_NO_ARGS);
}

/* ---- flags ------------------------------------------------------------------ */

static void sq_read_flag(sqlite3_stmt *st, void *elem) {
    struct store_flag *f = elem;
    util_copy(f->name, sizeof f->name, sq_text(st, 0));
    f->enabled = sqlite3_column_int(st, 1);
    util_copy(f->updated_by, sizeof f->updated_by, sq_text(st, 2));
    f->updated_at_ms = sqlite3_column_int64(st, 3);
    util_copy(f->reason, sizeof f->reason, sq_text(st, 4));
}

/* On tx, or a pooled connection of s when tx is NULL. */
static int sq_get_flag_on(struct sq_store *s, struct sq_conn *tx, const char *env, const char *name,
                          struct store_flag *out) {
    return sq_row(s, tx, "SELECT name, enabled, updated_by, updated_at, reason FROM feature_flags"
                         " WHERE environment = ? AND name = ?", "get_flag", sq_read_flag, out,
                  SQ_ARGS(SQ_TEXT(env), SQ_TEXT(name)));
}

int sq_get_flag(void *h, const char *env, const char *name, struct store_flag *out) {
    return sq_get_flag_on(h, NULL, env, name, out);
}

int sq_tx_get_flag(void *tx, const char *env, const char *name, struct store_flag *out) {
    return sq_get_flag_on(NULL, tx, env, name, out);
}

int sq_tx_write_flag(void *tx, const char *env, const struct store_flag *f) {
    return sq_run(NULL, tx, "INSERT INTO feature_flags (environment, name, enabled, updated_by,"
                            " updated_at, reason) VALUES (?, ?, ?, ?, ?, ?)"
                            " ON CONFLICT (environment, name) DO UPDATE SET enabled = excluded.enabled,"
                            " updated_by = excluded.updated_by, updated_at = excluded.updated_at,"
                            " reason = excluded.reason", "set_flag",
                  SQ_ARGS(SQ_TEXT(env), SQ_TEXT(f->name), SQ_INT(f->enabled != 0),
                          SQ_TEXT(f->updated_by), SQ_INT(f->updated_at_ms), SQ_TEXT(f->reason)));
}

/* ---- tokens ----------------------------------------------------------------- */

int sq_put_token(void *h, const struct store_token *t) {
    return sq_run(h, NULL, "INSERT INTO api_tokens (id, name, secret_hash, scopes, created_at,"
                           " expires_at, queues) VALUES (?, ?, ?, ?, ?, ?, ?)", "put_token",
                  SQ_ARGS(SQ_TEXT(t->id), SQ_TEXT(t->name), SQ_TEXT(t->secret_hash),
                          SQ_TEXT(t->scopes), SQ_INT(t->created_ms), SQ_OPT(t->expires_ms),
                          SQ_TEXT(t->queues[0] ? t->queues : NULL)));
}

#define SQ_TOKEN_COLS "id, name, secret_hash, scopes, created_at, COALESCE(expires_at, 0)," \
                      " COALESCE(revoked_at, 0), COALESCE(queues, '')"

static void sq_read_token(sqlite3_stmt *st, void *elem) {
    struct store_token *t = elem;
    util_copy(t->id, sizeof t->id, sq_text(st, 0));
    util_copy(t->name, sizeof t->name, sq_text(st, 1));
    util_copy(t->secret_hash, sizeof t->secret_hash, sq_text(st, 2));
    util_copy(t->scopes, sizeof t->scopes, sq_text(st, 3));
    t->created_ms = sqlite3_column_int64(st, 4);
    t->expires_ms = sqlite3_column_int64(st, 5);
    t->revoked_ms = sqlite3_column_int64(st, 6);
    util_copy(t->queues, sizeof t->queues, sq_text(st, 7));
}

int sq_get_token(void *h, const char *id, struct store_token *out) {
    return sq_row(h, NULL, "SELECT " SQ_TOKEN_COLS " FROM api_tokens WHERE id = ?", "get_token",
                  sq_read_token, out, SQ_ARGS(SQ_TEXT(id)));
}

int sq_list_tokens(void *h, struct store_token **out, size_t *n) {
    return sq_collect(h, NULL, "SELECT " SQ_TOKEN_COLS " FROM api_tokens ORDER BY created_at, id",
                      "list_tokens", sizeof **out, sq_read_token, (void **)out, n, SQ_NO_ARGS);
}

/* Revoking also ends the token's sessions. */
int sq_revoke_token(void *h, const char *id, int64_t now_ms) {
    struct sq_conn *c = sq_acquire(h);
    if (c == NULL) return STORE_UNAVAILABLE;
    int rc = sq_run(NULL, c, "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                    "revoke_token", SQ_ARGS(SQ_INT(now_ms), SQ_TEXT(id)));
    if (rc == STORE_OK && sqlite3_changes(c->db) == 0) rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = sq_run(NULL, c, "DELETE FROM api_sessions WHERE token_id = ?", "revoke_token",
                    SQ_ARGS(SQ_TEXT(id)));
    return sq_write_done(c, rc);
}

/* ---- sessions ----------------------------------------------------------------- */

/* The statements of a login, inside the caller's BEGIN IMMEDIATE. */
static int sq_put_session_on(struct sq_conn *c, const struct store_session *x, int max_per_token) {
    /* Sweep expired sessions on the way in, so the table stays small. */
    int rc = sq_run(NULL, c, "DELETE FROM api_sessions WHERE expires_at < ?", "put_session",
                    SQ_ARGS(SQ_INT(x->created_ms)));
    if (rc == STORE_OK)
        rc = sq_run(NULL, c, "INSERT INTO api_sessions (id_hash, token_id, csrf_token, created_at,"
                             " expires_at) VALUES (?, ?, ?, ?, ?)", "put_session",
                    SQ_ARGS(SQ_TEXT(x->id_hash), SQ_TEXT(x->token_id), SQ_TEXT(x->csrf),
                            SQ_INT(x->created_ms), SQ_INT(x->expires_ms)));
    /* Rowids grow with each insert, so the new session is the newest
     * whatever the clock says: the oldest of the token go first. */
    if (rc == STORE_OK && max_per_token > 0)
        rc = sq_run(NULL, c, "DELETE FROM api_sessions WHERE token_id = ?1 AND rowid NOT IN"
                             " (SELECT rowid FROM api_sessions WHERE token_id = ?1"
                             " ORDER BY rowid DESC LIMIT ?2)", "put_session",
                    SQ_ARGS(SQ_TEXT(x->token_id), SQ_INT(max_per_token)));
    return rc;
}

int sq_put_session(void *h, const struct store_session *x, int max_per_token) {
    struct sq_conn *c = sq_acquire(h);
    if (c == NULL) return STORE_UNAVAILABLE;
    int rc = sq_exec(c->db, "BEGIN IMMEDIATE");
    if (rc == STORE_OK) rc = sq_put_session_on(c, x, max_per_token);
    if (rc == STORE_OK) rc = sq_exec(c->db, "COMMIT");
    return sq_write_done(c, rc);              /* rolls back what did not commit */
}

int sq_sweep_sessions(void *h, int64_t now_ms, int64_t *deleted) {
    struct sq_conn *c = sq_acquire(h);
    *deleted = 0;
    if (c == NULL) return STORE_UNAVAILABLE;
    int rc = sq_run(NULL, c, "DELETE FROM api_sessions WHERE expires_at <= ?", "sweep_sessions",
                    SQ_ARGS(SQ_INT(now_ms)));
    if (rc == STORE_OK) *deleted = sqlite3_changes(c->db);
    return sq_write_done(c, rc);
}

static void sq_read_session(sqlite3_stmt *st, void *elem) {
    struct store_session *x = elem;
    util_copy(x->id_hash, sizeof x->id_hash, sq_text(st, 0));
    util_copy(x->token_id, sizeof x->token_id, sq_text(st, 1));
    util_copy(x->csrf, sizeof x->csrf, sq_text(st, 2));
    x->created_ms = sqlite3_column_int64(st, 3);
    x->expires_ms = sqlite3_column_int64(st, 4);
}

int sq_get_session(void *h, const char *id_hash, struct store_session *out) {
    return sq_row(h, NULL, "SELECT id_hash, token_id, csrf_token, created_at, expires_at"
                           " FROM api_sessions WHERE id_hash = ?", "get_session",
                  sq_read_session, out, SQ_ARGS(SQ_TEXT(id_hash)));
}

int sq_delete_session(void *h, const char *id_hash) {
    return sq_run(h, NULL, "DELETE FROM api_sessions WHERE id_hash = ?", "delete_session",
                  SQ_ARGS(SQ_TEXT(id_hash)));
}

/* ---- the audit log's export and prune ----------------------------------------- */

int sq_list_audit_oldest(void *h, int64_t after_id, int64_t before_id, int limit,
                         struct store_audit **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;           /* SQLite reads LIMIT -1 as no limit */
    return sq_collect(h, NULL, "SELECT " SQ_AUDIT_COLS " FROM scaling_audit WHERE id > ?1"
                               " AND (?2 = 0 OR id < ?2) ORDER BY id LIMIT ?3",
                      "list_audit_oldest", sizeof **out, sq_read_audit, (void **)out, n,
                      SQ_ARGS(SQ_INT(after_id), SQ_INT(before_id), SQ_INT(limit)));
}

/* The first audit id at or after at_ms (one past the last when none is):
 * on tx, or a pooled connection of s when tx is NULL. */
static int sq_bound_at(struct sq_store *s, struct sq_conn *tx, int64_t at_ms, int64_t *before_id) {
    return sq_int(s, tx, "SELECT COALESCE((SELECT MIN(id) FROM scaling_audit WHERE at >= ?1),"
                         " (SELECT COALESCE(MAX(id), 0) + 1 FROM scaling_audit))", "audit_bound_at",
                  before_id, SQ_ARGS(SQ_INT(at_ms)));
}

int sq_audit_bound_at(void *h, int64_t at_ms, int64_t *before_id) {
    return sq_bound_at(h, NULL, at_ms, before_id);
}

/* The deletes of a prune, through the append-only guard: the trigger lets a
 * delete through only while audit_prune_permit holds a row that covers it,
 * and that row lives only inside this transaction. Entries of earlier
 * prunes are never deleted. */
static int sq_prune_delete(struct sq_conn *c, int64_t before_id, int64_t *deleted) {
    int rc = sq_run(NULL, c, "INSERT INTO audit_prune_permit (one, before_id) VALUES (1, ?)", "prune",
                    SQ_ARGS(SQ_INT(before_id)));
    if (rc == STORE_OK)
        rc = sq_run(NULL, c, "DELETE FROM scaling_audit WHERE id < ? AND kind <> 'audit'", "prune",
                    SQ_ARGS(SQ_INT(before_id)));
    if (rc != STORE_OK) return rc;
    *deleted = sqlite3_changes(c->db);
    return sq_exec(c->db, "DELETE FROM audit_prune_permit");
}

/* What a prune would delete below out->before_id: how many entries, and the
 * youngest of them. */
static int sq_prune_survey(struct sq_conn *c, struct store_prune_result *out, int64_t *count) {
    int rc = sq_int(NULL, c, "SELECT COUNT(*) FROM scaling_audit WHERE id < ?1 AND kind <> 'audit'",
                    "prune", count, SQ_ARGS(SQ_INT(out->before_id)));
    if (rc == STORE_OK)
        rc = sq_int(NULL, c, "SELECT COALESCE(MAX(at), 0) FROM scaling_audit"
                             " WHERE id < ?1 AND kind <> 'audit'",
                    "prune", &out->youngest_ms, SQ_ARGS(SQ_INT(out->before_id)));
    return rc;
}

int sq_prune_audit(void *h, const struct store_prune *p, struct store_prune_result *out) {
    int64_t count = 0;
    struct sq_conn *c = sq_acquire(h);
    int rc;

    memset(out, 0, sizeof *out);
    if (c == NULL) return STORE_UNAVAILABLE;
    if ((rc = sq_exec(c->db, "BEGIN IMMEDIATE")) != STORE_OK) goto done;
    out->before_id = p->before_id;
    if (out->before_id == 0 && (rc = sq_bound_at(NULL, c, p->before_at_ms, &out->before_id)) != STORE_OK)
        goto done;
    if ((rc = sq_prune_survey(c, out, &count)) != STORE_OK) goto done;
    if (count > 0 && p->keep_after_ms > 0 && out->youngest_ms >= p->keep_after_ms) {
        out->refused = 1;
        goto done;                            /* rolled back below: nothing written */
    }
    if ((rc = sq_prune_delete(c, out->before_id, &out->deleted)) != STORE_OK) goto done;
    store_prune_audit_entry(&out->entry, p, out->deleted, out->before_id);
    if ((rc = sq_insert_audit(c, &out->entry)) != STORE_OK) goto done;
    rc = sq_exec(c->db, "COMMIT");
done:
    return sq_write_done(c, rc);              /* rolls back what did not commit */
}

/* ---- approvals ---------------------------------------------------------------- */

#define SQ_APPROVAL_COLS "id, queue, from_value, desired, duration_s, from_version, reason," \
    " requested_by, requester_token, source, request_id, status, decided_by, decided_at," \
    " decision_reason, result, result_code, created_at, expires_at"

static void sq_read_approval(sqlite3_stmt *st, void *elem) {
    struct store_approval *a = elem;
    memset(a, 0, sizeof *a);
    util_copy(a->id, sizeof a->id, sq_text(st, 0));
    util_copy(a->queue, sizeof a->queue, sq_text(st, 1));
    a->from = sqlite3_column_int64(st, 2);
    a->desired = sqlite3_column_int64(st, 3);
    a->duration_s = sqlite3_column_int64(st, 4);
    a->from_version = sqlite3_column_int64(st, 5);
    util_copy(a->reason, sizeof a->reason, sq_text(st, 6));
    util_copy(a->requested_by, sizeof a->requested_by, sq_text(st, 7));
    util_copy(a->requester_token, sizeof a->requester_token, sq_text(st, 8));
    util_copy(a->source, sizeof a->source, sq_text(st, 9));
    util_copy(a->request_id, sizeof a->request_id, sq_text(st, 10));
    util_copy(a->status, sizeof a->status, sq_text(st, 11));
    util_copy(a->decided_by, sizeof a->decided_by, sq_text(st, 12));
    a->decided_at_ms = sqlite3_column_int64(st, 13);
    util_copy(a->decision_reason, sizeof a->decision_reason, sq_text(st, 14));
    util_copy(a->result, sizeof a->result, sq_text(st, 15));
    util_copy(a->result_code, sizeof a->result_code, sq_text(st, 16));
    a->created_at_ms = sqlite3_column_int64(st, 17);
    a->expires_at_ms = sqlite3_column_int64(st, 18);
}

int sq_tx_get_approval(void *tx, const char *id, struct store_approval *out) {
    return sq_row(NULL, tx, "SELECT " SQ_APPROVAL_COLS " FROM scaling_approvals WHERE id = ?",
                  "get_approval", sq_read_approval, out, SQ_ARGS(SQ_TEXT(id)));
}

int sq_tx_pending_approval(void *tx, const char *queue, struct store_approval *out) {
    return sq_row(NULL, tx, "SELECT " SQ_APPROVAL_COLS " FROM scaling_approvals"
                            " WHERE queue = ? AND status = 'pending'",
                  "pending_approval", sq_read_approval, out, SQ_ARGS(SQ_TEXT(queue)));
}

int sq_tx_insert_approval(void *tx, const struct store_approval *a) {
    return sq_run(NULL, tx, "INSERT INTO scaling_approvals (id, queue, from_value, desired, duration_s,"
                            " from_version, reason, requested_by, requester_token, source, request_id,"
                            " status, created_at, expires_at)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "insert_approval",
                  SQ_ARGS(SQ_TEXT(a->id), SQ_TEXT(a->queue), SQ_INT(a->from), SQ_INT(a->desired),
                          SQ_INT(a->duration_s), SQ_OPT(a->from_version), SQ_TEXT(a->reason),
                          SQ_TEXT(a->requested_by),
                          SQ_TEXT(a->requester_token[0] ? a->requester_token : NULL),
                          SQ_TEXT(a->source), SQ_TEXT(a->request_id), SQ_TEXT(a->status),
                          SQ_INT(a->created_at_ms), SQ_INT(a->expires_at_ms)));
}

int sq_tx_update_approval(void *tx, const struct store_approval *a) {
    return sq_run(NULL, tx, "UPDATE scaling_approvals SET status = ?, decided_by = ?, decided_at = ?,"
                            " decision_reason = ?, result = ?, result_code = ? WHERE id = ?",
                  "update_approval",
                  SQ_ARGS(SQ_TEXT(a->status), SQ_TEXT(a->decided_by[0] ? a->decided_by : NULL),
                          SQ_OPT(a->decided_at_ms),
                          SQ_TEXT(a->decided_at_ms ? a->decision_reason : NULL),
                          SQ_TEXT(a->result[0] ? a->result : NULL),
                          SQ_TEXT(a->result_code[0] ? a->result_code : NULL), SQ_TEXT(a->id)));
}

int sq_list_approvals(void *h, const char *status, const char *queue, int limit,
                      struct store_approval **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit < 1) return STORE_OK;
    return sq_collect(h, NULL, "SELECT " SQ_APPROVAL_COLS " FROM scaling_approvals"
                               " WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR queue = ?2)"
                               " ORDER BY created_at DESC, id LIMIT ?3",
                      "list_approvals", sizeof **out, sq_read_approval, (void **)out, n,
                      SQ_ARGS(SQ_TEXT(status), SQ_TEXT(queue), SQ_INT(limit)));
}
