-- +goose Up
-- (issue 6) Schools and teachers are listed by (name, id) (postgres/read.go). A district
-- administrator's page of schools read every school of the table, looked up each one's
-- scope and sorted them all (300 schools: 1.3 ms, 1,200 buffers); with the order in an
-- index the page stops after its 51 rows. The same for a district's teachers (12,000).
CREATE INDEX schools_name_id ON schools (name, id) WHERE NOT deleted;
CREATE INDEX teachers_name_id ON teachers (name, id) WHERE NOT deleted;

-- +goose Down
DROP INDEX schools_name_id, teachers_name_id;
