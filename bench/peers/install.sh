#!/usr/bin/env bash
# Installs the peers compared in BENCHMARKS.md into bench/peers/node_modules (ignored
# by git; nothing of theirs is committed). Needs Node 20 and npm.
#
# RxDB: the free `rxdb` package (17.x; its engines field asks for Node >= 20) with its
# websocket replication server and client (rxdb/plugins/replication-websocket, which
# brings its own `ws`) and the memory storage; rxjs is its peer dependency. npm warns
# EBADENGINE for two of its dependencies, graphql 17 and z-schema 12, which ask for
# Node 22: only the GraphQL replication and z-schema validation plugins load them,
# and the benchmark uses neither (rxdb-bench.js runs on Node 20).
set -euo pipefail
cd "$(dirname "$0")"
[ -f package.json ] || echo '{"name":"jiaoliu-bench-peers","private":true}' > package.json
npm install --no-audit --no-fund --ignore-scripts postgraphile@4 pouchdb@9 pouchdb-adapter-memory@9 pouchdb-server@4.2.0 \
	rxdb@17 rxjs@7
# Fail here rather than in the benchmark if rxdb's plugins do not load on this Node.
node -e "require('rxdb/plugins/replication-websocket'); require('rxdb/plugins/storage-memory'); require('rxdb/plugins/replication')"
