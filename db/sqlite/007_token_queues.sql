-- 007_token_queues: a token may be limited to some queues (issue 18).
-- queues holds the token's patterns in canonical form (auth.c: each a queue
-- name, optionally ending in '*' for a prefix; sorted, no duplicates,
-- comma-separated); NULL means every queue, as for every token made before.
ALTER TABLE api_tokens ADD COLUMN queues TEXT;
