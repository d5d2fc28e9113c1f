package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

func TestRoundTrip(t *testing.T) {
	_, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	ctx := ctxT(t)
	r, err := cl.Claim(ctx, key, "unit/0", 10*time.Second)
	if err != nil || r.Outcome != lease.OutcomeGranted || r.Token == 0 || r.Holder != "unit/0" || r.Key != key {
		t.Fatalf("claim: %+v %v", r, err)
	}
	if r.ExpiresIn <= 9*time.Second || r.ExpiresIn > 10*time.Second || r.Expiry-r.Start != 10*time.Second {
		t.Fatalf("claim times: %+v", r)
	}
	r2, err := cl.Claim(ctx, key, "unit/0", 20*time.Second)
	if err != nil || r2.Outcome != lease.OutcomeExtended || r2.Token != r.Token {
		t.Fatalf("re-claim: %+v %v", r2, err)
	}
	_, err = cl.Claim(ctx, key, "unit/1", 10*time.Second)
	var le *lease.Error
	if !errors.Is(err, lease.ErrDenied) || !errors.As(err, &le) || le.Holder != "unit/0" || le.ExpiresIn <= 10*time.Second {
		t.Fatalf("denied: %#v", err)
	}
	// The denial states the holder's lease and the replicated time exactly.
	if le.Token != r.Token || le.Start != r2.Start || le.Expiry != r2.Expiry || le.Now < r2.Now || le.ExpiresIn < le.Expiry-le.Now {
		t.Fatalf("denied lease %#v, want token %d [%v, %v] after %v", le, r.Token, r2.Start, r2.Expiry, r2.Now)
	}
	if r, err := cl.Extend(ctx, key, "unit/0", 30*time.Second); err != nil || r.Outcome != lease.OutcomeExtended {
		t.Fatalf("extend: %+v %v", r, err)
	}
	if _, err := cl.Extend(ctx, key, "unit/1", 30*time.Second); !errors.Is(err, lease.ErrNotHeld) ||
		!errors.As(err, &le) || le.Holder != "unit/0" || le.Token != r.Token || le.Now == 0 || le.Now < le.Start {
		t.Fatalf("extend by other: %#v", err)
	}
	l, meta, err := cl.Get(ctx, key)
	if err != nil || l == nil || l.Holder != "unit/0" || l.Token != r.Token || meta.ServerID != "n1" || meta.AppliedIndex == 0 {
		t.Fatalf("get: %+v %+v %v", l, meta, err)
	}
	if r, err := cl.Pin(ctx, key, "upgrade"); err != nil || r.Outcome != lease.OutcomePinned {
		t.Fatalf("pin: %+v %v", r, err)
	}
	pins, _, err := cl.Pinned(ctx)
	if err != nil || len(pins) != 1 || pins[0].Key != key || pins[0].Entities[0] != "upgrade" {
		t.Fatalf("pinned: %+v %v", pins, err)
	}
	if r, err := cl.Unpin(ctx, key, "upgrade"); err != nil || r.Outcome != lease.OutcomeUnpinned {
		t.Fatalf("unpin: %+v %v", r, err)
	}
	if _, err := cl.Revoke(ctx, key, "unit/1"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("revoke by other: %v", err)
	}
	if r, err := cl.Revoke(ctx, key, "unit/0"); err != nil || r.Outcome != lease.OutcomeRevoked {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if r, err := cl.Revoke(ctx, key, "unit/0"); err != nil || r.Outcome != lease.OutcomeAbsent {
		t.Fatalf("revoke absent: %+v %v", r, err)
	}
	if l, _, err := cl.Get(ctx, key); err != nil || l != nil {
		t.Fatalf("get after revoke: %+v %v", l, err)
	}
}

func TestListPages(t *testing.T) {
	_, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	ctx := ctxT(t)
	var cmds []lease.Command
	for g := range 3 {
		for i := range 5 {
			k := lease.Key{Namespace: "ns", Group: fmt.Sprintf("g%d", g), Name: fmt.Sprintf("app%d", i)}
			cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: k, Holder: "h", Duration: time.Minute})
		}
	}
	cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: lease.Key{Namespace: "other", Group: "g0", Name: "x"}, Holder: "h", Duration: time.Minute})
	if _, err := cl.Bulk(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	all, _, err := cl.ListAll(ctx, client.ListOptions{Namespace: "ns", PageSize: 4})
	if err != nil || len(all) != 15 {
		t.Fatalf("list all: %d %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if !all[i-1].Key.Less(all[i].Key) {
			t.Fatalf("not in key order at %d: %v %v", i, all[i-1].Key, all[i].Key)
		}
	}
	page, err := cl.List(ctx, client.ListOptions{Namespace: "ns", Group: "g1", Stale: true})
	if err != nil || len(page.Leases) != 5 || page.NextPageToken != "" {
		t.Fatalf("list group: %+v %v", page, err)
	}
	if _, err := cl.List(ctx, client.ListOptions{PageToken: "garbage!"}); !errors.Is(err, lease.ErrInvalidArgument) {
		t.Fatalf("bad page token: %v", err)
	}
	if _, err := cl.List(ctx, client.ListOptions{Group: "g1"}); !errors.Is(err, lease.ErrInvalidArgument) {
		t.Fatalf("group without namespace: %v", err)
	}
}

