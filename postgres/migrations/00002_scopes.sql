-- +goose Up
-- Who may read and write each record, as scope tokens (see sync_log in 00001). These
-- functions are the one definition of visibility: GraphQL reads, sync pulls, pokes and
-- write authorization all use the tokens they compute.

-- +goose StatementBegin
CREATE FUNCTION school_tokens(s uuid) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s IS NULL THEN '{}'::text[]
        ELSE ARRAY['s:' || s, 'd:' || (SELECT district_id FROM schools WHERE id = s)] END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION exchange_tokens(e uuid) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT ARRAY['t:' || x.teacher_id] || school_tokens(x.sending_school_id) || school_tokens(x.receiving_school_id)
        FROM exchanges x WHERE x.id = e), '{}')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION exchange_teacher(e uuid) RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT teacher_id FROM exchanges WHERE id = e
$$;
-- +goose StatementEnd

-- A teacher's record is read by the teacher, the admins of their school and of every
-- school of their exchanges, and their mentoring partners.
-- +goose StatementBegin
CREATE FUNCTION teacher_tokens(t uuid) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT ARRAY['t:' || t]
        || school_tokens((SELECT school_id FROM teachers WHERE id = t))
        || coalesce((SELECT array_agg(tok) FROM exchanges x, unnest(exchange_tokens(x.id)) tok
                     WHERE x.teacher_id = t AND NOT x.deleted), '{}')
        || coalesce((SELECT array_agg('t:' || CASE WHEN p.mentor_id = t THEN p.mentee_id ELSE p.mentor_id END)
                     FROM mentoring_pairs p WHERE (p.mentor_id = t OR p.mentee_id = t) AND NOT p.deleted), '{}')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pair_tokens(p uuid) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT ARRAY['t:' || mp.mentor_id, 't:' || mp.mentee_id, 'w:' || mp.mentor_id]
            || school_tokens(mp.school_id)
            || school_tokens((SELECT school_id FROM teachers WHERE id = mp.mentor_id))
            || school_tokens((SELECT school_id FROM teachers WHERE id = mp.mentee_id))
        FROM mentoring_pairs mp WHERE mp.id = p), '{}')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION scope_tokens(entity text, rid uuid) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    toks text[];
BEGIN
    CASE entity
    WHEN 'district' THEN
        toks := ARRAY['d:' || rid, 'pd:' || rid];
    WHEN 'zone' THEN
        SELECT ARRAY['d:' || district_id, 'pd:' || district_id] INTO toks FROM zones WHERE id = rid;
    WHEN 'schoolGroup' THEN
        SELECT ARRAY['d:' || district_id, 'pd:' || district_id] INTO toks FROM school_groups WHERE id = rid;
    WHEN 'policy' THEN
        SELECT ARRAY['d:' || district_id, 'pd:' || district_id] INTO toks FROM policies WHERE id = rid;
    WHEN 'school' THEN
        SELECT ARRAY['d:' || district_id, 's:' || id, 'ps:' || id] INTO toks FROM schools WHERE id = rid;
    WHEN 'teacher' THEN
        toks := teacher_tokens(rid);
    WHEN 'schoolStint' THEN
        SELECT teacher_tokens(teacher_id) || school_tokens(school_id) INTO toks FROM school_stints WHERE id = rid;
    WHEN 'deferral' THEN
        SELECT teacher_tokens(teacher_id) INTO toks FROM deferrals WHERE id = rid;
    WHEN 'exchange' THEN
        toks := exchange_tokens(rid);
    WHEN 'lesson' THEN
        SELECT exchange_tokens(exchange_id) || ('w:' || exchange_teacher(exchange_id)) || school_tokens(school_id)
            INTO toks FROM lessons WHERE id = rid;
    WHEN 'researchActivity' THEN
        SELECT exchange_tokens(exchange_id) || ('w:' || exchange_teacher(exchange_id)) INTO toks FROM research_activities WHERE id = rid;
    WHEN 'attendance' THEN
        SELECT exchange_tokens(exchange_id) || ('w:' || exchange_teacher(exchange_id)) INTO toks FROM attendance WHERE id = rid;
    WHEN 'semesterReport' THEN
        SELECT exchange_tokens(exchange_id) || ('w:' || exchange_teacher(exchange_id)) INTO toks FROM semester_reports WHERE id = rid;
    WHEN 'evaluation' THEN
        SELECT exchange_tokens(exchange_id) || school_tokens(evaluator_school_id) INTO toks FROM evaluations WHERE id = rid;
    WHEN 'observation' THEN
        SELECT ARRAY['t:' || o.observed_teacher_id]
            || CASE WHEN o.observer_id IS NULL THEN '{}'::text[] ELSE ARRAY['t:' || o.observer_id, 'w:' || o.observer_id] END
            || school_tokens((SELECT school_id FROM teachers WHERE id = o.observed_teacher_id))
            || school_tokens((SELECT school_id FROM teachers WHERE id = o.observer_id))
            || CASE WHEN o.exchange_id IS NULL THEN '{}'::text[] ELSE exchange_tokens(o.exchange_id) END
            INTO toks FROM observations o WHERE o.id = rid;
    WHEN 'mentoringPair' THEN
        toks := pair_tokens(rid);
    WHEN 'mentoringActivity' THEN
        SELECT pair_tokens(a.pair_id) || ('w:' || (SELECT mentee_id FROM mentoring_pairs WHERE id = a.pair_id))
            INTO toks FROM mentoring_activities a WHERE a.id = rid;
    ELSE
        RAISE EXCEPTION 'scope_tokens: unknown entity %', entity;
    END CASE;
    RETURN (SELECT coalesce(array_agg(DISTINCT t ORDER BY t), '{}') FROM unnest(toks) t WHERE t IS NOT NULL);
END $$;
-- +goose StatementEnd

-- The tokens an actor reads with. A teacher serves their own school and the schools of
-- their exchanges (not cancelled), and reads the reference data of those schools.
-- +goose StatementBegin
CREATE FUNCTION actor_tokens(role text, district uuid, school uuid, teacher uuid) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT CASE role
        WHEN 'DISTRICT_ADMIN' THEN ARRAY['d:' || district]
        WHEN 'AUDITOR' THEN ARRAY['d:' || district]
        WHEN 'SCHOOL_ADMIN' THEN ARRAY['s:' || school]
        WHEN 'TEACHER' THEN (
            WITH served AS (
                SELECT school_id AS s FROM teachers WHERE id = teacher
                UNION SELECT sending_school_id FROM exchanges WHERE teacher_id = teacher AND NOT deleted AND status <> 'CANCELLED'
                UNION SELECT receiving_school_id FROM exchanges WHERE teacher_id = teacher AND NOT deleted AND status <> 'CANCELLED')
            SELECT ARRAY['t:' || teacher]
                || coalesce((SELECT array_agg('ps:' || s ORDER BY s) FROM served WHERE s IS NOT NULL), '{}')
                || coalesce((SELECT array_agg(DISTINCT 'pd:' || sc.district_id) FROM served JOIN schools sc ON sc.id = served.s), '{}'))
        ELSE '{}'::text[] END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION actor_tokens(text, uuid, uuid, uuid);
DROP FUNCTION scope_tokens(text, uuid);
DROP FUNCTION pair_tokens(uuid);
DROP FUNCTION teacher_tokens(uuid);
DROP FUNCTION exchange_teacher(uuid);
DROP FUNCTION exchange_tokens(uuid);
DROP FUNCTION school_tokens(uuid);
