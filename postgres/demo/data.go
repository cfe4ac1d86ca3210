package demo

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jiaoliu/jiaoliu"
)

// hlcBase is the wall time of the first demo op (2026-01-01T00:00:00Z); op n is stamped
// n milliseconds later. It lies in the past, so that the server never re-stamps a demo
// op and every later edit wins over a demo value.
const hlcBase = 1767225600000

// dataset is the demo data as ops: head in order (structure, people, exchanges, pairs),
// then jobs (the records of one exchange, or the mentoring activities) that do not
// depend on each other, then tail in order, whose last op is the marker PolicyID.
type dataset struct {
	head []jiaoliu.Op
	jobs [][]jiaoliu.Op
	tail []jiaoliu.Op
}

// Short names of the enum values the generator uses.
const (
	urban, town, rural, point   = "URBAN", "TOWN", "RURAL", "TEACHING_POINT"
	quality, general, weak      = "QUALITY", "GENERAL", "WEAK"
	male, female                = "MALE", "FEMALE"
	posTeacher, posPrincipal    = "TEACHER", "PRINCIPAL"
	posVice, posManager         = "VICE_PRINCIPAL", "MIDDLE_MANAGER"
	fullTime, delivery, second  = "FULL_TIME", "LESSON_DELIVERY", "SECONDMENT"
	itinerant, groupInt, paired = "ITINERANT", "GROUP_INTERNAL", "PAIRED_SUPPORT"
	proposed, approved          = "PROPOSED", "APPROVED"
	published, active           = "PUBLISHED", "ACTIVE"
	completed, terminated       = "COMPLETED", "TERMINATED"
	deferred, refused           = "DEFERRED", "REFUSED"
	cancelled                   = "CANCELLED"
	excellent, qualified        = "EXCELLENT", "QUALIFIED"
	basic, unqualified          = "BASIC", "UNQUALIFIED"
	draft                       = "draft" // an evaluation begun but not finalized
)

// district is one district of the demo with the wording of its honours.
type district struct {
	id, name, code, province string
	county, city, prov       string // who awards county, city and province honours
}

type school struct {
	id, name, locality, tier string
	district                 *district
	zone, group              string
	remote, centre           bool
	size                     int
	tierAssessed             string
	teachers                 []*teacher
}

type teacher struct {
	key, id, name, gender     string
	birth, joined, leadership time.Time
	position, title, backbone string
	subjects, honors          []string
	employed                  bool
	school                    *school
	special                   bool // its facts are promised by an exported id
	busy                      bool // on an exchange, or otherwise not to be picked
	mentee                    bool
}

type exchange struct {
	key, id          string
	t                *teacher
	from, to         *school
	also             []*school // ITINERANT: the other teaching points served
	mode, year       string
	start, end       time.Time
	reported         time.Time
	path             []string // statuses in order
	volunteer, moves bool
	rural, transport float64
	note             string
	absence          string    // "run11", "run10", "year16", "few" or ""
	until            time.Time // last day of work if TERMINATED
	grades           []string  // evaluation plan, see evaluations
	grade            string    // the class grade taught, e.g. "三"
	classes          []string
	visitDay         time.Weekday // LESSON_DELIVERY: the weekday of visits
	locals           []*teacher   // teachers of the receiving school(s)
	stats            map[string]*termStats
}

// termStats counts what an exchange teacher did in a term, for the semester report.
type termStats struct {
	lessons, demos, guidance, open, research, observed, present int
}

type term struct {
	name, label string
	from, to    time.Time
}

var (
	autumn2025 = term{"2025-2026-1", "2025-2026学年第一学期", day("2025-09-01"), day("2026-01-16")}
	spring2026 = term{"2025-2026-2", "2025-2026学年第二学期", day("2026-03-02"), day("2026-07-10")}
	autumn2026 = term{"2026-2027-1", "2026-2027学年第一学期", day("2026-09-01"), day("2027-01-15")}
	// refDate is the reference date of 2026-2027 (eligibility is judged on it).
	refDate = day("2026-09-01")
)

