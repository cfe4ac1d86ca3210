package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph/model"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

// ActivityPublisher publishes the sync activity that happens through GraphQL rather
// than through the sync server. *hub.Publisher implements it.
type ActivityPublisher interface {
	// Revoked records that a device was revoked; it must return at once.
	Revoked(deviceID string)
}

var _ ActivityPublisher = (*hub.Publisher)(nil)

// DefaultReauthInterval is how often a subscription checks its token again.
const DefaultReauthInterval = time.Minute

// mayWatchActivity reports whether an actor may watch live sync activity:
// administrators and auditors (auditors read, and watching is reading).
func mayWatchActivity(a *jiaoliu.Actor) bool {
	switch {
	case a == nil:
		return false
	case a.System:
		return true
	}
	switch a.Role {
	case jiaoliu.RoleDistrictAdmin, jiaoliu.RoleSchoolAdmin, jiaoliu.RoleAuditor:
		return true
	}
	return false
}

// syncActivity subscribes the caller to the activity events of the devices in their
// scope, narrowed by districtID and schoolID. The scope is computed once, here: the
// tokens of an administrator depend only on their user record, and a subscription
// whose token stops authenticating ends (forwardActivity).
func (r *Resolver) syncActivity(ctx context.Context, districtID, schoolID string) (<-chan *model.SyncActivity, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to watch sync activity")
	}
	if !mayWatchActivity(actor) {
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "only administrators and auditors may watch sync activity")
	}
	if r.Activity == nil {
		return nil, errors.New("sync activity: the server has no activity hub")
	}
	fe := jiaoliu.FieldErrors{}
	norm := func(arg, id string) string {
		if id == "" {
			return ""
		}
		u, err := uuid.Parse(id)
		if err != nil {
			fe.Add(arg, "must be an ID")
			return ""
		}
		return u.String()
	}
	districtID, schoolID = norm("districtId", districtID), norm("schoolId", schoolID)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	tokens := []string{hub.AllTokens}
	if !actor.System {
		tokens = actor.ReadTokens
		if tokens == nil {
			var err error
			if tokens, err = r.Store.ActorTokens(ctx, actor); err != nil {
				return nil, fmt.Errorf("sync activity: %w", err)
			}
		}
		if tokens == nil {
			tokens = []string{} // reads nothing, rather than everything
		}
	}
	var filter func(*hub.Event) bool
	if districtID != "" || schoolID != "" {
		filter = func(ev *hub.Event) bool {
			return (districtID == "" || slices.Contains(ev.Scopes, "d:"+districtID)) &&
				(schoolID == "" || slices.Contains(ev.Scopes, "s:"+schoolID))
		}
	}
	sub := r.Activity.SubscribeActivity(tokens, filter, hub.DefaultActivityBuffer)
	out := make(chan *model.SyncActivity, 1)
	go r.forwardActivity(ctx, sub, out, tokenFromContext(ctx))
	return out, nil
}

// forwardActivity hands the subscription's events to gqlgen until the operation ends.
// When the client reads slowly, this goroutine waits on out, the subscription's buffer
// fills and the hub drops events for this client only; the drop is then reported as
// an EVENTS_DROPPED event, after the events that were waiting.
func (r *Resolver) forwardActivity(ctx context.Context, sub *hub.ActivitySubscription, out chan<- *model.SyncActivity, token string) {
	defer close(out)
	defer sub.Close()
	var recheck <-chan time.Time
	if token != "" {
		every := r.ReauthInterval
		if every <= 0 {
			every = DefaultReauthInterval
		}
		t := time.NewTicker(every)
		defer t.Stop()
		recheck = t.C
	}
	send := func(v *model.SyncActivity) bool {
		select {
		case out <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// missed reports what was dropped once the events that were waiting are out.
	missed := func() bool {
		if len(sub.Events()) > 0 {
			return true
		}
		n, lost := sub.TakeDropped()
		if n == 0 && !lost {
			return true
		}
		ev := hub.Event{Kind: hub.KindDropped, At: time.Now().UTC()}
		if !lost {
			ev.Dropped = &n
		}
		return send(activityModel(ev))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Notices():
			if !missed() {
				return
			}
		case ev := <-sub.Events():
			if m := activityModel(ev); m != nil && !send(m) {
				return
			}
			if !missed() {
				return
			}
		case <-recheck:
			if _, err := r.Store.AuthenticateToken(ctx, token); err != nil {
				if jiaoliu.ErrorCode(err) != jiaoliu.EUNAUTHENTICATED {
					if r.Log != nil && ctx.Err() == nil {
						r.Log.WarnContext(ctx, "sync activity: check token", "error", err.Error())
					}
					continue // the check failed, not the token: try again later
				}
				endSubscription(ctx, &gqlerror.Error{Message: "the session has ended: sign in again",
					Path: graphql.GetPath(ctx), Extensions: map[string]any{"code": jiaoliu.EUNAUTHENTICATED}})
				return
			}
		}
	}
}

// endSubscription makes the websocket transport answer the operation with err when its
// channel closes. Only the websocket transport carries subscriptions here; should
// another ever be added, the error is dropped rather than crashing.
func endSubscription(ctx context.Context, err *gqlerror.Error) {
	defer func() { _ = recover() }()
	transport.AddSubscriptionError(ctx, err)
}

// activityModel turns a hub event into the GraphQL type, setting only the fields of
// its kind. An event of a kind this replica does not know (sent by a newer one during
// a rolling upgrade) gives nil.
func activityModel(ev hub.Event) *model.SyncActivity {
	kind := model.SyncActivityKind(ev.Kind)
	if !kind.IsValid() {
		return nil
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	num := func(n int) *int { return &n }
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	m := &model.SyncActivity{Kind: kind, At: ev.At, Node: str(ev.Node), DeviceID: str(ev.DeviceID),
		DeviceName: str(ev.DeviceName), UserID: str(ev.UserID), Username: str(ev.Username)}
	switch ev.Kind {
	case hub.KindPush:
		m.BatchID = &ev.BatchID
		m.Ops, m.Applied, m.Merged = num(ev.Ops), num(ev.Applied), num(ev.Merged)
		m.Rejected, m.Duplicates, m.Conflicts = num(ev.Rejected), num(ev.Duplicates), num(ev.Conflicts)
	case hub.KindPull:
		m.Records, m.More = num(ev.Records), &ev.More
	case hub.KindRejection:
		m.BatchID, m.RejectionID = &ev.BatchID, str(ev.RejectionID)
		m.Entity, m.RecordID, m.Code, m.Fields = &ev.Entity, &ev.RecordID, &ev.Code, list(ev.Fields)
	case hub.KindConflict:
		m.BatchID, m.ConflictIds = &ev.BatchID, list(ev.ConflictIDs)
		m.Entity, m.RecordID, m.Fields = &ev.Entity, &ev.RecordID, list(ev.Fields)
	case hub.KindDropped:
		m.Dropped = ev.Dropped
	}
	return m
}

// tokenKey carries the token a request or websocket authenticated with, so that a
// long-lived subscription can check it again.
type tokenKey struct{}

func withToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

func tokenFromContext(ctx context.Context) string {
	t, _ := ctx.Value(tokenKey{}).(string)
	return t
}
