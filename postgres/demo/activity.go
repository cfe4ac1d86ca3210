package demo

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jiaoliu/jiaoliu"
)

const (
	present, leave, sick, absent = "PRESENT", "LEAVE", "SICK", "ABSENT"
)

// terms returns the terms an exchange teacher worked in.
func (x *exchange) terms() []term {
	if !slices.Contains(x.path, active) {
		return nil
	}
	if x.year == "2025-2026" {
		return []term{autumn2025, spring2026}
	}
	return []term{autumn2026}
}

// activity writes what an exchange teacher did: attendance, lessons, research
// activities, observations and a report per term, as one job.
func (g *gen) activity(x *exchange) {
	var job []jiaoliu.Op
	for _, tm := range x.terms() {
		st := &termStats{}
		x.stats[tm.name] = st
		from, to := tm.from, tm.to
		if x.reported.After(from) {
			from = x.reported
		}
		if !x.until.IsZero() && x.until.Before(to) {
			to = x.until
		}
		days := schoolDays(from, to)
		if x.mode == delivery {
			days = filter(days, func(d time.Time) bool { return d.Weekday() == x.visitDay })
		}
		status := g.attendance(x, tm, days)
		var work []time.Time // the days the teacher was there
		for i, d := range days {
			f := map[string]any{"exchangeId": x.id, "date": ds(d), "status": status[i]}
			switch status[i] {
			case present:
				work = append(work, d)
			case leave:
				f["note"] = pick(g, leaveNotes)
			case sick:
				f["note"] = pick(g, sickNotes)
			case absent:
				f["note"] = "未请假，未到岗"
			}
			g.op(&job, "attendance", id(fmt.Sprintf("attendance/%s/%s", x.key, ds(d))), f)
		}
		st.present = len(work)
		shown := g.lessons(&job, x, tm, work, st)
		g.research(&job, x, tm, work, st)
		g.observations(&job, x, tm, work, shown, st)
		g.report(&job, x, tm, st)
	}
	if len(job) > 0 {
		g.ds.jobs = append(g.ds.jobs, job)
	}
}

// attendance returns the status of each day: mostly PRESENT, some LEAVE and SICK, and
// the ABSENT pattern of the plan.
func (g *gen) attendance(x *exchange, tm term, days []time.Time) []string {
	st := make([]string, len(days))
	for i := range st {
		switch r := g.rng.IntN(1000); {
		case r < 15:
			st[i] = leave
		case r < 28:
			st[i] = sick
		default:
			st[i] = present
		}
	}
	if tm != autumn2026 {
		return st
	}
	run := func(from string, n int) {
		i := slices.IndexFunc(days, func(d time.Time) bool { return !d.Before(day(from)) })
		for k := range n {
			st[i+k] = absent
		}
	}
	switch x.absence {
	case "run11":
		run("2026-11-02", 11)
	case "run10":
		run("2026-11-23", 10)
	case "year16":
		for k := range 8 { // 8 runs of 2, separated by days present
			st[4+k*9], st[5+k*9] = absent, absent
			st[6+k*9] = present
		}
	case "few":
		st[20], st[47] = absent, absent
	}
	return st
}

var lessonNotes = []string{"课后辅导学困生3人", "布置分层作业", "学生课堂练习正确率较高", "使用多媒体课件", "结合本地实际补充教学资源"}

var lectureTopics = []string{"讲座：如何培养学生良好的阅读习惯", "讲座：小学低年级课堂常规训练", "讲座：家校共育的方法", "讲座：作业设计与评价"}

