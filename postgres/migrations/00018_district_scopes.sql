-- +goose Up
-- Who of a district may read a record, kept on the record itself. A district's
-- administrators and auditors read with district tokens only ("d:<id>", actor_tokens),
-- and their lists walk an entity's ordered index checking each row's change-log entry
-- (sync_log.scopes, 00002): three probes of the change log per lesson of a page of
-- lessons with their exchanges and teachers, half of the statement's time. A record's
-- district_scopes holds the "d:" tokens of its change-log scopes (district_tokens), so
-- such a reader's condition is on the row already read.
--
-- The change log stays the one definition of who may read a record: district_scopes is
-- a copy, written by triggers on sync_log in the same statement as the scopes it
-- copies, whoever writes them (the write path, its bulk path, refreshRelated, fixtures).
-- The write path writes an exchange child's copy with the record (its scope is
-- exchange_child_tokens, 00005), so that the trigger finds nothing to change (a second
-- version of each new row would double its writes).
-- scope_copy_disagreements lists the records whose copy differs (tests check it is
-- empty after every test database's writes).

-- +goose StatementBegin
CREATE FUNCTION district_tokens(scopes text[]) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(t ORDER BY t), '{}') FROM unnest(scopes) t WHERE t LIKE 'd:%'
$$;
-- +goose StatementEnd

ALTER TABLE districts ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE zones ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE school_groups ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE schools ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE teachers ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE school_stints ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE deferrals ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE exchanges ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE lessons ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE observations ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE research_activities ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE attendance ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE mentoring_pairs ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE mentoring_activities ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE evaluations ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE semester_reports ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE policies ADD COLUMN district_scopes text[] NOT NULL DEFAULT '{}';

UPDATE districts t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'district' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE zones t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'zone' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE school_groups t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'schoolGroup' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE schools t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'school' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE teachers t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'teacher' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE school_stints t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'schoolStint' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE deferrals t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'deferral' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE exchanges t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'exchange' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE lessons t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'lesson' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE observations t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'observation' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE research_activities t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'researchActivity' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE attendance t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'attendance' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE mentoring_pairs t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'mentoringPair' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE mentoring_activities t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'mentoringActivity' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE evaluations t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'evaluation' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE semester_reports t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'semesterReport' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';
UPDATE policies t SET district_scopes = district_tokens(l.scopes) FROM sync_log l WHERE l.entity = 'policy' AND l.id = t.id AND district_tokens(l.scopes) <> '{}';

-- A finalized evaluation is immutable, but who may read it follows its exchange's schools.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION evaluations_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.finalized AND (NEW.district_scopes IS NOT DISTINCT FROM OLD.district_scopes
            OR to_jsonb(NEW) - 'district_scopes' IS DISTINCT FROM to_jsonb(OLD) - 'district_scopes') THEN
        RAISE EXCEPTION 'evaluation % is finalized', OLD.id USING ERRCODE = 'P0001', HINT = 'locked';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd

