// Package clock is the one time source every Leasehold component injects:
// the Raft node's replicated clock and idle tick, the admission queue's
// deadlines and the manager's renewals all read it, so a test drives them
// all with one fake (package clocktest) and a fault run skews them all with
// one rate-changing clock.
package clock

import "time"

// Clock is a monotonic clock that makes timers. Readings must come from a
// monotonic source (Now().Sub never jumps), as time.Now's do.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d from now (at once when d <= 0).
	NewTimer(d time.Duration) Timer
}

// Timer is a stoppable one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop cancels the timer; it reports whether the timer was still pending.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
