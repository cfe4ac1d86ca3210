-- +goose Up
-- (issue 6) Narrow lists of an exchange's children are read by exchange (postgres/narrow.go):
-- each exchange's first rows in the list's order, merged. A lesson also carries the token
-- of the school it was taught at, so a school's lessons include those taught there under
-- other schools' exchanges: read in the list's order from this index (most lessons have
-- no school of their own).
CREATE INDEX lessons_school_date_id ON lessons (school_id, date, id) WHERE school_id IS NOT NULL;

-- +goose Down
DROP INDEX lessons_school_date_id;
