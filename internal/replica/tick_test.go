package replica

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
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

// An idle leader proposes just after the earliest lease expiry, not a whole
// tick interval later: with a 20-minute tick, a 3-minute lease claimed
// while the tick sleeps (the apply wakes it) is expired once the injected
// clock passes its expiry, with replicated time far short of the tick.
func TestTickProposesAtNextExpiry(t *testing.T) {
	const interval, d = 20 * time.Minute, 3 * time.Minute
	tc := newTestCluster(t, 1, func(_ int, c *Config) { c.TickInterval = interval })
	l := tc.leader()
	start := replicatedTime(l)
	p, err := l.Propose([]lease.Command{claimCmd("h", d)})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if res, err := p.Result(); err != nil || res[0].Code != lease.CodeOK {
		t.Fatalf("claim: %+v %v", res, err)
	}
	held := func() bool {
		var ok bool
		l.sm.read(func(m *fsm.Machine) { _, ok = m.NextExpiry() })
		return ok
	}
	if !held() {
		t.Fatal("lease not held after the claim")
	}
	tc.clocks[0].Advance(d + time.Second)
	waitFor(t, "the lease to expire", func() bool { return !held() })
	if got := replicatedTime(l) - start; got >= interval {
		t.Fatalf("expired at replicated +%v: by an interval tick, not at its expiry", got)
	}
}
