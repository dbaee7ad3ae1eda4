-- 007_token_queues: a token may be limited to some queues (issue 18).
-- Same rule as db/sqlite/007_token_queues.sql: NULL means every queue.
ALTER TABLE api_tokens ADD COLUMN queues TEXT;
