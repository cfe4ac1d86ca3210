package jiaoliu

import (
	"io"
	"slices"
	"strconv"
	"strings"
)

// Enumerations of the domain. Each is a string type whose values are the GraphQL enum
// values; the Values lists are the single source for validation in every adapter.

// Locality is where a school is: 城区, 镇, 农村 or 教学点.
type Locality string

// Localities of schools.
const (
	LocalityUrban         Locality = "URBAN"
	LocalityTown          Locality = "TOWN"
	LocalityRural         Locality = "RURAL"
	LocalityTeachingPoint Locality = "TEACHING_POINT"
)

// Tier is a school's assessed quality: 优质, 一般 or 薄弱.
type Tier string

// Tiers of schools.
const (
	TierQuality Tier = "QUALITY"
	TierGeneral Tier = "GENERAL"
	TierWeak    Tier = "WEAK"
)

// Gender of a teacher; age limits differ by gender.
type Gender string

// Genders.
const (
	GenderMale   Gender = "MALE"
	GenderFemale Gender = "FEMALE"
)

// Position is a teacher's post; cadres (principals, managers) follow their own rules.
type Position string

// Positions.
const (
	PositionTeacher       Position = "TEACHER"
	PositionPrincipal     Position = "PRINCIPAL"
	PositionVicePrincipal Position = "VICE_PRINCIPAL"
	PositionMiddleManager Position = "MIDDLE_MANAGER"
)

// Title is a professional title (职称).
type Title string

// Titles, lowest first.
const (
	TitleNone      Title = "NONE"
	TitleSecond    Title = "SECOND_LEVEL" // 二级
	TitleFirst     Title = "FIRST_LEVEL"  // 一级
	TitleSenior    Title = "SENIOR"       // 高级
	TitleProfessor Title = "PROFESSOR"    // 正高级
)

// BackboneLevel is the level of a backbone-teacher designation (骨干教师).
type BackboneLevel string

// Backbone levels, lowest first.
const (
	BackboneNone     BackboneLevel = "NONE"
	BackboneSchool   BackboneLevel = "SCHOOL"
	BackboneCounty   BackboneLevel = "COUNTY"
	BackboneCity     BackboneLevel = "CITY"
	BackboneProvince BackboneLevel = "PROVINCE"
	BackboneNational BackboneLevel = "NATIONAL"
)

// DeferralReason is why a teacher's rotation is deferred (暂缓交流).
type DeferralReason string

// Deferral reasons.
const (
	DeferralPregnancy          DeferralReason = "PREGNANCY"
	DeferralNursing            DeferralReason = "NURSING"
	DeferralMedical            DeferralReason = "MEDICAL"
	DeferralFeatureProgramLead DeferralReason = "FEATURE_PROGRAM_LEAD"
	DeferralNearRetirement     DeferralReason = "NEAR_RETIREMENT"
	DeferralCentreSchoolHead   DeferralReason = "CENTRE_SCHOOL_PRINCIPAL"
)

// ExchangeMode is how a teacher serves the receiving school.
type ExchangeMode string

// Exchange modes.
const (
	ModeFullTime       ExchangeMode = "FULL_TIME"
	ModeLessonDelivery ExchangeMode = "LESSON_DELIVERY"
	ModeSecondment     ExchangeMode = "SECONDMENT"
	ModeItinerant      ExchangeMode = "ITINERANT"
	ModeGroupInternal  ExchangeMode = "GROUP_INTERNAL"
	ModePairedSupport  ExchangeMode = "PAIRED_SUPPORT"
)

// ExchangeStatus is where an exchange stands in its workflow.
type ExchangeStatus string

