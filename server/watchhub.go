package server

import (
	"context"
	"sync"

	"github.com/leasehold/leasehold/lease"
)

// WatchHub implements Watcher for a backend that gets the events of its
// applied log through a callback (raftnode.Node.OnEvents): Publish feeds it,
// Watch serves watchers. It keeps the last events for watchers that resume
// from an index, and a bounded buffer per watcher, so a slow watcher never
// slows the apply path: it is ended with CodeOverloaded instead and resumes.
type WatchHub struct {
	mu         sync.Mutex
	history    []lease.Event
	maxHistory int
	buffer     int
	trimmed    uint64 // highest index some of whose events were dropped from history
	watchers   map[*hubWatcher]struct{}
}

// NewWatchHub keeps up to history events for resuming watchers (default
// 100,000) and buffers up to buffer batches per watcher (default 1,024).
func NewWatchHub(history, buffer int) *WatchHub {
	if history <= 0 {
		history = 100_000
	}
	if buffer <= 0 {
		buffer = 1024
	}
	return &WatchHub{maxHistory: history, buffer: buffer, watchers: make(map[*hubWatcher]struct{})}
}

type hubWatcher struct {
	f      WatchFilter
	ch     chan []lease.Event
	failed bool
}

// Publish hands the hub the events of applied entries, in log order. It
// never blocks.
func (h *WatchHub) Publish(events []lease.Event) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if need := len(h.history) + len(events); need > cap(h.history) {
		// Grow to twice the kept window, so after a trim (a reslice) the
		// next copy of the live events is a full window of publishes away.
		nh := make([]lease.Event, len(h.history), max(need, 2*h.maxHistory))
		copy(nh, h.history)
		h.history = nh
	}
	h.history = append(h.history, events...)
	if over := len(h.history) - h.maxHistory; over > 0 {
		h.trimmed = h.history[over-1].Index
		// Reslice, never copy: copying the whole history on every publish
		// once it is full cost O(history) per applied entry (a third of the
		// leader's CPU at saturation). append reallocates, copying only the
		// live window into room for twice it, when the capacity runs out:
		// amortized O(1).
		h.history = h.history[over:]
	}
	for w := range h.watchers {
		var batch []lease.Event
		for _, e := range events {
			if w.f.Match(e.Key) {
				batch = append(batch, e)
			}
		}
		if len(batch) == 0 || w.failed {
			continue
		}
		select {
		case w.ch <- batch:
		default:
			w.failed = true
			close(w.ch)
		}
	}
}

// Watch implements Watcher.
func (h *WatchHub) Watch(ctx context.Context, from uint64, f WatchFilter, send func([]lease.Event) error) error {
	w := &hubWatcher{f: f, ch: make(chan []lease.Event, h.buffer)}
	h.mu.Lock()
	if from != 0 && from <= h.trimmed {
		h.mu.Unlock()
		return lease.InvalidArgument("start_index", "events before index %d are no longer kept", h.trimmed+1)
	}
	var replay []lease.Event
	if from != 0 {
		for _, e := range h.history {
			if e.Index >= from && f.Match(e.Key) {
				replay = append(replay, e)
			}
		}
	}
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}()
	if err := send(nil); err != nil {
		return err
	}
	if len(replay) > 0 {
		if err := send(replay); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case batch, ok := <-w.ch:
			if !ok {
				return lease.Errorf(lease.CodeOverloaded, "watcher fell behind; resume from the last index seen + 1")
			}
			if err := send(batch); err != nil {
				return err
			}
		}
	}
}
