-- 006_change_control: the audit log learns change control (issue 18).
-- Same rule as db/sqlite/006_change_control.sql.
ALTER TABLE scaling_audit DROP CONSTRAINT scaling_audit_kind_check;
ALTER TABLE scaling_audit ADD CONSTRAINT scaling_audit_kind_check
    CHECK (kind IN ('scaling', 'flag', 'audit', 'policy', 'pause'));
ALTER TABLE scaling_audit DROP CONSTRAINT scaling_audit_outcome_check;
ALTER TABLE scaling_audit ADD CONSTRAINT scaling_audit_outcome_check
    CHECK (outcome IN ('applied', 'rejected', 'pending_approval', 'approved', 'expired'));
ALTER TABLE scaling_audit ADD COLUMN from_version BIGINT;
ALTER TABLE scaling_audit ADD COLUMN approval_id TEXT;
