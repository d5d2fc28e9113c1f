package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRoundTrips runs every write and read through the client against a
// real cluster and checks each answer against the replicated state.
func TestRoundTrips(t *testing.T) {
	e := start(t, nil)
	c := newClient(t, client.Config{Endpoints: e.endpoints()})
	ctx := ctxFor(t, 20*time.Second)
	k := key("rt", "app")

	g, err := c.Claim(ctx, k, "unit/0", 30*time.Second)
	if err != nil || g.Outcome != lease.OutcomeGranted || g.Token == 0 || g.Holder != "unit/0" || g.ExpiresIn <= 29*time.Second {
		t.Fatalf("claim: %+v %v", g, err)
	}
	if _, err := c.Claim(ctx, k, "unit/1", 30*time.Second); codeOf(t, err) != lease.CodeDenied {
		t.Fatalf("rival claim: %v", err)
	} else if le := err.(*lease.Error); le.Holder != "unit/0" || le.ExpiresIn <= 0 {
		t.Fatalf("denied without holder details: %+v", le)
	}
	x, err := c.Extend(ctx, k, "unit/0", 60*time.Second)
	if err != nil || x.Outcome != lease.OutcomeExtended || x.Token != g.Token || x.Expiry <= g.Expiry {
		t.Fatalf("extend: %+v %v (claim %+v)", x, err, g)
	}
	if _, err := c.Extend(ctx, k, "unit/1", time.Minute); codeOf(t, err) != lease.CodeNotHeld {
		t.Fatalf("extend by non-holder: %v", err)
	}
	// Past max_duration: the holder's renewal is clamped to it (the answer
	// says so); anyone else's claim is refused.
	if r, err := c.Claim(ctx, k, "unit/0", time.Hour); err != nil || r.Expiry-r.Start != lease.DefaultLimits.MaxDuration {
		t.Fatalf("holder's claim past max duration: %+v %v", r, err)
	}
	if _, err := c.Claim(ctx, k, "unit/1", time.Hour); codeOf(t, err) != lease.CodeInvalidArgument {
		t.Fatalf("claim past max duration: %v", err)
	}

	if p, err := c.Pin(ctx, k, "upgrade"); err != nil || p.Outcome != lease.OutcomePinned {
		t.Fatalf("pin: %+v %v", p, err)
	}
	got, meta, err := c.Get(ctx, k)
	if err != nil || got == nil || !got.Pinned || got.Holder != "unit/0" || got.Token != g.Token || meta.ServerID != e.leader(t).ID {
		t.Fatalf("get after pin: %+v %+v %v", got, meta, err)
	}
	pins, _, err := c.Pinned(ctx)
	if err != nil || len(pins) != 1 || pins[0].Key != k || len(pins[0].Entities) != 1 || pins[0].Entities[0] != "upgrade" {
		t.Fatalf("pinned: %+v %v", pins, err)
	}
	if u, err := c.Unpin(ctx, k, "upgrade"); err != nil || u.Outcome != lease.OutcomeUnpinned {
		t.Fatalf("unpin: %+v %v", u, err)
	}

	// A stale read on a follower sees the write once the follower applied it.
	f := e.follower(t)
	fc := newClient(t, client.Config{Endpoints: []string{f.ClientAddr}})
	waitFor(t, 5*time.Second, "follower to apply the unpin", func() bool {
		l, m, err := fc.Get(ctx, k, client.Stale())
		return err == nil && l != nil && !l.Pinned && m.ServerID == f.ID
	})

	r, err := c.Revoke(ctx, k, "unit/0")
	if err != nil || r.Outcome != lease.OutcomeRevoked {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if r, err := c.Revoke(ctx, k, "unit/0"); err != nil || r.Outcome != lease.OutcomeAbsent {
		t.Fatalf("second revoke: %+v %v", r, err)
	}
	if got, _, err := c.Get(ctx, k); err != nil || got != nil {
		t.Fatalf("get after revoke: %+v %v", got, err)
	}
	// The next holder gets a larger fencing token.
	if g2, err := c.Claim(ctx, k, "unit/1", 10*time.Second); err != nil || g2.Token <= g.Token {
		t.Fatalf("reclaim: %+v %v (first token %d)", g2, err, g.Token)
	}

	// Bulk: one result per op, per-op errors in place.
	res, err := c.Bulk(ctx, []lease.Command{
		{Op: lease.OpClaim, Key: key("rt", "b1"), Holder: "u/0", Duration: 10 * time.Second},
		{Op: lease.OpClaim, Key: k, Holder: "u/0", Duration: 10 * time.Second},                  // denied: unit/1 holds it
		{Op: lease.OpExtend, Key: key("rt", "nope"), Holder: "u/0", Duration: 10 * time.Second}, // not held
		{Op: lease.OpClaim, Key: key("rt", "b2"), Holder: "u/0", Duration: time.Hour},           // invalid
	})
	if err != nil || len(res) != 4 {
		t.Fatalf("bulk: %v %v", res, err)
	}
	want := []lease.Code{lease.CodeOK, lease.CodeDenied, lease.CodeNotHeld, lease.CodeInvalidArgument}
	for i, w := range want {
		if got := codeOf(t, res[i].Err); got != w {
			t.Errorf("bulk op %d: %v, want %v", i, res[i].Err, w)
		}
	}
	all, _, err := c.ListAll(ctx, client.ListOptions{Namespace: "e2e", Group: "rt", PageSize: 1})
	if err != nil || len(all) != 2 || all[0].Key != k || all[1].Key != key("rt", "b1") {
		t.Fatalf("list: %+v %v", all, err)
	}
}

// TestFollowerOnlyClientReachesLeader gives the client one follower as its
// only endpoint: the follower's NotLeader hint must lead it to the leader.
func TestFollowerOnlyClientReachesLeader(t *testing.T) {
	e := start(t, nil)
	l, f := e.leader(t), e.follower(t)
	c := newClient(t, client.Config{Endpoints: []string{f.ClientAddr}})
	ctx := ctxFor(t, 10*time.Second)
	r, err := c.Claim(ctx, key("hint", "a"), "u/0", 30*time.Second)
	if err != nil || r.Outcome != lease.OutcomeGranted {
		t.Fatalf("claim through a follower: %+v %v", r, err)
	}
	// The linearizable read goes to the leader the client has learned.
	got, meta, err := c.Get(ctx, key("hint", "a"))
	if err != nil || got == nil || got.Token != r.Token || meta.ServerID != l.ID {
		t.Fatalf("get: %+v %+v %v (leader %s)", got, meta, err, l.ID)
	}
	st, err := c.Status(ctx)
	if err != nil || st.ID != l.ID || st.State != "leader" {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// TestNoReachableServerIsUnavailable points a client at ports nobody
// listens on (one of them a stopped cluster member's): it must answer
// Unavailable, before its deadline.
func TestNoReachableServerIsUnavailable(t *testing.T) {
	var dead []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, l.Addr().String())
		l.Close()
	}
	c := newClient(t, client.Config{Endpoints: dead, ConnectTimeout: 500 * time.Millisecond})
	const deadline = 3 * time.Second
	for _, call := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"claim", func(ctx context.Context) error {
			_, err := c.Claim(ctx, key("u", "a"), "u/0", 10*time.Second)
			return err
		}},
		{"get", func(ctx context.Context) error { _, _, err := c.Get(ctx, key("u", "a")); return err }},
		{"bulk", func(ctx context.Context) error {
			_, err := c.Bulk(ctx, []lease.Command{{Op: lease.OpExtend, Key: key("u", "a"), Holder: "u/0", Duration: 10 * time.Second}})
			return err
		}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		begin := time.Now()
		err := call.fn(ctx)
		took := time.Since(begin)
		cancel()
		if codeOf(t, err) != lease.CodeUnavailable || !lease.IsRetryable(err) {
			t.Errorf("%s: %v, want unavailable", call.name, err)
		}
		if took >= deadline {
			t.Errorf("%s took %v, past its %v deadline", call.name, took, deadline)
		}
	}
}

