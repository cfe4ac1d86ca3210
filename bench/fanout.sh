#!/usr/bin/env bash
# Fan-out, memory per idle connection, push/pull through a separate server process:
# starts the server (embedded PostgreSQL, fsync on) on loopback, fills its database with
# loadgen -setup, runs loadgen against it, and stops the server.
#
#   bench/fanout.sh 1000      # devices (2 per teacher)
#   bench/fanout.sh 10000
#   FANOUT_BIN=/tmp/base bench/fanout.sh 10000   # prebuilt server and loadgen (e.g. of another
#                                                # commit, to compare back to back): not rebuilt
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-1000}
teachers=$((devices / 2))
ulimit -n "$(ulimit -Hn)" || true
mkdir -p bench/run
bin=${FANOUT_BIN:-bench/bin}
if [ -z "${FANOUT_BIN:-}" ]; then
	mkdir -p "$bin"
	go build -o "$bin/server" ./server
	go build -o "$bin/loadgen" ./cmd/loadgen
fi
data=$(mktemp -d /tmp/jiaoliu-fanout-XXXX)
addr=${FANOUT_ADDR:-127.0.0.1:18080}
DEMO=false DATA_DIR="$data" ADMIN_PASSWORD=bench-admin-password ADDR=$addr LOG_LEVEL=error "$bin/server" > bench/run/server.log 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do curl -sf "http://$addr/readyz" > /dev/null && break; sleep 0.5; done
dsn="host=$data/postgres/run dbname=jiaoliu user=postgres sslmode=disable"
"$bin/loadgen" -setup -database-url "$dsn" -schools 300 -teachers "$teachers" -devices "$devices"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/loadgen" -url "ws://$addr/sync" -teachers "$teachers" -devices "$devices" -server-pid "$pid" \
	-pushers 20 -backlog 2000 -batch 500 -poke-writers 10 -poke-for 20s -idle 5s -reconnect 0.5 "${@:2}"
