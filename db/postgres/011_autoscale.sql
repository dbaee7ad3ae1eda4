-- 011_autoscale: what the autoscaler (issue 19) shares between replicas.
-- Same tables as db/sqlite/011_autoscale.sql.
CREATE TABLE autoscale_holds (
    queue      TEXT PRIMARY KEY,
    until_ms   BIGINT NOT NULL,
    held_by    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE autoscale_state (
    queue      TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
