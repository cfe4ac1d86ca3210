package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/lib/pq"
	"golang.org/x/crypto/bcrypt"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/intern"
)

// SessionTTL is how long a login token is valid.
const SessionTTL = 12 * time.Hour

// devicePrefix marks device tokens, so one Authorization header carries either kind.
const devicePrefix = "dev_"

var _ jiaoliu.Authenticator = (*Store)(nil)

// userColumns are the columns of jiaoliu.User.
const userColumns = `id, username, display_name, role, district_id, school_id, teacher_id, disabled, created_at`

// NewUser describes a user to create.
type NewUser struct {
	Username    string
	DisplayName string
	Password    string
	Role        jiaoliu.Role
	DistrictID  string
	SchoolID    string
	TeacherID   string
}

// CreateUser creates a user with a bcrypt-hashed password. The actor of ctx must be an
// admin whose scope contains the new user's district or school; a school admin may
// create teachers of their school only. Returns INVALID for bad fields and CONFLICT for
// a taken username.
func (s *Store) CreateUser(ctx context.Context, u NewUser) (*jiaoliu.User, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to create users")
	}
	fe := jiaoliu.FieldErrors{}
	u.Username = strings.ToLower(strings.TrimSpace(u.Username))
	if len(u.Username) < 2 || len(u.Username) > 64 || strings.Trim(u.Username, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
		fe.Add("username", "must be 2..64 characters of a-z, 0-9, '.', '_' or '-'")
	}
	checkPassword(fe, "password", u.Password)
	switch u.Role {
	case jiaoliu.RoleTeacher:
		if u.TeacherID == "" {
			fe.Add("teacherId", "is required for a TEACHER user")
		}
	case jiaoliu.RoleSchoolAdmin:
		if u.SchoolID == "" {
			fe.Add("schoolId", "is required for a SCHOOL_ADMIN user")
		}
	case jiaoliu.RoleDistrictAdmin, jiaoliu.RoleAuditor:
		if u.DistrictID == "" {
			fe.Add("districtId", "is required for this role")
		}
	case jiaoliu.RoleAdmin:
	default:
		fe.Add("role", "must be one of TEACHER, SCHOOL_ADMIN, DISTRICT_ADMIN, AUDITOR, ADMIN")
	}
	for name, id := range map[string]string{"districtId": u.DistrictID, "schoolId": u.SchoolID, "teacherId": u.TeacherID} {
		if id != "" && !isUUID(id) {
			fe.Add(name, "must be an id (UUID)")
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	// Fill the district and school from the linked records, so scope checks are simple.
	if u.TeacherID != "" {
		if err := s.db.GetContext(ctx, &u.SchoolID, `SELECT school_id::text FROM teachers WHERE id = $1`, u.TeacherID); errors.Is(err, sql.ErrNoRows) {
			return nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"teacherId": "refers to an unknown teacher"}}
		} else if err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
	}
	if u.SchoolID != "" {
		if err := s.db.GetContext(ctx, &u.DistrictID, `SELECT district_id::text FROM schools WHERE id = $1`, u.SchoolID); errors.Is(err, sql.ErrNoRows) {
			return nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"schoolId": "refers to an unknown school"}}
		} else if err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
	}
	if err := mayManageUser(actor, u.Role, u.DistrictID, u.SchoolID); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("create user: hash: %w", err)
	}
	id := uuid.NewString()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	defer tx.Rollback()
	var out jiaoliu.User
	err = tx.GetContext(ctx, &out, `INSERT INTO users (id, username, display_name, password_hash, role, district_id, school_id, teacher_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+userColumns,
		id, u.Username, u.DisplayName, string(hash), string(u.Role), nullID(u.DistrictID), nullID(u.SchoolID), nullID(u.TeacherID))
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "23505" {
		field := "username"
		if strings.Contains(pe.Constraint, "teacher") {
			field = "teacherId"
		}
		return nil, &jiaoliu.Error{Code: jiaoliu.ECONFLICT, Message: "already taken", Fields: map[string]string{field: "already has a user"}}
	} else if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	if err := auditAccount(ctx, tx, actor, "user", id, "CREATE", map[string]any{"username": u.Username, "role": u.Role}, userScopes(u.DistrictID, u.SchoolID, u.TeacherID)); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return &out, nil
}

// EnsureAdmin creates the ADMIN user with the given password if no ADMIN exists. It
// returns whether it created one.
func (s *Store) EnsureAdmin(ctx context.Context, username, password string) (bool, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM users WHERE role = 'ADMIN'`); err != nil {
		return false, fmt.Errorf("ensure admin: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	ctx = jiaoliu.NewContextWithActor(ctx, jiaoliu.SystemActor)
	if _, err := s.CreateUser(ctx, NewUser{Username: username, DisplayName: "系统管理员", Password: password, Role: jiaoliu.RoleAdmin}); err != nil {
		return false, fmt.Errorf("ensure admin: %w", err)
	}
	return true, nil
}

// mayManageUser checks that an actor may create or change a user of the given role in
// the given district and school.
func mayManageUser(a *jiaoliu.Actor, role jiaoliu.Role, district, school string) error {
	switch {
	case a.System || a.Role == jiaoliu.RoleAdmin:
		return nil
	case a.Role == jiaoliu.RoleDistrictAdmin && role != jiaoliu.RoleAdmin && district == a.DistrictID:
		return nil
	case a.Role == jiaoliu.RoleSchoolAdmin && role == jiaoliu.RoleTeacher && school == a.SchoolID:
		return nil
	}
	return jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "you may not manage this user")
}

