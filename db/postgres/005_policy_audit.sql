-- 005_policy_audit: policy reloads are audited (kind 'policy', subject
-- 'reload'). Same rule as db/sqlite/005_policy_audit.sql.
ALTER TABLE scaling_audit DROP CONSTRAINT scaling_audit_kind_check;
ALTER TABLE scaling_audit ADD CONSTRAINT scaling_audit_kind_check
    CHECK (kind IN ('scaling', 'flag', 'audit', 'policy'));
