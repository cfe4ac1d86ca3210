package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// TestWatchedDevicesAreTheScopeFunctions: the watchers' tokens of each role's device are
// the "d:" and "s:" tokens that the scope functions of migration 00002 give its user (a
// teacher's school and the schools of their live exchanges, across two districts; a
// school administrator's school; a district administrator's and an auditor's district;
// none for the server's administrator).
func TestWatchedDevicesAreTheScopeFunctions(t *testing.T) {
	f := newFixture(t)
	d2, far, t3 := secondDistrict(t, f)
	x2, x3 := newID(), newID()
	MustApply(t, sys(), f.store,
		exchangeOp(x2, f.teacher, f.urban, far, "APPROVED"),
		exchangeOp(x3, f.other, f.rural, far, "APPROVED"),
	)
	MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "exchange", ID: x3, HLC: nextHLC()})

	users := []struct {
		role                      string
		district, school, teacher any
	}{
		{"TEACHER", f.district, f.urban, f.teacher}, // two exchanges, one to another district
		{"TEACHER", f.district, f.rural, f.other},   // a deleted exchange
		{"TEACHER", d2, far, t3},                    // no exchange
		{"SCHOOL_ADMIN", f.district, f.rural, nil},
		{"DISTRICT_ADMIN", f.district, nil, nil},
		{"AUDITOR", d2, nil, nil},
		{"ADMIN", nil, nil, nil},
	}
	var devices []string
	for i, u := range users {
		user, device := newID(), newID()
		if _, err := f.db.Exec(`INSERT INTO users (id, username, password_hash, role, district_id, school_id, teacher_id) VALUES ($1, $2, 'x', $3, $4, $5, $6)`,
			user, fmt.Sprintf("u%d", i), u.role, u.district, u.school, u.teacher); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.Exec(`INSERT INTO devices (id, user_id, name, token_hash) VALUES ($1, $2, 'tablet', sha256($3::bytea))`,
			device, user, fmt.Sprintf("dev_%d", i)); err != nil {
			t.Fatal(err)
		}
		devices = append(devices, device)
	}
	got, err := f.store.WatchedDevices(context.Background(), devices)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range devices {
		var want []string
		if err := f.db.Get(pq.Array(&want), `SELECT ARRAY(SELECT DISTINCT t FROM unnest(CASE u.role
				WHEN 'TEACHER' THEN teacher_tokens(u.teacher_id)
				WHEN 'SCHOOL_ADMIN' THEN school_tokens(u.school_id)
				WHEN 'DISTRICT_ADMIN' THEN ARRAY['d:' || u.district_id]
				WHEN 'AUDITOR' THEN ARRAY['d:' || u.district_id]
				ELSE '{}'::text[] END) AS t
				WHERE t LIKE 'd:%' OR t LIKE 's:%' ORDER BY t)
			FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1`, id); err != nil {
			t.Fatal(err)
		}
		d, ok := got[id]
		if !ok {
			t.Errorf("%s: device not returned", users[i].role)
			continue
		}
		if !slices.Equal(d.Scopes, want) && (len(d.Scopes) > 0 || len(want) > 0) {
			t.Errorf("%s %d: tokens %v, scope functions %v", users[i].role, i, d.Scopes, want)
		}
		if d.Username != fmt.Sprintf("u%d", i) || d.Name != "tablet" {
			t.Errorf("%s %d: %+v", users[i].role, i, d)
		}
	}
	if n := len(got[devices[0]].Scopes); n != 5 { // s: and d: of urban, rural, far (two districts)
		t.Errorf("teacher with two exchanges: %d tokens %v, want 5", n, got[devices[0]].Scopes)
	}
}

// TestActorTokensAreThoseOf00002: the PL/pgSQL actor_tokens of migration 00014 gives
// every role the tokens that 00002's SQL function gave: teachers with exchanges in two
// districts, a cancelled and a deleted exchange, none; administrators with and without
// their district or school; unknown and missing roles.
func TestActorTokensAreThoseOf00002(t *testing.T) {
	f := newFixture(t)
	d2, far, t3 := secondDistrict(t, f)
	x2, x3, x4 := newID(), newID(), newID()
	MustApply(t, sys(), f.store,
		exchangeOp(x2, f.teacher, f.urban, far, "APPROVED"),
		exchangeOp(x3, f.other, f.rural, far, "PROPOSED"),
		exchangeOp(x4, t3, far, f.urban, "PROPOSED"),
	)
	MustApply(t, sys(), f.store,
		jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "exchange", ID: x3, HLC: nextHLC()},
		jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "exchange", ID: x4, HLC: nextHLC(), Fields: map[string]any{"status": "CANCELLED"}})
	createFunctionOf00002(t, f.db, "actor_tokens", "actor_tokens_v1")
	var lang string
	if err := f.db.Get(&lang, `SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = 'actor_tokens'`); err != nil || lang != "plpgsql" {
		t.Fatalf("actor_tokens is %q (%v), want plpgsql", lang, err)
	}
	var n int
	var diff []string
	if err := f.db.Select(&diff, `SELECT coalesce(r, '∅') || ' ' || coalesce(d::text, '∅') || ' ' || coalesce(s::text, '∅') || ' ' || coalesce(t::text, '∅') || ': '
			|| coalesce(actor_tokens(r, d, s, t)::text, 'NULL') || ' vs ' || coalesce(actor_tokens_v1(r, d, s, t)::text, 'NULL')
		FROM unnest(ARRAY['TEACHER', 'SCHOOL_ADMIN', 'DISTRICT_ADMIN', 'AUDITOR', 'ADMIN', 'NOBODY', NULL]) r,
			unnest(ARRAY[$1, $2, NULL]::uuid[]) d, unnest(ARRAY[$3, $4, $5, NULL]::uuid[]) s, unnest(ARRAY[$6, $7, $8, NULL]::uuid[]) t
		WHERE actor_tokens(r, d, s, t) IS DISTINCT FROM actor_tokens_v1(r, d, s, t)`,
		f.district, d2, f.urban, f.rural, far, f.teacher, f.other, t3); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Get(&n, `SELECT cardinality(actor_tokens('TEACHER', NULL, NULL, $1))`, f.teacher); err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 || n != 6 { // t:, three schools' ps:, two districts' pd:
		t.Fatalf("teacher with two exchanges: %d tokens; differ from 00002's: %v", n, diff)
	}
}

// secondDistrict adds to f a second district with a teaching point and a teacher there.
func secondDistrict(t *testing.T, f *fixture) (district, school, teacher string) {
	t.Helper()
	district, school, teacher = newID(), newID(), newID()
	MustApply(t, sys(), f.store,
		upsert("district", district, map[string]any{"name": "巩义市"}),
		upsert("school", school, map[string]any{"districtId": district, "name": "小关镇教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", teacher, map[string]any{"name": "张伟", "gender": "MALE", "birthDate": "1988-05-02", "schoolId": school, "joinedSchoolOn": "2012-09-01"}))
	return district, school, teacher
}
