package postgres_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/export"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// This file is an independent oracle for the policy views. It generates a seeded random
// district through Store.Apply — 20 schools of every tier and locality, 400 teachers
// and leaders with birth dates, join dates and terms around the limits, deferrals
// around the reference date, exchanges of every mode and status, lessons, attendance
// with absence runs around 10 and 15, research, observations, evaluations, mentoring
// pairs — and recomputes every answer with a deliberately plain implementation written
// from ../shared/domain.md and docs/policy.md, without calling the production rules
// (only the enum names of the jiaoliu package are shared). The views must match
// exactly: eligibility, quotas, reverse flow, duty progress, attendance flags, report
// for duty, evaluation states, consequences, pair progress, and the rows of the
// exports (XLSX and CSV over HTTP).

// ---- plain calendar arithmetic (civil days at midnight UTC) ----

func oDay(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func oStr(t time.Time) string { return t.Format("2006-01-02") }

// oDaysFrom returns b − a in days.
func oDaysFrom(a, b time.Time) int { return int(math.Round(b.Sub(a).Hours() / 24)) }

// oAge is the number of full years from birth to on (周岁).
func oAge(birth, on time.Time) int {
	n := on.Year() - birth.Year()
	if on.Month() < birth.Month() || (on.Month() == birth.Month() && on.Day() < birth.Day()) {
		n--
	}
	return n
}

// oYearOf returns the first calendar year of the academic year holding day t.
func oYearOf(t time.Time) int {
	if t.Month() >= time.September {
		return t.Year()
	}
	return t.Year() - 1
}

func oYearName(y int) string { return fmt.Sprintf("%d-%d", y, y+1) }

// oCeilPercent is the smallest whole number ≥ pct% of n (pct a whole percentage).
func oCeilPercent(pct float64, n int) int {
	p := int(pct)
	if float64(p) != pct {
		panic("the oracle takes whole percentages")
	}
	return (p*n + 99) / 100
}

func oMin(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func oMax(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// oMonday returns the Monday of t's week.
func oMonday(t time.Time) time.Time { return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)) }

func oWeekday(t time.Time) bool { return t.Weekday() != time.Saturday && t.Weekday() != time.Sunday }

// ---- the world as the oracle holds it ----

type oSchool struct {
	id, name, locality, tier string
	avg                      float64
}

type oTeacher struct {
	id, name, gender, position, backbone, school string
	birth, joined                                time.Time
	lead                                         *time.Time
	employed                                     bool
}

type oDeferral struct {
	teacher, reason string
	starts, expires time.Time
	approved        bool
}

type oExchange struct {
	id, teacher, from, to, mode, status string
	year                                int
	start, end                          time.Time
	reported                            *time.Time
	volunteer                           bool
}

type oLesson struct {
	exchange, kind string
	date           time.Time
	period         int
	deleted        bool
}

type oAttendance struct {
	exchange, status string
	date             time.Time
	deleted          bool
}

type oResearch struct {
	exchange, kind string
	date           time.Time
}

type oObservation struct {
	exchange, observer string
	date               time.Time
	critique           bool
}

type oEvaluation struct {
	exchange, period, term, grade string
	finalized                     bool
}

type oPair struct {
	id   string
	year int
}

type oActivity struct {
	pair    string
	date    time.Time
	deleted bool
}

type oracleWorld struct {
	rng      *rand.Rand
	p        jiaoliu.PolicyParams
	store    *postgres.Store
	district string

	schools     []*oSchool
	schoolByID  map[string]*oSchool
	teachers    []*oTeacher
	teacherByID map[string]*oTeacher
	deferrals   []*oDeferral
	exchanges   []*oExchange
	exchangeBy  map[string]*oExchange
	lessons     map[string]*oLesson
	attendance  map[string]*oAttendance
	research    []*oResearch
	obs         []*oObservation
	evals       []*oEvaluation
	pairs       []*oPair
	activities  map[string]*oActivity

	ops []jiaoliu.Op
	// years are the academic years with a policy (their first calendar years).
	years []int
}

// The academic year judged and the days of the oracle's views.
var (
	oRef   = oDay(2026, 9, 1)
	oEnd   = oDay(2027, 8, 31)
	oLast  = oDay(2026, 12, 18) // the last day with records
	oAsOfs = []time.Time{oDay(2026, 10, 4), oDay(2026, 11, 18), oDay(2027, 8, 31)}
)

func (w *oracleWorld) add(entity, id string, fields map[string]any) {
	w.ops = append(w.ops, upsert(entity, id, fields))
}

func (w *oracleWorld) flush(tb testing.TB) {
	tb.Helper()
	for len(w.ops) > 0 {
		// Not atomic, as a device's batch: runs of creates take the bulk path.
		n := min(len(w.ops), 500)
		res, err := w.store.Apply(sys(), jiaoliu.Batch{Ops: w.ops[:n]})
		if err != nil {
			tb.Fatalf("apply: %v", err)
		}
		for i, r := range res {
			if r.Status != jiaoliu.StatusApplied {
				tb.Fatalf("op %s %s %v: %s %s %v", w.ops[i].Entity, w.ops[i].ID, w.ops[i].Fields, r.Code, r.Message, r.Fields)
			}
		}
		w.ops = w.ops[n:]
	}
}

func (w *oracleWorld) pick(n int) int { return w.rng.IntN(n) }

// nudge moves day, one time in n each, a day later, a day earlier, or up to spread days
// either way; otherwise it leaves it: the days around a limit, and some further off.
func (w *oracleWorld) nudge(day time.Time, n, spread int) time.Time {
	switch w.pick(n) {
	case 0:
		return day.AddDate(0, 0, 1)
	case 1:
		return day.AddDate(0, 0, -1)
	case 2:
		return day.AddDate(0, 0, w.pick(2*spread)-spread)
	}
	return day
}

func (w *oracleWorld) chance(p float64) bool { return w.rng.Float64() < p }

// ageLimit is the oracle's reading of the age limits: principals have their own.
func (w *oracleWorld) ageLimit(gender, position string) int {
	switch {
	case position == "PRINCIPAL" && gender == "FEMALE":
		return w.p.PrincipalFemaleAgeLimit
	case position == "PRINCIPAL":
		return w.p.PrincipalMaleAgeLimit
	case gender == "FEMALE":
		return w.p.FemaleAgeLimit
	}
	return w.p.MaleAgeLimit
}

var (
	oSurnames = []rune("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧")
	oGiven    = []string{"芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平",
		"刚", "桂英", "志强", "海燕", "建华", "晓梅", "国强", "文博", "子涵", "雨桐"}
	oSchoolNames = []string{"双河五小", "胸阳小学", "柳山小学", "熊楼小学", "北海小学", "西街小学", "东于沟小学", "宋楼小学", "川底中心小学",
		"朱家沟小学", "赵坡中心小学", "曹河教学点", "邓岗教学点", "谢营教学点", "培文小学", "保婴小学", "引河小学", "义湖小学", "双河一小", "城关实验小学"}
)

// newOracleWorld generates the district and writes it through the write path.
func newOracleWorld(tb testing.TB, seed uint64, preset string, firstYear, lastYearPolicy bool) *oracleWorld {
	tb.Helper()
	p, ok := jiaoliu.Preset(preset)
	if !ok {
		tb.Fatalf("no preset %s", preset)
	}
	p.FirstYear = firstYear
	w := &oracleWorld{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), p: p, district: newID(),
		store:      postgres.NewStore(pgtest.NewDB(tb), hlc.NewClock("server"), nil),
		schoolByID: map[string]*oSchool{}, teacherByID: map[string]*oTeacher{}, exchangeBy: map[string]*oExchange{},
		lessons: map[string]*oLesson{}, attendance: map[string]*oAttendance{}, activities: map[string]*oActivity{}}
	policy := p.Fields()
	policy["districtId"], policy["academicYear"], policy["preset"] = w.district, oYearName(2026), preset
	w.add("district", w.district, map[string]any{"name": "新密市"})
	w.add("policy", newID(), policy)
	if lastYearPolicy {
		last := p.Fields()
		last["districtId"], last["academicYear"], last["preset"] = w.district, oYearName(2025), preset
		w.add("policy", newID(), last)
		w.years = append(w.years, 2025)
	}
	w.years = append(w.years, 2026)

	// Schools: 5 quality, 10 general, 5 weak (each at most 30%), every locality.
	kinds := []struct{ tier, locality string }{
		{"QUALITY", "URBAN"}, {"QUALITY", "URBAN"}, {"QUALITY", "URBAN"}, {"QUALITY", "TOWN"}, {"QUALITY", "TOWN"},
		{"GENERAL", "URBAN"}, {"GENERAL", "URBAN"}, {"GENERAL", "URBAN"}, {"GENERAL", "TOWN"}, {"GENERAL", "TOWN"},
		{"GENERAL", "TOWN"}, {"GENERAL", "TOWN"}, {"GENERAL", "RURAL"}, {"GENERAL", "RURAL"}, {"GENERAL", "RURAL"},
		{"WEAK", "URBAN"}, {"WEAK", "RURAL"}, {"WEAK", "RURAL"}, {"WEAK", "TEACHING_POINT"}, {"WEAK", "TEACHING_POINT"},
	}
	for i, k := range kinds {
		s := &oSchool{id: newID(), name: oSchoolNames[i], tier: k.tier, locality: k.locality}
		if w.chance(0.85) {
			s.avg = float64(10 + w.pick(5))
		}
		w.schools = append(w.schools, s)
		w.schoolByID[s.id] = s
		w.add("school", s.id, map[string]any{"districtId": w.district, "name": s.name, "locality": s.locality, "tier": s.tier,
			"averageWeeklyLessons": s.avg})
	}

	// Teachers: 20 a school, a principal, a vice principal and a middle manager each.
	names := map[string]bool{}
	backbones := []string{"SCHOOL", "COUNTY", "CITY", "PROVINCE", "NATIONAL"}
	for si, s := range w.schools {
		for i := range 20 {
			t := &oTeacher{id: newID(), school: s.id, gender: []string{"MALE", "FEMALE"}[w.pick(2)], position: "TEACHER",
				backbone: "NONE", employed: w.chance(0.94)}
			for t.name == "" || names[t.name] {
				t.name = string(oSurnames[w.pick(len(oSurnames))]) + oGiven[w.pick(len(oGiven))]
				if names[t.name] {
					t.name += fmt.Sprint(si*20 + i)
				}
			}
			names[t.name] = true
			switch {
			case i == 0:
				t.position = "PRINCIPAL"
			case i == 1:
				t.position = "VICE_PRINCIPAL"
			case i == 2 || (i < 5 && w.chance(0.3)):
				t.position = "MIDDLE_MANAGER"
			}
			if w.chance(0.3) {
				t.backbone = backbones[w.pick(len(backbones))]
			}
			limit := w.ageLimit(t.gender, t.position)
			age := 24 + w.pick(36)
			if w.chance(0.55) {
				age = limit - 1 + w.pick(3)
			}
			t.birth = w.nudge(oDay(2026-age, 9, 1), 4, 150)
			tenure := w.p.TenureYears
			if t.position != "TEACHER" {
				tenure = w.p.CadreTenureYears
			}
			k := w.pick(26)
			if w.chance(0.6) {
				k = tenure - 1 + w.pick(3)
			}
			t.joined = w.nudge(oDay(2026-k, 9, 1), 5, 100)
			if oAge(t.birth, t.joined) < 16 {
				t.joined = t.birth.AddDate(22, 0, w.pick(30))
			}
			f := map[string]any{"name": t.name, "gender": t.gender, "birthDate": oStr(t.birth), "schoolId": s.id,
				"joinedSchoolOn": oStr(t.joined), "employed": t.employed, "position": t.position, "backboneLevel": t.backbone}
			if t.position == "PRINCIPAL" || (t.position == "VICE_PRINCIPAL" && w.chance(0.5)) {
				if w.chance(0.75) {
					m := w.p.PrincipalMaxYears - 1 + w.pick(3)
					if w.chance(0.3) {
						m = w.pick(15)
					}
					lead := oDay(2026-m, 9, 1).AddDate(0, 0, []int{0, 0, 1, -1, 40}[w.pick(5)])
					t.lead = &lead
					f["leadershipSince"] = oStr(lead)
				}
			}
			w.teachers = append(w.teachers, t)
			w.teacherByID[t.id] = t
			w.add("teacher", t.id, f)
		}
	}

	// Deferrals around the reference date.
	reasons := []string{"PREGNANCY", "NURSING", "MEDICAL", "FEATURE_PROGRAM_LEAD", "NEAR_RETIREMENT", "CENTRE_SCHOOL_PRINCIPAL"}
	for _, t := range w.teachers {
		if !w.chance(0.12) {
			continue
		}
		for range 1 + w.pick(2) {
			d := &oDeferral{teacher: t.id, reason: reasons[w.pick(len(reasons))], approved: w.chance(0.8)}
			d.expires = oRef.AddDate(0, 0, []int{-1, 0, 1, 200, 400}[w.pick(5)])
			d.starts = []time.Time{oRef, oRef.AddDate(0, 0, 1), oRef.AddDate(0, 0, -w.pick(900))}[w.pick(3)]
			if d.starts.After(d.expires) {
				d.starts = d.expires.AddDate(0, 0, -w.pick(300))
			}
			if d.reason == "FEATURE_PROGRAM_LEAD" && d.expires.After(d.starts.AddDate(3, 0, 0)) {
				d.starts = d.expires.AddDate(-3, 0, w.pick(20))
			}
			w.deferrals = append(w.deferrals, d)
			w.add("deferral", newID(), map[string]any{"teacherId": t.id, "reason": d.reason, "startsOn": oStr(d.starts),
				"expiresOn": oStr(d.expires), "approved": d.approved, "certificate": "证明"})
		}
	}

	// Exchanges of every mode and status.
	modes := []string{"FULL_TIME", "LESSON_DELIVERY", "SECONDMENT", "ITINERANT", "GROUP_INTERNAL", "PAIRED_SUPPORT"}
	statuses := []string{"PROPOSED", "APPROVED", "APPROVED", "PUBLISHED", "PUBLISHED", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE",
		"ACTIVE", "ACTIVE", "COMPLETED", "DEFERRED", "REFUSED", "CANCELLED", "TERMINATED"}
	order := w.rng.Perm(len(w.teachers))
	asOf2 := oAsOfs[1]
	for i := range 170 {
		t := w.teachers[order[i%150]] // 20 teachers get a second exchange
		x := &oExchange{id: newID(), teacher: t.id, from: t.school, mode: modes[i%len(modes)], status: statuses[w.pick(len(statuses))],
			volunteer: w.chance(0.2), year: 2026, start: oRef}
		if w.chance(0.1) {
			x.from = w.schools[w.pick(len(w.schools))].id // the teacher has moved since
		}
		for x.to == "" || x.to == x.from {
			x.to = w.schools[w.pick(len(w.schools))].id
		}
		years := 1 + w.pick(3)
		switch r := w.pick(20); {
		case (i >= 150 && i < 162) || r < 2: // last year's, some still under way
			x.year, x.start = 2025, oDay(2025, 9, 1)
			x.status = []string{"COMPLETED", "ACTIVE", "ACTIVE", "TERMINATED", "CANCELLED"}[w.pick(5)]
		case r < 3:
			x.year, x.start = 2027, oDay(2027, 9, 1)
			x.status = []string{"PROPOSED", "APPROVED"}[w.pick(2)]
		case x.status == "APPROVED" || x.status == "PUBLISHED":
			x.start = []time.Time{oRef, asOf2, asOf2.AddDate(0, 0, -7), asOf2.AddDate(0, 0, -8), asOf2.AddDate(0, 0, -15),
				asOf2.AddDate(0, 0, -16), oDay(2026, 12, 1)}[w.pick(7)]
		case w.chance(0.2):
			x.start = oDay(2026, 9, 7+w.pick(30))
		}
		x.end = oDay(x.start.Year()+years, 7, 15)
		if x.start.Month() < time.September {
			x.end = oDay(x.start.Year()+years-1, 7, 15)
			if !x.end.After(x.start) {
				x.end = x.end.AddDate(1, 0, 0)
			}
		}
		if x.year == 2025 && w.chance(0.5) {
			x.end = oDay(2026, 7, 15)
		}
		f := map[string]any{"teacherId": x.teacher, "sendingSchoolId": x.from, "receivingSchoolId": x.to, "mode": x.mode,
			"academicYear": oYearName(x.year), "plannedStart": oStr(x.start), "plannedEnd": oStr(x.end), "volunteer": x.volunteer}
		path := map[string][]string{
			"PROPOSED": {"PROPOSED"}, "APPROVED": {"APPROVED"}, "PUBLISHED": {"APPROVED", "PUBLISHED"},
			"ACTIVE": {"APPROVED", "PUBLISHED", "ACTIVE"}, "COMPLETED": {"APPROVED", "PUBLISHED", "ACTIVE", "COMPLETED"},
			"TERMINATED": {"APPROVED", "PUBLISHED", "ACTIVE", "TERMINATED"}, "DEFERRED": {"APPROVED", "DEFERRED"},
			"REFUSED": {"APPROVED", "REFUSED"}, "CANCELLED": {"PROPOSED", "CANCELLED"},
		}[x.status]
		for j, st := range path {
			if j == 0 {
				f["status"] = st
				w.add("exchange", x.id, f)
				continue
			}
			g := map[string]any{"status": st}
			if st == "ACTIVE" {
				rep := x.start.AddDate(0, 0, []int{0, 0, 1, 7, 8, 15, 16, w.pick(21)}[w.pick(8)])
				x.reported = &rep
				g["reportedOn"] = oStr(rep)
			}
			w.add("exchange", x.id, g)
		}
		w.exchanges = append(w.exchanges, x)
		w.exchangeBy[x.id] = x
	}

	// Activity of the exchanges under way (and a few others: counts do not depend on status).
	for _, x := range w.exchanges {
		if x.reported == nil && !w.chance(0.1) {
			continue
		}
		w.genActivity(x)
	}

	// Mentoring pairs and their activities.
	mentoringKinds := []string{"OBSERVE", "LESSON_TALK", "CRITIQUE", "JOINT_PREPARATION", "RESEARCH"}
	for i := range 30 {
		mentor, mentee := w.teachers[w.pick(len(w.teachers))], w.teachers[w.pick(len(w.teachers))]
		if mentor == mentee {
			continue
		}
		pr := &oPair{id: newID(), year: 2026}
		if i%6 == 5 {
			pr.year = 2025
		}
		w.pairs = append(w.pairs, pr)
		w.add("mentoringPair", pr.id, map[string]any{"mentorId": mentor.id, "menteeId": mentee.id, "schoolId": mentee.school,
			"subject": "语文", "academicYear": oYearName(pr.year)})
		for range 5 + w.pick(7) {
			a := &oActivity{pair: pr.id, date: oDay(2026, 8, 15).AddDate(0, 0, w.pick(130))}
			id := newID()
			w.activities[id] = a
			w.add("mentoringActivity", id, map[string]any{"pairId": pr.id, "date": oStr(a.date), "kind": mentoringKinds[w.pick(5)]})
		}
	}
	w.flush(tb)
	return w
}

