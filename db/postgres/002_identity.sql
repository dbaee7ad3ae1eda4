-- The store's identity: a random id made once, when this database is
-- migrated. sluiced records it in <prefix>:owner so that two control planes
-- with different databases cannot drive one Redis prefix; replicas of one
-- store share it.
CREATE TABLE store_identity (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id  TEXT NOT NULL
);
INSERT INTO store_identity (one, id) VALUES (1, replace(gen_random_uuid()::text, '-', ''));
