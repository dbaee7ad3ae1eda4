-- 009_pause: a queue may be paused (issue 18).
-- Same columns and meaning as db/sqlite/009_pause.sql.
ALTER TABLE runtime_scaling_policies ADD COLUMN paused BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_until BIGINT;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_by TEXT;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_at BIGINT;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_reason TEXT;
ALTER TABLE scaling_outbox ADD COLUMN paused BOOLEAN NOT NULL DEFAULT false;