// schoolDays returns the weekdays from a to b, both included.
func schoolDays(a, b time.Time) []time.Time {
	var out []time.Time
	for d := a; !d.After(b); d = d.AddDate(0, 0, 1) {
		if oWeekday(d) {
			out = append(out, d)
		}
	}
	return out
}

// genActivity writes lessons, attendance, research, observations and evaluations of an
// exchange, with the absence patterns of the attendance rule around its limits.
func (w *oracleWorld) genActivity(x *oExchange) {
	t := w.teacherByID[x.teacher]
	first := x.start
	if x.reported != nil {
		first = *x.reported
	}
	var days []time.Time
	if x.year == 2025 {
		// Last year's: records from May to early July, then this year's if still on.
		days = schoolDays(oMax(first, oDay(2026, 5, 4)), oDay(2026, 7, 10))
		if x.end.After(oRef) {
			days = append(days, schoolDays(oRef, oMin(oLast, x.end))...)
		}
	} else {
		days = schoolDays(oMax(first, oRef), oMin(oLast, x.end))
	}
	if len(days) == 0 {
		return
	}

	// Lessons: one or two a day on most days; the kinds the duties count among them.
	type slot struct {
		day    time.Time
		period int
	}
	var slots []slot
	for _, d := range days {
		if !w.chance(0.7) {
			continue
		}
		for p := range 1 + w.pick(2) {
			slots = append(slots, slot{d, 1 + p*3 + w.pick(3)})
		}
	}
	w.rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	var kinds []string
	for range 2 + w.pick(5) {
		kinds = append(kinds, "DEMONSTRATION")
	}
	for range 2 + w.pick(5) {
		kinds = append(kinds, "GUIDANCE")
	}
	if x.mode == "LESSON_DELIVERY" {
		for range 5 + w.pick(7) {
			kinds = append(kinds, "DELIVERED")
		}
	}
	kinds = append(kinds, "OPEN", "LECTURE")
	for i, s := range slots {
		kind := "REGULAR"
		if i < len(kinds) {
			kind = kinds[i]
		}
		id := newID()
		w.lessons[id] = &oLesson{exchange: x.id, kind: kind, date: s.day, period: s.period}
		f := map[string]any{"exchangeId": x.id, "date": oStr(s.day), "period": float64(s.period), "subject": "数学", "kind": kind}
		if kind == "OPEN" {
			f["openLevel"] = "SCHOOL"
		}
		w.add("lesson", id, f)
	}

	// Attendance: a record on 90% of the days; PRESENT with some LEAVE and SICK, and one
	// absence pattern around the limits.
	var recDays []time.Time
	for _, d := range days {
		if w.chance(0.9) {
			recDays = append(recDays, d)
		}
	}
	status := make([]string, len(recDays))
	for i := range status {
		status[i] = "PRESENT"
		if w.chance(0.05) {
			status[i] = []string{"LEAVE", "SICK"}[w.pick(2)]
		}
	}
	absentRun := func(at, n int) {
		for i := at; i < at+n && i < len(status); i++ {
			status[i] = "ABSENT"
		}
	}
	run, yr := w.p.AbsenceRunLimit, w.p.AbsenceYearLimit
	switch w.pick(6) {
	case 1: // a run around the limit
		n := run - 1 + w.pick(3)
		absentRun(w.pick(max(1, len(status)-n)), n)
	case 2: // scattered absences around the yearly limit, in runs of 1 to 3
		total := yr - 1 + w.pick(3)
		for i := w.pick(5); total > 0 && i < len(status); {
			n := min(total, 1+w.pick(3))
			absentRun(i, n)
			total -= n
			i += n + 1 + w.pick(2)
		}
	case 3: // a run over the limit broken by a leave or sickness
		n := run + 1
		at := w.pick(max(1, len(status)-n))
		absentRun(at, n)
		if at+n/2 < len(status) {
			status[at+n/2] = []string{"LEAVE", "SICK", "PRESENT"}[w.pick(3)]
		}
	case 4: // a run across the summer (last year's exchanges) or at the end of the records
		n := run + 1 - w.pick(2)
		k := 0
		for i, d := range recDays {
			if d.Month() == time.July && d.Year() == 2026 {
				k = i
			}
		}
		if k > 0 {
			absentRun(max(0, k-n/2+1), n)
		} else {
			absentRun(max(0, len(status)-n), n)
		}
	}
	for i, d := range recDays {
		id := newID()
		w.attendance[id] = &oAttendance{exchange: x.id, status: status[i], date: d}
		w.add("attendance", id, map[string]any{"exchangeId": x.id, "date": oStr(d), "status": status[i]})
	}

	// Research activities and observations around the required numbers.
	nResearch := 6 + w.pick(5)
	switch x.mode {
	case "SECONDMENT":
		nResearch = 13 + w.pick(6)
	case "LESSON_DELIVERY":
		nResearch = 1 + w.pick(3)
	}
	researchKinds := []string{"JOINT_PREPARATION", "GROUP_ACTIVITY", "LECTURE"}
	for i := range nResearch {
		kind := researchKinds[w.pick(3)]
		if i == 0 && w.chance(0.5) {
			kind = "SURVEY"
		}
		r := &oResearch{exchange: x.id, kind: kind, date: days[w.pick(len(days))]}
		w.research = append(w.research, r)
		w.add("researchActivity", newID(), map[string]any{"exchangeId": x.id, "date": oStr(r.date), "kind": kind})
	}
	colleague := func(school string) *oTeacher {
		for {
			c := w.teachers[w.pick(len(w.teachers))]
			if c.id != t.id && (school == "" || c.school == school || w.chance(0.05)) {
				return c
			}
		}
	}
	nObs := w.pick(3)
	switch x.mode {
	case "LESSON_DELIVERY":
		nObs = 6 + w.pick(5)
	case "SECONDMENT":
		nObs = 17 + w.pick(6)
	}
	for range nObs {
		o := &oObservation{exchange: x.id, observer: t.id, date: days[w.pick(len(days))], critique: w.chance(0.75)}
		w.obs = append(w.obs, o)
		w.add("observation", newID(), map[string]any{"observerId": t.id, "observedTeacherId": colleague(x.to).id, "exchangeId": x.id,
			"date": oStr(o.date), "critique": o.critique})
	}
	for range w.pick(3) { // colleagues observing the exchange teacher: not the teacher's duty
		c := colleague(x.to)
		o := &oObservation{exchange: x.id, observer: c.id, date: days[w.pick(len(days))], critique: true}
		w.obs = append(w.obs, o)
		w.add("observation", newID(), map[string]any{"observerId": c.id, "observedTeacherId": t.id, "exchangeId": x.id,
			"date": oStr(o.date), "critique": true})
	}

	// Evaluations by the receiving school.
	grades := []string{"EXCELLENT", "QUALIFIED", "QUALIFIED", "BASIC", "UNQUALIFIED"}
	eval := func(period, term string) {
		e := &oEvaluation{exchange: x.id, period: period, term: term, grade: grades[w.pick(len(grades))], finalized: w.chance(0.7)}
		w.evals = append(w.evals, e)
		w.add("evaluation", newID(), map[string]any{"exchangeId": x.id, "period": period, "term": term, "evaluatorSchoolId": x.to,
			"grade": e.grade, "finalized": e.finalized, "sendingSigned": true, "receivingSigned": true})
	}
	if x.year == 2025 {
		eval("ANNUAL", "2025-2026")
		if x.end.Before(oRef) && w.chance(0.6) {
			eval("END_OF_EXCHANGE", "2025-2026")
		}
	}
	if x.end.After(oRef) && w.chance(0.5) {
		eval("SEMESTER", "2026-2027-1")
	}
}