// lessons writes the lessons of the days worked and returns the lessons others came to
// see (demonstration and open lessons) by id, with their dates and subjects.
func (g *gen) lessons(job *[]jiaoliu.Op, x *exchange, tm term, work []time.Time, st *termStats) []shownLesson {
	// Special lessons on some days: how many of each kind per term, by mode.
	var kinds []string
	addKind := func(kind string, n int) {
		for range n {
			kinds = append(kinds, kind)
		}
	}
	switch x.mode {
	case fullTime, groupInt, paired:
		if x.to.tier == quality {
			addKind("OPEN", 1) // a learner at a quality school gives one open lesson
			break
		}
		addKind("DEMONSTRATION", g.between(2, 3))
		addKind("GUIDANCE", g.between(2, 3))
		if g.chance(70) {
			addKind("OPEN", 1)
		}
		if g.chance(40) {
			addKind("LECTURE", 1)
		}
	case itinerant:
		addKind("DEMONSTRATION", 1)
		addKind("GUIDANCE", 2)
	case second:
		addKind("DEMONSTRATION", g.between(1, 2))
		addKind("LECTURE", 2)
	case delivery:
		addKind("DEMONSTRATION", 1)
	}
	if x.key == "full-time" {
		kinds = []string{"DEMONSTRATION", "DEMONSTRATION", "DEMONSTRATION", "GUIDANCE", "GUIDANCE", "GUIDANCE", "OPEN"}
	}
	special := map[time.Time]string{}
	for i, d := range sample(g, work[min(5, len(work)):], len(kinds)) {
		special[d] = kinds[i]
	}

	var shown []shownLesson
	for _, d := range work {
		n := 0
		switch x.mode {
		case second:
			if g.chance(60) {
				n = 1
			}
		case delivery:
			n = 2
			if g.chance(30) {
				n = 3
			}
		case itinerant:
			n = g.between(2, 3)
		default:
			switch r := g.rng.IntN(100); {
			case r < 10:
				n = 1
			case r < 50:
				n = 2
			default:
				n = 3
			}
		}
		if special[d] != "" && n == 0 {
			n = 1
		}
		s := x.to
		if len(x.also) > 0 {
			all := append([]*school{x.to}, x.also...)
			s = all[(int(d.Weekday())+6)%7%len(all)] // by weekday; worked weekends count as Saturday or Sunday
		}
		week := int(d.Sub(tm.from).Hours()) / (24 * 7)
		for k, p := range sample(g, []int{1, 2, 3, 4, 5, 6}, n) {
			kind := "REGULAR"
			if x.mode == delivery {
				kind = "DELIVERED"
			}
			if k == 0 && special[d] != "" {
				kind = special[d]
			}
			subject := x.t.subjects[0]
			if len(x.t.subjects) > 1 && g.chance(30) {
				subject = x.t.subjects[1]
			}
			list := topics[subject]
			f := map[string]any{
				"exchangeId": x.id, "schoolId": s.id, "date": ds(d), "period": p,
				"gradeLevel": x.grade + "年级", "className": pick(g, x.classes), "subject": subject, "kind": kind,
				"topic": list[(week+k)%len(list)], "minutes": 40,
			}
			switch kind {
			case "OPEN":
				f["openLevel"] = pick(g, []string{"SCHOOL", "SCHOOL", "TOWN", "COUNTY"})
				st.open++
			case "LECTURE":
				f["topic"], f["minutes"], f["className"] = pick(g, lectureTopics), 90, "全体教师"
			case "DEMONSTRATION":
				st.demos++
			case "GUIDANCE":
				st.guidance++
			}
			if g.chance(5) {
				f["notes"] = pick(g, lessonNotes)
			}
			lid := id(fmt.Sprintf("lesson/%s/%s/%d", x.key, ds(d), p))
			g.op(job, "lesson", lid, f)
			st.lessons++
			if kind == "DEMONSTRATION" || kind == "OPEN" {
				shown = append(shown, shownLesson{lid, d, subject, s})
			}
		}
	}
	return shown
}

type shownLesson struct {
	id      string
	date    time.Time
	subject string
	school  *school
}

