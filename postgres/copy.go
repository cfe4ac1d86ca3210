package postgres

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/jmoiron/sqlx"
)

// CopyRow is one row of a COPY FROM STDIN being written: its values, in the order of
// the columns, in PostgreSQL's text format.
type CopyRow struct {
	b []byte // the rows so far
	n int    // values in the current row
}

func (r *CopyRow) next() {
	if r.n > 0 {
		r.b = append(r.b, '\t')
	}
	r.n++
}

// Text writes a text value (or the text form of a value of another type).
func (r *CopyRow) Text(s string) {
	r.next()
	r.b = appendCopyText(r.b, s)
}

// TextBytes writes p as a text value.
func (r *CopyRow) TextBytes(p []byte) {
	r.next()
	if len(p) > 0 {
		r.b = appendCopyText(r.b, unsafe.String(&p[0], len(p))) // copied, not kept
	}
}

// NullText writes s, or NULL when valid is false.
func (r *CopyRow) NullText(s string, valid bool) {
	if !valid {
		r.next()
		r.b = append(r.b, `\N`...)
		return
	}
	r.Text(s)
}

// ID writes an id, or NULL for none (""), as nullID passes one to a statement.
func (r *CopyRow) ID(id string) {
	r.NullText(id, id != "")
}

// Int writes an integer.
func (r *CopyRow) Int(v int64) {
	r.next()
	r.b = strconv.AppendInt(r.b, v, 10)
}

// appendCopyText appends s escaped for COPY's text format: a backslash and the row and
// column delimiters are written as escapes.
func appendCopyText(b []byte, s string) []byte {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] != '\\' { // most text has nothing to escape
		i++
	}
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, c)
		}
	}
	return b
}

// copyData is lib/pq's COPY FROM STDIN statement: it takes rows already in COPY's text
// format.
type copyData interface {
	CopyData(ctx context.Context, line string) (driver.Result, error)
}

// CopyIn writes n rows into cols of table with COPY FROM STDIN, in the transaction that
// runs on conn: one round trip to start, the rows streamed in 64 KiB messages, one
// round trip to end. row writes the values of row i. A row the database refuses fails
// the whole statement, with the constraint's error (a *pq.Error).
//
// The rows are written in COPY's text format here and handed to the driver as they
// are, rather than through one database/sql Exec per row: that converted and copied
// every value twice and allocated two slices a row (5 µs and 2 KiB per pushed op, of
// four rows). The push benchmark's COPY comparison (bench.CopyBatch) writes its rows the same
// way.
func CopyIn(ctx context.Context, conn *sqlx.Conn, table string, cols []string, n int, row func(i int, r *CopyRow)) error {
	q := fmt.Sprintf(`COPY %s (%s) FROM STDIN`, table, strings.Join(cols, ", "))
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("copy into %s: the driver cannot prepare", table)
		}
		st, err := pc.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer st.Close()
		cd, ok := st.(copyData)
		if !ok {
			return fmt.Errorf("copy into %s: the driver's COPY takes no rows as text", table)
		}
		var r CopyRow
		for i := range n {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			r.b, r.n = r.b[:0], 0
			row(i, &r)
			// CopyData copies the row into the driver's buffer (64 KiB, sent when full)
			// before it returns, so the string may share r.b's bytes. Its context is
			// not ctx: lib/pq starts a goroutine per call to watch a context that can
			// be cancelled; ctx is checked every 256 rows instead.
			var line string
			if len(r.b) > 0 {
				line = unsafe.String(&r.b[0], len(r.b))
			}
			if _, err := cd.CopyData(context.Background(), line); err != nil {
				return err
			}
		}
		_, err = st.Exec(nil) //nolint:staticcheck // ends the COPY; lib/pq's copy statement has no ExecContext
		return err
	})
}
