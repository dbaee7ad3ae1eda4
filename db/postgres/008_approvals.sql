-- 008_approvals: changes that wait for a second person (issue 18).
-- Same table and rules as db/sqlite/008_approvals.sql.
CREATE TABLE scaling_approvals (
    id              TEXT PRIMARY KEY,           -- random hex
    queue           TEXT NOT NULL,
    from_value      BIGINT NOT NULL,           -- the value when it was asked for
    desired         BIGINT NOT NULL,
    duration_s      BIGINT NOT NULL DEFAULT 0, -- 0: permanent
    from_version    BIGINT,                    -- a revert: the version it takes its value from
    reason          TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    requester_token TEXT,                       -- NULL: sluiced itself
    source          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by      TEXT,
    decided_at      BIGINT,
    decision_reason TEXT,
    result          TEXT CHECK (result IS NULL OR result IN ('applied', 'rejected')),
    result_code     TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX scaling_approvals_one_pending ON scaling_approvals (queue) WHERE status = 'pending';
CREATE INDEX scaling_approvals_status ON scaling_approvals (status, created_at);
