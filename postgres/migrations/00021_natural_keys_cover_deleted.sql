-- +goose Up
-- A lesson's and an attendance record's natural key was unique among live rows by a
-- partial index (WHERE NOT deleted), which a query for all of an exchange's children,
-- deleted ones included (the scope refresh when an exchange changes schools or status),
-- cannot use. Lessons had a second index, (exchange_id, date), for that; attendance had
-- none, so the refresh read the whole attendance table.
--
-- Each natural key is now one index over every row: the key, then NULL for a live row
-- and the row's id for a deleted one, with NULLs not distinct. Live rows with the same
-- key collide, as before; deleted ones never do, as before (the key's columns are NOT
-- NULL, so any data the partial indexes took, these take). NULLS NOT DISTINCT needs
-- PostgreSQL 15. Queries by exchange use its first column whether they ask for deleted
-- rows or not, so lessons_exchange_date goes: one index fewer for every pushed lesson
-- (Apply of 10 x 500 creates, alternated 3 times: 18,154-20,324 -> 21,570-21,706 ops/s,
-- BENCHMARKS.md session 16).
--
-- Building them reads each table once: 0.65 s for a million lessons here, 0.11 s for
-- 200,000 attendance records.
CREATE UNIQUE INDEX lessons_natural_key_all ON lessons (exchange_id, date, period, (CASE WHEN deleted THEN id END)) NULLS NOT DISTINCT;
DROP INDEX lessons_natural_key;
DROP INDEX lessons_exchange_date;
ALTER INDEX lessons_natural_key_all RENAME TO lessons_natural_key;

CREATE UNIQUE INDEX attendance_natural_key_all ON attendance (exchange_id, date, (CASE WHEN deleted THEN id END)) NULLS NOT DISTINCT;
DROP INDEX attendance_natural_key;
ALTER INDEX attendance_natural_key_all RENAME TO attendance_natural_key;

-- +goose Down
CREATE UNIQUE INDEX lessons_natural_key_live ON lessons (exchange_id, date, period) WHERE NOT deleted;
CREATE INDEX lessons_exchange_date ON lessons (exchange_id, date);
DROP INDEX lessons_natural_key;
ALTER INDEX lessons_natural_key_live RENAME TO lessons_natural_key;

CREATE UNIQUE INDEX attendance_natural_key_live ON attendance (exchange_id, date) WHERE NOT deleted;
DROP INDEX attendance_natural_key;
ALTER INDEX attendance_natural_key_live RENAME TO attendance_natural_key;
