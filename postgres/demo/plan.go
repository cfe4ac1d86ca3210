package demo

import (
	"fmt"
	"slices"
	"time"

	"github.com/jiaoliu/jiaoliu"
)

// planSpec is one exchange of the demo: a well-known teacher (special) or one picked
// from the sending school by want.
type planSpec struct {
	key, special, want string // want: "", "volunteer", "vice", "manager", "arts", "backbone"
	from, to, mode     string
	also               []string
	path               []string
	start, end         string
	reported           string
	absence            string
	grades             []string
	note               string
}

var (
	toActive    = []string{approved, published, active}
	toCompleted = []string{approved, published, active, completed}
)

// The 2026-2027 exchanges: 30 ACTIVE, and one of every other status on the way.
var plans2026 = []planSpec{
	{key: "full-time", special: "full-time", from: "双河五小", to: "朱家沟小学", mode: fullTime, end: "2028-07-15", grades: []string{excellent}},
	{key: "absent", special: "absent", from: "北海小学", to: "熊楼小学", mode: fullTime, end: "2028-07-15", absence: "run11", grades: []string{unqualified}},
	{key: "basic", special: "basic", from: "西街小学", to: "宋楼小学", mode: fullTime, end: "2028-07-15", absence: "few", grades: []string{basic}},
	{key: "absent-ten", from: "培文小学", to: "义湖小学", mode: fullTime, end: "2028-07-15", absence: "run10", grades: []string{qualified}},
	{key: "absent-year", from: "双河五小", to: "东于沟小学", mode: fullTime, end: "2028-07-15", absence: "year16"},
	{key: "reverse", special: "reverse", from: "熊楼小学", to: "北海小学", mode: fullTime, end: "2027-07-15", grades: []string{qualified},
		note: "青年教师到优质学校跟岗学习"},
	{key: "late", from: "西街小学", to: "引河小学", mode: fullTime, end: "2028-07-15", reported: "2026-09-10", grades: []string{draft},
		note: "因家事推迟到岗，已补办请假手续"},
	{key: "short", from: "北海小学", to: "保婴小学", mode: fullTime, end: "2027-07-15", grades: []string{qualified}},
	{key: "repeat", special: "repeat", from: "北海小学", to: "胸阳小学", mode: fullTime, end: "2028-07-15", grades: []string{qualified},
		note: "2025-2026学年交流考核为基本称职，按规定再次交流"},
	{key: "to-quality", want: "backbone", from: "宋楼小学", to: "西街小学", mode: fullTime, end: "2027-07-15", grades: []string{excellent}},
	{key: "ft-caohe", from: "双河五小", to: "曹河教学点", mode: fullTime, end: "2028-07-15", grades: []string{excellent}},
	{key: "ft-xieying", from: "培文小学", to: "谢营教学点", mode: fullTime, end: "2028-07-15", grades: []string{qualified}},
	{key: "ft-xionglou", from: "西街小学", to: "熊楼小学", mode: fullTime, end: "2029-07-15", grades: []string{draft}},
	{key: "ft-denggang", from: "赵坡中心小学", to: "邓岗教学点", mode: fullTime, end: "2028-07-15", grades: []string{qualified}},
	{key: "ft-dongyugou", from: "北海小学", to: "东于沟小学", mode: fullTime, end: "2028-07-15"},
	{key: "delivery", special: "delivery", from: "培文小学", to: "曹河教学点", mode: delivery, end: "2027-07-15", grades: []string{excellent}},
	{key: "ld-denggang", from: "双河五小", to: "邓岗教学点", mode: delivery, end: "2027-07-15", grades: []string{qualified}},
	{key: "ld-yihu", from: "北海小学", to: "义湖小学", mode: delivery, end: "2027-07-15", grades: []string{draft}},
	{key: "ld-zhujiagou", from: "西街小学", to: "朱家沟小学", mode: delivery, end: "2027-07-15", grades: []string{qualified}},
	{key: "secondment", special: "secondment", from: "北海小学", to: "东于沟小学", mode: second, end: "2028-07-15", grades: []string{excellent},
		note: "挂职副校长，分管教学"},
	{key: "sec-xionglou", want: "manager", from: "双河五小", to: "熊楼小学", mode: second, end: "2028-07-15", grades: []string{qualified},
		note: "挂职教导主任"},
	{key: "sec-baoying", want: "vice", from: "西街小学", to: "保婴小学", mode: second, end: "2028-07-15", grades: []string{draft},
		note: "挂职副校长"},
	{key: "itinerant", special: "itinerant", from: "川底中心小学", to: "邓岗教学点", also: []string{"曹河教学点", "谢营教学点"},
		mode: itinerant, end: "2028-07-15", grades: []string{qualified}, note: "走教邓岗、曹河、谢营三个教学点的音乐、美术课"},
	{key: "it-xieying", want: "arts", from: "赵坡中心小学", to: "谢营教学点", also: []string{"曹河教学点"}, mode: itinerant, end: "2028-07-15"},
	{key: "group", special: "group", from: "双河五小", to: "柳山小学", mode: groupInt, end: "2029-07-15", grades: []string{qualified}},
	{key: "gi-xiongyang", from: "双河五小", to: "胸阳小学", mode: groupInt, end: "2029-07-15", grades: []string{excellent}},
	{key: "gi-main", from: "胸阳小学", to: "双河五小", mode: groupInt, end: "2029-07-15", grades: []string{qualified},
		note: "分校区教师到主校区交流"},
	{key: "paired", special: "paired", from: "北海小学", to: "熊楼小学", mode: paired, end: "2028-07-15", grades: []string{qualified}},
	{key: "ps-songlou", from: "西街小学", to: "宋楼小学", mode: paired, end: "2028-07-15", grades: []string{draft}},
	{key: "ps-yinhe", from: "培文小学", to: "引河小学", mode: paired, end: "2028-07-15", grades: []string{qualified}},

	{key: "terminated", from: "双河五小", to: "义湖小学", mode: fullTime, end: "2028-07-15", path: []string{approved, published, active, terminated},
		note: "因病无法继续交流，经教育局批准于2026年11月终止"},
	{key: "proposed", want: "volunteer", from: "培文小学", to: "谢营教学点", mode: fullTime, start: "2027-02-22", end: "2029-01-31",
		path: []string{proposed}, note: "个人申报"},
	{key: "proposed-delivery", from: "北海小学", to: "柳山小学", mode: delivery, start: "2027-02-22", end: "2028-01-31", path: []string{proposed}},
	{key: "approved", from: "西街小学", to: "东于沟小学", mode: fullTime, start: "2027-02-22", end: "2029-01-31", path: []string{approved}},
	{key: "approved-itinerant", want: "arts", from: "赵坡中心小学", to: "邓岗教学点", mode: itinerant, start: "2027-02-22", end: "2028-01-31",
		path: []string{approved}},
	{key: "no-show", special: "no-show", from: "双河五小", to: "朱家沟小学", mode: fullTime, end: "2028-07-15", path: []string{approved, published}},
	{key: "published", from: "北海小学", to: "引河小学", mode: paired, start: "2027-02-22", end: "2029-01-31", path: []string{approved, published}},
	{key: "refused", special: "refused", from: "西街小学", to: "曹河教学点", mode: fullTime, end: "2028-07-15",
		path: []string{approved, published, refused}, note: "公示后无正当理由拒不到岗"},
	{key: "deferred", special: "deferred", from: "双河五小", to: "保婴小学", mode: fullTime, end: "2028-07-15",
		path: []string{proposed, deferred}, note: "孕期，暂缓交流"},
	{key: "cancelled", from: "培文小学", to: "宋楼小学", mode: fullTime, end: "2028-07-15", path: []string{approved, cancelled},
		note: "受援学校编制调整，取消本次交流"},
}

