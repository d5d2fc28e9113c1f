package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/server"
)

func ev(idx uint64, name string) lease.Event {
	return lease.Event{Kind: lease.EventClaimed, Key: lease.Key{Namespace: "ns", Group: "g", Name: name}, Index: idx}
}

func TestWatchHubReplayTrimAndSlowWatcher(t *testing.T) {
	h := server.NewWatchHub(3, 1)
	h.Publish([]lease.Event{ev(1, "a"), ev(2, "b"), ev(3, "a"), ev(4, "a")}) // keeps 2..4
	noop := func([]lease.Event) error { return nil }
	if err := h.Watch(context.Background(), 1, server.WatchFilter{}, noop); !errors.Is(err, lease.ErrInvalidArgument) {
		t.Fatalf("trimmed start: %v", err)
	}
	// Replay from 2 with a filter, then a slow watcher is ended, not waited for.
	var got []uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := h.Watch(ctx, 2, server.WatchFilter{Namespace: "ns", Group: "g", Name: "a"}, func(b []lease.Event) error {
		for _, e := range b {
			got = append(got, e.Index)
		}
		if len(b) > 0 && b[len(b)-1].Index == 4 {
			// While this watcher is busy, two batches arrive; its buffer holds one.
			h.Publish([]lease.Event{ev(5, "a")})
			h.Publish([]lease.Event{ev(6, "a")})
		}
		return nil
	})
	if !errors.Is(err, lease.ErrOverloaded) {
		t.Fatalf("slow watcher: %v", err)
	}
	if len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Fatalf("events %v", got)
	}
}
