package fsm

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

const (
	sec     = time.Second
	min     = time.Minute
	farAway = time.Duration(1 << 62)
)

func key(ns, g, n string) lease.Key { return lease.Key{Namespace: ns, Group: g, Name: n} }

var (
	kA = key("app-leadership", "model-1", "mysql")
	kB = key("app-leadership", "model-1", "wordpress")
	kC = key("app-leadership", "model-2", "mysql")
	kS = key("singular", "controller", "c")
)

func claim(k lease.Key, h string, d time.Duration) lease.Command {
	return lease.Command{Op: lease.OpClaim, Key: k, Holder: h, Duration: d, Deadline: farAway}
}

func extend(k lease.Key, h string, d time.Duration) lease.Command {
	return lease.Command{Op: lease.OpExtend, Key: k, Holder: h, Duration: d, Deadline: farAway}
}

func revoke(k lease.Key, h string) lease.Command {
	return lease.Command{Op: lease.OpRevoke, Key: k, Holder: h, Deadline: farAway}
}

func pin(k lease.Key, e string) lease.Command {
	return lease.Command{Op: lease.OpPin, Key: k, Holder: e, Deadline: farAway}
}

func unpin(k lease.Key, e string) lease.Command {
	return lease.Command{Op: lease.OpUnpin, Key: k, Holder: e, Deadline: farAway}
}

func withDeadline(c lease.Command, d time.Duration) lease.Command { c.Deadline = d; return c }

// harness drives a Machine through the codec, as a replica would, and
// checks after every entry that snapshot -> restore -> snapshot is stable.
type harness struct {
	t   testing.TB
	m   *Machine
	idx uint64
}

func newHarness(t testing.TB) *harness {
	m := New()
	m.RecordEvents(true)
	return &harness{t: t, m: m}
}

func (h *harness) entry(e logentry.Entry) []lease.Result {
	h.t.Helper()
	dec, err := logentry.Decode(e.Marshal())
	if err != nil {
		// The codec cannot carry unknown ops (the leader validates before
		// proposing); apply such entries directly.
		for _, c := range e.Commands {
			if !c.Op.Valid() {
				dec, err = e, nil
			}
		}
	}
	if err != nil {
		h.t.Fatalf("codec: %v", err)
	}
	h.idx++
	res := h.m.Apply(h.idx, &dec)
	if e.Kind == logentry.KindBatch && len(res) != len(e.Commands) {
		h.t.Fatalf("%d results for %d commands", len(res), len(e.Commands))
	}
	snap := h.m.AppendSnapshot(nil)
	m2 := New()
	if err := m2.Restore(snap); err != nil {
		h.t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(snap, m2.AppendSnapshot(nil)) {
		h.t.Fatalf("snapshot not stable through restore")
	}
	return res
}

func (h *harness) apply(at time.Duration, cmds ...lease.Command) []lease.Result {
	h.t.Helper()
	return h.entry(logentry.Entry{Kind: logentry.KindBatch, Time: at, Commands: cmds})
}

func (h *harness) one(at time.Duration, c lease.Command) lease.Result {
	h.t.Helper()
	return h.apply(at, c)[0]
}

func (h *harness) tick(at time.Duration) { h.t.Helper(); h.apply(at) }

// settingsPayload encodes limits as package settings does (its head is all
// the state machine reads), followed by bytes that are not the machine's.
func settingsPayload(l lease.Limits) []byte {
	b := binary.AppendUvarint(nil, SettingsCodecVersion)
	b = binary.AppendVarint(b, int64(l.MinDuration))
	b = binary.AppendVarint(b, int64(l.MaxDuration))
	return append(b, 0xAA, 0xBB)
}

// settings applies a settings change based on version basedOn, at the
// machine's time, and returns its result.
func (h *harness) settings(basedOn uint64, l lease.Limits) lease.Result {
	h.t.Helper()
	res := h.entry(logentry.Entry{Kind: logentry.KindSettingsChange, Time: h.m.Now(), SettingsVersion: basedOn, Payload: settingsPayload(l)})
	if len(res) != 1 {
		h.t.Fatalf("settings change: %d results", len(res))
	}
	return res[0]
}

func (h *harness) get(k lease.Key) (lease.Info, bool) { return h.m.Get(k, 0) }

func (h *harness) mustHold(k lease.Key, holder string) lease.Info {
	h.t.Helper()
	info, ok := h.get(k)
	if !ok || info.Holder != holder {
		h.t.Fatalf("at %v: %v held by %q (present %v), want %q", h.m.Now(), k, info.Holder, ok, holder)
	}
	return info
}

func (h *harness) mustBeAbsent(k lease.Key) {
	h.t.Helper()
	if info, ok := h.get(k); ok {
		h.t.Fatalf("at %v: %v still held: %+v", h.m.Now(), k, info)
	}
	if h.m.lookup(k) != nil {
		h.t.Fatalf("at %v: %v still in the state (hidden from Get)", h.m.Now(), k)
	}
}

// fataler is what the checks need; both *testing.T and *rapid.T have it.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func expectOK(t fataler, r lease.Result, outcome lease.Outcome) {
	t.Helper()
	if r.Code != lease.CodeOK || r.Outcome != outcome {
		t.Fatalf("got %v/%v (%+v), want ok/%v", r.Code, r.Outcome, r, outcome)
	}
}

