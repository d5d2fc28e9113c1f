package fsm

import (
	"bytes"
	"testing"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// Issue 12 hole 2: two leases due at the same replicated instant, with a
// claimant queued on each. A replica restored from a snapshot must release
// them, and hand out the next tokens, in the same order as a live one.
func TestExpiryTiesReleaseInKeyOrderAfterRestore(t *testing.T) {
	live := New()
	// kS sorts after kA but is granted first, so a heap ordered by expiry
	// alone keeps it on top; a restore rebuilds the heap in key order.
	live.Apply(1, &logentry.Entry{Kind: logentry.KindBatch, Time: 0, Commands: []lease.Command{
		claim(kS, "a", 10*sec), claim(kA, "a", 10*sec),
		qclaim(kS, "s-waiter", 10*sec, min), qclaim(kA, "a-waiter", 10*sec, min)}})
	restored := New()
	if err := restored.Restore(live.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	tick := &logentry.Entry{Kind: logentry.KindBatch, Time: 11 * sec}
	live.Apply(2, tick)
	restored.Apply(2, tick)
	a, _ := live.Get(kA, 0)
	s, _ := live.Get(kS, 0)
	ra, _ := restored.Get(kA, 0)
	rs, _ := restored.Get(kS, 0)
	if a.Token != ra.Token || s.Token != rs.Token {
		t.Fatalf("tokens after the tied expiry: live %v=%d %v=%d, restored %v=%d %v=%d",
			kA, a.Token, kS, s.Token, kA, ra.Token, kS, rs.Token)
	}
	// Key order: kA (app-leadership/...) is released, and re-granted, first.
	if a.Token != 3 || s.Token != 4 {
		t.Fatalf("grants not in key order: %v=%d %v=%d", kA, a.Token, kS, s.Token)
	}
	if !bytes.Equal(live.AppendSnapshot(nil), restored.AppendSnapshot(nil)) {
		t.Fatal("snapshots differ after the tied expiry")
	}
}
