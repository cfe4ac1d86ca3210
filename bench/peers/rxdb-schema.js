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

// backlog returns the n documents of client c the way bench.Backlog writes a teacher's
// backlog (for runs without a documents file from the Go benchmark): per school day
// its attendance, 4 lessons, and a research activity every fifth day.
exports.backlog = function backlog(c, n) {
  const out = [];
  const start = Date.UTC(2026, 8, 1);
  for (let day = 0, slot = 0; out.length < n; ) {
    const date = new Date(start + day * 86400000).toISOString().slice(0, 10);
    const id = `${c}-${out.length}`;
    if (slot === 0) out.push({ id: 'attendance:' + id, entity: 'attendance', exchangeId: 'x' + c, date, status: 'PRESENT' });
    else if (slot <= 4) out.push({ id: 'lesson:' + id, entity: 'lesson', exchangeId: 'x' + c, date, period: slot, subject: '数学',
      kind: ['REGULAR', 'DEMONSTRATION', 'GUIDANCE'][slot % 3], topic: '分数的初步认识（第' + slot + '课时）', gradeLevel: '三年级', className: '三（2）班', minutes: 40 });
    else out.push({ id: 'research:' + id, entity: 'researchActivity', exchangeId: 'x' + c, date, kind: 'JOINT_PREPARATION', topic: '集体备课：分数' });
    slot++;
    const perDay = day % 5 === 0 ? 6 : 5;
    if (slot === perDay) { slot = 0; day++; }
  }
  return out;
};
