package web

import (
	"context"
	"testing"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// scriptedWatcher answers each Watch call with the next step: events to
// send, then an error to end with.
type scriptedWatcher struct {
	froms []uint64
	steps []watchStep
	done  func()
}

type watchStep struct {
	events []lease.Event
	err    error
}

func (w *scriptedWatcher) Watch(ctx context.Context, from uint64, _ grpcserver.WatchFilter, send func(uint64, []lease.Event) error) error {
	w.froms = append(w.froms, from)
	if len(w.steps) == 0 {
		w.done()
		<-ctx.Done()
		return ctx.Err()
	}
	st := w.steps[0]
	w.steps = w.steps[1:]
	send(from, nil)
	if len(st.events) > 0 {
		send(st.events[len(st.events)-1].Index, st.events)
	}
	return st.err
}

// TestHistoryRunResumes: a watch ended for falling behind resumes after the
// last event recorded; one refused as too old starts afresh and counts a gap.
func TestHistoryRunResumes(t *testing.T) {
	k := lease.Key{Namespace: "n", Group: "g", Name: "x"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &scriptedWatcher{done: cancel, steps: []watchStep{
		{events: []lease.Event{{Kind: lease.EventClaimed, Key: k, Holder: "a", Token: 1, Index: 4}, {Kind: lease.EventRevoked, Key: k, Holder: "a", Token: 1, Index: 5}},
			err: lease.Errorf(lease.CodeOverloaded, "watcher fell behind")},
		{err: &lease.Error{Code: lease.CodeCompacted, Index: 9, Message: "events before index 9 are no longer kept"}},
		{events: []lease.Event{{Kind: lease.EventClaimed, Key: k, Holder: "b", Token: 7, Index: 20}}, err: lease.Errorf(lease.CodeOverloaded, "again")},
	}}
	h := NewHistory(0, 0)
	h.Run(ctx, w)
	if want := []uint64{0, 6, 0, 21}; len(w.froms) != len(want) || w.froms[0] != 0 || w.froms[1] != 6 || w.froms[2] != 0 || w.froms[3] != 21 {
		t.Fatalf("watch started from %v, want %v", w.froms, want)
	}
	if h.Gaps() != 1 {
		t.Fatalf("gaps %d, want 1", h.Gaps())
	}
	if rows := h.Rows(k); len(rows) != 3 || rows[0].Holder != "b" || rows[2].Holder != "a" {
		t.Fatalf("rows %+v", rows)
	}
}
