package syncserver

import (
	"errors"
	"io"
	"net/http"
	"runtime/debug"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// servePost returns the HTTP fallback handler for messages of type typ: the body is
// one message, the answer one message (ack, changes, reset, checksum or error). The
// device token comes in Authorization: Bearer. Errors answer with the status of their
// code (errorStatus) and an error message as body.
func (s *Server) servePost(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.setup()
		log := s.log.With("remote", r.RemoteAddr, "path", r.URL.Path)
		defer func() {
			if p := recover(); p != nil {
				log.Error("sync http panic", "panic", p, "stack", string(debug.Stack()))
				writeMessage(w, &wire.Error{Code: wire.CodeInternal, Message: "the message could not be handled"})
			}
		}()
		actor, werr := s.authenticate(r.Context(), bearer(r))
		if werr != nil {
			log.Info("sync http refused", "code", werr.Code)
			writeMessage(w, werr)
			return
		}
		log = log.With("device", actor.DeviceID, "user", actor.UserID)
		if !s.limits.allow(actor.DeviceID) {
			writeMessage(w, &wire.Error{Code: wire.CodeRateLimited, Message: "too many requests; slow down"})
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.MaxMessageBytes)))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeMessage(w, &wire.Error{Code: wire.CodeTooLarge, Message: "a message may have at most " + itoa(s.MaxMessageBytes) + " bytes"})
			return
		case err != nil:
			log.Info("sync http read", "err", err)
			writeMessage(w, wire.BadMessage("cannot read the body"))
			return
		}
		m, err := wire.Decode(data)
		if err != nil {
			log.Info("sync bad message", "err", err)
			writeMessage(w, err.(*wire.Error))
			return
		}
		if m.MessageType() != typ {
			writeMessage(w, wire.BadMessage("%s takes a %s message, not %s", r.URL.Path, typ, m.MessageType()))
			return
		}
		ctx := jiaoliu.NewContextWithActor(r.Context(), actor)
		var reply wire.Message
		switch m := m.(type) {
		case *wire.Push:
			// Without a hello, ops are of the current schema unless the push says.
			reply = s.push(ctx, log, s.Schema.Version, m)
		case *wire.Pull:
			reply = s.pull(ctx, log, m)
		case *wire.Verify:
			reply = s.verify(ctx, log, m)
		}
		writeMessage(w, reply)
	}
}

// writeMessage writes m as the response body, with the status of its error code.
func writeMessage(w http.ResponseWriter, m wire.Message) {
	data, err := wire.Encode(m)
	status := http.StatusOK
	if e, ok := m.(*wire.Error); ok {
		status = errorStatus(e.Code)
	}
	if err != nil {
		data, status = wire.MustEncode(&wire.Error{Code: wire.CodeInternal, Message: "the answer could not be encoded"}), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
