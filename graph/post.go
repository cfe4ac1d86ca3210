package graph

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// postTransport is gqlgen's POST transport (transport.POST, default settings) with
// one change: a response that is only data is written as {"data":…} around the bytes
// execution produced, instead of through json.Marshal, which validates and compacts
// those bytes again (with the write, 10 % of the server's CPU for a page of exchanges).
// Everything else — headers, status codes, errors, the request's decoding — is
// gqlgen's, and a response with errors or extensions, or whose data holds a character
// json.Marshal would escape (<, >, &, U+2028, U+2029), goes through json.Marshal as
// before. TestPostTransportIsGqlgens compares the two on the wire.
type postTransport struct{ transport.POST }

// plainPOST serves POST with gqlgen's own transport (tests compare the two);
// dataWrites counts the responses written around their data.
var (
	plainPOST  = false
	dataWrites atomic.Int64
)

const (
	contentJSON            = "application/json"
	contentGraphQLResponse = "application/graphql-response+json"
)

func (h postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	contentType := responseContentType(r)
	w.Header().Add("Content-Type", contentType)
	start := graphql.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("could not read request body: %+v", err)}))
		return
	}
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf(
			"json request body could not be decoded: %+v body:%s", err, string(body))}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(opErr) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity
			if contentType == contentGraphQLResponse {
				status = http.StatusBadRequest
			}
		}
		w.WriteHeader(status)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

// responseContentType is gqlgen's choice of the response's media type from the Accept
// header, for a POST transport without headers of its own.
func responseContentType(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return contentJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", contentJSON:
			return contentJSON
		case contentGraphQLResponse:
			return contentGraphQLResponse
		}
	}
	return contentGraphQLResponse
}

// writeResponse writes resp as json.Marshal would.
func writeResponse(w io.Writer, resp *graphql.Response) {
	if resp != nil && len(resp.Errors) == 0 && resp.Label == "" && resp.Path == nil && resp.HasNext == nil &&
		len(resp.Extensions) == 0 && len(resp.Data) > 0 && !needsEscape(resp.Data) {
		b := make([]byte, 0, len(resp.Data)+10)
		b = append(b, `{"data":`...)
		b = append(b, resp.Data...)
		_, _ = w.Write(append(b, '}'))
		dataWrites.Add(1)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		panic(err) // as gqlgen's transports: a response that cannot be marshalled is a bug
	}
	_, _ = w.Write(b)
}

// needsEscape reports whether json.Marshal would change data (compact JSON, as
// execution writes it): it escapes <, > and & and the line and paragraph separators.
func needsEscape(data []byte) bool {
	for i, c := range data {
		switch c {
		case '<', '>', '&':
			return true
		case 0xE2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
				return true
			}
		}
	}
	return false
}
