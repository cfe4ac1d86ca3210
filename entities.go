package jiaoliu

import "time"

// Meta is the sync metadata every record carries: the version (the place of its last
// change in the change log), the tombstone flag and timestamps. Per-field HLCs are kept
// by the store beside the record and are not part of the typed view.
type Meta struct {
	Version   int64     `db:"version" json:"version"`
	Deleted   bool      `db:"deleted" json:"deleted"`
	CreatedAt time.Time `db:"created_at" json:"createdAt"`
	UpdatedAt time.Time `db:"updated_at" json:"updatedAt"`
}

// District is a county or city education bureau (区/县/市教育局) that owns schools and a
// policy per academic year.
type District struct {
	ID       string `db:"id" json:"id"`
	Name     string `db:"name" json:"name"`
	Code     string `db:"code" json:"code"`
	Province string `db:"province" json:"province"`
	Meta
}

// Zone is an optional area (片区) grouping schools of a district.
type Zone struct {
	ID         string `db:"id" json:"id"`
	DistrictID string `db:"district_id" json:"districtId"`
	Name       string `db:"name" json:"name"`
	Meta
}

// SchoolGroup is an education group (教育集团, 办学联合体) with a main campus.
type SchoolGroup struct {
	ID           string  `db:"id" json:"id"`
	DistrictID   string  `db:"district_id" json:"districtId"`
	Name         string  `db:"name" json:"name"`
	MainSchoolID *string `db:"main_school_id" json:"mainSchoolId"`
	Meta
}

// School is a school or teaching point of a district.
type School struct {
	ID                   string   `db:"id" json:"id"`
	DistrictID           string   `db:"district_id" json:"districtId"`
	ZoneID               *string  `db:"zone_id" json:"zoneId"`
	GroupID              *string  `db:"group_id" json:"groupId"`
	Name                 string   `db:"name" json:"name"`
	Locality             Locality `db:"locality" json:"locality"`
	Tier                 Tier     `db:"tier" json:"tier"`
	TierAssessedOn       *Date    `db:"tier_assessed_on" json:"tierAssessedOn"`
	Remote               bool     `db:"remote" json:"remote"`
	CentreSchool         bool     `db:"centre_school" json:"centreSchool"`
	StaffingCap          int      `db:"staffing_cap" json:"staffingCap"`
	AverageWeeklyLessons float64  `db:"average_weekly_lessons" json:"averageWeeklyLessons"`
	Meta
}

// Teacher is a teacher or school leader, with the facts the rotation rules need.
type Teacher struct {
	ID              string        `db:"id" json:"id"`
	Name            string        `db:"name" json:"name"`
	Gender          Gender        `db:"gender" json:"gender"`
	BirthDate       Date          `db:"birth_date" json:"birthDate"`
	Employed        bool          `db:"employed" json:"employed"`
	Position        Position      `db:"position" json:"position"`
	Title           Title         `db:"title" json:"title"`
	BackboneLevel   BackboneLevel `db:"backbone_level" json:"backboneLevel"`
	Honors          StringList    `db:"honors" json:"honors"`
	Subjects        StringList    `db:"subjects" json:"subjects"`
	SchoolID        string        `db:"school_id" json:"schoolId"`
	JoinedSchoolOn  Date          `db:"joined_school_on" json:"joinedSchoolOn"`
	LeadershipSince *Date         `db:"leadership_since" json:"leadershipSince"`
	Meta
}

// SchoolStint is one entry of a teacher's history of schools served.
type SchoolStint struct {
	ID        string `db:"id" json:"id"`
	TeacherID string `db:"teacher_id" json:"teacherId"`
	SchoolID  string `db:"school_id" json:"schoolId"`
	StartDate Date   `db:"start_date" json:"startDate"`
	EndDate   *Date  `db:"end_date" json:"endDate"`
	Note      string `db:"note" json:"note"`
	Meta
}

// Deferral postpones a teacher's obligation to rotate (暂缓交流) until it expires.
type Deferral struct {
	ID          string         `db:"id" json:"id"`
	TeacherID   string         `db:"teacher_id" json:"teacherId"`
	Reason      DeferralReason `db:"reason" json:"reason"`
	StartsOn    Date           `db:"starts_on" json:"startsOn"`
	ExpiresOn   Date           `db:"expires_on" json:"expiresOn"`
	Approved    bool           `db:"approved" json:"approved"`
	Certificate string         `db:"certificate" json:"certificate"`
	Note        string         `db:"note" json:"note"`
	Meta
}

