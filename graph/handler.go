package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

// MaxBodyBytes bounds a GraphQL request body (and a websocket message).
const MaxBodyBytes = 1 << 20

// ETOOLARGE is the extensions.code of a request whose body is over MaxBodyBytes
// (answered with HTTP 413).
const ETOOLARGE = "TOO_LARGE"

// Option configures NewHandler.
type Option func(*handlerConfig)

type handlerConfig struct {
	activity  *hub.Hub
	publisher ActivityPublisher
	origins   []string
	keepAlive time.Duration
}

// WithActivity serves the syncActivity subscription from the activity fan-out of h
// (whose Listen the program runs), and publishes the sync activity that happens
// through GraphQL (revoked devices) through p when p is not nil.
func WithActivity(h *hub.Hub, p ActivityPublisher) Option {
	return func(c *handlerConfig) { c.activity, c.publisher = h, p }
}

// WithOrigins lets browser pages at these origins, besides the server's own, open the
// GraphQL websocket: host patterns ("admin.example.org", "*.example.org") or scheme
// and host ("https://admin.example.org"), matched with path.Match. Other origins are
// refused with 403 before the upgrade.
func WithOrigins(patterns ...string) Option {
	return func(c *handlerConfig) { c.origins = append(c.origins, patterns...) }
}

// WithKeepAlive sets how often the websocket sends keepalives and pings
// (DefaultKeepAlive by default).
func WithKeepAlive(d time.Duration) Option {
	return func(c *handlerConfig) { c.keepAlive = d }
}

// NewHandler returns the GraphQL endpoint: POST and GET transports and the websocket
// transport (graphql-transport-ws and graphql-ws, for subscriptions), a query cache,
// complexity and depth limits, an error presenter that maps domain errors to stable
// extensions.code values and hides internal ones, and a recover function that logs.
// A body over MaxBodyBytes is answered 413. Requests must pass through Authenticate
// and Middleware first.
func NewHandler(store *postgres.Store, log *slog.Logger, opts ...Option) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := handlerConfig{keepAlive: DefaultKeepAlive}
	for _, o := range opts {
		o(&cfg)
	}
	resolver := &Resolver{Store: store, Activity: cfg.activity, Publisher: cfg.publisher,
		ReauthInterval: DefaultReauthInterval, Log: log}
	srv := handler.New(NewExecutableSchema(Config{Resolvers: resolver, Complexity: complexity()}))
	srv.AddTransport(websocketTransport(store, cfg, log))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	if plainPOST {
		srv.AddTransport(transport.POST{})
	} else {
		srv.AddTransport(postTransport{})
	}
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(MaxComplexity))
	srv.Use(depthLimit{max: MaxDepth})
	// Each operation gets its own loaders: a websocket carries many operations over
	// one request, and loader caches must not outlive an operation.
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Operation == ast.Subscription && !overWebsocket(ctx) {
			// Over HTTP a subscription would hold the request until its first event.
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
				Message:    "subscriptions are served over the websocket at /graphql (graphql-transport-ws)",
				Extensions: map[string]any{"code": jiaoliu.EINVALID}}}})
		}
		return next(WithLoaders(ctx, store))
	})
	srv.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		return presentError(ctx, err, log)
	})
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "graphql panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" && !originAllowed(r, cfg.origins) {
			log.InfoContext(r.Context(), "graphql websocket: origin refused", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "this origin may not open a websocket here", jiaoliu.EFORBIDDEN)
			return
		}
		if !readBody(w, r) {
			return
		}
		srv.ServeHTTP(w, r)
	})
}

