package grpcserver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// recBackend models a state machine whose event recording the hub switches:
// apply publishes an entry's events as the machine would record them.
type recBackend struct {
	mu              sync.Mutex
	events, extends bool
	applied         uint64
	switches        int
	hub             *grpcserver.WatchHub
}

func (b *recBackend) record(events, extends bool) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events, b.extends = events, extends
	b.switches++
	return b.applied, events
}

// apply applies one entry holding evs at the next index.
func (b *recBackend) apply(evs ...lease.Event) uint64 {
	b.mu.Lock()
	b.applied++
	var out []lease.Event
	for _, e := range evs {
		e.Index = b.applied
		if b.events && (b.extends || e.Kind != lease.EventExtended) {
			out = append(out, e)
		}
	}
	idx := b.applied
	b.mu.Unlock()
	b.hub.Publish(out)
	return idx
}

func (b *recBackend) state() (bool, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events, b.extends
}

// watchBrief starts a watch that should end at once (compacted); one that
// runs instead ends after a second with the context's error.
func watchBrief(h *grpcserver.WatchHub, from uint64, f grpcserver.WatchFilter) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return h.Watch(ctx, from, f, noop)
}

func extended(name string) lease.Event {
	e := ev(0, name)
	e.Kind = lease.EventExtended
	return e
}

// collect watches from with f until it has seen an event of index until,
// and returns the events.
func collect(t *testing.T, h *grpcserver.WatchHub, from uint64, f grpcserver.WatchFilter, until uint64, registered chan<- struct{}) ([]lease.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []lease.Event
	err := h.Watch(ctx, from, f, func(i uint64, b []lease.Event) error {
		if registered != nil {
			close(registered)
			registered = nil
		}
		got = append(got, b...)
		if i >= until {
			return errStop
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return got, err
}

// Events are recorded only while a watcher can read them, extends only
// while a watcher asked for them; a watch that would need what was not
// recorded ends compacted instead of missing it.
func TestWatchHubRecordsOnlyWhatWatchersRead(t *testing.T) {
	h := grpcserver.NewWatchHub(0, 0)
	b := &recBackend{hub: h, events: true, extends: true}
	h.SetRecorder(b.record)
	if ev, ext := b.state(); ev || ext {
		t.Fatalf("no watcher: recording events %v, extends %v; want neither", ev, ext)
	}
	b.apply(ev(0, "a"))                // 1: nobody watches: not recorded
	b.apply(ev(0, "b"), extended("a")) // 2
	compactedAt(t, "resume from before any watcher", watchBrief(h, 1, grpcserver.WatchFilter{}), 3)

	// A watcher without extends turns events on, extends stay off. A
	// keeper watcher stays until the end, so what is recorded stays.
	kctx, stopKeeper := context.WithCancel(context.Background())
	kreg := make(chan struct{})
	keeper := make(chan error, 1)
	go func() {
		keeper <- h.Watch(kctx, 0, grpcserver.WatchFilter{}, func(uint64, []lease.Event) error {
			select {
			case <-kreg:
			default:
				close(kreg)
			}
			return nil
		})
	}()
	<-kreg
	reg := make(chan struct{})
	plain := make(chan []lease.Event, 1)
	go func() {
		got, err := collect(t, h, 0, grpcserver.WatchFilter{}, 4, reg)
		if err != nil {
			t.Error(err)
		}
		plain <- got
	}()
	<-reg
	if ev, ext := b.state(); !ev || ext {
		t.Fatalf("plain watcher: recording events %v, extends %v; want events only", ev, ext)
	}
	b.apply(extended("a"), ev(0, "c")) // 3
	b.apply(ev(0, "d"))                // 4
	if got := <-plain; len(got) != 2 || got[0].Key.Name != "c" || got[1].Key.Name != "d" {
		t.Fatalf("plain watcher saw %v, want the claims of c and d only", got)
	}

	// A watcher with extends turns them on from now; resuming with extends
	// from before that is compacted, while a plain resume from there is not.
	reg = make(chan struct{})
	withExt := make(chan []lease.Event, 1)
	go func() {
		got, err := collect(t, h, 0, grpcserver.WatchFilter{Extends: true}, 5, reg)
		if err != nil {
			t.Error(err)
		}
		withExt <- got
	}()
	<-reg
	if ev, ext := b.state(); !ev || !ext {
		t.Fatalf("extends watcher: recording events %v, extends %v; want both", ev, ext)
	}
	b.apply(extended("c")) // 5
	if got := <-withExt; len(got) != 1 || got[0].Kind != lease.EventExtended || got[0].Index != 5 {
		t.Fatalf("extends watcher saw %v, want the extend of c at 5", got)
	}
	// The extends watcher left, so extends stopped; a new one turns them on
	// again after 5, and cannot resume from before.
	compactedAt(t, "extends resumed from before they were recorded", watchBrief(h, 3, grpcserver.WatchFilter{Extends: true}), 6)
	if got, err := collect(t, h, 3, grpcserver.WatchFilter{}, 5, nil); err != nil || len(got) != 2 {
		t.Fatalf("plain resume from 3: %v, %v; want the claims of c and d", got, err)
	}
	if ev, ext := b.state(); !ev || ext {
		t.Fatalf("after the extends watcher left: recording events %v, extends %v; want events only", ev, ext)
	}
	// Every watcher gone: recording stops, and a later watcher cannot
	// resume across the gap.
	stopKeeper()
	<-keeper
	if ev, ext := b.state(); ev || ext {
		t.Fatalf("after the last watcher: recording events %v, extends %v; want neither", ev, ext)
	}
	b.apply(ev(0, "e")) // 6: not recorded
	compactedAt(t, "resume across a time nobody watched", watchBrief(h, 5, grpcserver.WatchFilter{}), 7)
}

// Events published late for entries a recording switch already declared
// gone (the backend publishes after releasing its apply lock) are dropped,
// never delivered to a watcher that started after them.
func TestWatchHubDropsEventsBeforeFirst(t *testing.T) {
	h := grpcserver.NewWatchHub(0, 0)
	h.Reset(10)
	reg := make(chan struct{})
	done := make(chan []lease.Event, 1)
	go func() {
		got, err := collect(t, h, 0, grpcserver.WatchFilter{}, 11, reg)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	<-reg
	h.Publish([]lease.Event{ev(9, "late"), ev(11, "a")})
	if got := <-done; len(got) != 1 || got[0].Index != 11 {
		t.Fatalf("a watch from after 10 saw %v; want only the event at 11", got)
	}
}