type gen struct {
	rng       *rand.Rand
	seq       int64
	names     map[string]bool
	districts []*district
	schools   []*school
	byName    map[string]*school
	specials  map[string]*teacher
	exchanges []*exchange
	ds        dataset
}

// build generates the demo data set; the same every time.
func build() dataset {
	g := &gen{
		rng:      rand.New(rand.NewPCG(20260901, 20270115)),
		names:    map[string]bool{},
		byName:   map[string]*school{},
		specials: map[string]*teacher{},
	}
	g.structure()
	g.people()
	g.deferrals()
	g.plan()
	for _, x := range g.exchanges {
		g.exchangeOps(x)
	}
	g.pairs()
	for _, x := range g.exchanges {
		g.activity(x)
	}
	g.evaluations()
	g.policies()
	return g.ds
}

func (g *gen) op(dst *[]jiaoliu.Op, entity, rid string, f map[string]any) {
	g.seq++
	*dst = append(*dst, jiaoliu.Op{
		OpID: id(fmt.Sprintf("op/%d", g.seq)), Kind: jiaoliu.OpUpsert, Entity: entity, ID: rid,
		HLC: fmt.Sprintf("%013d-0000-demo", hlcBase+g.seq), Fields: f,
	})
}

func (g *gen) head(entity, rid string, f map[string]any) { g.op(&g.ds.head, entity, rid, f) }

// ---- dates

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ds(t time.Time) string { return t.Format(time.DateOnly) }

func sept1(year int) time.Time { return time.Date(year, time.September, 1, 0, 0, 0, 0, time.UTC) }

// fullYears is the number of full years from a to b (周岁 when a is a birth date).
func fullYears(a, b time.Time) int {
	return jiaoliu.DateOf(b).FullYearsSince(jiaoliu.DateOf(a))
}

func dates(list ...string) map[time.Time]bool {
	m := map[time.Time]bool{}
	for _, s := range list {
		from, to, ok := strings.Cut(s, "..")
		if !ok {
			to = from
		}
		for d := day(from); !d.After(day(to)); d = d.AddDate(0, 0, 1) {
			m[d] = true
		}
	}
	return m
}

// The public holidays and the weekend days worked instead (调休) of the terms covered.
var (
	holidays = dates("2025-10-01..2025-10-08", "2026-01-01..2026-01-02", "2026-04-06", "2026-05-01..2026-05-05",
		"2026-06-19", "2026-09-25", "2026-10-01..2026-10-07", "2027-01-01")
	workedWeekends = dates("2025-09-28", "2025-10-11", "2026-09-20", "2026-10-10")
)

// schoolDays returns the school days from one day to another, both included.
func schoolDays(from, to time.Time) []time.Time {
	var out []time.Time
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		wd := d.Weekday()
		if workedWeekends[d] || (wd != time.Saturday && wd != time.Sunday && !holidays[d]) {
			out = append(out, d)
		}
	}
	return out
}

// ---- random helpers

func (g *gen) chance(pct int) bool { return g.rng.IntN(100) < pct }

func (g *gen) between(lo, hi int) int { return lo + g.rng.IntN(hi-lo+1) }

func pick[T any](g *gen, list []T) T { return list[g.rng.IntN(len(list))] }

// sample returns n distinct elements of list in their original order.
func sample[T any](g *gen, list []T, n int) []T {
	n = min(n, len(list))
	idx := g.rng.Perm(len(list))[:n]
	slices.Sort(idx)
	out := make([]T, n)
	for i, j := range idx {
		out[i] = list[j]
	}
	return out
}

// ---- districts, zones, groups, schools

type schoolSpec struct {
	name, locality, tier, zone, group string
	size                              int
	remote, centre                    bool
}

