package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

const loginMutation = `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`

// userIDs returns the ids of the users admin manages, by username.
func userIDs(t *testing.T, admin *client) map[string]string {
	t.Helper()
	var out struct {
		Users []struct{ ID, Username string }
	}
	admin.must(`{ users { id username } }`, nil, &out)
	ids := map[string]string{}
	for _, u := range out.Users {
		ids[u.Username] = u.ID
	}
	return ids
}

// loginCode tries to sign in and returns the error code, or "" when it worked.
func loginCode(t *testing.T, m *Main, username, password string) string {
	t.Helper()
	c := &client{tb: t, url: "http://" + m.Addr()}
	r := c.do(loginMutation, map[string]any{"u": username, "p": password})
	if len(r.Errors) == 0 {
		return ""
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// wantCode runs a query that must fail with code (and, when field is set, name that
// field in extensions.fields).
func wantCode(t *testing.T, c *client, what, code, field, query string, vars map[string]any) {
	t.Helper()
	got, e := c.code(query, vars)
	if got != code {
		t.Fatalf("%s: code %s (%s), want %s", what, got, e.Message, code)
	}
	if field != "" {
		if fields, _ := e.Extensions["fields"].(map[string]any); fields[field] == nil {
			t.Fatalf("%s: fields=%v, want %s", what, e.Extensions["fields"], field)
		}
	}
}

// syncPullStatus pulls over the HTTP fallback with a device token and returns the
// HTTP status.
func syncPullStatus(t *testing.T, m *Main, token string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"type": "pull", "cursor": "", "limit": 1})
	req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/sync/pull", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const (
	changePassword  = `mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { token expiresAt user { username } } }`
	resetPassword   = `mutation($u: ID!, $n: String!) { resetPassword(userId: $u, newPassword: $n) { id username } }`
	setUserDisabled = `mutation($u: ID!, $d: Boolean!) { setUserDisabled(userId: $u, disabled: $d) { id disabled } }`
)

func TestUserChangePassword(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	c := newCast(t, m, newWorld(t, admin))
	other := login(t, m, "wangfang", "password-1") // a second web session of wang
	_, devToken := registerDevice(t, c.wang, "王芳的平板")
	dev := &client{tb: t, url: c.wang.url, token: devToken}

	// Refused: nothing changes.
	wantCode(t, c.wang, "wrong current password", "INVALID", "currentPassword", changePassword, map[string]any{"c": "not-it-at-all", "n": "password-2"})
	wantCode(t, c.wang, "short new password", "INVALID", "newPassword", changePassword, map[string]any{"c": "password-1", "n": "short"})
	wantCode(t, dev, "through a device token", "FORBIDDEN", "", changePassword, map[string]any{"c": "password-1", "n": "password-2"})
	anon := &client{tb: t, url: c.wang.url}
	wantCode(t, anon, "signed out", "UNAUTHENTICATED", "", changePassword, map[string]any{"c": "password-1", "n": "password-2"})

	var out struct {
		ChangePassword struct {
			Token, ExpiresAt string
			User             struct{ Username string }
		}
	}
	c.wang.must(changePassword, map[string]any{"c": "password-1", "n": "password-2"}, &out)
	if out.ChangePassword.Token == "" || out.ChangePassword.User.Username != "wangfang" {
		t.Fatalf("changePassword=%+v", out)
	}
	fresh := &client{tb: t, url: c.wang.url, token: out.ChangePassword.Token}

	// Every session issued before the change ends, the caller's too; the token
	// returned and the device token go on.
	wantCode(t, c.wang, "the session that changed the password", "UNAUTHENTICATED", "", `{ me { id } }`, nil)
	wantCode(t, other, "another session", "UNAUTHENTICATED", "", `{ me { id } }`, nil)
	var me struct{ Me struct{ Username string } }
	fresh.must(`{ me { username } }`, nil, &me)
	if me.Me.Username != "wangfang" {
		t.Fatalf("new token acts as %q", me.Me.Username)
	}
	dev.must(`{ me { username } }`, nil, &me)
	if got := syncPullStatus(t, m, devToken); got != http.StatusOK {
		t.Fatalf("device pull after a password change: %d", got)
	}

	// Only the new password signs in.
	if got := loginCode(t, m, "wangfang", "password-1"); got != "UNAUTHENTICATED" {
		t.Fatalf("login with the old password: %q", got)
	}
	if got := loginCode(t, m, "wangfang", "password-2"); got != "" {
		t.Fatalf("login with the new password: %q", got)
	}

	// Wrong current passwords are failed logins: after three, the fourth makes the
	// next attempt wait, whether it is a login or another change.
	for i := 0; i < 4; i++ {
		wantCode(t, fresh, "wrong current password", "INVALID", "currentPassword", changePassword, map[string]any{"c": "guess-" + string(rune('a'+i)) + "-1234", "n": "password-3"})
	}
	wantCode(t, fresh, "a guess while throttled", "RATE_LIMITED", "", changePassword, map[string]any{"c": "password-2", "n": "password-3"})
	if got := loginCode(t, m, "wangfang", "password-2"); got != "RATE_LIMITED" {
		t.Fatalf("login after failed password changes: %q", got)
	}
}