// Exchange is one teacher's assignment from a sending to a receiving school.
type Exchange struct {
	ID                 string         `db:"id" json:"id"`
	TeacherID          string         `db:"teacher_id" json:"teacherId"`
	SendingSchoolID    string         `db:"sending_school_id" json:"sendingSchoolId"`
	ReceivingSchoolID  string         `db:"receiving_school_id" json:"receivingSchoolId"`
	Mode               ExchangeMode   `db:"mode" json:"mode"`
	AcademicYear       string         `db:"academic_year" json:"academicYear"`
	PlannedStart       Date           `db:"planned_start" json:"plannedStart"`
	PlannedEnd         Date           `db:"planned_end" json:"plannedEnd"`
	ReportedOn         *Date          `db:"reported_on" json:"reportedOn"`
	Status             ExchangeStatus `db:"status" json:"status"`
	Volunteer          bool           `db:"volunteer" json:"volunteer"`
	RelationMoves      bool           `db:"relation_moves" json:"relationMoves"`
	AgreementSigned    bool           `db:"agreement_signed" json:"agreementSigned"`
	RuralAllowance     float64        `db:"rural_allowance" json:"ruralAllowance"`
	TransportAllowance float64        `db:"transport_allowance" json:"transportAllowance"`
	Note               string         `db:"note" json:"note"`
	Meta
}

// Lesson is a lesson delivered by an exchange teacher (授课记录).
type Lesson struct {
	ID         string     `db:"id" json:"id"`
	ExchangeID string     `db:"exchange_id" json:"exchangeId"`
	SchoolID   *string    `db:"school_id" json:"schoolId"`
	Date       Date       `db:"date" json:"date"`
	Period     int        `db:"period" json:"period"`
	GradeLevel string     `db:"grade_level" json:"gradeLevel"`
	ClassName  string     `db:"class_name" json:"className"`
	Subject    string     `db:"subject" json:"subject"`
	Kind       LessonKind `db:"kind" json:"kind"`
	OpenLevel  *OpenLevel `db:"open_level" json:"openLevel"`
	Topic      string     `db:"topic" json:"topic"`
	Minutes    int        `db:"minutes" json:"minutes"`
	Notes      string     `db:"notes" json:"notes"`
	DeviceID   *string    `db:"device_id" json:"deviceId"`
	Meta
}

// Observation is a lesson observed and possibly critiqued (听课/评课).
type Observation struct {
	ID                string  `db:"id" json:"id"`
	ObserverID        *string `db:"observer_id" json:"observerId"`
	ObservedTeacherID string  `db:"observed_teacher_id" json:"observedTeacherId"`
	ExchangeID        *string `db:"exchange_id" json:"exchangeId"`
	LessonID          *string `db:"lesson_id" json:"lessonId"`
	Date              Date    `db:"date" json:"date"`
	Subject           string  `db:"subject" json:"subject"`
	Critique          bool    `db:"critique" json:"critique"`
	Comments          string  `db:"comments" json:"comments"`
	Rating            *int    `db:"rating" json:"rating"`
	Meta
}

// ResearchActivity is a teaching-research activity of an exchange (教研活动).
type ResearchActivity struct {
	ID         string       `db:"id" json:"id"`
	ExchangeID string       `db:"exchange_id" json:"exchangeId"`
	Date       Date         `db:"date" json:"date"`
	Kind       ResearchKind `db:"kind" json:"kind"`
	Topic      string       `db:"topic" json:"topic"`
	Notes      string       `db:"notes" json:"notes"`
	Meta
}

// Attendance is one day's attendance of an exchange teacher; one per exchange and day.
type Attendance struct {
	ID         string           `db:"id" json:"id"`
	ExchangeID string           `db:"exchange_id" json:"exchangeId"`
	Date       Date             `db:"date" json:"date"`
	Status     AttendanceStatus `db:"status" json:"status"`
	Note       string           `db:"note" json:"note"`
	Meta
}

// MentoringPair is a mentor and a mentee (师徒结对) for an academic year.
type MentoringPair struct {
	ID           string     `db:"id" json:"id"`
	MentorID     string     `db:"mentor_id" json:"mentorId"`
	MenteeID     string     `db:"mentee_id" json:"menteeId"`
	SchoolID     *string    `db:"school_id" json:"schoolId"`
	Subject      string     `db:"subject" json:"subject"`
	AcademicYear string     `db:"academic_year" json:"academicYear"`
	Goals        string     `db:"goals" json:"goals"`
	Status       PairStatus `db:"status" json:"status"`
	Meta
}

// MentoringActivity is one activity of a mentoring pair.
type MentoringActivity struct {
	ID           string        `db:"id" json:"id"`
	PairID       string        `db:"pair_id" json:"pairId"`
	Date         Date          `db:"date" json:"date"`
	Kind         MentoringKind `db:"kind" json:"kind"`
	Notes        string        `db:"notes" json:"notes"`
	RecordedByID *string       `db:"recorded_by_id" json:"recordedById"`
	Meta
}

