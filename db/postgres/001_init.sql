-- 001_init: the core tables of Sluice (PostgreSQL). Same tables, columns
-- and rules as db/sqlite/001_init.sql; times are BIGINT milliseconds since
-- the Unix epoch, UTC, in both backends.

CREATE TABLE runtime_scaling_policies (
    queue               TEXT PRIMARY KEY,
    desired_concurrency BIGINT NOT NULL CHECK (desired_concurrency >= 0),
    version             BIGINT NOT NULL CHECK (version >= 1),
    updated_by          TEXT NOT NULL,
    updated_at          BIGINT NOT NULL,
    reason              TEXT NOT NULL,
    expires_at          BIGINT,
    revert_to           BIGINT
);

CREATE TABLE scaling_audit (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('scaling', 'flag')),
    subject     TEXT NOT NULL,
    from_value  BIGINT NOT NULL,
    to_value    BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    error_code  TEXT,
    at          BIGINT NOT NULL,
    request_id  TEXT NOT NULL
);
CREATE INDEX scaling_audit_subject ON scaling_audit (kind, subject, id);

-- Append-only: UPDATE and DELETE are refused.
CREATE FUNCTION scaling_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'scaling_audit is append-only';
END;
$$;
CREATE TRIGGER scaling_audit_no_update BEFORE UPDATE OR DELETE ON scaling_audit
    FOR EACH ROW EXECUTE FUNCTION scaling_audit_append_only();

CREATE TABLE scaling_outbox (
    id                  BIGSERIAL PRIMARY KEY,
    queue               TEXT NOT NULL,
    version             BIGINT NOT NULL,
    desired_concurrency BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    published_at        BIGINT,
    UNIQUE (queue, version)
);
CREATE INDEX scaling_outbox_pending ON scaling_outbox (id) WHERE published_at IS NULL;

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE api_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES api_tokens (id),
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE feature_flags (
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (environment, name)
);
