-- +goose Up
-- Weekly counts of what each exchange logged, so that the dashboards of a district (a
-- million lessons) read a few thousand rows instead of every lesson. A bucket is a week
-- from Monday, split at 1 September so that no bucket straddles two academic years.
-- Only live (not deleted) records count; observations count when the observer is the
-- exchange's teacher.
--
-- Statement-level triggers on the tables counted append signed delta rows (delta =
-- true) and never update a row, so concurrent writers never wait for each other here
-- nor change each other's commit order. A bucket's value is the sum of its rows;
-- stats_compact() folds the delta rows of a bucket into one row, moving each row's
-- counts exactly once even when it runs concurrently with writers.
-- max_date is the latest day ever counted in a bucket and never decreases: a reader
-- recounts from the records a bucket whose max_date is after the day it judges.

-- +goose StatementBegin
CREATE FUNCTION stats_bucket(d date) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(date_trunc('week', d::timestamp)::date,
        make_date(extract(year FROM d)::int - CASE WHEN extract(month FROM d) < 9 THEN 1 ELSE 0 END, 9, 1))
$$;
-- +goose StatementEnd

CREATE TABLE exchange_week_stats (
    exchange_id uuid NOT NULL,
    week date NOT NULL,
    lessons integer NOT NULL DEFAULT 0,
    demonstration integer NOT NULL DEFAULT 0,
    guidance integer NOT NULL DEFAULT 0,
    delivered integer NOT NULL DEFAULT 0,
    research integer NOT NULL DEFAULT 0,
    surveys integer NOT NULL DEFAULT 0,
    observations integer NOT NULL DEFAULT 0,
    critiques integer NOT NULL DEFAULT 0,
    present integer NOT NULL DEFAULT 0,
    leave integer NOT NULL DEFAULT 0,
    sick integer NOT NULL DEFAULT 0,
    absent integer NOT NULL DEFAULT 0,
    max_date date,
    delta boolean NOT NULL DEFAULT true,
    -- On folded rows: the counts from 1 September through this week, and the weeks with
    -- lessons among them (kept by stats_cumulate), so that a reader takes one row per
    -- exchange for the weeks before the one it judges.
    c_lessons integer,
    c_demonstration integer,
    c_guidance integer,
    c_delivered integer,
    c_research integer,
    c_surveys integer,
    c_observations integer,
    c_critiques integer,
    c_present integer,
    c_leave integer,
    c_sick integer,
    c_absent integer,
    c_weeks integer
);
CREATE INDEX exchange_week_stats_key ON exchange_week_stats (exchange_id, week);
CREATE INDEX exchange_week_stats_delta ON exchange_week_stats (exchange_id, week) WHERE delta;
-- The ABSENT records, for the runs of unexcused absence (see postgres/policy.go).
CREATE INDEX attendance_absent ON attendance (exchange_id, date) WHERE status = 'ABSENT' AND NOT deleted;

-- Recomputes the cumulative counts of the folded rows of the given exchanges (of every
-- exchange when ids is NULL), per academic year.
-- +goose StatementBegin
CREATE FUNCTION stats_cumulate(ids uuid[]) RETURNS void LANGUAGE sql AS $$
    UPDATE exchange_week_stats s SET c_lessons = w.c_lessons, c_demonstration = w.c_demonstration, c_guidance = w.c_guidance, c_delivered = w.c_delivered, c_research = w.c_research, c_surveys = w.c_surveys, c_observations = w.c_observations, c_critiques = w.c_critiques, c_present = w.c_present, c_leave = w.c_leave, c_sick = w.c_sick, c_absent = w.c_absent, c_weeks = w.c_weeks
    FROM (
        SELECT exchange_id, week,
            sum(lessons) OVER y AS c_lessons,
            sum(demonstration) OVER y AS c_demonstration,
            sum(guidance) OVER y AS c_guidance,
            sum(delivered) OVER y AS c_delivered,
            sum(research) OVER y AS c_research,
            sum(surveys) OVER y AS c_surveys,
            sum(observations) OVER y AS c_observations,
            sum(critiques) OVER y AS c_critiques,
            sum(present) OVER y AS c_present,
            sum(leave) OVER y AS c_leave,
            sum(sick) OVER y AS c_sick,
            sum(absent) OVER y AS c_absent,
            sum((lessons > 0)::int) OVER y AS c_weeks
        FROM exchange_week_stats
        WHERE NOT delta AND (ids IS NULL OR exchange_id = ANY(ids))
        WINDOW y AS (PARTITION BY exchange_id, extract(year FROM week - interval '8 months') ORDER BY week)
    ) w
    WHERE s.exchange_id = w.exchange_id AND s.week = w.week AND NOT s.delta