// ---- the oracle's rules ----

type oElig struct {
	status, rule string
	age, limit   int
	years        int
	reason       string
	rotating     bool
	// volunteer: a volunteer exchange (个人申报) of the year applied for or counting.
	volunteer bool
}

// counting reports whether an exchange counts as rotating (domain.md: APPROVED,
// PUBLISHED, ACTIVE or COMPLETED).
func counting(status string) bool {
	return status == "APPROVED" || status == "PUBLISHED" || status == "ACTIVE" || status == "COMPLETED"
}

func (w *oracleWorld) eligibility() map[string]*oElig {
	out := map[string]*oElig{}
	for _, t := range w.teachers {
		e := &oElig{age: oAge(t.birth, oRef), limit: w.ageLimit(t.gender, t.position)}
		if !t.joined.After(oRef) {
			e.years = oAge(t.joined, oRef)
		}
		for _, x := range w.exchanges {
			if x.teacher == t.id && x.year == 2026 && counting(x.status) {
				e.rotating = true
			}
			if x.teacher == t.id && x.year == 2026 && x.volunteer && (counting(x.status) || x.status == "PROPOSED") {
				e.volunteer = true
			}
		}
		var deferral *oDeferral
		for _, d := range w.deferrals {
			expires := d.expires
			if d.reason == "FEATURE_PROGRAM_LEAD" && expires.After(d.starts.AddDate(w.p.FeatureDeferralMaxYears, 0, 0)) {
				expires = d.starts.AddDate(w.p.FeatureDeferralMaxYears, 0, 0)
			}
			if d.teacher == t.id && d.approved && !oRef.Before(d.starts) && !oRef.After(expires) {
				if deferral == nil || expires.After(deferral.expires) {
					deferral = d
				}
			}
		}
		inPost := -1
		if t.position == "PRINCIPAL" {
			since := t.joined
			if t.lead != nil && t.lead.After(since) {
				since = *t.lead
			}
			inPost = 0
			if !since.After(oRef) {
				inPost = oAge(since, oRef)
			}
		}
		cadre := t.position != "TEACHER"
		switch {
		case !t.employed:
			e.status, e.rule = "EXEMPT", "NOT_EMPLOYED"
		case deferral != nil:
			e.status, e.rule, e.reason = "DEFERRED", "DEFERRAL", deferral.reason
		case e.age > e.limit:
			e.status, e.rule = "EXEMPT", "ABOVE_AGE_LIMIT"
		case inPost >= w.p.PrincipalMaxYears:
			e.status, e.rule = "MUST_ROTATE", "PRINCIPAL_TERM"
		case cadre && e.years >= w.p.CadreTenureYears:
			e.status, e.rule = "MUST_ROTATE", "CADRE_TENURE"
		case !cadre && e.years >= w.p.TenureYears:
			e.status, e.rule = "MUST_ROTATE", "TENURE"
		default:
			e.status, e.rule = "MAY_VOLUNTEER", "TENURE_NOT_REACHED"
		}
		out[t.id] = e
	}
	return out
}

