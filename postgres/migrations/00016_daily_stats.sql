-- +goose Up
-- (issue 6) The counts of exchange_week_stats (migration 00004) are kept per day, not
-- per week. A view as of a day in the middle of a week read the cumulative counts of the
-- week before and recounted that week's first days from the records: for a district,
-- every exchange's lessons, attendance, research and observations of up to six days
-- (15,000 lessons on as many heap pages), 25-45 ms of the 40-60 ms of the activity
-- query. With a bucket per day, the cumulative counts of the last folded day up to the
-- day judged are the answer, one row per exchange, whatever the day.
--
-- Every writer of the table computes its bucket with stats_bucket, so redefining it
-- makes the buckets days (the column keeps its name, week: the bucket's first and only
-- day). The weeks with lessons (c_weeks, LessonWeeks) are still weeks: stats_week is
-- the former bucket (the Monday, or 1 September when later), and a day starts a week
-- with lessons when no earlier day of its week had any. The table is rebuilt by day,
-- which logs a generation touching every exchange (migration 00011), so the district
-- views' kept counts are recounted.

-- +goose StatementBegin
CREATE FUNCTION stats_week(d date) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(date_trunc('week', d::timestamp)::date,
        make_date(extract(year FROM d)::int - CASE WHEN extract(month FROM d) < 9 THEN 1 ELSE 0 END, 9, 1))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_bucket(d date) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT d
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_cumulate_weeks(ids uuid[]) RETURNS void LANGUAGE sql AS $$
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
            sum(first_of_week) OVER y AS c_weeks
        FROM (
            SELECT *, (lessons > 0 AND coalesce(sum(lessons) OVER (PARTITION BY exchange_id, stats_week(week) ORDER BY week
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) = 0)::int AS first_of_week
            FROM exchange_week_stats
            WHERE NOT delta AND (ids IS NULL OR exchange_id = ANY(ids))
        ) d
        WINDOW y AS (PARTITION BY exchange_id, extract(year FROM week - interval '8 months') ORDER BY week)
    ) w
    WHERE s.exchange_id = w.exchange_id AND s.week = w.week AND NOT s.delta
$$;
-- +goose StatementEnd

SELECT stats_rebuild();

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_bucket(d date) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(date_trunc('week', d::timestamp)::date,
        make_date(extract(year FROM d)::int - CASE WHEN extract(month FROM d) < 9 THEN 1 ELSE 0 END, 9, 1))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stats_cumulate_weeks(ids uuid[]) RETURNS void LANGUAGE sql AS $$
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

DROP FUNCTION stats_week(date);
SELECT stats_rebuild();
