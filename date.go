package jiaoliu

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// Date is a calendar day without a time zone (a lesson's date, a birth date). It is
// written as "2006-01-02" in JSON, GraphQL and exports. The zero Date is "no date".
type Date struct {
	t time.Time
}

// NewDate returns the Date of the given year, month and day.
func NewDate(y int, m time.Month, d int) Date {
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDate parses "2006-01-02".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// MustDate parses s and panics on error; for tests and fixed data.
func MustDate(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DateOf returns the calendar day of t in t's location.
func DateOf(t time.Time) Date { return NewDate(t.Year(), t.Month(), t.Day()) }

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d.t.IsZero() }

// Time returns midnight UTC of d.
func (d Date) Time() time.Time { return d.t }

// String returns "2006-01-02", or "" for the zero Date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	y, m, day := d.t.Date()
	if y < 1000 || y > 9999 {
		return d.t.Format(time.DateOnly)
	}
	// The rules' explanations write several dates per exchange: without Format's
	// layout parsing.
	b := [10]byte{byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10), '-',
		byte('0' + int(m)/10), byte('0' + int(m)%10), '-', byte('0' + day/10), byte('0' + day%10)}
	return string(b[:])
}

// Before reports whether d is before o.
func (d Date) Before(o Date) bool { return d.t.Before(o.t) }

// After reports whether d is after o.
func (d Date) After(o Date) bool { return d.t.After(o.t) }

// AddDays returns d moved by n days.
func (d Date) AddDays(n int) Date { return Date{d.t.AddDate(0, 0, n)} }

// AddYears returns d moved by n years (29 February moves to 1 March in common years).
func (d Date) AddYears(n int) Date { return Date{d.t.AddDate(n, 0, 0)} }

// DaysSince returns the number of days from o to d.
func (d Date) DaysSince(o Date) int { return int(d.t.Sub(o.t).Hours() / 24) }

// Year returns d's year.
func (d Date) Year() int { return d.t.Year() }

// FullYearsSince returns the number of full years from o to d (周岁 when o is a birth date).
func (d Date) FullYearsSince(o Date) int {
	years := d.t.Year() - o.t.Year()
	if d.t.Month() < o.t.Month() || (d.t.Month() == o.t.Month() && d.t.Day() < o.t.Day()) {
		years--
	}
	return years
}

// MarshalJSON implements json.Marshaler.
func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return []byte(strconv.Quote(d.String())), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Date) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("date: want a string YYYY-MM-DD")
	}
	if s == nil {
		*d = Date{}
		return nil
	}
	v, err := ParseDate(*s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalGQL implements the gqlgen Marshaler for the Date scalar.
func (d Date) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(d.String())) }

// UnmarshalGQL implements the gqlgen Unmarshaler for the Date scalar.
func (d *Date) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return Errorf(EINVALID, "a Date must be a string YYYY-MM-DD")
	}
	p, err := ParseDate(s)
	if err != nil {
		return Errorf(EINVALID, "%s", err.Error())
	}
	*d = p
	return nil
}

// Scan implements sql.Scanner for PostgreSQL date columns.
func (d *Date) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d = Date{}
	case time.Time:
		*d = NewDate(v.Year(), v.Month(), v.Day())
	case []byte:
		p, err := ParseDate(string(v[:min(len(v), 10)]))
		if err != nil {
			return err
		}
		*d = p
	case string:
		p, err := ParseDate(v[:min(len(v), 10)])
		if err != nil {
			return err
		}
		*d = p
	default:
		return fmt.Errorf("date: cannot scan %T", src)
	}
	return nil
}

// Value implements driver.Valuer; the zero Date is NULL.
func (d Date) Value() (driver.Value, error) {
	if d.IsZero() {
		return nil, nil
	}
	return d.String(), nil
}

// AcademicYear is a school year such as "2026-2027", starting on 1 September.
type AcademicYear string

// ParseAcademicYear checks the "YYYY-YYYY" form with consecutive years.
func ParseAcademicYear(s string) (AcademicYear, error) {
	if len(s) != 9 || s[4] != '-' {
		return "", fmt.Errorf("academic year %q: want YYYY-YYYY, e.g. 2026-2027", s)
	}
	a, err1 := strconv.Atoi(s[:4])
	b, err2 := strconv.Atoi(s[5:])
	if err1 != nil || err2 != nil || b != a+1 {
		return "", fmt.Errorf("academic year %q: want two consecutive years, e.g. 2026-2027", s)
	}
	return AcademicYear(s), nil
}

// Start returns the first year of the academic year.
func (y AcademicYear) Start() int {
	if len(y) < 4 {
		return 0
	}
	n, _ := strconv.Atoi(string(y[:4]))
	return n
}

// ReferenceDate returns 1 September of the first year, the day eligibility is judged on.
func (y AcademicYear) ReferenceDate() Date { return NewDate(y.Start(), time.September, 1) }

// End returns 31 August of the second year, the last day of the academic year.
func (y AcademicYear) End() Date { return NewDate(y.Start()+1, time.August, 31) }

// AcademicYearOf returns the academic year a day belongs to.
func AcademicYearOf(d Date) AcademicYear {
	y := d.Year()
	if d.t.Month() < time.September {
		y--
	}
	return academicYearFrom(y)
}

// academicYearFrom returns the academic year starting in the year y ("2026-2027"): the
// progress rules name a year several times per exchange, so the years of the calendar
// (yearCalendar) are named once.
func academicYearFrom(y int) AcademicYear {
	if c := calendarOf(y); c != nil {
		return c.name
	}
	return formatAcademicYear(y)
}

// yearCalendar is an academic year's name and semesters, computed once.
type yearCalendar struct {
	name      AcademicYear
	semesters [2]Semester
}

// The academic years named and divided once: those starting in firstCalendarYear up
// to lastCalendarYear (others are computed on each call).
const firstCalendarYear, lastCalendarYear = 1950, 2150

var calendars = sync.OnceValue(func() []yearCalendar {
	out := make([]yearCalendar, lastCalendarYear-firstCalendarYear+1)
	for i := range out {
		y := formatAcademicYear(firstCalendarYear + i)
		out[i] = yearCalendar{name: y, semesters: y.semesters()}
	}
	return out
})

// calendarOf returns the calendar of the academic year starting in y, or nil outside
// the years computed once.
func calendarOf(y int) *yearCalendar {
	if y < firstCalendarYear || y > lastCalendarYear {
		return nil
	}
	return &calendars()[y-firstCalendarYear]
}

func formatAcademicYear(y int) AcademicYear {
	var b [24]byte
	out := strconv.AppendInt(b[:0], int64(y), 10)
	out = append(out, '-')
	out = strconv.AppendInt(out, int64(y+1), 10)
	return AcademicYear(out)
}
