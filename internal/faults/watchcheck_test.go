package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// ev is an event at index idx, applied at replicated idx seconds.
func ev(kind lease.EventKind, idx uint64, tok uint64) lease.Event {
	return lease.Event{Kind: kind, Key: tk, Holder: "h", Token: tok, Index: idx, Now: time.Duration(idx) * time.Second}
}

func fresh(op int, tok uint64, at uint64, via Via) GrantSeen {
	return GrantSeen{Op: op, Key: tk, Holder: "h", Token: tok, Via: via, Fresh: true, Start: time.Duration(at) * time.Second}
}

func TestCheckWatchComplete(t *testing.T) {
	segs := []WatchSegment{{Watcher: 1, From: 10, Batches: [][]lease.Event{
		{ev(lease.EventClaimed, 12, 3)}, {ev(lease.EventExtended, 14, 3), ev(lease.EventRevoked, 14, 3)},
		{ev(lease.EventClaimed, 17, 4)}, {ev(lease.EventRevoked, 25, 4)},
	}}}
	grants := []GrantSeen{
		fresh(1, 3, 12, ViaClaim),
		fresh(2, 4, 17, ViaClaim), // tokens are not indices
		fresh(3, 1, 5, ViaClaim),  // before the watch
		fresh(4, 9, 30, ViaClaim), // after its last event
		{Op: 5, Key: tk, Holder: "h", Token: 7, Via: ViaExtend, Start: 13 * time.Second}, // an extension: no Claimed event
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
	grants := []GrantSeen{fresh(7, 16, 16, ViaClaim)}
	v := CheckWatch(segs, grants)
	if len(v) != 1 || !strings.Contains(v[0], "token 16") {
		t.Fatalf("want the lost grant at 16, got %v", v)
	}
	segs[0].Batches = append(segs[0].Batches, []lease.Event{ev(lease.EventRevoked, 14, 12)})
	if v := CheckWatch(segs, nil); len(v) != 1 || !strings.Contains(v[0], "repeated") {
		t.Fatalf("want the repeated batch, got %v", v)
	}
}
