package faults

import (
	"strings"
	"testing"

	"github.com/leasehold/leasehold/lease"
)

func ev(kind lease.EventKind, idx uint64, tok uint64) lease.Event {
	return lease.Event{Kind: kind, Key: tk, Holder: "h", Token: tok, Index: idx}
}

func TestCheckWatchComplete(t *testing.T) {
	segs := []WatchSegment{{Watcher: 1, From: 10, Batches: [][]lease.Event{
		{ev(lease.EventClaimed, 12, 12)}, {ev(lease.EventExtended, 14, 12), ev(lease.EventRevoked, 14, 12)}, {ev(lease.EventClaimed, 20, 20)},
	}}}
	grants := []GrantSeen{
		{Op: 1, Key: tk, Holder: "h", Token: 12, Via: ViaClaim},
		{Op: 2, Key: tk, Holder: "h", Token: 20, Via: ViaStream},
		{Op: 3, Key: tk, Holder: "h", Token: 5, Via: ViaClaim},  // before the watch
		{Op: 4, Key: tk, Holder: "h", Token: 30, Via: ViaClaim}, // after its last event
	}
	if v := CheckWatch(segs, grants); len(v) != 0 {
		t.Fatalf("complete watch reported: %v", v)
	}
}

// The planted bugs: a resume that skipped entries (the grant at 16 is
// missing between events at 14 and 20), and a resume that replayed a batch.
func TestCheckWatchCatchesLostAndRepeatedEvents(t *testing.T) {
	segs := []WatchSegment{{Watcher: 1, From: 10, Batches: [][]lease.Event{
		{ev(lease.EventClaimed, 12, 12)}, {ev(lease.EventRevoked, 14, 12)}, {ev(lease.EventClaimed, 20, 20)},
	}}}
	grants := []GrantSeen{{Op: 7, Key: tk, Holder: "h2", Token: 16, Via: ViaStream}}
	v := CheckWatch(segs, grants)
	if len(v) != 1 || !strings.Contains(v[0], "token 16") {
		t.Fatalf("want the lost grant at 16, got %v", v)
	}
	segs[0].Batches = append(segs[0].Batches, []lease.Event{ev(lease.EventRevoked, 14, 12)})
	if v := CheckWatch(segs, nil); len(v) != 1 || !strings.Contains(v[0], "repeated") {
		t.Fatalf("want the repeated batch, got %v", v)
	}
}
