package jiaoliu

import (
	"fmt"
	"slices"
)

func num(f float64) *float64 { return &f }

func str(name string, required bool) FieldDef {
	return FieldDef{Name: name, Kind: KindString, Required: required}
}
func text(name string) FieldDef { return FieldDef{Name: name, Kind: KindText} }
func date(name string, required bool) FieldDef {
	return FieldDef{Name: name, Kind: KindDate, Required: required, Nullable: !required}
}
func ref(name, entity string, required bool) FieldDef {
	return FieldDef{Name: name, Kind: KindID, Ref: entity, Required: required, Nullable: !required}
}
func enum(name, enum string, required bool) FieldDef {
	return FieldDef{Name: name, Kind: KindEnum, Enum: enum, Required: required}
}
func optEnum(name, enum string) FieldDef {
	return FieldDef{Name: name, Kind: KindEnum, Enum: enum, Nullable: true}
}
func boolean(name string) FieldDef { return FieldDef{Name: name, Kind: KindBool} }
func integer(name string, required bool, lo, hi float64) FieldDef {
	return FieldDef{Name: name, Kind: KindInt, Required: required, Min: num(lo), Max: num(hi)}
}
func optInt(name string, lo, hi float64) FieldDef {
	return FieldDef{Name: name, Kind: KindInt, Nullable: true, Min: num(lo), Max: num(hi)}
}
func float(name string, lo, hi float64) FieldDef {
	return FieldDef{Name: name, Kind: KindFloat, Min: num(lo), Max: num(hi)}
}
func list(name string) FieldDef { return FieldDef{Name: name, Kind: KindStrings} }

// Entities lists every entity of the write path, keyed by sync name. The order of
// EntityOrder is the order in which parents precede children.
var Entities = map[string]*Entity{}

// EntityOrder lists the entity names with parents before children.
var EntityOrder []string

func register(e *Entity) *Entity {
	for i, f := range e.Fields {
		e.Fields[i].column = SnakeCase(f.Name)
		if f.Kind == KindID && f.Ref != "" {
			e.refs = append(e.refs, e.Fields[i])
		}
	}
	Entities[e.Name] = e
	EntityOrder = append(EntityOrder, e.Name)
	return e
}

// EntityByType returns the entity whose GraphQL type name is typ.
func EntityByType(typ string) *Entity {
	for _, e := range Entities {
		if e.Type == typ {
			return e
		}
	}
	return nil
}