var xinmiSchools = []schoolSpec{
	{"双河五小", urban, quality, "城关片区", "main", 32, false, false},
	{"北海小学", urban, quality, "城关片区", "", 30, false, false},
	{"西街小学", urban, quality, "城关片区", "", 28, false, false},
	{"培文小学", urban, quality, "城关片区", "", 26, false, false},
	{"川底中心小学", town, general, "川底片区", "", 20, false, true},
	{"赵坡中心小学", town, general, "川底片区", "", 18, false, true},
	{"胸阳小学", rural, general, "城关片区", "branch", 13, false, false},
	{"柳山小学", rural, general, "城关片区", "branch", 13, false, false},
	{"熊楼小学", rural, weak, "城关片区", "", 11, false, false},
	{"东于沟小学", rural, general, "川底片区", "", 10, true, false},
	{"宋楼小学", rural, general, "川底片区", "", 12, false, false},
	{"朱家沟小学", rural, weak, "川底片区", "", 10, true, false},
	{"保婴小学", rural, general, "城关片区", "", 12, false, false},
	{"引河小学", rural, general, "城关片区", "", 11, false, false},
	{"义湖小学", rural, general, "川底片区", "", 11, false, false},
	{"曹河教学点", point, weak, "川底片区", "", 5, true, false},
	{"邓岗教学点", point, weak, "川底片区", "", 4, true, false},
	{"谢营教学点", point, weak, "川底片区", "", 4, true, false},
}

var yulinSchools = []schoolSpec{
	{"榆阳区第一实验小学", urban, quality, "", "", 6, false, false},
	{"鱼河镇中心小学", town, general, "", "", 5, false, true},
	{"古塔镇小学", rural, general, "", "", 5, false, false},
	{"黄家圪崂教学点", point, weak, "", "", 3, true, false},
}

func (g *gen) structure() {
	xinmi := &district{id: DistrictID, name: "新密市", code: "410183", province: "河南省", county: "新密市", city: "郑州市", prov: "河南省"}
	yulin := &district{id: OtherDistrictID, name: "榆林市", code: "610800", province: "陕西省", county: "榆阳区", city: "榆林市", prov: "陕西省"}
	g.districts = []*district{xinmi, yulin}
	for _, d := range g.districts {
		g.head("district", d.id, map[string]any{"name": d.name, "code": d.code, "province": d.province})
	}
	for _, z := range []string{"城关片区", "川底片区"} {
		g.head("zone", id("zone/"+z), map[string]any{"districtId": xinmi.id, "name": z})
	}
	g.head("schoolGroup", GroupID, map[string]any{"districtId": xinmi.id, "name": "双河五小教育集团"})
	add := func(d *district, specs []schoolSpec) {
		for i, sp := range specs {
			s := &school{id: SchoolID(sp.name), name: sp.name, locality: sp.locality, tier: sp.tier, district: d,
				remote: sp.remote, centre: sp.centre, size: sp.size, tierAssessed: "2024-06-30"}
			if sp.zone != "" {
				s.zone = id("zone/" + sp.zone)
			}
			if sp.group != "" {
				s.group = GroupID
			}
			if i%5 == 3 {
				s.tierAssessed = "2023-06-30" // due for re-assessment this year
			}
			g.schools = append(g.schools, s)
			g.byName[s.name] = s
		}
	}
	add(xinmi, xinmiSchools)
	add(yulin, yulinSchools)
	for _, s := range g.schools {
		lessons := map[string][2]int{urban: {13, 15}, town: {15, 17}, rural: {16, 18}, point: {20, 23}}[s.locality]
		f := map[string]any{
			"districtId": s.district.id, "name": s.name, "locality": s.locality, "tier": s.tier,
			"tierAssessedOn": s.tierAssessed, "remote": s.remote, "centreSchool": s.centre,
			"staffingCap":          s.size + g.between(0, 4),
			"averageWeeklyLessons": float64(g.between(lessons[0]*10, lessons[1]*10)) / 10,
		}
		if s.zone != "" {
			f["zoneId"] = s.zone
		}
		if s.group != "" {
			f["groupId"] = s.group
		}
		g.head("school", s.id, f)
	}
	g.head("schoolGroup", GroupID, map[string]any{"mainSchoolId": SchoolShuangheID})
}

// ---- teachers

