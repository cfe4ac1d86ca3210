package postgres

import (
	"context"
	"fmt"
	"hash"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// The district views keep what they computed between calls and recompute only what
// changed since (docs/policy.md, "How the dashboards stay fast"). Every cached part is
// checked on every call against what it was computed from, read afresh:
//
//   - the activity of each exchange over a window (its counts and longest absence run)
//     is recounted when the exchange has delta rows in exchange_week_stats (a write not
//     yet folded), when a fold or rebuild logged it since the cache's generation
//     (exchange_stats_log, migration 00011), or when the exchange itself changed;
//   - the eligibility and quotas of a scope and year, the progress of its exchanges as
//     of a day and its mentoring pairs are reused only when a fingerprint of every row
//     they read is unchanged: ids and versions (each write gives a record a new version
//     from change_seq), hashed in Go for the rows the view reads anyway, or in SQL
//     (uuid_hash_extended(id, version), summed, with the count) for the rows it would
//     read only to compute the part.
//
// A fingerprint is always read before (or with) the data it guards: a write committed
// between the two leaves an entry that the next fingerprint does not match, so a cache
// can only be recomputed too often, never serve what a committed write changed. Cached
// values are shared between calls and never modified.

// viewCache is the Store's cache of district views; the zero value is ready.
type viewCache struct {
	mu       sync.Mutex
	tick     uint64 // the clock of the entries by day (used)
	activity map[activityWindow]*activityEntry
	rules    map[string]*rulesEntry
	progress map[string]*progressEntry
	pairs    map[string]*pairsEntry
	// pairInputs holds the pairs of a scope and year with their activities' days, for
	// their progress on a day not asked before.
	pairInputs map[string]*pairInputs
	// grades holds the evaluations read for the progress of a scope's exchanges, for
	// their progress as of a day not asked before.
	grades map[string]*gradesEntry
	// absences holds the exchanges' ABSENT records, for their longest runs up to any
	// day.
	absences *absenceEntry
	// exchanges holds the exchanges of a district view as last read, with the
	// fingerprint of their rows (as Store.teachers holds the teachers).
	exchanges map[string]*exchangeCache
}

type exchangeCache struct {
	fingerprint string
	exchanges   []*jiaoliu.Exchange
}

// maxEntries bounds each map of the cache keyed by scope: other scopes push the oldest
// out (the whole map is dropped, which is simple and rare). The maps keyed by day are
// bounded by size (putSized).
const maxEntries = 64

func putBounded[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil || len(*m) >= maxEntries {
		*m = map[K]V{}
	}
	(*m)[k] = v
}

// The parts of a view that depend on the day (the activity of a window, the progress
// and the pairs as of a day) are bounded by what they hold, not by their number: a
// district's day is thousands of progress records (about 2.5 kB each), and every day
// asked would otherwise stay in the heap until 64 were, which the collector then scans
// on every cycle (as of another day, p95 121–153 ms with 64 kept, 71–81 ms with 6).
// maxDayItems holds four days of a 2,000-exchange district, or every school's view of
// today in a county of 300 schools.
const maxDayItems = 8192

// sized is a cache entry that knows how many items (exchanges, pairs) it holds and
// when it was last put or served.
type sized interface {
	size() int
	use(tick uint64)
	lastUsed() uint64
}

// used is when a cache entry was last put or served, on its cache's clock
// (viewCache.tick for the entries by day, sharedStmts.tick for shared statements);
// guarded by that cache's mutex, the only part of an entry that changes once it is put.
type used struct{ at uint64 }

func (u *used) use(tick uint64)  { u.at = tick }
func (u *used) lastUsed() uint64 { return u.at }

func (e *activityEntry) size() int { return len(e.byID) }
func (e *progressEntry) size() int { return len(e.list) }
func (e *pairsEntry) size() int    { return len(e.list) }

// touch marks e as served now. The caller holds c.mu.
func (c *viewCache) touch(e sized) {
	c.tick++
	e.use(c.tick)
}

// putSized puts v under k and removes the entries served longest ago until the entries
// hold at most maxDayItems items with v, or only v is left. The caller holds c.mu.
func putSized[K comparable, V sized](c *viewCache, m *map[K]V, k K, v V) {
	if *m == nil {
		*m = map[K]V{}
	}
	delete(*m, k)
	c.touch(v)
	total := 1 + v.size()
	keys := make([]K, 0, len(*m))
	for key, e := range *m {
		total += 1 + e.size()
		keys = append(keys, key)
	}
	if total > maxDayItems {
		sort.Slice(keys, func(i, j int) bool { return (*m)[keys[i]].lastUsed() < (*m)[keys[j]].lastUsed() })
		for _, key := range keys {
			if total <= maxDayItems {
				break
			}
			total -= 1 + (*m)[key].size()
			delete(*m, key)
		}
	}
	(*m)[k] = v
}

type activityWindow struct{ from, to jiaoliu.Date }

// activityEntry holds the activity of exchanges over one window, valid as of a
// generation of exchange_stats_log.
type activityEntry struct {
	used
	generation int64
	byID       map[string]cachedActivity
}

type cachedActivity struct {
	version int64 // of the exchange counted (its teacher decides which observations count)
	a       *jiaoliu.ExchangeActivity
}

// statsStateQuery reads, in one snapshot, the latest and oldest generations of the
// log, the exchanges folded or rebuilt after generation $2 (all_touched: a rebuild), and
// which of the exchanges $1 have delta rows (of any week: an absence run reads every
// attendance record up to the day judged).
const statsStateQuery = `
SELECT (SELECT max(generation) FROM exchange_stats_log) AS generation,
	(SELECT min(generation) FROM exchange_stats_log) AS oldest,
	(SELECT coalesce(bool_or(touched IS NULL), false) FROM exchange_stats_log WHERE generation > $2) AS all_touched,
	(SELECT coalesce(array_agg(DISTINCT u), '{}')::text[] FROM exchange_stats_log l, unnest(l.touched) u WHERE l.generation > $2) AS touched,
	(SELECT coalesce(array_agg(DISTINCT exchange_id), '{}')::text[] FROM exchange_week_stats WHERE delta AND exchange_id = ANY($1::uuid[])) AS dirty`

// cachedActivity returns the activity of the exchanges over from..to, recounting only
// the exchanges whose counters changed since the cached entry of that window.
func (s *Store) cachedActivity(ctx context.Context, exchanges []*jiaoliu.Exchange, from, to jiaoliu.Date) (map[string]*jiaoliu.ExchangeActivity, error) {
	w := activityWindow{from, to}
	s.views.mu.Lock()
	entry, abs := s.views.activity[w], s.views.absences
	if entry != nil {
		s.views.touch(entry)
	}
	s.views.mu.Unlock()
	// The log is read from the older of the two entries: what changed since is stale
	// for both (for the newer one, possibly more than changed since it).
	since := int64(-1)
	if entry != nil {
		since = entry.generation
	}
	if abs != nil && (entry == nil || abs.generation < since) {
		since = abs.generation
	}
	ids := make([]string, len(exchanges))
	for i, x := range exchanges {
		ids[i] = x.ID
	}
	var st struct {
		Generation int64          `db:"generation"`
		Oldest     int64          `db:"oldest"`
		AllTouched bool           `db:"all_touched"`
		Touched    pq.StringArray `db:"touched"`
		Dirty      pq.StringArray `db:"dirty"`
	}
	if err := s.db.GetContext(ctx, &st, statsStateQuery, pq.Array(ids), since); err != nil {
		return nil, fmt.Errorf("count activity: read stats state: %w", err)
	}
	// Without an entry, or when the log no longer reaches back to it, everything is
	// recounted.
	valid := entry != nil && !st.AllTouched && st.Oldest <= entry.generation+1 && entry.generation <= st.Generation
	absValid := abs != nil && !st.AllTouched && st.Oldest <= abs.generation+1 && abs.generation <= st.Generation
	stale := make(map[string]bool, len(st.Touched)+len(st.Dirty))
	for _, id := range st.Touched {
		stale[id] = true
	}
	for _, id := range st.Dirty {
		stale[id] = true
	}
	out := make(map[string]*jiaoliu.ExchangeActivity, len(exchanges))
	var recount []string
	for _, x := range exchanges {
		if valid && !stale[x.ID] {
			if c, ok := entry.byID[x.ID]; ok && c.version == x.Version {
				out[x.ID] = c.a
				continue
			}
		}
		recount = append(recount, x.ID)
	}
	var read map[string][]absentRecord
	if len(recount) > 0 {
		// The absences of an exchange do not depend on the window: they are kept
		// across windows and days, as long as the exchange's counters did not change.
		absent := map[string][]absentRecord{}
		if absValid {
			for _, id := range recount {
				if recs, ok := abs.byID[id]; ok && !stale[id] {
					absent[id] = recs
				}
			}
		}
		fresh, r, err := s.activity(ctx, recount, from, to, absent)
		if err != nil {
			return nil, err
		}
		for id, a := range fresh {
			out[id] = a
		}
		read = r
	}
	// The new entry: the old one without what the log or the delta rows say changed
	// (for every exchange, not only these), with what was just counted.
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	s.keepAbsences(st.Generation, since, absValid, stale, read)
	cur := s.views.activity[w]
	if cur != nil && cur.generation > st.Generation {
		return out, nil // a newer entry is in place
	}
	if cur != nil && cur == entry && cur.generation == st.Generation && len(recount) == 0 && len(stale) == 0 {
		return out, nil // nothing changed
	}
	next := &activityEntry{generation: st.Generation, byID: make(map[string]cachedActivity, len(exchanges))}
	// The entries kept are those of an entry at least as recent as the one the log was
	// read from: what changed after it is in stale.
	if valid && cur != nil && cur.generation >= since {
		keepFresh(next.byID, cur.byID, stale)
	}
	for _, x := range exchanges {
		next.byID[x.ID] = cachedActivity{version: x.Version, a: out[x.ID]}
	}
	putSized(&s.views, &s.views.activity, w, next)
	return out, nil
}

// keepFresh copies into next the entries of kept whose exchange is not stale.
func keepFresh[V any](next, kept map[string]V, stale map[string]bool) {
	for id, v := range kept {
		if !stale[id] {
			next[id] = v
		}
	}
}

// absenceEntry holds the ABSENT records of exchanges (absentRecords), valid as of a
// generation of exchange_stats_log.
type absenceEntry struct {
	generation int64
	byID       map[string][]absentRecord
}

// keepAbsences replaces the kept absences with those valid as of generation: the kept
// ones (when valid, read from the log since since) without the stale, and read. The
// caller holds s.views.mu.
func (s *Store) keepAbsences(generation, since int64, valid bool, stale map[string]bool, read map[string][]absentRecord) {
	cur := s.views.absences
	if cur != nil && cur.generation > generation {
		return // a newer entry is in place
	}
	if cur != nil && cur.generation == generation && len(read) == 0 && len(stale) == 0 {
		return // nothing changed
	}
	next := &absenceEntry{generation: generation, byID: make(map[string][]absentRecord, len(read))}
	if valid && cur != nil && cur.generation >= since {
		keepFresh(next.byID, cur.byID, stale)
	}
	for id, recs := range read {
		next.byID[id] = recs
	}
	s.views.absences = next
}

// fingerprintHash hashes ids and versions (and other strings) in order.
type fingerprintHash struct {
	h   hash.Hash
	buf []byte
}

func newFingerprint() *fingerprintHash { return &fingerprintHash{h: fnv.New128a()} }

func (f *fingerprintHash) add(id string, version int64) *fingerprintHash {
	f.buf = append(f.buf[:0], id...)
	f.buf = append(f.buf, ':')
	f.buf = strconv.AppendInt(f.buf, version, 10)
	f.buf = append(f.buf, ';')
	f.h.Write(f.buf)
	return f
}

func (f *fingerprintHash) str(v string) *fingerprintHash { return f.add(v, 0) }

func (f *fingerprintHash) sum() string { return string(f.h.Sum(nil)) }

// inputsFingerprint hashes what the rules of a district view read besides the scope's
// teachers: the policy, the schools, the deferrals and the exchanges.
func (dd *districtData) inputsFingerprint() string {
	f := newFingerprint().str(dd.scope.district.ID).str(dd.scope.school).str(string(dd.year)).add(dd.policy.ID, dd.policy.Version)
	f.str(dd.teacherFP)
	for _, sc := range dd.schools {
		f.add(sc.ID, sc.Version)
	}
	f.str("byID")
	for _, x := range dd.exchanges {
		for _, id := range []string{x.SendingSchoolID, x.ReceivingSchoolID} {
			if sc := dd.byID[id]; sc != nil {
				f.add(sc.ID, sc.Version)
			}
		}
		if t := dd.teacherByID[x.TeacherID]; t != nil {
			f.add(t.ID, t.Version)
		}
		f.add(x.ID, x.Version)
	}
	f.str("deferrals")
	var deferrals []*jiaoliu.Deferral
	for _, ds := range dd.deferrals {
		deferrals = append(deferrals, ds...)
	}
	sort.Slice(deferrals, func(i, j int) bool { return deferrals[i].ID < deferrals[j].ID })
	for _, d := range deferrals {
		f.add(d.ID, d.Version)
	}
	for _, g := range dd.groupList {
		f.add(g.ID, g.Version)
	}
	return f.sum()
}

func (dd *districtData) scopeKey() string {
	return dd.scope.district.ID + "/" + dd.scope.school + "/" + string(dd.year)
}

type rulesEntry struct {
	fingerprint string
	elig        []*jiaoliu.Eligibility
	rep         *jiaoliu.QuotaReport
}

// rules returns the eligibility of the teachers in scope and the quotas, from the
// cache when nothing they are computed from changed. The report is a copy: callers
// may clear its district-wide parts.
func (s *Store) rules(dd *districtData) ([]*jiaoliu.Eligibility, *jiaoliu.QuotaReport) {
	key, fp := dd.scopeKey(), dd.fingerprint()
	s.views.mu.Lock()
	e := s.views.rules[key]
	s.views.mu.Unlock()
	if e == nil || e.fingerprint != fp {
		elig := dd.eligibility()
		e = &rulesEntry{fingerprint: fp, elig: elig, rep: dd.quotas(elig)}
		s.views.mu.Lock()
		putBounded(&s.views.rules, key, e)
		s.views.mu.Unlock()
	}
	rep := *e.rep
	return e.elig, &rep
}

// fingerprint is inputsFingerprint, computed once per districtData.
func (dd *districtData) fingerprint() string {
	dd.fpOnce.Do(func() { dd.fp = dd.inputsFingerprint() })
	return dd.fp
}

// progressEntry is the progress of the exchanges of a district view as of a day.
type progressEntry struct {
	used
	shared string // the fingerprint of the grades of the list's exchanges and of the policies
	items  map[string]progressItem
	list   []*jiaoliu.ExchangeProgress
}

type progressItem struct {
	key      progressKey
	progress *jiaoliu.ExchangeProgress
}

// progressKey is what the progress of one exchange is computed from besides the shared
// part: the versions of the exchange, its schools and teacher (-1: none), and its
// activity (an entry of the activity cache, replaced when recounted).
type progressKey struct {
	exchange, sending, receiving, teacher int64
	activity                              *jiaoliu.ExchangeActivity
}

// progressFingerprintQuery fingerprints the evaluations of the exchanges $1 and the
// finalized UNQUALIFIED grades of their teachers $2 with those grades' exchanges: what
// the progress rules read besides the activity.
const progressFingerprintQuery = `
SELECT (SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(t.id, t.version)), 0) FROM evaluations t WHERE t.exchange_id = ANY($1::uuid[]))
	|| ':' || (SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(t.id, t.version) # uuid_hash_extended(x.id, x.version)), 0)
		FROM evaluations t JOIN exchanges x ON x.id = t.exchange_id
		WHERE x.teacher_id = ANY($2::uuid[]) AND t.finalized AND t.grade = 'UNQUALIFIED' AND NOT t.deleted)`

// pairsFingerprintQuery fingerprints the mentoring pairs of a district view (the
// filter of districtPairs), their activities, their teachers and those teachers'
// schools.
const pairsFingerprintQuery = `
WITH p AS (SELECT t.id, t.version, t.mentor_id, t.mentee_id FROM mentoring_pairs t
	WHERE t.academic_year = $2 AND NOT t.deleted AND $1::uuid IS NOT NULL AND (t.school_id IN %[1]s
		OR EXISTS (SELECT 1 FROM teachers tt WHERE tt.id IN (t.mentor_id, t.mentee_id) AND tt.school_id IN %[1]s)))
SELECT (SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(id, version)), 0) FROM p)
	|| ':' || (SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(a.id, a.version)), 0) FROM mentoring_activities a WHERE a.pair_id IN (SELECT id FROM p))
	|| ':' || (SELECT count(*) || '/' || coalesce(sum(uuid_hash_extended(tt.id, tt.version) # uuid_hash_extended(sc.id, sc.version)), 0)
		FROM teachers tt JOIN schools sc ON sc.id = tt.school_id
		WHERE tt.id IN (SELECT mentor_id FROM p UNION SELECT mentee_id FROM p))`

// gradesEntry is what the progress rules read of the evaluations of a list of
// exchanges (see progressOf): their evaluations, their teachers' finalized UNQUALIFIED
// grades and those grades' exchanges, as of a fingerprint of them and of the list.
type gradesEntry struct {
	fingerprint string
	evals       []*jiaoliu.Evaluation
	unqualified []*jiaoliu.Evaluation
	history     map[string]*jiaoliu.Exchange
}

type pairsEntry struct {
	used
	fingerprint string
	list        []*jiaoliu.PairProgress
}