// TestAuthRejectsAndWritesNothing runs a cluster with tokens: calls without
// a token, with a wrong one, or with the agent role for admin ops are
// refused, and the log shows nothing of them (a watch opened before sees
// the admin's marker claim as the first event).
func TestAuthRejectsAndWritesNothing(t *testing.T) {
	e := start(t, func(o *devcluster.Options) {
		o.Server = grpcserver.Options{Tokens: map[string]grpcserver.Role{"agent-tok": grpcserver.RoleAgent, "admin-tok": grpcserver.RoleAdmin}}
	})
	ctx := ctxFor(t, 20*time.Second)
	eps := e.endpoints()
	admin := newClient(t, client.Config{Endpoints: eps, Token: "admin-tok"})
	w, err := admin.Watch(ctx, client.WatchOptions{Namespace: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	k := key("auth", "x")
	none := newClient(t, client.Config{Endpoints: eps})
	wrong := newClient(t, client.Config{Endpoints: eps, Token: "guess"})
	agent := newClient(t, client.Config{Endpoints: eps, Token: "agent-tok"})
	for _, c := range []*client.Client{none, wrong} {
		if _, err := c.Claim(ctx, k, "u/0", 10*time.Second); codeOf(t, err) != lease.CodeUnauthenticated {
			t.Errorf("claim without a valid token: %v", err)
		}
		if _, err := c.Bulk(ctx, []lease.Command{{Op: lease.OpClaim, Key: k, Holder: "u/0", Duration: 10 * time.Second}}); codeOf(t, err) != lease.CodeUnauthenticated {
			t.Errorf("bulk without a valid token: %v", err)
		}
		if _, _, err := c.Get(ctx, k); codeOf(t, err) != lease.CodeUnauthenticated {
			t.Errorf("get without a valid token: %v", err)
		}
	}
	if _, err := agent.Pin(ctx, k, "e"); codeOf(t, err) != lease.CodePermissionDenied {
		t.Errorf("agent pin: %v", err)
	}
	if _, err := agent.Unpin(ctx, k, "e"); codeOf(t, err) != lease.CodePermissionDenied {
		t.Errorf("agent unpin: %v", err)
	}
	// A bulk mixing a legal claim with a pin is refused whole.
	_, err = agent.Bulk(ctx, []lease.Command{
		{Op: lease.OpClaim, Key: k, Holder: "u/0", Duration: 10 * time.Second},
		{Op: lease.OpPin, Key: k, Holder: "e"},
	})
	if codeOf(t, err) != lease.CodePermissionDenied {
		t.Errorf("agent bulk with a pin: %v", err)
	}

	marker := key("auth", "marker")
	if _, err := admin.Claim(ctx, marker, "admin", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	evs, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Key != marker || evs[0].Kind != lease.EventClaimed {
		t.Fatalf("first event after the refused calls: %+v, want the marker claim", evs[0])
	}
	if got, _, err := admin.Get(ctx, k); err != nil || got != nil {
		t.Fatalf("refused claim left a lease: %+v %v", got, err)
	}
	if pins, _, err := admin.Pinned(ctx); err != nil || len(pins) != 0 {
		t.Fatalf("refused pin left pins: %+v %v", pins, err)
	}
	// The agent can do what its role allows.
	if _, err := agent.Claim(ctx, k, "u/0", 10*time.Second); err != nil {
		t.Fatalf("agent claim: %v", err)
	}
}

// TestWatchOrder checks that claim, extend, revoke and expiry events arrive
// in log order with increasing indexes on the real backend.
func TestWatchOrder(t *testing.T) {
	e := start(t, nil)
	ctx := ctxFor(t, 20*time.Second)
	c := newClient(t, client.Config{Endpoints: e.endpoints()})
	// Watch from a follower: events come from its applied log.
	fw := newClient(t, client.Config{Endpoints: []string{e.follower(t).ClientAddr}})
	w, err := fw.Watch(ctx, client.WatchOptions{Namespace: "e2e", Group: "watch", Extends: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, b := key("watch", "a"), key("watch", "b")
	steps := []func() error{
		func() error { _, err := c.Claim(ctx, a, "u/0", 30*time.Second); return err },
		func() error { _, err := c.Extend(ctx, a, "u/0", 40*time.Second); return err },
		func() error { _, err := c.Revoke(ctx, a, "u/0"); return err },
		// Last, so a slow machine cannot make it expire between the others.
		func() error { _, err := c.Claim(ctx, b, "u/1", time.Second); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []struct {
		kind lease.EventKind
		key  lease.Key
	}{{lease.EventClaimed, a}, {lease.EventExtended, a}, {lease.EventRevoked, a}, {lease.EventClaimed, b}, {lease.EventExpired, b}}
	var got []lease.Event
	for len(got) < len(want) {
		evs, err := w.Next()
		if err != nil {
			t.Fatalf("watch after %d events: %v", len(got), err)
		}
		got = append(got, evs...)
	}
	var last uint64
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Key != w.key {
			t.Fatalf("event %d: %v %v, want %v %v (all: %+v)", i, got[i].Kind, got[i].Key, w.kind, w.key, got)
		}
		if got[i].Index < last {
			t.Fatalf("event %d index %d after %d", i, got[i].Index, last)
		}
		last = got[i].Index
	}
	if len(got) != len(want) {
		t.Fatalf("extra events: %+v", got[len(want):])
	}
}
