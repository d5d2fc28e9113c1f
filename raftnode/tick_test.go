package raftnode

import (
	"testing"
	"time"
)

// The idle tick runs on the injected clock: advancing a test's clock by a
// tick interval makes an idle leader propose a tick, which advances
// replicated time, with no real time passing.
func TestTickDrivenByInjectedClock(t *testing.T) {
	tc := newTestCluster(t, 1, func(_ int, c *Config) { c.TickInterval = time.Hour })
	l := tc.leader()
	start := replicatedTime(l)
	for i := 1; i <= 3; i++ {
		tc.clocks[0].Advance(time.Hour)
		want := start + time.Duration(i)*time.Hour
		waitFor(t, "a tick on the injected clock", func() bool { return replicatedTime(l) >= want })
	}
}
