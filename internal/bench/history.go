package bench

import (
	"fmt"
	"sort"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// opKind is the kind of a recorded client call.
type opKind uint8

const (
	opClaim opKind = iota
	opExtend
	opRevoke
	numOpKinds
)

var opKindNames = [numOpKinds]string{"claim", "extend", "revoke"}

func (k opKind) String() string { return opKindNames[k] }

// Record is one client call as the agent that made it saw it. Times are
// monotonic offsets from the start of the run, taken by the agent just before
// sending the call (Start) and just after its answer arrived (End).
type Record struct {
	Key    int32 // index of the key
	Holder int32 // index of the holder (one per agent; a restarted agent keeps its name)
	Op     opKind
	Code   lease.Code
	Start  time.Duration
	End    time.Duration
	Dur    time.Duration // the lease duration asked for (claim, extend)
	Token  uint64        // fencing token of a successful claim or extend
	// Extended: a successful claim that found the key already held by this
	// holder (the server did not create the tenure with this call).
	Extended bool
}

// Correctness is what the history analyser found.
type Correctness struct {
	// EarlyExpiries: calls answered not_held or denied for a holder whose
	// own last successful claim or extend (started at s, asking for d) still
	// promised it the lease when the answer arrived: End < s+d, with no
	// revoke call (whatever its answer) by that holder in between. The whole call happened inside the
	// promised interval, so the server took the lease away early.
	EarlyExpiries int `json:"early_expiries"`
	// LateLosses: the same answers where the promise ran out while the call
	// was in flight (Start < s+d <= End): ambiguous, not counted as early.
	LateLosses int `json:"late_losses"`
	// DualHolders: pairs of tenures of different holders on one key whose
	// belief intervals overlap. A holder believes it holds a key from the End
	// of the call that granted it until the earliest of: its safe-until
	// (max over its successful calls of Start+Dur), the Start of its own
	// revoke call (answered or not), or the End of a call answered not_held/denied. A tenure is one
	// holder's run of successful calls carrying the same fencing token.
	DualHolders int `json:"dual_holders"`
	// FencingViolations: pairs of tenures on one key where the grant of one
	// ended before the grant of the other began, yet the later one's token is
	// not greater.
	FencingViolations int `json:"fencing_violations"`
	// AppliedAfterDeadline: calls answered "not applied" that were applied
	// anyway, as the clients can see it. A server never admits applying an
	// op after its deadline (Leasehold's state machine rejects such ops by
	// construction), so the check is on what the holder later observes: a
	// successful extend, or a claim answered "extended", carries a fencing
	// token this holder has never been given, so one of its earlier claims
	// on the key created that tenure. The candidates are its claims on the
	// key since its last successful claim or extend that were not answered
	// ok. If one of them had an unknown outcome (unknown, canceled, any
	// error without a not-applied promise), that one explains it. If all of
	// them were answered with a code that promises the op was not applied
	// (deadline_exceeded, overloaded, unavailable, not_leader, denied), the
	// promise was broken: one is counted. This catches a late apply only
	// when the holder comes back to the key and the tenure is still alive;
	// a late apply nobody observes is invisible to the clients.
	AppliedAfterDeadline int `json:"applied_after_deadline"`
	// PhantomTenures: the same new token with no candidate claim at all
	// (the token changed under an extend).
	PhantomTenures int `json:"phantom_tenures"`
	// Tenures is the number of tenures seen (a sanity count).
	Tenures int `json:"tenures"`
	// Examples describes the first few violations found, for diagnosis.
	Examples []string `json:"examples,omitempty"`
}

const maxExamples = 5

func (c *Correctness) example(format string, args ...any) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

type tenure struct {
	holder     int32
	token      uint64
	grantStart time.Duration // Start of the call that began the tenure
	from       time.Duration // End of that call
	until      time.Duration
}

// Analyse checks a history. It sorts recs in place.
func Analyse(recs []Record) Correctness {
	var c Correctness
	sort.Slice(recs, func(i, j int) bool {
		a, b := &recs[i], &recs[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.Holder != b.Holder {
			return a.Holder < b.Holder
		}
		return a.Start < b.Start
	})
	var tenures []tenure // of the current key
	flushKey := func() {
		c.Tenures += len(tenures)
		d, f := checkTenures(tenures, &c)
		c.DualHolders += d
		c.FencingViolations += f
		tenures = tenures[:0]
	}
	for i := 0; i < len(recs); {
		key, holder := recs[i].Key, recs[i].Holder
		j := i
		for j < len(recs) && recs[j].Key == key && recs[j].Holder == holder {
			j++
		}
		tenures = append(tenures, holderTenures(recs[i:j], &c)...)
		if j == len(recs) || recs[j].Key != key {
			flushKey()
		}
		i = j
	}
	return c
}

// holderTenures walks one holder's calls on one key in order, counting early
// expiries and returning its tenures.
func holderTenures(recs []Record, c *Correctness) []tenure {
	var out []tenure
	var safeUntil time.Duration // 0: the holder believes it holds nothing
	cur := -1                   // index in out of the open tenure
	// For AppliedAfterDeadline: tokens this holder was given, and its claims
	// not answered ok since its last successful claim or extend.
	seen := map[uint64]bool{}
	var rejected []Record
	ambiguous := false
	closeAt := func(t time.Duration) {
		if cur >= 0 {
			out[cur].until = min(out[cur].until, max(t, out[cur].from))
			cur = -1
		}
		safeUntil = 0
	}
	for _, r := range recs {
		switch {
		case r.Code == lease.CodeOK && r.Op != opRevoke:
			if !seen[r.Token] && (r.Op == opExtend || r.Extended) {
				switch {
				case ambiguous:
				case len(rejected) > 0:
					c.AppliedAfterDeadline++
					x := rejected[len(rejected)-1]
					c.example("applied after deadline: key %d holder %d: %s at %v answered ok with new token %d; its claim started %v was answered %s",
						r.Key, r.Holder, r.Op, r.Start, r.Token, x.Start, x.Code)
				default:
					c.PhantomTenures++
					c.example("phantom tenure: key %d holder %d: %s at %v answered ok with new token %d and no claim could have created it",
						r.Key, r.Holder, r.Op, r.Start, r.Token)
				}
			}
			seen[r.Token] = true
			rejected, ambiguous = rejected[:0], false
			promise := r.Start + r.Dur
			if cur < 0 || out[cur].token != r.Token {
				if cur >= 0 { // a new token for the same holder: the old tenure ends here
					out[cur].until = min(out[cur].until, r.End)
				}
				out = append(out, tenure{holder: r.Holder, token: r.Token, grantStart: r.Start, from: r.End, until: promise})
				cur = len(out) - 1
			} else {
				out[cur].until = max(out[cur].until, promise)
			}
			safeUntil = max(safeUntil, promise)
		case r.Op == opRevoke:
			// Whatever the answer (even a timeout), a holder that asked to
			// release can no longer count on the lease.
			closeAt(r.Start)
		case r.Code == lease.CodeNotHeld || r.Code == lease.CodeDenied:
			if safeUntil > 0 {
				if r.End < safeUntil {
					c.EarlyExpiries++
					c.example("early expiry: key %d holder %d: %s started %v answered %s at %v, safe until %v",
						r.Key, r.Holder, r.Op, r.Start, r.Code, r.End, safeUntil)
				} else if r.Start < safeUntil {
					c.LateLosses++
				}
			}
			closeAt(r.End)
		}
		// Other errors change nothing: the holder keeps believing until its
		// safe-until, and an unknown-outcome claim grants it no belief.
		if r.Op == opClaim && r.Code != lease.CodeOK {
			if notApplied(r.Code) {
				rejected = append(rejected, r)
			} else {
				ambiguous = true
			}
		}
	}
	return out
}

// notApplied: the answer promises the op was not applied.
func notApplied(c lease.Code) bool {
	switch c {
	case lease.CodeDeadlineExceeded, lease.CodeOverloaded, lease.CodeUnavailable, lease.CodeNotLeader, lease.CodeDenied:
		return true
	}
	return false
}

// checkTenures counts overlapping pairs of different holders and fencing
// order violations among one key's tenures.
func checkTenures(ts []tenure, c *Correctness) (dual, fencing int) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].from < ts[j].from })
	var active []tenure
	for _, t := range ts {
		if t.until <= t.from {
			continue
		}
		kept := active[:0]
		for _, a := range active {
			if a.until > t.from {
				kept = append(kept, a)
			}
		}
		active = kept
		for _, a := range active {
			if a.holder != t.holder {
				dual++
				c.example("dual holders: holder %d (token %d) believed [%v, %v), holder %d (token %d) believed [%v, %v)",
					a.holder, a.token, a.from, a.until, t.holder, t.token, t.from, t.until)
			}
		}
		active = append(active, t)
	}
	for i := range ts {
		for j := range ts {
			a, b := ts[i], ts[j]
			if a.from < b.grantStart && b.token <= a.token && !(a.holder == b.holder && a.token == b.token) {
				fencing++
				c.example("fencing: holder %d got token %d at %v, after holder %d got token %d at %v",
					b.holder, b.token, b.from, a.holder, a.token, a.from)
			}
		}
	}
	return dual, fencing
}
