package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// CopyBatch is a batch of ops as the rows that applying them writes (each record, its
// change-log row, its audit row, its stored result), in their text form: made by
// NewCopyBatch before a clock starts, written with Write.
type CopyBatch struct {
	ops    int
	tables []copyTable
}

type copyTable struct {
	name string
	cols []string
	rows [][]any // string, nil for NULL, or a version (versionOf, versionIn)
}

// versionOf is the version of the batch's op i, taken by Write.
type versionOf int

// versionIn is a text holding the version of the batch's op, between before and after.
type versionIn struct {
	op            int
	before, after string
}

// NewCopyBatch renders ops (creates) as the rows that applying them writes, but for
// their versions, which Write takes from the database's sequence as the write path
// does. scopes are the records' scope tokens (the same for every child of one exchange).
func NewCopyBatch(ctx context.Context, db *sqlx.DB, ops []jiaoliu.Op, scopes []string, userID, deviceID string) (*CopyBatch, error) {
	b := &CopyBatch{ops: len(ops)}
	field := func(v any) any {
		switch v := v.(type) {
		case nil, string:
			return v
		}
		return fmt.Sprint(v)
	}
	// A record's field clock as the write path stores it: every field the op set, and a
	// lesson's device, at the op's HLC.
	clock := func(op jiaoliu.Op) string {
		c := map[string]string{}
		for k := range op.Fields {
			c[k] = op.HLC
		}
		if op.Entity == "lesson" {
			c["deviceId"] = op.HLC
		}
		return postgres.EncodeFieldClock(c)
	}
	// The records carry the district tokens of their scopes, as the push's bulk path
	// writes them (migration 00018's trigger then finds nothing to rewrite).
	dlit, _ := pq.Array(postgres.DistrictTokens(scopes)).Value()
	lit, _ := pq.Array(scopes).Value()
	records := []struct {
		entity, table string
		cols          []string
		fields        []string
	}{
		{"lesson", "lessons", []string{"exchange_id", "date", "period", "grade_level", "class_name", "subject", "kind", "topic", "minutes", "device_id"},
			[]string{"exchangeId", "date", "period", "gradeLevel", "className", "subject", "kind", "topic", "minutes", ""}},
		{"attendance", "attendance", []string{"exchange_id", "date", "status"}, []string{"exchangeId", "date", "status"}},
		{"researchActivity", "research_activities", []string{"exchange_id", "date", "kind", "topic"}, []string{"exchangeId", "date", "kind", "topic"}},
	}
	for _, e := range records {
		t := copyTable{name: e.table, cols: append([]string{"id", "field_hlc", "version", "district_scopes"}, e.cols...)}
		for i, op := range ops {
			if op.Entity != e.entity {
				continue
			}
			row := []any{op.ID, clock(op), versionOf(i), dlit}
			for _, f := range e.fields {
				if f == "" {
					row = append(row, deviceID)
				} else {
					row = append(row, field(op.Fields[f]))
				}
			}
			t.rows = append(t.rows, row)
		}
		b.tables = append(b.tables, t)
	}
	log := copyTable{name: "sync_log", cols: []string{"entity", "id", "seq", "scopes"}}
	audit := copyTable{name: "audit_log", cols: []string{"user_id", "username", "device_id", "entity", "record_id", "op_id", "action", "changes", "scopes"}}
	results := copyTable{name: "sync_ops", cols: []string{"op_id", "device_id", "user_id", "result"}}
	for i, op := range ops {
		log.rows = append(log.rows, []any{op.Entity, op.ID, versionOf(i), lit})
		ch := map[string]any{}
		for k, v := range op.Fields {
			ch[k] = map[string]any{"new": v}
		}
		if op.Entity == "lesson" {
			ch["deviceId"] = map[string]any{"new": deviceID}
		}
		changes, _ := json.Marshal(ch)
		audit.rows = append(audit.rows, []any{userID, "bench", deviceID, op.Entity, op.ID, op.OpID, "CREATE", string(changes), lit})
		res, _ := json.Marshal(jiaoliu.OpResult{OpID: op.OpID, Status: "applied", ID: op.ID, Version: "\x00"})
		before, after, _ := strings.Cut(string(res), "\\u0000")
		results.rows = append(results.rows, []any{op.OpID, deviceID, userID, versionIn{i, before, after}})
	}
	b.tables = append(b.tables, log, audit, results)
	return b, nil
}

// RecordsOnly is the batch without the rows the write path adds to each record (its
// change-log row, its audit row, its stored result): what COPY of the records alone
// costs, the bound of any server that stores them durably in PostgreSQL, whatever else
// it keeps.
func (b *CopyBatch) RecordsOnly() *CopyBatch {
	out := &CopyBatch{ops: b.ops}
	for _, t := range b.tables {
		switch t.name {
		case "sync_log", "audit_log", "sync_ops":
		default:
			out.tables = append(out.tables, t)
		}
	}
	return out
}

// Write writes the batch's rows with PostgreSQL COPY in one transaction, as the write
// path writes its rows (postgres.CopyIn): the physical limit that the push benchmark
// is compared with.
func (b *CopyBatch) Write(ctx context.Context, db *sqlx.DB) error {
	conn, err := db.Connx(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var versions []int64
	if err := tx.SelectContext(ctx, &versions, `SELECT nextval('change_seq') FROM generate_series(1, $1)`, b.ops); err != nil {
		return err
	}
	for _, t := range b.tables {
		if len(t.rows) == 0 {
			continue
		}
		if err := postgres.CopyIn(ctx, conn, t.name, t.cols, len(t.rows), func(i int, r *postgres.CopyRow) {
			for _, v := range t.rows[i] {
				switch v := v.(type) {
				case string:
					r.Text(v)
				case versionOf:
					r.Int(versions[v])
				case versionIn:
					r.Text(v.before + strconv.FormatInt(versions[v.op], 10) + v.after)
				default:
					r.NullText("", false)
				}
			}
		}); err != nil {
			return fmt.Errorf("copy %s: %w", t.name, err)
		}
	}
	return tx.Commit()
}
