package bench

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"golang.org/x/crypto/bcrypt"

	"github.com/jiaoliu/jiaoliu/postgres"
)

// Spec sizes a generated district. Every record is inserted in SQL (generate_series),
// with a version from change_seq and a sync_log row whose scopes come from the
// database's own scope_tokens, so the data are what the write path would have made.
type Spec struct {
	Schools           int // schools of the one district
	Teachers          int // teachers, spread over the schools
	Exchanges         int // the first Exchanges teachers have an ACTIVE exchange to the next school
	Users             int // the first Users teachers have a TEACHER user ...
	DevicesPerUser    int // ... with this many devices
	LessonsPerXchg    int // lessons per exchange (8 periods a day from 2026-09-01)
	AttendancePerXchg int // attendance days per exchange
	ResearchPerXchg   int // research activities per exchange
}

// Password is the password of every generated user.
const Password = "bench-password"

// The generated district's fixed ids.
var (
	DistrictID      = ID("district", 0)
	DistrictAdminID = ID("user/district-admin", 0)
	SchoolAdminID   = ID("user/school-admin", 0) // "bench-school", administrator of SchoolID(7)
)

// ID returns the id the generator gives the n-th record of kind (md5 of a name, as
// PostgreSQL's md5(text)::uuid makes it).
func ID(kind string, n int) string {
	sum := md5.Sum([]byte(fmt.Sprintf("jl-bench/%s/%d", kind, n)))
	h := hex.EncodeToString(sum[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// sqlID is ID in SQL, for a kind literal and an integer expression.
func sqlID(kind, n string) string {
	return fmt.Sprintf(`md5('jl-bench/%s/' || (%s))::uuid`, kind, n)
}

// TeacherID, ExchangeID, UserID and SchoolID name the generated records.
func TeacherID(i int) string  { return ID("teacher", i) }
func ExchangeID(i int) string { return ID("exchange", i) }
func UserID(i int) string     { return ID("user", i) }
func SchoolID(i int) string   { return ID("school", i) }

// DeviceID and DeviceToken name the j-th device of the i-th teacher's user.
func DeviceID(i, j int) string    { return ID(fmt.Sprintf("device/%d", j), i) }
func DeviceToken(i, j int) string { return fmt.Sprintf("dev_bench_%d_%d", i, j) }

// Seed fills an empty migrated database with a district of the given size, with
// users and devices, and returns how long it took.
func Seed(ctx context.Context, db *sqlx.DB, s Spec) (time.Duration, error) {
	start := time.Now()
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), 4)
	if err != nil {
		return 0, err
	}
	_ = sha256.Sum256
	n := func(v int) string { return fmt.Sprint(v) }
	steps := []struct {
		name string
		q    string
		args []any
	}{
		{"district", `INSERT INTO districts (id, name, code, province, version) VALUES ($1, '基准县', 'BENCH', '河南省', nextval('change_seq'))`, []any{DistrictID}},
		{"schools", `INSERT INTO schools (id, district_id, name, locality, tier, remote, staffing_cap, average_weekly_lessons, version)
			SELECT ` + sqlID("school", "i") + `, $1, '第' || i || '学校',
				(ARRAY['URBAN','TOWN','RURAL','TEACHING_POINT'])[1 + i % 4], (ARRAY['QUALITY','GENERAL','WEAK'])[1 + i % 3],
				i % 4 = 3, 40 + i % 60, 12 + i % 8, nextval('change_seq')
			FROM generate_series(0, ` + n(s.Schools-1) + `) i`, []any{DistrictID}},
		{"teachers", `INSERT INTO teachers (id, name, gender, birth_date, employed, title, subjects, school_id, joined_school_on, version)
			SELECT ` + sqlID("teacher", "i") + `, '教师' || i, CASE WHEN i % 2 = 0 THEN 'FEMALE' ELSE 'MALE' END,
				date '1970-01-01' + (i * 37) % 9000, true, (ARRAY['NONE','SECOND_LEVEL','FIRST_LEVEL','SENIOR'])[1 + i % 4],
				'["数学"]', ` + sqlID("school", "i % "+n(s.Schools)) + `, date '2010-09-01' + (i % 3000), nextval('change_seq')
			FROM generate_series(0, ` + n(s.Teachers-1) + `) i`, nil},
		{"exchanges", `INSERT INTO exchanges (id, teacher_id, sending_school_id, receiving_school_id, mode, academic_year, planned_start, planned_end, reported_on, status, version)
			SELECT ` + sqlID("exchange", "i") + `, ` + sqlID("teacher", "i") + `, ` + sqlID("school", "i % "+n(s.Schools)) + `,
				` + sqlID("school", "(i + 1) % "+n(s.Schools)) + `, 'FULL_TIME', '2026-2027', '2026-09-01', '2027-07-15', '2026-09-01', 'ACTIVE', nextval('change_seq')
			FROM generate_series(0, ` + n(s.Exchanges-1) + `) i`, nil},
		{"district admin", `INSERT INTO users (id, username, display_name, password_hash, role, district_id)
			VALUES ($1, 'bench-district', '县教育局', $2, 'DISTRICT_ADMIN', $3)`, []any{DistrictAdminID, string(hash), DistrictID}},
		{"school admin", `INSERT INTO users (id, username, display_name, password_hash, role, district_id, school_id)
			SELECT $1, 'bench-school', '学校管理员', $2, 'SCHOOL_ADMIN', $3, id FROM schools WHERE id = $4`, // when there are 8 schools
			[]any{SchoolAdminID, string(hash), DistrictID, SchoolID(7)}},
		{"users", `INSERT INTO users (id, username, password_hash, role, district_id, school_id, teacher_id)
			SELECT ` + sqlID("user", "i") + `, 'bench-t' || i, $1, 'TEACHER', $2, ` + sqlID("school", "i % "+n(s.Schools)) + `, ` + sqlID("teacher", "i") + `
			FROM generate_series(0, ` + n(s.Users-1) + `) i`, []any{string(hash), DistrictID}},
		{"devices", `INSERT INTO devices (id, user_id, name, token_hash)
			SELECT md5('jl-bench/device/' || j || '/' || i)::uuid, ` + sqlID("user", "i") + `, 'tablet ' || j,
				sha256(convert_to('dev_bench_' || i || '_' || j, 'UTF8'))
			FROM generate_series(0, ` + n(s.Users-1) + `) i, generate_series(0, ` + n(s.DevicesPerUser-1) + `) j`, nil},
		// The children carry their district tokens (every school is the district's), as
		// the write path's bulk path writes them: the change log's trigger (migration
		// 00018) then leaves them as they are rather than writing each row twice.
		{"lessons", `INSERT INTO lessons (id, exchange_id, date, period, subject, kind, topic, minutes, field_hlc, version, district_scopes)
			SELECT ` + sqlID("lesson", "x || '/' || k") + `, ` + sqlID("exchange", "x") + `, date '2026-09-01' + k / 8, 1 + k % 8,
				'数学', (ARRAY['REGULAR','DEMONSTRATION','GUIDANCE'])[1 + k % 3], '第' || k || '课', 40, '{}', nextval('change_seq'), ARRAY['d:' || $1]
			FROM generate_series(0, ` + n(s.Exchanges-1) + `) x, generate_series(0, ` + n(s.LessonsPerXchg-1) + `) k`, []any{DistrictID}},
		{"attendance", `INSERT INTO attendance (id, exchange_id, date, status, version, district_scopes)
			SELECT ` + sqlID("attendance", "x || '/' || k") + `, ` + sqlID("exchange", "x") + `, date '2026-09-01' + k,
				(ARRAY['PRESENT','PRESENT','PRESENT','LEAVE','SICK'])[1 + k % 5], nextval('change_seq'), ARRAY['d:' || $1]
			FROM generate_series(0, ` + n(s.Exchanges-1) + `) x, generate_series(0, ` + n(s.AttendancePerXchg-1) + `) k`, []any{DistrictID}},
		{"research", `INSERT INTO research_activities (id, exchange_id, date, kind, topic, version, district_scopes)
			SELECT ` + sqlID("research", "x || '/' || k") + `, ` + sqlID("exchange", "x") + `, date '2026-09-01' + k * 7,
				(ARRAY['JOINT_PREPARATION','GROUP_ACTIVITY','LECTURE','SURVEY'])[1 + k % 4], '教研' || k, nextval('change_seq'), ARRAY['d:' || $1]
			FROM generate_series(0, ` + n(s.Exchanges-1) + `) x, generate_series(0, ` + n(s.ResearchPerXchg-1) + `) k`, []any{DistrictID}},
	}
	for _, st := range steps {
		if _, err := db.ExecContext(ctx, st.q, st.args...); err != nil {
			return 0, fmt.Errorf("seed %s: %w", st.name, err)
		}
	}
	if err := seedLog(ctx, db); err != nil {
		return 0, err
	}
	if err := postgres.CheckScopeCopies(ctx, db.DB); err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	// As a running server's database: autovacuum has set the visibility map and merged
	// the GIN indexes' pending lists (the scope indexes), which ANALYZE alone does not;
	// and the generated pages are on disk, so that a benchmark run after this one in the
	// same cluster does not pay for writing them (after the 1M-lesson district, the
	// checkpoint it would otherwise meet took the push's PostgreSQL CPU per op from ~80 to
	// 120–141 µs). CHECKPOINT needs a superuser or pg_checkpoint: without, it is skipped
	// (loadgen -setup may run as the server's own role).
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return 0, fmt.Errorf("seed: vacuum: %w", err)
	}
	var pqErr *pq.Error
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil && !(errors.As(err, &pqErr) && pqErr.Code == "42501") {
		return 0, fmt.Errorf("seed: checkpoint: %w", err)
	}
	return time.Since(start), nil
}

