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

-- The folds (stats_compact) and the rebuild (stats_rebuild) both end by cumulating the
-- exchanges they touched (NULL: all of them), and nothing else cumulates: cumulating is
-- where a fold is logged.
ALTER FUNCTION stats_cumulate(uuid[]) RENAME TO stats_cumulate_weeks;
-- +goose StatementBegin
CREATE FUNCTION stats_cumulate(ids uuid[]) RETURNS void LANGUAGE sql AS $$
    SELECT stats_cumulate_weeks(ids);
    SELECT stats_log(ids);
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stats_cumulate(uuid[]);
ALTER FUNCTION stats_cumulate_weeks(uuid[]) RENAME TO stats_cumulate;
DROP FUNCTION stats_log(uuid[]);
DROP TABLE exchange_stats_log;