type oQuota struct {
	staff, eligible, deferred, rotating, volunteers, minimum int
	target                                                   *float64
	met                                                      bool
	backbone, backboneMin, cadreEligible, cadreRotating      int
	cadreMin, sendMin, down, up                              int
}

type oQuotas struct {
	schools                                   map[string]*oQuota
	rotating, eligible, backbone, minimum     int
	cadreEligible, cadreRotating, cadreMin    int
	down, up                                  int
	holds                                     bool
	staff, participationMin, backboneMin, vol int
}

func (w *oracleWorld) quotas(elig map[string]*oElig) *oQuotas {
	q := &oQuotas{schools: map[string]*oQuota{}}
	for _, s := range w.schools {
		sq := &oQuota{}
		share := 0.0
		switch {
		case s.tier == "QUALITY" || s.locality == "URBAN":
			share = w.p.QualityShare
		case s.tier == "GENERAL":
			share = w.p.GeneralShare
		default:
			share = -1
		}
		if share >= 0 {
			if w.p.FirstYear {
				share = w.p.FirstYearShare
			}
			sq.target = &share
		}
		q.schools[s.id] = sq
	}
	for _, t := range w.teachers {
		sq := q.schools[t.school]
		sq.staff++
		switch elig[t.id].status {
		case "MUST_ROTATE":
			sq.eligible++
			if t.position != "TEACHER" {
				sq.cadreEligible++
			}
		case "DEFERRED":
			sq.deferred++
		}
	}
	type set = map[string]bool
	rot, bb, cadre, vol, down, up := map[string]set{}, map[string]set{}, map[string]set{}, map[string]set{}, map[string]set{}, map[string]set{}
	all, allBB, allCadre, allVol, allDown, allUp := set{}, set{}, set{}, set{}, set{}, set{}
	addTo := func(m map[string]set, k, v string) {
		if m[k] == nil {
			m[k] = set{}
		}
		m[k][v] = true
	}
	for _, x := range w.exchanges {
		if x.year != 2026 || !counting(x.status) {
			continue
		}
		t := w.teacherByID[x.teacher]
		isBB, isCadre := t.backbone != "NONE", t.position != "TEACHER"
		addTo(rot, x.from, t.id)
		all[t.id] = true
		if x.volunteer {
			addTo(vol, x.from, t.id)
			allVol[t.id] = true
		}
		if isBB {
			addTo(bb, x.from, t.id)
			allBB[t.id] = true
		}
		if isCadre {
			addTo(cadre, x.from, t.id)
			allCadre[t.id] = true
		}
		from, to := w.schoolByID[x.from], w.schoolByID[x.to]
		if isBB && from.tier == "QUALITY" && to.tier != "QUALITY" {
			addTo(down, x.from, t.id)
			allDown[t.id] = true
		}
		if isBB && from.tier != "QUALITY" && to.tier == "QUALITY" {
			addTo(up, x.from, t.id)
			allUp[t.id] = true
		}
	}
	for id, sq := range q.schools {
		sq.rotating, sq.volunteers, sq.backbone, sq.cadreRotating = len(rot[id]), len(vol[id]), len(bb[id]), len(cadre[id])
		sq.down, sq.up = len(down[id]), len(up[id])
		sq.met = true
		if sq.target != nil {
			sq.minimum = oCeilPercent(*sq.target, sq.eligible)
			sq.met = sq.rotating >= sq.minimum
		}
		sq.backboneMin = oCeilPercent(w.p.BackboneShare, sq.rotating)
		sq.cadreMin = oCeilPercent(w.p.CadreShare, sq.cadreEligible)
		sq.sendMin = oCeilPercent(w.p.SchoolSendShare, sq.staff)
		q.eligible += sq.eligible
		q.minimum += sq.minimum
		q.cadreEligible += sq.cadreEligible
		q.staff += sq.staff
	}
	q.rotating, q.backbone, q.cadreRotating, q.vol = len(all), len(allBB), len(allCadre), len(allVol)
	q.down, q.up = len(allDown), len(allUp)
	q.holds = q.down > q.up
	q.cadreMin = oCeilPercent(w.p.CadreShare, q.cadreEligible)
	q.backboneMin = oCeilPercent(w.p.BackboneShare, q.rotating)
	q.participationMin = oCeilPercent(w.p.StaffParticipationShare, q.staff)
	return q
}

