package bench

import (
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// checker applies Analyse's rules as calls complete, so a run of any length
// is checked whole without storing its history (a 100× herd run makes tens
// of millions of calls; the stored history once reached gigabytes and was
// cut at MaxRecords, leaving the counters partial).
//
// Analyse walks each (key, holder)'s calls in Start order. Here they come in
// completion order, which is the same order because an agent has at most one
// call in flight: its next call starts after the previous one was recorded.
// The per-holder rules (early expiries, late losses, applied after deadline,
// phantom tenures) therefore run on each call as it arrives, on a few words
// of state per holder. The pairwise rules (dual holders, fencing) compare a
// key's tenures, and a tenure's belief interval is final only once its
// holder's later calls have closed it, so the checker keeps the tenures —
// one small record per grant, not per call; renewals add none — and runs
// checkTenures over each key at the end, exactly as Analyse does.
type checker struct {
	shards [checkShards]checkShard
}

// checkShards spreads keys over independently locked shards so the calls
// completing at once on many goroutines rarely wait for one another.
const checkShards = 64

type checkShard struct {
	mu   sync.Mutex
	keys []keyCheck // key k lives in shard k%checkShards at index k/checkShards
	c    Correctness
	// Calls fed, renewals answered ok while the holder's previous promise
	// still held (on time) or after it had run out (late), and calls that
	// arrived out of Start order for their holder (0 unless the harness
	// breaks its one-call-in-flight rule; the result says so if not).
	calls, onTime, late, unordered uint64
}

// keyCheck is one key's state: its tenures so far and its holders.
type keyCheck struct {
	tenures []tenure
	holders []holderCheck // a few per key (the claimants): searched linearly
}

// holderCheck is holderTenures's loop state for one (key, holder), kept
// between calls.
type holderCheck struct {
	holder    int32
	cur       int32         // index in keyCheck.tenures of the open tenure, -1: none
	safeUntil time.Duration // 0: the holder believes it holds nothing
	lastStart time.Duration // Start of its previous call (order check)
	// Its claims not answered ok since its last successful claim or
	// extend: how many were answered "not applied", the last of them (for
	// the example), and whether any had an unknown outcome.
	rejected     int32
	lastRejStart time.Duration
	lastRejCode  lease.Code
	ambiguous    bool
}

func newChecker() *checker { return &checker{} }

// add checks one completed call. Calls of one holder on one key must come in
// Start order (they do when the holder has one call in flight at a time).
// Keys are indexes: not negative.
func (ck *checker) add(r Record) {
	sh := &ck.shards[r.Key%checkShards]
	i := int(r.Key / checkShards)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.calls++
	for len(sh.keys) <= i {
		sh.keys = append(sh.keys, keyCheck{})
	}
	k := &sh.keys[i]
	var h *holderCheck
	for j := range k.holders {
		if k.holders[j].holder == r.Holder {
			h = &k.holders[j]
			break
		}
	}
	if h == nil {
		k.holders = append(k.holders, holderCheck{holder: r.Holder, cur: -1, lastStart: r.Start})
		h = &k.holders[len(k.holders)-1]
	}
	if r.Start < h.lastStart {
		sh.unordered++
	}
	h.lastStart = r.Start
	sh.step(k, h, r)
}

// step is one iteration of holderTenures's loop; keep the two in step.
func (sh *checkShard) step(k *keyCheck, h *holderCheck, r Record) {
	c := &sh.c
	closeAt := func(t time.Duration) {
		if h.cur >= 0 {
			t0 := &k.tenures[h.cur]
			t0.until = min(t0.until, max(t, t0.from))
			h.cur = -1
		}
		h.safeUntil = 0
	}
	switch {
	case r.Code == lease.CodeOK && r.Op != opRevoke:
		if r.Op == opExtend {
			if h.safeUntil > 0 && r.End <= h.safeUntil {
				sh.onTime++
			} else {
				sh.late++
			}
		}
		if !k.seen(r.Holder, r.Token) && (r.Op == opExtend || r.Extended) {
			switch {
			case h.ambiguous:
			case h.rejected > 0:
				c.AppliedAfterDeadline++
				c.example("applied after deadline: key %d holder %d: %s at %v answered ok with new token %d; its claim started %v was answered %s",
					r.Key, r.Holder, r.Op, r.Start, r.Token, h.lastRejStart, h.lastRejCode)
			default:
				c.PhantomTenures++
				c.example("phantom tenure: key %d holder %d: %s at %v answered ok with new token %d and no claim could have created it",
					r.Key, r.Holder, r.Op, r.Start, r.Token)
			}
		}
		h.rejected, h.ambiguous = 0, false
		promise := r.Start + r.Dur
		if h.cur < 0 || k.tenures[h.cur].token != r.Token {
			if h.cur >= 0 { // a new token for the same holder: the old tenure ends here
				k.tenures[h.cur].until = min(k.tenures[h.cur].until, r.End)
			}
			k.tenures = append(k.tenures, tenure{holder: r.Holder, token: r.Token, grantStart: r.Start, from: r.End, until: promise})
			h.cur = int32(len(k.tenures) - 1)
		} else {
			k.tenures[h.cur].until = max(k.tenures[h.cur].until, promise)
		}
		h.safeUntil = max(h.safeUntil, promise)
	case r.Op == opRevoke:
		closeAt(r.Start)
	case r.Code == lease.CodeNotHeld || r.Code == lease.CodeDenied:
		if h.safeUntil > 0 {
			if r.End < h.safeUntil {
				c.EarlyExpiries++
				c.example("early expiry: key %d holder %d: %s started %v answered %s at %v, safe until %v",
					r.Key, r.Holder, r.Op, r.Start, r.Code, r.End, h.safeUntil)
			} else if r.Start < h.safeUntil {
				c.LateLosses++
			}
		}
		closeAt(r.End)
	}
	if r.Op == opClaim && r.Code != lease.CodeOK {
		if notApplied(r.Code) {
			h.rejected++
			h.lastRejStart, h.lastRejCode = r.Start, r.Code
		} else {
			h.ambiguous = true
		}
	}
}

// seen: holder was given token on this key before. Every ok claim or extend
// either opens a tenure with its token or joins the open one with the same
// token, so the tokens a holder was given are those of its tenures.
func (k *keyCheck) seen(holder int32, token uint64) bool {
	for _, t := range k.tenures {
		if t.holder == holder && t.token == token {
			return true
		}
	}
	return false
}

// checkSummary is what the checker found over a whole run.
type checkSummary struct {
	Correctness
	Checked        uint64 // calls checked: every call recorded
	RenewalsOnTime uint64 // extends answered ok before the holder's previous promise ran out
	RenewalsLate   uint64 // extends answered ok after it (or with no promise held)
	Unordered      uint64 // calls out of Start order for their holder (should be 0)
}

// finish runs the pairwise tenure rules over every key and sums the shards.
// No call may be added during or after it.
func (ck *checker) finish() checkSummary {
	var s checkSummary
	for i := range ck.shards {
		sh := &ck.shards[i]
		sh.mu.Lock()
		for j := range sh.keys {
			k := &sh.keys[j]
			sh.c.Tenures += len(k.tenures)
			d, f := checkTenures(k.tenures, &sh.c)
			sh.c.DualHolders += d
			sh.c.FencingViolations += f
			// checkTenures sorted the tenures: the holders' indexes into
			// them are stale, which is why no call may follow.
		}
		c := &sh.c
		s.EarlyExpiries += c.EarlyExpiries
		s.LateLosses += c.LateLosses
		s.DualHolders += c.DualHolders
		s.FencingViolations += c.FencingViolations
		s.AppliedAfterDeadline += c.AppliedAfterDeadline
		s.PhantomTenures += c.PhantomTenures
		s.Tenures += c.Tenures
		for _, e := range c.Examples {
			if len(s.Examples) < maxExamples {
				s.Examples = append(s.Examples, e)
			}
		}
		s.Checked += sh.calls
		s.RenewalsOnTime += sh.onTime
		s.RenewalsLate += sh.late
		s.Unordered += sh.unordered
		sh.keys = nil
		sh.mu.Unlock()
	}
	return s
}
