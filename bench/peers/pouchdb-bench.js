// PouchDB replication benchmark (peer of BENCHMARKS.md): CLIENTS PouchDB 9 clients with
// the memory adapter each write DOCS documents shaped like the push benchmark's ops
// (attendance, lessons, research activities of one teacher) and replicate them to
// pouchdb-server 4.2.0 (in memory) on loopback in batches of BATCH; then one fresh
// client pulls everything. Prints one JSON line.
//   node pouchdb-bench.js [clients] [docs per client] [batch]
const { spawn } = require('child_process');
const path = require('path');
const fs = require('fs');
const os = require('os');
const PouchDB = require('pouchdb').plugin(require('pouchdb-adapter-memory'));
const { backlog } = require('./documents');

const clients = +(process.argv[2] || 10), docs = +(process.argv[3] || 2000), batch = +(process.argv[4] || 500);
const port = 15984, url = `http://127.0.0.1:${port}/`;

async function waitUp() {
  for (let i = 0; i < 120; i++) {
    try { const r = await fetch(url); if (r.ok) return; } catch (e) {}
    await new Promise(r => setTimeout(r, 250));
  }
  throw new Error('pouchdb-server did not start');
}

(async () => {
  const bin = path.join(__dirname, 'node_modules', '.bin', 'pouchdb-server');
  const server = spawn(bin, ['--in-memory', '--port', String(port), '--host', '127.0.0.1', '--no-stdout-logs'], { stdio: ['ignore', 'ignore', 'inherit'], cwd: fs.mkdtempSync(path.join(os.tmpdir(), 'pouchdb-server-')) });
  try {
    await waitUp();
    await fetch(url + 'bench', { method: 'PUT' });
    const locals = [];
    for (let c = 0; c < clients; c++) {
      const db = new PouchDB('client' + c, { adapter: 'memory' });
      await db.bulkDocs(backlog(c, docs, '_id'));
      locals.push(db);
    }
    let t0 = Date.now();
    await Promise.all(locals.map(db => db.replicate.to(url + 'bench', { batch_size: batch })));
    const pushSecs = (Date.now() - t0) / 1000;
    const fresh = new PouchDB('fresh', { adapter: 'memory' });
    t0 = Date.now();
    const info = await fresh.replicate.from(url + 'bench', { batch_size: batch });
    const pullSecs = (Date.now() - t0) / 1000;
    console.log(JSON.stringify({ peer: 'pouchdb@9 → pouchdb-server@4.2.0 (in memory)', clients, docsPerClient: docs, batch,
      pushDocsPerSec: Math.round(clients * docs / pushSecs), pushSecs, pulled: info.docs_written, pullDocsPerSec: Math.round(info.docs_written / pullSecs), pullSecs }));
  } finally {
    server.kill('SIGINT');
  }
})().catch(e => { console.error(e); process.exit(1); });