// special adds a teacher whose facts the exported ids promise.
func (g *gen) special(key, name, gender, birth, schoolName, joined, position, title, backbone string, subjects ...string) *teacher {
	s := g.byName[schoolName]
	t := &teacher{key: key, id: teacherID(key), name: name, gender: gender, birth: day(birth), joined: day(joined),
		position: position, title: title, backbone: backbone, subjects: subjects, employed: true, school: s, special: true}
	if position == posPrincipal || position == posVice {
		t.leadership = t.joined
	}
	t.honors = g.honorsFor(t, false)
	g.names[name] = true
	g.specials[key] = t
	s.teachers = append(s.teachers, t)
	return t
}

func (g *gen) people() {
	g.special("principal-shuanghe", "宋建国", male, "1970-01-20", "双河五小", "2015-09-01", posPrincipal, "SENIOR", "PROVINCE", "语文")
	g.special("principal-chuandi", "田振兴", male, "1972-04-11", "川底中心小学", "2016-09-01", posPrincipal, "SENIOR", "COUNTY", "数学")
	g.special("full-time", "李秀梅", female, "1985-03-12", "双河五小", "2011-09-01", posTeacher, "FIRST_LEVEL", "COUNTY", "语文")
	g.special("absent", "赵志强", male, "1983-06-20", "北海小学", "2009-09-01", posTeacher, "FIRST_LEVEL", "NONE", "数学")
	g.special("basic", "孙丽娟", female, "1988-11-05", "西街小学", "2013-09-01", posTeacher, "FIRST_LEVEL", "NONE", "英语")
	g.special("delivery", "刘静", female, "1980-04-18", "培文小学", "2006-09-01", posTeacher, "SENIOR", "CITY", "语文")
	g.special("secondment", "张建伟", male, "1978-02-09", "北海小学", "2005-09-01", posVice, "SENIOR", "COUNTY", "数学")
	g.special("itinerant", "马超", male, "1990-07-15", "川底中心小学", "2014-09-01", posTeacher, "FIRST_LEVEL", "NONE", "音乐", "美术")
	g.special("group", "王丹", female, "1987-10-02", "双河五小", "2012-09-01", posTeacher, "FIRST_LEVEL", "SCHOOL", "数学")
	g.special("paired", "陈明", male, "1984-05-23", "北海小学", "2010-09-01", posTeacher, "FIRST_LEVEL", "COUNTY", "科学")
	g.special("turns-50", "杨国强", male, "1976-09-01", "西街小学", "2008-09-01", posTeacher, "SENIOR", "NONE", "数学")
	g.special("turns-50-female", "周秀英", female, "1976-09-01", "西街小学", "2004-09-01", posTeacher, "SENIOR", "SCHOOL", "语文")
	g.special("age-49", "吴海峰", male, "1976-09-02", "培文小学", "2010-09-01", posTeacher, "SENIOR", "NONE", "体育")
	g.special("six-years", "郑婷", female, "1992-03-08", "培文小学", "2020-09-01", posTeacher, "FIRST_LEVEL", "NONE", "英语")
	g.special("five-years", "冯浩", male, "1993-12-11", "培文小学", "2020-09-02", posTeacher, "SECOND_LEVEL", "NONE", "体育")
	g.special("deferred", "韩雪", female, "1994-05-30", "双河五小", "2017-09-01", posTeacher, "SECOND_LEVEL", "NONE", "语文")
	g.special("refused", "曹永庆", male, "1979-08-14", "西街小学", "2007-09-01", posTeacher, "FIRST_LEVEL", "NONE", "体育")
	g.special("repeat", "邓伟", male, "1986-08-08", "北海小学", "2012-09-01", posTeacher, "FIRST_LEVEL", "NONE", "语文")
	g.special("mentee", "牛梓涵", female, "1999-02-14", "朱家沟小学", "2022-09-01", posTeacher, "SECOND_LEVEL", "NONE", "语文", "道德与法治")
	g.special("reverse", "苏浩宇", male, "1997-06-01", "熊楼小学", "2021-09-01", posTeacher, "SECOND_LEVEL", "NONE", "数学")
	g.special("no-show", "许志刚", male, "1982-03-03", "双河五小", "2010-09-01", posTeacher, "FIRST_LEVEL", "NONE", "数学")
	for _, key := range []string{"turns-50", "turns-50-female", "age-49", "six-years", "five-years"} {
		g.specials[key].busy = true // their facts stay as promised: no exchange
	}

	for _, s := range g.schools {
		has := func(pos string) int {
			n := 0
			for _, t := range s.teachers {
				if t.position == pos {
					n++
				}
			}
			return n
		}
		if has(posPrincipal) == 0 {
			g.randomTeacher(s, posPrincipal)
		}
		if s.size >= 8 && has(posVice) == 0 {
			g.randomTeacher(s, posVice)
		}
		managers := map[bool]int{true: 2, false: 1}[s.size >= 15]
		if s.size < 8 {
			managers = 0
		}
		for range managers - has(posManager) {
			g.randomTeacher(s, posManager)
		}
		for len(s.teachers) < s.size {
			g.randomTeacher(s, posTeacher)
		}
	}
	for _, s := range g.schools {
		for _, t := range s.teachers {
			g.teacherOps(t)
		}
	}
}

