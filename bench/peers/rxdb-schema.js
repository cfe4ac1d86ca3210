// The RxDB schema of the benchmark's documents: one document per record of our sync
// protocol (lesson, attendance, research activity), with the fields the push benchmark
// writes (bench.Backlog) and the edits it makes. Shared by rxdb-server.js and
// rxdb-bench.js; RxDB requires the server and its clients to agree on the schema.
const str = (maxLength) => (maxLength ? { type: 'string', maxLength } : { type: 'string' });

exports.recordSchema = {
  title: 'record',
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: str(64),
    entity: str(32),
    exchangeId: str(64),
    date: str(10),
    status: str(),
    period: { type: 'integer' },
    subject: str(),
    kind: str(),
    topic: str(),
    gradeLevel: str(),
    className: str(),
    minutes: { type: 'integer' },
    note: str(),
    notes: str(),
  },
  required: ['id', 'entity', 'exchangeId', 'date'],
  // Our tables are read by exchange and date; give RxDB the same index.
  indexes: [['exchangeId', 'date']],
};
