package faults

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/lease"
)

// A stale read from a lagging replica answers with that replica's old
// applied time; it must not tighten the deadline bound of later writes
// (found by the long leader-kill run: a restarted follower's stale reads
// made correct histories look like applies after the deadline).
func TestFillDeadlinesIgnoresStaleReads(t *testing.T) {
	s := time.Second
	ops := []linearize.Operation{
		// A write answered at replicated 0.5 s, called at real 1 s.
		{ID: 0, Call: int64(1 * s), Return: int64(1*s + 10*time.Millisecond), Returned: true,
			Input:  linearize.Input{Kind: linearize.KindClaim, Holder: "h"},
			Output: linearize.Output{Code: lease.CodeOK, Now: 500 * time.Millisecond}},
		// A stale read at real 2 s from a replica still at replicated 0.1 s.
		{ID: 1, Call: int64(2 * s), Return: int64(2*s + time.Millisecond), Returned: true,
			Input:  linearize.Input{Kind: linearize.KindGet, Stale: true},
			Output: linearize.Output{Code: lease.CodeOK, Now: 100 * time.Millisecond}},
		// A write called at real 3 s whose client deadline is real 5 s.
		{ID: 2, Call: int64(3 * s), Input: linearize.Input{Kind: linearize.KindExtend, Holder: "h"}},
	}
	h := &History{dl: map[int]int64{2: int64(5 * s)}}
	FillDeadlines(ops, h, Bounds{Rate: 1})
	// Replicated time at real 5 s is at most 0.5 s + (5 s - 1 s) = 4.5 s.
	want := 4500*time.Millisecond + deadlineSlack
	if got := ops[2].Input.Deadline; got != want {
		t.Fatalf("deadline bound %v, want %v (a stale read must not tighten it)", got, want)
	}
}
