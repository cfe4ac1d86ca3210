-- +goose Up
-- (issue 6) Every record a page shows, and every record it refers to, is checked against
-- its row of sync_log (who may read it): a district's page of 50 exchanges with their
-- teachers and schools probes sync_log 200 times. The primary key serves those probes
-- from one index of every record (1.25M entries in the generated district, three levels
-- of (text, uuid) keys). The records pages refer to are of a few small entities, rarely
-- written: an index of each one's ids alone is one or two levels of uuids (300 schools:
-- 80 kB). Measured on that district with pgbench (prepared, the server's statement):
-- the page of exchanges 0.79-1.29 -> 0.63-0.93 ms. The queries name the entity as a
-- literal, so the planner uses these partial indexes. Lessons, attendance and the other
-- records written by every push keep only the primary key: a push should not maintain
-- a second entry per row.
CREATE INDEX sync_log_district_id ON sync_log (id) WHERE entity = 'district';
CREATE INDEX sync_log_zone_id ON sync_log (id) WHERE entity = 'zone';
CREATE INDEX sync_log_school_group_id ON sync_log (id) WHERE entity = 'schoolGroup';
CREATE INDEX sync_log_school_id ON sync_log (id) WHERE entity = 'school';
CREATE INDEX sync_log_teacher_id ON sync_log (id) WHERE entity = 'teacher';
CREATE INDEX sync_log_exchange_id ON sync_log (id) WHERE entity = 'exchange';
CREATE INDEX sync_log_mentoring_pair_id ON sync_log (id) WHERE entity = 'mentoringPair';

-- +goose Down
DROP INDEX sync_log_district_id, sync_log_zone_id, sync_log_school_group_id, sync_log_school_id,
    sync_log_teacher_id, sync_log_exchange_id, sync_log_mentoring_pair_id;
