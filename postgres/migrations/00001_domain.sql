-- +goose Up
-- Every record a device may sync carries: version (its place in the change log), a
-- tombstone flag, and the HLC of the write that set each field (field_hlc).

CREATE SEQUENCE change_seq;

CREATE TABLE districts (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    code text NOT NULL DEFAULT '',
    province text NOT NULL DEFAULT '',
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE zones (
    id uuid PRIMARY KEY,
    district_id uuid NOT NULL REFERENCES districts (id),
    name text NOT NULL CHECK (name <> ''),
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX zones_district ON zones (district_id);

CREATE TABLE school_groups (
    id uuid PRIMARY KEY,
    district_id uuid NOT NULL REFERENCES districts (id),
    name text NOT NULL CHECK (name <> ''),
    main_school_id uuid,
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX school_groups_district ON school_groups (district_id);

CREATE TABLE schools (
    id uuid PRIMARY KEY,
    district_id uuid NOT NULL REFERENCES districts (id),
    zone_id uuid REFERENCES zones (id),
    group_id uuid REFERENCES school_groups (id),
    name text NOT NULL CHECK (name <> ''),
    locality text NOT NULL CHECK (locality IN ('URBAN', 'TOWN', 'RURAL', 'TEACHING_POINT')),
    tier text NOT NULL CHECK (tier IN ('QUALITY', 'GENERAL', 'WEAK')),
    tier_assessed_on date,
    remote boolean NOT NULL DEFAULT false,
    centre_school boolean NOT NULL DEFAULT false,
    staffing_cap integer NOT NULL DEFAULT 0 CHECK (staffing_cap >= 0),
    average_weekly_lessons double precision NOT NULL DEFAULT 0 CHECK (average_weekly_lessons >= 0),
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schools_district ON schools (district_id);
CREATE UNIQUE INDEX schools_name ON schools (district_id, name) WHERE NOT deleted;
ALTER TABLE school_groups ADD CONSTRAINT school_groups_main_school_id_fkey FOREIGN KEY (main_school_id) REFERENCES schools (id);

CREATE TABLE teachers (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    gender text NOT NULL CHECK (gender IN ('MALE', 'FEMALE')),
    birth_date date NOT NULL,
    employed boolean NOT NULL DEFAULT false,
    position text NOT NULL DEFAULT 'TEACHER' CHECK (position IN ('TEACHER', 'PRINCIPAL', 'VICE_PRINCIPAL', 'MIDDLE_MANAGER')),
    title text NOT NULL DEFAULT 'NONE' CHECK (title IN ('NONE', 'SECOND_LEVEL', 'FIRST_LEVEL', 'SENIOR', 'PROFESSOR')),
    backbone_level text NOT NULL DEFAULT 'NONE' CHECK (backbone_level IN ('NONE', 'SCHOOL', 'COUNTY', 'CITY', 'PROVINCE', 'NATIONAL')),
    honors jsonb NOT NULL DEFAULT '[]',
    subjects jsonb NOT NULL DEFAULT '[]',
    school_id uuid NOT NULL REFERENCES schools (id),
    joined_school_on date NOT NULL,
    leadership_since date,
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX teachers_school ON teachers (school_id);

CREATE TABLE school_stints (
    id uuid PRIMARY KEY,
    teacher_id uuid NOT NULL REFERENCES teachers (id),
    school_id uuid NOT NULL REFERENCES schools (id),
    start_date date NOT NULL,
    end_date date CHECK (end_date IS NULL OR end_date >= start_date),
    note text NOT NULL DEFAULT '',
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX school_stints_teacher ON school_stints (teacher_id);

CREATE TABLE deferrals (
    id uuid PRIMARY KEY,
    teacher_id uuid NOT NULL REFERENCES teachers (id),
    reason text NOT NULL CHECK (reason IN ('PREGNANCY', 'NURSING', 'MEDICAL', 'FEATURE_PROGRAM_LEAD', 'NEAR_RETIREMENT', 'CENTRE_SCHOOL_PRINCIPAL')),
    starts_on date NOT NULL,
    expires_on date NOT NULL CHECK (expires_on >= starts_on),
    approved boolean NOT NULL DEFAULT false,
    certificate text NOT NULL DEFAULT '',
    note text NOT NULL DEFAULT '',
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deferrals_teacher ON deferrals (teacher_id);

CREATE TABLE exchanges (
    id uuid PRIMARY KEY,
    teacher_id uuid NOT NULL REFERENCES teachers (id),
    sending_school_id uuid NOT NULL REFERENCES schools (id),
    receiving_school_id uuid NOT NULL REFERENCES schools (id),
    mode text NOT NULL CHECK (mode IN ('FULL_TIME', 'LESSON_DELIVERY', 'SECONDMENT', 'ITINERANT', 'GROUP_INTERNAL', 'PAIRED_SUPPORT')),
    academic_year text NOT NULL CHECK (academic_year ~ '^[0-9]{4}-[0-9]{4}$'),
    planned_start date NOT NULL,
    planned_end date NOT NULL CHECK (planned_end > planned_start),
    reported_on date,
    status text NOT NULL DEFAULT 'PROPOSED' CHECK (status IN ('PROPOSED', 'APPROVED', 'PUBLISHED', 'ACTIVE', 'COMPLETED', 'DEFERRED', 'REFUSED', 'CANCELLED', 'TERMINATED')),
    volunteer boolean NOT NULL DEFAULT false,
    relation_moves boolean NOT NULL DEFAULT false,
    agreement_signed boolean NOT NULL DEFAULT false,
    rural_allowance double precision NOT NULL DEFAULT 0 CHECK (rural_allowance >= 0),
    transport_allowance double precision NOT NULL DEFAULT 0 CHECK (transport_allowance >= 0),
    note text NOT NULL DEFAULT '',
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (sending_school_id <> receiving_school_id),
    CHECK (status NOT IN ('ACTIVE', 'COMPLETED') OR reported_on IS NOT NULL)
);
CREATE INDEX exchanges_teacher ON exchanges (teacher_id);
CREATE INDEX exchanges_sending ON exchanges (sending_school_id, academic_year);
CREATE INDEX exchanges_receiving ON exchanges (receiving_school_id, academic_year);
CREATE INDEX exchanges_year_status ON exchanges (academic_year, status);

CREATE TABLE lessons (
    id uuid PRIMARY KEY,
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    school_id uuid REFERENCES schools (id),
    date date NOT NULL,
    period integer NOT NULL CHECK (period BETWEEN 1 AND 12),
    grade_level text NOT NULL DEFAULT '',
    class_name text NOT NULL DEFAULT '',
    subject text NOT NULL CHECK (subject <> ''),
    kind text NOT NULL CHECK (kind IN ('REGULAR', 'DEMONSTRATION', 'GUIDANCE', 'OPEN', 'LECTURE', 'DELIVERED')),
    open_level text CHECK (open_level IN ('SCHOOL', 'TOWN', 'COUNTY')),
    topic text NOT NULL DEFAULT '',
    minutes integer NOT NULL DEFAULT 0 CHECK (minutes BETWEEN 0 AND 600),
    notes text NOT NULL DEFAULT '',
    device_id uuid,
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'OPEN' OR open_level IS NOT NULL)
);
CREATE UNIQUE INDEX lessons_natural_key ON lessons (exchange_id, date, period) WHERE NOT deleted;
CREATE INDEX lessons_exchange_date ON lessons (exchange_id, date);
CREATE INDEX lessons_date ON lessons (date);

CREATE TABLE observations (
    id uuid PRIMARY KEY,
    observer_id uuid REFERENCES teachers (id),
    observed_teacher_id uuid NOT NULL REFERENCES teachers (id),
    exchange_id uuid REFERENCES exchanges (id),
    lesson_id uuid REFERENCES lessons (id),
    date date NOT NULL,
    subject text NOT NULL DEFAULT '',
    critique boolean NOT NULL DEFAULT false,
    comments text NOT NULL DEFAULT '',
    rating integer CHECK (rating BETWEEN 1 AND 5),
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (observer_id IS NULL OR observer_id <> observed_teacher_id)
);
CREATE INDEX observations_observer ON observations (observer_id, date);
CREATE INDEX observations_observed ON observations (observed_teacher_id, date);
CREATE INDEX observations_exchange ON observations (exchange_id);

CREATE TABLE research_activities (
    id uuid PRIMARY KEY,
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    date date NOT NULL,
    kind text NOT NULL CHECK (kind IN ('JOINT_PREPARATION', 'GROUP_ACTIVITY', 'LECTURE', 'SURVEY')),
    topic text NOT NULL DEFAULT '',
    notes text NOT NULL DEFAULT '',
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX research_activities_exchange ON research_activities (exchange_id, date);

CREATE TABLE attendance (
    id uuid PRIMARY KEY,
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    date date NOT NULL,
    status text NOT NULL CHECK (status IN ('PRESENT', 'LEAVE', 'SICK', 'ABSENT')),
    note text NOT NULL DEFAULT '',
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX attendance_natural_key ON attendance (exchange_id, date) WHERE NOT deleted;

CREATE TABLE mentoring_pairs (
    id uuid PRIMARY KEY,
    mentor_id uuid NOT NULL REFERENCES teachers (id),
    mentee_id uuid NOT NULL REFERENCES teachers (id),
    school_id uuid REFERENCES schools (id),
    subject text NOT NULL CHECK (subject <> ''),
    academic_year text NOT NULL CHECK (academic_year ~ '^[0-9]{4}-[0-9]{4}$'),
    goals text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'ENDED')),
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (mentor_id <> mentee_id)
);
CREATE INDEX mentoring_pairs_mentor ON mentoring_pairs (mentor_id);
CREATE INDEX mentoring_pairs_mentee ON mentoring_pairs (mentee_id);

CREATE TABLE mentoring_activities (
    id uuid PRIMARY KEY,
    pair_id uuid NOT NULL REFERENCES mentoring_pairs (id),
    date date NOT NULL,
    kind text NOT NULL CHECK (kind IN ('OBSERVE', 'LESSON_TALK', 'CRITIQUE', 'JOINT_PREPARATION', 'RESEARCH')),
    notes text NOT NULL DEFAULT '',
    recorded_by_id uuid REFERENCES teachers (id),
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mentoring_activities_pair ON mentoring_activities (pair_id, date);

CREATE TABLE evaluations (
    id uuid PRIMARY KEY,
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    period text NOT NULL CHECK (period IN ('SEMESTER', 'ANNUAL', 'END_OF_EXCHANGE')),
    term text NOT NULL CHECK (term <> ''),
    evaluator_school_id uuid NOT NULL REFERENCES schools (id),
    conduct text CHECK (conduct IN ('EXCELLENT', 'QUALIFIED', 'BASIC', 'UNQUALIFIED')),
    attitude text CHECK (attitude IN ('EXCELLENT', 'QUALIFIED', 'BASIC', 'UNQUALIFIED')),
    attendance_grade text CHECK (attendance_grade IN ('EXCELLENT', 'QUALIFIED', 'BASIC', 'UNQUALIFIED')),
    teaching_results text CHECK (teaching_results IN ('EXCELLENT', 'QUALIFIED', 'BASIC', 'UNQUALIFIED')),
    grade text CHECK (grade IN ('EXCELLENT', 'QUALIFIED', 'BASIC', 'UNQUALIFIED')),
    comments text NOT NULL DEFAULT '',
    sending_signed boolean NOT NULL DEFAULT false,
    receiving_signed boolean NOT NULL DEFAULT false,
    finalized boolean NOT NULL DEFAULT false,
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT finalized OR grade IS NOT NULL)
);
CREATE INDEX evaluations_exchange ON evaluations (exchange_id);
CREATE UNIQUE INDEX evaluations_natural_key ON evaluations (exchange_id, period, term, evaluator_school_id) WHERE NOT deleted;

-- A finalized evaluation is immutable in the database too, whoever writes.
-- +goose StatementBegin
CREATE FUNCTION evaluations_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.finalized THEN
        RAISE EXCEPTION 'evaluation % is finalized', OLD.id USING ERRCODE = 'P0001', HINT = 'locked';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER evaluations_locked BEFORE UPDATE ON evaluations FOR EACH ROW EXECUTE FUNCTION evaluations_locked();

CREATE TABLE semester_reports (
    id uuid PRIMARY KEY,
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    term text NOT NULL CHECK (term <> ''),
    title text NOT NULL DEFAULT '',
    content text NOT NULL CHECK (content <> ''),
    submitted_on date,
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX semester_reports_exchange ON semester_reports (exchange_id);

CREATE TABLE policies (
    id uuid PRIMARY KEY,
    district_id uuid NOT NULL REFERENCES districts (id),
    academic_year text NOT NULL CHECK (academic_year ~ '^[0-9]{4}-[0-9]{4}$'),
    preset text NOT NULL DEFAULT '',
    tenure_years integer NOT NULL DEFAULT 6,
    cadre_tenure_years integer NOT NULL DEFAULT 10,
    male_age_limit integer NOT NULL DEFAULT 50,
    female_age_limit integer NOT NULL DEFAULT 45,
    principal_male_age_limit integer NOT NULL DEFAULT 55,
    principal_female_age_limit integer NOT NULL DEFAULT 50,
    female_limit_not_above_male boolean NOT NULL DEFAULT true,
    principal_max_years integer NOT NULL DEFAULT 9,
    quality_share double precision NOT NULL DEFAULT 15 CHECK (quality_share BETWEEN 0 AND 100),
    general_share double precision NOT NULL DEFAULT 10 CHECK (general_share BETWEEN 0 AND 100),
    first_year_share double precision NOT NULL DEFAULT 8 CHECK (first_year_share BETWEEN 0 AND 100),
    first_year boolean NOT NULL DEFAULT false,
    cadre_share double precision NOT NULL DEFAULT 15 CHECK (cadre_share BETWEEN 0 AND 100),
    backbone_share double precision NOT NULL DEFAULT 20 CHECK (backbone_share BETWEEN 0 AND 100),
    min_years integer NOT NULL DEFAULT 1,
    min_years_urban_to_rural integer NOT NULL DEFAULT 2,
    min_years_group integer NOT NULL DEFAULT 3,
    principal_term_years integer NOT NULL DEFAULT 4,
    feature_deferral_max_years integer NOT NULL DEFAULT 3,
    full_time_demonstration integer NOT NULL DEFAULT 4,
    full_time_guidance integer NOT NULL DEFAULT 4,
    full_time_research integer NOT NULL DEFAULT 8,
    delivery_lessons integer NOT NULL DEFAULT 8,
    delivery_critiques integer NOT NULL DEFAULT 8,
    secondment_observations integer NOT NULL DEFAULT 20,
    secondment_research integer NOT NULL DEFAULT 16,
    mentoring_activities integer NOT NULL DEFAULT 8,
    staff_participation_share double precision NOT NULL DEFAULT 30 CHECK (staff_participation_share BETWEEN 0 AND 100),
    school_send_share double precision NOT NULL DEFAULT 8 CHECK (school_send_share BETWEEN 0 AND 100),
    absence_run_limit integer NOT NULL DEFAULT 10,
    absence_year_limit integer NOT NULL DEFAULT 15,
    no_show_warning_days integer NOT NULL DEFAULT 7,
    no_show_resignation_days integer NOT NULL DEFAULT 15,
    version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, field_hlc jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX policies_natural_key ON policies (district_id, academic_year) WHERE NOT deleted;

-- The change log: one row per record, moved to the end on every change. Pull reads it
-- in (txid, seq) order and only below the oldest running transaction, so that a change
-- committed late under an early number is never skipped (see docs/sync-protocol.md).
-- scopes lists the tokens that grant reading the record:
--   d:<district>  district admins and auditors     s:<school>  school admins
--   t:<teacher>   the teacher                      ps:<school> teachers serving that school
--   pd:<district> teachers working in that district
-- and w:<teacher> marks a teacher who may write it.
CREATE TABLE sync_log (
    entity text NOT NULL,
    id uuid NOT NULL,
    seq bigint NOT NULL,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    deleted boolean NOT NULL DEFAULT false,
    scopes text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (entity, id)
);
CREATE INDEX sync_log_order ON sync_log (txid, seq);
CREATE INDEX sync_log_scopes ON sync_log USING gin (scopes);

-- Every op ever applied or rejected, by opId, with its first result (idempotency).
CREATE TABLE sync_ops (
    op_id text PRIMARY KEY,
    device_id uuid,
    user_id uuid,
    result jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Rejected ops, stored whole so that nothing a teacher typed is lost.
CREATE TABLE sync_rejections (
    id bigserial PRIMARY KEY,
    op_id text NOT NULL,
    device_id uuid,
    user_id uuid,
    entity text NOT NULL,
    record_id text NOT NULL,
    op jsonb NOT NULL,
    code text NOT NULL,
    message text NOT NULL,
    fields jsonb NOT NULL DEFAULT '{}',
    scopes text[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'REAPPLIED', 'DISMISSED')),
    resolved_at timestamptz,
    resolved_by uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_rejections_pending ON sync_rejections (created_at) WHERE status = 'PENDING';
CREATE INDEX sync_rejections_op ON sync_rejections (op_id);

-- Field values that lost under last-writer-wins.
CREATE TABLE sync_conflicts (
    id bigserial PRIMARY KEY,
    entity text NOT NULL,
    record_id uuid NOT NULL,
    field text NOT NULL,
    kept_value jsonb,
    kept_hlc text NOT NULL,
    lost_value jsonb,
    lost_hlc text NOT NULL,
    lost_op_id text NOT NULL,
    lost_device_id uuid,
    lost_user_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_conflicts_record ON sync_conflicts (entity, record_id);

-- The audit trail: every change, in the transaction of the change.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    user_id uuid,
    username text NOT NULL DEFAULT '',
    device_id uuid,
    session_id text NOT NULL DEFAULT '',
    entity text NOT NULL,
    record_id uuid NOT NULL,
    op_id text,
    action text NOT NULL CHECK (action IN ('CREATE', 'UPDATE', 'DELETE', 'MERGE')),
    changes jsonb NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_record ON audit_log (entity, record_id);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_scopes ON audit_log USING gin (scopes);

-- +goose Down
DROP TABLE audit_log, sync_conflicts, sync_rejections, sync_ops, sync_log, policies, semester_reports,
    evaluations, mentoring_activities, mentoring_pairs, attendance, research_activities, observations,
    lessons, exchanges, deferrals, school_stints, teachers, school_groups, schools, zones, districts CASCADE;
DROP FUNCTION evaluations_locked();
DROP SEQUENCE change_seq;