$$;
-- +goose StatementEnd

-- Folds the delta rows of every bucket that has some into one row per bucket, and
-- returns the number of buckets written. Runs of stats_compact and stats_rebuild take
-- turns (an advisory lock), so that each bucket has at most one folded row
-- (delta = false) and the cumulative counts are those of the folded rows: readers rely
-- on both.
-- +goose StatementBegin
CREATE FUNCTION stats_compact() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    touched uuid[];
    n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(4004);
    WITH k AS (
        SELECT DISTINCT exchange_id, week FROM exchange_week_stats WHERE delta
    ), d AS (
        DELETE FROM exchange_week_stats s USING k WHERE s.exchange_id = k.exchange_id AND s.week = k.week RETURNING s.*
    ), ins AS (
        INSERT INTO exchange_week_stats (exchange_id, week, lessons, demonstration, guidance, delivered, research, surveys,
                observations, critiques, present, leave, sick, absent, max_date, delta)
        SELECT exchange_id, week, sum(lessons), sum(demonstration), sum(guidance), sum(delivered), sum(research), sum(surveys),
            sum(observations), sum(critiques), sum(present), sum(leave), sum(sick), sum(absent), max(max_date), false
        FROM d GROUP BY exchange_id, week
        RETURNING exchange_id
    )
    SELECT array_agg(DISTINCT exchange_id), count(*) INTO touched, n FROM ins;
    IF touched IS NOT NULL THEN
        PERFORM stats_cumulate(touched);
    END IF;
    RETURN coalesce(n, 0);
END $$;
-- +goose StatementEnd

-- Recounts every bucket from the records: after a bulk load with the triggers disabled,
-- or to repair the table.
-- +goose StatementBegin
CREATE FUNCTION stats_rebuild() RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(4004);
    DELETE FROM exchange_week_stats;
    INSERT INTO exchange_week_stats (exchange_id, week, lessons, demonstration, guidance, delivered, research, surveys,
            observations, critiques, present, leave, sick, absent, max_date, delta)
    SELECT exchange_id, stats_bucket(date), sum(lessons), sum(demonstration), sum(guidance), sum(delivered), sum(research),
        sum(surveys), sum(observations), sum(critiques), sum(present), sum(leave), sum(sick), sum(absent), max(date), false
    FROM (
        SELECT exchange_id, date, 1 AS lessons, (kind = 'DEMONSTRATION')::int AS demonstration, (kind = 'GUIDANCE')::int AS guidance,
            (kind = 'DELIVERED')::int AS delivered, 0 AS research, 0 AS surveys, 0 AS observations, 0 AS critiques,
            0 AS present, 0 AS leave, 0 AS sick, 0 AS absent
        FROM lessons WHERE NOT deleted
        UNION ALL
        SELECT exchange_id, date, 0, 0, 0, 0, 0, 0, 0, 0, (status = 'PRESENT')::int, (status = 'LEAVE')::int,
            (status = 'SICK')::int, (status = 'ABSENT')::int
        FROM attendance WHERE NOT deleted
        UNION ALL
        SELECT exchange_id, date, 0, 0, 0, 0, 1, (kind = 'SURVEY')::int, 0, 0, 0, 0, 0, 0
        FROM research_activities WHERE NOT deleted
        UNION ALL
        SELECT o.exchange_id, o.date, 0, 0, 0, 0, 0, 0, 1, o.critique::int, 0, 0, 0, 0
        FROM observations o JOIN exchanges x ON x.id = o.exchange_id AND x.teacher_id = o.observer_id
        WHERE NOT o.deleted
    ) u
    GROUP BY exchange_id, stats_bucket(date);
    SELECT stats_cumulate(NULL);
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION lessons_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, lessons, demonstration, guidance, delivered, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'DEMONSTRATION'), 0), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'GUIDANCE'), 0), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'DELIVERED'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, kind, 1 AS sign FROM new_rows WHERE NOT deleted) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, lessons, demonstration, guidance, delivered, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'DEMONSTRATION'), 0), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'GUIDANCE'), 0), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'DELIVERED'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, kind, -1 AS sign FROM old_rows WHERE NOT deleted) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSE
        INSERT INTO exchange_week_stats (exchange_id, week, lessons, demonstration, guidance, delivered, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'DEMONSTRATION'), 0), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'GUIDANCE'), 0), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'DELIVERED'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT o.exchange_id, o.date, o.kind, -1 AS sign FROM old_rows o JOIN new_rows n USING (id)
            WHERE NOT o.deleted AND (o.exchange_id, o.date, o.kind, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.kind, n.deleted)
            UNION ALL
            SELECT n.exchange_id, n.date, n.kind, 1 FROM new_rows n JOIN old_rows o USING (id)
            WHERE NOT n.deleted AND (o.exchange_id, o.date, o.kind, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.kind, n.deleted)) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER lessons_stats_insert AFTER INSERT ON lessons REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lessons_stats();