func userScopes(district, school, teacher string) []string {
	var out []string
	if district != "" {
		out = append(out, "d:"+district)
	}
	if school != "" {
		out = append(out, "s:"+school)
	}
	if teacher != "" {
		out = append(out, "t:"+teacher)
	}
	return out
}

// Login checks a username and password and returns a signed session token and its
// expiry. Failures are slowed down per username: after three, each further attempt
// must wait twice as long as the last (1 s, 2 s, 4 s … at most 5 minutes), and an
// attempt during the wait is RATE_LIMITED without checking the password. Unknown users
// and wrong passwords get the same UNAUTHENTICATED error.
func (s *Store) Login(ctx context.Context, username, password string) (string, time.Time, *jiaoliu.User, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	if err := s.loginWait(ctx, username); err != nil {
		return "", time.Time{}, nil, err
	}
	var row struct {
		jiaoliu.User
		Hash    string `db:"password_hash"`
		Version int    `db:"session_version"`
	}
	err := s.db.GetContext(ctx, &row, `SELECT `+userColumns+`, password_hash, session_version FROM users WHERE username = $1 AND NOT disabled`, username)
	hash := row.Hash
	if errors.Is(err, sql.ErrNoRows) {
		// Compare against a fixed hash anyway, so timing does not tell users apart.
		hash = "$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z3i1s0v0VJp6E8D3e1gkDj1K"
	} else if err != nil {
		return "", time.Time{}, nil, fmt.Errorf("login: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || row.ID == "" {
		if err := s.recordLoginFailure(ctx, username); err != nil {
			return "", time.Time{}, nil, fmt.Errorf("login: %w", err)
		}
		return "", time.Time{}, nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "wrong username or password")
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1`, username); err != nil {
		return "", time.Time{}, nil, fmt.Errorf("login: %w", err)
	}
	key, err := s.signingKey(ctx)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	signed, exp, err := issueSession(key, row.ID, row.Version)
	if err != nil {
		return "", time.Time{}, nil, fmt.Errorf("login: %w", err)
	}
	u := row.User
	return signed, exp, &u, nil
}

// sessionClaims are the claims of a session token.
type sessionClaims struct {
	jwt.RegisteredClaims
	// Version is the user's session_version when the token was issued: a password
	// change or reset, or disabling the user, increments it and so ends every session
	// issued before. Tokens from before versions existed carry none and read as 0.
	Version int `json:"sv,omitempty"`
}

// issueSession signs a session token of a user whose session_version is version.
func issueSession(key []byte, userID string, version int) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(SessionTTL)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, sessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: userID, ID: uuid.NewString(), IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp), Issuer: "jiaoliu"},
		Version: version,
	})
	signed, err := tok.SignedString(key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign session: %w", err)
	}
	return signed, exp, nil
}

// loginWait returns RATE_LIMITED while failed password checks of username must wait.
func (s *Store) loginWait(ctx context.Context, username string) error {
	var lockedUntil time.Time
	err := s.db.GetContext(ctx, &lockedUntil, `SELECT locked_until FROM login_failures WHERE username = $1`, username)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("login throttle: %w", err)
	}
	if wait := time.Until(lockedUntil); wait > 0 {
		return jiaoliu.Errorf(jiaoliu.ERATELIMITED, "too many failed attempts: try again in %d s", int(wait.Seconds())+1)
	}
	return nil
}

// recordLoginFailure counts a failed password check of username: from the fourth on,
// each makes the next attempt wait twice as long (1 s, 2 s, 4 s … at most 5 minutes).
func (s *Store) recordLoginFailure(ctx context.Context, username string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO login_failures (username, failures, last_failure_at, locked_until) VALUES ($1, 1, now(), now())
		ON CONFLICT (username) DO UPDATE SET failures = login_failures.failures + 1, last_failure_at = now(),
		locked_until = now() + CASE WHEN login_failures.failures + 1 <= 3 THEN interval '0'
			ELSE least(interval '1 second' * power(2, login_failures.failures + 1 - 4), interval '5 minutes') END`, username); err != nil {
		return fmt.Errorf("record login failure: %w", err)
	}
	return nil
}

