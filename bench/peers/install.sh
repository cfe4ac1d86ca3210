#!/usr/bin/env bash
# Installs the peers compared in BENCHMARKS.md into bench/peers/node_modules (ignored
# by git; nothing of theirs is committed). Needs Node 20 and npm.
set -euo pipefail
cd "$(dirname "$0")"
[ -f package.json ] || echo '{"name":"jiaoliu-bench-peers","private":true}' > package.json
npm install --no-audit --no-fund --ignore-scripts postgraphile@4 pouchdb@9 pouchdb-adapter-memory@9 pouchdb-server@4.2.0
