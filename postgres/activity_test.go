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
	d2, far, t3, x2, x3 := newID(), newID(), newID(), newID(), newID()
	exchange := func(id, teacher, from, to string) jiaoliu.Op {
		return upsert("exchange", id, map[string]any{"teacherId": teacher, "sendingSchoolId": from, "receivingSchoolId": to,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"})
	}
	MustApply(t, sys(), f.store,
		upsert("district", d2, map[string]any{"name": "巩义市"}),
		upsert("school", far, map[string]any{"districtId": d2, "name": "小关镇教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", t3, map[string]any{"name": "张伟", "gender": "MALE", "birthDate": "1988-05-02", "schoolId": far, "joinedSchoolOn": "2012-09-01"}),
		exchange(x2, f.teacher, f.urban, far),
		exchange(x3, f.other, f.rural, far),
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
