/* store_pg_admin.c — the PostgreSQL backend's administrative tables:
 * feature flags (audited in the flag's own transaction), API tokens,
 * browser sessions (capped per token, swept when expired), approvals
 * (scaling_approvals), and the audit log's export and explicit prune. Shares the pool and helpers of
 * store_pg.c through store_pg_int.h. */
#include "store_pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the audit log's export and prune ------------------------------------------------ */

int pg_list_audit_oldest(void *h, int64_t after_id, int64_t before_id, int limit,
                         struct store_audit **out, size_t *n) {
    char a[24], b[24], l[24];
    const char *pv[3] = {I64(a, after_id), I64(b, before_id), I64(l, limit)};
    return pg_collect(h, NULL, "SELECT " PG_AUDIT_COLS " FROM scaling_audit WHERE id > $1::bigint"
                               " AND ($2::bigint = 0 OR id < $2::bigint) ORDER BY id LIMIT $3::int",
                      3, pv, sizeof **out, pg_read_audit, (void **)out, n);
}

#define PG_BOUND_AT "SELECT COALESCE((SELECT MIN(id) FROM scaling_audit WHERE at >= $1::bigint)," \
                    " (SELECT COALESCE(MAX(id), 0) + 1 FROM scaling_audit))"

/* The first column of the first row of a query, as an integer. */
static int pg_one_int(struct pg_slot *p, const char *sql, int n, const char *const *pv, int64_t *out,
                      const char *what) {
    int rc;
    PGresult *r = pg_run(p, sql, n, pv, what, &rc);
    if (r && PQntuples(r) > 0) *out = pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

int pg_audit_bound_at(void *h, int64_t at_ms, int64_t *before_id) {
    struct pg_store *s = h;
    char a[24];
    const char *pv[1] = {I64(a, at_ms)};
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    int rc = pg_one_int(p, PG_BOUND_AT, 1, pv, before_id, "audit_bound_at");
    pg_release(s, p);
    return rc;
}

/* The deletes of a prune, through the append-only guard: the trigger lets a
 * delete through only while audit_prune_permit holds a row that covers it,
 * and that row lives only inside this transaction. Entries of earlier
 * prunes are never deleted. */
static int pg_prune_delete(struct pg_slot *p, int64_t before_id, int64_t *deleted) {
    char b[24];
    int rc;
    const char *pv[1] = {I64(b, before_id)};
    PQclear(pg_run(p, "INSERT INTO audit_prune_permit (one, before_id) VALUES (1, $1::bigint)", 1, pv, "prune",
                   &rc));
    if (rc != STORE_OK) return rc;
    PGresult *r = pg_run(p, "DELETE FROM scaling_audit WHERE id < $1::bigint AND kind <> 'audit'", 1, pv, "prune",
                         &rc);
    if (r) *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (rc != STORE_OK) return rc;
    return pg_exec(p, "DELETE FROM audit_prune_permit", "prune");
}

int pg_prune_audit(void *h, const struct store_prune *pr, struct store_prune_result *out) {
    struct pg_store *s = h;
    char a[24], b[24];
    const char *at[1] = {I64(a, pr->before_at_ms)}, *bv[1] = {b};
    int64_t count = 0;
    int rc;
    struct pg_slot *p = pg_acquire(s);

    memset(out, 0, sizeof *out);
    if (p == NULL) return STORE_UNAVAILABLE;
    /* A big prune takes as long as it takes: the timeouts meant for changes
     * do not apply to it (SET LOCAL ends with the transaction). Changes
     * keep going meanwhile: they only insert, and the prune only deletes. */
    if ((rc = pg_exec(p, "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0", "prune")) != STORE_OK)
        goto done;
    out->before_id = pr->before_id;
    if (out->before_id == 0 && (rc = pg_one_int(p, PG_BOUND_AT, 1, at, &out->before_id, "prune")) != STORE_OK)
        goto done;
    snprintf(b, sizeof b, "%lld", (long long)out->before_id);
    if ((rc = pg_one_int(p, "SELECT COUNT(*) FROM scaling_audit WHERE id < $1::bigint AND kind <> 'audit'", 1,
                         bv, &count, "prune")) != STORE_OK ||
        (rc = pg_one_int(p, "SELECT COALESCE(MAX(at), 0) FROM scaling_audit WHERE id < $1::bigint"
                            " AND kind <> 'audit'", 1, bv, &out->youngest_ms, "prune")) != STORE_OK)
        goto done;
    if (count > 0 && pr->keep_after_ms > 0 && out->youngest_ms >= pr->keep_after_ms) {
        out->refused = 1;
        goto done;                            /* rolled back by pg_release: nothing written */
    }
    if ((rc = pg_prune_delete(p, out->before_id, &out->deleted)) != STORE_OK) goto done;
    store_prune_audit_entry(&out->entry, pr, out->deleted, out->before_id);
    if ((rc = pg_insert_audit(p, &out->entry)) != STORE_OK) goto done;
    rc = pg_exec(p, "COMMIT", "prune");
done:
    pg_release(s, p);
    return rc;
}

/* ---- flags, tokens, sessions ----------------------------------------------------------------- */

static int pg_simple(struct pg_store *s, const char *sql, int n, const char *const *pv, const char *what,
                     int *affected) {
    int rc;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    PGresult *r = pg_run(p, sql, n, pv, what, &rc);
    if (r && affected) *affected = atoi(PQcmdTuples(r));
    PQclear(r);
    pg_release(s, p);
    return rc;
}

static void pg_read_identity(PGresult *r, int row, void *elem) {
    util_copy(elem, STORE_IDENTITY_MAX + 1, pg_text(r, row, 0));
}

int pg_identity(void *h, char out[STORE_IDENTITY_MAX + 1]) {
    return pg_row(h, NULL, "SELECT id FROM store_identity WHERE one = 1", "identity", 0, NULL,
                  pg_read_identity, out);
}

static void pg_read_flag(PGresult *r, int row, void *elem) {
    struct store_flag *f = elem;
    util_copy(f->name, sizeof f->name, pg_text(r, row, 0));
    f->enabled = (int)pg_int(r, row, 1);
    util_copy(f->updated_by, sizeof f->updated_by, pg_text(r, row, 2));
    f->updated_at_ms = pg_int(r, row, 3);
    util_copy(f->reason, sizeof f->reason, pg_text(r, row, 4));
}

/* On tx, or a pooled connection of s when tx is NULL. */
static int pg_get_flag_on(struct pg_store *s, struct pg_slot *tx, const char *env, const char *name,
                          struct store_flag *out) {
    const char *pv[2] = {env, name};
    return pg_row(s, tx, "SELECT name, enabled, updated_by, updated_at, reason FROM feature_flags"
                         " WHERE environment = $1 AND name = $2", "get_flag", 2, pv, pg_read_flag, out);
}

int pg_get_flag(void *h, const char *env, const char *name, struct store_flag *out) {
    return pg_get_flag_on(h, NULL, env, name, out);
}

int pg_tx_get_flag(void *tx, const char *env, const char *name, struct store_flag *out) {
    return pg_get_flag_on(NULL, tx, env, name, out);
}

int pg_tx_write_flag(void *tx, const char *env, const struct store_flag *f) {
    char en[4], at[24];
    int rc;
    const char *pv[6] = {env, f->name, I64(en, f->enabled != 0), f->updated_by,
                         I64(at, f->updated_at_ms), f->reason};
    PQclear(pg_run(tx, "INSERT INTO feature_flags (environment, name, enabled, updated_by, updated_at, reason)"
                       " VALUES ($1, $2, $3::int, $4, $5::bigint, $6) ON CONFLICT (environment, name) DO UPDATE"
                       " SET enabled = excluded.enabled, updated_by = excluded.updated_by,"
                       " updated_at = excluded.updated_at, reason = excluded.reason", 6, pv, "set_flag", &rc));
    return rc;
}

int pg_put_token(void *h, const struct store_token *t) {
    char c[24], e[24];
    const char *pv[7] = {t->id, t->name, t->secret_hash, t->scopes, I64(c, t->created_ms),
                         t->expires_ms ? I64(e, t->expires_ms) : NULL, t->queues[0] ? t->queues : NULL};
    return pg_simple(h, "INSERT INTO api_tokens (id, name, secret_hash, scopes, created_at, expires_at,"
                        " queues) VALUES ($1, $2, $3, $4, $5::bigint, $6::bigint, $7)", 7, pv, "put_token", NULL);
}

#define PG_TOKEN_COLS "id, name, secret_hash, scopes, created_at, COALESCE(expires_at, 0), COALESCE(revoked_at, 0)," \
                      " COALESCE(queues, '')"

static void pg_read_token(PGresult *r, int row, void *elem) {
    struct store_token *t = elem;
    util_copy(t->id, sizeof t->id, pg_text(r, row, 0));
    util_copy(t->name, sizeof t->name, pg_text(r, row, 1));
    util_copy(t->secret_hash, sizeof t->secret_hash, pg_text(r, row, 2));
    util_copy(t->scopes, sizeof t->scopes, pg_text(r, row, 3));
    t->created_ms = pg_int(r, row, 4);
    t->expires_ms = pg_int(r, row, 5);
    t->revoked_ms = pg_int(r, row, 6);
    util_copy(t->queues, sizeof t->queues, pg_text(r, row, 7));
}

int pg_get_token(void *h, const char *id, struct store_token *out) {
    const char *pv[1] = {id};
    return pg_row(h, NULL, "SELECT " PG_TOKEN_COLS " FROM api_tokens WHERE id = $1", "get_token", 1, pv,
                  pg_read_token, out);
}

int pg_list_tokens(void *h, struct store_token **out, size_t *n) {
    return pg_collect(h, NULL, "SELECT " PG_TOKEN_COLS " FROM api_tokens ORDER BY created_at, id", 0, NULL,
                      sizeof **out, pg_read_token, (void **)out, n);
}

int pg_revoke_token(void *h, const char *id, int64_t now_ms) {
    char a[24];
    int affected = 0;
    const char *pv[2] = {I64(a, now_ms), id};
    const char *dv[1] = {id};
    int rc = pg_simple(h, "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1::bigint) WHERE id = $2",
                       2, pv, "revoke_token", &affected);
    if (rc == STORE_OK && affected == 0) return STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = pg_simple(h, "DELETE FROM api_sessions WHERE token_id = $1", 1, dv, "revoke_token", NULL);
    return rc;
}

int pg_put_session(void *h, const struct store_session *x, int max_per_token) {
    struct pg_store *s = h;
    char c[24], e[24], m[24];
    const char *sweep[1] = {I64(c, x->created_ms)};
    const char *pv[5] = {x->id_hash, x->token_id, x->csrf, c, I64(e, x->expires_ms)};
    const char *lk[1] = {x->token_id};
    const char *cap[2] = {x->token_id, I64(m, max_per_token)};
    int rc;
    struct pg_slot *p = pg_acquire(s);
    if (p == NULL) return STORE_UNAVAILABLE;
    if ((rc = pg_exec(p, "BEGIN", "put_session")) != STORE_OK) goto done;
    /* Logins of one token, on any replica, take turns: the cap holds. */
    PQclear(pg_run(p, "SELECT pg_advisory_xact_lock(hashtext('sluice.sessions:' || $1))", 1, lk,
                   "put_session", &rc));
    if (rc != STORE_OK) goto done;
    /* Sweep expired sessions on the way in, so the table stays small. */
    PQclear(pg_run(p, "DELETE FROM api_sessions WHERE expires_at < $1::bigint", 1, sweep, "put_session", &rc));
    if (rc != STORE_OK) goto done;
    PQclear(pg_run(p, "INSERT INTO api_sessions (id_hash, token_id, csrf_token, created_at, expires_at)"
                      " VALUES ($1, $2, $3, $4::bigint, $5::bigint)", 5, pv, "put_session", &rc));
    if (rc != STORE_OK) goto done;
    if (max_per_token > 0) {
        /* seq grows with each insert: the oldest sessions of the token go first. */
        PQclear(pg_run(p, "DELETE FROM api_sessions WHERE token_id = $1 AND seq NOT IN"
                          " (SELECT seq FROM api_sessions WHERE token_id = $1 ORDER BY seq DESC"
                          " LIMIT $2::int)", 2, cap, "put_session", &rc));
        if (rc != STORE_OK) goto done;
    }
    rc = pg_exec(p, "COMMIT", "put_session");
done:
    pg_release(s, p);                         /* rolls back what did not commit */
    return rc;
}

int pg_sweep_sessions(void *h, int64_t now_ms, int64_t *deleted) {
    char a[24];
    int n = 0;
    const char *pv[1] = {I64(a, now_ms)};
    int rc = pg_simple(h, "DELETE FROM api_sessions WHERE expires_at <= $1::bigint", 1, pv, "sweep_sessions",
                       &n);
    *deleted = rc == STORE_OK ? n : 0;
    return rc;
}

static void pg_read_session(PGresult *r, int row, void *elem) {
    struct store_session *x = elem;
    util_copy(x->id_hash, sizeof x->id_hash, pg_text(r, row, 0));
    util_copy(x->token_id, sizeof x->token_id, pg_text(r, row, 1));
    util_copy(x->csrf, sizeof x->csrf, pg_text(r, row, 2));
    x->created_ms = pg_int(r, row, 3);
    x->expires_ms = pg_int(r, row, 4);
}

int pg_get_session(void *h, const char *id_hash, struct store_session *out) {
    const char *pv[1] = {id_hash};
    return pg_row(h, NULL, "SELECT id_hash, token_id, csrf_token, created_at, expires_at FROM api_sessions"
                           " WHERE id_hash = $1", "get_session", 1, pv, pg_read_session, out);
}

int pg_delete_session(void *h, const char *id_hash) {
    const char *pv[1] = {id_hash};
    return pg_simple(h, "DELETE FROM api_sessions WHERE id_hash = $1", 1, pv, "delete_session", NULL);
}

/* ---- approvals ---------------------------------------------------------------------- */

#define PG_APPROVAL_COLS "id, queue, from_value, desired, duration_s, from_version, reason," \
    " requested_by, COALESCE(requester_token, ''), source, request_id, status," \
    " COALESCE(decided_by, ''), decided_at, COALESCE(decision_reason, ''), COALESCE(result, '')," \
    " COALESCE(result_code, ''), created_at, expires_at"

static void pg_read_approval(PGresult *r, int row, void *elem) {
    struct store_approval *a = elem;
    memset(a, 0, sizeof *a);
    util_copy(a->id, sizeof a->id, pg_text(r, row, 0));
    util_copy(a->queue, sizeof a->queue, pg_text(r, row, 1));
    a->from = pg_int(r, row, 2);
    a->desired = pg_int(r, row, 3);
    a->duration_s = pg_int(r, row, 4);
    a->from_version = pg_int(r, row, 5);
    util_copy(a->reason, sizeof a->reason, pg_text(r, row, 6));
    util_copy(a->requested_by, sizeof a->requested_by, pg_text(r, row, 7));
    util_copy(a->requester_token, sizeof a->requester_token, pg_text(r, row, 8));
    util_copy(a->source, sizeof a->source, pg_text(r, row, 9));
    util_copy(a->request_id, sizeof a->request_id, pg_text(r, row, 10));
    util_copy(a->status, sizeof a->status, pg_text(r, row, 11));
    util_copy(a->decided_by, sizeof a->decided_by, pg_text(r, row, 12));
    a->decided_at_ms = pg_int(r, row, 13);
    util_copy(a->decision_reason, sizeof a->decision_reason, pg_text(r, row, 14));
    util_copy(a->result, sizeof a->result, pg_text(r, row, 15));
    util_copy(a->result_code, sizeof a->result_code, pg_text(r, row, 16));
    a->created_at_ms = pg_int(r, row, 17);
    a->expires_at_ms = pg_int(r, row, 18);
}

int pg_tx_get_approval(void *tx, const char *id, struct store_approval *out) {
    const char *pv[1] = {id};
    return pg_row(NULL, tx, "SELECT " PG_APPROVAL_COLS " FROM scaling_approvals WHERE id = $1",
                  "get_approval", 1, pv, pg_read_approval, out);
}

int pg_tx_pending_approval(void *tx, const char *queue, struct store_approval *out) {
    const char *pv[1] = {queue};
    return pg_row(NULL, tx, "SELECT " PG_APPROVAL_COLS " FROM scaling_approvals"
                            " WHERE queue = $1 AND status = 'pending'",
                  "pending_approval", 1, pv, pg_read_approval, out);
}

int pg_tx_insert_approval(void *tx, const struct store_approval *a) {
    char from[24], to[24], dur[24], fv[24], at[24], exp[24];
    int rc;
    const char *pv[14] = {a->id, a->queue, I64(from, a->from), I64(to, a->desired),
                          I64(dur, a->duration_s), a->from_version ? I64(fv, a->from_version) : NULL,
                          a->reason, a->requested_by,
                          a->requester_token[0] ? a->requester_token : NULL, a->source,
                          a->request_id, a->status, I64(at, a->created_at_ms),
                          I64(exp, a->expires_at_ms)};
    PQclear(pg_run(tx, "INSERT INTO scaling_approvals (id, queue, from_value, desired, duration_s,"
                       " from_version, reason, requested_by, requester_token, source, request_id,"
                       " status, created_at, expires_at) VALUES ($1, $2, $3::bigint, $4::bigint,"
                       " $5::bigint, $6::bigint, $7, $8, $9, $10, $11, $12, $13::bigint, $14::bigint)",
                   14, pv, "insert_approval", &rc));
    return rc;
}

int pg_tx_update_approval(void *tx, const struct store_approval *a) {
    char at[24];
    int rc;
    const char *pv[7] = {a->status, a->decided_by[0] ? a->decided_by : NULL,
                         a->decided_at_ms ? I64(at, a->decided_at_ms) : NULL,
                         a->decided_at_ms ? a->decision_reason : NULL,
                         a->result[0] ? a->result : NULL, a->result_code[0] ? a->result_code : NULL,
                         a->id};
    PQclear(pg_run(tx, "UPDATE scaling_approvals SET status = $1, decided_by = $2,"
                       " decided_at = $3::bigint, decision_reason = $4, result = $5, result_code = $6"
                       " WHERE id = $7", 7, pv, "update_approval", &rc));
    return rc;
}

int pg_list_approvals(void *h, const char *status, const char *queue, int limit,
                      struct store_approval **out, size_t *n) {
    char l[24];
    const char *pv[3] = {status, queue, I64(l, limit)};
    return pg_collect(h, NULL, "SELECT " PG_APPROVAL_COLS " FROM scaling_approvals"
                               " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)"
                               " ORDER BY created_at DESC, id LIMIT $3::int",
                      3, pv, sizeof **out, pg_read_approval, (void **)out, n);
}
