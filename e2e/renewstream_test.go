package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// TestRenewerLeaderKilled renews leases over the renewal stream while the
// leader is stopped: every renewal ends within its deadline with a result
// or an expected code (none lost on the broken stream), renewals started
// after the kill succeed on the new leader's stream, and every lease is
// still held under its token afterwards.
func TestRenewerLeaderKilled(t *testing.T) {
	e := start(t, nil)
	c := newClient(t, client.Config{Endpoints: e.endpoints()})
	const (
		workers   = 32
		perWorker = 40
		callTTL   = 5 * time.Second
	)
	ctx := ctxFor(t, time.Minute)
	keys := make([]lease.Key, workers)
	tokens := make([]uint64, workers)
	for w := range workers {
		keys[w] = key("renewkill", fmt.Sprint(w))
		r, err := c.Claim(ctx, keys[w], "h", 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tokens[w] = r.Token
	}
	r := c.Renewer()
	var (
		mu        sync.Mutex
		counts    = map[lease.Code]int{}
		afterKill = map[lease.Code]int{}
		slowest   time.Duration
		calls     atomic.Int64
		killed    atomic.Bool
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				cctx, cancel := context.WithTimeout(context.Background(), callTTL)
				after := killed.Load()
				begin := time.Now()
				res, err := r.Extend(cctx, keys[w], "h", 2*time.Minute)
				took := time.Since(begin)
				cancel()
				code := codeOf(t, err)
				if err == nil && res.Token != tokens[w] {
					t.Errorf("renewal of %v answered token %d, want %d", keys[w], res.Token, tokens[w])
				}
				mu.Lock()
				counts[code]++
				if after {
					afterKill[code]++
				}
				slowest = max(slowest, took)
				mu.Unlock()
				calls.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitFor(t, 20*time.Second, "renewals before the kill", func() bool { return calls.Load() >= workers*perWorker/4 })
	old := e.leader(t)
	killed.Store(true)
	if err := e.Stop(old.Index); err != nil {
		t.Logf("stop leader: %v", err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("renewals still running long after every deadline: %d of %d returned", calls.Load(), workers*perWorker)
	}
	t.Logf("renewals by code: %v (started after the kill: %v); slowest %v", counts, afterKill, slowest)
	if slowest > callTTL+time.Second {
		t.Errorf("a renewal took %v, past its %v deadline", slowest, callTTL)
	}
	for code, n := range counts {
		switch code {
		case lease.CodeOK, lease.CodeUnknown, lease.CodeUnavailable, lease.CodeNotLeader, lease.CodeOverloaded, lease.CodeDeadlineExceeded:
		default:
			t.Errorf("%d renewals failed with %v, which a leader kill cannot cause", n, code)
		}
	}
	if afterKill[lease.CodeOK] == 0 {
		t.Errorf("no renewal started after the kill succeeded: %v", afterKill)
	}
	for w := range workers {
		got, _, err := c.Get(ctx, keys[w])
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || got.Token != tokens[w] {
			t.Errorf("%v after the failover: %+v, want held under token %d", keys[w], got, tokens[w])
		}
	}
}
