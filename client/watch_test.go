package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

func TestWatch(t *testing.T) {
	c, cl, _ := setup(t, 3, grpcserver.Options{}, nil)
	ctx := ctxT(t)
	other := lease.Key{Namespace: "ns", Group: "g", Name: "x"}
	if _, err := cl.Claim(ctx, key, "u/0", time.Minute); err != nil {
		t.Fatal(err)
	}
	_, meta, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cl.Watch(ctx, client.WatchOptions{Namespace: key.Namespace, Group: key.Group, Name: key.Name, StartIndex: meta.AppliedIndex + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cl.Claim(ctx, other, "u/0", time.Minute) // filtered out
	if _, err := cl.Revoke(ctx, key, "u/0"); err != nil {
		t.Fatal(err)
	}
	ev, err := w.Next()
	if err != nil || len(ev) != 1 || ev[0].Kind != lease.EventRevoked || ev[0].Key != key || ev[0].Holder != "u/0" {
		t.Fatalf("events %+v %v", ev, err)
	}
	// Replay from an earlier index sees the claim too (and not the other
	// namespace's claim).
	w2, err := cl.Watch(ctx, client.WatchOptions{Namespace: key.Namespace, StartIndex: 1})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []lease.EventKind
	for len(kinds) < 2 {
		ev, err := w2.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ev {
			kinds = append(kinds, e.Kind)
		}
	}
	if len(kinds) != 2 || kinds[0] != lease.EventClaimed || kinds[1] != lease.EventRevoked || c.Index() != 3 {
		t.Fatalf("replayed %v", kinds)
	}
	w2.Close()
	if _, err := w2.Next(); !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("after close: %v", err)
	}
}

// TestWatchEndsWithContext: cancelling the watch's context ends Next.
func TestWatchEndsWithContext(t *testing.T) {
	_, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cl.Watch(ctx, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, err := w.Next(); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("err %v", err)
	}
}
