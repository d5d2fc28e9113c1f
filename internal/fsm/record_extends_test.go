package fsm

import (
	"reflect"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// With extends left out, a machine records every other event as before,
// and its results are those of a twin recording everything: recording
// decides nothing.
func TestRecordExtendsOff(t *testing.T) {
	all, lean := newHarness(t), newHarness(t)
	lean.m.RecordExtends(false)
	var kinds [2][]lease.EventKind
	steps := []struct {
		at   time.Duration
		cmds []lease.Command
	}{
		{sec, []lease.Command{claim(kA, "u/0", 10*sec), claim(kB, "u/1", 2*sec)}},
		{2 * sec, []lease.Command{extend(kA, "u/0", 20*sec), claim(kA, "u/0", 30*sec)}},
		{3 * sec, []lease.Command{revoke(kA, "u/0")}},
		{10 * sec, nil}, // kB expires
	}
	for _, st := range steps {
		var prev []lease.Result
		for i, h := range []*harness{all, lean} {
			res := h.apply(st.at, st.cmds...)
			if i == 1 && !reflect.DeepEqual(res, prev) {
				t.Fatalf("at %v: results %v without extends, %v with", st.at, res, prev)
			}
			prev = res
			for _, e := range h.m.TakeEvents() {
				kinds[i] = append(kinds[i], e.Kind)
			}
		}
	}
	want := []lease.EventKind{lease.EventClaimed, lease.EventClaimed, lease.EventRevoked, lease.EventExpired}
	if !reflect.DeepEqual(kinds[1], want) {
		t.Fatalf("events without extends: %v, want %v", kinds[1], want)
	}
	if n := len(kinds[0]); n != len(want)+2 {
		t.Fatalf("events with extends: %v, want the same plus two extends", kinds[0])
	}
}

// Every applied event is counted, recorded or not, and the counts survive a
// restored snapshot (they count this machine's applies).
func TestEventCountsWithoutRecording(t *testing.T) {
	for _, record := range []bool{false, true} {
		h := newHarness(t)
		h.m.RecordEvents(record)
		h.apply(sec, claim(kA, "u/0", 10*sec), claim(kB, "u/1", 2*sec))
		h.apply(2*sec, extend(kA, "u/0", 20*sec), pin(kA, "e"))
		h.apply(3*sec, unpin(kA, "e"), revoke(kA, "u/0"))
		h.tick(10 * sec) // kB expires
		want := EventCounts{lease.EventClaimed: 2, lease.EventExtended: 1, lease.EventRevoked: 1, lease.EventExpired: 1, lease.EventPinned: 1, lease.EventUnpinned: 1}
		if got := h.m.EventCounts(); got != want {
			t.Errorf("recording %v: counts %v, want %v", record, got, want)
		}
		if got := len(h.m.TakeEvents()); record != (got > 0) {
			t.Errorf("recording %v: %d events recorded", record, got)
		}
		snap := h.m.AppendSnapshot(nil)
		if err := h.m.Restore(snap); err != nil {
			t.Fatal(err)
		}
		if got := h.m.EventCounts(); got != want {
			t.Errorf("recording %v: counts after restore %v, want %v", record, got, want)
		}
	}
}
