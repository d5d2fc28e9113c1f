package grpcserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

func ev(idx uint64, name string) lease.Event {
	return lease.Event{Kind: lease.EventClaimed, Key: lease.Key{Namespace: "ns", Group: "g", Name: name}, Index: idx}
}

func noop(uint64, []lease.Event) error { return nil }

var errStop = errors.New("stop")

// compactedAt checks that err is CodeCompacted naming oldest.
func compactedAt(t *testing.T, what string, err error, oldest uint64) {
	t.Helper()
	var le *lease.Error
	if !errors.As(err, &le) || le.Code != lease.CodeCompacted || le.Index != oldest {
		t.Fatalf("%s: %v; want compacted with oldest index %d", what, err, oldest)
	}
}

func TestWatchHubReplayAndCompactedStart(t *testing.T) {
	h := grpcserver.NewWatchHub(3, 0)
	h.Publish([]lease.Event{ev(1, "a"), ev(2, "b"), ev(3, "a"), ev(4, "a")}) // keeps 2..4
	compactedAt(t, "start before the history", h.Watch(context.Background(), 1, grpcserver.WatchFilter{}, noop), 2)
	// Replay from 2 with a filter: the first response is the start (from-1),
	// then the matching events with the index they are current to.
	var idx []uint64
	var got []uint64
	err := h.Watch(context.Background(), 2, grpcserver.WatchFilter{Namespace: "ns", Group: "g", Name: "a"}, func(i uint64, b []lease.Event) error {
		idx = append(idx, i)
		for _, e := range b {
			got = append(got, e.Index)
		}
		if i == 4 {
			return errStop
		}
		return nil
	})
	if err != errStop || len(idx) != 2 || idx[0] != 1 || len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("err %v, indexes %v, events %v", err, idx, got)
	}
}

// TestWatchHubFirstResponseCarriesIndex: a watch from now says where it
// starts, so a break before its first event resumes there, not "from now".
func TestWatchHubFirstResponseCarriesIndex(t *testing.T) {
	h := grpcserver.NewWatchHub(0, 0)
	h.Publish([]lease.Event{ev(7, "a")})
	var first uint64
	h.Watch(context.Background(), 0, grpcserver.WatchFilter{}, func(i uint64, _ []lease.Event) error { first = i; return errStop })
	if first != 7 {
		t.Fatalf("created at %d, want 7", first)
	}
	// A restarted server's hub starts after its snapshot.
	h2 := grpcserver.NewWatchHub(0, 0)
	h2.Reset(40)
	compactedAt(t, "resume before the snapshot", h2.Watch(context.Background(), 12, grpcserver.WatchFilter{}, noop), 41)
	h2.Watch(context.Background(), 0, grpcserver.WatchFilter{}, func(i uint64, _ []lease.Event) error { first = i; return errStop })
	if first != 40 {
		t.Fatalf("created at %d after the snapshot, want 40", first)
	}
}

// TestWatchHubResetEndsWatchers: installing a snapshot ends every watcher
// with compacted; the events it skipped will never be published.
func TestWatchHubResetEndsWatchers(t *testing.T) {
	h := grpcserver.NewWatchHub(0, 0)
	h.Publish([]lease.Event{ev(1, "a")})
	registered := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- h.Watch(context.Background(), 0, grpcserver.WatchFilter{}, func(i uint64, b []lease.Event) error {
			if len(b) == 0 && i == 1 {
				close(registered)
			}
			return nil
		})
	}()
	<-registered
	h.Reset(50)
	compactedAt(t, "watcher across a snapshot install", <-done, 51)
}

// TestWatchHubSlowWatcherNeverBlocksPublish: a watcher stuck in send does
// not hold Publish up; once the history has dropped what it had not read it
// is ended with compacted.
func TestWatchHubSlowWatcherNeverBlocksPublish(t *testing.T) {
	h := grpcserver.NewWatchHub(4, 1)
	stuck := make(chan struct{})
	release := make(chan struct{})
	registered := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- h.Watch(context.Background(), 0, grpcserver.WatchFilter{}, func(_ uint64, b []lease.Event) error {
			if len(b) == 0 {
				close(registered)
			} else {
				close(stuck)
				<-release
			}
			return nil
		})
	}()
	<-registered
	h.Publish([]lease.Event{ev(1, "a")})
	<-stuck
	for i := uint64(2); i <= 100; i++ {
		h.Publish([]lease.Event{ev(i, "a")}) // must not block
	}
	// The history is trimmed off the apply path, once dispatched: wait for
	// it (a watch from 2 is then refused), then let the watcher go on.
	stop := func(uint64, []lease.Event) error { return errStop }
	for h.Watch(context.Background(), 2, grpcserver.WatchFilter{}, stop) == errStop {
		time.Sleep(time.Millisecond)
	}
	close(release)
	// Ended, naming an oldest index past what it had read (how far the
	// trim got by then depends on the dispatcher).
	var le *lease.Error
	if err := <-done; !errors.As(err, &le) || le.Code != lease.CodeCompacted || le.Index < 3 {
		t.Fatalf("slow watcher: %v; want compacted past index 2", err)
	}
}

// TestWatchHubProgressForQuietFilters: a filtered watcher whose key is
// quiet still learns how far the log went, before the history forgets.
func TestWatchHubProgressForQuietFilters(t *testing.T) {
	h := grpcserver.NewWatchHub(8, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := make(chan uint64, 100)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		h.Watch(ctx, 0, grpcserver.WatchFilter{Namespace: "ns", Group: "g", Name: "quiet"}, func(i uint64, b []lease.Event) error {
			select {
			case progress <- i:
			default:
			}
			return nil
		})
	}()
	if i := <-progress; i != 0 {
		t.Fatalf("created at %d", i)
	}
	for i := uint64(1); i <= 6; i++ {
		h.Publish([]lease.Event{ev(i, "busy")})
	}
	for i := range progress {
		if i >= 2 {
			break // told of progress before the 8-event history turned over
		}
	}
}

// TestWatchHubKeyWatcherWokenOnlyForItsKey: a watcher of one key sleeps
// through other keys' events (the dispatcher finds its key by lookup), is
// not ended for a trim of events it had nothing in, and gets its event with
// the index it is current to.
func TestWatchHubKeyWatcherWokenOnlyForItsKey(t *testing.T) {
	h := grpcserver.NewWatchHub(8, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type resp struct {
		index uint64
		n     int
	}
	got := make(chan resp, 1000)
	done := make(chan error, 1)
	defer func() { cancel(); <-done }()
	go func() {
		done <- h.Watch(ctx, 0, grpcserver.WatchFilter{Namespace: "ns", Group: "g", Name: "k"}, func(i uint64, b []lease.Event) error {
			got <- resp{i, len(b)}
			return nil
		})
	}()
	<-got // created
	for i := uint64(1); i <= 200; i++ {
		h.Publish([]lease.Event{ev(i, "other")})
	}
	h.Publish([]lease.Event{ev(201, "k")})
	for {
		select {
		case r := <-got:
			if r.n == 0 {
				continue // progress
			}
			if r.index != 201 {
				t.Fatalf("event response current to %d, want 201", r.index)
			}
			return
		case err := <-done:
			done <- err
			t.Fatalf("key watcher ended: %v", err)
		}
	}
}
