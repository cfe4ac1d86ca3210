package export

import (
	"fmt"
	"strings"

	"github.com/jiaoliu/jiaoliu"
)

var (
	genderNames   = map[jiaoliu.Gender]string{jiaoliu.GenderMale: "男", jiaoliu.GenderFemale: "女"}
	titleNames    = map[jiaoliu.Title]string{jiaoliu.TitleNone: "", jiaoliu.TitleSecond: "二级教师", jiaoliu.TitleFirst: "一级教师", jiaoliu.TitleSenior: "高级教师", jiaoliu.TitleProfessor: "正高级教师"}
	backboneNames = map[jiaoliu.BackboneLevel]string{jiaoliu.BackboneNone: "", jiaoliu.BackboneSchool: "校级骨干", jiaoliu.BackboneCounty: "县级骨干",
		jiaoliu.BackboneCity: "市级骨干", jiaoliu.BackboneProvince: "省级骨干", jiaoliu.BackboneNational: "国家级骨干"}
	positionNames = map[jiaoliu.Position]string{jiaoliu.PositionTeacher: "教师", jiaoliu.PositionPrincipal: "校长",
		jiaoliu.PositionVicePrincipal: "副校长", jiaoliu.PositionMiddleManager: "中层干部"}
	statusNames = map[jiaoliu.EligibilityStatus]string{jiaoliu.EligibilityMustRotate: "应交流", jiaoliu.EligibilityMayVolunteer: "可自愿申报",
		jiaoliu.EligibilityDeferred: "暂缓交流", jiaoliu.EligibilityExempt: "不在交流范围"}
	dutyStatusNames = map[jiaoliu.DutyStatus]string{jiaoliu.DutyStatusNotApplicable: "不适用", jiaoliu.DutyStatusNotStarted: "未开始",
		jiaoliu.DutyStatusComplete: "已完成", jiaoliu.DutyStatusOnTrack: "按进度", jiaoliu.DutyStatusBehind: "进度落后"}
	reportNames = map[jiaoliu.ReportState]string{jiaoliu.ReportNotApplicable: "不适用", jiaoliu.ReportNotDue: "未到到岗日期",
		jiaoliu.ReportAwaiting: "待到岗", jiaoliu.ReportWarning: "逾期未到岗（警告）", jiaoliu.ReportResignationCase: "逾期未到岗（按自动离职处理）",
		jiaoliu.ReportOnTime: "按时到岗", jiaoliu.ReportLate: "迟到岗"}
	// attendanceMarks are the marks of a day on a printed sheet.
	attendanceMarks = map[jiaoliu.AttendanceStatus]string{jiaoliu.AttendancePresent: "√", jiaoliu.AttendanceLeave: "假",
		jiaoliu.AttendanceSick: "病", jiaoliu.AttendanceAbsent: "旷"}
)

func yesNo(b bool) string {
	if b {
		return "是"
	}
	return "否"
}

// PublicListTable is the public list (公示名单) of a year's exchanges.
func PublicListTable(districtName string, y jiaoliu.AcademicYear, list []*jiaoliu.PublicListEntry) *Table {
	t := &Table{Title: fmt.Sprintf("%s%s学年交流轮岗公示名单", districtName, y),
		Header: []string{"序号", "姓名", "性别", "职务", "职称", "任教学科", "骨干教师", "派出学校", "接收学校", "交流方式",
			"开始日期", "结束日期", "个人申报", "人走关系动", "状态"}}
	for i, e := range list {
		t.Rows = append(t.Rows, []any{i + 1, e.TeacherName, genderNames[e.Gender], positionNames[e.Position], titleNames[e.Title],
			strings.Join(e.Subjects, "、"), backboneNames[e.BackboneLevel], e.SendingSchoolName, e.ReceivingSchoolName,
			jiaoliu.ExchangeModeLabel(e.Mode), e.PlannedStart.String(), e.PlannedEnd.String(), yesNo(e.Volunteer),
			yesNo(e.RelationMoves), jiaoliu.ExchangeStatusLabel(e.Status)})
	}
	return t
}