// Exchange statuses.
const (
	StatusProposed   ExchangeStatus = "PROPOSED"
	StatusApproved   ExchangeStatus = "APPROVED"
	StatusPublished  ExchangeStatus = "PUBLISHED"
	StatusActive     ExchangeStatus = "ACTIVE"
	StatusCompleted  ExchangeStatus = "COMPLETED"
	StatusDeferred   ExchangeStatus = "DEFERRED"
	StatusRefused    ExchangeStatus = "REFUSED"
	StatusCancelled  ExchangeStatus = "CANCELLED"
	StatusTerminated ExchangeStatus = "TERMINATED"
)

// exchangeTransitions lists, for each status, the statuses it may move to. COMPLETED,
// CANCELLED and TERMINATED are final; a DEFERRED exchange may be proposed again.
var exchangeTransitions = map[ExchangeStatus][]ExchangeStatus{
	StatusProposed:  {StatusApproved, StatusDeferred, StatusRefused, StatusCancelled},
	StatusApproved:  {StatusPublished, StatusDeferred, StatusRefused, StatusCancelled},
	StatusPublished: {StatusActive, StatusDeferred, StatusRefused, StatusCancelled},
	StatusActive:    {StatusCompleted, StatusTerminated},
	StatusDeferred:  {StatusProposed, StatusCancelled},
	StatusRefused:   {StatusCancelled},
}

// CanTransition reports whether an exchange may move from one status to another.
// Staying in the same status is always allowed.
func CanTransition(from, to ExchangeStatus) bool {
	return from == to || slices.Contains(exchangeTransitions[from], to)
}

// AllowedTransitions returns the statuses an exchange in status s may move to.
func AllowedTransitions(s ExchangeStatus) []ExchangeStatus {
	return slices.Clone(exchangeTransitions[s])
}

// CountsAsRotating reports whether an exchange in this status counts towards a
// school's rotating count (APPROVED, PUBLISHED, ACTIVE, COMPLETED).
func (s ExchangeStatus) CountsAsRotating() bool {
	switch s {
	case StatusApproved, StatusPublished, StatusActive, StatusCompleted:
		return true
	}
	return false
}

// LessonKind is the kind of a lesson delivered.
type LessonKind string

// Lesson kinds.
const (
	LessonRegular       LessonKind = "REGULAR"
	LessonDemonstration LessonKind = "DEMONSTRATION" // 示范课
	LessonGuidance      LessonKind = "GUIDANCE"      // 指导课
	LessonOpen          LessonKind = "OPEN"          // 公开课
	LessonLecture       LessonKind = "LECTURE"       // 讲座
	LessonDelivered     LessonKind = "DELIVERED"     // 送课
)

// OpenLevel is the level of an open lesson (公开课).
type OpenLevel string

// Open lesson levels.
const (
	OpenSchool OpenLevel = "SCHOOL"
	OpenTown   OpenLevel = "TOWN"
	OpenCounty OpenLevel = "COUNTY"
)

// ResearchKind is the kind of a research activity (教研活动).
type ResearchKind string

// Research activity kinds.
const (
	ResearchJointPreparation ResearchKind = "JOINT_PREPARATION" // 集体备课
	ResearchGroupActivity    ResearchKind = "GROUP_ACTIVITY"    // 教研组活动
	ResearchLecture          ResearchKind = "LECTURE"           // 专题讲座
	ResearchSurvey           ResearchKind = "SURVEY"            // 调研
)

// PairStatus is the status of a mentoring pair.
type PairStatus string

// Mentoring pair statuses.
const (
	PairActive PairStatus = "ACTIVE"
	PairEnded  PairStatus = "ENDED"
)

// MentoringKind is the kind of a mentoring activity.
type MentoringKind string

// Mentoring activity kinds.
const (
	MentoringObserve          MentoringKind = "OBSERVE"           // 听课
	MentoringLessonTalk       MentoringKind = "LESSON_TALK"       // 说课
	MentoringCritique         MentoringKind = "CRITIQUE"          // 评课
	MentoringJointPreparation MentoringKind = "JOINT_PREPARATION" // 集体备课
	MentoringResearch         MentoringKind = "RESEARCH"          // 教研
)

