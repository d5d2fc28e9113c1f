package fsm

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/logentry"
	"pgregory.net/rapid"
)

// model is an obviously-correct reference for the state machine: plain maps,
// a linear expiry scan, and the rules of the contract written out directly.
type model struct {
	now    time.Duration
	seq    uint64
	leases map[lease.Key]modelLease
	pins   map[lease.Key]map[string]bool
}

type modelLease struct {
	holder        string
	token         uint64
	start, expiry time.Duration
}

func newModel() *model {
	return &model{leases: map[lease.Key]modelLease{}, pins: map[lease.Key]map[string]bool{}}
}

func (m *model) apply(e *logentry.Entry) (res []lease.Result, expired []lease.Key) {
	m.now = max(m.now, e.Time)
	for k, l := range m.leases {
		if l.expiry < m.now && len(m.pins[k]) == 0 {
			delete(m.leases, k)
			expired = append(expired, k)
		}
	}
	for _, c := range e.Commands {
		r, exp := m.command(c)
		res = append(res, r)
		if exp {
			expired = append(expired, c.Key)
		}
	}
	return res, expired
}

func (m *model) command(c lease.Command) (lease.Result, bool) {
	r := lease.Result{Now: m.now}
	lim := lease.DefaultLimits
	switch {
	case c.Op < lease.OpClaim || c.Op > lease.OpUnpin:
		r.Code, r.Field = lease.CodeInvalidArgument, "op"
	case c.Holder == "" && (c.Op == lease.OpPin || c.Op == lease.OpUnpin):
		r.Code, r.Field = lease.CodeInvalidArgument, "entity"
	case c.Holder == "":
		r.Code, r.Field = lease.CodeInvalidArgument, "holder"
	case (c.Op == lease.OpClaim || c.Op == lease.OpExtend) && c.Duration < lim.MinDuration:
		r.Code, r.Field = lease.CodeInvalidArgument, "duration"
	case c.Deadline < m.now:
		r.Code = lease.CodeDeadlineExceeded
	case c.Op == lease.OpClaim && c.Duration > lim.MaxDuration && m.leases[c.Key].holder != c.Holder:
		// Only the holder's renewal is clamped to the max.
		r.Code, r.Field = lease.CodeInvalidArgument, "duration"
	}
	if r.Code != lease.CodeOK {
		return r, false
	}
	l, held := m.leases[c.Key]
	describe := func(l modelLease) {
		r.Holder, r.Token, r.Start, r.Expiry = l.holder, l.token, l.start, l.expiry
	}
	lengthen := func() {
		if d := lim.Clamp(c.Duration); m.now+d > l.expiry {
			l.start, l.expiry = m.now, m.now+d
			m.leases[c.Key] = l
		}
		r.Outcome = lease.OutcomeExtended
		describe(l)
	}
	switch c.Op {
	case lease.OpClaim:
		switch {
		case !held:
			m.seq++
			l = modelLease{holder: c.Holder, token: m.seq, start: m.now, expiry: m.now + c.Duration}
			m.leases[c.Key] = l
			r.Outcome = lease.OutcomeGranted
			describe(l)
		case l.holder == c.Holder:
			lengthen()
		default:
			r.Code = lease.CodeDenied
			describe(l)
		}
	case lease.OpExtend:
		if held && l.holder == c.Holder {
			lengthen()
		} else {
			r.Code = lease.CodeNotHeld
			if held {
				describe(l)
			}
		}
	case lease.OpRevoke:
		switch {
		case !held:
			r.Outcome = lease.OutcomeAbsent
		case l.holder != c.Holder:
			r.Code = lease.CodeNotHeld
			describe(l)
		default:
			r.Outcome = lease.OutcomeRevoked
			describe(l)
			delete(m.leases, c.Key)
		}
	case lease.OpPin:
		if m.pins[c.Key] == nil {
			m.pins[c.Key] = map[string]bool{}
		}
		m.pins[c.Key][c.Holder] = true
		r.Outcome = lease.OutcomePinned
	case lease.OpUnpin:
		r.Outcome = lease.OutcomeUnpinned
		if m.pins[c.Key][c.Holder] {
			delete(m.pins[c.Key], c.Holder)
			if len(m.pins[c.Key]) == 0 {
				delete(m.pins, c.Key)
				if held && l.expiry < m.now {
					delete(m.leases, c.Key)
					return r, true
				}
			}
		}
	}
	return r, false
}

