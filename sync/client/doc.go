// Package client is the device side of the sync protocol v1 (shared/sync-protocol.md,
// docs/sync-protocol.md): an offline-first replica for a teacher's or an admin's
// tablet, kept in an embedded SQLite database (modernc.org/sqlite, pure Go).
//
//	c, err := client.Open("tablet.db", client.Config{ServerURL: url, DeviceID: id, Token: token})
//	opID, err := c.Upsert(ctx, "lesson", client.NewID(), map[string]any{
//		"exchangeId": ex, "date": "2026-10-12", "period": 3, "subject": "数学", "kind": "DEMONSTRATION"})
//	err = c.Sync(ctx)   // or: go c.Run(ctx) to stay connected
//	recs, err := c.List(ctx, "lesson")
//	rej, err := c.Rejections(ctx)
//
// # Writes and the outbox
//
// Upsert and Delete change the local replica and append an op to the outbox in one
// local transaction (WAL, synchronous=FULL): the op is on disk before the call
// returns. Each op is made once, with its opId and an HLC from the device's clock,
// and sent unchanged until the server acknowledges it; it leaves the outbox only in
// the transaction that stores its result. After a crash or a lost link between send
// and ack the op is resent with the same opId, and the server answers it with its
// first result (duplicate). Upsert checks the fields as the server does (names, types,
// ranges, required fields on create, the entity's rules), so most mistakes are caught
// offline; what needs the server (scope, references) comes back as a rejection.
//
// # The local view
//
// Each record keeps the server's state (as last pulled, or as an ack implies it) and
// the local view: that state with the pending ops of the outbox replayed on top. The
// server wins for every acknowledged write (a field the op lost stays the server's);
// what the user typed and has not synced yet stays visible. A rejected op disappears
// from the view and is kept, whole, with its code and messages (Rejections).
//
// # Natural keys and canonical ids
//
// The server merges a new lesson or attendance into an existing record with the same
// natural key and answers "merged" with the canonical id. The device then re-keys its
// record and rewrites the pending ops that refer to the old id: their target and their
// reference fields (an observation's lessonId). A server that follows merges
// (welcome.followsMerges, ours) applies the ops after a merge in the same batch to the
// twin, so a batch carries a create and the ops that depend on it together. With
// another server, and over HTTP (no welcome), so that no op is sent with an id that is
// about to be replaced, a batch never holds an op that depends on a natural-key record
// created earlier in the same batch: the create goes first, the rest after its ack.
// Rewriting an op that was already sent is harmless: the server answers a known opId
// with its first result whatever the op says.
//
// # Pull, reset, verify
//
// Pulls follow the cursor until more is false; each page and its cursor are stored in
// one transaction. A reset (any reason) starts a pull from the start in a new
// generation, keeping the outbox; when it completes, records it did not deliver are
// dropped from the replica (deleted for good, or out of scope) unless ops are pending
// for them. Verify sends the device's cursor, count and checksum (wire.ChecksumOf over
// the server state in the replica); if the server's cursor differs it has moved on,
// and the device pulls and verifies again; a mismatch triggers one pull from the start.
//
// # Sessions
//
// Sync connects (WebSocket, or the HTTP fallback with Config.HTTP), pushes the outbox
// in batches within maxBatch and maxMessageBytes, pulls and verifies. Run stays
// connected: it pulls on poke, pushes when the outbox grows, pulls from the start on
// reset, and reconnects with exponential backoff and jitter; over HTTP it polls. On a
// WebSocket messages are exchanged in lock step, but for pushes: up to
// Config.PushWindow batches (2 by default) wait for their acks at once, so the server
// applies one while the next is on its way. A batch never carries an op on a record
// that a batch still unacknowledged writes, nor one that refers to such a record: that
// op waits for the ack. The server applies a batch even when the one before it failed
// (rate_limited, an internal error), so a later batch must not need an earlier one
// applied first; and an ack may rename a record (merged). Since errors and resets carry no request id,
// an ambiguous one is followed by a ping barrier (everything before the pong is an
// answer to an earlier request) rather than guessed at; with another push in flight
// the connection is dropped instead, and the unacknowledged pushes are resent.
//
// # Clock
//
// The HLC's node is the device id. Its wall clock is corrected by the offset to
// welcome.serverTime (the middle of the hello round trip), or to the HTTP Date header
// over the fallback (only when more than 2 s off). The last issued HLC is stored, so
// the clock never goes back across restarts. Pulled records carry no field clocks, so
// there is nothing to move the clock past there; a re-stamped op's HLC (an extension
// of the ack) is.
package client
