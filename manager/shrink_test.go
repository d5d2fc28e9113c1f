package manager

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// extendLog records the durations extends asked for, as the server saw them.
type extendLog struct {
	mu sync.Mutex
	ds []time.Duration
}

func (x *extendLog) add(d time.Duration) { x.mu.Lock(); x.ds = append(x.ds, d); x.mu.Unlock() }

func (x *extendLog) get() []time.Duration {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]time.Duration(nil), x.ds...)
}

// runRenewals fires the manager's timers one by one until the fake clock
// reaches until, failing fast if renewals stop waiting for the clock.
func (e *env) runRenewals(l *Lease, x *extendLog, until time.Time) {
	e.t.Helper()
	for e.c.Now().Before(until) {
		eventually(e.t, "a renewal timer", func() bool {
			_, ok := e.c.Next()
			return ok || isStopped(l.lost) || len(x.get()) > 1000
		})
		if n := len(x.get()); n > 1000 {
			e.t.Fatalf("%d extends by %v: renewals no longer wait", n, e.c.Now().Sub(e.tr.epoch))
		}
		if isStopped(l.lost) {
			e.t.Fatalf("lease lost at %v: %v", e.c.Now().Sub(e.tr.epoch), l.Err())
		}
		at, _ := e.c.Next()
		e.c.Advance(at.Sub(e.c.Now()))
	}
}

// After max_duration shrinks, a server that clamps extends to the new
// maximum answers with the shorter expiry: the manager renews at the
// duration that was applied, keeps the lease, and never vouches past the
// server's expiry (issue 17 #6).
func TestRenewalAdaptsToAClampedDuration(t *testing.T) {
	for _, max := range []time.Duration{20 * time.Second, 5 * time.Second} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			e := newEnv(t, nil)
			l, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var x extendLog
			e.tr.mu.Lock()
			e.tr.op = func(c *lease.Command) error {
				if c.Op == lease.OpExtend {
					x.add(c.Duration)
					c.Duration = min(c.Duration, max)
				}
				return nil
			}
			e.tr.mu.Unlock()
			e.runRenewals(l, &x, e.tr.epoch.Add(3*time.Minute))
			// An extend that does not lengthen the lease (time left above
			// the new maximum) cannot tell the maximum, only that it is at
			// most the time left: the duration steps down to it, then stays.
			ds := x.get()
			if len(ds) < 2 || ds[0] != time.Minute {
				t.Fatalf("extends %v", ds)
			}
			for i := 1; i < len(ds); i++ {
				if ds[i] > ds[i-1] || ds[i] < max {
					t.Fatalf("extends asked %v; want non-increasing down to %v", ds, max)
				}
			}
			if tail := ds[len(ds)-5:]; tail[0] != max {
				t.Fatalf("extends asked %v; want %v from the fifth-last on", ds, max)
			}
			// Renewals at the usual fraction of the applied duration: no storm.
			if limit := int(3*time.Minute/(max*45/100)) + 8; len(ds) > limit {
				t.Fatalf("%d extends in 3 minutes, want at most %d: %v", len(ds), limit, ds)
			}
			if exp := e.serverExpiry(kApp); l.SafeUntil().After(exp) {
				t.Fatalf("SafeUntil %v after the server's expiry", l.SafeUntil().Sub(exp))
			}
		})
	}
}

// A server that still refuses a too-long extend with InvalidArgument on
// the duration: the manager retries shorter instead of dropping a lease the
// server still holds.
func TestRenewalRetriesShorterWhenTheDurationIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var x extendLog
	e.tr.mu.Lock()
	e.tr.op = func(c *lease.Command) error {
		if c.Op == lease.OpExtend {
			x.add(c.Duration)
			if err := (lease.Limits{MinDuration: time.Second, MaxDuration: 20 * time.Second}).CheckDuration(c.Duration); err != nil {
				return err
			}
		}
		return nil
	}
	e.tr.mu.Unlock()
	e.runRenewals(l, &x, e.tr.epoch.Add(3*time.Minute))
	ds := x.get()
	// 60s refused, 30s refused, 15s applied, then 15s from then on.
	if len(ds) < 4 || ds[0] != time.Minute || ds[1] != 30*time.Second || ds[2] != 15*time.Second {
		t.Fatalf("extends %v", ds)
	}
	for _, d := range ds[2:] {
		if d != 15*time.Second {
			t.Fatalf("extends %v", ds)
		}
	}
	if exp := e.serverExpiry(kApp); l.SafeUntil().After(exp) {
		t.Fatalf("SafeUntil %v after the server's expiry", l.SafeUntil().Sub(exp))
	}
}
