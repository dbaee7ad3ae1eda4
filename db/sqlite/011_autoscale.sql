-- 011_autoscale: what the autoscaler (issue 19) shares between replicas.
-- autoscale_holds: an operator's explicit hold of a queue's rule, until
-- until_ms (POST /api/v1/autoscalers/{queue}/hold); a release is a hold
-- that ended when it was made (it also ends the hold after a manual change
-- made before it). held_by: "by" is an SQL keyword.
-- autoscale_state: the leader's last view of each rule (its decisions, its
-- error, its next evaluation) as JSON text, so that followers answer
-- GET /api/v1/autoscalers as the leader would.
CREATE TABLE autoscale_holds (
    queue      TEXT PRIMARY KEY,
    until_ms   INTEGER NOT NULL,
    held_by    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE autoscale_state (
    queue      TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