// The 2025-2026 cohort, COMPLETED; grades are for the two terms, the year and the end.
var plans2025 = []planSpec{
	{key: "completed", special: "repeat", from: "北海小学", to: "引河小学", mode: fullTime, grades: []string{qualified, basic, basic, basic}},
	{key: "2025-xionglou", from: "双河五小", to: "熊楼小学", mode: fullTime, grades: []string{excellent, excellent, excellent, excellent}},
	{key: "2025-zhujiagou", from: "西街小学", to: "朱家沟小学", mode: fullTime, grades: []string{qualified, excellent, qualified, qualified}},
	{key: "2025-dongyugou", from: "培文小学", to: "东于沟小学", mode: fullTime, grades: []string{qualified, qualified, qualified, qualified}},
	{key: "2025-caohe", from: "北海小学", to: "曹河教学点", mode: fullTime, grades: []string{excellent, qualified, excellent, excellent}},
	{key: "2025-yihu", from: "双河五小", to: "义湖小学", mode: fullTime, grades: []string{qualified, qualified, qualified, qualified}},
	{key: "2025-songlou", from: "双河五小", to: "宋楼小学", mode: fullTime, grades: []string{qualified, qualified, qualified, qualified}},
	{key: "2025-baoying", from: "北海小学", to: "保婴小学", mode: fullTime, grades: []string{excellent, excellent, excellent, excellent}},
	{key: "2025-xieying", from: "西街小学", to: "谢营教学点", mode: fullTime, grades: []string{qualified, qualified, qualified, qualified}},
	{key: "2025-xionglou-2", from: "培文小学", to: "熊楼小学", mode: fullTime, grades: []string{qualified, excellent, qualified, excellent}},
	{key: "2025-denggang", from: "西街小学", to: "邓岗教学点", mode: delivery, grades: []string{qualified, qualified, qualified, qualified}},
	{key: "2025-liushan", from: "培文小学", to: "柳山小学", mode: delivery, grades: []string{excellent, qualified, qualified, qualified}},
}

