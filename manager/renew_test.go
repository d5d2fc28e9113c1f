package manager

import (
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Renewal retries spend the shared retry budget like any other retry, and
// none comes sooner than the server's retry-after (issue 17 #7).
func TestRenewalRetriesUseTheBudgetAndRetryAfter(t *testing.T) {
	const retryAfter = 5 * time.Second
	e := newEnv(t, func(c *Config) {
		c.Budget = client.NewBudget(2, 0) // two retries, never refilled
		c.MaxAttempts = 2
	})
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent []time.Time
	e.tr.mu.Lock()
	e.tr.op = func(c *lease.Command) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, e.c.Now())
		return &lease.Error{Code: lease.CodeOverloaded, RetryAfter: retryAfter}
	}
	e.tr.mu.Unlock()
	sends := func() []time.Time { mu.Lock(); defer mu.Unlock(); return append([]time.Time(nil), sent...) }
	for !isStopped(l.lost) {
		eventually(t, "a timer or the loss", func() bool {
			_, ok := e.c.Next()
			return ok || isStopped(l.lost) || len(sends()) > 100
		})
		if len(sends()) > 100 {
			break
		}
		if at, ok := e.c.Next(); ok && !isStopped(l.lost) {
			e.c.Advance(at.Sub(e.c.Now()))
		}
	}
	s := sends()
	// The first renewal and its retry, then one retry for what is left of
	// the budget: three sends, then none until the lease's safe time.
	if len(s) != 3 {
		t.Fatalf("%d extends sent before the loss, want 3 (a first attempt and the budget's 2 retries)", len(s))
	}
	for i := 1; i < len(s); i++ {
		if gap := s[i].Sub(s[i-1]); gap < retryAfter {
			t.Fatalf("extend %d sent %v after the previous one, sooner than retry-after %v", i+1, gap, retryAfter)
		}
	}
	<-l.Lost()
}
