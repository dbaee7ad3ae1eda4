-- 008_approvals: changes that wait for a second person (issue 18).
-- A change above a queue's approve_above (or one validate() asks approval
-- for) is stored here as 'pending' and changes nothing; another person
-- approves it (status 'approved', and the change is then judged and applied
-- as of that moment, result 'applied' or 'rejected' with result_code), rejects
-- it ('rejected') or lets it expire ('expired', swept by the leader).
-- At most one pending approval per queue. Times are ms since the epoch.
CREATE TABLE scaling_approvals (
    id              TEXT PRIMARY KEY,           -- random hex
    queue           TEXT NOT NULL,
    from_value      INTEGER NOT NULL,           -- the value when it was asked for
    desired         INTEGER NOT NULL,
    duration_s      INTEGER NOT NULL DEFAULT 0, -- 0: permanent
    from_version    INTEGER,                    -- a revert: the version it takes its value from
    reason          TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    requester_token TEXT,                       -- NULL: sluiced itself
    source          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by      TEXT,
    decided_at      INTEGER,
    decision_reason TEXT,
    result          TEXT CHECK (result IS NULL OR result IN ('applied', 'rejected')),
    result_code     TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX scaling_approvals_one_pending ON scaling_approvals (queue) WHERE status = 'pending';
CREATE INDEX scaling_approvals_status ON scaling_approvals (status, created_at);