func (g *gen) research(job *[]jiaoliu.Op, x *exchange, tm term, work []time.Time, st *termStats) {
	var n int
	kinds := []string{"JOINT_PREPARATION", "GROUP_ACTIVITY", "JOINT_PREPARATION", "GROUP_ACTIVITY", "LECTURE"}
	switch x.mode {
	case second:
		n = g.between(9, 10)
		kinds = append(kinds, "SURVEY", "SURVEY")
	case delivery:
		n = g.between(4, 5)
	case itinerant:
		n = g.between(5, 6)
	default:
		n = g.between(7, 9)
	}
	if x.year == "2025-2026" {
		n = (n + 1) / 2 // a whole year has two terms
	}
	for i, d := range sample(g, work, n) {
		kind := pick(g, kinds)
		g.op(job, "researchActivity", id(fmt.Sprintf("research/%s/%s/%d", x.key, tm.name, i)), map[string]any{
			"exchangeId": x.id, "date": ds(d), "kind": kind, "topic": pick(g, researchTopics[kind]),
			"notes": fmt.Sprintf("地点：%s；参加人员：%s全体%s教师", x.to.name, x.to.name, x.t.subjects[0]),
		})
		st.research++
	}
}

func (g *gen) observations(job *[]jiaoliu.Op, x *exchange, tm term, work []time.Time, shown []shownLesson, st *termStats) {
	n := 0
	// Colleagues of the receiving school watch and critique the lessons shown.
	for _, l := range shown {
		locals := filter(x.locals, func(t *teacher) bool { return t.school == l.school })
		for _, o := range sample(g, locals, g.between(1, 2)) {
			g.op(job, "observation", id(fmt.Sprintf("observation/%s/%s/%d", x.key, tm.name, n)), map[string]any{
				"observerId": o.id, "observedTeacherId": x.t.id, "exchangeId": x.id, "lessonId": l.id,
				"date": ds(l.date), "subject": l.subject, "critique": true,
				"comments": pick(g, observationComments), "rating": g.between(4, 5),
			})
			n++
		}
	}
	// The exchange teacher observes and critiques local teachers (听课评课).
	var own int
	switch x.mode {
	case delivery:
		own = g.between(5, 6)
	case second:
		own = g.between(11, 12)
	case itinerant:
		own = g.between(1, 2)
	default:
		own = g.between(2, 3)
	}
	for _, d := range sample(g, work, own) {
		o := pick(g, x.locals)
		f := map[string]any{
			"observerId": x.t.id, "observedTeacherId": o.id, "exchangeId": x.id, "date": ds(d),
			"subject": o.subjects[0], "critique": x.mode == delivery || g.chance(60), "comments": pick(g, observationComments),
		}
		if g.chance(50) {
			f["rating"] = g.between(3, 5)
		}
		g.op(job, "observation", id(fmt.Sprintf("observation/%s/%s/%d", x.key, tm.name, n)), f)
		n++
		st.observed++
	}
}

var reportEndings = []string{
	"通过一学期的交流，我深刻体会到农村学校教育资源的不足，也看到了孩子们对知识的渴望。下学期我将继续发挥示范引领作用，带动青年教师成长。",
	"本学期的不足是教研活动的深度还不够，对学困生的个别辅导时间偏少。今后将加强与受援学校教师的合作，把城区学校的好做法带进课堂。",
	"感谢两校领导和同事的支持。我将继续做好传帮带工作，认真完成交流任务，为城乡教育均衡发展尽一份力。",
}

func (g *gen) report(job *[]jiaoliu.Op, x *exchange, tm term, st *termStats) {
	if !x.until.IsZero() {
		return // terminated before the end of term
	}
	if x.year == AcademicYear && len(x.grades) == 0 {
		return // not yet handed in
	}
	var role string
	subject := x.t.subjects[0]
	switch x.mode {
	case delivery:
		role = fmt.Sprintf("每周到校送课，承担%s年级%s送课任务", x.grade, subject)
	case second:
		role = fmt.Sprintf("挂职参与学校管理，并承担%s年级%s教学", x.grade, subject)
	case itinerant:
		names := []string{x.to.name}
		for _, s := range x.also {
			names = append(names, s.name)
		}
		role = fmt.Sprintf("走教%s，承担%s课", strings.Join(names, "、"), strings.Join(x.t.subjects, "、"))
	default:
		role = fmt.Sprintf("%s，担任%s年级%s教学", modeNames[x.mode], x.grade, subject)
	}
	content := fmt.Sprintf("%s，我在%s%s。本学期共授课%d节，其中示范课%d节、指导课%d节、公开课%d节；参加教研活动%d次；听课评课%d节；出勤%d天。%s",
		tm.label, x.to.name, role, st.lessons, st.demos, st.guidance, st.open, st.research, st.observed, st.present,
		pick(g, reportEndings))
	g.op(job, "semesterReport", id(fmt.Sprintf("report/%s/%s", x.key, tm.name)), map[string]any{
		"exchangeId": x.id, "term": tm.name, "title": tm.label + "支教工作总结", "content": content,
		"submittedOn": ds(tm.to.AddDate(0, 0, -g.between(0, 5))),
	})
}

