package replica

import (
	"math"
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

func TestTickWait(t *testing.T) {
	const iv = 10 * time.Second
	none := int64(math.MaxInt64)
	for _, tc := range []struct {
		name       string
		idle, now  time.Duration
		nextExpiry int64
		want       time.Duration
	}{
		{"just proposed, nothing held", 0, 100 * time.Second, none, iv},
		{"idle part of an interval", 4 * time.Second, 100 * time.Second, none, 6 * time.Second},
		{"idle exactly an interval", iv, 100 * time.Second, none, 0},
		// A leader elected after a quiet spell (or woken after its timer
		// was due) ticks at once, not a whole interval later.
		{"idle longer than an interval", 3 * iv, 100 * time.Second, none, 0},
		{"expiry before the interval", 0, 100 * time.Second, int64(103 * time.Second), 3*time.Second + 1},
		{"expiry due, within the gap", 0, 100 * time.Second, int64(99 * time.Second), iv / 10},
		{"expiry due, past the gap", iv / 10, 100 * time.Second, int64(99 * time.Second), 0},
		{"expiry after the interval", 0, 100 * time.Second, int64(200 * time.Second), iv},
	} {
		if got := tickWait(iv, tc.idle, tc.now, tc.nextExpiry); got != tc.want {
			t.Errorf("%s: tickWait = %v, want %v", tc.name, got, tc.want)
		}
	}
}