// oProgress is what the oracle expects of one exchange as of a day.
type oProgress struct {
	year                         string
	from, to                     time.Time
	duties                       []string // "DUTY required/done met expected"
	dutyStatus                   string
	lessons, weeks               int
	workloadMet                  string // "", "true", "false"
	present, leave, sick, absent int
	run                          int
	runExceeded, yearExceeded    bool
	unqualified                  bool
	report                       string
	daysLate                     int
	due, overdue, done           int
	consequences                 []string
}

func fullTimeLike(mode string) bool {
	return mode == "FULL_TIME" || mode == "ITINERANT" || mode == "GROUP_INTERNAL" || mode == "PAIRED_SUPPORT"
}

// progress applies the progress rules to exchange x as of asOf: over academic year y
// when y > 0 (the views of a year), else over the exchange's duty year.
func (w *oracleWorld) progress(x *oExchange, asOf time.Time, y int) *oProgress {
	if y == 0 {
		y = oYearOf(asOf)
		last := oYearOf(x.end)
		y = min(max(y, x.year), max(last, x.year))
	}
	pr := &oProgress{year: oYearName(y), from: oDay(y, 9, 1), to: oMin(oDay(y+1, 8, 31), asOf)}
	in := func(d time.Time) bool { return !d.Before(pr.from) && !d.After(pr.to) }
	count := map[string]int{}
	weeks := map[time.Time]bool{}
	for _, l := range w.lessons {
		if l.exchange == x.id && !l.deleted && in(l.date) {
			pr.lessons++
			count[l.kind]++
			weeks[oMonday(l.date)] = true
		}
	}
	pr.weeks = len(weeks)
	research, surveys := 0, 0
	for _, r := range w.research {
		if r.exchange == x.id && in(r.date) {
			research++
			if r.kind == "SURVEY" {
				surveys++
			}
		}
	}
	observations, critiques := 0, 0
	for _, o := range w.obs {
		if o.exchange == x.id && o.observer == x.teacher && in(o.date) {
			observations++
			if o.critique {
				critiques++
			}
		}
	}
	var recs []*oAttendance
	for _, a := range w.attendance {
		if a.exchange == x.id && !a.deleted && !a.date.After(pr.to) {
			recs = append(recs, a)
			if in(a.date) {
				switch a.status {
				case "PRESENT":
					pr.present++
				case "LEAVE":
					pr.leave++
				case "SICK":
					pr.sick++
				case "ABSENT":
					pr.absent++
				}
			}
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].date.Before(recs[j].date) })
	cur := 0
	for _, a := range recs {
		if a.status == "ABSENT" {
			cur++
			pr.run = max(pr.run, cur)
		} else {
			cur = 0
		}
	}
	pr.runExceeded, pr.yearExceeded = pr.run > w.p.AbsenceRunLimit, pr.absent > w.p.AbsenceYearLimit
	pr.unqualified = pr.runExceeded || pr.yearExceeded

	// Duties of the mode, expected pro rata of the service days of the year.
	type duty struct {
		name           string
		required, done int
	}
	var duties []duty
	switch {
	case x.mode == "LESSON_DELIVERY":
		duties = []duty{{"DELIVERED_LESSONS", w.p.DeliveryLessons, count["DELIVERED"]}, {"CRITIQUES", w.p.DeliveryCritiques, critiques}}
	case x.mode == "SECONDMENT":
		duties = []duty{{"OBSERVATIONS", w.p.SecondmentObservations, observations}, {"RESEARCH_ACTIVITIES", w.p.SecondmentResearch, research},
			{"SURVEY_REPORT", 1, surveys}}
	default:
		duties = []duty{{"DEMONSTRATION_LESSONS", w.p.FullTimeDemonstration, count["DEMONSTRATION"]},
			{"GUIDANCE_LESSONS", w.p.FullTimeGuidance, count["GUIDANCE"]}, {"RESEARCH_ACTIVITIES", w.p.FullTimeResearch, research}}
	}
	start := x.start
	if x.reported != nil {
		start = *x.reported
	}
	svcFrom, svcTo := oMax(pr.from, start), oMin(oDay(y+1, 8, 31), x.end)
	total := oDaysFrom(svcFrom, svcTo) + 1
	elapsed := min(total, max(0, oDaysFrom(svcFrom, oMin(pr.to, svcTo))+1))
	allMet, allOnTrack := true, true
	for _, d := range duties {
		expected := 0
		switch {
		case total <= 0:
		case d.name == "SURVEY_REPORT":
			if elapsed >= total {
				expected = d.required
			}
		default:
			expected = d.required * elapsed / total
		}
		met := d.done >= d.required
		allMet = allMet && met
		allOnTrack = allOnTrack && d.done >= expected
		pr.duties = append(pr.duties, fmt.Sprintf("%s %d/%d met=%v expected=%d", d.name, d.done, d.required, met, expected))
	}
	if fullTimeLike(x.mode) && pr.weeks > 0 && w.schoolByID[x.to].avg > 0 {
		met := float64(pr.lessons) >= w.schoolByID[x.to].avg*float64(pr.weeks)
		pr.workloadMet = fmt.Sprint(met)
		if !met {
			allMet, allOnTrack = false, false
		}
	}
	if !fullTimeLike(x.mode) {
		pr.lessons, pr.weeks = 0, 0 // no workload rule: the store does not report one
	}
	switch {
	case x.status != "ACTIVE" && x.status != "COMPLETED" && x.status != "APPROVED" && x.status != "PUBLISHED":
		pr.dutyStatus = "NOT_APPLICABLE"
	case x.reported == nil || asOf.Before(svcFrom):
		pr.dutyStatus = "NOT_STARTED"
	case allMet:
		pr.dutyStatus = "COMPLETE"
	case allOnTrack:
		pr.dutyStatus = "ON_TRACK"
	default:
		pr.dutyStatus = "BEHIND"
	}

	// Report for duty: "超过一周" is the 8th calendar day after the planned start, "超过
	// 半个月" the 16th.
	switch {
	case x.reported != nil:
		pr.daysLate = max(0, oDaysFrom(x.start, *x.reported))
		pr.report = "ON_TIME"
		if pr.daysLate > w.p.NoShowWarningDays {
			pr.report = "LATE"
		}
	case x.status != "APPROVED" && x.status != "PUBLISHED":
		pr.report = "NOT_APPLICABLE"
	case asOf.Before(x.start):
		pr.report = "NOT_DUE"
	default:
		pr.daysLate = oDaysFrom(x.start, asOf)
		pr.report = "AWAITING"
		if pr.daysLate > w.p.NoShowResignationDays {
			pr.report = "RESIGNATION_CASE"
		} else if pr.daysLate > w.p.NoShowWarningDays {
			pr.report = "WARNING"
		}
	}

	// Evaluations (docs/policy.md's calendar) and consequences.
	var evals []*oEvaluation
	for _, e := range w.evals {
		if e.exchange == x.id {
			evals = append(evals, e)
		}
	}
	state := func(period, term string, opens, due time.Time) string {
		for _, e := range evals {
			if e.period == period && (period == "END_OF_EXCHANGE" || e.term == term) && e.finalized {
				return "DONE"
			}
		}
		switch {
		case asOf.Before(opens):
			return "UPCOMING"
		case asOf.After(due):
			return "OVERDUE"
		}
		return "DUE"
	}
	var states []string
	if x.status == "ACTIVE" || x.status == "COMPLETED" {
		for yy := oYearOf(x.start); yy <= oYearOf(x.end); yy++ {
			sem1, sem2 := [2]time.Time{oDay(yy, 9, 1), oDay(yy+1, 1, 31)}, [2]time.Time{oDay(yy+1, 2, 1), oDay(yy+1, 8, 31)}
			if !sem1[1].Before(x.start) && !sem1[0].After(x.end) {
				states = append(states, state("SEMESTER", oYearName(yy)+"-1", oDay(yy+1, 1, 1), oDay(yy+1, 1, 31)))
			}
			if !sem2[1].Before(x.start) && !sem2[0].After(x.end) {
				states = append(states, state("SEMESTER", oYearName(yy)+"-2", oDay(yy+1, 7, 1), oDay(yy+1, 7, 31)))
			}
			states = append(states, state("ANNUAL", oYearName(yy), oDay(yy+1, 7, 1), oDay(yy+1, 7, 31)))
		}
		states = append(states, state("END_OF_EXCHANGE", "", x.end.AddDate(0, 0, -30), x.end.AddDate(0, 0, 30)))
	} else {
		for _, e := range evals {
			states = append(states, map[bool]string{true: "DONE", false: "DUE"}[e.finalized])
		}
	}
	for _, s := range states {
		switch s {
		case "DUE":
			pr.due++
		case "OVERDUE":
			pr.overdue++
		case "DONE":
			pr.done++
		}
	}
	for _, e := range evals {
		if e.finalized && (e.grade == "BASIC" || e.grade == "UNQUALIFIED") {
			pr.consequences = append(pr.consequences, "EXCHANGE_AGAIN")
		}
	}
	unqualified := map[int]bool{}
	for _, e := range w.evals {
		if ex := w.exchangeBy[e.exchange]; ex.teacher == x.teacher && e.finalized && e.grade == "UNQUALIFIED" {
			var yy int
			fmt.Sscanf(e.term, "%d", &yy)
			unqualified[yy] = true
		}
	}
	for yy := range unqualified {
		if unqualified[yy-1] {
			pr.consequences = append(pr.consequences, "CONTRACT_ENDED")
		}
	}
	if x.status == "REFUSED" {
		pr.consequences = append(pr.consequences, "NO_AWARD_OR_PROMOTION", "ANNUAL_GRADE_BELOW_QUALIFIED")
	}
	if pr.unqualified {
		pr.consequences = append(pr.consequences, "MUST_BE_UNQUALIFIED")
	}
	switch {
	case pr.daysLate > w.p.NoShowResignationDays && (pr.report == "LATE" || pr.report == "RESIGNATION_CASE"):
		pr.consequences = append(pr.consequences, "RESIGNATION_CASE")
	case pr.daysLate > w.p.NoShowWarningDays && (pr.report == "LATE" || pr.report == "WARNING"):
		pr.consequences = append(pr.consequences, "NO_SHOW_WARNING")
	}
	sort.Strings(pr.consequences)
	return pr
}