// ---- evaluations and policies

var gradeComments = map[string][]string{
	excellent:   {"该同志师德高尚，工作积极主动，能高质量完成示范课、指导课等任务，深受受援学校师生好评。", "教学效果显著，所带班级成绩进步明显，积极参与教研活动，发挥了骨干引领作用。"},
	qualified:   {"该同志遵守学校各项制度，能按要求完成教学任务，工作认真负责。", "能较好完成交流任务，与受援学校教师相处融洽，教学效果良好。"},
	basic:       {"该同志能完成基本教学任务，但工作主动性不足，教研活动参与较少，需进一步加强。"},
	unqualified: {"该同志本学期擅自缺勤超过10天，严重违反交流纪律，考核不合格。"},
}

// dimensions gives the four dimension grades that go with an overall grade.
func (g *gen) dimensions(grade string) [4]string {
	switch grade {
	case excellent:
		d := [4]string{excellent, excellent, excellent, excellent}
		d[g.rng.IntN(4)] = qualified
		return d
	case qualified:
		d := [4]string{qualified, qualified, qualified, qualified}
		d[g.rng.IntN(4)] = excellent
		return d
	case basic:
		return [4]string{qualified, basic, qualified, basic}
	}
	return [4]string{basic, unqualified, unqualified, basic}
}

func (g *gen) evaluations() {
	for _, x := range g.exchanges {
		type slot struct{ period, term string }
		slots := []slot{{"SEMESTER", autumn2026.name}}
		if x.year == "2025-2026" {
			slots = []slot{{"SEMESTER", autumn2025.name}, {"SEMESTER", spring2026.name}, {"ANNUAL", x.year}, {"END_OF_EXCHANGE", x.year}}
		}
		for i, grade := range x.grades {
			sl := slots[i]
			f := map[string]any{"exchangeId": x.id, "period": sl.period, "term": sl.term, "evaluatorSchoolId": x.to.id}
			if grade == draft {
				d := g.dimensions(qualified)
				f["conduct"], f["attitude"] = d[0], d[1]
			} else {
				d := g.dimensions(grade)
				f["conduct"], f["attitude"], f["attendanceGrade"], f["teachingResults"] = d[0], d[1], d[2], d[3]
				f["grade"], f["comments"], f["receivingSigned"], f["finalized"] = grade, pick(g, gradeComments[grade]), true, true
				if sl.period == "END_OF_EXCHANGE" {
					f["sendingSigned"] = true
				}
			}
			g.op(&g.ds.tail, "evaluation", id(fmt.Sprintf("evaluation/%s/%s/%s", x.key, sl.period, sl.term)), f)
		}
	}
}

// policies writes the two districts' policies; 新密市's comes last and marks a
// complete load.
func (g *gen) policies() {
	for _, p := range []struct{ id, district, preset string }{
		{OtherPolicyID, OtherDistrictID, "YULIN"},
		{PolicyID, DistrictID, "CHUANDI"},
	} {
		params, ok := jiaoliu.Preset(p.preset)
		if !ok {
			panic("demo: no preset " + p.preset)
		}
		f := params.Fields()
		f["districtId"], f["academicYear"], f["preset"] = p.district, AcademicYear, p.preset
		g.op(&g.ds.tail, "policy", p.id, f)
	}
}
