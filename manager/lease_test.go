package manager

import (
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// serverExpiry is the lease's expiry on the fake server, on the fake clock.
func (e *env) serverExpiry(k lease.Key) time.Time {
	e.tr.mu.Lock()
	defer e.tr.mu.Unlock()
	info, ok := e.tr.m.Get(k, e.tr.now())
	if !ok {
		e.t.Fatalf("%v not held on the server", k)
	}
	return e.tr.epoch.Add(info.Expiry)
}

// A second, shorter claim does not lengthen the lease on the server, so it
// must not lengthen SafeUntil either (issue 17 #4).
func TestSafeUntilNeverPassesTheServersExpiry(t *testing.T) {
	e := newEnv(t, nil)
	t0 := e.c.Now()
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.c.Advance(25 * time.Second) // before the first renewal (27s)
	if _, err := e.h.Claim(ctxT(t), "mysql", "u/0", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if exp := e.serverExpiry(kApp); l.SafeUntil().After(exp) {
		t.Fatalf("SafeUntil %v is after the server's expiry %v", l.SafeUntil().Sub(t0), exp.Sub(t0))
	}
	if l.Held(t0.Add(61 * time.Second)) {
		t.Fatal("Held at 61s, after the server's expiry at 60s")
	}
	// No renewal gets through: at 61s the lease is gone on the server, and
	// Check must not vouch for it.
	e.tr.mu.Lock()
	e.tr.fail = func(int, []lease.Command) error { return lease.Errorf(lease.CodeUnavailable, "down") }
	e.tr.mu.Unlock()
	e.c.Advance(36 * time.Second)
	if err := e.h.Check(ctxT(t), "mysql", l.Token()); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Check at 61s: %v, want not held", err)
	}
}

// The wire carries whole milliseconds: a duration with a sub-millisecond
// part is applied shorter than asked, and SafeUntil must follow what was
// applied.
func TestSafeUntilFollowsTheAppliedDuration(t *testing.T) {
	e := newEnv(t, nil)
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", 10*time.Second+700*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	if exp := e.serverExpiry(kApp); l.SafeUntil().After(exp) {
		t.Fatalf("SafeUntil is %v after the server's expiry", l.SafeUntil().Sub(exp))
	}
}

// A renewal answered for a newer tenure of the same holder (the lease was
// revoked and claimed again meanwhile, by another path) ends this Lease: its
// token no longer fences anything, and Check must not vouch for it.
func TestRenewalOfANewerTenureEndsTheLease(t *testing.T) {
	e := newEnv(t, nil)
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old := l.Token()
	e.tr.mu.Lock()
	e.tr.op = func(c *lease.Command) error {
		if c.Op == lease.OpExtend {
			e.tr.op = nil
			e.tr.applyLocked([]lease.Command{
				{Op: lease.OpRevoke, Key: kApp, Holder: "u/0"},
				{Op: lease.OpClaim, Key: kApp, Holder: "u/0", Duration: 10 * time.Second},
			})
		}
		return nil
	}
	e.tr.mu.Unlock()
	eventually(t, "renewal timer", func() bool { return e.c.Pending() == 1 })
	e.c.Advance(4500 * time.Millisecond)
	eventually(t, "the renewal's answer", func() bool { return l.Token() != old || isStopped(l.lost) })
	if err := e.h.Check(ctxT(t), "mysql", old); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Check of the ended tenure's token %d: %v", old, err)
	}
	<-l.Lost()
}