var (
	propKeys     = []lease.Key{kA, kB, kC}
	propHolders  = []string{"u/0", "u/1", "u/2"}
	propEntities = []string{"m/0", "m/1"}
)

// genEntry draws an entry near the model's clock: times on a 500ms grid
// (so start+duration == now happens often), sometimes 1ns off, sometimes
// going backwards; a few invalid commands and deadlines that may pass.
func genEntry(t *rapid.T, now time.Duration) logentry.Entry {
	at := now + time.Duration(rapid.IntRange(-4, 12).Draw(t, "dt"))*500*time.Millisecond
	at += time.Duration(rapid.SampledFrom([]int{0, 0, 0, 0, 1, -1}).Draw(t, "ns"))
	e := logentry.Entry{Kind: logentry.KindBatch, Time: at}
	n := rapid.IntRange(0, 6).Draw(t, "n")
	for i := 0; i < n; i++ {
		c := lease.Command{
			Op:       lease.Op(rapid.SampledFrom([]int{1, 1, 1, 2, 2, 2, 3, 4, 5}).Draw(t, "op")),
			Key:      rapid.SampledFrom(propKeys).Draw(t, "key"),
			Duration: time.Duration(rapid.SampledFrom([]int{1000, 1500, 2000, 5000, 10000, 999, 300001}).Draw(t, "ms")) * time.Millisecond,
			Deadline: farAway,
		}
		if c.Op == lease.OpPin || c.Op == lease.OpUnpin {
			c.Holder = rapid.SampledFrom(propEntities).Draw(t, "entity")
		} else {
			c.Holder = rapid.SampledFrom(propHolders).Draw(t, "holder")
		}
		if rapid.IntRange(0, 30).Draw(t, "invalid") == 0 {
			c.Holder = ""
		}
		if rapid.IntRange(0, 5).Draw(t, "hasDeadline") == 0 {
			c.Deadline = at + time.Duration(rapid.IntRange(-3, 3).Draw(t, "dl"))*500*time.Millisecond
		}
		e.Commands = append(e.Commands, c)
	}
	return e
}

func sameResult(got, want lease.Result) bool {
	got.Message = "" // the model does not word messages
	return got == want
}

