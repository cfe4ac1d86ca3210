// The benchmark's documents for the peers (PouchDB, RxDB), generated the way
// bench.Backlog writes a teacher's backlog (for runs without a documents file from the Go
// benchmark): per school day its attendance, 4 lessons, and a research activity every
// fifth day. key names the document id: 'id' for RxDB, '_id' for PouchDB.
exports.backlog = function backlog(c, n, key = 'id') {
  const out = [];
  const start = Date.UTC(2026, 8, 1);
  for (let day = 0, slot = 0; out.length < n; ) {
    const date = new Date(start + day * 86400000).toISOString().slice(0, 10);
    const id = `${c}-${out.length}`;
    if (slot === 0) out.push({ [key]: 'attendance:' + id, entity: 'attendance', exchangeId: 'x' + c, date, status: 'PRESENT' });
    else if (slot <= 4) out.push({ [key]: 'lesson:' + id, entity: 'lesson', exchangeId: 'x' + c, date, period: slot, subject: '数学',
      kind: ['REGULAR', 'DEMONSTRATION', 'GUIDANCE'][slot % 3], topic: '分数的初步认识（第' + slot + '课时）', gradeLevel: '三年级', className: '三（2）班', minutes: 40 });
    else out.push({ [key]: 'research:' + id, entity: 'researchActivity', exchangeId: 'x' + c, date, kind: 'JOINT_PREPARATION', topic: '集体备课：分数' });
    slot++;
    const perDay = day % 5 === 0 ? 6 : 5;
    if (slot === perDay) { slot = 0; day++; }
  }
  return out;
};
