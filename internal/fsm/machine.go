package fsm

import (
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

type groupKey struct{ ns, group string }

// group is the leases of one namespace and group. num is its place in the
// machine's group table (Machine.gtab), which records name instead of a
// pointer: 4 bytes, not 8.
type group struct {
	key    groupKey
	leases recordSet
	num    uint32
}

// record is one held lease. It is kept at 48 bytes, the 48-byte size class:
// at a million leases every size class up costs 16 MB per replica.
// (TestRecordSize)
type record struct {
	// nameHolder is, in one allocation, the lease name's length less one
	// (one byte: names are 1 to maxRecordName bytes), the name, then the
	// holder. The length sits in the string rather than the struct because
	// the struct has no 8 bytes to spare, and before the name because a
	// lookup compares the name next, in the same cache line.
	nameHolder string
	token      uint64
	start      time.Duration
	expiry     time.Duration // start + duration
	// heapIdx is the record's place in the expiry heap, or -1 while the lease
	// is pinned past its expiry (it expires when its last pin goes).
	heapIdx int32
	// gnum is the record's group: Machine.gtab[gnum].
	gnum uint32
}

// maxRecordName is the longest lease name a record holds: its length less
// one must fit a byte.
const maxRecordName = 256

// Validation (lease.ValidateName) must never admit a name a record cannot
// hold: this fails to compile if lease.MaxNameLen grows past maxRecordName.
var _ [maxRecordName - lease.MaxNameLen]struct{}

// newRecord makes the record of lease name (1 to maxRecordName bytes) in
// group gnum.
func newRecord(gnum uint32, name, holder string, token uint64, start, expiry time.Duration) *record {
	// One allocation: a one-byte string is static, and the concatenation
	// allocates once.
	nh := string([]byte{byte(len(name) - 1)}) + name + holder
	return &record{gnum: gnum, nameHolder: nh, token: token, start: start, expiry: expiry}
}

func (r *record) nameEnd() int   { return int(r.nameHolder[0]) + 2 }
func (r *record) name() string   { return r.nameHolder[1:r.nameEnd()] }
func (r *record) holder() string { return r.nameHolder[r.nameEnd():] }

// group returns r's group.
func (m *Machine) group(r *record) *group { return m.gtab[r.gnum] }

func (m *Machine) key(r *record) lease.Key {
	gk := m.gtab[r.gnum].key
	return lease.Key{Namespace: gk.ns, Group: gk.group, Name: r.name()}
}

// Machine is the replicated lease state.
type Machine struct {
	now      time.Duration
	index    uint64
	tokenSeq uint64
	groups   map[groupKey]*group
	// gtab is the group table: gtab[i] is the group numbered i, or nil
	// while slot i is free (listed in freeGroups, reused first).
	gtab       []*group
	freeGroups []uint32
	// seed hashes lease names in the groups' sets (recordset.go).
	seed    maphash.Seed
	count   int
	heap    expiryHeap
	pins    map[lease.Key]map[string]struct{}
	members map[string]logentry.Member

	// Cluster settings (settings_limits.go): the last accepted payload, the
	// number of settings entries accepted, and the limits in force.
	settings        []byte
	settingsVersion uint64
	limits          lease.Limits

	// Claim-on-release queues (queued.go).
	queues      map[lease.Key]*waitQueue
	waitHeap    waitHeap
	queuedCount int

	recordEvents bool
	// skipExtends leaves extends of a tenure (EventExtended) out of the
	// recorded events: renewals are most of the applied ops, and only a
	// watcher that asked for them reads them.
	skipExtends bool
	events      []lease.Event
	// counts are the events of each kind applied by this machine, recorded
	// or not (extends included): the events metric reads them, so counting
	// needs no recording.
	counts EventCounts
}

// EventCounts are numbers of events by lease.EventKind (index 0 unused).
type EventCounts [lease.EventUnpinned + 1]uint64

// New returns an empty machine. It validates durations against
// lease.DefaultLimits until a settings entry replaces them: the limits come
// from the log alone, never from the server running the machine.
func New() *Machine {
	return &Machine{
		groups:  make(map[groupKey]*group),
		seed:    maphash.MakeSeed(),
		pins:    make(map[lease.Key]map[string]struct{}),
		members: make(map[string]logentry.Member),
		queues:  make(map[lease.Key]*waitQueue),
		limits:  lease.DefaultLimits,
	}
}

// Limits returns the limits in force.
func (m *Machine) Limits() lease.Limits { return m.limits }

// SettingsVersion is the number of settings entries the machine accepted (0
// for a cluster that never wrote any). A settings change names the version
// it was based on.
func (m *Machine) SettingsVersion() uint64 { return m.settingsVersion }

// RecordEvents turns event recording on or off (every kind, extends
// included, unless RecordExtends(false) leaves them out). Events are
// collected by TakeEvents; recording is off by default so benchmarks and
// followers without watchers pay nothing. Recording decides nothing about
// apply results: it only says what is reported.
func (m *Machine) RecordEvents(on bool) { m.recordEvents = on; m.events = m.events[:0] }

// RecordExtends says whether recorded events include extends of a tenure
// (EventExtended); on by default, effective only while RecordEvents is on.
func (m *Machine) RecordExtends(on bool) { m.skipExtends = !on }

// Recording says whether events are recorded for TakeEvents, and whether
// extends of a tenure are among them.
func (m *Machine) Recording() (events, extends bool) {
	return m.recordEvents, m.recordEvents && !m.skipExtends
}

// EventCounts are the events of each kind this machine has applied since
// it was made, whether recorded or not; a restored snapshot keeps them (they
// count this server's applies, not the cluster's history, and decide
// nothing).
func (m *Machine) EventCounts() EventCounts { return m.counts }

// TakeEvents returns the events recorded since the last call and forgets
// them. The slice is the machine's own buffer, valid until the next Apply:
// the caller copies what it keeps. Reusing it saves growing a new slice
// (a copy per doubling) for every applied entry's events.
func (m *Machine) TakeEvents() []lease.Event {
	ev := m.events
	if cap(ev) > maxKeptEvents {
		m.events = nil // one large batch (a mass expiry) does not pin memory
	} else {
		m.events = ev[:0]
	}
	return ev
}

// maxKeptEvents bounds the event buffer kept between applies: an entry's
// worth of ops and their expiries.
const maxKeptEvents = 4096

// Now is the replicated time of the last applied entry.
func (m *Machine) Now() time.Duration { return m.now }

// Index is the Raft index of the last applied entry.
func (m *Machine) Index() uint64 { return m.index }

// Len is the number of held leases.
func (m *Machine) Len() int { return m.count }

// Member returns the directory entry of server id.
func (m *Machine) Member(id string) (logentry.Member, bool) {
	mem, ok := m.members[id]
	return mem, ok
}

// Members returns the member directory sorted by ID.
func (m *Machine) Members() []logentry.Member {
	out := make([]logentry.Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b logentry.Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Settings returns the payload of the last accepted settings entry (nil if none).
func (m *Machine) Settings() []byte { return m.settings }

// Apply applies one log entry at Raft index index and returns one result per
// command, in order. A settings change returns one result (refused when its
// version is stale or its limits invalid); a legacy settings entry and a
// member entry return none.
func (m *Machine) Apply(index uint64, e *logentry.Entry) []lease.Result {
	m.index = index
	m.advance(e.Time)
	switch e.Kind {
	case logentry.KindSettings:
		m.applyLegacySettings(e.Payload)
		return nil
	case logentry.KindSettingsChange:
		return []lease.Result{m.changeSettings(e.SettingsVersion, e.Payload)}
	case logentry.KindMember:
		// A malformed member entry is ignored on every replica alike.
		if mem, err := logentry.DecodeMember(e.Payload); err == nil {
			m.members[mem.ID] = mem
		}
		return nil
	}
	if len(e.Commands) == 0 {
		return nil
	}
	results := make([]lease.Result, len(e.Commands))
	for i := range e.Commands {
		results[i] = m.applyCommand(&e.Commands[i])
	}
	return results
}

// advance moves the clock to t (never backwards) and expires every unpinned
// lease with expiry < t.
func (m *Machine) advance(t time.Duration) {
	if t > m.now {
		m.now = t
	}
	// Waiters go first, so a release in this step never grants a lease to
	// a claimant whose keep-alive has passed.
	m.dropExpiredWaiters()
	for len(m.heap) > 0 && m.heap[0].expiry < m.now {
		r := m.heap.pop(m.gtab)
		if m.pinned(m.group(r).key, r.name()) {
			continue // stays held, out of the heap, until unpinned or extended
		}
		m.remove(r, lease.EventExpired)
	}
}

// NextExpiry is the earliest expiry among held, unpinned-or-unexpired
// leases (the expiry heap's top): the replicated time after which an entry
// would expire something. The leader's idle tick uses it to propose then
// rather than up to a tick later.
func (m *Machine) NextExpiry() (time.Duration, bool) {
	if len(m.heap) == 0 {
		return 0, false
	}
	return m.heap[0].expiry, true
}

func (m *Machine) applyCommand(c *lease.Command) lease.Result {
	if err := c.Validate(m.limits); err != nil {
		return m.invalid(err)
	}
	if c.Deadline < m.now {
		return lease.Result{Code: lease.CodeDeadlineExceeded, Now: m.now}
	}
	switch c.Op {
	case lease.OpClaim:
		return m.claim(c)
	case lease.OpExtend:
		return m.extend(c)
	case lease.OpRevoke:
		return m.revoke(c)
	case lease.OpPin:
		return m.pin(c)
	case lease.OpQueueClaim:
		return m.queueClaim(c)
	case lease.OpCancelQueue:
		return m.cancelQueue(c)
	default: // lease.OpUnpin; Validate rejected everything else
		return m.unpin(c)
	}
}

func (m *Machine) lookup(k lease.Key) *record {
	g := m.groups[groupKey{k.Namespace, k.Group}]
	if g == nil {
		return nil
	}
	return g.leases.get(m.seed, k.Name)
}

func (m *Machine) claim(c *lease.Command) lease.Result {
	// The group is looked up once, for the lookup and for a grant.
	g := m.groups[groupKey{c.Key.Namespace, c.Key.Group}]
	var r *record
	if g != nil {
		r = g.leases.get(m.seed, c.Key.Name)
	}
	if r != nil && r.holder() == c.Holder {
		return m.lengthen(r, c.Duration)
	}
	// Anything but the holder's renewal must fit the limits (a renewal is
	// clamped to them instead).
	if err := m.limits.CheckDuration(c.Duration); err != nil {
		return m.invalid(err)
	}
	if r != nil {
		return lease.Result{Code: lease.CodeDenied, Holder: r.holder(), Token: r.token, Start: r.start, Expiry: r.expiry, Now: m.now}
	}
	return m.grant(g, c.Key, c.Holder, c.Duration)
}

// grant gives the absent lease k to holder for d, with the next token. g is
// k's group, or nil when it has none yet.
func (m *Machine) grant(g *group, k lease.Key, holder string, d time.Duration) lease.Result {
	if g == nil {
		g = m.newGroup(groupKey{k.Namespace, k.Group})
	}
	m.tokenSeq++
	r := newRecord(g.num, k.Name, holder, m.tokenSeq, m.now, m.now+d)
	g.leases.add(m.seed, r)
	m.count++
	m.heap.push(r, m.gtab)
	m.emit(lease.EventClaimed, r)
	return lease.Result{Outcome: lease.OutcomeGranted, Holder: r.holder(), Token: r.token, Start: r.start, Expiry: r.expiry, Now: m.now}
}

// lengthen extends r to now+d unless that would shorten it. d above the
// current maximum is clamped to it: a holder renewing at the duration it
// was granted keeps its lease after max_duration shrinks, and the result's
// Start and Expiry tell it what was applied.
func (m *Machine) lengthen(r *record, d time.Duration) lease.Result {
	if d > m.limits.MaxDuration {
		d = m.limits.MaxDuration
	}
	if exp := m.now + d; exp > r.expiry {
		r.start, r.expiry = m.now, exp
		if r.heapIdx < 0 {
			m.heap.push(r, m.gtab)
		} else {
			m.heap.fix(int(r.heapIdx), m.gtab)
		}
		m.emit(lease.EventExtended, r)
	}
	return lease.Result{Outcome: lease.OutcomeExtended, Holder: r.holder(), Token: r.token, Start: r.start, Expiry: r.expiry, Now: m.now}
}

func (m *Machine) extend(c *lease.Command) lease.Result {
	r := m.lookup(c.Key)
	if r == nil || r.holder() != c.Holder {
		return m.notHeld(r)
	}
	return m.lengthen(r, c.Duration)
}

func (m *Machine) notHeld(r *record) lease.Result {
	res := lease.Result{Code: lease.CodeNotHeld, Now: m.now}
	if r != nil {
		res.Holder, res.Token, res.Start, res.Expiry = r.holder(), r.token, r.start, r.expiry
	}
	return res
}

func (m *Machine) revoke(c *lease.Command) lease.Result {
	r := m.lookup(c.Key)
	if r == nil {
		return lease.Result{Outcome: lease.OutcomeAbsent, Now: m.now}
	}
	if r.holder() != c.Holder {
		return m.notHeld(r)
	}
	res := lease.Result{Outcome: lease.OutcomeRevoked, Holder: r.holder(), Token: r.token, Start: r.start, Expiry: r.expiry, Now: m.now}
	if r.heapIdx >= 0 {
		m.heap.remove(int(r.heapIdx), m.gtab)
	}
	m.remove(r, lease.EventRevoked)
	return res
}

// remove deletes r (already out of the heap) and records why.
// The key is taken first: an emptied group leaves the table, and r's group
// number with it.
func (m *Machine) remove(r *record, why lease.EventKind) {
	k := m.key(r)
	g := m.group(r)
	g.leases.remove(m.seed, r)
	if g.leases.len() == 0 {
		m.freeGroup(g)
	}
	m.count--
	m.emitKey(why, k, r)
	if len(m.queues) > 0 {
		m.grantQueued(k)
	}
}

// newGroup adds the empty group gk, in the first free slot of the table.
func (m *Machine) newGroup(gk groupKey) *group {
	g := &group{key: gk}
	if n := len(m.freeGroups); n > 0 {
		g.num = m.freeGroups[n-1]
		m.freeGroups = m.freeGroups[:n-1]
		m.gtab[g.num] = g
	} else {
		g.num = uint32(len(m.gtab))
		m.gtab = append(m.gtab, g)
	}
	m.groups[gk] = g
	return g
}

// freeGroup drops the emptied group g and frees its slot.
func (m *Machine) freeGroup(g *group) {
	delete(m.groups, g.key)
	m.gtab[g.num] = nil
	m.freeGroups = append(m.freeGroups, g.num)
}

func (m *Machine) pinned(gk groupKey, name string) bool {
	return len(m.pins[lease.Key{Namespace: gk.ns, Group: gk.group, Name: name}]) > 0
}

func (m *Machine) pin(c *lease.Command) lease.Result {
	set := m.pins[c.Key]
	if set == nil {
		set = make(map[string]struct{}, 1)
		m.pins[c.Key] = set
	}
	if _, ok := set[c.Holder]; !ok {
		set[c.Holder] = struct{}{}
		m.emitPin(lease.EventPinned, c)
	}
	return lease.Result{Outcome: lease.OutcomePinned, Now: m.now}
}

func (m *Machine) unpin(c *lease.Command) lease.Result {
	res := lease.Result{Outcome: lease.OutcomeUnpinned, Now: m.now}
	set := m.pins[c.Key]
	if _, ok := set[c.Holder]; !ok {
		return res
	}
	delete(set, c.Holder)
	m.emitPin(lease.EventUnpinned, c)
	if len(set) > 0 {
		return res
	}
	delete(m.pins, c.Key)
	// A lease held past its expiry only by pins expires with its last pin.
	if r := m.lookup(c.Key); r != nil && r.heapIdx < 0 {
		m.remove(r, lease.EventExpired)
	}
	return res
}

func (m *Machine) emit(kind lease.EventKind, r *record) {
	if m.noteEvent(kind) {
		m.events = append(m.events, m.event(kind, m.key(r), r))
	}
}

// noteEvent counts an event of kind and says whether to record it for
// TakeEvents.
func (m *Machine) noteEvent(kind lease.EventKind) bool {
	m.counts[kind]++
	return m.recordEvents && (kind != lease.EventExtended || !m.skipExtends)
}

// emitKey is emit for r at key k, once r's group may be gone.
func (m *Machine) emitKey(kind lease.EventKind, k lease.Key, r *record) {
	if m.noteEvent(kind) {
		m.events = append(m.events, m.event(kind, k, r))
	}
}

func (m *Machine) event(kind lease.EventKind, k lease.Key, r *record) lease.Event {
	return lease.Event{Kind: kind, Key: k, Holder: r.holder(), Token: r.token, Expiry: r.expiry, Index: m.index, Now: m.now}
}

func (m *Machine) emitPin(kind lease.EventKind, c *lease.Command) {
	if m.noteEvent(kind) {
		m.events = append(m.events, lease.Event{Kind: kind, Key: c.Key, Holder: c.Holder, Index: m.index, Now: m.now})
	}
}
