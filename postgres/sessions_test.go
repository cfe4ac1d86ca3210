package postgres_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// TestSessionsAreCheckedAgain: an administrator's session is taken from the store's
// short cache, but a password change or a disabled user through the store ends it at
// once, and a change the store did not make (another replica's) within the cache's
// lifetime.
func TestSessionsAreCheckedAgain(t *testing.T) {
	f := newFixture(t)
	ctx := sys()
	mk := func(name string) (string, string) {
		u, err := f.store.CreateUser(ctx, postgres.NewUser{Username: name, Password: "correct horse 1", Role: jiaoliu.RoleDistrictAdmin, DistrictID: f.district})
		if err != nil {
			t.Fatal(err)
		}
		token, _, _, err := f.store.Login(context.Background(), name, "correct horse 1")
		if err != nil {
			t.Fatal(err)
		}
		return u.ID, token
	}
	ok := func(token string) bool {
		t.Helper()
		a, err := f.store.AuthenticateToken(context.Background(), token)
		if err != nil && jiaoliu.ErrorCode(err) != jiaoliu.EUNAUTHENTICATED {
			t.Fatal(err)
		}
		return err == nil && a != nil
	}

	id, token := mk("admin-a")
	for i := 0; i < 3; i++ {
		if !ok(token) {
			t.Fatal("fresh session refused")
		}
	}
	if _, err := f.store.SetUserDisabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if ok(token) {
		t.Error("session of a user disabled through the store still accepted")
	}

	id, token = mk("admin-b")
	if !ok(token) {
		t.Fatal("fresh session refused")
	}
	if _, err := f.store.ResetPassword(ctx, id, "battery staple 2"); err != nil {
		t.Fatal(err)
	}
	if ok(token) {
		t.Error("session ended by a password reset still accepted")
	}

	// Another replica disables the user: this store notices within the cache's life.
	id, token = mk("admin-c")
	if !ok(token) {
		t.Fatal("fresh session refused")
	}
	if _, err := f.db.Exec(`UPDATE users SET disabled = true WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(postgres.SessionCheckEvery + time.Second)
	for ok(token) {
		if time.Now().After(deadline) {
			t.Fatalf("session of a user disabled elsewhere still accepted after %v", postgres.SessionCheckEvery+time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuthenticateDeviceSkipsReadTokens: the sync layer's check of a device token is
// AuthenticateToken's — the same actor, refused once the device is revoked — without
// the read tokens, which a read then computes itself.
func TestAuthenticateDeviceSkipsReadTokens(t *testing.T) {
	f := newFixture(t)
	u, err := f.store.CreateUser(sys(), postgres.NewUser{Username: "teacher-a", Password: "correct horse 1", Role: jiaoliu.RoleTeacher, TeacherID: f.teacher})
	if err != nil {
		t.Fatal(err)
	}
	dev, token, err := f.store.RegisterDevice(sys(), "平板", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	full, err := f.store.AuthenticateToken(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := f.store.AuthenticateDevice(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.ReadTokens) == 0 || bare.ReadTokens != nil {
		t.Fatalf("read tokens: AuthenticateToken %v, AuthenticateDevice %v (want some, nil)", full.ReadTokens, bare.ReadTokens)
	}
	full.ReadTokens = nil
	if !reflect.DeepEqual(full, bare) {
		t.Fatalf("actors differ: %+v and %+v", full, bare)
	}
	// A read with the bare actor sees what the full one sees.
	lesson := newID()
	MustApply(t, sys(), f.store, upsert("lesson", lesson, lessonFields(f, "2026-10-12", 3)))
	if _, err := postgres.Get[jiaoliu.Lesson](jiaoliu.NewContextWithActor(context.Background(), bare), f.store, jiaoliu.LessonEntity, lesson); err != nil {
		t.Fatalf("the teacher's lesson through the bare actor: %v", err)
	}
	if _, err := f.store.RevokeDevice(sys(), dev.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.AuthenticateDevice(context.Background(), token); jiaoliu.ErrorCode(err) != jiaoliu.EUNAUTHENTICATED {
		t.Fatalf("revoked device: %v, want UNAUTHENTICATED", err)
	}
}

// TestDeviceSessionsShareTheirStrings: two tablets of one teacher, connected for days,
// hold one copy of their user's ids and scope tokens between them (internal/intern),
// not one each as read from PostgreSQL.
func TestDeviceSessionsShareTheirStrings(t *testing.T) {
	f := newFixture(t)
	u, err := f.store.CreateUser(sys(), postgres.NewUser{Username: "teacher-b", Password: "correct horse 2", Role: jiaoliu.RoleTeacher, TeacherID: f.teacher})
	if err != nil {
		t.Fatal(err)
	}
	var actors []*jiaoliu.Actor
	var tokens [][]string
	for _, name := range []string{"平板 1", "平板 2"} {
		_, token, err := f.store.RegisterDevice(sys(), name, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		a, err := f.store.AuthenticateDevice(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := f.store.ActorTokens(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		actors, tokens = append(actors, a), append(tokens, toks)
	}
	a, b := actors[0], actors[1]
	for _, p := range [][2]string{{a.UserID, b.UserID}, {a.Username, b.Username}, {a.TeacherID, b.TeacherID}} {
		if p[0] == "" || p[0] != p[1] || unsafe.StringData(p[0]) != unsafe.StringData(p[1]) {
			t.Errorf("%q and %q: not one shared copy", p[0], p[1])
		}
	}
	if len(tokens[0]) == 0 || !slices.Equal(tokens[0], tokens[1]) {
		t.Fatalf("scope tokens %q and %q", tokens[0], tokens[1])
	}
	for i := range tokens[0] {
		if unsafe.StringData(tokens[0][i]) != unsafe.StringData(tokens[1][i]) {
			t.Errorf("scope token %q: not one shared copy", tokens[0][i])
		}
	}
}