// checkPassword adds a field error to fe when password breaks the password rules
// (8..72 bytes: bcrypt reads no further).
func checkPassword(fe jiaoliu.FieldErrors, field, password string) {
	if len(password) < 8 || len(password) > 72 {
		fe.Add(field, "must be 8..72 characters")
	}
}

// signingKey returns the HMAC key of session tokens, creating it on first use. A
// failure is not cached: the next call tries again.
func (s *Store) signingKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO server_secrets (name, value) VALUES ('jwt', $1) ON CONFLICT (name) DO NOTHING`, fresh); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	var key []byte
	if err := s.db.GetContext(ctx, &key, `SELECT value FROM server_secrets WHERE name = 'jwt'`); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	s.key = key
	return key, nil
}

// AuthenticateToken implements jiaoliu.Authenticator for session and device tokens.
// The user is read on every call (a session of an administrator or auditor: at most
// every sessionCheckEvery, see sessionCache), so a disabled user, a revoked device or a
// session ended by a password change (its session version is no longer the user's)
// stops working at once on this server, and within sessionCheckEvery on the others.
func (s *Store) AuthenticateToken(ctx context.Context, token string) (*jiaoliu.Actor, error) {
	return s.authenticate(ctx, token, true)
}

// AuthenticateDevice checks a token as AuthenticateToken does, but returns the actor
// without its read tokens (ReadTokens nil: a read computes them when it needs them).
// The sync layer checks its token before every message, and its pushes and pulls
// compute the tokens themselves in their own transaction: computing them for the check
// too was a third of a single-op push's re-authentication (actor_tokens, 0.29 ms).
func (s *Store) AuthenticateDevice(ctx context.Context, token string) (*jiaoliu.Actor, error) {
	return s.authenticate(ctx, token, false)
}

// The user of a token ($1, and $2 its session version or -1), with or without the
// scope tokens they read with.
const (
	userOfToken         = ` FROM users WHERE id = $1 AND NOT disabled AND ($2::int < 0 OR session_version = $2)`
	userWithTokensQuery = `SELECT ` + userColumns + `,
		CASE WHEN role = 'ADMIN' THEN NULL ELSE actor_tokens(role, district_id, school_id, teacher_id) END AS read_tokens` + userOfToken
	userOfTokenQuery = `SELECT ` + userColumns + `, NULL::text[] AS read_tokens` + userOfToken
)

// The device of a token (its hash, $1) and the device's user, with or without the
// scope tokens they read with: one round trip, as the sync layer authenticates every
// message. stale says that last_seen_at is more than a minute old.
const (
	deviceOfToken = ` FROM devices d JOIN users u ON u.id = d.user_id AND NOT u.disabled
		WHERE d.token_hash = $1 AND d.revoked_at IS NULL`
	tokenDeviceColumns = `d.id::text AS device_id, coalesce(d.last_seen_at < now() - interval '1 minute', true) AS stale,
		u.id, u.username, u.display_name, u.role, u.district_id, u.school_id, u.teacher_id, u.disabled, u.created_at`
	deviceWithTokensQuery = `SELECT ` + tokenDeviceColumns + `,
		CASE WHEN u.role = 'ADMIN' THEN NULL ELSE actor_tokens(u.role, u.district_id, u.school_id, u.teacher_id) END AS read_tokens` + deviceOfToken
	deviceOfTokenQuery = `SELECT ` + tokenDeviceColumns + `, NULL::text[] AS read_tokens` + deviceOfToken
)

// tokenUser is a row of the queries above.
type tokenUser struct {
	jiaoliu.User
	Tokens   pq.StringArray `db:"read_tokens"`
	DeviceID string         `db:"device_id"`
	Stale    bool           `db:"stale"`
}

func (s *Store) authenticate(ctx context.Context, token string, withTokens bool) (*jiaoliu.Actor, error) {
	unauth := jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "invalid or expired token")
	if token == "" {
		return nil, unauth
	}
	var row tokenUser
	var sessionID string
	gen := s.sessions.generation()
	if strings.HasPrefix(token, devicePrefix) {
		sum := sha256.Sum256([]byte(token))
		q := deviceOfTokenQuery
		if withTokens {
			q = deviceWithTokensQuery
		}
		err := s.get(ctx, &row, q, sum[:])
		if errors.Is(err, sql.ErrNoRows) {
			return nil, unauth
		} else if err != nil {
			return nil, fmt.Errorf("authenticate device: %w", err)
		}
		// last_seen_at is written only when it is more than a minute old.
		if row.Stale {
			if _, err := s.db.ExecContext(ctx, `UPDATE devices SET last_seen_at = now() WHERE id = $1`, row.DeviceID); err != nil {
				return nil, fmt.Errorf("authenticate device: %w", err)
			}
		}
	} else {
		key, err := s.signingKey(ctx)
		if err != nil {
			return nil, err
		}
		var claims sessionClaims
		_, err = jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("jiaoliu"), jwt.WithExpirationRequired())
		if err != nil || claims.Version < 0 {
			return nil, unauth
		}
		if a := s.sessions.get(token); a != nil {
			return a, nil
		}
		// The user and the scope tokens they read with, in one round trip: every
		// request is authenticated, and every read needs the tokens.
		q := userWithTokensQuery
		if !withTokens {
			q = userOfTokenQuery
		}
		sessionID = claims.ID
		err = s.get(ctx, &row, q, claims.Subject, claims.Version)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, unauth
		} else if err != nil {
			return nil, fmt.Errorf("authenticate: %w", err)
		}
	}
	a := ActorOf(&row.User, row.DeviceID, sessionID)
	if row.DeviceID != "" {
		// A device's sync session keeps its actor while connected, for days: the ids its
		// user shares with their other devices, and the school and district with
		// thousands of others, are interned.
		a.UserID, a.Username, a.TeacherID = intern.String(a.UserID), intern.String(a.Username), intern.String(a.TeacherID)
		a.SchoolID, a.DistrictID = intern.String(a.SchoolID), intern.String(a.DistrictID)
	}
	if !withTokens {
		return a, nil
	}
	if !a.System {
		a.ReadTokens = intern.Strings(row.Tokens)
		if a.ReadTokens == nil {
			a.ReadTokens = []string{}
		}
	}
	if row.DeviceID == "" && a.Role != jiaoliu.RoleTeacher {
		s.sessions.put(token, a, gen)
	}
	return a, nil
}

// ActorOf returns the actor acting as u, through a device or a session.
func ActorOf(u *jiaoliu.User, deviceID, sessionID string) *jiaoliu.Actor {
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return &jiaoliu.Actor{UserID: u.ID, Username: u.Username, Role: u.Role, DistrictID: deref(u.DistrictID),
		SchoolID: deref(u.SchoolID), TeacherID: deref(u.TeacherID), DeviceID: deviceID, SessionID: sessionID,
		System: u.Role == jiaoliu.RoleAdmin}
}

// RegisterDevice registers a device for a user and returns it with its token, which is
// shown this once and stored only as a hash. A user registers their own devices; admins
// register devices for users in their scope.
func (s *Store) RegisterDevice(ctx context.Context, name, userID string) (*jiaoliu.Device, string, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, "", jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to register a device")
	}
	if userID == "" {
		userID = actor.UserID
	}
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 100 {
		return nil, "", &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"name": "must be 1..100 characters"}}
	}
	owner, err := s.userInScope(ctx, actor, userID)
	if err != nil {
		return nil, "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", fmt.Errorf("register device: %w", err)
	}
	token := devicePrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("register device: %w", err)
	}
	defer tx.Rollback()
	var d jiaoliu.Device
	if err := tx.GetContext(ctx, &d, `INSERT INTO devices (id, user_id, name, token_hash) VALUES ($1, $2, $3, $4) RETURNING `+deviceColumns,
		uuid.NewString(), owner.ID, name, sum[:]); err != nil {
		return nil, "", fmt.Errorf("register device: %w", err)
	}
	if err := auditAccount(ctx, tx, actor, "device", d.ID, "CREATE", map[string]any{"name": name, "userId": owner.ID},
		userScopes(deref(owner.DistrictID), deref(owner.SchoolID), deref(owner.TeacherID))); err != nil {
		return nil, "", err
	}
	if err := tx.Commit(); err != nil {
		return nil, "", fmt.Errorf("register device: %w", err)
	}
	return &d, token, nil
}

const deviceColumns = `id, user_id, name, created_at, last_seen_at, last_sync_at, last_verify_at, last_verify_ok, revoked_at`

// RevokeDevice revokes a device: its token stops working at once, and the sync layer
// closes its open connections (NOTIFY device_revoked).
func (s *Store) RevokeDevice(ctx context.Context, id string) (*jiaoliu.Device, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to revoke a device")
	}
	if !isUUID(id) {
		return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "device not found")
	}
	var userID string
	if err := s.db.GetContext(ctx, &userID, `SELECT user_id::text FROM devices WHERE id = $1`, id); errors.Is(err, sql.ErrNoRows) {
		return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("revoke device: %w", err)
	}
	owner, err := s.userInScope(ctx, actor, userID)
	if err != nil {
		return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "device not found")
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("revoke device: %w", err)
	}
	defer tx.Rollback()
	var d jiaoliu.Device
	if err := tx.GetContext(ctx, &d, `UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING `+deviceColumns, id); err != nil {
		return nil, fmt.Errorf("revoke device: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify('device_revoked', $1)`, id); err != nil {
		return nil, fmt.Errorf("revoke device: %w", err)
	}
	if err := auditAccount(ctx, tx, actor, "device", id, "UPDATE", map[string]any{"revoked": map[string]any{"old": false, "new": true}},
		userScopes(deref(owner.DistrictID), deref(owner.SchoolID), deref(owner.TeacherID))); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("revoke device: %w", err)
	}
	return &d, nil
}

