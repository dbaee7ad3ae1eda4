-- 004_bounded_growth: the audit log can be pruned, on purpose and audited,
-- and sessions are found per token (to cap them).
--
-- The audit log stays append-only for everyone but `sluiced audit prune`:
-- a delete goes through only while audit_prune_permit holds a row covering
-- it. The prune inserts that row, deletes, removes the row and appends its
-- own entry (kind 'audit'), all in one transaction, so no other connection
-- ever sees the permit. Entries of prunes are never deleted.
CREATE TABLE audit_prune_permit (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    before_id INTEGER NOT NULL           -- entries with id < before_id may go
);

-- SQLite cannot change a CHECK constraint in place: rebuild the table with
-- kind 'audit' allowed, keeping every id and the AUTOINCREMENT counter, so
-- ids are never reused even after a prune.
CREATE TABLE scaling_audit_v4 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('scaling', 'flag', 'audit')),
    subject     TEXT NOT NULL,            -- queue or flag name; 'prune' for kind 'audit'
    from_value  INTEGER NOT NULL,         -- kind 'audit': entries deleted
    to_value    INTEGER NOT NULL,         -- kind 'audit': entries below this id were deleted
    version     INTEGER NOT NULL,         -- version after the entry
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    error_code  TEXT,
    at          INTEGER NOT NULL,
    request_id  TEXT NOT NULL
);
INSERT INTO scaling_audit_v4 (id, kind, subject, from_value, to_value, version, actor, source,
                              reason, outcome, error_code, at, request_id)
    SELECT id, kind, subject, from_value, to_value, version, actor, source,
           reason, outcome, error_code, at, request_id FROM scaling_audit ORDER BY id;
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence
                                                    WHERE name = 'scaling_audit'), 0))
    WHERE name = 'scaling_audit_v4';
DROP TABLE scaling_audit;
ALTER TABLE scaling_audit_v4 RENAME TO scaling_audit;
CREATE INDEX scaling_audit_subject ON scaling_audit (kind, subject, id);
CREATE TRIGGER scaling_audit_no_update BEFORE UPDATE ON scaling_audit
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only'); END;
CREATE TRIGGER scaling_audit_no_delete BEFORE DELETE ON scaling_audit
WHEN OLD.kind = 'audit'
     OR NOT EXISTS (SELECT 1 FROM audit_prune_permit WHERE OLD.id < before_id)
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only (only sluiced audit prune deletes)'); END;

-- The sessions of one token, oldest first by rowid, for the cap.
CREATE INDEX api_sessions_token ON api_sessions (token_id);