// The entities of the domain.
var (
	DistrictEntity = register(&Entity{Name: "district", Type: "District", Table: "districts",
		Fields:   []FieldDef{str("name", true), str("code", false), str("province", false)},
		Validate: func(old, r Record, fe FieldErrors) error { return nil }})

	ZoneEntity = register(&Entity{Name: "zone", Type: "Zone", Table: "zones",
		Fields:   []FieldDef{ref("districtId", "district", true), str("name", true)},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "districtId") }})

	SchoolGroupEntity = register(&Entity{Name: "schoolGroup", Type: "SchoolGroup", Table: "school_groups",
		Fields:   []FieldDef{ref("districtId", "district", true), str("name", true), ref("mainSchoolId", "school", false)},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "districtId") }})

	SchoolEntity = register(&Entity{Name: "school", Type: "School", Table: "schools",
		Fields: []FieldDef{
			ref("districtId", "district", true), ref("zoneId", "zone", false), ref("groupId", "schoolGroup", false),
			str("name", true), enum("locality", "Locality", true), enum("tier", "Tier", true),
			date("tierAssessedOn", false), boolean("remote"), boolean("centreSchool"),
			integer("staffingCap", false, 0, 100000), float("averageWeeklyLessons", 0, 60),
		},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "districtId") }})

	TeacherEntity = register(&Entity{Name: "teacher", Type: "Teacher", Table: "teachers",
		Fields: []FieldDef{
			str("name", true), enum("gender", "Gender", true), date("birthDate", true), boolean("employed"),
			enum("position", "Position", false), enum("title", "Title", false), enum("backboneLevel", "BackboneLevel", false),
			list("honors"), list("subjects"), ref("schoolId", "school", true), date("joinedSchoolOn", true),
			date("leadershipSince", false),
		},
		Validate: validateTeacher})

	SchoolStintEntity = register(&Entity{Name: "schoolStint", Type: "SchoolStint", Table: "school_stints",
		Fields: []FieldDef{ref("teacherId", "teacher", true), ref("schoolId", "school", true),
			date("startDate", true), date("endDate", false), text("note")},
		Validate: func(old, r Record, fe FieldErrors) error {
			dateOrder(r, fe, "startDate", "endDate")
			return nil
		}})

	DeferralEntity = register(&Entity{Name: "deferral", Type: "Deferral", Table: "deferrals",
		Fields: []FieldDef{ref("teacherId", "teacher", true), enum("reason", "DeferralReason", true),
			date("startsOn", true), date("expiresOn", true), boolean("approved"), str("certificate", false), text("note")},
		Validate: validateDeferral})

	ExchangeEntity = register(&Entity{Name: "exchange", Type: "Exchange", Table: "exchanges",
		Fields: []FieldDef{
			ref("teacherId", "teacher", true), ref("sendingSchoolId", "school", true), ref("receivingSchoolId", "school", true),
			enum("mode", "ExchangeMode", true), str("academicYear", true), date("plannedStart", true), date("plannedEnd", true),
			date("reportedOn", false), enum("status", "ExchangeStatus", false), boolean("volunteer"),
			boolean("relationMoves"), boolean("agreementSigned"),
			float("ruralAllowance", 0, 100000), float("transportAllowance", 0, 100000), text("note"),
		},
		Validate: validateExchange})

	LessonEntity = register(&Entity{Name: "lesson", Type: "Lesson", Table: "lessons", DeviceWritable: true,
		NaturalKey: []string{"exchangeId", "date", "period"},
		Fields: []FieldDef{
			ref("exchangeId", "exchange", true), ref("schoolId", "school", false), date("date", true),
			integer("period", true, 1, 12), str("gradeLevel", false), str("className", false), str("subject", true),
			enum("kind", "LessonKind", true), optEnum("openLevel", "OpenLevel"), str("topic", false),
			integer("minutes", false, 0, 600), text("notes"), ref("deviceId", "", false),
		},
		Validate: validateLesson})

	ObservationEntity = register(&Entity{Name: "observation", Type: "Observation", Table: "observations", DeviceWritable: true,
		Fields: []FieldDef{
			ref("observerId", "teacher", false), ref("observedTeacherId", "teacher", true), ref("exchangeId", "exchange", false),
			ref("lessonId", "lesson", false), date("date", true), str("subject", false), boolean("critique"),
			text("comments"), optInt("rating", 1, 5),
		},
		Validate: func(old, r Record, fe FieldErrors) error {
			if o := r.String("observerId"); o != "" && o == r.String("observedTeacherId") {
				fe.Add("observedTeacherId", "must differ from the observer")
			}
			return nil
		}})

	ResearchActivityEntity = register(&Entity{Name: "researchActivity", Type: "ResearchActivity", Table: "research_activities", DeviceWritable: true,
		Fields: []FieldDef{ref("exchangeId", "exchange", true), date("date", true), enum("kind", "ResearchKind", true),
			str("topic", false), text("notes")},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "exchangeId") }})

	AttendanceEntity = register(&Entity{Name: "attendance", Type: "Attendance", Table: "attendance", DeviceWritable: true,
		NaturalKey: []string{"exchangeId", "date"},
		Fields: []FieldDef{ref("exchangeId", "exchange", true), date("date", true),
			enum("status", "AttendanceStatus", true), str("note", false)},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "exchangeId") }})

	MentoringPairEntity = register(&Entity{Name: "mentoringPair", Type: "MentoringPair", Table: "mentoring_pairs", DeviceWritable: true,
		Fields: []FieldDef{ref("mentorId", "teacher", true), ref("menteeId", "teacher", true), ref("schoolId", "school", false),
			str("subject", true), str("academicYear", true), text("goals"), enum("status", "PairStatus", false)},
		Validate: func(old, r Record, fe FieldErrors) error {
			if r.String("mentorId") == r.String("menteeId") {
				fe.Add("menteeId", "must differ from the mentor")
			}
			academicYear(r, fe, "academicYear")
			return nil
		}})

	MentoringActivityEntity = register(&Entity{Name: "mentoringActivity", Type: "MentoringActivity", Table: "mentoring_activities", DeviceWritable: true,
		Fields: []FieldDef{ref("pairId", "mentoringPair", true), date("date", true), enum("kind", "MentoringKind", true),
			text("notes"), ref("recordedById", "teacher", false)},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "pairId") }})

	EvaluationEntity = register(&Entity{Name: "evaluation", Type: "Evaluation", Table: "evaluations",
		NaturalKey: []string{"exchangeId", "period", "term", "evaluatorSchoolId"},
		Fields: []FieldDef{
			ref("exchangeId", "exchange", true), enum("period", "EvaluationPeriod", true), str("term", true),
			ref("evaluatorSchoolId", "school", true),
			optEnum("conduct", "Grade"), optEnum("attitude", "Grade"), optEnum("attendanceGrade", "Grade"),
			optEnum("teachingResults", "Grade"), optEnum("grade", "Grade"), text("comments"),
			boolean("sendingSigned"), boolean("receivingSigned"), boolean("finalized"),
		},
		Validate: validateEvaluation})

	SemesterReportEntity = register(&Entity{Name: "semesterReport", Type: "SemesterReport", Table: "semester_reports", DeviceWritable: true,
		Fields: []FieldDef{ref("exchangeId", "exchange", true), str("term", true), str("title", false),
			FieldDef{Name: "content", Kind: KindText, Required: true}, date("submittedOn", false)},
		Validate: func(old, r Record, fe FieldErrors) error { return immutable(old, r, fe, "exchangeId") }})

	PolicyEntity = register(&Entity{Name: "policy", Type: "Policy", Table: "policies",
		NaturalKey: []string{"districtId", "academicYear"},
		Fields: append([]FieldDef{ref("districtId", "district", true), str("academicYear", true), str("preset", false)},
			policyFields...),
		Validate: validatePolicy})
)

