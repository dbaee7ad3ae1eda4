/* store.h — the storage adapter: everything sluiced keeps durably.
 *
 * One interface, one backend per database (store_sqlite.c, store_pg.c).
 * Callers never see SQL or a dialect: they call these functions with
 * plain structs. A backend guarantees the same behaviour: versions strictly
 * increase per queue, a change writes its policy row, audit entry and outbox
 * entry in one transaction, and the audit log is append-only: the database
 * itself refuses updates and deletes, except the deletes of an explicit
 * prune (store_prune_audit), which audits itself.
 *
 * What grows is bounded here too: store.c admits writes per API token at a
 * rate (store_admit_write), sessions are capped per token, and expired
 * sessions are swept (store_sweep_sessions).
 *
 * Every function returns a store_rc. STORE_UNAVAILABLE means the database
 * could not be reached or (SQLite) stayed locked past busy_timeout, and
 * nothing was changed (the API answers 503 store_unavailable). STORE_BUSY
 * means another change held the lock this one needed past the lock or
 * statement timeout (PostgreSQL), or that every write slot is taken by
 * changes that are not moving (store_options.max_writers); nothing was
 * changed and a retry may succeed (503 store_busy with Retry-After).
 * STORE_FULL means the database's volume (or PostgreSQL's disk) is full;
 * nothing was changed (507 store_full). STORE_FAILED is anything else and
 * is logged by the backend. Every failure is negative. All functions are
 * safe to call from any thread. */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define STORE_REASON_MAX 2048   /* 500 characters of UTF-8 always fit */
#define STORE_ACTOR_MAX  128
#define STORE_RID_MAX    129
#define STORE_CODE_MAX   32
#define STORE_HASH_MAX   65     /* SHA-256 as hex */
#define STORE_ID_MAX     33
/* A token's queue patterns (auth.h's AUTH_QUEUES_MAX: 16 names and '*'s
 * with their commas). */
#define STORE_QUEUES_MAX (16 * (UTIL_NAME_MAX + 2) + 1)

enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1,
    STORE_UNAVAILABLE = -1,
    STORE_FAILED = -2,
    STORE_BUSY = -3,
    STORE_FULL = -4,
};

/* The stored desired state of one queue. */
struct store_target {
    char queue[UTIL_NAME_MAX + 1];
    int64_t desired;
    int64_t version;             /* 0: never changed (policy default) */
    char updated_by[STORE_ACTOR_MAX];
    int64_t updated_at_ms;
    char reason[STORE_REASON_MAX];
    int64_t expires_at_ms;       /* 0: no temporary override */
    int64_t revert_to;
    /* Paused: workers take no new jobs, whatever desired says (kept for the
     * resume). The who, when and why of the pause stay until it ends. */
    int paused;
    int64_t paused_until_ms;     /* 0: until resumed */
    char paused_by[STORE_ACTOR_MAX];
    int64_t paused_at_ms;
    char paused_reason[STORE_REASON_MAX];
};

struct store_audit {
    int64_t id;
    char kind[16];               /* "scaling" | "flag" | "audit" (a prune) | "policy" | "pause" */
    char subject[UTIL_NAME_MAX + 1];   /* queue, flag name, "prune" or "reload" */
    int64_t from, to, version;
    char actor[STORE_ACTOR_MAX];
    char source[16];
    char reason[STORE_REASON_MAX];
    char outcome[24];            /* "applied" | "rejected" | "pending_approval" | "approved" | "expired" */
    char error_code[STORE_CODE_MAX];   /* "" when applied */
    int64_t at_ms;
    char request_id[STORE_RID_MAX];
    int64_t from_version;        /* a revert: the version whose value it applies; 0: none */
    char approval_id[STORE_ID_MAX];   /* an approval's steps and the change it let through; "" */
};

/* Who made a write, and why: what every audit entry says of its origin. */
struct store_origin {
    const char *actor, *source, *reason, *request_id;
    int64_t now_ms;
};

/* The one builder of audit entries (changes, refusals, flags, prunes):
 * clears e and fills it; error_code "" (or NULL) when applied. */
void store_audit_init(struct store_audit *e, const char *kind, const char *subject,
                      int64_t from, int64_t to, int64_t version, const char *outcome,
                      const char *error_code, const struct store_origin *o);

