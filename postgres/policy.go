package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// This file implements jiaoliu.PolicyService: it loads what the rules need with a
// handful of set-based queries (never one per teacher or exchange), run concurrently,
// and hands it to the domain's rules. Scope: the district views are for the district's
// administrators and auditors (and ADMIN); a school administrator gets the rows of their
// school; teachers are refused with FORBIDDEN. The views of one exchange, pair or
// teacher are for whoever may read that record.

var _ jiaoliu.PolicyService = (*Store)(nil)

// districtScope is what an actor may see of a district: everything, or one school.
type districtScope struct {
	district *jiaoliu.District
	school   string // "" for the whole district
}

// authorizeDistrict checks that the actor of ctx may use the district views of
// districtID and returns the part they see.
func (s *Store) authorizeDistrict(ctx context.Context, districtID string) (*districtScope, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to see district reports")
	}
	if !isUUID(districtID) {
		return nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"districtId": "must be an id (UUID)"}}
	}
	sc := &districtScope{}
	switch {
	case a.System:
	case a.Role == jiaoliu.RoleDistrictAdmin || a.Role == jiaoliu.RoleAuditor:
		if a.DistrictID != districtID {
			return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "you may see the reports of your own district only")
		}
	case a.Role == jiaoliu.RoleSchoolAdmin:
		district, err := s.schoolDistrict(ctx, a.SchoolID)
		if err != nil {
			return nil, err
		}
		if district != districtID {
			return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "you may see the reports of your own school only")
		}
		sc.school = a.SchoolID
	default:
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "district reports are for district and school administrators")
	}
	var d jiaoliu.District
	err := s.db.GetContext(ctx, &d, `SELECT `+columns(jiaoliu.DistrictEntity)+` FROM districts t WHERE t.id = $1 AND NOT t.deleted`, districtID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "district %s not found", districtID)
	} else if err != nil {
		return nil, fmt.Errorf("authorize district: %w", err)
	}
	sc.district = &d
	return sc, nil
}

// authorizeSchool checks that the actor of ctx may see the school views of schoolID.
func (s *Store) authorizeSchool(ctx context.Context, schoolID string) (*jiaoliu.School, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to see school reports")
	}
	if !isUUID(schoolID) {
		return nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"schoolId": "must be an id (UUID)"}}
	}
	var sc jiaoliu.School
	err := s.db.GetContext(ctx, &sc, `SELECT `+columns(jiaoliu.SchoolEntity)+` FROM schools t WHERE t.id = $1 AND NOT t.deleted`, schoolID)
	notFound := jiaoliu.Errorf(jiaoliu.ENOTFOUND, "school %s not found", schoolID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("authorize school: %w", err)
	}
	switch {
	case a.System:
	case (a.Role == jiaoliu.RoleDistrictAdmin || a.Role == jiaoliu.RoleAuditor) && a.DistrictID == sc.DistrictID:
	case a.Role == jiaoliu.RoleSchoolAdmin && a.SchoolID == schoolID:
	case a.Role == jiaoliu.RoleTeacher:
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "school reports are for school and district administrators")
	default:
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "you may see the reports of your own district or school only")
	}
	return &sc, nil
}

func (s *Store) schoolDistrict(ctx context.Context, schoolID string) (string, error) {
	var d string
	if err := s.db.GetContext(ctx, &d, `SELECT district_id::text FROM schools WHERE id = $1`, schoolID); errors.Is(err, sql.ErrNoRows) {
		return "", jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "your school is unknown")
	} else if err != nil {
		return "", fmt.Errorf("school district: %w", err)
	}
	return d, nil
}

// step runs one query of a view and logs its duration at debug level.
func (s *Store) step(ctx context.Context, name string, fn func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		start := time.Now()
		err := fn(ctx)
		s.log.DebugContext(ctx, "policy query", "step", name, "ms", float64(time.Since(start).Microseconds())/1000)
		return err
	}
}