// seedLog writes the change log of the generated records. Reference data and exchanges
// get scope_tokens row by row; the children of an exchange (whose scope depends only on
// the exchange and, for lessons, the school, here none) get the tokens scope_tokens
// computes for the first child of each exchange.
func seedLog(ctx context.Context, db *sqlx.DB) error {
	qs := []string{
		`INSERT INTO sync_log (entity, id, seq, scopes) SELECT 'district', id, version, scope_tokens('district', id) FROM districts`,
		`INSERT INTO sync_log (entity, id, seq, scopes) SELECT 'school', id, version, scope_tokens('school', id) FROM schools`,
		`INSERT INTO sync_log (entity, id, seq, scopes) SELECT 'exchange', id, version, scope_tokens('exchange', id) FROM exchanges`,
		`INSERT INTO sync_log (entity, id, seq, scopes) SELECT 'teacher', id, version, scope_tokens('teacher', id) FROM teachers`,
	}
	for _, c := range []struct{ entity, table string }{{"lesson", "lessons"}, {"attendance", "attendance"}, {"researchActivity", "research_activities"}} {
		qs = append(qs, fmt.Sprintf(`WITH firsts AS (
				SELECT DISTINCT ON (exchange_id) exchange_id, id FROM %[2]s ORDER BY exchange_id, id),
			toks AS (SELECT exchange_id, scope_tokens('%[1]s', id) AS scopes FROM firsts)
			INSERT INTO sync_log (entity, id, seq, scopes)
			SELECT '%[1]s', t.id, t.version, toks.scopes FROM %[2]s t JOIN toks USING (exchange_id)`, c.entity, c.table))
	}
	for _, q := range qs {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("seed change log: %w", err)
		}
	}
	return nil
}
