-- +goose Up
-- (issue 6) actor_tokens computes what 00002's SQL function computed, in PL/pgSQL so that
-- its plans are kept per session. A teacher's tokens are read on every sync message
-- (re-authentication) and on every scope refresh; the SQL function, not inlinable, was
-- planned anew on each call: 0.9 ms of each authentication, about 0.05 ms now.
-- TestActorTokensAreThoseOf00002 compares both.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION actor_tokens(role text, district uuid, school uuid, teacher uuid) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
BEGIN
    CASE role
    WHEN 'DISTRICT_ADMIN', 'AUDITOR' THEN
        RETURN ARRAY['d:' || district];
    WHEN 'SCHOOL_ADMIN' THEN
        RETURN ARRAY['s:' || school];
    WHEN 'TEACHER' THEN
        RETURN (WITH served AS (
                SELECT school_id AS s FROM teachers WHERE id = teacher
                UNION SELECT sending_school_id FROM exchanges WHERE teacher_id = teacher AND NOT deleted AND status <> 'CANCELLED'
                UNION SELECT receiving_school_id FROM exchanges WHERE teacher_id = teacher AND NOT deleted AND status <> 'CANCELLED')
            SELECT ARRAY['t:' || teacher]
                || coalesce((SELECT array_agg('ps:' || s ORDER BY s) FROM served WHERE s IS NOT NULL), '{}')
                || coalesce((SELECT array_agg(DISTINCT 'pd:' || sc.district_id) FROM served JOIN schools sc ON sc.id = served.s), '{}'));
    ELSE
        RETURN '{}'::text[];
    END CASE;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION actor_tokens(role text, district uuid, school uuid, teacher uuid) RETURNS text[] LANGUAGE sql STABLE AS $$
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