// parallel runs the functions concurrently and returns their errors joined.
func parallel(ctx context.Context, fns ...func(context.Context) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// chunkSize is the fewest items inChunks gives a goroutine: below it, one is quicker.
const chunkSize = 256

// inChunks calls fn over 0..n in contiguous chunks, one per processor when n is large
// enough (the rules of a district's thousands of exchanges, which only read what they
// are given), and returns the error of the first chunk that failed.
func inChunks(n int, fn func(lo, hi int) error) error {
	parts := min(runtime.GOMAXPROCS(0), n/chunkSize)
	if parts <= 1 {
		return fn(0, n)
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = fn(n*p/parts, n*(p+1)/parts)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// districtData is what the district views need for one academic year.
type districtData struct {
	scope    *districtScope
	year     jiaoliu.AcademicYear
	policy   *jiaoliu.Policy
	schools  []*jiaoliu.School          // the schools in scope
	byID     map[string]*jiaoliu.School // those and every school the exchanges refer to
	groups   map[string]*jiaoliu.SchoolGroup
	teachers []*jiaoliu.Teacher // current teachers of the schools in scope
	// teacherByID holds those and every teacher of the exchanges.
	teacherByID map[string]*jiaoliu.Teacher
	deferrals   map[string][]*jiaoliu.Deferral
	// exchanges are those from or to the schools in scope of the academic year, and the
	// earlier ones still under way in it.
	exchanges []*jiaoliu.Exchange
	groupList []*jiaoliu.SchoolGroup

	// teacherFP is the fingerprint of the rows of teachers (see scopeTeachers); fp, of
	// every input of the rules (see inputsFingerprint).
	teacherFP string
	fpOnce    sync.Once
	fp        string
}

// policyNotFound is the error of a district without a policy for the year.
func policyNotFound(district string, y jiaoliu.AcademicYear) error {
	return jiaoliu.Errorf(jiaoliu.ENOTFOUND, "district %s has no policy for %s: create one (createPolicy or applyPolicyPreset)", district, y)
}

// epoch is the day the lean scans count dates from: PostgreSQL sends a date minus a
// date as an integer, which costs nothing to decode, where a date is parsed as a time.
var epoch = jiaoliu.NewDate(2000, 1, 1)

const teacherCols = `t.id, t.name, t.gender, t.birth_date - date '2000-01-01', t.employed, t.position, t.title,
	t.backbone_level, t.school_id, t.joined_school_on - date '2000-01-01', t.leadership_since - date '2000-01-01', t.version`

// scanTeachers reads rows of teacherCols into plain values, without reflection: the
// district views read thousands of teachers.
func scanTeachers(rows *sql.Rows) ([]*jiaoliu.Teacher, error) {
	defer rows.Close()
	var out []*jiaoliu.Teacher
	var (
		id, name, gender, position, title, backbone, school []byte
		birth, joined                                       int
		lead                                                sql.NullInt64
		employed                                            bool
		version                                             int64
	)
	for rows.Next() {
		if err := rows.Scan(&id, &name, &gender, &birth, &employed, &position, &title, &backbone, &school, &joined, &lead, &version); err != nil {
			return nil, err
		}
		t := &jiaoliu.Teacher{ID: string(id), Name: string(name), Gender: jiaoliu.Gender(gender), BirthDate: epoch.AddDays(birth),
			Employed: employed, Position: jiaoliu.Position(position), Title: jiaoliu.Title(title), BackboneLevel: jiaoliu.BackboneLevel(backbone),
			SchoolID: string(school), JoinedSchoolOn: epoch.AddDays(joined)}
		t.Version = version
		if lead.Valid {
			d := epoch.AddDays(int(lead.Int64))
			t.LeadershipSince = &d
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

const exchangeCols = `t.id, t.teacher_id, t.sending_school_id, t.receiving_school_id, t.mode, t.academic_year,
	t.planned_start - date '2000-01-01', t.planned_end - date '2000-01-01', t.reported_on - date '2000-01-01',
	t.status, t.volunteer, t.relation_moves, t.version`

// scanExchanges reads rows of exchangeCols: the fields the rules use.
func scanExchanges(rows *sql.Rows) ([]*jiaoliu.Exchange, error) {
	defer rows.Close()
	var out []*jiaoliu.Exchange
	var (
		id, teacher, sending, receiving, mode, year, status []byte
		start, end                                          int
		reported                                            sql.NullInt64
		volunteer, moves                                    bool
		version                                             int64
	)
	for rows.Next() {
		if err := rows.Scan(&id, &teacher, &sending, &receiving, &mode, &year, &start, &end, &reported, &status, &volunteer, &moves, &version); err != nil {
			return nil, err
		}
		x := &jiaoliu.Exchange{ID: string(id), TeacherID: string(teacher), SendingSchoolID: string(sending), ReceivingSchoolID: string(receiving),
			Mode: jiaoliu.ExchangeMode(mode), AcademicYear: string(year), PlannedStart: epoch.AddDays(start), PlannedEnd: epoch.AddDays(end),
			Status: jiaoliu.ExchangeStatus(status), Volunteer: volunteer, RelationMoves: moves}
		x.Version = version
		if reported.Valid {
			d := epoch.AddDays(int(reported.Int64))
			x.ReportedOn = &d
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// loadDistrict reads a district's data for a year in a few concurrent queries.
func (s *Store) loadDistrict(ctx context.Context, sc *districtScope, y jiaoliu.AcademicYear) (*districtData, error) {
	dd := &districtData{scope: sc, year: y, byID: map[string]*jiaoliu.School{}, groups: map[string]*jiaoliu.SchoolGroup{},
		deferrals: map[string][]*jiaoliu.Deferral{}}
	var teachersByID map[string]*jiaoliu.Teacher
	district := sc.district.ID
	schoolFilter := ""
	args := []any{district}
	if sc.school != "" {
		schoolFilter = " AND t.id = $2"
		args = append(args, sc.school)
	}
	teacherFilter := "s.district_id = $1"
	if sc.school != "" {
		teacherFilter = "s.district_id = $1 AND t.school_id = $2"
	}
	// Exchanges from or to the schools in scope.
	exchangeSchools := `(SELECT id FROM schools WHERE district_id = $1)`
	if sc.school != "" {
		exchangeSchools = `(SELECT $4::uuid)`
	}
	err := parallel(ctx,
		s.step(ctx, "policy", func(ctx context.Context) error {
			var p jiaoliu.Policy
			err := s.db.GetContext(ctx, &p, `SELECT `+columns(jiaoliu.PolicyEntity)+` FROM policies t WHERE t.district_id = $1 AND t.academic_year = $2 AND NOT t.deleted`, district, string(y))
			if errors.Is(err, sql.ErrNoRows) {
				return policyNotFound(sc.district.Name, y)
			} else if err != nil {
				return fmt.Errorf("load policy: %w", err)
			}
			dd.policy = &p
			return nil
		}),
		s.step(ctx, "schools", func(ctx context.Context) error {
			if err := s.db.SelectContext(ctx, &dd.schools, `SELECT `+columns(jiaoliu.SchoolEntity)+` FROM schools t WHERE t.district_id = $1 AND NOT t.deleted`+schoolFilter+` ORDER BY t.name`, args...); err != nil {
				return fmt.Errorf("load schools: %w", err)
			}
			var groups []*jiaoliu.SchoolGroup
			if err := s.db.SelectContext(ctx, &groups, `SELECT `+columns(jiaoliu.SchoolGroupEntity)+` FROM school_groups t WHERE t.district_id = $1 AND NOT t.deleted`, district); err != nil {
				return fmt.Errorf("load groups: %w", err)
			}
			dd.groupList = groups
			for _, g := range groups {
				dd.groups[g.ID] = g
			}
			return nil
		}),
		s.step(ctx, "teachers", func(ctx context.Context) error {
			var err error
			dd.teachers, teachersByID, dd.teacherFP, err = s.scopeTeachers(ctx, teacherFilter, args)
			return err
		}),
		s.step(ctx, "deferrals", func(ctx context.Context) error {
			var ds []*jiaoliu.Deferral
			if err := s.db.SelectContext(ctx, &ds, `SELECT `+columns(jiaoliu.DeferralEntity)+` FROM deferrals t
				JOIN teachers tt ON tt.id = t.teacher_id JOIN schools s ON s.id = tt.school_id
				WHERE `+map[bool]string{true: "s.district_id = $1", false: "s.district_id = $1 AND tt.school_id = $2"}[sc.school == ""]+`
				AND NOT t.deleted AND t.approved AND t.starts_on <= '`+y.ReferenceDate().String()+`' AND t.expires_on >= '`+y.ReferenceDate().String()+`'`, args...); err != nil {
				return fmt.Errorf("load deferrals: %w", err)
			}
			for _, d := range ds {
				dd.deferrals[d.TeacherID] = append(dd.deferrals[d.TeacherID], d)
			}
			return nil
		}),
		s.step(ctx, "exchanges", func(ctx context.Context) error {
			xargs := []any{district, string(y), y.ReferenceDate()}
			if sc.school != "" {
				xargs = append(xargs, sc.school)
			}
			var err error
			dd.exchanges, err = s.scopeExchanges(ctx, `FROM exchanges t
				WHERE NOT t.deleted
				AND (t.academic_year = $2 OR (t.academic_year < $2 AND t.status IN ('APPROVED', 'PUBLISHED', 'ACTIVE', 'COMPLETED') AND t.planned_end >= $3))
				AND (t.sending_school_id IN `+exchangeSchools+` OR t.receiving_school_id IN `+exchangeSchools+`)
				AND $1::uuid IS NOT NULL`, xargs)
			return err
		}),
	)
	if err != nil {
		return nil, err
	}
	for _, sc := range dd.schools {
		dd.byID[sc.ID] = sc
	}
	// The scope's teachers by id are shared with the cache: copied only when teachers
	// from elsewhere are added.
	dd.teacherByID = teachersByID
	// The exchanges' other schools and teachers from elsewhere: usually none.
	var missingSchools, missingTeachers []string
	for _, x := range dd.exchanges {
		for _, id := range []string{x.SendingSchoolID, x.ReceivingSchoolID} {
			if dd.byID[id] == nil && !contains(missingSchools, id) {
				missingSchools = append(missingSchools, id)
			}
		}
		if dd.teacherByID[x.TeacherID] == nil && !contains(missingTeachers, x.TeacherID) {
			missingTeachers = append(missingTeachers, x.TeacherID)
		}
	}
	if err := s.loadSchools(ctx, missingSchools, dd.byID); err != nil {
		return nil, err
	}
	if len(missingTeachers) > 0 {
		dd.teacherByID = maps.Clone(dd.teacherByID)
		if err := s.loadTeachers(ctx, missingTeachers, dd.teacherByID); err != nil {
			return nil, err
		}
	}
	return dd, nil
}

// teacherCache is the teachers of a district view as last read, with the fingerprint
// of the rows they were read from.
type teacherCache struct {
	fingerprint string
	teachers    []*jiaoliu.Teacher
	byID        map[string]*jiaoliu.Teacher
}

// scopeTeachers returns the live teachers of the schools of a district view (filter
// and args as in loadDistrict) and the fingerprint of their rows. Decoding a district's
// teachers is the largest cost of its views, so they are cached per scope and reused
// while the fingerprint of their rows is unchanged: the count, and the sum of a 64-bit
// hash of each row's id and version (uuid_hash_extended, seeded with the version: as
// cheap as reading the row, where an md5 of its text cost as much as decoding it).
// Every write gives a record a new version from change_seq, so any change, whatever
// the order in which transactions commit, changes a row's hash (a plain sum of versions
// could be matched by another set of rows: a school leaving the district while another
// joins). The cached teachers (and their map by id) are never modified.
func (s *Store) scopeTeachers(ctx context.Context, filter string, args []any) ([]*jiaoliu.Teacher, map[string]*jiaoliu.Teacher, string, error) {
	from := ` FROM teachers t JOIN schools s ON s.id = t.school_id WHERE ` + filter + ` AND NOT t.deleted AND NOT s.deleted`
	var fp string
	if err := s.db.GetContext(ctx, &fp, `SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(t.id, t.version)), 0)`+from, args...); err != nil {
		return nil, nil, "", fmt.Errorf("load teachers: %w", err)
	}
	key := fmt.Sprint(args...)
	if c, ok := s.teachers.Load(key); ok && c.(*teacherCache).fingerprint == fp {
		return c.(*teacherCache).teachers, c.(*teacherCache).byID, fp, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+teacherCols+from+` ORDER BY t.school_id, t.name, t.id`, args...)
	if err != nil {
		return nil, nil, "", fmt.Errorf("load teachers: %w", err)
	}
	list, err := scanTeachers(rows)
	if err != nil {
		return nil, nil, "", fmt.Errorf("load teachers: %w", err)
	}
	byID := make(map[string]*jiaoliu.Teacher, len(list))
	for _, t := range list {
		byID[t.ID] = t
	}
	// The fingerprint read before the rows: a change between the two reads leaves an
	// entry that the next fingerprint does not match.
	s.teachers.Store(key, &teacherCache{fingerprint: fp, teachers: list, byID: byID})
	return list, byID, fp, nil
}

// scopeExchanges returns the exchanges of a district view (from: the FROM and WHERE
// clauses, with args), cached as the teachers are (see scopeTeachers).
func (s *Store) scopeExchanges(ctx context.Context, from string, args []any) ([]*jiaoliu.Exchange, error) {
	var fp string
	if err := s.db.GetContext(ctx, &fp, `SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(t.id, t.version)), 0) `+from, args...); err != nil {
		return nil, fmt.Errorf("load exchanges: %w", err)
	}
	key := fmt.Sprint(args...)
	s.views.mu.Lock()
	c := s.views.exchanges[key]
	s.views.mu.Unlock()
	if c != nil && c.fingerprint == fp {
		return c.exchanges, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+exchangeCols+` `+from+` ORDER BY t.planned_start, t.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("load exchanges: %w", err)
	}
	list, err := scanExchanges(rows)
	if err != nil {
		return nil, fmt.Errorf("load exchanges: %w", err)
	}
	s.views.mu.Lock()
	putBounded(&s.views.exchanges, key, &exchangeCache{fingerprint: fp, exchanges: list})
	s.views.mu.Unlock()
	return list, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// loadSchools reads schools by id into m (internal reads: the callers have authorized
// the records that refer to them).
func (s *Store) loadSchools(ctx context.Context, ids []string, m map[string]*jiaoliu.School) error {
	if len(ids) == 0 {
		return nil
	}
	var list []*jiaoliu.School
	if err := s.db.SelectContext(ctx, &list, `SELECT `+columns(jiaoliu.SchoolEntity)+` FROM schools t WHERE t.id = ANY($1::uuid[])`, pq.Array(ids)); err != nil {
		return fmt.Errorf("load schools: %w", err)
	}
	for _, sc := range list {
		m[sc.ID] = sc
	}
	return nil
}

// loadTeachers reads teachers by id into m (internal reads, as loadSchools).
func (s *Store) loadTeachers(ctx context.Context, ids []string, m map[string]*jiaoliu.Teacher) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+teacherCols+` FROM teachers t WHERE t.id = ANY($1::uuid[])`, pq.Array(ids))
	if err != nil {
		return fmt.Errorf("load teachers: %w", err)
	}
	list, err := scanTeachers(rows)
	if err != nil {
		return fmt.Errorf("load teachers: %w", err)
	}
	for _, t := range list {
		m[t.ID] = t
	}
	return nil
}

// eligibility decides every teacher in scope and fills in their exchange of the year.
func (dd *districtData) eligibility() []*jiaoliu.Eligibility {
	// The exchange of the year that says most about the teacher: a counting one first.
	byTeacher := map[string]*jiaoliu.Exchange{}
	rank := func(x *jiaoliu.Exchange) int {
		if x.Status.CountsAsRotating() {
			return 2
		}
		if x.Status == jiaoliu.StatusProposed {
			return 1
		}
		return 0
	}
	// A volunteer (个人申报) is a teacher with a volunteer exchange of the year that is
	// applied for or counts, whichever exchange is shown.
	volunteer := map[string]bool{}
	for _, x := range dd.exchanges {
		if x.AcademicYear != string(dd.year) {
			continue
		}
		if cur := byTeacher[x.TeacherID]; cur == nil || rank(x) > rank(cur) {
			byTeacher[x.TeacherID] = x
		}
		if x.Volunteer && rank(x) > 0 {
			volunteer[x.TeacherID] = true
		}
	}
	out := make([]*jiaoliu.Eligibility, 0, len(dd.teachers))
	for _, t := range dd.teachers {
		e := jiaoliu.DecideEligibility(dd.policy.PolicyParams, dd.year, t, dd.deferrals[t.ID])
		if sc := dd.byID[t.SchoolID]; sc != nil {
			e.SchoolName = sc.Name
		}
		if x := byTeacher[t.ID]; x != nil {
			id, st := x.ID, x.Status
			e.ExchangeID, e.ExchangeStatus, e.Volunteer, e.Rotating = &id, &st, volunteer[t.ID], x.Status.CountsAsRotating()
		}
		out = append(out, &e)
	}
	return out
}

func (dd *districtData) quotas(elig []*jiaoliu.Eligibility) *jiaoliu.QuotaReport {
	return jiaoliu.ComputeQuotas(jiaoliu.QuotaInput{Policy: dd.policy, Year: dd.year, Schools: dd.schools,
		Teachers: dd.teacherByID, Eligibility: elig, Exchanges: dd.exchanges, SchoolsByID: dd.byID})
}

// Eligibility implements jiaoliu.PolicyService.
func (s *Store) Eligibility(ctx context.Context, districtID string, y jiaoliu.AcademicYear, schoolID string) (*jiaoliu.EligibilityList, error) {
	sc, err := s.authorizeDistrict(ctx, districtID)
	if err != nil {
		return nil, err
	}
	if schoolID != "" {
		if !isUUID(schoolID) {
			return nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"schoolId": "must be an id (UUID)"}}
		}
		if sc.school != "" && sc.school != schoolID {
			return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "you may see the reports of your own school only")
		}
		sc.school = schoolID
	}
	dd, err := s.loadDistrict(ctx, sc, y)
	if err != nil {
		return nil, fmt.Errorf("eligibility: %w", err)
	}
	list, _ := s.rules(dd)
	out := &jiaoliu.EligibilityList{DistrictID: districtID, AcademicYear: string(y), ReferenceDate: y.ReferenceDate(),
		Policy: dd.policy, Summary: jiaoliu.Summarize(list), Teachers: list}
	if sc.school != "" {
		school := sc.school
		out.SchoolID = &school
	}
	return out, nil
}

// Quotas implements jiaoliu.PolicyService.
func (s *Store) Quotas(ctx context.Context, districtID string, y jiaoliu.AcademicYear) (*jiaoliu.QuotaReport, error) {
	sc, err := s.authorizeDistrict(ctx, districtID)
	if err != nil {
		return nil, err
	}
	dd, err := s.loadDistrict(ctx, sc, y)
	if err != nil {
		return nil, fmt.Errorf("quotas: %w", err)
	}
	_, rep := s.rules(dd)
	if sc.school != "" {
		// A school administrator sees their school's line; the district's balance is
		// not theirs to see.
		rep.ReverseFlow, rep.Cadre = nil, nil
	}
	return rep, nil
}

// dashboardParts computes what both dashboards show from a district view: the rules
// of eligibility and quotas run while the progress and the pairs are read.
func (s *Store) dashboardParts(ctx context.Context, dd *districtData, y jiaoliu.AcademicYear, asOf jiaoliu.Date) (
	elig []*jiaoliu.Eligibility, rep *jiaoliu.QuotaReport, progress []*jiaoliu.ExchangeProgress, pairs []*jiaoliu.PairProgress, err error) {
	err = parallel(ctx,
		s.step(ctx, "rules", func(ctx context.Context) error {
			elig, rep = s.rules(dd)
			return nil
		}),
		s.step(ctx, "progress", func(ctx context.Context) error {
			var err error
			progress, err = s.progressOf(ctx, dd.exchanges, y, asOf, dd.byID, dd.teacherByID,
				map[string]*jiaoliu.Policy{policyKey(dd.scope.district.ID, y): dd.policy}, dd.scopeKey())
			return err
		}),
		s.step(ctx, "pairs", func(ctx context.Context) error {
			var err error
			pairs, err = s.districtPairs(ctx, dd, asOf)
			return err
		}))
	return elig, rep, progress, pairs, err
}

// DistrictDashboard implements jiaoliu.PolicyService.
func (s *Store) DistrictDashboard(ctx context.Context, districtID string, y jiaoliu.AcademicYear, asOf jiaoliu.Date) (*jiaoliu.DistrictDashboard, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a != nil && !a.System && a.Role == jiaoliu.RoleSchoolAdmin {
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "the district dashboard is for district administrators: use schoolDashboard")
	}
	sc, err := s.authorizeDistrict(ctx, districtID)
	if err != nil {
		return nil, err
	}
	dd, err := s.loadDistrict(ctx, sc, y)
	if err != nil {
		return nil, fmt.Errorf("district dashboard: %w", err)
	}
	elig, rep, progress, pairs, err := s.dashboardParts(ctx, dd, y, asOf)
	if err != nil {
		return nil, fmt.Errorf("district dashboard: %w", err)
	}
	db := &jiaoliu.DistrictDashboard{DistrictID: districtID, DistrictName: sc.district.Name, AcademicYear: string(y), AsOf: asOf,
		ReferenceDate: y.ReferenceDate(), Policy: dd.policy, Eligibility: jiaoliu.Summarize(elig), Quotas: rep.Totals,
		ReverseFlow: rep.ReverseFlow, Cadre: rep.Cadre, Progress: jiaoliu.SummarizeProgress(progress),
		Pairs: jiaoliu.SummarizePairs(pairs), Alerts: jiaoliu.Alerts(progress, rep)}
	for _, q := range rep.Schools {
		if !q.Met {
			db.SchoolsBelowTarget = append(db.SchoolsBelowTarget, q)
		}
	}
	return db, nil
}

// SchoolDashboard implements jiaoliu.PolicyService.
func (s *Store) SchoolDashboard(ctx context.Context, schoolID string, y jiaoliu.AcademicYear, asOf jiaoliu.Date) (*jiaoliu.SchoolDashboard, error) {
	school, err := s.authorizeSchool(ctx, schoolID)
	if err != nil {
		return nil, err
	}
	var d jiaoliu.District
	if err := s.db.GetContext(ctx, &d, `SELECT `+columns(jiaoliu.DistrictEntity)+` FROM districts t WHERE t.id = $1`, school.DistrictID); err != nil {
		return nil, fmt.Errorf("school dashboard: %w", err)
	}
	dd, err := s.loadDistrict(ctx, &districtScope{district: &d, school: schoolID}, y)
	if err != nil {
		return nil, fmt.Errorf("school dashboard: %w", err)
	}
	elig, rep, progress, pairs, err := s.dashboardParts(ctx, dd, y, asOf)
	if err != nil {
		return nil, fmt.Errorf("school dashboard: %w", err)
	}
	sd := &jiaoliu.SchoolDashboard{SchoolID: schoolID, SchoolName: school.Name, DistrictID: d.ID, AcademicYear: string(y), AsOf: asOf,
		ReferenceDate: y.ReferenceDate(), Policy: dd.policy, Eligibility: jiaoliu.Summarize(elig), Teachers: elig,
		Progress: jiaoliu.SummarizeProgress(progress), Pairs: pairs, PairSummary: jiaoliu.SummarizePairs(pairs)}
	if len(rep.Schools) > 0 {
		sd.Quota = rep.Schools[0]
	}
	for _, p := range progress {
		if p.SendingSchoolID == schoolID {
			sd.Sent = append(sd.Sent, p)
		}
		if p.ReceivingSchoolID == schoolID {
			sd.Received = append(sd.Received, p)
		}
	}
	rep.ReverseFlow = nil
	sd.Alerts = jiaoliu.Alerts(progress, rep)
	return sd, nil
}

// ExchangeProgressOfYear applies the progress rules to every exchange of a district
// (or of one school, when schoolID is set) in an academic year: the exchanges of the
// year and the earlier ones still under way, counted over that year up to asOf.
func (s *Store) ExchangeProgressOfYear(ctx context.Context, districtID, schoolID string, y jiaoliu.AcademicYear, asOf jiaoliu.Date) ([]*jiaoliu.ExchangeProgress, error) {
	if districtID == "" && schoolID != "" {
		school, err := s.authorizeSchool(ctx, schoolID)
		if err != nil {
			return nil, err
		}
		districtID = school.DistrictID
	}
	sc, err := s.authorizeDistrict(ctx, districtID)
	if err != nil {
		return nil, err
	}
	if schoolID != "" {
		if sc.school != "" && sc.school != schoolID {
			return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "you may see the reports of your own school only")
		}
		sc.school = schoolID
	}
	dd, err := s.loadDistrict(ctx, sc, y)
	if err != nil {
		return nil, fmt.Errorf("exchange progress: %w", err)
	}
	return s.progressOf(ctx, dd.exchanges, y, asOf, dd.byID, dd.teacherByID, map[string]*jiaoliu.Policy{policyKey(districtID, y): dd.policy}, dd.scopeKey())
}

func policyKey(district string, y jiaoliu.AcademicYear) string { return district + "/" + string(y) }

// ExchangeProgress implements jiaoliu.PolicyService.
func (s *Store) ExchangeProgress(ctx context.Context, ids []string, asOf jiaoliu.Date) (map[string]*jiaoliu.ExchangeProgress, error) {
	xs, err := GetMany[jiaoliu.Exchange](ctx, s, jiaoliu.ExchangeEntity, ids)
	if err != nil {
		return nil, fmt.Errorf("exchange progress: %w", err)
	}
	exchanges := make([]*jiaoliu.Exchange, 0, len(xs))
	var schoolIDs, teacherIDs []string
	for _, x := range xs {
		if x.Deleted {
			continue
		}
		exchanges = append(exchanges, x)
		schoolIDs = append(schoolIDs, x.SendingSchoolID, x.ReceivingSchoolID)
		teacherIDs = append(teacherIDs, x.TeacherID)
	}
	schools, teachers := map[string]*jiaoliu.School{}, map[string]*jiaoliu.Teacher{}
	if err := parallel(ctx,
		func(ctx context.Context) error { return s.loadSchools(ctx, dedupe(schoolIDs), schools) },
		func(ctx context.Context) error { return s.loadTeachers(ctx, dedupe(teacherIDs), teachers) },
	); err != nil {
		return nil, fmt.Errorf("exchange progress: %w", err)
	}
	policies, err := s.policiesFor(ctx, schools)
	if err != nil {
		return nil, fmt.Errorf("exchange progress: %w", err)
	}
	list, err := s.progressOf(ctx, exchanges, "", asOf, schools, teachers, policies, "")
	if err != nil {
		return nil, fmt.Errorf("exchange progress: %w", err)
	}
	out := make(map[string]*jiaoliu.ExchangeProgress, len(list))
	for _, p := range list {
		out[p.ExchangeID] = p
	}
	return out, nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// policiesFor reads every policy of the districts of the schools, keyed by policyKey.
func (s *Store) policiesFor(ctx context.Context, schools map[string]*jiaoliu.School) (map[string]*jiaoliu.Policy, error) {
	var districts []string
	for _, sc := range schools {
		districts = append(districts, sc.DistrictID)
	}
	var list []*jiaoliu.Policy
	if err := s.db.SelectContext(ctx, &list, `SELECT `+columns(jiaoliu.PolicyEntity)+` FROM policies t WHERE t.district_id = ANY($1::uuid[]) AND NOT t.deleted`, pq.Array(dedupe(districts))); err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	out := map[string]*jiaoliu.Policy{}
	for _, p := range list {
		out[policyKey(p.DistrictID, jiaoliu.AcademicYear(p.AcademicYear))] = p
	}
	return out, nil
}

// policyOf picks the policy an exchange is judged by: its sending school's district's
// policy for the duty year, else for the exchange's year, else the district's latest
// policy before it, else its earliest policy after it (an exchange of a year before the
// district set its first policy), else the same for the receiving school's district.
func policyOf(x *jiaoliu.Exchange, duty jiaoliu.AcademicYear, schools map[string]*jiaoliu.School, policies map[string]*jiaoliu.Policy) *jiaoliu.Policy {
	for _, sid := range []string{x.SendingSchoolID, x.ReceivingSchoolID} {
		sc := schools[sid]
		if sc == nil {
			continue
		}
		for _, y := range []jiaoliu.AcademicYear{duty, jiaoliu.AcademicYear(x.AcademicYear)} {
			if p := policies[policyKey(sc.DistrictID, y)]; p != nil {
				return p
			}
		}
		var before, after *jiaoliu.Policy
		for _, p := range policies {
			switch {
			case p.DistrictID != sc.DistrictID:
			case p.AcademicYear <= string(duty):
				if before == nil || p.AcademicYear > before.AcademicYear {
					before = p
				}
			case after == nil || p.AcademicYear < after.AcademicYear:
				after = p
			}
		}
		if before != nil {
			return before
		}
		if after != nil {
			return after
		}
	}
	return nil
}

// progressOf applies the progress rules to exchanges. With year set (a dashboard), the
// duties are counted over that academic year; otherwise over each exchange's duty
// window as of asOf. With cacheKey set (a district view: year set), the activity is
// taken from the cache of each exchange's counts, and the progress of an exchange is
// reused when nothing it is computed from changed since the last call with that key
// and day (policy_cache.go).
func (s *Store) progressOf(ctx context.Context, exchanges []*jiaoliu.Exchange, year jiaoliu.AcademicYear, asOf jiaoliu.Date,
	schools map[string]*jiaoliu.School, teachers map[string]*jiaoliu.Teacher, policies map[string]*jiaoliu.Policy, cacheKey string) ([]*jiaoliu.ExchangeProgress, error) {
	if len(exchanges) == 0 {
		return nil, nil
	}
	type window struct{ from, to jiaoliu.Date }
	windows := map[window][]*jiaoliu.Exchange{}
	windowOf := map[string]window{}
	var ids, teacherIDs []string
	for _, x := range exchanges {
		var from, to jiaoliu.Date
		if year != "" {
			from, to = jiaoliu.YearWindow(year, asOf)
		} else {
			_, from, to = jiaoliu.DutyWindow(x, asOf)
		}
		w := window{from, to}
		windows[w] = append(windows[w], x)
		windowOf[x.ID] = w
		ids = append(ids, x.ID)
		teacherIDs = append(teacherIDs, x.TeacherID)
	}
	teacherIDs = dedupe(teacherIDs)
	activity := map[string]*jiaoliu.ExchangeActivity{}
	var mu sync.Mutex
	var evals []*jiaoliu.Evaluation
	var unqualified []*jiaoliu.Evaluation
	history := map[string]*jiaoliu.Exchange{}
	// grades reads the evaluations of the exchanges xs and the UNQUALIFIED grades of
	// their teachers.
	grades := func(xs []*jiaoliu.Exchange) []func(context.Context) error {
		xids, tids := make([]string, len(xs)), make([]string, len(xs))
		for i, x := range xs {
			xids[i], tids[i] = x.ID, x.TeacherID
		}
		tids = dedupe(tids)
		return []func(context.Context) error{
			s.step(ctx, "evaluations", func(ctx context.Context) error {
				if err := s.db.SelectContext(ctx, &evals, evaluationsQuery, pq.Array(xids)); err != nil {
					return fmt.Errorf("load evaluations: %w", err)
				}
				return nil
			}),
			s.step(ctx, "unqualified", func(ctx context.Context) error {
				// The teachers' UNQUALIFIED grades of every exchange, for the two-year rule.
				if err := s.db.SelectContext(ctx, &unqualified, `SELECT `+columns(jiaoliu.EvaluationEntity)+` FROM evaluations t
				JOIN exchanges x ON x.id = t.exchange_id
				WHERE x.teacher_id = ANY($1::uuid[]) AND t.finalized AND t.grade = 'UNQUALIFIED' AND NOT t.deleted`, pq.Array(tids)); err != nil {
					return fmt.Errorf("load grades: %w", err)
				}
				var xs []*jiaoliu.Exchange
				var hids []string
				for _, e := range unqualified {
					hids = append(hids, e.ExchangeID)
				}
				if len(hids) > 0 {
					if err := s.db.SelectContext(ctx, &xs, `SELECT `+columns(jiaoliu.ExchangeEntity)+` FROM exchanges t WHERE t.id = ANY($1::uuid[])`, pq.Array(dedupe(hids))); err != nil {
						return fmt.Errorf("load graded exchanges: %w", err)
					}
				}
				for _, x := range xs {
					history[x.ID] = x
				}
				return nil
			}),
		}
	}
	var fns []func(context.Context) error
	var gradesFP string
	if cacheKey == "" {
		fns = append(fns, grades(exchanges)...)
	} else {
		fns = append(fns, s.step(ctx, "progress fingerprint", func(ctx context.Context) error {
			if err := s.db.GetContext(ctx, &gradesFP, progressFingerprintQuery, pq.Array(ids), pq.Array(teacherIDs)); err != nil {
				return fmt.Errorf("fingerprint evaluations: %w", err)
			}
			return nil
		}))
	}
	for w, xs := range windows {
		fns = append(fns, func(ctx context.Context) error {
			var acts map[string]*jiaoliu.ExchangeActivity
			var err error
			if cacheKey != "" {
				acts, err = s.cachedActivity(ctx, xs, w.from, w.to)
			} else {
				wids := make([]string, len(xs))
				for i, x := range xs {
					wids[i] = x.ID
				}
				acts, _, err = s.activity(ctx, wids, w.from, w.to, nil)
			}
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for id, a := range acts {
				activity[id] = a
			}
			return nil
		})
	}
	if err := parallel(ctx, fns...); err != nil {
		return nil, err
	}
	// With a cache, the progress of an exchange is reused when nothing it is computed
	// from changed: the grades of every exchange of the list and the policies (shared),
	// and its own exchange, schools, teacher and activity. Only the others are
	// computed, with their grades.
	var shared string
	var prev *progressEntry
	keys := make([]progressKey, len(exchanges))
	reused := make([]*jiaoliu.ExchangeProgress, len(exchanges))
	compute := exchanges
	if cacheKey != "" {
		f := newFingerprint().str(cacheKey).str(string(year)).str(asOf.String()).str(gradesFP)
		pkeys := make([]string, 0, len(policies))
		for k := range policies {
			pkeys = append(pkeys, k)
		}
		sort.Strings(pkeys)
		for _, k := range pkeys {
			f.str(k).add(policies[k].ID, policies[k].Version)
		}
		shared = f.sum()
		version := func(sc *jiaoliu.School) int64 {
			if sc == nil {
				return -1
			}
			return sc.Version
		}
		for i, x := range exchanges {
			k := progressKey{exchange: x.Version, sending: version(schools[x.SendingSchoolID]), receiving: version(schools[x.ReceivingSchoolID]),
				teacher: -1, activity: activity[x.ID]}
			if t := teachers[x.TeacherID]; t != nil {
				k.teacher = t.Version
			}
			keys[i] = k
		}
		s.views.mu.Lock()
		if prev = s.views.progress[cacheKey+"@"+asOf.String()]; prev != nil {
			s.views.touch(prev)
		}
		s.views.mu.Unlock()
		compute = nil
		all := true
		for i, x := range exchanges {
			if prev != nil && prev.shared == shared {
				if it, ok := prev.items[x.ID]; ok && it.key == keys[i] {
					reused[i] = it.progress
					if i >= len(prev.list) || prev.list[i] != it.progress {
						all = false
					}
					continue
				}
			}
			all = false
			compute = append(compute, x)
		}
		if all && len(prev.list) == len(exchanges) {
			return prev.list, nil
		}
		// The grades do not depend on the day: those of every exchange of the list are
		// kept while their fingerprint (and the list) is the same, for the progress of
		// the list as of another day.
		if len(compute) > 0 {
			gkey := newFingerprint().str(gradesFP)
			for _, x := range exchanges {
				gkey.add(x.ID, 0).str(x.TeacherID)
			}
			gfp := gkey.sum()
			s.views.mu.Lock()
			g := s.views.grades[cacheKey]
			s.views.mu.Unlock()
			if g != nil && g.fingerprint == gfp {
				evals, unqualified, history = g.evals, g.unqualified, g.history
			} else if err := parallel(ctx, grades(compute)...); err != nil {
				return nil, err
			} else if len(compute) == len(exchanges) {
				s.views.mu.Lock()
				putBounded(&s.views.grades, cacheKey, &gradesEntry{fingerprint: gfp, evals: evals, unqualified: unqualified, history: history})
				s.views.mu.Unlock()
			}
		}
	}
	evalsOf := map[string][]*jiaoliu.Evaluation{}
	for _, e := range evals {
		evalsOf[e.ExchangeID] = append(evalsOf[e.ExchangeID], e)
	}
	unqualifiedOf := map[string][]*jiaoliu.Evaluation{}
	for _, e := range unqualified {
		if x := history[e.ExchangeID]; x != nil {
			unqualifiedOf[x.TeacherID] = append(unqualifiedOf[x.TeacherID], e)
		}
	}
	results := make([]*jiaoliu.ExchangeProgress, len(compute))
	err := inChunks(len(compute), func(lo, hi int) error {
		for i, x := range compute[lo:hi] {
			duty, _, _ := jiaoliu.DutyWindow(x, asOf)
			if year != "" {
				duty = year
			}
			p := policyOf(x, duty, schools, policies)
			if p == nil {
				return jiaoliu.Errorf(jiaoliu.ENOTFOUND, "no policy applies to exchange %s: create the district's policy for %s", x.ID, duty)
			}
			a := activity[x.ID]
			if a == nil {
				w := windowOf[x.ID]
				a = &jiaoliu.ExchangeActivity{ExchangeID: x.ID, From: w.from, To: w.to}
			}
			name, position := "", jiaoliu.Position("")
			if t := teachers[x.TeacherID]; t != nil {
				name, position = t.Name, t.Position
			}
			// With a year (a dashboard, the progress report) the duties are judged on that
			// year, over the window the activity was counted in.
			results[lo+i] = jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p.PolicyParams, Exchange: x, TeacherName: name,
				Sending: schools[x.SendingSchoolID], Receiving: schools[x.ReceivingSchoolID], Activity: *a,
				Evaluations: evalsOf[x.ID], UnqualifiedYears: jiaoliu.UnqualifiedYears(history, unqualifiedOf[x.TeacherID]), AsOf: asOf,
				Year: year, Position: position})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// compute is the exchanges not reused, in the list's order.
	out := make([]*jiaoliu.ExchangeProgress, len(exchanges))
	for i := range exchanges {
		if out[i] = reused[i]; out[i] == nil {
			out[i], results = results[0], results[1:]
		}
	}
	if cacheKey != "" {
		e := &progressEntry{shared: shared, items: make(map[string]progressItem, len(exchanges)), list: out}
		for i, x := range exchanges {
			e.items[x.ID] = progressItem{key: keys[i], progress: out[i]}
		}
		s.views.mu.Lock()
		putSized(&s.views, &s.views.progress, cacheKey+"@"+asOf.String(), e)
		s.views.mu.Unlock()
	}
	return out, nil
}

// evaluationsQuery reads the live evaluations of exchanges ($1), by exchange and term.
var evaluationsQuery = `SELECT ` + columns(jiaoliu.EvaluationEntity) + ` FROM evaluations t
	WHERE t.exchange_id = ANY($1::uuid[]) AND NOT t.deleted ORDER BY t.exchange_id, t.term`

type activityRow struct {
	ExchangeID    string `db:"exchange_id"`
	Lessons       int    `db:"lessons"`
	Demonstration int    `db:"demonstration"`
	Guidance      int    `db:"guidance"`
	Delivered     int    `db:"delivered"`
	Weeks         int    `db:"weeks"`
	Research      int    `db:"research"`
	Surveys       int    `db:"surveys"`
	Observations  int    `db:"observations"`
	Critiques     int    `db:"critiques"`
	Present       int    `db:"present"`
	Leave         int    `db:"leave"`
	Sick          int    `db:"sick"`
	Absent        int    `db:"absent"`
}

// activityQuery counts the activity of exchanges ($1) over from ($2) .. to ($3) from the
// daily buckets (migrations 00004 and 00016). For an exchange whose buckets in the
// window are all folded (no delta rows), it reads one row: the cumulative counts of the
// last day up to to that has a bucket. An exchange with delta rows not yet folded
// (written in the last half minute) has its days summed instead, and its weeks with
// lessons counted from them.
const activityQuery = `
WITH dirty AS MATERIALIZED (
	SELECT DISTINCT exchange_id FROM exchange_week_stats
	WHERE delta AND exchange_id = ANY($1::uuid[]) AND week BETWEEN $2 AND $3
), folded AS (
	SELECT p.* FROM unnest($1::uuid[]) AS e(id)
	CROSS JOIN LATERAL (
		SELECT exchange_id, c_lessons AS lessons, c_demonstration AS demonstration, c_guidance AS guidance, c_delivered AS delivered, c_research AS research, c_surveys AS surveys, c_observations AS observations, c_critiques AS critiques, c_present AS present, c_leave AS leave, c_sick AS sick, c_absent AS absent, c_weeks AS weeks
		FROM exchange_week_stats
		WHERE exchange_id = e.id AND NOT delta AND week >= $2 AND week <= $3
		ORDER BY week DESC LIMIT 1) p
	WHERE e.id NOT IN (SELECT exchange_id FROM dirty)
), days AS (
	SELECT s.exchange_id, s.week, sum(s.lessons) AS lessons, sum(s.demonstration) AS demonstration, sum(s.guidance) AS guidance, sum(s.delivered) AS delivered, sum(s.research) AS research, sum(s.surveys) AS surveys, sum(s.observations) AS observations, sum(s.critiques) AS critiques, sum(s.present) AS present, sum(s.leave) AS leave, sum(s.sick) AS sick, sum(s.absent) AS absent
	FROM exchange_week_stats s JOIN dirty d ON d.exchange_id = s.exchange_id
	WHERE s.week BETWEEN $2 AND $3
	GROUP BY s.exchange_id, s.week
)
SELECT exchange_id, lessons, demonstration, guidance, delivered, weeks, research, surveys, observations, critiques, present, leave, sick, absent
FROM folded
UNION ALL
SELECT exchange_id, sum(lessons), sum(demonstration), sum(guidance), sum(delivered), count(DISTINCT stats_week(week)) FILTER (WHERE lessons > 0),
	sum(research), sum(surveys), sum(observations), sum(critiques), sum(present), sum(leave), sum(sick), sum(absent)
FROM days GROUP BY exchange_id`

// activity counts what was logged for each exchange over from..to, with its longest run
// of ABSENT records up to to. The runs are computed from each exchange's ABSENT records
// (absentRecords), taken from absent when it holds the exchange and read otherwise; the
// records read are returned with the counts.
func (s *Store) activity(ctx context.Context, ids []string, from, to jiaoliu.Date, absent map[string][]absentRecord) (
	map[string]*jiaoliu.ExchangeActivity, map[string][]absentRecord, error) {
	out := make(map[string]*jiaoliu.ExchangeActivity, len(ids))
	var need []string
	for _, id := range ids {
		out[id] = &jiaoliu.ExchangeActivity{ExchangeID: id, From: from, To: to}
		if _, ok := absent[id]; !ok {
			need = append(need, id)
		}
	}
	var rows []activityRow
	var read map[string][]absentRecord
	err := parallel(ctx,
		s.step(ctx, "activity", func(ctx context.Context) error {
			if to.Before(from) {
				return nil
			}
			// The days of a district's exchanges written since the last fold are grouped
			// in memory, not on disk.
			tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
				return err
			}
			return tx.SelectContext(ctx, &rows, activityQuery, pq.Array(ids), from, to)
		}),
		s.step(ctx, "absence runs", func(ctx context.Context) error {
			var err error
			read, err = s.absentRecords(ctx, need)
			return err
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("count activity: %w", err)
	}
	for _, r := range rows {
		a := out[r.ExchangeID]
		if a == nil {
			continue
		}
		a.Lessons, a.DemonstrationLessons, a.GuidanceLessons, a.DeliveredLessons, a.LessonWeeks = r.Lessons, r.Demonstration, r.Guidance, r.Delivered, r.Weeks
		a.ResearchActivities, a.Surveys, a.Observations, a.Critiques = r.Research, r.Surveys, r.Observations, r.Critiques
		a.Present, a.Leave, a.Sick, a.Absent = r.Present, r.Leave, r.Sick, r.Absent
	}
	for id, a := range out {
		recs, ok := absent[id]
		if !ok {
			recs = read[id]
		}
		a.LongestAbsentRun = longestRun(recs, to)
	}
	return out, read, nil
}

// An absentRecord is the day of one of an exchange's ABSENT attendance records, and
// whether a record of another status lies between it and the exchange's next ABSENT
// record (or none follows): whether the run it is in ends with it.
type absentRecord struct {
	date   jiaoliu.Date
	breaks bool
}

// absentRecordsQuery reads the ABSENT records of exchanges ($1) in order, with whether
// each ends its run (see absentRecord), over all their days: a run up to any day is the
// records up to that day (longestRun).
const absentRecordsQuery = `
SELECT exchange_id, date,
	next IS NULL OR EXISTS (SELECT 1 FROM attendance o WHERE o.exchange_id = a.exchange_id
		AND o.date > a.date AND o.date < a.next AND o.status <> 'ABSENT' AND NOT o.deleted) AS breaks
FROM (SELECT exchange_id, date, lead(date) OVER (PARTITION BY exchange_id ORDER BY date) AS next
	FROM attendance WHERE exchange_id = ANY($1::uuid[]) AND status = 'ABSENT' AND NOT deleted) a
ORDER BY exchange_id, date`

// absentRecords reads the ABSENT records of the exchanges ids, by exchange (an exchange
// without any has an empty list).
func (s *Store) absentRecords(ctx context.Context, ids []string) (map[string][]absentRecord, error) {
	out := make(map[string][]absentRecord, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	for _, id := range ids {
		out[id] = nil
	}
	rows, err := s.db.QueryContext(ctx, absentRecordsQuery, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("read absences: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r absentRecord
		if err := rows.Scan(&id, &r.date, &r.breaks); err != nil {
			return nil, fmt.Errorf("read absences: %w", err)
		}
		out[id] = append(out[id], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read absences: %w", err)
	}
	return out, nil
}

// longestRun returns the longest run of ABSENT records up to to among recs (in order),
// the earliest of the longest, as jiaoliu.LongestAbsentRun: the records up to to are a
// run each time one ends (breaks) and at the last of them.
func longestRun(recs []absentRecord, to jiaoliu.Date) jiaoliu.AbsenceRun {
	var best, cur jiaoliu.AbsenceRun
	for _, r := range recs {
		if r.date.After(to) {
			break
		}
		best = cur.Extend(r.date, best)
		if r.breaks {
			cur = jiaoliu.AbsenceRun{}
		}
	}
	return best
}

// districtPairs reads the mentoring pairs of the year whose school, mentor or mentee
// is in scope, with their activity counts.
func (s *Store) districtPairs(ctx context.Context, dd *districtData, asOf jiaoliu.Date) ([]*jiaoliu.PairProgress, error) {
	args := []any{dd.scope.district.ID, string(dd.year)}
	schools := `(SELECT id FROM schools WHERE district_id = $1)`
	if dd.scope.school != "" {
		schools = `(SELECT $3::uuid)`
		args = append(args, dd.scope.school)
	}
	// The pairs, their activities and teachers are fingerprinted in SQL; the scope's
	// teachers and schools and the policy by the view's own fingerprint.
	var sqlFP string
	if err := s.db.GetContext(ctx, &sqlFP, fmt.Sprintf(pairsFingerprintQuery, schools), args...); err != nil {
		return nil, fmt.Errorf("fingerprint pairs: %w", err)
	}
	key := dd.scopeKey() + "@" + asOf.String()
	fp := newFingerprint().str(sqlFP).str(dd.fingerprint()).sum()
	s.views.mu.Lock()
	e := s.views.pairs[key]
	if e != nil {
		s.views.touch(e)
	}
	s.views.mu.Unlock()
	if e != nil && e.fingerprint == fp {
		return e.list, nil
	}
	// Another day of the same pairs: their activities are counted up to that day from
	// the days read before.
	s.views.mu.Lock()
	in := s.views.pairInputs[dd.scopeKey()]
	s.views.mu.Unlock()
	if in == nil || in.fingerprint != fp {
		var pairs []*jiaoliu.MentoringPair
		if err := s.db.SelectContext(ctx, &pairs, `SELECT `+columns(jiaoliu.MentoringPairEntity)+` FROM mentoring_pairs t
		WHERE t.academic_year = $2 AND NOT t.deleted AND $1::uuid IS NOT NULL AND (t.school_id IN `+schools+`
			OR EXISTS (SELECT 1 FROM teachers tt WHERE tt.id IN (t.mentor_id, t.mentee_id) AND tt.school_id IN `+schools+`))
		ORDER BY t.id`, args...); err != nil {
			return nil, fmt.Errorf("load pairs: %w", err)
		}
		var err error
		if in, err = s.loadPairInputs(ctx, pairs, dd.teacherByID, dd.byID); err != nil {
			return nil, err
		}
		in.fingerprint = fp
		s.views.mu.Lock()
		putBounded(&s.views.pairInputs, dd.scopeKey(), in)
		s.views.mu.Unlock()
	}
	list, err := in.progress(map[string]*jiaoliu.Policy{policyKey(dd.scope.district.ID, dd.year): dd.policy}, asOf)
	if err != nil {
		return nil, err
	}
	s.views.mu.Lock()
	putSized(&s.views, &s.views.pairs, key, &pairsEntry{fingerprint: fp, list: list})
	s.views.mu.Unlock()
	return list, nil
}

// pairDatesQuery reads the days of the live activities of each pair ($1) by kind, in
// order, over the pair's academic year: what the pairs' progress counts on any day of
// the year (the activities up to that day).
const pairDatesQuery = `SELECT a.pair_id, a.kind, array_agg(a.date ORDER BY a.date) AS dates FROM mentoring_activities a
	JOIN mentoring_pairs p ON p.id = a.pair_id
	WHERE a.pair_id = ANY($1::uuid[]) AND NOT a.deleted
		AND a.date BETWEEN make_date(substr(p.academic_year, 1, 4)::int, 9, 1) AND make_date(substr(p.academic_year, 6, 4)::int, 8, 31)
	GROUP BY a.pair_id, a.kind`

// pairInputs is what the progress of mentoring pairs is computed from on any day: the
// pairs, the days of their activities, their teachers and the schools that decide
// their policies. It is shared between calls once built and never modified.
type pairInputs struct {
	fingerprint string // of a district view's pairs (districtPairs); "" otherwise
	pairs       []*jiaoliu.MentoringPair
	days        map[string]map[jiaoliu.MentoringKind][]jiaoliu.Date // by pair and kind, in order
	teachers    map[string]*jiaoliu.Teacher
	schools     map[string]*jiaoliu.School
}

// pairInputLoads counts the calls of loadPairInputs (the tests see what a view reused).
var pairInputLoads atomic.Int64

// loadPairInputs reads the activities of pairs, and their teachers and schools not in
// teachers and known.
func (s *Store) loadPairInputs(ctx context.Context, pairs []*jiaoliu.MentoringPair, teachers map[string]*jiaoliu.Teacher,
	known map[string]*jiaoliu.School) (*pairInputs, error) {
	pairInputLoads.Add(1)
	var ids, missing []string
	for _, p := range pairs {
		ids = append(ids, p.ID)
		for _, t := range []string{p.MentorID, p.MenteeID} {
			if teachers[t] == nil {
				missing = append(missing, t)
			}
		}
	}
	if len(missing) > 0 {
		teachers = copyTeachers(teachers)
		if err := s.loadTeachers(ctx, dedupe(missing), teachers); err != nil {
			return nil, err
		}
	}
	in := &pairInputs{pairs: pairs, days: make(map[string]map[jiaoliu.MentoringKind][]jiaoliu.Date, len(pairs)), teachers: teachers,
		schools: map[string]*jiaoliu.School{}}
	dbRows, err := s.db.QueryContext(ctx, pairDatesQuery, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("read pair activities: %w", err)
	}
	defer dbRows.Close()
	for dbRows.Next() {
		var pair, kind string
		var days []jiaoliu.Date
		if err := dbRows.Scan(&pair, &kind, pq.GenericArray{A: &days}); err != nil {
			return nil, fmt.Errorf("read pair activities: %w", err)
		}
		if in.days[pair] == nil {
			in.days[pair] = map[jiaoliu.MentoringKind][]jiaoliu.Date{}
		}
		in.days[pair][jiaoliu.MentoringKind(kind)] = days
	}
	if err := dbRows.Err(); err != nil {
		return nil, fmt.Errorf("read pair activities: %w", err)
	}
	var schoolIDs []string
	for _, p := range pairs {
		for _, sid := range pairSchools(p, teachers) {
			if sc := known[sid]; sc != nil {
				in.schools[sid] = sc
			} else {
				schoolIDs = append(schoolIDs, sid)
			}
		}
	}
	if err := s.loadSchools(ctx, dedupe(schoolIDs), in.schools); err != nil {
		return nil, err
	}
	return in, nil
}

// progress computes the progress of the pairs as of asOf under policies (by
// policyKey): each pair's activities up to asOf, counted by kind.
func (in *pairInputs) progress(policies map[string]*jiaoliu.Policy, asOf jiaoliu.Date) ([]*jiaoliu.PairProgress, error) {
	out := make([]*jiaoliu.PairProgress, 0, len(in.pairs))
	for _, p := range in.pairs {
		var pol *jiaoliu.Policy
		for _, sid := range pairSchools(p, in.teachers) {
			if sc := in.schools[sid]; sc != nil {
				if pol = policies[policyKey(sc.DistrictID, jiaoliu.AcademicYear(p.AcademicYear))]; pol != nil {
					break
				}
			}
		}
		if pol == nil {
			for _, v := range policies {
				pol = v
				break
			}
		}
		if pol == nil {
			return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "no policy applies to mentoring pair %s: create the district's policy for %s", p.ID, p.AcademicYear)
		}
		counts := make(map[jiaoliu.MentoringKind]int, len(in.days[p.ID]))
		for kind, days := range in.days[p.ID] {
			// The days are in order: those up to asOf are the first n.
			if n := sort.Search(len(days), func(i int) bool { return days[i].After(asOf) }); n > 0 {
				counts[kind] = n
			}
		}
		pp := jiaoliu.ComputePairProgress(pol.PolicyParams, p, counts, asOf)
		if t := in.teachers[p.MentorID]; t != nil {
			pp.MentorName = t.Name
		}
		if t := in.teachers[p.MenteeID]; t != nil {
			pp.MenteeName = t.Name
		}
		out = append(out, pp)
	}
	return out, nil
}

func pairSchools(p *jiaoliu.MentoringPair, teachers map[string]*jiaoliu.Teacher) []string {
	var out []string
	if p.SchoolID != nil {
		out = append(out, *p.SchoolID)
	}
	for _, id := range []string{p.MenteeID, p.MentorID} {
		if t := teachers[id]; t != nil {
			out = append(out, t.SchoolID)
		}
	}
	return out
}

func copyTeachers(m map[string]*jiaoliu.Teacher) map[string]*jiaoliu.Teacher {
	out := make(map[string]*jiaoliu.Teacher, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PairProgress implements jiaoliu.PolicyService.
func (s *Store) PairProgress(ctx context.Context, ids []string, asOf jiaoliu.Date) (map[string]*jiaoliu.PairProgress, error) {
	m, err := GetMany[jiaoliu.MentoringPair](ctx, s, jiaoliu.MentoringPairEntity, ids)
	if err != nil {
		return nil, fmt.Errorf("pair progress: %w", err)
	}
	pairs := make([]*jiaoliu.MentoringPair, 0, len(m))
	for _, p := range m {
		if !p.Deleted {
			pairs = append(pairs, p)
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].ID < pairs[j].ID })
	var list []*jiaoliu.PairProgress
	if len(pairs) > 0 {
		in, err := s.loadPairInputs(ctx, pairs, map[string]*jiaoliu.Teacher{}, nil)
		if err != nil {
			return nil, fmt.Errorf("pair progress: %w", err)
		}
		policies, err := s.policiesFor(ctx, in.schools)
		if err != nil {
			return nil, fmt.Errorf("pair progress: %w", err)
		}
		if list, err = in.progress(policies, asOf); err != nil {
			return nil, fmt.Errorf("pair progress: %w", err)
		}
	}
	out := make(map[string]*jiaoliu.PairProgress, len(list))
	for _, p := range list {
		out[p.PairID] = p
	}
	return out, nil
}

// PromotionCheck implements jiaoliu.PolicyService.
func (s *Store) PromotionCheck(ctx context.Context, teacherID string, asOf jiaoliu.Date) (*jiaoliu.PromotionCheck, error) {
	t, err := Get[jiaoliu.Teacher](ctx, s, jiaoliu.TeacherEntity, teacherID)
	if err != nil {
		return nil, err
	}
	var stints []*jiaoliu.SchoolStint
	var exchanges []*jiaoliu.Exchange
	if err := parallel(ctx,
		func(ctx context.Context) error {
			return s.db.SelectContext(ctx, &stints, `SELECT `+columns(jiaoliu.SchoolStintEntity)+` FROM school_stints t WHERE t.teacher_id = $1 AND NOT t.deleted`, teacherID)
		},
		func(ctx context.Context) error {
			return s.db.SelectContext(ctx, &exchanges, `SELECT `+columns(jiaoliu.ExchangeEntity)+` FROM exchanges t WHERE t.teacher_id = $1 AND NOT t.deleted`, teacherID)
		},
	); err != nil {
		return nil, fmt.Errorf("promotion check: %w", err)
	}
	ids := []string{t.SchoolID}
	for _, st := range stints {
		ids = append(ids, st.SchoolID)
	}
	schools := map[string]*jiaoliu.School{}
	if err := s.loadSchools(ctx, dedupe(ids), schools); err != nil {
		return nil, fmt.Errorf("promotion check: %w", err)
	}
	var groupIDs []string
	for _, sc := range schools {
		if sc.GroupID != nil {
			groupIDs = append(groupIDs, *sc.GroupID)
		}
	}
	groups := map[string]*jiaoliu.SchoolGroup{}
	if len(groupIDs) > 0 {
		var list []*jiaoliu.SchoolGroup
		if err := s.db.SelectContext(ctx, &list, `SELECT `+columns(jiaoliu.SchoolGroupEntity)+` FROM school_groups t WHERE t.id = ANY($1::uuid[])`, pq.Array(dedupe(groupIDs))); err != nil {
			return nil, fmt.Errorf("promotion check: %w", err)
		}
		for _, g := range list {
			groups[g.ID] = g
		}
	}
	return jiaoliu.CheckPromotion(jiaoliu.PromotionInput{Teacher: t, Stints: stints, Schools: schools, Groups: groups, Exchanges: exchanges, AsOf: asOf}), nil
}

// CompactExchangeStats folds the delta rows the triggers append into one row per
// bucket and returns the number of buckets written. It is safe to run at any time,
// concurrently with writers; the server runs it periodically.
func (s *Store) CompactExchangeStats(ctx context.Context) (int, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT stats_compact()`); err != nil {
		return 0, fmt.Errorf("compact exchange stats: %w", err)
	}
	return n, nil
}

// RebuildExchangeStats recounts the weekly activity buckets from the records (after a
// bulk load that bypassed the triggers, or to repair them).
func (s *Store) RebuildExchangeStats(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `SELECT stats_rebuild()`); err != nil {
		return fmt.Errorf("rebuild exchange stats: %w", err)
	}
	return nil
}

// Today returns the current day in China Standard Time, the default "as of" of the
// views (the rules themselves never read the clock).
func Today() jiaoliu.Date {
	return jiaoliu.DateOf(time.Now().In(chinaTime))
}

var chinaTime = time.FixedZone("CST", 8*3600)
