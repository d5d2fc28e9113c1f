package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/lease"
)

// TestLeaderKilledWithCallsInFlight stops the leader while many goroutines
// claim and extend. Every call must end, within its deadline, in a result
// or a *lease.Error of an expected code; every claim answered "granted"
// must still be held with its token after the failover (no acknowledged
// write lost); and the new leader must serve calls.
func TestLeaderKilledWithCallsInFlight(t *testing.T) {
	e := start(t, nil)
	c := newClient(t, client.Config{Endpoints: e.endpoints()})
	const (
		workers   = 32
		perWorker = 40
		callTTL   = 5 * time.Second
		slack     = time.Second
	)
	type granted struct {
		key   lease.Key
		token uint64
	}
	var (
		mu        sync.Mutex
		counts    = map[lease.Code]int{}
		afterKill = map[lease.Code]int{}
		grants    = map[string]granted{} // by holder/key
		slowest   time.Duration
		calls     atomic.Int64
		killed    atomic.Bool
	)
	record := func(code lease.Code, took time.Duration, startedAfterKill bool) {
		mu.Lock()
		defer mu.Unlock()
		counts[code]++
		if startedAfterKill {
			afterKill[code]++
		}
		slowest = max(slowest, took)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("unit/%d", w)
			var mine []lease.Key
			for i := range perWorker {
				ctx, cancel := context.WithTimeout(context.Background(), callTTL)
				after := killed.Load()
				begin := time.Now()
				var err error
				if i%2 == 1 && len(mine) > 0 {
					_, err = c.Extend(ctx, mine[i%len(mine)], holder, time.Minute)
				} else {
					k := key("kill", fmt.Sprintf("w%d-%d", w, i))
					var r client.Result
					r, err = c.Claim(ctx, k, holder, time.Minute)
					if err == nil {
						mine = append(mine, k)
						mu.Lock()
						grants[holder+"|"+k.String()] = granted{k, r.Token}
						mu.Unlock()
					}
				}
				took := time.Since(begin)
				cancel()
				record(codeOf(t, err), took, after)
				calls.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// Kill the leader once the load is running.
	waitFor(t, 20*time.Second, "calls before the kill", func() bool { return calls.Load() >= workers*perWorker/4 })
	old := e.leader(t)
	killed.Store(true)
	if err := e.Stop(old.Index); err != nil {
		t.Logf("stop leader: %v", err)
	}
	select {
	case <-done:
	case <-time.After(workers * perWorker * callTTL / 8):
		t.Fatalf("calls still running long after every deadline: %d of %d returned", calls.Load(), workers*perWorker)
	}
	nl := e.leader(t)
	if nl == old {
		t.Fatal("the stopped member still leads")
	}

	total := 0
	var lines []string
	for code, n := range counts {
		total += n
		lines = append(lines, fmt.Sprintf("%s=%d", code, n))
	}
	sort.Strings(lines)
	t.Logf("calls by code: %s (started after the kill: %v); slowest %v", strings.Join(lines, " "), afterKill, slowest)
	if total != workers*perWorker {
		t.Fatalf("%d calls ended, %d made", total, workers*perWorker)
	}
	if slowest > callTTL+slack {
		t.Errorf("a call took %v, past its %v deadline", slowest, callTTL)
	}
	for code := range counts {
		switch code {
		case lease.CodeOK, lease.CodeUnknown, lease.CodeUnavailable, lease.CodeNotLeader, lease.CodeOverloaded, lease.CodeDeadlineExceeded:
		default:
			t.Errorf("%d calls failed with %v, which this load cannot cause", counts[code], code)
		}
	}
	if afterKill[lease.CodeOK] == 0 {
		t.Errorf("no call started after the kill succeeded: %v", afterKill)
	}

	// No acknowledged claim is lost: the new leader has every one.
	ctx := ctxFor(t, 20*time.Second)
	for _, g := range grants {
		got, _, err := c.Get(ctx, g.key)
		if err != nil {
			t.Fatalf("get %v: %v", g.key, err)
		}
		if got == nil || got.Token != g.token {
			t.Errorf("granted %v (token %d) lost after failover: %+v", g.key, g.token, got)
		}
	}
	t.Logf("%d granted claims all held after failover", len(grants))
}

// TestCancelWithdrawsQueuedClaim stalls the leader's log writes so one
// claim sits in flight and a second queues behind it (one entry in flight
// at most), cancels the second caller, and checks the server withdrew it:
// the queue empties while the log is still stalled, the cancel is counted,
// and after the log moves again only the first claim was applied.
func TestCancelWithdrawsQueuedClaim(t *testing.T) {
	var canceled atomic.Int64
	settings := admission.DefaultSettings()
	settings.MaxInFlight = 1
	e := start(t, func(o *devcluster.Options) {
		o.Node = backend.Options{Admission: settings, Hooks: admission.Hooks{
			Rejected: func(r admission.Reason, _ admission.Lane, n int) {
				if r == admission.ReasonCanceled {
					canceled.Add(int64(n))
				}
			},
		}}
	})
	l := e.leader(t)
	c := newClient(t, client.Config{Endpoints: []string{l.ClientAddr}})
	ctx := ctxFor(t, 20*time.Second)
	// Warm the connection so the stall only holds the claims.
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	q := l.Node().Queue()
	release := e.stores[l.ID].stall()
	t.Cleanup(release)

	first, second := key("cancel", "first"), key("cancel", "second")
	firstDone := make(chan error, 1)
	go func() {
		_, err := c.Claim(ctx, first, "u/0", 30*time.Second)
		firstDone <- err
	}()
	waitFor(t, 5*time.Second, "the first claim in flight", func() bool { return q.Stats().InFlight == 1 })

	cctx, cancel := context.WithCancel(ctx)
	secondDone := make(chan error, 1)
	go func() {
		_, err := c.Claim(cctx, second, "u/1", 30*time.Second)
		secondDone <- err
	}()
	waitFor(t, 5*time.Second, "the second claim queued", func() bool { return q.Stats().Depth[admission.LaneClaim] == 1 })
	cancel()
	if err := <-secondDone; codeOf(t, err) != lease.CodeCanceled {
		t.Fatalf("canceled claim: %v", err)
	}
	waitFor(t, 5*time.Second, "the server to withdraw the canceled claim", func() bool {
		return canceled.Load() == 1 && q.Stats().Depth[admission.LaneClaim] == 0
	})
	if st := q.Stats(); st.InFlight != 1 {
		t.Fatalf("the log moved during the test: %+v", st)
	}

	release()
	if err := <-firstDone; err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if got, _, err := c.Get(ctx, first); err != nil || got == nil || got.Holder != "u/0" {
		t.Fatalf("first claim not applied: %+v %v", got, err)
	}
	// A later entry would carry the withdrawn claim if it had leaked; one
	// more write flushes anything still queued.
	if _, err := c.Claim(ctx, key("cancel", "flush"), "u/2", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _, err := c.Get(ctx, second); err != nil || got != nil {
		t.Fatalf("withdrawn claim was applied: %+v %v", got, err)
	}
}
