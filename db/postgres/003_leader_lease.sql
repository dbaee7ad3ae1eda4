-- Leadership as a lease: one row, renewed by the leader every second or so.
-- A replica takes over only after expires_at (database time) has passed, and
-- every new term increments epoch: the fencing token the relay sends with
-- each write to Redis, so a deposed leader's late writes are refused there.
CREATE TABLE leader_lease (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO leader_lease (one, holder, epoch, expires_at) VALUES (1, '', 0, 'epoch');
