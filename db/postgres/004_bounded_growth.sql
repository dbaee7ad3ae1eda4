-- 004_bounded_growth: the audit log can be pruned, on purpose and audited,
-- and sessions are ordered and found per token (to cap them). Same rules as
-- db/sqlite/004_bounded_growth.sql.
--
-- The audit log stays append-only for everyone but `sluiced audit prune`:
-- a delete goes through only while audit_prune_permit holds a row covering
-- it. The prune inserts that row, deletes, removes the row and appends its
-- own entry (kind 'audit') in one transaction, so no other session ever sees
-- the permit. Entries of prunes are never deleted, and TRUNCATE is refused.
CREATE TABLE audit_prune_permit (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    before_id BIGINT NOT NULL            -- entries with id < before_id may go
);

ALTER TABLE scaling_audit DROP CONSTRAINT scaling_audit_kind_check;
ALTER TABLE scaling_audit ADD CONSTRAINT scaling_audit_kind_check
    CHECK (kind IN ('scaling', 'flag', 'audit'));

CREATE OR REPLACE FUNCTION scaling_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN           -- OLD exists only here, not for TRUNCATE
        IF OLD.kind <> 'audit'
           AND EXISTS (SELECT 1 FROM audit_prune_permit WHERE OLD.id < before_id) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'scaling_audit is append-only (only sluiced audit prune deletes)';
END;
$$;
CREATE TRIGGER scaling_audit_no_truncate BEFORE TRUNCATE ON scaling_audit
    FOR EACH STATEMENT EXECUTE FUNCTION scaling_audit_append_only();

-- Sessions in the order they were made, whatever the clocks of replicas say.
ALTER TABLE api_sessions ADD COLUMN seq BIGSERIAL;
CREATE INDEX api_sessions_token ON api_sessions (token_id, seq);