// fromStore turns the store's progress into the oracle's shape.
func fromStore(p *jiaoliu.ExchangeProgress) *oProgress {
	pr := &oProgress{year: p.AcademicYear, from: p.From.Time(), to: p.To.Time(), dutyStatus: string(p.DutyStatus),
		report: string(p.Report.State), daysLate: p.Report.DaysLate, due: p.EvaluationsDue, overdue: p.EvaluationsOverdue, done: p.EvaluationsDone}
	for _, d := range p.Duties {
		pr.duties = append(pr.duties, fmt.Sprintf("%s %d/%d met=%v expected=%d", d.Duty, d.Done, d.Required, d.Met, d.ExpectedByNow))
	}
	if p.Workload != nil {
		pr.lessons, pr.weeks = p.Workload.Lessons, p.Workload.Weeks
		if p.Workload.Met != nil {
			pr.workloadMet = fmt.Sprint(*p.Workload.Met)
		}
	}
	a := p.Attendance
	pr.present, pr.leave, pr.sick, pr.absent, pr.run = a.Present, a.Leave, a.Sick, a.Absent, a.LongestAbsentRun
	pr.runExceeded, pr.yearExceeded, pr.unqualified = a.RunExceeded, a.YearExceeded, a.MustBeUnqualified
	for _, c := range p.Consequences {
		pr.consequences = append(pr.consequences, string(c.Kind))
	}
	sort.Strings(pr.consequences)
	return pr
}

func (p *oProgress) String() string {
	return fmt.Sprintf("year=%s %s..%s duties=%v status=%s lessons=%d weeks=%d workload=%q attendance=%d/%d/%d/%d run=%d runEx=%v yearEx=%v unq=%v report=%s late=%d evals=%d/%d/%d consequences=%v",
		p.year, oStr(p.from), oStr(p.to), p.duties, p.dutyStatus, p.lessons, p.weeks, p.workloadMet, p.present, p.leave, p.sick, p.absent,
		p.run, p.runExceeded, p.yearExceeded, p.unqualified, p.report, p.daysLate, p.due, p.overdue, p.done, p.consequences)
}

// diffs collects mismatches and reports the first ones.
type diffs struct {
	tb   testing.TB
	list []string
}

func (d *diffs) add(format string, args ...any) {
	d.list = append(d.list, fmt.Sprintf(format, args...))
}

func (d *diffs) check(what string) {
	d.tb.Helper()
	if len(d.list) > 0 {
		d.tb.Errorf("%s: %d differences from the oracle, the first:\n%s", what, len(d.list), strings.Join(d.list[:min(len(d.list), 25)], "\n"))
	}
	d.list = nil
}

func (w *oracleWorld) checkEligibility(t *testing.T, ctx context.Context) map[string]*oElig {
	want := w.eligibility()
	list, err := w.store.Eligibility(ctx, w.district, "2026-2027", "")
	if err != nil {
		t.Fatal(err)
	}
	d := &diffs{tb: t}
	if len(list.Teachers) != len(want) {
		d.add("teachers: %d, want %d", len(list.Teachers), len(want))
	}
	counts := map[string]int{}
	for _, e := range list.Teachers {
		o := want[e.TeacherID]
		if o == nil {
			d.add("unexpected teacher %s", e.TeacherName)
			continue
		}
		counts[o.status]++
		reason := ""
		if e.DeferralReason != nil {
			reason = string(*e.DeferralReason)
		}
		got := fmt.Sprintf("%s %s age=%d limit=%d years=%d reason=%s rotating=%v volunteer=%v", e.Status, e.Rule, e.Age, e.AgeLimit, e.YearsAtSchool, reason, e.Rotating, e.Volunteer)
		exp := fmt.Sprintf("%s %s age=%d limit=%d years=%d reason=%s rotating=%v volunteer=%v", o.status, o.rule, o.age, o.limit, o.years, o.reason, o.rotating, o.volunteer)
		if o.volunteer {
			counts["volunteers"]++
		}
		if got != exp {
			t := w.teacherByID[e.TeacherID]
			lead := ""
			if t.lead != nil {
				lead = oStr(*t.lead)
			}
			d.add("%s (%s %s born %s joined %s lead %s): got %s, want %s", e.TeacherName, t.gender, t.position, oStr(t.birth), oStr(t.joined), lead, got, exp)
		}
		if e.Explanation() == "" {
			d.add("%s: no explanation", e.TeacherName)
		}
	}
	s := list.Summary
	if s.MustRotate != counts["MUST_ROTATE"] || s.Deferred != counts["DEFERRED"] || s.Exempt != counts["EXEMPT"] || s.MayVolunteer != counts["MAY_VOLUNTEER"] ||
		s.Volunteers != counts["volunteers"] {
		d.add("summary %+v, want %v", s, counts)
	}
	d.check("eligibility")
	t.Logf("eligibility: %d teachers, %v", len(list.Teachers), counts)
	return want
}

