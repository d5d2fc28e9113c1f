package manager

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// TestClaimOnReleaseRequeuesAfterWatchReset: a grant made while the watch
// was down (a compacted or broken stream, reopened from "now") is never
// seen as an event; the queued claim must not wait for its next keep-alive
// refresh to learn of it: the reopen makes it queue again at once, and the
// answer says it holds (issue 12 hole 6, the manager's side).
func TestClaimOnReleaseRequeuesAfterWatchReset(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "a", Duration: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type got struct {
		l   *Lease
		err error
	}
	ch := make(chan got, 1)
	go func() { l, err := e.h.ClaimOnRelease(ctx, "mysql", "b", time.Minute); ch <- got{l, err} }()
	eventually(t, "b queued", func() bool {
		e.tr.mu.Lock()
		defer e.tr.mu.Unlock()
		return len(e.tr.m.Queued(kApp)) == 1
	})
	// The watch breaks; b is granted while it is down, so no stream sees it.
	e.tr.mu.Lock()
	var old []*fakeStream
	for s := range e.tr.streams {
		old = append(old, s)
	}
	clear(e.tr.streams)
	e.tr.mu.Unlock()
	e.tr.apply(lease.Command{Op: lease.OpRevoke, Key: kApp, Holder: "a"})
	for _, s := range old {
		s.Close()
	}
	// Let the watch's reopen backoff pass on the fake clock, far inside the
	// queued claim's refresh interval (QueueWait/2 = 15 s).
	var g got
	eventually(t, "b told it holds", func() bool {
		select {
		case g = <-ch:
			return true
		default:
			e.c.Advance(10 * time.Millisecond)
			return false
		}
	})
	if g.err != nil || g.l.Holder != "b" {
		t.Fatalf("b: %+v %v", g.l, g.err)
	}
	if spent := e.c.Now().Sub(time.Unix(1_000_000, 0)); spent >= 15*time.Second {
		t.Fatalf("learnt of the grant only after %v (the refresh), not at the reopen", spent)
	}
}
