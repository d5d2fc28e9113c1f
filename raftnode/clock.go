package raftnode

import (
	"sync"
	"time"
)

// leaderClock is the replicated clock as this node reads it while it leads.
type leaderClock struct {
	clock Clock

	mu    sync.Mutex
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

func (c *leaderClock) stop() {
	c.mu.Lock()
	c.ready = false
	c.mu.Unlock()
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
