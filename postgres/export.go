package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// PublicList returns the public list (公示) of a district's exchanges of an academic
// year: those APPROVED, PUBLISHED, ACTIVE or COMPLETED, by sending school and teacher.
// A school administrator gets the exchanges from or to their school.
func (s *Store) PublicList(ctx context.Context, districtID string, y jiaoliu.AcademicYear) ([]*jiaoliu.PublicListEntry, error) {
	sc, err := s.authorizeDistrict(ctx, districtID)
	if err != nil {
		return nil, err
	}
	dd, err := s.loadDistrict(ctx, sc, y)
	if err != nil {
		return nil, fmt.Errorf("public list: %w", err)
	}
	var out []*jiaoliu.PublicListEntry
	for _, x := range jiaoliu.RotatingExchanges(dd.exchanges, y) {
		e := &jiaoliu.PublicListEntry{ExchangeID: x.ID, TeacherID: x.TeacherID, Mode: x.Mode, PlannedStart: x.PlannedStart,
			PlannedEnd: x.PlannedEnd, Volunteer: x.Volunteer, RelationMoves: x.RelationMoves, Status: x.Status}
		if t := dd.teacherByID[x.TeacherID]; t != nil {
			e.TeacherName, e.Gender, e.Title, e.BackboneLevel, e.Position = t.Name, t.Gender, t.Title, t.BackboneLevel, t.Position
		}
		if sch := dd.byID[x.SendingSchoolID]; sch != nil {
			e.SendingSchoolName = sch.Name
		}
		if sch := dd.byID[x.ReceivingSchoolID]; sch != nil {
			e.ReceivingSchoolName = sch.Name
		}
		out = append(out, e)
	}
	// Subjects are not among the lean teacher columns: read them for the list only.
	ids := make([]string, len(out))
	for i, e := range out {
		ids[i] = e.TeacherID
	}
	if len(ids) > 0 {
		var subjects []struct {
			ID       string             `db:"id"`
			Subjects jiaoliu.StringList `db:"subjects"`
		}
		if err := s.db.SelectContext(ctx, &subjects, `SELECT id, subjects FROM teachers WHERE id = ANY($1::uuid[])`, pq.Array(dedupe(ids))); err != nil {
			return nil, fmt.Errorf("public list: %w", err)
		}
		bySubject := map[string]jiaoliu.StringList{}
		for _, r := range subjects {
			bySubject[r.ID] = r.Subjects
		}
		for _, e := range out {
			e.Subjects = bySubject[e.TeacherID]
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].SendingSchoolName != out[j].SendingSchoolName {
			return out[i].SendingSchoolName < out[j].SendingSchoolName
		}
		return out[i].TeacherName < out[j].TeacherName
	})
	return out, nil
}

