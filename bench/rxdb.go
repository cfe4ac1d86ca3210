package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jiaoliu/jiaoliu"
)

// RxDBPhase is one phase of bench/peers/rxdb-bench.js: a push (documents per second
// until the server holds them all) or a pull (documents per second until the fresh
// client holds them all).
type RxDBPhase struct {
	DocsPerSec float64 `json:"docsPerSec"`
	Secs       float64 `json:"secs"`
	Sent       int     `json:"sent"`     // push: documents the clients sent
	Received   int     `json:"received"` // push: documents of other clients the pushing clients pulled meanwhile
	Pulled     int     `json:"pulled"`   // pull: documents the fresh client holds
	Errors     int     `json:"errors"`
	FirstError string  `json:"firstError"`
	// ConnectAborts counts connection attempts RxDB's client gave up after its 4 s
	// timeout and retried.
	ConnectAborts int `json:"connectAborts"`
	// CPU time per document of the server's process and of the clients' process.
	ServerCPUMicrosPerDoc float64 `json:"serverCpuMicrosPerDoc"`
	ClientCPUMicrosPerDoc float64 `json:"clientCpuMicrosPerDoc"`
	ServerRSSMiB          int     `json:"serverRssMiB"`
}

// RxDBResult is the JSON line bench/peers/rxdb-bench.js prints.
type RxDBResult struct {
	Peer          string     `json:"peer"`
	Node          string     `json:"node"`
	Clients       int        `json:"clients"`
	DocsPerClient int        `json:"docsPerClient"`
	Batch         int        `json:"batch"`
	Docs          int        `json:"docs"`
	Push          *RxDBPhase `json:"push"`     // replicateWithWebsocketServer (both ways)
	PushOnly      *RxDBPhase `json:"pushOnly"` // a push-only replication through the plugin's client
	Pull          *RxDBPhase `json:"pull"`     // one fresh client
}

// RxDBAvailable reports why the RxDB peer cannot run from peersDir (bench/peers), or
// nil when it can: node 20 or later on PATH and rxdb installed by install.sh.
func RxDBAvailable(peersDir string) error {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node not found (%v): install Node 20 and run bench/peers/install.sh", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	if major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); major < 20 {
		return fmt.Errorf("node %s is older than 20, which rxdb 17 needs", v)
	}
	for _, f := range []string{"rxdb-bench.js", "rxdb-server.js", "node_modules/rxdb/package.json", "node_modules/rxjs/package.json"} {
		if _, err := os.Stat(filepath.Join(peersDir, f)); err != nil {
			return fmt.Errorf("rxdb not installed (run bench/peers/install.sh): %w", err)
		}
	}
	return nil
}

// RxDBDocs returns the documents the RxDB clients write for the given ops, one slice
// per client: each upsert op becomes the document {id, entity, ...fields}, the fields
// of the record our server stores for it.
func RxDBDocs(ops [][]jiaoliu.Op) [][]map[string]any {
	out := make([][]map[string]any, len(ops))
	for i, client := range ops {
		out[i] = make([]map[string]any, len(client))
		for k, op := range client {
			doc := make(map[string]any, len(op.Fields)+2)
			for f, v := range op.Fields {
				doc[f] = v
			}
			doc["id"], doc["entity"] = op.ID, op.Entity
			out[i][k] = doc
		}
	}
	return out
}

// RunRxDB runs bench/peers/rxdb-bench.js from peersDir on the documents of ops (one
// slice per client) in batches of batch, and returns what it measured. The script
// starts its own RxDB server on a loopback port and stops it.
func RunRxDB(ctx context.Context, peersDir string, ops [][]jiaoliu.Op, batch int, pushOnly bool) (*RxDBResult, error) {
	f, err := os.CreateTemp("", "jiaoliu-rxdb-docs-*.json")
	if err != nil {
		return nil, fmt.Errorf("rxdb docs: %w", err)
	}
	defer os.Remove(f.Name())
	err = json.NewEncoder(f).Encode(RxDBDocs(ops))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("rxdb docs: %w", err)
	}
	docs := 0
	if len(ops) > 0 {
		docs = len(ops[0])
	}
	args := []string{"rxdb-bench.js", strconv.Itoa(len(ops)), strconv.Itoa(docs), strconv.Itoa(batch), "--docs", f.Name()}
	if !pushOnly {
		args = append(args, "--skip-push-only")
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = peersDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rxdb-bench.js: %w: %s", err, tail(stderr.String(), 2000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res RxDBResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return nil, fmt.Errorf("rxdb-bench.js output %q: %w", tail(stdout.String(), 500), err)
	}
	if res.Push == nil || res.Pull == nil || (pushOnly && res.PushOnly == nil) {
		return nil, errors.New("rxdb-bench.js: a phase is missing from its output")
	}
	return &res, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
