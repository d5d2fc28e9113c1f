package grpcserver

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
// shared history and, when watchers exist, starts a dispatcher goroutine.
// The dispatcher wakes only the watchers an event concerns (a watcher of
// one key is found by a map lookup; wider watchers are woken by any event),
// and every watcher from time to time so quiet ones can report progress.
// Each watcher reads the history from its own position, filters and sends
// on its own goroutine. A watcher that falls so far behind that the history
// dropped events it had not read is ended with CodeCompacted (it cannot
// resume: its caller re-reads); it never slows the apply path.
type WatchHub struct {
	mu sync.RWMutex
	// history holds events in log order; history.at(i) has sequence
	// number base+i. Published events are never written again (see
	// eventLog), so watchers and the dispatcher read views of them outside
	// the lock.
	history    eventLog
	base       uint64
	maxHistory int
	batch      int // most events read per round (a round may end an entry past it)
	// first is the oldest index a watch may start at: every event of an
	// index >= first is still in history (or was never produced).
	first uint64
	// current is the index the hub is current to: the last event's index,
	// or the state a Reset (snapshot restore) jumped to.
	current uint64
	// epoch changes on Reset; watchers of an older epoch end compacted.
	epoch    uint64
	pending  bool // a dispatcher is on its way
	watchers int

	// What the backend records (see SetRecorder), under dmu for changes
	// and mu for reads. Without a recorder everything is recorded.
	recorder    func(events, extends bool) (applied uint64, eventsOn bool)
	recEvents   bool
	recExtends  bool
	extWatchers int    // watchers that asked for extends
	extFirst    uint64 // extends are recorded for every index >= extFirst

	// Dispatch state, under dmu (lock order: dmu before mu).
	dmu          sync.Mutex
	dispatched   uint64 // events below this sequence number were dispatched
	dispEpoch    uint64
	lastProgress uint64
	byKey        map[lease.Key]map[*hubWatcher]struct{}
	wide         map[*hubWatcher]struct{}
}

type hubWatcher struct {
	f    WatchFilter
	wake chan struct{} // capacity 1
	// firstMatch and lastMatch are one past the sequence numbers of the
	// first and last events the dispatcher found for this key watcher that
	// it may not have read yet (0: none); under dmu.
	firstMatch, lastMatch uint64
	// joined is the end of the history when the watcher registered: the
	// dispatcher matched every event from there on for it.
	joined uint64
}