/* What the audit log says about recent applied changes of one queue; only
 * changes that moved the value count. */
struct store_stats {
    int64_t applied_last_hour;
    int64_t oldest_in_hour_ms;   /* 0 when none */
    int64_t last_applied_ms;     /* 0 when never */
};

/* A change that waits for a second person (the scaling_approvals table):
 * status "pending" until someone approves, rejects or lets it expire;
 * result says what the approved change then did ("applied" | "rejected"
 * with result_code; "" while not approved). */
struct store_approval {
    char id[STORE_ID_MAX];       /* 16 random hex digits */
    char queue[UTIL_NAME_MAX + 1];
    int64_t from, desired;       /* from: the value when it was asked for */
    int64_t duration_s;          /* 0: permanent */
    int64_t from_version;        /* a revert: the version it takes its value from; 0: none */
    char reason[STORE_REASON_MAX];
    char requested_by[STORE_ACTOR_MAX];
    char requester_token[STORE_ID_MAX];   /* "": sluiced itself */
    char source[16];
    char request_id[STORE_RID_MAX];
    char status[16];             /* "pending" | "approved" | "rejected" | "expired" */
    char decided_by[STORE_ACTOR_MAX];
    int64_t decided_at_ms;       /* 0: not decided */
    char decision_reason[STORE_REASON_MAX];
    char result[16];
    char result_code[STORE_CODE_MAX];
    int64_t created_at_ms, expires_at_ms;
};

/* What a judged change does: desired concurrency (the default, 0), or a
 * pause or resume of the queue (audited as kind "pause", from/to 0/1). */
enum store_change_kind { STORE_CHANGE_SCALING = 0, STORE_CHANGE_PAUSE, STORE_CHANGE_RESUME };

/* A proposed change of desired concurrency, or a pause or resume. */
struct store_change {
    const char *queue;
    int64_t to;                  /* STORE_CHANGE_SCALING only */
    int64_t default_value;       /* "from" when the queue has no row yet */
    const char *actor, *source, *reason, *request_id;
    int64_t now_ms;
    int64_t expires_at_ms;       /* 0: permanent */
    int64_t from_version;        /* a revert: audited with it; 0: none */
    const char *approval_id;     /* the approval that let it through (audited); NULL: none */
    /* What a pending approval records when the judge asks for one. */
    const char *token_id;        /* the requester's token; NULL: sluiced */
    int64_t duration_s;
    int64_t approval_ttl_ms;
    int kind;                    /* enum store_change_kind; 0 (zeroed): scaling */
    int64_t paused_until_ms;     /* STORE_CHANGE_PAUSE: 0 until resumed */
    /* A refusal with this error code writes no audit entry (audit_id 0):
     * the autoscaler repeating its last refusal unchanged, which the log
     * already holds. NULL: every refusal is audited. */
    const char *quiet_refusal;
};

/* Called inside the write transaction with the current state. Returns 1 to
 * apply, 0 to refuse (writing the audit error code into error_code),
 * STORE_JUDGE_APPROVAL to store the change as a pending approval instead
 * (applied 2, or refused with "approval_pending" when the queue has one
 * already), or -1 to abandon the transaction without writing anything (a
 * race the caller will see in store_change_result.applied == -1). */
#define STORE_JUDGE_APPROVAL 2
typedef int (*store_judge_fn)(void *ud, const struct store_target *current,
                              const struct store_stats *stats,
                              char error_code[STORE_CODE_MAX]);

struct store_change_result {
    struct store_target target;  /* state after the transaction */
    int64_t previous;
    int applied;                 /* 1 applied, 2 waits for approval, 0 refused, -1 abandoned */
    int changed;                 /* applied and written; 0 for a change to the current value */
    int64_t audit_id;            /* 0 when nothing was audited */
    /* applied 2: the approval stored; refused for "approval_pending": the
     * one already pending ("" id otherwise). */
    struct store_approval approval;
    int kind;                    /* the change's enum store_change_kind */
};

struct store_flag {
    char name[UTIL_NAME_MAX + 1];
    int enabled;
    char updated_by[STORE_ACTOR_MAX];
    int64_t updated_at_ms;
    char reason[STORE_REASON_MAX];
};

