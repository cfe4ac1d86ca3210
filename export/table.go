// Package export writes the reports an education office files — the public list (公示)
// of a year's exchanges, monthly attendance sheets, the progress report and the
// eligibility list — as XLSX workbooks with Chinese headings and as CSV (UTF-8 with a
// byte-order mark, so that Excel reads the Chinese correctly), and serves them over HTTP
// to authorized administrators.
package export

import (
	"encoding/csv"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
)

// Table is a report: a title, one row of headings and the data rows. Cells are strings
// or numbers (int, float64).
type Table struct {
	// Title names the sheet (at most 31 characters) and the downloaded file.
	Title  string
	Header []string
	Rows   [][]any
	// Widths are column widths in characters (optional; otherwise from the content).
	Widths []float64
}

// bom is the UTF-8 byte-order mark that tells Excel a CSV file is UTF-8.
const bom = "\ufeff"

// WriteCSV writes t as CSV: the byte-order mark, the headings, then the rows.
func WriteCSV(w io.Writer, t *Table) error {
	if _, err := io.WriteString(w, bom); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // what Excel writes and expects
	if err := cw.Write(t.Header); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	rec := make([]string, len(t.Header))
	for _, row := range t.Rows {
		for i := range rec {
			rec[i] = ""
			if i < len(row) {
				rec[i] = cellText(row[i])
			}
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return fmt.Sprintf("%g", x)
	}
	return fmt.Sprint(v)
}

// sheetName makes a title a valid sheet name: at most 31 characters, none of []:*?/\.
func sheetName(title string) string {
	out := make([]rune, 0, 31)
	for _, r := range title {
		switch r {
		case '[', ']', ':', '*', '?', '/', '\\':
			r = '-'
		}
		out = append(out, r)
		if len(out) == 31 {
			break
		}
	}
	if len(out) == 0 {
		return "Sheet1"
	}
	return string(out)
}

// WriteXLSX writes t as a workbook of one sheet named after the title: the headings in
// row 1 (bold, frozen, with a filter), the data from row 2, columns sized to their content.
func WriteXLSX(w io.Writer, t *Table) error {
	f := excelize.NewFile()
	defer f.Close()
	name := sheetName(t.Title)
	if err := f.SetSheetName("Sheet1", name); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	sw, err := f.NewStreamWriter(name)
	if err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	bold, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}},
		Alignment: &excelize.Alignment{Horizontal: "center", Vertical: "center", WrapText: true}})
	if err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	widths := make([]float64, len(t.Header))
	for i, h := range t.Header {
		widths[i] = textWidth(h)
	}
	for _, row := range t.Rows {
		for i := 0; i < len(row) && i < len(widths); i++ {
			widths[i] = max(widths[i], textWidth(cellText(row[i])))
		}
	}
	for i := range widths {
		wd := min(max(widths[i]+2, 4), 60)
		if i < len(t.Widths) && t.Widths[i] > 0 {
			wd = t.Widths[i]
		}
		if err := sw.SetColWidth(i+1, i+1, wd); err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	head := make([]any, len(t.Header))
	for i, h := range t.Header {
		head[i] = excelize.Cell{StyleID: bold, Value: h}
	}
	if err := sw.SetRow("A1", head); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	for r, row := range t.Rows {
		cell, _ := excelize.CoordinatesToCellName(1, r+2)
		if err := sw.SetRow(cell, row); err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	if len(t.Header) > 0 {
		last, _ := excelize.CoordinatesToCellName(len(t.Header), len(t.Rows)+1)
		if err := f.AutoFilter(name, "A1:"+last, nil); err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
	}
	if err := f.Write(w); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	return nil
}

// textWidth estimates the width of text in Excel characters: Chinese characters take two.
func textWidth(s string) float64 {
	w := 0.0
	for _, r := range s {
		if r < 0x2E80 {
			w++
		} else {
			w += 2
		}
	}
	if utf8.RuneCountInString(s) == 0 {
		return 0
	}
	return w
}
