package linearize

import (
	"math/rand"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// Planted bugs: wrappers around the real fsm that rewrite its inputs or its
// answers. Each must be reported with the invariant it breaks.

type noBug struct{}

func (noBug) entry(_ *fsm.Machine, e *logentry.Entry) *logentry.Entry    { return e }
func (noBug) results(_ *logentry.Entry, r []lease.Result) []lease.Result { return r }
func (noBug) info(i lease.Info) lease.Info                               { return i }
func cloneEntry(e *logentry.Entry) *logentry.Entry {
	c := *e
	c.Commands = append([]lease.Command(nil), e.Commands...)
	return &c
}
func forEachLease(res []lease.Result, f func(r *lease.Result)) []lease.Result {
	for i := range res {
		if res[i].Holder != "" {
			f(&res[i])
		}
	}
	return res
}

// earlyExpiry: the machine keeps leases one tick less than it tells clients
// (as if it tested expiry <= now a tick early).
type earlyExpiry struct {
	noBug
	tick time.Duration
}

func (b earlyExpiry) entry(_ *fsm.Machine, e *logentry.Entry) *logentry.Entry {
	e = cloneEntry(e)
	for i := range e.Commands {
		if c := &e.Commands[i]; c.Op == lease.OpClaim || c.Op == lease.OpExtend {
			c.Duration -= b.tick
		}
	}
	return e
}

func (b earlyExpiry) results(_ *logentry.Entry, res []lease.Result) []lease.Result {
	return forEachLease(res, func(r *lease.Result) { r.Expiry += b.tick })
}

func (b earlyExpiry) info(i lease.Info) lease.Info { i.Expiry += b.tick; return i }

// doubleGrant: now and then a claim on a lease held by another holder
// silently revokes it first, granting the lease to a second holder.
type doubleGrant struct {
	noBug
	rnd *rand.Rand
}

func (b doubleGrant) entry(m *fsm.Machine, e *logentry.Entry) *logentry.Entry {
	out := cloneEntry(e)
	out.Commands = out.Commands[:0]
	for _, c := range e.Commands {
		if in, ok := m.Get(c.Key, e.Time); ok && c.Op == lease.OpClaim && in.Holder != c.Holder && b.rnd.Intn(4) == 0 {
			out.Commands = append(out.Commands, lease.Command{Op: lease.OpRevoke, Key: c.Key, Holder: in.Holder, Deadline: forever})
		}
		out.Commands = append(out.Commands, c)
	}
	return out
}

func (b doubleGrant) results(e *logentry.Entry, res []lease.Result) []lease.Result {
	var out []lease.Result
	for i, c := range e.Commands {
		if c.Deadline != forever { // drop the injected revokes' answers
			out = append(out, res[i])
		}
	}
	return out
}

// lateApply: the machine ignores deadlines.
type lateApply struct{ noBug }

func (lateApply) entry(_ *fsm.Machine, e *logentry.Entry) *logentry.Entry {
	e = cloneEntry(e)
	for i := range e.Commands {
		e.Commands[i].Deadline = forever
	}
	return e
}

// hiddenApply: a claim or extend is applied but the client is told
// DeadlineExceeded ("not applied").
type hiddenApply struct {
	noBug
	rnd *rand.Rand
}

func (b hiddenApply) results(e *logentry.Entry, res []lease.Result) []lease.Result {
	for i, c := range e.Commands {
		if (c.Op == lease.OpClaim || c.Op == lease.OpExtend) && res[i].Code == lease.CodeOK && b.rnd.Intn(5) == 0 {
			res[i] = lease.Result{Code: lease.CodeDeadlineExceeded, Now: res[i].Now}
		}
	}
	return res
}

// tokenReuse: a new grant on a key reuses the key's previous token.
type tokenReuse struct {
	noBug
	last  map[lease.Key]uint64
	remap map[uint64]uint64
}

func (b tokenReuse) results(e *logentry.Entry, res []lease.Result) []lease.Result {
	for i, c := range e.Commands {
		if r := &res[i]; r.Outcome == lease.OutcomeGranted {
			if prev, ok := b.last[c.Key]; ok {
				b.remap[r.Token] = prev
			}
		}
	}
	for i, c := range e.Commands {
		if r := &res[i]; r.Holder != "" {
			r.Token = b.token(r.Token)
			if r.Outcome == lease.OutcomeGranted {
				b.last[c.Key] = r.Token
			}
		}
	}
	return res
}

func (b tokenReuse) token(t uint64) uint64 {
	if p, ok := b.remap[t]; ok {
		return p
	}
	return t
}

func (b tokenReuse) info(i lease.Info) lease.Info { i.Token = b.token(i.Token); return i }

func checkBug(t *testing.T, name string, b bug, want ...int) {
	t.Helper()
	cfg := simConfig{seed: 7, clients: 12, keys: 4, ops: 3000, maybeRate: 0.02, dropRate: 0.02}
	h, reps := runSim(cfg)
	if rep := Check(h, reps, Options{}); !rep.OK() {
		t.Fatalf("%s: the same run without the bug is not clean:\n%s", name, rep)
	}
	cfg.bug = b
	h, reps = runSim(cfg)
	rep := Check(h, reps, Options{VisualizeDir: t.TempDir()})
	for _, n := range want {
		if !rep.Has(n) {
			t.Errorf("%s: invariant %d violation not reported:\n%s", name, n, rep)
		}
	}
	if len(rep.Violations) > 0 {
		t.Logf("%s: %d violations, first: %s", name, len(rep.Violations), rep.Violations[0])
	}
}

func TestPlantedEarlyExpiry(t *testing.T) {
	checkBug(t, "early expiry", earlyExpiry{tick: 300 * time.Millisecond}, 1, 7)
}

func TestPlantedDoubleGrant(t *testing.T) {
	checkBug(t, "double grant", doubleGrant{rnd: rand.New(rand.NewSource(3))}, 1, 7)
}

func TestPlantedLateApply(t *testing.T) {
	checkBug(t, "apply after deadline", lateApply{}, 4)
}

func TestPlantedHiddenApply(t *testing.T) {
	checkBug(t, "applied but DeadlineExceeded", hiddenApply{rnd: rand.New(rand.NewSource(5))}, 4, 7)
}

func TestPlantedTokenReuse(t *testing.T) {
	checkBug(t, "token reuse", tokenReuse{last: map[lease.Key]uint64{}, remap: map[uint64]uint64{}}, 2, 7)
}

// The read of issue 12 hole 5: served at the leader's clock while an entry
// proposed before it (an extend stamped before the lease's expiry) is still
// in flight, it can call a continuously held lease absent.
func TestPlantedReadAhead(t *testing.T) {
	cfg := simConfig{seed: 7, clients: 12, keys: 4, ops: 3000, maybeRate: 0.02, dropRate: 0.02, readAhead: true}
	h, reps := runSim(cfg)
	rep := Check(h, reps, Options{VisualizeDir: t.TempDir()})
	for _, n := range []int{3, 7} {
		if !rep.Has(n) {
			t.Errorf("invariant %d violation not reported:\n%s", n, rep)
		}
	}
	if len(rep.Violations) > 0 {
		t.Logf("%d violations, first: %s", len(rep.Violations), rep.Violations[0])
	}
}
