package grpcserver

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/leasehold/leasehold/lease"
)

// TestEventLogMatchesSlice drives eventLog with random appends, drops and
// resets against a plain slice, and checks that every view taken along the
// way still reads what it read when taken (readers hold views outside the
// hub's lock while publishes and trims go on).
func TestEventLogMatchesSlice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := newEventLog(rapid.IntRange(1, 3000).Draw(t, "window"))
		var model []lease.Event
		next := uint64(1)
		type held struct {
			v    eventView
			want []uint64
		}
		var views []held
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2, 3, 4:
				evs := make([]lease.Event, rapid.IntRange(1, 300).Draw(t, "n"))
				for i := range evs {
					evs[i] = lease.Event{Index: next}
					next++
				}
				l.append(evs)
				model = append(model, evs...)
			case 5, 6:
				if len(model) > 0 {
					k := rapid.IntRange(1, len(model)).Draw(t, "drop")
					l.drop(k)
					model = model[k:]
				}
			case 7:
				l.reset()
				model = nil
			default:
				from := rapid.IntRange(0, len(model)).Draw(t, "from")
				h := held{v: l.view(from)}
				for _, e := range model[from:] {
					h.want = append(h.want, e.Index)
				}
				views = append(views, h)
			}
			if l.n != len(model) {
				t.Fatalf("step %d: %d events kept, want %d", step, l.n, len(model))
			}
			for i := range model {
				if got := l.at(i).Index; got != model[i].Index {
					t.Fatalf("step %d: at(%d) = %d, want %d", step, i, got, model[i].Index)
				}
			}
			if l.off >= l.size || len(l.chunks) > (l.off+l.n)/l.size+1 {
				t.Fatalf("step %d: %d chunks kept for %d events at offset %d (size %d)", step, len(l.chunks), l.n, l.off, l.size)
			}
			for j, h := range views {
				if h.v.len() != len(h.want) {
					t.Fatalf("step %d: view %d has %d events, want %d", step, j, h.v.len(), len(h.want))
				}
				for i, w := range h.want {
					if got := h.v.at(i).Index; got != w {
						t.Fatalf("step %d: view %d at(%d) = %d, want %d", step, j, i, got, w)
					}
				}
			}
		}
	})
}
