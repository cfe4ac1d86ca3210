package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/client"
)

// open opens the tablet's database with cfg's identity fields (empty ones come from
// the file).
func (a *app) open(cfg client.Config) (*client.Client, error) {
	cfg.Logger = a.log
	cfg.HTTP = a.http
	c, err := client.Open(a.db, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the tablet database: %w", err)
	}
	return c, nil
}

// fail prints err and returns the matching exit code.
func (a *app) fail(err error) int {
	switch {
	case jiaoliu.ErrorCode(err) == jiaoliu.EINVALID || jiaoliu.ErrorCode(err) == jiaoliu.EUNKNOWNENTITY:
		fe := jiaoliu.ErrorFields(err)
		if len(fe) == 0 {
			fmt.Fprintf(a.stderr, "tablet: not saved: %s\n", jiaoliu.ErrorMessage(err))
			return exitUsage
		}
		fmt.Fprintln(a.stderr, "tablet: not saved; please correct:")
		for _, k := range slices.Sorted(maps.Keys(fe)) {
			fmt.Fprintf(a.stderr, "  %s: %s\n", k, fe[k])
		}
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "tablet: %v\n", err)
	switch {
	case errors.Is(err, client.ErrNotFound):
		return exitUsage
	case errors.Is(err, client.ErrNotConfigured):
		fmt.Fprintln(a.stderr, "  configure it first: tablet init -server URL -device ID -token TOKEN")
		return exitUsage
	}
	return exitFailed
}

// flags returns a flag set for a command whose errors go to stderr.
func (a *app) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: tablet %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags; ok false means: return code.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

func (a *app) cmdInit(ctx context.Context, args []string) int {
	fs := a.flags("init", "-server URL -device ID -token TOKEN")
	server := fs.String("server", "", "the server's URL, e.g. http://127.0.0.1:8080")
	device := fs.String("device", "", "the device id from registerDevice")
	token := fs.String("token", "", "the device token from registerDevice")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *server == "" || *device == "" || *token == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	c, err := a.open(client.Config{ServerURL: *server, DeviceID: *device, Token: *token})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	fmt.Fprintf(a.stdout, "Tablet %s is set up for %s (database %s).\nNext: tablet sync, then tablet list exchange.\n", *device, *server, a.db)
	return exitOK
}

// fieldFlag is one optional field of a record, set from a flag.
type fieldFlag struct {
	name  string // the flag
	field string // the entity's field
	kind  string // "string", "int"
}

