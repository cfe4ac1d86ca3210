package main

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

func TestRejectedOpsAreStoredAndReplayable(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)

	// A teacher's tablet pushes a lesson with a bad period, as the sync layer would.
	teacher := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{Role: jiaoliu.RoleTeacher, TeacherID: w.teacher, Username: "wangfang"})
	op := jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: uuid.NewString(),
		HLC: hlc.NewClock("tab-1").Now(), Fields: map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "period": 14.0, "subject": "数学", "kind": "REGULAR", "topic": "分数的意义"}}
	res, err := m.Store.Apply(teacher, jiaoliu.Batch{Ops: []jiaoliu.Op{op}})
	if err != nil || res[0].Code != jiaoliu.RejectValidation {
		t.Fatalf("push: res=%+v err=%v", res, err)
	}

	var list struct {
		SyncRejections []struct {
			ID, Code, Status string
			Op               map[string]any
		}
	}
	c.farAdmin.must(`{ syncRejections { id } }`, nil, &list)
	if len(list.SyncRejections) != 0 {
		t.Fatalf("another district's admin sees the rejection")
	}
	c.ruralAdmin.must(`{ syncRejections(status: "PENDING") { id code status op } }`, nil, &list)
	if len(list.SyncRejections) != 1 || list.SyncRejections[0].Code != "validation_failed" {
		t.Fatalf("rejections=%+v", list)
	}
	if topic := list.SyncRejections[0].Op["fields"].(map[string]any)["topic"]; topic != "分数的意义" {
		t.Fatalf("stored op lost the teacher's text: %v", topic)
	}
	id := list.SyncRejections[0].ID
	if code, _ := c.ruralAdmin.code(`mutation($id: ID!) { replayRejection(id: $id) { status } }`, map[string]any{"id": id}); code != "INVALID" {
		t.Fatalf("replay without a fix: code=%s", code)
	}
	var replay struct {
		ReplayRejection struct {
			Status, RecordID string
			Rejection        struct{ Status string }
		}
	}
	c.ruralAdmin.must(`mutation($id: ID!) { replayRejection(id: $id, fields: {period: 4}) { status recordId rejection { status } } }`, map[string]any{"id": id}, &replay)
	if replay.ReplayRejection.Status != "applied" || replay.ReplayRejection.Rejection.Status != "REAPPLIED" || replay.ReplayRejection.RecordID != op.ID {
		t.Fatalf("replay=%+v", replay)
	}
	var lesson struct {
		Lesson struct {
			Period int
			Topic  string
		}
	}
	c.wang.must(`query($id: ID!) { lesson(id: $id) { period topic } }`, map[string]any{"id": op.ID}, &lesson)
	if lesson.Lesson.Period != 4 || lesson.Lesson.Topic != "分数的意义" {
		t.Fatalf("replayed lesson=%+v", lesson)
	}
	if code, _ := c.ruralAdmin.code(`mutation($id: ID!) { dismissRejection(id: $id) { status } }`, map[string]any{"id": id}); code != "CONFLICT" {
		t.Fatalf("dismissing a replayed rejection: code=%s", code)
	}
	if code, _ := c.wang.code(`mutation($id: ID!) { dismissRejection(id: $id) { status } }`, map[string]any{"id": id}); code != "FORBIDDEN" {
		t.Fatalf("teacher dismissing: code=%s", code)
	}
}

func TestConflictsAreVisibleToAdmins(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	var created struct{ CreateLesson struct{ ID string } }
	c.wang.must(lessonMutation, map[string]any{"in": map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "period": 1, "subject": "数学", "kind": "REGULAR", "topic": "新"}}, &created)
	// A tablet edit stamped before the web edit loses, and is recorded.
	teacher := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{Role: jiaoliu.RoleTeacher, TeacherID: w.teacher})
	old := hlc.Timestamp{Wall: 1_000_000_000_000, Node: "tab-1"}.String()
	res, err := m.Store.Apply(teacher, jiaoliu.Batch{Ops: []jiaoliu.Op{{OpID: uuid.NewString(), Kind: "upsert", Entity: "lesson", ID: created.CreateLesson.ID, HLC: old, Fields: map[string]any{"topic": "旧"}}}})
	if err != nil || len(res[0].Lost) != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	var out struct {
		SyncConflicts []struct {
			Field                string
			KeptValue, LostValue string
			LostHlc              string
		}
	}
	c.ruralAdmin.must(`query($id: ID!) { syncConflicts(recordId: $id) { field keptValue lostValue lostHlc } }`, map[string]any{"id": created.CreateLesson.ID}, &out)
	if len(out.SyncConflicts) != 1 || out.SyncConflicts[0].KeptValue != "新" || out.SyncConflicts[0].LostValue != "旧" || out.SyncConflicts[0].LostHlc != old {
		t.Fatalf("conflicts=%+v", out)
	}
	c.farAdmin.must(`query($id: ID!) { syncConflicts(recordId: $id) { field } }`, map[string]any{"id": created.CreateLesson.ID}, &out)
	if len(out.SyncConflicts) != 0 {
		t.Fatalf("another district sees the conflict")
	}
}
