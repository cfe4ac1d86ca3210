// RxDB websocket replication benchmark (peer of BENCHMARKS.md), the counterpart of
// pouchdb-bench.js. CLIENTS RxDB 17 clients, each its own database with the memory
// storage, write DOCS documents shaped like the push benchmark's ops (a teacher's
// attendance, lessons and research activities) locally (untimed), then replicate them
// to the RxDB websocket server (rxdb-server.js: memory storage, its own process) on
// loopback in batches of BATCH. Phases (each push phase against a new server process):
//
//  push       every client runs `replicateWithWebsocketServer` (one-shot, live: false),
//             as an RxDB app does. That replication is both ways, and the server's one
//             collection holds every client's documents, so while pushing each client
//             also pulls what the others pushed. Timed from the start until the server
//             holds every document (its count is polled every 25 ms).
//  push-only  the same documents to a new server, but each client runs a push-only
//             replication (`replicateRxCollection` with only `push`) whose handler
//             sends the plugin's own `masterWrite` request through the plugin's own
//             `createWebSocketClient`: what PouchDB's `replicate.to` and our devices in
//             the push benchmark do. Timed the same way.
//  pull       one fresh client runs `replicateWithWebsocketServer` (one-shot) against
//             the server of the push phase and pulls every document.
//
// Prints one JSON line (RXDB_BENCH_DEBUG=1: the server's count while pushing, on stderr).
//
//   node rxdb-bench.js [clients] [docs per client] [batch] [--docs FILE] [--skip-push-only]
//
// --docs FILE: the documents to push, a JSON array with one array of documents per
// client (the Go benchmark writes the very ops it pushes to our server); without it
// the documents are generated as pouchdb-bench.js generates them.
//
// The free RxDB build refuses more than 13 collections open at once in one JavaScript
// realm (error COL23, a premium limit), so the clients run in worker threads of at
// most 10 clients each (2 workers for 20 clients, as many as this machine has cores).
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { spawn } = require('child_process');
const path = require('path');
const fs = require('fs');
const { createRxDatabase } = require('rxdb');
const { getRxStorageMemory } = require('rxdb/plugins/storage-memory');
const { replicateWithWebsocketServer, createWebSocketClient } = require('rxdb/plugins/replication-websocket');
const { replicateRxCollection } = require('rxdb/plugins/replication');
const { randomToken } = require('rxdb/plugins/utils');
const { firstValueFrom, filter, map } = require('rxjs');
const { recordSchema } = require('./rxdb-schema');
const { backlog } = require('./documents');

const CLIENTS_PER_WORKER = 10;
const TIME_LIMIT_MS = 10 * 60 * 1000;
const POLL_MS = 25;

// RxDB's reconnecting websocket client gives a connection attempt 4 s; when it runs
// out (on this loaded 2-core machine it does) the client closes the connecting `ws`
// socket after removing its handlers, and `ws` then emits an 'error' nobody listens
// to, which kills the realm. The client has already started another attempt, so
// count these and go on; anything else still kills the process.
let connectAborts = 0;
process.on('uncaughtException', (e) => {
  if (e && /closed before the connection was established/.test(e.message)) {
    connectAborts++;
    return;
  }
  console.error(e);
  process.exit(1);
});

// openClient opens a client database (memory storage) with the records collection.
async function openClient(name) {
  const db = await createRxDatabase({ name, storage: getRxStorageMemory(), multiInstance: false });
  await db.addCollections({ records: { schema: recordSchema } });
  return db;
}

// startReplication starts a one-shot replication of db's records with the server at
// url: both ways with replicateWithWebsocketServer, or push only ("push-only") through
// the plugin's websocket client. It returns the replication and its counters.
async function startReplication(mode, db, url, batch) {
  let state;
  if (mode === 'push-only') {
    // What replicateWithWebsocketServer's push handler does, without its pull half
    // (and without subscribing to the server's change stream).
    const client = await createWebSocketClient({ collection: db.records, url, replicationIdentifier: 'bench' });
    const flag = randomToken(10);
    let counter = 0;
    state = replicateRxCollection({
      collection: db.records, replicationIdentifier: 'bench', live: false,
      push: {
        batchSize: batch,
        handler(docs) {
          const id = db.token + '|' + flag + '|' + counter++;
          client.socket.send(JSON.stringify({ id, collection: db.records.name, method: 'masterWrite', params: [docs] }));
          return firstValueFrom(client.message$.pipe(filter(m => m.id === id), map(m => m.result)));
        },
      },
    });
    db.records.onClose.push(() => client.socket.close());
  } else {
    state = await replicateWithWebsocketServer({ collection: db.records, url, replicationIdentifier: 'bench', batchSize: batch, live: false });
  }
  const r = { state, sent: 0, received: 0, errors: [] };
  state.sent$.subscribe(() => r.sent++);
  state.received$.subscribe(() => r.received++);
  state.error$.subscribe(e => r.errors.push(String(e && e.message || e).slice(0, 500)));
  r.done = firstValueFrom(state.canceled$.pipe(filter(Boolean)));
  return r;
}