// AttendanceStatus is a day's attendance of an exchange teacher.
type AttendanceStatus string

// Attendance statuses.
const (
	AttendancePresent AttendanceStatus = "PRESENT"
	AttendanceLeave   AttendanceStatus = "LEAVE"
	AttendanceSick    AttendanceStatus = "SICK"
	AttendanceAbsent  AttendanceStatus = "ABSENT"
)

// EvaluationPeriod is what an evaluation covers.
type EvaluationPeriod string

// Evaluation periods.
const (
	PeriodSemester      EvaluationPeriod = "SEMESTER"
	PeriodAnnual        EvaluationPeriod = "ANNUAL"
	PeriodEndOfExchange EvaluationPeriod = "END_OF_EXCHANGE"
)

// Grade is an evaluation grade.
type Grade string

// Grades, best first.
const (
	GradeExcellent   Grade = "EXCELLENT"
	GradeQualified   Grade = "QUALIFIED"
	GradeBasic       Grade = "BASIC"
	GradeUnqualified Grade = "UNQUALIFIED"
)

// Enums maps each enum's GraphQL name to its values, in declaration order.
var Enums = map[string][]string{
	"Locality":         {"URBAN", "TOWN", "RURAL", "TEACHING_POINT"},
	"Tier":             {"QUALITY", "GENERAL", "WEAK"},
	"Gender":           {"MALE", "FEMALE"},
	"Position":         {"TEACHER", "PRINCIPAL", "VICE_PRINCIPAL", "MIDDLE_MANAGER"},
	"Title":            {"NONE", "SECOND_LEVEL", "FIRST_LEVEL", "SENIOR", "PROFESSOR"},
	"BackboneLevel":    {"NONE", "SCHOOL", "COUNTY", "CITY", "PROVINCE", "NATIONAL"},
	"DeferralReason":   {"PREGNANCY", "NURSING", "MEDICAL", "FEATURE_PROGRAM_LEAD", "NEAR_RETIREMENT", "CENTRE_SCHOOL_PRINCIPAL"},
	"ExchangeMode":     {"FULL_TIME", "LESSON_DELIVERY", "SECONDMENT", "ITINERANT", "GROUP_INTERNAL", "PAIRED_SUPPORT"},
	"ExchangeStatus":   {"PROPOSED", "APPROVED", "PUBLISHED", "ACTIVE", "COMPLETED", "DEFERRED", "REFUSED", "CANCELLED", "TERMINATED"},
	"LessonKind":       {"REGULAR", "DEMONSTRATION", "GUIDANCE", "OPEN", "LECTURE", "DELIVERED"},
	"OpenLevel":        {"SCHOOL", "TOWN", "COUNTY"},
	"ResearchKind":     {"JOINT_PREPARATION", "GROUP_ACTIVITY", "LECTURE", "SURVEY"},
	"PairStatus":       {"ACTIVE", "ENDED"},
	"MentoringKind":    {"OBSERVE", "LESSON_TALK", "CRITIQUE", "JOINT_PREPARATION", "RESEARCH"},
	"AttendanceStatus": {"PRESENT", "LEAVE", "SICK", "ABSENT"},
	"EvaluationPeriod": {"SEMESTER", "ANNUAL", "END_OF_EXCHANGE"},
	"Grade":            {"EXCELLENT", "QUALIFIED", "BASIC", "UNQUALIFIED"},
	"Role":             {"TEACHER", "SCHOOL_ADMIN", "DISTRICT_ADMIN", "AUDITOR", "ADMIN"},
}

func unmarshalEnum(name string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", Errorf(EINVALID, "%s: want a string", name)
	}
	if !slices.Contains(Enums[name], s) {
		return "", Errorf(EINVALID, "%s: %q is not one of %s", name, s, strings.Join(Enums[name], ", "))
	}
	return s, nil
}

func marshalEnum(w io.Writer, s string) { _, _ = io.WriteString(w, strconv.Quote(s)) }
