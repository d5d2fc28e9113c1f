package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/clock/clocktest"
	"github.com/leasehold/leasehold/lease"
)

const ns, grp = "app-leadership", "model-1"

var kApp = lease.Key{Namespace: ns, Group: grp, Name: "mysql"}

type env struct {
	t  *testing.T
	c  *clocktest.Fake
	tr *fakeTransport
	m  *Manager
	h  *Handle
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	c := clocktest.New(time.Unix(1_000_000, 0))
	tr := newFakeTransport(c)
	cfg := Config{Transport: tr, Clock: c, Rand: func() float64 { return 0.5 }, MaxAttempts: 4, ShutdownWait: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	m := New(cfg)
	e := &env{t: t, c: c, tr: tr, m: m, h: m.Handle(ns, grp)}
	t.Cleanup(func() {
		if !isStopped(m.stop) {
			go func() {
				for !isStopped(m.stop) || c.Pending() > 0 {
					c.Advance(time.Second)
					time.Sleep(time.Millisecond)
				}
			}()
			m.Close()
		}
	})
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRetryCountAndSpacing(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.fail = func(call int, _ []lease.Command) error {
		if call <= 3 {
			return lease.Errorf(lease.CodeUnavailable, "down")
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
		done <- err
	}()
	// Full jitter at r=0.5 over 50ms*2^(n-1): 25ms, 50ms, 100ms.
	want := []time.Duration{25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	for i, w := range want {
		eventually(t, fmt.Sprintf("retry timer %d", i+1), func() bool { return e.c.Pending() == 1 })
		if got := e.c.Started(); got[len(got)-1] != w {
			t.Fatalf("retry %d after %v, want %v (all %v)", i+1, got[len(got)-1], w, got)
		}
		e.c.Advance(w - time.Nanosecond)
		if e.c.Pending() != 1 {
			t.Fatalf("retry %d fired early", i+1)
		}
		e.c.Advance(time.Nanosecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls, _ := e.tr.counts(); calls != 4 {
		t.Fatalf("%d calls, want 4", calls)
	}
	if st := e.m.Stats(); st.Retries != 3 || st.Attempts != 4 || st.FirstAttempts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOverloadedRetryAfterIsRespected(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.fail = func(call int, _ []lease.Command) error {
		if call == 1 {
			return &lease.Error{Code: lease.CodeOverloaded, RetryAfter: 700 * time.Millisecond}
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { _, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute); done <- err }()
	eventually(t, "backoff timer", func() bool { return e.c.Pending() == 1 })
	if got := e.c.Started(); got[len(got)-1] != 700*time.Millisecond {
		t.Fatalf("waited %v, want the retry-after 700ms", got)
	}
	e.c.Advance(700 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestErrorClassesFinalAnswers(t *testing.T) {
	for _, tc := range []struct {
		err   error
		calls int
		code  lease.Code
	}{
		{lease.Errorf(lease.CodeNotLeader, "x"), 4, lease.CodeNotLeader},
		{lease.Errorf(lease.CodeUnavailable, "x"), 4, lease.CodeUnavailable},
		{lease.Errorf(lease.CodeDeadlineExceeded, "x"), 4, lease.CodeDeadlineExceeded},
		{lease.Errorf(lease.CodeUnknown, "x"), 4, lease.CodeUnknown},
		{&lease.Error{Code: lease.CodeOverloaded}, 4, lease.CodeOverloaded},
		{errors.New("a transport bug"), 4, lease.CodeUnknown},
		{lease.InvalidArgument("holder", "bad"), 1, lease.CodeInvalidArgument},
		{lease.Errorf(lease.CodePermissionDenied, "x"), 1, lease.CodePermissionDenied},
		{lease.Errorf(lease.CodeUnauthenticated, "x"), 1, lease.CodeUnauthenticated},
	} {
		t.Run(lease.CodeOf(tc.err).String(), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Rand = func() float64 { return 0 } })
			e.tr.fail = func(int, []lease.Command) error { return tc.err }
			_, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
			if lease.CodeOf(err) != tc.code {
				t.Fatalf("final answer %v, want %v", err, tc.code)
			}
			if calls, _ := e.tr.counts(); calls != tc.calls {
				t.Fatalf("%d calls, want %d", calls, tc.calls)
			}
			// The manager is still alive and serves the next op.
			e.tr.mu.Lock()
			e.tr.fail = nil
			e.tr.mu.Unlock()
			if _, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute); err != nil {
				t.Fatalf("after %v: %v", tc.code, err)
			}
		})
	}
	// Per-op answers: denied and not held are final after one op.
	e := newEnv(t, nil)
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "other", Duration: time.Minute})
	if _, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute); !errors.Is(err, lease.ErrDenied) || err.(*lease.Error).Holder != "other" {
		t.Fatalf("claim: %v", err)
	}
	if err := e.h.Revoke(ctxT(t), "mysql", "u/0"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("revoke: %v", err)
	}
	if _, ops := e.tr.counts(); ops != 2 {
		t.Fatalf("%d ops, want 2", ops)
	}
}

func TestRetryBudgetStopsRetries(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Rand = func() float64 { return 0 }
		c.Budget = client.NewBudget(1, 0) // one retry, ever
	})
	e.tr.fail = func(int, []lease.Command) error { return lease.Errorf(lease.CodeUnavailable, "down") }
	e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
	e.h.Claim(ctxT(t), "mysql", "u/1", time.Minute)
	if calls, _ := e.tr.counts(); calls != 3 {
		t.Fatalf("%d calls, want 3 (2 first attempts + 1 budgeted retry)", calls)
	}
	if st := e.m.Stats(); st.GaveUp != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClaimAndRevokeRunConcurrently(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: lease.Key{Namespace: ns, Group: grp, Name: "b"}, Holder: "u/0", Duration: time.Minute})
	release := make(chan struct{})
	e.tr.block = func(cmds []lease.Command) chan struct{} {
		if cmds[0].Op == lease.OpClaim {
			return release
		}
		return nil
	}
	claimed := make(chan error, 1)
	go func() { _, err := e.h.Claim(ctxT(t), "a", "u/0", time.Minute); claimed <- err }()
	eventually(t, "claim in flight", func() bool { c, _ := e.tr.counts(); return c == 1 })
	if err := e.h.Revoke(ctxT(t), "b", "u/0"); err != nil {
		t.Fatalf("revoke behind a stuck claim: %v", err)
	}
	select {
	case err := <-claimed:
		t.Fatalf("claim finished early: %v", err)
	default:
	}
	close(release)
	if err := <-claimed; err != nil {
		t.Fatal(err)
	}
}

