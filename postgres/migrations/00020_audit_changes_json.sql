-- +goose Up
-- An audit row's changes are written once, with every change, and read back whole
-- (AuditLog hands them out as they are); nothing queries inside them. As jsonb, each was
-- parsed into jsonb's binary form on the way in and printed back on the way out: about
-- 3 µs of PostgreSQL per pushed op (the COPY of a device batch's audit rows, 20 -> 17 µs
-- an op in pg_stat_statements). json keeps the text as it is written, which both write
-- paths make byte for byte as json.Marshal does (keys sorted).
--
-- The ALTER rewrites the table under an exclusive lock: about a second per 100,000
-- audit rows here. (sync_ops.result would gain ~0.7 µs an op the same way; not worth
-- rewriting a table that holds every op ever pushed.)
ALTER TABLE audit_log ALTER COLUMN changes TYPE json USING changes::json;

-- +goose Down
ALTER TABLE audit_log ALTER COLUMN changes TYPE jsonb USING changes::jsonb;
