-- +goose Up
-- (issue 6) A list filtered by school or district matched its scope token in the one GIN
-- index of sync_log, whose posting list for a school holds every record of the school:
-- a page of a school's 40 teachers read the 8,700 entries of its token (lessons,
-- attendance, ...) and intersected them with the 12,000 teacher rows (45 ms). A GIN
-- index per entity answers the same condition from the entity's own entries (2 ms).
-- The lists' queries name the entity as a literal (postgres/read.go), so the planner
-- uses these partial indexes. Lessons and attendance, the two high-volume entities
-- written by every push, keep only the shared index: their lists filter by exchange
-- or date, which have their own indexes, and a push should not maintain two GIN
-- entries per row.
CREATE INDEX sync_log_scopes_district ON sync_log USING gin (scopes) WHERE entity = 'district';
CREATE INDEX sync_log_scopes_zone ON sync_log USING gin (scopes) WHERE entity = 'zone';
CREATE INDEX sync_log_scopes_school_group ON sync_log USING gin (scopes) WHERE entity = 'schoolGroup';
CREATE INDEX sync_log_scopes_school ON sync_log USING gin (scopes) WHERE entity = 'school';
CREATE INDEX sync_log_scopes_teacher ON sync_log USING gin (scopes) WHERE entity = 'teacher';
CREATE INDEX sync_log_scopes_school_stint ON sync_log USING gin (scopes) WHERE entity = 'schoolStint';
CREATE INDEX sync_log_scopes_deferral ON sync_log USING gin (scopes) WHERE entity = 'deferral';
CREATE INDEX sync_log_scopes_exchange ON sync_log USING gin (scopes) WHERE entity = 'exchange';
CREATE INDEX sync_log_scopes_observation ON sync_log USING gin (scopes) WHERE entity = 'observation';
CREATE INDEX sync_log_scopes_research_activity ON sync_log USING gin (scopes) WHERE entity = 'researchActivity';
CREATE INDEX sync_log_scopes_mentoring_pair ON sync_log USING gin (scopes) WHERE entity = 'mentoringPair';
CREATE INDEX sync_log_scopes_mentoring_activity ON sync_log USING gin (scopes) WHERE entity = 'mentoringActivity';
CREATE INDEX sync_log_scopes_evaluation ON sync_log USING gin (scopes) WHERE entity = 'evaluation';
CREATE INDEX sync_log_scopes_semester_report ON sync_log USING gin (scopes) WHERE entity = 'semesterReport';
CREATE INDEX sync_log_scopes_policy ON sync_log USING gin (scopes) WHERE entity = 'policy';

-- +goose Down
DROP INDEX sync_log_scopes_district, sync_log_scopes_zone, sync_log_scopes_school_group, sync_log_scopes_school, sync_log_scopes_teacher, sync_log_scopes_school_stint, sync_log_scopes_deferral, sync_log_scopes_exchange, sync_log_scopes_observation, sync_log_scopes_research_activity, sync_log_scopes_mentoring_pair, sync_log_scopes_mentoring_activity, sync_log_scopes_evaluation, sync_log_scopes_semester_report, sync_log_scopes_policy;