var planOther = planSpec{key: "other-district", from: "榆阳区第一实验小学", to: "古塔镇小学", mode: fullTime, end: "2029-07-15",
	grades: []string{qualified}}

func (g *gen) plan() {
	for _, p := range plans2025 {
		p.path, p.start, p.end, p.reported = toCompleted, "2025-09-01", "2026-07-10", "2025-09-01"
		g.newExchange(p, "2025-2026")
	}
	for _, p := range append(plans2026, planOther) {
		if p.path == nil {
			p.path = toActive
		}
		if p.start == "" {
			p.start = "2026-09-01"
		}
		g.newExchange(p, AcademicYear)
	}
}

func (g *gen) newExchange(p planSpec, year string) {
	from, to := g.byName[p.from], g.byName[p.to]
	x := &exchange{key: p.key, id: exchangeID(p.key), from: from, to: to, mode: p.mode, year: year,
		start: day(p.start), end: day(p.end), path: p.path, note: p.note, absence: p.absence, grades: p.grades,
		volunteer: p.want == "volunteer" || p.key == "reverse", stats: map[string]*termStats{}}
	for _, name := range p.also {
		x.also = append(x.also, g.byName[name])
	}
	if p.special != "" {
		x.t = g.specials[p.special]
	} else {
		x.t = g.pickTeacher(from, g.wanted(p.want))
	}
	x.t.busy = true
	if slices.Contains(x.path, active) {
		x.reported = day(p.start)
		switch {
		case p.reported != "":
			x.reported = day(p.reported)
		case g.chance(40):
			x.reported = x.reported.AddDate(0, 0, -1)
		case g.chance(15):
			x.reported = x.reported.AddDate(0, 0, g.between(1, 2))
		}
	}
	if slices.Contains(x.path, terminated) {
		x.until = day("2026-11-27")
	}
	x.moves = x.mode == fullTime && x.end.Sub(x.start) > 2*366*24*time.Hour
	switch {
	case x.to.locality == point:
		x.rural = 800
	case x.to.locality == rural:
		x.rural = 500
	case x.to.locality == town:
		x.rural = 300
	}
	x.transport = 100
	switch x.mode {
	case delivery:
		x.rural, x.transport = 0, 300
	case itinerant:
		x.transport = 300
	}
	if x.to.locality == urban {
		x.rural, x.transport = 0, 0
	}
	x.grade = pick(g, gradeNames)
	if x.to.locality == point {
		x.classes = []string{x.grade + "年级"}
	} else {
		for k := range g.between(1, 2) {
			x.classes = append(x.classes, fmt.Sprintf("%s(%d)班", x.grade, k+1))
		}
	}
	x.visitDay = time.Weekday(g.between(1, 5))
	for _, s := range append([]*school{x.to}, x.also...) {
		x.locals = append(x.locals, filter(s.teachers, func(t *teacher) bool { return t != x.t })...)
	}
	g.exchanges = append(g.exchanges, x)
}

func (g *gen) wanted(want string) func(*teacher) bool {
	switch want {
	case "volunteer":
		return func(t *teacher) bool {
			return t.position == posTeacher && fullYears(t.joined, refDate) < 6 && fullYears(t.birth, refDate) < 35
		}
	case "vice":
		return func(t *teacher) bool { return t.position == posVice }
	case "manager":
		return func(t *teacher) bool { return t.position == posManager }
	case "arts":
		return func(t *teacher) bool {
			return t.position == posTeacher && eligible(t) && slices.ContainsFunc(t.subjects, func(s string) bool {
				return s == "音乐" || s == "美术" || s == "体育" || s == "英语"
			})
		}
	case "backbone":
		return func(t *teacher) bool { return t.position == posTeacher && eligible(t) && t.backbone != "NONE" }
	}
	return func(t *teacher) bool { return t.position == posTeacher && eligible(t) }
}

