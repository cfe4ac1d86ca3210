package hub_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

// received returns the events waiting for s.
func received(s *hub.ActivitySubscription) []hub.Event {
	var out []hub.Event
	for {
		select {
		case ev := <-s.Events():
			out = append(out, ev)
		default:
			return out
		}
	}
}

func ids(evs []hub.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func TestActivityIsScoped(t *testing.T) {
	h := hub.New(nil)
	admin := h.SubscribeActivity(nil, nil, 0)
	district := h.SubscribeActivity([]string{"d:1"}, nil, 0)
	school := h.SubscribeActivity([]string{"s:a"}, nil, 0)
	// A district admin narrowed to school b: filters never widen the tokens.
	narrowed := h.SubscribeActivity([]string{"d:1"}, func(ev *hub.Event) bool { return slices.Contains(ev.Scopes, "s:b") }, 0)
	nothing := h.SubscribeActivity([]string{}, nil, 0)
	defer func() {
		for _, s := range []*hub.ActivitySubscription{admin, district, school, narrowed, nothing} {
			s.Close()
		}
	}()
	h.Deliver(hub.Event{ID: "a", Kind: hub.KindPush, Scopes: []string{"d:1", "s:a"}})
	h.Deliver(hub.Event{ID: "b", Kind: hub.KindPush, Scopes: []string{"d:1", "s:b"}})
	h.Deliver(hub.Event{ID: "c", Kind: hub.KindPush, Scopes: []string{"d:2", "s:b"}})
	h.Deliver(hub.Event{ID: "admin", Kind: hub.KindPush, Scopes: []string{}})
	for _, tt := range []struct {
		name string
		sub  *hub.ActivitySubscription
		want []string
	}{
		{"admin", admin, []string{"a", "b", "c", "admin"}},
		{"district", district, []string{"a", "b"}},
		{"school", school, []string{"a"}},
		{"narrowed", narrowed, []string{"b"}},
		{"no tokens", nothing, nil},
	} {
		if got := ids(received(tt.sub)); !slices.Equal(got, tt.want) {
			t.Errorf("%s received %v, want %v", tt.name, got, tt.want)
		}
	}
	admin.Close()
	admin.Close()
	if got, want := h.ActivityLen(), 4; got != want {
		t.Fatalf("ActivityLen()=%d, want %d", got, want)
	}
}

func TestSlowActivitySubscriberMissesEventsOnly(t *testing.T) {
	h := hub.New(nil)
	slow := h.SubscribeActivity(nil, nil, 2)
	fast := h.SubscribeActivity(nil, nil, 0)
	defer slow.Close()
	defer fast.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5; i++ {
			h.Deliver(hub.Event{ID: string(rune('a' + i)), Kind: hub.KindPull})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Deliver blocked on a slow subscriber")
	}
	if got := ids(received(fast)); len(got) != 5 {
		t.Fatalf("fast subscriber received %v", got)
	}
	if got := ids(received(slow)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("slow subscriber received %v", got)
	}
	select {
	case <-slow.Notices():
	default:
		t.Fatal("no notice of dropped events")
	}
	if n, lost := slow.TakeDropped(); n != 3 || lost {
		t.Fatalf("TakeDropped()=%d, %v, want 3, false", n, lost)
	}
	if n, _ := slow.TakeDropped(); n != 0 {
		t.Fatal("TakeDropped does not clear")
	}
	h.Lost()
	<-fast.Notices()
	if n, lost := fast.TakeDropped(); n != 0 || !lost {
		t.Fatalf("after Lost: TakeDropped()=%d, %v, want 0, true", n, lost)
	}
}

func TestPublisherQueueIsBounded(t *testing.T) {
	p := hub.NewPublisher(nil, "n", nil) // never run: the queue fills up
	start := time.Now()
	for i := 0; i < hub.DefaultPublishQueue+10; i++ {
		p.Connected(uuid.NewString())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("publishing blocked")
	}
	if got, want := p.Dropped(), int64(10); got != want {
		t.Fatalf("Dropped()=%d, want %d", got, want)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// activityWorld is a district with a school, a teacher user with a device, and the
// store, on a migrated database.
type activityWorld struct {
	dsn                       string
	store                     *postgres.Store
	district, school, teacher string
	device                    *jiaoliu.Device
	actor                     *jiaoliu.Actor
	exchange                  string
}

func newActivityWorld(t *testing.T) activityWorld {
	t.Helper()
	w := activityWorld{dsn: pgtest.NewDSN(t)}
	db := pgtestDB(t, w.dsn)
	w.store = postgres.NewStore(db, hlc.NewClock("test"), slog.New(slog.DiscardHandler))
	sys := jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
	clock := hlc.NewClock("seed")
	w.district, w.school, w.teacher, w.exchange = uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	other := uuid.NewString()
	up := func(entity, id string, fields map[string]any) jiaoliu.Op {
		return jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: clock.Now(), Fields: fields}
	}
	if _, err := w.store.Apply(sys, jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		up("district", w.district, map[string]any{"name": "新密市"}),
		up("school", w.school, map[string]any{"districtId": w.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		up("school", other, map[string]any{"districtId": w.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		up("teacher", w.teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": other, "joinedSchoolOn": "2015-09-01"}),
		up("exchange", w.exchange, map[string]any{"teacherId": w.teacher, "sendingSchoolId": other, "receivingSchoolId": w.school,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	}}); err != nil {
		t.Fatal(err)
	}
	u, err := w.store.CreateUser(sys, postgres.NewUser{Username: "wangfang", Password: "password-1", Role: jiaoliu.RoleTeacher, TeacherID: w.teacher})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := w.store.RegisterDevice(sys, "平板", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.device = d
	w.actor = postgres.ActorOf(u, d.ID, "")
	return w
}

func listenHub(t *testing.T, dsn string) *hub.Hub {
	t.Helper()
	h := hub.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Listen(ctx, dsn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	select {
	case <-h.Ready():
	case err := <-done:
		t.Fatalf("listen: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening")
	}
	return h
}

func nextEvent(t *testing.T, s *hub.ActivitySubscription) hub.Event {
	t.Helper()
	for {
		select {
		case ev := <-s.Events():
			return ev
		case <-s.Notices(): // the Lost of a fresh listener
			s.TakeDropped()
		case <-time.After(10 * time.Second):
			t.Fatal("no activity event")
		}
	}
}

// TestPublisherReachesEveryHub publishes on one connection and receives on two hubs
// (two replicas) listening on the same database: the events carry the device, its
// user, the user's district and school tokens, and the stored rejection's id.
func TestPublisherReachesEveryHub(t *testing.T) {
	w := newActivityWorld(t)
	a, b := listenHub(t, w.dsn), listenHub(t, w.dsn)
	onA := a.SubscribeActivity([]string{"s:" + w.school}, nil, 0)
	onB := b.SubscribeActivity([]string{"d:" + w.district}, nil, 0)
	elsewhere := b.SubscribeActivity([]string{"d:" + uuid.NewString()}, nil, 0)
	defer onA.Close()
	defer onB.Close()
	defer elsewhere.Close()

	pub := hub.NewPublisher(w.store, "replica-a", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pub.Run(ctx)
	defer pub.Close(context.Background())

	pub.Connected(w.device.ID)
	for _, s := range []*hub.ActivitySubscription{onA, onB} {
		ev := nextEvent(t, s)
		if ev.Kind != hub.KindConnected || ev.DeviceID != w.device.ID || ev.DeviceName != "平板" || ev.Username != "wangfang" || ev.Node != "replica-a" {
			t.Fatalf("connect event=%+v", ev)
		}
		// The teacher's own school and the schools of their exchange, with the district.
		if !slices.Contains(ev.Scopes, "s:"+w.school) || !slices.Contains(ev.Scopes, "d:"+w.district) || slices.ContainsFunc(ev.Scopes, func(s string) bool { return s[:2] == "t:" }) {
			t.Fatalf("scopes=%v", ev.Scopes)
		}
	}

	// A push with one good op and one rejected (stored) op.
	dev := jiaoliu.NewContextWithActor(context.Background(), w.actor)
	clock := hlc.NewClock(w.device.ID)
	ops := []jiaoliu.Op{
		{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: uuid.NewString(), HLC: clock.Now(),
			Fields: map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "period": 3, "subject": "数学", "kind": "REGULAR"}},
		{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: uuid.NewString(), HLC: clock.Now(),
			Fields: map[string]any{"exchangeId": w.exchange, "date": "2026-10-13", "period": 13, "subject": "数学", "kind": "REGULAR"}},
	}
	results, err := w.store.Apply(dev, jiaoliu.Batch{Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	pub.Pushed(w.actor, "b-1", ops, results)
	push := nextEvent(t, onB)
	if push.Kind != hub.KindPush || push.BatchID != "b-1" || push.Ops != 2 || push.Applied != 1 || push.Rejected != 1 {
		t.Fatalf("push event=%+v", push)
	}
	rej := nextEvent(t, onB)
	stored, err := w.store.Rejections(jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor), "PENDING", 10)
	if err != nil || len(stored) != 1 {
		t.Fatalf("rejections=%v, %v", stored, err)
	}
	if rej.Kind != hub.KindRejection || rej.RejectionID != strconv.FormatInt(stored[0].ID, 10) || rej.Code != jiaoliu.RejectValidation ||
		rej.Entity != "lesson" || rej.RecordID != ops[1].ID || !slices.Equal(rej.Fields, []string{"period"}) {
		t.Fatalf("rejection event=%+v (stored %d)", rej, stored[0].ID)
	}
	if got := received(elsewhere); len(got) != 0 {
		t.Fatalf("a watcher of another district received %+v", got)
	}
}
