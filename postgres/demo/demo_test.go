package demo_test

import (
	"context"
	"maps"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/postgres/demo"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

func TestLoad(t *testing.T) {
	db := pgtest.NewDB(t)
	store := postgres.NewStore(db, hlc.NewClock("server"), nil)
	ctx := context.Background()

	begin := time.Now()
	if err := demo.Load(ctx, db, store); err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Logf("loaded in %v", time.Since(begin).Round(time.Millisecond))
	counts := MustCount(t, db)
	t.Logf("counts: %v", counts)

	t.Run("SecondLoadIsNoOp", func(t *testing.T) {
		begin := time.Now()
		if err := demo.Load(ctx, db, store); err != nil {
			t.Fatalf("second Load: %v", err)
		}
		if got := MustCount(t, db); !maps.Equal(got, counts) {
			t.Fatalf("counts after a second Load=%v, want %v", got, counts)
		}
		if d := time.Since(begin); d > time.Second {
			t.Fatalf("second Load took %v", d)
		}
	})

	t.Run("Counts", func(t *testing.T) {
		exact := map[string]int{
			"district": 2, "zone": 2, "schoolGroup": 1, "school": 22, "policy": 2, "deferral": 8,
			"exchange": 53, "mentoringPair": 16, "sync_rejections": 0,
		}
		for name, want := range exact {
			if got := counts[name]; got != want {
				t.Errorf("%s count=%d, want %d", name, got, want)
			}
		}
		ranges := map[string][2]int{
			"teacher": {270, 300}, "schoolStint": {300, 800}, "lesson": {10000, 20000}, "attendance": {3000, 6000},
			"researchActivity": {250, 400}, "observation": {250, 600}, "mentoringActivity": {80, 170},
			"evaluation": {50, 90}, "semesterReport": {40, 70},
		}
		for name, r := range ranges {
			if got := counts[name]; got < r[0] || got > r[1] {
				t.Errorf("%s count=%d, want %d..%d", name, got, r[0], r[1])
			}
		}
	})

	t.Run("WellKnownIDs", func(t *testing.T) {
		for _, c := range []struct {
			query, id, want string
		}{
			{`SELECT name FROM districts WHERE id = $1`, demo.DistrictID, "新密市"},
			{`SELECT name FROM districts WHERE id = $1`, demo.OtherDistrictID, "榆林市"},
			{`SELECT preset FROM policies WHERE id = $1`, demo.PolicyID, "CHUANDI"},
			{`SELECT s.name FROM school_groups g JOIN schools s ON s.id = g.main_school_id WHERE g.id = $1`, demo.GroupID, "双河五小"},
			{`SELECT name FROM schools WHERE id = $1`, demo.SchoolCaoheID, "曹河教学点"},
			{`SELECT locality || ' ' || tier FROM schools WHERE id = $1`, demo.SchoolZhujiagouID, "RURAL WEAK"},
			{`SELECT name || ' ' || position FROM teachers WHERE id = $1`, demo.PrincipalShuangheID, "宋建国 PRINCIPAL"},
			{`SELECT birth_date::text || ' ' || gender FROM teachers WHERE id = $1`, demo.TeacherTurns50ID, "1976-09-01 MALE"},
			{`SELECT birth_date::text || ' ' || gender FROM teachers WHERE id = $1`, demo.TeacherTurns50FemaleID, "1976-09-01 FEMALE"},
			{`SELECT birth_date::text FROM teachers WHERE id = $1`, demo.TeacherAge49ID, "1976-09-02"},
			{`SELECT joined_school_on::text FROM teachers WHERE id = $1`, demo.TeacherSixYearsID, "2020-09-01"},
			{`SELECT joined_school_on::text FROM teachers WHERE id = $1`, demo.TeacherFiveYearsID, "2020-09-02"},
			{`SELECT reason FROM deferrals WHERE teacher_id = $1`, demo.TeacherDeferredID, "PREGNANCY"},
			{`SELECT reason FROM deferrals WHERE teacher_id = $1`, demo.PrincipalChuandiID, "CENTRE_SCHOOL_PRINCIPAL"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeFullTimeID, "ACTIVE"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeTerminatedID, "TERMINATED"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeProposedID, "PROPOSED"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeApprovedID, "APPROVED"},
			{`SELECT status || ' ' || (reported_on IS NULL) FROM exchanges WHERE id = $1`, demo.ExchangeNoShowID, "PUBLISHED true"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeRefusedID, "REFUSED"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeDeferredID, "DEFERRED"},
			{`SELECT status FROM exchanges WHERE id = $1`, demo.ExchangeCancelledID, "CANCELLED"},
			{`SELECT status || ' ' || academic_year FROM exchanges WHERE id = $1`, demo.ExchangeCompletedID, "COMPLETED 2025-2026"},
			{`SELECT reported_on::text FROM exchanges WHERE id = $1`, demo.ExchangeLateID, "2026-09-10"},
			{`SELECT mode FROM exchanges WHERE id = $1`, demo.ExchangeLessonDeliveryID, "LESSON_DELIVERY"},
			{`SELECT mode FROM exchanges WHERE id = $1`, demo.ExchangeSecondmentID, "SECONDMENT"},
			{`SELECT mode FROM exchanges WHERE id = $1`, demo.ExchangeItinerantID, "ITINERANT"},
			{`SELECT mode FROM exchanges WHERE id = $1`, demo.ExchangeGroupID, "GROUP_INTERNAL"},
			{`SELECT mode FROM exchanges WHERE id = $1`, demo.ExchangePairedID, "PAIRED_SUPPORT"},
			{`SELECT s.district_id::text FROM exchanges x JOIN schools s ON s.id = x.receiving_school_id WHERE x.id = $1`, demo.OtherExchangeID, demo.OtherDistrictID},
			{`SELECT teacher_id::text FROM exchanges WHERE id = $1`, demo.ExchangeRepeatID, demo.TeacherRepeatID},
			{`SELECT mentor_id || ' ' || mentee_id FROM mentoring_pairs WHERE id = $1`, demo.PairID, demo.TeacherFullTimeID + " " + demo.MenteeID},
		} {
			var got string
			if err := db.Get(&got, c.query, c.id); err != nil {
				t.Errorf("%s [%s]: %v", c.query, c.id, err)
			} else if got != c.want {
				t.Errorf("%s [%s]=%q, want %q", c.query, c.id, got, c.want)
			}
		}
	})

	t.Run("Absences", func(t *testing.T) {
		for _, c := range []struct {
			exchange      string
			longest, year int
		}{
			{demo.ExchangeAbsentID, 11, 11},
			{demo.ExchangeAbsentTenID, 10, 10},
			{demo.ExchangeAbsentYearID, 2, 16},
			{demo.ExchangeFullTimeID, 0, 0},
		} {
			longest, year := MustAbsences(t, db, c.exchange)
			if longest != c.longest || year != c.year {
				t.Errorf("exchange %s: longest ABSENT run=%d, ABSENT days=%d; want %d, %d", c.exchange, longest, year, c.longest, c.year)
			}
		}
		var first, last string
		if err := db.QueryRow(`SELECT min(date)::text, max(date)::text FROM attendance WHERE exchange_id = $1 AND status = 'ABSENT'`,
			demo.ExchangeAbsentID).Scan(&first, &last); err != nil {
			t.Fatal(err)
		}
		if first != "2026-11-02" || last != "2026-11-16" {
			t.Errorf("absent run %s..%s, want 2026-11-02..2026-11-16", first, last)
		}
		// No other exchange comes near the limits.
		var others int
		if err := db.Get(&others, `SELECT count(DISTINCT exchange_id) FROM attendance WHERE status = 'ABSENT' AND exchange_id NOT IN ($1, $2, $3, $4)`,
			demo.ExchangeAbsentID, demo.ExchangeAbsentTenID, demo.ExchangeAbsentYearID, demo.ExchangeBasicID); err != nil {
			t.Fatal(err)
		}
		if others != 0 {
			t.Errorf("%d other exchanges have ABSENT days", others)
		}
	})

	t.Run("Consistency", func(t *testing.T) {
		for _, c := range []struct {
			what, query string
			want        int
		}{
			{"lessons on a day not present", `SELECT count(*) FROM lessons l JOIN attendance a ON a.exchange_id = l.exchange_id AND a.date = l.date WHERE a.status <> 'PRESENT'`, 0},
			{"lessons without attendance", `SELECT count(*) FROM lessons l WHERE NOT EXISTS (SELECT 1 FROM attendance a WHERE a.exchange_id = l.exchange_id AND a.date = l.date)`, 0},
			{"lessons on weekends", `SELECT count(*) FROM lessons WHERE extract(isodow FROM date) > 5 AND date NOT IN ('2025-09-28', '2025-10-11', '2026-09-20', '2026-10-10')`, 0},
			{"lessons after 2027-01-15", `SELECT count(*) FROM lessons WHERE date > '2027-01-15'`, 0},
			{"schools without exactly one principal", `SELECT count(*) FROM schools s WHERE (SELECT count(*) FROM teachers t WHERE t.school_id = s.id AND t.position = 'PRINCIPAL') <> 1`, 0},
			{"ACTIVE exchanges of 2026-2027", `SELECT count(*) FROM exchanges WHERE academic_year = '2026-2027' AND status = 'ACTIVE'`, 31},
			{"exchanges of 2026-2027 in 新密市", `SELECT count(*) FROM exchanges x JOIN schools s ON s.id = x.sending_school_id WHERE x.academic_year = '2026-2027' AND s.district_id = '` + demo.DistrictID + `'`, 40},
			{"ACTIVE exchanges without lessons", `SELECT count(*) FROM exchanges x WHERE status = 'ACTIVE' AND NOT EXISTS (SELECT 1 FROM lessons l WHERE l.exchange_id = x.id)`, 0},
			{"modes of 2026-2027", `SELECT count(DISTINCT mode) FROM exchanges WHERE academic_year = '2026-2027'`, 6},
			{"statuses", `SELECT count(DISTINCT status) FROM exchanges`, 9},
			{"deferral reasons", `SELECT count(DISTINCT reason) FROM deferrals`, 6},
			{"finalized BASIC semester evaluations", `SELECT count(*) FROM evaluations WHERE finalized AND grade = 'BASIC' AND term = '2026-2027-1'`, 1},
			{"finalized UNQUALIFIED evaluations", `SELECT count(*) FROM evaluations WHERE finalized AND grade = 'UNQUALIFIED' AND exchange_id = '` + demo.ExchangeAbsentID + `'`, 1},
			{"END_OF_EXCHANGE evaluations signed by both", `SELECT count(*) FROM evaluations WHERE period = 'END_OF_EXCHANGE' AND finalized AND sending_signed AND receiving_signed`, 12},
			{"open lessons without a level", `SELECT count(*) FROM lessons WHERE kind = 'OPEN' AND open_level IS NULL`, 0},
			{"districts with more than 30% quality or weak schools", `SELECT count(*) FROM (SELECT district_id FROM schools GROUP BY district_id
				HAVING count(*) FILTER (WHERE tier = 'QUALITY') > 0.3 * count(*) OR count(*) FILTER (WHERE tier = 'WEAK') > 0.3 * count(*)) d`, 0},
			{"pairs with fewer than 5 or more than 10 activities", `SELECT count(*) FROM mentoring_pairs p WHERE (SELECT count(*) FROM mentoring_activities a WHERE a.pair_id = p.id) NOT BETWEEN 5 AND 10`, 0},
			{"teachers who were under 16 when they joined", `SELECT count(*) FROM teachers WHERE joined_school_on < birth_date + interval '16 years'`, 0},
		} {
			var got int
			if err := db.Get(&got, c.query); err != nil {
				t.Errorf("%s: %v", c.what, err)
			} else if got != c.want {
				t.Errorf("%s=%d, want %d", c.what, got, c.want)
			}
		}
	})
}

func TestOpsAreDeterministic(t *testing.T) {
	a, b := demo.Ops(), demo.Ops()
	if got, want := len(b), len(a); got != want {
		t.Fatalf("second build has %d ops, want %d", got, want)
	}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("op %d differs between builds:\n%+v\n%+v", i, a[i], b[i])
		}
	}
	// The HLCs of the writes to one record increase, so that later writes win, and lie
	// in the past, so that the server never re-stamps them.
	now := time.Now().UnixMilli()
	last := map[string]string{}
	for i, op := range a {
		ts, err := hlc.Parse(op.HLC)
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		key := op.Entity + "/" + op.ID
		if prev, ok := last[key]; ok && op.HLC <= prev {
			t.Fatalf("op %d: %s HLC %s not after %s", i, key, op.HLC, prev)
		}
		last[key] = op.HLC
		if ts.Wall > now {
			t.Fatalf("op %d: HLC %s is in the future", i, op.HLC)
		}
	}
}

// MustCount returns the number of rows of each entity's table, and of rejected ops.
func MustCount(tb testing.TB, db *sqlx.DB) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for _, name := range jiaoliu.EntityOrder {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM `+jiaoliu.Entities[name].Table); err != nil {
			tb.Fatalf("count %s: %v", name, err)
		}
		out[name] = n
	}
	for _, table := range []string{"sync_rejections", "audit_log", "sync_ops"} {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM `+table); err != nil {
			tb.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// MustAbsences returns the longest run of ABSENT records of an exchange in date order
// and the number of its ABSENT records.
func MustAbsences(tb testing.TB, db *sqlx.DB, exchange string) (longest, total int) {
	tb.Helper()
	var statuses []string
	if err := db.Select(&statuses, `SELECT status FROM attendance WHERE exchange_id = $1 AND NOT deleted ORDER BY date`, exchange); err != nil {
		tb.Fatal(err)
	}
	run := 0
	for _, s := range statuses {
		if s == string(jiaoliu.AttendanceAbsent) {
			run++
			total++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest, total
}
