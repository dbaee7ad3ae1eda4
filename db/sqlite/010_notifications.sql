-- 010_notifications: the durable queue of webhook notifications (issue 18).
-- notify_outbox holds one row per (event, sink): the exact body to POST,
-- rendered when the event was enqueued, and the state of its delivery
-- (status 'pending' until a 2xx marks it 'delivered', or 'failed' once it
-- gave up). notify_cursor is the last audit id the leader turned into
-- notifications; it advances in the same transaction as the rows it made.
CREATE TABLE notify_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT NOT NULL,
    event           TEXT NOT NULL CHECK (event IN ('alert', 'change', 'refusal', 'approval')),
    event_id        TEXT NOT NULL,    -- "audit-<id>" or "alert-...": what a receiver dedupes by
    queue           TEXT NOT NULL,
    payload         TEXT NOT NULL,    -- the body, byte for byte
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    delivered_at    INTEGER,
    last_error      TEXT,
    last_status     INTEGER,
    UNIQUE (sink, event_id)
);
CREATE INDEX notify_outbox_status ON notify_outbox (status, sink, id);
CREATE TABLE notify_cursor (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    last_audit_id INTEGER NOT NULL
);
-- Notifications start with this schema: what the audit log already holds
-- is history, never sent (the leader may be elected after the first change).
INSERT INTO notify_cursor (one, last_audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM scaling_audit;