func TestBulkMixedResults(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	ctx := ctxT(t)
	other := lease.Key{Namespace: "ns", Group: "g", Name: "other"}
	otherLease, err := cl.Claim(ctx, other, "someone", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := c.Index()
	res, err := cl.Bulk(ctx, []lease.Command{
		{Op: lease.OpClaim, Key: key, Holder: "u/0", Duration: time.Minute},
		{Op: lease.OpClaim, Key: other, Holder: "u/0", Duration: time.Minute},
		{Op: lease.OpExtend, Key: lease.Key{Namespace: "ns", Group: "g", Name: "absent"}, Holder: "u/0", Duration: time.Minute},
		{Op: lease.OpClaim, Key: lease.Key{Namespace: "ns", Group: "g", Name: "bad name"}, Holder: "u/0", Duration: time.Minute},
		// Above the absolute cap (a renewal above max_duration is clamped).
		{Op: lease.OpClaim, Key: key, Holder: "u/0", Duration: 25 * time.Hour},
		{Op: lease.OpPin, Key: key, Holder: "admin"},
	})
	if err != nil || len(res) != 6 {
		t.Fatalf("bulk: %v %d", err, len(res))
	}
	if res[0].Err != nil || res[0].Result.Outcome != lease.OutcomeGranted {
		t.Errorf("op 0: %+v", res[0])
	}
	var le *lease.Error
	if !errors.As(res[1].Err, &le) || le.Code != lease.CodeDenied || le.Holder != "someone" || le.ExpiresIn <= 0 ||
		le.Token != otherLease.Token || le.Start != otherLease.Start || le.Expiry != otherLease.Expiry || le.Now < otherLease.Now {
		t.Errorf("op 1: %#v, want the lease %+v", res[1].Err, otherLease)
	}
	if !errors.As(res[2].Err, &le) || le.Code != lease.CodeNotHeld || le.Holder != "" || le.Token != 0 || le.Now < otherLease.Now {
		t.Errorf("op 2: %#v", res[2].Err)
	}
	if !errors.As(res[3].Err, &le) || le.Code != lease.CodeInvalidArgument || le.Field != "name" {
		t.Errorf("op 3: %+v", res[3])
	}
	if !errors.As(res[4].Err, &le) || le.Field != "duration" {
		t.Errorf("op 4: %+v", res[4])
	}
	if res[5].Err != nil || res[5].Result.Outcome != lease.OutcomePinned {
		t.Errorf("op 5: %+v", res[5])
	}
	if got := c.Index(); got != before+1 {
		t.Errorf("bulk took %d entries, want 1", got-before)
	}
}

func TestInvalidArgumentWritesNothing(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{MaxBulkOps: 2}, nil)
	ctx := ctxT(t)
	wc := countWrites(c, nil)
	cases := []struct {
		field string
		call  func() error
	}{
		{"holder", func() error { _, err := cl.Claim(ctx, key, "", time.Minute); return err }},
		// Above the absolute cap: refused before the log. (Above max_duration
		// but under the cap is the state machine's call: a renewal is clamped.)
		{"duration", func() error { _, err := cl.Claim(ctx, key, "h", 25*time.Hour); return err }},
		{"duration", func() error { _, err := cl.Extend(ctx, key, "h", time.Millisecond); return err }},
		{"namespace", func() error { _, err := cl.Claim(ctx, lease.Key{Group: "g", Name: "n"}, "h", time.Minute); return err }},
		{"entity", func() error { _, err := cl.Pin(ctx, key, "has space"); return err }},
		{"ops", func() error { _, err := cl.Bulk(ctx, make([]lease.Command, 3)); return err }},
		{"name", func() error { _, _, err := cl.Get(ctx, lease.Key{Namespace: "a", Group: "b"}); return err }},
	}
	for i, tc := range cases {
		var le *lease.Error
		if err := tc.call(); !errors.As(err, &le) || le.Code != lease.CodeInvalidArgument || le.Field != tc.field {
			t.Errorf("case %d: %v, want invalid_argument on %s", i, err, tc.field)
		}
	}
	if wc.total() != 0 {
		t.Fatalf("%d writes reached the backend", wc.total())
	}
}

// TestErrorMappingEveryCode sends every code from the backend through the
// server, the wire and the client and expects the same error back.
func TestErrorMappingEveryCode(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, func(cfg *client.Config) { cfg.MaxAttempts = 1 })
	ctx := ctxT(t)
	var inject *lease.Error
	countWrites(c, func(string, []lease.Command) error { return inject })
	for code := lease.CodeDenied; code <= lease.CodeCanceled; code++ {
		inject = &lease.Error{Code: code, Message: "injected " + code.String()}
		switch code {
		case lease.CodeDenied:
			inject.Holder, inject.ExpiresIn = "other", 1500*time.Millisecond
		case lease.CodeInvalidArgument:
			inject.Field = "holder"
		case lease.CodeNotLeader:
			inject.LeaderID = "n9" // unknown: the client cannot follow it and reports it
		case lease.CodeOverloaded:
			inject.RetryAfter = 250 * time.Millisecond
		}
		_, err := cl.Claim(ctx, key, "h", time.Minute)
		var le *lease.Error
		if !errors.As(err, &le) {
			t.Fatalf("%v: not a *lease.Error: %#v", code, err)
		}
		if !errors.Is(err, &lease.Error{Code: code}) || le.Message != inject.Message || le.Holder != inject.Holder ||
			le.ExpiresIn != inject.ExpiresIn || le.Field != inject.Field || le.LeaderID != inject.LeaderID ||
			le.RetryAfter != inject.RetryAfter || le.Retryable() != code.Retryable() {
			t.Errorf("%v: got %#v, want %#v", code, le, inject)
		}
	}
}