// AttendanceTable is a monthly attendance sheet (考勤表): one row per exchange, a
// column per day (√ present, 假 leave, 病 sick, 旷 absent, empty: no record) and the
// month's totals.
func AttendanceTable(title string, sheet *jiaoliu.AttendanceSheet) *Table {
	t := &Table{Title: title, Header: []string{"序号", "姓名", "派出学校", "接收学校"}}
	for d := 1; d <= sheet.Days; d++ {
		t.Header = append(t.Header, fmt.Sprintf("%d日", d))
	}
	t.Header = append(t.Header, "出勤", "事假", "病假", "旷工")
	t.Widths = []float64{6, 10, 16, 16}
	for range sheet.Days {
		t.Widths = append(t.Widths, 4.5)
	}
	for i, r := range sheet.Rows {
		row := []any{i + 1, r.TeacherName, r.SendingSchoolName, r.ReceivingSchoolName}
		for _, s := range r.Days {
			row = append(row, attendanceMarks[s])
		}
		row = append(row, r.Present, r.Leave, r.Sick, r.Absent)
		t.Rows = append(t.Rows, row)
	}
	return t
}

// ProgressTable is the progress report (交流工作进度表) of a year's exchanges.
func ProgressTable(title string, list []*jiaoliu.ExchangeProgress) *Table {
	t := &Table{Title: title, Header: []string{"序号", "姓名", "派出学校", "接收学校", "交流方式", "状态", "到岗情况",
		"示范课", "指导课", "教研活动", "送课", "评课", "听课评课", "调研报告", "周课时", "学校周平均课时", "任务进度",
		"出勤", "事假", "病假", "旷工", "最长连续旷工", "考核须定为不合格", "待考核", "逾期未考核", "已考核", "交流期限", "处理意见"}}
	for i, p := range list {
		duty := map[jiaoliu.Duty]string{}
		for _, d := range p.Duties {
			duty[d.Duty] = fmt.Sprintf("%d/%d", d.Done, d.Required)
		}
		weekly, avg := "", ""
		if p.Workload != nil {
			if p.Workload.WeeklyLessons != nil {
				weekly = fmt.Sprintf("%.2f", *p.Workload.WeeklyLessons)
			}
			avg = fmt.Sprintf("%g", p.Workload.Required)
		}
		var notes []string
		for _, c := range p.Consequences {
			notes = append(notes, c.Explanation)
		}
		length := ""
		if l := p.Length; l != nil {
			length = fmt.Sprintf("%g/%d学年，%s", float64(l.PlannedSemesters)/2, l.RequiredYears, map[bool]string{true: "符合", false: "不足"}[l.Met])
		}
		a := p.Attendance
		t.Rows = append(t.Rows, []any{i + 1, p.TeacherName, p.SendingSchoolName, p.ReceivingSchoolName, jiaoliu.ExchangeModeLabel(p.Mode),
			jiaoliu.ExchangeStatusLabel(p.Status), reportNames[p.Report.State],
			duty[jiaoliu.DutyDemonstrationLessons], duty[jiaoliu.DutyGuidanceLessons], duty[jiaoliu.DutyResearchActivities],
			duty[jiaoliu.DutyDeliveredLessons], duty[jiaoliu.DutyCritiques], duty[jiaoliu.DutyObservations], duty[jiaoliu.DutySurveyReport],
			weekly, avg, dutyStatusNames[p.DutyStatus], a.Present, a.Leave, a.Sick, a.Absent, a.LongestAbsentRun, yesNo(a.MustBeUnqualified),
			p.EvaluationsDue, p.EvaluationsOverdue, p.EvaluationsDone, length, strings.Join(notes, "；")})
	}
	return t
}

// EligibilityTable is the list of who must rotate (交流人员资格认定表).
func EligibilityTable(title string, list []*jiaoliu.Eligibility) *Table {
	t := &Table{Title: title, Header: []string{"序号", "姓名", "性别", "学校", "职务", "骨干教师", "周岁", "年龄上限", "本校年限",
		"认定结果", "暂缓原因", "暂缓截止", "本学年交流", "说明"}}
	for i, e := range list {
		reason, until, exchange := "", "", ""
		if e.DeferralReason != nil {
			reason = jiaoliu.DeferralReasonLabel(*e.DeferralReason)
		}
		if e.DeferralExpiresOn != nil {
			until = e.DeferralExpiresOn.String()
		}
		if e.ExchangeStatus != nil {
			exchange = jiaoliu.ExchangeStatusLabel(*e.ExchangeStatus)
			if e.Volunteer {
				exchange += "（个人申报）"
			}
		}
		t.Rows = append(t.Rows, []any{i + 1, e.TeacherName, genderNames[e.Gender], e.SchoolName, positionNames[e.Position],
			backboneNames[e.BackboneLevel], e.Age, e.AgeLimit, e.YearsAtSchool, statusNames[e.Status], reason, until, exchange, e.Explanation()})
	}
	return t
}