// exchangeOps creates an exchange in its first status and moves it along its path.
func (g *gen) exchangeOps(x *exchange) {
	signed := x.path[0] == approved // the agreement is signed when the exchange is approved
	g.head("exchange", x.id, map[string]any{
		"teacherId": x.t.id, "sendingSchoolId": x.from.id, "receivingSchoolId": x.to.id, "mode": x.mode,
		"academicYear": x.year, "plannedStart": ds(x.start), "plannedEnd": ds(x.end), "status": x.path[0],
		"volunteer": x.volunteer, "relationMoves": x.moves, "agreementSigned": signed,
		"ruralAllowance": x.rural, "transportAllowance": x.transport, "note": x.note,
	})
	for _, s := range x.path[1:] {
		f := map[string]any{"status": s}
		if s == active {
			f["reportedOn"] = ds(x.reported)
		}
		g.head("exchange", x.id, f)
	}
	if slices.Contains(x.path, completed) {
		g.head("schoolStint", id("stint/"+x.key+"/exchange"), map[string]any{
			"teacherId": x.t.id, "schoolId": x.to.id, "startDate": ds(x.reported), "endDate": ds(x.end),
			"note": x.year + "学年交流轮岗（" + modeNames[x.mode] + "）",
		})
	}
}

var modeNames = map[string]string{fullTime: "全日制支教", delivery: "送课交流", second: "挂职锻炼", itinerant: "走教",
	groupInt: "集团内交流", paired: "对口帮扶"}

// ---- mentoring

func (g *gen) pairs() {
	var job []jiaoliu.Op
	add := func(key string, mentor, mentee *teacher, s *school, tm term, status string, n int) {
		pid := id("pair/" + key)
		mentee.mentee = true
		subject := mentor.subjects[0]
		year := tm.name[:9]
		g.head("mentoringPair", pid, map[string]any{
			"mentorId": mentor.id, "menteeId": mentee.id, "schoolId": s.id, "subject": subject,
			"academicYear": year, "goals": pick(g, pairGoals), "status": status,
		})
		days := sample(g, schoolDays(tm.from.AddDate(0, 0, 7), tm.to), n)
		kinds := []string{"OBSERVE", "LESSON_TALK", "CRITIQUE", "JOINT_PREPARATION", "RESEARCH"}
		for i, d := range days {
			kind := kinds[(i+g.rng.IntN(2))%len(kinds)]
			by := mentor
			if g.chance(40) {
				by = mentee
			}
			g.op(&job, "mentoringActivity", id(fmt.Sprintf("pair/%s/%d", key, i)), map[string]any{
				"pairId": pid, "date": ds(d), "kind": kind, "notes": pick(g, mentoringNotes[kind]), "recordedById": by.id,
			})
		}
	}
	menteeAt := func(s *school, subject string, mentor *teacher) *teacher {
		free := filter(s.teachers, func(t *teacher) bool {
			return t != mentor && !t.mentee && !t.special && t.position == posTeacher && !t.busy
		})
		young := filter(free, func(t *teacher) bool { return fullYears(t.birth, refDate) < 36 })
		if same := filter(young, func(t *teacher) bool { return slices.Contains(t.subjects, subject) }); len(same) > 0 {
			return pick(g, same)
		}
		if len(young) > 0 {
			return pick(g, young)
		}
		slices.SortStableFunc(free, func(a, b *teacher) int { return b.birth.Compare(a.birth) })
		return free[0]
	}

	add("full-time", g.specials["full-time"], g.specials["mentee"], g.byName["朱家沟小学"], autumn2026, "ACTIVE", 9)
	n := 0
	for _, x := range g.exchanges {
		if n == 9 || x.year != AcademicYear || !slices.Contains(x.path, active) || x.to.district.id != DistrictID ||
			x.key == "full-time" || x.absence != "" || x.until != (time.Time{}) || x.to.locality == urban ||
			(x.mode != fullTime && x.mode != groupInt && x.mode != paired) {
			continue
		}
		add(x.key, x.t, menteeAt(x.to, x.t.subjects[0], x.t), x.to, autumn2026, "ACTIVE", g.between(5, 10))
		n++
	}
	for _, name := range []string{"双河五小", "北海小学", "西街小学", "培文小学", "川底中心小学"} {
		s := g.byName[name]
		mentors := filter(s.teachers, func(t *teacher) bool {
			return t.backbone != "NONE" && t.position != posPrincipal && !t.mentee && !t.busy && fullYears(t.birth, refDate) >= 35
		})
		if len(mentors) == 0 { // no backbone teacher at home: the most senior colleague
			mentors = filter(s.teachers, func(t *teacher) bool {
				return t.position != posPrincipal && !t.mentee && !t.busy && fullYears(t.birth, refDate) >= 40
			})
		}
		mentor := pick(g, mentors)
		add("school-"+name, mentor, menteeAt(s, mentor.subjects[0], mentor), s, autumn2026, "ACTIVE", g.between(5, 10))
	}
	for _, x := range g.exchanges {
		if x.key == "2025-xionglou" {
			add("2025", x.t, menteeAt(x.to, x.t.subjects[0], x.t), x.to, autumn2025, "ENDED", 8)
		}
	}
	g.ds.jobs = append(g.ds.jobs, job)
}