// userInScope returns the user with the given id if the actor may manage them: the
// user themself, or an admin whose scope holds the user. Others get NOT_FOUND.
func (s *Store) userInScope(ctx context.Context, actor *jiaoliu.Actor, userID string) (*jiaoliu.User, error) {
	notFound := jiaoliu.Errorf(jiaoliu.ENOTFOUND, "user not found")
	if !isUUID(userID) {
		return nil, notFound
	}
	var u jiaoliu.User
	if err := s.db.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE id = $1`, userID); errors.Is(err, sql.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	if u.ID == actor.UserID || mayManageUser(actor, u.Role, deref(u.DistrictID), deref(u.SchoolID)) == nil {
		return &u, nil
	}
	return nil, notFound
}

// ChangePassword changes the password of the signed-in user, who must sign in through
// a web session (a device token cannot) and give the current password. A wrong
// current password counts as a failed login of the user, so it is throttled like one
// (RATE_LIMITED while the wait lasts). Every session of the user issued before,
// including the caller's, stops working; the returned token, with its expiry, is the
// caller's new session. Device tokens keep working. Returns UNAUTHENTICATED without a
// user, FORBIDDEN through a device token, INVALID (fields newPassword or
// currentPassword) for a new password that breaks the rules of CreateUser or a wrong
// current password, and CONFLICT when the password changed meanwhile.
func (s *Store) ChangePassword(ctx context.Context, current, next string) (string, time.Time, *jiaoliu.User, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil || actor.UserID == "" {
		return "", time.Time{}, nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to change your password")
	}
	if actor.DeviceID != "" {
		return "", time.Time{}, nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "a device token cannot change a password: sign in with the password")
	}
	fe := jiaoliu.FieldErrors{}
	checkPassword(fe, "newPassword", next)
	if err := fe.Err(); err != nil {
		return "", time.Time{}, nil, err
	}
	if err := s.loginWait(ctx, actor.Username); err != nil {
		return "", time.Time{}, nil, err
	}
	var old string
	if err := s.db.GetContext(ctx, &old, `SELECT password_hash FROM users WHERE id = $1 AND NOT disabled`, actor.UserID); errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to change your password")
	} else if err != nil {
		return "", time.Time{}, nil, fmt.Errorf("change password: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(old), []byte(current)) != nil {
		if err := s.recordLoginFailure(ctx, actor.Username); err != nil {
			return "", time.Time{}, nil, fmt.Errorf("change password: %w", err)
		}
		return "", time.Time{}, nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input",
			Fields: map[string]string{"currentPassword": "is not your current password"}}
	}
	key, err := s.signingKey(ctx)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	// The hash read above guards the update, so no row lock is held while bcrypt runs.
	u, version, err := s.setPassword(ctx, actor, actor.UserID, old, next)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	token, exp, err := issueSession(key, u.ID, version)
	if err != nil {
		return "", time.Time{}, nil, fmt.Errorf("change password: %w", err)
	}
	return token, exp, u, nil
}

// ResetPassword sets the password of another user, for an administrator whose scope
// holds the user (the rules of CreateUser: a school admin resets their school's
// teachers, a district admin the users of their district except ADMINs). The user's
// sessions stop working and their failed logins are forgotten; device tokens keep
// working. Returns FORBIDDEN for teachers and auditors, for the caller's own password
// (use ChangePassword) and for a user the caller sees but may not manage, NOT_FOUND for
// a user outside the caller's scope, and INVALID (field newPassword) for a password
// that breaks the rules of CreateUser.
func (s *Store) ResetPassword(ctx context.Context, userID, password string) (*jiaoliu.User, error) {
	actor, target, err := s.managedUser(ctx, userID, "reset passwords", "change your own password with changePassword")
	if err != nil {
		return nil, err
	}
	fe := jiaoliu.FieldErrors{}
	checkPassword(fe, "newPassword", password)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	u, _, err := s.setPassword(ctx, actor, target.ID, "", password)
	return u, err
}

// setPassword stores a new password of a user, ends their sessions (a new
// session_version), forgets their failed logins and audits the change, in one
// transaction. With oldHash set, the change happens only if the password is still the
// one read (CONFLICT otherwise). It returns the user and their new session version.
func (s *Store) setPassword(ctx context.Context, actor *jiaoliu.Actor, userID, oldHash, password string) (*jiaoliu.User, int, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, 0, fmt.Errorf("set password: hash: %w", err)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("set password: %w", err)
	}
	defer tx.Rollback()
	var row struct {
		jiaoliu.User
		Version   int        `db:"session_version"`
		ChangedAt *time.Time `db:"password_changed_at"`
		Before    *time.Time `db:"changed_before"`
	}
	err = tx.GetContext(ctx, &row, `UPDATE users n SET password_hash = $2, session_version = n.session_version + 1,
			password_changed_at = now(), updated_at = now()
		FROM users o WHERE n.id = $1 AND o.id = n.id AND ($3 = '' OR n.password_hash = $3)
		RETURNING `+prefixed("n", userColumns)+`, n.session_version, n.password_changed_at, o.password_changed_at AS changed_before`,
		userID, string(hash), oldHash)
	if errors.Is(err, sql.ErrNoRows) {
		if oldHash != "" {
			return nil, 0, jiaoliu.Errorf(jiaoliu.ECONFLICT, "the password was changed meanwhile: try again")
		}
		return nil, 0, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, 0, fmt.Errorf("set password: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1`, row.Username); err != nil {
		return nil, 0, fmt.Errorf("set password: %w", err)
	}
	// The audit row says when, never what: no hash leaves the users table.
	if err := auditAccount(ctx, tx, actor, "user", row.ID, "UPDATE",
		map[string]any{"passwordChangedAt": map[string]any{"old": row.Before, "new": row.ChangedAt}},
		userScopes(deref(row.DistrictID), deref(row.SchoolID), deref(row.TeacherID))); err != nil {
		return nil, 0, err
	}
	if err := tx.Commit(); err != nil {
		return nil, 0, fmt.Errorf("set password: %w", err)
	}
	s.sessions.forget()
	u := row.User
	return &u, row.Version, nil
}

