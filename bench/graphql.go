package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// GraphQL is a small GraphQL client for the benchmarks.
type GraphQL struct {
	URL    string // http://host:port/graphql
	Token  string
	Client *http.Client
}

// Login signs in and keeps the session token.
func (g *GraphQL) Login(ctx context.Context, username, password string) error {
	var out struct {
		Login struct{ Token string } `json:"login"`
	}
	if err := g.Do(ctx, `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`,
		map[string]any{"u": username, "p": password}, &out); err != nil {
		return err
	}
	g.Token = out.Login.Token
	return nil
}

// Do runs a query and decodes its data into out (when not nil); GraphQL errors are
// errors.
func (g *GraphQL) Do(ctx context.Context, query string, vars map[string]any, out any) error {
	return g.DoRequest(ctx, NewRequest(query, vars), out)
}

// DoRequest is Do with the query and variables encoded beforehand.
func (g *GraphQL) DoRequest(ctx context.Context, r *Request, out any) error {
	var buf bytes.Buffer
	status, raw, err := g.post(ctx, r.body, &buf)
	if err != nil {
		return err
	}
	return decodeResponse(status, raw, out)
}

// Request is a query with its variables, encoded once: a benchmark's clients send the
// same request thousands of times.
type Request struct{ body []byte }

// NewRequest encodes a query and its variables.
func NewRequest(query string, vars map[string]any) *Request {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return &Request{body: body}
}

// responseBuffers are the buffers Send reads responses into.
var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Send runs r and checks its answer without decoding its data, as a load generator
// does: an HTTP status other than 200, a body that is not JSON, or one with GraphQL
// errors is an error. Only an answer that could hold errors is decoded (for their
// message).
// The list benchmarks' clients share the 2 cores with the servers they measure, and
// decoding every answer cost them a third of their CPU.
func (g *GraphQL) Send(ctx context.Context, r *Request) error {
	buf := responseBuffers.Get().(*bytes.Buffer)
	defer responseBuffers.Put(buf)
	buf.Reset()
	status, raw, err := g.post(ctx, r.body, buf)
	if err != nil {
		return err
	}
	raw = bytes.TrimSpace(raw)
	if status == http.StatusOK && bytes.HasPrefix(raw, []byte(`{"data":{`)) && bytes.HasSuffix(raw, []byte("}")) &&
		!bytes.Contains(raw, []byte(`"errors"`)) {
		return nil
	}
	// Decoded in full: errors, or an answer the quick look could not tell (a value
	// holding the text "errors").
	if err := decodeResponse(status, raw, nil); err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("graphql: unexpected answer %d %.200s", status, raw)
	}
	return nil
}

// post sends a GraphQL request body and returns the answer's status and body, read
// into buf.
func (g *GraphQL) post(ctx context.Context, body []byte, buf *bytes.Buffer) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	c := g.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, buf.Bytes(), nil
}

// decodeResponse decodes a GraphQL answer's data into out (when not nil); GraphQL
// errors are errors.
func decodeResponse(status int, raw []byte, out any) error {
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("graphql: %d %s", status, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql: %s", r.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}