CREATE TRIGGER lessons_stats_update AFTER UPDATE ON lessons REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lessons_stats();
CREATE TRIGGER lessons_stats_delete AFTER DELETE ON lessons REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lessons_stats();

-- +goose StatementBegin
CREATE FUNCTION attendance_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, present, leave, sick, absent, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), coalesce(sum(c.sign) FILTER (WHERE c.status = 'PRESENT'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'LEAVE'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'SICK'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'ABSENT'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, status, 1 AS sign FROM new_rows WHERE NOT deleted) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, present, leave, sick, absent, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), coalesce(sum(c.sign) FILTER (WHERE c.status = 'PRESENT'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'LEAVE'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'SICK'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'ABSENT'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, status, -1 AS sign FROM old_rows WHERE NOT deleted) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSE
        INSERT INTO exchange_week_stats (exchange_id, week, present, leave, sick, absent, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), coalesce(sum(c.sign) FILTER (WHERE c.status = 'PRESENT'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'LEAVE'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'SICK'), 0), coalesce(sum(c.sign) FILTER (WHERE c.status = 'ABSENT'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT o.exchange_id, o.date, o.status, -1 AS sign FROM old_rows o JOIN new_rows n USING (id)
            WHERE NOT o.deleted AND (o.exchange_id, o.date, o.status, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.status, n.deleted)
            UNION ALL
            SELECT n.exchange_id, n.date, n.status, 1 FROM new_rows n JOIN old_rows o USING (id)
            WHERE NOT n.deleted AND (o.exchange_id, o.date, o.status, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.status, n.deleted)) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER attendance_stats_insert AFTER INSERT ON attendance REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attendance_stats();
CREATE TRIGGER attendance_stats_update AFTER UPDATE ON attendance REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attendance_stats();
CREATE TRIGGER attendance_stats_delete AFTER DELETE ON attendance REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attendance_stats();

-- +goose StatementBegin
CREATE FUNCTION research_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, research, surveys, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'SURVEY'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, kind, 1 AS sign FROM new_rows WHERE NOT deleted) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, research, surveys, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'SURVEY'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, kind, -1 AS sign FROM old_rows WHERE NOT deleted) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSE
        INSERT INTO exchange_week_stats (exchange_id, week, research, surveys, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.kind = 'SURVEY'), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT o.exchange_id, o.date, o.kind, -1 AS sign FROM old_rows o JOIN new_rows n USING (id)
            WHERE NOT o.deleted AND (o.exchange_id, o.date, o.kind, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.kind, n.deleted)
            UNION ALL
            SELECT n.exchange_id, n.date, n.kind, 1 FROM new_rows n JOIN old_rows o USING (id)
            WHERE NOT n.deleted AND (o.exchange_id, o.date, o.kind, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.kind, n.deleted)) c
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER research_stats_insert AFTER INSERT ON research_activities REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION research_stats();
CREATE TRIGGER research_stats_update AFTER UPDATE ON research_activities REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION research_stats();
CREATE TRIGGER research_stats_delete AFTER DELETE ON research_activities REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION research_stats();