func TestUserResetPassword(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	c := newCast(t, m, newWorld(t, admin))
	ids := userIDs(t, admin)

	// Refused: teachers and auditors manage no one; users outside the scope are not
	// found; the caller's own password changes with changePassword.
	vars := func(user string) map[string]any { return map[string]any{"u": ids[user], "n": "password-9"} }
	wantCode(t, c.wang, "teacher", "FORBIDDEN", "", resetPassword, vars("liqiang"))
	wantCode(t, c.auditor, "auditor", "FORBIDDEN", "", resetPassword, vars("wangfang"))
	wantCode(t, c.district, "another district's teacher", "NOT_FOUND", "", resetPassword, vars("liqiang"))
	wantCode(t, c.district, "the ADMIN", "NOT_FOUND", "", resetPassword, vars("admin"))
	wantCode(t, c.ruralAdmin, "a teacher of another school", "NOT_FOUND", "", resetPassword, vars("wangfang"))
	wantCode(t, c.district, "an unknown user", "NOT_FOUND", "", resetPassword, map[string]any{"u": "8d7f0c2e-0000-4000-8000-000000000000", "n": "password-9"})
	wantCode(t, c.district, "themself", "FORBIDDEN", "", resetPassword, vars("xinmi"))
	wantCode(t, c.district, "a short password", "INVALID", "newPassword", resetPassword, map[string]any{"u": ids["wangfang"], "n": "short"})
	if got := loginCode(t, m, "liqiang", "password-1"); got != "" {
		t.Fatalf("li's password changed by a refused reset: %q", got)
	}

	// A district admin resets a teacher of the district: the teacher's session ends.
	c.district.must(resetPassword, map[string]any{"u": ids["wangfang"], "n": "password-9"}, nil)
	wantCode(t, c.wang, "wang's session after a reset", "UNAUTHENTICATED", "", `{ me { id } }`, nil)
	if got := loginCode(t, m, "wangfang", "password-1"); got != "UNAUTHENTICATED" {
		t.Fatalf("login with the old password: %q", got)
	}
	if got := loginCode(t, m, "wangfang", "password-9"); got != "" {
		t.Fatalf("login with the reset password: %q", got)
	}
	// The district admin's own session is untouched.
	c.district.must(`{ me { id } }`, nil, nil)

	// A school admin resets a teacher of the school.
	c.farAdmin.must(resetPassword, map[string]any{"u": ids["liqiang"], "n": "password-8"}, nil)
	if got := loginCode(t, m, "liqiang", "password-8"); got != "" {
		t.Fatalf("login with the reset password: %q", got)
	}

	// The reset is audited, without the password.
	var audit struct {
		AuditLog struct {
			Nodes []struct {
				Username, Entity, Action string
				Changes                  map[string]any
			}
		}
	}
	c.district.must(`query($id: ID!) { auditLog(filter: {recordId: $id}) { nodes { username entity action changes } } }`, map[string]any{"id": ids["wangfang"]}, &audit)
	n := audit.AuditLog.Nodes
	if len(n) == 0 || n[0].Username != "xinmi" || n[0].Entity != "user" || n[0].Action != "UPDATE" || n[0].Changes["passwordChangedAt"] == nil {
		t.Fatalf("audit of the reset=%+v", n)
	}
	if raw, _ := json.Marshal(n[0].Changes); bytes.Contains(raw, []byte("password-9")) || bytes.Contains(raw, []byte("$2a$")) {
		t.Fatalf("the audit row holds the password: %s", raw)
	}
}

// readUntilClosed reads a sync socket until the server closes it and returns the code
// of the error message it sent before closing, if any.
func readUntilClosed(t *testing.T, tab *tablet, within time.Duration) string {
	t.Helper()
	code := ""
	deadline := time.Now().Add(within)
	for {
		_ = tab.ws.SetReadDeadline(deadline)
		_, raw, err := tab.ws.ReadMessage()
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the socket is still open after %s", within)
			}
			return code
		}
		var msg map[string]any
		_ = json.Unmarshal(raw, &msg)
		if msg["type"] == "error" {
			code, _ = msg["code"].(string)
		}
	}
}