struct store_token {
    char id[STORE_ID_MAX];
    char name[UTIL_NAME_MAX + 1];
    char secret_hash[STORE_HASH_MAX];
    char scopes[128];            /* comma-separated */
    /* The queues it may see and act on: auth.c's canonical patterns,
     * comma-separated; "" (NULL in the database) means every queue. */
    char queues[STORE_QUEUES_MAX];
    int64_t created_ms, expires_ms, revoked_ms;   /* 0: none */
};

struct store_session {
    char id_hash[STORE_HASH_MAX];
    char token_id[STORE_ID_MAX];
    char csrf[STORE_HASH_MAX];
    int64_t created_ms, expires_ms;
};

/* An accepted change waiting to be relayed to Redis. */
struct store_outbox {
    int64_t id;
    char queue[UTIL_NAME_MAX + 1];
    int64_t version;
    int64_t desired;
    int paused;
    int64_t created_ms;
};

typedef struct store store;

struct store_options {
    int busy_timeout_ms;         /* SQLite: wait for a lock this long */
    int pool_size;               /* connections kept open */
};

/* How many judged writes may be in progress, how often one token may write,
 * how many sessions it may hold, and how long a PostgreSQL statement may
 * wait; 0 in a field: no cap, or the server's setting. */
struct store_limits {
    /* store_apply_change and store_set_flag at once. sluiced passes its HTTP
     * threads - 1, so that writes stuck behind a lock never hold every thread:
     * one more writer waits while the others finish, and is refused with
     * STORE_BUSY at once when none has finished for half a second. */
    int max_writers;
    int pg_lock_timeout_ms;      /* PostgreSQL session settings, ms */
    int pg_statement_timeout_ms;
    int pg_idle_tx_timeout_ms;   /* idle_in_transaction_session_timeout */
    int writes_per_min;          /* store_admit_write: per token, in memory, per process */
    int write_burst;             /* of those, at once (0: as writes_per_min) */
    int sessions_per_token;      /* store_put_session evicts the oldest beyond it */
};

/* Open the database named by url ("sqlite:PATH"). Does not migrate. Returns
 * NULL with a message in err when the URL is wrong or the database cannot be
 * opened. The caller owns the store and frees it with store_close. */
store *store_open(const char *url, const struct store_options *opt, char *err, size_t errlen);
void store_close(store *st);

/* Set the limits, once, before the store serves (sluiced: right after
 * store_open). Without a call there are none. */
void store_set_limits(store *st, const struct store_limits *lim);

/* Admit one write made with the API token token_id (NULL or "": a write of
 * sluiced itself, always admitted) under writes_per_min and write_burst.
 * Returns 1, or 0 with *retry_after_ms set (at least 1) when the token has
 * written too much; nothing is recorded in the database either way. The
 * buckets live in this process, at most STORE_WRITE_TOKENS of them. */
#define STORE_WRITE_TOKENS 4096
int store_admit_write(store *st, const char *token_id, int64_t *retry_after_ms);

/* Claim the database for a serving sluiced. SQLite serves one replica:
 * a second sluiced on the same file is refused (a lock next to it, held
 * until store_close). PostgreSQL allows any number: always STORE_OK. */
int store_claim(store *st, char *err, size_t errlen);

/* Apply the compiled-in migrations not yet recorded. *applied (may be NULL)
 * receives how many ran. */
int store_migrate(store *st, int *applied);

/* 1 when the schema has every compiled-in migration, 0 when not, -1 when the
 * database cannot answer. */
int store_schema_current(store *st);

/* STORE_OK when the database answers. SQLite: STORE_FULL from the first
 * write refused for lack of space until the volume has room again. */
int store_ping(store *st);

/* The store's identity, made once by the migrations (a random hex id);
 * replicas of one database share it. STORE_NOT_FOUND before migrations. */
#define STORE_IDENTITY_MAX 64
int store_identity(store *st, char out[STORE_IDENTITY_MAX + 1]);

/* STORE_NOT_FOUND when the queue has never been changed. */
int store_get_target(store *st, const char *queue, struct store_target *out);

/* Every stored row; *out is malloc'd and owned by the caller. */
int store_list_targets(store *st, struct store_target **out, size_t *n);

