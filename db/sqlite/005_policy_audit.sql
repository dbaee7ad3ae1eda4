-- 005_policy_audit: policy reloads are audited (kind 'policy', subject
-- 'reload'). SQLite cannot change a CHECK constraint in place: rebuild the
-- table as 004 did, keeping every id, the AUTOINCREMENT counter, the index
-- and the append-only triggers.
CREATE TABLE scaling_audit_v5 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('scaling', 'flag', 'audit', 'policy')),
    subject     TEXT NOT NULL,            -- queue or flag name; 'prune' for kind 'audit', 'reload' for 'policy'
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
INSERT INTO scaling_audit_v5 (id, kind, subject, from_value, to_value, version, actor, source,
                              reason, outcome, error_code, at, request_id)
    SELECT id, kind, subject, from_value, to_value, version, actor, source,
           reason, outcome, error_code, at, request_id FROM scaling_audit ORDER BY id;
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence
                                                    WHERE name = 'scaling_audit'), 0))
    WHERE name = 'scaling_audit_v5';
DROP TABLE scaling_audit;
ALTER TABLE scaling_audit_v5 RENAME TO scaling_audit;
CREATE INDEX scaling_audit_subject ON scaling_audit (kind, subject, id);
CREATE TRIGGER scaling_audit_no_update BEFORE UPDATE ON scaling_audit
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only'); END;
CREATE TRIGGER scaling_audit_no_delete BEFORE DELETE ON scaling_audit
WHEN OLD.kind = 'audit'
     OR NOT EXISTS (SELECT 1 FROM audit_prune_permit WHERE OLD.id < before_id)
BEGIN SELECT RAISE(ABORT, 'scaling_audit is append-only (only sluiced audit prune deletes)'); END;
