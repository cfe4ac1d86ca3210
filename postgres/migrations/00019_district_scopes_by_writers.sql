-- +goose Up
-- Lessons, attendance and research activities are what devices push by the hundred
-- (the write path's bulk entities, postgres/bulk.go), and their writers write each new
-- record's district_scopes with it: the bulk path from its batch's
-- exchange_child_tokens, the per-op create in its INSERT, the fixtures in theirs.
-- 00018's statement trigger still ran for every COPY of their change-log rows: it kept
-- the new rows in a transition table, grouped them, and probed every record by its
-- primary key to find nothing to change (about 5 µs of PostgreSQL per pushed op, and a
-- transition table and two plpgsql calls per single-op push).
--
-- New change-log rows of the other entities (low-volume, written one by one) are still
-- copied by a trigger, now per row; those three are copied by their writers, and
-- scope_copy_disagreements (checked after every test database's writes) names any
-- record a writer left without its copy. Changed scopes (an exchange moving between
-- districts) are copied by 00018's update trigger, for every entity.
DROP TRIGGER sync_log_district_scopes_insert ON sync_log;
DROP FUNCTION copy_district_scopes();
ALTER FUNCTION copy_changed_district_scopes() RENAME TO copy_row_district_scopes;
CREATE TRIGGER sync_log_district_scopes_insert AFTER INSERT ON sync_log
    FOR EACH ROW WHEN (NEW.entity NOT IN ('lesson', 'attendance', 'researchActivity'))
    EXECUTE FUNCTION copy_row_district_scopes();

-- +goose Down
DROP TRIGGER sync_log_district_scopes_insert ON sync_log;
ALTER FUNCTION copy_row_district_scopes() RENAME TO copy_changed_district_scopes;
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