// SetUserDisabled disables or re-enables a user, for an administrator whose scope
// holds the user (the rules of ResetPassword). A disabled user cannot sign in, and
// every token of theirs — sessions and device tokens — is refused at once; their open
// sync sockets are told to re-authenticate (NOTIFY device_revoked 'user:<id>') and so
// close. Re-enabling restores the device tokens that were not revoked one by one, not
// the sessions: the user signs in again. Setting the state the user already has
// changes nothing. Returns FORBIDDEN for teachers and auditors, for the caller
// themself and for a user the caller sees but may not manage, NOT_FOUND for a user
// outside the caller's scope.
func (s *Store) SetUserDisabled(ctx context.Context, userID string, disabled bool) (*jiaoliu.User, error) {
	actor, target, err := s.managedUser(ctx, userID, "disable users", "you cannot disable or re-enable yourself")
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("set user disabled: %w", err)
	}
	defer tx.Rollback()
	var u jiaoliu.User
	// Disabling also ends the sessions for good (a new session_version), so that
	// re-enabling does not bring back tokens handed out before.
	err = tx.GetContext(ctx, &u, `UPDATE users SET disabled = $2, updated_at = now(),
			session_version = session_version + CASE WHEN $2 THEN 1 ELSE 0 END
		WHERE id = $1 AND disabled <> $2 RETURNING `+userColumns, target.ID, disabled)
	if errors.Is(err, sql.ErrNoRows) {
		target.Disabled = disabled // already so (the user exists: managedUser read it)
		return target, nil
	} else if err != nil {
		return nil, fmt.Errorf("set user disabled: %w", err)
	}
	if disabled {
		// Delivered at commit: the sync sessions of the user re-authenticate and close.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify('device_revoked', $1)`, "user:"+u.ID); err != nil {
			return nil, fmt.Errorf("set user disabled: %w", err)
		}
	}
	if err := auditAccount(ctx, tx, actor, "user", u.ID, "UPDATE", map[string]any{"disabled": map[string]any{"old": !disabled, "new": disabled}},
		userScopes(deref(u.DistrictID), deref(u.SchoolID), deref(u.TeacherID))); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("set user disabled: %w", err)
	}
	s.sessions.forget()
	return &u, nil
}

