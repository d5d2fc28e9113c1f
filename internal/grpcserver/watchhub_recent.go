package grpcserver

import "github.com/leasehold/leasehold/lease"

// Recent calls visit with the kept events of key k, newest first, until
// visit returns false, and returns the oldest index the kept window covers
// (every event of an index >= first that was recorded is still here).
//
// It reads the window the hub keeps anyway for resuming watchers, so a
// reader of a lease's recent events (the status page) costs nothing on the
// apply path: no watcher, no copy per event, no per-key index. A lookup
// scans the window (100,000 events by default, about a millisecond), which
// is the right trade for a page an operator opens now and then. Published
// events are never written again, so the scan runs outside the lock.
func (h *WatchHub) Recent(k lease.Key, visit func(*lease.Event) bool) (first uint64) {
	h.mu.RLock()
	evs, first := h.history.view(0), h.first
	h.mu.RUnlock()
	for i := evs.len() - 1; i >= 0; i-- {
		e := evs.at(i)
		if e.Index < first {
			break // trimmed from the window while we looked
		}
		if e.Key.Name == k.Name && e.Key == k && !visit(e) {
			break
		}
	}
	return first
}

// Watchers is the number of open watches.
func (h *WatchHub) Watchers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.watchers
}
