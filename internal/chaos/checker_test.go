package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// checkedEntities are the entities the devices write.
var checkedEntities = []string{"lesson", "attendance", "researchActivity"}

// report is the checker's verdict.
type report struct {
	ops, acked, unacked, oracleRecords, oracleFields int
	// lost counts acknowledged writes the server does not have: an acknowledged op
	// missing from sync_ops, a record the oracle expects that the server lacks, and a
	// field whose value or HLC is not the one the last writer (by HLC) gave it.
	lost int
	// doubled counts ops applied twice: op_ids with more than one audit row, rejection
	// or conflict per field, live records sharing a natural key, records no op made,
	// resends answered without duplicate, and answers that disagree.
	doubled int
	// diverged counts records where a device's replica differs from the server's view
	// for its user (pulled afresh from the start), and verify checksums that differ.
	diverged int
	// checksums counts devices whose verify checksum matched the server's.
	checksums, devices int
	details            []string
}

func (r *report) addf(counter *int, format string, args ...any) {
	*counter++
	if len(r.details) < 40 {
		r.details = append(r.details, fmt.Sprintf(format, args...))
	}
}

// String is the line the suite prints.
func (r report) String() string {
	return fmt.Sprintf("lost=%d doubled=%d diverged=%d checksums=%d/%d equal (ops=%d acked=%d unacked=%d oracle: %d records, %d fields)",
		r.lost, r.doubled, r.diverged, r.checksums, r.devices, r.ops, r.acked, r.unacked, r.oracleRecords, r.oracleFields)
}

// OK reports whether nothing was lost, doubled or diverged.
func (r report) OK() bool {
	return r.lost == 0 && r.doubled == 0 && r.diverged == 0 && r.unacked == 0 && r.checksums == r.devices
}

// oracleField is the value the last writer by HLC gave a field.
type oracleField struct {
	value []byte // JSON
	hlc   string
	opID  string
}

type oracleRecord struct {
	entity, id string
	fields     map[string]oracleField
	deleted    bool
}

// serverRecord is a record as the database holds it.
type serverRecord struct {
	deleted bool
	version string
	clock   map[string]string
	fields  map[string][]byte // by GraphQL field name, JSON
}

