package replica

import (
	"sync"
	"time"
)

// leaderClock is the replicated clock as this node reads it while it leads.
//
// A reading is valid only in the term the clock was readied for, and only
// while this node leads in it: LeaderCh coalesces notifications, so a node
// that loses and regains leadership may see a single "true" long after the
// fact, and until then a clock that merely checked a ready flag would go on
// counting from its old base (the time it did not lead included) and serve
// the new term before its barrier.
type leaderClock struct {
	clock Clock
	// leading reports Raft's current term and whether this node leads in it.
	leading func() (term uint64, leader bool)

	mu    sync.Mutex
	gen   uint64 // bumped by stop, so a stale establish cannot restart the clock
	ready bool
	term  uint64
	base  time.Duration // state machine time when this node's leadership became ready
	start time.Time     // monotonic reading at that moment
}

// stop stops the clock and returns the new generation: only runIf with
// that generation may start it again.
func (c *leaderClock) stop() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	c.gen++
	return c.gen
}

// pause stops the clock without starting a new generation and returns the
// current one with the term the clock ran for: runIf(gen, ...) restarts it
// unless leadership changed (stop was called) meanwhile.
func (c *leaderClock) pause() (gen, term uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	return c.gen, c.term
}

// runIf makes the clock run from base for term, unless it was stopped since
// generation gen was handed out (leadership changed while the term was
// being readied).
func (c *leaderClock) runIf(gen, term uint64, base time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return false
	}
	c.ready, c.term, c.base, c.start = true, term, base, c.clock.Now()
	return true
}

// now reads the clock. ok is false unless the clock was readied (its term's
// barrier completed) for Raft's current term and this node still leads in
// that term.
func (c *leaderClock) now() (t time.Duration, term uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return 0, 0, false
	}
	if cur, leader := c.leading(); cur != c.term || !leader {
		return 0, 0, false
	}
	return c.base + c.clock.Now().Sub(c.start), c.term, true
}
