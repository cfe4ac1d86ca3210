-- +goose Up
-- Which exchanges' weekly counters changed, so that the district views can keep the
-- activity of each exchange between calls and recount only what changed (see
-- postgres/policy_cache.go). The writers are not involved: every write to a counted
-- record already appends delta rows to exchange_week_stats (migration 00004), which tell
-- a reader which exchanges are dirty. What a reader cannot see in the delta rows is a
-- fold: stats_compact deletes them. So every fold that changes something, and every
-- rebuild, takes the next generation and records the exchanges it touched (NULL: all of
-- them), in the same transaction as the fold. stats_compact and stats_rebuild already
-- take turns (advisory lock 4004), so generations are gapless and in commit order.
CREATE TABLE exchange_stats_log (
    generation bigint PRIMARY KEY,
    touched uuid[], -- NULL: every exchange (stats_rebuild)
    at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO exchange_stats_log (generation, touched) VALUES (1, NULL);

-- +goose StatementBegin
CREATE FUNCTION stats_log(ids uuid[]) RETURNS void LANGUAGE sql AS $$
    -- A day of folds (2,880 at one every 30 s) is kept; a reader whose last look is older
    -- than the oldest kept recounts everything.
    DELETE FROM exchange_stats_log WHERE at < now() - interval '1 day'
        AND generation < (SELECT max(generation) FROM exchange_stats_log);
    INSERT INTO exchange_stats_log (generation, touched)
    SELECT coalesce(max(generation), 0) + 1, ids FROM exchange_stats_log;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_compact() RETURNS integer LANGUAGE plpgsql AS $$
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
        PERFORM stats_log(touched);
    END IF;
    RETURN coalesce(n, 0);
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_rebuild() RETURNS void LANGUAGE sql AS $$
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
    SELECT stats_log(NULL);
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_compact() RETURNS integer LANGUAGE plpgsql AS $$
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
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_rebuild() RETURNS void LANGUAGE sql AS $$
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
DROP FUNCTION stats_log(uuid[]);
DROP TABLE exchange_stats_log;
