package raftnode

import (
	"testing"
	"time"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                  { return c.t }
func (c fixedClock) Since(t time.Time) time.Duration { return c.t.Sub(t) }

// A leadership readied after the clock was stopped again (leadership lost
// while the barrier ran) must not start the clock.
func TestStaleEstablishCannotStartClock(t *testing.T) {
	c := &leaderClock{clock: fixedClock{time.Unix(100, 0)}}
	gen := c.stop() // became leader
	stale := gen
	c.stop() // lost leadership before establish finished
	if c.runIf(stale, 1, time.Second) {
		t.Fatal("stale generation started the clock")
	}
	if _, _, ok := c.now(); ok {
		t.Fatal("clock ready after a stale establish")
	}
	gen = c.stop()
	if !c.runIf(gen, 2, time.Second) {
		t.Fatal("current generation did not start the clock")
	}
	if now, term, ok := c.now(); !ok || term != 2 || now != time.Second {
		t.Fatalf("now=%v term=%d ok=%v", now, term, ok)
	}
}