func TestBatchingMultiplexesHolders(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxInFlight = 1 })
	release := make(chan struct{})
	first := true
	e.tr.block = func([]lease.Command) chan struct{} {
		if first {
			first = false
			return release
		}
		return nil
	}
	errs := make(chan error, 51)
	go func() { _, err := e.h.Claim(ctxT(t), "first", "u/0", time.Minute); errs <- err }()
	eventually(t, "first call out", func() bool { c, _ := e.tr.counts(); return c == 1 })
	for i := range 50 {
		go func() { _, err := e.h.Claim(ctxT(t), fmt.Sprintf("app-%d", i), "u/0", time.Minute); errs <- err }()
	}
	eventually(t, "50 ops queued", func() bool { e.m.mu.Lock(); defer e.m.mu.Unlock(); return len(e.m.queue) == 50 })
	close(release)
	for range 51 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if calls, ops := e.tr.counts(); calls != 2 || ops != 51 {
		t.Fatalf("%d calls for %d ops, want 2 calls", calls, ops)
	}
}

func TestDeniedClaimCostsOneOp(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "u/0", Duration: time.Minute})
	if _, err := e.m.watch(ctxT(t), ns); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := e.h.Claim(ctxT(t), "mysql", "u/1", time.Minute); !errors.Is(err, lease.ErrDenied) {
			t.Fatal(err)
		}
	}
	if _, ops := e.tr.counts(); ops != 1 {
		t.Fatalf("10 denied claims cost %d ops, want 1", ops)
	}
	if st := e.m.Stats(); st.LocalDenials != 9 {
		t.Fatalf("stats %+v", st)
	}
	// A release seen on the watch clears the denial at once.
	e.tr.apply(lease.Command{Op: lease.OpRevoke, Key: kApp, Holder: "u/0"})
	eventually(t, "denial cleared", func() bool {
		e.m.waits.mu.Lock()
		defer e.m.waits.mu.Unlock()
		_, ok := e.m.waits.denied[kApp]
		return !ok
	})
	if _, err := e.h.Claim(ctxT(t), "mysql", "u/1", time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestWaiterReleasedAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "u/0", Duration: 10 * time.Second})
	if err := e.h.WaitUntilReleased(ctxT(t), "other"); err != nil {
		t.Fatalf("absent lease: %v", err)
	}
	wait := func() chan error {
		ch := make(chan error, 1)
		go func() { ch <- e.h.WaitUntilReleased(ctxT(t), "mysql") }()
		eventually(t, "waiter registered", func() bool {
			e.m.waits.mu.Lock()
			defer e.m.waits.mu.Unlock()
			return len(e.m.waits.released[kApp]) == 1
		})
		return ch
	}
	w := wait()
	// Revoke: released with no clock advance at all (no +1 s floor).
	e.tr.apply(lease.Command{Op: lease.OpRevoke, Key: kApp, Holder: "u/0"})
	if err := <-w; err != nil {
		t.Fatal(err)
	}
	// Expiry: released by the entry that expires it.
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "u/0", Duration: 10 * time.Second})
	w = wait()
	e.c.Advance(10*time.Second + time.Millisecond)
	e.tr.tick()
	if err := <-w; err != nil {
		t.Fatal(err)
	}
	// Cancellation.
	e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "u/0", Duration: 10 * time.Second})
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := make(chan error, 1)
	go func() { ch <- e.h.WaitUntilReleased(ctx, "mysql") }()
	cancel()
	if err := <-ch; !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestClaimOnReleaseGrantsInOrder(t *testing.T) {
	e := newEnv(t, nil)
	a, err := e.h.Claim(ctxT(t), "mysql", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		l   *Lease
		err error
	}
	start := func(h string, queued int) chan got {
		ch := make(chan got, 1)
		go func() { l, err := e.h.ClaimOnRelease(ctxT(t), "mysql", h, time.Minute); ch <- got{l, err} }()
		eventually(t, h+" queued", func() bool {
			e.tr.mu.Lock()
			defer e.tr.mu.Unlock()
			return len(e.tr.m.Queued(kApp)) == queued
		})
		return ch
	}
	b := start("b", 1)
	c := start("c", 2)
	e.tr.mu.Lock()
	q := e.tr.m.Queued(kApp)
	e.tr.mu.Unlock()
	if !slices.Equal(q, []string{"b", "c"}) {
		t.Fatalf("queue %v", q)
	}
	if err := e.h.Revoke(ctxT(t), "mysql", "a"); err != nil {
		t.Fatal(err)
	}
	gb := <-b
	if gb.err != nil || gb.l.Holder != "b" || gb.l.Token() <= a.Token() {
		t.Fatalf("b: %+v", gb)
	}
	select {
	case g := <-c:
		t.Fatalf("c woken by b's grant: %+v", g)
	default:
	}
	if err := e.h.Revoke(ctxT(t), "mysql", "b"); err != nil {
		t.Fatal(err)
	}
	if gc := <-c; gc.err != nil || gc.l.Holder != "c" || gc.l.Token() <= gb.l.Token() {
		t.Fatalf("c: %+v", gc)
	}
	// Cancelling a queued claim withdraws it.
	ctx, cancel := context.WithCancel(ctxT(t))
	d := make(chan error, 1)
	go func() { _, err := e.h.ClaimOnRelease(ctx, "mysql", "d", time.Minute); d <- err }()
	eventually(t, "d queued", func() bool {
		e.tr.mu.Lock()
		defer e.tr.mu.Unlock()
		return len(e.tr.m.Queued(kApp)) == 1
	})
	cancel()
	if err := <-d; !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("cancelled: %v", err)
	}
	eventually(t, "d withdrawn", func() bool {
		e.tr.mu.Lock()
		defer e.tr.mu.Unlock()
		return len(e.tr.m.Queued(kApp)) == 0
	})
}

