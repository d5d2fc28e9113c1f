package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

const ms = time.Millisecond

var tk = lease.Key{Namespace: "faults", Group: "w", Name: "k0"}

func grantSeen(op int, holder string, token uint64, via Via, call, ret, remaining time.Duration) GrantSeen {
	return GrantSeen{Op: op, Key: tk, Holder: holder, Token: token, Via: via, Call: call, Return: ret, Remaining: remaining}
}

// A correct handover: h1's unary grant for 1 s (called at 0, answered at
// 10 ms) is believed until 1 s; h2's stream is granted after h1's lease
// ran out. No overlap.
func TestTenuresCleanHandover(t *testing.T) {
	gs := []GrantSeen{
		grantSeen(1, "h1", 5, ViaClaim, 0, 10*ms, time.Second),
		grantSeen(2, "h2", 9, ViaStream, 500*ms, 1020*ms, time.Second),
	}
	if v := CheckTenures(Beliefs(gs, nil, Bounds{})); len(v) != 0 {
		t.Fatalf("clean handover reported: %v", v)
	}
}

// The planted bug: a stream reports a grant to h2 while h1 still holds
// by a unary claim (what server/wait.go's revoke-by-holder can produce,
// or a replica that dropped h1's grant). The check must name both.
func TestTenuresCatchStreamGrantOverlappingUnaryGrant(t *testing.T) {
	gs := []GrantSeen{
		grantSeen(1, "h1", 5, ViaClaim, 0, 10*ms, 2*time.Second),
		grantSeen(2, "h2", 9, ViaStream, 300*ms, 1200*ms, 2*time.Second),
	}
	v := CheckTenures(Beliefs(gs, nil, Bounds{}))
	if len(v) != 1 {
		t.Fatalf("want 1 violation, got %v", v)
	}
	if v[0].Overlap != 800*ms || v[0].A.Holder != "h1" || v[0].B.Via != ViaStream {
		t.Fatalf("wrong violation: %v", v[0])
	}
	if s := v[0].String(); !strings.Contains(s, "by stream") || !strings.Contains(s, "by claim") {
		t.Fatalf("message does not say how each grant was seen: %s", s)
	}
}

// A holder's own revoke ends its belief at the revoke's call, so the next
// holder's grant right after is fine; without the revoke it overlaps.
func TestTenuresOwnRevokeEndsBelief(t *testing.T) {
	gs := []GrantSeen{
		grantSeen(1, "h1", 5, ViaClaim, 0, 10*ms, 2*time.Second),
		grantSeen(2, "h2", 9, ViaClaim, 400*ms, 450*ms, time.Second),
	}
	rv := []RevokeCall{{Key: tk, Holder: "h1", Call: 300 * ms}}
	if v := CheckTenures(Beliefs(gs, rv, Bounds{})); len(v) != 0 {
		t.Fatalf("revoked belief still counted: %v", v)
	}
	// Another holder's revoke, or h1's revoke of another key, does not end it.
	rv = []RevokeCall{{Key: tk, Holder: "h3", Call: 300 * ms}, {Key: Key(0), Holder: "h1", Call: 300 * ms}}
	if v := CheckTenures(Beliefs(gs, rv, Bounds{})); len(v) != 1 {
		t.Fatalf("want the overlap, got %v", v)
	}
	// A revoke called before the grant's call does not end it either.
	rv = []RevokeCall{{Key: tk, Holder: "h1", Call: 0}}
	if v := CheckTenures(Beliefs(gs, rv, Bounds{})); len(v) != 1 {
		t.Fatalf("an earlier revoke cut a later grant: %v", v)
	}
}

// Extends by the same holder never conflict with each other; the belief
// ends at call + remaining, shortened by the clock bounds.
func TestTenuresBounds(t *testing.T) {
	gs := []GrantSeen{
		grantSeen(1, "h1", 5, ViaClaim, 0, 10*ms, time.Second),
		grantSeen(2, "h1", 5, ViaExtend, 200*ms, 210*ms, time.Second),
		grantSeen(3, "h2", 9, ViaClaim, 900*ms, 1000*ms, time.Second),
	}
	if v := CheckTenures(Beliefs(gs, nil, Bounds{})); len(v) != 1 || v[0].A.Op != 2 || v[0].Overlap != 200*ms {
		t.Fatalf("want op 2 (believed to 1.2 s) overlapping op 3 by 200ms, got %v", v)
	}
	// Under a clock running 1.25x the extend is only believed to 1 s.
	if v := CheckTenures(Beliefs(gs, nil, Bounds{Rate: 1.25})); len(v) != 0 {
		t.Fatalf("rate bound not applied: %v", v)
	}
	if v := CheckTenures(Beliefs(gs, nil, Bounds{Jump: 200 * ms})); len(v) != 0 {
		t.Fatalf("jump bound not applied: %v", v)
	}
}

// The planted bug: WaitUntilReleased reports a release (from a stale,
// buffered event) while h1 holds the key from before the call to after the
// return. A release the holder's own revoke caused, or one while nobody
// was believed to hold, is fine.
func TestReleasesCatchReleaseWhileHeld(t *testing.T) {
	gs := []GrantSeen{grantSeen(1, "h1", 5, ViaClaim, 0, 10*ms, 2*time.Second)}
	bad := ReleaseSeen{Key: tk, Call: 100 * ms, Return: 300 * ms}
	v := CheckReleases(Beliefs(gs, nil, Bounds{}), []ReleaseSeen{bad})
	if len(v) != 1 || v[0].Held.Op != 1 || !strings.Contains(v[0].String(), "reported a release") {
		t.Fatalf("want the false release, got %v", v)
	}
	revoked := Beliefs(gs, []RevokeCall{{Key: tk, Holder: "h1", Call: 200 * ms}}, Bounds{})
	after := ReleaseSeen{Key: tk, Call: 2100 * ms, Return: 2200 * ms}
	if v := CheckReleases(revoked, []ReleaseSeen{bad, after}); len(v) != 0 {
		t.Fatalf("true releases reported: %v", v)
	}
}
