package replica

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/clock/clocktest"
)

// raftView is a settable stand-in for Raft's term and role.
type raftView struct {
	term   uint64
	leader bool
}

func (v *raftView) leading() (uint64, bool) { return v.term, v.leader }

func newTestClock(v *raftView) (*leaderClock, *clocktest.Fake) {
	fc := newFakeClock()
	return &leaderClock{clock: fc, leading: v.leading}, fc
}

// A leadership readied after the clock was stopped again (leadership lost
// while the barrier ran) must not start the clock.
func TestStaleEstablishCannotStartClock(t *testing.T) {
	v := &raftView{term: 1, leader: true}
	c, _ := newTestClock(v)
	gen := c.stop() // became leader
	stale := gen
	c.stop() // lost leadership before establish finished
	if c.runIf(stale, 1, time.Second) {
		t.Fatal("stale generation started the clock")
	}
	if _, _, ok := c.now(); ok {
		t.Fatal("clock ready after a stale establish")
	}
	v.term = 2
	gen = c.stop()
	if !c.runIf(gen, 2, time.Second) {
		t.Fatal("current generation did not start the clock")
	}
	if now, term, ok := c.now(); !ok || term != 2 || now != time.Second {
		t.Fatalf("now=%v term=%d ok=%v", now, term, ok)
	}
}

// The clock reads only in the term it was readied for, while this node
// leads in it, whatever the watcher has or has not seen yet.
func TestClockReadsOnlyInItsTerm(t *testing.T) {
	v := &raftView{term: 3, leader: true}
	c, fc := newTestClock(v)
	if !c.runIf(c.stop(), 3, 10*time.Second) {
		t.Fatal("clock did not start")
	}
	fc.Advance(time.Second)
	if now, _, ok := c.now(); !ok || now != 11*time.Second {
		t.Fatalf("now=%v ok=%v, want 11s", now, ok)
	}
	v.leader = false // stepped down in the same term
	if _, _, ok := c.now(); ok {
		t.Fatal("clock read by a follower")
	}
	v.term, v.leader = 5, true // leads again, in a later term
	fc.Advance(time.Hour)
	if now, _, ok := c.now(); ok {
		t.Fatalf("term 3's clock read in term 5: %v", now)
	}
}

// A paused clock restarts only if leadership did not change meanwhile.
func TestPausedClockRestartsOnlyInItsGeneration(t *testing.T) {
	v := &raftView{term: 1, leader: true}
	c, _ := newTestClock(v)
	c.runIf(c.stop(), 1, 0)
	gen, term := c.pause()
	if _, _, ok := c.now(); ok || term != 1 {
		t.Fatalf("paused clock readable (term %d)", term)
	}
	c.stop() // leadership changed while paused
	if c.runIf(gen, term, time.Minute) {
		t.Fatal("paused clock restarted across a leadership change")
	}
	gen, term = c.pause()
	if !c.runIf(gen, term, time.Minute) {
		t.Fatal("paused clock did not restart")
	}
	if now, _, ok := c.now(); !ok || now != time.Minute {
		t.Fatalf("now=%v ok=%v", now, ok)
	}
}