// readBody reads a request body of at most MaxBodyBytes into memory, so that a larger
// one is answered here with 413 (gqlgen's transports would answer 200). It reports
// whether the request goes on.
func readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	tooLarge := func() bool {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes", MaxBodyBytes), ETOOLARGE)
		return false
	}
	if r.ContentLength > MaxBodyBytes {
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return tooLarge()
	} else if err != nil {
		writeError(w, http.StatusBadRequest, "could not read the request body", jiaoliu.EINVALID)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// writeError answers a request that never reached GraphQL execution with a GraphQL
// error body.
func writeError(w http.ResponseWriter, status int, message, code string) {
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message": message, "extensions": map[string]any{"code": code}}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// presentError maps an error to the GraphQL response: domain errors keep their message
// and get extensions.code (and extensions.fields for INVALID); an argument or variable
// that cannot be converted to its type (a malformed Date or Time) is INVALID, with the
// offending input named in extensions.fields; errors of gqlgen itself (parse,
// validation) keep theirs; anything else is logged and shown as INTERNAL without
// detail, so SQL and stack traces never reach a client.
func presentError(ctx context.Context, err error, log *slog.Logger) *gqlerror.Error {
	gerr := graphql.DefaultErrorPresenter(ctx, err)
	if field, ok := coercedInput(ctx, err); ok {
		msg := coercionMessage(err)
		gerr.Message = fmt.Sprintf("invalid value for %s: %s", field, msg)
		gerr.Extensions = map[string]any{"code": jiaoliu.EINVALID, "fields": map[string]string{field: msg}}
		return gerr
	}
	var de *jiaoliu.Error
	if errors.As(err, &de) {
		gerr.Message = de.Message
		if gerr.Extensions == nil {
			gerr.Extensions = map[string]any{}
		}
		gerr.Extensions["code"] = de.Code
		if len(de.Fields) > 0 {
			gerr.Extensions["fields"] = de.Fields
		}
		return gerr
	}
	var ge *gqlerror.Error
	if errors.As(err, &ge) && ge.Err == nil {
		if gerr.Extensions == nil {
			gerr.Extensions = map[string]any{}
		}
		if _, ok := gerr.Extensions["code"]; !ok {
			gerr.Extensions["code"] = jiaoliu.EINVALID
		}
		return gerr
	}
	log.ErrorContext(ctx, "graphql error", "error", err.Error(), "path", gerr.Path.String())
	gerr.Message = "internal error"
	gerr.Extensions = map[string]any{"code": jiaoliu.EINTERNAL}
	return gerr
}

// coercedInput reports whether err arose converting an argument of the current field
// (a literal or a variable) to its GraphQL type, and names the offending input
// ("filter.from"). gqlgen reports such an error on the argument's path below the
// field's own path (graphql.ErrorOnPath in the generated argument code), which a
// resolver's error never is.
func coercedInput(ctx context.Context, err error) (string, bool) {
	var ge *gqlerror.Error
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !errors.As(err, &ge) {
		return "", false
	}
	base := fc.Path()
	if len(ge.Path) <= len(base) {
		return "", false
	}
	for i := range base {
		if ge.Path[i] != base[i] {
			return "", false
		}
	}
	arg, ok := ge.Path[len(base)].(ast.PathName)
	if !ok || fc.Field.Field == nil || fc.Field.Arguments.ForName(string(arg)) == nil {
		return "", false
	}
	var name strings.Builder
	for i, el := range ge.Path[len(base):] {
		switch el := el.(type) {
		case ast.PathName:
			if i > 0 {
				name.WriteByte('.')
			}
			name.WriteString(string(el))
		case ast.PathIndex:
			fmt.Fprintf(&name, "[%d]", int(el))
		}
	}
	return name.String(), true
}

// coercionMessage is the message of an input coercion error: a domain error's own,
// or gqlgen's for its built-in scalars, made clear.
func coercionMessage(err error) string {
	var de *jiaoliu.Error
	if errors.As(err, &de) {
		return de.Message
	}
	msg := err.Error()
	var ge *gqlerror.Error
	if errors.As(err, &ge) && ge.Err != nil {
		msg = ge.Err.Error()
	}
	if strings.HasPrefix(msg, "time should be") {
		return "must be a time in RFC 3339 form, e.g. 2026-10-12T08:00:00+08:00"
	}
	return msg
}

// depthLimit refuses operations nested deeper than max selections.
type depthLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = depthLimit{}

// ExtensionName implements graphql.HandlerExtension.
func (depthLimit) ExtensionName() string { return "DepthLimit" }

// Validate implements graphql.HandlerExtension.
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (d depthLimit) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	if depth := selectionDepth(op.Operation.SelectionSet, 0, map[string]bool{}); depth > d.max {
		e := gqlerror.Errorf("query is nested %d levels deep; the limit is %d", depth, d.max)
		e.Extensions = map[string]any{"code": "DEPTH_LIMIT_EXCEEDED"}
		return e
	}
	return nil
}

func selectionDepth(set ast.SelectionSet, depth int, visiting map[string]bool) int {
	deepest := depth
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue // introspection is bounded by the schema
			}
			d = depth
			if len(s.SelectionSet) > 0 {
				d = selectionDepth(s.SelectionSet, depth+1, visiting)
			}
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, depth, visiting)
		case *ast.FragmentSpread:
			if s.Definition == nil || visiting[s.Name] {
				continue
			}
			visiting[s.Name] = true
			d = selectionDepth(s.Definition.SelectionSet, depth, visiting)
			delete(visiting, s.Name)
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// Authenticate resolves the Authorization: Bearer token of a request to an actor in
// its context. A request without a token goes on unauthenticated (login and the
// playground need none; the store refuses everything else). A bad token is refused
// with 401 so a client learns at once that it must sign in again.
func Authenticate(auth jiaoliu.Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := BearerToken(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		actor, err := auth.AuthenticateToken(ctx, token)
		if err != nil {
			if jiaoliu.ErrorCode(err) != jiaoliu.EUNAUTHENTICATED {
				log.ErrorContext(r.Context(), "authenticate", "error", err.Error())
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"message":"invalid or expired token","extensions":{"code":"UNAUTHENTICATED"}}]}`))
			return
		}
		next.ServeHTTP(w, r.WithContext(withToken(jiaoliu.NewContextWithActor(r.Context(), actor), token)))
	})
}

// BearerToken returns the token of an Authorization: Bearer header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}