func expectCode(t fataler, r lease.Result, code lease.Code) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("got %v (%+v), want %v", r.Code, r, code)
	}
	if r.Outcome != lease.OutcomeNone {
		t.Fatalf("failed result carries outcome %v", r.Outcome)
	}
}

// checkHeap verifies the expiry index: every record in the heap has the right
// heapIdx and the heap property holds; records out of it are pinned.
func checkHeap(t fataler, m *Machine) {
	t.Helper()
	inHeap := 0
	for i, r := range m.heap {
		if int(r.heapIdx) != i {
			t.Fatalf("heap[%d].heapIdx = %d", i, r.heapIdx)
		}
		if i > 0 && before(r, m.heap[(i-1)/2], m.gtab) {
			t.Fatalf("heap property broken at %d", i)
		}
	}
	checkGroupTable(t, m)
	n := 0
	for gk, g := range m.groups {
		if g.leases.len() == 0 {
			t.Fatalf("empty group %v kept", gk)
		}
		checkSet(t, m.seed, &g.leases)
		for r := range g.leases.all() {
			n++
			name := r.name()
			if g.leases.get(m.seed, name) != r || m.group(r) != g {
				t.Fatalf("record %q misfiled", name)
			}
			if r.heapIdx >= 0 {
				inHeap++
				if int(r.heapIdx) >= len(m.heap) || m.heap[r.heapIdx] != r {
					t.Fatalf("record %q has stale heapIdx %d", name, r.heapIdx)
				}
			} else if !m.pinned(gk, name) || r.expiry >= m.now {
				t.Fatalf("record %q out of the heap but pinned=%v expiry=%v now=%v", name, m.pinned(gk, name), r.expiry, m.now)
			}
		}
	}
	if n != m.count || n != m.Len() || inHeap != len(m.heap) {
		t.Fatalf("count %d, records %d, heap %d/%d", m.count, n, len(m.heap), inHeap)
	}
}

// checkGroupTable verifies the group table: table entry i has number i and
// is the group of its key, every group is in the table, and the free list
// names each empty slot once.
func checkGroupTable(t fataler, m *Machine) {
	t.Helper()
	used := 0
	for i, g := range m.gtab {
		if g == nil {
			continue
		}
		used++
		if g.num != uint32(i) {
			t.Fatalf("group table entry %d has number %d", i, g.num)
		}
		if m.groups[g.key] != g {
			t.Fatalf("group table entry %d (%v) is not the group of its key", i, g.key)
		}
	}
	if used != len(m.groups) {
		t.Fatalf("%d groups in the table, %d by key", used, len(m.groups))
	}
	free := make(map[uint32]bool)
	for _, f := range m.freeGroups {
		if int(f) >= len(m.gtab) || m.gtab[f] != nil || free[f] {
			t.Fatalf("free list entry %d: table of %d, listed twice %v", f, len(m.gtab), free[f])
		}
		free[f] = true
	}
	if len(free)+used != len(m.gtab) {
		t.Fatalf("table of %d: %d groups, %d free", len(m.gtab), used, len(free))
	}
}

// The record must stay 48 bytes, the 48-byte size class: at a million
// leases every size class up costs 16 MB per replica.
func TestRecordSize(t *testing.T) {
	if s := unsafe.Sizeof(record{}); s != 48 {
		t.Fatalf("record is %d bytes; keep it at 48", s)
	}
	for _, name := range []string{"n", "name", strings.Repeat("x", lease.MaxNameLen)} {
		r := newRecord(7, name, "holder/0", 1, 2, 3)
		if r.name() != name || r.holder() != "holder/0" || r.gnum != 7 {
			t.Fatalf("name %q holder %q group %d", r.name(), r.holder(), r.gnum)
		}
	}
}
