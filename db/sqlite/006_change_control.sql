-- 006_change_control: the audit log learns change control (issue 18).
-- Kind 'pause' records pause and resume (to_value 1: paused, 0: running).
-- Outcomes 'pending_approval', 'approved' and 'expired' record an approval's
-- steps (a rejected approval is outcome 'rejected', error_code
-- 'approval_rejected'); approval_id ties the steps together. from_version
-- is the version a revert took its value from. SQLite cannot change a CHECK
-- constraint in place: rebuild the table as 005 did, keeping every id, the
-- AUTOINCREMENT counter, the index and the append-only triggers.
CREATE TABLE scaling_audit_v6 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL CHECK (kind IN ('scaling', 'flag', 'audit', 'policy', 'pause')),
    subject      TEXT NOT NULL,           -- queue or flag name; 'prune' for kind 'audit', 'reload' for 'policy'
    from_value   INTEGER NOT NULL,        -- kind 'audit': entries deleted
    to_value     INTEGER NOT NULL,        -- kind 'audit': entries below this id were deleted
    version      INTEGER NOT NULL,        -- version after the entry
    actor        TEXT NOT NULL,
    source       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected', 'pending_approval',
                                                  'approved', 'expired')),
    error_code   TEXT,
    at           INTEGER NOT NULL,
    request_id   TEXT NOT NULL,
    from_version INTEGER,
    approval_id  TEXT
);
INSERT INTO scaling_audit_v6 (id, kind, subject, from_value, to_value, version, actor, source,
                              reason, outcome, error_code, at, request_id)
    SELECT id, kind, subject, from_value, to_value, version, actor, source,
           reason, outcome, error_code, at, request_id FROM scaling_audit ORDER BY id;
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence
                                                    WHERE name = 'scaling_audit'), 0))
    WHERE name = 'scaling_audit_v6';
DROP TABLE scaling_audit;
ALTER TABLE scaling_audit_v6 RENAME TO scaling_audit;
CREATE INDEX scaling_audit_subject ON scaling_audit (kind, subject, id);
CREATE TRIGGER scaling_audit_no_update BEFORE UPDATE ON scaling_audit
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only'); END;
CREATE TRIGGER scaling_audit_no_delete BEFORE DELETE ON scaling_audit
WHEN OLD.kind = 'audit'
     OR NOT EXISTS (SELECT 1 FROM audit_prune_permit WHERE OLD.id < before_id)
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only (only sluiced audit prune deletes)'); END;
