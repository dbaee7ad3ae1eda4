-- SQLite serves one replica, which always leads; its epoch still increases
-- with every start, so the fencing token sent to Redis never goes back
-- (see db/postgres/003_leader_lease.sql for the lease itself).
CREATE TABLE leader_lease (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    holder     TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO leader_lease (one, holder, epoch, expires_at) VALUES (1, '', 0, 0);
