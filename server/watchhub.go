package server

import (
	"context"
	"sort"
	"sync"

	"github.com/leasehold/leasehold/lease"
)

// WatchHub implements Watcher for a backend that gets the events of its
// applied log through a callback (raftnode.Node.OnEvents): Publish feeds it,
// Watch serves watchers.
//
// The apply path does no work per watcher: Publish appends the events to one
// shared history and signals a dispatcher goroutine, which wakes the
// watchers; each watcher reads the history from its own cursor, filters and
// sends on its own goroutine. A watcher that falls so far behind that the
// history dropped events it has not read is ended with CodeCompacted (it
// cannot resume: its caller re-reads); it never slows the apply path.
type WatchHub struct {
	mu sync.RWMutex
	// history holds events in log order; history[i] has sequence number
	// base+i. Watchers hold sequence numbers, so a trim is a reslice.
	history    []lease.Event
	base       uint64
	maxHistory int
	batch      int // most events scanned per read (a response may end an entry past it)
	// first is the oldest index a watch may start at: every event of an
	// index >= first is still in history (or was never produced).
	first uint64
	// current is the index the hub is current to: the last event's index,
	// or the state a Reset (snapshot restore) jumped to.
	current uint64
	// epoch changes on Reset; watchers of an older epoch end compacted.
	epoch uint64
	// wake is closed by a dispatcher goroutine after events arrive, then
	// replaced; pending says a dispatcher is on its way; watchers counts
	// the registered watchers (none: nothing to wake).
	wake     chan struct{}
	pending  bool
	watchers int
}

// NewWatchHub keeps up to history events for resuming and slow watchers
// (default 100,000) and scans at most batch events per response (default
// 1,024).
func NewWatchHub(history, batch int) *WatchHub {
	if history <= 0 {
		history = 100_000
	}
	if batch <= 0 {
		batch = 1024
	}
	return &WatchHub{maxHistory: history, batch: batch, first: 1, wake: make(chan struct{})}
}

// Publish hands the hub the events of applied entries, in log order; the
// events of one entry are never split across calls. It never blocks and
// does no work per watcher: it runs on Raft's apply goroutine.
func (h *WatchHub) Publish(events []lease.Event) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	if need := len(h.history) + len(events); need > cap(h.history) {
		// Grow to twice the kept window, so after a trim (a reslice) the
		// next copy of the live events is a full window of publishes away.
		nh := make([]lease.Event, len(h.history), max(need, 2*h.maxHistory))
		copy(nh, h.history)
		h.history = nh
	}
	h.history = append(h.history, events...)
	h.current = max(h.current, events[len(events)-1].Index)
	if over := len(h.history) - h.maxHistory; over > 0 {
		// Events of the last dropped index may remain: a resume must
		// start after it. Reslice, never copy (amortized O(1)).
		// The dropped events are not cleared: a watcher may be reading
		// them outside the lock.
		h.first = max(h.first, h.history[over-1].Index+1)
		h.history = h.history[over:]
		h.base += uint64(over)
	}
	h.signalLocked()
	h.mu.Unlock()
}

// Reset says the state jumped to index (a snapshot was installed): the
// events before it are gone, and every watcher ends with CodeCompacted,
// since the events between what it saw and index will never be published.
// A new hub of a server that restarted from a snapshot is Reset to the
// snapshot's index before it serves.
func (h *WatchHub) Reset(index uint64) {
	h.mu.Lock()
	h.base += uint64(len(h.history))
	h.history = nil // never reuse an array a watcher may be reading
	h.first, h.current = index+1, index
	h.epoch++
	h.signalLocked()
	h.mu.Unlock()
}

// signalLocked starts a dispatcher unless one is already on its way (it
// will see these events too, as it swaps the wake channel after them).
func (h *WatchHub) signalLocked() {
	if h.pending || h.watchers == 0 {
		return
	}
	h.pending = true
	go h.dispatch()
}

// dispatch wakes the watchers: closing a channel readies every goroutine
// parked on it, work per watcher that must not run on the apply path.
func (h *WatchHub) dispatch() {
	h.mu.Lock()
	w := h.wake
	h.wake = make(chan struct{})
	h.pending = false
	h.mu.Unlock()
	close(w)
}

// compacted is the error of a watch that cannot start or go on.
func (h *WatchHub) compactedLocked(why string) error {
	return &lease.Error{Code: lease.CodeCompacted, Index: h.first,
		Message: why + "; re-read and watch from the read's index + 1"}
}

// progressEvery is how far (in events) a watcher's position may move with
// nothing matching its filter before it is sent a progress response, so a
// quiet filtered watch can still resume after the history moved on.
func (h *WatchHub) progressEvery() uint64 { return uint64(max(1, h.maxHistory/4)) }

// Watch implements Watcher.
func (h *WatchHub) Watch(ctx context.Context, from uint64, f WatchFilter, send func(index uint64, batch []lease.Event) error) error {
	h.mu.Lock()
	if from != 0 && from < h.first {
		err := h.compactedLocked("events before this server's history were requested")
		h.mu.Unlock()
		return err
	}
	h.watchers++
	defer func() {
		h.mu.Lock()
		h.watchers--
		h.mu.Unlock()
	}()
	epoch := h.epoch
	end := h.base + uint64(len(h.history))
	cursor := end
	at := h.current // the index the created response is current to
	if from != 0 {
		at = from - 1
		// The first kept event at or after from (history is in index order).
		cursor = h.base + uint64(sort.Search(len(h.history), func(i int) bool { return h.history[i].Index >= from }))
	}
	h.mu.Unlock()
	if err := send(at, nil); err != nil {
		return err
	}
	lastSent := cursor
	for {
		h.mu.RLock()
		if h.epoch != epoch {
			err := h.compactedLocked("this server installed a snapshot")
			h.mu.RUnlock()
			return err
		}
		if cursor < h.base {
			err := h.compactedLocked("watcher fell behind the server's history")
			h.mu.RUnlock()
			return err
		}
		// Take the unread window and scan it outside the lock: published
		// events are never written again (a trim reslices, Reset and growth
		// allocate a new array), so the lock is held for nanoseconds and
		// Publish never waits for a watcher's scan.
		window := h.history[cursor-h.base:]
		current := h.current
		wake := h.wake
		h.mu.RUnlock()
		// Read at most batch events per round, never splitting an entry:
		// at is then the index of the last event read, and every match up
		// to it is in out.
		var out []lease.Event
		n := 0
		for ; n < len(window); n++ {
			e := &window[n]
			if n >= h.batch && e.Index != at {
				break
			}
			if e.Index >= from && f.Match(e.Key) {
				out = append(out, *e)
			}
			at = max(at, e.Index)
		}
		cursor += uint64(n)
		if n == len(window) {
			at = max(at, current)
		}
		if len(out) > 0 || cursor-lastSent >= h.progressEvery() {
			if err := send(at, out); err != nil {
				return err
			}
			lastSent = cursor
		}
		if n < len(window) {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}