// warmUp runs one empty one-shot replication with the (still empty) server, so that
// the timed phases do not pay for compiling RxDB's replication code in this realm.
async function warmUp(url) {
  const db = await openClient('warmup');
  await (await startReplication('both', db, url, 1)).done;
  await db.close();
}

if (!isMainThread) {
  // A worker: its share of the clients.
  const { clients, url, batch, mode } = workerData;
  const dbs = [];
  let reps = [];
  const counts = () => ({ sent: reps.reduce((s, r) => s + r.sent, 0), received: reps.reduce((s, r) => s + r.received, 0),
    errors: reps.flatMap(r => r.errors), connectAborts });
  parentPort.on('message', async (m) => {
    try {
      if (m === 'push') {
        reps = await Promise.all(dbs.map(db => startReplication(mode, db, url, batch)));
        await Promise.all(reps.map(r => r.done));
        parentPort.postMessage({ done: true, ...counts() });
      } else if (m === 'stop') {
        // The server holds everything: report. The main thread then terminates this
        // worker (a two-way client may still be pulling what the others pushed, and
        // closing its database would wait for that).
        parentPort.postMessage({ stopped: true, ...counts() });
      }
    } catch (e) {
      parentPort.postMessage({ error: String(e && e.stack || e) });
    }
  });
  (async () => {
    for (const c of clients) {
      const db = await openClient('client' + c.index);
      const res = await db.records.bulkInsert(c.docs);
      if (res.error.length) throw new Error(`client ${c.index}: ${res.error.length} local inserts failed: ${JSON.stringify(res.error[0]).slice(0, 300)}`);
      dbs.push(db);
    }
    await warmUp(url);
    parentPort.postMessage({ ready: true });
  })().catch(e => parentPort.postMessage({ error: String(e && e.stack || e) }));
  return;
}

function parseArgs(argv) {
  const pos = [], opt = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--docs') opt.docsFile = argv[++i];
    else if (argv[i] === '--skip-push-only') opt.skipPushOnly = true;
    else pos.push(argv[i]);
  }
  return { clients: +(pos[0] || 10), docs: +(pos[1] || 2000), batch: +(pos[2] || 500), ...opt };
}

// startServer runs rxdb-server.js on a free loopback port.
function startServer() {
  const server = spawn(process.execPath, [path.join(__dirname, 'rxdb-server.js'), '0'], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('rxdb-server did not start in 60 s')), 60000);
    server.on('exit', code => reject(new Error('rxdb-server exited: ' + code)));
    server.stdout.on('data', d => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        const port = JSON.parse(out.slice(0, nl)).port;
        resolve({ server, port, url: `ws://127.0.0.1:${port}`, stats: () => getStats(port) });
      }
    });
  });
}

// getStats asks the server for its document count and CPU time (retrying a failed
// request: the server is busy, not gone, while a push runs).
async function getStats(port) {
  for (let i = 0; ; i++) {
    try {
      return await (await fetch(`http://127.0.0.1:${port}/stats`)).json();
    } catch (e) {
      if (i === 20) throw e;
      await sleep(100);
    }
  }
}

// startWorker starts a worker thread on its share of clients. until(key) resolves with
// the worker's next message that has key set (messages of each key are queued until
// asked for) and rejects once the worker reported an error or died.
function startWorker(data) {
  const w = new Worker(__filename, { workerData: data });
  const queues = {}, waiters = {};
  let failure = null;
  const fail = (e) => {
    failure = failure || new Error(e);
    for (const k in waiters) waiters[k].splice(0).forEach(x => x.reject(failure));
  };
  w.on('message', (m) => {
    if (m.error) return fail(m.error);
    for (const k of Object.keys(m).filter(k => m[k] === true)) {
      if (waiters[k] && waiters[k].length) waiters[k].shift().resolve(m);
      else (queues[k] = queues[k] || []).push(m);
    }
  });
  w.on('error', e => fail(String(e && e.stack || e)));
  w.on('exit', code => fail('worker exited ' + code));
  return {
    worker: w,
    send: (m) => w.postMessage(m),
    until: (key) => new Promise((resolve, reject) => {
      if (queues[key] && queues[key].length) return resolve(queues[key].shift());
      if (failure) return reject(failure);
      (waiters[key] = waiters[key] || []).push({ resolve, reject });
    }),
  };
}

const cpuMicros = () => { const u = process.cpuUsage(); return u.user + u.system; };
const sleep = (ms) => new Promise(r => setTimeout(r, ms));