// managedUser returns the actor of ctx and the user with the given id for the actor to
// act on (what: "reset passwords", "disable users"). No actor: UNAUTHENTICATED.
// Teachers and auditors manage no one: FORBIDDEN. A user outside the users the actor
// sees (Users) answers NOT_FOUND, exactly like an unknown id; the actor themself,
// FORBIDDEN with selfRefused; a user the actor sees but may not manage (mayManageUser
// refuses it: an ADMIN listed in a district admin's district), FORBIDDEN.
func (s *Store) managedUser(ctx context.Context, userID, what, selfRefused string) (*jiaoliu.Actor, *jiaoliu.User, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to %s", what)
	}
	switch {
	case actor.System, actor.Role == jiaoliu.RoleDistrictAdmin, actor.Role == jiaoliu.RoleSchoolAdmin:
	default:
		return nil, nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "only administrators may %s", what)
	}
	notFound := jiaoliu.Errorf(jiaoliu.ENOTFOUND, "user not found")
	if !isUUID(userID) {
		return nil, nil, notFound
	}
	where, args, err := accountScope(ctx, "u")
	if err != nil {
		return nil, nil, err
	}
	args = append(args, userID)
	var u jiaoliu.User
	err = s.db.GetContext(ctx, &u, `SELECT `+prefixed("u", userColumns)+` FROM users u WHERE `+where+fmt.Sprintf(` AND u.id = $%d`, len(args)), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, notFound
	} else if err != nil {
		return nil, nil, fmt.Errorf("load user: %w", err)
	}
	if u.ID == actor.UserID {
		return nil, nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "%s", selfRefused)
	}
	if err := mayManageUser(actor, u.Role, deref(u.DistrictID), deref(u.SchoolID)); err != nil {
		return nil, nil, err
	}
	return actor, &u, nil
}

