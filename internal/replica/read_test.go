package replica

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// A linearizable read must not say "absent" for a lease whose holder keeps
// it continuously: an extend stamped before the expiry, proposed before the
// read but not yet applied, must be applied before the read evaluates.
func TestReadWaitsForEarlierProposals(t *testing.T) {
	tc := newTestCluster(t, 1, func(_ int, c *Config) { c.TickInterval = time.Hour })
	l := tc.leader()
	clk := tc.clocks[0]
	start := replicatedTime(l)
	propose(t, l, claimCmd("h", 2*time.Second))

	gate := make(chan struct{})
	var gated atomic.Bool
	hold := func() {
		if gated.Load() {
			<-gate
		}
	}
	l.sm.beforeApply.Store(&hold)
	gated.Store(true)
	clk.Advance(1500 * time.Millisecond)
	ext := lease.Command{Op: lease.OpExtend, Key: testKey, Holder: "h", Duration: 2 * time.Second, Deadline: forever}
	p, err := l.Propose([]lease.Command{ext})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // past the claim's expiry, before the extend applies

	type answer struct {
		found bool
		info  lease.Info
		at    time.Duration
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, a.at, a.err = l.ReadConsistent(ctx, func(m *fsm.Machine, at time.Duration) { a.info, a.found = m.Get(testKey, at) })
		done <- a
	}()
	var a answer
	var got bool
	waitFor(t, "the read to answer or wait", func() bool {
		select {
		case a = <-done:
			got = true
			return true
		default:
			return l.waitingReads.Load() > 0
		}
	})
	close(gate)
	if !got {
		a = <-done
	}
	<-p.Done()
	res, err := p.Result()
	if err != nil || res[0].Outcome != lease.OutcomeExtended {
		t.Fatalf("extend: %v %+v", err, res)
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	if !a.found || a.info.Holder != "h" {
		t.Fatalf("read at %v (claim at %v for 2s) said absent, yet the extend at %v kept the lease: %+v",
			a.at, start, res[0].Start, res[0])
	}
}

// An entry lost with an earlier term's leadership does not hold reads up:
// the new term's barrier has settled every earlier entry.
func TestReadIgnoresEarlierTermsLostProposal(t *testing.T) {
	tc := newTestCluster(t, 1, func(_ int, c *Config) { c.TickInterval = time.Hour })
	l := tc.leader()
	_, term, _ := l.clock.now()
	lost := failedProposal(&lease.Error{Code: lease.CodeUnknown, Message: "leadership lost"})
	lost.term = term - 1
	l.proposeMu.Lock()
	l.lastProposed = lost
	l.proposeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := l.ReadConsistent(ctx, func(*fsm.Machine, time.Duration) {}); err != nil {
		t.Fatalf("read after an earlier term's lost proposal: %v", err)
	}
	lost.term = term // lost in this very term: the read cannot be ordered after it
	if _, _, err := l.ReadConsistent(ctx, func(*fsm.Machine, time.Duration) {}); err == nil {
		t.Fatal("read ordered after a proposal of its own term that never applied")
	}
}
