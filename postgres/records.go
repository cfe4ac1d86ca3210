package postgres

import (
	"database/sql"

	"github.com/jiaoliu/jiaoliu"
)

// scanHolders returns one scan destination per field of def, typed by the field's kind.
func scanHolders(def *jiaoliu.Entity) []any {
	out := make([]any, len(def.Fields))
	for i, f := range def.Fields {
		switch f.Kind {
		case jiaoliu.KindInt:
			out[i] = new(sql.NullInt64)
		case jiaoliu.KindFloat:
			out[i] = new(sql.NullFloat64)
		case jiaoliu.KindBool:
			out[i] = new(sql.NullBool)
		case jiaoliu.KindDate:
			out[i] = new(sql.Null[jiaoliu.Date])
		case jiaoliu.KindStrings:
			out[i] = new(jiaoliu.StringList)
		default:
			out[i] = new(sql.NullString)
		}
	}
	return out
}

// recordFrom converts scanned holders to a Record of canonical values.
func recordFrom(def *jiaoliu.Entity, holders []any) jiaoliu.Record {
	rec := make(jiaoliu.Record, len(def.Fields)+1)
	for i, f := range def.Fields {
		var v any
		switch h := holders[i].(type) {
		case *sql.NullInt64:
			if h.Valid {
				v = h.Int64
			}
		case *sql.NullFloat64:
			if h.Valid {
				v = h.Float64
			}
		case *sql.NullBool:
			if h.Valid {
				v = h.Bool
			}
		case *sql.Null[jiaoliu.Date]:
			if h.Valid {
				v = h.V
			}
		case *jiaoliu.StringList:
			v = *h
		case *sql.NullString:
			if h.Valid {
				v = h.String
			} else if !f.Nullable && (f.Kind == jiaoliu.KindString || f.Kind == jiaoliu.KindText) {
				v = ""
			}
		}
		rec[f.Name] = v
	}
	return rec
}
