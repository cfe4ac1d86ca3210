package jiaoliu

import "context"

// Role is what a user may do.
type Role string

// Roles.
const (
	RoleTeacher       Role = "TEACHER"        // an exchange teacher; mentor or mentee through pairs
	RoleSchoolAdmin   Role = "SCHOOL_ADMIN"   // one school
	RoleDistrictAdmin Role = "DISTRICT_ADMIN" // one district
	RoleAuditor       Role = "AUDITOR"        // reads one district, changes nothing
	RoleAdmin         Role = "ADMIN"          // runs the server: every district
)

// Actor is who performs a request: a user through a web session or a device. The store
// enforces every scope rule from it.
type Actor struct {
	UserID     string
	Username   string
	Role       Role
	DistrictID string // for district admins and auditors; for school admins, their school's district
	SchoolID   string // for school admins
	TeacherID  string // the teacher record of a TEACHER user
	DeviceID   string // set when the request comes from a device
	SessionID  string // the token id of a web session
	// ReadTokens caches the scope tokens the actor reads with, filled by the store when
	// it authenticates the actor (or on first use in a request).
	ReadTokens []string
	// System is the server itself (migrations, demo data, tests of the store): no scope.
	System bool
}

// SystemActor is the server acting on its own behalf.
var SystemActor = &Actor{System: true, Username: "system"}

type actorKey struct{}

// NewContextWithActor returns a context carrying actor.
func NewContextWithActor(ctx context.Context, actor *Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFromContext returns the actor of ctx, or nil if the request is unauthenticated.
func ActorFromContext(ctx context.Context) *Actor {
	a, _ := ctx.Value(actorKey{}).(*Actor)
	return a
}

// IsAdmin reports whether the actor administers a school or district.
func (a *Actor) IsAdmin() bool {
	return a.System || a.Role == RoleSchoolAdmin || a.Role == RoleDistrictAdmin
}

// WatchedDevice is what live sync activity says of a device, and who may watch it: the
// district and school scope tokens of its user.
type WatchedDevice struct {
	Name     string
	UserID   string
	Username string
	Scopes   []string
}