func TestUserDisable(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	createUser(t, admin, "admin2", "ADMIN", map[string]any{"districtId": w.district})
	ids := userIDs(t, admin)
	deviceID, devToken := registerDevice(t, c.wang, "王芳的平板")
	revokedID, revokedToken := registerDevice(t, c.wang, "旧平板")
	c.wang.must(`mutation($id: ID!) { revokeDevice(id: $id) { id } }`, map[string]any{"id": revokedID}, nil)
	tab := dialTablet(t, m, deviceID, devToken)

	// Refused: nobody disables themself, a district admin no ADMIN (FORBIDDEN when the
	// ADMIN is listed in the district, NOT_FOUND otherwise).
	vars := func(user string) map[string]any { return map[string]any{"u": ids[user], "d": true} }
	wantCode(t, c.li, "teacher", "FORBIDDEN", "", setUserDisabled, vars("wangfang"))
	wantCode(t, c.auditor, "auditor", "FORBIDDEN", "", setUserDisabled, vars("wangfang"))
	wantCode(t, c.district, "themself", "FORBIDDEN", "", setUserDisabled, vars("xinmi"))
	wantCode(t, admin, "the ADMIN themself", "FORBIDDEN", "", setUserDisabled, vars("admin"))
	wantCode(t, c.district, "an ADMIN of their district", "FORBIDDEN", "", setUserDisabled, vars("admin2"))
	wantCode(t, c.district, "the ADMIN", "NOT_FOUND", "", setUserDisabled, vars("admin"))
	wantCode(t, c.district, "another district's teacher", "NOT_FOUND", "", setUserDisabled, vars("liqiang"))
	wantCode(t, c.ruralAdmin, "a teacher of another school", "NOT_FOUND", "", setUserDisabled, vars("wangfang"))
	c.wang.must(`{ me { id } }`, nil, nil)

	var out struct{ SetUserDisabled struct{ Disabled bool } }
	c.district.must(setUserDisabled, map[string]any{"u": ids["wangfang"], "d": true}, &out)
	if !out.SetUserDisabled.Disabled {
		t.Fatalf("setUserDisabled=%+v", out)
	}

	// The open sync socket is told at once (the tablet sends nothing), refused and
	// closed.
	if code := readUntilClosed(t, tab, 10*time.Second); code != "unauthorized" {
		t.Fatalf("sync socket closed with error code %q, want unauthorized", code)
	}
	wantCode(t, c.wang, "web session of a disabled user", "UNAUTHENTICATED", "", `{ me { id } }`, nil)
	if got := syncPullStatus(t, m, devToken); got != http.StatusUnauthorized {
		t.Fatalf("device pull of a disabled user: %d, want 401", got)
	}
	if got := loginCode(t, m, "wangfang", "password-1"); got != "UNAUTHENTICATED" {
		t.Fatalf("login of a disabled user: %q", got)
	}
	// Disabling again changes nothing and is no error.
	c.district.must(setUserDisabled, map[string]any{"u": ids["wangfang"], "d": true}, nil)

	c.district.must(setUserDisabled, map[string]any{"u": ids["wangfang"], "d": false}, &out)
	if out.SetUserDisabled.Disabled {
		t.Fatalf("re-enabled user=%+v", out)
	}

	// Re-enabled: the device that was not revoked works again.
	if got := syncPullStatus(t, m, devToken); got != http.StatusOK {
		t.Fatalf("device pull after re-enabling: %d, want 200", got)
	}
	dialTablet(t, m, deviceID, devToken).pullAll()
	if got := syncPullStatus(t, m, revokedToken); got != http.StatusUnauthorized {
		t.Fatalf("a device revoked before stays revoked: %d, want 401", got)
	}
	// Sessions from before the disabling stay ended; signing in again works.
	wantCode(t, c.wang, "a session from before", "UNAUTHENTICATED", "", `{ me { id } }`, nil)
	login(t, m, "wangfang", "password-1").must(`{ me { id } }`, nil, nil)

	// Both changes are audited.
	var audit struct {
		AuditLog struct {
			Nodes []struct {
				Username, Action string
				Changes          map[string]any
			}
		}
	}
	c.district.must(`query($id: ID!) { auditLog(filter: {recordId: $id}) { nodes { username action changes } } }`, map[string]any{"id": ids["wangfang"]}, &audit)
	var changes []any
	for _, n := range audit.AuditLog.Nodes {
		if d, ok := n.Changes["disabled"].(map[string]any); ok && n.Username == "xinmi" {
			changes = append(changes, d["new"])
		}
	}
	if len(changes) != 2 || changes[0] != false || changes[1] != true {
		t.Fatalf("audit of disabling (newest first)=%v", changes)
	}
}