var policyFields = []FieldDef{
	integer("tenureYears", false, 1, 40), integer("cadreTenureYears", false, 1, 40),
	integer("maleAgeLimit", false, 18, 70), integer("femaleAgeLimit", false, 18, 70),
	integer("principalMaleAgeLimit", false, 18, 70), integer("principalFemaleAgeLimit", false, 18, 70),
	boolean("femaleLimitNotAboveMale"), integer("principalMaxYears", false, 1, 40),
	float("qualityShare", 0, 100), float("generalShare", 0, 100), float("firstYearShare", 0, 100), boolean("firstYear"),
	float("cadreShare", 0, 100), float("backboneShare", 0, 100),
	integer("minYears", false, 0, 10), integer("minYearsUrbanToRural", false, 0, 10), integer("minYearsGroup", false, 0, 10),
	integer("principalTermYears", false, 0, 10), integer("featureDeferralMaxYears", false, 0, 10),
	integer("fullTimeDemonstration", false, 0, 100), integer("fullTimeGuidance", false, 0, 100),
	integer("fullTimeResearch", false, 0, 100), integer("deliveryLessons", false, 0, 100),
	integer("deliveryCritiques", false, 0, 100), integer("secondmentObservations", false, 0, 100),
	integer("secondmentResearch", false, 0, 100), integer("mentoringActivities", false, 0, 100),
	float("staffParticipationShare", 0, 100), float("schoolSendShare", 0, 100),
	integer("absenceRunLimit", false, 0, 366), integer("absenceYearLimit", false, 0, 366),
	integer("noShowWarningDays", false, 0, 366), integer("noShowResignationDays", false, 0, 366),
}

// immutable rejects a change to any of the named fields of an existing record: moving
// a record to another parent would move it out of the scope it was authorized in.
func immutable(old, r Record, fe FieldErrors, names ...string) error {
	if old == nil {
		return nil
	}
	for _, n := range names {
		if !FieldValueEqual(old[n], r[n]) {
			fe.Add(n, "cannot be changed once set")
		}
	}
	return nil
}

func dateOrder(r Record, fe FieldErrors, first, second string) {
	a, b := r.Date(first), r.Date(second)
	if !a.IsZero() && !b.IsZero() && b.Before(a) {
		fe.Add(second, fmt.Sprintf("must not be before %s", first))
	}
}

func academicYear(r Record, fe FieldErrors, name string) {
	if _, err := ParseAcademicYear(r.String(name)); err != nil {
		fe.Add(name, "must be an academic year such as 2026-2027")
	}
}

