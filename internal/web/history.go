package web

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// History keeps a bounded record of each lease's recent events for the
// lease pages, fed from the watch API (Run), so it never touches the state
// machine's lock or the watch hub's internals. Consecutive extends of one
// tenure collapse into one row (with a count), so a lease renewed every few
// seconds keeps its holders, not just its last renewals.
//
// Run watches claims, revokes, expiries and pins only, unless Extends is
// set: a server records extends only while a watcher asks for them, and
// renewals are most of what it applies, so an always-on status page that
// asked for them would cost every renewal the recording.
type History struct {
	// Extends makes Run watch extends too (set before Run).
	Extends bool

	mu      sync.Mutex
	keys    map[lease.Key]*keyHistory
	ended   []endedKey // keys whose last event ended a tenure, oldest first: evicted first
	last    uint64     // index of the last event recorded
	gaps    int        // times events were lost (the watch fell behind or restarted too late)
	perKey  int
	maxKeys int
}

// Row is one line of a lease's history.
type Row struct {
	Kind   string        `json:"kind"` // claimed, extended, revoked, expired, pinned, unpinned
	Holder string        `json:"holder"`
	Token  uint64        `json:"token"`
	Index  uint64        `json:"index"`
	At     time.Duration `json:"at_ns"` // replicated time of the event (the last one, for collapsed extends)
	First  time.Duration `json:"first_ns"`
	Expiry time.Duration `json:"expiry_ns"`
	Count  int           `json:"count"` // events collapsed into this row
}

type keyHistory struct {
	rows []Row // oldest first, at most perKey
}

type endedKey struct {
	k     lease.Key
	index uint64
}

// NewHistory keeps up to perKey rows per lease (default 16) for up to
// maxKeys leases (default 200,000); past that, leases no longer held are
// forgotten first, oldest first, and new leases are not recorded while every
// recorded one is still held.
func NewHistory(perKey, maxKeys int) *History {
	if perKey <= 0 {
		perKey = 16
	}
	if maxKeys <= 0 {
		maxKeys = 200_000
	}
	return &History{keys: make(map[lease.Key]*keyHistory), perKey: perKey, maxKeys: maxKeys}
}

// Record adds a batch of events in log order.
func (h *History) Record(evs []lease.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range evs {
		h.record(&evs[i])
	}
}

func (h *History) record(e *lease.Event) {
	if e.Index > h.last {
		h.last = e.Index
	}
	kh := h.keys[e.Key]
	if kh == nil {
		if len(h.keys) >= h.maxKeys && !h.evict() {
			return
		}
		kh = &keyHistory{}
		h.keys[e.Key] = kh
	}
	if n := len(kh.rows); n > 0 && e.Kind == lease.EventExtended {
		if r := &kh.rows[n-1]; r.Kind == "extended" && r.Token == e.Token {
			r.At, r.Expiry, r.Index = e.Now, e.Expiry, e.Index
			r.Count++
			return
		}
	}
	if len(kh.rows) == h.perKey {
		copy(kh.rows, kh.rows[1:])
		kh.rows = kh.rows[:len(kh.rows)-1]
	}
	kh.rows = append(kh.rows, Row{Kind: e.Kind.String(), Holder: e.Holder, Token: e.Token, Index: e.Index,
		At: e.Now, First: e.Now, Expiry: e.Expiry, Count: 1})
	if e.Kind == lease.EventRevoked || e.Kind == lease.EventExpired {
		h.ended = append(h.ended, endedKey{e.Key, e.Index})
	}
}

// evict forgets the oldest lease whose last event still ends a tenure.
func (h *History) evict() bool {
	for len(h.ended) > 0 {
		ek := h.ended[0]
		h.ended = h.ended[1:]
		if kh := h.keys[ek.k]; kh != nil && kh.rows[len(kh.rows)-1].Index == ek.index {
			delete(h.keys, ek.k)
			return true
		}
	}
	return false
}

// Rows returns k's recorded rows, newest first.
func (h *History) Rows(k lease.Key) []Row {
	h.mu.Lock()
	defer h.mu.Unlock()
	kh := h.keys[k]
	if kh == nil {
		return nil
	}
	out := make([]Row, len(kh.rows))
	for i, r := range kh.rows {
		out[len(out)-1-i] = r
	}
	return out
}

// Gaps is how many times events were lost (shown on the lease page, so an
// operator knows the history may be incomplete).
func (h *History) Gaps() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gaps
}

// Run feeds the history from w until ctx ends, resuming after the last
// event seen when the watch fails (a watcher that falls behind is ended by
// the hub) and starting afresh, with a gap noted, when that is too old.
func (h *History) Run(ctx context.Context, w grpcserver.Watcher) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		h.mu.Lock()
		from := uint64(0)
		if h.last > 0 {
			from = h.last + 1
		}
		h.mu.Unlock()
		err := w.Watch(ctx, from, grpcserver.WatchFilter{Extends: h.Extends}, func(_ uint64, evs []lease.Event) error {
			h.Record(evs)
			backoff = 50 * time.Millisecond
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		var le *lease.Error
		if errors.As(err, &le) && le.Code == lease.CodeCompacted {
			h.mu.Lock()
			h.last = 0 // too far behind: take what comes next
			h.gaps++
			h.mu.Unlock()
			continue
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
