-- +goose Up
-- (issue 6) List pages are ordered by (date, id) or (plannedStart, id), descending
-- (postgres/read.go). Without an index on both columns a district admin's page of a
-- month's lessons sorted every lesson of the month (475 ms p50 at 1M lessons). The
-- index on (date, id) replaces the one on date alone, so a lesson write maintains as
-- many indexes as before.
CREATE INDEX lessons_date_id ON lessons (date, id);
DROP INDEX lessons_date;
CREATE INDEX attendance_date_id ON attendance (date, id);
CREATE INDEX research_activities_date_id ON research_activities (date, id);
CREATE INDEX exchanges_planned_start_id ON exchanges (planned_start, id);

-- +goose Down
DROP INDEX lessons_date_id, attendance_date_id, research_activities_date_id, exchanges_planned_start_id;
CREATE INDEX lessons_date ON lessons (date);
