package bench

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// CopyOps writes the rows that applying ops writes (the record, its change-log row,
// its audit row, its stored result) with PostgreSQL COPY in one transaction, as the
// write path writes them (postgres.CopyIn): the physical limit that the push benchmark
// is compared with. scopes are the records' scope tokens (the same for every child of
// one exchange).
func CopyOps(ctx context.Context, db *sqlx.DB, ops []jiaoliu.Op, scopes []string, userID, deviceID string) error {
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
	if err := tx.SelectContext(ctx, &versions, `SELECT nextval('change_seq') FROM generate_series(1, $1)`, len(ops)); err != nil {
		return err
	}
	// copyRows writes the ops of entity (all when entity is "") into table's cols.
	copyRows := func(table, entity string, cols []string, row func(i int, op jiaoliu.Op, r *postgres.CopyRow)) error {
		var idx []int
		for i, op := range ops {
			if entity == "" || op.Entity == entity {
				idx = append(idx, i)
			}
		}
		if err := postgres.CopyIn(ctx, conn, table, cols, len(idx), func(j int, r *postgres.CopyRow) { row(idx[j], ops[idx[j]], r) }); err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
		return nil
	}
	field := func(r *postgres.CopyRow, v any) {
		switch v := v.(type) {
		case nil:
			r.NullText("", false)
		case string:
			r.Text(v)
		default:
			r.Text(fmt.Sprint(v))
		}
	}
	clock := func(op jiaoliu.Op) string {
		c := map[string]string{}
		for k := range op.Fields {
			c[k] = op.HLC
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	// The records carry the district tokens of their scopes, as the push's bulk path
	// writes them (migration 00018's trigger then finds nothing to rewrite).
	dlit, _ := pq.Array(postgres.DistrictTokens(scopes)).Value()
	lit, _ := pq.Array(scopes).Value()
	head := func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
		r.Text(op.ID)
		r.Text(clock(op))
		r.Int(versions[i])
		r.Text(dlit.(string))
	}
	if err := copyRows("lessons", "lesson", []string{"id", "field_hlc", "version", "district_scopes", "exchange_id", "date", "period", "grade_level", "class_name", "subject", "kind", "topic", "minutes", "device_id"},
		func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
			head(i, op, r)
			for _, k := range []string{"exchangeId", "date", "period", "gradeLevel", "className", "subject", "kind", "topic", "minutes"} {
				field(r, op.Fields[k])
			}
			r.Text(deviceID)
		}); err != nil {
		return err
	}
	if err := copyRows("attendance", "attendance", []string{"id", "field_hlc", "version", "district_scopes", "exchange_id", "date", "status"},
		func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
			head(i, op, r)
			for _, k := range []string{"exchangeId", "date", "status"} {
				field(r, op.Fields[k])
			}
		}); err != nil {
		return err
	}
	if err := copyRows("research_activities", "researchActivity", []string{"id", "field_hlc", "version", "district_scopes", "exchange_id", "date", "kind", "topic"},
		func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
			head(i, op, r)
			for _, k := range []string{"exchangeId", "date", "kind", "topic"} {
				field(r, op.Fields[k])
			}
		}); err != nil {
		return err
	}
	if err := copyRows("sync_log", "", []string{"entity", "id", "seq", "scopes"}, func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
		r.Text(op.Entity)
		r.Text(op.ID)
		r.Int(versions[i])
		r.Text(lit.(string))
	}); err != nil {
		return err
	}
	if err := copyRows("audit_log", "", []string{"user_id", "username", "device_id", "entity", "record_id", "op_id", "action", "changes", "scopes"},
		func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
			ch := map[string]any{}
			for k, v := range op.Fields {
				ch[k] = map[string]any{"new": v}
			}
			b, _ := json.Marshal(ch)
			for _, v := range []string{userID, "bench", deviceID, op.Entity, op.ID, op.OpID, "CREATE", string(b), lit.(string)} {
				r.Text(v)
			}
		}); err != nil {
		return err
	}
	if err := copyRows("sync_ops", "", []string{"op_id", "device_id", "user_id", "result"}, func(i int, op jiaoliu.Op, r *postgres.CopyRow) {
		b, _ := json.Marshal(jiaoliu.OpResult{OpID: op.OpID, Status: "applied", ID: op.ID, Version: fmt.Sprint(versions[i])})
		for _, v := range []string{op.OpID, deviceID, userID, string(b)} {
			r.Text(v)
		}
	}); err != nil {
		return err
	}
	return tx.Commit()
}