func (w *oracleWorld) checkQuotas(t *testing.T, ctx context.Context, elig map[string]*oElig) {
	want := w.quotas(elig)
	rep, err := w.store.Quotas(ctx, w.district, "2026-2027")
	if err != nil {
		t.Fatal(err)
	}
	d := &diffs{tb: t}
	ratio := func(part, whole int) string {
		if whole == 0 {
			return "nil"
		}
		return fmt.Sprintf("%.2f", float64(part)*100/float64(whole))
	}
	ptr := func(f *float64) string {
		if f == nil {
			return "nil"
		}
		return fmt.Sprintf("%.2f", *f)
	}
	if len(rep.Schools) != len(w.schools) {
		d.add("schools: %d, want %d", len(rep.Schools), len(w.schools))
	}
	for _, q := range rep.Schools {
		o := want.schools[q.SchoolID]
		got := fmt.Sprintf("staff=%d eligible=%d deferred=%d rotating=%d volunteers=%d target=%s minimum=%d met=%v share=%s shortfall=%d backbone=%d/%d %v share=%s cadre=%d/%d min=%d %v send=%d %v down=%d up=%d",
			q.Staff, q.Eligible, q.Deferred, q.Rotating, q.Volunteers, ptr(q.TargetShare), q.Minimum, q.Met, ptr(q.Share), q.Shortfall,
			q.BackboneRotating, q.BackboneMinimum, q.BackboneMet, ptr(q.BackboneShare), q.CadreRotating, q.CadreEligible, q.CadreMinimum, q.CadreMet,
			q.SendMinimum, q.SendMet, q.BackboneSentDown, q.BackboneSentUp)
		exp := fmt.Sprintf("staff=%d eligible=%d deferred=%d rotating=%d volunteers=%d target=%s minimum=%d met=%v share=%s shortfall=%d backbone=%d/%d %v share=%s cadre=%d/%d min=%d %v send=%d %v down=%d up=%d",
			o.staff, o.eligible, o.deferred, o.rotating, o.volunteers, ptr(o.target), o.minimum, o.met, ratio(o.rotating, o.eligible), max(0, o.minimum-o.rotating),
			o.backbone, o.backboneMin, o.backbone >= o.backboneMin, ratio(o.backbone, o.rotating), o.cadreRotating, o.cadreEligible, o.cadreMin, o.cadreRotating >= o.cadreMin,
			o.sendMin, o.rotating >= o.sendMin, o.down, o.up)
		if got != exp {
			s := w.schoolByID[q.SchoolID]
			d.add("%s (%s %s):\n  got  %s\n  want %s", q.SchoolName, s.tier, s.locality, got, exp)
		}
	}
	tot := rep.Totals
	got := fmt.Sprintf("rotating=%d eligible=%d minimum=%d backbone=%d min=%d volunteers=%d staff=%d participation=%d %v",
		tot.Rotating, tot.Eligible, tot.Minimum, tot.BackboneRotating, tot.BackboneMinimum, tot.Volunteers, tot.Staff, tot.ParticipationMinimum, tot.ParticipationMet)
	exp := fmt.Sprintf("rotating=%d eligible=%d minimum=%d backbone=%d min=%d volunteers=%d staff=%d participation=%d %v",
		want.rotating, want.eligible, want.minimum, want.backbone, want.backboneMin, want.vol, want.staff, want.participationMin, want.rotating >= want.participationMin)
	if got != exp {
		d.add("totals:\n  got  %s\n  want %s", got, exp)
	}
	if rf := rep.ReverseFlow; rf.QualityToLower != want.down || rf.LowerToQuality != want.up || rf.Holds != want.holds {
		d.add("reverse flow %+v, want %d down %d up holds=%v", rf, want.down, want.up, want.holds)
	}
	if c := rep.Cadre; c.Eligible != want.cadreEligible || c.Rotating != want.cadreRotating || c.Minimum != want.cadreMin || c.Met != (want.cadreRotating >= want.cadreMin) {
		d.add("cadre %+v, want %d of %d, minimum %d", c, want.cadreRotating, want.cadreEligible, want.cadreMin)
	}
	d.check("quotas")
	t.Logf("quotas: %d rotating of %d eligible, reverse flow %d down %d up (holds %v), cadres %d of %d",
		want.rotating, want.eligible, want.down, want.up, want.holds, want.cadreRotating, want.cadreEligible)
}

// yearExchanges are the exchanges the views of academic year y cover: those of the year
// and the earlier ones still under way on its 1 September.
func (w *oracleWorld) yearExchanges(y int) map[string]*oExchange {
	out := map[string]*oExchange{}
	for _, x := range w.exchanges {
		if x.year == y || (x.year < y && counting(x.status) && !x.end.Before(oDay(y, 9, 1))) {
			out[x.id] = x
		}
	}
	return out
}

func (w *oracleWorld) checkProgress(t *testing.T, ctx context.Context, phase string) {
	d := &diffs{tb: t}
	stats := map[string]int{}
	for _, asOf := range oAsOfs {
		day := jiaoliu.DateOf(asOf)
		// The views of a year (dashboards, the progress report): every exchange of the
		// district in it, judged on that year even when asOf is in a later one.
		for _, y := range w.years {
			list, err := w.store.ExchangeProgressOfYear(ctx, w.district, "", jiaoliu.AcademicYear(oYearName(y)), day)
			if err != nil {
				t.Fatal(err)
			}
			want := w.yearExchanges(y)
			if len(list) != len(want) {
				d.add("%s: %d exchanges in %d, want %d", oStr(asOf), len(list), y, len(want))
			}
			for _, p := range list {
				x := want[p.ExchangeID]
				if x == nil {
					d.add("%s: unexpected exchange %s", oStr(asOf), p.ExchangeID)
					continue
				}
				exp := w.progress(x, asOf, y)
				if got := fromStore(p).String(); got != exp.String() {
					d.add("view of %d as of %s, %s %s %s from %s:\n  got  %s\n  want %s", y, oStr(asOf), p.TeacherName, x.mode, x.status, oStr(x.start), got, exp)
				}
				if exp.unqualified {
					stats[fmt.Sprintf("unqualified in %d as of %s", y, oStr(asOf))]++
				}
			}
		}
		// One exchange at a time, judged on its duty year.
		ids := make([]string, 0, len(w.exchanges))
		for _, x := range w.exchanges {
			ids = append(ids, x.id)
		}
		m, err := w.store.ExchangeProgress(ctx, ids, day)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != len(ids) {
			d.add("%s: progress of %d exchanges, want %d", oStr(asOf), len(m), len(ids))
		}
		for _, x := range w.exchanges {
			p := m[x.id]
			if p == nil {
				continue
			}
			exp := w.progress(x, asOf, 0)
			if got := fromStore(p).String(); got != exp.String() {
				d.add("by id as of %s, %s %s %s %s..%s:\n  got  %s\n  want %s", oStr(asOf), p.TeacherName, x.mode, x.status, oStr(x.start), oStr(x.end), got, exp)
			}
			stats["report "+exp.report]++
			stats["status "+exp.dutyStatus]++
			if exp.runExceeded {
				stats["run exceeded"]++
			}
			if exp.run == w.p.AbsenceRunLimit {
				stats["run at the limit"]++
			}
			if exp.yearExceeded {
				stats["year exceeded"]++
			}
			if exp.absent == w.p.AbsenceYearLimit {
				stats["year at the limit"]++
			}
		}
	}
	d.check("progress " + phase)
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, stats[k]))
	}
	t.Logf("progress %s: %s", phase, strings.Join(parts, ", "))
}

func (w *oracleWorld) checkPairs(t *testing.T, ctx context.Context) {
	d := &diffs{tb: t}
	ids := make([]string, len(w.pairs))
	for i, p := range w.pairs {
		ids[i] = p.id
	}
	for _, asOf := range oAsOfs {
		m, err := w.store.PairProgress(ctx, ids, jiaoliu.DateOf(asOf))
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range w.pairs {
			from, to := oDay(pr.year, 9, 1), oMin(oDay(pr.year+1, 8, 31), asOf)
			done := 0
			for _, a := range w.activities {
				if a.pair == pr.id && !a.deleted && !a.date.Before(from) && !a.date.After(to) {
					done++
				}
			}
			got := m[pr.id]
			if got == nil || got.Done != done || got.Required != w.p.MentoringActivities || got.Met != (done >= w.p.MentoringActivities) {
				d.add("pair %s as of %s: %+v, want %d of %d", pr.id, oStr(asOf), got, done, w.p.MentoringActivities)
			}
		}
	}
	d.check("pairs")
}

