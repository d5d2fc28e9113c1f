// Package clocktest provides the fake clock every package's tests use.
package clocktest

import (
	"slices"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/clock"
)

// Fake is a clock that moves only when a test advances it; its timers fire
// as Advance passes their deadlines. A Fake never advanced is a frozen
// clock whose timers (with d > 0) never fire.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	started []time.Duration
	notify  chan struct{}
}

var _ clock.Clock = (*Fake)(nil)

type timer struct {
	c    *Fake
	at   time.Time
	ch   chan time.Time
	done bool // fired or stopped
}

// New returns a fake clock reading start.
func New(start time.Time) *Fake { return &Fake{now: start} }

// Notify makes every NewTimer send on ch without blocking (a test waiting
// for a timer to be armed selects on it instead of sleeping).
func (c *Fake) Notify(ch chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notify = ch
}

func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Fake) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.started = append(c.started, d)
	if d <= 0 {
		t.done = true
		t.ch <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	if c.notify != nil {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	return t
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Advance moves the clock on by d and fires the timers due, earliest
// first, each with its deadline.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	slices.SortStableFunc(c.timers, func(a, b *timer) int { return a.at.Compare(b.at) })
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			t.ch <- t.at
		default:
			keep = append(keep, t)
		}
	}
	clear(c.timers[len(keep):])
	c.timers = keep
}

// Pending is the number of live timers.
func (c *Fake) Pending() int { return c.PendingWithin(-1) }

// PendingWithin is the number of live timers due within d (any, if d < 0).
func (c *Fake) PendingWithin(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done && (d < 0 || !t.at.After(c.now.Add(d))) {
			n++
		}
	}
	return n
}

// Next is the instant the earliest live timer fires (ok false if none).
func (c *Fake) Next() (at time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.done && (!ok || t.at.Before(at)) {
			at, ok = t.at, true
		}
	}
	return at, ok
}

// Started is the duration of every timer made so far, in order.
func (c *Fake) Started() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.started)
}