// Evaluation is an assessment of an exchange (考核/鉴定); once finalized it is immutable.
type Evaluation struct {
	ID                string           `db:"id" json:"id"`
	ExchangeID        string           `db:"exchange_id" json:"exchangeId"`
	Period            EvaluationPeriod `db:"period" json:"period"`
	Term              string           `db:"term" json:"term"`
	EvaluatorSchoolID string           `db:"evaluator_school_id" json:"evaluatorSchoolId"`
	Conduct           *Grade           `db:"conduct" json:"conduct"`
	Attitude          *Grade           `db:"attitude" json:"attitude"`
	AttendanceGrade   *Grade           `db:"attendance_grade" json:"attendanceGrade"`
	TeachingResults   *Grade           `db:"teaching_results" json:"teachingResults"`
	Grade             *Grade           `db:"grade" json:"grade"`
	Comments          string           `db:"comments" json:"comments"`
	SendingSigned     bool             `db:"sending_signed" json:"sendingSigned"`
	ReceivingSigned   bool             `db:"receiving_signed" json:"receivingSigned"`
	Finalized         bool             `db:"finalized" json:"finalized"`
	Meta
}

// SemesterReport is an exchange teacher's written report for a semester (支教工作总结).
type SemesterReport struct {
	ID          string `db:"id" json:"id"`
	ExchangeID  string `db:"exchange_id" json:"exchangeId"`
	Term        string `db:"term" json:"term"`
	Title       string `db:"title" json:"title"`
	Content     string `db:"content" json:"content"`
	SubmittedOn *Date  `db:"submitted_on" json:"submittedOn"`
	Meta
}

// Policy holds a district's rotation rules for one academic year. Every number of the
// policy table of the domain document is a field; presets fill them for known counties.
type Policy struct {
	ID           string `db:"id" json:"id"`
	DistrictID   string `db:"district_id" json:"districtId"`
	AcademicYear string `db:"academic_year" json:"academicYear"`
	Preset       string `db:"preset" json:"preset"`
	PolicyParams
	Meta
}

// PolicyParams are the parameters of a Policy.
type PolicyParams struct {
	TenureYears             int     `db:"tenure_years" json:"tenureYears"`
	CadreTenureYears        int     `db:"cadre_tenure_years" json:"cadreTenureYears"`
	MaleAgeLimit            int     `db:"male_age_limit" json:"maleAgeLimit"`
	FemaleAgeLimit          int     `db:"female_age_limit" json:"femaleAgeLimit"`
	PrincipalMaleAgeLimit   int     `db:"principal_male_age_limit" json:"principalMaleAgeLimit"`
	PrincipalFemaleAgeLimit int     `db:"principal_female_age_limit" json:"principalFemaleAgeLimit"`
	FemaleLimitNotAboveMale bool    `db:"female_limit_not_above_male" json:"femaleLimitNotAboveMale"`
	PrincipalMaxYears       int     `db:"principal_max_years" json:"principalMaxYears"`
	QualityShare            float64 `db:"quality_share" json:"qualityShare"`
	GeneralShare            float64 `db:"general_share" json:"generalShare"`
	FirstYearShare          float64 `db:"first_year_share" json:"firstYearShare"`
	FirstYear               bool    `db:"first_year" json:"firstYear"`
	CadreShare              float64 `db:"cadre_share" json:"cadreShare"`
	BackboneShare           float64 `db:"backbone_share" json:"backboneShare"`
	MinYears                int     `db:"min_years" json:"minYears"`
	MinYearsUrbanToRural    int     `db:"min_years_urban_to_rural" json:"minYearsUrbanToRural"`
	MinYearsGroup           int     `db:"min_years_group" json:"minYearsGroup"`
	PrincipalTermYears      int     `db:"principal_term_years" json:"principalTermYears"`
	FeatureDeferralMaxYears int     `db:"feature_deferral_max_years" json:"featureDeferralMaxYears"`
	FullTimeDemonstration   int     `db:"full_time_demonstration" json:"fullTimeDemonstration"`
	FullTimeGuidance        int     `db:"full_time_guidance" json:"fullTimeGuidance"`
	FullTimeResearch        int     `db:"full_time_research" json:"fullTimeResearch"`
	DeliveryLessons         int     `db:"delivery_lessons" json:"deliveryLessons"`
	DeliveryCritiques       int     `db:"delivery_critiques" json:"deliveryCritiques"`
	SecondmentObservations  int     `db:"secondment_observations" json:"secondmentObservations"`
	SecondmentResearch      int     `db:"secondment_research" json:"secondmentResearch"`
	MentoringActivities     int     `db:"mentoring_activities" json:"mentoringActivities"`
	StaffParticipationShare float64 `db:"staff_participation_share" json:"staffParticipationShare"`
	SchoolSendShare         float64 `db:"school_send_share" json:"schoolSendShare"`
	AbsenceRunLimit         int     `db:"absence_run_limit" json:"absenceRunLimit"`
	AbsenceYearLimit        int     `db:"absence_year_limit" json:"absenceYearLimit"`
	NoShowWarningDays       int     `db:"no_show_warning_days" json:"noShowWarningDays"`
	NoShowResignationDays   int     `db:"no_show_resignation_days" json:"noShowResignationDays"`
}
