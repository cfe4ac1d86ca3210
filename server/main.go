// Command server runs the GraphQL and sync server of the teacher exchange programme.
//
// With no DATABASE_URL it starts a private PostgreSQL from the machine's binaries in
// DATA_DIR, migrates it and loads demo data on first start; with DATABASE_URL it uses
// that database. See the README for every setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jiaoliu/jiaoliu/internal/gcfloor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, errHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// For the whole process, so not in Run (tests run several servers in one process).
	defer gcfloor.Start(uint64(m.Config.GCFloorMiB) << 20)()
	if err := m.Run(ctx); err != nil {
		m.Log.Error("start failed", "error", err.Error())
		_ = m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	stop()
	m.Log.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Log.Error("shutdown", "error", err.Error())
		os.Exit(1)
	}
}