// Users lists the users the actor may manage (admins) or themself (others).
func (s *Store) Users(ctx context.Context) ([]*jiaoliu.User, error) {
	where, args, err := accountScope(ctx, "u")
	if err != nil {
		return nil, err
	}
	var out []*jiaoliu.User
	if err := s.db.SelectContext(ctx, &out, `SELECT `+prefixed("u", userColumns)+` FROM users u WHERE `+where+` ORDER BY u.username`, args...); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// Devices lists the devices of the users the actor may manage, optionally of one user.
func (s *Store) Devices(ctx context.Context, userID string) ([]*jiaoliu.Device, error) {
	where, args, err := accountScope(ctx, "u")
	if err != nil {
		return nil, err
	}
	if userID != "" {
		if !isUUID(userID) {
			return []*jiaoliu.Device{}, nil
		}
		args = append(args, userID)
		where += fmt.Sprintf(" AND u.id = $%d", len(args))
	}
	var out []*jiaoliu.Device
	if err := s.db.SelectContext(ctx, &out, `SELECT `+prefixed("d", deviceColumns)+` FROM devices d JOIN users u ON u.id = d.user_id WHERE `+where+` ORDER BY d.created_at`, args...); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// UsersByID returns the users among ids that the actor may see.
func (s *Store) UsersByID(ctx context.Context, ids []string) (map[string]*jiaoliu.User, error) {
	where, args, err := accountScope(ctx, "u")
	if err != nil {
		return nil, err
	}
	args = append(args, pq.Array(ids))
	var rows []*jiaoliu.User
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+prefixed("u", userColumns)+` FROM users u WHERE `+where+fmt.Sprintf(` AND u.id = ANY($%d::uuid[])`, len(args)), args...); err != nil {
		return nil, fmt.Errorf("users by id: %w", err)
	}
	out := make(map[string]*jiaoliu.User, len(rows))
	for _, u := range rows {
		out[u.ID] = u
	}
	return out, nil
}

// accountScope returns the condition on users alias a that the actor of ctx may see.
func accountScope(ctx context.Context, a string) (string, []any, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	switch {
	case actor == nil:
		return "", nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to see users")
	case actor.System:
		return "true", nil, nil
	case actor.Role == jiaoliu.RoleDistrictAdmin || actor.Role == jiaoliu.RoleAuditor:
		return fmt.Sprintf("(%s.district_id = $1 OR %s.id = $2)", a, a), []any{actor.DistrictID, actor.UserID}, nil
	case actor.Role == jiaoliu.RoleSchoolAdmin:
		return fmt.Sprintf("((%s.school_id = $1 AND %s.role = 'TEACHER') OR %s.id = $2)", a, a, a), []any{actor.SchoolID, actor.UserID}, nil
	}
	return fmt.Sprintf("%s.id = $1", a), []any{actor.UserID}, nil
}

func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = alias + "." + p
	}
	return strings.Join(parts, ", ")
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// auditAccount writes an audit row for a change to a user or device.
func auditAccount(ctx context.Context, tx execer, actor *jiaoliu.Actor, entity, id, action string, changes map[string]any, scopes []string) error {
	raw, err := json.Marshal(changes)
	if err != nil {
		return fmt.Errorf("audit %s: %w", entity, err)
	}
	if scopes == nil {
		scopes = []string{}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_log (user_id, username, device_id, session_id, entity, record_id, action, changes, scopes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		nullID(actor.UserID), actor.Username, nullID(actor.DeviceID), actor.SessionID, entity, id, action, raw, pq.Array(scopes))
	if err != nil {
		return fmt.Errorf("audit %s: %w", entity, err)
	}
	return nil
}
