package clocktest

import (
	"testing"
	"time"
)

func TestFakeFiresDueTimersInOrder(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	c := New(start)
	late, early, stopped := c.NewTimer(3*time.Second), c.NewTimer(time.Second), c.NewTimer(2*time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report pending once")
	}
	if got := c.Pending(); got != 2 {
		t.Fatalf("pending %d, want 2", got)
	}
	if got := c.PendingWithin(time.Second); got != 1 {
		t.Fatalf("pending within 1s %d, want 1", got)
	}
	if at, ok := c.Next(); !ok || !at.Equal(start.Add(time.Second)) {
		t.Fatalf("next %v %v", at, ok)
	}
	c.Advance(2 * time.Second)
	select {
	case at := <-early.C():
		if !at.Equal(start.Add(time.Second)) {
			t.Fatalf("fired with %v, want its deadline", at)
		}
	default:
		t.Fatal("due timer did not fire")
	}
	select {
	case <-late.C():
		t.Fatal("timer fired early")
	case <-stopped.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if early.Stop() {
		t.Fatal("Stop of a fired timer reported pending")
	}
	if got := c.Started(); len(got) != 3 || got[0] != 3*time.Second {
		t.Fatalf("started %v", got)
	}
	if <-c.NewTimer(0).C(); c.Pending() != 1 {
		t.Fatal("a zero timer must fire at once and not stay pending")
	}
}
