-- +goose Up
-- The high-water mark of each server process's hybrid logical clock (postgres/clock.go):
-- a wall time (ms) the process's HLCs stay below, persisted ahead of time like a
-- lease. At start a process moves its clock past the largest mark of all processes, so
-- it never issues HLCs below those issued before, even when its wall clock went
-- backwards over a restart (or its node id changed, as a container's host name does).
CREATE TABLE server_clock (
    node text PRIMARY KEY,
    wall_ms bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE server_clock;