// check compares the oracle (from every acknowledged op of every device), the
// database, and every device's replica; matched says which devices' last verify
// matched. The devices must have settled (nothing to push, pulled to more=false).
func check(ctx context.Context, tb testing.TB, db *sqlx.DB, serverURL string, devices []*device, matched map[*device]bool) report {
	tb.Helper()
	var r report
	r.devices = len(devices)

	// The oracle: per-field last writer wins by HLC over the acknowledged ops. A
	// re-stamped op counts with the server's HLC from its answer; a merged create
	// counts for the canonical record; deletes are final (a tombstone keeps edits).
	oracle := map[string]*oracleRecord{}
	var acked []string
	for _, d := range devices {
		d.mu.Lock()
		for _, id := range d.order {
			o := d.ops[id]
			r.ops++
			if o.ack == nil {
				r.addf(&r.unacked, "%s: op %s (%s %s) never acknowledged", d.name, id, o.op.Kind, o.op.Entity)
				continue
			}
			r.acked++
			acked = append(acked, id)
			if o.ack.Status == jiaoliu.StatusRejected {
				continue
			}
			rid := o.op.ID
			if o.ack.CanonicalID != "" {
				rid = o.ack.CanonicalID
			}
			key := o.op.Entity + "/" + rid
			rec := oracle[key]
			if rec == nil {
				rec = &oracleRecord{entity: o.op.Entity, id: rid, fields: map[string]oracleField{}}
				oracle[key] = rec
			}
			if o.op.Kind == jiaoliu.OpDelete {
				rec.deleted = true
				continue
			}
			eff := o.op.HLC
			if o.ack.Restamped {
				eff = o.ack.HLC
			}
			for name, v := range o.op.Fields {
				if cur, ok := rec.fields[name]; !ok || eff > cur.hlc {
					rec.fields[name] = oracleField{value: normJSON(v), hlc: eff, opID: id}
				}
			}
		}
		d.mu.Unlock()
	}
	r.oracleRecords = len(oracle)

	// Durability of the ack: every acknowledged op is remembered by the server.
	var known []string
	if err := db.SelectContext(ctx, &known, `SELECT op_id FROM sync_ops WHERE op_id = ANY($1)`, pq.Array(acked)); err != nil {
		tb.Fatalf("checker: sync_ops: %v", err)
	}
	if len(known) != len(acked) {
		have := map[string]bool{}
		for _, id := range known {
			have[id] = true
		}
		for _, id := range acked {
			if !have[id] {
				r.addf(&r.lost, "acknowledged op %s is not in sync_ops", id)
			}
		}
	}

	// The server's records.
	server := map[string]serverRecord{}
	for _, name := range checkedEntities {
		def := jiaoliu.Entities[name]
		rows, err := db.QueryxContext(ctx, fmt.Sprintf(`SELECT t.id::text, t.deleted, t.version::text, t.field_hlc::text, row_to_json(t)::text FROM %s t`, def.Table))
		if err != nil {
			tb.Fatalf("checker: read %s: %v", def.Table, err)
		}
		for rows.Next() {
			var id, version, clock, row string
			var deleted bool
			if err := rows.Scan(&id, &deleted, &version, &clock, &row); err != nil {
				tb.Fatalf("checker: scan %s: %v", def.Table, err)
			}
			sr := serverRecord{deleted: deleted, version: version, fields: map[string][]byte{}}
			if sr.clock, err = postgres.DecodeFieldClock(clock); err != nil {
				tb.Fatalf("checker: %s %s: %v", def.Table, id, err)
			}
			var cols map[string]any
			_ = json.Unmarshal([]byte(row), &cols)
			for _, f := range def.Fields {
				sr.fields[f.Name] = normJSON(cols[f.Column()])
			}
			server[name+"/"+id] = sr
		}
		rows.Close()
	}

	// Oracle against the server, field by field.
	keys := make([]string, 0, len(oracle))
	for k := range oracle {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := oracle[k]
		s, ok := server[k]
		if !ok {
			r.addf(&r.lost, "record %s: acknowledged, missing on the server", k)
			continue
		}
		if o.deleted != s.deleted {
			r.addf(&r.lost, "record %s: deleted=%v on the server, the oracle says %v", k, s.deleted, o.deleted)
		}
		for name, f := range o.fields {
			r.oracleFields++
			if !bytes.Equal(s.fields[name], f.value) {
				r.addf(&r.lost, "record %s field %s: server %s, oracle %s (op %s, hlc %s; server hlc %s)", k, name, s.fields[name], f.value, f.opID, f.hlc, s.clock[name])
			} else if s.clock[name] != f.hlc {
				r.addf(&r.lost, "record %s field %s: server hlc %s, oracle hlc %s (op %s)", k, name, s.clock[name], f.hlc, f.opID)
			}
		}
	}
	for k := range server {
		if oracle[k] == nil {
			r.addf(&r.doubled, "record %s on the server was made by no acknowledged op", k)
		}
	}

	// Applied twice: one audit row per applied op, one rejection per op, one conflict
	// per op and field, one live record per natural key.
	for _, q := range []struct{ what, sql string }{
		{"audit rows of one op", `SELECT op_id || ': ' || count(*) FROM audit_log WHERE op_id IS NOT NULL GROUP BY op_id HAVING count(*) > 1`},
		{"rejections of one op", `SELECT op_id || ': ' || count(*) FROM sync_rejections GROUP BY op_id HAVING count(*) > 1`},
		{"conflicts of one op and field", `SELECT lost_op_id || ' ' || field || ': ' || count(*) FROM sync_conflicts GROUP BY lost_op_id, field HAVING count(*) > 1`},
		{"live lessons of one natural key", `SELECT exchange_id || ' ' || date || ' ' || period || ': ' || count(*) FROM lessons WHERE NOT deleted GROUP BY exchange_id, date, period HAVING count(*) > 1`},
		{"live attendance of one natural key", `SELECT exchange_id || ' ' || date || ': ' || count(*) FROM attendance WHERE NOT deleted GROUP BY exchange_id, date HAVING count(*) > 1`},
	} {
		var bad []string
		if err := db.SelectContext(ctx, &bad, q.sql); err != nil {
			tb.Fatalf("checker: %s: %v", q.what, err)
		}
		for _, b := range bad {
			r.addf(&r.doubled, "%s: %s", q.what, b)
		}
	}
	for _, d := range devices {
		st := d.Stats()
		for range st.reapplied {
			r.addf(&r.doubled, "%s: a resent op was answered without duplicate", d.name)
		}
		for range st.inconsistent {
			r.addf(&r.doubled, "%s: two answers for one op disagree", d.name)
		}
	}

	// Every replica against the server's view for its user, and the checksums.
	for _, d := range devices {
		fresh, err := d.pullFresh(ctx, serverURL)
		if err != nil {
			tb.Fatalf("checker: fresh pull for %s: %v", d.name, err)
		}
		d.mu.Lock()
		for k, want := range fresh {
			got, ok := d.replica[k]
			switch {
			case !ok:
				r.addf(&r.diverged, "%s: record %s missing from the replica", d.name, k)
			case got.Version != want.Version || got.Deleted != want.Deleted || !bytes.Equal(normJSON(got.Fields), normJSON(want.Fields)):
				r.addf(&r.diverged, "%s: record %s differs: replica v%s deleted=%v, server v%s deleted=%v", d.name, k, got.Version, got.Deleted, want.Version, want.Deleted)
			}
		}
		for k := range d.replica {
			if _, ok := fresh[k]; !ok {
				r.addf(&r.diverged, "%s: record %s in the replica is not on the server", d.name, k)
			}
		}
		for k, rec := range fresh {
			if s, ok := server[k]; ok && (s.version != rec.Version || s.deleted != rec.Deleted) {
				r.addf(&r.diverged, "%s: pulled %s v%s, the database has v%s", d.name, k, rec.Version, s.version)
			}
		}
		d.mu.Unlock()
		if matched[d] {
			r.checksums++
		} else {
			r.addf(&r.diverged, "%s: verify checksum differs from the server's", d.name)
		}
	}
	return r
}

// normJSON returns a canonical JSON form of a value (numbers as float64, sorted keys).
func normJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(fmt.Sprintf("%q", fmt.Sprint(v)))
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return b
	}
	out, _ := json.Marshal(x)
	return out
}

// summarize totals the devices' counters.
func summarize(devices []*device) deviceStats {
	var total deviceStats
	for _, d := range devices {
		total.add(d.Stats())
	}
	slices.Sort(total.rejections)
	return total
}