// exportRows downloads an export as the district's administrator and returns its rows
// (XLSX read back with excelize, CSV parsed after its byte-order mark).
func (w *oracleWorld) exportRows(t *testing.T, path string) [][]string {
	t.Helper()
	mux := http.NewServeMux()
	export.NewHandler(w.store, nil, func() jiaoliu.Date { return jiaoliu.MustDate("2026-11-18") }).Routes(mux)
	actor := &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleDistrictAdmin, DistrictID: w.district}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(rw, r.WithContext(jiaoliu.NewContextWithActor(r.Context(), actor)))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
	}
	if strings.Contains(path, "format=csv") {
		if !bytes.HasPrefix(body, []byte("\ufeff")) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("%s: not a CSV with a byte-order mark", path)
		}
		recs, err := csv.NewReader(bytes.NewReader(body[3:])).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return recs
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: open xlsx: %v", path, err)
	}
	defer f.Close()
	if f.SheetCount != 1 {
		t.Fatalf("%s: %d sheets", path, f.SheetCount)
	}
	rows, err := f.GetRows(f.GetSheetName(0))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (w *oracleWorld) checkExports(t *testing.T) {
	d := &diffs{tb: t}
	name := map[string]string{}
	for _, s := range w.schools {
		name[s.id] = s.name
	}

	// The public list (公示名单): the year's exchanges in a counting status.
	var want []string
	for _, x := range w.exchanges {
		if x.year == 2026 && counting(x.status) {
			t := w.teacherByID[x.teacher]
			want = append(want, strings.Join([]string{t.name, name[x.from], name[x.to], oStr(x.start), oStr(x.end)}, " "))
		}
	}
	sort.Strings(want)
	header := []string{"序号", "姓名", "性别", "职务", "职称", "任教学科", "骨干教师", "派出学校", "接收学校", "交流方式",
		"开始日期", "结束日期", "个人申报", "人走关系动", "状态"}
	for _, format := range []string{"xlsx", "csv"} {
		rows := w.exportRows(t, "/exports/public-list?districtId="+w.district+"&year=2026-2027&format="+format)
		if len(rows) == 0 || !slices.Equal(rows[0], header) {
			d.add("public list %s header %q, want %q", format, rows, header)
			continue
		}
		var got []string
		for i, r := range rows[1:] {
			if r[0] != fmt.Sprint(i+1) {
				d.add("public list %s row %d numbered %q", format, i+2, r[0])
			}
			got = append(got, strings.Join([]string{r[1], r[7], r[8], r[10], r[11]}, " "))
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			d.add("public list %s: %d rows, want %d", format, len(got), len(want))
		}
	}

	// The monthly attendance sheet (考勤表) of October 2026.
	first, last := oDay(2026, 10, 1), oDay(2026, 10, 31)
	// One row per exchange (a teacher may have two between the same schools): compare
	// the rows as a multiset of "teacher sending receiving | present leave sick absent".
	var wantRows []string
	for _, x := range w.exchanges {
		var n [4]int
		has := false
		for _, a := range w.attendance {
			if a.exchange == x.id && !a.deleted && !a.date.Before(first) && !a.date.After(last) {
				has = true
				n[slices.Index([]string{"PRESENT", "LEAVE", "SICK", "ABSENT"}, a.status)]++
			}
		}
		under := (x.status == "ACTIVE" || x.status == "COMPLETED" || x.status == "TERMINATED") && !x.reported.After(last) && !x.end.Before(first)
		if has || under {
			wantRows = append(wantRows, fmt.Sprintf("%s %s %s | %d %d %d %d", w.teacherByID[x.teacher].name, name[x.from], name[x.to], n[0], n[1], n[2], n[3]))
		}
	}
	sort.Strings(wantRows)
	head := []string{"序号", "姓名", "派出学校", "接收学校"}
	for i := 1; i <= 31; i++ {
		head = append(head, fmt.Sprintf("%d日", i))
	}
	head = append(head, "出勤", "事假", "病假", "旷工")
	marks := map[string]int{"√": 0, "假": 1, "病": 2, "旷": 3}
	for _, format := range []string{"xlsx", "csv"} {
		rows := w.exportRows(t, "/exports/attendance?month=2026-10&districtId="+w.district+"&format="+format)
		if len(rows) == 0 || !slices.Equal(rows[0], head) {
			d.add("attendance %s header %q", format, rows[:min(len(rows), 1)])
			continue
		}
		var got []string
		for _, r := range rows[1:] {
			for len(r) < len(head) {
				r = append(r, "") // excelize leaves trailing empty cells out
			}
			tail := r[len(r)-4:]
			got = append(got, fmt.Sprintf("%s %s %s | %s", r[1], r[2], r[3], strings.Join(tail, " ")))
			// The day marks must add up to the totals.
			var n [4]int
			for _, c := range r[4 : 4+31] {
				if c != "" {
					n[marks[c]]++
				}
			}
			if fmt.Sprint(n[0], n[1], n[2], n[3]) != strings.Join(tail, " ") {
				d.add("attendance %s %s: day marks %v, totals %v", format, r[1], n, tail)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, wantRows) {
			d.add("attendance %s: %d rows, want %d:\n  got  %q\n  want %q", format, len(got), len(wantRows), got, wantRows)
		}
	}

	// The eligibility list and the progress report: one row per teacher, per exchange.
	if rows := w.exportRows(t, "/exports/eligibility?districtId="+w.district+"&year=2026-2027"); len(rows) != len(w.teachers)+1 || len(rows[0]) < 10 || rows[0][9] != "认定结果" {
		d.add("eligibility export: %d rows", len(rows))
	}
	if rows := w.exportRows(t, "/exports/progress?districtId="+w.district+"&year=2026-2027&asOf=2026-11-18&format=csv"); len(rows) != len(w.yearExchanges(2026))+1 || len(rows[0]) < 2 || rows[0][1] != "姓名" {
		d.add("progress export: %d rows", len(rows))
	}
	d.check("exports")
	t.Logf("exports: public list %d rows, attendance sheet of 2026-10 %d rows", len(want), len(wantRows))
}

// moreWrites changes the world after the counts were folded: new lessons and absences in
// folded weeks and in the current one, status changes of attendance, deletions.
func (w *oracleWorld) moreWrites(tb testing.TB) {
	tb.Helper()
	var active []*oExchange
	for _, x := range w.exchanges {
		if x.reported != nil && x.year == 2026 {
			active = append(active, x)
		}
	}
	ids := func(m map[string]*oAttendance) []string {
		out := make([]string, 0, len(m))
		for id := range m {
			out = append(out, id)
		}
		sort.Strings(out)
		return out
	}
	att := ids(w.attendance)
	for range 150 {
		id := att[w.pick(len(att))]
		a := w.attendance[id]
		if a.deleted {
			continue
		}
		if w.chance(0.3) {
			a.deleted = true
			w.ops = append(w.ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "attendance", ID: id, HLC: nextHLC()})
			continue
		}
		a.status = []string{"PRESENT", "ABSENT", "ABSENT", "LEAVE", "SICK"}[w.pick(5)]
		w.add("attendance", id, map[string]any{"status": a.status})
	}
	lessonIDs := make([]string, 0, len(w.lessons))
	for id := range w.lessons {
		lessonIDs = append(lessonIDs, id)
	}
	sort.Strings(lessonIDs)
	for range 80 {
		id := lessonIDs[w.pick(len(lessonIDs))]
		if l := w.lessons[id]; !l.deleted {
			l.deleted = true
			w.ops = append(w.ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: id, HLC: nextHLC()})
		}
	}
	used := map[string]bool{}
	for _, l := range w.lessons {
		used[fmt.Sprintf("%s %s %d", l.exchange, oStr(l.date), l.period)] = true
	}
	for range 120 {
		x := active[w.pick(len(active))]
		// The week of the second asOf (Monday 2026-11-16 to Sunday 11-22) and before; a
		// new (exchange, date, period) each, as the write path merges lessons by it.
		day := oDay(2026, 11, 16).AddDate(0, 0, w.pick(5)-7*w.pick(3))
		period := 10 + w.pick(3)
		if k := fmt.Sprintf("%s %s %d", x.id, oStr(day), period); used[k] {
			continue
		} else {
			used[k] = true
		}
		id := newID()
		kind := []string{"REGULAR", "DEMONSTRATION", "GUIDANCE", "DELIVERED"}[w.pick(4)]
		w.lessons[id] = &oLesson{exchange: x.id, kind: kind, date: day, period: period}
		w.add("lesson", id, map[string]any{"exchangeId": x.id, "date": oStr(day), "period": float64(period), "subject": "语文", "kind": kind})
	}
	w.flush(tb)
}

// TestPolicyOracle compares the policy views of a generated district with the oracle,
// for two presets, before and after the weekly counts are folded and after more writes.
func TestPolicyOracle(t *testing.T) {
	for _, c := range []struct {
		preset                    string
		seed                      uint64
		firstYear, lastYearPolicy bool
	}{
		{"YULIN", 20260901, false, true},
		// Without a policy for 2025-2026: last year's exchanges are judged by the
		// district's earliest policy after it.
		{"DALIAN", 7, true, false},
	} {
		t.Run(c.preset, func(t *testing.T) {
			if testing.Short() && c.preset != "YULIN" {
				t.Skip("one district in -short mode")
			}
			start := time.Now()
			w := newOracleWorld(t, c.seed, c.preset, c.firstYear, c.lastYearPolicy)
			t.Logf("%s: %d schools, %d teachers, %d deferrals, %d exchanges, %d lessons, %d attendance records, %d research, %d observations, %d evaluations, %d pairs; written in %v",
				c.preset, len(w.schools), len(w.teachers), len(w.deferrals), len(w.exchanges), len(w.lessons), len(w.attendance), len(w.research),
				len(w.obs), len(w.evals), len(w.pairs), time.Since(start).Round(time.Millisecond))
			ctx := districtAdmin(w.district)
			elig := w.checkEligibility(t, ctx)
			w.checkQuotas(t, ctx, elig)
			w.checkProgress(t, ctx, "from delta rows")
			w.checkPairs(t, ctx)
			w.checkExports(t)
			if _, err := w.store.CompactExchangeStats(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.checkProgress(t, ctx, "from folded rows")
			w.moreWrites(t)
			w.checkProgress(t, ctx, "from folded and delta rows")
			if _, err := w.store.CompactExchangeStats(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.checkProgress(t, ctx, "folded again")
			w.checkExports(t)
		})
	}
}
