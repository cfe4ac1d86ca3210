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
// its audit row, its stored result) with PostgreSQL COPY in one transaction: the
// physical limit that the push benchmark is compared with. scopes are the records'
// scope tokens (the same for every child of one exchange).
func CopyOps(ctx context.Context, db *sqlx.DB, ops []jiaoliu.Op, scopes []string, userID, deviceID string) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var versions []int64
	if err := tx.SelectContext(ctx, &versions, `SELECT nextval('change_seq') FROM generate_series(1, $1)`, len(ops)); err != nil {
		return err
	}
	copyRows := func(q string, rows func(exec func(args ...any) error) error) error {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if err := rows(func(args ...any) error { _, err := st.ExecContext(ctx, args...); return err }); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if _, err := st.ExecContext(ctx); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return st.Close()
	}
	str := func(v any) any {
		if v == nil {
			return nil
		}
		return fmt.Sprint(v)
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
	if err := copyRows(`COPY lessons (id, field_hlc, version, district_scopes, exchange_id, date, period, grade_level, class_name, subject, kind, topic, minutes, device_id) FROM STDIN`,
		func(exec func(args ...any) error) error {
			for i, op := range ops {
				if op.Entity != "lesson" {
					continue
				}
				f := op.Fields
				if err := exec(op.ID, clock(op), versions[i], dlit, f["exchangeId"], f["date"], str(f["period"]), f["gradeLevel"], f["className"],
					f["subject"], f["kind"], f["topic"], str(f["minutes"]), deviceID); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
		return err
	}
	if err := copyRows(`COPY attendance (id, field_hlc, version, district_scopes, exchange_id, date, status) FROM STDIN`,
		func(exec func(args ...any) error) error {
			for i, op := range ops {
				if op.Entity == "attendance" {
					if err := exec(op.ID, clock(op), versions[i], dlit, op.Fields["exchangeId"], op.Fields["date"], op.Fields["status"]); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
		return err
	}
	if err := copyRows(`COPY research_activities (id, field_hlc, version, district_scopes, exchange_id, date, kind, topic) FROM STDIN`,
		func(exec func(args ...any) error) error {
			for i, op := range ops {
				if op.Entity == "researchActivity" {
					if err := exec(op.ID, clock(op), versions[i], dlit, op.Fields["exchangeId"], op.Fields["date"], op.Fields["kind"], op.Fields["topic"]); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
		return err
	}
	lit, _ := pq.Array(scopes).Value()
	if err := copyRows(`COPY sync_log (entity, id, seq, scopes) FROM STDIN`, func(exec func(args ...any) error) error {
		for i, op := range ops {
			if err := exec(op.Entity, op.ID, versions[i], lit); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := copyRows(`COPY audit_log (user_id, username, device_id, entity, record_id, op_id, action, changes, scopes) FROM STDIN`,
		func(exec func(args ...any) error) error {
			for _, op := range ops {
				ch := map[string]any{}
				for k, v := range op.Fields {
					ch[k] = map[string]any{"new": v}
				}
				b, _ := json.Marshal(ch)
				if err := exec(userID, "bench", deviceID, op.Entity, op.ID, op.OpID, "CREATE", string(b), lit); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
		return err
	}
	if err := copyRows(`COPY sync_ops (op_id, device_id, user_id, result) FROM STDIN`, func(exec func(args ...any) error) error {
		for i, op := range ops {
			b, _ := json.Marshal(jiaoliu.OpResult{OpID: op.OpID, Status: "applied", ID: op.ID, Version: fmt.Sprint(versions[i])})
			if err := exec(op.OpID, deviceID, userID, string(b)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return tx.Commit()
}
