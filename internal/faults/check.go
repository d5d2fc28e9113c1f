package faults

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/lease"
)

// Bounds describe how far the servers' clocks may be from real time during
// a run; they make the checker's estimates sound under clock faults.
type Bounds struct {
	// Rate is the fastest any leader's clock ran relative to real time (>= 1).
	Rate float64
	// Jump is the sum of forward jumps of any leader's clock.
	Jump time.Duration
	// NoDeadlines leaves the replicated deadlines unknown (a paused server
	// process reads a request late and so computes a later deadline than
	// the client's; no bound from the client side holds).
	NoDeadlines bool
}

// deadlineSlack covers the gap between the client's context deadline and
// the deadline the server derives from the gRPC timeout it receives (the
// server's deadline is later by the time the request took to arrive).
const deadlineSlack = 100 * time.Millisecond

// FillDeadlines sets each write's Input.Deadline to an upper bound of its
// replicated deadline, which the API does not return. The bound: the
// replicated clock of any leader whose entries can commit advances at most
// Rate times as fast as real time (plus forward jumps), and an op o that was
// answered at replicated time o.Now was stamped by a clock that read o.Now
// at some real time after o's call. So at any real time t after o's call,
// replicated time is at most o.Now + Rate*(t - o.Call), and an op whose
// client context expired at real time dl was given a replicated deadline of
// at most min over such o of o.Now + Rate*(dl - o.Call) (the leader adds
// the remaining wall time to its clock reading at dispatch).
func FillDeadlines(ops []linearize.Operation, h *History, b Bounds) {
	if b.NoDeadlines {
		return
	}
	rate := max(b.Rate, 1)
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })
	best := math.Inf(1) // min of Now - rate*Call over observed ops called so far
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, i := range idx {
		op := &ops[i]
		if dl, ok := h.dl[op.ID]; ok && !math.IsInf(best, 1) {
			bound := best + rate*float64(dl) + float64(b.Jump+deadlineSlack)
			op.Input.Deadline = time.Duration(math.Ceil(bound))
		}
		// A stale read reports its replica's applied time, which may be
		// far behind the clock (a restarted follower catching up) and was
		// not read after the call: it bounds nothing.
		if op.Applied() == linearize.AppliedYes && op.Output.Now > 0 && !op.Input.Stale {
			best = min(best, float64(op.Output.Now)-rate*float64(op.Call))
		}
	}
}

// RealTimeViolation is a lease that ended, as some answer showed, sooner in
// real time than its holder was promised, beyond what the clock bounds allow.
type RealTimeViolation struct {
	Grant, Observer *linearize.Operation
	Promised        time.Duration // real time (since the recording began) the lease should have lasted to
	Seen            time.Duration // real time by which an answer showed it gone
}

func (v RealTimeViolation) String() string {
	return fmt.Sprintf("lease token %d promised to real %v but seen gone by %v (%v early):\n    %s\n    %s",
		v.Grant.Output.Token, v.Promised, v.Seen, v.Promised-v.Seen, v.Grant, v.Observer)
}