-- copy_district_scopes_of sets the district_scopes of the records ids of entity to d
-- where they differ (an array of ids keeps the plan a probe of the primary key per row,
-- whatever their number).
-- +goose StatementBegin
CREATE FUNCTION copy_district_scopes_of(e text, ids uuid[], d text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE e
    WHEN 'district' THEN
        UPDATE districts SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'zone' THEN
        UPDATE zones SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'schoolGroup' THEN
        UPDATE school_groups SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'school' THEN
        UPDATE schools SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'teacher' THEN
        UPDATE teachers SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'schoolStint' THEN
        UPDATE school_stints SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'deferral' THEN
        UPDATE deferrals SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'exchange' THEN
        UPDATE exchanges SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'lesson' THEN
        UPDATE lessons SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'observation' THEN
        UPDATE observations SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'researchActivity' THEN
        UPDATE research_activities SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'attendance' THEN
        UPDATE attendance SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'mentoringPair' THEN
        UPDATE mentoring_pairs SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'mentoringActivity' THEN
        UPDATE mentoring_activities SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'evaluation' THEN
        UPDATE evaluations SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'semesterReport' THEN
        UPDATE semester_reports SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    WHEN 'policy' THEN
        UPDATE policies SET district_scopes = d WHERE id = ANY(ids) AND district_scopes IS DISTINCT FROM d;
    END CASE;
END $$;
-- +goose StatementEnd

-- New change-log rows, per statement: a device's batch is one COPY of hundreds, taken by
-- entity and scopes (the children of an exchange share theirs), so that district_tokens
-- runs once per group.
-- +goose StatementBegin
CREATE FUNCTION copy_district_scopes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    e text;
    s text[];
    ids uuid[];
BEGIN
    FOR e, s, ids IN SELECT entity, scopes, array_agg(id) FROM new_rows GROUP BY entity, scopes LOOP
        PERFORM copy_district_scopes_of(e, ids, district_tokens(s));
    END LOOP;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER sync_log_district_scopes_insert AFTER INSERT ON sync_log REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_district_scopes();

-- Changed scopes, per row: most updates of a change-log row (every edit of a record)
-- leave its scopes as they were, and then the trigger does not run at all.
-- +goose StatementBegin
CREATE FUNCTION copy_changed_district_scopes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM copy_district_scopes_of(NEW.entity, ARRAY[NEW.id], district_tokens(NEW.scopes));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER sync_log_district_scopes_update AFTER UPDATE OF scopes ON sync_log
    FOR EACH ROW WHEN (OLD.scopes IS DISTINCT FROM NEW.scopes) EXECUTE FUNCTION copy_changed_district_scopes();

-- +goose StatementBegin
CREATE FUNCTION scope_copy_disagreements() RETURNS TABLE (entity text, id uuid, district_scopes text[], scopes text[])
LANGUAGE sql STABLE AS $$
    SELECT 'district', t.id, t.district_scopes, l.scopes FROM districts t LEFT JOIN sync_log l ON l.entity = 'district' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'zone', t.id, t.district_scopes, l.scopes FROM zones t LEFT JOIN sync_log l ON l.entity = 'zone' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'schoolGroup', t.id, t.district_scopes, l.scopes FROM school_groups t LEFT JOIN sync_log l ON l.entity = 'schoolGroup' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'school', t.id, t.district_scopes, l.scopes FROM schools t LEFT JOIN sync_log l ON l.entity = 'school' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'teacher', t.id, t.district_scopes, l.scopes FROM teachers t LEFT JOIN sync_log l ON l.entity = 'teacher' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'schoolStint', t.id, t.district_scopes, l.scopes FROM school_stints t LEFT JOIN sync_log l ON l.entity = 'schoolStint' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'deferral', t.id, t.district_scopes, l.scopes FROM deferrals t LEFT JOIN sync_log l ON l.entity = 'deferral' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'exchange', t.id, t.district_scopes, l.scopes FROM exchanges t LEFT JOIN sync_log l ON l.entity = 'exchange' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'lesson', t.id, t.district_scopes, l.scopes FROM lessons t LEFT JOIN sync_log l ON l.entity = 'lesson' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'observation', t.id, t.district_scopes, l.scopes FROM observations t LEFT JOIN sync_log l ON l.entity = 'observation' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'researchActivity', t.id, t.district_scopes, l.scopes FROM research_activities t LEFT JOIN sync_log l ON l.entity = 'researchActivity' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'attendance', t.id, t.district_scopes, l.scopes FROM attendance t LEFT JOIN sync_log l ON l.entity = 'attendance' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'mentoringPair', t.id, t.district_scopes, l.scopes FROM mentoring_pairs t LEFT JOIN sync_log l ON l.entity = 'mentoringPair' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'mentoringActivity', t.id, t.district_scopes, l.scopes FROM mentoring_activities t LEFT JOIN sync_log l ON l.entity = 'mentoringActivity' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'evaluation', t.id, t.district_scopes, l.scopes FROM evaluations t LEFT JOIN sync_log l ON l.entity = 'evaluation' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'semesterReport', t.id, t.district_scopes, l.scopes FROM semester_reports t LEFT JOIN sync_log l ON l.entity = 'semesterReport' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
    UNION ALL
    SELECT 'policy', t.id, t.district_scopes, l.scopes FROM policies t LEFT JOIN sync_log l ON l.entity = 'policy' AND l.id = t.id
        WHERE t.district_scopes IS DISTINCT FROM coalesce(district_tokens(l.scopes), '{}')
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION scope_copy_disagreements();
DROP TRIGGER sync_log_district_scopes_update ON sync_log;
DROP TRIGGER sync_log_district_scopes_insert ON sync_log;
DROP FUNCTION copy_changed_district_scopes();
DROP FUNCTION copy_district_scopes();
DROP FUNCTION copy_district_scopes_of(text, uuid[], text[]);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION evaluations_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.finalized THEN
        RAISE EXCEPTION 'evaluation % is finalized', OLD.id USING ERRCODE = 'P0001', HINT = 'locked';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
ALTER TABLE districts DROP COLUMN district_scopes;
ALTER TABLE zones DROP COLUMN district_scopes;
ALTER TABLE school_groups DROP COLUMN district_scopes;
ALTER TABLE schools DROP COLUMN district_scopes;
ALTER TABLE teachers DROP COLUMN district_scopes;
ALTER TABLE school_stints DROP COLUMN district_scopes;
ALTER TABLE deferrals DROP COLUMN district_scopes;
ALTER TABLE exchanges DROP COLUMN district_scopes;
ALTER TABLE lessons DROP COLUMN district_scopes;
ALTER TABLE observations DROP COLUMN district_scopes;
ALTER TABLE research_activities DROP COLUMN district_scopes;
ALTER TABLE attendance DROP COLUMN district_scopes;
ALTER TABLE mentoring_pairs DROP COLUMN district_scopes;
ALTER TABLE mentoring_activities DROP COLUMN district_scopes;
ALTER TABLE evaluations DROP COLUMN district_scopes;
ALTER TABLE semester_reports DROP COLUMN district_scopes;
ALTER TABLE policies DROP COLUMN district_scopes;
DROP FUNCTION district_tokens(text[]);
