package jiaoliu

import "io"

// GraphQL marshalling of the enum types, one pair of methods per type.

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Locality) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Locality"].
func (e *Locality) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Locality", v)
	*e = Locality(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Tier) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Tier"].
func (e *Tier) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Tier", v)
	*e = Tier(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Gender) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Gender"].
func (e *Gender) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Gender", v)
	*e = Gender(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Position) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Position"].
func (e *Position) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Position", v)
	*e = Position(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Title) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Title"].
func (e *Title) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Title", v)
	*e = Title(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e BackboneLevel) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["BackboneLevel"].
func (e *BackboneLevel) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("BackboneLevel", v)
	*e = BackboneLevel(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e DeferralReason) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["DeferralReason"].
func (e *DeferralReason) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("DeferralReason", v)
	*e = DeferralReason(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e ExchangeMode) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["ExchangeMode"].
func (e *ExchangeMode) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("ExchangeMode", v)
	*e = ExchangeMode(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e ExchangeStatus) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["ExchangeStatus"].
func (e *ExchangeStatus) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("ExchangeStatus", v)
	*e = ExchangeStatus(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e LessonKind) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["LessonKind"].
func (e *LessonKind) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("LessonKind", v)
	*e = LessonKind(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e OpenLevel) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["OpenLevel"].
func (e *OpenLevel) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("OpenLevel", v)
	*e = OpenLevel(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e ResearchKind) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["ResearchKind"].
func (e *ResearchKind) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("ResearchKind", v)
	*e = ResearchKind(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e PairStatus) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["PairStatus"].
func (e *PairStatus) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("PairStatus", v)
	*e = PairStatus(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e MentoringKind) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["MentoringKind"].
func (e *MentoringKind) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("MentoringKind", v)
	*e = MentoringKind(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e AttendanceStatus) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["AttendanceStatus"].
func (e *AttendanceStatus) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("AttendanceStatus", v)
	*e = AttendanceStatus(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e EvaluationPeriod) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["EvaluationPeriod"].
func (e *EvaluationPeriod) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("EvaluationPeriod", v)
	*e = EvaluationPeriod(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Grade) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Grade"].
func (e *Grade) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Grade", v)
	*e = Grade(s)
	return err
}

// MarshalGQL writes the enum value as a GraphQL enum.
func (e Role) MarshalGQL(w io.Writer) { marshalEnum(w, string(e)) }

// UnmarshalGQL reads a GraphQL enum value, refusing values not in Enums["Role"].
func (e *Role) UnmarshalGQL(v any) error {
	s, err := unmarshalEnum("Role", v)
	*e = Role(s)
	return err
}
