package faults

import (
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/clock"
)

// Clock is a clock.Clock whose rate and offset can be changed: a model
// of a faulty monotonic clock on one server. It reads
//
//	virtual = anchorV + rate * (real - anchorR)
//
// and Jump moves the virtual reading at once. A real monotonic clock never
// jumps, and Go's time.Since uses the monotonic reading, so a wall-clock
// step (NTP, an operator's date -s) cannot reach the replicated clock at
// all; a jump here stands for a clock that is broken in ways Go cannot see
// (a VM whose monotonic clock leaps after a migration). Times it returns are
// base+virtual, with base a real time carrying a monotonic reading, so
// Since(t) = virtual(now) - virtual(t) for any t it returned.
type Clock struct {
	mu      sync.Mutex
	base    time.Time
	anchorR time.Time
	anchorV time.Duration
	rate    float64
	jumped  time.Duration // sum of forward jumps (bounds the checker's deadline estimate)
}

// NewClock returns a clock that runs at the real rate.
func NewClock() *Clock {
	now := time.Now()
	return &Clock{base: now, anchorR: now, rate: 1}
}

func (c *Clock) virtual() time.Duration {
	return c.anchorV + time.Duration(c.rate*float64(time.Since(c.anchorR)))
}

// Now implements clock.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.virtual())
}

// NewTimer implements clock.Clock with a real timer: a skewed clock skews
// the readings the replicated clock takes, not how long the idle tick
// sleeps (which only re-reads the clock when it wakes).
func (c *Clock) NewTimer(d time.Duration) clock.Timer { return clock.Real{}.NewTimer(d) }

// SetRate makes the clock run rate times as fast as real time from now on.
func (c *Clock) SetRate(rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.anchorV, c.anchorR, c.rate = c.virtual(), time.Now(), rate
}

// Jump moves the clock by d (negative: backwards).
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.anchorV, c.anchorR = c.virtual()+d, time.Now()
	if d > 0 {
		c.jumped += d
	}
}

// Jumped is the sum of forward jumps so far.
func (c *Clock) Jumped() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jumped
}
