// Command tablet is a small terminal tablet: a teacher logs lessons and attendance
// offline, into a local database file, and syncs with the server when a link appears.
//
//	tablet -db tablet.db init -server http://127.0.0.1:8080 -device <id> -token <token>
//	tablet -db tablet.db sync
//	tablet -db tablet.db list exchange
//	tablet -db tablet.db lesson -exchange <id> -date 2026-10-12 -period 3 -subject 数学 -kind DEMONSTRATION -topic 分数
//	tablet -db tablet.db attendance -exchange <id> -date 2026-10-12 -status PRESENT
//	tablet -db tablet.db status
//
// Everything but sync and run works offline. Exit codes: 0 done; 1 failed; 2 bad usage
// or input; 3 could not sync (the work stays queued); 4 the server refuses this device
// (register it again, or update the app); 5 synced, but the server rejected some
// changes (see "tablet rejections").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK         = 0
	exitFailed     = 1
	exitUsage      = 2
	exitSyncFailed = 3
	exitRefused    = 4
	exitRejected   = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: tablet [-db FILE] [-http] [-v] COMMAND [flags]

Commands:
  init        -server URL -device ID -token TOKEN    configure this tablet
  lesson      -exchange ID -date D -period N -subject S -kind K [-topic T ...]
              log a lesson (or edit it: the same exchange, date and period, or -id)
  attendance  -exchange ID -date D -status S [-note N] [-id ID]
              record the day's attendance (PRESENT, LEAVE, SICK, ABSENT)
  delete      ENTITY ID                               delete a record
  list        ENTITY                                  list records (lesson, attendance, exchange, school, ...)
  show        ENTITY ID                               show one record
  status                                              outbox, last sync, rejections
  rejections  [-dismiss OPID]                         changes the server refused
  sync        [-timeout 2m]                           push and pull once
  run                                                 stay connected (Ctrl-C to stop)

Everything but sync and run works offline.
`

// app is one invocation of the command.
type app struct {
	db     string
	http   bool
	log    *slog.Logger
	level  *slog.LevelVar
	stdout io.Writer
	stderr io.Writer
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tablet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	a := &app{stdout: stdout, stderr: stderr}
	fs.StringVar(&a.db, "db", envOr("TABLET_DB", "tablet.db"), "the tablet's database file")
	fs.BoolVar(&a.http, "http", false, "sync over plain HTTP (when WebSockets are blocked)")
	verbose := fs.Bool("v", false, "log what the sync does")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	a.level = new(slog.LevelVar)
	a.level.Set(slog.LevelWarn)
	if *verbose {
		a.level.Set(slog.LevelDebug)
	}
	a.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: a.level}))
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	commands := map[string]func(context.Context, []string) int{
		"init":       a.cmdInit,
		"lesson":     a.cmdLesson,
		"attendance": a.cmdAttendance,
		"delete":     a.cmdDelete,
		"list":       a.cmdList,
		"show":       a.cmdShow,
		"status":     a.cmdStatus,
		"rejections": a.cmdRejections,
		"sync":       a.cmdSync,
		"run":        a.cmdRun,
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "tablet: unknown command %q\n\n", cmd)
		fs.Usage()
		return exitUsage
	}
	return f(ctx, rest)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