func (g *gen) name(gender string, born int) string {
	for {
		sur := string(surnames[g.rng.IntN(len(surnames))])
		var given string
		switch {
		case born >= 1993 && g.chance(60):
			given = pick(g, map[bool][]string{true: youngFemaleNames, false: youngMaleNames}[gender == female])
		default:
			chars := maleChars
			if gender == female {
				chars = femaleChars
			}
			given = string(pick(g, chars))
			if g.chance(70) {
				second := pick(g, chars)
				if !strings.ContainsRune(given, second) {
					given += string(second)
				}
			}
		}
		if n := sur + given; !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

func (g *gen) randomTeacher(s *school, position string) *teacher {
	femalePct, lo, hi := 68, 1968, 2000
	switch position {
	case posPrincipal:
		femalePct, lo, hi = 35, 1968, 1980
	case posVice:
		femalePct, lo, hi = 45, 1970, 1985
	case posManager:
		femalePct, lo, hi = 60, 1974, 1992
	}
	gender := male
	if g.chance(femalePct) {
		gender = female
		lo = max(lo, 1971) // women teachers retire earlier
	}
	born := g.between(lo, hi)
	birth := time.Date(born, time.Month(g.between(1, 12)), g.between(1, 28), 0, 0, 0, 0, time.UTC)
	start := min(born+g.between(21, 23), 2026)
	joinYear := g.between(start, 2026)
	joined := sept1(joinYear)
	if g.chance(10) {
		joined = joined.AddDate(0, 0, -g.between(1, 10)) // reported a few days before term
	}
	t := &teacher{
		key: fmt.Sprintf("%s/%d", s.name, len(s.teachers)), gender: gender, birth: birth, joined: joined,
		position: position, school: s, employed: !g.chance(map[bool]int{true: 15, false: 3}[s.locality == point]),
	}
	t.id = teacherID(t.key)
	t.name = g.name(gender, born)
	if position == posPrincipal || position == posVice {
		ly := max(g.between(2012, 2023), born+35)
		t.leadership = sept1(min(ly, 2025))
		if t.joined.After(t.leadership) || g.chance(60) {
			t.joined = t.leadership // appointed from another school
		}
		t.employed = true
	}
	age := fullYears(birth, refDate)
	t.title = g.title(age, position)
	t.backbone = g.backbone(age, s)
	t.subjects = g.subjectsFor(s)
	t.honors = g.honorsFor(t, true)
	s.teachers = append(s.teachers, t)
	return t
}

func (g *gen) title(age int, position string) string {
	r := g.rng.IntN(100)
	if position == posPrincipal {
		return map[bool]string{true: "SENIOR", false: "FIRST_LEVEL"}[r < 85]
	}
	switch {
	case age < 26:
		return map[bool]string{true: "NONE", false: "SECOND_LEVEL"}[r < 40]
	case age < 33:
		return map[bool]string{true: "SECOND_LEVEL", false: "FIRST_LEVEL"}[r < 70]
	case age < 45:
		if r < 15 {
			return "SECOND_LEVEL"
		} else if r < 85 {
			return "FIRST_LEVEL"
		}
		return "SENIOR"
	}
	if r < 45 {
		return "FIRST_LEVEL"
	} else if r < 98 {
		return "SENIOR"
	}
	return "PROFESSOR"
}

func (g *gen) backbone(age int, s *school) string {
	if age < 28 {
		return "NONE"
	}
	r := g.rng.IntN(100)
	if s.tier == quality {
		switch {
		case r < 66:
			return "NONE"
		case r < 78:
			return "SCHOOL"
		case r < 91:
			return "COUNTY"
		case r < 98:
			return "CITY"
		}
		return "PROVINCE"
	}
	switch {
	case r < 80:
		return "NONE"
	case r < 90:
		return "SCHOOL"
	case r < 97:
		return "COUNTY"
	}
	return "CITY"
}

func (g *gen) subject() string {
	r := g.rng.IntN(100)
	for _, s := range subjects {
		if r < s.weight {
			return s.name
		}
		r -= s.weight
	}
	return subjects[0].name
}

func (g *gen) subjectsFor(s *school) []string {
	out := []string{g.subject()}
	extra := 0
	switch {
	case s.locality == point:
		extra = g.between(1, 2) // 包班: one teacher, several subjects
	case s.locality == rural && g.chance(60), g.chance(30):
		extra = 1
	}
	for len(out) < 1+extra {
		if sub := g.subject(); !slices.Contains(out, sub) {
			out = append(out, sub)
		}
	}
	return out
}

func (g *gen) honorsFor(t *teacher, random bool) []string {
	d := t.school.district
	h := []string{}
	switch t.backbone {
	case "COUNTY":
		h = append(h, d.county+"骨干教师")
	case "CITY":
		h = append(h, d.city+"骨干教师")
	case "PROVINCE":
		h = append(h, d.prov+"骨干教师")
	}
	if t.position == posPrincipal && t.backbone == "PROVINCE" {
		h = append(h, d.city+"名校长")
	}
	if random {
		if t.title == "SENIOR" && t.backbone != "NONE" && t.backbone != "SCHOOL" && g.chance(30) {
			h = append(h, d.county+"学科带头人")
		}
		if g.chance(6) {
			h = append(h, d.county+"优秀教师")
		}
		if g.chance(3) {
			h = append(h, d.city+"优秀班主任")
		}
	}
	return h
}

// teacherOps writes a teacher and the history of schools they served.
func (g *gen) teacherOps(t *teacher) {
	f := map[string]any{
		"name": t.name, "gender": t.gender, "birthDate": ds(t.birth), "employed": t.employed,
		"position": t.position, "title": t.title, "backboneLevel": t.backbone,
		"honors": toAny(t.honors), "subjects": toAny(t.subjects), "schoolId": t.school.id,
		"joinedSchoolOn": ds(t.joined),
	}
	if !t.leadership.IsZero() {
		f["leadershipSince"] = ds(t.leadership)
	}
	g.head("teacher", t.id, f)

	// Earlier schools of the same district, back to the first post.
	start := sept1(t.birth.Year() + 22)
	if t.joined.Year()-start.Year() >= 3 {
		var others []*school
		for _, s := range g.schools {
			if s.district == t.school.district && s != t.school {
				others = append(others, s)
			}
		}
		n := 1
		if t.joined.Year()-start.Year() >= 10 && g.chance(50) {
			n = 2
		}
		bounds := []time.Time{start}
		if n == 2 {
			mid := sept1(start.Year() + g.between(2, t.joined.Year()-start.Year()-2))
			bounds = append(bounds, mid)
		}
		bounds = append(bounds, t.joined)
		for i := range n {
			s := pick(g, others)
			if i == 0 && t.school.locality == urban && g.chance(60) {
				// Most urban teachers started in the villages.
				s = pick(g, filter(others, func(s *school) bool { return s.locality == rural || s.locality == point }))
			}
			g.head("schoolStint", id(fmt.Sprintf("stint/%s/%d", t.key, i)), map[string]any{
				"teacherId": t.id, "schoolId": s.id, "startDate": ds(bounds[i]), "endDate": ds(bounds[i+1].AddDate(0, 0, -1)),
			})
		}
	}
	g.head("schoolStint", id("stint/"+t.key+"/current"), map[string]any{
		"teacherId": t.id, "schoolId": t.school.id, "startDate": ds(t.joined),
	})
}

func filter[T any](list []T, keep func(T) bool) []T {
	var out []T
	for _, x := range list {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func toAny(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

// ---- deferrals

func (g *gen) deferrals() {
	add := func(key string, t *teacher, reason, from, to string, approved bool, cert, note string) {
		f := map[string]any{"teacherId": t.id, "reason": reason, "startsOn": from, "expiresOn": to,
			"approved": approved, "note": note}
		if cert != "" {
			f["certificate"] = cert
		}
		g.head("deferral", id("deferral/"+key), f)
	}
	bySchool := func(name string, keep func(*teacher) bool) *teacher {
		t := g.pickTeacher(g.byName[name], keep)
		t.busy = true
		return t
	}
	young := func(t *teacher) bool {
		return t.position == posTeacher && t.gender == female && fullYears(t.birth, refDate) < 36
	}
	add("pregnancy", g.specials["deferred"], "PREGNANCY", "2026-05-10", "2027-08-31", true, "孕期检查证明", "预产期2026年12月")
	add("nursing", bySchool("北海小学", young), "NURSING", "2026-03-01", "2027-02-28", true, "", "哺乳期至2027年2月")
	add("medical", bySchool("西街小学", func(t *teacher) bool { return t.position == posTeacher && t.gender == male }),
		"MEDICAL", "2026-08-20", "2027-08-31", true, "新密市第一人民医院诊断证明书", "腰椎间盘突出，需定期治疗")
	add("feature", bySchool("双河五小", func(t *teacher) bool { return t.position == posTeacher && slices.Contains(t.subjects, "体育") }),
		"FEATURE_PROGRAM_LEAD", "2026-09-01", "2029-08-31", true, "", "校园足球特色课程领衔教师")
	add("retirement", bySchool("培文小学", func(t *teacher) bool { return t.position == posVice }),
		"NEAR_RETIREMENT", "2026-09-01", "2028-08-31", true, "", "距退休不满一个任期")
	add("centre", g.specials["principal-chuandi"], "CENTRE_SCHOOL_PRINCIPAL", "2026-09-01", "2027-08-31", true, "", "现任中心校校长")
	g.specials["principal-chuandi"].busy = true
	add("expired", bySchool("北海小学", young), "PREGNANCY", "2024-10-01", "2025-08-31", true, "孕期检查证明", "已到期")
	add("pending", bySchool("培文小学", func(t *teacher) bool { return t.position == posTeacher }),
		"MEDICAL", "2026-09-01", "2027-06-30", false, "", "证明材料待补交")
}

// pickTeacher picks a teacher of s that keep accepts and nobody else has claimed,
// relaxing to any unclaimed classroom teacher when none fits.
func (g *gen) pickTeacher(s *school, keep func(*teacher) bool) *teacher {
	free := filter(s.teachers, func(t *teacher) bool { return !t.busy && !t.special })
	if c := filter(free, keep); len(c) > 0 {
		return pick(g, c)
	}
	if c := filter(free, func(t *teacher) bool { return t.position == posTeacher }); len(c) > 0 {
		return pick(g, c)
	}
	panic("demo: no teacher left at " + s.name)
}

// eligible reports whether a teacher must rotate under the CHUANDI preset: at least 6
// full years at the school (10 for cadres) and within the age limit on 2026-09-01.
func eligible(t *teacher) bool {
	age, tenure := fullYears(t.birth, refDate), fullYears(t.joined, refDate)
	cadre := t.position != posTeacher
	limit := map[bool]int{true: 45, false: 50}[t.gender == female]
	if t.position == posPrincipal {
		limit = map[bool]int{true: 50, false: 55}[t.gender == female]
	}
	need := map[bool]int{true: 10, false: 6}[cadre]
	return age <= limit && tenure >= need
}