// pushPhase pushes perClient's documents to srv from clients in workers and returns
// the phase's figures.
async function pushPhase(mode, srv, perClient, batch) {
  const total = perClient.reduce((s, d) => s + d.length, 0);
  const workers = [];
  try {
    for (let i = 0; i < perClient.length; i += CLIENTS_PER_WORKER) {
      const share = perClient.slice(i, i + CLIENTS_PER_WORKER).map((docs, k) => ({ index: i + k, docs }));
      workers.push(startWorker({ clients: share, url: srv.url, batch, mode }));
    }
    await Promise.all(workers.map(w => w.until('ready'))); // local inserts and warm-up done (untimed)
    const s0 = await srv.stats();
    const c0 = cpuMicros();
    const t0 = process.hrtime.bigint();
    workers.forEach(w => w.send('push'));
    let failed = null;
    const finished = Promise.all(workers.map(w => w.until('done'))).catch(e => { failed = e; });
    for (;;) {
      if (failed) throw failed;
      const s = await srv.stats();
      if (process.env.RXDB_BENCH_DEBUG) console.error(mode, s.docs, total);
      if (s.docs >= total) break;
      await sleep(POLL_MS);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const c1 = cpuMicros();
    const s1 = await srv.stats();
    if (s1.docs !== total) throw new Error(`server holds ${s1.docs} documents, want ${total}`);
    if (process.env.RXDB_BENCH_DEBUG) console.error(mode, "stopping");
    workers.forEach(w => w.send('stop'));
    const rs = await Promise.all(workers.map(w => w.until('stopped')));
    if (process.env.RXDB_BENCH_DEBUG) console.error(mode, "stopped");
    finished.catch(() => {});
    const errors = rs.flatMap(r => r.errors);
    return {
      docsPerSec: Math.round(total / secs), secs,
      sent: rs.reduce((s, r) => s + r.sent, 0),
      // documents of other clients that the pushing clients had pulled by then
      received: rs.reduce((s, r) => s + r.received, 0),
      errors: errors.length, firstError: errors[0],
      // connection attempts RxDB's client gave up after 4 s (and retried)
      connectAborts: rs.reduce((s, r) => s + r.connectAborts, 0),
      // CPU per document: the server process, and the clients' process (all workers)
      serverCpuMicrosPerDoc: +((s1.cpuMicros - s0.cpuMicros) / total).toFixed(1),
      clientCpuMicrosPerDoc: +((c1 - c0) / total).toFixed(1),
    };
  } finally {
    await Promise.all(workers.map(w => w.worker.terminate()));
  }
}

// quiesce waits (at most 30 s) until the server process is idle: after a two-way push
// phase it still answers the requests of the clients that were stopped.
async function quiesce(srv) {
  let prev = (await srv.stats()).cpuMicros;
  for (let i = 0; i < 150; i++) {
    await sleep(200);
    const now = (await srv.stats()).cpuMicros;
    if (now - prev < 10000) return;
    prev = now;
  }
}

// pullPhase has one fresh client pull everything srv holds.
async function pullPhase(srv, batch, total) {
  const fresh = await openClient('fresh');
  await quiesce(srv);
  const s0 = await srv.stats();
  const c0 = cpuMicros();
  const t0 = process.hrtime.bigint();
  const r = await startReplication('both', fresh, srv.url, batch);
  await r.done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = cpuMicros();
  const s1 = await srv.stats();
  const have = await fresh.records.count().exec();
  await fresh.close();
  if (have !== total) throw new Error(`fresh client holds ${have} documents after the pull, want ${total}`);
  return {
    pulled: have, docsPerSec: Math.round(have / secs), secs, errors: r.errors.length, connectAborts,
    serverCpuMicrosPerDoc: +((s1.cpuMicros - s0.cpuMicros) / have).toFixed(1),
    clientCpuMicrosPerDoc: +((c1 - c0) / have).toFixed(1),
    serverRssMiB: Math.round(s1.rssBytes / 1048576),
  };
}

(async () => {
  const args = parseArgs(process.argv.slice(2));
  const perClient = args.docsFile
    ? JSON.parse(fs.readFileSync(args.docsFile, 'utf8'))
    : Array.from({ length: args.clients }, (_, c) => backlog(c, args.docs));
  const clients = perClient.length, total = perClient.reduce((s, d) => s + d.length, 0);
  const servers = [];
  const killer = setTimeout(() => {
    console.error('rxdb-bench: time limit');
    servers.forEach(s => s.server.kill('SIGKILL'));
    process.exit(2);
  }, TIME_LIMIT_MS);
  try {
    const out = {
      peer: `rxdb@${require('rxdb/package.json').version} replication-websocket, memory storage (not durable)`,
      node: process.version, clients, docsPerClient: Math.round(total / clients), batch: args.batch, docs: total,
    };
    let srv = await startServer();
    servers.push(srv);
    await warmUp(srv.url);
    out.push = await pushPhase('both', srv, perClient, args.batch);
    out.pull = await pullPhase(srv, args.batch, total);
    srv.server.kill('SIGINT');
    if (!args.skipPushOnly) {
      srv = await startServer();
      servers.push(srv);
      out.pushOnly = await pushPhase('push-only', srv, perClient, args.batch);
    }
    console.log(JSON.stringify(out));
  } finally {
    clearTimeout(killer);
    servers.forEach(s => s.server.kill('SIGINT'));
  }
})().catch(e => { console.error(e); process.exit(1); });