func TestRenewalKeepsLeaseAndReportsLoss(t *testing.T) {
	lost := make(chan error, 1)
	e := newEnv(t, func(c *Config) { c.OnLost = func(_ *Lease, err error) { lost <- err } })
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	safe0 := l.SafeUntil()
	// Renewal at 0.5 of 10s, moved earlier by jitter 0.2*0.5: 4.5s.
	eventually(t, "renewal timer", func() bool { return e.c.Pending() == 1 })
	if got := e.c.Started(); got[len(got)-1] != 4500*time.Millisecond {
		t.Fatalf("renewal after %v", got[len(got)-1])
	}
	e.c.Advance(4500 * time.Millisecond)
	eventually(t, "renewed", func() bool { return l.SafeUntil().After(safe0) })
	if !l.SafeUntil().Equal(safe0.Add(4500 * time.Millisecond)) {
		t.Fatalf("safe until %v, want start of the renewal + 10s", l.SafeUntil().Sub(safe0))
	}
	// Someone revokes it behind our back: the next renewal reports the loss.
	e.tr.apply(lease.Command{Op: lease.OpRevoke, Key: kApp, Holder: "u/0"})
	eventually(t, "next renewal timer", func() bool { return e.c.Pending() == 1 })
	e.c.Advance(5 * time.Second)
	if err := <-lost; !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("loss: %v", err)
	}
	<-l.Lost()
	if err := e.h.Check(ctxT(t), "mysql", l.Token()); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("check after loss: %v", err)
	}
}

