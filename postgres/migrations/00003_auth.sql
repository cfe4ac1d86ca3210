-- +goose Up
-- Users, their devices, login throttling and the server's signing secret.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    username text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    display_name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('ADMIN', 'DISTRICT_ADMIN', 'SCHOOL_ADMIN', 'TEACHER', 'AUDITOR')),
    district_id uuid REFERENCES districts (id),
    school_id uuid REFERENCES schools (id),
    teacher_id uuid REFERENCES teachers (id),
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'TEACHER' OR teacher_id IS NOT NULL),
    CHECK (role <> 'SCHOOL_ADMIN' OR school_id IS NOT NULL),
    CHECK (role NOT IN ('DISTRICT_ADMIN', 'AUDITOR') OR district_id IS NOT NULL)
);
CREATE UNIQUE INDEX users_teacher ON users (teacher_id) WHERE teacher_id IS NOT NULL;

CREATE TABLE devices (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    name text NOT NULL CHECK (name <> ''),
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    last_sync_at timestamptz,
    last_verify_at timestamptz,
    last_verify_ok boolean,
    revoked_at timestamptz
);
CREATE INDEX devices_user ON devices (user_id);

-- Failed logins per username: each failure past the third doubles the wait.
CREATE TABLE login_failures (
    username text PRIMARY KEY,
    failures integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until timestamptz NOT NULL
);

-- The HMAC key of session tokens, made once, so that tokens survive restarts.
CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE server_secrets, login_failures, devices, users;
