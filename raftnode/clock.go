package raftnode

import (
	"sync"
	"time"
)

// leaderClock is the replicated clock as this node reads it while it leads.
type leaderClock struct {
	clock Clock

	mu    sync.Mutex
	gen   uint64 // bumped by stop, so a stale establish cannot restart the clock
	ready bool
	term  uint64
	base  time.Duration // state machine time when this node's leadership became ready
	start time.Time     // monotonic reading at that moment
}

// start makes the clock run from base for the given term.
func (c *leaderClock) run(term uint64, base time.Duration) {
	c.mu.Lock()
	c.ready, c.term, c.base, c.start = true, term, base, c.clock.Now()
	c.mu.Unlock()
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

// runIf starts the clock like run, unless it was stopped since generation
// gen was handed out (leadership changed while the term was being readied).
func (c *leaderClock) runIf(gen, term uint64, base time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return false
	}
	c.ready, c.term, c.base, c.start = true, term, base, c.clock.Now()
	return true
}

// now reads the clock; ok is false unless this node is a ready leader.
func (c *leaderClock) now() (t time.Duration, term uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return 0, 0, false
	}
	return c.base + c.clock.Since(c.start), c.term, true
}
