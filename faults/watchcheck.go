package faults

import (
	"fmt"
	"sync"

	"github.com/leasehold/leasehold/lease"
)

// Watchers: a watch opened at StartIndex s promises every event of every
// entry from s on, in log order, none twice, across broken streams and
// server restarts (the client resumes from the last index delivered + 1).
// A grant's fencing token is the index of the entry that granted it, so
// every grant a client saw whose token lies in a watch segment's span must
// be among that segment's Claimed events: a resume that skipped entries
// shows up as a grant the watcher never saw.

// WatchSegment is what one watch delivered, from its start to its end.
type WatchSegment struct {
	Watcher int
	// From is the StartIndex the watch was opened at: one past the applied
	// index of a linearizable read made just before.
	From uint64
	// Batches are the batches Next returned, in order.
	Batches [][]lease.Event
	// End says why the segment ended (the error of Next; "" if the load stopped).
	End string
}

// last is the highest index the segment delivered (0 if none).
func (s *WatchSegment) last() uint64 {
	for i := len(s.Batches) - 1; i >= 0; i-- {
		if b := s.Batches[i]; len(b) > 0 {
			return b[len(b)-1].Index
		}
	}
	return 0
}

// CheckWatch checks the segments' order and completeness against the
// grants the clients saw. It is a pure function of its input.
func CheckWatch(segs []WatchSegment, grants []GrantSeen) []string {
	var out []string
	for _, s := range segs {
		var prev uint64
		for bi, b := range s.Batches {
			for ei, e := range b {
				switch {
				case e.Index < s.From:
					out = append(out, fmt.Sprintf("watcher %d (from %d): event %s %s at index %d is before its start", s.Watcher, s.From, e.Kind, e.Key, e.Index))
				case ei == 0 && bi > 0 && e.Index <= prev:
					out = append(out, fmt.Sprintf("watcher %d (from %d): batch %d starts at index %d, not after the previous batch's %d (repeated or reordered)", s.Watcher, s.From, bi, e.Index, prev))
				case e.Index < prev:
					out = append(out, fmt.Sprintf("watcher %d (from %d): index %d after %d in one batch", s.Watcher, s.From, e.Index, prev))
				}
				prev = max(prev, e.Index)
			}
		}
		last := s.last()
		claimed := map[lease.Key]map[uint64]bool{}
		for _, b := range s.Batches {
			for _, e := range b {
				if e.Kind == lease.EventClaimed {
					if claimed[e.Key] == nil {
						claimed[e.Key] = map[uint64]bool{}
					}
					claimed[e.Key][e.Token] = true
				}
			}
		}
		seen := map[[2]any]bool{}
		for _, g := range grants {
			if g.Token < s.From || g.Token > last || claimed[g.Key][g.Token] || seen[[2]any{g.Key, g.Token}] {
				continue
			}
			seen[[2]any{g.Key, g.Token}] = true
			out = append(out, fmt.Sprintf("watcher %d delivered indices %d..%d but not the grant of %s token %d to %s (op #%d, %s)",
				s.Watcher, s.From, last, g.Key, g.Token, g.Holder, g.Op, g.Via))
		}
	}
	return out
}

type watchLog struct {
	mu   sync.Mutex
	segs []WatchSegment
}

func (l *watchLog) add(s WatchSegment) {
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
}

func (l *watchLog) all() []WatchSegment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]WatchSegment(nil), l.segs...)
}