// AttendanceSheet returns the attendance of a month (first day given) for the
// exchanges of q that were under way in it or have records in it. Administrators only:
// district views as in Eligibility; one exchange for whoever administers it.
func (s *Store) AttendanceSheet(ctx context.Context, q jiaoliu.AttendanceQuery, month jiaoliu.Date) (*jiaoliu.AttendanceSheet, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to export attendance")
	}
	if !a.IsAdmin() && a.Role != jiaoliu.RoleAuditor {
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "attendance sheets are for school and district administrators")
	}
	first := month
	last := jiaoliu.DateOf(first.Time().AddDate(0, 1, -1))
	var exchanges []*jiaoliu.Exchange
	switch {
	case q.ExchangeID != "":
		x, err := Get[jiaoliu.Exchange](ctx, s, jiaoliu.ExchangeEntity, q.ExchangeID)
		if err != nil {
			return nil, err
		}
		exchanges = []*jiaoliu.Exchange{x}
	default:
		var schools []string
		switch {
		case q.SchoolID != "":
			if _, err := s.authorizeSchool(ctx, q.SchoolID); err != nil {
				return nil, err
			}
			schools = []string{q.SchoolID}
		default:
			sc, err := s.authorizeDistrict(ctx, q.DistrictID)
			if err != nil {
				return nil, err
			}
			if sc.school != "" {
				schools = []string{sc.school}
			} else if err := s.db.SelectContext(ctx, &schools, `SELECT id::text FROM schools WHERE district_id = $1 AND NOT deleted`, q.DistrictID); err != nil {
				return nil, fmt.Errorf("attendance sheet: %w", err)
			}
		}
		if err := s.db.SelectContext(ctx, &exchanges, `SELECT `+columns(jiaoliu.ExchangeEntity)+` FROM exchanges t
			WHERE NOT t.deleted AND (t.sending_school_id = ANY($1::uuid[]) OR t.receiving_school_id = ANY($1::uuid[]))
			AND ((t.status IN ('ACTIVE', 'COMPLETED', 'TERMINATED') AND t.reported_on <= $3 AND t.planned_end >= $2)
				OR EXISTS (SELECT 1 FROM attendance a WHERE a.exchange_id = t.id AND a.date BETWEEN $2 AND $3 AND NOT a.deleted))`,
			pq.Array(schools), first, last); err != nil {
			return nil, fmt.Errorf("attendance sheet: %w", err)
		}
	}
	sheet := &jiaoliu.AttendanceSheet{Month: first.Time().Format("2006-01"), Days: last.Time().Day()}
	if len(exchanges) == 0 {
		return sheet, nil
	}
	ids, schoolIDs, teacherIDs := make([]string, 0, len(exchanges)), []string{}, []string{}
	for _, x := range exchanges {
		ids = append(ids, x.ID)
		schoolIDs = append(schoolIDs, x.SendingSchoolID, x.ReceivingSchoolID)
		teacherIDs = append(teacherIDs, x.TeacherID)
	}
	schools, teachers := map[string]*jiaoliu.School{}, map[string]*jiaoliu.Teacher{}
	var recs []*jiaoliu.Attendance
	if err := parallel(ctx,
		func(ctx context.Context) error { return s.loadSchools(ctx, dedupe(schoolIDs), schools) },
		func(ctx context.Context) error { return s.loadTeachers(ctx, dedupe(teacherIDs), teachers) },
		func(ctx context.Context) error {
			return s.db.SelectContext(ctx, &recs, `SELECT t.exchange_id, t.date, t.status FROM attendance t
				WHERE t.exchange_id = ANY($1::uuid[]) AND t.date BETWEEN $2 AND $3 AND NOT t.deleted`, pq.Array(ids), first, last)
		},
	); err != nil {
		return nil, fmt.Errorf("attendance sheet: %w", err)
	}
	rows := map[string]*jiaoliu.AttendanceSheetRow{}
	for _, x := range exchanges {
		r := &jiaoliu.AttendanceSheetRow{ExchangeID: x.ID, Days: make([]jiaoliu.AttendanceStatus, sheet.Days)}
		if t := teachers[x.TeacherID]; t != nil {
			r.TeacherName = t.Name
		}
		if sc := schools[x.SendingSchoolID]; sc != nil {
			r.SendingSchoolName = sc.Name
		}
		if sc := schools[x.ReceivingSchoolID]; sc != nil {
			r.ReceivingSchoolName = sc.Name
		}
		rows[x.ID] = r
		sheet.Rows = append(sheet.Rows, r)
	}
	for _, rec := range recs {
		r := rows[rec.ExchangeID]
		r.Days[rec.Date.Time().Day()-1] = rec.Status
		switch rec.Status {
		case jiaoliu.AttendancePresent:
			r.Present++
		case jiaoliu.AttendanceLeave:
			r.Leave++
		case jiaoliu.AttendanceSick:
			r.Sick++
		case jiaoliu.AttendanceAbsent:
			r.Absent++
		}
	}
	sort.SliceStable(sheet.Rows, func(i, j int) bool {
		a, b := sheet.Rows[i], sheet.Rows[j]
		if a.ReceivingSchoolName != b.ReceivingSchoolName {
			return a.ReceivingSchoolName < b.ReceivingSchoolName
		}
		return a.TeacherName < b.TeacherName
	})
	return sheet, nil
}

// MonthStart parses "2006-01" into the first day of that month.
func MonthStart(s string) (jiaoliu.Date, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return jiaoliu.Date{}, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	return jiaoliu.DateOf(t), nil
}

// DistrictName returns the name of a district ("" when unknown), for report titles.
func (s *Store) DistrictName(ctx context.Context, id string) (string, error) {
	var names []string
	if err := s.db.SelectContext(ctx, &names, `SELECT name FROM districts WHERE id = $1`, id); err != nil {
		return "", fmt.Errorf("district name: %w", err)
	}
	if len(names) == 0 {
		return "", nil
	}
	return names[0], nil
}

// SchoolName returns the name of a school ("" when unknown), for report titles.
func (s *Store) SchoolName(ctx context.Context, id string) (string, error) {
	var names []string
	if err := s.db.SelectContext(ctx, &names, `SELECT name FROM schools WHERE id = $1`, id); err != nil {
		return "", fmt.Errorf("school name: %w", err)
	}
	if len(names) == 0 {
		return "", nil
	}
	return names[0], nil
}