// TestPropertyAgainstModel runs random entries through the machine (via the
// codec), a reference model, a twin machine and restored copies, and checks
// the invariants after every entry.
func TestPropertyAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := New()
		m.RecordEvents(true)
		twin := New() // fed the same entries, or restored from snapshots
		ref := newModel()
		lastToken := map[lease.Key]uint64{}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for idx := uint64(1); idx <= uint64(steps); idx++ {
			gen := genEntry(t, ref.now)
			e, err := logentry.Decode(gen.Marshal())
			if err != nil {
				t.Fatalf("codec: %v", err)
			}
			before := m.List("", "", lease.Key{}, 0, 0)

			got := m.Apply(idx, &e)
			want, expired := ref.apply(&e)
			if len(got) != len(want) {
				t.Fatalf("entry %d: %d results, model %d", idx, len(got), len(want))
			}
			// (d) every result agrees with the model.
			for i := range got {
				if !sameResult(got[i], want[i]) {
					t.Fatalf("entry %d cmd %d %v %v by %q at %v:\n got %+v\nwant %+v", idx, i, e.Commands[i].Op,
						e.Commands[i].Key, e.Commands[i].Holder, ref.now, got[i], want[i])
				}
			}
			// (a) one holder per key; the state equals the model's.
			after := m.List("", "", lease.Key{}, 0, 0)
			seen := map[lease.Key]bool{}
			for _, info := range after {
				if seen[info.Key] {
					t.Fatalf("key %v listed twice", info.Key)
				}
				seen[info.Key] = true
				l, ok := ref.leases[info.Key]
				if !ok || l.holder != info.Holder || l.token != info.Token || l.start != info.Start || l.expiry != info.Expiry ||
					info.Pinned != (len(ref.pins[info.Key]) > 0) {
					t.Fatalf("lease %+v, model %+v (held %v)", info, l, ok)
				}
				if g, ok := m.Get(info.Key, 0); !ok || g != info {
					t.Fatalf("Get %v = %+v, List has %+v", info.Key, g, info)
				}
			}
			if len(after) != len(ref.leases) || m.Len() != len(ref.leases) {
				t.Fatalf("%d leases listed, Len %d, model %d", len(after), m.Len(), len(ref.leases))
			}
			if len(m.Pinned()) != len(ref.pins) {
				t.Fatalf("pins %v, model %v", m.Pinned(), ref.pins)
			}
			for k, es := range m.Pinned() {
				if fmt.Sprint(es) != fmt.Sprint(slices.Sorted(maps.Keys(ref.pins[k]))) {
					t.Fatalf("pins of %v: %v, model %v", k, es, ref.pins[k])
				}
			}
			checkHeap(t, m)
			checkTokens(t, got, e.Commands, lastToken)
			checkNoEarlyLoss(t, before, got, e.Commands, m)
			checkExpiredEvents(t, m.TakeEvents(), expired)

			// (e) twin and restored copies agree, byte for byte and on results.
			tres := twin.Apply(idx, &e)
			if fmt.Sprint(tres) != fmt.Sprint(got) {
				t.Fatalf("entry %d: twin results differ:\n%+v\n%+v", idx, tres, got)
			}
			snap := m.AppendSnapshot(nil)
			if !bytes.Equal(snap, twin.AppendSnapshot(nil)) {
				t.Fatalf("entry %d: twin snapshot differs", idx)
			}
			if rapid.IntRange(0, 4).Draw(t, "restore") == 0 {
				twin = New()
				if err := twin.Restore(snap); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(snap, twin.AppendSnapshot(nil)) {
					t.Fatalf("entry %d: snapshot -> restore -> snapshot differs", idx)
				}
				checkHeap(t, twin)
			}
		}
	})
}

// (b) fencing tokens strictly increase per key across grants; extends keep it.
func checkTokens(t *rapid.T, res []lease.Result, cmds []lease.Command, last map[lease.Key]uint64) {
	for i, r := range res {
		k := cmds[i].Key
		switch r.Outcome {
		case lease.OutcomeGranted:
			if r.Token <= last[k] {
				t.Fatalf("grant of %v got token %d after %d", k, r.Token, last[k])
			}
			last[k] = r.Token
		case lease.OutcomeExtended:
			if r.Token != last[k] {
				t.Fatalf("extend of %v has token %d, granted %d", k, r.Token, last[k])
			}
		}
	}
}

// (c) a lease disappears (or changes token) only if its holder revoked it
// or its expiry is strictly before the clock.
func checkNoEarlyLoss(t *rapid.T, before []lease.Info, res []lease.Result, cmds []lease.Command, m *Machine) {
	for _, b := range before {
		now, ok := m.Get(b.Key, 0)
		if ok && now.Token == b.Token {
			if now.Expiry < b.Expiry || now.Holder != b.Holder {
				t.Fatalf("lease %v shortened or changed holder: %+v -> %+v", b.Key, b, now)
			}
			continue
		}
		expiry, revoked := b.Expiry, false
		for i, r := range res {
			if cmds[i].Key != b.Key || r.Token != b.Token || r.Code != lease.CodeOK {
				continue
			}
			switch r.Outcome {
			case lease.OutcomeExtended:
				expiry = max(expiry, r.Expiry)
			case lease.OutcomeRevoked:
				revoked = cmds[i].Holder == b.Holder
			}
		}
		if !revoked && expiry >= m.Now() {
			t.Fatalf("lease %+v (expiry %v) gone at %v without a revoke", b, expiry, m.Now())
		}
	}
}

func checkExpiredEvents(t *rapid.T, ev []lease.Event, expired []lease.Key) {
	var got []string
	for _, e := range ev {
		if e.Kind == lease.EventExpired {
			got = append(got, e.Key.String())
		}
	}
	var want []string
	for _, k := range expired {
		want = append(want, k.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("expired events %v, model expired %v", got, want)
	}
}
