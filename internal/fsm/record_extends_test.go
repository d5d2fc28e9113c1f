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
