package jiaoliu

import (
	"io"
	"slices"
	"strings"
)

// ruleEnums lists the values of the enums of the policy rules (outputs of the rules,
// not fields of the write path), keyed by GraphQL name.
var ruleEnums = map[string][]string{
	"EligibilityStatus": {"MUST_ROTATE", "MAY_VOLUNTEER", "DEFERRED", "EXEMPT"},
	"EligibilityRule":   {"NOT_EMPLOYED", "DEFERRAL", "ABOVE_AGE_LIMIT", "PRINCIPAL_TERM", "CADRE_TENURE", "TENURE", "TENURE_NOT_REACHED"},
	"TargetBasis":       {"QUALITY", "URBAN", "GENERAL", "FIRST_YEAR", "NONE"},
	"Duty":              {"DEMONSTRATION_LESSONS", "GUIDANCE_LESSONS", "RESEARCH_ACTIVITIES", "DELIVERED_LESSONS", "CRITIQUES", "OBSERVATIONS", "SURVEY_REPORT"},
	"DutyStatus":        {"NOT_APPLICABLE", "NOT_STARTED", "COMPLETE", "ON_TRACK", "BEHIND"},
	"ReportState":       {"NOT_APPLICABLE", "NOT_DUE", "AWAITING", "WARNING", "RESIGNATION_CASE", "ON_TIME", "LATE"},
	"EvaluationState":   {"UPCOMING", "DUE", "OVERDUE", "DONE"},
	"ConsequenceKind":   {"EXCHANGE_AGAIN", "CONTRACT_ENDED", "NO_AWARD_OR_PROMOTION", "ANNUAL_GRADE_BELOW_QUALIFIED", "MUST_BE_UNQUALIFIED", "NO_SHOW_WARNING", "RESIGNATION_CASE"},
	"AlertSeverity":     {"CRITICAL", "WARNING", "NOTICE"},
}

func unmarshalRuleEnum(name string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", Errorf(EINVALID, "%s: want a string", name)
	}
	if !slices.Contains(ruleEnums[name], s) {
		return "", Errorf(EINVALID, "%s: %q is not one of %s", name, s, strings.Join(ruleEnums[name], ", "))
	}
	return s, nil
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e EligibilityStatus) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *EligibilityStatus) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("EligibilityStatus", v)
	*e = EligibilityStatus(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e EligibilityRule) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *EligibilityRule) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("EligibilityRule", v)
	*e = EligibilityRule(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e TargetBasis) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *TargetBasis) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("TargetBasis", v)
	*e = TargetBasis(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Duty) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *Duty) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("Duty", v)
	*e = Duty(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e DutyStatus) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *DutyStatus) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("DutyStatus", v)
	*e = DutyStatus(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e ReportState) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *ReportState) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("ReportState", v)
	*e = ReportState(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e EvaluationState) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *EvaluationState) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("EvaluationState", v)
	*e = EvaluationState(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e ConsequenceKind) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *ConsequenceKind) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("ConsequenceKind", v)
	*e = ConsequenceKind(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e AlertSeverity) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value.
func (e *AlertSeverity) UnmarshalGQL(v any) error {
	s, err := unmarshalRuleEnum("AlertSeverity", v)
	*e = AlertSeverity(s)
	return err
}