func validateTeacher(old, r Record, fe FieldErrors) error {
	birth, joined := r.Date("birthDate"), r.Date("joinedSchoolOn")
	if !birth.IsZero() && !joined.IsZero() && joined.FullYearsSince(birth) < 16 {
		fe.Add("joinedSchoolOn", "must be at least 16 years after the birth date")
	}
	return nil
}

func validateDeferral(old, r Record, fe FieldErrors) error {
	dateOrder(r, fe, "startsOn", "expiresOn")
	if r.String("reason") == string(DeferralFeatureProgramLead) {
		if max := r.Date("startsOn").AddYears(3); r.Date("expiresOn").After(max) {
			fe.Add("expiresOn", "a feature-program deferral lasts at most 3 years")
		}
	}
	return immutable(old, r, fe, "teacherId")
}

func validateExchange(old, r Record, fe FieldErrors) error {
	if r.String("sendingSchoolId") == r.String("receivingSchoolId") {
		fe.Add("receivingSchoolId", "must differ from the sending school")
	}
	academicYear(r, fe, "academicYear")
	if s, e := r.Date("plannedStart"), r.Date("plannedEnd"); !s.IsZero() && !e.IsZero() && !e.After(s) {
		fe.Add("plannedEnd", "must be after plannedStart")
	}
	to := ExchangeStatus(r.String("status"))
	if old != nil {
		from := ExchangeStatus(old.String("status"))
		if !CanTransition(from, to) {
			allowed := AllowedTransitions(from)
			msg := fmt.Sprintf("cannot move from %s to %s", from, to)
			if len(allowed) > 0 {
				msg += fmt.Sprintf(" (allowed: %v)", allowed)
			} else {
				msg += fmt.Sprintf(" (%s is final)", from)
			}
			fe.Add("status", msg)
		}
		if err := immutable(old, r, fe, "teacherId"); err != nil {
			return err
		}
	} else if to != StatusProposed && to != StatusApproved {
		fe.Add("status", "a new exchange starts as PROPOSED or APPROVED")
	}
	if (to == StatusActive || to == StatusCompleted) && r.Date("reportedOn").IsZero() {
		fe.Add("reportedOn", fmt.Sprintf("is required for status %s (the day the teacher reported for duty)", to))
	}
	return nil
}

func validateLesson(old, r Record, fe FieldErrors) error {
	if r.String("kind") == string(LessonOpen) && r["openLevel"] == nil {
		fe.Add("openLevel", "is required for an open lesson (SCHOOL, TOWN or COUNTY)")
	}
	if r.String("subject") == "" {
		fe.Add("subject", "is required")
	}
	return immutable(old, r, fe, "exchangeId")
}

func validateEvaluation(old, r Record, fe FieldErrors) error {
	if old != nil && old.Bool("finalized") {
		return Errorf(ELOCKED, "the evaluation is finalized and cannot change")
	}
	if r.Bool("finalized") {
		if r["grade"] == nil {
			fe.Add("grade", "is required to finalize an evaluation")
		}
		if r.String("period") == string(PeriodEndOfExchange) && !(r.Bool("sendingSigned") && r.Bool("receivingSigned")) {
			fe.Add("finalized", "an end-of-exchange evaluation needs both schools' signatures")
		}
	}
	return immutable(old, r, fe, "exchangeId")
}

func validatePolicy(old, r Record, fe FieldErrors) error {
	academicYear(r, fe, "academicYear")
	if r.Bool("femaleLimitNotAboveMale") {
		if f, m := r.Float("femaleAgeLimit"), r.Float("maleAgeLimit"); f > m {
			fe.Add("femaleAgeLimit", "must not be above the male age limit in this county")
		}
		if f, m := r.Float("principalFemaleAgeLimit"), r.Float("principalMaleAgeLimit"); f > m {
			fe.Add("principalFemaleAgeLimit", "must not be above the principals' male age limit in this county")
		}
	}
	if preset := r.String("preset"); preset != "" && !slices.Contains(PresetNames(), preset) {
		fe.Add("preset", fmt.Sprintf("unknown preset (known: %v)", PresetNames()))
	}
	return immutable(old, r, fe, "districtId", "academicYear")
}
