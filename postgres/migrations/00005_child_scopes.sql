-- +goose Up
-- Faster scope tokens for the records devices write most (lessons, attendance, research
-- activities, semester reports). Their readers depend only on their exchange and, for a
-- lesson, its school: exchange_child_tokens computes exactly what scope_tokens of
-- 00002 computed for them (exchange_tokens || 'w:' teacher || school_tokens, distinct,
-- sorted, without NULLs) in one query. It is PL/pgSQL so that its plan is cached per
-- session: the SQL helper functions of 00002, called from PL/pgSQL, were planned anew
-- on every call (about 0.2 ms of each call of scope_tokens). The write path's bulk
-- insert calls exchange_child_tokens once per distinct (exchange, school) of a batch.

-- +goose StatementBegin
CREATE FUNCTION exchange_child_tokens(p_exchange uuid, p_school uuid) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT tok ORDER BY tok), '{}') FROM (
        SELECT unnest(ARRAY['t:' || x.teacher_id, 'w:' || x.teacher_id,
                's:' || x.sending_school_id, 'd:' || ss.district_id,
                's:' || x.receiving_school_id, 'd:' || rs.district_id])
            FROM exchanges x
            LEFT JOIN schools ss ON ss.id = x.sending_school_id
            LEFT JOIN schools rs ON rs.id = x.receiving_school_id
            WHERE x.id = p_exchange
        UNION ALL
        SELECT unnest(ARRAY['s:' || p_school, 'd:' || sc.district_id])
            FROM (SELECT 1) one LEFT JOIN schools sc ON sc.id = p_school
            WHERE p_school IS NOT NULL
    ) u(tok) WHERE tok IS NOT NULL);
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION scope_tokens(entity text, rid uuid) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    toks text[];
    child_exchange uuid;
    child_school uuid;
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
        SELECT exchange_id, school_id INTO child_exchange, child_school FROM lessons WHERE id = rid;
        IF FOUND THEN RETURN exchange_child_tokens(child_exchange, child_school); END IF;
    WHEN 'researchActivity' THEN
        SELECT exchange_id INTO child_exchange FROM research_activities WHERE id = rid;
        IF FOUND THEN RETURN exchange_child_tokens(child_exchange, NULL); END IF;
    WHEN 'attendance' THEN
        SELECT exchange_id INTO child_exchange FROM attendance WHERE id = rid;
        IF FOUND THEN RETURN exchange_child_tokens(child_exchange, NULL); END IF;
    WHEN 'semesterReport' THEN
        SELECT exchange_id INTO child_exchange FROM semester_reports WHERE id = rid;
        IF FOUND THEN RETURN exchange_child_tokens(child_exchange, NULL); END IF;
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION scope_tokens(entity text, rid uuid) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
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
DROP FUNCTION exchange_child_tokens(uuid, uuid);
