// RxDB websocket replication server (peer of BENCHMARKS.md): one RxDB 17 database with
// the memory storage (no durability: nothing is written to disk) and one collection,
// "records", whose documents are our lesson, attendance and research-activity records
// with the fields the push benchmark writes; served on loopback with the free
// `rxdb/plugins/replication-websocket` server. Besides the websocket, the same port
// answers GET /stats with the number of documents and this process's CPU time, so
// that the load script can check that the server holds everything it was sent.
//   node rxdb-server.js [port]        (0: any free port)
// Prints one JSON line {"port": N} when it listens; stops on SIGINT/SIGTERM or when
// its standard input closes (its parent died).
const http = require('http');
const { createRxDatabase } = require('rxdb');
const { getRxStorageMemory } = require('rxdb/plugins/storage-memory');
const { startWebsocketServer } = require('rxdb/plugins/replication-websocket');
const { recordSchema } = require('./rxdb-schema');

const port = +(process.argv[2] || 0);

(async () => {
  const db = await createRxDatabase({ name: 'server', storage: getRxStorageMemory(), multiInstance: false });
  await db.addCollections({ records: { schema: recordSchema } });
  const httpServer = http.createServer(async (req, res) => {
    if (req.url !== '/stats') {
      res.writeHead(404).end();
      return;
    }
    const cpu = process.cpuUsage();
    const docs = await db.records.count().exec();
    res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify({ docs, cpuMicros: cpu.user + cpu.system, rssBytes: process.memoryUsage().rss }));
  });
  // The websocket server shares the HTTP server's port (ws handles the upgrades).
  startWebsocketServer({ database: db, server: httpServer, maxPayload: 64 << 20 });
  await new Promise((res, rej) => httpServer.once('error', rej).listen(port, '127.0.0.1', res));
  console.log(JSON.stringify({ port: httpServer.address().port }));
  const stop = async () => {
    httpServer.close();
    await db.close().catch(() => {});
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop).on('error', stop).resume();
})().catch(e => { console.error(e); process.exit(1); });
