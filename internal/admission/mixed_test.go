package admission

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/leasehold/leasehold/lease"
)

// opErr is the error a failed slot of a mixed answer converts to.
func opErr(t *testing.T, r lease.Result) *lease.Error {
	t.Helper()
	var e *lease.Error
	if !errors.As(r.Err(), &e) {
		t.Fatalf("slot %+v carries no error", r)
	}
	return e
}

// When a call's claims are refused while its extends go through, each
// refused slot keeps its retry-after (issue 12, "also fix").
func TestMixedAnswerKeepsRetryAfter(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1; s.MaxOpsPerEntry = 1; s.MaxQueuedOps = 4096 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	var storm []lease.Command
	for i := range 400 { // ~300 claims fit the 3 s claim deadline
		storm = append(storm, cmd(lease.OpClaim, fmt.Sprint("s", i)))
	}
	h.submit(context.Background(), storm...)
	h.waitFor("storm queued", func() bool { return h.depth() > 0 })
	ch := h.submit(context.Background(), cmd(lease.OpExtend, "renew"), cmd(lease.OpClaim, "late"))
	h.waitFor("extend queued", func() bool { return h.q.Stats().Depth[LaneRenewal] == 1 })
	e1.resolve(nil)
	h.nextEntry().resolve(nil) // the extend, before the storm
	a := h.recv(ch)
	if a.err != nil || len(a.res) != 2 || a.res[0].Code != lease.CodeOK {
		t.Fatalf("answer %+v", a)
	}
	if e := opErr(t, a.res[1]); e.Code != lease.CodeOverloaded || e.RetryAfter <= 0 {
		t.Fatalf("refused claim's slot: %v (retry after %v), want overloaded with a retry-after", e, e.RetryAfter)
	}
}

// A call split across entries whose second entry fails NotLeader keeps the
// proposer's leader hint in the failed slots.
func TestMixedAnswerKeepsLeaderHint(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1; s.MaxOpsPerEntry = 1 })
	ch := h.submit(context.Background(), cmd(lease.OpExtend, "a"), cmd(lease.OpExtend, "b"))
	e := h.nextEntry()
	h.p.mu.Lock()
	h.p.err = &lease.Error{Code: lease.CodeNotLeader, LeaderID: "n2", LeaderAddr: "10.0.0.2:7070"}
	h.p.mu.Unlock()
	e.resolve(nil)
	a := h.recv(ch)
	if a.err != nil || len(a.res) != 2 || a.res[0].Code != lease.CodeOK {
		t.Fatalf("answer %+v", a)
	}
	if e := opErr(t, a.res[1]); e.Code != lease.CodeNotLeader || e.LeaderID != "n2" || e.LeaderAddr != "10.0.0.2:7070" {
		t.Fatalf("failed slot: %v (leader %q at %q), want the hint", e, e.LeaderID, e.LeaderAddr)
	}
}

// Ops of one call on the same key apply in the call's order even when they
// belong to different lanes: [claim K, extend K] must not have its extend
// proposed first (which would answer it NotHeld).
func TestSameKeyOpsOfOneCallKeepTheirOrder(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1; s.MaxOpsPerEntry = 1 })
	k := cmd(lease.OpClaim, "k")
	x := k
	x.Op = lease.OpExtend
	x.Holder = "h-k-extend" // same key; told apart in the log by holder
	other := cmd(lease.OpExtend, "other")
	ch := h.submit(context.Background(), k, x, other)
	var order []string
	for range 3 {
		e := h.nextEntry()
		order = append(order, e.holders()...)
		e.resolve(nil)
	}
	h.recv(ch)
	pos := map[string]int{}
	for i, hd := range order {
		pos[hd] = i
	}
	if pos["h-k"] > pos["h-k-extend"] {
		t.Fatalf("proposed %v: the extend of k before the claim of k", order)
	}
}

// The ops on a key that a call touches in both lanes wait together in the
// renewal lane: a manager's batch holding one holder's extend of K and
// another's claim of K must not cost the extend its priority.
func TestSameKeyOpsOfOneCallQueueAsRenewals(t *testing.T) {
	c := newCore(t, nil)
	k, x := item(lease.OpClaim, "k"), item(lease.OpExtend, "k")
	y := item(lease.OpClaim, "y")
	mustAdmit(t, c, t0, k, x, y)
	if c.Depth(LaneRenewal) != 2 || c.Depth(LaneClaim) != 1 {
		t.Fatalf("depths renewal %d claim %d, want 2 and 1", c.Depth(LaneRenewal), c.Depth(LaneClaim))
	}
	// The claim keeps its own deadline.
	if k.Deadline.Sub(t0) != c.Settings().Deadlines.Claim {
		t.Fatalf("claim deadline %v", k.Deadline.Sub(t0))
	}
}
