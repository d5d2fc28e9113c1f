package grpcserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

// TestWatchLimitsPerCallerAndServer: configured limits refuse the stream
// over either with Overloaded, and a closed stream gives its slot back.
func TestWatchLimitsPerCallerAndServer(t *testing.T) {
	c := servertest.NewCluster(1)
	addrs := servertest.Start(t, c, grpcserver.Options{MaxWatchers: 2, MaxWatchersPerCaller: 1,
		Tokens: map[string]grpcserver.Role{"one": grpcserver.RoleAgent, "two": grpcserver.RoleAgent, "three": grpcserver.RoleAgent}})
	noSleep := func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	cl := func(tok string) *client.Client {
		return newClient(t, client.Config{Endpoints: addrs, Token: tok, Sleep: noSleep})
	}
	one, two, three := cl("one"), cl("two"), cl("three")
	ctx := ctxT(t)
	w1, err := one.Watch(ctx, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Watch(ctx, client.WatchOptions{}); !errors.Is(err, lease.ErrOverloaded) {
		t.Fatalf("second watch of one caller: %v", err)
	}
	if _, err := two.Watch(ctx, client.WatchOptions{}); err != nil {
		t.Fatalf("another caller: %v", err)
	}
	if err := three.WaitUntilReleased(ctx, key); !errors.Is(err, lease.ErrOverloaded) {
		t.Fatalf("a wait over the server's limit: %v", err)
	}
	w1.Close()
	waitFor(t, "the slot given back", func() bool {
		w, err := three.Watch(ctx, client.WatchOptions{})
		if err == nil {
			w.Close()
		}
		return err == nil
	})
}
