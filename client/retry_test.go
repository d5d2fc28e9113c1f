package client_test

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

func TestBackoffSpacing(t *testing.T) {
	c, cl, sl := setup(t, 1, grpcserver.Options{}, func(cfg *client.Config) {
		cfg.MaxAttempts, cfg.BackoffBase, cfg.BackoffMax = 5, 100*time.Millisecond, 300*time.Millisecond
	})
	countWrites(c, func(string, []lease.Command) error { return lease.Errorf(lease.CodeUnknown, "flaky") })
	if _, err := cl.Claim(ctxT(t), key, "h", time.Minute); !errors.Is(err, lease.ErrUnknown) {
		t.Fatal(err)
	}
	// Full jitter with rand 0.5: half of min(max, base*2^(n-1)).
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond}
	if got := sl.get(); !slices.Equal(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
}

func TestRetryAfterObeyed(t *testing.T) {
	c, cl, sl := setup(t, 1, grpcserver.Options{}, func(cfg *client.Config) { cfg.MaxAttempts = 3 })
	wc := countWrites(c, func(string, []lease.Command) error {
		return &lease.Error{Code: lease.CodeOverloaded, RetryAfter: 700 * time.Millisecond}
	})
	_, err := cl.Claim(ctxT(t), key, "h", time.Minute)
	var le *lease.Error
	if !errors.As(err, &le) || le.Code != lease.CodeOverloaded || le.RetryAfter != 700*time.Millisecond {
		t.Fatal(err)
	}
	if got := sl.get(); wc.total() != 3 || !slices.Equal(got, []time.Duration{700 * time.Millisecond, 700 * time.Millisecond}) {
		t.Fatalf("attempts %d sleeps %v", wc.total(), got)
	}
}

func TestNeverRetried(t *testing.T) {
	c, cl, sl := setup(t, 1, grpcserver.Options{}, nil)
	for _, code := range []lease.Code{lease.CodeDenied, lease.CodeNotHeld, lease.CodeInvalidArgument,
		lease.CodeUnauthenticated, lease.CodePermissionDenied, lease.CodeCanceled} {
		wc := countWrites(c, func(string, []lease.Command) error { return &lease.Error{Code: code} })
		if _, err := cl.Claim(ctxT(t), key, "h", time.Minute); !errors.Is(err, &lease.Error{Code: code}) {
			t.Fatalf("%v: %v", code, err)
		}
		if wc.total() != 1 {
			t.Fatalf("%v tried %d times", code, wc.total())
		}
	}
	if len(sl.get()) != 0 {
		t.Fatalf("slept %v", sl.get())
	}
}

// TestRetryBudget: retries spend a bucket of RetryBurst tokens refilled at
// RetryRatio per call, so a failing server gets few retries.
func TestRetryBudget(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, func(cfg *client.Config) {
		cfg.MaxAttempts, cfg.RetryBurst, cfg.RetryRatio = 5, 2, 0.1
	})
	wc := countWrites(c, func(string, []lease.Command) error { return lease.Errorf(lease.CodeUnknown, "flaky") })
	ctx := ctxT(t)
	cl.Claim(ctx, key, "h", time.Minute) // 1 + 2 retries: the burst
	if got := wc.total(); got != 3 {
		t.Fatalf("first call: %d attempts, want 3", got)
	}
	for range 9 { // budget 0.1..0.9 < 1: no retries
		cl.Claim(ctx, key, "h", time.Minute)
	}
	if got := wc.total(); got != 12 {
		t.Fatalf("after 10 calls: %d attempts, want 12", got)
	}
	cl.Claim(ctx, key, "h", time.Minute) // 0.9 + 0.1 = 1 token: one retry
	if got := wc.total(); got != 14 {
		t.Fatalf("after 11 calls: %d attempts, want 14", got)
	}
}

// A leader establishing its term or handing leadership over answers
// NotLeader without a hint and with a retry-after: the client backs off for
// at least that long and tries again, rather than giving the server up.
func TestNotReadyLeaderBackedOff(t *testing.T) {
	c, cl, sl := setup(t, 1, grpcserver.Options{}, func(cfg *client.Config) { cfg.MaxAttempts = 4 })
	var n atomic.Int32
	countWrites(c, func(string, []lease.Command) error {
		if n.Add(1) <= 2 {
			return &lease.Error{Code: lease.CodeNotLeader, RetryAfter: 400 * time.Millisecond, Message: "establishing"}
		}
		return nil
	})
	if _, err := cl.Claim(ctxT(t), key, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := sl.get(); !slices.Equal(got, []time.Duration{400 * time.Millisecond, 400 * time.Millisecond}) {
		t.Fatalf("sleeps %v, want the retry-after twice", got)
	}
}