// CheckRealTime checks what the replicated-time invariants cannot: that a
// lease granted or extended for d by a call that began at real time s lasts
// at least until s + d/Rate - Jump in real time (DESIGN.md: "a lease ... lasts
// at least until s + duration in real time"). A lease is seen gone by an
// answer (linearizable read, grant, denial-free claim) that returned at real
// time r and shows the key absent or under another token; that is a
// violation when r is before the promise, unless a revoke of the key that
// may have applied was called before r. Pinned keys are skipped: a pin
// outlives any promise.
func CheckRealTime(ops []linearize.Operation, h *History, b Bounds) []RealTimeViolation {
	rate := max(b.Rate, 1)
	byKey := map[lease.Key][]*linearize.Operation{}
	for i := range ops {
		byKey[ops[i].Input.Key] = append(byKey[ops[i].Input.Key], &ops[i])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []RealTimeViolation
	for _, kops := range byKey {
		// promise[token] = latest real time a definite grant or extend promised.
		promise := map[uint64]time.Duration{}
		grant := map[uint64]*linearize.Operation{}
		var revokes []int64 // call times of revokes that may have applied
		pinned := false
		for _, op := range kops {
			k := op.Input.Kind
			if k == linearize.KindPin || k == linearize.KindUnpin {
				pinned = pinned || op.Applied() != linearize.AppliedNo
			}
			if k == linearize.KindRevoke && op.Applied() != linearize.AppliedNo {
				revokes = append(revokes, op.Call)
			}
			if (k == linearize.KindClaim || k == linearize.KindExtend) && op.Applied() == linearize.AppliedYes && op.Output.Code == lease.CodeOK {
				p := time.Duration(op.Call) + time.Duration(float64(h.dur[op.ID])/rate) - b.Jump
				if p > promise[op.Output.Token] {
					promise[op.Output.Token], grant[op.Output.Token] = p, op
				}
			}
		}
		if pinned {
			continue
		}
		for _, ob := range kops {
			if ob.Applied() != linearize.AppliedYes || ob.Input.Stale {
				continue
			}
			var gone func(tok uint64) bool
			switch {
			case ob.Input.Kind == linearize.KindGet && !ob.Output.Found:
				gone = func(uint64) bool { return true }
			case ob.Input.Kind == linearize.KindGet,
				ob.Input.Kind == linearize.KindClaim && ob.Output.Code == lease.CodeOK && ob.Output.Outcome == lease.OutcomeGranted:
				gone = func(tok uint64) bool { return tok < ob.Output.Token }
			default:
				continue
			}
			for tok, p := range promise {
				g := grant[tok]
				if g.Call >= ob.Call || !gone(tok) || time.Duration(ob.Return) >= p {
					continue
				}
				if slices.ContainsFunc(revokes, func(c int64) bool { return c < ob.Return }) && revokedBetween(kops, g, ob) {
					continue
				}
				out = append(out, RealTimeViolation{Grant: g, Observer: ob, Promised: p, Seen: time.Duration(ob.Return)})
			}
		}
	}
	slices.SortFunc(out, func(a, b RealTimeViolation) int { return cmp.Compare(a.Seen, b.Seen) })
	return out
}

// revokedBetween reports whether a revoke that may have applied was called
// before ob returned and did not return before g was called.
func revokedBetween(kops []*linearize.Operation, g, ob *linearize.Operation) bool {
	for _, op := range kops {
		if op.Input.Kind == linearize.KindRevoke && op.Applied() != linearize.AppliedNo &&
			op.Call < ob.Return && (!op.Returned || op.Return > g.Call) {
			return true
		}
	}
	return false
}

// Outcome is the result of checking one run.
type Outcome struct {
	Kind     string
	Report   *linearize.Report
	RealTime []RealTimeViolation
	// Tenures are overlapping beliefs of two holders (invariant 9).
	Tenures []TenureViolation
	// Releases are releases WaitUntilReleased reported while a holder held.
	Releases []ReleaseViolation
	// Watch are events a watcher lost, repeated or reordered.
	Watch []string
	// Replicas are replicas that differed at one applied index (invariant 8).
	Replicas []ReplicaDiff
	Ops      int
	// Note says what the fault did, when its kind counts that.
	Note string
	// Extra says how much the tenure, watch and replica checks covered.
	Extra string
}

// OK reports whether no check failed.
func (o *Outcome) OK() bool {
	return o.Report.OK() && len(o.RealTime) == 0 && len(o.Tenures) == 0 && len(o.Releases) == 0 && len(o.Watch) == 0 && len(o.Replicas) == 0
}

// addNote appends to the kind's note.
func (o *Outcome) addNote(s string) {
	if o.Note != "" {
		o.Note += "; "
	}
	o.Note += s
}

func (o *Outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d ops; %s", o.Kind, o.Ops, o.Report)
	if o.Extra != "" {
		b.WriteString("\n  " + o.Extra)
	}
	if o.Note != "" {
		b.WriteString("\n  " + o.Note)
	}
	list := func(title string, n int, item func(i int) string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(&b, "\n  %d %s:", n, title)
		for i := 0; i < n; i++ {
			if i == 5 {
				b.WriteString("\n  ...")
				break
			}
			b.WriteString("\n  " + item(i))
		}
	}
	list("overlapping believed tenures (invariant 9)", len(o.Tenures), func(i int) string { return o.Tenures[i].String() })
	list("releases reported while held", len(o.Releases), func(i int) string { return o.Releases[i].String() })
	list("replica divergences at one applied index (invariant 8)", len(o.Replicas), func(i int) string { return o.Replicas[i].String() })
	list("watch faults", len(o.Watch), func(i int) string { return o.Watch[i] })
	if len(o.RealTime) > 0 {
		fmt.Fprintf(&b, "\n  %d real-time early expiries:", len(o.RealTime))
		for i, v := range o.RealTime {
			if i == 5 {
				b.WriteString("\n  ...")
				break
			}
			b.WriteString("\n  " + v.String())
		}
	}
	return b.String()
}

// Check checks a recorded history against the replicas' final states.
func Check(kind string, h *History, replicas []linearize.Replica, b Bounds) *Outcome {
	ops := h.rec.History()
	FillDeadlines(ops, h, b)
	rep := linearize.Check(ops, replicas, linearize.Options{Timeout: 5 * time.Minute})
	out := &Outcome{Kind: kind, Report: rep, RealTime: CheckRealTime(ops, h, b), Ops: len(ops)}
	grants, revokes := h.tenures.snapshot()
	beliefs := Beliefs(grants, revokes, b)
	out.Tenures = CheckTenures(beliefs)
	releases := h.tenures.allReleases()
	out.Releases = CheckReleases(beliefs, releases)
	segs := h.watches.all()
	out.Watch = CheckWatch(segs, grants)
	diffs, compared := CompareReplicas(h.samples.all())
	out.Replicas = diffs
	via := map[Via]int{}
	for _, g := range grants {
		via[g.Via]++
	}
	events := 0
	for _, s := range segs {
		for _, bt := range s.Batches {
			events += len(bt)
		}
	}
	out.Extra = fmt.Sprintf("tenures: %d grants seen (%d claim, %d extend, %d stream; %d waiter calls, %d two-key grants), %d non-empty beliefs, %d releases reported; "+
		"watch: %d segments, %d events; replicas: %d pairs compared at a common applied index",
		len(grants), via[ViaClaim], via[ViaExtend], via[ViaStream], h.waits.Load(), h.ties.Load(), len(beliefs), len(releases), len(segs), events, compared)
	return out
}
