-- +goose Up
-- Password changes, resets and disabling end the web sessions of a user.
-- A session token (JWT) carries the session_version of its user at login ("sv"); the
-- store refuses a token whose version is no longer the user's. A counter rather than
-- a time compared with the token's iat: iat has whole seconds, and replicas' clocks
-- differ. Tokens issued before this migration carry no version and read as 0.
ALTER TABLE users
    ADD COLUMN session_version integer NOT NULL DEFAULT 0,
    ADD COLUMN password_changed_at timestamptz;

-- +goose Down
ALTER TABLE users DROP COLUMN password_changed_at, DROP COLUMN session_version;
