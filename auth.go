package jiaoliu

import (
	"context"
	"time"
)

// User is a person who signs in: a teacher, a school or district administrator, or an
// auditor. A TEACHER user is linked to a teacher record.
type User struct {
	ID          string    `db:"id" json:"id"`
	Username    string    `db:"username" json:"username"`
	DisplayName string    `db:"display_name" json:"displayName"`
	Role        Role      `db:"role" json:"role"`
	DistrictID  *string   `db:"district_id" json:"districtId"`
	SchoolID    *string   `db:"school_id" json:"schoolId"`
	TeacherID   *string   `db:"teacher_id" json:"teacherId"`
	Disabled    bool      `db:"disabled" json:"disabled"`
	CreatedAt   time.Time `db:"created_at" json:"createdAt"`
}

// Device is a tablet or phone registered to act for a user in the sync protocol.
type Device struct {
	ID           string     `db:"id" json:"id"`
	UserID       string     `db:"user_id" json:"userId"`
	Name         string     `db:"name" json:"name"`
	CreatedAt    time.Time  `db:"created_at" json:"createdAt"`
	LastSeenAt   *time.Time `db:"last_seen_at" json:"lastSeenAt"`
	LastSyncAt   *time.Time `db:"last_sync_at" json:"lastSyncAt"`
	LastVerifyAt *time.Time `db:"last_verify_at" json:"lastVerifyAt"`
	LastVerifyOK *bool      `db:"last_verify_ok" json:"lastVerifyOk"`
	RevokedAt    *time.Time `db:"revoked_at" json:"revokedAt"`
}

// Authenticator turns credentials into actors. Every transport (GraphQL over HTTP and
// websocket, the sync websocket and its HTTP fallback) authenticates through it.
type Authenticator interface {
	// AuthenticateToken returns the actor of a session token (from login) or a device
	// token (from registerDevice). Returns UNAUTHENTICATED if the token is unknown,
	// expired, revoked, or its user is disabled.
	AuthenticateToken(ctx context.Context, token string) (*Actor, error)
}
