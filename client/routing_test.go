package client_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// TestFollowerRedirect: a follower answers NotLeader with the hint and the
// client goes straight to the leader, then keeps going there.
func TestFollowerRedirect(t *testing.T) {
	c, cl, sl := setup(t, 3, grpcserver.Options{}, nil)
	c.SetLeader("n3")
	wc := countWrites(c, nil)
	ctx := ctxT(t)
	if _, err := cl.Claim(ctx, key, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	if wc.get("n1") != 1 || wc.get("n3") != 1 || wc.get("n2") != 0 {
		t.Fatalf("writes per node: %v", wc.counts)
	}
	for range 3 {
		if _, err := cl.Extend(ctx, key, "h", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if wc.get("n3") != 4 || wc.total() != 5 {
		t.Fatalf("later writes did not go to the leader: %v", wc.counts)
	}
	if len(sl.get()) != 0 {
		t.Fatalf("a hinted redirect slept: %v", sl.get())
	}
	// A linearizable read on a follower is redirected too; a stale one is not.
	c.SetLeader("n2")
	if _, meta, err := cl.Get(ctx, key); err != nil || meta.ServerID != "n2" {
		t.Fatalf("get after leader change: %+v %v", meta, err)
	}
}

// TestRedirectByID: the hint names the leader by ID only; the client learns
// its servers' IDs from Status and follows it.
func TestRedirectByID(t *testing.T) {
	c, cl, _ := setup(t, 3, grpcserver.Options{}, nil)
	c.SetLeader("n2")
	countWrites(c, func(node string, _ []lease.Command) error {
		if node != "n2" {
			return &lease.Error{Code: lease.CodeNotLeader, LeaderID: "n2"}
		}
		return nil
	})
	ctx := ctxT(t)
	if _, err := cl.Claim(ctx, key, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, meta, err := cl.Get(ctx, key); err != nil || meta.ServerID != "n2" {
		t.Fatalf("get: %+v %v", meta, err)
	}
}

// TestNoLeaderBacksOff: with no leader every server answers NotLeader with
// an empty hint; the client tries others with backoff and gives up with
// NotLeader after its attempts.
func TestNoLeaderBacksOff(t *testing.T) {
	c, cl, sl := setup(t, 3, grpcserver.Options{}, nil)
	c.SetLeader("")
	wc := countWrites(c, nil)
	_, err := cl.Claim(ctxT(t), key, "h", time.Minute)
	if !errors.Is(err, lease.ErrNotLeader) {
		t.Fatalf("err %v", err)
	}
	if wc.total() != 5 || len(sl.get()) != 4 {
		t.Fatalf("attempts %d sleeps %v", wc.total(), sl.get())
	}
}

func closedAddrs(t *testing.T, n int) []string {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	return addrs
}

// TestNoServerUnavailable: nothing listens; every call fails with
// Unavailable at once, well inside its deadline, and nothing hangs.
func TestNoServerUnavailable(t *testing.T) {
	cl, err := client.New(client.Config{Endpoints: closedAddrs(t, 3)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	for range 3 {
		if _, err := cl.Claim(ctx, key, "h", time.Minute); !errors.Is(err, lease.ErrUnavailable) {
			t.Fatalf("claim: %v", err)
		}
		if _, _, err := cl.Get(ctx, key); !errors.Is(err, lease.ErrUnavailable) {
			t.Fatalf("get: %v", err)
		}
		if _, err := cl.Status(ctx); !errors.Is(err, lease.ErrUnavailable) {
			t.Fatalf("status: %v", err)
		}
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
}

// TestFailoverToLiveServer: the first endpoint is down; the call moves on.
func TestFailoverToLiveServer(t *testing.T) {
	c, _, _ := setup(t, 1, grpcserver.Options{}, nil)
	cl, err := client.New(client.Config{Endpoints: append(closedAddrs(t, 2), c.Node("n1").Addr)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Claim(ctxT(t), key, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestCancelReachesServer: cancelling the caller's context cancels the
// backend's wait; the client reports Canceled.
func TestCancelReachesServer(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	entered, observed := make(chan struct{}), make(chan error, 1)
	c.SetOnWrite(func(ctx context.Context, _ string, _ []lease.Command) error {
		close(entered)
		<-ctx.Done()
		observed <- ctx.Err()
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	_, err := cl.Claim(ctx, key, "h", time.Minute)
	if !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("err %v", err)
	}
	if got := <-observed; !errors.Is(got, context.Canceled) {
		t.Fatalf("backend saw %v", got)
	}
}

// TestClientDeadlineIsUnknown: the caller's deadline passes while a write is
// in flight: the outcome is unknown, not "deadline exceeded, not applied".
func TestClientDeadlineIsUnknown(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	observed := make(chan struct{})
	c.SetOnWrite(func(ctx context.Context, _ string, _ []lease.Command) error {
		<-ctx.Done()
		close(observed)
		return ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := cl.Claim(ctx, key, "h", time.Minute)
	if errors.Is(err, lease.ErrDeadlineExceeded) || !errors.Is(err, lease.ErrUnknown) {
		t.Fatalf("err %v", err)
	}
	<-observed
	// A server-sent DeadlineExceeded is the definite "not applied".
	c.SetOnWrite(func(context.Context, string, []lease.Command) error {
		return lease.Errorf(lease.CodeDeadlineExceeded, "queue too long")
	})
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if _, err := cl.Claim(ctx2, key, "h", time.Minute); !errors.Is(err, lease.ErrDeadlineExceeded) {
		t.Fatalf("server deadline: %v", err)
	}
}

// TestUnknownThenRefusedStaysUnknown: once an attempt's outcome is unknown,
// a later "not applied" answer must not be reported as the call's outcome.
func TestUnknownThenRefusedStaysUnknown(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, func(cfg *client.Config) { cfg.MaxAttempts = 2 })
	n := 0
	countWrites(c, func(string, []lease.Command) error {
		n++
		if n == 1 {
			return lease.Errorf(lease.CodeUnknown, "leader lost after proposing")
		}
		return &lease.Error{Code: lease.CodeOverloaded, RetryAfter: time.Millisecond}
	})
	_, err := cl.Claim(ctxT(t), key, "h", time.Minute)
	if !errors.Is(err, lease.ErrUnknown) {
		t.Fatalf("err %v", err)
	}
}
