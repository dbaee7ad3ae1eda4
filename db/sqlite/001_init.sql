-- 001_init: the core tables of Sluice (SQLite).
-- Times are integer milliseconds since the Unix epoch, UTC, in both backends,
-- so cooldowns and budgets compute the same way everywhere.

-- Desired concurrency per queue: one row per queue that was ever changed.
-- A queue without a row runs its policy default at version 0.
CREATE TABLE runtime_scaling_policies (
    queue               TEXT PRIMARY KEY,
    desired_concurrency INTEGER NOT NULL CHECK (desired_concurrency >= 0),
    version             INTEGER NOT NULL CHECK (version >= 1),
    updated_by          TEXT NOT NULL,
    updated_at          INTEGER NOT NULL,
    reason              TEXT NOT NULL,
    expires_at          INTEGER,          -- end of a temporary override
    revert_to           INTEGER           -- value restored at expires_at
);

-- Every change and every refused attempt, scaling and flags alike.
-- Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE scaling_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('scaling', 'flag')),
    subject     TEXT NOT NULL,            -- queue or flag name
    from_value  INTEGER NOT NULL,
    to_value    INTEGER NOT NULL,
    version     INTEGER NOT NULL,         -- version after the entry
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    error_code  TEXT,
    at          INTEGER NOT NULL,
    request_id  TEXT NOT NULL
);
CREATE INDEX scaling_audit_subject ON scaling_audit (kind, subject, id);
CREATE TRIGGER scaling_audit_no_update BEFORE UPDATE ON scaling_audit
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only'); END;
CREATE TRIGGER scaling_audit_no_delete BEFORE DELETE ON scaling_audit
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only'); END;

-- Accepted changes waiting to be published to Redis (relayed in id order).
CREATE TABLE scaling_outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    queue               TEXT NOT NULL,
    version             INTEGER NOT NULL,
    desired_concurrency INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    published_at        INTEGER,
    UNIQUE (queue, version)
);
CREATE INDEX scaling_outbox_pending ON scaling_outbox (published_at, id);

-- API tokens: only a SHA-256 of the secret part is kept.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);

-- Browser sessions made from a token; revoking the token ends them.
CREATE TABLE api_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES api_tokens (id),
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- Feature flags per environment (flag "writes" gates scaling writes).
CREATE TABLE feature_flags (
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (environment, name)
);