/* The judged write: one transaction reads the queue's row and its audit
 * statistics, asks judge, and writes either row + audit + outbox (applied;
 * a permanent change at the value of a temporary override writes row and
 * audit and keeps the version) or one audit entry with the refusal. An
 * accepted change to the current value writes nothing at all: applied 1,
 * changed 0, audit_id 0; so does pausing a paused queue or resuming a
 * running one. A pause or resume is a new version (and an outbox row) that
 * keeps the desired value; a change of the value keeps the pause. judge runs with the write lock held: it must only
 * compare numbers (scaling.c runs the policy's Lua before, see
 * store_read_change). */
int store_apply_change(store *st, const struct store_change *change, store_judge_fn judge,
                       void *ud, struct store_change_result *out);

/* What store_apply_change would show its judge now, read in one snapshot
 * without taking any write lock: the row (or, never changed, default_value
 * at version 0) and the statistics at now_ms. For checks too slow to run
 * under the lock; the judge then confirms nothing moved meanwhile. */
int store_read_change(store *st, const char *queue, int64_t default_value, int64_t now_ms,
                      struct store_target *cur, struct store_stats *stats);

/* Append one audit entry (refusals decided before the transaction). The id
 * is written back into entry->id. */
int store_append_audit(store *st, struct store_audit *entry);

/* Which audit entries a listing returns: every field set narrows it
 * (NULL or 0: any). Times are ms since the epoch, both ends included. */
struct store_audit_filter {
    const char *kind, *subject, *actor, *outcome, *source;
    int64_t since_ms, until_ms;
    int64_t before_id;           /* only ids below it: paging from the newest */
    int64_t version;             /* > 0: only entries at this version */
    int queue_kinds;             /* 1: only what acts on a queue (kinds scaling and pause) */
};

/* Newest first, the entries f lets through (f NULL: all), at most limit.
 * *out is malloc'd, owned by the caller. */
int store_find_audit(store *st, const struct store_audit_filter *f, int limit,
                     struct store_audit **out, size_t *n);

/* store_find_audit by kind and subject only (NULL: any); before_id 0:
 * from the newest. */
int store_list_audit(store *st, const char *kind, const char *subject, int64_t before_id,
                     int limit, struct store_audit **out, size_t *n);

/* Oldest first: entries with after_id < id (and id < before_id unless it is
 * 0), at most limit. For exports, page by the last id. *out as above. */
int store_list_audit_oldest(store *st, int64_t after_id, int64_t before_id, int limit,
                            struct store_audit **out, size_t *n);

/* The id bound of "entries before time at_ms": the id of the first entry at
 * or after at_ms, or one past the newest when all are older (1 when the log
 * is empty). Entries are deleted and exported as a prefix of ids, even if
 * the clocks of replicas disagreed a little about their times. */
int store_audit_bound_at(store *st, int64_t at_ms, int64_t *before_id);

/* An explicit prune of the audit log: every entry with id < before_id (or,
 * when before_id is 0, before the first one at or after before_at_ms),
 * except the entries of earlier prunes, which stay for good. */
struct store_prune {
    int64_t before_id;
    int64_t before_at_ms;
    int64_t keep_after_ms;       /* refuse when an entry to delete is this new or newer */
    const char *actor, *source, *reason, *request_id;
    int64_t now_ms;
};

struct store_prune_result {
    int refused;                 /* 1: too new an entry (youngest_ms); nothing written */
    int64_t before_id;           /* the bound used */
    int64_t deleted;
    int64_t youngest_ms;         /* the newest "at" among the entries to delete; 0: none */
    struct store_audit entry;    /* the prune's own audit entry (kind "audit") */
};

/* In one transaction: delete, and append the prune's own entry (kind
 * "audit", subject "prune", from = rows deleted, to = before_id, outcome
 * "applied"), or refuse and write nothing. The database lets these deletes,
 * and no others, through its append-only guard. */
int store_prune_audit(store *st, const struct store_prune *p, struct store_prune_result *out);

/* Unpublished outbox rows, oldest first (commit order), at most limit. */
int store_outbox_pending(store *st, int limit, struct store_outbox **out, size_t *n);

/* Mark one outbox row published. */
int store_outbox_mark_published(store *st, int64_t id, int64_t now_ms);

