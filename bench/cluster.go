// Package bench holds the benchmarks of issue 6 (push, fan-out, bootstrap, GraphQL list
// queries) and the pieces they share with cmd/loadgen: a fleet of teachers and devices
// generated in SQL, a bulk loader for a whole district, a raw protocol client speaking
// sync/wire over a WebSocket, and a PostgreSQL cluster for benchmarks.
//
// The benchmarks run only with -bench (see BENCHMARKS.md); plain `go test ./...` starts
// no database here.
package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu/internal/pgcluster"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// Cluster is a PostgreSQL cluster for benchmarks with a migrated template database.
// Unlike the tests' cluster it keeps fsync on by default, so that an acknowledged push
// is durable as in production.
type Cluster struct {
	*pgcluster.Cluster
	dir   string
	admin *sql.DB
	seq   int
}

// StartCluster starts a cluster in dir (a new temporary directory on disk when empty)
// with fsync as given, and creates the template database "bench_template".
func StartCluster(ctx context.Context, dir string, fsync bool) (*Cluster, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "jiaoliu-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench cluster: %w", err)
		}
		dir = d
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Fsync: fsync})
	if err != nil {
		return nil, err
	}
	bc := &Cluster{Cluster: c, dir: dir}
	if bc.admin, err = sql.Open("postgres", c.DSN("postgres")); err != nil {
		return nil, err
	}
	if _, err := bc.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS bench_template`); err != nil {
		return nil, err
	}
	if _, err := bc.admin.ExecContext(ctx, `CREATE DATABASE bench_template`); err != nil {
		return nil, fmt.Errorf("bench template: %w", err)
	}
	db, err := sql.Open("postgres", c.DSN("bench_template"))
	if err != nil {
		return nil, err
	}
	err = postgres.Migrate(ctx, db)
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("bench template: %w", err)
	}
	return bc, nil
}

// NewDatabase creates a fresh migrated database and returns its name (name with a
// number) and DSN.
func (c *Cluster) NewDatabase(ctx context.Context, name string) (dbName, dsn string, err error) {
	c.seq++
	dbName = fmt.Sprintf("%s_%d", name, c.seq)
	if err := c.DropDatabase(ctx, dbName); err != nil {
		return "", "", err
	}
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE `+pq.QuoteIdentifier(dbName)+` TEMPLATE bench_template STRATEGY FILE_COPY`); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", dbName, err)
	}
	return dbName, c.DSN(dbName), nil
}

// DropDatabase drops the database name if it exists, closing its connections.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if _, err := c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+pq.QuoteIdentifier(name)+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Close stops the cluster and removes its directory.
func (c *Cluster) Close() error {
	c.admin.Close()
	err := c.Cluster.Stop()
	os.RemoveAll(c.dir)
	return err
}
