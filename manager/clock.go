package manager

import "github.com/leasehold/leasehold/internal/clock"

// Clock is the manager's time source: monotonic readings and timers. It is
// the one clock interface every Leasehold component injects.
type Clock = clock.Clock

// Timer is a stoppable one-shot timer.
type Timer = clock.Timer

// SystemClock is the real clock.
type SystemClock = clock.Real