/* In one consistent read: every stored target whose queue has no unpublished
 * outbox row (*targets), and the queues that do (*pending, names). Used to
 * rewrite the desired hash without ever moving a queue backwards. */
int store_desired_snapshot(store *st, struct store_target **targets, size_t *nt,
                           char (**pending)[UTIL_NAME_MAX + 1], size_t *np);

/* Targets whose temporary override or timed pause ended at or before
 * now_ms. */
int store_list_expired(store *st, int64_t now_ms, struct store_target **out, size_t *n);

int store_get_flag(store *st, const char *env, const char *name, struct store_flag *out);

/* Set a flag and audit it (kind "flag") in one transaction; the audit's
 * "from" is read inside it (default_enabled when the flag was never set). */
int store_set_flag(store *st, const char *env, const char *name, int enabled, int default_enabled,
                   const char *actor, const char *source, const char *reason,
                   const char *request_id, int64_t now_ms);

/* ---- approvals -------------------------------------------------------------- */

/* STORE_NOT_FOUND when there is no approval id. */
int store_get_approval(store *st, const char *id, struct store_approval *out);

/* Newest first, at most limit, of status (NULL: any) and queue (NULL: any).
 * *out is malloc'd, owned by the caller. */
int store_list_approvals(store *st, const char *status, const char *queue, int limit,
                         struct store_approval **out, size_t *n);

/* A decision on a pending approval. */
struct store_decision {
    const char *id;
    const char *status;          /* "approved" | "rejected" | "expired" */
    const char *error_code;      /* of the audit entry: "approval_rejected" for "rejected"; NULL */
    const char *actor, *source, *reason, *request_id;
    int64_t now_ms;
};

/* In one transaction under the queue's write lock: decide the approval if
 * it is still pending and not past expires_at, and audit the decision
 * (kind "scaling", outcome = status, approval_id); a pending approval
 * already past its time is marked "expired" (audited as by sluiced)
 * instead. *decided 1 when d was applied, else 0 and *out says why (its
 * status). STORE_NOT_FOUND when there is no approval id. */
int store_decide_approval(store *st, const struct store_decision *d, struct store_approval *out,
                          int *decided);

/* Record what an approved change did: result "applied" | "rejected" and
 * its error code (NULL when applied). */
int store_approval_result(store *st, const char *id, const char *result, const char *code);

int store_put_token(store *st, const struct store_token *tok);
int store_get_token(store *st, const char *id, struct store_token *out);
int store_list_tokens(store *st, struct store_token **out, size_t *n);
/* STORE_NOT_FOUND when no such token; revoking twice keeps the first time. */
int store_revoke_token(store *st, const char *id, int64_t now_ms);

/* Store a new session; in the same transaction, the sessions of its token
 * beyond sessions_per_token (store_limits) end, oldest first, and expired
 * sessions of every token are deleted. */
int store_put_session(store *st, const struct store_session *s);
int store_get_session(store *st, const char *id_hash, struct store_session *out);
int store_delete_session(store *st, const char *id_hash);

/* Delete every session expired at now_ms; *deleted (may be NULL) gets how many. */
int store_sweep_sessions(store *st, int64_t now_ms, int64_t *deleted);

/* ---- notifications (notify.c) -------------------------------------------------
 * A durable queue of webhook deliveries: one row per (event, sink) holding
 * the exact body to POST, and a cursor over the audit log (the last audit
 * id turned into rows), advanced in the same transaction as the rows it
 * made. Rows are 'pending' until a 2xx marks them 'delivered', or 'failed'
 * once delivery gave up; both stay visible until pruned. */

#define STORE_NOTIFY_PAYLOAD_MAX 16384
#define STORE_NOTIFY_ERROR_MAX 256
#define STORE_NOTIFY_EVENT_ID_MAX 320

/* A row to enqueue; (sink, event_id) is unique: enqueueing it twice keeps
 * the first. */
struct store_notify_new {
    const char *sink, *event, *event_id, *queue, *payload;
    int64_t created_ms;
};