-- +goose StatementBegin
CREATE FUNCTION observations_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, observations, critiques, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.critique), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, observer_id, critique, 1 AS sign FROM new_rows WHERE NOT deleted) c JOIN exchanges x ON x.id = c.exchange_id AND x.teacher_id = c.observer_id
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO exchange_week_stats (exchange_id, week, observations, critiques, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.critique), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT exchange_id, date, observer_id, critique, -1 AS sign FROM old_rows WHERE NOT deleted) c JOIN exchanges x ON x.id = c.exchange_id AND x.teacher_id = c.observer_id
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    ELSE
        INSERT INTO exchange_week_stats (exchange_id, week, observations, critiques, max_date)
        SELECT c.exchange_id, stats_bucket(c.date), sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.critique), 0),
            max(c.date) FILTER (WHERE c.sign > 0)
        FROM (SELECT o.exchange_id, o.date, o.observer_id, o.critique, -1 AS sign FROM old_rows o JOIN new_rows n USING (id)
            WHERE NOT o.deleted AND (o.exchange_id, o.date, o.observer_id, o.critique, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.observer_id, n.critique, n.deleted)
            UNION ALL
            SELECT n.exchange_id, n.date, n.observer_id, n.critique, 1 FROM new_rows n JOIN old_rows o USING (id)
            WHERE NOT n.deleted AND (o.exchange_id, o.date, o.observer_id, o.critique, o.deleted) IS DISTINCT FROM (n.exchange_id, n.date, n.observer_id, n.critique, n.deleted)) c JOIN exchanges x ON x.id = c.exchange_id AND x.teacher_id = c.observer_id
        WHERE c.exchange_id IS NOT NULL
        GROUP BY 1, 2;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER observations_stats_insert AFTER INSERT ON observations REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION observations_stats();
CREATE TRIGGER observations_stats_update AFTER UPDATE ON observations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION observations_stats();
CREATE TRIGGER observations_stats_delete AFTER DELETE ON observations REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION observations_stats();

SELECT stats_rebuild();

-- +goose Down
DROP TRIGGER observations_stats_insert ON observations;
DROP TRIGGER observations_stats_update ON observations;
DROP TRIGGER observations_stats_delete ON observations;
DROP TRIGGER research_stats_insert ON research_activities;
DROP TRIGGER research_stats_update ON research_activities;
DROP TRIGGER research_stats_delete ON research_activities;
DROP TRIGGER attendance_stats_insert ON attendance;
DROP TRIGGER attendance_stats_update ON attendance;
DROP TRIGGER attendance_stats_delete ON attendance;
DROP TRIGGER lessons_stats_insert ON lessons;
DROP TRIGGER lessons_stats_update ON lessons;
DROP TRIGGER lessons_stats_delete ON lessons;
DROP FUNCTION observations_stats();
DROP FUNCTION research_stats();
DROP FUNCTION attendance_stats();
DROP FUNCTION lessons_stats();
DROP FUNCTION stats_rebuild();
DROP FUNCTION stats_compact();
DROP FUNCTION stats_cumulate(uuid[]);
DROP TABLE exchange_week_stats;
DROP INDEX attendance_absent;
DROP FUNCTION stats_bucket(date);
