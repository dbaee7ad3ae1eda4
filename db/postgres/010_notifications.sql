-- 010_notifications: the durable queue of webhook notifications (issue 18).
-- Same tables as db/sqlite/010_notifications.sql.
CREATE TABLE notify_outbox (
    id              BIGSERIAL PRIMARY KEY,
    sink            TEXT NOT NULL,
    event           TEXT NOT NULL CHECK (event IN ('alert', 'change', 'refusal', 'approval')),
    event_id        TEXT NOT NULL,
    queue           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT,
    last_status     INTEGER,
    UNIQUE (sink, event_id)
);
CREATE INDEX notify_outbox_status ON notify_outbox (status, sink, id);
CREATE TABLE notify_cursor (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    last_audit_id BIGINT NOT NULL
);
-- Notifications start with this schema: what the audit log already holds
-- is history, never sent (the leader may be elected after the first change).
INSERT INTO notify_cursor (one, last_audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM scaling_audit;
