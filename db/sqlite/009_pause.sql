-- 009_pause: a queue may be paused (issue 18): its workers take no new jobs
-- and finish the ones they run, whatever its desired concurrency (kept, so
-- that a resume returns to it). paused_until ends a timed pause (the
-- leader's ticker resumes it); paused_by, paused_at and paused_reason say
-- who paused it and why. A pause or resume is a new version, relayed
-- through the outbox like any change, so the outbox row carries it too.
ALTER TABLE runtime_scaling_policies ADD COLUMN paused INTEGER NOT NULL DEFAULT 0
    CHECK (paused IN (0, 1));
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_until INTEGER;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_by TEXT;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_at INTEGER;
ALTER TABLE runtime_scaling_policies ADD COLUMN paused_reason TEXT;
ALTER TABLE scaling_outbox ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));