func (a *app) cmdLesson(ctx context.Context, args []string) int {
	fs := a.flags("lesson", "-exchange ID -date YYYY-MM-DD -period N -subject S -kind K [flags]")
	id := fs.String("id", "", "edit this lesson (default: the lesson of the same exchange, date and period, or a new one)")
	fields := []fieldFlag{
		{"exchange", "exchangeId", "string"}, {"date", "date", "string"}, {"period", "period", "int"},
		{"subject", "subject", "string"}, {"kind", "kind", "string"}, {"topic", "topic", "string"},
		{"grade", "gradeLevel", "string"}, {"class", "className", "string"}, {"minutes", "minutes", "int"},
		{"notes", "notes", "string"}, {"open-level", "openLevel", "string"}, {"school", "schoolId", "string"},
	}
	help := map[string]string{"exchange": "the exchange id (tablet list exchange)", "date": "the day, YYYY-MM-DD", "period": "the period, 1..12",
		"subject": "the subject, e.g. 数学", "kind": "REGULAR, DEMONSTRATION, GUIDANCE, OPEN, LECTURE or DELIVERED", "topic": "the topic",
		"grade": "the grade level", "class": "the class", "minutes": "the length in minutes", "notes": "notes",
		"open-level": "for an OPEN lesson: SCHOOL, TOWN or COUNTY", "school": "the school id, if not the exchange's receiving school"}
	vals := map[string]*string{}
	for _, f := range fields {
		vals[f.name] = fs.String(f.name, "", help[f.name])
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	return a.save(ctx, fs, "lesson", *id, fields, vals, []string{"exchange", "date", "period"})
}

func (a *app) cmdAttendance(ctx context.Context, args []string) int {
	fs := a.flags("attendance", "-exchange ID -date YYYY-MM-DD -status S [-note N]")
	id := fs.String("id", "", "edit this record (default: the record of the same exchange and date, or a new one)")
	fields := []fieldFlag{{"exchange", "exchangeId", "string"}, {"date", "date", "string"}, {"status", "status", "string"}, {"note", "note", "string"}}
	help := map[string]string{"exchange": "the exchange id (tablet list exchange)", "date": "the day, YYYY-MM-DD",
		"status": "PRESENT, LEAVE, SICK or ABSENT", "note": "a note"}
	vals := map[string]*string{}
	for _, f := range fields {
		vals[f.name] = fs.String(f.name, "", help[f.name])
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	return a.save(ctx, fs, "attendance", *id, fields, vals, []string{"exchange", "date"})
}

// save writes the flags that were given as one upsert: to the record named by id, or
// to the record with the same natural key, or to a new record.
func (a *app) save(ctx context.Context, fs *flag.FlagSet, entity, id string, fields []fieldFlag, vals map[string]*string, key []string) int {
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "tablet %s: unexpected arguments %v\n", entity, fs.Args())
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	values := map[string]any{}
	for _, f := range fields {
		if !set[f.name] {
			continue
		}
		v := strings.TrimSpace(*vals[f.name])
		switch {
		case f.kind == "int":
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil || fmt.Sprint(n) != v {
				fmt.Fprintf(a.stderr, "tablet %s: -%s must be a whole number, not %q\n", entity, f.name, v)
				return exitUsage
			}
			values[f.field] = n
		case v == "":
			values[f.field] = nil // clear the field
		default:
			values[f.field] = v
		}
	}
	if len(values) == 0 {
		fs.Usage()
		return exitUsage
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	verb := "Saved new"
	if id != "" {
		if _, err := c.Get(ctx, entity, id); err != nil {
			return a.fail(err)
		}
		verb = "Updated"
	} else {
		rec, found, err := c.FindByKey(ctx, entity, values)
		if err != nil {
			return a.fail(err)
		}
		if found {
			id, verb = rec.ID, "Updated"
			for _, k := range key {
				f := fieldOf(fields, k)
				delete(values, f) // the key stays as it is
			}
			if len(values) == 0 {
				fmt.Fprintf(a.stdout, "%s %s already exists; nothing to change.\n", entity, id)
				return exitOK
			}
		} else {
			id = client.NewID()
		}
	}
	op, err := c.Upsert(ctx, entity, id, values)
	if err != nil {
		return a.fail(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(a.stdout, "%s %s %s (offline; op %s).\n%s\n", verb, entity, id, op, waiting(st.Outbox))
	return exitOK
}

func fieldOf(fields []fieldFlag, name string) string {
	for _, f := range fields {
		if f.name == name {
			return f.field
		}
	}
	return name
}

func waiting(n int) string {
	switch n {
	case 0:
		return "Nothing waits for sync."
	case 1:
		return "1 change waits for sync."
	}
	return fmt.Sprintf("%d changes wait for sync.", n)
}

func (a *app) cmdDelete(ctx context.Context, args []string) int {
	fs := a.flags("delete", "ENTITY ID")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return exitUsage
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	op, err := c.Delete(ctx, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return a.fail(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(a.stdout, "Deleted %s %s (offline; op %s).\n%s\n", fs.Arg(0), fs.Arg(1), op, waiting(st.Outbox))
	return exitOK
}

// columns lists the fields the list command shows per entity.
var columns = map[string][]string{
	"lesson":      {"date", "period", "subject", "kind", "topic", "className"},
	"attendance":  {"date", "status", "note"},
	"exchange":    {"academicYear", "mode", "status", "plannedStart", "plannedEnd"},
	"school":      {"name", "locality", "tier"},
	"teacher":     {"name", "schoolId"},
	"district":    {"name"},
	"observation": {"date", "observedTeacherId", "lessonId", "rating"},
}

func (a *app) cmdList(ctx context.Context, args []string) int {
	fs := a.flags("list", "ENTITY")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	entity := fs.Arg(0)
	if jiaoliu.Entities[entity] == nil {
		fmt.Fprintf(a.stderr, "tablet list: unknown entity %q (known: %s)\n", entity, strings.Join(jiaoliu.EntityOrder, ", "))
		return exitUsage
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	recs, err := c.List(ctx, entity)
	if err != nil {
		return a.fail(err)
	}
	if len(recs) == 0 {
		fmt.Fprintf(a.stdout, "No %s records on this tablet.\n", entity)
		return exitOK
	}
	cols := columns[entity]
	sort.SliceStable(recs, func(i, j int) bool {
		for _, c := range cols {
			x, y := cell(recs[i].Fields[c]), cell(recs[j].Fields[c])
			if x != y {
				if len(x) != len(y) && isDigits(x) && isDigits(y) {
					return len(x) < len(y)
				}
				return x < y
			}
		}
		return recs[i].ID < recs[j].ID
	})
	var tb table
	head := []string{"ID"}
	for _, c := range cols {
		head = append(head, strings.ToUpper(c))
	}
	if cols == nil {
		head = append(head, "FIELDS")
	}
	tb.add(append(head, "SYNC")...)
	for _, r := range recs {
		row := []string{r.ID}
		for _, c := range cols {
			row = append(row, cell(r.Fields[c]))
		}
		if cols == nil {
			b, _ := json.Marshal(r.Fields)
			row = append(row, string(b))
		}
		tb.add(append(row, syncState(r))...)
	}
	if err := tb.write(a.stdout); err != nil {
		return a.fail(err)
	}
	return exitOK
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func syncState(r client.Record) string {
	switch {
	case r.Pending > 0 && r.Version == "":
		return "new, not synced"
	case r.Pending > 0:
		return fmt.Sprintf("%d edits not synced", r.Pending)
	case r.Deleted:
		return "deleted"
	}
	return "synced v" + r.Version
}

func (a *app) cmdShow(ctx context.Context, args []string) int {
	fs := a.flags("show", "ENTITY ID")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return exitUsage
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	r, err := c.Get(ctx, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return a.fail(err)
	}
	var tb table
	tb.add(r.Entity, r.ID)
	tb.add("state", syncState(r))
	for _, k := range slices.Sorted(maps.Keys(r.Fields)) {
		tb.add(k, cell(r.Fields[k]))
	}
	if err := tb.write(a.stdout); err != nil {
		return a.fail(err)
	}
	return exitOK
}

func (a *app) cmdStatus(ctx context.Context, args []string) int {
	fs := a.flags("status", "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return a.fail(err)
	}
	now := time.Now()
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "Device\t%s\n", orNone(st.DeviceID, "not configured (tablet init)"))
	fmt.Fprintf(w, "Server\t%s\n", orNone(st.ServerURL, "not configured (tablet init)"))
	outbox := waiting(st.Outbox)
	if st.Outbox > 0 {
		outbox += fmt.Sprintf(" Oldest from %s.", ago(now, st.Oldest))
		if st.Unanswered > 0 {
			outbox += fmt.Sprintf(" %d sent without an answer yet (they will be resent).", st.Unanswered)
		}
	}
	fmt.Fprintf(w, "Outbox\t%s\n", outbox)
	fmt.Fprintf(w, "Records\t%d (%d deleted)\n", st.Records, st.Tombstones)
	if st.LastSync.IsZero() {
		fmt.Fprintf(w, "Last sync\tnever\n")
	} else {
		fmt.Fprintf(w, "Last sync\t%s\n", ago(now, st.LastSync))
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "Last attempt\tfailed %s: %s\n", ago(now, st.LastAttempt), st.LastError)
	}
	switch {
	case st.LastVerify.IsZero():
		fmt.Fprintf(w, "Verified\tnever\n")
	case st.VerifyOK:
		fmt.Fprintf(w, "Verified\tmatches the server (%s)\n", ago(now, st.LastVerify))
	default:
		fmt.Fprintf(w, "Verified\tDID NOT match the server (%s); the next sync pulls everything again\n", ago(now, st.LastVerify))
	}
	if st.ClockOffset != 0 {
		fmt.Fprintf(w, "Clock\tcorrected by %v to the server's time\n", st.ClockOffset.Round(time.Millisecond))
	}
	if st.Rejections > 0 {
		fmt.Fprintf(w, "Rejected\t%d changes refused by the server: tablet rejections\n", st.Rejections)
	} else {
		fmt.Fprintf(w, "Rejected\tnone\n")
	}
	w.Flush()
	return exitOK
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	local := t.Local().Format("2006-01-02 15:04:05")
	switch {
	case d < time.Second:
		return local + " (just now)"
	case d < time.Minute:
		return fmt.Sprintf("%s (%ds ago)", local, int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%s (%d min ago)", local, int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%s (%.0f h ago)", local, d.Hours())
	}
	return fmt.Sprintf("%s (%.0f days ago)", local, d.Hours()/24)
}

func (a *app) cmdRejections(ctx context.Context, args []string) int {
	fs := a.flags("rejections", "[-dismiss OPID]")
	dismiss := fs.String("dismiss", "", "mark a rejection as seen")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	if *dismiss != "" {
		if err := c.Dismiss(ctx, *dismiss); err != nil {
			return a.fail(err)
		}
		fmt.Fprintf(a.stdout, "Dismissed %s.\n", *dismiss)
		return exitOK
	}
	rej, err := c.Rejections(ctx)
	if err != nil {
		return a.fail(err)
	}
	if len(rej) == 0 {
		fmt.Fprintln(a.stdout, "The server has refused nothing.")
		return exitOK
	}
	for _, r := range rej {
		fmt.Fprintf(a.stdout, "op %s: %s %s %s, written %s\n", r.OpID, r.Kind, r.Entity, r.ID, r.Written.Local().Format("2006-01-02 15:04"))
		fmt.Fprintf(a.stdout, "  refused: %s: %s\n", r.Code, r.Message)
		for _, k := range slices.Sorted(maps.Keys(r.FieldErrors)) {
			fmt.Fprintf(a.stdout, "    %s: %s\n", k, r.FieldErrors[k])
		}
		if len(r.Fields) > 0 {
			b, _ := json.Marshal(r.Fields)
			fmt.Fprintf(a.stdout, "  what was typed: %s\n", b)
		}
	}
	fmt.Fprintln(a.stdout, "An admin can fix and re-apply these on the server. Dismiss one with: tablet rejections -dismiss OPID")
	return exitOK
}

func (a *app) cmdSync(ctx context.Context, args []string) int {
	fs := a.flags("sync", "[-timeout 2m]")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, err := a.open(client.Config{RequestTimeout: *timeout})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	before, err := c.Results(ctx)
	if err != nil {
		return a.fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	serr := c.Sync(ctx)
	after, err := c.Results(ctx)
	if err != nil {
		return a.fail(err)
	}
	seen := map[string]bool{}
	for _, r := range before {
		seen[r.OpID] = true
	}
	counts := map[string]int{}
	sent := 0
	for _, r := range after {
		if !seen[r.OpID] {
			counts[r.Status]++
			sent++
		}
	}
	st, err := c.Status(context.WithoutCancel(ctx))
	if err != nil {
		return a.fail(err)
	}
	if sent > 0 {
		fmt.Fprintf(a.stdout, "Sent %d changes: %d applied, %d merged into existing records, %d refused.\n",
			sent, counts[jiaoliu.StatusApplied], counts[jiaoliu.StatusMerged], counts[jiaoliu.StatusRejected])
	}
	if serr != nil {
		fmt.Fprintf(a.stderr, "tablet: %v\n", serr)
		if client.Permanent(serr) {
			if errors.Is(serr, client.ErrUnauthorized) {
				fmt.Fprintln(a.stderr, "  the server does not accept this tablet's token: register the device again and run tablet init")
			} else if errors.Is(serr, client.ErrIncompatible) {
				fmt.Fprintln(a.stderr, "  the server needs a newer app")
			}
			return exitRefused
		}
		fmt.Fprintf(a.stderr, "  nothing is lost: %s\n", strings.ToLower(waiting(st.Outbox)))
		return exitSyncFailed
	}
	verified := "verified against the server"
	if !st.VerifyOK {
		verified = "not verified"
	}
	fmt.Fprintf(a.stdout, "In sync: %d records on this tablet, %s. %s\n", st.Records, verified, waiting(st.Outbox))
	if counts[jiaoliu.StatusRejected] > 0 {
		fmt.Fprintf(a.stdout, "%d changes were refused: see tablet rejections.\n", counts[jiaoliu.StatusRejected])
		return exitRejected
	}
	return exitOK
}

func (a *app) cmdRun(ctx context.Context, args []string) int {
	fs := a.flags("run", "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	// Show what happens: connections and retries.
	if a.level.Level() > slog.LevelInfo {
		a.level.Set(slog.LevelInfo)
	}
	c, err := a.open(client.Config{})
	if err != nil {
		return a.fail(err)
	}
	defer c.Close()
	fmt.Fprintln(a.stdout, "Staying in sync; Ctrl-C to stop.")
	if err := c.Run(ctx); err != nil {
		fmt.Fprintf(a.stderr, "tablet: %v\n", err)
		if client.Permanent(err) {
			return exitRefused
		}
		return exitFailed
	}
	fmt.Fprintln(a.stdout, "Stopped.")
	return exitOK
}
