package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

// A server with more unary calls in progress than MaxCalls refuses the next
// one at once with overloaded and a retry-after, before it is read: on a
// CPU-starved leader, calls that are let in wait behind each other for
// goroutines and CPU and end as timeouts (unknown to the caller) instead.
// Status and admin calls still pass (an operator needs them then), and a
// finished call frees its place.
func TestCallsBeyondMaxCallsAreRefusedOverloaded(t *testing.T) {
	const limit = 3
	c := servertest.NewCluster(1)
	var refusedMu sync.Mutex
	var refused []string
	addrs := servertest.Start(t, c, grpcserver.Options{MaxCalls: limit, OnCallRefused: func(method string, ra time.Duration) {
		refusedMu.Lock()
		defer refusedMu.Unlock()
		refused = append(refused, fmt.Sprintf("%s %v", path.Base(method), ra > 0))
	}})
	cl := newClient(t, client.Config{Endpoints: addrs})
	ctx := ctxT(t)

	release := make(chan struct{})
	entered := make(chan struct{}, limit)
	var hold sync.Once
	c.SetOnWrite(func(ctx context.Context, _ string, cmds []lease.Command) error {
		if cmds[0].Holder != "blocked" {
			return nil
		}
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	defer hold.Do(func() { close(release) })

	var wg sync.WaitGroup
	errs := make([]error, limit)
	for i := range limit {
		wg.Go(func() {
			k := key
			k.Name = fmt.Sprintf("held-%d", i)
			_, errs[i] = cl.Claim(ctx, k, "blocked", time.Minute)
		})
	}
	for range limit {
		<-entered
	}

	// The server is at its limit: the next write is refused, not queued.
	// Without the limit it would wait for the blocked ones and end when its
	// deadline does.
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := cl.Claim(short, key, "next", time.Minute)
	cancel()
	var le *lease.Error
	if !errors.As(err, &le) || le.Code != lease.CodeOverloaded || le.RetryAfter <= 0 {
		t.Fatalf("claim beyond the limit: %v, want overloaded with a retry-after", err)
	}
	short, cancel = context.WithTimeout(ctx, 3*time.Second)
	_, _, err = cl.Get(short, key)
	cancel()
	if !errors.Is(err, lease.ErrOverloaded) {
		t.Fatalf("get beyond the limit: %v, want overloaded", err)
	}
	if _, err := cl.Status(ctx); err != nil {
		t.Fatalf("status beyond the limit: %v", err)
	}
	// Every refusal is reported, with a retry-after (the client may try
	// twice: one endpoint, plus one, when the retry-after fits its deadline).
	refusedMu.Lock()
	seen := map[string]int{}
	for _, r := range refused {
		seen[r]++
	}
	refusedMu.Unlock()
	if len(seen) != 2 || seen["Claim true"] == 0 || seen["Get true"] == 0 {
		t.Fatalf("OnCallRefused saw %v, want the claim's and the get's attempts, each with a retry-after", seen)
	}

	hold.Do(func() { close(release) })
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("held call %d: %v", i, err)
		}
	}
	// Every place was given back: limit calls at once pass again.
	for i := range limit + 1 {
		k := key
		k.Name = fmt.Sprintf("after-%d", i)
		if _, err := cl.Claim(ctx, k, "next", time.Minute); err != nil {
			t.Fatalf("claim %d after the held calls ended: %v", i, err)
		}
	}
}

// MaxCalls below zero turns the limit off.
func TestMaxCallsNegativeIsUnlimited(t *testing.T) {
	c := servertest.NewCluster(1)
	addrs := servertest.Start(t, c, grpcserver.Options{MaxCalls: -1})
	cl := newClient(t, client.Config{Endpoints: addrs})
	if _, err := cl.Claim(ctxT(t), key, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
}
