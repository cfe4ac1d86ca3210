package postgres_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu/postgres"
)

// FuzzPullCursor feeds arbitrary cursors, the one opaque value a device sends back,
// to Pull, Pending and Verify against a real database: a cursor that is not one this
// database issued for this reader must be refused as invalid (or as of another scope),
// never answered with another error (the device would retry forever instead of pulling
// from the start) and never with a panic. Run longer with
//
//	go test ./postgres -run '^$' -fuzz FuzzPullCursor -fuzztime 30s
func FuzzPullCursor(f *testing.F) {
	fx := newFixture(f)
	teacher := teacherCtx(fx, fx.teacher)
	MustApply(f, sys(), fx.store, upsert("lesson", newID(), lessonFields(fx, "2026-10-12", 1)))
	_, valid, _, err := fx.store.Pull(teacher, "", 1)
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{
		"", valid, valid + "x", valid[:len(valid)/2], string(raw), "%%%", strings.Repeat("A", 300000),
		enc(`{"v":1,"s":"x"}`), enc(`{"v":1,"s":"x","l":"5:4:"}`), enc(`{"v":1,"s":"x","l":"1:99999999999999999999:"}`),
		enc(`{"v":1,"s":"x","l":"3:10:5,4"}`), enc(`{"v":1,"s":"x","l":"3:10:11"}`), enc(`{"v":1,"s":"x","h":"3:10:","t":0}`),
		enc(`{"v":1,"s":"x","h":"3:10:","t":18446744073709551615,"q":-9223372036854775808}`),
		enc(`{"v":2,"s":"x"}`), enc(`{"v":1,"s":""}`), enc(`null`), enc(`[]`), enc(`{"v":1e400}`),
		enc(`{"v":1,"s":"x","l":"1:2:` + strings.Repeat("1,", 20000) + `"}`),
	} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		ctx, cancel := context.WithCancel(teacher)
		defer cancel()
		ok := func(what string, err error) {
			if err != nil && !errors.Is(err, postgres.ErrInvalidCursor) && !errors.Is(err, postgres.ErrScopeChanged) {
				t.Fatalf("%s(%.100q): %v", what, cursor, err)
			}
		}
		_, _, _, err := fx.store.Pull(ctx, cursor, limit)
		ok("Pull", err)
		_, err = fx.store.Pending(ctx, cursor)
		ok("Pending", err)
		_, _, _, err = fx.store.Verify(ctx, cursor)
		ok("Verify", err)
	})
}