func (w *hubWatcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// NewWatchHub keeps up to history events for resuming and slow watchers
// (default 100,000) and reads at most batch events per round (default
// 1,024).
func NewWatchHub(history, batch int) *WatchHub {
	if history <= 0 {
		history = 100_000
	}
	if batch <= 0 {
		batch = 1024
	}
	return &WatchHub{history: newEventLog(history), maxHistory: history, batch: batch, first: 1, recEvents: true, recExtends: true, extFirst: 1,
		byKey: make(map[lease.Key]map[*hubWatcher]struct{}), wide: make(map[*hubWatcher]struct{})}
}

// SetRecorder lets the hub decide what the backend records, so the apply
// path records events only when a watcher can read them: rec(events,
// extends) switches recording (extends of a tenure are recorded only for
// watchers that asked for them, WatchFilter.Extends) and returns the index
// applied when the switch took effect and whether events are recorded now
// (the backend may record them anyway, e.g. for metrics). Events of entries
// up to that index that were not recorded are gone: a watch that would
// need them ends compacted. Call it once, before the backend applies
// anything; until then (and without it) the hub assumes every event is
// recorded.
func (h *WatchHub) SetRecorder(rec func(events, extends bool) (applied uint64, eventsOn bool)) {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	h.recorder = rec
	h.record(h.watchers > 0, h.extWatchers > 0)
}

// record switches the backend's recording to what the watchers need;
// under dmu, which orders every switch with registrations.
func (h *WatchHub) record(events, extends bool) {
	if h.recorder == nil {
		return
	}
	h.mu.RLock()
	same := h.recEvents == events && h.recExtends == extends
	h.mu.RUnlock()
	if same {
		return
	}
	// Not under mu: the recorder waits for the apply in progress, which
	// may be publishing here.
	applied, on := h.recorder(events, extends)
	h.mu.Lock()
	defer h.mu.Unlock()
	if on && !h.recEvents {
		// Nothing was recorded up to applied: no watch can start before.
		h.base += uint64(h.history.n)
		h.history.reset()
		h.first = max(h.first, applied+1)
		h.current = max(h.current, applied)
	}
	ext := on && extends
	if ext && !h.recExtends {
		h.extFirst = applied + 1
	}
	h.recEvents, h.recExtends = on, ext
}

// Publish hands the hub the events of applied entries, in log order; the
// events of one entry are never split across calls. It never blocks on a
// watcher and does no work per watcher: it runs on Raft's apply goroutine.
func (h *WatchHub) Publish(events []lease.Event) {
	h.mu.Lock()
	// Events a switch or a reset already declared gone (published late,
	// after the apply lock was released) stay gone.
	for len(events) > 0 && events[0].Index < h.first {
		events = events[1:]
	}
	if len(events) == 0 {
		h.mu.Unlock()
		return
	}
	h.history.append(events)
	h.current = max(h.current, events[len(events)-1].Index)
	start := h.startDispatchLocked()
	if h.watchers == 0 {
		// Nobody to dispatch to: trim here. Otherwise the dispatcher trims
		// once it has dispatched, so no event leaves the history before
		// every key watcher it concerns was told.
		h.trimLocked(h.base + uint64(h.history.n))
	}
	h.mu.Unlock()
	if start {
		go h.dispatch()
	}
}

// trimLocked drops the events beyond the kept window, but none at or after
// sequence number limit.
func (h *WatchHub) trimLocked(limit uint64) {
	over := h.history.n - h.maxHistory
	if over <= 0 || limit <= h.base {
		return
	}
	over = int(min(uint64(over), limit-h.base))
	// Events of the last dropped index may remain: a resume must start
	// after it. The dropped events are not cleared, a reader may be on
	// them.
	h.first = max(h.first, h.history.at(over-1).Index+1)
	h.history.drop(over)
	h.base += uint64(over)
}

// Reset says the state jumped to index (a snapshot was installed): the
// events before it are gone, and every watcher ends with CodeCompacted,
// since the events between what it saw and index will never be published.
// A new hub of a server that restarted from a snapshot is Reset to the
// snapshot's index before it serves.
func (h *WatchHub) Reset(index uint64) {
	h.mu.Lock()
	h.base += uint64(h.history.n)
	h.history.reset()
	h.first, h.current = index+1, index
	h.epoch++
	start := h.startDispatchLocked()
	h.mu.Unlock()
	if start {
		go h.dispatch()
	}
}

func (h *WatchHub) startDispatchLocked() bool {
	if h.pending || h.watchers == 0 {
		return false
	}
	h.pending = true
	return true
}

// progressEvery is how far (in events) the log may move with nothing for a
// watcher before it is woken to report progress, so a quiet filtered watch
// can still resume after the history moved on (well before it turns over).
func (h *WatchHub) progressEvery() uint64 { return uint64(max(1, h.maxHistory/4)) }

// dispatch wakes the watchers concerned by the events published since the
// last dispatch. It runs on its own goroutine, never on the apply path.
func (h *WatchHub) dispatch() {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	h.mu.Lock()
	h.pending = false // later publishes start another dispatch
	base, epoch := h.base, h.epoch
	end := base + uint64(h.history.n)
	// Events below base were trimmed while no watcher was registered.
	from := max(h.dispatched, base)
	var window eventView
	if from < end {
		window = h.history.view(int(from - base))
	}
	h.mu.Unlock()
	all := func() {
		for _, set := range h.byKey {
			for w := range set {
				w.signal()
			}
		}
		for w := range h.wide {
			w.signal()
		}
	}
	if epoch != h.dispEpoch {
		h.dispEpoch = epoch
		all()
	}
	if from >= end {
		h.dispatched = max(h.dispatched, end)
		return
	}
	if len(h.byKey) > 0 {
		for seq := from; seq < end; seq++ {
			for w := range h.byKey[window.at(int(seq-from)).Key] {
				if w.firstMatch == 0 {
					w.firstMatch = seq + 1
				}
				w.lastMatch = seq + 1
				w.signal()
			}
		}
	}
	for w := range h.wide {
		w.signal()
	}
	if end-h.lastProgress >= h.progressEvery() {
		h.lastProgress = end
		all()
	}
	h.dispatched = end
	h.mu.Lock()
	h.trimLocked(end)
	h.mu.Unlock()
}

// compactedLocked is the error of a watch that cannot start or go on.
func (h *WatchHub) compactedLocked(why string) error {
	return &lease.Error{Code: lease.CodeCompacted, Index: h.first,
		Message: why + "; re-read and watch from the read's index + 1"}
}

// register adds w to the hub and the dispatch index and returns where it
// starts reading, the index its created response is current to, and the
// epoch, or the compacted error of a from the hub no longer holds.
func (h *WatchHub) register(w *hubWatcher, from uint64) (cursor, at, epoch uint64, err error) {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	// Record what w needs before deciding where it starts.
	h.record(true, h.extWatchers > 0 || w.f.Extends)
	h.mu.Lock()
	if from != 0 && from < h.first {
		err = h.compactedLocked("events before this server's history were requested")
		h.mu.Unlock()
		return 0, 0, 0, err
	}
	if w.f.Extends && from != 0 && from < h.extFirst {
		err = &lease.Error{Code: lease.CodeCompacted, Index: h.extFirst,
			Message: "extends before this server recorded them were requested; re-read and watch from the read's index + 1"}
		h.mu.Unlock()
		return 0, 0, 0, err
	}
	epoch = h.epoch
	end := h.base + uint64(h.history.n)
	cursor, at = end, h.current
	if from != 0 {
		at = from - 1
		// The first kept event at or after from (history is in index order).
		cursor = h.base + uint64(sort.Search(h.history.n, func(i int) bool { return h.history.at(i).Index >= from }))
	}
	h.watchers++
	if w.f.Extends {
		h.extWatchers++
	}
	h.mu.Unlock()
	// Under dmu with the history's end read: every event from end on is
	// dispatched with w in the index.
	w.joined = end
	if k, ok := w.f.exactKey(); ok {
		set := h.byKey[k]
		if set == nil {
			set = make(map[*hubWatcher]struct{})
			h.byKey[k] = set
		}
		set[w] = struct{}{}
	} else {
		h.wide[w] = struct{}{}
	}
	return cursor, at, epoch, nil
}

func (h *WatchHub) unregister(w *hubWatcher) {
	h.dmu.Lock()
	if k, ok := w.f.exactKey(); ok {
		delete(h.byKey[k], w)
		if len(h.byKey[k]) == 0 {
			delete(h.byKey, k)
		}
	} else {
		delete(h.wide, w)
	}
	defer h.dmu.Unlock()
	h.mu.Lock()
	h.watchers--
	if w.f.Extends {
		h.extWatchers--
	}
	events, extends := h.watchers > 0, h.extWatchers > 0
	h.mu.Unlock()
	// Nobody left to read them: stop recording. A watch resuming here
	// later ends compacted (it re-reads) rather than missing events.
	h.record(events, extends)
}

// exactKey reports the one key a filter with every field set selects.
func (f WatchFilter) exactKey() (lease.Key, bool) {
	return lease.Key{Namespace: f.Namespace, Group: f.Group, Name: f.Name}, f.Name != ""
}

// Watch implements Watcher.
func (h *WatchHub) Watch(ctx context.Context, from uint64, f WatchFilter, send func(index uint64, batch []lease.Event) error) error {
	w := &hubWatcher{f: f, wake: make(chan struct{}, 1)}
	cursor, at, epoch, err := h.register(w, from)
	if err != nil {
		return err
	}
	defer h.unregister(w)
	if err := send(at, nil); err != nil {
		return err
	}
	_, exact := f.exactKey()
	lastSent := cursor
	for {
		// A key watcher skips what the dispatcher found nothing in for
		// it: up to its first unread match, or all that was dispatched.
		skipTo, boundary := uint64(0), false
		locked := exact && cursor >= w.joined
		if locked {
			h.dmu.Lock()
			if w.firstMatch == 0 {
				skipTo, boundary = h.dispatched, true
			} else {
				skipTo = w.firstMatch - 1
			}
		}
		h.mu.RLock()
		if locked {
			// Only now: the dispatcher trims under mu, so what it
			// dispatched is still there when the skip is taken.
			h.dmu.Unlock()
		}
		if h.epoch != epoch {
			err := h.compactedLocked("this server installed a snapshot")
			h.mu.RUnlock()
			return err
		}
		if skipTo > cursor && skipTo >= h.base {
			// A key watcher loses nothing to a trim of events it had no
			// match in. dispatched is the end of a publish, an entry
			// boundary (the event before base had index first-1); a
			// match's position may not be, so at waits for the scan.
			if boundary && skipTo > h.base {
				at = max(at, h.history.at(int(skipTo-1-h.base)).Index)
			} else if boundary {
				at = max(at, h.first-1)
			}
			cursor = skipTo
		}
		if cursor < h.base {
			err := h.compactedLocked("watcher fell behind the server's history")
			h.mu.RUnlock()
			return err
		}
		window := h.history.view(int(cursor - h.base))
		current := h.current
		h.mu.RUnlock()
		// Read at most batch events per round, never splitting an entry:
		// at is then the index of the last event read, and every match up
		// to it is in out.
		var out []lease.Event
		n := 0
		for ; n < window.len(); n++ {
			e := window.at(n)
			if n >= h.batch && e.Index != at {
				break
			}
			if e.Index >= from && f.Match(e.Key) && (f.Extends || e.Kind != lease.EventExtended) {
				out = append(out, *e)
			}
			at = max(at, e.Index)
		}
		cursor += uint64(n)
		if n == window.len() {
			at = max(at, current)
		}
		if exact {
			// Forget the matches read; one dispatched past what was read
			// leaves its place unknown: read on from here.
			h.dmu.Lock()
			if w.firstMatch != 0 && w.firstMatch-1 < cursor {
				w.firstMatch = 0
				if w.lastMatch-1 >= cursor {
					w.firstMatch = cursor + 1
				}
			}
			h.dmu.Unlock()
		}
		if len(out) > 0 || cursor-lastSent >= h.progressEvery() {
			if err := send(at, out); err != nil {
				return err
			}
			lastSent = cursor
		}
		if n < window.len() {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.wake:
		}
	}
}
