-- +goose Up
-- A sequence the sync layer moves (setval) to make PostgreSQL flush its WAL before a
-- cursor is handed out (postgres/pull.go, durableSnapshot): setval writes a WAL record
-- and takes a transaction id, so its commit flushes everything written before it. Its
-- value means nothing.
CREATE SEQUENCE sync_wal_flush;

-- +goose Down
DROP SEQUENCE sync_wal_flush;
