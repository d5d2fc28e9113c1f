package faults

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Watchers: a watch opened at StartIndex s promises every event of every
// entry from s on, in log order, none twice, across broken streams and
// server restarts (the client resumes from the last index delivered + 1).
// Replicated time never decreases along the log, so a grant a client saw
// applied at a replicated time strictly between a segment's first and last
// events' times was applied by an entry inside the segment's span, and
// must be among its Claimed events (same key and token): a resume that
// skipped entries shows up as a grant the watcher never saw.

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

// span returns the segment's first and last events.
func (s *WatchSegment) span() (first, last lease.Event, ok bool) {
	for _, b := range s.Batches {
		for _, e := range b {
			if !ok {
				first, ok = e, true
			}
			last = e
		}
	}
	return first, last, ok
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
		first, last, ok := s.span()
		if !ok {
			continue
		}
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
			if !g.Fresh || g.Start <= first.Now || g.Start >= last.Now || claimed[g.Key][g.Token] || seen[[2]any{g.Key, g.Token}] {
				continue
			}
			seen[[2]any{g.Key, g.Token}] = true
			out = append(out, fmt.Sprintf("watcher %d delivered indices %d..%d (replicated %v..%v) but not the grant of %s token %d to %s at replicated %v (op #%d, %s); its events of the key nearby: %s",
				s.Watcher, first.Index, last.Index, first.Now, last.Now, g.Key, g.Token, g.Holder, g.Start, g.Op, g.Via, nearby(s, g.Key, g.Start)))
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

// nearby lists the segment's events of key k within 2 s of replicated time at.
func nearby(s WatchSegment, k lease.Key, at time.Duration) string {
	var b []string
	for _, bt := range s.Batches {
		for _, e := range bt {
			if e.Key == k && e.Now+2*time.Second >= at && e.Now <= at+2*time.Second {
				b = append(b, fmt.Sprintf("%s %s token %d at index %d replicated %v", e.Kind, e.Holder, e.Token, e.Index, e.Now))
			}
		}
	}
	return "[" + strings.Join(b, ", ") + "]"
}