/* A row as the API shows it (no payload). */
struct store_notification {
    int64_t id;
    char sink[UTIL_NAME_MAX + 1];
    char event[16];              /* "alert" | "change" | "refusal" | "approval" */
    char event_id[STORE_NOTIFY_EVENT_ID_MAX];
    char queue[UTIL_NAME_MAX + 1];
    char status[16];             /* "pending" | "delivered" | "failed" */
    int64_t created_ms, next_attempt_ms, last_attempt_ms, delivered_ms;   /* 0: never */
    int attempts;
    int last_status;             /* HTTP status of the last attempt; 0: none answered */
    char last_error[STORE_NOTIFY_ERROR_MAX];
};

/* A pending row with its body, for delivery. */
struct store_notify_due {
    struct store_notification n;
    char payload[STORE_NOTIFY_PAYLOAD_MAX];
};

/* What one delivery attempt did to row id. */
struct store_notify_attempt {
    int64_t id;
    const char *status;          /* the row's status after it */
    int64_t now_ms;
    int64_t next_attempt_ms;     /* when status stays "pending" */
    int http_status;             /* 0: no answer */
    const char *error;           /* "" when delivered */
};

/* Per sink: how many rows are in each status, the last delivery and the
 * last failure. */
struct store_notify_summary {
    char sink[UTIL_NAME_MAX + 1];
    int64_t pending, delivered, failed;
    int64_t last_delivered_ms;   /* 0: never */
    int64_t failing;             /* pending rows whose last attempt failed */
};

/* The cursor. Migration 010 sets it to the newest audit id of its time, so
 * the history before notifications existed is never sent; a database whose
 * row went missing gets the newest id now. */
int store_notify_cursor(store *st, int64_t *last_audit_id);

/* In one transaction: insert rows (duplicates of (sink, event_id) are
 * skipped) and, when new_cursor > 0, move the cursor from expected_cursor
 * to new_cursor. STORE_NOT_FOUND, with nothing written, when the cursor is
 * no longer expected_cursor (another leader moved it). */
int store_notify_enqueue(store *st, const struct store_notify_new *rows, size_t n,
                         int64_t expected_cursor, int64_t new_cursor);

/* Pending rows of sink (NULL: of every sink), oldest first, at most limit;
 * *out malloc'd, the caller's. */
int store_notify_pending(store *st, const char *sink, int limit, struct store_notify_due **out,
                         size_t *n);

/* Record one attempt. */
int store_notify_mark(store *st, const struct store_notify_attempt *a);

/* Newest first, at most limit; sink and status narrow it (NULL: any). */
int store_notify_list(store *st, const char *sink, const char *status, int limit,
                      struct store_notification **out, size_t *n);

/* One summary per sink that has rows, by name. */
int store_notify_summarize(store *st, struct store_notify_summary **out, size_t *n);

/* Delete delivered and failed rows created before before_ms, and beyond
 * the newest keep rows of any status but pending; *deleted gets how many. */
int store_notify_prune(store *st, int64_t before_ms, int64_t keep, int64_t *deleted);

/* ---- the autoscaler (autoscale.c) ---------------------------------------------
 * Explicit holds of a queue's rule (any replica writes them) and the
 * leader's last view of each rule as JSON text (followers answer from it). */

#define STORE_AUTOSCALE_STATE_MAX 32768

struct store_autoscale_hold {
    char queue[UTIL_NAME_MAX + 1];
    int64_t until_ms;
    char by[STORE_ACTOR_MAX];
    char reason[STORE_REASON_MAX];
    int64_t created_ms;
};

struct store_autoscale_state {
    char queue[UTIL_NAME_MAX + 1];
    char state[STORE_AUTOSCALE_STATE_MAX];   /* JSON text, "" when none */
    int64_t updated_ms;
};

/* Hold queue's rule (replaces a hold it has). A release is a hold that
 * ends at once: its created_ms also ends the hold after a manual change
 * made before it. */
int store_autoscale_hold(store *st, const struct store_autoscale_hold *h);

/* Every hold (ended and released ones too: the caller compares), by queue;
 * *out malloc'd, owned by the caller. */
int store_autoscale_holds(store *st, struct store_autoscale_hold **out, size_t *n);

/* Replace queue's state with state (JSON text shorter than
 * STORE_AUTOSCALE_STATE_MAX). */
int store_autoscale_put_state(store *st, const char *queue, const char *state, int64_t now_ms);

/* Every stored state, by queue; *out malloc'd, owned by the caller. */
int store_autoscale_states(store *st, struct store_autoscale_state **out, size_t *n);

#endif