func TestRenewalFailureBeforeSafeTimeIsLoss(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Rand = func() float64 { return 0 } })
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.h.Check(ctxT(t), "mysql", l.Token()); err != nil {
		t.Fatalf("check: %v", err)
	}
	e.tr.mu.Lock()
	e.tr.fail = func(int, []lease.Command) error { return lease.Errorf(lease.CodeUnavailable, "down") }
	e.tr.mu.Unlock()
	for i := 0; i < 100 && !isStopped(l.lost); i++ {
		eventually(t, "a timer", func() bool { return e.c.Pending() > 0 || isStopped(l.lost) })
		e.c.Advance(500 * time.Millisecond)
	}
	<-l.Lost()
	if e.c.Now().Before(l.SafeUntil()) {
		t.Fatalf("lost at %v before safe time %v", e.c.Now(), l.SafeUntil())
	}
}

func TestShutdownWaitsWithABound(t *testing.T) {
	e := newEnv(t, nil)
	e.tr.block = func([]lease.Command) chan struct{} { return make(chan struct{}) } // never answers
	errc := make(chan error, 1)
	go func() { _, err := e.h.Claim(context.Background(), "mysql", "u/0", time.Minute); errc <- err }()
	eventually(t, "call in flight", func() bool { c, _ := e.tr.counts(); return c == 1 })
	closed := make(chan bool, 1)
	go func() { closed <- e.m.Close() }()
	eventually(t, "shutdown timer", func() bool { return e.c.Pending() == 1 })
	e.c.Advance(999 * time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned before its bound")
	default:
	}
	e.c.Advance(time.Millisecond)
	if clean := <-closed; clean {
		t.Fatal("Close reported a clean shutdown with a call stuck")
	}
	if err := <-errc; err == nil {
		t.Fatal("stuck op succeeded")
	}
	if _, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute); !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("claim after close: %v", err)
	}
}

func TestShutdownCleanWhenIdle(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute); err != nil {
		t.Fatal(err)
	}
	if !e.m.Close() {
		t.Fatal("idle Close not clean")
	}
}
